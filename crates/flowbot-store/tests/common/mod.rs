//! Test helpers: a fresh store on each backend, a clock the test moves by hand, a flow.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowbot_core::Clock;
use flowbot_store::{NewEvent, Source, Store, StoreConfig};
use jiff::Timestamp;
use serde_json::json;

pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(
            "2026-11-29T00:00:00Z".parse().unwrap(),
        )))
    }

    pub fn set(&self, t: &str) {
        *self.0.lock().unwrap() = t.parse().unwrap();
    }

    pub fn now_ms(&self) -> i64 {
        self.0.lock().unwrap().as_millisecond()
    }

    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap();
        *t = Timestamp::from_millisecond(t.as_millisecond() + d.as_millis() as i64).unwrap();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
    fn random_unit(&self) -> f64 {
        1.0
    }
}

/// A store on one backend, with what is needed to inspect it afterwards.
pub struct TestStore {
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub config: StoreConfig,
    pub name: &'static str,
}

/// A fresh PostgreSQL database on the server `TEST_DATABASE_URL` points at.
pub async fn fresh_pg_url() -> Option<String> {
    let base = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    sqlx::any::install_default_drivers();
    let db = format!("flowbot_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn: sqlx::AnyConnection = sqlx::Connection::connect(&base)
        .await
        .expect("connect to TEST_DATABASE_URL");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {db}").as_str())
        .await
        .expect("create a test database");
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("a database URL ends with /name");
    Some(format!("{prefix}/{db}"))
}

/// SQLite always; PostgreSQL when `TEST_DATABASE_URL` is set.
pub async fn stores() -> Vec<TestStore> {
    let mut out = vec![open("sqlite", None).await];
    if let Some(url) = fresh_pg_url().await {
        out.push(open("postgres", Some(url)).await);
    }
    out
}

pub async fn open(name: &'static str, database_url: Option<String>) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let config = StoreConfig {
        database_url,
        data_dir: dir.path().to_path_buf(),
        secret_key: None,
    };
    let store = Store::open_with_clock(&config, clock.clone())
        .await
        .expect("open store");
    TestStore {
        store,
        clock,
        dir,
        config,
        name,
    }
}

pub const FLOW: &str = r#"version: 1
id: sync
name: sync
trigger: { app: manual }
concurrency_key: "{{ trigger.customer }}"
steps:
  - id: a
    set: { x: 1 }
"#;

pub async fn enabled_flow(store: &Store) {
    store
        .import_flow("sync", "sync", FLOW, "test")
        .await
        .unwrap();
    store.set_enabled("sync", true, "test").await.unwrap();
}

pub fn event(customer: &str) -> NewEvent {
    let trigger = json!({ "customer": customer });
    NewEvent {
        files: Vec::new(),
        flow_version: None,
        flow_id: "sync".into(),
        source: Source::Webhook,
        headers: json!({}),
        body: trigger.clone(),
        trigger,
        concurrency_key: Ok(Some(customer.to_string())),
        dedupe: None,
    }
}
