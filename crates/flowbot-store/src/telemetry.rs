//! Prometheus metrics of one process. Counters and histograms are kept where things happen
//! (ingress, the worker); the figures that describe the whole deployment — queue depth, live
//! workers, runs by status — are read from the database at scrape time, so every server in
//! a cluster reports the same numbers.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sqlx::Row;

use crate::{Result, Store};

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn step_buckets() -> Histogram {
    // 0.5 ms … about 16 s: local fakes answer in well under a millisecond, real APIs in
    // tens to hundreds.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A reading of an app's API allowance, as the app reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUsageReading {
    pub app: String,
    pub connection: String,
    pub used: u64,
    pub limit: u64,
}

pub struct Telemetry {
    registry: Registry,
    webhooks: Family<Labels, Counter>,
    runs_finished: Family<Labels, Counter>,
    run_retries: Family<Labels, Counter>,
    step_seconds: HistogramFamily,
    step_retries: Family<Labels, Counter>,
    ai_tokens: Family<Labels, Counter>,
    // Read from the database at scrape time.
    runs: Family<Labels, Gauge>,
    queue_depth: Gauge,
    queue_oldest_due: FloatGauge,
    workers: Gauge,
    api_used: Family<Labels, Gauge>,
    api_limit: Family<Labels, Gauge>,
    /// Serialises scrapes: the scrape-time gauges are cleared and refilled.
    scrape: Mutex<()>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("flowbot");
        let webhooks = Family::<Labels, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook requests answered, by outcome (accepted or rejected) and reason",
            webhooks.clone(),
        );
        let runs_finished = Family::<Labels, Counter>::default();
        registry.register(
            "runs_finished",
            "Run attempts this process concluded, by flow and resulting status",
            runs_finished.clone(),
        );
        let run_retries = Family::<Labels, Counter>::default();
        registry.register(
            "run_retries",
            "Run attempts this process put back on the queue for a retry, by flow",
            run_retries.clone(),
        );
        let step_seconds = HistogramFamily::new_with_constructor(step_buckets);
        registry.register(
            "step_duration_seconds",
            "How long app steps took in this process, by app, action and status",
            step_seconds.clone(),
        );
        let step_retries = Family::<Labels, Counter>::default();
        registry.register(
            "step_retries",
            "Executions of an app step beyond its first, by app and action",
            step_retries.clone(),
        );
        let ai_tokens = Family::<Labels, Counter>::default();
        registry.register(
            "ai_tokens",
            "Language-model tokens app steps reported using in this process, by kind (prompt or completion)",
            ai_tokens.clone(),
        );
        let runs = Family::<Labels, Gauge>::default();
        registry.register(
            "runs",
            "Runs in the database, by flow and status",
            runs.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Runs due now and not yet claimed",
            queue_depth.clone(),
        );
        let queue_oldest_due = FloatGauge::default();
        registry.register(
            "queue_oldest_due_seconds",
            "How long the oldest due run has waited to be claimed",
            queue_oldest_due.clone(),
        );
        let workers = Gauge::default();
        registry.register(
            "workers",
            "Workers that reported in within the last 30 seconds",
            workers.clone(),
        );
        let api_used = Family::<Labels, Gauge>::default();
        registry.register(
            "app_api_calls_used",
            "API calls used today as the app reports it (Salesforce: Sforce-Limit-Info)",
            api_used.clone(),
        );
        let api_limit = Family::<Labels, Gauge>::default();
        registry.register(
            "app_api_calls_limit",
            "The app's daily API allowance as it reports it",
            api_limit.clone(),
        );
        Telemetry {
            registry,
            webhooks,
            runs_finished,
            run_retries,
            step_seconds,
            step_retries,
            ai_tokens,
            runs,
            queue_depth,
            queue_oldest_due,
            workers,
            api_used,
            api_limit,
            scrape: Mutex::new(()),
        }
    }
}

impl Telemetry {
    /// A webhook answered: `accepted` when the event is stored, with the reason either way.
    pub fn webhook(&self, accepted: bool, reason: &str) {
        let outcome = if accepted { "accepted" } else { "rejected" };
        self.webhooks
            .get_or_create(&labels([("outcome", outcome), ("reason", reason)]))
            .inc();
    }

    pub fn run_finished(&self, flow_id: &str, status: &str) {
        self.runs_finished
            .get_or_create(&labels([("flow_id", flow_id), ("status", status)]))
            .inc();
    }

    pub fn run_retry(&self, flow_id: &str) {
        self.run_retries
            .get_or_create(&labels([("flow_id", flow_id)]))
            .inc();
    }

    pub fn step_finished(&self, app: &str, action: &str, status: &str, seconds: f64) {
        self.step_seconds
            .get_or_create(&labels([
                ("app", app),
                ("action", action),
                ("status", status),
            ]))
            .observe(seconds);
    }

    pub fn step_retried(&self, app: &str, action: &str) {
        self.step_retries
            .get_or_create(&labels([("app", app), ("action", action)]))
            .inc();
    }

    /// Tokens a step's language model reported using.
    pub fn ai_tokens(&self, prompt: u64, completion: u64) {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.ai_tokens
                .get_or_create(&labels([("kind", kind)]))
                .inc_by(n);
        }
    }

    /// The OpenMetrics text: this process's counters, and the deployment's figures read now.
    pub async fn render(&self, store: &Store, usage: &[ApiUsageReading]) -> Result<String> {
        let snapshot = Snapshot::read(store).await?;
        let _one = self.scrape.lock().expect("scrape");
        self.runs.clear();
        for ((flow_id, status), n) in &snapshot.runs {
            self.runs
                .get_or_create(&labels([("flow_id", flow_id), ("status", status)]))
                .set(*n);
        }
        self.queue_depth.set(snapshot.due);
        self.queue_oldest_due
            .set(snapshot.oldest_due_ms.unwrap_or(0).max(0) as f64 / 1000.0);
        self.workers.set(snapshot.workers);
        self.api_used.clear();
        self.api_limit.clear();
        for u in usage {
            let l = labels([("app", &u.app), ("connection", &u.connection)]);
            self.api_used.get_or_create(&l).set(u.used as i64);
            self.api_limit.get_or_create(&l).set(u.limit as i64);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        Ok(out)
    }
}

/// What the database says about the whole deployment.
struct Snapshot {
    runs: BTreeMap<(String, String), i64>,
    due: i64,
    oldest_due_ms: Option<i64>,
    workers: i64,
}

impl Snapshot {
    async fn read(store: &Store) -> Result<Snapshot> {
        let rows =
            sqlx::query("SELECT flow_id, status, COUNT(*) AS n FROM runs GROUP BY flow_id, status")
                .fetch_all(store.pool())
                .await?;
        let mut runs = BTreeMap::new();
        for row in rows {
            runs.insert(
                (row.try_get("flow_id")?, row.try_get("status")?),
                row.try_get("n")?,
            );
        }
        let (due, oldest_due_ms) = store.queue_depth().await?;
        let workers = store
            .live_workers(std::time::Duration::from_secs(30))
            .await?;
        Ok(Snapshot {
            runs,
            due,
            oldest_due_ms,
            workers: workers.len() as i64,
        })
    }
}
