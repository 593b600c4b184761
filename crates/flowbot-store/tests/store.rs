//! The store's contract, checked against real SQLite and (with TEST_DATABASE_URL) real
//! PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use flowbot_core::runner::{StepError, StepRecord, StepStatus};
use flowbot_core::RunOutcome;
use flowbot_store::{EnqueueOutcome, RunFilter, RunStatus, Store, StoreError};
use serde_json::json;

fn queued(o: &EnqueueOutcome) -> String {
    match o {
        EnqueueOutcome::Queued { run_id, .. } => run_id.clone(),
        other => panic!("expected queued, got {other:?}"),
    }
}

#[tokio::test]
async fn flows_are_versioned_and_switched() {
    for t in stores().await {
        let s = &t.store;
        let f = s.import_flow("sync", "sync", FLOW, "alice").await.unwrap();
        assert_eq!((f.current_version, f.enabled), (1, false), "{}", t.name);
        assert!(f.webhook_token.len() >= 32, "at least 128 bits");
        let same = s.import_flow("sync", "sync", FLOW, "alice").await.unwrap();
        assert_eq!(
            same.current_version, 1,
            "re-importing the same YAML changes nothing"
        );
        let v2 = s
            .import_flow("sync", "sync 2", &FLOW.replace("x: 1", "x: 2"), "bob")
            .await
            .unwrap();
        assert_eq!((v2.current_version, v2.name.as_str()), (2, "sync 2"));
        let versions = s.flow_versions("sync").await.unwrap();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(s.flow_version("sync", 1).await.unwrap().yaml, FLOW);
        s.set_enabled("sync", true, "alice").await.unwrap();
        assert!(s.flow("sync").await.unwrap().enabled);
        let token = s.regenerate_webhook_token("sync", "alice").await.unwrap();
        assert_ne!(token, f.webhook_token);
        assert!(matches!(
            s.set_enabled("nope", true, "x").await,
            Err(StoreError::FlowNotFound(_))
        ));
        let log = s.audit_log(10).await.unwrap();
        assert_eq!(log[0].action, "flow.regenerate_token");
        assert!(log
            .iter()
            .any(|e| e.action == "flow.import" && e.actor == "bob"));
        s.delete_flow("sync", "alice").await.unwrap();
        assert!(matches!(
            s.flow("sync").await,
            Err(StoreError::FlowNotFound(_))
        ));
    }
}

#[tokio::test]
async fn events_are_queued_ignored_deduplicated_or_failed() {
    for t in stores().await {
        let s = &t.store;
        s.import_flow("sync", "sync", FLOW, "t").await.unwrap();
        // Trigger OFF: recorded, no run.
        let off = s.enqueue(event("c1")).await.unwrap();
        assert!(
            matches!(off, EnqueueOutcome::Ignored { .. }),
            "{}: {off:?}",
            t.name
        );
        s.set_enabled("sync", true, "t").await.unwrap();
        let run_id = queued(&s.enqueue(event("c1")).await.unwrap());
        let run = s.run(&run_id).await.unwrap();
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(
            run.flow_version, 1,
            "pinned to the version it was enqueued with"
        );
        assert_eq!(run.concurrency_key.as_deref(), Some("c1"));
        assert_eq!(run.trigger, json!({"customer": "c1"}));

        let mut dup = event("c2");
        dup.dedupe = Some(("order-9".into(), Duration::from_secs(60)));
        queued(&s.enqueue(dup.clone()).await.unwrap());
        assert!(matches!(
            s.enqueue(dup.clone()).await.unwrap(),
            EnqueueOutcome::Duplicate { .. }
        ));
        t.clock.advance(Duration::from_secs(61));
        queued(&s.enqueue(dup).await.unwrap());

        let mut bad = event("c3");
        bad.concurrency_key = Err("`trigger.customer` is not defined".into());
        match s.enqueue(bad).await.unwrap() {
            EnqueueOutcome::Failed { run_id, reason, .. } => {
                assert!(reason.contains("`trigger.customer` is not defined"));
                assert_eq!(s.run(&run_id).await.unwrap().status, RunStatus::Failed);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_acceptances_share_commits() {
    for t in stores().await {
        enabled_flow(&t.store).await;
        let before = t.store.commits();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let s = t.store.clone();
                tokio::spawn(async move { s.enqueue(event(&format!("c{i}"))).await })
            })
            .collect();
        for task in tasks {
            queued(&task.await.unwrap().unwrap());
        }
        let commits = t.store.commits() - before;
        assert!(
            commits < 64,
            "{}: 64 acceptances took {commits} commits",
            t.name
        );
        assert_eq!(
            t.store
                .count_runs(Some("sync"), RunStatus::Queued)
                .await
                .unwrap(),
            64
        );
    }
}

#[tokio::test]
async fn runs_of_one_key_never_overlap_and_start_in_arrival_order() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        let a1 = queued(&s.enqueue(event("a")).await.unwrap());
        let a2 = queued(&s.enqueue(event("a")).await.unwrap());
        let b1 = queued(&s.enqueue(event("b")).await.unwrap());
        let lease = Duration::from_secs(30);
        let first = s.claim("w1", lease, 10).await.unwrap();
        let ids: Vec<&str> = first.iter().map(|c| c.lease.run_id.as_str()).collect();
        assert_eq!(
            ids,
            [a1.as_str(), b1.as_str()],
            "{}: a2 waits for a1",
            t.name
        );
        assert!(s.claim("w2", lease, 10).await.unwrap().is_empty());
        s.finish(&first[0].lease, &RunOutcome::Succeeded)
            .await
            .unwrap();
        let next = s.claim("w2", lease, 10).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].lease.run_id, a2);
    }
}

#[tokio::test]
async fn a_retry_is_scheduled_by_the_clock_and_blocks_later_runs_of_its_key() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        let a1 = queued(&s.enqueue(event("a")).await.unwrap());
        let _a2 = queued(&s.enqueue(event("a")).await.unwrap());
        let c = s
            .claim("w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(c.lease.run_id, a1);
        let retry = RunOutcome::RetryLater {
            path: "a".into(),
            error: StepError {
                message: "busy".into(),
                retryable: true,
                code: None,
                fields: vec![],
                details: None,
            },
            delay: Duration::from_secs(8),
            attempt: 1,
            max_attempts: 5,
        };
        assert_eq!(s.finish(&c.lease, &retry).await.unwrap(), RunStatus::Queued);
        let run = s.run(&a1).await.unwrap();
        assert_eq!(run.error.as_deref(), Some("busy"));
        // Not due yet, and a2 may not overtake it.
        assert!(
            s.claim("w", Duration::from_secs(30), 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            t.name
        );
        t.clock.advance(Duration::from_secs(8));
        let again = s.claim("w", Duration::from_secs(30), 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].lease.run_id, a1);
        assert_eq!(again[0].attempt, 2);
    }
}

fn record(path: &str, status: StepStatus) -> StepRecord {
    StepRecord {
        path: path.into(),
        step_id: path.into(),
        kind: "action".into(),
        generation: 0,
        attempt: 1,
        status,
        app: Some("http".into()),
        action: Some("get".into()),
        idempotent: true,
        input: Some(json!({"url": "http://x"})),
        output: None,
        error: None,
        lane: None,
        started_at: "2026-11-29T00:00:00Z".parse().unwrap(),
        finished_at: None,
    }
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_and_the_old_holder_is_fenced_off() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        let id = queued(&s.enqueue(event("a")).await.unwrap());
        let old = s
            .claim("w1", Duration::from_secs(5), 1)
            .await
            .unwrap()
            .remove(0);
        s.record_step(&old.lease, &record("a", StepStatus::Started))
            .await
            .unwrap();
        let held = s.heartbeat("w1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(held, vec![id.clone()]);
        assert!(
            s.claim("w2", Duration::from_secs(5), 1)
                .await
                .unwrap()
                .is_empty(),
            "{}: still leased",
            t.name
        );
        t.clock.advance(Duration::from_secs(6));
        let new = s
            .claim("w2", Duration::from_secs(5), 1)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(new.lease.run_id, id);
        assert_eq!(new.attempt, 2);
        // The stalled worker can no longer write anything about the run.
        assert!(s
            .record_step(&old.lease, &record("a", StepStatus::Succeeded))
            .await
            .is_err());
        assert!(s.finish(&old.lease, &RunOutcome::Succeeded).await.is_err());
        // Nor several records at once, nor records with its conclusion: nothing of either
        // is left behind.
        let held = [
            record("b", StepStatus::Succeeded),
            record("c", StepStatus::Started),
        ];
        assert!(matches!(
            s.record_steps(&old.lease, &held).await,
            Err(StoreError::LeaseLost(_))
        ));
        assert!(matches!(
            s.conclude(&old.lease, &held, &RunOutcome::Succeeded).await,
            Err(StoreError::LeaseLost(_))
        ));
        assert!(s
            .heartbeat("w1", Duration::from_secs(5))
            .await
            .unwrap()
            .is_empty());
        // The records so far are there for the new holder to resume from.
        let recs = s.step_records(&id).await.unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].status, StepStatus::Started);
        let mut done = record("a", StepStatus::Succeeded);
        done.output = Some(json!({"ok": true}));
        s.record_step(&new.lease, &done).await.unwrap();
        let recs = s.step_records(&id).await.unwrap();
        assert_eq!(
            recs.len(),
            1,
            "the finished record replaces its started record"
        );
        assert_eq!(recs[0].output, Some(json!({"ok": true})));
        // Held records go with the conclusion, in order, a later record of the same
        // execution replacing an earlier one.
        let mut c_done = record("c", StepStatus::Succeeded);
        c_done.output = Some(json!({"n": 2}));
        let held = [
            record("b", StepStatus::Started),
            record("b", StepStatus::Succeeded),
            record("c", StepStatus::Started),
            c_done,
        ];
        s.conclude(&new.lease, &held, &RunOutcome::Succeeded)
            .await
            .unwrap();
        assert_eq!(s.run(&id).await.unwrap().status, RunStatus::Succeeded);
        let recs = s.step_records(&id).await.unwrap();
        let seen: Vec<_> = recs
            .iter()
            .map(|r| (r.path.as_str(), r.status, r.output.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("a", StepStatus::Succeeded, Some(json!({"ok": true}))),
                ("b", StepStatus::Succeeded, None),
                ("c", StepStatus::Succeeded, Some(json!({"n": 2}))),
            ],
            "{}",
            t.name
        );
    }
}

#[tokio::test]
async fn runs_can_be_released_canceled_and_rerun() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        let id = queued(&s.enqueue(event("a")).await.unwrap());
        let c = s
            .claim("w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        s.release(&c.lease).await.unwrap();
        assert_eq!(
            s.run(&id).await.unwrap().status,
            RunStatus::Queued,
            "{}",
            t.name
        );
        let c = s
            .claim("w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        let failed = RunOutcome::Failed {
            path: "a".into(),
            error: StepError {
                message: "Required fields are missing: [Name]".into(),
                retryable: false,
                code: Some("REQUIRED_FIELD_MISSING".into()),
                fields: vec!["Name".into()],
                details: None,
            },
        };
        s.finish(&c.lease, &failed).await.unwrap();
        let run = s.run(&id).await.unwrap();
        assert_eq!(
            (run.status, run.error_step.as_deref()),
            (RunStatus::Failed, Some("a"))
        );
        s.rerun_from_failed(&id, "alice").await.unwrap();
        assert_eq!(s.run(&id).await.unwrap().status, RunStatus::Queued);
        assert!(
            s.rerun_from_failed(&id, "alice").await.is_err(),
            "only failed runs"
        );

        let fresh = s.rerun_from_start(&id, true, "alice").await.unwrap();
        assert_ne!(fresh, id);
        assert_eq!(
            s.run(&fresh).await.unwrap().trigger,
            json!({"customer": "a"})
        );
        s.cancel(&fresh, "alice").await.unwrap();
        assert_eq!(s.run(&fresh).await.unwrap().status, RunStatus::Canceled);

        // Bulk: every failed run of the flow goes back to the queue.
        let c = s
            .claim("w", Duration::from_secs(30), 1)
            .await
            .unwrap()
            .remove(0);
        s.finish(&c.lease, &failed).await.unwrap();
        assert_eq!(s.rerun_failed("sync", "alice").await.unwrap(), 1);
        let page = s
            .runs(&RunFilter {
                flow_id: Some("sync".into()),
                status: Some(RunStatus::Queued),
                limit: 10,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
    }
}

#[tokio::test]
async fn connection_secrets_never_reach_the_database_in_clear() {
    for t in stores().await {
        let s = &t.store;
        let secret = "sk-live-7f3a9c1e-unique-secret";
        let mut settings = serde_json::Map::new();
        settings.insert("token".into(), json!(secret));
        settings.insert("base_url".into(), json!("https://shop.example.com"));
        let info = s
            .save_connection("shop", "ecforce", &settings, "t")
            .await
            .unwrap();
        let back = s.connection(&info.id).await.unwrap();
        assert_eq!(back.settings["token"], secret);
        assert!(
            !format!("{back:?}").contains(secret),
            "Debug never shows settings"
        );
        s.import_flow("sync", "sync", FLOW, "t").await.unwrap();
        s.bind_connection("sync", "shop", &info.id, "t")
            .await
            .unwrap();
        assert_eq!(
            s.flow_connections("sync").await.unwrap()["shop"].settings["token"],
            secret
        );
        // Runs read a flow's connections from a cache; a saved change reaches the next
        // read at once, and so does a slot filled with another connection.
        settings.insert("token".into(), json!("rotated"));
        s.save_connection("shop", "ecforce", &settings, "t")
            .await
            .unwrap();
        assert_eq!(
            s.flow_connections("sync").await.unwrap()["shop"].settings["token"],
            "rotated"
        );
        let other = s
            .save_connection("shop2", "ecforce", &settings, "t")
            .await
            .unwrap();
        s.bind_connection("sync", "shop", &other.id, "t")
            .await
            .unwrap();
        assert_eq!(
            s.flow_connections("sync").await.unwrap()["shop"].name,
            "shop2"
        );
        s.bind_connection("sync", "shop", &info.id, "t")
            .await
            .unwrap();
        settings.insert("token".into(), json!(secret));
        s.save_connection("shop", "ecforce", &settings, "t")
            .await
            .unwrap();
        assert!(
            !found_in_database(&t, secret).await,
            "{}: the secret is stored in clear",
            t.name
        );
        assert!(
            found_in_database(&t, "shop").await,
            "{}: the search itself works",
            t.name
        );
    }
}

/// Search the database's raw contents for a string.
async fn found_in_database(t: &TestStore, needle: &str) -> bool {
    match &t.config.database_url {
        None => {
            // Checkpoint so every page is in the main file, then read the files' bytes.
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool(t).await)
                .await;
            ["flowbot.db", "flowbot.db-wal"].iter().any(|f| {
                std::fs::read(t.dir.path().join(f))
                    .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
                    .unwrap_or(false)
            })
        }
        Some(_) => {
            let pool = pool(t).await;
            for table in [
                "flows",
                "flow_versions",
                "connections",
                "flow_connections",
                "events",
                "runs",
                "step_records",
                "audit_log",
            ] {
                let rows: Vec<String> = sqlx::query_scalar(&format!(
                    "SELECT CAST(row_to_json(t) AS TEXT) FROM {table} t"
                ))
                .fetch_all(&pool)
                .await
                .unwrap();
                if rows.iter().any(|r| r.contains(needle)) {
                    return true;
                }
            }
            false
        }
    }
}

async fn pool(t: &TestStore) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = t
        .config
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", t.dir.path().join("flowbot.db").display()));
    sqlx::AnyPool::connect(&url).await.unwrap()
}

#[tokio::test]
async fn key_rotation_reseals_every_secret_and_retires_the_old_key() {
    for t in stores().await {
        let s = &t.store;
        let mut settings = serde_json::Map::new();
        settings.insert("token".into(), json!("rotate-me"));
        let a = s
            .save_connection("a", "http", &settings, "t")
            .await
            .unwrap();
        let b = s
            .save_connection("b", "http", &settings, "t")
            .await
            .unwrap();
        let old_key = std::fs::read_to_string(t.dir.path().join("secret.key")).unwrap();
        let (new_key, n) = s.rotate_key(None, "t").await.unwrap();
        assert_eq!(n, 2, "{}", t.name);
        assert_ne!(new_key, old_key);
        assert_eq!(
            std::fs::read_to_string(t.dir.path().join("secret.key")).unwrap(),
            new_key
        );
        assert!(!t.dir.path().join("secret.key.next").exists());
        assert_eq!(
            s.connection(&a.id).await.unwrap().settings["token"],
            "rotate-me"
        );
        assert_eq!(
            s.connection(&b.id).await.unwrap().settings["token"],
            "rotate-me"
        );
        // The old key opens nothing any more.
        let old = flowbot_store::crypto::MasterKey::from_base64(&old_key).unwrap();
        let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT secret_box FROM connections")
            .fetch_all(&pool(&t).await)
            .await
            .unwrap();
        assert_eq!(sealed.len(), 2);
        assert!(sealed.iter().all(|b| old.open(b).is_err()));
    }
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_sqlite_store() {
    let t = open("sqlite", None).await;
    let again = Store::open(&t.config).await;
    assert!(
        matches!(again, Err(StoreError::Locked(_))),
        "{:?}",
        again.err()
    );
}

#[tokio::test]
async fn schedule_slots_fire_exactly_once_across_racing_workers() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        let slot: jiff::Timestamp = "2026-11-29T00:00:00Z".parse().unwrap();
        let racers: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.fire_schedule_slot(slot, event("sched")).await })
            })
            .collect();
        let mut fired = 0;
        for r in racers {
            if r.await.unwrap().unwrap().is_some() {
                fired += 1;
            }
        }
        assert_eq!(fired, 1, "{}", t.name);
        assert_eq!(
            s.count_runs(Some("sync"), RunStatus::Queued).await.unwrap(),
            1
        );
        assert_eq!(s.last_schedule_slot("sync").await.unwrap(), Some(slot));
    }
}

#[tokio::test]
async fn a_poll_cursor_moves_with_its_events_and_survives_a_restart() {
    let mut all = stores().await;
    for t in all.iter_mut() {
        let s = t.store.clone();
        enabled_flow(&s).await;
        assert_eq!(s.poll_cursor("sync").await.unwrap(), None);
        assert!(s
            .commit_poll("sync", None, "10".into(), vec![event("p1"), event("p2")])
            .await
            .unwrap());
        // A poll that started from a stale cursor writes nothing.
        assert!(!s
            .commit_poll("sync", None, "11".into(), vec![event("p3")])
            .await
            .unwrap());
        assert_eq!(
            s.count_runs(Some("sync"), RunStatus::Queued).await.unwrap(),
            2
        );
        drop(s);
        // Reopen: the cursor is where the committed poll left it.
        t.store = reopen(t).await;
        let (cursor, _) = t.store.poll_cursor("sync").await.unwrap().unwrap();
        assert_eq!(cursor, "10", "{}", t.name);
        assert!(t
            .store
            .commit_poll("sync", Some("10".into()), "12".into(), vec![event("p3")])
            .await
            .unwrap());
        assert_eq!(
            t.store
                .count_runs(Some("sync"), RunStatus::Queued)
                .await
                .unwrap(),
            3
        );
    }
}

/// Close a store and open it again on the same files or database.
async fn reopen(t: &mut TestStore) -> Store {
    let old = std::mem::replace(&mut t.store, placeholder().await);
    drop(old);
    // The writer task and pool close asynchronously; wait for the file lock to be free.
    for _ in 0..100 {
        match Store::open_with_clock(&t.config, t.clock.clone()).await {
            Ok(s) => return s,
            Err(StoreError::Locked(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the store did not close");
}

async fn placeholder() -> Store {
    open("sqlite", None).await.store
}

#[tokio::test]
async fn retention_purges_old_history_and_the_file_stops_growing() {
    let t = open("sqlite", None).await;
    let s = &t.store;
    enabled_flow(s).await;
    let big = "x".repeat(2000);
    let fill = |round: usize| {
        let s = s.clone();
        let big = big.clone();
        async move {
            for i in 0..200 {
                let mut ev = event(&format!("r{round}-{i}"));
                ev.trigger = json!({ "customer": format!("r{round}-{i}"), "pad": big });
                let id = queued(&s.enqueue(ev).await.unwrap());
                let c = s
                    .claim("w", Duration::from_secs(30), 1)
                    .await
                    .unwrap()
                    .remove(0);
                assert_eq!(c.lease.run_id, id);
                s.finish(&c.lease, &RunOutcome::Succeeded).await.unwrap();
            }
        }
    };
    let policy = flowbot_store::Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_runs_per_flow: None,
        batch: 50,
    };
    let size = || {
        std::fs::metadata(t.dir.path().join("flowbot.db"))
            .unwrap()
            .len()
            + std::fs::metadata(t.dir.path().join("flowbot.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
    };
    // An event that never had a run (the trigger was OFF) goes with the old history too.
    let ignored = s
        .record_ignored_event("sync", json!({}), json!({"late": true}), "trigger OFF")
        .await
        .unwrap();
    let mut sizes = Vec::new();
    for round in 0..4 {
        fill(round).await;
        t.clock.advance(Duration::from_secs(7200));
        assert_eq!(s.purge(&policy).await.unwrap(), 200);
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool(&t).await)
            .await
            .unwrap();
        sizes.push(size());
    }
    assert_eq!(
        s.count_runs(Some("sync"), RunStatus::Succeeded)
            .await
            .unwrap(),
        0
    );
    assert!(sizes[3] <= sizes[1], "the file kept growing: {sizes:?}");
    let events = s.events(Some("sync"), 1000).await.unwrap();
    assert!(
        events.iter().all(|e| e.id != ignored),
        "the old ignored event is purged"
    );

    // Count-based retention keeps the newest runs of each flow.
    fill(9).await;
    let keep = flowbot_store::Retention {
        max_age: None,
        max_runs_per_flow: Some(30),
        batch: 50,
    };
    assert_eq!(s.purge(&keep).await.unwrap(), 170);
    assert_eq!(
        s.count_runs(Some("sync"), RunStatus::Succeeded)
            .await
            .unwrap(),
        30
    );
}

#[tokio::test]
async fn the_data_directory_and_the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let store = Store::open(&flowbot_store::StoreConfig::sqlite(&dir))
        .await
        .unwrap();
    // A write, so SQLite has made its journal files too.
    store.import_flow("sync", "sync", FLOW, "t").await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the data directory");
    for name in [
        "flowbot.db",
        "flowbot.db-wal",
        "flowbot.db-shm",
        "secret.key",
    ] {
        let p = dir.join(name);
        assert!(p.exists(), "{name} exists");
        assert_eq!(mode(&p), 0o600, "{name}");
    }
    drop(store);
    // A database file loosened by hand is tightened at the next start.
    let db = dir.join("flowbot.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _again = Store::open(&flowbot_store::StoreConfig::sqlite(&dir))
        .await
        .unwrap();
    assert_eq!(mode(&db), 0o600);
}

#[tokio::test]
async fn a_run_is_pinned_to_the_version_its_keys_were_rendered_with() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        // The flow changes between rendering the keys (version 1) and storing the event.
        s.import_flow("sync", "sync", &FLOW.replace("x: 1", "x: 2"), "t")
            .await
            .unwrap();
        let pinned = queued(
            &s.enqueue(flowbot_store::NewEvent {
                files: Vec::new(),
                flow_version: Some(1),
                ..event("c1")
            })
            .await
            .unwrap(),
        );
        let current = queued(&s.enqueue(event("c2")).await.unwrap());
        assert_eq!(s.run(&pinned).await.unwrap().flow_version, 1, "{}", t.name);
        assert_eq!(s.run(&current).await.unwrap().flow_version, 2, "{}", t.name);
    }
}

#[tokio::test]
async fn oauth_attempts_are_taken_once_and_captures_reach_their_waiter() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        let p = flowbot_store::PendingOauth {
            connection_id: "c1".into(),
            verifier: "v".repeat(64),
            redirect_uri: "https://flowbot.example.jp/oauth/callback".into(),
            return_to: Some("/flows/sync".into()),
        };
        s.oauth_begin("state-1", &p).await.unwrap();
        assert_eq!(
            s.oauth_take("state-1").await.unwrap(),
            Some(p),
            "{}",
            t.name
        );
        assert_eq!(s.oauth_take("state-1").await.unwrap(), None, "taken once");
        assert_eq!(s.oauth_take("unknown").await.unwrap(), None);

        let id = s
            .capture_open("sync", Duration::from_secs(5))
            .await
            .unwrap();
        assert!(s.flow("sync").await.unwrap().capture_until > 0);
        let waiter = {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move { s.capture_wait(&id, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.capture_fill("sync", &json!({"n": 1})).await.unwrap(), 1);
        assert_eq!(
            waiter.await.unwrap().unwrap(),
            Some(json!({"n": 1})),
            "{}",
            t.name
        );
        // Nobody waits any more: a fill reaches no one, and a wait without a fill ends empty.
        assert_eq!(s.capture_fill("sync", &json!({"n": 2})).await.unwrap(), 0);
        let lonely = s
            .capture_open("sync", Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(
            s.capture_wait(&lonely, Duration::from_millis(200))
                .await
                .unwrap(),
            None
        );
        assert!(matches!(
            s.capture_open("nope", Duration::from_secs(1)).await,
            Err(StoreError::FlowNotFound(_))
        ));
    }
}

/// The webhook path reads its flow from a cache: a change this process makes (a new
/// token, the flow deleted) is seen by the next webhook at once; another process's
/// (PostgreSQL, a second server) within two seconds.
#[tokio::test]
async fn a_webhook_sees_its_flows_changes_at_once_and_another_servers_soon() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        let first = s.flow_for_webhook("sync").await.unwrap().webhook_token;
        let second = s.regenerate_webhook_token("sync", "t").await.unwrap();
        assert_ne!(first, second, "{}", t.name);
        assert_eq!(
            s.flow_for_webhook("sync").await.unwrap().webhook_token,
            second,
            "{}: this process's new token is used by the next webhook",
            t.name
        );
        if t.config.database_url.is_some() {
            let other = Store::open(&t.config).await.unwrap();
            let third = other.regenerate_webhook_token("sync", "t").await.unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while s.flow_for_webhook("sync").await.unwrap().webhook_token != third {
                assert!(
                    std::time::Instant::now() < deadline,
                    "another server's new token was not seen within 5 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        s.delete_flow("sync", "t").await.unwrap();
        assert!(
            matches!(
                s.flow_for_webhook("sync").await,
                Err(StoreError::FlowNotFound(_))
            ),
            "{}: a deleted flow is gone for the next webhook",
            t.name
        );
    }
}

/// Records of runs written at the same time share statements; each run's lease is still
/// checked on its own: a canceled run's records are refused and written nowhere, while the
/// others' are all there.
#[tokio::test]
async fn records_written_together_are_fenced_run_by_run() {
    for t in stores().await {
        let s = &t.store;
        enabled_flow(s).await;
        for i in 0..12 {
            s.enqueue(event(&format!("c{i}"))).await.unwrap();
        }
        let claimed = s.claim("w", Duration::from_secs(30), 12).await.unwrap();
        assert_eq!(claimed.len(), 12, "{}", t.name);
        let canceled = claimed[5].lease.run_id.clone();
        s.cancel(&canceled, "alice").await.unwrap();
        let writes = claimed.iter().map(|c| {
            let recs = [
                record("a", StepStatus::Succeeded),
                record("b", StepStatus::Started),
            ];
            async move {
                (
                    c.lease.run_id.clone(),
                    s.record_steps(&c.lease, &recs).await,
                )
            }
        });
        for (run, written) in futures_util::future::join_all(writes).await {
            let recs = s.step_records(&run).await.unwrap();
            if run == canceled {
                assert!(
                    matches!(written, Err(StoreError::LeaseLost(_))),
                    "{}: {written:?}",
                    t.name
                );
                assert!(
                    recs.is_empty(),
                    "{}: nothing of a lost lease is written",
                    t.name
                );
            } else {
                assert!(written.is_ok(), "{}: {written:?}", t.name);
                assert_eq!(recs.len(), 2, "{}", t.name);
            }
        }
    }
}
