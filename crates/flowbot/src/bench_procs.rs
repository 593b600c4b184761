//! `flowbot bench e2e`: the customer sync measured the way users run flowbot — the
//! simulators (`flowbot sandbox`) in a process of their own, `flowbot serve` in another,
//! and the load from this one over loopback HTTP. Every Account is checked at the
//! simulator afterwards: a lost or duplicated sync fails the benchmark.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flowbot_store::{Store, StoreConfig};
use serde_json::{json, Value};

use crate::bench::stamp;
use crate::bench_e2e::{customer, percentile, post_all, rss_kib, webhooks};
use crate::demo::template_id;
use crate::setup::{install_template_as, SyncApps};

#[derive(clap::Args)]
pub struct E2eArgs {
    /// The store `flowbot serve` uses: `sqlite` (a fresh data directory) or `postgres`
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// The PostgreSQL database for `--backend postgres` (its flows are left for inspection;
    /// the runs are purged at the end, to measure what retention costs)
    #[arg(long, env = "BENCH_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Customers in the burst
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    /// Webhooks in flight at once
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Template: `search` or `upsert`
    #[arg(long, default_value = "search")]
    template: String,
    /// Single syncs, one after another, for the latency of one sync alone
    #[arg(long, default_value_t = 100)]
    singles: usize,
    /// With `--backend postgres`: run `flowbot serve --no-worker` and this many `flowbot
    /// worker` processes (the cluster of docs/scaling.md) instead of one `flowbot serve`
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

/// How long PostgreSQL may keep a session's counts before publishing them in its
/// statistics views (an idle session flushes within ten seconds).
const STATS_LAG: Duration = Duration::from_secs(11);

/// The PostgreSQL database `--backend` and `--database-url` name (none: SQLite).
pub(crate) fn database_of(backend: &str, url: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(match backend {
        "sqlite" => None,
        "postgres" => Some(
            url.context("--backend postgres needs --database-url (or BENCH_DATABASE_URL)")?
                .to_string(),
        ),
        other => bail!("unknown backend `{other}`: sqlite or postgres"),
    })
}

/// A child process killed when dropped, so a failed benchmark leaves nothing running.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `flowbot sandbox` and read the addresses it prints before `ready`.
fn sandbox() -> anyhow::Result<(Proc, SyncApps)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("sandbox")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting flowbot sandbox")?;
    let out = child.stdout.take().context("the sandbox's output")?;
    let proc = Proc(child);
    let mut fields = std::collections::HashMap::new();
    for line in BufReader::new(out).lines() {
        let line = line?;
        if line == "ready" {
            break;
        }
        if let Some((k, v)) = line.split_once(": ") {
            fields.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let get = |k: &str| {
        fields
            .get(k)
            .cloned()
            .with_context(|| format!("flowbot sandbox printed no `{k}`"))
    };
    let apps = SyncApps {
        ecforce_url: get("ecforce")?,
        ecforce_token: get("ecforce_token")?,
        salesforce_url: get("salesforce")?,
        client_id: get("salesforce_client_id")?,
        client_secret: get("salesforce_client_secret")?,
    };
    Ok((proc, apps))
}

/// CPU time a process has used (user + system), from `/proc/PID/stat`.
fn cpu_of(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The command name may hold spaces; the fields after it are fixed.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(ticks as f64 / hz)
}

/// The host's busy, total and stolen jiffies, from `/proc/stat` (stolen: time a virtual
/// CPU was ready but the hypervisor ran something else — a noisy neighbour).
fn host_ticks() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    // idle + iowait
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total, f.get(7).copied().unwrap_or(0))
}

/// CPU time of every PostgreSQL server process on this machine (the postmaster's children
/// show as `postgres` in `/proc/PID/stat`).
fn postgres_cpu() -> Duration {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is_pg = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "postgres");
        if is_pg {
            total += cpu_of(pid);
        }
    }
    total
}

async fn control(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut r = http.request(method, &url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.with_context(|| url.clone())?;
    if !resp.status().is_success() {
        bail!("{url}: {}", resp.status());
    }
    Ok(resp.json().await.unwrap_or(Value::Null))
}

/// The number of Accounts once there are `count` of them (at once for 0), or after ten
/// seconds: the simulator answers the moment the last one is written (one loopback answer
/// late, ~0.1 ms), so no polling interval is in the figures.
async fn wait_for_accounts(
    http: &reqwest::Client,
    sf: &str,
    count: usize,
) -> anyhow::Result<usize> {
    let v = control(
        http,
        reqwest::Method::GET,
        format!("{sf}/__control/wait/Account?count={count}&timeout_ms=10000"),
        None,
    )
    .await?;
    Ok(v["count"].as_u64().unwrap_or(0) as usize)
}

async fn accounts(http: &reqwest::Client, sf: &str) -> anyhow::Result<Vec<Value>> {
    let v = control(
        http,
        reqwest::Method::GET,
        format!("{sf}/__control/records/Account"),
        None,
    )
    .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

async fn new_customer(http: &reqwest::Client, ec: &str, i: usize) -> anyhow::Result<u64> {
    let v = control(
        http,
        reqwest::Method::POST,
        format!("{ec}/__control/customers"),
        Some(Value::Object(customer(i))),
    )
    .await?;
    v["id"]
        .as_u64()
        .context("the simulator gave no customer id")
}

pub async fn e2e(args: E2eArgs) -> anyhow::Result<ExitCode> {
    let template = template_id(&args.template)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1) * 2)
        .build()?;
    let (_sandbox, apps) = sandbox()?;
    let dir = std::env::temp_dir().join(format!("flowbot-bench-e2e-{}", stamp()));
    std::fs::create_dir_all(&dir)?;
    let postgres = database_of(&args.backend, args.database_url.as_deref())?;
    // The flow, installed before the server starts (as `flowbot import` would).
    let flow_id = format!("bench-{}", stamp());
    if args.workers > 0 && postgres.is_none() {
        bail!("--workers needs --backend postgres: worker processes share one PostgreSQL database");
    }
    let (info, pg_store) = {
        let cfg = StoreConfig {
            database_url: postgres.clone(),
            data_dir: dir.clone(),
            secret_key: None,
        };
        let store = Store::open(&cfg).await?;
        let info = install_template_as(
            &store,
            &flowbot_connectors::registry(),
            template,
            &flow_id,
            &apps,
            "bench",
        )
        .await?;
        // Kept on PostgreSQL to read its activity; SQLite's lock must go to `serve`.
        (info, postgres.is_some().then_some(store))
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let hook = format!(
        "http://127.0.0.1:{port}/hooks/{flow_id}/{}",
        info.webhook_token
    );
    let first = new_customer(&http, &apps.ecforce_url, 0).await?;

    let mut serve = Command::new(std::env::current_exe()?);
    serve
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(&dir)
        .env("FLOWBOT_ADMIN_PASSWORD", "bench-password")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log"))?);
    if args.workers > 0 {
        serve.arg("--no-worker");
    }
    match &postgres {
        Some(url) => serve.env("DATABASE_URL", url),
        None => serve.env_remove("DATABASE_URL"),
    };
    let started = Instant::now();
    let server = Proc(serve.spawn().context("starting flowbot serve")?);
    let pid = server.0.id();
    let mut workers = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let mut w = Command::new(std::env::current_exe()?);
        w.args([
            "worker",
            "--no-triggers",
            "--id",
            &format!("bench-w{i}"),
            "--data-dir",
        ])
        .arg(&dir)
        .env("DATABASE_URL", postgres.as_deref().unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("worker-{i}.log")))?);
        workers.push(Proc(w.spawn().context("starting flowbot worker")?));
    }
    let pids: Vec<u32> = std::iter::once(pid)
        .chain(workers.iter().map(|w| w.0.id()))
        .collect();
    let engine_cpu = || pids.iter().map(|&p| cpu_of(p)).sum::<Duration>();
    loop {
        let r = http
            .post(&hook)
            .header("content-type", "application/json")
            .header("x-ecf-event", "customer_created")
            .body(json!({ "id": first.to_string() }).to_string())
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "flowbot serve did not accept a webhook within 30 s; see {}",
                dir.join("serve.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let startup = started.elapsed();
    while wait_for_accounts(&http, &apps.salesforce_url, 1).await? == 0 {}
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid, "VmRSS:");

    // The burst: every webhook accepted (acceptance figures), then every Account written.
    let mut ids = Vec::with_capacity(args.customers);
    for i in 1..=args.customers {
        ids.push(new_customer(&http, &apps.ecforce_url, i).await?);
    }
    // PostgreSQL's counters, once what came before has been published.
    let activity = || async {
        let store = pg_store.as_ref()?;
        tokio::time::sleep(STATS_LAG).await;
        store.database_activity().await.ok().flatten()
    };
    let db0 = activity().await;
    let (cpu0, host0, pg0) = (engine_cpu(), host_ticks(), postgres_cpu());
    let burst = Instant::now();
    let accepted = post_all(&http, webhooks(&hook, &ids), args.concurrency).await?;
    let acceptance = burst.elapsed();
    let want = args.customers + 1;
    loop {
        let n = wait_for_accounts(&http, &apps.salesforce_url, want).await?;
        if n >= want {
            break;
        }
        if burst.elapsed() > Duration::from_secs(600) {
            bail!("{n} of {want} Accounts after 10 minutes");
        }
    }
    let synced = burst.elapsed();
    let (cpu1, host1, pg1) = (engine_cpu(), host_ticks(), postgres_cpu());
    let peak = rss_kib(pid, "VmHWM:");
    let worker_peak = workers
        .iter()
        .map(|w| rss_kib(w.0.id(), "VmHWM:"))
        .max()
        .unwrap_or(0);
    let db1 = activity().await;

    // One sync alone, several times: webhook sent → its Account at the simulator.
    let mut singles = Vec::with_capacity(args.singles);
    for i in 0..args.singles {
        let id = new_customer(&http, &apps.ecforce_url, args.customers + 1 + i).await?;
        let before = wait_for_accounts(&http, &apps.salesforce_url, 0).await?;
        let t0 = Instant::now();
        post_all(&http, webhooks(&hook, &[id]), 1).await?;
        let seen = wait_for_accounts(&http, &apps.salesforce_url, before + 1).await?;
        let elapsed = t0.elapsed();
        if seen <= before {
            bail!("a single sync took over 10 s");
        }
        singles.push(elapsed);
    }
    singles.sort();

    // Every customer exactly once.
    let all = accounts(&http, &apps.salesforce_url).await?;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for a in &all {
        *seen
            .entry(a["Mail__c"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let total = args.customers + args.singles + 1;
    let lost = (0..total)
        .filter(|i| !seen.contains_key(&format!("bench{i}@example.jp")))
        .count();
    let duplicated: usize = seen.values().map(|n| n.saturating_sub(1)).sum();
    drop(workers);
    drop(server);
    // What deleting the history costs, for the partitioning estimate in docs/scaling.md:
    // every finished run purged as the retention loop does it, batch by batch.
    let purge = match &pg_store {
        Some(store) => {
            let (a, cpu, t) = (activity().await, postgres_cpu(), Instant::now());
            let policy = flowbot_store::Retention {
                max_age: Some(Duration::ZERO),
                max_runs_per_flow: None,
                batch: 500,
            };
            let runs = store.purge(&policy).await?;
            let (secs, cpu) = (t.elapsed(), postgres_cpu() - cpu);
            match (a, activity().await) {
                (Some(a), Some(b)) => Some((runs, secs, cpu, b - a)),
                _ => None,
            }
        }
        None => None,
    };
    if postgres.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let n = args.customers as f64;
    let (busy, all_ticks, stolen) = (
        host1.0 - host0.0,
        (host1.1 - host0.1).max(1),
        host1.2 - host0.2,
    );
    println!(
        "flowbot bench e2e --backend {} --customers {} --concurrency {} --template {} (the simulators, flowbot serve and the load in processes of their own)",
        args.backend, args.customers, args.concurrency, args.template
    );
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| end-to-end syncs/s | {:.0} |", n / synced.as_secs_f64());
    println!(
        "| webhook acceptance req/s (p50 / p99) | {:.0} ({:.1} / {:.1} ms) |",
        n / acceptance.as_secs_f64(),
        percentile(&accepted, 0.5),
        percentile(&accepted, 0.99)
    );
    println!(
        "| one sync alone p50 / p99 | {:.1} / {:.1} ms |",
        percentile(&singles, 0.5),
        percentile(&singles, 0.99)
    );
    println!(
        "| engine CPU per sync (burst) | {:.2} ms |",
        (cpu1 - cpu0).as_secs_f64() * 1000.0 / n
    );
    println!(
        "| host busy during the burst (of it stolen by the hypervisor) | {:.0} % ({:.0} %) |",
        busy as f64 * 100.0 / all_ticks as f64,
        stolen as f64 * 100.0 / all_ticks as f64
    );
    println!(
        "| RSS idle / peak | {:.1} / {:.1} MiB |",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    if args.workers > 0 {
        println!(
            "| worker processes, RSS peak (largest) | {} × {:.1} MiB |",
            args.workers,
            worker_peak as f64 / 1024.0
        );
    }
    println!("| start-up | {:.2} s |", startup.as_secs_f64());
    println!("| lost / duplicated | {lost} / {duplicated} |");
    if let (Some(a), Some(b)) = (db0, db1) {
        let d = b - a;
        let per = |x: i64| x as f64 / n;
        println!();
        println!(
            "PostgreSQL's work per sync during the burst (pg_stat_database, pg_stat_wal, /proc):"
        );
        println!();
        println!("| figure | per sync |");
        println!("|---|---|");
        println!(
            "| PostgreSQL CPU (all server processes) | {:.2} ms |",
            (pg1 - pg0).as_secs_f64() * 1000.0 / n
        );
        println!("| transactions committed | {:.2} |", per(d.commits));
        println!(
            "| rows inserted / updated / deleted / read | {:.2} / {:.2} / {:.2} / {:.1} |",
            per(d.rows_inserted),
            per(d.rows_updated),
            per(d.rows_deleted),
            per(d.rows_read)
        );
        println!(
            "| WAL records / bytes | {:.1} / {:.0} B |",
            per(d.wal_records),
            per(d.wal_bytes)
        );
        println!("| WAL flushes to disk | {:.3} |", per(d.wal_syncs));
    }
    if let Some((runs, secs, cpu, d)) = purge {
        let per = |x: f64| x / (runs.max(1) as f64);
        println!();
        println!(
            "Purging the history afterwards (retention, batches of 500): {runs} runs in {:.2} s",
            secs.as_secs_f64()
        );
        println!();
        println!("| figure | per run purged |");
        println!("|---|---|");
        println!(
            "| PostgreSQL CPU | {:.3} ms |",
            per(cpu.as_secs_f64() * 1000.0)
        );
        println!("| rows deleted | {:.2} |", per(d.rows_deleted as f64));
        println!(
            "| WAL records / bytes | {:.1} / {:.0} B |",
            per(d.wal_records as f64),
            per(d.wal_bytes as f64)
        );
    }
    Ok(if lost == 0 && duplicated == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
