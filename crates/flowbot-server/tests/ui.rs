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
    common::set_cookie(&r)
}

/// The server with its worker, admin password `pw`.
async fn with_worker(store: &Store) -> common::TestApp {
    common::spawn_app(
        store,
        flowbot_server::AppConfig {
            admin_password: Some("pw".into()),
            worker: Some(flowbot_engine::WorkerConfig {
                idle_poll: std::time::Duration::from_millis(50),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
}

/// A run of `flow` for this trigger, queued: its id.
async fn queue(store: &Store, flow: &str, trigger: serde_json::Value) -> String {
    let out = store
        .enqueue(NewEvent {
            files: Vec::new(),
            flow_version: None,
            flow_id: flow.into(),
            source: Source::Manual,
            headers: json!({}),
            body: trigger.clone(),
            trigger,
            concurrency_key: Ok(None),
            dedupe: None,
        })
        .await
        .unwrap();
    match out {
        flowbot_store::EnqueueOutcome::Queued { run_id, .. } => run_id,
        other => panic!("{other:?}"),
    }
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
    let run_id = queue(&store, "hostile", trigger).await;
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

/// The run history as an operator reads it: the flow's name, what each run was about, a
/// search over the trigger values; a run's steps by name, the lane as はい/いいえ, and outputs
/// as tables labelled in the page's language.
#[tokio::test]
async fn runs_read_by_name_title_and_labelled_values_and_can_be_searched() {
    use axum::routing::get as route_get;
    let api = axum::Router::new().route(
        "/orders",
        route_get(|| async { axum::Json(json!({ "total": 5500, "note": "x".repeat(300) })) }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, api).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    let flow = r#"version: 1
id: orders
name: 注文の確認
trigger: { app: manual }
run_title: "{{ trigger.email }} の注文"
steps:
  - id: fetch
    name: 注文を取得
    app: http
    action: get
    input: { url: "{{ trigger.base }}/orders" }
  - id: big
    name: 金額で分ける
    branch:
      if: { value: "{{ fetch.body.total }}", op: greater_than, to: 1000 }
      then:
        - id: mark
          name: 大口の印をつける
          set: { large: true }
"#;
    store
        .import_flow("orders", "注文の確認", flow, "t")
        .await
        .unwrap();
    store.set_enabled("orders", true, "t").await.unwrap();
    let mut ids = Vec::new();
    for email in ["hanako@example.jp", "taro@example.jp"] {
        ids.push(queue(&store, "orders", json!({ "email": email, "base": base })).await);
    }
    let app = with_worker(&store).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for id in &ids {
        while store.run(id).await.unwrap().status != flowbot_store::RunStatus::Succeeded {
            assert!(std::time::Instant::now() < deadline, "run {id} finished");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let url = app.url.clone();
    let cookie = session(&url).await;
    let (_, all) = get(&url, &cookie, "/runs", "ja").await;
    assert!(all.contains("注文の確認"), "the flow's name");
    assert!(all.contains("hanako@example.jp の注文") && all.contains("taro@example.jp の注文"));
    let (_, found) = get(&url, &cookie, "/runs?q=HANAKO", "ja").await;
    assert!(
        found.contains("hanako@example.jp の注文"),
        "found, whatever the case"
    );
    assert!(
        !found.contains("taro@example.jp の注文"),
        "only what matches"
    );
    let (status, api) = get(&url, &cookie, "/api/v1/runs?q=Hanako%40example", "ja").await;
    assert_eq!(status, 200);
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(
        api["runs"].as_array().unwrap().len(),
        1,
        "the API searches alike: {api}"
    );
    assert_eq!(api["runs"][0]["trigger"]["email"], "hanako@example.jp");
    let (_, none) = get(&url, &cookie, "/runs?q=100%25_off", "ja").await;
    assert!(
        none.contains("該当する実行はありません"),
        "% and _ match themselves"
    );

    let (_, ja) = get(&url, &cookie, &format!("/runs/{}", ids[0]), "ja").await;
    for want in [
        "注文を取得",
        "金額で分ける",
        "大口の印をつける",
        "はい",
        "ステータスコード",
        "レスポンスボディ",
        "HTTP · 取得する（GET）",
    ] {
        assert!(ja.contains(want), "the run page shows {want}");
    }
    assert!(!ja.contains("分岐先: <strong>then"), "no raw lane name");
    let (_, en) = get(&url, &cookie, &format!("/runs/{}", ids[0]), "en").await;
    assert!(
        en.contains("Status code") && en.contains("Yes"),
        "labels in English"
    );
    // Every page names its icon, which is served without a login.
    assert!(en.contains(r#"rel="icon" href="/static/favicon.svg""#));
    let icon = reqwest::get(format!("{url}/static/favicon.svg"))
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));
}

/// The home page: today's runs, a failure with its re-run button, the flows that are ON
/// and the connection an ON flow still lacks.
#[tokio::test]
async fn the_home_page_shows_today_failures_flows_on_and_missing_connections() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    let failing = r#"version: 1
id: failing
name: 在庫の確認
trigger: { app: manual }
run_title: "注文 {{ trigger.order }}"
retry: { max_attempts: 1 }
steps:
  - id: fetch
    name: 在庫を取得
    app: http
    action: get
    input: { url: "http://127.0.0.1:9/stock" }
"#;
    store
        .import_flow("failing", "在庫の確認", failing, "t")
        .await
        .unwrap();
    store.set_enabled("failing", true, "t").await.unwrap();
    store
        .import_flow(
            "shopify-sync",
            "Shopify 同期",
            flowbot_connectors::templates::template("shopify-customer-to-kintone")
                .unwrap()
                .yaml,
            "t",
        )
        .await
        .unwrap();
    store.set_enabled("shopify-sync", true, "t").await.unwrap();
    let run_id = queue(&store, "failing", json!({ "order": "#1001" })).await;
    let app = with_worker(&store).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.run(&run_id).await.unwrap().status != flowbot_store::RunStatus::Failed {
        assert!(std::time::Instant::now() < deadline, "the run failed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cookie = session(&app.url).await;
    let (status, home) = get(&app.url, &cookie, "/", "ja").await;
    assert_eq!(status, 200);
    assert!(home.contains("今日") && home.contains("対応が必要な失敗"));
    assert!(
        home.contains("在庫の確認") && home.contains("注文 #1001"),
        "the failure, by name and title"
    );
    assert!(
        home.contains(&format!(r#"data-path="/api/v1/runs/{run_id}/rerun""#)),
        "a one-click re-run"
    );
    assert!(
        home.contains(r#"<a href="/flows/shopify-sync">Shopify 同期</a>"#),
        "flows ON"
    );
    assert!(
        home.contains("連携が未設定") && home.contains("kintone"),
        "{home}"
    );
    let (_, en) = get(&app.url, &cookie, "/", "en").await;
    assert!(en.contains("Failures needing attention") && en.contains("Connections to fix"));
    let (status, _) = get(&app.url, "", "/", "en").await;
    assert_eq!(status, 303, "behind the login");
    // The failed step says in plain words what happened, the original after it.
    let (_, run) = get(&app.url, &cookie, &format!("/runs/{run_id}"), "ja").await;
    assert!(
        run.contains("アプリが一時的に応答できない状態でした"),
        "{run}"
    );
    assert!(
        run.contains("could not connect"),
        "the original message once"
    );
}
