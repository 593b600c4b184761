//! `flowbot bench`: throughput measured on this machine, for docs/benchmarks.md. Never run
//! by the tests: figures on a shared machine are for reading, not for asserting.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use flowbot_engine::{Worker, WorkerConfig};
use flowbot_store::{EnqueueOutcome, NewEvent, RunStatus, Source, Store, StoreConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// The customer sync as users run it: the simulators, `flowbot serve` and the load in
    /// processes of their own; every write checked
    E2e(crate::bench_procs::E2eArgs),
    /// Durable event acceptance and no-op run completion, SQLite and PostgreSQL
    Queue(QueueArgs),
    /// Webhook acceptance over HTTP at several concurrencies: requests/s, p50 and p99
    Ingress(crate::bench_e2e::IngressArgs),
    /// Customer syncs per second through the simulators, by template, latency and workers
    Sync(crate::bench_e2e::SyncArgs),
    /// A real `flowbot serve` process: start-up, memory idle and at peak, one sync alone
    Process(crate::bench_e2e::ProcessArgs),
    /// `flowbot backfill`: time and Salesforce calls per customer
    Backfill(crate::bench_e2e::BackfillBenchArgs),
    /// A table's grid paged through over HTTP (100,000 rows): each page's time
    Grid(crate::bench_grid::GridArgs),
}

#[derive(clap::Args)]
struct QueueArgs {
    /// Events accepted, and runs completed per worker count
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Acceptances in flight at once
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Worker counts to measure
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// A PostgreSQL database to measure too (its flows and runs are left for inspection)
    #[arg(long, env = "BENCH_DATABASE_URL", value_name = "URL")]
    postgres: Option<String>,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let rt = crate::store_cmds::runtime()?;
    match args.what {
        What::Queue(q) => rt.block_on(queue(q)),
        What::E2e(a) => rt.block_on(crate::bench_procs::e2e(a)),
        What::Ingress(a) => rt.block_on(crate::bench_e2e::ingress(a)),
        What::Sync(a) => rt.block_on(crate::bench_e2e::sync(a)),
        What::Process(a) => rt.block_on(crate::bench_e2e::process(a)),
        What::Backfill(a) => rt.block_on(crate::bench_e2e::backfill(a)),
        What::Grid(a) => rt.block_on(crate::bench_grid::grid(a)),
    }
}

const NOOP: &str = "version: 1\nid: ID\nname: bench\ntrigger: { app: manual }\nsteps:\n  - id: noop\n    set: { ok: true }\n";

async fn queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let mut backends: Vec<(&str, Option<String>)> = vec![("SQLite", None)];
    if let Some(url) = &args.postgres {
        backends.push(("PostgreSQL", Some(url.clone())));
    }
    println!("| backend | measure | workers | count | seconds | per second | commits |");
    println!("|---|---|---|---|---|---|---|");
    for (name, url) in backends {
        let dir = tempfile_dir()?;
        let config = StoreConfig {
            database_url: url,
            data_dir: dir.clone(),
            secret_key: None,
        };
        let store = Store::open(&config).await.context("open the store")?;

        // Acceptance: events stored durably with their runs, `concurrency` at a time.
        let flow_id = fresh_flow(&store).await?;
        let commits0 = store.commits();
        let started = Instant::now();
        accept(&store, &flow_id, args.events, args.concurrency).await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {name} | events accepted (durable) | – | {} | {secs:.2} | {:.0} | {} |",
            args.events,
            args.events as f64 / secs,
            store.commits() - commits0
        );
        store.cancel_queued(&flow_id).await?;

        for &workers in &args.workers {
            let flow_id = fresh_flow(&store).await?;
            store.set_enabled(&flow_id, false, "bench").await?;
            // Queue while no worker runs (manual events start runs even when OFF).
            accept_manual(&store, &flow_id, args.events, args.concurrency).await?;
            let commits0 = store.commits();
            let stop = CancellationToken::new();
            let started = Instant::now();
            let mut handles = Vec::new();
            let mut worker_stores = Vec::new();
            for i in 0..workers {
                let s = match &config.database_url {
                    // Separate pools and writers, as separate processes would have.
                    Some(_) => {
                        let s = Store::open(&config).await?;
                        worker_stores.push(s.clone());
                        s
                    }
                    None => store.clone(),
                };
                let cfg = WorkerConfig {
                    id: format!("bench-{i}"),
                    idle_poll: Duration::from_millis(5),
                    triggers: false,
                    retention: None,
                    ..WorkerConfig::default()
                };
                handles.push(tokio::spawn(
                    Worker::new(s, flowbot_connectors::registry(), cfg).run(stop.clone()),
                ));
            }
            while (store
                .count_runs(Some(&flow_id), RunStatus::Succeeded)
                .await? as usize)
                < args.events
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let secs = started.elapsed().as_secs_f64();
            stop.cancel();
            for h in handles {
                h.await??;
            }
            let commits =
                store.commits() - commits0 + worker_stores.iter().map(Store::commits).sum::<u64>();
            println!(
                "| {name} | no-op runs completed | {workers} | {} | {secs:.2} | {:.0} | {commits} |",
                args.events,
                args.events as f64 / secs,
            );
        }
        drop(store);
        if config.database_url.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("flowbot-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn fresh_flow(store: &Store) -> anyhow::Result<String> {
    let id = format!("bench-{}", &stamp());
    store
        .import_flow(&id, "bench", &NOOP.replace("ID", &id), "bench")
        .await?;
    store.set_enabled(&id, true, "bench").await?;
    Ok(id)
}

/// A name no earlier measure used: the time in nanoseconds, in hex.
pub(crate) fn stamp() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )
}

async fn accept(store: &Store, flow: &str, n: usize, concurrency: usize) -> anyhow::Result<()> {
    enqueue_all(store, flow, n, concurrency, Source::Webhook).await
}

async fn accept_manual(
    store: &Store,
    flow: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    enqueue_all(store, flow, n, concurrency, Source::Manual).await
}

async fn enqueue_all(
    store: &Store,
    flow: &str,
    n: usize,
    concurrency: usize,
    source: Source,
) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (store, flow, next) = (store.clone(), flow.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let trigger = json!({ "i": i });
                let out = store
                    .enqueue(NewEvent {
                        files: Vec::new(),
                        flow_version: None,
                        flow_id: flow.clone(),
                        source,
                        headers: json!({}),
                        body: trigger.clone(),
                        trigger,
                        concurrency_key: Ok(None),
                        dedupe: None,
                    })
                    .await?;
                anyhow::ensure!(
                    matches!(out, EnqueueOutcome::Queued { .. }),
                    "not queued: {out:?}"
                );
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
