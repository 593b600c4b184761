//! The web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs): log in, import the customer-sync template from the gallery, connect
//! it to the simulators, turn it ON, watch a run arrive with its obtained values, make
//! Salesforce fail, see the failed run, and re-run it. Screenshots of every page go to
//! `target/screenshots/` for review.

mod common;
#[path = "../../flowbot/src/setup.rs"]
mod setup;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use flowbot_engine::WorkerConfig;
use flowbot_sandbox::ecforce::{self, EcforceConfig};
use flowbot_sandbox::faults::{FaultConfig, InjectedError};
use flowbot_sandbox::salesforce::{self, SalesforceConfig};
use flowbot_server::AppConfig;
use flowbot_store::{RunFilter, RunStatus, Store, StoreConfig};
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
    // The console, for the Content-Security-Policy check (chromedriver's log endpoint).
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
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

/// The text of the dialog the page opens (after its own round trip).
async fn alert_text(c: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.get_alert_text().await {
            Ok(t) => return t,
            Err(e) => assert!(Instant::now() < deadline, "no dialog: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the element with this id shows `needle` (answers are drawn when they come).
async fn until_text(c: &Client, id: &str, needle: &str, what: &str) {
    let (c, id, needle) = (c.clone(), id.to_string(), needle.to_string());
    until(what, move || {
        let (c, id, needle) = (c.clone(), id.clone(), needle.clone());
        async move {
            match c.find(Locator::Id(&id)).await {
                Ok(e) => e.text().await.unwrap_or_default().contains(&needle),
                Err(_) => false,
            }
        }
    })
    .await;
}

async fn at(c: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = c.current_url().await;
        if url.as_ref().is_ok_and(|u| u.path() == path) {
            return;
        }
        if Instant::now() > deadline {
            // Say where the browser is and what the page says, not only where it is not.
            let note = match c.find(Locator::Id("ed-saved")).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!(
                "timed out waiting for the page {path}: the browser is at {url:?}, saying {note:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const PASSWORD: &str = "pw-for-the-browser";

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
    let b = boot(false).await;
    let (ec, sf, store, url, c, stop) = (
        &b.ec,
        &b.sf,
        b.store.clone(),
        b.url.clone(),
        b.c.clone(),
        b.stop.clone(),
    );

    // Log in.
    c.goto(&format!("{url}/flows")).await.unwrap();
    at(&c, "/login").await;
    shot(&c, "01-login").await;
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    at(&c, "/").await;
    shot(&c, "02-home-empty").await;

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
    // Once every connection is chosen the flow's settings fold away; they open on a click.
    c.find(Locator::Css("#flow-settings > summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let hook = c
        .find(Locator::Id("webhook-url"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // The YAML view checks a change and lists its problems with line and column.
    c.find(Locator::Css("#yaml-view > summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.execute(
        "document.getElementById('ed-yaml').value = arguments[0];",
        vec![json!("version: 1\nid: ecforce-customer-to-salesforce\nname: x\ntrigger: { app: ecforce, events: [customer_created], connection: ecforce }\nstpes: []\n")],
    )
    .await
    .unwrap();
    c.find(Locator::Id("ed-apply-yaml"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(
        &c,
        "yaml-problems",
        "did you mean `steps`",
        "the YAML's problems",
    )
    .await;
    shot(&c, "05b-yaml-problems").await;
    c.goto(&format!("{url}/settings")).await.unwrap();
    shot(&c, "05c-settings").await;
    assert!(
        hook.starts_with(&format!("{url}/hooks/ecforce-customer-to-salesforce/")),
        "{hook}"
    );

    // ecforce sends a webhook; the run shows up with its obtained values.
    ec.sim.send_customer_events_to(&hook);
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

// ---- the no-code editor ----

/// A signed-in browser on a fresh store with the simulators' connections saved, a server,
/// and a worker.
struct Editor {
    url: String,
    store: Store,
    ec: flowbot_sandbox::Running<ecforce::EcforceSim>,
    sf: flowbot_sandbox::Running<salesforce::SalesforceSim>,
    c: Client,
    _driver: Driver,
    _dir: tempfile::TempDir,
    stop: CancellationToken,
    _app: common::TestApp,
    /// What the user did: clicks (a select's choice is one) and fields typed into.
    clicks: std::sync::atomic::AtomicUsize,
    typed: std::sync::atomic::AtomicUsize,
}

/// The simulators, a fresh store (with connections to the simulators when asked), the
/// server, a worker and a browser, not yet signed in.
async fn boot(with_connections: bool) -> Editor {
    boot_with(with_connections, flowbot_connectors::registry()).await
}

/// As [`boot`], with these apps (e.g. app files loaded from a directory).
async fn boot_with(with_connections: bool, apps: flowbot_core::Apps) -> Editor {
    boot_full(with_connections, apps, None).await
}

/// As [`boot_with`], with single sign-on through an identity provider when given.
async fn boot_full(
    with_connections: bool,
    apps: flowbot_core::Apps,
    sso: Option<flowbot_server::sso::SsoConfig>,
) -> Editor {
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
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    flowbot_server::auth::ensure_admin(&store, Some(PASSWORD))
        .await
        .unwrap();
    if with_connections {
        let sfc = sf.sim.config().clone();
        store
            .save_connection(
                "ショップ",
                "ecforce",
                &obj(json!({"account_name": "shop", "base_url": ec.url, "access_token": ec.sim.config().access_token})),
                "t",
            )
            .await
            .unwrap();
        store
            .save_connection(
                "本番組織",
                "salesforce",
                &obj(json!({"my_domain_url": sf.url, "client_id": sfc.client_id, "client_secret": sfc.client_secret})),
                "t",
            )
            .await
            .unwrap();
    }
    let app = common::spawn_app_with(
        &store,
        apps,
        AppConfig {
            worker: Some(WorkerConfig {
                idle_poll: Duration::from_millis(50),
                ..WorkerConfig::default()
            }),
            server: flowbot_server::ServerConfig {
                sso,
                ..Default::default()
            },
            ..AppConfig::default()
        },
    )
    .await;
    let (driver, c) = chromium(&dir.path().join("chromium")).await;
    Editor {
        url: app.url.clone(),
        stop: app.stop.clone(),
        _app: app,
        store,
        ec,
        sf,
        c,
        _driver: driver,
        _dir: dir,
        clicks: Default::default(),
        typed: Default::default(),
    }
}

async fn editor_session() -> Editor {
    let e = boot(true).await;
    e.c.goto(&format!("{}/login", e.url)).await.unwrap();
    sign_in(&e).await;
    e
}

/// Fill in the login page the browser is on and wait for the flows page.
async fn sign_in(e: &Editor) {
    e.c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    e.c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Signing in lands on the home page; the editor's walks start from the flows.
    at(&e.c, "/").await;
    e.c.goto(&format!("{}/flows", e.url)).await.unwrap();
    at(&e.c, "/flows").await;
}

impl Editor {
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    async fn click(&self, css: &str) {
        self.clicks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.find(css).await.click().await.unwrap();
    }

    /// The clicks and typed fields so far.
    fn effort(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.clicks.load(Relaxed), self.typed.load(Relaxed))
    }

    /// Empty the input as a user selecting all and deleting would, then type.
    async fn fill(&self, css: &str, text: &str) {
        self.typed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.find(css).await;
        self.c
            .execute(
                "const e = document.querySelector(arguments[0]); e.focus(); if (e.select) e.select(); \
                 e.value = ''; e.dispatchEvent(new Event('input', { bubbles: true }));",
                vec![json!(css)],
            )
            .await
            .unwrap();
        self.find(css).await.send_keys(text).await.unwrap();
    }

    /// Choose an option of a select by its value.
    async fn choose(&self, css: &str, value: &str) {
        self.clicks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("`{css}` has no option `{value}`: {e}"));
    }

    /// Click into an input, then the obtained value in the picker: `{{ expr }}` goes in.
    async fn pick(&self, input: &str, expr: &str) {
        self.click(input).await;
        self.click(&format!(r#"#ed-values button[data-insert="{expr}"]"#))
            .await;
    }

    /// The input's value once it has one (forms are drawn after their data arrives).
    async fn value(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self
                .find(css)
                .await
                .prop("value")
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            if !v.is_empty() || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the editor has turned the forms into YAML and the server checked it.
    async fn settled(&self) {
        let c = self.c.clone();
        until("the editor to catch up", move || {
            let c = c.clone();
            async move {
                c.execute(
                    "return document.querySelector('#editor').dataset.pending === undefined;",
                    vec![],
                )
                .await
                .is_ok_and(|v| v == json!(true))
            }
        })
        .await;
    }

    /// The element's text once it shows any: answers from the server are drawn later.
    async fn shown_text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.find(css).await.text().await.unwrap_or_default();
            if !t.trim().is_empty() || Instant::now() > deadline {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn problems(&self) -> String {
        self.find("#ed-problems").await.text().await.unwrap()
    }

    async fn open_step(&self, id: &str) {
        self.click(&format!(r#"button.ed-open[data-step="{id}"]"#))
            .await;
        self.find("#f-id").await;
    }

    async fn add(&self, lane_button: &str, search: &str, pick: &str) {
        self.click(lane_button).await;
        self.fill("#ed-cat-search", search).await;
        self.click(&format!(r#"#ed-catalogue button[data-pick="{pick}"]"#))
            .await;
        self.settled().await;
    }

    async fn test_step(&self) -> String {
        let before = self.find("#ed-test-result").await.text().await.unwrap();
        self.click("#f-test").await;
        let c = self.c.clone();
        until("the step's test result", move || {
            let (c, before) = (c.clone(), before.clone());
            async move {
                match c.find(Locator::Id("ed-test-result")).await {
                    Ok(e) => {
                        let t = e.text().await.unwrap_or_default();
                        !t.is_empty()
                            && t != before
                            && !t.contains("テスト中")
                            && !t.contains("Testing")
                    }
                    Err(_) => false,
                }
            }
        })
        .await;
        self.find("#ed-test-result").await.text().await.unwrap()
    }

    /// The shown value of a top-level row of the step test's result table.
    async fn result_value(&self, key: &str) -> String {
        self.find("#ed-test-result table.values").await;
        self.c
            .execute(
                "const row = [...document.querySelectorAll('#ed-test-result section.result > table.values > tbody > tr')] \
                   .find(r => r.querySelector('th .key')?.textContent === arguments[0]); \
                 return row ? (row.querySelector('td > span.wrap, td > details > summary')?.textContent ?? '') : null;",
                vec![json!(key)],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap_or_else(|| panic!("no `{key}` in the result"))
            .to_string()
    }

    async fn save(&self) {
        self.settled().await;
        self.click("#ed-save").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = match self.c.find(Locator::Id("ed-saved")).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if state.contains("保存しました") || state.contains("Saved") {
                return;
            }
            if Instant::now() > deadline {
                let problems = self.problems().await;
                panic!("not saved: {state}; problems: {problems}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The saved flow's current YAML, read back and checked: a flow with no problems.
async fn saved_flow(e: &Editor, id: &str) -> (flowbot_core::Flow, String) {
    let version = e.store.flow(id).await.unwrap().current_version;
    let yaml = e.store.flow_version(id, version).await.unwrap().yaml;
    let checked = flowbot_core::check(&yaml, &flowbot_connectors::registry());
    assert!(
        checked.diagnostics.is_empty(),
        "{:?}\n{yaml}",
        checked.diagnostics
    );
    (checked.flow.unwrap(), yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_builds_the_customer_sync_in_the_editor_without_writing_yaml() {
    let e = editor_session().await;
    let (url, c) = (e.url.clone(), e.c.clone());

    // From the flow list: a new, empty flow.
    e.click("#new-flow").await;
    at(&c, "/flows/new").await;
    e.fill("#ed-id", "customer-sync").await;
    e.fill("#ed-name", "顧客を Salesforce に同期").await;
    shot(&c, "20-editor-empty").await;

    // The trigger: ecforce, customer created or updated, the shop's connection.
    e.click("#ed-trigger-open").await;
    e.choose("#t-app", "ecforce").await;
    e.click("#t-ev-customer_created").await;
    e.click("#t-ev-customer_updated").await;
    // A webhook trigger shows no polling interval; the concurrency key is folded away.
    let shown = c
        .execute(
            "return [!!document.getElementById('t-opt-interval'), !!document.getElementById('t-ev-customer_updated')?.checked, document.getElementById('t-advanced')?.open];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        shown,
        serde_json::json!([false, true, true]),
        "interval hidden, both events kept; the template's key shown"
    );
    let shop = e.store.connections().await.unwrap();
    let shop_id = shop.iter().find(|x| x.app == "ecforce").unwrap().id.clone();
    let org_id = shop
        .iter()
        .find(|x| x.app == "salesforce")
        .unwrap()
        .id
        .clone();
    e.choose("#f-connection", &shop_id).await;
    shot(&c, "21-editor-trigger").await;

    // Get the customer, its id from the picker.
    e.add("#ed-add", "顧客", "ecforce.get_customer").await;
    assert_eq!(
        e.value("#f-id").await,
        "customer",
        "an id named as a person would"
    );
    e.choose("#f-connection", &shop_id).await;
    // The required customer id takes the trigger's value of the same name by itself.
    assert_eq!(
        e.value("#f-in-customer_id").await,
        "{{ trigger.customer_id }}"
    );
    e.save().await;
    at(&c, "/flows/customer-sync").await;
    assert_eq!(e.problems().await, "", "no problems");

    // Capture a real webhook from the simulator as the trigger's sample.
    let info = e.store.flow("customer-sync").await.unwrap();
    e.ec.sim
        .send_customer_events_to(&format!("{url}/hooks/customer-sync/{}", info.webhook_token));
    e.click("#ed-trigger-open").await;
    e.click("#t-wait").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    e.ec.sim.create_customer(&obj(json!({
        "email": "sample@example.jp", "name01": "見本", "name02": "花子",
    })));
    until_text(&c, "ed-test-result", "customer_id", "the captured webhook").await;
    shot(&c, "22-editor-trigger-captured").await;

    // Test the get-customer step: its output becomes the sample for the later pickers.
    e.open_step("customer").await;
    let out = e.test_step().await;
    assert!(out.contains("sample@example.jp"), "{out}");
    shot(&c, "23-editor-step-tested").await;

    // Search Salesforce's Account by email, chosen from the describe lists.
    e.add("#ed-add", "search", "salesforce.search_records")
        .await;
    assert_eq!(e.value("#f-id").await, "search");
    // The picker: the nearest step first, then the trigger; a search keeps what matches.
    e.find("#ed-values details.group").await;
    let groups = c
        .execute(
            "return [...document.querySelectorAll('#ed-values details.group')].map(g => g.dataset.group);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(groups, json!(["customer", "trigger"]));
    e.fill("#ed-values-search", "mail").await;
    let shown = c
        .execute(
            "return [...document.querySelectorAll('#ed-values button.val')].filter(b => !b.hidden).map(b => b.dataset.insert);",
            vec![],
        )
        .await
        .unwrap();
    let shown: Vec<String> = serde_json::from_value(shown).unwrap();
    assert!(
        shown.contains(&"customer.email".to_string())
            && !shown
                .iter()
                .any(|x| x == "customer.id" || x == "trigger.customer_id"),
        "only what matches (keys, labels, samples): {shown:?}"
    );
    e.fill("#ed-values-search", "").await;
    e.choose("#f-connection", &org_id).await;
    e.fill("#f-in-object", "Account").await;
    let c2 = c.clone();
    until("the object and field lists from describe", move || {
        let c = c2.clone();
        async move {
            let html = c
                .execute(
                    "return [document.querySelector('#dl-objects')?.innerHTML || '', document.querySelector('#dl-fields')?.innerHTML || ''].join('|');",
                    vec![],
                )
                .await
                .unwrap()
                .as_str()
                .unwrap_or("")
                .to_string();
            html.contains("取引先 / Account") && html.contains("Mail__c")
        }
    })
    .await;
    e.click("#f-in-where-add").await;
    e.fill("#f-in-where-k-0", "Mail__c").await;
    e.pick("#f-in-where-v-0", "customer.email").await;
    // The value shows as a chip named after the step and the field, not as `{{ … }}`.
    let chip = e.find("#f-in-where-v-0 .chip").await.text().await.unwrap();
    assert!(
        chip.starts_with("顧客情報を取得 › ") && !chip.contains("{{"),
        "{chip}"
    );
    assert_eq!(e.value("#f-in-where-v-0").await, "{{ customer.email }}");
    for (i, f) in ["Id", "Name", "Mail__c"].iter().enumerate() {
        e.click("#f-in-fields-add").await;
        e.fill(&format!("#f-in-fields-{i}"), f).await;
    }
    e.settled().await;
    e.test_step().await;
    assert_eq!(e.result_value("totalSize").await, "0");
    shot(&c, "24-editor-search").await;

    // The branch, with the condition builder.
    e.add("#ed-add", "", "branch").await;
    e.fill("#f-id", "branch").await;
    e.pick("#c-value-0", "search.totalSize").await;
    e.choose("#c-op-0", "equals").await;
    e.fill("#c-to-0", "0").await;
    e.settled().await;
    shot(&c, "25-editor-branch").await;

    // Create in the then lane, update in the else lane, with the mappings.
    for (lane, action, id) in [
        ("then", "salesforce.create_record", "create"),
        ("else", "salesforce.update_record", "update"),
    ] {
        let lane_label = if lane == "then" {
            "条件に一致する場合"
        } else {
            "それ以外の場合"
        };
        e.add(
            &format!(r#"button.ed-add[data-lane="branch:{lane_label}"]"#),
            "salesforce",
            action,
        )
        .await;
        e.fill("#f-id", id).await;
        e.choose("#f-connection", &org_id).await;
        e.fill("#f-in-object", "Account").await;
        if id == "update" {
            e.fill("#f-in-id", "{{ search.records[0].Id }}").await;
        }
        e.click("#f-in-fields-add").await;
        e.fill("#f-in-fields-k-0", "Name").await;
        e.pick("#f-in-fields-v-0", "customer.full_name").await;
        e.click("#f-in-fields-add").await;
        e.fill("#f-in-fields-k-1", "Mail__c").await;
        // Typing `{{` offers the values; Enter takes the one highlighted.
        e.fill("#f-in-fields-v-1", "{{email").await;
        e.find("#f-in-fields-v-1-complete li").await;
        e.find("#f-in-fields-v-1")
            .await
            .send_keys("\u{E007}")
            .await
            .unwrap();
        assert_eq!(e.value("#f-in-fields-v-1").await, "{{ customer.email }}");
        e.settled().await;
    }
    shot(&c, "26-editor-lanes").await;
    // Every element id is unique, the lanes' add buttons included.
    let dupes = c
        .execute(
            "const ids = [...document.querySelectorAll('[id]')].map(e => e.id); return ids.filter((x, i) => ids.indexOf(x) !== i);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        dupes,
        serde_json::json!([]),
        "duplicate ids on the editor page"
    );
    e.save().await;
    assert_eq!(e.problems().await, "", "the built flow has no problems");
    let (flow, yaml) = saved_flow(&e, "customer-sync").await;
    assert_eq!(flow.walk().len(), 5, "{yaml}");

    // Turn it ON and let a real webhook through.
    c.goto(&format!("{url}/flows/customer-sync")).await.unwrap();
    e.click("button.toggle").await;
    let s = e.store.clone();
    until("the trigger ON", move || {
        let s = s.clone();
        async move { s.flow("customer-sync").await.unwrap().enabled }
    })
    .await;
    e.ec.sim.create_customer(&obj(json!({
        "email": "yamada@example.jp", "name01": "山田", "name02": "太郎",
    })));
    let sf = e.sf.sim.clone();
    until("the Account in Salesforce", move || {
        let sf = sf.clone();
        async move {
            sf.records("Account")
                .iter()
                .any(|a| a["Mail__c"] == "yamada@example.jp")
        }
    })
    .await;
    let accounts = e.sf.sim.records("Account");
    let a = accounts
        .iter()
        .find(|a| a["Mail__c"] == "yamada@example.jp")
        .unwrap();
    assert_eq!(a["Name"], "山田 太郎");
    shot(&c, "27-flow-on").await;
    c.close().await.unwrap();
    e.stop.cancel();
}

/// The customer sync built from nothing on the flow page, in Japanese, with cards, chips
/// and the picker only — every click and every field typed into counted (docs/ui-walkthrough.md
/// records them): two steps tested, saved, turned ON, and a real run's labelled values read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_customer_sync_is_built_on_the_flow_page_in_few_clicks() {
    let e = editor_session().await;
    let c = e.c.clone();
    // A customer in the shop, for the trigger's sample.
    e.ec.sim.create_customer(&obj(json!({
        "email": "sample@example.jp", "name01": "見本", "name02": "花子",
    })));
    let enter = |css: &'static str| {
        let e = &e;
        async move {
            e.find(&format!("{css}-complete li")).await;
            e.find(css).await.send_keys("\u{E007}").await.unwrap();
        }
    };

    e.click("#new-flow").await;
    at(&c, "/flows/new").await;
    e.fill("#ed-name", "顧客を Salesforce に同期").await;
    // The webhook URL is there before the first save, with the id drawn for the flow.
    let hook_before = e.find("#webhook-url").await.text().await.unwrap();
    assert!(hook_before.contains("/hooks/flow-"), "{hook_before}");
    // The trigger: the app, its two events; the shop's only connection is taken as is.
    e.click("#ed-trigger-open").await;
    e.choose("#t-app", "ecforce").await;
    e.click("#t-ev-customer_created").await;
    e.click("#t-ev-customer_updated").await;
    // A webhook trigger's panel shows that URL, and no polling interval.
    assert_eq!(e.find("#t-hook").await.text().await.unwrap(), hook_before);
    // Get the customer: its id comes from the trigger by itself. Testing it first fetches
    // a recent customer as the trigger's sample.
    e.click("#ed-add").await;
    e.click(r#"#ed-catalogue button[data-pick="ecforce.get_customer"]"#)
        .await;
    assert_eq!(
        e.value("#f-in-customer_id").await,
        "{{ trigger.customer_id }}"
    );
    e.test_step().await;
    assert_eq!(e.result_value("email").await, "sample@example.jp");
    // Search the Account by email: the value typed as `{{email` and completed.
    e.click("#ed-add").await;
    e.click(r#"#ed-catalogue button[data-pick="salesforce.search_records"]"#)
        .await;
    // A problem shows at its field, in Japanese.
    let problem = e
        .find(".field:has(#f-in-object) .field-problem")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(problem, "必須の入力項目「object」が入力されていません");
    e.fill("#f-in-object", "Account").await;
    e.click("#f-in-where-add").await;
    e.fill("#f-in-where-k-0", "Mail__c").await;
    e.fill("#f-in-where-v-0", "{{email").await;
    enter("#f-in-where-v-0").await;
    e.test_step().await;
    assert_eq!(e.result_value("totalSize").await, "0");
    // Branch on the count found.
    e.click("#ed-add").await;
    e.click(r#"#ed-catalogue button[data-pick="branch"]"#).await;
    e.fill("#c-value-0", "{{total").await;
    enter("#c-value-0").await;
    e.fill("#c-to-0", "0").await;
    // Create in the first lane (the object carried over from the search).
    e.click(r#"button.ed-add[data-lane="branch:条件に一致する場合"]"#)
        .await;
    e.click(r#"#ed-catalogue button[data-pick="salesforce.create_record"]"#)
        .await;
    assert_eq!(e.value("#f-in-object").await, "Account");
    e.click("#f-in-fields-add").await;
    e.fill("#f-in-fields-k-0", "Name").await;
    e.pick("#f-in-fields-v-0", "customer.full_name").await;
    e.click("#f-in-fields-add").await;
    e.fill("#f-in-fields-k-1", "Mail__c").await;
    e.pick("#f-in-fields-v-1", "customer.email").await;
    // Update in the other lane: the record found, the same fields in one click.
    e.click(r#"button.ed-add[data-lane="branch:それ以外の場合"]"#)
        .await;
    e.click(r#"#ed-catalogue button[data-pick="salesforce.update_record"]"#)
        .await;
    assert_eq!(e.value("#f-in-id").await, "{{ search.records[0].Id }}");
    e.click("#f-copy-fields").await;
    e.settled().await;
    assert_eq!(e.problems().await, "", "the built flow has no problems");
    shot(&c, "40-walkthrough-built").await;
    e.click("#ed-save").await;
    let c2 = c.clone();
    until("the saved flow's page", move || {
        let c = c2.clone();
        async move {
            c.current_url()
                .await
                .is_ok_and(|u| u.path().starts_with("/flows/flow-") && u.query() == Some("saved=1"))
        }
    })
    .await;
    let id = c.current_url().await.unwrap().path()[7..].to_string();
    let token = e.store.flow(&id).await.unwrap().webhook_token;
    assert_eq!(
        hook_before,
        format!("{}/hooks/{id}/{token}", e.url),
        "the URL shown before saving is the flow's"
    );
    let yaml = e.store.current_yaml(&id).await.unwrap();
    let flow = flowbot_core::check(&yaml, &flowbot_connectors::registry())
        .flow
        .unwrap_or_else(|| panic!("valid:\n{yaml}"));
    assert_eq!(flow.walk().len(), 5, "{yaml}");
    assert_eq!(e.store.flow_bindings(&id).await.unwrap().len(), 2);

    // ON, and a real customer through it.
    e.click("button.toggle").await;
    let s = e.store.clone();
    let fid = id.clone();
    until("the trigger ON", move || {
        let (s, fid) = (s.clone(), fid.clone());
        async move { s.flow(&fid).await.unwrap().enabled }
    })
    .await;
    let info = e.store.flow(&id).await.unwrap();
    e.ec.sim
        .send_customer_events_to(&format!("{}/hooks/{id}/{}", e.url, info.webhook_token));
    e.ec.sim.create_customer(&obj(json!({
        "email": "yamada@example.jp", "name01": "山田", "name02": "太郎",
    })));
    let s = e.store.clone();
    let fid = id.clone();
    until("the run to succeed", move || {
        let (s, fid) = (s.clone(), fid.clone());
        async move {
            runs(&s, RunStatus::Succeeded)
                .await
                .iter()
                .any(|r| r.flow_id == fid)
        }
    })
    .await;
    // The run's page: the values with their labels.
    e.click(&format!(r#"a.button[href="/runs?flow={id}"]"#))
        .await;
    e.click("a.status.succeeded").await;
    e.find("table.values").await;
    let labels = c
        .execute(
            "return [...document.querySelectorAll('table.values')].map(t => t.innerText).join('\\n');",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        labels.contains("メールアドレス") && labels.contains("yamada@example.jp"),
        "{labels}"
    );
    shot(&c, "41-walkthrough-run").await;
    let (clicks, typed) = e.effort();
    println!("walk-through: {clicks} clicks, {typed} typed fields");
    assert!(clicks <= 30, "{clicks} clicks");
    assert!(typed <= 8, "{typed} typed fields");
    e.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_template_s_mapping_is_edited_in_the_forms_and_the_export_shows_it() {
    let e = editor_session().await;
    let (url, c) = (e.url.clone(), e.c.clone());
    let apps = flowbot_connectors::registry();
    setup::install_template(
        &e.store,
        &apps,
        "ecforce-customer-to-salesforce",
        &setup::SyncApps::sandbox(&e.ec, &e.sf),
        "t",
    )
    .await
    .unwrap();
    let id = "ecforce-customer-to-salesforce";
    // The old editor address lands on the flow page, where the flow is built.
    c.goto(&format!("{url}/flows/{id}/edit")).await.unwrap();
    at(&c, &format!("/flows/{id}")).await;
    // The YAML's steps show up as forms.
    e.open_step("create").await;
    assert_eq!(e.value("#f-in-object").await, "Account");
    assert_eq!(e.value("#f-in-fields-k-0").await, "Name");
    assert_eq!(
        e.value("#f-in-fields-v-0").await,
        "{{ customer.full_name }}"
    );
    // Map the phone number too, from the picker.
    e.click("#f-in-fields-add").await;
    e.fill("#f-in-fields-k-2", "Phone").await;
    e.pick("#f-in-fields-v-2", "customer.tel").await;
    shot(&c, "30-editor-template-mapping").await;
    e.save().await;

    let yaml = e
        .store
        .flow_version(id, e.store.flow(id).await.unwrap().current_version)
        .await
        .unwrap()
        .yaml;
    // The same file a hand edit gives: the template with one line more.
    let template = flowbot_connectors::templates::template(id).unwrap().yaml;
    let added: Vec<&str> = yaml.lines().filter(|l| l.contains("Phone")).collect();
    let name_line = template
        .lines()
        .find(|l| l.contains("Name: \"{{ customer.full_name }}\""))
        .unwrap();
    let indent = &name_line[..name_line.len() - name_line.trim_start().len()];
    assert_eq!(
        added,
        [format!("{indent}Phone: '{{{{ customer.tel }}}}'")],
        "beside the other fields: {yaml}"
    );
    let without: Vec<&str> = yaml.lines().filter(|l| !l.contains("Phone")).collect();
    assert_eq!(
        without,
        template.lines().collect::<Vec<_>>(),
        "nothing else changed"
    );
    assert!(flowbot_core::check(&yaml, &apps).flow.is_some(), "{yaml}");

    // The versions: a readable diff of the change, and a restore.
    c.refresh().await.unwrap();
    e.click("#v-diff").await;
    let diff = e.shown_text("#v-diff-out").await;
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains("Phone: '{{ customer.tel }}'")),
        "the diff from v1 to v2 adds the mapping: {diff}"
    );
    assert!(
        !diff.lines().any(|l| l.starts_with('-')),
        "and removes nothing: {diff}"
    );
    shot(&c, "31-editor-versions-diff").await;

    // Every control has a label, and the editor fits a phone's width.
    let unlabeled = c
        .execute(
            "return [...document.querySelectorAll('#editor input:not([type=hidden]), #editor select, #editor textarea')].filter(i => !(i.labels && i.labels.length) && !i.getAttribute('aria-label')).map(i => i.id || i.outerHTML).join(', ');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabeled, json!(""), "controls without a label");
    c.set_window_size(390, 844).await.unwrap();
    c.refresh().await.unwrap();
    e.open_step("create").await;
    let width: f64 = c
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(width <= 400.0, "the editor fits a phone ({width} px)");
    shot(&c, "32-editor-phone").await;

    // Restore version 1: the mapping is gone again, as a new version.
    c.set_window_size(1280, 900).await.unwrap();
    c.refresh().await.unwrap();
    let restore = e.find(r#"button[data-restore="1"]"#).await;
    restore.click().await.unwrap();
    c.accept_alert().await.unwrap();
    let s = e.store.clone();
    until("the restored version", move || {
        let s = s.clone();
        async move { s.flow(id).await.unwrap().current_version == 3 }
    })
    .await;
    let yaml = e.store.flow_version(id, 3).await.unwrap().yaml;
    assert!(!yaml.contains("Phone"), "{yaml}");

    // A switch on the prefecture and a loop over the search's records, from the catalogue.
    c.refresh().await.unwrap();
    e.add("#ed-add", "", "switch").await;
    e.pick("#s0-c-value-0", "customer.prefecture").await;
    e.fill("#s0-c-to-0", "東京都").await;
    e.add("#ed-add", "", "for_each").await;
    e.pick("#l-items", "search.records").await;
    // Reordering: Alt+↑ on a card moves it up; a card dropped on a "+" moves there.
    let order = || async {
        c.execute(
            "return [...document.querySelectorAll('#ed-tree > ol.cards > li.card-item > .node button.ed-open')].map(b => b.dataset.step);",
            vec![],
        )
        .await
        .unwrap()
    };
    let before = order().await;
    e.find("#step-each")
        .await
        .send_keys("\u{E00A}\u{E013}\u{E000}")
        .await
        .unwrap();
    e.settled().await;
    let moved = order().await;
    let (b, m) = (before.as_array().unwrap(), moved.as_array().unwrap());
    assert_eq!(m[b.len() - 2], "each", "{moved}");
    assert_eq!(m[b.len() - 1], "switch", "{moved}");
    c.execute(
        "const from = document.querySelector('#step-each').closest('.node'); \
         const to = document.querySelector('#ed-add'); \
         const dt = new DataTransfer(); \
         from.dispatchEvent(new DragEvent('dragstart', { dataTransfer: dt, bubbles: true })); \
         to.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true })); \
         to.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
        vec![],
    )
    .await
    .unwrap();
    e.settled().await;
    assert_eq!(order().await, before, "dropped back after the switch");
    shot(&c, "33-editor-switch-loop").await;
    e.save().await;
    let yaml = e.store.flow_version(id, 4).await.unwrap().yaml;
    let flow = flowbot_core::check(&yaml, &apps)
        .flow
        .unwrap_or_else(|| panic!("valid:\n{yaml}"));
    assert!(
        yaml.contains("value: '{{ customer.prefecture }}'"),
        "{yaml}"
    );
    assert!(yaml.contains("to: 東京都"), "{yaml}");
    assert!(yaml.contains("items: '{{ search.records }}'"), "{yaml}");
    assert_eq!(flow.steps.len(), 5, "{yaml}");
    c.close().await.unwrap();
    e.stop.cancel();
}

/// chromedriver's `POST /session/{id}/se/log`: the browser console's entries since the last
/// call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

async fn console(c: &Client) -> Vec<String> {
    let entries = c
        .issue_cmd(BrowserLog)
        .await
        .expect("the browser's console");
    entries
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| format!("{} {}", e["level"], e["message"]))
                .collect()
        })
        .unwrap_or_default()
}

/// A browser on a store with the first template imported, ON, and one run: the pages
/// all have something to show. The pages to visit, the login page left out.
async fn seeded() -> (Editor, Vec<String>) {
    let e = boot(true).await;
    let tpl = flowbot_connectors::templates::TEMPLATES[0];
    e.store
        .import_flow(tpl.id, tpl.id, tpl.yaml, "t")
        .await
        .unwrap();
    e.store.set_enabled(tpl.id, true, "t").await.unwrap();
    // A run, so the run pages and the chart have something to draw.
    let info = e.store.flow(tpl.id).await.unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "{}/hooks/{}/{}",
            e.url, info.id, info.webhook_token
        ))
        .header("x-ecf-event", "customer_created")
        .json(&json!({"id": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    // Every run whatever its status (listing status by status could miss one that moved
    // on between two listings).
    let run = e
        .store
        .runs(&RunFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a run");

    let pages = vec![
        "/".to_string(),
        "/flows".to_string(),
        format!("/flows/{}", tpl.id),
        "/flows/new".to_string(),
        "/templates".to_string(),
        "/runs".to_string(),
        format!("/runs/{}", run.id),
        "/connections".to_string(),
        "/settings".to_string(),
        "/apps".to_string(),
        "/members".to_string(),
        "/audit".to_string(),
        "/account".to_string(),
        "/projects".to_string(),
    ];
    // A form trigger's page, as the people filling it in see it.
    let form = e
        .store
        .import_flow(
            "contact",
            "お問い合わせ",
            "version: 1\nid: contact\nname: お問い合わせ\ntrigger:\n  app: form\n  options:\n    title: お問い合わせ\n    fields:\n      - { key: name, label: お名前, required: true, help: フルネームで }\n      - { key: email, label: メールアドレス, type: email, required: true }\n      - { key: topic, label: 種別, type: select, choices: [見積, 不具合] }\n      - { key: tags, label: 関心, type: multi_select, choices: [価格, 納期] }\n      - { key: agree, label: 個人情報の取り扱いに同意する, type: checkbox }\n      - { key: body, label: 内容, type: long_text }\nsteps:\n  - id: a\n    set: { x: 1 }\n",
            "t",
        )
        .await
        .unwrap();
    let mut pages = pages;
    pages.push(format!("/forms/contact/{}", form.webhook_token));
    // A task waiting for the owner and an outsider: My Tasks, the request's page with its
    // form, and the page the outsider's link opens.
    let asks = e
        .store
        .import_flow(
            "asks",
            "確認",
            "version: 1\nid: asks\nname: 確認\ntrigger: { app: webhook }\nsteps:\n  - id: check\n    name: 内容確認\n    task:\n      to: { members: [admin], emails: [guest@example.jp] }\n      message: 確認してください\n      fields:\n        - { key: rating, label: 評価, type: select, choices: [高, 低], required: true }\n        - { key: note, label: メモ, type: long_text }\n",
            "t",
        )
        .await
        .unwrap();
    e.store.set_enabled("asks", true, "t").await.unwrap();
    let r = http
        .post(format!("{}/hooks/asks/{}", e.url, asks.webhook_token))
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let asked = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    until("the task to be asked", || async {
        !e.store.requests_of_run(&asked).await.unwrap().is_empty()
    })
    .await;
    let req = e.store.requests_of_run(&asked).await.unwrap().remove(0);
    let link = e
        .store
        .request_link(&req.id, "guest@example.jp", 3_600_000)
        .await
        .unwrap();
    pages.push("/tasks".to_string());
    pages.push(format!("/tasks/{}", req.id));
    pages.push(format!("/r/{link}"));
    // Tables: the list, and a grid with rows.
    let table = e
        .store
        .create_table(
            flowbot_store::DEFAULT_PROJECT,
            "会員",
            serde_json::from_value(json!({ "columns": [
                { "key": "email", "label": "メール", "type": "email", "required": true, "unique": true },
                { "key": "points", "type": "number" },
                { "key": "joined", "type": "date" }
            ] }))
            .unwrap(),
            "t",
        )
        .await
        .unwrap();
    e.store
        .write_rows(
            &table.id,
            vec![flowbot_store::RowOp::Add {
                values: obj(
                    json!({ "email": "a@example.jp", "points": 10, "joined": "2026-04-01" }),
                ),
            }],
            flowbot_store::RowWriter::Run("seed".into()),
        )
        .await
        .unwrap();
    pages.push("/tables".to_string());
    pages.push(format!("/tables/{}", table.id));
    (e, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_works_under_the_content_security_policy() {
    let (e, pages) = seeded().await;
    let http = reqwest::Client::new();
    e.c.goto(&format!("{}/login", e.url)).await.unwrap();
    let mut seen = console(&e.c).await;
    sign_in(&e).await;
    for page in &pages {
        e.c.goto(&format!("{}{page}", e.url)).await.unwrap();
        e.find("main").await;
        // The pages' scripts ran: the editor draws its forms, the others set up the menu.
        if page.starts_with("/flows/") {
            e.find("#ed-yaml").await;
        }
        seen.extend(
            console(&e.c)
                .await
                .into_iter()
                .map(|l| format!("{page}: {l}")),
        );
        // Every answer carries the security headers.
        let r = http.get(format!("{}{page}", e.url)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{page}: {csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{page}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{page}");
        assert_eq!(h["referrer-policy"], "same-origin", "{page}");
    }
    // The run chart's bars took their heights from the script, not from inline styles.
    e.c.goto(&format!("{}/runs", e.url)).await.unwrap();
    let bar = e.find(".chart span").await;
    let style = bar.attr("style").await.unwrap().unwrap_or_default();
    assert!(style.contains("height"), "the chart was drawn: {style:?}");
    seen.extend(console(&e.c).await);
    let problems: Vec<&String> = seen
        .iter()
        .filter(|l| {
            l.contains("SEVERE") || l.contains("Content Security Policy") || l.contains("Refused")
        })
        .filter(|l| !l.contains("favicon.ico"))
        .collect();
    assert!(
        problems.is_empty(),
        "console errors under the CSP: {problems:#?}"
    );
    e.stop.cancel();
}

/// "Use this template" on a template already in use makes a copy; its page asks for the
/// connections it needs, makes them right there (Salesforce through its OAuth sign-in,
/// which comes back to the page), and then offers to turn the trigger ON.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_template_s_copy_gets_its_connections_on_its_page_and_is_offered_on() {
    let e = boot(false).await;
    let (url, c) = (e.url.clone(), e.c.clone());
    let tpl = "ecforce-customer-to-salesforce";
    let yaml = flowbot_connectors::templates::template(tpl).unwrap().yaml;
    e.store.import_flow(tpl, tpl, yaml, "t").await.unwrap();
    c.goto(&format!("{url}/login")).await.unwrap();
    sign_in(&e).await;
    c.goto(&format!("{url}/templates")).await.unwrap();
    e.click(&format!(
        r#"button[data-path="/api/v1/templates/{tpl}/import"]"#
    ))
    .await;
    let copy = format!("{tpl}-copy");
    at(&c, &format!("/flows/{copy}")).await;
    let title = e.find("#flow-title").await.text().await.unwrap();
    assert!(title.contains("（コピー）"), "{title}");
    assert!(
        e.store.flow(tpl).await.unwrap().current_version == 1,
        "the flow in use is untouched"
    );

    // ecforce: no connection exists yet, so the form to make one is open.
    let ecfg = e.ec.sim.config().clone();
    for (name, value) in [
        ("settings.base_url", e.ec.url.clone()),
        ("settings.access_token", ecfg.access_token.clone()),
    ] {
        e.fill(
            &format!(r#"#new-conn-ecforce input[name="{name}"]"#),
            &value,
        )
        .await;
    }
    e.click("#new-conn-ecforce button[type=submit]").await;
    let s = e.store.clone();
    let id = copy.clone();
    until("the ecforce slot bound", move || {
        let (s, id) = (s.clone(), id.clone());
        async move { s.flow_bindings(&id).await.unwrap().contains_key("ecforce") }
    })
    .await;

    // Salesforce signs in through OAuth and the browser comes back to the flow.
    let sfc = e.sf.sim.config().clone();
    // No Salesforce connection exists either: its form is open too.
    e.find("#new-conn-salesforce[open]").await;
    e.fill(
        r#"#new-conn-salesforce input[name="settings.my_domain_url"]"#,
        &e.sf.url,
    )
    .await;
    e.fill(
        r#"#new-conn-salesforce input[name="settings.client_id"]"#,
        &sfc.client_id,
    )
    .await;
    e.fill(
        r#"#new-conn-salesforce input[name="settings.client_secret"]"#,
        &sfc.client_secret,
    )
    .await;
    e.click("#new-conn-salesforce button[type=submit]").await;
    let c2 = c.clone();
    until("back on the flow after signing in", move || {
        let c = c2.clone();
        async move {
            c.current_url()
                .await
                .is_ok_and(|u| u.query().is_some_and(|q| q.contains("connected=1")))
        }
    })
    .await;
    at(&c, &format!("/flows/{copy}")).await;
    let bound = e.store.flow_bindings(&copy).await.unwrap();
    assert!(bound.contains_key("salesforce"), "{bound:?}");
    let conn = e.store.connection(&bound["salesforce"]).await.unwrap();
    assert!(
        conn.settings.contains_key("refresh_token"),
        "the sign-in's refresh token is kept"
    );

    // Everything is set: the page offers to turn the trigger ON. With a sample customer
    // whose email is empty, the search would look for an empty Mail__c in every run: the
    // page asks first, and saying no leaves the trigger OFF.
    e.store
        .set_sample(
            &copy,
            "trigger",
            &json!({"customer_id": "1", "event": "customer_created"}),
        )
        .await
        .unwrap();
    e.store
        .set_sample(
            &copy,
            "customer",
            &json!({"id": "1", "email": "", "full_name": "見本 太郎"}),
        )
        .await
        .unwrap();
    e.click("#offer-on button").await;
    let asked = alert_text(&c).await;
    assert!(asked.contains("Mail__c"), "{asked}");
    c.dismiss_alert().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!e.store.flow(&copy).await.unwrap().enabled);
    e.click("#offer-on button").await;
    alert_text(&c).await;
    c.accept_alert().await.unwrap();
    let s = e.store.clone();
    until("the copy ON", move || {
        let (s, id) = (s.clone(), copy.clone());
        async move { s.flow(&id).await.unwrap().enabled }
    })
    .await;
    assert!(!e.store.flow(tpl).await.unwrap().enabled);
    shot(&c, "34-template-copy-on").await;

    // "Open in the editor" never offers a flow's id in use, and typing one is warned of.
    c.goto(&format!("{url}/flows/new?template={tpl}"))
        .await
        .unwrap();
    assert_eq!(e.value("#ed-id").await, format!("{tpl}-copy-2"));
    e.fill("#ed-id", tpl).await;
    let warned = e.shown_text("#ed-overwrite").await;
    assert!(warned.contains("上書き"), "{warned}");
    e.stop.cancel();
}

/// axe-core's serious and critical findings on the page the browser shows, one line each.
async fn axe(c: &Client, axe_js: &str) -> Vec<String> {
    c.execute(axe_js, vec![]).await.expect("axe-core loads");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             axe.run(document, { resultTypes: ['violations'] }) \
               .then(r => done(r.violations.filter(v => ['serious', 'critical'].includes(v.impact)) \
                 .map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`))) \
               .catch(e => done([`axe failed: ${e}`]));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    serde_json::from_value(found).unwrap()
}

/// Every page in both languages at a desktop's and a phone's width: axe-core (from the npm
/// registry, injected into the page) finds nothing serious or critical, nothing is wider
/// than the screen, and a screenshot of each lands in `target/screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_passes_axe_in_both_languages_on_a_desktop_and_a_phone() {
    let axe_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/npm/node_modules/axe-core/axe.min.js");
    let axe_js = std::fs::read_to_string(&axe_path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run ./test.sh, which installs axe-core from npm",
            axe_path.display()
        )
    });
    let (e, mut pages) = seeded().await;
    let c = e.c.clone();
    let mut found = Vec::new();
    for lang in ["en", "ja"] {
        c.goto(&format!("{}/login?lang={lang}", e.url))
            .await
            .unwrap();
        for (w, h) in [(1280, 900), (390, 844)] {
            c.set_window_size(w, h).await.unwrap();
            c.refresh().await.unwrap();
            e.find("#password").await;
            found.extend(
                axe(&c, &axe_js)
                    .await
                    .into_iter()
                    .map(|v| format!("/login {lang} {w}: {v}")),
            );
            shot(&c, &format!("a11y-{lang}-{w}-login")).await;
        }
    }
    c.set_window_size(1280, 900).await.unwrap();
    sign_in(&e).await;
    for lang in ["ja", "en"] {
        // The flow page with a card open: the side panel (a sheet on a phone) and its picker.
        pages.push(format!("{}#open", pages[2]));
        for (w, h) in [(1280, 900), (390, 844)] {
            c.set_window_size(w, h).await.unwrap();
            for page in &pages {
                let (path, open) = match page.strip_suffix("#open") {
                    Some(p) => (p, true),
                    None => (page.as_str(), false),
                };
                c.goto(&format!("{}{path}?lang={lang}", e.url))
                    .await
                    .unwrap();
                e.find("main").await;
                if path.starts_with("/flows/") {
                    e.find("#ed-trigger-open").await;
                    if open {
                        e.open_step("search").await;
                        e.find("#ed-values .picker").await;
                    }
                }
                found.extend(
                    axe(&c, &axe_js)
                        .await
                        .into_iter()
                        .map(|v| format!("{page} {lang} {w}: {v}")),
                );
                let width = c
                    .execute("return document.documentElement.scrollWidth;", vec![])
                    .await
                    .unwrap()
                    .as_f64()
                    .unwrap();
                if width > f64::from(w) + 1.0 {
                    found.push(format!("{page} {lang} {w}: the page is {width} px wide"));
                }
                // The header leaves the screen to the page: two short rows on a phone.
                let header = c
                    .execute(
                        "return document.querySelector('header').getBoundingClientRect().height;",
                        vec![],
                    )
                    .await
                    .unwrap()
                    .as_f64()
                    .unwrap();
                if header > 100.0 {
                    found.push(format!("{page} {lang} {w}: the header is {header} px tall"));
                }
                // A run's page under one name, not its id: the folder keeps one per kind.
                let name = if page.starts_with("/runs/") {
                    "run".to_string()
                } else if page.starts_with("/forms/") {
                    // Not the token: it is the form's secret.
                    "form".to_string()
                } else {
                    page.trim_matches('/').replace(['/', '#'], "-")
                };
                let name = if name.is_empty() {
                    "home".to_string()
                } else {
                    name
                };
                shot(&c, &format!("a11y-{lang}-{w}-{name}")).await;
            }
        }
        pages.pop();
    }
    assert!(
        found.is_empty(),
        "accessibility problems:\n{}",
        found.join("\n")
    );
    e.stop.cancel();
}

/// An OpenAPI document pasted on the apps page, previewed with one operation left out and
/// saved, becomes an app a flow runs with — in the same process, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openapi_document_imported_in_the_ui_becomes_an_app_a_flow_runs() {
    use axum::routing::post;
    let tickets: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let seen = tickets.clone();
    let desk = axum::Router::new().route(
        "/v1/tickets",
        post(
            move |headers: axum::http::HeaderMap, axum::Json(b): axum::Json<Value>| async move {
                let key = headers
                    .get("x-desk-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                seen.lock().unwrap().push(json!({ "body": b, "key": key }));
                axum::Json(json!({ "id": "T-1" }))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let desk_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, desk).await.unwrap() });
    let spec = format!(
        "openapi: 3.0.3\ninfo: {{ title: Help Desk }}\nservers: [{{ url: '{desk_url}/v1' }}]\ncomponents:\n  securitySchemes:\n    key: {{ type: apiKey, in: header, name: X-Desk-Key }}\npaths:\n  /tickets:\n    post:\n      operationId: createTicket\n      summary: Open a ticket\n      requestBody: {{ content: {{ application/json: {{ schema: {{ type: object, required: [title], properties: {{ title: {{ type: string }} }} }} }} }} }}\n      responses: {{ '200': {{ description: ok }} }}\n  /users:\n    get:\n      operationId: listUsers\n      responses: {{ '200': {{ description: ok }} }}\n"
    );

    let e = editor_session().await;
    e.c.goto(&format!("{}/apps", e.url)).await.unwrap();
    e.find("#oa-spec").await;
    e.c.execute(
        "document.getElementById('oa-spec').value = arguments[0];",
        vec![json!(spec)],
    )
    .await
    .unwrap();
    e.click(r#"[data-openapi="preview"]"#).await;
    e.click(r#"#oa-op-list input[value="list_users"]"#).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let yaml = e.value("#oa-yaml").await;
        if yaml.contains("create_ticket") && !yaml.contains("list_users") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the preview kept list_users: {yaml}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shot(&e.c, "20-openapi-import").await;
    e.click(r#"[data-openapi="save"]"#).await;
    // The page reloads with the new app listed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = e.c.find_all(Locator::Css("td code")).await.unwrap();
        let mut ids = Vec::new();
        for l in listed {
            ids.push(l.text().await.unwrap_or_default());
        }
        if ids.iter().any(|i| i == "help_desk") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "help_desk is not listed: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A flow with the new app runs on the in-process worker at once.
    let conn = e
        .store
        .save_connection("desk", "help_desk", &obj(json!({ "api_key": "dk-7" })), "t")
        .await
        .unwrap();
    let flow = "version: 1\nid: desk\nname: desk\nconnections:\n  desk: { app: help_desk }\ntrigger: { app: webhook }\nsteps:\n  - id: open\n    app: help_desk\n    action: create_ticket\n    connection: desk\n    input:\n      title: \"{{ trigger.body.subject }}\"\n";
    let info = e
        .store
        .import_flow("desk", "desk", flow, "t")
        .await
        .unwrap();
    e.store
        .bind_connection("desk", "desk", &conn.id, "t")
        .await
        .unwrap();
    e.store.set_enabled("desk", true, "t").await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/hooks/desk/{}", e.url, info.webhook_token))
        .json(&json!({ "subject": "printer on fire" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let s = e.store.clone();
    until("the help-desk run to succeed", move || {
        let s = s.clone();
        async move { runs(&s, RunStatus::Succeeded).await.len() == 1 }
    })
    .await;
    assert_eq!(
        tickets.lock().unwrap().clone(),
        vec![json!({ "body": { "title": "printer on fire" }, "key": "dk-7" })]
    );
}

/// The Acme API the app files below describe: contacts read in pages behind an API key,
/// created; an OAuth 2.0 approval page that approves at once, its token endpoint, and a
/// resource that needs its token.
async fn acme_api() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::{get, post};
    type Contacts = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;
    let contacts: Contacts = std::sync::Arc::new(std::sync::Mutex::new(
        (1..=5)
            .map(|i| json!({ "id": format!("c{i}"), "email": format!("c{i}@example.jp"), "updated": i }))
            .collect(),
    ));
    let key_ok = |h: &HeaderMap| h.get("x-api-key").and_then(|v| v.to_str().ok()) == Some("k1");
    let app = axum::Router::new()
        .route(
            "/contacts",
            get(
                move |State(c): State<Contacts>, h: HeaderMap, Query(q): Query<Map<String, Value>>| async move {
                    if !key_ok(&h) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    let n = |k: &str| q.get(k).and_then(Value::as_str).and_then(|v| v.parse::<usize>().ok());
                    let (page, size) = (n("page").unwrap_or(1), n("per_page").unwrap_or(100));
                    let all = c.lock().unwrap().clone();
                    let data: Vec<Value> = all.into_iter().skip((page - 1) * size).take(size).collect();
                    axum::Json(json!({ "data": data })).into_response()
                },
            )
            .post(
                move |State(c): State<Contacts>, h: HeaderMap, axum::Json(b): axum::Json<Value>| async move {
                    if !key_ok(&h) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    let mut c = c.lock().unwrap();
                    let id = format!("c{}", c.len() + 1);
                    let made = json!({ "id": id, "email": b["email"], "name": b["name"], "updated": c.len() + 1 });
                    c.push(made.clone());
                    (StatusCode::CREATED, axum::Json(made)).into_response()
                },
            ),
        )
        .route(
            "/users",
            get(|| async { axum::Json(json!({ "users": [{ "id": "u1", "name": "佐藤" }, { "id": "u2", "name": "鈴木" }] })) }),
        )
        .route(
            "/oauth/authorize",
            get(|Query(q): Query<Map<String, Value>>| async move {
                let to = format!(
                    "{}?code=the-code&state={}",
                    q["redirect_uri"].as_str().unwrap(),
                    q["state"].as_str().unwrap()
                );
                Redirect::to(&to)
            }),
        )
        .route(
            "/oauth/token",
            post(|axum::Form(f): axum::Form<Map<String, Value>>| async move {
                match f["grant_type"].as_str() {
                    Some("authorization_code") if f["code"] == "the-code" && f.contains_key("code_verifier") => {
                        axum::Json(json!({ "access_token": "at-1", "refresh_token": "rt-1" })).into_response()
                    }
                    Some("refresh_token") if f["refresh_token"] == "rt-1" => {
                        axum::Json(json!({ "access_token": "at-2", "expires_in": 3600 })).into_response()
                    }
                    _ => (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_grant" }))).into_response(),
                }
            }),
        )
        .route(
            "/me",
            get(|h: HeaderMap| async move {
                if h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer at-2") {
                    axum::Json(json!({ "name": "acme user" })).into_response()
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        )
        .with_state(contacts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, contacts)
}

const ACME_APP: &str = r#"flowbot_app: 1
id: acme
name: { en: Acme, ja: アクメ }
connection:
  fields:
    - { name: api_key, label: { en: API key, ja: API キー }, kind: text, required: true, secret: true }
    - { name: webhook_secret, label: { en: Webhook secret, ja: Webhook シークレット }, kind: text, secret: true }
    - { name: base_url, label: { en: API URL, ja: API URL }, kind: text, required: true }
  base_url: "{{ connection.base_url }}"
  auth: { kind: api_key, in: header, name: X-Api-Key, value: "{{ connection.api_key }}" }
  test: list_contacts
webhooks:
  event: "{{ headers['x-acme-event'] }}"
  object_id: "{{ body.id }}"
  signature: { header: X-Acme-Signature, algorithm: hmac_sha256, encoding: hex, secret: "{{ connection.webhook_secret }}" }
  setup: { en: "In Acme, Settings → Webhooks: paste the URL above.", ja: "Acme の 設定 → Webhook に上の URL を貼り付けます。" }
triggers:
  - id: contact_created
    name: { en: Contact created, ja: 連絡先の作成 }
    webhook:
      when: contact.created
      output: { contact_id: "{{ object_id }}", email: "{{ body.email }}" }
    outputs:
      - { name: contact_id, label: { en: Contact ID, ja: 連絡先 ID }, kind: text }
      - { name: email, label: { en: Email, ja: メールアドレス }, kind: text }
  - id: new_contacts
    name: { en: New contacts, ja: 新しい連絡先 }
    polling: { action: list_contacts, items: "{{ output.contacts }}", id: "{{ item.id }}" }
actions:
  - id: list_contacts
    name: { en: List contacts, ja: 連絡先の一覧 }
    idempotent: true
    request: { method: GET, path: /contacts }
    paginate: { kind: page, items: "{{ response.body.data }}", param: page, size_param: per_page, size: 2 }
    output: { contacts: "{{ items }}", count: "{{ items | length }}" }
    outputs:
      - { name: count, label: { en: Count, ja: 件数 }, kind: integer }
  - id: list_users
    name: { en: List users, ja: ユーザーの一覧 }
    idempotent: true
    request: { method: GET, path: /users }
  - id: create_contact
    name: { en: Create a contact, ja: 連絡先を作成 }
    writes: true
    inputs:
      - { name: name, label: { en: Name, ja: 氏名 }, kind: text, required: true }
      - { name: email, label: { en: Email, ja: メールアドレス }, kind: text, required: true }
      - name: owner
        label: { en: Owner, ja: 担当者 }
        kind: text
        choices_from: { action: list_users, items: "{{ output.users }}", value: "{{ item.id }}", label: "{{ item.name }}" }
    request: { method: POST, path: /contacts, body: { json: { name: "{{ input.name }}", email: "{{ input.email }}" } } }
    outputs:
      - { name: id, label: { en: Contact ID, ja: 連絡先 ID }, kind: text }
"#;

const ACME_ID_APP: &str = r#"flowbot_app: 1
id: acme_id
name: { en: Acme ID, ja: アクメ ID }
connection:
  fields:
    - { name: base_url, label: { en: API URL, ja: API URL }, kind: text, required: true }
    - { name: client_id, label: { en: Client ID, ja: クライアント ID }, kind: text, required: true }
  base_url: "{{ connection.base_url }}"
  auth:
    kind: oauth2
    grant: authorization_code
    authorize_url: "{{ connection.base_url }}/oauth/authorize"
    token_url: /oauth/token
    scopes: [profile]
    client_id: "{{ connection.client_id }}"
  test: me
actions:
  - id: me
    name: { en: Who am I, ja: 自分の情報 }
    idempotent: true
    request: { method: GET, path: /me }
"#;

fn hmac_hex(secret: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A user drops app files into the apps directory, starts flowbot, connects the OAuth app
/// on the connections page and builds a flow with the API-key app in the no-code editor:
/// its signed webhook trigger captured as the sample, a paginated list step tested, a
/// create step mapped from the picker; ON, a signed webhook runs it and a forged one is
/// refused; a flow on its polling trigger runs for each contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_drops_app_files_in_and_builds_a_flow_with_them_in_the_editor() {
    let (acme, contacts) = acme_api().await;
    let apps_dir = tempfile::tempdir().unwrap();
    std::fs::write(apps_dir.path().join("acme.yaml"), ACME_APP).unwrap();
    std::fs::create_dir(apps_dir.path().join("acme-id")).unwrap();
    std::fs::write(apps_dir.path().join("acme-id/app.yaml"), ACME_ID_APP).unwrap();
    std::fs::write(
        apps_dir.path().join("acme-id/icon.svg"),
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="teal"/></svg>"#,
    )
    .unwrap();
    // A broken file beside them is shown, located, and stops nothing.
    std::fs::write(
        apps_dir.path().join("broken.yaml"),
        "flowbot_app: 1\nid: broken\nactoins: []\n",
    )
    .unwrap();
    let (apps, broken) = flowbot_connectors::registry_with(Some(apps_dir.path()));
    assert_eq!(broken.len(), 1, "{broken:?}");
    let e = boot_with(false, apps).await;
    let (url, c) = (e.url.clone(), e.c.clone());
    e.c.goto(&format!("{url}/login")).await.unwrap();
    sign_in(&e).await;
    c.goto(&format!("{url}/apps")).await.unwrap();
    let page = e.find("main").await.text().await.unwrap();
    assert!(
        page.contains("broken.yaml") && page.contains("3:1: unknown field `actoins`"),
        "{page}"
    );
    assert!(
        page.contains("acme_id") && page.contains("アクメ"),
        "{page}"
    );
    // The OAuth app's folder has an icon: shown beside its name.
    e.find(r#"img.app-icon[src="/api/v1/apps/acme_id/icon"]"#)
        .await;
    let loaded = c
        .execute(
            "const i = document.querySelector('img.app-icon'); return i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded, json!(true), "the icon loads under the CSP");

    // The OAuth app: a connection made on the connections page, then connected through
    // the app's approval page and back.
    c.goto(&format!("{url}/connections")).await.unwrap();
    e.click("details:has(#acme_id-name) summary").await;
    e.fill("#acme_id-name", "アクメ ID").await;
    e.fill("#acme_id-base_url", &acme).await;
    e.fill("#acme_id-client_id", "cid").await;
    e.click("details[open] button[type=submit]").await;
    e.click("button[data-navigate=authorize_url]").await;
    let c2 = c.clone();
    until("the way back from the approval page", move || {
        let c = c2.clone();
        async move {
            c.current_url()
                .await
                .is_ok_and(|u| u.query() == Some("connected=1"))
        }
    })
    .await;
    let id_conn = e
        .store
        .connections()
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.app == "acme_id")
        .unwrap();
    let sealed = e.store.connection(&id_conn.id).await.unwrap();
    assert_eq!(sealed.setting_str("refresh_token"), Some("rt-1"));
    e.click(&format!(
        r#"button[data-path="/api/v1/connections/{}/test"]"#,
        id_conn.id
    ))
    .await;
    let c2 = c.clone();
    let target = format!("test-{}", id_conn.id);
    until("the OAuth connection's test", move || {
        let (c, target) = (c2.clone(), target.clone());
        async move {
            c.find(Locator::Id(&target))
                .await
                .unwrap()
                .text()
                .await
                .unwrap_or_default()
                .contains("true")
        }
    })
    .await;
    shot(&c, "30-app-file-oauth-connected").await;

    // The API-key app's connection, as saved on the same page.
    let conn = e
        .store
        .save_connection(
            "アクメ",
            "acme",
            &obj(json!({ "api_key": "k1", "webhook_secret": "whsec", "base_url": acme })),
            "t",
        )
        .await
        .unwrap();

    // The editor: the signed webhook trigger, a paginated list step, a create step.
    c.goto(&format!("{url}/flows/new")).await.unwrap();
    e.fill("#ed-id", "acme-copy").await;
    e.fill("#ed-name", "アクメの連絡先をコピー").await;
    e.click("#ed-trigger-open").await;
    e.choose("#t-app", "acme").await;
    e.click("#t-ev-contact_created").await;
    e.choose("#f-connection", &conn.id).await;
    e.add("#ed-add", "アクメ", "acme.list_contacts").await;
    e.fill("#f-id", "all").await;
    e.choose("#f-connection", &conn.id).await;
    e.settled().await;
    e.test_step().await;
    assert_eq!(
        e.result_value("count").await,
        "5",
        "all five contacts over three pages"
    );
    e.add("#ed-add", "アクメ", "acme.create_contact").await;
    e.fill("#f-id", "copy").await;
    e.choose("#f-connection", &conn.id).await;
    e.fill("#f-in-name", "コピー").await;
    // The owner's choices come from the app's user list.
    let c2 = c.clone();
    until("the owner choices from list_users", move || {
        let c = c2.clone();
        async move {
            c.execute(
                "return document.querySelector('#dl-ch-owner')?.innerHTML || '';",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .is_some_and(|h| h.contains("u1") && h.contains("佐藤"))
        }
    })
    .await;
    e.fill("#f-in-owner", "u1").await;
    // The required email takes the trigger's email (not one from inside the list found).
    assert_eq!(e.value("#f-in-email").await, "{{ trigger.email }}");
    e.save().await;
    at(&c, "/flows/acme-copy").await;
    assert_eq!(e.problems().await, "", "no problems");
    shot(&c, "31-app-file-editor").await;

    // The flow page says how to register the webhook in the app.
    e.click("#flow-settings > summary").await;
    let setup = e.find("#webhook-setup").await.text().await.unwrap();
    assert!(setup.contains("設定 → Webhook"), "{setup}");

    // A signed webhook captured by "test trigger" becomes the trigger's sample.
    let info = e.store.flow("acme-copy").await.unwrap();
    let hook = format!("{url}/hooks/acme-copy/{}", info.webhook_token);
    let send = |body: &'static str, signature: String| {
        reqwest::Client::new()
            .post(&hook)
            .header("content-type", "application/json")
            .header("x-acme-event", "contact.created")
            .header("x-acme-signature", signature)
            .body(body)
            .send()
    };
    e.click("#ed-trigger-open").await;
    e.click("#t-wait").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sample = r#"{"id":"c9","email":"sample@example.jp"}"#;
    assert_eq!(
        send(sample, hmac_hex("whsec", sample))
            .await
            .unwrap()
            .status(),
        200
    );
    until_text(
        &c,
        "ed-test-result",
        "sample@example.jp",
        "the captured webhook",
    )
    .await;

    // ON: a signed webhook runs the flow; a forged one is refused.
    e.store.set_enabled("acme-copy", true, "t").await.unwrap();
    let body = r#"{"id":"c10","email":"new@example.jp"}"#;
    assert_eq!(send(body, "00".repeat(32)).await.unwrap().status(), 401);
    assert_eq!(
        send(body, hmac_hex("whsec", body)).await.unwrap().status(),
        202
    );
    let s = e.store.clone();
    until("the acme run to succeed", move || {
        let s = s.clone();
        async move {
            runs(&s, RunStatus::Succeeded)
                .await
                .iter()
                .any(|r| r.flow_id == "acme-copy")
        }
    })
    .await;
    assert!(
        contacts
            .lock()
            .unwrap()
            .iter()
            .any(|x| x["email"] == "new@example.jp" && x["name"] == "コピー"),
        "{:?}",
        contacts.lock().unwrap()
    );

    // The polling trigger: one run per contact listed.
    let polling = "version: 1\nid: acme-poll\nname: poll\nconnections:\n  acme: { app: acme }\ntrigger: { app: acme, events: [new_contacts], connection: acme, options: { interval: 1m } }\nsteps:\n  - id: note\n    set: { email: \"{{ trigger.email }}\" }\n";
    e.store
        .import_flow("acme-poll", "poll", polling, "t")
        .await
        .unwrap();
    e.store
        .bind_connection("acme-poll", "acme", &conn.id, "t")
        .await
        .unwrap();
    e.store.set_enabled("acme-poll", true, "t").await.unwrap();
    let s = e.store.clone();
    let listed = contacts.lock().unwrap().len();
    until("a run for each polled contact", move || {
        let s = s.clone();
        async move {
            runs(&s, RunStatus::Succeeded)
                .await
                .iter()
                .filter(|r| r.flow_id == "acme-poll")
                .count()
                == listed
        }
    })
    .await;
    c.close().await.unwrap();
    e.stop.cancel();
}

/// Sign out through the header's button and land on the sign-in page.
async fn sign_out(e: &Editor) {
    e.click(r#"button[data-path="/api/v1/logout"]"#).await;
    at(&e.c, "/login").await;
}

/// Invite someone from the members page; the link the page shows to copy.
async fn invite(e: &Editor, email: &str, role: &str) -> String {
    e.c.goto(&format!("{}/members", e.url)).await.unwrap();
    e.fill("#inv-email", email).await;
    e.choose("#inv-role", role).await;
    e.click(r#"form[data-api="/api/v1/invitations"] button[type=submit]"#)
        .await;
    until_text(&e.c, "invite-link-text", "/invite/", "the invitation link").await;
    e.find("#invite-link-text").await.text().await.unwrap()
}

/// Open an invitation link, choose a name and a password, and land on the home page.
async fn join(e: &Editor, link: &str, username: &str, display: &str) {
    e.c.goto(link).await.unwrap();
    e.fill("#j-user", username).await;
    e.fill("#j-name", display).await;
    e.fill("#j-pw", "a long team password").await;
    e.click(r#"form[data-api="/api/v1/invitations/accept"] button[type=submit]"#)
        .await;
    at(&e.c, "/").await;
}

/// The team's day: the owner invites an editor and a viewer, the editor joins with a
/// password and builds and turns ON a flow, the viewer joins through the identity provider
/// and sees its runs but can neither open the connections nor re-run, and the audit page
/// shows each action by the right person.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_invites_an_editor_and_a_viewer_who_each_do_what_their_role_allows() {
    let idp = flowbot_sandbox::oidc::start(Default::default(), 0)
        .await
        .unwrap();
    let client = idp.sim.config().client.clone();
    let e = boot_full(
        true,
        flowbot_connectors::registry(),
        Some(flowbot_server::sso::SsoConfig {
            issuer: idp.url.clone(),
            client_id: client.client_id,
            client_secret: client.client_secret,
            groups_claim: "groups".into(),
            role_map: Vec::new(),
            allowed_domains: Vec::new(),
            default_role: flowbot_store::Role::Viewer,
            owners_only_passwords: false,
        }),
    )
    .await;
    let (url, c) = (e.url.clone(), e.c.clone());
    c.goto(&format!("{url}/login")).await.unwrap();
    sign_in(&e).await;
    let editor_link = invite(&e, "hanako@example.co.jp", "editor").await;
    shot(&c, "40-members-invited").await;
    let viewer_link = invite(&e, "jiro@example.co.jp", "viewer").await;
    assert_ne!(editor_link, viewer_link);
    c.goto(&format!("{url}/members")).await.unwrap();
    let listed = e.find("main").await.text().await.unwrap();
    assert!(listed.contains("hanako@example.co.jp") && listed.contains("jiro@example.co.jp"));
    // A project for the sales team's automations.
    c.goto(&format!("{url}/projects")).await.unwrap();
    e.fill("#new-project", "営業").await;
    e.click(r#"form[data-api="/api/v1/projects"] button[type=submit]"#)
        .await;
    let s = e.store.clone();
    until("the project made", move || {
        let s = s.clone();
        async move { s.projects().await.unwrap().len() == 2 }
    })
    .await;
    let sales = e
        .store
        .projects()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "営業")
        .unwrap()
        .id;
    shot(&c, "40-projects").await;
    sign_out(&e).await;

    // The editor joins, works in the sales project, shares the default project's
    // connections with it, and builds the customer sync there from the template.
    join(&e, &editor_link, "hanako", "山田 花子").await;
    c.goto(&format!("{url}/connections?project=default"))
        .await
        .unwrap();
    let conns = e.store.connections().await.unwrap();
    for conn in &conns {
        e.click(&format!(
            r#"details:has(form[data-api="/api/v1/connections/{}/shares"]) > summary"#,
            conn.id
        ))
        .await;
        e.click(&format!(
            r#"form[data-api="/api/v1/connections/{}/shares"] input[value="{sales}"]"#,
            conn.id
        ))
        .await;
        e.click(&format!(
            r#"form[data-api="/api/v1/connections/{}/shares"] button[type=submit]"#,
            conn.id
        ))
        .await;
        let (s, id, p) = (e.store.clone(), conn.id.clone(), sales.clone());
        until("the connection shared", move || {
            let (s, id, p) = (s.clone(), id.clone(), p.clone());
            async move {
                s.connections()
                    .await
                    .unwrap()
                    .iter()
                    .any(|c| c.id == id && c.shared_with.contains(&p))
            }
        })
        .await;
        // The page comes back with the share boxes folded again.
        c.goto(&format!("{url}/connections?project=default"))
            .await
            .unwrap();
    }
    c.goto(&format!("{url}/templates")).await.unwrap();
    e.choose("#project-switch", &sales).await;
    let tpl = "ecforce-customer-to-salesforce";
    e.click(&format!(
        r#"button[data-path="/api/v1/templates/{tpl}/import?project={sales}"]"#
    ))
    .await;
    at(&c, &format!("/flows/{tpl}")).await;
    assert_eq!(e.store.flow(tpl).await.unwrap().project_id, sales);
    let conns = e.store.connections().await.unwrap();
    for slot in ["ecforce", "salesforce"] {
        let id = &conns.iter().find(|x| x.app == slot).unwrap().id;
        e.choose(&format!("#slot-{slot}"), id).await;
        e.click(&format!("form:has(#slot-{slot}) button[type=submit]"))
            .await;
        let (s, slot) = (e.store.clone(), slot.to_string());
        until("the slot bound", move || {
            let (s, slot) = (s.clone(), slot.clone());
            async move { s.flow_bindings(tpl).await.unwrap().contains_key(&slot) }
        })
        .await;
    }
    c.goto(&format!("{url}/flows/{tpl}")).await.unwrap();
    e.click("#offer-on button").await;
    let (s, c2) = (e.store.clone(), c.clone());
    until("the flow ON", move || {
        let (s, c) = (s.clone(), c2.clone());
        async move {
            // The page may first ask about inputs the samples leave empty.
            if c.get_alert_text().await.is_ok() {
                let _ = c.accept_alert().await;
            }
            s.flow(tpl).await.unwrap().enabled
        }
    })
    .await;
    shot(&c, "41-editor-flow-on").await;
    let info = e.store.flow(tpl).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/{}/{}", info.id, info.webhook_token))
        .header("x-ecf-event", "customer_created")
        .json(&json!({"id": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Whatever the run's outcome: the viewer is to see it, and not to re-run it.
    let finished = |s: Store| async move {
        let mut done = runs(&s, RunStatus::Succeeded).await;
        done.extend(runs(&s, RunStatus::Failed).await);
        done
    };
    let s = e.store.clone();
    until("the run done", move || {
        let s = s.clone();
        async move { !finished(s).await.is_empty() }
    })
    .await;
    let run = finished(e.store.clone()).await.remove(0);
    sign_out(&e).await;

    // The viewer joins through the company's identity provider, and sees the run, but
    // not the connections, and cannot re-run or save.
    c.goto(&viewer_link).await.unwrap();
    e.click("#sso-join").await;
    e.choose("#sub", "00u-jiro").await;
    shot(&c, "42-idp-sign-in").await;
    e.click("#idp-sign-in").await;
    at(&c, "/").await;
    c.goto(&format!("{url}/runs/{}", run.id)).await.unwrap();
    e.find("main h2").await;
    assert!(c
        .find(Locator::Css(r#"button[data-path$="/rerun"]"#))
        .await
        .is_err());
    shot(&c, "43-viewer-run").await;
    let nav = e.find("header nav").await.text().await.unwrap();
    assert!(
        !nav.contains("マイアプリ連携") && !nav.contains("Connections"),
        "{nav}"
    );
    c.goto(&format!("{url}/connections")).await.unwrap();
    let refused = e.find("main h1").await.text().await.unwrap();
    assert!(refused.contains("権限がありません"), "{refused}");
    console(&c).await;
    c.goto(&format!("{url}/flows/{tpl}")).await.unwrap();
    e.find("#read-only-note").await;
    // The editor still draws the flow for a reader (its script runs without the save
    // button), and the webhook URL's secret is not shown.
    e.find("#ed-trigger-open").await;
    assert!(c.find(Locator::Id("ed-save")).await.is_err());
    assert!(c.find(Locator::Id("webhook-url")).await.is_err());
    let errors: Vec<String> = console(&c)
        .await
        .into_iter()
        .filter(|l| l.contains("SEVERE"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    sign_out(&e).await;

    // The owner's audit page names each of them for what they did.
    sign_in(&e).await;
    c.goto(&format!("{url}/audit")).await.unwrap();
    let rows: Vec<String> = {
        let mut out = Vec::new();
        for row in c.find_all(Locator::Css("main tbody tr")).await.unwrap() {
            out.push(row.text().await.unwrap());
        }
        out
    };
    shot(&c, "44-audit").await;
    for (who, what) in [
        ("admin", "member.invite"),
        ("hanako", "member.join"),
        ("hanako", "flow.import"),
        ("hanako", "flow.bind_connection"),
        ("hanako", "flow.enable"),
        ("jiro", "member.join"),
        ("jiro", "session.sign_in"),
    ] {
        assert!(
            rows.iter().any(|r| r.contains(who) && r.contains(what)),
            "no row of {who} doing {what}:\n{}",
            rows.join("\n")
        );
    }
    e.stop.cancel();
}

/// Two-factor sign-in set up on the account page with a code from "the phone" (computed
/// here from the key the page shows), then asked for at the next sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_turns_on_two_factor_sign_in_and_is_asked_for_a_code_next_time() {
    let e = boot(false).await;
    let (url, c) = (e.url.clone(), e.c.clone());
    c.goto(&format!("{url}/login")).await.unwrap();
    sign_in(&e).await;
    c.goto(&format!("{url}/account")).await.unwrap();
    e.click("#tf-start").await;
    until_text(&c, "tf-secret", "", "the key").await;
    let key = e.find("#tf-secret").await.text().await.unwrap();
    assert!(key.len() >= 26, "{key}");
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        totp_rs::Secret::Encoded(key).to_bytes().unwrap(),
    )
    .unwrap();
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    shot(&c, "45-two-factor-setup").await;
    e.fill("#tf-code", &totp.generate(step * 30)).await;
    e.click("#tf-confirm button[type=submit]").await;
    e.find("#tf-codes li").await;
    let codes = e.find("#tf-codes").await.text().await.unwrap();
    assert_eq!(codes.lines().count(), 10, "{codes}");
    sign_out(&e).await;
    e.fill("#password", PASSWORD).await;
    e.click("form button[type=submit]").await;
    // The password was right: the page asks for the code.
    e.find("#code:not([disabled])").await;
    shot(&c, "46-two-factor-sign-in").await;
    e.fill("#code", &totp.generate((step + 1) * 30)).await;
    e.click("form button[type=submit]").await;
    at(&c, "/").await;
    e.stop.cancel();
}

/// Sign in on the login page as `name`.
async fn sign_in_as(e: &Editor, name: &str, password: &str) {
    e.c.goto(&format!("{}/login", e.url)).await.unwrap();
    e.fill("#username", name).await;
    e.fill("#password", password).await;
    e.click("form button[type=submit]").await;
    at(&e.c, "/").await;
}

/// Open My Tasks from the menu (its badge counts what waits) and the first request.
async fn open_first_task(e: &Editor) -> String {
    let badge = e.find("#tasks-badge").await.text().await.unwrap();
    assert_eq!(badge, "1", "the menu's badge counts the request");
    e.click("#nav-tasks").await;
    at(&e.c, "/tasks").await;
    e.click("#tasks-open li a").await;
    e.find("#task-form").await;
    e.find("#task-message").await.text().await.unwrap()
}

/// Press a decision button and land back on My Tasks, told it was recorded.
async fn decide_in_browser(e: &Editor, decision: &str) {
    e.click(&format!("#task-form button[value={decision}]"))
        .await;
    at(&e.c, "/tasks").await;
    e.find("#task-done").await;
}

/// People in the loop in the browser: a customer sends the refund form on a phone; the
/// desk (an operator) completes the task; one manager sends it back with a comment; the
/// desk sees the comment and completes it again; another manager approves; the run page
/// shows who was asked and who decided what, and the audit log has every decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_is_sent_on_a_phone_checked_sent_back_and_approved_in_my_tasks() {
    const FLOW: &str = r#"version: 1
id: refund
name: 返金申請
trigger:
  app: form
  options:
    title: 返金申請
    fields:
      - { key: order_no, label: 注文番号, required: true }
      - { key: email, label: メールアドレス, type: email, required: true }
      - { key: amount, label: 金額, type: number, required: true, min: 1 }
steps:
  - id: desk
    name: 担当者確認
    task:
      to: { roles: [operator] }
      message: "注文 {{ trigger.order_no }} {{ trigger.amount }} 円 {{ sent_back.comment }}"
      fields:
        - { key: refund, label: 返金額, type: number, required: true }
  - id: manager
    name: 上長承認
    approval:
      to: { members: [joushi, kacho] }
      message: "{{ desk.answers.refund }} 円の返金"
      send_back_to: desk
      then:
        - id: done
          set: { refund: "{{ desk.answers.refund }}" }
"#;
    const TEAM_PW: &str = "a long team password";
    let e = boot(false).await;
    for (name, role) in [
        ("tantou", flowbot_store::Role::Operator),
        ("joushi", flowbot_store::Role::Admin),
        ("kacho", flowbot_store::Role::Admin),
    ] {
        let mut new = flowbot_store::NewUser::basic(
            name,
            &flowbot_server::auth::hash_password(TEAM_PW),
            role,
        );
        new.email = format!("{name}@example.jp");
        e.store.create_user(new, "t").await.unwrap();
    }
    let info = e
        .store
        .import_flow("refund", "返金申請", FLOW, "t")
        .await
        .unwrap();
    e.store.set_enabled("refund", true, "t").await.unwrap();

    // The customer, on a phone: a wrong answer is shown next to its field, then sent.
    e.c.set_window_size(390, 844).await.unwrap();
    e.c.goto(&format!("{}/forms/refund/{}", e.url, info.webhook_token))
        .await
        .unwrap();
    e.fill("#f-order_no", "A-10023").await;
    e.fill("#f-email", "not-an-address").await;
    e.fill("#f-amount", "3000").await;
    e.click("form button[type=submit]").await;
    e.find("#e-email").await;
    e.fill("#f-email", "taro@example.jp").await;
    e.click("form button[type=submit]").await;
    e.find("#form-sent").await;
    shot(&e.c, "people-form-phone").await;
    e.c.set_window_size(1280, 900).await.unwrap();
    until("the form's run to wait", || async {
        !runs(&e.store, RunStatus::Waiting).await.is_empty()
    })
    .await;
    let run = runs(&e.store, RunStatus::Waiting).await[0].id.clone();

    // The desk completes the task; a wrong answer first is refused next to its field.
    sign_in_as(&e, "tantou", TEAM_PW).await;
    let message = open_first_task(&e).await;
    assert!(message.contains("A-10023"), "{message}");
    decide_in_browser_refused(&e).await;
    e.fill("#f-refund", "3000").await;
    decide_in_browser(&e, "complete").await;
    sign_out(&e).await;

    // One manager sends it back with a comment.
    sign_in_as(&e, "kacho", TEAM_PW).await;
    let message = open_first_task(&e).await;
    assert!(message.contains("3000 円の返金"), "{message}");
    e.fill("#f-comment", "送料を除いてください").await;
    decide_in_browser(&e, "send_back").await;
    sign_out(&e).await;

    // The desk sees the comment and completes it again.
    sign_in_as(&e, "tantou", TEAM_PW).await;
    let message = open_first_task(&e).await;
    assert!(message.contains("送料を除いてください"), "{message}");
    e.fill("#f-refund", "2500").await;
    decide_in_browser(&e, "complete").await;
    // An operator reads the run they were asked in.
    e.c.goto(&format!("{}/runs/{run}", e.url)).await.unwrap();
    e.find("#request-1").await;
    sign_out(&e).await;

    // The other manager approves.
    sign_in_as(&e, "joushi", TEAM_PW).await;
    let message = open_first_task(&e).await;
    assert!(message.contains("2500 円の返金"), "{message}");
    decide_in_browser(&e, "approve").await;
    sign_out(&e).await;
    until("the run to succeed", || async {
        e.store.run(&run).await.unwrap().status == RunStatus::Succeeded
    })
    .await;

    // The owner reads the run's history and the audit log.
    sign_in_as(&e, "admin", PASSWORD).await;
    e.c.goto(&format!("{}/runs/{run}", e.url)).await.unwrap();
    let history = e.find("main").await.text().await.unwrap();
    for who in ["tantou", "kacho", "joushi", "送料を除いてください"] {
        assert!(history.contains(who), "the run page names {who}: {history}");
    }
    assert!(
        e.c.find(Locator::Id("request-4")).await.is_ok(),
        "four requests: {history}"
    );
    shot(&e.c, "people-run-history").await;
    e.c.goto(&format!("{}/audit", e.url)).await.unwrap();
    let audit = e.find("main").await.text().await.unwrap();
    for action in ["request.complete", "request.send_back", "request.approve"] {
        assert!(
            audit.contains(action),
            "the audit log has {action}: {audit}"
        );
    }
}

/// Complete the task with its required answer left empty: the page says why, next to the
/// field, and stays.
async fn decide_in_browser_refused(e: &Editor) {
    e.click("#task-form button[value=complete]").await;
    e.find("#e-refund").await;
    assert!(e
        .c
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/tasks/"));
}

/// A form and its approval built in the editor's forms: the form trigger's fields (a
/// select with its choices), then an approval asking a role with a message, a send-back
/// step and a deadline that escalates, and a task with a form of its own; the saved file
/// holds exactly that and validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_form_its_approval_and_a_task_are_built_in_the_editor() {
    let e = editor_session().await;
    let c = e.c.clone();
    e.click("#new-flow").await;
    at(&c, "/flows/new").await;
    e.fill("#ed-id", "leave").await;
    e.fill("#ed-name", "休暇申請").await;

    // The form trigger and two fields.
    e.click("#ed-trigger-open").await;
    e.choose("#t-app", "form").await;
    e.fill("#t-form-title", "休暇申請").await;
    e.click("#t-fields-add").await;
    e.fill("#t-fields-0-label", "氏名").await;
    e.fill("#t-fields-0-key", "name").await;
    e.click("#t-fields-0-required").await;
    e.click("#t-fields-add").await;
    e.fill("#t-fields-1-label", "種別").await;
    e.fill("#t-fields-1-label-en", "Kind").await;
    e.fill("#t-fields-1-key", "kind").await;
    e.choose("#t-fields-1-type", "select").await;
    e.fill("#t-fields-1-choices", "有給, 特別休暇").await;

    // A computed value, then the approval after it.
    e.add("#ed-add", "set", "set").await;
    e.add("#ed-add", "approval", "approval").await;
    e.fill("#p-message", "{{ trigger.name }} さんの休暇申請")
        .await;
    e.click("#p-to-role-admin").await;
    e.click("#p-to-role-owner").await;
    e.choose("#p-back", "values").await;
    e.fill("#p-after", "2d").await;
    e.choose("#p-then", "escalate").await;
    e.find("#p-esc-role-owner").await;

    // A task with a form of its own.
    e.add("#ed-add", "task", "task").await;
    e.fill("#p-message", "手続きしてください").await;
    e.fill("#p-fields-0-label", "手続き番号").await;
    e.fill("#p-fields-0-key", "ticket").await;
    e.click("#p-fields-0-required").await;
    e.settled().await;
    assert_eq!(
        e.problems().await.trim(),
        "",
        "the flow reads back without problems"
    );
    e.save().await;

    let (flow, yaml) = saved_flow(&e, "leave").await;
    let spec = flowbot_core::form::parse(&flow.trigger.options).unwrap();
    let keys: Vec<&str> = spec.fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["name", "kind"]);
    assert_eq!(spec.fields[1].choices, ["有給", "特別休暇"]);
    assert_eq!(
        (
            spec.fields[1].label.ja.as_str(),
            spec.fields[1].label.en.as_str()
        ),
        ("種別", "Kind"),
        "a label in both languages"
    );
    assert_eq!(spec.fields[0].label.en, "氏名", "one language serves both");
    assert!(spec.fields[0].required);
    let approval = flow.steps.iter().find_map(|s| match &s.kind {
        flowbot_core::model::StepKind::Approval(p) => Some(p),
        _ => None,
    });
    let approval = approval.expect("an approval step");
    assert_eq!(
        approval.to.roles,
        ["owner"],
        "admin ticked and unticked: {yaml}"
    );
    assert_eq!(approval.send_back_to.as_deref(), Some("values"));
    let deadline = approval.deadline.as_ref().unwrap();
    assert_eq!(deadline.then, flowbot_core::model::AtDeadline::Escalate);
    assert_eq!(deadline.after, Duration::from_secs(2 * 86400));
    let task = flow.steps.iter().find_map(|s| match &s.kind {
        flowbot_core::model::StepKind::Task(p) => Some(p),
        _ => None,
    });
    let fields = task.expect("a task step").fields.clone().unwrap();
    assert_eq!(fields[0]["key"], "ticket");
    assert_eq!(fields.as_array().unwrap().len(), 1, "{yaml}");
}

/// The rows of the grid as it shows them: row id → the cells' texts.
async fn grid_rows(c: &Client) -> Vec<Vec<String>> {
    let v = c
        .execute(
            "return [...document.querySelectorAll('#grid tbody tr')].map(r => [...r.children].slice(1).map(td => td.innerText.trim()));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Wait until the grid has loaded its page.
async fn grid_loaded(c: &Client) {
    let c = c.clone();
    until("the grid's page", move || {
        let c = c.clone();
        async move {
            c.execute(
                "return !!document.querySelector('#grid') && document.querySelector('#grid-app').dataset.loading === undefined;",
                vec![],
            )
            .await
            .is_ok_and(|v| v == json!(true))
        }
    })
    .await;
}

/// A table built in the browser, a Shift_JIS CSV refused whole for its bad line (named),
/// fixed and imported — a table-trigger run for each row — then the grid filtered and a row
/// edited in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_is_built_filled_from_a_shift_jis_csv_filtered_and_edited_in_the_grid() {
    let e = editor_session().await;
    let c = e.c.clone();
    e.store
        .import_flow(
            "welcome",
            "会員に挨拶",
            "version: 1\nid: welcome\nname: 会員に挨拶\ntrigger:\n  app: table\n  event: row_created\n  options: { table: 会員 }\nsteps:\n  - id: hello\n    set: { to: \"{{ trigger.row.email }}\" }\n",
            "t",
        )
        .await
        .unwrap();
    e.store.set_enabled("welcome", true, "t").await.unwrap();

    // The table: three columns, made in the new-table form.
    c.goto(&format!("{}/tables?lang=ja", e.url)).await.unwrap();
    e.fill("#nt-name", "会員").await;
    e.fill("#col-key-0", "email").await;
    e.fill("#col-label-0", "メール").await;
    e.choose("#col-type-0", "email").await;
    e.click("#col-required-0").await;
    e.click("#col-unique-0").await;
    e.click("#col-add").await;
    e.fill("#col-key-1", "name").await;
    e.fill("#col-label-1", "氏名").await;
    e.click("#col-add").await;
    e.fill("#col-key-2", "points").await;
    e.fill("#col-label-2", "ポイント").await;
    e.choose("#col-type-2", "number").await;
    e.click("#nt-create").await;
    let c2 = c.clone();
    until("the table's page", move || {
        let c = c2.clone();
        async move {
            c.current_url()
                .await
                .is_ok_and(|u| u.path().starts_with("/tables/"))
        }
    })
    .await;
    grid_loaded(&c).await;
    let table_id = c.current_url().await.unwrap().path()[8..].to_string();
    assert_eq!(
        e.store.table(&table_id).await.unwrap().schema.columns.len(),
        3
    );

    // A Shift_JIS file whose third line has a bad address: refused whole, the line named.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(text);
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        p.to_string_lossy().into_owned()
    };
    let good = "メール,氏名,ポイント\r\nyamada@example.jp,山田 太郎,1200\r\nsato@example.jp,佐藤 花子,300\r\nsuzuki@example.jp,鈴木 一郎,50\r\n";
    let bad = write("bad.csv", &good.replace("sato@example.jp", "sato@example"));
    e.click("#import-panel summary").await;
    e.find("#csv-file").await.send_keys(&bad).await.unwrap();
    e.choose("#csv-encoding", "shift_jis").await;
    e.click("#csv-import").await;
    let refused = e.shown_text("#csv-result ul.problems").await;
    assert!(
        refused.contains("3 行目「email」") && refused.contains("sato@example"),
        "{refused}"
    );
    assert_eq!(e.store.table(&table_id).await.unwrap().rows, 0);
    shot(&c, "50-table-import-refused").await;
    // Fixed: previewed with the headers mapped to the columns, then imported.
    let fixed = write("fixed.csv", good);
    e.find("#csv-file").await.send_keys(&fixed).await.unwrap();
    e.click("#csv-preview-go").await;
    e.find("#csv-preview").await;
    assert_eq!(e.value("#map-1").await, "name");
    e.click("#csv-import").await;
    let done = e.shown_text("#csv-done").await;
    assert!(done.contains("3 件をインポート"), "{done}");
    grid_loaded(&c).await;
    // A table-trigger run per row, each done.
    let s = e.store.clone();
    until("a run per imported row", move || {
        let s = s.clone();
        async move { runs(&s, RunStatus::Succeeded).await.len() == 3 }
    })
    .await;

    // Filter: more than 100 points leaves two rows.
    e.choose("#filter-column", "points").await;
    e.choose("#filter-op", "greater_than").await;
    e.fill("#filter-value", "100").await;
    e.click("#filter-add").await;
    let c2 = c.clone();
    until("the filtered page", move || {
        let c = c2.clone();
        async move { grid_rows(&c).await.len() == 2 }
    })
    .await;
    assert_eq!(e.find("#grid-total").await.text().await.unwrap(), "2 件");
    // Sort by points, largest first.
    // (Each click redraws the grid: the second waits for the first's page.)
    for order in ["ascending", "descending"] {
        e.click("#sort-points").await;
        let c2 = c.clone();
        until("the sorted page", move || {
            let c = c2.clone();
            async move {
                c.execute(
                    "const th = document.querySelector('#sort-points')?.closest('th'); return !!th && th.getAttribute('aria-sort') === arguments[0] && document.querySelector('#grid-app').dataset.loading === undefined;",
                    vec![json!(order)],
                )
                .await
                .is_ok_and(|v| v == json!(true))
            }
        })
        .await;
    }
    let c2 = c.clone();
    until("the largest first", move || {
        let c = c2.clone();
        async move { grid_rows(&c).await.first().is_some_and(|r| r[3] == "1200") }
    })
    .await;
    // Edit a row in place: a bad number is refused next to its column, then fixed.
    e.click(r#"button[data-edit="2"]"#).await;
    e.fill("#edit-points", "たくさん").await;
    e.click("#edit-save").await;
    let problem = e.shown_text("#grid-problems").await;
    assert!(problem.contains("数値ではありません"), "{problem}");
    e.fill("#edit-points", "350").await;
    e.fill("#edit-name", "佐藤 花子（更新）").await;
    e.click("#edit-save").await;
    let c2 = c.clone();
    until("the edited row", move || {
        let c = c2.clone();
        async move {
            grid_rows(&c)
                .await
                .iter()
                .any(|r| r[2] == "佐藤 花子（更新）" && r[3] == "350")
        }
    })
    .await;
    let row = e.store.table_row(&table_id, "2").await.unwrap();
    assert_eq!(
        (row["name"].as_str(), row["points"].as_i64()),
        (Some("佐藤 花子（更新）"), Some(350))
    );
    shot(&c, "51-table-grid").await;
    // A new flow's table trigger offers the project's tables by name.
    c.goto(&format!("{}/flows/new", e.url)).await.unwrap();
    e.click("#ed-trigger-open").await;
    e.choose("#t-app", "table").await;
    assert_eq!(
        e.find("#t-opt-table")
            .await
            .attr("list")
            .await
            .unwrap()
            .as_deref(),
        Some("dl-tables")
    );
    e.find(r#"#dl-tables option[value="会員"]"#).await;
    e.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_step_and_two_transforms_are_built_and_tested_in_the_editor() {
    let e = editor_session().await;
    let c = e.c.clone();
    e.click("#new-flow").await;
    at(&c, "/flows/new").await;
    e.fill("#ed-id", "tidy-inquiry").await;
    e.fill("#ed-name", "問い合わせを整える").await;
    e.click("#ed-trigger-open").await;
    e.choose("#t-app", "manual").await;

    // 全角 → 半角, tested on its own.
    e.add("#ed-add", "全角", "transform.normalize").await;
    e.fill("#f-id", "tidy").await;
    e.fill("#f-in-text", "ＴＥＬ：０３－１２３４－５６７８　ﾔﾏﾀﾞ")
        .await;
    e.choose("#f-in-mode", "zenkaku_to_hankaku").await;
    e.settled().await;
    let out = e.test_step().await;
    assert_eq!(
        e.result_value("text").await,
        "TEL:03-1234-5678 ﾔﾏﾀﾞ",
        "{out}"
    );

    // A date with a Japanese era, read into its parts.
    e.add("#ed-add", "日付を読み取る", "transform.date_parse")
        .await;
    e.fill("#f-id", "when").await;
    e.fill("#f-in-date", "令和8年11月30日 14時05分").await;
    e.settled().await;
    e.test_step().await;
    assert_eq!(e.result_value("iso").await, "2026-11-30T14:05:00+09:00");
    assert_eq!(e.result_value("weekday_ja").await, "月");

    // A code step over both steps' values, picked from the obtained values.
    e.add("#ed-add", "JavaScript", "code.javascript").await;
    e.fill("#f-id", "shape").await;
    e.fill(
        "#f-in-code",
        "const phone = values.text.match(/[0-9-]{10,}/)[0];\nreturn { phone, day: values.day + '曜日' };",
    )
    .await;
    e.click("#f-in-values-add").await;
    e.fill("#f-in-values-k-0", "text").await;
    e.pick("#f-in-values-v-0", "tidy.text").await;
    e.click("#f-in-values-add").await;
    e.fill("#f-in-values-k-1", "day").await;
    e.pick("#f-in-values-v-1", "when.weekday_ja").await;
    e.settled().await;
    let out = e.test_step().await;
    assert_eq!(e.result_value("phone").await, "03-1234-5678", "{out}");
    assert_eq!(e.result_value("day").await, "月曜日", "{out}");
    shot(&c, "60-editor-code-step").await;

    // A script that never ends is stopped by its limit, and the test says so.
    e.fill("#f-in-code", "while (true) {}").await;
    e.fill("#f-in-time_limit_ms", "200").await;
    e.settled().await;
    let out = e.test_step().await;
    assert!(
        out.contains("200 ms") || out.contains("0.2 s"),
        "the time limit is named: {out}"
    );
    e.fill("#f-in-code", "return { phone: values.text };").await;
    e.settled().await;
    assert_eq!(e.problems().await.trim(), "", "no problems");
    e.save().await;

    let (flow, yaml) = saved_flow(&e, "tidy-inquiry").await;
    let ids: Vec<&str> = flow.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["tidy", "when", "shape"]);
    // The program text is kept as typed, never turned into a template.
    assert!(yaml.contains("return { phone: values.text };"), "{yaml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mail_trigger_s_conditions_are_set_in_the_editor() {
    let e = editor_session().await;
    let c = e.c.clone();
    e.click("#new-flow").await;
    at(&c, "/flows/new").await;
    e.fill("#ed-id", "inbox").await;
    e.fill("#ed-name", "問い合わせメール").await;
    e.click("#ed-trigger-open").await;
    e.choose("#t-app", "mail").await;
    e.click("#t-ev-received").await;
    e.click("#t-cond-add").await;
    e.fill("#t-cond-0-value", "問い合わせ").await;
    e.click("#t-cond-add").await;
    e.choose("#t-cond-1-field", "from").await;
    e.choose("#t-cond-1-op", "regex").await;
    e.fill("#t-cond-1-value", r"@example\.co\.jp>?$").await;
    e.click("#t-cond-add").await;
    e.click("#t-cond-2-remove").await;
    // No address before the server receives mail: the trigger says where it will be.
    let setup = e.shown_text("#t-mail-label + p").await;
    assert!(setup.contains("--smtp-addr"), "{setup}");
    e.add("#ed-add", "set", "set").await;
    e.settled().await;
    assert_eq!(e.problems().await.trim(), "", "no problems");
    e.save().await;

    let (flow, yaml) = saved_flow(&e, "inbox").await;
    let filter = flowbot_core::mail::filter_of(&flow.trigger.options).unwrap();
    let mail = |subject: &str, from: &str| json!({"subject": subject, "from": {"name": "", "address": from}, "text": ""});
    assert!(
        filter.accepts(&mail("お問い合わせ", "taro@example.co.jp")),
        "{yaml}"
    );
    assert!(
        !filter.accepts(&mail("お問い合わせ", "taro@example.com")),
        "{yaml}"
    );
    assert!(
        !filter.accepts(&mail("ご案内", "taro@example.co.jp")),
        "{yaml}"
    );
}
