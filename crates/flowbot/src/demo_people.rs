//! `flowbot demo --template NAME` for the templates with people in the loop: the inquiry
//! form checked by a member before it becomes a Salesforce lead announced in Slack, and
//! the refund request approved by a manager (who sends one back first) and answered by
//! email. Customers answer the real form page; the members asked are real members, told by
//! email (the SMTP sink) and answering through the API as My Tasks does. With `--once` the
//! script decides for them and checks what reached Salesforce, Slack and the mailbox;
//! otherwise it leaves the requests open for you to answer in the web UI.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use flowbot_core::Apps;
use flowbot_sandbox::salesforce::{self, SalesforceConfig};
use flowbot_sandbox::sinks;
use flowbot_store::{Role, RunStatus, Store};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::setup::object;

/// The templates this demo runs.
pub const TEMPLATES: &[&str] = &["inquiry-form-to-salesforce-lead", "refund-request-approval"];

/// The demo's members: (user name, display name, role).
const MEMBERS: &[(&str, &str, Role)] = &[
    ("tantou", "担当 花子", Role::Operator),
    ("joushi", "上長 一郎", Role::Admin),
];

struct Demo<'a> {
    http: reqwest::Client,
    url: String,
    form: String,
    store: &'a Store,
    flow: &'a str,
    tokens: HashMap<&'static str, String>,
}

pub async fn run(
    store: Store,
    apps: Apps,
    dir: &std::path::Path,
    args: &crate::demo::Args,
) -> anyhow::Result<ExitCode> {
    let template_id = TEMPLATES
        .iter()
        .find(|t| **t == args.template)
        .copied()
        .context("not a people template")?;
    let sink = sinks::start(0).await?;
    let sf = salesforce::start(SalesforceConfig::default(), 0).await?;
    let stop = CancellationToken::new();
    let app = crate::demo::start_server(&store, &apps, &args.bind, args.port, stop.clone()).await?;
    let url = app.url();

    // Members, each with a password to sign in and a token the script answers with.
    let mut passwords = Vec::new();
    let mut tokens = HashMap::new();
    for (name, display, role) in MEMBERS {
        let (password, token) = demo_member(&store, name, display, *role).await?;
        tokens.insert(*name, token);
        passwords.push((*name, password));
    }

    // Connections to the simulators, and email notifications through the SMTP sink.
    let mail = store
        .save_connection(
            "メール (sandbox)",
            "email",
            &object(
                json!({"host": "127.0.0.1", "port": sink.sim.smtp_port(), "security": "plain",
                           "from": "support@example.jp"}),
            ),
            "demo",
        )
        .await?;
    store
        .set_setting(
            flowbot_store::notify::NOTIFICATIONS,
            &json!({"channels": [{"app": "email", "connection_id": mail.id}]}),
            "demo",
        )
        .await?;
    let t = flowbot_connectors::templates::template(template_id).context("embedded")?;
    let flow = flowbot_core::check(t.yaml, &apps)
        .flow
        .with_context(|| format!("template {} does not validate", t.file))?;
    let info = store.import_flow(t.id, &flow.name, t.yaml, "demo").await?;
    for slot in &flow.connections {
        let conn = match slot.app.as_str() {
            "email" => mail.clone(),
            "slack" => {
                store
                    .save_connection(
                        "Slack (sandbox)",
                        "slack",
                        &object(json!({"webhook_url": format!("{}/slack/demo", sink.url)})),
                        "demo",
                    )
                    .await?
            }
            "salesforce" => {
                let cfg = sf.sim.config();
                store
                    .save_connection(
                        "Salesforce (sandbox)",
                        "salesforce",
                        &object(json!({"my_domain_url": sf.url, "client_id": cfg.client_id,
                                       "client_secret": cfg.client_secret})),
                        "demo",
                    )
                    .await?
            }
            other => anyhow::bail!("the demo has no connection for `{other}`"),
        };
        store
            .bind_connection(t.id, &slot.name, &conn.id, "demo")
            .await?;
    }
    store.set_enabled(t.id, true, "demo").await?;
    let form = format!("{url}/forms/{}/{}", t.id, info.webhook_token);

    println!("flowbot demo — {template_id}");
    println!("  form (for customers): {form}");
    println!(
        "  web UI:               {url}/ (user `admin`{})",
        app.generated_admin_password
            .as_deref()
            .map(|p| format!(", password `{p}`"))
            .unwrap_or_default()
    );
    for (name, password) in &passwords {
        println!("  member:               `{name}`, password `{password}` — My Tasks: {url}/tasks");
    }
    println!(
        "  mail and Slack seen:  {0}/__control/mails, {0}/__control/slack",
        sink.url
    );
    println!("  data directory:       {}", dir.display());

    let demo = Demo {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        url: url.clone(),
        form,
        store: &store,
        flow: t.id,
        tokens,
    };
    let n = args.customers.clamp(1, 6);
    let ok = if template_id == "inquiry-form-to-salesforce-lead" {
        inquiries(&demo, n, args.once, &sf.sim, &sink.sim).await?
    } else {
        refunds(&demo, n, args.once, &sink.sim).await?
    };
    crate::demo::finish(
        app,
        stop,
        args.once,
        "sign in as a member and answer in My Tasks, or send the form again.",
        ok,
    )
    .await
}

const PEOPLE: &[(&str, &str, &str, &str)] = &[
    ("株式会社サンプル", "山田", "太郎", "taro.yamada@example.jp"),
    ("合同会社テスト", "佐藤", "花子", "hanako.sato@example.jp"),
    ("有限会社デモ", "鈴木", "一郎", "ichiro.suzuki@example.jp"),
    (
        "株式会社ためし",
        "高橋",
        "美咲",
        "misaki.takahashi@example.jp",
    ),
    (
        "一般社団法人れい",
        "田中",
        "健太",
        "kenta.tanaka@example.jp",
    ),
    ("株式会社みほん", "伊藤", "陽菜", "hina.ito@example.jp"),
];

impl Demo<'_> {
    /// Answer the form as a customer would: the page, then the post.
    async fn answer(&self, pairs: &[(&str, String)]) -> anyhow::Result<()> {
        let page = self.http.get(&self.form).send().await?.text().await?;
        let submission = page
            .split("name=\"_submission\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_string();
        let mut body: Vec<(&str, String)> = pairs.to_vec();
        body.push(("_submission", submission));
        let r = self.http.post(&self.form).form(&body).send().await?;
        anyhow::ensure!(r.status() == 303, "the form answered {}", r.status());
        Ok(())
    }

    /// Wait until `n` requests are open for `who` (at most 30 s).
    async fn open_for(&self, who: &str, n: usize) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: Value = self
                .http
                .get(format!("{}/api/v1/tasks", self.url))
                .bearer_auth(&self.tokens[who])
                .send()
                .await?
                .json()
                .await?;
            let list = v.as_array().cloned().unwrap_or_default();
            if list.len() >= n || Instant::now() > deadline {
                return Ok(list);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn decide(&self, who: &str, id: &str, body: Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/api/v1/tasks/{id}/decision", self.url))
            .bearer_auth(&self.tokens[who])
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "{who}'s decision: {}", r.text().await?);
        println!("  {who}: {}", body["decision"].as_str().unwrap_or(""));
        Ok(())
    }

    /// Wait until every run of the flow has ended (at most a minute).
    async fn settle(&self) -> anyhow::Result<(i64, i64)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let busy = self
                .store
                .count_runs(Some(self.flow), RunStatus::Queued)
                .await?
                + self
                    .store
                    .count_runs(Some(self.flow), RunStatus::Running)
                    .await?
                + self
                    .store
                    .count_runs(Some(self.flow), RunStatus::Waiting)
                    .await?;
            if busy == 0 || Instant::now() > deadline {
                let ok = self
                    .store
                    .count_runs(Some(self.flow), RunStatus::Succeeded)
                    .await?;
                let failed = self
                    .store
                    .count_runs(Some(self.flow), RunStatus::Failed)
                    .await?;
                return Ok((ok, failed));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn inquiries(
    d: &Demo<'_>,
    n: usize,
    once: bool,
    sf: &flowbot_sandbox::salesforce::SalesforceSim,
    sink: &sinks::Sinks,
) -> anyhow::Result<bool> {
    for (company, last, first, email) in PEOPLE.iter().take(n) {
        d.answer(&[
            ("company", company.to_string()),
            ("last_name", last.to_string()),
            ("first_name", first.to_string()),
            ("email", email.to_string()),
            ("phone", "03-1234-5678".into()),
            ("topic", "見積依頼".into()),
            (
                "body",
                format!("{company}です。{n}名分の見積をお願いします。"),
            ),
        ])
        .await?;
    }
    println!("\n{n} inquiries sent through the form; each waits for tantou in My Tasks");
    if !once {
        return Ok(true);
    }
    let open = d.open_for("tantou", n).await?;
    for (i, req) in open.iter().enumerate() {
        let rating = ["Hot", "Warm", "Cold"][i % 3];
        d.decide(
            "tantou",
            req["id"].as_str().unwrap_or_default(),
            json!({"decision": "complete", "comment": "確認しました",
                   "answers": {"rating": rating, "note": "折り返し電話済み"}}),
        )
        .await?;
    }
    let (ok, failed) = d.settle().await?;
    let leads = sf.records("Lead");
    let slack = sink.slack_messages();
    let told = sink
        .mails()
        .iter()
        .filter(|m| m.to.iter().any(|t| t.contains("tantou")))
        .count();
    println!("\nsummary");
    println!("  runs:                 {ok} succeeded, {failed} failed");
    println!("  Salesforce leads:     {}", leads.len());
    println!("  Slack messages:       {}", slack.len());
    println!("  requests emailed to tantou: {told}");
    Ok(failed == 0 && ok == n as i64 && leads.len() == n && slack.len() == n && told == n)
}

async fn refunds(d: &Demo<'_>, n: usize, once: bool, sink: &sinks::Sinks) -> anyhow::Result<bool> {
    for (i, (_, last, first, email)) in PEOPLE.iter().take(n).enumerate() {
        d.answer(&[
            ("order_no", format!("A-{:05}", 10001 + i)),
            ("name", format!("{last} {first}")),
            ("email", email.to_string()),
            ("amount", format!("{}", 1000 * (i + 1))),
            ("reason", "商品が破損していました".into()),
        ])
        .await?;
    }
    println!("\n{n} refund requests sent through the form; each waits for tantou, then joushi");
    if !once {
        return Ok(true);
    }
    // The desk checks each request.
    for req in d.open_for("tantou", n).await? {
        d.decide(
            "tantou",
            req["id"].as_str().unwrap_or_default(),
            json!({"decision": "complete", "answers": {"refund": 1000, "memo": "注文を確認済み"}}),
        )
        .await?;
    }
    // The manager sends the first back once, approves the rest but the last.
    let asked = d.open_for("joushi", n).await?;
    let first = asked.first().context("no approval reached joushi")?;
    d.decide(
        "joushi",
        first["id"].as_str().unwrap_or_default(),
        json!({"decision": "send_back", "comment": "送料分も含めて再計算してください"}),
    )
    .await?;
    let again = d.open_for("tantou", 1).await?;
    let back = again
        .first()
        .context("the sent-back request did not return to tantou")?;
    let resent = back["message"]
        .as_str()
        .unwrap_or_default()
        .contains("送料分");
    d.decide(
        "tantou",
        back["id"].as_str().unwrap_or_default(),
        json!({"decision": "complete", "answers": {"refund": 1500, "memo": "送料込みに修正"}}),
    )
    .await?;
    let asked = d.open_for("joushi", n).await?;
    for (i, req) in asked.iter().enumerate() {
        let last = i + 1 == asked.len() && asked.len() > 1;
        let body = if last {
            json!({"decision": "reject", "comment": "購入から30日を過ぎています"})
        } else {
            json!({"decision": "approve"})
        };
        d.decide("joushi", req["id"].as_str().unwrap_or_default(), body)
            .await?;
    }
    let (ok, failed) = d.settle().await?;
    let mails = sink.mails();
    let to_customers = mails
        .iter()
        .filter(|m| m.to.iter().any(|t| PEOPLE.iter().any(|p| t.contains(p.3))))
        .count();
    println!("\nsummary");
    println!("  runs:                 {ok} succeeded, {failed} failed");
    println!(
        "  sent back and checked again: {}",
        if resent { "yes" } else { "no" }
    );
    println!("  emails to customers:  {to_customers}");
    println!(
        "  emails in all (requests to members included): {}",
        mails.len()
    );
    Ok(failed == 0 && ok == n as i64 && resent && to_customers == n)
}

/// A demo's member: a random password to sign in with, and an API token the script acts
/// through. Returns (password, token).
pub(crate) async fn demo_member(
    store: &flowbot_store::Store,
    name: &str,
    display: &str,
    role: flowbot_store::Role,
) -> anyhow::Result<(String, String)> {
    let password = flowbot_server::auth::random_token()[..16].to_string();
    let mut new =
        flowbot_store::NewUser::basic(name, &flowbot_server::auth::hash_password(&password), role);
    new.display_name = display.to_string();
    new.email = format!("{name}@example.jp");
    new.language = "ja".into();
    let user = store.create_user(new, "demo").await?;
    let token = format!("fbt_{}", flowbot_server::auth::random_token());
    store
        .create_api_token(
            &user,
            "demo",
            false,
            &flowbot_server::auth::token_hash(&token),
            "demo",
        )
        .await?;
    Ok((password, token))
}
