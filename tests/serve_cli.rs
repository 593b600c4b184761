//! `flowbot serve`: webhooks in, runs executed by the in-process worker, graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowbot_store::{RunFilter, RunStatus, Store, StoreConfig};
use support::Reaped;

mod support;

const FLOW: &str = r#"version: 1
id: hello
name: hello
trigger: { app: webhook }
steps:
  - id: greet
    set: { text: "こんにちは {{ trigger.body.name }}" }
"#;

/// The admin account, holding the API `token`.
async fn admin_with_token(store: &Store, token: &str) {
    flowbot_server::auth::ensure_admin(store, Some("pw"))
        .await
        .unwrap();
    let (user, _) = store.user_for_login("admin").await.unwrap().unwrap();
    store
        .create_api_token(
            &user,
            "test",
            false,
            &flowbot_server::auth::token_hash(token),
            "test",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_accepted_and_run_by_the_server_s_worker() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("hello.yaml");
    std::fs::write(&flow, FLOW).unwrap();
    let bin = env!("CARGO_BIN_EXE_flowbot");
    let data = dir.path().join("data");
    let out = Command::new(bin)
        .args(["import", "--enable", "--data-dir"])
        .arg(&data)
        .arg(&flow)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("webhook path: "))
        .expect("import prints the webhook path")
        .to_string();

    // An API token to watch the run with; the store is closed again before the server
    // opens it (a SQLite store admits one process).
    let config = StoreConfig::sqlite(&data);
    let token = "fbt_serve_test_token_0123456789";
    {
        let store = Store::open(&config).await.unwrap();
        admin_with_token(&store, token).await;
    }

    let mut server = Reaped::new(
        Command::new(bin)
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(&data)
            .env_remove("DATABASE_URL")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = serving_address(&mut server);
    let client = reqwest::Client::new();
    let health = client.get(format!("{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let resp = client
        .post(format!("{addr}{path}"))
        .json(&serde_json::json!({"name": "山田"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: serde_json::Value = resp.json().await.unwrap();
    let run_id = accepted["run_id"]
        .as_str()
        .expect("the run's id")
        .to_string();

    // The server's own worker runs it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let run: serde_json::Value = client
            .get(format!("{addr}/api/v1/runs/{run_id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["run"]["status"] == "succeeded" {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["steps"][0]["output"]["text"], "こんにちは 山田");
    let status = server.stop();
    assert!(status.success(), "a graceful stop");

    // What the server saw is in the store it leaves behind.
    let store = Store::open(&config).await.unwrap();
    let runs = store
        .runs(&RunFilter {
            flow_id: Some("hello".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_export_go_through_the_api_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let token = "fbt_cli_test_token_0123456789";
    admin_with_token(&store, token).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let app = flowbot_server::App::start(
        store.clone(),
        flowbot_connectors::registry(),
        flowbot_server::AppConfig::default(),
        listener,
        stop.clone(),
    )
    .await
    .unwrap();
    let url = app.url();
    let _stop_on_drop = stop.drop_guard();

    let flow = dir.path().join("hello.yaml");
    std::fs::write(&flow, FLOW).unwrap();
    let bin = env!("CARGO_BIN_EXE_flowbot").to_string();
    let (u, f) = (url.clone(), flow.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["import", "--enable", "--server", &u, "--token", token])
            .arg(&f)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("imported flow `hello` as version 1, trigger ON"));
    assert!(store.flow("hello").await.unwrap().enabled);

    let bin = env!("CARGO_BIN_EXE_flowbot").to_string();
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["export", "hello", "--server", &u, "--token", token])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), FLOW);

    let bin = env!("CARGO_BIN_EXE_flowbot").to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["export", "hello", "--server", &url, "--token", "wrong"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_inside_a_run_carry_run_flow_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("hello.yaml");
    std::fs::write(&flow, FLOW).unwrap();
    let bin = env!("CARGO_BIN_EXE_flowbot");
    let data = dir.path().join("data");
    let out = Command::new(bin)
        .args(["import", "--enable", "--data-dir"])
        .arg(&data)
        .arg(&flow)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("webhook path: "))
        .unwrap()
        .to_string();
    let mut server = Reaped::new(
        Command::new(bin)
            .args(["serve", "--port", "0", "--log-format", "json", "--data-dir"])
            .arg(&data)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "info,flowbot_core=debug")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server starts");
        if let Some(rest) = line.strip_prefix("flowbot serving on ") {
            break rest.split(' ').next().unwrap().to_string();
        }
    };
    reqwest::Client::new()
        .post(format!("{addr}{path}"))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    // Read the log until the step's line.
    let mut lines: Vec<serde_json::Value> = Vec::new();
    let in_step = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no step line in {lines:?}"));
        let Ok(line) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if line["fields"]["message"] == "step succeeded" {
            break line;
        }
        lines.push(line);
    };
    server.stop();
    let spans = in_step["spans"].as_array().unwrap();
    let run = spans
        .iter()
        .find(|s| s["name"] == "run")
        .expect("inside the run span");
    assert!(run["run_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(run["flow_id"], "hello");
    assert_eq!(in_step["span"]["step"], "greet");
}

/// Start `flowbot serve` (text or JSON logs, to a file), try a sign-in whose user name holds
/// a forged log line and escape codes, stop the server and return its log.
async fn log_of_a_forged_sign_in(json_logs: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowbot"));
    if json_logs {
        cmd.args(["--log-format", "json"]);
    }
    let mut server = Reaped::new(
        cmd.args(["serve", "--port", "0", "--data-dir"])
            .arg(&data)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "info")
            .env("FLOWBOT_ADMIN_PASSWORD", "pw")
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(a) = log.lines().find_map(|l| {
            l.strip_prefix("flowbot serving on ")
                .and_then(|r| r.split(' ').next())
                .map(str::to_string)
        }) {
            break a;
        }
        assert!(Instant::now() < deadline, "the server did not start: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let forged =
        "eve\n2026-11-30T00:00:00Z  INFO flowbot: FORGED admin signed in\r\x1b[31mred\x1b[0m";
    let r = reqwest::Client::new()
        .post(format!("{addr}/api/v1/login"))
        .json(&serde_json::json!({"username": forged, "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(server.stop().success());
    std::fs::read_to_string(&log_path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_values_cannot_forge_lines_or_colour_the_terminal() {
    let text = log_of_a_forged_sign_in(false).await;
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("failed sign-in"))
        .collect();
    assert_eq!(failed.len(), 1, "one event, one line: {text}");
    assert!(
        failed[0].contains("eve\\n2026"),
        "the newline is shown escaped: {text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("2026-11-30T00:00:00Z")),
        "no forged line: {text}"
    );
    assert!(
        !text.contains('\r') && !text.contains('\x1b'),
        "no raw CR or ESC: {text:?}"
    );

    let json = log_of_a_forged_sign_in(true).await;
    let mut events = 0;
    for line in json.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON value: {e}: {line}"));
        if v["fields"]["message"] == "failed sign-in" {
            assert!(
                v["fields"]["user"]
                    .as_str()
                    .unwrap()
                    .contains("\n2026-11-30T00:00:00Z"),
                "{line}"
            );
            events += 1;
        }
    }
    assert_eq!(events, 1, "{json}");
}

/// The address a `flowbot serve` with piped standard error says it serves on. Standard
/// error is read on to its end, so the server never blocks on a full pipe.
fn serving_address(server: &mut Reaped) -> String {
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("flowbot serving on ")
                .and_then(|r| r.split(' ').next())
                .map(str::to_string)
        })
        .expect("the server prints its address");
    std::thread::spawn(move || lines.for_each(drop));
    addr
}

/// `flowbot serve` on PostgreSQL; its address once it listens.
fn serve_on(data: &std::path::Path, url: &str) -> (Reaped, String) {
    let mut server = Reaped::new(
        Command::new(env!("CARGO_BIN_EXE_flowbot"))
            .args(["serve", "--port", "0", "--no-worker", "--data-dir"])
            .arg(data)
            .env("DATABASE_URL", url)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = serving_address(&mut server);
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_connect_and_a_trigger_capture_may_end_on_another_server() {
    let Some(url) = support::fresh_pg() else {
        eprintln!("TEST_DATABASE_URL is not set: this PostgreSQL test is skipped");
        return;
    };
    let sf = flowbot_sandbox::salesforce::start(Default::default(), 0)
        .await
        .unwrap();
    let cfg = sf.sim.config().clone();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = "fbt_two_servers_token_0123456789";
    let connection_id = {
        let store = Store::open(&StoreConfig {
            database_url: Some(url.clone()),
            data_dir: data.clone(),
            secret_key: None,
        })
        .await
        .unwrap();
        admin_with_token(&store, token).await;
        store
            .import_flow("hello", "hello", FLOW, "t")
            .await
            .unwrap();
        store.set_enabled("hello", true, "t").await.unwrap();
        let settings = match serde_json::json!({"my_domain_url": sf.url, "client_id": cfg.client_id, "client_secret": cfg.client_secret})
        {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        store
            .save_connection("org", "salesforce", &settings, "t")
            .await
            .unwrap()
            .id
    };
    // Two servers on one database, as behind a load balancer.
    let (_a, a) = serve_on(&data, &url);
    let (_b, b) = serve_on(&data, &url);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // OAuth: started on A, the browser comes back to B.
    let started: serde_json::Value = http
        .post(format!(
            "{a}/api/v1/connections/{connection_id}/oauth/start"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authorize = started["authorize_url"].as_str().unwrap();
    let approved = http.get(authorize).send().await.unwrap();
    let callback = approved.headers()["location"].to_str().unwrap().to_string();
    let back = format!("{b}/oauth/callback?{}", callback.split_once('?').unwrap().1);
    let r = http.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let tested: serde_json::Value = http
        .post(format!("{a}/api/v1/connections/{connection_id}/test"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(
        sf.sim.stats()["refreshes"],
        1,
        "it signs in with the refresh token now"
    );
    let replay = http.get(&back).send().await.unwrap();
    assert_eq!(replay.status(), 400, "a callback is taken once");

    // Test trigger: waiting on A, the webhook reaches B.
    let waiting = http
        .post(format!("{a}/api/v1/flows/hello/test-trigger?wait=20"))
        .bearer_auth(token)
        .send();
    let waiter = tokio::spawn(async move {
        waiting
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hook: serde_json::Value = http
        .get(format!("{a}/api/v1/flows/hello"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = hook["webhook_path"].as_str().unwrap();
    let r = http
        .post(format!("{b}{path}"))
        .json(&serde_json::json!({"name": "別サーバー"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = waiter.await.unwrap();
    assert_eq!(got["received"], true, "{got}");
    assert_eq!(got["trigger"]["body"]["name"], "別サーバー");
}
