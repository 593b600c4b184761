//! `flowbot bench grid`: a table of 100,000 rows paged through the way the grid pages it —
//! `flowbot serve` in a process of its own, this process asking for every page over
//! loopback HTTP with the cursor of the page before — for docs/benchmarks.md.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flowbot_core::table::Schema;
use flowbot_store::{NewUser, Role, Store, StoreConfig, DEFAULT_PROJECT};
use serde_json::{json, Value};

use crate::bench::stamp;
use crate::bench_e2e::percentile;
use crate::bench_procs::Proc;

#[derive(clap::Args)]
pub struct GridArgs {
    /// The store `flowbot serve` uses: `sqlite` (a fresh data directory) or `postgres`
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// The PostgreSQL database for `--backend postgres` (the table is left for inspection)
    #[arg(long, env = "BENCH_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Rows in the table
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Rows per page
    #[arg(long, default_value_t = 100)]
    page: usize,
}

const STATUS: [&str; 3] = ["active", "paused", "left"];

pub async fn grid(args: GridArgs) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("flowbot-bench-grid-{}", stamp()));
    std::fs::create_dir_all(&dir)?;
    let postgres = crate::bench_procs::database_of(&args.backend, args.database_url.as_deref())?;
    // The table and a member's token, made before the server starts.
    let (table, token) = {
        let store = Store::open(&StoreConfig {
            database_url: postgres.clone(),
            data_dir: dir.clone(),
            secret_key: None,
        })
        .await?;
        let schema: Schema = serde_json::from_value(json!({ "columns": [
            { "key": "email", "type": "email", "required": true, "unique": true },
            { "key": "name", "type": "text" },
            { "key": "points", "type": "number" },
            { "key": "joined", "type": "date" },
            { "key": "status", "type": "select", "choices": STATUS },
        ] }))?;
        let t = store
            .create_table(
                DEFAULT_PROJECT,
                &format!("bench-{}", stamp()),
                schema,
                "bench",
            )
            .await?;
        let name = format!("bench{}", stamp());
        let user = store
            .create_user(
                NewUser::basic(
                    &name,
                    &flowbot_server::auth::hash_password("bench-password"),
                    Role::Editor,
                ),
                "bench",
            )
            .await?;
        let token = format!("fbt_{}", flowbot_server::auth::random_token());
        store
            .create_api_token(
                &user,
                "bench",
                false,
                &flowbot_server::auth::token_hash(&token),
                "bench",
            )
            .await?;
        (t.id, token)
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut serve = Command::new(std::env::current_exe()?);
    serve
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(&dir)
        .env("FLOWBOT_ADMIN_PASSWORD", "bench-password")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log"))?);
    match &postgres {
        Some(u) => serve.env("DATABASE_URL", u),
        None => serve.env_remove("DATABASE_URL"),
    };
    let _server = Proc(serve.spawn().context("starting flowbot serve")?);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, token, url) = (http.clone(), token.clone(), url.clone());
        async move {
            let r = http
                .get(format!("{url}{path}"))
                .bearer_auth(&token)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("{path}: {}", r.status());
            }
            Ok::<Value, anyhow::Error>(r.json().await?)
        }
    };
    let started = Instant::now();
    while get(format!("/api/v1/tables/{table}")).await.is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "flowbot serve did not answer within 30 s; see {}",
                dir.join("serve.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The rows, 1,000 a request through the batch API.
    let filling = Instant::now();
    for chunk in (0..args.rows).collect::<Vec<_>>().chunks(1000) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                json!({ "op": "add", "values": {
                    "email": format!("user{i}@example.jp"),
                    "name": format!("会員 {:06}", (i * 7919) % args.rows),
                    "points": (i * 104_729) % 100_000,
                    "joined": format!("20{:02}-{:02}-{:02}", 10 + i % 16, 1 + i % 12, 1 + i % 28),
                    // Spread, not in step with the dates: a third of every stretch is active.
                    "status": STATUS[((i as u64).wrapping_mul(2_654_435_761) >> 16) as usize % STATUS.len()],
                } })
            })
            .collect();
        let r = http
            .post(format!("{url}/api/v1/tables/{table}/rows/batch"))
            .bearer_auth(&token)
            .json(&json!({ "ops": ops }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("filling the table: {} {}", r.status(), r.text().await?);
        }
    }
    let fill = filling.elapsed();
    println!(
        "flowbot bench grid — {} rows on {} (filled through the API in {:.1} s, {:.0} rows/s)",
        args.rows,
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        fill.as_secs_f64(),
        args.rows as f64 / fill.as_secs_f64()
    );

    // Every page, each asked with the cursor the one before gave.
    let walks: [(&str, String, usize); 4] = [
        ("in the order added", String::new(), usize::MAX),
        ("sorted by points, largest first", "&sort=points&order=desc".into(), usize::MAX),
        ("sorted by name", "&sort=name".into(), usize::MAX),
        (
            "status = active, sorted by joined (first 200 pages)",
            format!(
                "&sort=joined&filter={}",
                "%5B%7B%22column%22%3A%22status%22%2C%22op%22%3A%22equals%22%2C%22value%22%3A%22active%22%7D%5D"
            ),
            200,
        ),
    ];
    println!("| pages walked | pages | rows | first (counted) | p50 | p99 | slowest |");
    println!("|---|---|---|---|---|---|---|");
    let mut worst = Duration::ZERO;
    for (what, query, most) in walks {
        let mut times = Vec::new();
        let mut rows = 0;
        let mut after = String::new();
        while times.len() < most {
            let t = Instant::now();
            let page = get(format!(
                "/api/v1/tables/{table}/rows?limit={}{query}{after}",
                args.page
            ))
            .await?;
            times.push(t.elapsed());
            rows += page["rows"].as_array().map_or(0, Vec::len);
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
        let first = times.first().copied().unwrap_or_default();
        let slowest_at = times
            .iter()
            .enumerate()
            .max_by_key(|(_, t)| **t)
            .map_or(0, |(i, _)| i);
        times.sort();
        let slowest = *times.last().unwrap_or(&Duration::ZERO);
        worst = worst.max(slowest);
        println!(
            "| {what} | {} | {rows} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms (page {}) |",
            times.len(),
            first.as_secs_f64() * 1000.0,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            slowest.as_secs_f64() * 1000.0,
            slowest_at + 1
        );
    }
    println!("data directory: {}", dir.display());
    Ok(if worst < Duration::from_millis(100) {
        ExitCode::SUCCESS
    } else {
        println!(
            "a page took {:.1} ms: over 100 ms",
            worst.as_secs_f64() * 1000.0
        );
        ExitCode::FAILURE
    })
}
