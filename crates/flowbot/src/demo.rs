//! `flowbot demo`: the whole customer sync on a fresh machine, without any accounts — the
//! ecforce and Salesforce simulators, the template imported with connections pointing at
//! them, its trigger ON, the server taking ecforce's webhooks, a worker running the flow, and
//! a scripted series of Japanese customers created and updated.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::setup::{install_template, SyncApps};
use anyhow::Context;
use flowbot_connectors::templates::template;
use flowbot_engine::WorkerConfig;
use flowbot_sandbox::ecforce::{self, EcforceConfig, EcforceSim};
use flowbot_sandbox::salesforce::{self, SalesforceConfig};
use flowbot_server::{App, AppConfig};
use flowbot_store::{RunStatus, Store, StoreConfig};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    /// Run the scripted series once, print a summary, and exit 0 only if everything synced
    #[arg(long)]
    pub(crate) once: bool,
    /// Port of the server that takes the webhooks (0: any free port)
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Address to listen on (0.0.0.0 to be reached from other machines or a container's host)
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) bind: String,
    /// Customers the script creates
    #[arg(long, default_value_t = 12)]
    pub(crate) customers: usize,
    /// Which template to run: `search` (the Yoom-style search by email), `upsert`,
    /// `shopify-customer-to-kintone`, `stripe-payment-failed-to-line`,
    /// `inquiry-form-to-salesforce-lead`, `refund-request-approval`,
    /// `table-customers-to-salesforce` or `mail-inquiry-ai-to-slack`
    #[arg(long, default_value = "search")]
    pub(crate) template: String,
    /// Keep the demo's database here instead of a fresh temporary directory
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

const FAMILY: &[(&str, &str)] = &[
    ("山田", "ヤマダ"),
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山本", "ヤマモト"),
];
const GIVEN: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("一郎", "イチロウ"),
    ("美咲", "ミサキ"),
    ("健太", "ケンタ"),
    ("陽菜", "ヒナ"),
    ("翔", "ショウ"),
    ("さくら", "サクラ"),
    ("大輔", "ダイスケ"),
    ("結衣", "ユイ"),
    ("蓮", "レン"),
    ("葵", "アオイ"),
];

fn customer_fields(i: usize, given: usize) -> Map<String, Value> {
    let (f, fk) = FAMILY[i % FAMILY.len()];
    let (g, gk) = GIVEN[given % GIVEN.len()];
    match json!({
        "email": format!("customer{:03}@example.jp", i + 1),
        "name01": f, "name02": g, "kana01": fk, "kana02": gk,
        "zip01": "150", "zip02": format!("{:04}", i + 1), "prefecture_id": (i % 47) + 1,
        "addr01": "渋谷区", "addr02": format!("神宮前{}-{}", i % 6 + 1, i % 9 + 1),
        "tel01": "03", "tel02": format!("{:04}", 1000 + i), "tel03": "5678",
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    flowbot_server::conn::raise_fd_limit();
    crate::store_cmds::runtime()?.block_on(demo(args))
}

/// The customer-sync template a short name (`search` or `upsert`) stands for.
pub fn template_id(name: &str) -> anyhow::Result<&'static str> {
    Ok(match name {
        "search" => "ecforce-customer-to-salesforce",
        "upsert" => "ecforce-customer-to-salesforce-upsert",
        other => anyhow::bail!(
            "--template is `search`, `upsert`, {}, not `{other}`",
            crate::demo_apps::TEMPLATES
                .iter()
                .chain(crate::demo_people::TEMPLATES)
                .chain(crate::demo_tables::TEMPLATES)
                .chain(crate::demo_mail::TEMPLATES)
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    let catalogue = crate::demo_apps::TEMPLATES.contains(&args.template.as_str());
    let people = crate::demo_people::TEMPLATES.contains(&args.template.as_str());
    let tables = crate::demo_tables::TEMPLATES.contains(&args.template.as_str());
    let mail = crate::demo_mail::TEMPLATES.contains(&args.template.as_str());
    let template_id = if catalogue || people || tables || mail {
        ""
    } else {
        template_id(&args.template)?
    };
    let tmp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("flowbot-demo-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            tmp.clone()
        }
    };
    let store = Store::open(&StoreConfig {
        database_url: None,
        data_dir: data_dir.clone(),
        secret_key: None,
    })
    .await
    .context("cannot open the demo's store")?;
    let apps = flowbot_connectors::registry();
    if catalogue {
        return crate::demo_apps::run(store, apps, &data_dir, &args).await;
    }
    if people {
        return crate::demo_people::run(store, apps, &data_dir, &args).await;
    }
    if tables {
        return crate::demo_tables::run(store, apps, &data_dir, &args).await;
    }
    if mail {
        return crate::demo_mail::run(store, apps, &data_dir, &args).await;
    }

    let sf = salesforce::start(SalesforceConfig::default(), 0).await?;
    let ec = ecforce::start(EcforceConfig::default(), 0).await?;

    let stop = CancellationToken::new();
    let app = start_server(&store, &apps, &args.bind, args.port, stop.clone()).await?;
    let server_url = app.url();
    let generated = app.generated_admin_password.clone();

    // The template, with connections pointing at the simulators, trigger ON.
    let t = template(template_id).expect("the templates are embedded");
    let info = install_template(&store, &apps, t.id, &SyncApps::sandbox(&ec, &sf), "demo").await?;
    let hook = format!("{server_url}/hooks/{}/{}", t.id, info.webhook_token);
    ec.sim.send_customer_events_to(&hook);

    println!("flowbot demo — {}", t.id);
    print_addresses(&ec.url, &sf.url, &server_url, generated.as_deref(), &hook);
    println!("  data directory:       {}", data_dir.display());

    // The scripted series: sign-ups, then some customers updated several times.
    let n = args.customers.max(1);
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(ec.sim.create_customer(&customer_fields(i, i)));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for round in 1..=3 {
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % (round + 1) == 0) {
            ec.sim.update_customer(*id, &obj(json!({"name02": GIVEN[(i + round) % GIVEN.len()].0, "kana02": GIVEN[(i + round) % GIVEN.len()].1})));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    settle(&store, &ec.sim, t.id).await;
    let ok = summary(&store, &ec.sim, &sf.sim, t.id).await?;

    if !args.once {
        println!(
            "\nthe demo keeps running: a customer changes every few seconds. Ctrl-C stops it."
        );
        let signal = CancellationToken::new();
        tokio::spawn(crate::store_cmds::cancel_on_signal(signal.clone()));
        let mut tick = 0usize;
        loop {
            tokio::select! {
                _ = signal.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(4)) => {}
            }
            tick += 1;
            let i = tick % ids.len();
            ec.sim.update_customer(
                ids[i],
                &obj(json!({"name02": GIVEN[(i + tick) % GIVEN.len()].0})),
            );
            if tick.is_multiple_of(5) {
                let done = store.count_runs(Some(t.id), RunStatus::Succeeded).await?;
                let failed = store.count_runs(Some(t.id), RunStatus::Failed).await?;
                println!("  runs so far: {done} succeeded, {failed} failed");
            }
        }
    }
    // Ctrl-C was pressed already, when not `--once`.
    finish(app, stop, true, "", ok).await
}

/// The end of a template's demo: unless `--once`, say how to go on (`keep_running`) and
/// wait for Ctrl-C; then stop the server and exit 0 only if the script's checks held.
pub async fn finish(
    app: App,
    stop: CancellationToken,
    once: bool,
    keep_running: &str,
    ok: bool,
) -> anyhow::Result<ExitCode> {
    if !once {
        println!("\nthe demo keeps running: {keep_running} Ctrl-C stops it.");
        let signal = CancellationToken::new();
        crate::store_cmds::cancel_on_signal(signal.clone()).await;
    }
    stop.cancel();
    let _ = app.wait().await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The demo's server with its worker, on `bind:port` (any free port when that is taken).
pub async fn start_server(
    store: &Store,
    apps: &flowbot_core::Apps,
    bind: &str,
    port: u16,
    stop: CancellationToken,
) -> anyhow::Result<App> {
    start_server_with(store, apps, bind, port, None, stop).await
}

/// [`start_server`], receiving mail when `mail` is given.
pub async fn start_server_with(
    store: &Store,
    apps: &flowbot_core::Apps,
    bind: &str,
    port: u16,
    mail: Option<flowbot_server::smtp::MailConfig>,
    stop: CancellationToken,
) -> anyhow::Result<App> {
    let listener = match tokio::net::TcpListener::bind((bind, port)).await {
        Ok(l) => l,
        Err(e) if port != 0 => {
            eprintln!("port {port} is taken ({e}); using a free one (choose with --port)");
            tokio::net::TcpListener::bind((bind, 0)).await?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(App::start(
        store.clone(),
        apps.clone(),
        AppConfig {
            worker: Some(WorkerConfig {
                concurrency: 16,
                idle_poll: Duration::from_millis(50),
                reclaim_at_start: true,
                ..WorkerConfig::default()
            }),
            admin_password: std::env::var("FLOWBOT_ADMIN_PASSWORD").ok(),
            server: flowbot_server::ServerConfig {
                mail,
                ..Default::default()
            },
        },
        listener,
        stop,
    )
    .await?)
}

/// Where the simulators, the web UI (with a password made for this start) and the
/// webhook are.
pub fn print_addresses(
    ecforce: &str,
    salesforce: &str,
    server_url: &str,
    generated_password: Option<&str>,
    hook: &str,
) {
    println!("  ecforce simulator:    {ecforce}");
    println!("  Salesforce simulator: {salesforce}");
    println!(
        "  web UI:               {server_url}/ (user `admin`{})",
        match generated_password {
            Some(p) => format!(", password `{p}`"),
            None => String::new(),
        }
    );
    println!("  webhook URL:          {hook}");
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// Wait until every webhook is delivered and every run has finished (at most a minute).
async fn settle(store: &Store, ec: &EcforceSim, flow: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let busy = ec.pending_deliveries() > 0
            || store
                .count_runs(Some(flow), RunStatus::Queued)
                .await
                .unwrap_or(1)
                > 0
            || store
                .count_runs(Some(flow), RunStatus::Running)
                .await
                .unwrap_or(1)
                > 0;
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Print what happened; true when every ecforce customer has exactly one matching Account.
async fn summary(
    store: &Store,
    ec: &EcforceSim,
    sf: &flowbot_sandbox::salesforce::SalesforceSim,
    flow: &str,
) -> anyhow::Result<bool> {
    let deliveries = ec.deliveries();
    let delivered = deliveries.iter().filter(|d| d.delivered).count();
    let succeeded = store.count_runs(Some(flow), RunStatus::Succeeded).await?;
    let failed = store.count_runs(Some(flow), RunStatus::Failed).await?;
    let pending = store.count_runs(Some(flow), RunStatus::Queued).await?
        + store.count_runs(Some(flow), RunStatus::Running).await?;
    let stats = sf.stats();
    let calls = |op: &str| stats["calls"][op].as_u64().unwrap_or(0);
    let accounts = sf.records("Account");
    let mut synced = 0;
    for c in ec.customers() {
        let name = format!(
            "{} {}",
            c.address
                .get("name01")
                .and_then(Value::as_str)
                .unwrap_or(""),
            c.address
                .get("name02")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        let matching: Vec<_> = accounts
            .iter()
            .filter(|a| a["Mail__c"] == c.email.as_str())
            .collect();
        if matching.len() == 1 && matching[0]["Name"] == name.as_str() {
            synced += 1;
        }
    }
    let customers = ec.customers().len();
    println!("\nsummary");
    println!(
        "  ecforce events delivered: {delivered} of {}",
        deliveries.len()
    );
    println!("  runs: {succeeded} succeeded, {failed} failed, {pending} not finished");
    println!(
        "  Salesforce: {} Accounts; {} created, {} updated, {} upserted; {} API calls",
        accounts.len(),
        calls("create"),
        calls("update"),
        calls("upsert"),
        stats["api_usage"]
    );
    println!("  customers in sync: {synced} of {customers}");
    let ok = failed == 0 && pending == 0 && synced == customers && delivered == deliveries.len();
    println!(
        "  {}",
        if ok {
            "everything synced"
        } else {
            "NOT everything synced"
        }
    );
    Ok(ok)
}
