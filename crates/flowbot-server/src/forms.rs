//! The form trigger's page: `GET /forms/{flow_id}/{token}` draws the flow's form
//! (server-rendered, no script needed, in the visitor's language), `POST` checks the
//! answer on the server — each error next to its field, nothing stored for an invalid
//! answer — and stores a valid one with its run in one transaction before the thank-you
//! page (the webhooks' promise: once thanked, never lost). The token is the flow's webhook
//! token (renewed from the flow's page). Answers are counted per address, bounded in size,
//! and a hidden honeypot field turns bots away without telling them.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use std::sync::Arc;

use flowbot_core::form::{self, FieldError, FormKind, FormSpec};
use flowbot_core::runner::{concurrency_key, dedupe_key};
use flowbot_core::Flow;
use flowbot_store::{EnqueueOutcome, NewEvent, Source};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{auth, AppState};

/// The largest answer taken (the fields' own limits are smaller).
pub const MAX_ANSWER: usize = 256 * 1024;
/// The hidden field only bots fill in.
const HONEYPOT: &str = "website";
/// The hidden field naming one filling-in of the form: sent again (a retry after a lost
/// answer, a double click), it is stored once.
const SUBMISSION: &str = "_submission";
/// How long a submission id is remembered.
const SUBMISSION_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What the page needs of the flow: the flow and its form, once the token is right.
async fn form_of(
    s: &AppState,
    flow_id: &str,
    token: &str,
) -> Result<(flowbot_store::FlowInfo, Arc<Flow>, FormSpec), Response> {
    let not_found = || (StatusCode::NOT_FOUND, "no such form").into_response();
    let info = match s.store.flow_for_webhook(flow_id).await {
        Ok(i) => i,
        Err(_) => return Err(not_found()),
    };
    if !crate::same(token, &info.webhook_token) {
        return Err(not_found());
    }
    let flow = s
        .flows
        .get(&s.store, &s.apps, &info.id, info.current_version)
        .await
        .map_err(|_| not_found())?;
    if flow.trigger.app != "form" {
        return Err(not_found());
    }
    let spec = form::parse(&flow.trigger.options).map_err(|_| not_found())?;
    Ok((info, flow, spec))
}

#[derive(Deserialize, Default)]
pub(crate) struct FormQuery {
    lang: Option<String>,
    /// The answer was stored: show the thank-you message.
    sent: Option<String>,
}

/// Members-only forms need a signed-in member: `Err` when there is none, else the member
/// who answers (None for a public form, which reads no session).
async fn member_ok(
    s: &AppState,
    headers: &HeaderMap,
    spec: &FormSpec,
) -> Result<Option<String>, ()> {
    if !spec.members_only {
        return Ok(None);
    }
    let session = match auth::cookie(headers, auth::SESSION_COOKIE) {
        Some(t) => s.store.session(&auth::token_hash(t)).await.ok().flatten(),
        None => None,
    };
    match session {
        Some(sess) => Ok(Some(sess.user.username)),
        None => Err(()),
    }
}

pub(crate) async fn page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((flow_id, token)): Path<(String, String)>,
    Query(q): Query<FormQuery>,
) -> Response {
    let (info, _, spec) = match form_of(&s, &flow_id, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if member_ok(&s, &headers, &spec).await.is_err() {
        return Redirect::to("/login").into_response();
    }
    let lang = crate::ui::page_lang(&headers, q.lang.as_deref());
    let state = if q.sent.is_some() { "sent" } else { "open" };
    let mut form = view(&spec, lang, &[], &Default::default());
    form["submission"] = json!(auth::random_token());
    crate::ui::form_page(lang, &form, &info, &token, state, StatusCode::OK)
}

/// The submission id a page gave its form (hex, as `auth::random_token` makes them).
fn submission_of(answers: &[(String, String)]) -> Option<String> {
    answers
        .iter()
        .find(|(k, _)| k == SUBMISSION)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The form as the page draws it: fields with their labels, help, kind, choices, the value
/// to show (the answer sent back, else the default) and the error for it.
pub(crate) fn view(
    spec: &FormSpec,
    lang: &str,
    answers: &[(String, String)],
    errors: &std::collections::BTreeMap<String, FieldError>,
) -> Value {
    let fields: Vec<Value> = spec
        .fields
        .iter()
        .map(|f| {
            let given: Vec<&str> = answers
                .iter()
                .filter(|(k, _)| *k == f.key)
                .map(|(_, v)| v.as_str())
                .collect();
            let value = if answers.is_empty() {
                f.default.clone().unwrap_or_default()
            } else {
                given.first().map(|v| v.to_string()).unwrap_or_default()
            };
            let error = errors.get(&f.key).map(|e| {
                if lang == "en" {
                    e.en.clone()
                } else {
                    e.ja.clone()
                }
            });
            let input = match f.kind {
                FormKind::Text => "text",
                FormKind::Number => "number",
                FormKind::Date => "date",
                FormKind::DateTime => "datetime-local",
                FormKind::Email => "email",
                FormKind::Phone => "tel",
                _ => "",
            };
            json!({
                "key": f.key, "label": f.label.get(lang), "help": f.help.get(lang),
                "kind": f.kind.name(), "input": input, "required": f.required,
                "choices": f.choices, "value": value, "chosen": given, "error": error,
                "max_length": f.max_length, "min": f.min, "max": f.max,
                "checked": given.iter().any(|v| matches!(*v, "on" | "true" | "1" | "yes"))
                    || (answers.is_empty() && f.default.as_deref() == Some("true")),
            })
        })
        .collect();
    json!({
        "title": spec.title.get(lang), "description": spec.description.get(lang),
        "thanks": spec.thanks.get(lang), "fields": fields, "honeypot": HONEYPOT,
        "has_errors": !errors.is_empty(),
    })
}

pub(crate) async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    info: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    Path((flow_id, token)): Path<(String, String)>,
    Query(q): Query<FormQuery>,
    body: Bytes,
) -> Response {
    let (flow_info, flow, spec) = match form_of(&s, &flow_id, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(member) = member_ok(&s, &headers, &spec).await else {
        return Redirect::to("/login").into_response();
    };
    let lang = crate::ui::page_lang(&headers, q.lang.as_deref());
    if body.len() > MAX_ANSWER {
        return (StatusCode::PAYLOAD_TOO_LARGE, "the answer is too large").into_response();
    }
    let address = auth::peer(info.map(|Extension(i)| i));
    // Counted per address and per form from that address, like sign-ins.
    if let Err(wait) = s
        .form_limiter
        .attempt(&address, &format!("{flow_id}|{address}"))
    {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many answers from this address; try again later",
        )
            .into_response();
        if let Ok(v) = wait.as_secs().max(1).to_string().parse() {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return r;
    }
    let answers: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let sent = format!("/forms/{flow_id}/{token}?sent=1");
    // A bot filled the field people never see: thanked, and nothing is stored.
    if answers
        .iter()
        .any(|(k, v)| k == HONEYPOT && !v.trim().is_empty())
    {
        return Redirect::to(&sent).into_response();
    }
    let submission = submission_of(&answers);
    let values = match form::check(&spec, &answers) {
        Ok(v) => v,
        Err(errors) => {
            let mut form = view(&spec, lang, &answers, &errors);
            form["submission"] = json!(submission.clone().unwrap_or_else(auth::random_token));
            return crate::ui::form_page(
                lang,
                &form,
                &flow_info,
                &token,
                "open",
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let trigger = Value::Object(values.clone());
    let event = NewEvent {
        flow_id: flow_info.id.clone(),
        flow_version: Some(flow_info.current_version),
        source: Source::Form,
        // Who answered a members-only form: `to: { starter: true }` asks them.
        headers: match &member {
            Some(name) => json!({ flowbot_store::STARTER_HEADER: name }),
            None => json!({}),
        },
        body: Value::Object(
            answers
                .iter()
                .filter(|(k, _)| k != HONEYPOT && k != SUBMISSION)
                .fold(Map::new(), |mut m, (k, v)| {
                    m.insert(k.clone(), Value::String(v.clone()));
                    m
                }),
        ),
        concurrency_key: concurrency_key(&flow, &trigger),
        // The same filling-in sent twice is stored once (the flow's own `dedupe` otherwise).
        dedupe: match &submission {
            Some(id) => Some((format!("form:{id}"), SUBMISSION_WINDOW)),
            None => dedupe_key(&flow, &trigger),
        },
        trigger,
    };
    match s.store.enqueue(event).await {
        Ok(EnqueueOutcome::Ignored { .. }) => crate::ui::form_page(
            lang,
            &view(&spec, lang, &[], &Default::default()),
            &flow_info,
            &token,
            "closed",
            StatusCode::CONFLICT,
        ),
        // Stored: the answer is safe now, whatever happens to its run.
        Ok(_) => Redirect::to(&sent).into_response(),
        Err(e) => {
            tracing::error!(error = %e, flow_id = %flow_id, "a form answer could not be stored");
            let mut r = crate::ui::form_page(
                lang,
                &view(&spec, lang, &answers, &Default::default()),
                &flow_info,
                &token,
                "unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            r
        }
    }
}
