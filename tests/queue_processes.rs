//! The queue across real processes: `flowbot worker` processes sharing one store, killed
//! with SIGKILL mid-run, and a loopback HTTP server counting what reached it.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use flowbot_store::{EnqueueOutcome, NewEvent, RunStatus, Source, Store, StoreConfig};
use serde_json::{json, Value};
use support::{fresh_pg, Reaped};

mod support;

#[derive(Default)]
struct Seen {
    /// route → seq → calls
    calls: HashMap<String, HashMap<String, u32>>,
    records: Vec<Value>,
    slow_ms: u64,
    /// POST /records stores the record, then does not answer for this long.
    hang_after_create_ms: u64,
}

type Shared = Arc<Mutex<Seen>>;

fn count(seen: &Shared, route: &str, seq: &str) -> u32 {
    seen.lock()
        .unwrap()
        .calls
        .get(route)
        .and_then(|m| m.get(seq))
        .copied()
        .unwrap_or(0)
}

fn total(seen: &Shared, route: &str) -> u32 {
    seen.lock()
        .unwrap()
        .calls
        .get(route)
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

fn note(s: &Shared, route: &str, seq: &str) {
    *s.lock()
        .unwrap()
        .calls
        .entry(route.to_string())
        .or_default()
        .entry(seq.to_string())
        .or_default() += 1;
}

async fn server() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app =
        Router::new()
            .route(
                "/fast",
                get(
                    |State(s): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                        note(&s, "fast", &q["seq"]);
                        Json(json!({"ok": true}))
                    },
                ),
            )
            .route(
                "/slow",
                get(
                    |State(s): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                        note(&s, "slow-start", &q["seq"]);
                        let ms = s.lock().unwrap().slow_ms;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        note(&s, "slow", &q["seq"]);
                        Json(json!({"ok": true}))
                    },
                ),
            )
            .route(
                "/records",
                get(
                    |State(s): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                        note(&s, "search", "all");
                        let found: Vec<Value> = s
                            .lock()
                            .unwrap()
                            .records
                            .iter()
                            .filter(|r| r["email"] == q["email"].as_str())
                            .cloned()
                            .collect();
                        Json(json!(found))
                    },
                )
                .post(
                    |State(s): State<Shared>, Json(mut body): Json<Value>| async move {
                        let hang = {
                            let mut seen = s.lock().unwrap();
                            let id = format!("001{:03}", seen.records.len());
                            body["id"] = json!(id);
                            seen.records.push(body.clone());
                            seen.hang_after_create_ms
                        };
                        note(&s, "create", "all");
                        // The record exists; the answer is lost if the caller dies meanwhile.
                        tokio::time::sleep(Duration::from_millis(hang)).await;
                        Json(json!({"id": body["id"]}))
                    },
                ),
            )
            .route(
                "/records/{id}",
                put(
                    |State(s): State<Shared>,
                     UrlPath(id): UrlPath<String>,
                     Json(body): Json<Value>| async move {
                        note(&s, "update", "all");
                        let mut seen = s.lock().unwrap();
                        if let Some(r) = seen.records.iter_mut().find(|r| r["id"] == id.as_str()) {
                            r["name"] = body["name"].clone();
                        }
                        Json(json!({"ok": true}))
                    },
                ),
            )
            .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

const TWO_STEPS: &str = r#"version: 1
id: proc
name: proc
trigger: { app: manual }
retry: { max_attempts: 5, initial_interval: 100ms, jitter: false }
steps:
  - id: first
    app: http
    action: get
    input: { url: "{{ trigger.base }}/fast", query: { seq: "{{ trigger.seq }}" } }
  - id: second
    app: http
    action: get
    input: { url: "{{ trigger.base }}/slow", query: { seq: "{{ trigger.seq }}" } }
"#;

const SEARCH_THEN_CREATE: &str = r#"version: 1
id: crm
name: crm
trigger: { app: manual }
concurrency_key: "{{ trigger.email }}"
steps:
  - id: search
    app: http
    action: get
    input: { url: "{{ trigger.base }}/records", query: { email: "{{ trigger.email }}" } }
  - id: decide
    branch:
      if: { value: "{{ search.body | length }}", op: equals, to: 0 }
      then:
        - id: create
          app: http
          action: request
          input:
            method: POST
            url: "{{ trigger.base }}/records"
            body: { email: "{{ trigger.email }}", name: "{{ trigger.name }}" }
      else:
        - id: update
          app: http
          action: request
          input:
            method: PUT
            url: "{{ trigger.base }}/records/{{ search.body[0].id }}"
            body: { name: "{{ trigger.name }}" }
"#;

/// A store location: SQLite in a temporary directory, or a fresh PostgreSQL database.
struct Place {
    dir: tempfile::TempDir,
    url: Option<String>,
    name: &'static str,
}

impl Place {
    fn config(&self) -> StoreConfig {
        StoreConfig {
            database_url: self.url.clone(),
            data_dir: self.dir.path().to_path_buf(),
            secret_key: None,
        }
    }

    /// Open the store briefly (a SQLite store is locked while open).
    async fn with<T>(&self, f: impl AsyncFnOnce(&Store) -> T) -> T {
        let store = Store::open(&self.config()).await.expect("open the store");
        let out = f(&store).await;
        drop(store);
        out
    }

    fn worker(&self, lease: &str) -> Reaped {
        self.worker_with(lease, &[])
    }

    fn worker_with(&self, lease: &str, more: &[&str]) -> Reaped {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowbot"));
        cmd.args([
            "worker",
            "--lease",
            lease,
            "--idle-poll",
            "50ms",
            "--concurrency",
            "32",
            "--no-triggers",
        ])
        .args(more)
        .arg("--data-dir")
        .arg(self.dir.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(url) = &self.url {
            cmd.env("DATABASE_URL", url);
        }
        Reaped::new(cmd.spawn().expect("start a worker"))
    }
}

async fn places() -> Vec<Place> {
    let mut out = vec![Place {
        dir: tempfile::tempdir().unwrap(),
        url: None,
        name: "sqlite",
    }];
    if let Some(url) = fresh_pg() {
        out.push(Place {
            dir: tempfile::tempdir().unwrap(),
            url: Some(url),
            name: "postgres",
        });
    }
    out
}

async fn import(store: &Store, id: &str, yaml: &str) {
    store.import_flow(id, id, yaml, "test").await.unwrap();
    store.set_enabled(id, true, "test").await.unwrap();
}

fn event(flow: &str, trigger: Value, key: Option<String>) -> NewEvent {
    NewEvent {
        files: Vec::new(),
        flow_version: None,
        flow_id: flow.into(),
        source: Source::Manual,
        headers: json!({}),
        body: trigger.clone(),
        trigger,
        concurrency_key: Ok(key),
        dedupe: None,
    }
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stop(child: Reaped) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("the worker exits");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_drain_a_thousand_runs_exactly_once() {
    let (base, seen) = server().await;
    let Some(url) = fresh_pg() else {
        eprintln!("TEST_DATABASE_URL is not set: this PostgreSQL test has nothing to run against");
        return;
    };
    let place = Place {
        dir: tempfile::tempdir().unwrap(),
        url: Some(url),
        name: "postgres",
    };
    place
        .with(async |s: &Store| {
            import(s, "proc", TWO_STEPS).await;
            let tasks: Vec<_> = (0..1000)
                .map(|i| {
                    let s = s.clone();
                    let ev = event("proc", json!({"base": base, "seq": i}), None);
                    tokio::spawn(async move { s.enqueue(ev).await })
                })
                .collect();
            for t in tasks {
                assert!(matches!(
                    t.await.unwrap().unwrap(),
                    EnqueueOutcome::Queued { .. }
                ));
            }
        })
        .await;
    let a = place.worker("30s");
    let b = place.worker("30s");
    wait_for("1000 runs", Duration::from_secs(240), || {
        total(&seen, "slow") >= 1000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (log_a, log_b) = (stop(a), stop(b));
    for seq in 0..1000 {
        let s = seq.to_string();
        assert_eq!(
            (count(&seen, "fast", &s), count(&seen, "slow", &s)),
            (1, 1),
            "run {seq}"
        );
    }
    let attempts = |log: &str| -> u64 {
        log.lines()
            .find_map(|l| l.strip_prefix("worker stopped: "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no summary in: {log}"))
    };
    let (na, nb) = (attempts(&log_a), attempts(&log_b));
    assert_eq!(na + nb, 1000, "each run claimed once ({na} + {nb})");
    assert!(na > 0 && nb > 0, "both workers took part ({na} + {nb})");
    place
        .with(async |s: &Store| {
            assert_eq!(
                s.count_runs(Some("proc"), RunStatus::Succeeded)
                    .await
                    .unwrap(),
                1000
            );
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_one_sqlite_store_is_refused() {
    let place = Place {
        dir: tempfile::tempdir().unwrap(),
        url: None,
        name: "sqlite",
    };
    let first = place.worker("30s");
    // Wait until the first holds the store.
    wait_for("the first worker", Duration::from_secs(30), || {
        place.dir.path().join("flowbot.db").exists()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = place.worker("30s").wait_with_output().unwrap();
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another flowbot process is already using"),
        "{stderr}"
    );
    stop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_run_is_finished_elsewhere_without_repeating_completed_steps() {
    let (base, seen) = server().await;
    for place in places().await {
        seen.lock().unwrap().calls.clear();
        seen.lock().unwrap().slow_ms = 60_000;
        let run_id = place
            .with(async |s: &Store| {
                import(s, "proc", TWO_STEPS).await;
                match s
                    .enqueue(event("proc", json!({"base": base, "seq": 7}), None))
                    .await
                    .unwrap()
                {
                    EnqueueOutcome::Queued { run_id, .. } => run_id,
                    other => panic!("{other:?}"),
                }
            })
            .await;
        let mut a = place.worker("2s");
        wait_for("the second step to start", Duration::from_secs(30), || {
            count(&seen, "slow-start", "7") == 1
        })
        .await;
        a.kill().unwrap();
        a.wait().unwrap();
        seen.lock().unwrap().slow_ms = 0;
        let b = place.worker("2s");
        wait_for(
            "another worker to finish the run",
            Duration::from_secs(60),
            || count(&seen, "slow", "7") >= 1,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(b);
        assert_eq!(
            count(&seen, "fast", "7"),
            1,
            "{}: the completed first step ran once",
            place.name
        );
        assert_eq!(
            count(&seen, "slow-start", "7"),
            2,
            "{}: the unfinished step ran again",
            place.name
        );
        place
            .with(async |s: &Store| {
                let run = s.run(&run_id).await.unwrap();
                assert_eq!(run.status, RunStatus::Succeeded, "{}", place.name);
                assert_eq!(run.attempt, 2);
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_in_doubt_when_the_worker_died_is_redecided_not_repeated() {
    let (base, seen) = server().await;
    for place in places().await {
        {
            let mut s = seen.lock().unwrap();
            s.calls.clear();
            s.records.clear();
            s.hang_after_create_ms = 60_000;
        }
        let run_id = place
            .with(async |s: &Store| {
                import(s, "crm", SEARCH_THEN_CREATE).await;
                let trigger =
                    json!({"base": base, "email": "taro@example.com", "name": "山田 太郎"});
                match s
                    .enqueue(event("crm", trigger, Some("taro@example.com".into())))
                    .await
                    .unwrap()
                {
                    EnqueueOutcome::Queued { run_id, .. } => run_id,
                    other => panic!("{other:?}"),
                }
            })
            .await;
        let mut a = place.worker("2s");
        wait_for("the create call", Duration::from_secs(30), || {
            total(&seen, "create") == 1
        })
        .await;
        a.kill().unwrap();
        a.wait().unwrap();
        let b = place.worker("2s");
        wait_for("the run to be re-decided", Duration::from_secs(60), || {
            total(&seen, "update") == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(b);
        assert_eq!(
            total(&seen, "create"),
            1,
            "{}: nothing created twice",
            place.name
        );
        assert_eq!(seen.lock().unwrap().records.len(), 1);
        assert_eq!(
            total(&seen, "search"),
            2,
            "the run started over and searched again"
        );
        place
            .with(async |s: &Store| {
                assert_eq!(
                    s.run(&run_id).await.unwrap().status,
                    RunStatus::Succeeded,
                    "{}",
                    place.name
                );
                let records = s.step_records(&run_id).await.unwrap();
                let update = records
                    .iter()
                    .find(|r| r.path == "update")
                    .expect("an update record");
                assert_eq!(update.generation, 1, "a new generation");
                let decide = records
                    .iter()
                    .filter(|r| r.path == "decide")
                    .map(|r| r.lane.clone())
                    .collect::<Vec<_>>();
                assert_eq!(decide, [Some("then".into()), Some("else".into())]);
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_takes_back_its_runs_without_waiting_for_the_lease() {
    let (base, seen) = server().await;
    for place in places().await {
        seen.lock().unwrap().calls.clear();
        seen.lock().unwrap().slow_ms = 60_000;
        let run_id = place
            .with(async |s: &Store| {
                import(s, "back", TWO_STEPS).await;
                match s
                    .enqueue(event("back", json!({"base": base, "seq": 8}), None))
                    .await
                    .unwrap()
                {
                    EnqueueOutcome::Queued { run_id, .. } => run_id,
                    other => panic!("{other:?}"),
                }
            })
            .await;
        // A 60 s lease: waiting for it to expire would take a minute.
        let id: &[&str] = match place.url {
            None => &[],
            Some(_) => &["--id", "restarting-worker"],
        };
        let mut a = place.worker_with("60s", id);
        wait_for("the second step to start", Duration::from_secs(30), || {
            count(&seen, "slow-start", "8") == 1
        })
        .await;
        a.kill().unwrap();
        a.wait().unwrap();
        seen.lock().unwrap().slow_ms = 0;
        let restarted = std::time::Instant::now();
        // SQLite: the only process there is takes everything back. PostgreSQL: the worker
        // restarting under the id it had.
        let b = place.worker_with("60s", id);
        wait_for(
            "the restarted worker to finish the run",
            Duration::from_secs(20),
            || count(&seen, "slow", "8") >= 1,
        )
        .await;
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "{}: resumed before the lease expired",
            place.name
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(b);
        place
            .with(async |s: &Store| {
                let run = s.run(&run_id).await.unwrap();
                assert_eq!(run.status, RunStatus::Succeeded, "{}", place.name);
                assert_eq!(run.attempt, 2, "{}", place.name);
            })
            .await;
        assert_eq!(
            count(&seen, "fast", "8"),
            1,
            "{}: the first step once",
            place.name
        );
    }
}

/// A flow that upserts one record keyed on the trigger's code, in kintone or HubSpot.
fn upsert_flow(app: &str) -> String {
    let step = match app {
        "kintone" => {
            r#"    action: upsert_record
    input:
      app: "1"
      key_field: 顧客コード
      key_value: "{{ trigger.code }}"
      fields: { 氏名: "{{ trigger.name }}" }"#
        }
        _ => {
            r#"    action: upsert_contact
    input:
      email: "{{ trigger.code }}"
      lastname: "{{ trigger.name }}""#
        }
    };
    format!(
        "version: 1\nid: up-{app}\nname: up\nconnections:\n  crm: {{ app: {app} }}\ntrigger: {{ app: manual }}\nconcurrency_key: \"{{{{ trigger.code }}}}\"\nsteps:\n  - id: upsert\n    app: {app}\n    connection: crm\n{step}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_replayed_after_a_crash_never_creates_a_second_record() {
    use flowbot_sandbox::catalogue::{self, AppSource, CatalogueConfig};
    use flowbot_sandbox::faults::FaultConfig;
    let sources: Vec<AppSource> = ["kintone", "hubspot"]
        .iter()
        .map(|id| AppSource {
            id: id.to_string(),
            yaml: std::fs::read_to_string(format!(
                "{}/crates/flowbot-connectors/apps/{id}.yaml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        })
        .collect();
    for place in places().await {
        for (app, action, settings) in [
            (
                "kintone",
                "upsert_record",
                json!({"domain_url": "https://example.cybozu.com", "api_token": "t"}),
            ),
            (
                "hubspot",
                "upsert_contact",
                json!({"private_app_token": "pat-t"}),
            ),
        ] {
            // A fresh simulator per case: its records are what the case checks.
            let sim = catalogue::start(&sources, CatalogueConfig { stateful: true }, 0)
                .await
                .unwrap();
            let mut settings = settings.as_object().unwrap().clone();
            let base = match app {
                "kintone" => ("domain_url", "https://example.cybozu.com"),
                _ => ("base_url", "https://api.hubapi.com"),
            };
            settings.insert(base.0.into(), json!(sim.sim.rewrite(app, base.1)));
            let op = format!("{app}.{action}");
            sim.sim.faults.set(FaultConfig {
                only: vec![op.clone()],
                hang_after_ms: 60_000,
                ..FaultConfig::default()
            });
            let flow = format!("up-{app}");
            let run_id = place
                .with(async |s: &Store| {
                    import(s, &flow, &upsert_flow(app)).await;
                    let c = s
                        .save_connection(app, app, &settings, "test")
                        .await
                        .unwrap();
                    s.bind_connection(&flow, "crm", &c.id, "test")
                        .await
                        .unwrap();
                    let trigger = json!({"code": "c-001@example.jp", "name": "山田"});
                    match s
                        .enqueue(event(&flow, trigger, Some("c-001".into())))
                        .await
                        .unwrap()
                    {
                        EnqueueOutcome::Queued { run_id, .. } => run_id,
                        other => panic!("{other:?}"),
                    }
                })
                .await;
            let calls = || {
                sim.sim
                    .requests()
                    .iter()
                    .filter(|r| r.action == action)
                    .count()
            };
            let mut a = place.worker("2s");
            wait_for("the upsert to take effect", Duration::from_secs(30), || {
                sim.sim.records(app).len() == 1
            })
            .await;
            // The record exists; the worker dies before it hears so.
            a.kill().unwrap();
            a.wait().unwrap();
            sim.sim.faults.clear();
            let b = place.worker("2s");
            wait_for("the upsert to be replayed", Duration::from_secs(60), || {
                calls() == 2
            })
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop(b);
            place
                .with(async |s: &Store| {
                    let run = s.run(&run_id).await.unwrap();
                    assert_eq!(run.status, RunStatus::Succeeded, "{}: {app}", place.name);
                })
                .await;
            let records = sim.sim.records(app);
            assert_eq!(
                records.len(),
                1,
                "{}: {app}: one record, not two: {records:?}",
                place.name
            );
            match app {
                "kintone" => {
                    assert_eq!(
                        records[0]["$revision"]["value"], "2",
                        "updated by the replay"
                    );
                    assert_eq!(records[0]["顧客コード"]["value"], "c-001@example.jp");
                }
                _ => assert_eq!(records[0]["properties"]["email"], "c-001@example.jp"),
            }
        }
    }
}
