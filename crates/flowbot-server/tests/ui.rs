//! The web UI's pages over HTTP: behind the login, in both languages, escaping what users
//! and webhooks wrote.

mod common;

use flowbot_store::{NewEvent, Source, Store, StoreConfig};
use serde_json::json;

const HOSTILE: &str = r#"version: 1
id: hostile
name: "<script>alert('名前')</script>"
trigger: { app: webhook }
steps:
  - id: a
    set: { x: "{{ trigger.body.x }}" }
"#;

async fn app() -> (String, Store, (common::TestApp, tempfile::TempDir)) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    store
        .import_flow("hostile", "<script>alert('名前')</script>", HOSTILE, "t")
        .await
        .unwrap();
    let app = common::spawn_server(&store, "pw").await;
    (app.url.clone(), store, (app, dir))
}

async fn session(url: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/login"))
        .json(&json!({"username": "admin", "password": "pw"}))
        .send()
        .await
        .unwrap();
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

async fn get(url: &str, cookie: &str, path: &str, lang: &str) -> (u16, String) {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{url}{path}"))
        .header("cookie", cookie)
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn pages_need_a_login() {
    let (url, _s, _d) = app().await;
    for path in [
        "/flows",
        "/flows/hostile",
        "/templates",
        "/runs",
        "/connections",
    ] {
        let (status, _) = get(&url, "", path, "en").await;
        assert_eq!(status, 303, "{path} redirects to the login page");
    }
    let (status, body) = get(&url, "", "/login", "ja").await;
    assert_eq!(status, 200);
    assert!(body.contains("ログイン"));
}

#[tokio::test]
async fn every_page_renders_in_both_languages_and_escapes_user_data() {
    let (url, store, _d) = app().await;
    let trigger = json!({ "body": { "x": "<img src=x onerror=alert(1)>" } });
    let out = store
        .enqueue(NewEvent {
            flow_version: None,
            flow_id: "hostile".into(),
            source: Source::Manual,
            headers: json!({}),
            body: trigger.clone(),
            trigger,
            concurrency_key: Ok(None),
            dedupe: None,
        })
        .await
        .unwrap();
    let run_id = match out {
        flowbot_store::EnqueueOutcome::Queued { run_id, .. } => run_id,
        other => panic!("{other:?}"),
    };
    let cookie = session(&url).await;
    for (lang, word) in [("ja", "実行履歴"), ("en", "Run history")] {
        for path in [
            "/flows".to_string(),
            "/flows/hostile".into(),
            "/templates".into(),
            "/runs".into(),
            format!("/runs/{run_id}"),
            "/connections".into(),
            "/settings".into(),
        ] {
            let (status, body) = get(&url, &cookie, &path, lang).await;
            assert_eq!(status, 200, "{path} ({lang})");
            assert!(body.contains(word), "{path} is in {lang}");
            assert!(
                !body.contains("<script>alert"),
                "{path}: the flow name is escaped"
            );
            assert!(
                !body.contains("<img src=x"),
                "{path}: webhook data is escaped"
            );
        }
    }
    let (_, flows) = get(&url, &cookie, "/flows", "en").await;
    assert!(flows.contains("&lt;script&gt;alert("), "{flows}");
    let (_, run) = get(&url, &cookie, &format!("/runs/{run_id}"), "en").await;
    assert!(run.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let (_, templates) = get(&url, &cookie, "/templates", "ja").await;
    assert!(templates.contains("/api/v1/templates/ecforce-customer-to-salesforce/import"));
    // The language can be switched and is remembered.
    let r = reqwest::Client::new()
        .get(format!("{url}/flows?lang=ja"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("flowbot_lang=ja"));
}
