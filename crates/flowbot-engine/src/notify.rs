//! Failure notifications: when a run fails for good (not retryable, or out of attempts),
//! each configured channel — email, Slack or Chatwork, through their connectors — is told
//! the flow, the failed step and the error, with a link to the run page. flowbot retries
//! first and notifies only on final failure.

use flowbot_core::{ActionCall, Apps};
use flowbot_store::notify::PUBLIC_URL;
use flowbot_store::{RequestInfo, RunInfo, Store};
use serde_json::{json, Map, Value};

/// The apps a failure notification can go through.
pub const CHANNEL_APPS: &[&str] = &["email", "slack", "chatwork"];

/// What a channel of `app` needs besides its connection: an address for email, a room
/// for Chatwork.
pub fn check_channel(ch: &flowbot_store::notify::Channel) -> Result<(), String> {
    let ok = match ch.app.as_str() {
        "email" => ch.to.as_deref().is_some_and(|t| t.contains('@')),
        "chatwork" => ch.room_id.as_deref().is_some_and(|r| !r.is_empty()),
        "slack" => true,
        other => {
            return Err(format!(
                "notifications go by {}, not {other}",
                CHANNEL_APPS.join(", ")
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err("email needs `to`, chatwork needs `room_id`".into())
    }
}

/// The message, in both languages the product speaks.
pub fn message(flow_name: &str, run: &RunInfo, link: &str) -> (String, String) {
    let step = run
        .error_step
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("-");
    let error = run.error.as_deref().unwrap_or("");
    let subject =
        format!("[flowbot] 「{flow_name}」の実行が失敗しました / run of \"{flow_name}\" failed");
    let body = format!(
        "フロー / flow: {flow_name}\nステップ / step: {step}\nエラー / error: {error}\n実行 / run: {link}\n\n\
         flowbot は自動で再試行したうえで失敗と判断しました。原因を直して「再実行」してください。\n\
         flowbot retried first; this is the final failure. Fix the cause and re-run it."
    );
    (subject, body)
}

/// The public URL links in notifications start with.
async fn public_url(store: &Store) -> String {
    store
        .setting(PUBLIC_URL)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "http://127.0.0.1:8080".into())
        .trim_end_matches('/')
        .to_string()
}

async fn channels(store: &Store) -> Vec<flowbot_store::notify::Channel> {
    match store.notifications().await {
        Ok(c) => c.channels,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the notification settings");
            Vec::new()
        }
    }
}

/// Send one message through a channel's app. `to`: the address for email (else the
/// channel's own). Delivery problems are logged, never raised.
async fn deliver(
    store: &Store,
    apps: &Apps,
    ch: &flowbot_store::notify::Channel,
    to: Option<&str>,
    subject: &str,
    body: &str,
    what: &str,
) {
    let (action, input) = match ch.app.as_str() {
        "email" => (
            "send_email",
            json!({ "to": to.map(str::to_string).or_else(|| ch.to.clone()).unwrap_or_default(),
                    "subject": subject, "body": body }),
        ),
        "slack" => (
            "send_message",
            json!({ "text": format!("{subject}\n{body}") }),
        ),
        "chatwork" => (
            "send_message",
            json!({ "room_id": ch.room_id.clone().unwrap_or_default(), "body": format!("[info][title]{subject}[/title]{body}[/info]") }),
        ),
        other => {
            tracing::warn!(app = other, "notifications cannot go through this app");
            return;
        }
    };
    let (Some(app), Ok(conn)) = (apps.get(&ch.app), store.connection(&ch.connection_id).await)
    else {
        tracing::warn!(app = %ch.app, connection = %ch.connection_id, "a notification channel is not usable");
        return;
    };
    let input: Map<String, Value> = match input {
        Value::Object(m) => m,
        _ => unreachable!("the inputs above are objects"),
    };
    let sent = app
        .execute(ActionCall {
            action,
            input: &input,
            connection: Some(&conn),
        })
        .await;
    match sent {
        Ok(_) => tracing::info!(channel = %ch.app, what, "notification sent"),
        Err(e) => {
            tracing::warn!(channel = %ch.app, what, error = %e.message, "notification not sent")
        }
    }
}

/// Tell every channel about a run that failed for good. Delivery problems are logged, not
/// raised: a notification must not change the run's outcome.
pub async fn notify_failure(store: &Store, apps: &Apps, run: &RunInfo) {
    let channels = channels(store).await;
    if channels.is_empty() {
        return;
    }
    let flow_name = store
        .flow(&run.flow_id)
        .await
        .map(|f| f.name)
        .unwrap_or_else(|_| run.flow_id.clone());
    let link = format!("{}/runs/{}", public_url(store).await, run.id);
    let (subject, body) = message(&flow_name, run, &link);
    for ch in &channels {
        deliver(store, apps, ch, None, &subject, &body, "run failed").await;
    }
}

/// How long an outsider's link lasts without a deadline.
const LINK_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// Tell the people a request asks: members by email (a link to the request in My Tasks),
/// outsiders by email (a single-use link valid until the deadline, or 7 days), and the
/// Slack and Chatwork channels (the request's page). Members see it in My Tasks whatever
/// is configured.
pub async fn notify_request(store: &Store, apps: &Apps, req: &RequestInfo) {
    let channels = channels(store).await;
    if channels.is_empty() {
        return;
    }
    let base = public_url(store).await;
    let flow_name = store
        .flow(&req.flow_id)
        .await
        .map(|f| f.name)
        .unwrap_or_else(|_| req.flow_id.clone());
    let what = if req.kind == "task" {
        "対応のお願い / task"
    } else {
        "承認のお願い / approval"
    };
    let subject = format!("[flowbot] {what}: {} ({flow_name})", req.title);
    let body = |link: &str| format!("{}\n\n{link}", req.message);
    let page = format!("{base}/tasks/{}", req.id);
    for ch in &channels {
        if ch.app != "email" {
            deliver(store, apps, ch, None, &subject, &body(&page), "request").await;
            continue;
        }
        for p in req.people.iter() {
            if let Some(name) = &p.member {
                match store.member_contact(name).await {
                    Ok(Some((email, _))) if email.contains('@') => {
                        deliver(
                            store,
                            apps,
                            ch,
                            Some(&email),
                            &subject,
                            &body(&page),
                            "request",
                        )
                        .await
                    }
                    _ => {
                        tracing::info!(member = %name, "a member asked has no email address; they see it in My Tasks")
                    }
                }
            } else if let Some(email) = &p.email {
                let now = store.clock().now().as_millisecond();
                // The link lasts until the deadline: past it, nobody can decide this request.
                let ttl = req
                    .deadline_at
                    .map_or(LINK_TTL_MS, |d| (d - now).max(1_000));
                match store.request_link(&req.id, email, ttl).await {
                    Ok(token) => {
                        let link = format!("{base}/r/{token}");
                        deliver(
                            store,
                            apps,
                            ch,
                            Some(email),
                            &subject,
                            &body(&link),
                            "request",
                        )
                        .await
                    }
                    Err(e) => tracing::warn!(error = %e, "an outsider's link could not be made"),
                }
            }
        }
    }
}
