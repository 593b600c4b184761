//! `POST /hooks/{flow_id}/{token}`: store the event and enqueue its run in one transaction,
//! then answer. Any JSON value (object, array, null) is accepted, a leading UTF-8 BOM is
//! tolerated, form bodies are read as fields; malformed JSON is recorded for inspection and
//! answered 400; a wrong token is 404 with nothing stored.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use flowbot_core::runner::{concurrency_key, dedupe_key};
use flowbot_core::WebhookCall;
use flowbot_store::{EnqueueOutcome, NewEvent, Source, StoreError};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::AppState;

/// The query string: any parameters, given to the flow as `trigger.query`.
pub(crate) type WebhookQuery = std::collections::BTreeMap<String, String>;
/// A form body: its fields become the event's body.
pub(crate) type FormFields = std::collections::BTreeMap<String, String>;

/// A refusal, in the API's error envelope, tagged with its code for the metrics.
fn refuse(e: ApiError) -> Response {
    let code = e.code();
    tagged(e.into_response(), code)
}

/// The store could not take the event: the sender must try again (503 with Retry-After).
fn unavailable(e: &StoreError) -> Response {
    refuse(ApiError::Unavailable(format!(
        "a webhook could not be stored: {e}"
    )))
}

pub(crate) async fn webhook(
    State(s): State<AppState>,
    path: Path<(String, String)>,
    query: Query<Map<String, Value>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = receive(&s, path, query, headers, body).await;
    let reason = response
        .extensions()
        .get::<Reason>()
        .map_or("unknown", |r| r.0);
    s.store
        .telemetry()
        .webhook(response.status().is_success(), reason);
    response
}

fn no_such_webhook() -> Response {
    refuse(ApiError::NotFound("no such webhook".into()))
}

/// The flow and its token are checked before a byte of the body is read, so a stranger
/// cannot make the server read (up to 16 times the limit) for a webhook that is not there.
async fn receive(
    s: &AppState,
    Path((flow_id, token)): Path<(String, String)>,
    Query(query): Query<Map<String, Value>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let info = match s.store.flow_for_webhook(&flow_id).await {
        Ok(f) => f,
        Err(StoreError::FlowNotFound(_)) => return no_such_webhook(),
        Err(e) => return unavailable(&e),
    };
    if !crate::same(&info.webhook_token, &token) {
        return no_such_webhook();
    }
    let body = match read_body(&headers, body, s.config.max_body).await {
        Ok(body) => body,
        Err(r) => return r,
    };
    take(s, info, query, headers, body).await
}

/// Bodies this many times the limit are not even read to the end: the connection is cut.
const DRAIN_FACTOR: usize = 16;

/// The body, up to `limit` bytes. A larger one is read to its end (up to `DRAIN_FACTOR`
/// times the limit) and answered 413, so the sender sees why instead of a broken upload.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    use futures_util::StreamExt;
    let too_large = || {
        refuse(ApiError::TooLarge(format!(
            "the body is larger than {limit} bytes"
        )))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let drain = limit.saturating_mul(DRAIN_FACTOR);
    if declared.is_some_and(|n| n > drain) {
        return Err(too_large());
    }
    let mut kept: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            refuse(ApiError::IncompleteBody(format!(
                "the body could not be read to its end: {e}"
            )))
        })?;
        seen += chunk.len();
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else if seen > drain {
            return Err(too_large());
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

/// Why a webhook got its answer, for the metrics.
#[derive(Clone, Copy)]
struct Reason(&'static str);

fn tagged(mut r: Response, reason: &'static str) -> Response {
    r.extensions_mut().insert(Reason(reason));
    r
}

/// Headers as they are stored and shown: credentials (a documented list, and any header
/// whose name says token, secret, signature, password, auth or key) become `[redacted]`,
/// so their presence is kept but never their value.
fn stored_headers(raw: &Map<String, Value>) -> Map<String, Value> {
    raw.iter()
        .map(|(k, v)| {
            let v = if flowbot_core::manifest::is_credential_header(k) {
                Value::String(flowbot_core::manifest::REDACTED.to_string())
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

async fn take(
    s: &AppState,
    info: flowbot_store::FlowInfo,
    query: Map<String, Value>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let flow_id = info.id.clone();
    // The trigger's app sees every header (it may verify a signature with one); what is
    // stored, shown or captured has the credentials redacted.
    let mut raw_hdrs = Map::new();
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            raw_hdrs.insert(
                name.as_str().to_ascii_lowercase(),
                Value::String(v.to_string()),
            );
        }
    }
    let hdrs = stored_headers(&raw_hdrs);
    let raw = body
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&body);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return refuse(ApiError::EmptyBody);
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let raw = body
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&body);
    let parsed: Result<Value, String> = if is_form {
        serde_urlencoded_map(raw)
    } else {
        serde_json::from_slice(raw).map_err(|e| format!("the body is not valid JSON: {e}"))
    };
    let body = match parsed {
        Ok(b) => b,
        Err(reason) => {
            let kept = Value::String(
                String::from_utf8_lossy(raw)
                    .chars()
                    .take(64 * 1024)
                    .collect(),
            );
            return match s
                .store
                .record_rejected_event(&flow_id, Value::Object(hdrs), kept, &reason)
                .await
            {
                Ok(_) => refuse(ApiError::MalformedBody(reason)),
                Err(e) => unavailable(&e),
            };
        }
    };
    let flow = match s
        .flows
        .get(&s.store, &s.apps, &info.id, info.current_version)
        .await
    {
        Ok(f) => f,
        Err(e) => {
            return refuse(ApiError::Internal(format!(
                "flow `{}`: the stored version cannot be used: {e}",
                info.id
            )));
        }
    };
    // The trigger's connection, only for apps that need it to read a webhook (a secret to
    // check the signature with).
    let app = s.apps.get(&flow.trigger.app);
    let connection = match (app, &flow.trigger.connection) {
        (Some(a), Some(slot)) if a.webhook_needs_connection(&flow.trigger.events) => {
            match s.store.flow_connections(&flow_id).await {
                Ok(mut bound) => bound.remove(slot),
                Err(e) => return unavailable(&e),
            }
        }
        _ => None,
    };
    let call = WebhookCall {
        events: &flow.trigger.events,
        options: &flow.trigger.options,
        headers: &raw_hdrs,
        query: &query,
        body: &body,
        raw,
        connection: connection.as_ref(),
    };
    // A forged or replayed request is refused before anything about it is believed; it is
    // recorded (without a run) so the inbox shows the attempt.
    if let Some(app) = app {
        let now = s.store.clock().now().as_second();
        if let Err(why) = app.verify_webhook(&call, now) {
            return match s
                .store
                .record_rejected_event(&flow_id, Value::Object(hdrs), body, &why)
                .await
            {
                Ok(_) => refuse(ApiError::BadSignature(why)),
                Err(e) => unavailable(&e),
            };
        }
    }
    // The trigger's app reads the request; a request it cannot read still becomes a run,
    // failed with the app's explanation, so it shows in the run history.
    let read = match app {
        Some(app) => app.webhook_event(call).map(|t| {
            t.map(|mut t| {
                if let Some(Value::Object(h)) = t.get_mut("headers") {
                    *h = stored_headers(h);
                }
                t
            })
        }),
        None => Err(format!("app `{}` is not installed", flow.trigger.app)),
    };
    // A "test trigger" waiting for this flow (on any server) sees what the request gives
    // the flow. The flow row says whether anyone waits, so other webhooks pay nothing.
    if info.capture_until > s.store.clock().now().as_millisecond() {
        let sample = match &read {
            Ok(Some(t)) => t.clone(),
            Ok(None) => {
                json!({ "ignored": "the event is not one this flow's trigger listens to", "body": body })
            }
            Err(reason) => json!({ "error": reason, "body": body, "headers": hdrs }),
        };
        if let Err(e) = s.store.capture_fill(&flow_id, &sample).await {
            tracing::warn!(flow_id = %flow_id, error = %e, "a test-trigger capture could not be stored");
        }
    }
    let (trigger, key, dedupe) = match read {
        Ok(Some(trigger)) => {
            let key = concurrency_key(&flow, &trigger);
            let dedupe = dedupe_key(&flow, &trigger);
            (trigger, key, dedupe)
        }
        Ok(None) => {
            let note = "the event is not one this flow's trigger listens to";
            return match s
                .store
                .record_ignored_event(&flow_id, Value::Object(hdrs), body, note)
                .await
            {
                Ok(event_id) => tagged(
                    (StatusCode::OK, Json(EnqueueOutcome::Ignored { event_id })).into_response(),
                    "ignored",
                ),
                Err(e) => unavailable(&e),
            };
        }
        Err(reason) => (
            json!({ "body": body, "headers": hdrs, "query": query }),
            Err(reason),
            None,
        ),
    };
    let event = NewEvent {
        files: Vec::new(),
        flow_id: flow_id.clone(),
        flow_version: Some(info.current_version),
        source: Source::Webhook,
        headers: Value::Object(hdrs),
        body,
        trigger,
        concurrency_key: key,
        dedupe,
    };
    match s.store.enqueue(event).await {
        Ok(outcome) => {
            let (status, reason) = match outcome {
                EnqueueOutcome::Queued { .. } => (StatusCode::ACCEPTED, "queued"),
                EnqueueOutcome::Failed { .. } => (StatusCode::ACCEPTED, "unreadable"),
                EnqueueOutcome::Ignored { .. } => (StatusCode::OK, "ignored"),
                EnqueueOutcome::Duplicate { .. } => (StatusCode::OK, "duplicate"),
            };
            tagged((status, Json(outcome)).into_response(), reason)
        }
        Err(StoreError::FlowNotFound(_)) => no_such_webhook(),
        Err(e) => unavailable(&e),
    }
}

/// `a=1&b=x` as a JSON object of text values (a repeated name keeps its last value).
fn serde_urlencoded_map(raw: &[u8]) -> Result<Value, String> {
    if std::str::from_utf8(raw).is_err() {
        return Err("the form body is not UTF-8".into());
    }
    let out: Map<String, Value> = form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Ok(Value::Object(out))
}
