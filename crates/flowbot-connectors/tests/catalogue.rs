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
