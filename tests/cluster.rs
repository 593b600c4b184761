//! `flowbot cluster`: one server and three worker processes on one PostgreSQL database take a
//! 1,000-customer burst from the ecforce simulator; every run happens exactly once and the
//! work is spread over the workers.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowbot_store::{RunFilter, RunStatus, Store, StoreConfig};
use serde_json::{json, Value};
use support::{fresh_pg, read_ready, Reaped};

mod support;

const FLOW: &str = "ecforce-customer-to-salesforce-upsert";
const CUSTOMERS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_and_three_workers_run_a_thousand_syncs_exactly_once() {
    let Some(url) = fresh_pg() else {
        eprintln!("TEST_DATABASE_URL is not set: the cluster needs PostgreSQL; skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Reaped::new(
        Command::new(env!("CARGO_BIN_EXE_flowbot"))
            .args(["cluster", "--port", "0", "--workers", "3", "--data-dir"])
            .arg(dir.path())
            .env("DATABASE_URL", &url)
            .env("FLOWBOT_ADMIN_PASSWORD", "cluster test")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let printed = read_ready(&mut cluster, "flowbot cluster");
    let find = |label: &str| -> String {
        printed
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("`{label}` in {printed:?}"))
    };
    let ecforce = find("ecforce simulator");
    let salesforce = find("Salesforce simulator");

    let http = reqwest::Client::new();
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..CUSTOMERS {
        let (http, ecforce) = (http.clone(), ecforce.clone());
        batch.spawn(async move {
            let r = http
                .post(format!("{ecforce}/__control/customers"))
                .json(&json!({"email": format!("c{i}@example.jp"), "name01": "群", "name02": format!("{i}")}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        });
        if batch.len() >= 16 {
            batch.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = batch.join_next().await {
        r.unwrap();
    }

    let store = Store::open(&StoreConfig {
        database_url: Some(url.clone()),
        data_dir: dir.path().join("reader"),
        secret_key: None,
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = store
            .count_runs(Some(FLOW), RunStatus::Succeeded)
            .await
            .unwrap() as usize;
        let failed = store
            .count_runs(Some(FLOW), RunStatus::Failed)
            .await
            .unwrap();
        assert_eq!(failed, 0, "no run fails");
        if done >= CUSTOMERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {CUSTOMERS} runs finished in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let anything stray (a second run of one event) surface before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let runs = store
        .runs(&RunFilter {
            flow_id: Some(FLOW.into()),
            limit: 10 * CUSTOMERS as i64,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), CUSTOMERS, "one run per webhook");
    let events: std::collections::HashSet<_> =
        runs.iter().filter_map(|r| r.event_id.clone()).collect();
    assert_eq!(events.len(), CUSTOMERS, "no event has two runs");
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    let again: Vec<_> = runs
        .iter()
        .filter(|r| r.attempt != 1)
        .map(|r| (&r.id, r.attempt, &r.error, &r.finished_by))
        .collect();
    assert!(
        again.is_empty(),
        "every run ran once, in one attempt: {again:?}"
    );

    let stats: Value = http
        .get(format!("{salesforce}/__control/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["calls"]["upsert"],
        json!(CUSTOMERS),
        "one upsert per customer, none repeated: {stats}"
    );
    let accounts: Vec<Value> = http
        .get(format!("{salesforce}/__control/records/Account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.len(), CUSTOMERS);

    // How many runs each worker concluded.
    let mut by_worker: std::collections::BTreeMap<&str, i64> = Default::default();
    for w in runs.iter().filter_map(|r| r.finished_by.as_deref()) {
        *by_worker.entry(w).or_default() += 1;
    }
    let total: i64 = by_worker.values().sum();
    assert_eq!(total, CUSTOMERS as i64, "{by_worker:?}");
    let busy = by_worker.iter().filter(|(_, n)| **n > 0).count();
    assert!(
        busy >= 2,
        "the work is spread over the workers: {by_worker:?}"
    );
    assert!(by_worker.iter().all(|(w, _)| w.starts_with("worker-")));

    // SIGTERM stops the cluster and every process in it.
    let status = cluster.stop();
    assert!(status.success(), "{status}");
    assert!(
        store
            .live_workers(Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "the workers stopped cleanly"
    );
}
