//! Failure notifications: when a run fails for good (not retryable, or out of attempts),
//! each configured channel — email, Slack or Chatwork, through their connectors — is told
//! the flow, the failed step and the error, with a link to the run page. flowbot retries
//! first and notifies only on final failure.

use flowbot_core::{ActionCall, Apps};
use flowbot_store::notify::PUBLIC_URL;
use flowbot_store::{RunInfo, Store};
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

/// Tell every channel about a run that failed for good. Delivery problems are logged, not
/// raised: a notification must not change the run's outcome.
pub async fn notify_failure(store: &Store, apps: &Apps, run: &RunInfo) {
    let cfg = match store.notifications().await {
        Ok(c) if !c.channels.is_empty() => c,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the notification settings");
            return;
        }
    };
    let base = store
        .setting(PUBLIC_URL)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let flow_name = store
        .flow(&run.flow_id)
        .await
        .map(|f| f.name)
        .unwrap_or_else(|_| run.flow_id.clone());
    let link = format!("{}/runs/{}", base.trim_end_matches('/'), run.id);
    let (subject, body) = message(&flow_name, run, &link);
    for ch in cfg.channels {
        let (action, input) = match ch.app.as_str() {
            "email" => (
                "send_email",
                json!({ "to": ch.to.clone().unwrap_or_default(), "subject": subject, "body": body }),
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
                continue;
            }
        };
        let (Some(app), Ok(conn)) = (apps.get(&ch.app), store.connection(&ch.connection_id).await)
        else {
            tracing::warn!(app = %ch.app, connection = %ch.connection_id, "a notification channel is not usable");
            continue;
        };
        let input: Map<String, Value> = match input {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let sent = app
            .execute(ActionCall {
                action,
                input: &input,
                connection: Some(&conn),
            })
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(run_id = %run.id, channel = %ch.app, "failure notification sent")
            }
            Err(e) => {
                tracing::warn!(run_id = %run.id, channel = %ch.app, error = %e.message, "failure notification not sent")
            }
        }
    }
}
