//! Catalogue apps that keep state, run against the stateful catalogue simulator: kintone's
//! polling trigger sees each added or updated record once, and each app signs in the way
//! its connection says (kintone: API token or password; HubSpot: private token or OAuth).

use flowbot_connectors::registry;
use flowbot_core::{ActionCall, Connection, Connector, PollCall};
use flowbot_sandbox::catalogue::{self, AppSource, CatalogueConfig};
use serde_json::{json, Map, Value};

async fn sim() -> flowbot_sandbox::Running<catalogue::CatalogueSim> {
    let sources: Vec<AppSource> = flowbot_connectors::file_app::builtin()
        .iter()
        .zip(flowbot_connectors::file_app::builtin_sources())
        .map(|(a, (_, yaml))| AppSource {
            id: a.id.clone(),
            yaml: yaml.to_string(),
        })
        .collect();
    catalogue::start(&sources, CatalogueConfig { stateful: true }, 0)
        .await
        .unwrap()
}

fn conn(app: &str, settings: Value) -> Connection {
    Connection {
        name: app.into(),
        app: app.into(),
        settings: settings.as_object().unwrap().clone(),
    }
}

async fn run(app: &dyn Connector, action: &str, input: Value, c: &Connection) -> Value {
    app.execute(ActionCall {
        action,
        input: input.as_object().unwrap(),
        connection: Some(c),
    })
    .await
    .unwrap_or_else(|e| panic!("{action}: {}", e.message))
}

#[tokio::test]
async fn the_kintone_trigger_sees_each_added_or_updated_record_once() {
    let sim = sim().await;
    let apps = registry();
    let kintone = apps.get("kintone").unwrap();
    let c = conn(
        "kintone",
        json!({ "domain_url": sim.sim.rewrite("kintone", "https://example.cybozu.com"), "api_token": "t" }),
    );
    let options: Map<String, Value> = json!({ "app": "7", "updated_field": "更新日時" })
        .as_object()
        .unwrap()
        .clone();
    let poll = |cursor: Option<String>| {
        let (k, c, options) = (kintone.clone(), c.clone(), options.clone());
        async move {
            k.poll(PollCall {
                trigger: "record_changed",
                options: &options,
                connection: Some(&c),
                cursor: cursor.as_deref(),
            })
            .await
            .unwrap()
        }
    };
    for name in ["山田", "佐藤"] {
        run(
            &**kintone,
            "add_record",
            json!({ "app": "7", "fields": { "氏名": name } }),
            &c,
        )
        .await;
    }
    // Another app's record is not this trigger's.
    run(
        &**kintone,
        "add_record",
        json!({ "app": "8", "fields": { "氏名": "x" } }),
        &c,
    )
    .await;
    let first = poll(None).await;
    let names: Vec<&Value> = first.items.iter().map(|i| &i["氏名"]).collect();
    assert_eq!(names, [&json!("山田"), &json!("佐藤")]);
    let again = poll(first.cursor.clone()).await;
    assert!(again.items.is_empty(), "nothing new: {:?}", again.items);
    let id = first.items[0]["$id"].as_str().unwrap().to_string();
    run(
        &**kintone,
        "update_record",
        json!({ "app": "7", "id": id, "fields": { "氏名": "山田 太郎" } }),
        &c,
    )
    .await;
    let changed = poll(again.cursor.clone().or(first.cursor.clone())).await;
    assert_eq!(changed.items.len(), 1, "{:?}", changed.items);
    assert_eq!(changed.items[0]["氏名"], "山田 太郎");
    assert_eq!(changed.items[0]["$revision"], "2");
    // The requests carried the API token, and no password header.
    let seen = sim.sim.requests();
    assert!(seen
        .iter()
        .all(|r| r.headers.get("x-cybozu-api-token").map(String::as_str) == Some("t")));
    assert!(seen
        .iter()
        .all(|r| !r.headers.contains_key("x-cybozu-authorization")));
}

#[tokio::test]
async fn kintone_signs_in_with_a_password_when_no_token_is_given() {
    let sim = sim().await;
    let apps = registry();
    let kintone = apps.get("kintone").unwrap();
    let c = conn(
        "kintone",
        json!({ "domain_url": sim.sim.rewrite("kintone", "https://example.cybozu.com"), "login_name": "taro", "password": "p@ss" }),
    );
    run(&**kintone, "search_records", json!({ "app": "7" }), &c).await;
    let seen = sim.sim.requests();
    // base64("taro:p@ss")
    assert_eq!(
        seen[0]
            .headers
            .get("x-cybozu-authorization")
            .map(String::as_str),
        Some("dGFybzpwQHNz")
    );
    assert!(!seen[0].headers.contains_key("x-cybozu-api-token"));
}

#[tokio::test]
async fn hubspot_uses_the_private_token_when_given_and_oauth_otherwise() {
    let sim = sim().await;
    let apps = registry();
    let hubspot = apps.get("hubspot").unwrap();
    let base = sim.sim.rewrite("hubspot", "https://api.hubapi.com");
    let private = conn(
        "hubspot",
        json!({ "base_url": base, "private_app_token": "pat-1" }),
    );
    let made = run(
        &**hubspot,
        "upsert_contact",
        json!({ "email": "hanako@example.jp", "lastname": "佐藤" }),
        &private,
    )
    .await;
    assert_eq!(made["created"], true);
    let again = run(
        &**hubspot,
        "upsert_contact",
        json!({ "email": "hanako@example.jp", "firstname": "花子" }),
        &private,
    )
    .await;
    assert_eq!(again["created"], false);
    assert_eq!(again["id"], made["id"]);
    let found = run(
        &**hubspot,
        "search_contacts",
        json!({ "value": "hanako@example.jp" }),
        &private,
    )
    .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["contacts"][0]["properties"]["firstname"], "花子");
    let seen = sim.sim.requests();
    assert!(seen
        .iter()
        .all(|r| r.headers["authorization"] == "Bearer pat-1"));
    assert!(
        seen.iter().all(|r| !r.path.ends_with("/token")),
        "no token was asked for"
    );

    sim.sim.clear_requests();
    let oauth = conn(
        "hubspot",
        json!({ "base_url": base, "client_id": "id", "client_secret": "s", "refresh_token": "r1" }),
    );
    run(
        &**hubspot,
        "get_contact",
        json!({ "contact_id": made["id"] }),
        &oauth,
    )
    .await;
    let seen = sim.sim.requests();
    assert_eq!(seen[0].path, "/oauth/v1/token", "a token first");
    assert_eq!(
        seen[1].headers["authorization"],
        "Bearer sandbox-access-token"
    );
}

/// Each signed app's webhook examples, signed by the sandbox as the vendor documents (not
/// by the connectors' own code), pass the app file's check; signed with another secret,
/// they do not.
#[tokio::test]
async fn the_vendors_signatures_pass_the_app_files_checks() {
    use flowbot_sandbox::catalogue::webhooks;
    let apps = registry();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut checked = 0;
    for id in ["shopify", "stripe", "line"] {
        let file = flowbot_connectors::file_app::builtin()
            .iter()
            .find(|a| a.id == id)
            .unwrap();
        let app = apps.get(id).unwrap();
        let c = conn(id, Value::Object(file.connection.example.clone()));
        let secret = ["webhook_secret", "channel_secret"]
            .iter()
            .find_map(|k| file.connection.example.get(*k))
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        for t in file.triggers.iter().filter(|t| t.webhook.is_some()) {
            for ex in t.examples.iter().filter(|e| e.starts_run) {
                let sign = |secret: &str| match id {
                    "shopify" => {
                        let topic = ex.headers["X-Shopify-Topic"].as_str().unwrap_or("");
                        webhooks::shopify(secret, topic, &ex.body)
                    }
                    "stripe" => webhooks::stripe(secret, &ex.body, now),
                    _ => webhooks::line(secret, &ex.body),
                };
                for (secret, ok) in [(secret.as_str(), true), ("another-secret", false)] {
                    let d = sign(secret);
                    let mut headers: Map<String, Value> = ex
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_lowercase(), v.clone()))
                        .collect();
                    for (k, v) in d.headers {
                        headers.insert(k, Value::String(v));
                    }
                    let events = [t.id.clone()];
                    let call = flowbot_core::WebhookCall {
                        events: &events,
                        options: &Map::new(),
                        headers: &headers,
                        query: &Map::new(),
                        body: &ex.body,
                        raw: &d.body,
                        connection: Some(&c),
                    };
                    let verdict = app.verify_webhook(&call, now);
                    assert_eq!(verdict.is_ok(), ok, "{id}.{}: {verdict:?}", t.id);
                    if ok {
                        assert!(app.webhook_event(call).unwrap().is_some(), "{id}.{}", t.id);
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{checked} examples");
}

/// Credentials stay with the app: a next page or a redirect on another origin is not
/// followed, so the connection's headers never reach it.
#[tokio::test]
async fn a_next_page_or_redirect_to_another_host_never_gets_the_credentials() {
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    let stolen: Arc<Mutex<Vec<String>>> = Arc::default();
    let thief = {
        let stolen = stolen.clone();
        axum::Router::new().route(
            "/{*rest}",
            get(move |headers: axum::http::HeaderMap| {
                let stolen = stolen.clone();
                async move {
                    let key = headers.get("x-secret").and_then(|v| v.to_str().ok());
                    stolen.lock().unwrap().push(key.unwrap_or("").to_string());
                    axum::Json(json!({ "items": [], "next": null }))
                }
            }),
        )
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Another origin: localhost, not 127.0.0.1.
    let other = format!("http://localhost:{}", l.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(l, thief).await.unwrap() });
    let app = {
        let (other, other2) = (other.clone(), other.clone());
        axum::Router::new()
            .route(
                "/items",
                get(move || {
                    let other = other.clone();
                    async move {
                        axum::Json(json!({ "items": [1], "next": format!("{other}/items?page=2") }))
                    }
                }),
            )
            .route(
                "/moved",
                get(move || {
                    let other = other2.clone();
                    async move { axum::response::Redirect::temporary(&format!("{other}/moved")) }
                }),
            )
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let yaml = r#"flowbot_app: 1
id: leaky
name: { en: Leaky, ja: Leaky }
connection:
  fields:
    - { name: base_url, label: { en: URL, ja: URL }, kind: text }
    - { name: secret, label: { en: Secret, ja: シークレット }, kind: text, secret: true }
  base_url: "{{ connection.base_url }}"
  headers: { X-Secret: "{{ connection.secret }}" }
actions:
  - id: list
    name: { en: List, ja: 一覧 }
    request: { method: GET, path: /items }
    paginate: { kind: cursor, items: "{{ response.body['items'] }}", param: page, next: "{{ response.body.next }}" }
  - id: moved
    name: { en: Moved, ja: 移動 }
    request: { method: GET, path: /moved }
"#;
    let file = flowbot_connectors::file_app::format::parse(yaml).unwrap();
    let app = flowbot_connectors::file_app::FileApp::new(file, flowbot_connectors::http_client());
    let c = conn("leaky", json!({ "base_url": base, "secret": "s3cret" }));
    for action in ["list", "moved"] {
        let e = app
            .execute(ActionCall {
                action,
                input: &Map::new(),
                connection: Some(&c),
            })
            .await
            .expect_err(action);
        assert!(
            e.message.contains("not followed") || e.message.contains("307"),
            "{action}: {}",
            e.message
        );
    }
    assert!(
        stolen.lock().unwrap().is_empty(),
        "{:?}",
        stolen.lock().unwrap()
    );
}
