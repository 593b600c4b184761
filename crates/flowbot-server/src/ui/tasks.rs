//! My Tasks (マイタスク): the approvals and tasks waiting for a member, one request with the
//! run's values, its form and the decision buttons, and the page an outsider's single-use
//! link opens (server-rendered, answered without script).

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use flowbot_core::form::FieldError;
use flowbot_store::{Decider, RequestInfo};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{page, render, texts, LangQuery, Page};
use crate::api::tasks::{checked, may_see};
use crate::error::ApiError;
use crate::AppState;

/// The most values of the run shown beside a request.
const MAX_CONTEXT: usize = 50;
/// The largest outsider's answer taken.
const MAX_ANSWER: usize = 256 * 1024;

#[derive(Deserialize, Default)]
pub struct TasksQuery {
    lang: Option<String>,
    project: Option<String>,
    /// A decision was just recorded.
    done: Option<String>,
}

impl TasksQuery {
    fn lang(&self) -> LangQuery {
        LangQuery {
            lang: self.lang.clone(),
            project: self.project.clone(),
        }
    }
}

async fn flow_name(s: &AppState, flow_id: &str) -> String {
    s.store
        .flow(flow_id)
        .await
        .map(|f| f.name)
        .unwrap_or_else(|_| flow_id.to_string())
}

fn short(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

pub async fn tasks(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TasksQuery>,
) -> Response {
    let p = match page(&s, &headers, &q.lang()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let me = p
        .member
        .as_ref()
        .map(|m| m.username.clone())
        .unwrap_or_default();
    let open = s
        .store
        .requests_for(&me, true, 100)
        .await
        .unwrap_or_default();
    let answered = s
        .store
        .requests_for(&me, false, 50)
        .await
        .unwrap_or_default();
    let t = texts(p.lang);
    let mut open_rows = Vec::new();
    for r in &open {
        open_rows.push(json!({
            "id": r.id, "title": r.title, "kind": r.kind, "flow_name": flow_name(&s, &r.flow_id).await,
            "created": p.time(r.created_at), "deadline": r.deadline_at.map(|d| p.time(d)),
            "message_short": short(&r.message, 140),
        }));
    }
    let mut answered_rows = Vec::new();
    for r in &answered {
        let mine = r.decisions.iter().find(|d| d.by == me);
        answered_rows.push(json!({
            "id": r.id, "title": r.title, "flow_name": flow_name(&s, &r.flow_id).await,
            "status": r.status, "outcome": r.outcome,
            "mine": mine.map(|d| t.get(format!("decision_{}", d.decision).as_str()).copied().unwrap_or("")),
            "mine_at": mine.map(|d| p.time(d.at)),
        }));
    }
    render(
        &p,
        "tasks.html",
        t["my_tasks"],
        "tasks",
        json!({ "open": open_rows, "answered": answered_rows, "done": q.done.is_some() }),
    )
}

/// The run's trigger values beside a request, labelled as its form asked for them.
async fn context(s: &AppState, req: &RequestInfo, lang: &str) -> Vec<Value> {
    let Ok(run) = s.store.run(&req.run_id).await else {
        return Vec::new();
    };
    let labels: std::collections::HashMap<String, String> = match s
        .flows
        .get(&s.store, &s.apps, &run.flow_id, run.flow_version)
        .await
    {
        Ok(f) if f.trigger.app == "form" => flowbot_core::form::parse(&f.trigger.options)
            .map(|spec| {
                spec.fields
                    .iter()
                    .map(|x| (x.key.clone(), x.label.get(lang).to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Default::default(),
    };
    let Value::Object(values) = &run.trigger else {
        return Vec::new();
    };
    values
        .iter()
        .take(MAX_CONTEXT)
        .map(|(k, v)| {
            if let Some(f) = flowbot_core::form::FileRef::from_value(v) {
                return json!({ "label": labels.get(k).cloned().unwrap_or_else(|| k.clone()),
                               "value": f.name, "file": f.file_id });
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            json!({ "label": labels.get(k).cloned().unwrap_or_else(|| k.clone()), "value": short(&text, 2000) })
        })
        .collect()
}

/// What the request page shows: the request, its people and decisions, the run's values,
/// and the form (with answers sent back and errors, after a refused answer).
#[allow(clippy::too_many_arguments)]
async fn request_view(
    s: &AppState,
    p: &Page,
    req: &RequestInfo,
    answerable: bool,
    outsider: bool,
    answers: &[(String, String)],
    errors: &std::collections::BTreeMap<String, FieldError>,
    comment: &str,
) -> Value {
    let spec = req.fields.as_ref().and_then(|f| {
        let mut options = Map::new();
        options.insert("fields".into(), f.clone());
        flowbot_core::form::parse(&options).ok()
    });
    let form = match &spec {
        Some(spec) if req.kind == "task" => crate::forms::view(spec, p.lang, answers, errors),
        _ => json!({ "fields": [], "has_errors": !errors.is_empty() }),
    };
    let people: Vec<Value> = req
        .people
        .iter()
        .map(|x| {
            json!({ "who": x.member.clone().or_else(|| x.email.clone()).unwrap_or_default(),
                    "escalated": x.escalated })
        })
        .collect();
    let decisions: Vec<Value> = req
        .decisions
        .iter()
        .map(|d| json!({ "by": d.by, "decision": d.decision, "comment": d.comment, "at": p.time(d.at) }))
        .collect();
    let mut v = json!({
        "req": req, "flow_name": flow_name(s, &req.flow_id).await,
        "created": p.time(req.created_at), "deadline": req.deadline_at.map(|d| p.time(d)),
        "context": context(s, req, p.lang).await, "answerable": answerable, "outsider": outsider,
        "people": people, "decisions": decisions, "comment": comment,
        "run_link": !outsider,
    });
    if let (Value::Object(out), Value::Object(f)) = (&mut v, form) {
        out.extend(f);
    }
    v
}

pub async fn task(
    State(s): State<AppState>,
    Extension(caller): Extension<crate::auth::Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<TasksQuery>,
) -> Response {
    let p = match page(&s, &headers, &q.lang()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let req = match s.store.request(&id).await {
        Ok(r) if may_see(&s, &caller, &r).await => r,
        _ => return Redirect::to("/tasks").into_response(),
    };
    let me = caller.user.username.as_str();
    let answerable = req.status == "open"
        && req.people.iter().any(|x| x.member.as_deref() == Some(me))
        && !req.decisions.iter().any(|d| d.by == me);
    let mut v = request_view(
        &s,
        &p,
        &req,
        answerable,
        false,
        &[],
        &Default::default(),
        "",
    )
    .await;
    v["action"] = json!(format!("/tasks/{id}"));
    v["api"] = json!(format!("/api/v1/tasks/{id}/decision"));
    v["done"] = json!(q.done.is_some());
    render(&p, "task.html", &req.title.clone(), "tasks", v)
}

#[derive(Deserialize, Default)]
pub struct LinkQuery {
    lang: Option<String>,
}

/// The page an outsider's link opens: the request and its form, nothing else.
pub async fn link_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let lang = super::page_lang(&headers, q.lang.as_deref());
    let p = Page::anonymous(lang, false);
    match s.store.request_by_link(&token).await {
        Ok(linked) => {
            let open = linked.request.status == "open";
            let mut v = request_view(
                &s,
                &p,
                &linked.request,
                open,
                true,
                &[],
                &Default::default(),
                "",
            )
            .await;
            v["action"] = json!(format!("/r/{token}"));
            render(&p, "task.html", &linked.request.title.clone(), "task", v)
        }
        Err(e) => refused_link(&p, &e.into()),
    }
}

fn refused_link(p: &Page, e: &ApiError) -> Response {
    let t = texts(p.lang);
    let (status, text) = match e {
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, t["task_link_refused"]),
        ApiError::Conflict(_) => (StatusCode::GONE, t["task_link_refused"]),
        _ => (StatusCode::SERVICE_UNAVAILABLE, t["form_unavailable"]),
    };
    let mut r = render(
        p,
        "task.html",
        t["my_tasks"],
        "task",
        json!({ "req": { "title": t["my_tasks"], "status": "closed", "kind": "task", "message": "" },
                "refused": text, "outsider": true }),
    );
    *r.status_mut() = status;
    r
}

/// An outsider's answer: checked like a member's, then taken with the link (once).
pub async fn link_submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    info: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    Path(token): Path<String>,
    Query(q): Query<LinkQuery>,
    body: Bytes,
) -> Response {
    let lang = super::page_lang(&headers, q.lang.as_deref());
    let p = Page::anonymous(lang, false);
    if body.len() > MAX_ANSWER {
        return (StatusCode::PAYLOAD_TOO_LARGE, "the answer is too large").into_response();
    }
    let linked = match s.store.request_by_link(&token).await {
        Ok(l) => l,
        Err(e) => return refused_link(&p, &e.into()),
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (decision, comment) = (get("decision"), get("comment"));
    let answers: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "decision" && k != "comment")
        .cloned()
        .collect();
    let req = &linked.request;
    let (choice, values) = match checked(req, &decision, &comment, &answers, lang) {
        Ok(x) => x,
        Err(ApiError::InvalidAnswers(diags)) => {
            let errors = diags
                .into_iter()
                .map(|d| {
                    (
                        d.path,
                        FieldError {
                            en: d.message.clone(),
                            ja: d.message,
                        },
                    )
                })
                .collect();
            let mut v = request_view(&s, &p, req, true, true, &answers, &errors, &comment).await;
            v["action"] = json!(format!("/r/{token}"));
            v["has_errors"] = json!(true);
            let mut r = render(&p, "task.html", &req.title.clone(), "task", v);
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return r;
        }
        Err(e) => return refused_link(&p, &e),
    };
    let address = crate::auth::peer(info.map(|Extension(i)| i));
    match s
        .store
        .decide(
            &req.id,
            Decider::Link(token.clone()),
            choice,
            comment.trim(),
            values,
            &address,
        )
        .await
    {
        Ok(_) => {
            let mut v = request_view(&s, &p, req, false, true, &[], &Default::default(), "").await;
            v["done"] = json!(true);
            v["req"]["status"] = json!("decided");
            render(&p, "task.html", &req.title.clone(), "task", v)
        }
        Err(e) => refused_link(&p, &e.into()),
    }
}
