//! An app file run against a real HTTP server on loopback: requests are built from the
//! file's templates and signed in as its auth says, answers are read by its output and
//! error rules.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use flowbot_connectors::file_app::{format, FileApp};
use flowbot_core::{ActionCall, Connection, Connector};
use serde_json::{json, Map, Value};

type Seen = Arc<Mutex<Vec<Value>>>;

async fn list(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(q): Query<Map<String, Value>>,
) -> impl IntoResponse {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    seen.lock()
        .unwrap()
        .push(json!({ "query": q, "auth": auth }));
    if key != "k1" && auth.is_empty() && q.get("key").is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": { "message": "bad key", "code": "AUTH" } })),
        )
            .into_response();
    }
    Json(json!({ "data": [{ "id": "c1", "email": "a@example.com" }] })).into_response()
}

async fn create(State(seen): State<Seen>, Json(body): Json<Value>) -> impl IntoResponse {
    seen.lock().unwrap().push(body.clone());
    match body["email"].as_str() {
        Some("busy@example.com") => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "slow down").into_response()
        }
        Some(e) if !e.contains('@') => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": { "message": "email is not an address", "code": "INVALID_EMAIL" } })),
        )
            .into_response(),
        _ => (StatusCode::CREATED, Json(json!({ "id": "c2", "name": body["name"] }))).into_response(),
    }
}

async fn one(axum::extract::Path(id): axum::extract::Path<String>) -> Json<Value> {
    Json(json!({ "id": id }))
}

async fn server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/contacts", get(list).post(create))
        .route("/contacts/{id}", get(one))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn acme(auth: &str) -> FileApp {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../flows/apps/acme.yaml"
    ))
    .unwrap();
    let source = source.replace(
        "actions:\n",
        "actions:\n  - id: get_contact\n    name: { en: Get, ja: 取得 }\n    idempotent: true\n    inputs: [{ name: id, label: { en: ID, ja: ID }, kind: text, required: true }]\n    request: { method: GET, path: \"/contacts/{{ input.id }}\" }\n",
    );
    let source = source.replace(
        "  auth:\n    kind: api_key\n    in: header\n    name: X-Api-Key\n    value: \"{{ connection.api_key }}\"\n",
        auth,
    );
    FileApp::new(format::parse(&source).unwrap(), reqwest::Client::new())
}

const HEADER_KEY: &str =
    "  auth:\n    kind: api_key\n    in: header\n    name: X-Api-Key\n    value: \"{{ connection.api_key }}\"\n";

fn connection(base: &str, key: &str) -> Connection {
    let mut settings = Map::new();
    settings.insert("api_key".into(), json!(key));
    settings.insert("base_url".into(), json!(base));
    Connection {
        name: "acme".into(),
        app: "acme".into(),
        settings,
    }
}

async fn run(
    app: &FileApp,
    action: &str,
    input: Value,
    conn: &Connection,
) -> Result<Value, flowbot_core::ActionError> {
    app.execute(ActionCall {
        action,
        input: input.as_object().unwrap(),
        connection: Some(conn),
    })
    .await
}

#[tokio::test]
async fn an_app_file_reads_lists_creates_and_maps_errors() {
    let (base, seen) = server().await;
    let app = acme(HEADER_KEY);
    let conn = connection(&base, "k1");
    // The output template shapes the obtained values; an optional input not given is left
    // out of the query.
    let out = run(&app, "list_contacts", json!({}), &conn).await.unwrap();
    assert_eq!(
        out,
        json!({ "contacts": [{ "id": "c1", "email": "a@example.com" }], "count": 1 })
    );
    let out = run(
        &app,
        "list_contacts",
        json!({ "email": "a@example.com" }),
        &conn,
    )
    .await
    .unwrap();
    assert_eq!(out["count"], 1);
    let queries: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s["query"].clone())
        .collect();
    assert_eq!(
        queries,
        vec![json!({}), json!({ "email": "a@example.com" })]
    );
    // A JSON body from templates, without the optional key that was not given.
    let out = run(
        &app,
        "create_contact",
        json!({ "name": "山田", "email": "y@example.com" }),
        &conn,
    )
    .await
    .unwrap();
    assert_eq!(out, json!({ "id": "c2", "name": "山田" }));
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        &json!({ "name": "山田", "email": "y@example.com" })
    );
    // The file's error rules: message and code from the body, fatal for a 400 …
    let e = run(
        &app,
        "create_contact",
        json!({ "name": "x", "email": "nope" }),
        &conn,
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert_eq!(e.code.as_deref(), Some("INVALID_EMAIL"));
    assert!(
        e.message.contains("email is not an address"),
        "{}",
        e.message
    );
    // … retryable for a 429, with the wait the server asked for.
    let e = run(
        &app,
        "create_contact",
        json!({ "name": "x", "email": "busy@example.com" }),
        &conn,
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));
    assert_eq!(e.code.as_deref(), Some("HTTP_429"));
    // A required input missing is refused before any request.
    let before = seen.lock().unwrap().len();
    let e = run(&app, "create_contact", json!({ "name": "x" }), &conn)
        .await
        .unwrap_err();
    assert!(
        e.message.contains("input `email` is required"),
        "{}",
        e.message
    );
    assert_eq!(seen.lock().unwrap().len(), before);
    // The connection's test runs the file's test action, signed in.
    app.test_connection(&conn).await.unwrap();
    let e = app
        .test_connection(&connection(&base, "wrong"))
        .await
        .unwrap_err();
    assert!(e.message.contains("401"), "{}", e.message);
    // Required connection fields are checked when a connection is saved.
    assert!(app
        .check_settings(&Map::new())
        .unwrap_err()
        .contains("api_key"));
}

#[tokio::test]
async fn every_auth_kind_signs_the_request_as_the_file_says() {
    let (base, seen) = server().await;
    let conn = connection(&base, "s3cret");
    let cases = [
        (
            "  auth: { kind: bearer, token: \"{{ connection.api_key }}\" }\n",
            json!({ "query": {}, "auth": "Bearer s3cret" }),
        ),
        (
            "  auth: { kind: basic, username: me, password: \"{{ connection.api_key }}\" }\n",
            // base64("me:s3cret")
            json!({ "query": {}, "auth": "Basic bWU6czNjcmV0" }),
        ),
        (
            "  auth: { kind: api_key, in: query, name: key, value: \"{{ connection.api_key }}\" }\n",
            json!({ "query": { "key": "s3cret" }, "auth": "" }),
        ),
    ];
    for (auth, expected) in cases {
        let app = acme(auth);
        run(&app, "list_contacts", json!({}), &conn).await.unwrap();
        assert_eq!(seen.lock().unwrap().last().unwrap(), &expected, "{auth}");
    }
}

#[tokio::test]
async fn values_put_into_a_path_stay_inside_their_segment() {
    let (base, _) = server().await;
    let app = acme(HEADER_KEY);
    let conn = connection(&base, "k1");
    // Encoded, the value reaches the route as one segment, slashes and all.
    let out = run(&app, "get_contact", json!({ "id": "a/../b?c=1 d" }), &conn)
        .await
        .unwrap();
    assert_eq!(out, json!({ "id": "a/../b?c=1 d" }));
}

#[tokio::test]
async fn the_built_in_app_files_are_valid_and_check_their_inputs() {
    let ids: Vec<&str> = flowbot_connectors::file_app::builtin()
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(ids, ["slack", "chatwork"]);
    let apps = flowbot_connectors::registry();
    let chatwork = apps.get("chatwork").unwrap();
    let conn = Connection {
        name: "cw".into(),
        app: "chatwork".into(),
        // Nothing listens here: the input is refused before any request.
        settings: json!({ "api_token": "t", "base_url": "http://127.0.0.1:9" })
            .as_object()
            .unwrap()
            .clone(),
    };
    let e = chatwork
        .execute(ActionCall {
            action: "send_message",
            input: json!({ "room_id": "42/../../admin", "body": "x" })
                .as_object()
                .unwrap(),
            connection: Some(&conn),
        })
        .await
        .unwrap_err();
    assert!(
        !e.is_retryable() && e.message.contains("input `room_id` must match"),
        "{}",
        e.message
    );
    // A Slack webhook URL is a credential: a failure shows its host, not its path.
    let slack = apps.get("slack").unwrap();
    let conn = Connection {
        name: "s".into(),
        app: "slack".into(),
        settings: json!({ "webhook_url": "http://127.0.0.1:9/services/T0/B0/SECRET" })
            .as_object()
            .unwrap()
            .clone(),
    };
    let e = slack
        .execute(ActionCall {
            action: "send_message",
            input: json!({ "text": "x" }).as_object().unwrap(),
            connection: Some(&conn),
        })
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        !e.message.contains("SECRET") && e.message.contains("127.0.0.1"),
        "{}",
        e.message
    );
}
