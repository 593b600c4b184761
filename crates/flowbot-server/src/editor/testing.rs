//! Testing one step and fetching a trigger's sample: the editor's calls that reach the apps
//! themselves, through the connection chosen in the editor or bound to the flow.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use flowbot_core::model::StepKind;
use flowbot_core::runner::render_input;
use flowbot_core::template::{render_value, Scope};
use flowbot_core::{ActionCall, Connection, Flow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{lenient_flow, ApiResult};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
pub(super) struct TestStepBody {
    yaml: String,
    step_id: String,
    /// Run a step that writes to the app: the user said yes.
    #[serde(default)]
    confirm: bool,
    /// Only render the input (for previews and length checks).
    #[serde(default)]
    dry_run: bool,
    /// Connections chosen in the editor but not saved yet: slot → connection id.
    #[serde(default)]
    connections: BTreeMap<String, String>,
}

/// What testing a step did. `ok` says whether it ran (or rendered) without error.
#[derive(Serialize, Default, schemars::JsonSchema)]
pub(super) struct StepTest {
    ok: bool,
    /// The rendered input, when the templates rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    /// What the step produced: kept as its sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    /// Rendered values longer than their field allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<LengthWarning>>,
    /// The step writes to the app: send again with `confirm`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    needs_confirmation: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// What the app's refusal means and what to do, in the caller's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<String>,
    /// The app's error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    /// The fields the app blamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<String>>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct LengthWarning {
    field: String,
    message: String,
}

/// Run one step with the samples of the steps before it; keep its output as its sample.
pub(super) async fn test_step(
    State(s): State<AppState>,
    axum::Extension(c): axum::Extension<Caller>,
    headers: axum::http::HeaderMap,
    ApiJson(b): ApiJson<TestStepBody>,
) -> ApiResult<Json<StepTest>> {
    let flow = lenient_flow(&b.yaml)?;
    // Its samples are read and written: the named flow's project is the caller's to build.
    c.check_flow(&s.store, &flow.id, crate::routes::Perm::Build)
        .await?;
    let step = flow
        .find_step(&b.step_id)
        .ok_or_else(|| ApiError::NotFound(format!("no step `{}` in the flow", b.step_id)))?;
    let names = flow.available_before(&b.step_id).unwrap_or_default();
    let samples = s.store.samples(&flow.id).await?;
    let mut scope = Scope::new();
    let mut missing = Vec::new();
    for n in &names {
        match samples.get(n) {
            Some(v) => {
                scope.insert(n.clone(), v.clone());
            }
            None => missing.push(n.clone()),
        }
    }
    let (input, action) = match &step.kind {
        StepKind::Action(a) => (Value::Object(a.input.clone()), Some(a)),
        StepKind::Set(v) => (Value::Object(v.clone()), None),
        _ => {
            return Err(ApiError::BadRequest(
                "only app steps and computed values can be tested on their own; test the steps inside instead".into(),
            ))
        }
    };
    // An app step renders as a run would (program text as written, defaults filled in).
    let spec = action.and_then(|a| s.apps.manifest(&a.app).and_then(|m| m.action(&a.action)));
    let rendered = match (action, spec) {
        (Some(a), Some(spec)) => render_input(spec, &a.input, &scope).map(Value::Object),
        _ => render_value(&input, &scope),
    };
    let rendered = match rendered {
        Ok(v) => v,
        Err((at, e)) => {
            let hint = if missing.is_empty() {
                String::new()
            } else {
                format!(
                    " (no sample yet for {}: test those first)",
                    missing.join(", ")
                )
            };
            return Ok(Json(StepTest {
                error: Some(format!("input `{at}`: {}{hint}", e.message)),
                ..StepTest::default()
            }));
        }
    };
    // Resolved once: it reads and opens sealed secrets. An error matters only when the
    // step is really run.
    let connection = match action {
        Some(a) => {
            step_connection(
                &s,
                &c,
                &flow,
                a.connection.as_deref(),
                &a.app,
                &b.connections,
            )
            .await
        }
        None => Ok(None),
    };
    let mut warnings = match (action, &connection) {
        (Some(a), Ok(Some(conn))) => length_warnings(&s, a, conn, &rendered).await,
        _ => Vec::new(),
    };
    if action.is_some() {
        empty_warnings(&rendered, "", &mut warnings);
    }
    let Some(a) = action else {
        if !b.dry_run {
            s.store.set_sample(&flow.id, &step.id, &rendered).await?;
        }
        return Ok(Json(StepTest {
            ok: true,
            output: Some(rendered.clone()),
            input: Some(rendered),
            warnings: Some(warnings),
            ..StepTest::default()
        }));
    };
    if b.dry_run {
        return Ok(Json(StepTest {
            ok: true,
            input: Some(rendered),
            warnings: Some(warnings),
            ..StepTest::default()
        }));
    }
    let spec =
        spec.ok_or_else(|| ApiError::BadRequest(format!("unknown action {}.{}", a.app, a.action)))?;
    if spec.writes && !b.confirm {
        return Ok(Json(StepTest {
            needs_confirmation: true,
            input: Some(rendered),
            message: Some(format!(
                "this step writes to {} for real ({}); run it?",
                a.app, spec.name.en
            )),
            ..StepTest::default()
        }));
    }
    let connection = connection?;
    let connector = s
        .apps
        .get(&a.app)
        .ok_or_else(|| ApiError::BadRequest(format!("app `{}` is not installed", a.app)))?;
    let input_map = rendered.as_object().cloned().unwrap_or_default();
    let out = connector
        .execute(ActionCall {
            action: &a.action,
            input: &input_map,
            connection: connection.as_ref(),
        })
        .await;
    match out {
        Ok(output) => {
            s.store.set_sample(&flow.id, &step.id, &output).await?;
            Ok(Json(StepTest {
                ok: true,
                input: Some(rendered),
                output: Some(output),
                warnings: Some(warnings),
                ..StepTest::default()
            }))
        }
        Err(e) => Ok(Json(StepTest {
            input: Some(rendered),
            error: Some(e.message),
            explanation: crate::explain::explain(
                e.code.as_deref(),
                crate::ui::request_lang(&headers),
            )
            .map(str::to_string),
            code: e.code,
            fields: Some(e.fields),
            ..StepTest::default()
        })),
    }
}

/// The connection a step uses: chosen in the editor, else bound to the flow.
async fn step_connection(
    s: &AppState,
    c: &Caller,
    flow: &Flow,
    slot: Option<&str>,
    app: &str,
    chosen: &BTreeMap<String, String>,
) -> Result<Option<Connection>, ApiError> {
    let needs = s
        .apps
        .manifest(app)
        .is_some_and(|m| !m.connection.is_empty());
    let Some(slot) = slot else {
        return Ok(None);
    };
    if let Some(id) = chosen.get(slot).filter(|id| !id.is_empty()) {
        crate::api::check_usable(s, c, id).await?;
        let conn = s.store.connection(id).await?;
        if conn.app != app {
            return Err(ApiError::BadRequest(format!(
                "connection `{}` is for {}, not {app}",
                conn.name, conn.app
            )));
        }
        return Ok(Some(conn));
    }
    // The flow the file names may be another project's: its connections are used only by
    // those who build there.
    c.check_flow(&s.store, &flow.id, crate::routes::Perm::Build)
        .await?;
    let bound = s.store.flow_connections(&flow.id).await?;
    match bound.get(slot) {
        Some(c) => Ok(Some(c.clone())),
        None if needs => Err(ApiError::BadRequest(format!(
            "choose a connection for `{slot}` first"
        ))),
        None => Ok(None),
    }
}

/// Text fields may have a length (describe says): a rendered value longer than its field is flagged
/// before the flow runs.
/// Inputs that rendered empty: a mapping to `""` (or a value missing from the samples) is
/// sent as an empty text — a search for `Mail__c = ''` finds nothing and every customer
/// would take the create lane. Said before it happens in production.
fn empty_warnings(v: &Value, path: &str, out: &mut Vec<LengthWarning>) {
    match v {
        Value::String(t) if t.trim().is_empty() && !path.is_empty() => out.push(LengthWarning {
            field: path.to_string(),
            message: format!(
                "{path} is empty in this test: check its mapping and the sample / {path} がこのテストでは空です。対応付けとサンプルを確認してください"
            ),
        }),
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                empty_warnings(x, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                empty_warnings(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

async fn length_warnings(
    s: &AppState,
    a: &flowbot_core::model::ActionStep,
    conn: &Connection,
    rendered: &Value,
) -> Vec<LengthWarning> {
    let (Some(object), Some(fields)) = (
        rendered.get("object").and_then(Value::as_str),
        rendered.get("fields").and_then(Value::as_object),
    ) else {
        return Vec::new();
    };
    let Some(app) = s.apps.get(&a.app) else {
        return Vec::new();
    };
    let Ok(described) = app.describe(Some(conn), Some(object)).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in described.as_array().into_iter().flatten() {
        let (Some(name), Some(max)) = (f["name"].as_str(), f["length"].as_u64()) else {
            continue;
        };
        if max == 0 {
            continue;
        }
        if let Some(Value::String(v)) = fields.get(name) {
            let n = v.chars().count() as u64;
            if n > max {
                out.push(LengthWarning {
                    field: name.to_string(),
                    message: format!("{name} takes at most {max} characters; the sample value has {n} / {name} は最大 {max} 文字です（サンプル値は {n} 文字）"),
                });
            }
        }
    }
    out
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(super) struct FetchBody {
    yaml: String,
    #[serde(default)]
    connections: BTreeMap<String, String>,
}

/// The newest object the trigger's app offers (`Connector::samples`), fetched through the
/// flow's trigger connection, becomes the trigger's sample.
pub(super) async fn fetch_trigger(
    State(s): State<AppState>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<FetchBody>,
) -> ApiResult<Json<Fetched>> {
    let flow = lenient_flow(&b.yaml)?;
    let app_id = flow.trigger.app.clone();
    let app = s
        .apps
        .get(&app_id)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown app `{app_id}`")))?;
    let conn = step_connection(
        &s,
        &c,
        &flow,
        flow.trigger.connection.as_deref(),
        &app_id,
        &b.connections,
    )
    .await?;
    let samples = app
        .samples(flowbot_core::SampleCall {
            events: &flow.trigger.events,
            options: &flow.trigger.options,
            connection: conn.as_ref(),
        })
        .await
        .map_err(|e| ApiError::BadRequest(format!("{app_id}: {}", e.message)))?;
    let Some(sample) = samples.into_iter().next() else {
        return Err(ApiError::BadRequest(format!(
            "{app_id} offers no recent record here; capture a webhook or enter a sample instead"
        )));
    };
    s.store.set_sample(&id, "trigger", &sample).await?;
    Ok(Json(Fetched { trigger: sample }))
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Fetched {
    /// The trigger's new sample.
    trigger: Value,
}

/// Inputs of the saved flow that render empty with its samples.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct EmptyInputs {
    warnings: Vec<EmptyInput>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct EmptyInput {
    step: String,
    /// The step's name, for the message.
    name: String,
    field: String,
}

/// Before the trigger goes ON: every app step's input rendered with the samples the flow
/// has (a captured event, tested steps); a mapped value that comes out empty (a search by
/// `Mail__c = ''`) would do the same in every run. Steps whose samples are missing are
/// skipped: nothing can be said of them yet.
pub(super) async fn empty_inputs(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<EmptyInputs>> {
    let info = s.store.flow(&id).await?;
    let flow = s
        .flows
        .get(&s.store, &s.apps, &id, info.current_version)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let samples = s.store.samples(&id).await?;
    let mut warnings = Vec::new();
    for step in flow.walk() {
        let StepKind::Action(a) = &step.kind else {
            continue;
        };
        let names = flow.available_before(&step.id).unwrap_or_default();
        let mut scope = Scope::new();
        for n in &names {
            if let Some(v) = samples.get(n) {
                scope.insert(n.clone(), v.clone());
            }
        }
        // Only mapped values: a literal empty input is the validator's to judge.
        let mapped: serde_json::Map<String, Value> = a
            .input
            .iter()
            .filter(|(_, v)| v.to_string().contains("{{"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let Ok(rendered) = render_value(&Value::Object(mapped), &scope) else {
            continue;
        };
        let mut found = Vec::new();
        empty_warnings(&rendered, "", &mut found);
        warnings.extend(found.into_iter().map(|w| EmptyInput {
            step: step.id.clone(),
            name: step.display_name().to_string(),
            field: w.field,
        }));
    }
    Ok(Json(EmptyInputs { warnings }))
}
