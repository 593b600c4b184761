//! End-to-end benchmarks over loopback HTTP: webhook acceptance, customer syncs through the
//! simulators, a real `flowbot serve` process (start-up, memory, single-sync latency) and a
//! backfill. They print Markdown tables for docs/benchmarks.md.

use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::setup::{install_template, install_template_as, SyncApps};
use anyhow::Context;
use flowbot_engine::{Worker, WorkerConfig};
use flowbot_sandbox::ecforce::{self, EcforceSim};
use flowbot_sandbox::faults::FaultConfig;
use flowbot_sandbox::salesforce::{self, SalesforceSim};
use flowbot_sandbox::Running;
use flowbot_server::{App, AppConfig};
use flowbot_store::{RunFilter, RunStatus, Store, StoreConfig};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

const WEBHOOK_FLOW: &str = "version: 1\nid: ID\nname: bench\ntrigger: { app: webhook }\nsteps:\n  - id: noop\n    set: { ok: true }\n";

use crate::bench::stamp;
use crate::demo::template_id;

/// The stores to measure: SQLite in a fresh directory, and PostgreSQL when given.
fn backends(postgres: &Option<String>) -> anyhow::Result<Vec<(&'static str, StoreConfig)>> {
    let dir =
        std::env::temp_dir().join(format!("flowbot-bench-{}-{}", std::process::id(), stamp()));
    std::fs::create_dir_all(&dir)?;
    let mut out = vec![("SQLite", StoreConfig::sqlite(dir.join("sqlite")))];
    if let Some(url) = postgres {
        out.push((
            "PostgreSQL",
            StoreConfig {
                database_url: Some(url.clone()),
                data_dir: dir.join("pg"),
                secret_key: None,
            },
        ));
    }
    Ok(out)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// POST every body to its URL, `concurrency` at a time; the latency of each 2xx answer.
pub(crate) async fn post_all(
    http: &reqwest::Client,
    requests: Vec<(String, String)>,
    concurrency: usize,
) -> anyhow::Result<Vec<Duration>> {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (http, requests, next) = (http.clone(), requests.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((url, body)) = requests.get(i) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let started = Instant::now();
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("x-ecf-event", "customer_created")
                    .body(body.clone())
                    .send()
                    .await?;
                if !r.status().is_success() {
                    anyhow::bail!("a webhook was answered {}", r.status());
                }
                latencies.push(started.elapsed());
            }
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    all.sort();
    Ok(all)
}

/// The server alone (the benchmark starts its own workers), assembled as `serve` does.
async fn start_server(store: &Store, stop: &CancellationToken) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = App::start(
        store.clone(),
        flowbot_connectors::registry(),
        AppConfig::default(),
        listener,
        stop.clone(),
    )
    .await?;
    Ok(app.url())
}

#[derive(clap::Args)]
pub struct IngressArgs {
    /// Webhooks sent per concurrency level
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Requests in flight at once
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// A PostgreSQL database to measure too
    #[arg(long, env = "BENCH_DATABASE_URL", value_name = "URL")]
    postgres: Option<String>,
}

/// Webhook acceptance over HTTP: each answer comes after the event and its run are committed.
pub async fn ingress(args: IngressArgs) -> anyhow::Result<ExitCode> {
    println!("| backend | concurrency | webhooks | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, config) in backends(&args.postgres)? {
        let store = Store::open(&config).await.context("open the store")?;
        let stop = CancellationToken::new();
        let url = start_server(&store, &stop).await?;
        let http = reqwest::Client::new();
        for &c in &args.concurrency {
            let id = format!("bench-ingress-{}", stamp());
            let info = store
                .import_flow(&id, "bench", &WEBHOOK_FLOW.replace("ID", &id), "bench")
                .await?;
            store.set_enabled(&id, true, "bench").await?;
            let hook = format!("{url}/hooks/{id}/{}", info.webhook_token);
            let reqs = (0..args.requests)
                .map(|i| (hook.clone(), json!({ "i": i }).to_string()))
                .collect();
            let started = Instant::now();
            let lat = post_all(&http, reqs, c).await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "| {name} | {c} | {} | {:.0} | {:.2} | {:.2} |",
                lat.len(),
                lat.len() as f64 / secs,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
            store.cancel_queued(&id).await?;
        }
        stop.cancel();
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct SyncArgs {
    /// Customers in the burst
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    /// Webhooks in flight at once
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Templates to measure
    #[arg(long, value_delimiter = ',', default_value = "search,upsert")]
    templates: Vec<String>,
    /// Simulated latency of every ecforce and Salesforce call, in ms
    #[arg(long, value_delimiter = ',', default_value = "0,50")]
    latency_ms: Vec<u64>,
    /// Worker counts
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Runs each worker executes at once
    #[arg(long, default_value_t = 256)]
    run_concurrency: usize,
    /// A PostgreSQL database to measure too
    #[arg(long, env = "BENCH_DATABASE_URL", value_name = "URL")]
    postgres: Option<String>,
}

struct Sims {
    ec: Running<EcforceSim>,
    sf: Running<SalesforceSim>,
}

async fn sims(latency_ms: u64) -> anyhow::Result<Sims> {
    let ec = ecforce::start(Default::default(), 0).await?;
    let sf = salesforce::start(Default::default(), 0).await?;
    if latency_ms > 0 {
        let slow = FaultConfig {
            latency_ms,
            ..FaultConfig::default()
        };
        ec.sim.faults.set(slow.clone());
        sf.sim.faults.set(slow);
    }
    Ok(Sims { ec, sf })
}

pub(crate) fn customer(i: usize) -> Map<String, Value> {
    json!({"email": format!("bench{i}@example.jp"), "name01": "速度", "name02": format!("{i}")})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Webhook requests for customers `ids`, as ecforce sends them.
pub(crate) fn webhooks(hook: &str, ids: &[u64]) -> Vec<(String, String)> {
    ids.iter()
        .map(|id| {
            (
                hook.to_string(),
                json!({ "id": id.to_string() }).to_string(),
            )
        })
        .collect()
}

/// Customer syncs per second through the simulators: a burst of webhooks, each a distinct
/// new customer, until every run has succeeded.
pub async fn sync(args: SyncArgs) -> anyhow::Result<ExitCode> {
    println!("| backend | template | API latency | workers | customers | seconds | syncs/s | run p50 ms | run p99 ms | Salesforce calls / customer |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, config) in backends(&args.postgres)? {
        let store = Store::open(&config).await.context("open the store")?;
        for t in &args.templates {
            let template = template_id(t)?;
            for &latency in &args.latency_ms {
                for &workers in &args.workers {
                    let s = sims(latency).await?;
                    let flow = format!("bench-sync-{}", stamp());
                    let info = install_template_as(
                        &store,
                        &flowbot_connectors::registry(),
                        template,
                        &flow,
                        &SyncApps::sandbox(&s.ec, &s.sf),
                        "bench",
                    )
                    .await?;
                    let ids: Vec<u64> = (0..args.customers)
                        .map(|i| s.ec.sim.create_customer(&customer(i)))
                        .collect();
                    let stop = CancellationToken::new();
                    let url = start_server(&store, &stop).await?;
                    let mut handles = Vec::new();
                    for w in 0..workers {
                        let ws = match &config.database_url {
                            Some(_) => Store::open(&config).await?,
                            None => store.clone(),
                        };
                        let cfg = WorkerConfig {
                            id: format!("bench-{w}"),
                            concurrency: args.run_concurrency,
                            idle_poll: Duration::from_millis(20),
                            triggers: false,
                            retention: None,
                            ..WorkerConfig::default()
                        };
                        handles.push(tokio::spawn(
                            Worker::new(ws, flowbot_connectors::registry(), cfg).run(stop.clone()),
                        ));
                    }
                    let hook = format!("{url}/hooks/{flow}/{}", info.webhook_token);
                    let http = reqwest::Client::new();
                    let started = Instant::now();
                    post_all(&http, webhooks(&hook, &ids), args.concurrency).await?;
                    wait_for_runs(&store, &flow, args.customers, Duration::from_secs(600)).await?;
                    let secs = started.elapsed().as_secs_f64();
                    stop.cancel();
                    for h in handles {
                        h.await??;
                    }
                    let (p50, p99) = run_latency(&store, &flow, args.customers).await?;
                    let calls = s.sf.sim.stats()["api_usage"].as_u64().unwrap_or(0);
                    println!(
                        "| {name} | {t} | {latency} ms | {workers} | {} | {secs:.2} | {:.0} | {p50} | {p99} | {:.2} |",
                        args.customers,
                        args.customers as f64 / secs,
                        calls as f64 / args.customers as f64
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_runs(store: &Store, flow: &str, n: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let done = store.count_runs(Some(flow), RunStatus::Succeeded).await? as usize;
        if done >= n {
            return Ok(());
        }
        let failed = store.count_runs(Some(flow), RunStatus::Failed).await?;
        if failed > 0 {
            anyhow::bail!("{failed} runs of {flow} failed; see flowbot serve's run history");
        }
        if Instant::now() > deadline {
            anyhow::bail!("only {done} of {n} runs finished in {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// p50 and p99 of queued → finished, in ms (the store keeps milliseconds).
async fn run_latency(store: &Store, flow: &str, n: usize) -> anyhow::Result<(i64, i64)> {
    let runs = store
        .runs(&RunFilter {
            flow_id: Some(flow.into()),
            limit: n as i64,
            ..Default::default()
        })
        .await?;
    let mut ms: Vec<i64> = runs
        .iter()
        .filter_map(|r| Some(r.finished_at? - r.created_at))
        .collect();
    ms.sort_unstable();
    let at = |p: f64| {
        ms.get(((ms.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    Ok((at(0.5), at(0.99)))
}

#[derive(clap::Args)]
pub struct ProcessArgs {
    /// Customers in the burst
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    /// Webhooks in flight at once
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Template: `search` or `upsert`
    #[arg(long, default_value = "upsert")]
    template: String,
    /// Single syncs, one after another, for the latency of one sync alone
    #[arg(long, default_value_t = 200)]
    singles: usize,
}

pub(crate) fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A real `flowbot serve` process (SQLite, in-process worker): start-up time to the first
/// accepted webhook, resident memory idle and at peak during a burst, one sync alone.
pub async fn process(args: ProcessArgs) -> anyhow::Result<ExitCode> {
    let template = template_id(&args.template)?;
    let s = sims(0).await?;
    let dir = std::env::temp_dir().join(format!("flowbot-bench-serve-{}", stamp()));
    let info = {
        let store = Store::open(&StoreConfig::sqlite(&dir)).await?;
        install_template(
            &store,
            &flowbot_connectors::registry(),
            template,
            &SyncApps::sandbox(&s.ec, &s.sf),
            "bench",
        )
        .await?
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let hook = format!("{url}/hooks/{template}/{}", info.webhook_token);
    let first = s.ec.sim.create_customer(&customer(0));
    let exe = std::env::current_exe()?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(&dir)
        .env("FLOWBOT_ADMIN_PASSWORD", "bench-password")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log"))?)
        .spawn()?;
    let pid = child.id();
    let body = json!({ "id": first.to_string() }).to_string();
    loop {
        let r = http
            .post(&hook)
            .header("x-ecf-event", "customer_created")
            .body(body.clone())
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            anyhow::bail!(
                "flowbot serve did not accept a webhook within 30 s; see {}",
                dir.join("serve.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let startup = started.elapsed();
    while s.sf.sim.count("Account") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid, "VmRSS:");

    let ids: Vec<u64> = (1..=args.customers)
        .map(|i| s.ec.sim.create_customer(&customer(i)))
        .collect();
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn({
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while !sampling.is_cancelled() {
                peak.fetch_max(rss_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let burst = Instant::now();
    post_all(&http, webhooks(&hook, &ids), args.concurrency).await?;
    while s.sf.sim.count("Account") < args.customers + 1 {
        if burst.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the burst did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let burst_secs = burst.elapsed().as_secs_f64();
    sampling.cancel();
    let _ = sampler.await;
    let hwm = rss_kib(pid, "VmHWM:");

    // One sync alone: webhook sent → the Account exists at the simulator.
    let mut singles = Vec::new();
    for i in 0..args.singles {
        let id = s.ec.sim.create_customer(&customer(args.customers + 1 + i));
        let before = s.sf.sim.count("Account");
        let t0 = Instant::now();
        post_all(&http, webhooks(&hook, &[id]), 1).await?;
        while s.sf.sim.count("Account") == before {
            if t0.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("a single sync took over 10 s");
            }
            tokio::task::yield_now().await;
        }
        singles.push(t0.elapsed());
    }
    singles.sort();

    // SAFETY: kill(2) with the pid of our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| start-up to first accepted webhook | {:.0} ms |",
        startup.as_secs_f64() * 1000.0
    );
    println!(
        "| resident memory, idle | {:.1} MiB |",
        idle as f64 / 1024.0
    );
    println!(
        "| resident memory, peak during the burst | {:.1} MiB (high-water mark {:.1} MiB) |",
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "| burst of {} at concurrency {}, webhook → Account | {:.2} s, {:.0} syncs/s |",
        args.customers,
        args.concurrency,
        burst_secs,
        args.customers as f64 / burst_secs
    );
    println!(
        "| one sync alone, webhook → Account written ({} samples) | p50 {:.2} ms, p99 {:.2} ms |",
        singles.len(),
        percentile(&singles, 0.5),
        percentile(&singles, 0.99)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct BackfillBenchArgs {
    /// Customers to backfill
    #[arg(long, default_value_t = 2000)]
    customers: usize,
}

/// `flowbot backfill` of existing customers: time and Salesforce calls per customer.
pub async fn backfill(args: BackfillBenchArgs) -> anyhow::Result<ExitCode> {
    let template = "ecforce-customer-to-salesforce-upsert";
    let s = sims(0).await?;
    for i in 0..args.customers {
        s.ec.sim.create_customer(&customer(i));
    }
    let dir = std::env::temp_dir().join(format!("flowbot-bench-backfill-{}", stamp()));
    {
        let store = Store::open(&StoreConfig::sqlite(&dir)).await?;
        install_template(
            &store,
            &flowbot_connectors::registry(),
            template,
            &SyncApps::sandbox(&s.ec, &s.sf),
            "bench",
        )
        .await?;
    }
    let started = Instant::now();
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["backfill", template, "--data-dir"])
        .arg(&dir)
        .env_remove("DATABASE_URL");
    // The simulators answer from this process's runtime while the child runs.
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        anyhow::bail!(
            "the backfill failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let calls = s.sf.sim.stats()["api_usage"].as_u64().unwrap_or(0);
    let lists = s.ec.sim.stats()["calls"]["list_customers"]
        .as_u64()
        .unwrap_or(0);
    println!("| customers | seconds | customers/s | Salesforce calls | per customer | ecforce list calls |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {secs:.2} | {:.0} | {calls} | {:.4} | {lists} |",
        args.customers,
        args.customers as f64 / secs,
        calls as f64 / args.customers as f64
    );
    Ok(ExitCode::SUCCESS)
}
