//! `flowbot demo --template table-customers-to-salesforce`: the table 顧客リスト made
//! through the API, customers put in as a Shift_JIS CSV (one bad line refused whole, then
//! fixed) and one by one, each row starting a run in the same write; the Salesforce
//! simulator gets the Accounts (one existed already and is updated) and every row gets its
//! Account's id and status written back by the flow's table step.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use flowbot_core::Apps;
use flowbot_sandbox::salesforce::{self, SalesforceConfig};
use flowbot_store::{Role, RunStatus, Store};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::setup::object;

/// The templates this demo runs.
pub const TEMPLATES: &[&str] = &["table-customers-to-salesforce"];

const TABLE: &str = "顧客リスト";

/// The customers: (email, name, phone).
const CUSTOMERS: &[(&str, &str, &str)] = &[
    ("taro.yamada@example.jp", "山田 太郎", "03-1234-5678"),
    ("hanako.sato@example.jp", "佐藤 花子", "06-2345-6789"),
    ("ichiro.suzuki@example.jp", "鈴木 一郎", ""),
    ("misaki.takahashi@example.jp", "高橋 美咲", "052-345-6789"),
    ("ken.tanaka@example.jp", "田中 健", ""),
    ("yui.ito@example.jp", "伊藤 結衣", "011-456-7890"),
];

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn import(&self, table: &str, csv: &str) -> anyhow::Result<(u16, Value)> {
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(csv);
        let r = self
            .http
            .post(format!("{}/api/v1/tables/{table}/import", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(sjis.into_owned())
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

pub async fn run(
    store: Store,
    apps: Apps,
    dir: &std::path::Path,
    args: &crate::demo::Args,
) -> anyhow::Result<ExitCode> {
    let template_id = TEMPLATES[0];
    let sf = salesforce::start(SalesforceConfig::default(), 0).await?;
    let stop = CancellationToken::new();
    let app = crate::demo::start_server(&store, &apps, &args.bind, args.port, stop.clone()).await?;
    let url = app.url();

    // A member who keeps the list, with a token the script acts through.
    let (password, token) =
        crate::demo_people::demo_member(&store, "daicho", "台帳 係", Role::Editor).await?;
    let api = Api {
        http: reqwest::Client::new(),
        url: url.clone(),
        token,
    };

    // The table, as the template's header asks for it.
    let (status, table) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/tables",
            Some(json!({
                "name": TABLE,
                "columns": [
                    { "key": "email", "label": "メールアドレス", "type": "email", "required": true, "unique": true },
                    { "key": "name", "label": "氏名", "type": "text", "required": true },
                    { "key": "phone", "label": "電話番号", "type": "text" },
                    { "key": "status", "label": "状態", "type": "select", "choices": ["未登録", "登録済み", "エラー"] },
                    { "key": "salesforce_id", "label": "Salesforce ID", "type": "text" }
                ]
            })),
        )
        .await?;
    anyhow::ensure!(status == 201, "the table could not be made: {table}");
    let table_id = table["id"].as_str().context("a table id")?.to_string();

    // The template with its Salesforce connection to the simulator, trigger ON.
    let t = flowbot_connectors::templates::template(template_id).context("embedded")?;
    let flow = flowbot_core::check(t.yaml, &apps)
        .flow
        .with_context(|| format!("template {} does not validate", t.file))?;
    store.import_flow(t.id, &flow.name, t.yaml, "demo").await?;
    let cfg = sf.sim.config();
    let conn = store
        .save_connection(
            "Salesforce (sandbox)",
            "salesforce",
            &object(json!({"my_domain_url": sf.url, "client_id": cfg.client_id,
                           "client_secret": cfg.client_secret})),
            "demo",
        )
        .await?;
    store
        .bind_connection(t.id, "salesforce", &conn.id, "demo")
        .await?;
    store.set_enabled(t.id, true, "demo").await?;
    // One customer is in Salesforce already: their row updates that Account.
    let (existing_email, existing_name, _) = CUSTOMERS[1];
    sf.sim.put_record(
        "Account",
        "001DEMO00000000001",
        object(
            json!({"Id": "001DEMO00000000001", "Name": existing_name, "Mail__c": existing_email}),
        ),
    );

    println!("flowbot demo — {template_id}");
    println!(
        "  web UI:               {url}/tables/{table_id} (user `admin`{}; member `daicho`, password `{password}`)",
        app.generated_admin_password
            .as_deref()
            .map(|p| format!(", password `{p}`"))
            .unwrap_or_default()
    );
    println!("  Salesforce simulator: {}", sf.url);
    println!("  data directory:       {}", dir.display());

    let n = args.customers.clamp(3, CUSTOMERS.len());
    let (by_csv, by_hand) = CUSTOMERS[..n].split_at(n - 1);
    let line = |(email, name, phone): &(&str, &str, &str)| format!("{email},{name},{phone}\r\n");
    let mut csv = String::from("メールアドレス,氏名,電話番号\r\n");
    for (i, c) in by_csv.iter().enumerate() {
        // The first try has a mistyped address on its second line.
        if i == 1 {
            csv.push_str(&line(&(&c.0.replace(".jp", ""), c.1, c.2)));
        } else {
            csv.push_str(&line(c));
        }
    }
    println!(
        "\nimporting {} customers from a Shift_JIS CSV file…",
        by_csv.len()
    );
    let (status, refused) = api.import(&table_id, &csv).await?;
    let problem = &refused["error"]["rows"][0];
    println!(
        "  refused whole ({status}): line {} `{}`: {}",
        problem["index"],
        problem["column"].as_str().unwrap_or(""),
        problem["message"].as_str().unwrap_or("")
    );
    let refused_ok = status == 422 && problem["index"] == 3;
    let fixed: String = std::iter::once("メールアドレス,氏名,電話番号\r\n".to_string())
        .chain(by_csv.iter().map(line))
        .collect();
    let (status, done) = api.import(&table_id, &fixed).await?;
    anyhow::ensure!(status == 200, "the fixed file was refused: {done}");
    println!(
        "  fixed and imported: {} rows, {} runs started",
        done["written"], done["runs"]
    );
    for (email, name, phone) in by_hand {
        let (status, row) = api
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/tables/{table_id}/rows"),
                Some(json!({ "values": { "email": email, "name": name, "phone": phone, "status": "未登録" } })),
            )
            .await?;
        anyhow::ensure!(status == 201, "a row could not be added: {row}");
        println!(
            "  added through the API: row {} ({name})",
            row["_id"].as_str().unwrap_or("")
        );
    }

    let (ok, failed) = settle(&store, t.id).await?;
    let (_, page) = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/tables/{table_id}/rows?limit=100"),
            None,
        )
        .await?;
    println!("\nthe table after the runs:");
    let rows = page["rows"].as_array().cloned().unwrap_or_default();
    let mut written_back = 0;
    for r in &rows {
        let id = r["salesforce_id"].as_str().unwrap_or("");
        let in_sf = sf.sim.records("Account").iter().any(|a| {
            a.get("Id").and_then(Value::as_str) == Some(id) && a.get("Mail__c") == r.get("email")
        });
        if r["status"] == "登録済み" && in_sf {
            written_back += 1;
        }
        println!(
            "  {:>2}  {:<30} {:<10} {:<8} {}",
            r["_id"].as_str().unwrap_or(""),
            r["email"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            id
        );
    }
    let accounts = sf.sim.count("Account");
    println!(
        "\nruns: {ok} succeeded, {failed} failed · Salesforce Accounts: {accounts} (one updated, not doubled) · rows written back: {written_back}/{n}"
    );
    let good = refused_ok && failed == 0 && ok as usize == n && written_back == n && accounts == n;
    println!("{}", if good { "OK" } else { "NOT OK" });

    crate::demo::finish(
        app,
        stop,
        args.once,
        "add rows in the grid (or import a CSV) and watch each become a Salesforce Account.",
        good,
    )
    .await
}

/// Wait until every run of the flow has ended (at most a minute).
async fn settle(store: &Store, flow: &str) -> anyhow::Result<(i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut busy = 0;
        for s in [RunStatus::Queued, RunStatus::Running] {
            busy += store.count_runs(Some(flow), s).await?;
        }
        if busy == 0 || Instant::now() > deadline {
            return Ok((
                store.count_runs(Some(flow), RunStatus::Succeeded).await?,
                store.count_runs(Some(flow), RunStatus::Failed).await?,
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
