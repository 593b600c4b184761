//! What the no-code editor needs besides the flow API: the flow file as a document the
//! forms edit and back to YAML (the file stays the source of truth), the obtained values
//! available at a step with their samples, testing one step, the apps' own object and
//! field lists, and versions with diffs and restore.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use flowbot_core::model::StepKind;
use flowbot_core::template::{render_value, Scope};
use flowbot_core::{check, ActionCall, Connection, Flow};
use serde::Deserialize;
use serde_json::{json, Value};

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
            .json_body::<YamlBody>(),
            parse,
        )
        .add(
            op(
                "post",
                "/api/v1/editor/yaml",
                "The editor's document as a flow file, with its problems",
            )
            .json_body::<DocBody>(),
            to_yaml,
        )
        .add(
            op(
                "post",
                "/api/v1/editor/values",
                "The obtained values available at a step, with samples",
            )
            .json_body::<ValuesBody>(),
            values,
        )
        .add(
            op(
                "post",
                "/api/v1/editor/test-step",
                "Run one step with the samples of the steps before it",
            )
            .json_body::<TestStepBody>(),
            test_step,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}/samples",
                "The flow's sample values",
            ),
            samples,
        )
        .add(
            op(
                "put",
                "/api/v1/flows/{id}/samples/{step}",
                "Enter a sample (the trigger's, or a step's)",
            ),
            put_sample,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/samples/trigger/fetch",
                "Take the newest object the trigger's app offers as the trigger's sample",
            )
            .json_body::<FetchBody>(),
            fetch_trigger,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}/diff",
                "A line diff between two versions",
            )
            .query(&[("from", "a version number"), ("to", "a version number")]),
            diff,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/versions/{v}/restore",
                "Make an old version current again",
            ),
            restore,
        )
        .add(
            op(
                "get",
                "/api/v1/connections/{id}/describe",
                "The app's objects, or an object's fields",
            )
            .query(&[("object", "an object's API name: its fields")]),
            describe,
        )
        .add(
            op(
                "get",
                "/api/v1/apps/{app}/describe",
                "Objects and fields an app knows without a connection",
            )
            .query(&[("object", "an object's name: its fields")]),
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

/// YAML → the document the forms edit, with the same diagnostics as `flowbot validate`.
async fn parse(State(s): State<AppState>, ApiJson(b): ApiJson<YamlBody>) -> ApiResult {
    let doc: Value = match serde_yaml::from_str::<serde_yaml::Value>(&b.yaml) {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(e) => {
            return Ok(Json(json!({
                "doc": Value::Null,
                "diagnostics": [{ "line": e.location().map(|l| l.line()), "column": e.location().map(|l| l.column()), "message": e.to_string() }],
            })))
        }
    };
    let checked = check(&b.yaml, &s.apps);
    Ok(Json(json!({
        "doc": doc,
        "header": header_of(&b.yaml),
        "diagnostics": diagnostics(&checked),
    })))
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

/// The document → YAML, with its diagnostics. Written into `base` where it can be (only
/// the changed lines differ); else whole, the header comments kept.
async fn to_yaml(State(s): State<AppState>, ApiJson(b): ApiJson<DocBody>) -> ApiResult {
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
    Ok(Json(json!({
        "yaml": yaml,
        "valid": checked.flow.is_some(),
        "diagnostics": diagnostics(&checked),
    })))
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

/// The obtained values certainly available at a step, grouped by the step that produces
/// them, with the latest samples.
async fn values(State(s): State<AppState>, ApiJson(b): ApiJson<ValuesBody>) -> ApiResult {
    let flow = lenient_flow(&b.yaml)?;
    let names = flow
        .available_before(&b.step_id)
        .ok_or_else(|| ApiError::NotFound(format!("no step `{}` in the flow", b.step_id)))?;
    let samples = s.store.samples(&flow.id).await.unwrap_or_default();
    let mut groups = Vec::new();
    for name in names {
        let sample = samples.get(&name);
        let mut values: Vec<Value> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        // What the manifest promises first, then whatever the sample shows besides.
        let (label, declared) = declared_outputs(&s, &flow, &name);
        for (field, field_label) in declared {
            let expr = format!("{name}.{field}");
            let v = sample.and_then(|x| x.pointer(&format!("/{}", field.replace('.', "/"))));
            seen.insert(expr.clone());
            values.push(json!({ "expr": expr, "label": field_label, "sample": v }));
        }
        if let Some(sample) = sample {
            let mut found = Vec::new();
            leaves(&name, sample, 3, &mut found);
            for (expr, v) in found {
                if expr.contains(".raw") || !seen.insert(expr.clone()) {
                    continue;
                }
                values.push(json!({ "expr": expr, "label": Value::Null, "sample": v }));
            }
        }
        groups.push(
            json!({ "id": name, "label": label, "values": values, "has_sample": sample.is_some() }),
        );
    }
    Ok(Json(json!({ "groups": groups })))
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

/// Run one step with the samples of the steps before it; keep its output as its sample.
async fn test_step(State(s): State<AppState>, ApiJson(b): ApiJson<TestStepBody>) -> ApiResult {
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
            return Ok(Json(json!({
                "ok": false,
                "error": format!("input `{at}`: {}{hint}", e.message),
            })));
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
        return Ok(Json(
            json!({ "ok": true, "input": rendered, "output": rendered, "warnings": warnings }),
        ));
    };
    if b.dry_run {
        return Ok(Json(
            json!({ "ok": true, "input": rendered, "warnings": warnings }),
        ));
    }
    let spec = s
        .apps
        .manifest(&a.app)
        .and_then(|m| m.action(&a.action))
        .ok_or_else(|| ApiError::BadRequest(format!("unknown action {}.{}", a.app, a.action)))?;
    if spec.writes && !b.confirm {
        return Ok(Json(json!({
            "ok": false,
            "needs_confirmation": true,
            "input": rendered,
            "message": format!("this step writes to {} for real ({}); run it?", a.app, spec.name.en),
        })));
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
            Ok(Json(
                json!({ "ok": true, "input": rendered, "output": output, "warnings": warnings }),
            ))
        }
        Err(e) => Ok(Json(json!({
            "ok": false, "input": rendered, "error": e.message, "code": e.code, "fields": e.fields,
        }))),
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
) -> Vec<Value> {
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
                out.push(json!({
                    "field": name,
                    "message": format!("{name} takes at most {max} characters; the sample value has {n} / {name} は最大 {max} 文字です（サンプル値は {n} 文字）"),
                }));
            }
        }
    }
    out
}

async fn samples(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(json!(s.store.samples(&id).await?)))
}

async fn put_sample(
    State(s): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    ApiJson(sample): ApiJson<Value>,
) -> ApiResult {
    s.store.set_sample(&id, &step, &sample).await?;
    Ok(Json(json!({ "saved": true })))
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
) -> ApiResult {
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
    Ok(Json(json!({ "trigger": sample })))
}

#[derive(Deserialize)]
struct DescribeQuery {
    object: Option<String>,
}

async fn describe(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DescribeQuery>,
) -> ApiResult {
    let conn = s.store.connection(&id).await?;
    described(&s, &conn.app, Some(&conn), q.object.as_deref()).await
}

/// For apps whose lists need no connection (fields an app knows without asking).
async fn describe_app(
    State(s): State<AppState>,
    Path(app): Path<String>,
    ApiQuery(q): ApiQuery<DescribeQuery>,
) -> ApiResult {
    described(&s, &app, None, q.object.as_deref()).await
}

async fn described(
    s: &AppState,
    app: &str,
    conn: Option<&Connection>,
    object: Option<&str>,
) -> ApiResult {
    let c = s
        .apps
        .get(app)
        .ok_or_else(|| ApiError::NotFound(format!("app `{app}` is not installed")))?;
    let list = c
        .describe(conn, object)
        .await
        .map_err(|e| ApiError::BadRequest(format!("{app}: {}", e.message)))?;
    Ok(Json(json!({ "items": list })))
}

#[derive(Deserialize)]
struct DiffQuery {
    from: i64,
    to: i64,
}

/// A line diff between two versions of a flow.
async fn diff(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult {
    let a = s.store.flow_version(&id, q.from).await?.yaml;
    let b = s.store.flow_version(&id, q.to).await?.yaml;
    let d = similar::TextDiff::from_lines(&a, &b);
    let lines: Vec<Value> = d
        .iter_all_changes()
        .map(|c| {
            let op = match c.tag() {
                similar::ChangeTag::Delete => "-",
                similar::ChangeTag::Insert => "+",
                similar::ChangeTag::Equal => " ",
            };
            json!({ "op": op, "text": c.value().trim_end_matches('\n') })
        })
        .collect();
    Ok(Json(json!({ "from": q.from, "to": q.to, "lines": lines })))
}

/// Make an old version current again (as a new version, so nothing is lost).
async fn restore(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((id, v)): Path<(String, i64)>,
) -> ApiResult {
    let yaml = s.store.flow_version(&id, v).await?.yaml;
    Ok(Json(import_yaml(&s, &yaml, &c.user.username).await?))
}
