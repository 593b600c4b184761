//! The run history and a run's page, as an operator reads them: flows by name, what each
//! run was about (the flow's `run_title`), a search over the trigger values, steps by
//! their names, lanes as はい/いいえ, and outputs as labelled tables rather than JSON.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use flowbot_core::model::{Step, StepKind};
use flowbot_core::Flow;
use flowbot_store::{RunFilter, RunStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page, render, texts, LangQuery};
use crate::AppState;

/// The longest search text taken.
const MAX_SEARCH: usize = 200;
/// Values longer than this (as text) are folded in the tables.
const FOLD_AT: usize = 120;

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    before: Option<i64>,
    /// Text the run's trigger values contain.
    q: Option<String>,
    lang: Option<String>,
    project: Option<String>,
}

/// Flows read once per page: `(id, version)` → the flow, when its YAML still reads.
#[derive(Default)]
struct Flows(HashMap<(String, i64), Option<Flow>>);

impl Flows {
    async fn get(&mut self, s: &AppState, id: &str, version: i64) -> Option<&Flow> {
        let key = (id.to_string(), version);
        if !self.0.contains_key(&key) {
            let flow = match s.store.flow_version(id, version).await {
                Ok(v) => flowbot_core::check(&v.yaml, &s.apps).flow,
                Err(_) => None,
            };
            self.0.insert(key.clone(), flow);
        }
        self.0.get(&key).and_then(Option::as_ref)
    }
}

pub async fn runs(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Response {
    let lq = LangQuery {
        lang: q.lang.clone(),
        project: q.project.clone(),
    };
    let p = match page(&s, &headers, &lq).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let flow = q.flow.clone().filter(|f| !f.is_empty());
    let status = q.status.as_deref().and_then(RunStatus::parse);
    let search: Option<String> =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.chars().take(MAX_SEARCH).collect());
    let list = s
        .store
        .runs(&RunFilter {
            flow_id: flow.clone(),
            status,
            before_seq: q.before,
            contains: search.clone(),
            projects: Some(p.project.iter().cloned().collect()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let next = (list.len() == 50)
        .then(|| list.last().map(|r| r.seq))
        .flatten();
    // The chart: succeeded and failed runs per hour over the last day.
    let now = s.store.clock().now().as_millisecond();
    let day = s
        .store
        .runs(&RunFilter {
            flow_id: flow.clone(),
            since: Some(now - 24 * 3600 * 1000),
            projects: Some(p.project.iter().cloned().collect()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let mut buckets = [(0u32, 0u32); 24];
    for r in &day {
        let h = ((now - r.created_at) / 3_600_000).clamp(0, 23) as usize;
        match r.status {
            RunStatus::Succeeded => buckets[23 - h].0 += 1,
            RunStatus::Failed => buckets[23 - h].1 += 1,
            _ => {}
        }
    }
    let max = buckets.iter().map(|(a, b)| a + b).max().unwrap_or(0).max(1);
    let chart: Vec<Value> = buckets
        .iter()
        .enumerate()
        .map(|(i, (ok, bad))| json!({ "label": format!("-{}h", 23 - i), "ok": ok, "bad": bad, "ok_h": ok * 70 / max, "bad_h": bad * 70 / max }))
        .collect();
    let infos = s.store.flows().await.unwrap_or_default();
    let names: HashMap<&str, &str> = infos
        .iter()
        .map(|f| (f.id.as_str(), f.name.as_str()))
        .collect();
    let mut flows_read = Flows::default();
    let mut rows = Vec::new();
    for r in &list {
        let about = flows_read
            .get(&s, &r.flow_id, r.flow_version)
            .await
            .and_then(|f| flowbot_core::run_title(f, &r.trigger));
        rows.push(json!({
            "id": r.id, "status": r.status.as_str(), "flow_id": r.flow_id,
            "flow_name": names.get(r.flow_id.as_str()).copied().unwrap_or(&r.flow_id),
            "about": about, "created": p.time(r.created_at), "error": r.error,
        }));
    }
    // The filter offers the flows of the project in view only.
    let flows: Vec<Value> = infos
        .iter()
        .filter(|f| p.project.as_deref() == Some(f.project_id.as_str()))
        .map(|f| json!({ "id": f.id, "name": f.name }))
        .collect();
    let title = texts(p.lang)["runs"];
    render(
        &p,
        "runs.html",
        title,
        "runs",
        json!({ "runs": rows, "chart": chart, "flows": flows, "filter_flow": flow.unwrap_or_default(),
                "filter_status": q.status.unwrap_or_default(), "search": search.unwrap_or_default(), "next": next }),
    )
}

/// Every step of a flow by id, lanes included.
fn steps_by_id<'a>(steps: &'a [Step], out: &mut HashMap<&'a str, &'a Step>) {
    for step in steps {
        out.insert(step.id.as_str(), step);
        match &step.kind {
            StepKind::Branch(b) => {
                steps_by_id(&b.then_steps, out);
                steps_by_id(&b.else_steps, out);
            }
            StepKind::Switch(sw) => {
                for c in &sw.cases {
                    steps_by_id(&c.steps, out);
                }
                steps_by_id(&sw.default, out);
            }
            StepKind::ForEach(l) => steps_by_id(&l.steps, out),
            _ => {}
        }
    }
}

/// How deep nested values are shown as rows; deeper ones as their JSON.
const ROW_DEPTH: usize = 3;

/// A value's cell: scalars as text (long ones folded), lists and mappings as nested rows
/// (their JSON below the depth limit). `reference` is how a later step would name the
/// value (`customer.email`), for the "copy as reference" button; none for inputs.
fn cell(v: &Value, reference: Option<&str>, depth: usize) -> Value {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let nested = matches!(v, Value::Array(_) | Value::Object(_));
    let summary = match v {
        Value::Array(a) => format!("[{}]", a.len()),
        Value::Object(m) => format!("{{{}}}", m.len()),
        _ => String::new(),
    };
    let rows =
        (nested && depth < ROW_DEPTH).then(|| value_rows(v, &HashMap::new(), reference, depth + 1));
    // A file sent with a form: a link to download it rather than its reference's fields.
    if let Some(f) = flowbot_core::form::FileRef::from_value(v) {
        return json!({
            "text": f.name, "nested": false, "fold": false,
            "file": { "id": f.file_id, "name": f.name, "kb": f.size.div_ceil(1024) },
            "chip": reference.map(|r| format!("{{{{ {r} }}}}")),
        });
    }
    json!({
        "text": text,
        "nested": nested,
        "summary": summary,
        "rows": rows,
        "pretty": (nested && rows.is_none()).then(|| serde_json::to_string_pretty(v).unwrap_or_default()),
        "fold": !nested && text.chars().count() > FOLD_AT,
        "chip": reference.map(|r| format!("{{{{ {r} }}}}")),
    })
}

fn value_rows(
    v: &Value,
    labels: &HashMap<String, String>,
    base: Option<&str>,
    depth: usize,
) -> Vec<Value> {
    let entries: Vec<(String, &Value, Option<String>)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| (k.clone(), x, base.map(|b| format!("{b}.{k}"))))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| (i.to_string(), x, base.map(|b| format!("{b}[{i}]"))))
            .collect(),
        _ => return vec![json!({ "key": "", "label": "", "cell": cell(v, base, depth) })],
    };
    entries
        .into_iter()
        .map(|(k, x, r)| {
            json!({
                "key": k,
                "label": labels.get(&k).cloned().unwrap_or_default(),
                "cell": cell(x, r.as_deref(), depth),
            })
        })
        .collect()
}

/// Output name → its label in the page's language.
fn labels<'a>(
    outputs: impl Iterator<Item = &'a flowbot_core::manifest::OutputSpec>,
    lang: &str,
) -> HashMap<String, String> {
    outputs
        .map(|o| (o.name.clone(), o.label.get(lang).to_string()))
        .collect()
}

/// An output as labelled rows: each key with the label the app gives it (in the page's
/// language), nested values as rows of their own, `raw` and other bulky values folded.
fn output_rows(output: &Value, labels: &HashMap<String, String>, base: Option<&str>) -> Vec<Value> {
    value_rows(output, labels, base, 0)
}

pub async fn run(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(run) = s.store.run(&id).await else {
        return Redirect::to("/runs").into_response();
    };
    // The page's buttons follow the member's role in the run's project.
    let p = match s.store.project_of(flowbot_store::ProjectOf::Run, &id).await {
        Ok(Some(project)) => p.in_project(&project),
        _ => p,
    };
    let t = texts(p.lang);
    let mut flows_read = Flows::default();
    let flow = flows_read.get(&s, &run.flow_id, run.flow_version).await;
    let mut by_id = HashMap::new();
    if let Some(f) = flow {
        steps_by_id(&f.steps, &mut by_id);
    }
    let flow_name = match flow {
        Some(f) => f.name.clone(),
        None => s
            .store
            .flow(&run.flow_id)
            .await
            .map(|f| f.name)
            .unwrap_or_else(|_| run.flow_id.clone()),
    };
    let about = flow.and_then(|f| flowbot_core::run_title(f, &run.trigger));
    // The trigger's values, labelled as its app's trigger names them.
    let trigger_labels: HashMap<String, String> = flow
        .and_then(|f| s.apps.get(&f.trigger.app).map(|a| (f, a)))
        .map(|(f, a)| {
            let outputs = a
                .manifest()
                .triggers
                .iter()
                .filter(|t| f.trigger.events.is_empty() || f.trigger.events.contains(&t.id))
                .flat_map(|t| t.outputs.iter());
            labels(outputs, p.lang)
        })
        .unwrap_or_default();
    // A form's answers, labelled as the form asked for them.
    let trigger_labels = match flow.filter(|f| f.trigger.app == "form") {
        Some(f) => flowbot_core::form::parse(&f.trigger.options)
            .map(|spec| {
                spec.fields
                    .iter()
                    .map(|x| (x.key.clone(), x.label.get(p.lang).to_string()))
                    .collect()
            })
            .unwrap_or(trigger_labels),
        None => trigger_labels,
    };
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let steps: Vec<Value> = s
        .store
        .step_records(&id)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let people = matches!(r.kind.as_str(), "approval" | "task");
            let status = match r.status {
                flowbot_core::StepStatus::Started if people => "waiting",
                flowbot_core::StepStatus::Started => "running",
                flowbot_core::StepStatus::Succeeded => "succeeded",
                flowbot_core::StepStatus::Failed => "failed",
            };
            let app = r.app.as_deref().and_then(|a| s.apps.get(a));
            let action = app.and_then(|a| {
                a.manifest()
                    .actions
                    .iter()
                    .find(|x| Some(x.id.as_str()) == r.action.as_deref())
                    .cloned()
            });
            let what = match (app, &action) {
                (Some(a), Some(x)) => {
                    format!("{} · {}", a.manifest().name.get(p.lang), x.name.get(p.lang))
                }
                _ => r.kind.clone(),
            };
            let labels = labels(action.iter().flat_map(|x| x.outputs.iter()), p.lang);
            let step_id = r.path.rsplit('.').next().unwrap_or(&r.path);
            let name = by_id
                .get(step_id)
                .and_then(|st| st.name.clone())
                .unwrap_or_else(|| r.path.clone());
            let lane = r.lane.as_deref().map(|l| match l {
                "then" => t["lane_yes"].to_string(),
                "else" => t["lane_no"].to_string(),
                other => other.to_string(),
            });
            // The code and the fields once: connectors often quote them in the message.
            let error = r.error.as_ref().map(|e| {
                let code = e
                    .code
                    .as_deref()
                    .filter(|c| !e.message.contains(*c))
                    .map(|c| format!("[{c}] "))
                    .unwrap_or_default();
                let fields = if e.fields.iter().all(|f| e.message.contains(f.as_str())) {
                    String::new()
                } else {
                    format!(" ({})", e.fields.join(", "))
                };
                format!("{code}{}{fields}", e.message)
            });
            let explain = r
                .error
                .as_ref()
                .and_then(|e| crate::explain::explain(e.code.as_deref(), p.lang));
            let output = r.output.as_ref().filter(|_| r.lane.is_none());
            json!({
                "path": r.path, "name": name, "status": status, "what": what, "attempt": r.attempt,
                "generation": r.generation, "ms": r.duration().map(|d| d.as_millis()).unwrap_or(0),
                "lane": lane,
                "input": r.input.as_ref().map(|i| output_rows(i, &HashMap::new(), None)),
                "input_json": r.input.as_ref().map(pretty),
                "output": output.map(|o| output_rows(o, &labels, Some(step_id))),
                "output_json": output.map(pretty),
                "error": error, "explain": explain,
            })
        })
        .collect();
    let requests: Vec<Value> = s
        .store
        .requests_of_run(&id)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "title": r.title, "kind": r.kind, "status": r.status, "outcome": r.outcome,
                "created": p.time(r.created_at), "deadline": r.deadline_at.map(|d| p.time(d)),
                "people": r.people.iter().map(|x| {
                    let who = x.member.clone().or_else(|| x.email.clone()).unwrap_or_default();
                    if x.escalated { format!("{who} ({})", t["task_escalated"]) } else { who }
                }).collect::<Vec<_>>(),
                "decisions": r.decisions.iter().map(|d| json!({
                    "by": d.by, "decision": d.decision, "comment": d.comment, "at": p.time(d.at),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    render(
        &p,
        "run.html",
        t["run"],
        "runs",
        json!({ "requests": requests, "run": { "id": run.id, "status": run.status.as_str(), "flow_id": run.flow_id, "flow_name": flow_name,
                          "flow_version": run.flow_version, "attempt": run.attempt, "error": run.error,
                          "error_step": run.error_step, "about": about },
                "trigger": output_rows(&run.trigger, &trigger_labels, Some("trigger")), "trigger_json": pretty(&run.trigger),
                "steps": steps }),
    )
}
