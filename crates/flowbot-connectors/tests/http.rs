//! The http connector against a real server on loopback.

use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::{Json, Router};
use flowbot_core::{ActionCall, ErrorClass};
use serde_json::{json, Map, Value};

async fn server() -> String {
    let app = Router::new()
        .route(
            "/echo",
            any(|method: axum::http::Method, headers: HeaderMap, Query(q): Query<Value>, body: String| async move {
                let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                (
                    [("set-cookie", "session=abc"), ("x-kind", "echo")],
                    Json(json!({"method": method.as_str(), "query": q, "content_type": ct, "body": body})),
                )
            }),
        )
        .route("/text", get(|| async { "plain words" }))
        .route(
            "/busy",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "7")], "later").into_response() }),
        )
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such thing") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn input(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

async fn call(action: &str, v: Value) -> Result<Value, flowbot_core::ActionError> {
    let apps = flowbot_connectors::registry();
    let http = apps.get("http").unwrap();
    let input = input(v);
    http.execute(ActionCall {
        action,
        input: &input,
        connection: None,
    })
    .await
}

#[tokio::test]
async fn get_sends_query_and_parses_json() {
    let base = server().await;
    let out = call(
        "get",
        json!({"url": format!("{base}/echo"), "query": {"q": "山田 太郎", "n": 2}}),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"]["method"], "GET");
    assert_eq!(out["body"]["query"], json!({"q": "山田 太郎", "n": "2"}));
    assert_eq!(out["headers"]["x-kind"], "echo");
    assert_eq!(
        out["headers"]["set-cookie"], "[redacted]",
        "credentials never reach run history"
    );
}

#[tokio::test]
async fn request_sends_json_or_form_bodies() {
    let base = server().await;
    let out = call(
        "request",
        json!({"method": "PUT", "url": format!("{base}/echo"), "body": {"name": "O'Brien"}}),
    )
    .await
    .unwrap();
    assert_eq!(out["body"]["method"], "PUT");
    assert_eq!(out["body"]["content_type"], "application/json");
    assert_eq!(out["body"]["body"], r#"{"name":"O'Brien"}"#);

    let out = call(
        "request",
        json!({"url": format!("{base}/echo"), "body_format": "form", "body": {"a": "x y", "b": 1}}),
    )
    .await
    .unwrap();
    assert_eq!(out["body"]["method"], "POST");
    assert_eq!(
        out["body"]["content_type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(out["body"]["body"], "a=x+y&b=1");
}

#[tokio::test]
async fn text_bodies_stay_text() {
    let base = server().await;
    let out = call("get", json!({"url": format!("{base}/text")}))
        .await
        .unwrap();
    assert_eq!(out["body"], "plain words");
}

#[tokio::test]
async fn server_errors_are_retryable_and_keep_retry_after() {
    let base = server().await;
    let e = call("get", json!({"url": format!("{base}/busy")}))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Retryable);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(e.code.as_deref(), Some("HTTP_503"));
    assert!(
        e.message.contains("503 Service Unavailable: later"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn client_errors_are_fatal_unless_told_otherwise() {
    let base = server().await;
    let e = call("get", json!({"url": format!("{base}/missing")}))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message.contains("404 Not Found: no such thing"),
        "{}",
        e.message
    );
    let out = call(
        "get",
        json!({"url": format!("{base}/missing"), "fail_on_status": false}),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], 404);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable() {
    let base = server().await;
    let e = call(
        "get",
        json!({"url": format!("{base}/slow"), "timeout": "100ms"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Retryable);
    assert!(e.message.contains("no answer in time"), "{}", e.message);
    let e = call("get", json!({"url": "http://127.0.0.1:9/"}))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Retryable);
}

#[tokio::test]
async fn bad_input_is_fatal_and_names_the_field() {
    for (input, needle) in [
        (
            json!({"url": "not a url"}),
            "input `url`: `not a url` is not a valid URL",
        ),
        (
            json!({"url": "ftp://example.com/x"}),
            "only http:// and https://",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "headers": {"bad header": "x"}}),
            "`bad header` is not a valid header name",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "timeout": "soon"}),
            "input `timeout`",
        ),
    ] {
        let e = call("get", input).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Fatal);
        assert!(e.message.contains(needle), "{} / {needle}", e.message);
    }
}
