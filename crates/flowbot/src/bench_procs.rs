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
    /// The PostgreSQL database for `--backend postgres` (its flows and runs are left for
    /// inspection)
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
}

/// A child process killed when dropped, so a failed benchmark leaves nothing running.
struct Proc(Child);

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

/// The host's busy and total jiffies, from `/proc/stat`.
fn host_ticks() -> (u64, u64) {
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
    (total - idle, total)
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

/// How many Accounts the simulated org holds (from its stats: cheap to ask often).
async fn account_count(http: &reqwest::Client, sf: &str) -> anyhow::Result<usize> {
    let v = control(
        http,
        reqwest::Method::GET,
        format!("{sf}/__control/stats"),
        None,
    )
    .await?;
    Ok(v["records"]["Account"].as_u64().unwrap_or(0) as usize)
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
    let postgres = match args.backend.as_str() {
        "sqlite" => None,
        "postgres" => Some(
            args.database_url
                .clone()
                .context("--backend postgres needs --database-url (or BENCH_DATABASE_URL)")?,
        ),
        other => bail!("unknown backend `{other}`: sqlite or postgres"),
    };
    // The flow, installed before the server starts (as `flowbot import` would).
    let flow_id = format!("bench-{}", stamp());
    let info = {
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
        info
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
    match &postgres {
        Some(url) => serve.env("DATABASE_URL", url),
        None => serve.env_remove("DATABASE_URL"),
    };
    let started = Instant::now();
    let server = Proc(serve.spawn().context("starting flowbot serve")?);
    let pid = server.0.id();
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
    while account_count(&http, &apps.salesforce_url).await? == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid, "VmRSS:");

    // The burst: every webhook accepted (acceptance figures), then every Account written.
    let mut ids = Vec::with_capacity(args.customers);
    for i in 1..=args.customers {
        ids.push(new_customer(&http, &apps.ecforce_url, i).await?);
    }
    let (cpu0, host0) = (cpu_of(pid), host_ticks());
    let burst = Instant::now();
    let accepted = post_all(&http, webhooks(&hook, &ids), args.concurrency).await?;
    let acceptance = burst.elapsed();
    let want = args.customers + 1;
    loop {
        let n = account_count(&http, &apps.salesforce_url).await?;
        if n >= want {
            break;
        }
        if burst.elapsed() > Duration::from_secs(600) {
            bail!("{n} of {want} Accounts after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let synced = burst.elapsed();
    let (cpu1, host1) = (cpu_of(pid), host_ticks());
    let peak = rss_kib(pid, "VmHWM:");

    // One sync alone, several times: webhook sent → its Account at the simulator.
    let mut singles = Vec::with_capacity(args.singles);
    for i in 0..args.singles {
        let id = new_customer(&http, &apps.ecforce_url, args.customers + 1 + i).await?;
        let before = account_count(&http, &apps.salesforce_url).await?;
        let t0 = Instant::now();
        post_all(&http, webhooks(&hook, &[id]), 1).await?;
        while account_count(&http, &apps.salesforce_url).await? == before {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("a single sync took over 10 s");
            }
            // Each look is a loopback round trip (~0.1 ms) to the simulator's process.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        singles.push(t0.elapsed());
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
    drop(server);
    if postgres.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let n = args.customers as f64;
    let (busy, all_ticks) = (host1.0 - host0.0, (host1.1 - host0.1).max(1));
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
        "| host busy during the burst | {:.0} % |",
        busy as f64 * 100.0 / all_ticks as f64
    );
    println!(
        "| RSS idle / peak | {:.1} / {:.1} MiB |",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("| start-up | {:.2} s |", startup.as_secs_f64());
    println!("| lost / duplicated | {lost} / {duplicated} |");
    Ok(if lost == 0 && duplicated == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
