//! Workers executing runs from the store against a real HTTP server on loopback.

#[path = "../../flowbot-store/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::*;
use flowbot_engine::{Worker, WorkerConfig};
use flowbot_store::{EnqueueOutcome, NewEvent, RunStatus, Source, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What the test server saw: for each key, (seq, start, end) of every call.
#[derive(Default)]
struct Seen {
    calls: Vec<(String, u64, Instant, Instant)>,
    fail_next: u32,
}

type Shared = Arc<Mutex<Seen>>;

async fn server(delay: Duration) -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/step",
            get(move |State(s): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                let start = Instant::now();
                {
                    let mut seen = s.lock().unwrap();
                    if seen.fail_next > 0 {
                        seen.fail_next -= 1;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                }
                tokio::time::sleep(delay).await;
                let key = q.get("key").cloned().unwrap_or_default();
                let seq: u64 = q.get("seq").and_then(|s| s.parse().ok()).unwrap_or(0);
                s.lock().unwrap().calls.push((key, seq, start, Instant::now()));
                StatusCode::OK
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

const CALL_FLOW: &str = r#"version: 1
id: calls
name: calls
trigger: { app: manual }
concurrency_key: "{{ trigger.key }}"
retry: { max_attempts: 3, initial_interval: 4s, jitter: false }
steps:
  - id: call
    app: http
    action: get
    input:
      url: "{{ trigger.base }}/step"
      query: { key: "{{ trigger.key }}", seq: "{{ trigger.seq }}" }
"#;

async fn import_calls(store: &Store) {
    store
        .import_flow("calls", "calls", CALL_FLOW, "t")
        .await
        .unwrap();
    store.set_enabled("calls", true, "t").await.unwrap();
}

fn call_event(base: &str, key: &str, seq: u64) -> NewEvent {
    let trigger = json!({ "base": base, "key": key, "seq": seq });
    NewEvent {
        files: Vec::new(),
        flow_version: None,
        flow_id: "calls".into(),
        source: Source::Webhook,
        headers: json!({}),
        body: trigger.clone(),
        trigger,
        concurrency_key: Ok(Some(key.to_string())),
        dedupe: None,
    }
}

fn config(id: &str) -> WorkerConfig {
    WorkerConfig {
        id: id.to_string(),
        concurrency: 16,
        lease: Duration::from_secs(30),
        idle_poll: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        triggers: false,
        retention: None,
        retention_every: Duration::from_secs(600),
        people_every: Duration::from_secs(2),
        reclaim_at_start: false,
    }
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_of_a_key_stay_ordered_with_eight_workers() {
    let (base, seen) = server(Duration::from_millis(5)).await;
    for t in stores().await {
        seen.lock().unwrap().calls.clear();
        import_calls(&t.store).await;
        // Interleaved keys: k0 k1 k2 k3 k0 k1 …, 15 runs per key.
        let keys = 4;
        let per_key = 15;
        for seq in 0..per_key {
            for k in 0..keys {
                let out = t
                    .store
                    .enqueue(call_event(&base, &format!("k{k}"), seq))
                    .await
                    .unwrap();
                assert!(matches!(out, EnqueueOutcome::Queued { .. }));
            }
        }
        let stop = CancellationToken::new();
        let mut workers = Vec::new();
        for i in 0..8 {
            // On PostgreSQL each worker has its own pool and writer, as separate processes do.
            let store = match &t.config.database_url {
                Some(_) => Store::open_with_clock(&t.config, t.clock.clone())
                    .await
                    .unwrap(),
                None => t.store.clone(),
            };
            let w = Worker::new(
                store,
                flowbot_connectors::registry(),
                config(&format!("w{i}")),
            );
            workers.push(tokio::spawn(w.run(stop.clone())));
        }
        let store = t.store.clone();
        wait_until("every run to succeed", || {
            let store = store.clone();
            async move {
                store
                    .count_runs(Some("calls"), RunStatus::Succeeded)
                    .await
                    .unwrap()
                    == (keys * per_key) as i64
            }
        })
        .await;
        stop.cancel();
        let mut attempts = 0;
        for w in workers {
            attempts += w.await.unwrap().unwrap().attempts;
        }
        assert_eq!(
            attempts,
            keys * per_key,
            "{}: each run claimed exactly once",
            t.name
        );
        let calls = seen.lock().unwrap().calls.clone();
        assert_eq!(calls.len() as u64, keys * per_key);
        for k in 0..keys {
            let mut of_key: Vec<_> = calls.iter().filter(|c| c.0 == format!("k{k}")).collect();
            of_key.sort_by_key(|c| c.2);
            let seqs: Vec<u64> = of_key.iter().map(|c| c.1).collect();
            assert_eq!(
                seqs,
                (0..per_key).collect::<Vec<_>>(),
                "{}: arrival order of k{k}",
                t.name
            );
            for pair in of_key.windows(2) {
                assert!(
                    pair[0].3 <= pair[1].2,
                    "{}: two runs of k{k} overlapped",
                    t.name
                );
            }
        }
    }
}

/// A heartbeat answers for the runs held when it was sent. Runs claimed while it was on its
/// way are not in its answer, and must not be taken for lost: abandoned, they would sit
/// `running` until their lease expired and then run a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_claimed_during_a_heartbeat_are_kept() {
    let (base, _seen) = server(Duration::from_millis(5)).await;
    for t in stores().await {
        import_calls(&t.store).await;
        let stop = CancellationToken::new();
        // Heartbeats every 10 ms (a third of the lease) while runs keep arriving. The test's
        // clock stands still, so a lease never expires: an abandoned run stays running.
        let w = Worker::new(
            t.store.clone(),
            flowbot_connectors::registry(),
            WorkerConfig {
                lease: Duration::from_millis(30),
                ..config("w1")
            },
        );
        let worker = tokio::spawn(w.run(stop.clone()));
        let runs = 300;
        for seq in 0..runs {
            t.store
                .enqueue(call_event(&base, &format!("k{seq}"), seq))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let store = t.store.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = store
                .count_runs(Some("calls"), RunStatus::Succeeded)
                .await
                .unwrap();
            if done == runs as i64 {
                break;
            }
            let running = store
                .count_runs(Some("calls"), RunStatus::Running)
                .await
                .unwrap();
            assert!(
                Instant::now() < deadline,
                "{}: {done} of {runs} runs succeeded, {running} left running",
                t.name
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        stop.cancel();
        let stats = worker.await.unwrap().unwrap();
        assert_eq!(stats.attempts, runs, "{}: each run claimed once", t.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_for_the_clock_and_repeats_only_the_failed_step() {
    let (base, seen) = server(Duration::ZERO).await;
    for t in stores().await {
        seen.lock().unwrap().calls.clear();
        seen.lock().unwrap().fail_next = 1;
        import_calls(&t.store).await;
        let EnqueueOutcome::Queued { run_id, .. } =
            t.store.enqueue(call_event(&base, "r", 1)).await.unwrap()
        else {
            panic!()
        };
        let stop = CancellationToken::new();
        let worker = tokio::spawn(
            Worker::new(t.store.clone(), flowbot_connectors::registry(), config("w"))
                .run(stop.clone()),
        );
        let store = t.store.clone();
        let id = run_id.clone();
        wait_until("the first attempt to fail", || {
            let (store, id) = (store.clone(), id.clone());
            async move { store.run(&id).await.unwrap().error.is_some() }
        })
        .await;
        let run = t.store.run(&run_id).await.unwrap();
        assert_eq!(run.status, RunStatus::Queued, "{}", t.name);
        assert_eq!(
            run.next_attempt_at - t.clock.now_ms(),
            4000,
            "the policy's 4 s, by the injected clock"
        );
        // Real time passes, the injected clock does not: the retry waits.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            t.store.run(&run_id).await.unwrap().status,
            RunStatus::Queued
        );
        t.clock.advance(Duration::from_secs(4));
        wait_until("the retry to succeed", || {
            let (store, id) = (store.clone(), run_id.clone());
            async move { store.run(&id).await.unwrap().status == RunStatus::Succeeded }
        })
        .await;
        stop.cancel();
        worker.await.unwrap().unwrap();
        let records = t.store.step_records(&run_id).await.unwrap();
        let attempts: Vec<(u32, String)> = records
            .iter()
            .map(|r| {
                (
                    r.attempt,
                    serde_json::to_value(r.status)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            attempts,
            [(1, "failed".to_string()), (2, "succeeded".to_string())]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_runs_still_in_flight() {
    let (base, _seen) = server(Duration::from_secs(10)).await;
    for t in stores().await {
        import_calls(&t.store).await;
        let EnqueueOutcome::Queued { run_id, .. } =
            t.store.enqueue(call_event(&base, "slow", 1)).await.unwrap()
        else {
            panic!()
        };
        let stop = CancellationToken::new();
        let mut cfg = config("w");
        cfg.shutdown_grace = Duration::from_millis(200);
        let worker = tokio::spawn(
            Worker::new(t.store.clone(), flowbot_connectors::registry(), cfg).run(stop.clone()),
        );
        let store = t.store.clone();
        let id = run_id.clone();
        wait_until("the run to start", || {
            let (store, id) = (store.clone(), id.clone());
            async move { store.run(&id).await.unwrap().status == RunStatus::Running }
        })
        .await;
        stop.cancel();
        let stats = worker.await.unwrap().unwrap();
        assert_eq!(stats.released, 1, "{}", t.name);
        let run = t.store.run(&run_id).await.unwrap();
        assert_eq!(run.status, RunStatus::Queued, "released for another worker");
        assert_eq!(run.lease_owner, None);
    }
}

const SCHEDULED: &str = r#"version: 1
id: daily
name: daily
trigger:
  app: schedule
  options: { cron: "0 9 * * *", timezone: Asia/Tokyo }
steps:
  - id: note
    set: { at: "{{ trigger.slot }}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_slot_fires_once_with_three_workers() {
    for t in stores().await {
        // Enabled at 08:59:50 JST; the workers look at 09:00:05 JST.
        t.clock.set("2026-11-28T23:59:50Z");
        t.store
            .import_flow("daily", "daily", SCHEDULED, "t")
            .await
            .unwrap();
        t.store.set_enabled("daily", true, "t").await.unwrap();
        t.clock.set("2026-11-29T00:00:05Z");
        let stop = CancellationToken::new();
        let mut workers = Vec::new();
        for i in 0..3 {
            let store = match &t.config.database_url {
                Some(_) => Store::open_with_clock(&t.config, t.clock.clone())
                    .await
                    .unwrap(),
                None => t.store.clone(),
            };
            let mut cfg = config(&format!("w{i}"));
            cfg.triggers = true;
            workers.push(tokio::spawn(
                Worker::new(store, flowbot_connectors::registry(), cfg).run(stop.clone()),
            ));
        }
        let store = t.store.clone();
        wait_until("the scheduled run", || {
            let store = store.clone();
            async move {
                store
                    .count_runs(Some("daily"), RunStatus::Succeeded)
                    .await
                    .unwrap()
                    >= 1
            }
        })
        .await;
        // Give the other workers several more chances to fire the same slot.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        stop.cancel();
        for w in workers {
            w.await.unwrap().unwrap();
        }
        let runs = t
            .store
            .runs(&flowbot_store::RunFilter {
                flow_id: Some("daily".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(runs.len(), 1, "{}: exactly one run for the slot", t.name);
        assert_eq!(runs[0].trigger["slot"], "2026-11-29T00:00:00Z");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_trigger_misses_and_repeats_nothing_across_a_restart() {
    // The polled service: a list of items that grows while flowbot is stopped.
    let items: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let served = items.clone();
    let app = Router::new().route(
        "/items",
        get(move || {
            let served = served.clone();
            async move { axum::Json(json!({ "data": *served.lock().unwrap() })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let flow = format!(
        r#"version: 1
id: polled
name: polled
trigger:
  app: http
  event: poll
  options: {{ url: "http://{addr}/items", items_path: data, cursor_field: id, interval: 1m }}
steps:
  - id: seen
    set: {{ id: "{{{{ trigger.id }}}}" }}
"#
    );
    for mut t in stores().await {
        items.lock().unwrap().clear();
        items
            .lock()
            .unwrap()
            .extend((1..=3).map(|i| json!({"id": i, "name": format!("n{i}")})));
        t.store
            .import_flow("polled", "polled", &flow, "t")
            .await
            .unwrap();
        t.store.set_enabled("polled", true, "t").await.unwrap();
        let run_worker = |store: Store| {
            let stop = CancellationToken::new();
            let mut cfg = config("poller");
            cfg.triggers = true;
            (
                stop.clone(),
                tokio::spawn(Worker::new(store, flowbot_connectors::registry(), cfg).run(stop)),
            )
        };
        let (stop, w) = run_worker(t.store.clone());
        {
            let store = t.store.clone();
            wait_until("the first poll's runs", || {
                let store = store.clone();
                async move {
                    store
                        .count_runs(Some("polled"), RunStatus::Succeeded)
                        .await
                        .unwrap()
                        == 3
                }
            })
            .await;
        }
        stop.cancel();
        w.await.unwrap().unwrap();

        // While stopped, two more items arrive; flowbot restarts on the same database.
        items
            .lock()
            .unwrap()
            .extend((4..=5).map(|i| json!({"id": i, "name": format!("n{i}")})));
        let config = t.config.clone();
        let clock = t.clock.clone();
        drop(std::mem::replace(
            &mut t.store,
            open("sqlite", None).await.store,
        ));
        let mut tries = 0;
        let store = loop {
            match Store::open_with_clock(&config, clock.clone()).await {
                Ok(s) => break s,
                Err(flowbot_store::StoreError::Locked(_)) if tries < 250 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        t.clock.advance(Duration::from_secs(61));
        let (stop, w) = run_worker(store.clone());
        let s2 = store.clone();
        wait_until("the second poll's runs", || {
            let store = s2.clone();
            async move {
                store
                    .count_runs(Some("polled"), RunStatus::Succeeded)
                    .await
                    .unwrap()
                    == 5
            }
        })
        .await;
        // More chances to repeat an item: none is taken.
        t.clock.advance(Duration::from_secs(61));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        stop.cancel();
        w.await.unwrap().unwrap();
        let runs = store
            .runs(&flowbot_store::RunFilter {
                flow_id: Some("polled".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut ids: Vec<i64> = runs
            .iter()
            .map(|r| r.trigger["id"].as_i64().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, [1, 2, 3, 4, 5], "{}: every item once", t.name);
        assert_eq!(store.poll_cursor("polled").await.unwrap().unwrap().0, "5");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_failure_is_notified_once_per_channel() {
    // A Slack-shaped incoming webhook and an SMTP server, both on loopback.
    let slack: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = slack.clone();
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let smtp = flowbot_sandbox::smtp::start().await.unwrap();
    let (base, _seen) = server(Duration::ZERO).await;

    for t in stores().await {
        slack.lock().unwrap().clear();
        let s = &t.store;
        // A flow whose call is refused for good (404): no retry, one final failure.
        let flow = CALL_FLOW.replace("/step", "/missing");
        s.import_flow("calls", "顧客同期", &flow, "t")
            .await
            .unwrap();
        s.set_enabled("calls", true, "t").await.unwrap();
        let mut slack_settings = serde_json::Map::new();
        slack_settings.insert("webhook_url".into(), json!(format!("http://{addr}/hook")));
        let sc = s
            .save_connection("ops slack", "slack", &slack_settings, "t")
            .await
            .unwrap();
        let mut mail_settings = serde_json::Map::new();
        for (k, v) in [
            ("host", json!("127.0.0.1")),
            ("port", json!(smtp.port)),
            ("security", json!("plain")),
            ("from", json!("flowbot@example.com")),
        ] {
            mail_settings.insert(k.into(), v);
        }
        let mc = s
            .save_connection("ops mail", "email", &mail_settings, "t")
            .await
            .unwrap();
        let channels = json!({"channels": [
            {"app": "slack", "connection_id": sc.id},
            {"app": "email", "connection_id": mc.id, "to": "ops@example.com"},
        ]});
        s.set_setting(flowbot_store::notify::NOTIFICATIONS, &channels, "t")
            .await
            .unwrap();
        s.set_setting(
            flowbot_store::notify::PUBLIC_URL,
            &json!("https://flowbot.example.com"),
            "t",
        )
        .await
        .unwrap();
        let mails_before = smtp.mails().len();
        let EnqueueOutcome::Queued { run_id, .. } =
            s.enqueue(call_event(&base, "k", 1)).await.unwrap()
        else {
            panic!()
        };
        let stop = CancellationToken::new();
        let w = tokio::spawn(
            Worker::new(s.clone(), flowbot_connectors::registry(), config("w")).run(stop.clone()),
        );
        let store = s.clone();
        let id = run_id.clone();
        wait_until("the run to fail", || {
            let (store, id) = (store.clone(), id.clone());
            async move { store.run(&id).await.unwrap().status == RunStatus::Failed }
        })
        .await;
        let sl = slack.clone();
        wait_until("the Slack notification", || {
            let sl = sl.clone();
            async move { !sl.lock().unwrap().is_empty() }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        w.await.unwrap().unwrap();
        let posts = slack.lock().unwrap().clone();
        assert_eq!(posts.len(), 1, "{}: one Slack message", t.name);
        let text = posts[0]["text"].as_str().unwrap();
        assert!(
            text.contains("顧客同期") && text.contains("call") && text.contains("404"),
            "{text}"
        );
        assert!(
            text.contains(&format!("https://flowbot.example.com/runs/{run_id}")),
            "{text}"
        );
        let mails = smtp.mails();
        assert_eq!(mails.len() - mails_before, 1, "{}: one email", t.name);
        // The body is encoded (it is Japanese); the envelope says where it went.
        assert_eq!(mails.last().unwrap().to, ["ops@example.com"]);
    }
}

/// A refresh token from the simulator's authorization-code flow (PKCE left out).
async fn refresh_token(
    sf: &flowbot_sandbox::Running<flowbot_sandbox::salesforce::SalesforceSim>,
) -> String {
    let cfg = sf.sim.config().clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(format!("{}/services/oauth2/authorize", sf.url))
        .query(&[
            ("response_type", "code"),
            ("client_id", cfg.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
        ])
        .send()
        .await
        .unwrap();
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: serde_json::Value = http
        .post(format!("{}/services/oauth2/token", sf.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_kept_for_the_next_process() {
    let sf = flowbot_sandbox::salesforce::start(
        flowbot_sandbox::salesforce::SalesforceConfig {
            rotate_refresh_tokens: true,
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    let t = open("sqlite", None).await;
    let s = &t.store;
    let flow = r#"version: 1
id: sf
name: sf
connections: { org: { app: salesforce } }
trigger: { app: manual }
steps:
  - id: create
    app: salesforce
    action: create_record
    connection: org
    input: { object: Account, fields: { Name: "{{ trigger.name }}" } }
"#;
    s.import_flow("sf", "sf", flow, "t").await.unwrap();
    let first = refresh_token(&sf).await;
    let cfg = sf.sim.config().clone();
    let mut settings = serde_json::Map::new();
    for (k, v) in [
        ("my_domain_url", json!(sf.url)),
        ("client_id", json!(cfg.client_id)),
        ("client_secret", json!(cfg.client_secret)),
        ("auth", json!("refresh_token")),
        ("refresh_token", json!(first)),
    ] {
        settings.insert(k.into(), v);
    }
    let conn = s
        .save_connection("org", "salesforce", &settings, "t")
        .await
        .unwrap();
    s.bind_connection("sf", "org", &conn.id, "t").await.unwrap();
    for round in 0..2 {
        // Each round is a fresh process: new connectors, no session or token in memory.
        sf.sim.expire_tokens();
        let trigger = json!({ "name": format!("r{round}") });
        let ev = NewEvent {
            files: Vec::new(),
            flow_version: None,
            flow_id: "sf".into(),
            source: Source::Manual,
            headers: json!({}),
            body: trigger.clone(),
            trigger,
            concurrency_key: Ok(None),
            dedupe: None,
        };
        let EnqueueOutcome::Queued { run_id, .. } = s.enqueue(ev).await.unwrap() else {
            panic!()
        };
        let stop = CancellationToken::new();
        let w = tokio::spawn(
            Worker::new(s.clone(), flowbot_connectors::registry(), config("w")).run(stop.clone()),
        );
        let (store, id) = (s.clone(), run_id.clone());
        wait_until("the run to finish", || {
            let (store, id) = (store.clone(), id.clone());
            async move {
                matches!(
                    store.run(&id).await.unwrap().status,
                    RunStatus::Succeeded | RunStatus::Failed
                )
            }
        })
        .await;
        stop.cancel();
        w.await.unwrap().unwrap();
        assert_eq!(
            s.run(&run_id).await.unwrap().status,
            RunStatus::Succeeded,
            "round {round}"
        );
        let kept = s.connection(&conn.id).await.unwrap().settings["refresh_token"].clone();
        assert_ne!(
            kept,
            json!(first),
            "the rotated token replaced the first one"
        );
    }
    assert_eq!(sf.sim.records("Account").len(), 2);
}
