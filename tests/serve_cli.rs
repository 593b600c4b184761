//! `flowbot serve`: webhooks in, runs executed by the in-process worker, graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use flowbot_store::{RunFilter, RunStatus, Store, StoreConfig};

const FLOW: &str = r#"version: 1
id: hello
name: hello
trigger: { app: webhook }
steps:
  - id: greet
    set: { text: "こんにちは {{ trigger.body.name }}" }
"#;

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

    let mut server = Command::new(bin)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    // The first start also prints the generated admin password; then the address.
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("flowbot serving on ")
                .and_then(|r| r.split(' ').next())
                .map(str::to_string)
        })
        .expect("the server prints its address");
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
    // The worker polls every 200 ms and the run takes milliseconds; the SQLite store is
    // locked while the server runs, so the result is read after a graceful stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let status = server.wait().unwrap();
    assert!(status.success(), "a graceful stop");

    let store = Store::open(&StoreConfig {
        database_url: None,
        data_dir: data,
        secret_key: None,
    })
    .await
    .unwrap();
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
    let steps = store.step_records(&runs[0].id).await.unwrap();
    assert_eq!(steps[0].output.as_ref().unwrap()["text"], "こんにちは 山田");
}
