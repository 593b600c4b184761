//! What the no-code editor needs besides the flow API: the flow file as a document the
//! forms edit and back to YAML (the file stays the source of truth), the obtained values
//! available at a step with their samples, testing one step, the apps' own object and
//! field lists, and versions with diffs and restore.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use flowbot_core::model::StepKind;
use flowbot_core::template::{render_value, Scope};
use flowbot_core::Diagnostic;
use flowbot_core::{check, ActionCall, Connection, Flow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::FlowView;

use crate::api::{diagnostics, import_yaml};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Routes};
use crate::AppState;

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

pub fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "post",
                "/api/v1/editor/parse",
                "A flow file as the editor's document, with its problems",
            )
            .json_body::<YamlBody>()
            .returns::<Parsed>(),
            parse,
        )
        .add(
            op(
                "post",
                "/api/v1/editor/yaml",
                "The editor's document as a flow file, with its problems",
            )
            .json_body::<DocBody>()
            .returns::<Written>(),
            to_yaml,
        )
        .add(
            op(
                "post",
                "/api/v1/editor/values",
                "The obtained values available at a step, with samples",
            )
            .json_body::<ValuesBody>()
            .returns::<Values>(),
            values,
        )
        .add(
            op(
                "post",
                "/api/v1/editor/test-step",
                "Run one step with the samples of the steps before it",
            )
            .json_body::<TestStepBody>()
            .returns::<StepTest>(),
            test_step,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}/samples",
                "The flow's sample values",
            )
            .returns::<BTreeMap<String, Value>>(),
            samples,
        )
        .add(
            op(
                "put",
                "/api/v1/flows/{id}/samples/{step}",
                "Enter a sample (the trigger's, or a step's)",
            )
            .json_body::<Value>()
            .returns::<Saved>(),
            put_sample,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/samples/trigger/fetch",
                "Take the newest object the trigger's app offers as the trigger's sample",
            )
            .json_body::<FetchBody>()
            .returns::<Fetched>(),
            fetch_trigger,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}/diff",
                "A line diff between two versions",
            )
            .query::<DiffQuery>()
            .returns::<Diff>(),
            diff,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/versions/{v}/restore",
                "Make an old version current again",
            )
            .integer_params(&["v"])
            .returns::<FlowView>(),
            restore,
        )
        .add(
            op(
                "get",
                "/api/v1/connections/{id}/describe",
                "The app's objects, or an object's fields",
            )
            .query::<DescribeQuery>()
            .returns::<Described>(),
            describe,
        )
        .add(
            op(
                "get",
                "/api/v1/apps/{app}/describe",
                "Objects and fields an app knows without a connection",
            )
            .query::<DescribeQuery>()
            .returns::<Described>(),
            describe_app,
        )
}

/// The comment lines at the top of a flow file: kept when the forms rewrite the rest.
fn header_of(yaml: &str) -> String {
    yaml.lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

#[derive(Deserialize, schemars::JsonSchema)]
struct YamlBody {
    yaml: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Parsed {
    /// The flow file as JSON; null when it is not YAML at all.
    doc: Value,
    /// The comment lines at the top of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    diagnostics: Vec<Diagnostic>,
}

/// YAML → the document the forms edit, with the same diagnostics as `flowbot validate`.
async fn parse(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<YamlBody>,
) -> ApiResult<Json<Parsed>> {
    let doc: Value = match serde_yaml::from_str::<serde_yaml::Value>(&b.yaml) {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(e) => {
            let at = e.location();
            return Ok(Json(Parsed {
                doc: Value::Null,
                header: None,
                diagnostics: vec![Diagnostic {
                    line: at.as_ref().map_or(1, |l| l.line()),
                    column: at.as_ref().map_or(1, |l| l.column()),
                    path: String::new(),
                    message: e.to_string(),
                }],
            }));
        }
    };
    let checked = check(&b.yaml, &s.apps);
    Ok(Json(Parsed {
        doc,
        header: Some(header_of(&b.yaml)),
        diagnostics: diagnostics(&checked),
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct DocBody {
    doc: Value,
    #[serde(default)]
    header: String,
    /// The YAML the document was read from: changed line by line, as by hand.
    #[serde(default)]
    base: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Written {
    yaml: String,
    valid: bool,
    diagnostics: Vec<Diagnostic>,
}

/// The document → YAML, with its diagnostics. Written into `base` where it can be (only
/// the changed lines differ); else whole, the header comments kept.
async fn to_yaml(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<DocBody>,
) -> ApiResult<Json<Written>> {
    let patched = b
        .base
        .as_deref()
        .and_then(|base| flowbot_core::yaml_patch::patch(base, &b.doc));
    let yaml = match patched {
        Some(y) => y,
        None => {
            let body = serde_yaml::to_string(&b.doc).map_err(|e| {
                ApiError::BadRequest(format!("the flow cannot be written as YAML: {e}"))
            })?;
            format!("{}{body}", b.header)
        }
    };
    let checked = check(&yaml, &s.apps);
    Ok(Json(Written {
        valid: checked.flow.is_some(),
        diagnostics: diagnostics(&checked),
        yaml,
    }))
}

/// A flow from YAML that may still have problems elsewhere: enough to know its steps.
fn lenient_flow(yaml: &str) -> Result<Flow, ApiError> {
    let positions = flowbot_core::diag::Positions::index(yaml);
    flowbot_core::decode::decode(yaml, &positions)
        .flow
        .ok_or_else(|| ApiError::BadRequest("the flow cannot be read yet; see its problems".into()))
}

/// Dotted paths of a sample's leaves (and objects), up to a depth, with their values.
fn leaves(prefix: &str, v: &Value, depth: usize, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if depth > 0 => {
            for (k, x) in m {
                let path = format!("{prefix}.{k}");
                if !x.is_object() {
                    out.push((path.clone(), x.clone()));
                }
                leaves(&path, x, depth - 1, out);
            }
        }
        Value::Array(a) if depth > 0 && !a.is_empty() => {
            leaves(&format!("{prefix}[0]"), &a[0], depth - 1, out);
        }
        _ => {}
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ValuesBody {
    yaml: String,
    step_id: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Values {
    groups: Vec<ValueGroup>,
}

/// The obtained values one step (or the trigger) produces.
#[derive(Serialize, schemars::JsonSchema)]
struct ValueGroup {
    /// `trigger` or the step's id.
    id: String,
    label: String,
    values: Vec<ObtainedValue>,
    has_sample: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
struct ObtainedValue {
    /// The template expression, e.g. `trigger.customer.email`.
    expr: String,
    /// The label the app gives it, when it declares the value.
    label: Option<String>,
    /// The value in the latest sample, when there is one.
    sample: Option<Value>,
}

/// The obtained values certainly available at a step, grouped by the step that produces
/// them, with the latest samples.
async fn values(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ValuesBody>,
) -> ApiResult<Json<Values>> {
    let flow = lenient_flow(&b.yaml)?;
    let names = flow
        .available_before(&b.step_id)
        .ok_or_else(|| ApiError::NotFound(format!("no step `{}` in the flow", b.step_id)))?;
    let samples = s.store.samples(&flow.id).await.unwrap_or_default();
    let mut groups = Vec::new();
    for name in names {
        let sample = samples.get(&name);
        let mut values = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        // What the manifest promises first, then whatever the sample shows besides.
        let (label, declared) = declared_outputs(&s, &flow, &name);
        for (field, field_label) in declared {
            let expr = format!("{name}.{field}");
            let v = sample.and_then(|x| x.pointer(&format!("/{}", field.replace('.', "/"))));
            seen.insert(expr.clone());
            values.push(ObtainedValue {
                expr,
                label: Some(field_label),
                sample: v.cloned(),
            });
        }
        if let Some(sample) = sample {
            let mut found = Vec::new();
            leaves(&name, sample, 3, &mut found);
            for (expr, v) in found {
                if expr.contains(".raw") || !seen.insert(expr.clone()) {
                    continue;
                }
                values.push(ObtainedValue {
                    expr,
                    label: None,
                    sample: Some(v),
                });
            }
        }
        groups.push(ValueGroup {
            has_sample: sample.is_some(),
            id: name,
            label,
            values,
        });
    }
    Ok(Json(Values { groups }))
}

/// A step's (or the trigger's) label and the outputs its app declares: (field, label).
fn declared_outputs(s: &AppState, flow: &Flow, name: &str) -> (String, Vec<(String, String)>) {
    let label = |t: &flowbot_core::manifest::Text| format!("{} / {}", t.ja, t.en);
    if name == "trigger" {
        let outs = s
            .apps
            .manifest(&flow.trigger.app)
            .and_then(|m| {
                m.triggers
                    .iter()
                    .find(|t| flow.trigger.events.is_empty() || flow.trigger.events.contains(&t.id))
            })
            .map(|t| {
                t.outputs
                    .iter()
                    .map(|o| (o.name.clone(), label(&o.label)))
                    .collect()
            })
            .unwrap_or_default();
        return ("トリガー / trigger".into(), outs);
    }
    let Some(step) = flow.find_step(name) else {
        return (name.to_string(), Vec::new());
    };
    let title = step.name.clone().unwrap_or_else(|| step.id.clone());
    let outs = match &step.kind {
        StepKind::Action(a) => s
            .apps
            .manifest(&a.app)
            .and_then(|m| m.action(&a.action))
            .map(|spec| {
                spec.outputs
                    .iter()
                    .map(|o| (o.name.clone(), label(&o.label)))
                    .collect()
            })
            .unwrap_or_default(),
        StepKind::Set(values) => values.keys().map(|k| (k.clone(), k.clone())).collect(),
        StepKind::Branch(_) | StepKind::Switch(_) => vec![("lane".into(), "lane".into())],
        StepKind::ForEach(_) => vec![
            ("item".into(), "item".into()),
            ("index".into(), "index".into()),
        ],
        StepKind::Wait(_) => Vec::new(),
    };
    (title, outs)
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TestStepBody {
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
struct StepTest {
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
async fn test_step(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<TestStepBody>,
) -> ApiResult<Json<StepTest>> {
    let flow = lenient_flow(&b.yaml)?;
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
    let rendered = match render_value(&input, &scope) {
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
            step_connection(&s, &flow, a.connection.as_deref(), &a.app, &b.connections).await
        }
        None => Ok(None),
    };
    let warnings = match (action, &connection) {
        (Some(a), Ok(Some(conn))) => length_warnings(&s, a, conn, &rendered).await,
        _ => Vec::new(),
    };
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
    let spec = s
        .apps
        .manifest(&a.app)
        .and_then(|m| m.action(&a.action))
        .ok_or_else(|| ApiError::BadRequest(format!("unknown action {}.{}", a.app, a.action)))?;
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
            code: e.code,
            fields: Some(e.fields),
            ..StepTest::default()
        })),
    }
}

/// The connection a step uses: chosen in the editor, else bound to the flow.
async fn step_connection(
    s: &AppState,
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
        let c = s.store.connection(id).await?;
        if c.app != app {
            return Err(ApiError::BadRequest(format!(
                "connection `{}` is for {}, not {app}",
                c.name, c.app
            )));
        }
        return Ok(Some(c));
    }
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

/// `trigger` or a step's id → its sample.
async fn samples(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BTreeMap<String, Value>>> {
    Ok(Json(s.store.samples(&id).await?))
}

#[derive(Serialize, schemars::JsonSchema)]
struct Saved {
    saved: bool,
}

async fn put_sample(
    State(s): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    ApiJson(sample): ApiJson<Value>,
) -> ApiResult<Json<Saved>> {
    s.store.set_sample(&id, &step, &sample).await?;
    Ok(Json(Saved { saved: true }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct FetchBody {
    yaml: String,
    #[serde(default)]
    connections: BTreeMap<String, String>,
}

/// The newest object the trigger's app offers (`Connector::samples`), fetched through the
/// flow's trigger connection, becomes the trigger's sample.
async fn fetch_trigger(
    State(s): State<AppState>,
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
struct Fetched {
    /// The trigger's new sample.
    trigger: Value,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct DescribeQuery {
    /// An object's name: its fields (without it, the objects).
    object: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Described {
    /// Objects (`name`, `label`) or fields (`name`, `label`, `type`, `length`, …), as the
    /// app describes them.
    items: Value,
}

async fn describe(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DescribeQuery>,
) -> ApiResult<Json<Described>> {
    let conn = s.store.connection(&id).await?;
    described(&s, &conn.app, Some(&conn), q.object.as_deref()).await
}

/// For apps whose lists need no connection (fields an app knows without asking).
async fn describe_app(
    State(s): State<AppState>,
    Path(app): Path<String>,
    ApiQuery(q): ApiQuery<DescribeQuery>,
) -> ApiResult<Json<Described>> {
    described(&s, &app, None, q.object.as_deref()).await
}

async fn described(
    s: &AppState,
    app: &str,
    conn: Option<&Connection>,
    object: Option<&str>,
) -> ApiResult<Json<Described>> {
    let c = s
        .apps
        .get(app)
        .ok_or_else(|| ApiError::NotFound(format!("app `{app}` is not installed")))?;
    let list = c
        .describe(conn, object)
        .await
        .map_err(|e| ApiError::BadRequest(format!("{app}: {}", e.message)))?;
    Ok(Json(Described { items: list }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct DiffQuery {
    /// A version number.
    from: i64,
    /// A version number.
    to: i64,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Diff {
    from: i64,
    to: i64,
    lines: Vec<DiffLine>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct DiffLine {
    /// `+` added, `-` removed, ` ` the same.
    op: &'static str,
    text: String,
}

/// A line diff between two versions of a flow.
async fn diff(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<Diff>> {
    let a = s.store.flow_version(&id, q.from).await?.yaml;
    let b = s.store.flow_version(&id, q.to).await?.yaml;
    let d = similar::TextDiff::from_lines(&a, &b);
    let lines = d
        .iter_all_changes()
        .map(|c| {
            let op = match c.tag() {
                similar::ChangeTag::Delete => "-",
                similar::ChangeTag::Insert => "+",
                similar::ChangeTag::Equal => " ",
            };
            DiffLine {
                op,
                text: c.value().trim_end_matches('\n').to_string(),
            }
        })
        .collect();
    Ok(Json(Diff {
        from: q.from,
        to: q.to,
        lines,
    }))
}

/// Make an old version current again (as a new version, so nothing is lost).
async fn restore(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((id, v)): Path<(String, i64)>,
) -> ApiResult<Json<FlowView>> {
    let yaml = s.store.flow_version(&id, v).await?.yaml;
    Ok(Json(import_yaml(&s, &yaml, &c.user.username).await?))
}
