//! `flowbot run`: one run of a flow in this process, with retries and waits honoured.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use flowbot_core::runner::StepError;
use flowbot_core::{
    check, Clock, MemoryJournal, RunOutcome, Runner, StepRecord, StepStatus, SystemClock,
};
use serde_json::{json, Value};

use crate::EXIT_INVALID;

#[derive(clap::Args)]
pub struct Args {
    /// The flow file (YAML)
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The trigger payload as JSON (`-` reads standard input); `{}` when not given
    #[arg(long, value_name = "FILE.json")]
    payload: Option<PathBuf>,
    /// Named connection settings (YAML); values written `env:NAME` are read from the environment
    #[arg(long, value_name = "FILE.yaml")]
    connections: Option<PathBuf>,
    /// Print the run record as JSON instead of text
    #[arg(long)]
    json: bool,
    /// Fail at the first error instead of retrying as the flow's retry policy says
    #[arg(long)]
    no_retry: bool,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let source = crate::read_file(&args.file)?;
    let apps = flowbot_connectors::registry();
    let checked = check(&source, &apps);
    let Some(mut flow) = checked.flow else {
        for d in &checked.diagnostics {
            eprintln!("{}:{d}", args.file.display());
        }
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    if args.no_retry {
        flow.retry.max_attempts = 1;
        strip_step_retries(&mut flow.steps);
    }
    let trigger = read_payload(args.payload.as_ref())?;
    let connections = match &args.connections {
        Some(p) => crate::connections::load(p, &flow)?,
        None => HashMap::new(),
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let journal = MemoryJournal::default();
    let runner = Runner {
        flow: &flow,
        apps: &apps,
        connections: &connections,
        journal: &journal,
        clock: &SystemClock,
    };
    let outcome = rt.block_on(async {
        loop {
            let prior = journal.records();
            let outcome = runner.run(&trigger, &prior).await?;
            match &outcome {
                RunOutcome::RetryLater {
                    path,
                    error,
                    delay,
                    attempt,
                    max_attempts,
                } => {
                    if !args.json {
                        eprintln!(
                            "↻ {path}: {} (attempt {attempt} of {max_attempts}); retrying in {}",
                            error.message,
                            humanize(*delay)
                        );
                    }
                    tokio::time::sleep(*delay).await;
                }
                RunOutcome::WaitUntil { path, until } => {
                    let d = until.duration_since(SystemClock.now());
                    let d = Duration::try_from(d).unwrap_or_default();
                    if !args.json {
                        eprintln!("… {path}: waiting {}", humanize(d));
                    }
                    tokio::time::sleep(d).await;
                }
                // People answer in My Tasks, which only a server has: stop here.
                RunOutcome::Succeeded
                | RunOutcome::Failed { .. }
                | RunOutcome::WaitForPeople { .. } => return Ok::<_, anyhow::Error>(outcome),
            }
        }
    })?;

    let records = journal.records();
    if args.json {
        print_json(&flow.id, &outcome, &records)?;
    } else {
        print_text(&flow, &outcome, &records);
    }
    Ok(match outcome {
        RunOutcome::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn strip_step_retries(steps: &mut [flowbot_core::model::Step]) {
    use flowbot_core::model::StepKind;
    for s in steps {
        s.retry = None;
        match &mut s.kind {
            StepKind::Branch(b) => {
                strip_step_retries(&mut b.then_steps);
                strip_step_retries(&mut b.else_steps);
            }
            StepKind::Approval(a) => {
                strip_step_retries(&mut a.then_steps);
                strip_step_retries(&mut a.else_steps);
            }
            StepKind::Switch(sw) => {
                for c in &mut sw.cases {
                    strip_step_retries(&mut c.steps);
                }
                strip_step_retries(&mut sw.default);
            }
            StepKind::ForEach(f) => strip_step_retries(&mut f.steps),
            _ => {}
        }
    }
}

pub fn read_payload(path: Option<&PathBuf>) -> anyhow::Result<Value> {
    let Some(path) = path else {
        return Ok(json!({}));
    };
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the payload from standard input")?;
        s
    } else {
        crate::read_file(path)?
    };
    serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| {
        let msg = e.to_string();
        let reason = msg.split(" at line ").next().unwrap_or(&msg);
        anyhow!(
            "{}:{}:{}: the payload is not valid JSON: {reason}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// The records that describe where each step ended: the last record of each path.
fn final_records(records: &[StepRecord]) -> Vec<&StepRecord> {
    let mut order: Vec<&str> = Vec::new();
    let mut last: HashMap<&str, &StepRecord> = HashMap::new();
    for r in records {
        if !last.contains_key(r.path.as_str()) {
            order.push(&r.path);
        }
        last.insert(&r.path, r);
    }
    order.into_iter().map(|p| last[p]).collect()
}

const WAITING_FOR_PEOPLE: &str = "it asks people, who answer in My Tasks on a server \
     (`flowbot serve`); `flowbot run` stops here";

fn print_json(flow_id: &str, outcome: &RunOutcome, records: &[StepRecord]) -> anyhow::Result<()> {
    let (status, error) = match outcome {
        RunOutcome::Succeeded => ("succeeded", None),
        RunOutcome::Failed { path, error } => {
            ("failed", Some(json!({"step": path, "error": error})))
        }
        RunOutcome::WaitForPeople { path, .. } => (
            "waiting",
            Some(json!({"step": path, "error": WAITING_FOR_PEOPLE})),
        ),
        _ => unreachable!("the run loop ends only on success, failure or people"),
    };
    let steps: Vec<&StepRecord> = final_records(records);
    let attempts = records
        .iter()
        .filter(|r| r.status != StepStatus::Started)
        .count();
    let doc = json!({
        "flow": flow_id,
        "status": status,
        "error": error,
        "steps": steps,
        "step_executions": attempts,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn print_text(flow: &flowbot_core::Flow, outcome: &RunOutcome, records: &[StepRecord]) {
    println!("flow {} — {}", flow.id, flow.name);
    for r in final_records(records) {
        let depth = r.path.matches('.').count();
        let pad = "  ".repeat(depth);
        let mark = match r.status {
            StepStatus::Succeeded => "✔",
            StepStatus::Failed => "✘",
            StepStatus::Started => "…",
        };
        let name = flow
            .find_step(&r.step_id)
            .and_then(|s| s.name.clone())
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let what = match (&r.app, &r.action) {
            (Some(app), Some(action)) => format!("{app} {action}"),
            _ => r.kind.clone(),
        };
        let timing = r
            .duration()
            .map(|d| format!(", {}", humanize(d)))
            .unwrap_or_default();
        let attempt = if r.attempt > 1 {
            format!(", attempt {}", r.attempt)
        } else {
            String::new()
        };
        println!("{pad}{mark} {}{name}  ({what}{timing}{attempt})", r.path);
        if let Some(lane) = &r.lane {
            println!("{pad}    lane: {lane}");
        }
        if let Some(input) = &r.input {
            print_value(&pad, "input", input);
        }
        if let Some(output) = &r.output {
            if r.lane.is_none() {
                print_value(&pad, "output", output);
            }
        }
        if let Some(e) = &r.error {
            print_error(&pad, e);
        }
    }
    match outcome {
        RunOutcome::Succeeded => println!("run succeeded"),
        RunOutcome::Failed { path, error } => {
            println!("run failed at step {path}: {}", error.message)
        }
        RunOutcome::WaitForPeople { path, .. } => {
            println!("run stopped at step {path}: {WAITING_FOR_PEOPLE}")
        }
        _ => {}
    }
}

/// Short values on one line, longer ones pretty-printed and indented under their label.
fn print_value(pad: &str, label: &str, v: &Value) {
    let compact = serde_json::to_string(v).unwrap_or_default();
    if compact.chars().count() <= 100 {
        println!("{pad}    {label}: {compact}");
        return;
    }
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut lines = text.lines();
    if let Some(first) = lines.next() {
        println!("{pad}    {label}: {first}");
    }
    let indent = " ".repeat(label.len() + 2);
    for l in lines {
        println!("{pad}    {indent}{l}");
    }
}

fn print_error(pad: &str, e: &StepError) {
    let code = e
        .code
        .as_deref()
        .map(|c| format!("[{c}] "))
        .unwrap_or_default();
    let fields = if e.fields.is_empty() {
        String::new()
    } else {
        format!(" (fields: {})", e.fields.join(", "))
    };
    println!("{pad}    error: {code}{}{fields}", e.message);
}

fn humanize(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
