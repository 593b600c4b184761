//! The form trigger's page: `GET /forms/{flow_id}/{token}` draws the flow's form
//! (server-rendered, no script needed, in the visitor's language), `POST` checks the
//! answer on the server — each error next to its field, nothing stored for an invalid
//! answer — and stores a valid one with its run in one transaction before the thank-you
//! page (the webhooks' promise: once thanked, never lost). The token is the flow's webhook
//! token (renewed from the flow's page). Answers are counted per address, bounded in size,
//! and a hidden honeypot field turns bots away without telling them.

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
/// Answers with files taken in at the same time (each holds at most the form's files on
/// disk while it is checked).
pub const UPLOADS_AT_ONCE: usize = 8;
/// The longest file name kept.
const MAX_FILE_NAME: usize = 200;

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
                "max_mb": format!("{:.1}", f.max_size as f64 / (1024.0 * 1024.0)),
                "accept_list": f.accept.join(", "),
                "accept_attr": f.accept.iter().map(|a| {
                    let a = a.trim();
                    if a.contains('/') || a.starts_with('.') { a.to_string() } else { format!(".{a}") }
                }).collect::<Vec<_>>().join(","),
                "checked": given.iter().any(|v| matches!(*v, "on" | "true" | "1" | "yes"))
                    || (answers.is_empty() && f.default.as_deref() == Some("true")),
            })
        })
        .collect();
    json!({
        "title": spec.title.get(lang), "description": spec.description.get(lang),
        "thanks": spec.thanks.get(lang), "fields": fields, "honeypot": HONEYPOT,
        "has_errors": !errors.is_empty(), "has_files": spec.has_files(),
    })
}

pub(crate) async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    info: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    Path((flow_id, token)): Path<(String, String)>,
    Query(q): Query<FormQuery>,
    body: axum::body::Body,
) -> Response {
    let (flow_info, flow, spec) = match form_of(&s, &flow_id, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(member) = member_ok(&s, &headers, &spec).await else {
        return Redirect::to("/login").into_response();
    };
    let lang = crate::ui::page_lang(&headers, q.lang.as_deref());
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
    let is_multipart = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    // Files are spooled to disk while the answer is read, and dropped with `spool` unless
    // the answer is stored.
    let _permit;
    let mut spool = Spool::default();
    let mut answers: Vec<(String, String)> = if is_multipart && spec.has_files() {
        _permit = match s.uploads.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "many answers with files are arriving; send yours again in a moment",
                )
                    .into_response();
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("5"),
                );
                return r;
            }
        };
        match read_multipart(&s, &spec, &headers, body, &mut spool).await {
            Ok(a) => a,
            Err(r) => return r,
        }
    } else {
        match axum::body::to_bytes(body, MAX_ANSWER).await {
            Ok(b) => form_urlencoded::parse(&b).into_owned().collect(),
            Err(_) => {
                return (StatusCode::PAYLOAD_TOO_LARGE, "the answer is too large").into_response()
            }
        }
    };
    for f in &spool.files {
        if !f.too_large {
            answers.push((
                f.key.clone(),
                serde_json::to_string(&f.reference()).unwrap_or_default(),
            ));
        }
    }
    let sent = format!("/forms/{flow_id}/{token}?sent=1");
    // A bot filled the field people never see: thanked, and nothing is stored.
    if answers
        .iter()
        .any(|(k, v)| k == HONEYPOT && !v.trim().is_empty())
    {
        return Redirect::to(&sent).into_response();
    }
    let submission = submission_of(&answers);
    let mut checked = form::check(&spec, &answers);
    // A file cut off at its field's limit is refused next to its field.
    for f in spool.files.iter().filter(|f| f.too_large) {
        if let Some(field) = spec.fields.iter().find(|x| x.key == f.key) {
            let mut errors = checked.err().unwrap_or_default();
            errors.insert(f.key.clone(), field.too_large());
            checked = Err(errors);
        }
    }
    let mut values = match checked {
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
    // The files go into the store (pending) before the answer that attaches them.
    let mut file_ids = Vec::new();
    for f in &spool.files {
        let Some(field) = spec.fields.iter().find(|x| x.key == f.key) else {
            continue;
        };
        let saved = async {
            let mut file = tokio::fs::File::open(&f.path)
                .await
                .map_err(|e| e.to_string())?;
            s.store
                .save_file(
                    &f.id,
                    &flow_info.id,
                    &f.name,
                    &f.content_type,
                    &mut file,
                    field.max_size,
                )
                .await
                .map_err(|e| e.to_string())
        };
        match saved.await {
            Ok(r) => {
                values.insert(
                    f.key.clone(),
                    serde_json::to_value(&r).unwrap_or(Value::Null),
                );
                file_ids.push(r.file_id);
            }
            Err(e) => {
                tracing::error!(error = %e, flow_id = %flow_id, "a form's file could not be stored");
                return unavailable(lang, &spec, &answers, &flow_info, &token);
            }
        }
    }
    let trigger = Value::Object(values.clone());
    let event = NewEvent {
        files: file_ids,
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
                .filter(|(k, _)| !spool.files.iter().any(|f| &f.key == k))
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
            unavailable(lang, &spec, &answers, &flow_info, &token)
        }
    }
}

/// The answer could not be stored now: the form again, as it was filled in, asking to send
/// it again in a moment.
fn unavailable(
    lang: &'static str,
    spec: &FormSpec,
    answers: &[(String, String)],
    flow_info: &flowbot_store::FlowInfo,
    token: &str,
) -> Response {
    let mut r = crate::ui::form_page(
        lang,
        &view(spec, lang, answers, &Default::default()),
        flow_info,
        token,
        "unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    r
}

/// A file of an answer being read, spooled to the data directory.
struct Spooled {
    key: String,
    id: String,
    name: String,
    content_type: String,
    path: std::path::PathBuf,
    size: u64,
    /// Cut off at the field's limit.
    too_large: bool,
}

impl Spooled {
    /// The reference the checker reads (the checksum is the store's to make).
    fn reference(&self) -> form::FileRef {
        form::FileRef {
            file_id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            sha256: String::new(),
        }
    }
}

/// The spooled files of one answer; deleted from the disk when the answer is done with.
#[derive(Default)]
struct Spool {
    files: Vec<Spooled>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(&f.path);
        }
    }
}

/// A name a browser sent for a file, as kept: the last path segment, without control
/// characters, at most 200 characters.
fn file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    clean.trim().chars().take(MAX_FILE_NAME).collect()
}

/// Read a `multipart/form-data` answer: text fields (at most 256 KiB together) as pairs,
/// files streamed to disk, each cut off at its field's limit, the whole body bounded by the
/// form's files and text.
async fn read_multipart(
    s: &AppState,
    spec: &FormSpec,
    headers: &HeaderMap,
    body: axum::body::Body,
    spool: &mut Spool,
) -> Result<Vec<(String, String)>, Response> {
    use tokio::io::AsyncWriteExt;
    let bad = |why: &str| (StatusCode::BAD_REQUEST, why.to_string()).into_response();
    let too_large = || (StatusCode::PAYLOAD_TOO_LARGE, "the answer is too large").into_response();
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(ct).map_err(|_| bad("the form's boundary is missing"))?;
    let files_limit: u64 = spec
        .fields
        .iter()
        .filter(|f| f.kind == FormKind::File)
        .map(|f| f.max_size + 64 * 1024)
        .sum();
    let whole = files_limit + MAX_ANSWER as u64;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole));
    let mut mp =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let dir = s.store.data_dir().join("uploads");
    tokio::fs::create_dir_all(&dir).await.map_err(|_| {
        (StatusCode::SERVICE_UNAVAILABLE, "files cannot be taken now").into_response()
    })?;
    let mut pairs = Vec::new();
    let mut text = 0usize;
    let read_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large()
        }
        _ => bad("the answer could not be read"),
    };
    while let Some(mut part) = mp.next_field().await.map_err(read_error)? {
        let key = part.name().unwrap_or("").to_string();
        let file_field = spec
            .fields
            .iter()
            .find(|f| f.key == key && f.kind == FormKind::File);
        let Some(field) = file_field else {
            let mut value = Vec::new();
            while let Some(chunk) = part.chunk().await.map_err(read_error)? {
                text += chunk.len();
                if text > MAX_ANSWER {
                    return Err(too_large());
                }
                value.extend_from_slice(&chunk);
            }
            pairs.push((key, String::from_utf8_lossy(&value).into_owned()));
            continue;
        };
        let name = file_name(part.file_name().unwrap_or(""));
        if name.is_empty() || spool.files.iter().any(|f| f.key == key) {
            // No file chosen (an empty part), or a second one for the field: not kept.
            while part.chunk().await.map_err(read_error)?.is_some() {}
            continue;
        }
        let content_type = part
            .content_type()
            .map(|m| m.essence_str().to_string())
            .unwrap_or_else(|| "application/octet-stream".into());
        let id = crate::auth::random_token()[..32].to_string();
        let path = dir.join(&id);
        let mut out = tokio::fs::File::create(&path).await.map_err(|_| {
            (StatusCode::SERVICE_UNAVAILABLE, "files cannot be taken now").into_response()
        })?;
        let mut spooled = Spooled {
            key: key.clone(),
            id,
            name,
            content_type,
            path,
            size: 0,
            too_large: false,
        };
        while let Some(chunk) = part.chunk().await.map_err(read_error)? {
            spooled.size += chunk.len() as u64;
            if spooled.size > field.max_size {
                spooled.too_large = true;
                continue;
            }
            out.write_all(&chunk).await.map_err(|_| {
                (StatusCode::SERVICE_UNAVAILABLE, "files cannot be taken now").into_response()
            })?;
        }
        out.flush().await.ok();
        spool.files.push(spooled);
    }
    Ok(pairs)
}
