//! `flowbot backfill` and `flowbot reconcile` on the command line: arguments, the progress
//! bar, signals, the summary and the exit code. What they do is the engine's
//! (`flowbot_engine::sync`).
//!
//! Exit codes: 0 done (everything that can be in sync is); 1 some customers failed or
//! drift remains; 3 stopped early (budget spent or interrupted) — run the same command
//! again to resume; 2 the command could not run (a bad flow, argument or store).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use flowbot_engine::sync::{
    self, BackfillOptions, BackfillWatcher, Budget, BudgetLimits, Drift, Progress, SyncPlan,
};
use flowbot_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::store_cmds::StoreArgs;

/// Stopped before the end; the same command resumes.
const EXIT_STOPPED: u8 = 3;

#[derive(clap::Args)]
pub struct BudgetArgs {
    /// Make at most this many Salesforce calls in this run (every try and every page of a
    /// query counts; the same command resumes)
    #[arg(long, value_name = "N")]
    max_api_calls: Option<u64>,
    /// Space Salesforce calls to at most this many a minute
    #[arg(long, value_name = "N")]
    calls_per_minute: Option<u32>,
    /// Stop when the org has used this share of its daily API allowance (Sforce-Limit-Info)
    #[arg(long, default_value_t = 90.0, value_name = "PERCENT")]
    max_org_usage: f64,
}

impl BudgetArgs {
    fn budget(&self) -> Budget {
        Budget::new(BudgetLimits {
            max_calls: self.max_api_calls,
            calls_per_minute: self.calls_per_minute,
            max_org_usage: self.max_org_usage,
        })
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 every customer synced; 1 some customers failed (all listed in \
the failures file); 3 stopped early (budget spent, or Ctrl-C) — the same command resumes; 2 the \
backfill could not run."
)]
pub struct BackfillArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    /// The flow whose mapping to apply (one with an ecforce trigger and a Salesforce upsert)
    flow: String,
    /// Records per sObject Collections call (at most 200)
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Forget a previous, unfinished backfill of this flow and start from the first customer
    #[arg(long)]
    restart: bool,
    /// Where to write every customer that could not be synced, one JSON object a line
    /// (default: backfill-FLOW-failures.jsonl in the data directory)
    #[arg(long, value_name = "FILE")]
    failures_out: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 everything that can be in sync is (customers Salesforce \
refuses are listed as \"cannot be synced\"); 1 drift remains; 3 stopped early (budget spent) — \
the same command resumes; 2 the reconcile could not run."
)]
pub struct ReconcileArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    /// The flow whose mapping defines what Salesforce should hold
    flow: String,
    /// Repair what differs: upsert the missing and differing records
    #[arg(long)]
    fix: bool,
}

async fn open_plan(store: &Store, flow: &str) -> anyhow::Result<SyncPlan> {
    Ok(sync::plan(store, &flowbot_connectors::registry(), flow).await?)
}

/// The progress bar at a terminal; a line per saved batch otherwise.
struct Watch {
    bar: Option<ProgressBar>,
    interactive: bool,
}

impl BackfillWatcher for Watch {
    fn started(&mut self, p: &Progress, resumed: bool) {
        if resumed {
            eprintln!(
                "resuming the backfill: {} customers already synced",
                p.synced
            );
        }
    }

    fn listed(&mut self, p: &Progress) {
        let interactive = self.interactive;
        self.bar
            .get_or_insert_with(|| {
                let b = match p.total {
                    Some(t) => ProgressBar::new(t),
                    None => ProgressBar::no_length(),
                };
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} customers ({per_sec}, {eta} left)",
                    )
                    .expect("a valid template"),
                );
                b.set_position(p.done());
                if !interactive {
                    b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                }
                b
            })
            .tick();
    }

    fn saved(&mut self, p: &Progress) {
        if let Some(b) = &self.bar {
            b.set_position(p.done());
        }
        if !self.interactive {
            eprintln!(
                "batch {} saved: {} customers done",
                p.salesforce_calls,
                p.done()
            );
        }
    }
}

pub fn backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    crate::store_cmds::runtime()?.block_on(async {
        let store = args.store.open().await?;
        let plan = open_plan(&store, &args.flow).await?;
        // Ctrl-C or SIGTERM: the batch in flight finishes and is saved, then it stops.
        let stop = CancellationToken::new();
        tokio::spawn(crate::store_cmds::cancel_on_signal(stop.clone()));
        let mut budget = args.budget.budget().until(stop.clone());
        let started = Instant::now();
        let mut watch = Watch {
            bar: None,
            interactive: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let out = sync::backfill(
            &store,
            &plan,
            &mut budget,
            &BackfillOptions {
                batch: args.batch,
                restart: args.restart,
                stop,
            },
            &mut watch,
        )
        .await?;
        if let Some(b) = watch.bar {
            b.finish_and_clear();
        }
        let p = &out.progress;
        let secs = started.elapsed().as_secs_f64();
        println!("backfill of `{}`", plan.flow.id);
        println!(
            "  customers synced:   {} ({} created, {} updated)",
            p.synced,
            p.created,
            p.synced - p.created
        );
        println!("  customers failed:   {}", p.failed.len());
        const SHOWN: usize = 20;
        for f in p.failed.iter().take(SHOWN) {
            println!("    {f}");
        }
        if !p.failed.is_empty() {
            let path = args.failures_out.clone().unwrap_or_else(|| {
                store
                    .data_dir()
                    .join(format!("backfill-{}-failures.jsonl", plan.flow.id))
            });
            let mut file = std::fs::File::create(&path).map_err(|e| {
                anyhow::anyhow!("{}: cannot write the failures: {e}", path.display())
            })?;
            for f in &p.failed {
                writeln!(file, "{f}")?;
            }
            if p.failed.len() > SHOWN {
                println!("    … and {} more", p.failed.len() - SHOWN);
            }
            println!("  every failure:      {}", path.display());
        }
        println!(
            "  Salesforce calls:   {} in all ({} in this run); ecforce list calls in this run: {}",
            p.salesforce_calls, out.salesforce_calls_this_run, out.listing_calls
        );
        println!("  this run took:      {secs:.1} s");
        match out.stopped {
            Some(why) => {
                println!("  stopped early: {why}; progress is saved");
                println!("  to resume: {}", resume_command("backfill", &args.flow));
                Ok(ExitCode::from(EXIT_STOPPED))
            }
            None if p.failed.is_empty() => Ok(ExitCode::SUCCESS),
            None => Ok(ExitCode::FAILURE),
        }
    })
}

/// The command that carries on where this one stopped.
fn resume_command(what: &str, flow: &str) -> String {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some(what) {
        args = vec![what.to_string(), flow.to_string()];
    }
    args.retain(|a| a != "--restart");
    format!("flowbot {}", args.join(" "))
}

pub fn reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    crate::store_cmds::runtime()?.block_on(async {
        let store = args.store.open().await?;
        let plan = open_plan(&store, &args.flow).await?;
        let mut budget = args.budget.budget();
        let cmp = match sync::compare(&store, &plan, &mut budget).await? {
            Ok(c) => c,
            Err(why) => {
                println!("reconcile `{}`: stopped early: {why}", plan.flow.id);
                println!("  nothing was compared or repaired; raise the budget and run again");
                return Ok(ExitCode::from(EXIT_STOPPED));
            }
        };
        println!(
            "reconcile `{}`: {} ecforce customers, {} {} records with {}",
            plan.flow.id, cmp.customers, cmp.records, plan.object, plan.external_id_field
        );
        let missing = cmp
            .drift
            .iter()
            .filter(|(_, d)| matches!(d, Drift::Missing))
            .count();
        println!("  missing in Salesforce: {missing}");
        println!("  different:             {}", cmp.drift.len() - missing);
        for (w, d) in &cmp.drift {
            match d {
                Drift::Missing => {
                    println!("    missing   customer {} <{}>", w.customer_id, w.email)
                }
                Drift::Differs(diffs) => {
                    let what: Vec<String> = diffs
                        .iter()
                        .map(|(f, want, have)| {
                            format!("{f}: Salesforce has {have}, ecforce gives {want}")
                        })
                        .collect();
                    println!(
                        "    differs   customer {} <{}>: {}",
                        w.customer_id,
                        w.email,
                        what.join("; ")
                    );
                }
            }
        }
        if !cmp.cannot_sync.is_empty() {
            println!(
                "  cannot be synced (Salesforce refuses them; fix the customer or the mapping): {}",
                cmp.cannot_sync.len()
            );
            for (w, why) in &cmp.cannot_sync {
                println!(
                    "    refused   customer {} <{}>: {why}",
                    w.customer_id, w.email
                );
            }
        }
        if cmp.extra > 0 {
            println!("  in Salesforce only (left alone): {}", cmp.extra);
        }
        for u in &cmp.unmappable {
            println!("  cannot be mapped: {u}");
        }
        if cmp.drift.is_empty() {
            println!("  everything that can be in sync is in sync");
            if cmp.cannot_sync.is_empty() {
                println!("  everything is in sync");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !args.fix {
            println!("  run again with --fix to repair");
            return Ok(ExitCode::FAILURE);
        }
        let r = sync::repair(&store, &plan, &cmp.drift, &mut budget).await?;
        println!("  repaired: {}", r.repaired);
        for (id, why) in &r.cannot_sync {
            println!("  cannot be synced: customer {id}: {why}");
        }
        if let Some(why) = r.stopped {
            println!(
                "  stopped early: {why}; {} of {} repaired so far",
                r.repaired,
                cmp.drift.len()
            );
            println!("  to resume: {}", resume_command("reconcile", &args.flow));
            return Ok(ExitCode::from(EXIT_STOPPED));
        }
        // What Salesforce refused is listed apart from drift from now on; the rest is in sync.
        Ok(ExitCode::SUCCESS)
    })
}
