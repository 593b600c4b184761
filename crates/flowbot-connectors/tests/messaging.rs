//! Slack, Chatwork and email against loopback servers: Slack- and Chatwork-shaped HTTP
//! endpoints started here, and the sandbox's SMTP sink.

use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use flowbot_core::{ActionCall, ActionError, Connection};
use serde_json::{json, Map, Value};

type Seen = Arc<Mutex<Vec<Value>>>;

async fn chat_server(fail_first: bool) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let (s1, s2) = (seen.clone(), seen.clone());
    let failed = Arc::new(Mutex::new(!fail_first));
    let app = Router::new()
        .route(
            "/services/T0/B0/XYZ",
            post(move |Json(body): Json<Value>| async move {
                s1.lock().unwrap().push(body);
                "ok"
            }),
        )
        .route(
            "/v2/rooms/{room}/messages",
            post(
                move |Path(room): Path<String>,
                      headers: HeaderMap,
                      Form(f): Form<Map<String, Value>>| async move {
                    if headers.get("x-chatworktoken").and_then(|v| v.to_str().ok())
                        != Some("cw-token")
                    {
                        return (
                            StatusCode::UNAUTHORIZED,
                            Json(json!({"errors": ["Invalid API token"]})),
                        );
                    }
                    let mut done = failed.lock().unwrap();
                    if !*done {
                        *done = true;
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            Json(json!({"errors": ["Rate limit exceeded"]})),
                        );
                    }
                    s2.lock()
                        .unwrap()
                        .push(json!({"room": room, "body": f["body"]}));
                    (StatusCode::OK, Json(json!({"message_id": "1234"})))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn conn(app: &str, settings: Value) -> Connection {
    Connection {
        name: app.into(),
        app: app.into(),
        settings: match settings {
            Value::Object(m) => m,
            _ => unreachable!(),
        },
    }
}

async fn run(app: &str, action: &str, c: &Connection, input: Value) -> Result<Value, ActionError> {
    let apps = flowbot_connectors::registry();
    let input = match input {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    apps.get(app)
        .unwrap()
        .execute(ActionCall {
            action,
            input: &input,
            connection: Some(c),
        })
        .await
}

#[tokio::test]
async fn slack_posts_text_to_the_incoming_webhook() {
    let (base, seen) = chat_server(false).await;
    let c = conn(
        "slack",
        json!({"webhook_url": format!("{base}/services/T0/B0/XYZ")}),
    );
    let out = run(
        "slack",
        "send_message",
        &c,
        json!({"text": "失敗: 顧客同期 <https://x|run>"}),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({"ok": true}));
    assert_eq!(
        seen.lock().unwrap()[0],
        json!({"text": "失敗: 顧客同期 <https://x|run>"})
    );
    let bad = conn(
        "slack",
        json!({"webhook_url": format!("{base}/services/nope")}),
    );
    let e = run("slack", "send_message", &bad, json!({"text": "x"}))
        .await
        .unwrap_err();
    assert!(
        !e.is_retryable() && e.message.contains("404"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn chatwork_sends_with_its_token_header_and_retries_a_rate_limit() {
    let (base, seen) = chat_server(true).await;
    let c = conn(
        "chatwork",
        json!({"api_token": "cw-token", "base_url": base}),
    );
    let e = run(
        "chatwork",
        "send_message",
        &c,
        json!({"room_id": "42", "body": "こんにちは"}),
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "429 is retried: {}", e.message);
    let out = run(
        "chatwork",
        "send_message",
        &c,
        json!({"room_id": 42, "body": "こんにちは"}),
    )
    .await
    .unwrap();
    assert_eq!(out["message_id"], "1234");
    assert_eq!(
        seen.lock().unwrap()[0],
        json!({"room": "42", "body": "こんにちは"})
    );
    let wrong = conn("chatwork", json!({"api_token": "nope", "base_url": base}));
    let e = run(
        "chatwork",
        "send_message",
        &wrong,
        json!({"room_id": "42", "body": "x"}),
    )
    .await
    .unwrap_err();
    assert!(
        !e.is_retryable() && e.message.contains("Invalid API token"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn email_reaches_an_smtp_server() {
    let sink = flowbot_sandbox::smtp::start().await.unwrap();
    let c = conn(
        "email",
        json!({"host": "127.0.0.1", "port": sink.port, "security": "plain", "from": "flowbot <flowbot@example.com>"}),
    );
    let out = run("email", "send_email", &c, json!({"to": "ops@example.com, owner@example.com", "subject": "実行が失敗しました", "body": "run 42 failed"}))
        .await
        .unwrap();
    assert_eq!(
        out["sent_to"],
        json!(["ops@example.com", "owner@example.com"])
    );
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].from, "flowbot@example.com");
    assert_eq!(mails[0].to, ["ops@example.com", "owner@example.com"]);
    assert!(mails[0].data.contains("run 42 failed"), "{}", mails[0].data);
    let e = run(
        "email",
        "send_email",
        &c,
        json!({"to": "not an address", "subject": "s", "body": "b"}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("input `to`"), "{}", e.message);
}
