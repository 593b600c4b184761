use std::path::PathBuf;
use std::process::ExitCode;

use flowbot_core::model::StepKind;
use flowbot_core::{check, Apps, Flow};

use crate::EXIT_INVALID;

#[derive(clap::Args)]
pub struct Args {
    /// Flow files (YAML)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let apps = flowbot_connectors::registry();
    let mut ok = true;
    for file in &args.files {
        ok &= validate_one(file, &apps);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

fn validate_one(file: &PathBuf, apps: &Apps) -> bool {
    let source = match crate::read_file(file) {
        Ok(s) => s,
        Err(e) => {
            println!("{e}");
            return false;
        }
    };
    let checked = check(&source, apps);
    match checked.flow {
        Some(flow) => {
            println!("{}: ok: {}", file.display(), summary(&flow));
            true
        }
        None => {
            for d in &checked.diagnostics {
                println!("{}:{d}", file.display());
            }
            false
        }
    }
}

/// One line describing a valid flow.
pub fn summary(flow: &Flow) -> String {
    let steps = flow.walk();
    let actions = steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Action(_)))
        .count();
    let events = if flow.trigger.events.is_empty() {
        String::new()
    } else {
        format!(" ({})", flow.trigger.events.join(", "))
    };
    format!(
        "flow `{}` \"{}\": trigger {}{events}, {} ({})",
        flow.id,
        flow.name,
        flow.trigger.app,
        plural(steps.len(), "step"),
        plural(actions, "action")
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
