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
    /// Run every action's examples: the exact request, the documented answer, the output
    Test {
        files: Vec<std::path::PathBuf>,
        /// Test the built-in apps too
        #[arg(long)]
        builtin: bool,
    },
    /// Write an app file from an OpenAPI 3.x or Swagger 2.0 document (a file or a URL)
    ImportOpenapi {
        /// The document: a path, or an http(s) URL
        spec: String,
        /// Only these operations: tags or operation ids, comma-separated
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// The app's id (default: from the document's title)
        #[arg(long)]
        id: Option<String>,
        /// Write the app file here (default: standard output)
        #[arg(long, short)]
        out: Option<std::path::PathBuf>,
        /// List the document's operations instead
        #[arg(long)]
        list: bool,
    },
}

/// The largest document read (a URL's answer is cut off there).
const MAX_SPEC: usize = 16 << 20;

fn read_spec(spec: &str) -> anyhow::Result<String> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return rt.block_on(async {
            let mut resp = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?
                .get(spec)
                .send()
                .await?
                .error_for_status()?;
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > MAX_SPEC {
                    anyhow::bail!("{spec}: the document is larger than {} MiB", MAX_SPEC >> 20);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(String::from_utf8(body)?)
        });
    }
    let meta = std::fs::metadata(spec).map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
    if meta.len() as usize > MAX_SPEC {
        anyhow::bail!("{spec}: the document is larger than {} MiB", MAX_SPEC >> 20);
    }
    std::fs::read_to_string(spec).map_err(|e| anyhow::anyhow!("{spec}: {e}"))
}

fn import_openapi(
    spec: &str,
    only: Vec<String>,
    id: Option<String>,
    out: Option<&std::path::Path>,
    list: bool,
) -> anyhow::Result<ExitCode> {
    use flowbot_connectors::file_app::{format, openapi};
    let text = read_spec(spec)?;
    let doc = match openapi::read(&text) {
        Ok(d) => d,
        Err(e) => {
            println!("{spec}: {e}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    if list {
        match openapi::operations(&doc) {
            Ok(ops) => {
                for o in ops {
                    println!(
                        "{}\t{} {}\t{}\t{}",
                        o.id,
                        o.method,
                        o.path,
                        o.tags.join(","),
                        o.summary
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => {
                println!("{spec}: {e}");
                return Ok(ExitCode::from(INVALID));
            }
        }
    }
    let yaml = match openapi::import(&doc, &openapi::ImportOptions { id, only }) {
        Ok(y) => y,
        Err(e) => {
            println!("{spec}: {e}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    // What was written must load: the import and the format cannot drift apart.
    if let Err(problems) = format::parse(&yaml) {
        for d in problems {
            println!("(imported app):{}:{}: {}", d.line, d.column, d.message);
        }
        anyhow::bail!("the imported app file does not load; this is a bug in the import");
    }
    match out {
        Some(path) => {
            std::fs::write(path, &yaml)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
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
    match args.command {
        Some(AppsCommand::Validate { files }) => return Ok(validate(&files)),
        Some(AppsCommand::Test { files, builtin }) => {
            return crate::apps_test::main(&files, builtin)
        }
        Some(AppsCommand::ImportOpenapi {
            spec,
            only,
            id,
            out,
            list,
        }) => return import_openapi(&spec, only, id, out.as_deref(), list),
        None => {}
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
