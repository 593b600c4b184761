//! The web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs): log in, import the customer-sync template from the gallery, connect
//! it to the simulators, turn it ON, watch a run arrive with its obtained values, make
//! Salesforce fail, see the failed run, and re-run it. Screenshots of every page go to
//! `target/screenshots/` for review.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use flowbot_sandbox::ecforce::{self, EcforceConfig, Webhook};
use flowbot_sandbox::faults::{FaultConfig, InjectedError};
use flowbot_sandbox::salesforce::{self, SalesforceConfig};
use flowbot_server::{AppState, ServerConfig};
use flowbot_store::{RunFilter, RunStatus, Store, StoreConfig, Worker, WorkerConfig};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn chromium(dir: &std::path::Path) -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver; .ci/run does)");
    let driver = Driver(child);
    let mut caps = Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--lang=ja", "--window-size=1280,900",
                     format!("--user-data-dir={}", dir.display())],
            "prefs": { "intl.accept_languages": "ja" },
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => {
                assert!(Instant::now() < deadline, "chromedriver did not start: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn at(c: &Client, path: &str) {
    let c2 = c.clone();
    let want = path.to_string();
    until(&format!("the page {path}"), move || {
        let (c, want) = (c2.clone(), want.clone());
        async move {
            c.current_url()
                .await
                .map(|u| u.path() == want)
                .unwrap_or(false)
        }
    })
    .await;
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

async fn runs(store: &Store, status: RunStatus) -> Vec<flowbot_store::RunInfo> {
    store
        .runs(&RunFilter {
            status: Some(status),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_imports_connects_enables_watches_and_reruns_in_the_browser() {
    let ec = ecforce::start(
        EcforceConfig {
            webhook_backoff: Duration::from_millis(50),
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    let sf = salesforce::start(SalesforceConfig::default(), 0)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig {
        database_url: None,
        data_dir: dir.path().join("data"),
        secret_key: None,
    })
    .await
    .unwrap();
    flowbot_server::auth::ensure_admin(&store, Some("pw-for-the-browser"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    store
        .set_setting(flowbot_store::notify::PUBLIC_URL, &json!(url), "t")
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let apps = flowbot_connectors::registry();
    tokio::spawn(flowbot_server::serve(
        listener,
        AppState::new(store.clone(), apps.clone(), ServerConfig::default()),
        stop.clone(),
    ));
    let cfg = WorkerConfig {
        idle_poll: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    tokio::spawn(Worker::new(store.clone(), apps, cfg).run(stop.clone()));
    let (_driver, c) = chromium(&dir.path().join("chromium")).await;

    // Log in.
    c.goto(&format!("{url}/flows")).await.unwrap();
    at(&c, "/login").await;
    shot(&c, "01-login").await;
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("pw-for-the-browser")
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    at(&c, "/flows").await;
    shot(&c, "02-flows-empty").await;

    // Import the template from the gallery.
    c.goto(&format!("{url}/templates")).await.unwrap();
    shot(&c, "03-templates").await;
    c.find(Locator::Css(
        r#"button[data-path="/api/v1/templates/ecforce-customer-to-salesforce/import"]"#,
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    at(&c, "/flows/ecforce-customer-to-salesforce").await;

    // Connect it to the simulators (マイアプリ連携).
    let sfc = sf.sim.config().clone();
    for (app, fields) in [
        (
            "ecforce",
            vec![
                ("name", "ショップ".to_string()),
                ("settings.base_url", ec.url.clone()),
                (
                    "settings.access_token",
                    ec.sim.config().access_token.clone(),
                ),
            ],
        ),
        (
            "salesforce",
            vec![
                ("name", "本番組織".to_string()),
                ("settings.my_domain_url", sf.url.clone()),
                ("settings.client_id", sfc.client_id.clone()),
                ("settings.client_secret", sfc.client_secret.clone()),
            ],
        ),
    ] {
        c.goto(&format!("{url}/connections")).await.unwrap();
        let form = format!(r#"form[data-api="/api/v1/connections"]:has(input[value="{app}"])"#);
        c.find(Locator::XPath(&format!(
            "//details[.//input[@name='app' and @value='{app}']]/summary"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        for (name, value) in fields {
            let input = c
                .find(Locator::Css(&format!(r#"{form} input[name="{name}"]"#)))
                .await
                .unwrap();
            input.clear().await.unwrap();
            input.send_keys(&value).await.unwrap();
        }
        c.find(Locator::Css(&format!("{form} button[type=submit]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let s = store.clone();
        until("the connection to be saved", move || {
            let s = s.clone();
            async move { s.connections().await.unwrap().iter().any(|x| x.app == app) }
        })
        .await;
    }
    c.goto(&format!("{url}/connections")).await.unwrap();
    shot(&c, "04-connections").await;
    let page = c.source().await.unwrap();
    assert!(
        !page.contains(&sfc.client_secret),
        "secrets are never shown after saving"
    );

    // Choose the connections for the flow's slots, then turn the trigger ON.
    for slot in ["ecforce", "salesforce"] {
        c.goto(&format!("{url}/flows/ecforce-customer-to-salesforce"))
            .await
            .unwrap();
        let select = c.find(Locator::Id(&format!("slot-{slot}"))).await.unwrap();
        select.select_by_index(1).await.unwrap();
        c.find(Locator::XPath(&format!(
            "//select[@id='slot-{slot}']/following-sibling::button"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        let s = store.clone();
        until("the slot to be filled", move || {
            let s = s.clone();
            async move {
                s.flow_bindings("ecforce-customer-to-salesforce")
                    .await
                    .unwrap()
                    .contains_key(slot)
            }
        })
        .await;
    }
    c.goto(&format!("{url}/flows/ecforce-customer-to-salesforce"))
        .await
        .unwrap();
    c.find(Locator::Css("button.toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let s = store.clone();
    until("the trigger to be ON", move || {
        let s = s.clone();
        async move {
            s.flow("ecforce-customer-to-salesforce")
                .await
                .unwrap()
                .enabled
        }
    })
    .await;
    c.goto(&format!("{url}/flows/ecforce-customer-to-salesforce"))
        .await
        .unwrap();
    shot(&c, "05-flow-on").await;
    let hook = c
        .find(Locator::Id("webhook-url"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // The YAML editor checks a change and lists its problems with line and column.
    c.execute(
        "document.getElementById('yaml').value = arguments[0];",
        vec![json!("version: 1\nid: ecforce-customer-to-salesforce\nname: x\ntrigger: { app: ecforce, events: [customer_created], connection: ecforce }\nstpes: []\n")],
    )
    .await
    .unwrap();
    c.find(Locator::Css(r#"button[data-yaml="validate"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#yaml-problems li"))
        .await
        .unwrap();
    let problems = c
        .find(Locator::Id("yaml-problems"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(problems.contains("did you mean `steps`"), "{problems}");
    shot(&c, "05b-yaml-problems").await;
    c.goto(&format!("{url}/settings")).await.unwrap();
    shot(&c, "05c-settings").await;
    assert!(
        hook.starts_with(&format!("{url}/hooks/ecforce-customer-to-salesforce/")),
        "{hook}"
    );

    // ecforce sends a webhook; the run shows up with its obtained values.
    ec.sim.set_webhooks(vec![Webhook {
        url: hook,
        events: vec!["customer_created".into(), "customer_updated".into()],
        template: None,
    }]);
    ec.sim.create_customer(&obj(
        json!({"email": "taro@example.jp", "name01": "山田", "name02": "太郎"}),
    ));
    let s = store.clone();
    until("the first run to succeed", move || {
        let s = s.clone();
        async move { runs(&s, RunStatus::Succeeded).await.len() == 1 }
    })
    .await;
    c.goto(&format!("{url}/runs")).await.unwrap();
    shot(&c, "06-runs").await;
    c.find(Locator::Css("td a.status"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = c.source().await.unwrap();
    assert!(
        page.contains("taro@example.jp") && page.contains("山田 太郎"),
        "the run page shows the obtained values"
    );
    shot(&c, "07-run-succeeded").await;

    // Salesforce refuses the next create; the failed run says why and can be re-run.
    sf.sim.faults.set(FaultConfig {
        every: Some(1),
        only: vec!["create".into()],
        max_failures: Some(1),
        errors: vec![InjectedError {
            status: 400,
            code: Some("REQUIRED_FIELD_MISSING".into()),
            message: Some("Required fields are missing: [Name]".into()),
            fields: vec!["Name".into()],
            retry_after: None,
        }],
        ..Default::default()
    });
    ec.sim.create_customer(&obj(
        json!({"email": "hanako@example.jp", "name01": "佐藤", "name02": "花子"}),
    ));
    let s = store.clone();
    until("the second run to fail", move || {
        let s = s.clone();
        async move { runs(&s, RunStatus::Failed).await.len() == 1 }
    })
    .await;
    let failed = runs(&store, RunStatus::Failed).await.remove(0);
    c.goto(&format!("{url}/runs?status=failed")).await.unwrap();
    shot(&c, "08-runs-failed").await;
    c.goto(&format!("{url}/runs/{}", failed.id)).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(
        page.contains("REQUIRED_FIELD_MISSING"),
        "the error is shown"
    );
    shot(&c, "09-run-failed").await;
    c.find(Locator::Css(r#"button[data-body='{"from":"failed"}']"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let (s, id) = (store.clone(), failed.id.clone());
    until("the re-run to succeed", move || {
        let (s, id) = (s.clone(), id.clone());
        async move { s.run(&id).await.unwrap().status == RunStatus::Succeeded }
    })
    .await;
    c.goto(&format!("{url}/runs/{}", failed.id)).await.unwrap();
    shot(&c, "10-run-rerun").await;
    assert_eq!(sf.sim.records("Account").len(), 2);
    // The completed steps of the failed run were not repeated: one get_customer each.
    assert_eq!(ec.sim.stats()["calls"]["get_customer"], 2);

    // On a phone's width the pages still work.
    c.set_window_size(390, 844).await.unwrap();
    for (path, name) in [("/flows", "11-phone-flows"), ("/runs", "12-phone-runs")] {
        c.goto(&format!("{url}{path}")).await.unwrap();
        let width: f64 = c
            .execute("return document.documentElement.scrollWidth;", vec![])
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        assert!(width <= 400.0, "{path} fits a phone's width ({width} px)");
        shot(&c, name).await;
    }

    c.close().await.unwrap();
    stop.cancel();
}
