//! `flowbot demo --template NAME` for the catalogue's templates: the catalogue simulator
//! standing in for every app, the template imported with sandbox connections, its trigger
//! ON, and a scripted series of signed webhooks — Shopify customers signing up and changing,
//! Stripe payments failing — whose effects are read back from the simulator.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use flowbot_core::Apps;
use flowbot_sandbox::catalogue::{self, webhooks, CatalogueConfig, CatalogueSim};
use flowbot_store::{FlowInfo, RunStatus, Store};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The catalogue templates the demo can run.
pub const TEMPLATES: &[&str] = &[
    "shopify-customer-to-kintone",
    "stripe-payment-failed-to-line",
];

/// Import a template, give each of its connection slots a connection to the simulator
/// (the app file's example values, URLs pointed at `sim`), and switch its trigger ON.
pub async fn install(
    store: &Store,
    apps: &Apps,
    sim: &CatalogueSim,
    template_id: &str,
) -> anyhow::Result<FlowInfo> {
    let t = flowbot_connectors::templates::template(template_id)
        .with_context(|| format!("no template `{template_id}`"))?;
    let checked = flowbot_core::check(t.yaml, apps);
    let flow = checked
        .flow
        .with_context(|| format!("template {} does not validate", t.file))?;
    let info = store.import_flow(t.id, &flow.name, t.yaml, "demo").await?;
    for slot in &flow.connections {
        let file = flowbot_connectors::file_app::builtin()
            .iter()
            .find(|a| a.id == slot.app)
            .with_context(|| {
                format!(
                    "slot `{}`: app `{}` is not an app file",
                    slot.name, slot.app
                )
            })?;
        let conn = crate::apps_test::sandbox_connection(file, sim);
        let saved = store
            .save_connection(&conn.name, &slot.app, &conn.settings, "demo")
            .await?;
        store
            .bind_connection(t.id, &slot.name, &saved.id, "demo")
            .await?;
    }
    store.set_enabled(t.id, true, "demo").await?;
    Ok(info)
}

/// A connection value of the app's sandbox connection (a webhook secret, say).
fn example_setting(app: &str, field: &str) -> String {
    flowbot_connectors::file_app::builtin()
        .iter()
        .find(|a| a.id == app)
        .and_then(|a| a.connection.example.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

async fn deliver(http: &reqwest::Client, hook: &str, d: webhooks::Delivery) -> anyhow::Result<u16> {
    let mut req = http.post(hook).body(d.body);
    for (k, v) in d.headers {
        req = req.header(k, v);
    }
    Ok(req.send().await?.status().as_u16())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

const CUSTOMERS: &[(&str, &str, &str)] = &[
    ("山田", "太郎", "taro.yamada@example.jp"),
    ("佐藤", "花子", "hanako.sato@example.jp"),
    ("鈴木", "一郎", "ichiro.suzuki@example.jp"),
    ("高橋", "美咲", "misaki.takahashi@example.jp"),
    ("田中", "健太", "kenta.tanaka@example.jp"),
    ("伊藤", "陽菜", "hina.ito@example.jp"),
];

pub async fn run(
    store: Store,
    apps: Apps,
    dir: &std::path::Path,
    args: &crate::demo::Args,
) -> anyhow::Result<ExitCode> {
    let sim = catalogue::start(
        &crate::sandbox_cmd::catalogue_sources(),
        CatalogueConfig { stateful: true },
        0,
    )
    .await?;
    let template_id = args.template.as_str();
    let stop = CancellationToken::new();
    let app = crate::demo::start_server(&store, &apps, &args.bind, args.port, stop.clone()).await?;
    let info = install(&store, &apps, &sim.sim, template_id).await?;
    let hook = format!("{}/hooks/{}/{}", app.url(), info.id, info.webhook_token);
    println!("flowbot demo — {template_id}");
    println!("  app simulator:        {}", sim.url);
    println!("  what reached it:      {}/__control/requests", sim.url);
    println!(
        "  web UI:               {}/ (user `admin`{})",
        app.url(),
        app.generated_admin_password
            .as_deref()
            .map(|p| format!(", password `{p}`"))
            .unwrap_or_default()
    );
    println!("  webhook URL:          {hook}");
    println!("  data directory:       {}", dir.display());
    let script = Script {
        http: reqwest::Client::new(),
        hook: &hook,
        store: &store,
        sim: &sim.sim,
        n: args.customers.clamp(1, CUSTOMERS.len() * 10),
    };
    let ok = match template_id {
        "shopify-customer-to-kintone" => shopify_to_kintone(script).await?,
        _ => stripe_to_line(script).await?,
    };
    crate::demo::finish(app, stop, args.once, "open the web UI to see the runs.", ok).await
}

/// Wait until no run of the flow is queued or running (at most a minute).
async fn settle(store: &Store, flow: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let count = |s| store.count_runs(Some(flow), s);
        let done = count(RunStatus::Succeeded).await.unwrap_or(0)
            + count(RunStatus::Failed).await.unwrap_or(0);
        let busy = count(RunStatus::Queued).await.unwrap_or(1)
            + count(RunStatus::Running).await.unwrap_or(1);
        if busy == 0 && done >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn runs_line(store: &Store, flow: &str) -> anyhow::Result<(i64, i64)> {
    let ok = store.count_runs(Some(flow), RunStatus::Succeeded).await?;
    let failed = store.count_runs(Some(flow), RunStatus::Failed).await?;
    println!("  runs: {ok} succeeded, {failed} failed");
    Ok((ok, failed))
}

fn customer(i: usize) -> (String, String, String) {
    let (family, given, email) = CUSTOMERS[i % CUSTOMERS.len()];
    let email = if i < CUSTOMERS.len() {
        email.to_string()
    } else {
        email.replace('@', &format!("+{}@", i / CUSTOMERS.len()))
    };
    (family.into(), given.into(), email)
}

fn shopify_customer(i: usize, given: &str) -> Value {
    let (family, _, email) = customer(i);
    json!({
        "id": 706405506930370000u64 + i as u64,
        "email": email,
        "first_name": given,
        "last_name": family,
        "phone": format!("+8190{:08}", 12345678 + i),
        "tags": "demo",
        "created_at": "2025-01-06T10:00:00+09:00",
        "updated_at": "2025-01-06T10:00:00+09:00",
    })
}

/// What a scripted series needs: where to deliver, where to look, how many.
struct Script<'a> {
    http: reqwest::Client,
    hook: &'a str,
    store: &'a Store,
    sim: &'a CatalogueSim,
    n: usize,
}

async fn shopify_to_kintone(s: Script<'_>) -> anyhow::Result<bool> {
    let (http, hook, store, sim, n) = (&s.http, s.hook, s.store, s.sim, s.n);
    let flow = "shopify-customer-to-kintone";
    let secret = example_setting("shopify", "webhook_secret");
    let mut sent = 0;
    for i in 0..n {
        let (_, given, _) = customer(i);
        deliver(
            http,
            hook,
            webhooks::shopify(&secret, "customers/create", &shopify_customer(i, &given)),
        )
        .await?;
        sent += 1;
    }
    // Some customers change their first name: the same kintone record is updated.
    for i in (0..n).step_by(2) {
        let c = shopify_customer(i, "変更後");
        deliver(
            http,
            hook,
            webhooks::shopify(&secret, "customers/update", &c),
        )
        .await?;
        sent += 1;
    }
    let forged = deliver(
        http,
        hook,
        webhooks::shopify(
            "not-the-secret",
            "customers/create",
            &shopify_customer(0, "偽"),
        ),
    )
    .await?;
    settle(store, flow, sent).await;
    println!("\nsummary");
    let (ok, failed) = runs_line(store, flow).await?;
    let records = sim.records("kintone");
    let mut in_sync = 0;
    for i in 0..n {
        let (_, given, email) = customer(i);
        let want = if i % 2 == 0 {
            "変更後".to_string()
        } else {
            given
        };
        let matching: Vec<&Value> = records
            .iter()
            .filter(|r| r["メールアドレス"]["value"] == email.as_str())
            .collect();
        if matching.len() == 1 && matching[0]["名"]["value"] == want.as_str() {
            in_sync += 1;
        }
    }
    println!(
        "  kintone: {} records for {n} Shopify customers; {in_sync} in sync",
        records.len()
    );
    println!("  (the records: {}/__control/records/kintone)", sim.url());
    println!("  a webhook with a forged signature was answered {forged}");
    let good = failed == 0 && ok == sent && in_sync == n && records.len() == n && forged == 401;
    println!(
        "  {}",
        if good {
            "everything synced"
        } else {
            "NOT everything synced"
        }
    );
    Ok(good)
}

async fn stripe_to_line(s: Script<'_>) -> anyhow::Result<bool> {
    let (http, hook, store, sim, n) = (&s.http, s.hook, s.store, s.sim, s.n);
    let flow = "stripe-payment-failed-to-line";
    let secret = example_setting("stripe", "webhook_secret");
    for i in 0..n {
        let event = json!({
            "id": format!("evt_demo{i:04}"),
            "object": "event",
            "type": "payment_intent.payment_failed",
            "created": now(),
            "data": { "object": {
                "id": format!("pi_demo{i:04}"),
                "object": "payment_intent",
                "amount": 1980 + 100 * i as u64,
                "currency": "jpy",
                "customer": "cus_NffrFeUfNV2Hib",
                "receipt_email": customer(i).2,
                "last_payment_error": {
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                    "message": "Your card has insufficient funds.",
                },
                "status": "requires_payment_method",
            }},
        });
        deliver(http, hook, webhooks::stripe(&secret, &event, now())).await?;
    }
    let old = now() - 3600;
    let replayed = deliver(
        http,
        hook,
        webhooks::stripe(
            &secret,
            &json!({"type": "payment_intent.payment_failed"}),
            old,
        ),
    )
    .await?;
    settle(store, flow, n as i64).await;
    println!("\nsummary");
    let (ok, failed) = runs_line(store, flow).await?;
    let pushes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.app == "line" && r.action == "push_message")
        .collect();
    println!(
        "  LINE: {} messages pushed for {n} failed payments",
        pushes.len()
    );
    if let Some(p) = pushes.first() {
        println!("  the first: {}", p.body["messages"][0]["text"]);
    }
    println!("  a webhook signed an hour ago (a replay) was answered {replayed}");
    let good = failed == 0 && ok == n as i64 && pushes.len() == n && replayed == 401;
    println!(
        "  {}",
        if good {
            "every failed payment was told"
        } else {
            "NOT every failed payment was told"
        }
    );
    Ok(good)
}
