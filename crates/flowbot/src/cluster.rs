//! `flowbot cluster`: the scale-out topology with real processes on one machine — one
//! `flowbot serve --no-worker` and N `flowbot worker`s sharing a PostgreSQL database, with
//! the ecforce and Salesforce simulators in this process and the customer-sync template
//! wired to them. The same shape as docker-compose.yml, without a container engine.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::setup::{install_template, SyncApps};
use anyhow::Context;
use flowbot_sandbox::ecforce;
use flowbot_sandbox::salesforce;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    /// The PostgreSQL database every process shares (postgres://…)
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    database_url: String,
    /// Worker processes to start
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Runs each worker executes at the same time
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Port of the server (0: any free port)
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address the server listens on
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Which template to run: `upsert` or `search`
    #[arg(long, default_value = "upsert")]
    template: String,
    /// Holds the master key file every process shares
    #[arg(long, default_value = "flowbot-cluster", value_name = "DIR")]
    data_dir: PathBuf,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    crate::store_cmds::runtime()?.block_on(cluster(args))
}

/// Have the child receive SIGTERM when this process dies, even by SIGKILL, which leaves no
/// chance to stop it. The signal follows the spawning *thread*: the children are spawned
/// from the thread that runs `cluster` to its end.
fn stop_with_parent(c: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(2) is async-signal-safe and touches only the child being set up.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Child processes, stopped with SIGTERM (then SIGKILL) when dropped.
struct Children(Vec<(String, Child)>);

impl Children {
    fn stop(&mut self) {
        for (_, c) in &mut self.0 {
            // SAFETY: kill(2) with a pid we spawned and have not reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for (name, c) in &mut self.0 {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        eprintln!("{name} did not stop within 20 s; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        self.0.clear();
    }

    /// The first child that has exited, with how.
    fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(name, c)| {
            c.try_wait()
                .ok()
                .flatten()
                .map(|status| format!("{name} exited ({status})"))
        })
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn cluster(args: Args) -> anyhow::Result<ExitCode> {
    if !args.database_url.starts_with("postgres://")
        && !args.database_url.starts_with("postgresql://")
    {
        anyhow::bail!("--database-url must be a PostgreSQL URL (postgres://…): the processes of a cluster share one database");
    }
    let template_id = crate::demo::template_id(&args.template)?;
    let store = crate::store_cmds::StoreArgs {
        data_dir: args.data_dir.clone(),
        database_url: Some(args.database_url.clone()),
    }
    .open()
    .await?;
    let apps = flowbot_connectors::registry();
    let admin = std::env::var("FLOWBOT_ADMIN_PASSWORD").ok();
    let generated = flowbot_server::auth::ensure_admin(&store, admin.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the admin account: {e}"))?;

    let sf = salesforce::start(Default::default(), 0).await?;
    let ec = ecforce::start(Default::default(), 0).await?;
    let info = install_template(
        &store,
        &apps,
        template_id,
        &SyncApps::sandbox(&ec, &sf),
        "cluster",
    )
    .await?;

    let port = match args.port {
        0 => std::net::TcpListener::bind((args.bind.as_str(), 0))?
            .local_addr()?
            .port(),
        p => p,
    };
    let server_url = format!("http://{}:{port}", args.bind);
    let hook = format!("{server_url}/hooks/{template_id}/{}", info.webhook_token);
    ec.sim.send_customer_events_to(&hook);

    let exe = std::env::current_exe().context("cannot find the flowbot program")?;
    let base = |sub: &str| {
        let mut c = Command::new(&exe);
        c.arg(sub)
            .arg("--data-dir")
            .arg(&args.data_dir)
            .env("DATABASE_URL", &args.database_url)
            .stdin(Stdio::null());
        stop_with_parent(&mut c);
        c
    };
    let mut children = Children(Vec::new());
    let server = base("serve")
        .args(["--no-worker", "--bind", &args.bind, "--port"])
        .arg(port.to_string())
        .spawn()
        .context("cannot start the server")?;
    children.0.push(("the server".into(), server));
    let ids: Vec<String> = (1..=args.workers.max(1))
        .map(|i| format!("worker-{i}"))
        .collect();
    for id in &ids {
        let worker = base("worker")
            .args(["--id", id, "--idle-poll", "50ms"])
            .arg("--concurrency")
            .arg(args.concurrency.to_string())
            .spawn()
            .with_context(|| format!("cannot start {id}"))?;
        children.0.push((id.clone(), worker));
    }

    // Ready when the server answers and every worker has reported in.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = children.exited() {
            anyhow::bail!("{exit} while the cluster was starting");
        }
        let up = http
            .get(format!("{server_url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        // This cluster's own workers, not others reporting to the same database.
        let live = store.live_workers(Duration::from_secs(30)).await?;
        let workers = ids.iter().filter(|id| live.contains(id)).count();
        if up && workers == ids.len() {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("the cluster did not become ready within 30 s (server up: {up}, workers reporting: {workers})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!(
        "flowbot cluster — 1 server + {} workers on PostgreSQL",
        ids.len()
    );
    crate::demo::print_addresses(&ec.url, &sf.url, &server_url, generated.as_deref(), &hook);
    println!("  metrics:              {server_url}/metrics (with an API token)");
    println!("ready");

    let stop = CancellationToken::new();
    tokio::spawn(crate::store_cmds::cancel_on_signal(stop.clone()));
    let failure = loop {
        tokio::select! {
            _ = stop.cancelled() => break None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Some(exit) = children.exited() {
            break Some(exit);
        }
    };
    children.stop();
    match failure {
        Some(exit) => {
            eprintln!("{exit}; the cluster stopped");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
