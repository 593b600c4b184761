//! `flowbot doctor`: checks configuration, the database, every connection (with a test
//! call) and that the webhook URLs are reachable at the public base URL — and says in plain
//! words what is wrong and what to do about it.

use std::process::ExitCode;
use std::time::Duration;

use flowbot_core::Apps;
use flowbot_store::{Store, StoreError};

use crate::store_cmds::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The address senders reach the server at (default: the one the server saved,
    /// FLOWBOT_PUBLIC_URL)
    #[arg(long, env = "FLOWBOT_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
}

#[derive(Default)]
struct Report {
    problems: usize,
    warnings: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("  ok       {what}");
    }

    fn warn(&mut self, what: &str, todo: &str) {
        self.warnings += 1;
        println!("  warning  {what}\n           → {todo}");
    }

    fn problem(&mut self, what: &str, todo: &str) {
        self.problems += 1;
        println!("  PROBLEM  {what}\n           → {todo}");
    }
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    crate::store_cmds::runtime()?.block_on(doctor(args))
}

async fn doctor(args: Args) -> anyhow::Result<ExitCode> {
    let mut r = Report::default();
    let mut cfg = args.store.config();
    println!("configuration");
    match &cfg.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            r.ok("DATABASE_URL names a PostgreSQL database")
        }
        Some(url) if url.starts_with("sqlite:") => r.ok("DATABASE_URL names a SQLite file"),
        Some(_) => r.problem(
            "DATABASE_URL is neither postgres://… nor sqlite:…",
            "set DATABASE_URL=postgres://user@host:5432/db, or unset it to use SQLite in the data directory",
        ),
        None => r.ok(&format!(
            "SQLite in {} (set DATABASE_URL=postgres://… to share a database between workers)",
            cfg.data_dir.display()
        )),
    }
    match &cfg.secret_key {
        Some(k) => match flowbot_store::crypto::MasterKey::from_base64(k) {
            Ok(_) => r.ok("FLOWBOT_SECRET_KEY is a valid master key"),
            Err(e) => r.problem(
                &format!("FLOWBOT_SECRET_KEY is not a valid master key: {e}"),
                "it must be base64 of 32 random bytes, e.g. `openssl rand -base64 32`; with the wrong key, saved connections cannot be opened",
            ),
        },
        None => {
            let key = cfg.data_dir.join("secret.key");
            if key.exists() {
                r.ok(&format!("master key file {}", key.display()));
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&key)?.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        r.problem(
                            &format!("{} can be read by other users (mode {mode:o})", key.display()),
                            &format!("chmod 600 {}", key.display()),
                        );
                    }
                }
            } else if cfg.database_url.is_some() {
                r.warn(
                    "no FLOWBOT_SECRET_KEY and no key file yet: this process would create its own key",
                    "with a shared database, give every server and worker the same FLOWBOT_SECRET_KEY",
                );
            } else {
                r.ok("a master key file will be created on first start");
            }
            // A check must not leave a key file behind: opening the store below would
            // write one. A key held only in memory opens the database just the same.
            if !key.exists() {
                cfg.secret_key = Some(flowbot_store::crypto::MasterKey::generate());
            }
        }
    }

    println!("database");
    let store = match Store::open(&cfg).await {
        Ok(s) => {
            r.ok("the database opens and its schema is up to date");
            s
        }
        Err(StoreError::Locked(dir)) => {
            r.warn(
                &format!("a running flowbot holds the SQLite store in {}", dir.display()),
                "that is expected while it serves; stop it to run the remaining checks (connections, webhook URLs)",
            );
            return Ok(finish(&r));
        }
        Err(e) => {
            r.problem(
                &format!("the database cannot be opened: {e}"),
                match cfg.database_url {
                    Some(_) => "check that PostgreSQL runs, that the URL's host, port, user and database are right, and that the user may create tables",
                    None => "check that the data directory exists and is writable by this user",
                },
            );
            return Ok(finish(&r));
        }
    };
    match store.queue_depth().await {
        Ok((due, oldest)) => {
            let waited = oldest.unwrap_or(0) / 1000;
            if due > 0 && waited > 60 {
                r.warn(
                    &format!("{due} runs are due; the oldest has waited {waited} s"),
                    "start more workers (`flowbot worker`), or look for a worker that cannot reach the database",
                );
            } else {
                r.ok(&format!("{due} runs due now"));
            }
        }
        Err(e) => r.problem(
            &format!("the run queue cannot be read: {e}"),
            "see the database check above",
        ),
    }
    let workers = store
        .live_workers(Duration::from_secs(30))
        .await
        .unwrap_or_default();
    if workers.is_empty() {
        r.warn(
            "no worker has reported in within 30 s: queued runs will wait",
            "run `flowbot serve` (it includes a worker) or `flowbot worker`",
        );
    } else {
        r.ok(&format!(
            "{} worker(s) alive: {}",
            workers.len(),
            workers.join(", ")
        ));
    }

    let apps = flowbot_connectors::registry();
    check_connections(&mut r, &store, &apps).await;
    check_flows(&mut r, &store, &apps, args.public_url).await;
    Ok(finish(&r))
}

async fn check_connections(r: &mut Report, store: &Store, apps: &Apps) {
    println!("connections");
    let list = match store.connections().await {
        Ok(l) => l,
        Err(e) => {
            r.problem(
                &format!("the connections cannot be read: {e}"),
                "see the database check above",
            );
            return;
        }
    };
    if list.is_empty() {
        r.ok("no connections saved yet");
    }
    for info in list {
        let conn = match store.connection(&info.id).await {
            Ok(c) => c,
            Err(e) => {
                r.problem(
                    &format!("connection “{}” cannot be opened: {e}", info.name),
                    "the master key differs from the one it was saved with: use the original FLOWBOT_SECRET_KEY or key file, or enter its settings again",
                );
                continue;
            }
        };
        let Some(app) = apps.get(&info.app) else {
            r.problem(
                &format!(
                    "connection “{}” is for app `{}`, which this flowbot does not have",
                    info.name, info.app
                ),
                "delete it, or use the flowbot version it was made with",
            );
            continue;
        };
        let test = tokio::time::timeout(Duration::from_secs(20), app.test_connection(&conn)).await;
        match test {
            Ok(Ok(())) => r.ok(&format!("connection “{}” ({}) answers", info.name, info.app)),
            Ok(Err(e)) => r.problem(
                &format!("connection “{}” ({}) fails its test: {}", info.name, info.app, e.message),
                "open Connections (マイアプリ連携) in the web UI, correct its settings and press Test",
            ),
            Err(_) => r.problem(
                &format!("connection “{}” ({}) did not answer within 20 s", info.name, info.app),
                "check the service's address and this machine's network and proxy settings",
            ),
        }
    }
}

async fn check_flows(r: &mut Report, store: &Store, apps: &Apps, public_url: Option<String>) {
    println!("flows and webhooks");
    let flows = store.flows().await.unwrap_or_default();
    let public = match public_url {
        Some(u) => Some(u),
        None => store
            .setting(flowbot_store::notify::PUBLIC_URL)
            .await
            .ok()
            .flatten()
            .and_then(|v| v.as_str().map(str::to_string)),
    };
    let mut webhook_flows = 0;
    for info in flows.iter().filter(|f| f.enabled) {
        let yaml = match store.current_yaml(&info.id).await {
            Ok(y) => y,
            Err(e) => {
                r.problem(
                    &format!("flow `{}` cannot be read: {e}", info.id),
                    "see the database check above",
                );
                continue;
            }
        };
        let checked = flowbot_core::check(&yaml, apps);
        let Some(flow) = checked.flow.filter(|_| checked.diagnostics.is_empty()) else {
            r.problem(
                &format!("flow `{}` is ON but has errors", info.id),
                &format!(
                    "`flowbot export {} > f.yaml && flowbot validate f.yaml` lists them",
                    info.id
                ),
            );
            continue;
        };
        let bound = store.flow_connections(&info.id).await.unwrap_or_default();
        let missing: Vec<&str> = flow
            .connections
            .iter()
            .map(|s| s.name.as_str())
            .filter(|s| !bound.contains_key(*s))
            .collect();
        if missing.is_empty() {
            r.ok(&format!(
                "flow `{}` is ON with its connections chosen",
                info.id
            ));
        } else {
            r.problem(
                &format!(
                    "flow `{}` is ON but has no connection for {}",
                    info.id,
                    missing.join(", ")
                ),
                &format!("choose them on the flow's page (Flows → {})", info.id),
            );
        }
        if !apps.polls(&flow.trigger) && !matches!(flow.trigger.app.as_str(), "manual" | "schedule")
        {
            webhook_flows += 1;
        }
    }
    if webhook_flows == 0 {
        r.ok("no flow that is ON waits for webhooks");
        return;
    }
    let Some(public) = public else {
        r.problem(
            "flows wait for webhooks but no public URL is known",
            "start `flowbot serve --public-url https://your-host` (or set FLOWBOT_PUBLIC_URL) so the webhook URLs you register are right",
        );
        return;
    };
    let host = public
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]") {
        r.warn(
            &format!("the public URL {public} is this machine's loopback address"),
            "ecforce and other services on the internet cannot reach it: set FLOWBOT_PUBLIC_URL to an address they can reach (behind your proxy or tunnel)",
        );
    }
    let url = format!("{}/healthz", public.trim_end_matches('/'));
    let answer = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match answer {
        Ok(resp) if resp.status().is_success() => r.ok(&format!(
            "webhook URLs under {public}/hooks/ are reachable ({webhook_flows} flow(s) wait for webhooks)"
        )),
        Ok(resp) => r.problem(
            &format!("{url} answered {}", resp.status()),
            "something other than flowbot answers at the public URL: check your proxy's route to flowbot serve",
        ),
        Err(e) => r.problem(
            &format!("{url} cannot be reached: {e}"),
            "is `flowbot serve` running, and does the public URL (FLOWBOT_PUBLIC_URL) lead to it?",
        ),
    }
}

fn finish(r: &Report) -> ExitCode {
    println!();
    if r.problems == 0 {
        println!(
            "no problems found{}",
            if r.warnings > 0 {
                format!(" ({} warning(s) above)", r.warnings)
            } else {
                String::new()
            }
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "{} problem(s) found: see the arrows above for what to do",
            r.problems
        );
        ExitCode::FAILURE
    }
}
