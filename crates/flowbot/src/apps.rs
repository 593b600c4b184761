//! `flowbot apps`: the catalogue of apps, triggers and actions.

use std::process::ExitCode;

use flowbot_core::manifest::FieldSpec;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<AppsCommand>,
    /// Print the manifests as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum AppsCommand {
    /// Check app files and report every problem as FILE:LINE:COL: message
    Validate {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

/// Exit code of `apps validate` when a file has problems (as `flowbot validate`).
const INVALID: u8 = 2;

fn validate(files: &[std::path::PathBuf]) -> ExitCode {
    let client = reqwest::Client::new();
    let mut bad = 0;
    for f in files {
        match flowbot_connectors::file_app::FileApp::load(f, client.clone()) {
            Ok(app) => {
                let m = flowbot_core::Connector::manifest(&app);
                println!(
                    "{}: ok — app `{}` with {} actions",
                    f.display(),
                    m.id,
                    m.actions.len()
                );
            }
            Err(broken) => {
                bad += 1;
                println!("{}", broken.report());
            }
        }
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    }
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(AppsCommand::Validate { files }) = &args.command {
        return Ok(validate(files));
    }
    let (apps, broken) =
        flowbot_connectors::registry_with(flowbot_connectors::apps_dir().as_deref());
    for b in &broken {
        eprintln!("{}", b.report());
    }
    if args.json {
        let all: Vec<_> = apps.manifests().collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    for app in apps.manifests() {
        println!("{} — {} / {}", app.id, app.name.en, app.name.ja);
        if !app.connection.is_empty() {
            println!("  connection:");
            print_fields(&app.connection);
        }
        for t in &app.triggers {
            println!("  trigger {} — {} / {}", t.id, t.name.en, t.name.ja);
            print_fields(&t.options);
            for o in &t.outputs {
                println!("      → {} ({})", o.name, o.kind.name());
            }
        }
        for a in &app.actions {
            let repeat = if a.idempotent {
                "safe to repeat"
            } else {
                "not idempotent"
            };
            println!(
                "  action {} — {} / {} [{repeat}]",
                a.id, a.name.en, a.name.ja
            );
            print_fields(&a.inputs);
            for o in &a.outputs {
                println!("      → {} ({})", o.name, o.kind.name());
            }
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct TemplatesArgs {
    /// Print this template's YAML (to import, or to save and edit)
    id: Option<String>,
}

pub fn templates(args: TemplatesArgs) -> anyhow::Result<ExitCode> {
    use flowbot_connectors::templates::{template, TEMPLATES};
    if let Some(id) = args.id {
        let Some(t) = template(&id) else {
            let ids: Vec<&str> = TEMPLATES.iter().map(|t| t.id).collect();
            anyhow::bail!("no template `{id}` (there are: {})", ids.join(", "));
        };
        print!("{}", t.yaml);
        return Ok(ExitCode::SUCCESS);
    }
    let apps = flowbot_connectors::registry();
    for t in TEMPLATES {
        let checked = flowbot_core::check(t.yaml, &apps);
        let name = checked
            .flow
            .as_ref()
            .map(|f| f.name.clone())
            .unwrap_or_default();
        let description = checked.flow.and_then(|f| f.description).unwrap_or_default();
        println!(
            "{}
  {name}
  {description}
  (flows/{})
",
            t.id, t.file
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_fields(fields: &[FieldSpec]) {
    for f in fields {
        let mut notes = vec![f.kind.name().to_string()];
        if f.required {
            notes.push("required".into());
        }
        if f.secret {
            notes.push("secret".into());
        }
        if !f.choices.is_empty() {
            notes.push(f.choices.join("|"));
        }
        if let Some(d) = &f.default {
            notes.push(format!("default {d}"));
        }
        println!("      {} ({})", f.name, notes.join(", "));
    }
}
