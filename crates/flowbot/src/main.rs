//! The `flowbot` command: validate and run flows, list apps.
//!
//! This is the binary edge: errors become messages and exit codes here (anyhow), never in
//! the library crates.

mod apps;
mod connections;
mod run;
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
}

#[derive(Subcommand)]
enum Command {
    /// Check flow files and report every problem as FILE:LINE:COL: message
    Validate(validate::Args),
    /// Run a flow once, in this process, and show each step's obtained values
    Run(run::Args),
    /// List the apps with their triggers, actions, inputs and outputs
    Apps(apps::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Validate(args) => validate::main(args),
        Command::Run(args) => run::main(args),
        Command::Apps(args) => apps::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// Read a file, saying which one could not be read.
pub fn read_file(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))
}
