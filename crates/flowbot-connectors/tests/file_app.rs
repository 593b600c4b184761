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
    (
        [("set-cookie", "sid=s3cret-session")],
        Json(json!({ "data": [{ "id": "c1", "email": "a@example.com" }] })),
    )
        .into_response()
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
        "actions:\n  - id: headers_of\n    name: { en: Headers, ja: ヘッダー }\n    idempotent: true\n    request: { method: GET, path: /contacts }\n    output: \"{{ response.headers }}\"\n  - id: get_contact\n    name: { en: Get, ja: 取得 }\n    idempotent: true\n    inputs: [{ name: id, label: { en: ID, ja: ID }, kind: text, required: true }]\n    request: { method: GET, path: \"/contacts/{{ input.id }}\" }\n",
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
async fn credentials_an_app_answers_with_never_reach_the_obtained_values() {
    let (base, _) = server().await;
    let app = acme(HEADER_KEY);
    let out = run(&app, "headers_of", json!({}), &connection(&base, "k1"))
        .await
        .unwrap();
    assert!(
        out["content-type"].as_str().unwrap().contains("json"),
        "{out}"
    );
    assert!(!out.to_string().contains("s3cret-session"), "{out}");
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
    let mut ids: Vec<&str> = flowbot_connectors::file_app::builtin()
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    ids.sort();
    // Every file of apps/ is built in, under its own name.
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/apps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(ids, files);
    assert!(ids.contains(&"kintone") && ids.contains(&"http"));
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

/// A sign-in server: OAuth 2.0 token endpoint and a `token_exchange` login, and a
/// resource that accepts only the tokens it handed out (minus one it "revoked").
async fn sign_in_server() -> (String, Seen) {
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let app = Router::new()
        .route(
            "/oauth/token",
            post(move |axum::Form(f): axum::Form<Map<String, Value>>| async move {
                s1.lock().unwrap().push(json!({ "token_request": f.clone() }));
                let grant = f["grant_type"].as_str().unwrap_or("");
                let answer = match grant {
                    "client_credentials" if f["client_secret"] == "cs" => {
                        json!({ "access_token": "cc-1", "expires_in": 3600 })
                    }
                    "authorization_code" if f["code"] == "the-code" && f.contains_key("code_verifier") => {
                        json!({ "access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600 })
                    }
                    "refresh_token" if f["refresh_token"] == "rt-1" => {
                        json!({ "access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600 })
                    }
                    _ => {
                        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant" })))
                            .into_response()
                    }
                };
                Json(answer).into_response()
            }),
        )
        .route(
            "/login",
            post(move |Json(b): Json<Value>| async move {
                let n = {
                    let mut seen = s2.lock().unwrap();
                    seen.push(json!({ "login": b.clone() }));
                    seen.iter().filter(|x| x.get("login").is_some()).count()
                };
                if b["password"] != "pw" {
                    return (StatusCode::UNAUTHORIZED, Json(json!({ "message": "wrong password" })))
                        .into_response();
                }
                Json(json!({ "result": { "token": format!("tx-{n}") }, "ttl": 600 })).into_response()
            }),
        )
        .route(
            "/contacts",
            get(move |headers: HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .or_else(|| headers.get("x-token"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                s3.lock().unwrap().push(json!({ "used": auth.clone() }));
                // tx-1 is "revoked": the app must sign in again and retry.
                let good = ["Bearer cc-1", "Bearer at-2", "tx-2"];
                if good.contains(&auth.as_str()) {
                    Json(json!({ "data": [] })).into_response()
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn with_auth(auth: &str) -> FileApp {
    acme(auth)
}

fn settings(v: Value) -> Connection {
    Connection {
        name: "acme".into(),
        app: "acme".into(),
        settings: v.as_object().unwrap().clone(),
    }
}

fn count(seen: &Seen, key: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|x| x.get(key).is_some())
        .count()
}

#[tokio::test]
async fn oauth2_client_credentials_signs_in_once_and_reuses_the_token() {
    let (base, seen) = sign_in_server().await;
    let app = with_auth(
        "  auth:\n    kind: oauth2\n    grant: client_credentials\n    token_url: /oauth/token\n    client_id: cid\n    client_secret: \"{{ connection.api_key }}\"\n",
    );
    let conn = settings(json!({ "base_url": base, "api_key": "cs" }));
    run(&app, "list_contacts", json!({}), &conn).await.unwrap();
    run(&app, "list_contacts", json!({}), &conn).await.unwrap();
    assert_eq!(
        count(&seen, "token_request"),
        1,
        "{:?}",
        seen.lock().unwrap()
    );
    let wrong = settings(json!({ "base_url": base, "api_key": "nope" }));
    let e = run(&app, "list_contacts", json!({}), &wrong)
        .await
        .unwrap_err();
    assert!(
        !e.is_retryable() && e.message.contains("invalid_grant"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("nope"), "{}", e.message);
}

#[tokio::test]
async fn oauth2_authorization_code_connects_refreshes_and_keeps_the_rotated_token() {
    let (base, seen) = sign_in_server().await;
    let app = with_auth(
        "  auth:\n    kind: oauth2\n    grant: authorization_code\n    authorize_url: \"{{ connection.base_url }}/oauth/authorize\"\n    token_url: /oauth/token\n    scopes: [contacts.read, offline]\n    client_id: cid\n",
    );
    assert!(app.connects_with_oauth());
    let conn = settings(json!({ "base_url": base, "api_key": "-" }));
    let r = flowbot_core::OAuthRequest {
        redirect_uri: "http://flowbot.test/oauth/callback",
        state: "st",
        code_challenge: "ch",
        code_verifier: "ver",
    };
    let page = app.oauth_authorize_url(&conn, &r).unwrap();
    for part in [
        "/oauth/authorize?",
        "response_type=code",
        "client_id=cid",
        "state=st",
        "code_challenge=ch",
        "code_challenge_method=S256",
        "scope=contacts.read+offline",
    ] {
        assert!(page.contains(part), "{part}: {page}");
    }
    // Before connecting, a step says what to do.
    let e = run(&app, "list_contacts", json!({}), &conn)
        .await
        .unwrap_err();
    assert!(e.message.contains("not connected yet"), "{}", e.message);
    let got = app.oauth_exchange(&conn, &r, "the-code").await.unwrap();
    assert_eq!(
        got,
        json!({ "refresh_token": "rt-1" })
            .as_object()
            .unwrap()
            .clone()
    );
    // Connected: the refresh token gets an access token; the rotated one is handed back.
    let conn = settings(json!({ "base_url": base, "api_key": "-", "refresh_token": "rt-1" }));
    run(&app, "list_contacts", json!({}), &conn).await.unwrap();
    assert_eq!(
        app.take_settings_updates(),
        vec![(
            "acme".to_string(),
            "refresh_token".to_string(),
            json!("rt-2")
        )]
    );
    assert!(app.take_settings_updates().is_empty(), "handed back once");
    let _ = seen;
}

#[tokio::test]
async fn token_exchange_signs_in_again_when_the_token_is_refused() {
    let (base, seen) = sign_in_server().await;
    let app = with_auth(
        "  auth:\n    kind: token_exchange\n    request:\n      url: /login\n      body:\n        json: { user: me, password: \"{{ connection.api_key }}\" }\n    token:\n      access_token: \"{{ response.body.result.token }}\"\n      expires_in: \"{{ response.body.ttl }}\"\n    header: { name: X-Token, value: \"{{ token }}\" }\n",
    );
    let conn = settings(json!({ "base_url": base, "api_key": "pw" }));
    // tx-1 is refused: one new sign-in, and the call goes through with tx-2.
    run(&app, "list_contacts", json!({}), &conn).await.unwrap();
    run(&app, "list_contacts", json!({}), &conn).await.unwrap();
    assert_eq!(count(&seen, "login"), 2);
    let used: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|x| x.get("used").cloned())
        .collect();
    assert_eq!(used, vec![json!("tx-1"), json!("tx-2"), json!("tx-2")]);
    let wrong = settings(json!({ "base_url": base, "api_key": "bad" }));
    let e = run(&app, "list_contacts", json!({}), &wrong)
        .await
        .unwrap_err();
    assert!(
        e.message.contains("wrong password") && e.code.as_deref() == Some("SIGN_IN_REFUSED"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_connection_s_rate_limit_spaces_its_requests() {
    let (base, seen) = server().await;
    let app = acme(
        "  rate_limit: { requests: 2, per: 400ms }\n  auth: { kind: api_key, in: header, name: X-Api-Key, value: \"{{ connection.api_key }}\" }\n",
    );
    let conn = connection(&base, "k1");
    let started = std::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..5 {
        run(&app, "list_contacts", json!({}), &conn).await.unwrap();
        at.push(started.elapsed());
    }
    assert_eq!(seen.lock().unwrap().len(), 5);
    // No three requests within one window: the third waits for the first to leave it.
    // The times are taken when each call returns, so a slow answer to the first of three
    // (a busy machine) shortens the gap seen: allow 10 % of the window for that.
    for w in at.windows(3) {
        assert!(
            w[2] - w[0] >= std::time::Duration::from_millis(360),
            "{at:?}"
        );
    }
    assert!(
        at[4] >= std::time::Duration::from_millis(800),
        "five requests at two per 400 ms take two full windows: {at:?}"
    );
    let bad = "flowbot_app: 1\nid: x\nname: { en: X, ja: X }\nconnection:\n  rate_limit: { requests: 0, per: soon }\n";
    let problems = format::parse(bad).unwrap_err();
    assert!(
        problems[0].message.contains("at least 1 request"),
        "{problems:?}"
    );
}

#[test]
fn an_app_folder_s_icon_is_read_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("acme");
    std::fs::create_dir(&app).unwrap();
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../flows/apps/acme.yaml"
    ))
    .unwrap();
    std::fs::write(app.join("app.yaml"), &source).unwrap();
    std::fs::write(app.join("icon.png"), [0x89, b'P', b'N', b'G']).unwrap();
    let (apps, broken) = FileApp::load_dir(dir.path(), &reqwest::Client::new());
    assert!(broken.is_empty(), "{broken:?}");
    assert_eq!(
        apps[0].icon(),
        Some(("image/png", &[0x89, b'P', b'N', b'G'][..]))
    );
    std::fs::write(app.join("icon.png"), vec![0u8; 300 << 10]).unwrap();
    let (apps, broken) = FileApp::load_dir(dir.path(), &reqwest::Client::new());
    assert!(apps.is_empty());
    assert!(
        broken[0]
            .report()
            .contains("icon.png:1:1: the icon is larger than 256 KiB"),
        "{}",
        broken[0].report()
    );
}

/// The run's files, as the worker's store would give them.
struct Files(Vec<u8>);

#[async_trait::async_trait]
impl flowbot_core::files::FileSource for Files {
    async fn read(&self, _: &flowbot_core::files::FileRef) -> Result<Vec<u8>, String> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn a_form_s_file_goes_as_a_file_part_of_a_multipart_body() {
    let seen: Seen = Arc::default();
    let kept = seen.clone();
    let app = Router::new().route(
        "/upload",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(json!({
                    "type": headers["content-type"].to_str().unwrap(),
                    "body": String::from_utf8_lossy(&body),
                }));
                Json(json!({ "ok": true }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../flows/apps/acme.yaml"
    ))
    .unwrap();
    let source = source.replace(
        "actions:\n",
        "actions:\n  - id: upload\n    name: { en: Upload, ja: アップロード }\n    writes: true\n    inputs: [{ name: doc, label: { en: File, ja: ファイル }, kind: json }, { name: note, label: { en: Note, ja: メモ }, kind: text }]\n    request:\n      method: POST\n      path: /upload\n      body: { multipart: { note: \"{{ input.note }}\", doc: \"{{ input.doc }}\" } }\n",
    );
    let app = FileApp::new(format::parse(&source).unwrap(), reqwest::Client::new());
    let doc = json!({ "file_id": "f1", "name": "見積.pdf", "size": 7, "content_type": "application/pdf", "sha256": "" });
    let conn = connection(&url, "k1");
    let call = run(
        &app,
        "upload",
        json!({ "doc": doc, "note": "よろしく" }),
        &conn,
    );
    let files: Arc<dyn flowbot_core::files::FileSource> = Arc::new(Files(b"%PDF-1.".to_vec()));
    flowbot_core::files::with_files(files, call).await.unwrap();
    let got = seen.lock().unwrap()[0].clone();
    assert!(got["type"]
        .as_str()
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    let body = got["body"].as_str().unwrap();
    assert!(body.contains("name=\"note\"\r\n\r\nよろしく"), "{body}");
    assert!(body.contains("name=\"doc\"; filename=\""), "{body}");
    assert!(
        body.contains("Content-Type: application/pdf\r\n\r\n%PDF-1."),
        "{body}"
    );

    // Outside a run that keeps files, the step says why instead of sending an empty part.
    let e = run(&app, "upload", json!({ "doc": doc }), &conn)
        .await
        .unwrap_err();
    assert!(e.message.contains("flowbot serve"), "{}", e.message);
}
