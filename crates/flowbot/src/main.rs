//! The `flowbot` command: validate and run flows, list apps.
//!
//! This is the binary edge: errors become messages and exit codes here (anyhow), never in
//! the library crates.

mod apps;
mod apps_test;
mod bench;
mod bench_e2e;
mod bench_grid;
mod bench_procs;
mod cluster;
mod connections;
mod demo;
mod demo_apps;
mod demo_mail;
mod demo_people;
mod demo_tables;
mod doctor;
mod run;
mod sandbox_cmd;
mod setup;
mod store_cmds;
mod sync_jobs;
mod users;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for bad input (an invalid flow, payload or connections file).
pub const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "flowbot",
    version,
    about = "A self-hosted no-code workflow engine",
    long_about = "flowbot runs flows: a trigger, then steps whose inputs are templates over the \
                  obtained values (取得した値) of the trigger and earlier steps.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text for people, or as JSON objects for log collectors (every line
    /// inside a run carries run_id, flow_id and the step)
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// A directory of app files (`*.yaml`, or folders with `app.yaml`) to load besides the
    /// built-in apps; a broken file is reported and left out
    #[arg(long, global = true, env = "FLOWBOT_APPS_DIR")]
    apps_dir: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check flow files and report every problem as FILE:LINE:COL: message
    Validate(validate::Args),
    /// Run a flow once, in this process, and show each step's obtained values
    Run(run::Args),
    /// List the apps with their triggers, actions, inputs and outputs (`apps validate FILE…`
    /// checks app files)
    Apps(apps::Args),
    /// List the built-in template flows, or print one
    Templates(apps::TemplatesArgs),
    /// Validate a flow file and store it (a new flow, or a new version of one)
    Import(store_cmds::ImportArgs),
    /// Print a stored flow's YAML
    Export(store_cmds::ExportArgs),
    /// Queue a manual run of a stored flow with a payload
    Trigger(store_cmds::TriggerArgs),
    /// Serve webhooks (and health checks), with a worker in this process unless --no-worker
    Serve(Box<store_cmds::ServeArgs>),
    /// Execute queued runs until stopped (SIGTERM/SIGINT stop it gracefully)
    Worker(store_cmds::WorkerArgs),
    /// Create or update the database schema
    Migrate(store_cmds::MigrateArgs),
    /// Re-encrypt every stored connection under a new master key
    RotateKey(store_cmds::RotateKeyArgs),
    /// Measure throughput on this machine (figures for docs/benchmarks.md)
    Bench(bench::Args),
    /// The customer sync end to end against simulated ecforce and Salesforce
    Demo(demo::Args),
    /// One server and several worker processes sharing PostgreSQL, with the simulators
    Cluster(cluster::Args),
    /// Sync every existing ecforce customer through a flow's mapping, 200 per Salesforce call
    Backfill(sync_jobs::BackfillArgs),
    /// Compare ecforce's customers with Salesforce and report (or --fix) what differs
    Reconcile(sync_jobs::ReconcileArgs),
    /// Serve the simulated ecforce and Salesforce and the notification sinks on loopback
    Sandbox(sandbox_cmd::Args),
    /// Check configuration, database, connections and webhook reachability, and say what to fix
    Doctor(doctor::Args),
    /// Add, list and change members (roles, disabling, new passwords): also the way back in
    /// for an owner locked out of the web UI
    Users(users::Args),
}

/// glibc's malloc spent an eighth of a busy server's CPU in its arenas; mimalloc's
/// thread-local heaps suit the many small, short-lived JSON values of a run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults (commit arenas eagerly, keep freed memory 10 ms) doubled the idle
/// resident memory; committing on demand and returning freed pages at once keeps it at
/// glibc's level (docs/benchmarks.md). The options must be set before mimalloc starts (its
/// own constructor, priority 101, reserves the first arena), so this runs as a constructor
/// of priority 100. The numbers are the options' places in the `mi_option_e` enum of the
/// mimalloc 3 that libmimalloc-sys 0.1.49 builds (`Cargo.lock` pins it):
/// `mi_option_arena_eager_commit`, `mi_option_purge_delay`.
extern "C" fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for (option, env, value) in [
        (ARENA_EAGER_COMMIT, c"MIMALLOC_ARENA_EAGER_COMMIT", 0),
        (PURGE_DELAY, c"MIMALLOC_PURGE_DELAY", 0),
    ] {
        // SAFETY: getenv reads the environment, which no thread changes yet; the setter
        // writes the allocator's global option and allocates nothing.
        unsafe {
            // An operator's MIMALLOC_* setting wins.
            if libc::getenv(env.as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(option, value);
            }
        }
    }
}

#[used]
#[link_section = ".init_array.00100"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => {
            let colour = colour_logs();
            logs.with_ansi(colour)
                .with_writer(move || OneLine {
                    out: std::io::stderr(),
                    colour,
                })
                .init()
        }
        // JSON escapes every control character itself: each event stays one valid line.
        LogFormat::Json => logs
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    if let Some(dir) = cli.apps_dir {
        flowbot_connectors::set_apps_dir(dir);
    }
    let result = match cli.command {
        Command::Validate(args) => validate::main(args),
        Command::Run(args) => run::main(args),
        Command::Apps(args) => apps::main(args),
        Command::Templates(args) => apps::templates(args),
        Command::Import(args) => store_cmds::import(args),
        Command::Export(args) => store_cmds::export(args),
        Command::Trigger(args) => store_cmds::trigger(args),
        Command::Serve(args) => store_cmds::serve(*args),
        Command::Worker(args) => store_cmds::worker(args),
        Command::Migrate(args) => store_cmds::migrate(args),
        Command::RotateKey(args) => store_cmds::rotate_key(args),
        Command::Bench(args) => bench::main(args),
        Command::Demo(args) => demo::main(args),
        Command::Cluster(args) => cluster::main(args),
        Command::Backfill(args) => sync_jobs::backfill(args),
        Command::Reconcile(args) => sync_jobs::reconcile(args),
        Command::Sandbox(args) => sandbox_cmd::main(args),
        Command::Doctor(args) => doctor::main(args),
        Command::Users(args) => users::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// glibc serves a large allocation with its own mapping, returned to the system when freed,
/// but raises that threshold each time such a block is freed; after the first password check
/// (argon2 takes ~19 MiB) its blocks came from the heap of whichever thread ran it and stayed
/// resident: 10,000 failed sign-ins grew the process by ~450 MiB. A fixed threshold keeps
/// the first behaviour for good.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Colours only for a person at a terminal, and never when NO_COLOR is set.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Keeps each text log event on one line, so a logged value (a user name, a header) cannot
/// forge a line of its own: the formatter hands over one event per write, and every control
/// character in it but the final newline is written escaped. With colours on, ESC is left to
/// the formatter, which then escapes it in values and uses it for its own colours.
struct OneLine<W: std::io::Write> {
    out: W,
    colour: bool,
}

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buf, &b""[..]),
        };
        let kept = |b: u8| b == b'\t' || (self.colour && b == 0x1b);
        if !body.iter().any(|&b| b.is_ascii_control() && !kept(b)) {
            self.out.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b if kept(b) => out.push(b),
                b if b.is_ascii_control() => {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes())
                }
                b => out.push(b),
            }
        }
        out.extend_from_slice(end);
        self.out.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Read a file, saying which one could not be read.
pub fn read_file(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))
}
