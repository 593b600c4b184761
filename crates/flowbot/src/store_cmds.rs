//! Commands over the durable store: `migrate`, `worker`, `rotate-key`, `trigger`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use flowbot_core::runner::{concurrency_key, dedupe_key};
use flowbot_core::{check, Flow};
use flowbot_engine::{Worker, WorkerConfig};
use flowbot_server::{AppState, ServerConfig};
use flowbot_store::{EnqueueOutcome, NewEvent, Source, Store, StoreConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Where the store is: shared by every command that opens it.
#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// Directory for the SQLite database, its lock and the secret key file
    #[arg(
        long,
        env = "FLOWBOT_DATA_DIR",
        default_value = "flowbot-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://…) to share one database between many workers; SQLite in
    /// the data directory when not given
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub fn config(&self) -> StoreConfig {
        StoreConfig {
            database_url: self.database_url.clone().filter(|u| !u.is_empty()),
            data_dir: self.data_dir.clone(),
            secret_key: std::env::var("FLOWBOT_SECRET_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
        }
    }

    pub async fn open(&self) -> anyhow::Result<Store> {
        let cfg = self.config();
        Store::open(&cfg)
            .await
            .with_context(|| match &cfg.database_url {
                Some(_) => "cannot open the PostgreSQL store (DATABASE_URL)".to_string(),
                None => format!("cannot open the store in {}", cfg.data_dir.display()),
            })
    }
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    store: StoreArgs,
}

pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        println!("the {:?} store is up to date", store.backend());
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Runs executed at the same time
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long a claimed run stays this worker's without a heartbeat
    #[arg(long, default_value = "30s", value_parser = duration)]
    lease: Duration,
    /// How often an idle worker looks for due runs
    #[arg(long, default_value = "200ms", value_parser = duration)]
    idle_poll: Duration,
    /// On SIGTERM/SIGINT, how long to let runs in flight finish before releasing them
    #[arg(long, default_value = "10s", value_parser = duration)]
    shutdown_grace: Duration,
    /// Do not fire schedules or poll polling triggers
    #[arg(long)]
    no_triggers: bool,
    /// Purge finished runs older than this (`0` keeps them forever)
    #[arg(long, default_value = "30d", value_parser = duration)]
    retain: Duration,
    /// Keep at most this many finished runs per flow
    #[arg(long, value_name = "N")]
    retain_runs: Option<u64>,
    /// This worker's name in leases, logs and the run history (default: worker-PID-random)
    #[arg(long, value_name = "NAME")]
    id: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (sign in with an API token)
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
}

pub fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let cfg = WorkerConfig {
            concurrency: args.concurrency.max(1),
            lease: args.lease,
            idle_poll: args.idle_poll,
            shutdown_grace: args.shutdown_grace,
            triggers: !args.no_triggers,
            retention: Some(flowbot_store::Retention {
                max_age: (!args.retain.is_zero()).then_some(args.retain),
                max_runs_per_flow: args.retain_runs,
                ..flowbot_store::Retention::default()
            }),
            reclaim_at_start: true,
            ..WorkerConfig::default()
        };
        let cfg = match args.id {
            Some(id) => WorkerConfig { id, ..cfg },
            None => cfg,
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        eprintln!(
            "flowbot worker {} on the {:?} store",
            cfg.id,
            store.backend()
        );
        let apps = flowbot_connectors::registry();
        let metrics = match &args.metrics_addr {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for metrics"))?;
                eprintln!("metrics at http://{}/metrics", listener.local_addr()?);
                let state = AppState::new(store.clone(), apps.clone(), ServerConfig::default());
                Some(tokio::spawn(flowbot_server::serve_metrics(
                    listener,
                    state,
                    shutdown.clone(),
                )))
            }
            None => None,
        };
        flowbot_server::stored_apps::keep_current(store.clone(), apps.clone(), shutdown.clone())
            .await?;
        let stats = Worker::new(store, apps, cfg).run(shutdown).await?;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        eprintln!(
            "worker stopped: {} attempts, {} runs released",
            stats.attempts, stats.released
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Cancel on the first SIGTERM or SIGINT.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

#[derive(clap::Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The new key (base64 of 32 bytes); a random one when not given
    #[arg(long, env = "FLOWBOT_NEW_SECRET_KEY", hide_env_values = true)]
    new_key: Option<String>,
}

pub fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let from_env = std::env::var("FLOWBOT_SECRET_KEY").is_ok_and(|k| !k.is_empty());
        let (key, n) = store.rotate_key(args.new_key, "cli").await?;
        println!("re-encrypted {n} connection(s) with the new key");
        if from_env {
            // The key lives outside flowbot: the operator must store the new one.
            println!("set FLOWBOT_SECRET_KEY to the new key before the next start:\n{key}");
        } else {
            println!(
                "the new key replaced {}",
                store
                    .data_dir()
                    .join(flowbot_store::crypto::KEY_FILE)
                    .display()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(clap::Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The flow's id
    flow: String,
    /// The trigger payload as JSON; `{}` when not given
    #[arg(long, value_name = "FILE.json")]
    payload: Option<PathBuf>,
}

/// A manual run with a user-given payload, queued for the workers.
pub fn trigger(args: TriggerArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let yaml = store.current_yaml(&args.flow).await?;
        let flow = parse(&yaml)?;
        let payload = crate::run::read_payload(args.payload.as_ref())?;
        let outcome = store
            .enqueue(NewEvent {
                files: Vec::new(),
                flow_version: None,
                flow_id: flow.id.clone(),
                source: Source::Manual,
                headers: json!({}),
                body: payload.clone(),
                concurrency_key: concurrency_key(&flow, &payload),
                dedupe: dedupe_key(&flow, &payload),
                trigger: payload,
            })
            .await?;
        match outcome {
            EnqueueOutcome::Queued { run_id, .. } => println!("queued run {run_id}"),
            EnqueueOutcome::Failed { run_id, reason, .. } => {
                println!("run {run_id} failed at once: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            other => println!("{other:?}"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn parse(yaml: &str) -> anyhow::Result<Flow> {
    let checked = check(yaml, &flowbot_connectors::registry());
    checked.flow.ok_or_else(|| {
        anyhow::anyhow!(
            "the stored flow is not valid: {}",
            checked
                .diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

pub fn duration(s: &str) -> Result<Duration, String> {
    flowbot_core::model::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration such as 500ms, 30s or 5m"))
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A running flowbot server to talk to instead of opening the store.
#[derive(clap::Args, Clone)]
pub struct RemoteArgs {
    /// The server's address, e.g. http://127.0.0.1:8080 (then the REST API is used)
    #[arg(long, env = "FLOWBOT_SERVER", value_name = "URL")]
    server: Option<String>,
    /// An API token (create one in the UI or with POST /api/v1/tokens)
    #[arg(long, env = "FLOWBOT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl RemoteArgs {
    fn client(&self) -> anyhow::Result<Option<(String, String)>> {
        match (&self.server, &self.token) {
            (None, _) => Ok(None),
            (Some(s), Some(t)) => Ok(Some((s.trim_end_matches('/').to_string(), t.clone()))),
            (Some(_), None) => {
                anyhow::bail!("--server needs --token (or FLOWBOT_TOKEN): an API token")
            }
        }
    }
}

async fn api_error(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let mut msg = format!(
        "the server answered {status}: {}",
        body["error"]["message"].as_str().unwrap_or("")
    );
    if let Some(diags) = body["error"]["diagnostics"].as_array() {
        for d in diags {
            msg.push_str(&format!(
                "\n{}:{}: {}",
                d["line"],
                d["column"],
                d["message"].as_str().unwrap_or("")
            ));
        }
    }
    anyhow::anyhow!(msg)
}

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// The flow file (YAML)
    file: PathBuf,
    /// Turn the flow's trigger ON after importing
    #[arg(long)]
    enable: bool,
}

/// Validate a flow file and store it as a new flow or a new version of an existing one.
pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let source = crate::read_file(&args.file)?;
    let checked = check(&source, &flowbot_connectors::registry());
    let Some(flow) = checked.flow else {
        for d in &checked.diagnostics {
            eprintln!("{}:{d}", args.file.display());
        }
        return Ok(ExitCode::from(crate::EXIT_INVALID));
    };
    if let Some((server, token)) = args.remote.client()? {
        return runtime()?.block_on(async {
            let http = reqwest::Client::new();
            let resp = http
                .post(format!("{server}/api/v1/flows"))
                .bearer_auth(&token)
                .header("content-type", "application/yaml")
                .body(source.clone())
                .send()
                .await
                .with_context(|| format!("cannot reach {server}"))?;
            if !resp.status().is_success() {
                return Err(api_error(resp).await);
            }
            let v: serde_json::Value = resp.json().await?;
            if args.enable {
                let r = http
                    .post(format!("{server}/api/v1/flows/{}/enable", flow.id))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    return Err(api_error(r).await);
                }
            }
            println!(
                "imported flow `{}` as version {}{}",
                flow.id,
                v["flow"]["current_version"],
                if args.enable { ", trigger ON" } else { "" }
            );
            println!("webhook path: {}", v["webhook_path"].as_str().unwrap_or(""));
            Ok(ExitCode::SUCCESS)
        });
    }
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let info = store
            .import_flow(&flow.id, &flow.name, &source, "cli")
            .await?;
        if args.enable {
            store.set_enabled(&flow.id, true, "cli").await?;
        }
        println!(
            "imported flow `{}` as version {}{}",
            info.id,
            info.current_version,
            if args.enable { ", trigger ON" } else { "" }
        );
        println!("webhook path: /hooks/{}/{}", info.id, info.webhook_token);
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on (use 0.0.0.0 to accept connections from other machines)
    #[arg(long, env = "FLOWBOT_BIND", default_value = "127.0.0.1")]
    bind: String,
    /// Port to listen on
    #[arg(long, env = "FLOWBOT_PORT", default_value_t = 8080)]
    port: u16,
    /// The address users and senders reach this server at, used when showing webhook URLs
    #[arg(long, env = "FLOWBOT_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Serve only: no runs are executed in this process (run `flowbot worker`s)
    #[arg(long)]
    no_worker: bool,
    /// Runs executed at the same time by the in-process worker
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Largest webhook body accepted, in bytes
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: usize,
    #[command(flatten)]
    limits: ConnectionArgs,
    #[command(flatten)]
    sso: SsoArgs,
    /// Answers one address may send to one form in 5 minutes (ten times that to all forms)
    #[arg(long, env = "FLOWBOT_MAX_FORM_ANSWERS", default_value_t = 10)]
    max_form_answers: u32,
    #[command(flatten)]
    mail: MailArgs,
}

/// The mail trigger: an SMTP receiver taking mail for `<flow token>@<domain>`.
#[derive(clap::Args)]
pub struct MailArgs {
    /// Receive mail on this address (e.g. 0.0.0.0:2525; point your domain's MX, or a
    /// forwarding rule, at it). Without it, mail triggers receive nothing
    #[arg(long, env = "FLOWBOT_SMTP_ADDR", value_name = "ADDR")]
    smtp_addr: Option<std::net::SocketAddr>,
    /// The domain of the flows' mail addresses
    #[arg(long, env = "FLOWBOT_SMTP_DOMAIN", default_value = "localhost")]
    smtp_domain: String,
    /// The largest mail received, in bytes
    #[arg(long, env = "FLOWBOT_SMTP_MAX_SIZE", default_value_t = flowbot_server::smtp::MailConfig::DEFAULT_MAX_SIZE)]
    smtp_max_size: usize,
}

impl MailArgs {
    fn config(&self) -> Option<flowbot_server::smtp::MailConfig> {
        self.smtp_addr.map(|addr| flowbot_server::smtp::MailConfig {
            addr,
            domain: self.smtp_domain.trim().to_ascii_lowercase(),
            max_size: self.smtp_max_size,
        })
    }
}

/// Single sign-on through the company's OpenID Connect identity provider (Entra ID, Okta,
/// Google Workspace, Keycloak…). Register flowbot there with the redirect URI
/// `<public URL>/auth/sso/callback`.
#[derive(clap::Args)]
pub struct SsoArgs {
    /// The identity provider's issuer URL (its discovery document is read from there)
    #[arg(long, env = "FLOWBOT_OIDC_ISSUER", value_name = "URL")]
    oidc_issuer: Option<String>,
    /// The client id flowbot is registered under
    #[arg(long, env = "FLOWBOT_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// The client secret (from the environment, so it stays out of the process list)
    #[arg(long, env = "FLOWBOT_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// The ID token claim holding the person's groups
    #[arg(long, env = "FLOWBOT_OIDC_GROUPS_CLAIM", default_value = "groups")]
    oidc_groups_claim: String,
    /// A group given a role, as GROUP=ROLE (admin, editor, viewer or operator); repeatable
    /// or comma-separated
    #[arg(
        long,
        env = "FLOWBOT_OIDC_ROLE",
        value_delimiter = ',',
        value_name = "GROUP=ROLE"
    )]
    oidc_role: Vec<String>,
    /// An email domain whose people become members at their first sign-in; repeatable or
    /// comma-separated
    #[arg(
        long,
        env = "FLOWBOT_OIDC_ALLOW_DOMAIN",
        value_delimiter = ',',
        value_name = "DOMAIN"
    )]
    oidc_allow_domain: Vec<String>,
    /// The role of members made at their first sign-in when no group gives one
    #[arg(long, env = "FLOWBOT_OIDC_DEFAULT_ROLE", default_value = "viewer")]
    oidc_default_role: String,
    /// `owners`: only owners sign in with a password (the break-glass account); everyone
    /// else through the identity provider
    #[arg(long, env = "FLOWBOT_PASSWORD_LOGIN", default_value = "all", value_parser = ["all", "owners"])]
    password_login: String,
}

impl SsoArgs {
    pub fn config(&self) -> anyhow::Result<Option<flowbot_server::sso::SsoConfig>> {
        let role = |r: &str| {
            flowbot_store::Role::parse(r.trim())
                .filter(|r| *r != flowbot_store::Role::Owner)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "`{r}` is not a role SSO gives: admin, editor, viewer or operator"
                    )
                })
        };
        let Some(issuer) = self.oidc_issuer.clone().filter(|i| !i.is_empty()) else {
            if self.password_login == "owners" {
                anyhow::bail!("--password-login owners needs single sign-on: set --oidc-issuer");
            }
            return Ok(None);
        };
        let (Some(client_id), Some(client_secret)) = (
            self.oidc_client_id.clone().filter(|c| !c.is_empty()),
            self.oidc_client_secret.clone().filter(|c| !c.is_empty()),
        ) else {
            anyhow::bail!(
                "--oidc-issuer needs --oidc-client-id and FLOWBOT_OIDC_CLIENT_SECRET as well"
            );
        };
        let mut role_map = Vec::new();
        for pair in self.oidc_role.iter().filter(|p| !p.trim().is_empty()) {
            let (group, r) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--oidc-role takes GROUP=ROLE, not `{pair}`"))?;
            role_map.push((group.trim().to_string(), role(r)?));
        }
        Ok(Some(flowbot_server::sso::SsoConfig {
            issuer,
            client_id,
            client_secret,
            groups_claim: self.oidc_groups_claim.clone(),
            role_map,
            allowed_domains: self
                .oidc_allow_domain
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_string())
                .filter(|d| !d.is_empty())
                .collect(),
            default_role: role(&self.oidc_default_role)?,
            owners_only_passwords: self.password_login == "owners",
        }))
    }
}

/// How many connections the server holds and how long a client may take to send its
/// request: the defences against slow and silent clients.
#[derive(clap::Args)]
pub struct ConnectionArgs {
    /// Connections open at once; a new one evicts the one that has sent nothing the
    /// longest. Capped to the open-file limit less 256 (kept for the database and calls)
    #[arg(long, env = "FLOWBOT_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Time for a new connection to send its request's headers
    #[arg(long, env = "FLOWBOT_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    header_timeout: Duration,
    /// Time for a request's body to arrive once its headers have
    #[arg(long, env = "FLOWBOT_BODY_TIMEOUT", default_value = "30s", value_parser = duration)]
    body_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request
    #[arg(long, env = "FLOWBOT_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    idle_timeout: Duration,
}

impl ConnectionArgs {
    pub fn limits(&self) -> flowbot_server::conn::Limits {
        flowbot_server::conn::Limits {
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            ..flowbot_server::conn::Limits::default()
        }
    }
}

/// The server (webhook ingress, API, UI) with an in-process worker by default.
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    flowbot_server::conn::raise_fd_limit();
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let listener = tokio::net::TcpListener::bind((args.bind.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let worker = (!args.no_worker).then(|| WorkerConfig {
            concurrency: args.concurrency.max(1),
            reclaim_at_start: true,
            ..WorkerConfig::default()
        });
        let app = flowbot_server::App::start(
            store,
            flowbot_connectors::registry(),
            flowbot_server::AppConfig {
                server: flowbot_server::ServerConfig {
                    max_body: args.max_body,
                    public_url: args.public_url.clone(),
                    limits: args.limits.limits(),
                    sso: args.sso.config()?,
                    form_answers: args.max_form_answers,
                    mail: args.mail.config(),
                },
                worker,
                admin_password: std::env::var("FLOWBOT_ADMIN_PASSWORD").ok(),
            },
            listener,
            shutdown,
        )
        .await?;
        if let Some(generated) = &app.generated_admin_password {
            // Shown once: only its hash is stored.
            eprintln!("created the admin account: user `admin`, password `{generated}` (set FLOWBOT_ADMIN_PASSWORD to choose it)");
        }
        eprintln!(
            "flowbot serving on {} ({:?} store{}); webhook URLs start with {}/hooks/",
            app.url(),
            app.store.backend(),
            if args.no_worker { ", no worker" } else { ", with a worker" },
            app.public_url
        );
        if let Some(smtp) = app.smtp_addr {
            eprintln!(
                "receiving mail on {smtp} for <flow token>@{}",
                args.mail.smtp_domain.trim().to_ascii_lowercase()
            );
        }
        app.wait().await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// The flow's id
    flow: String,
}

/// Print a stored flow's current YAML.
pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let yaml = match args.remote.client()? {
            Some((server, token)) => {
                let resp = reqwest::Client::new()
                    .get(format!("{server}/api/v1/flows/{}/export", args.flow))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {server}"))?;
                if !resp.status().is_success() {
                    return Err(api_error(resp).await);
                }
                resp.text().await?
            }
            None => {
                let store = args.store.open().await?;
                store.current_yaml(&args.flow).await?
            }
        };
        print!("{yaml}");
        Ok(ExitCode::SUCCESS)
    })
}
