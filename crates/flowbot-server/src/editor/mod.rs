//! What the no-code editor needs besides the flow API: the flow file as a document the
//! forms edit and back to YAML (the file stays the source of truth), the obtained values
//! available at a step with their samples, testing one step, the apps' own object and
//! field lists, and versions with diffs and restore.

mod problems;
mod testing;

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use flowbot_core::model::StepKind;
use flowbot_core::Diagnostic;
use flowbot_core::{check, Connection, Flow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::FlowView;

use crate::api::{diagnostics, import_yaml};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Perm, Routes};
use crate::AppState;
use testing::{
    empty_inputs, fetch_trigger, test_step, EmptyInputs, FetchBody, Fetched, StepTest, TestStepBody,
};

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

pub fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "post",
                "/api/v1/editor/parse",
                "A flow file as the editor's document, with its problems",
            )
.needs(Perm::Read).in_projects()
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
.needs(Perm::Read).in_projects()
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
.needs(Perm::Read).in_projects()
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
.needs(Perm::Build).in_projects()
            .json_body::<TestStepBody>()
            .returns::<StepTest>(),
            test_step,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}/empty-inputs",
                "Inputs of the current version that render empty with the flow's samples (asked before turning ON)",
            )
.needs(Perm::Read).of_flow("id")
            .returns::<EmptyInputs>(),
            empty_inputs,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}/samples",
                "The flow's sample values",
            )
.needs(Perm::Read).of_flow("id")
            .returns::<BTreeMap<String, Value>>(),
            samples,
        )
        .add(
            op(
                "put",
                "/api/v1/flows/{id}/samples/{step}",
                "Enter a sample (the trigger's, or a step's)",
            )
.needs(Perm::Build).of_flow("id")
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
.needs(Perm::Build).of_flow("id")
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
.needs(Perm::Read).of_flow("id")
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
.needs(Perm::Build).of_flow("id")
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
.needs(Perm::Build).of_connection("id")
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
.needs(Perm::Build).in_projects()
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

/// A validator problem, and the same said in the caller's language for the forms.
#[derive(Serialize, schemars::JsonSchema)]
struct Problem {
    #[serde(flatten)]
    diagnostic: Diagnostic,
    /// The message in the caller's language (Japanese or English).
    local: String,
}

fn problems(list: Vec<Diagnostic>, headers: &HeaderMap) -> Vec<Problem> {
    let lang = crate::ui::request_lang(headers);
    list.into_iter()
        .map(|d| Problem {
            local: problems::localize(&d.message, lang).into_owned(),
            diagnostic: d,
        })
        .collect()
}

#[derive(Serialize, schemars::JsonSchema)]
struct Parsed {
    /// The flow file as JSON; null when it is not YAML at all.
    doc: Value,
    /// The comment lines at the top of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    diagnostics: Vec<Problem>,
}

/// YAML → the document the forms edit, with the same diagnostics as `flowbot validate`.
async fn parse(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<YamlBody>,
) -> ApiResult<Json<Parsed>> {
    let doc: Value = match serde_yaml::from_str::<serde_yaml::Value>(&b.yaml) {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(e) => {
            let at = e.location();
            return Ok(Json(Parsed {
                doc: Value::Null,
                header: None,
                diagnostics: problems(
                    vec![Diagnostic {
                        line: at.as_ref().map_or(1, |l| l.line()),
                        column: at.as_ref().map_or(1, |l| l.column()),
                        path: String::new(),
                        message: e.to_string(),
                    }],
                    &headers,
                ),
            }));
        }
    };
    let checked = check(&b.yaml, &s.apps);
    Ok(Json(Parsed {
        doc,
        header: Some(header_of(&b.yaml)),
        diagnostics: problems(diagnostics(&checked), &headers),
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
    diagnostics: Vec<Problem>,
}

/// The document → YAML, with its diagnostics. Written into `base` where it can be (only
/// the changed lines differ); else whole, the header comments kept.
async fn to_yaml(
    State(s): State<AppState>,
    headers: HeaderMap,
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
        diagnostics: problems(diagnostics(&checked), &headers),
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
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<ValuesBody>,
) -> ApiResult<Json<Values>> {
    let flow = lenient_flow(&b.yaml)?;
    // The samples are the named flow's: real data of its project.
    c.check_flow(&s.store, &flow.id, Perm::Read).await?;
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
        // A form gives its fields, by key, labelled as the form labels them.
        if flow.trigger.app == "form" {
            let outs = flowbot_core::form::parse(&flow.trigger.options)
                .map(|spec| {
                    spec.fields
                        .iter()
                        .map(|f| (f.key.clone(), label(&f.label)))
                        .collect()
                })
                .unwrap_or_default();
            return ("トリガー / trigger".into(), outs);
        }
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
        StepKind::Approval(_) | StepKind::Task(_) => {
            let mut outs: Vec<(String, String)> = [
                ("decision", "判断 / decision"),
                ("decided_by", "判断した人 / decided by"),
                ("comment", "コメント / comment"),
                ("decided_at", "日時 / decided at"),
            ]
            .iter()
            .map(|(k, l)| (k.to_string(), l.to_string()))
            .collect();
            if let StepKind::Task(p) = &step.kind {
                let mut options = serde_json::Map::new();
                options.insert("fields".into(), p.fields.clone().unwrap_or_default());
                if let Ok(spec) = flowbot_core::form::parse(&options) {
                    outs.extend(
                        spec.fields
                            .iter()
                            .map(|f| (format!("answers.{}", f.key), label(&f.label))),
                    );
                }
            }
            outs
        }
    };
    (title, outs)
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
    Ok(Json(import_yaml(&s, &yaml, &c, None).await?))
}
