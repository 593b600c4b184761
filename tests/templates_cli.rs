//! The built-in customer-sync templates, run by the real binary (`flowbot run
//! --connections`) against the ecforce and Salesforce simulators on loopback.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use flowbot_sandbox::ecforce::{self, EcforceConfig, EcforceSim};
use flowbot_sandbox::salesforce::{self, SalesforceConfig, SalesforceSim};
use flowbot_sandbox::Running;
use serde_json::{json, Map, Value};

const SEARCH: &str = "flows/ecforce-customer-to-salesforce.yaml";
const UPSERT: &str = "flows/ecforce-customer-to-salesforce-upsert.yaml";

struct Sandbox {
    ec: Running<EcforceSim>,
    sf: Running<SalesforceSim>,
    dir: tempfile::TempDir,
}

async fn sandbox() -> Sandbox {
    let ec = ecforce::start(EcforceConfig::default(), 0).await.unwrap();
    let sf = salesforce::start(SalesforceConfig::default(), 0)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Secrets come from the environment (`env:NAME`), as a user keeps them out of files.
    let connections = format!(
        "ecforce:\n  base_url: {}\n  access_token: env:TEST_ECF_TOKEN\nsalesforce:\n  my_domain_url: {}\n  client_id: {}\n  client_secret: env:TEST_SF_SECRET\n",
        ec.url,
        sf.url,
        sf.sim.config().client_id
    );
    std::fs::write(dir.path().join("connections.yaml"), connections).unwrap();
    Sandbox { ec, sf, dir }
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn customer(name01: &str, name02: &str, email: &str) -> Map<String, Value> {
    fields(
        json!({"email": email, "name01": name01, "name02": name02, "kana01": "ヤマダ", "kana02": "タロウ", "prefecture_id": 13}),
    )
}

impl Sandbox {
    fn ec(&self) -> &Arc<EcforceSim> {
        &self.ec.sim
    }

    /// Run a template for one ecforce customer event; returns the run record.
    async fn run(&self, flow: &str, customer_id: &str, event: &str) -> Value {
        let payload = self.dir.path().join("payload.json");
        std::fs::write(
            &payload,
            json!({"event": event, "customer_id": customer_id, "body": {"id": customer_id}})
                .to_string(),
        )
        .unwrap();
        let flow = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(flow);
        let connections = self.dir.path().join("connections.yaml");
        let ec_token = self.ec.sim.config().access_token.clone();
        let sf_secret = self.sf.sim.config().client_secret.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_flowbot"))
                .arg("run")
                .arg(flow)
                .arg("--payload")
                .arg(payload)
                .arg("--connections")
                .arg(connections)
                .args(["--json", "--no-retry"])
                .env("TEST_ECF_TOKEN", ec_token)
                .env("TEST_SF_SECRET", sf_secret)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&stdout).unwrap_or_else(|_| {
            panic!(
                "no run record: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn accounts(&self) -> Vec<Map<String, Value>> {
        self.sf.sim.records("Account")
    }
}

fn step<'a>(run: &'a Value, path: &str) -> Option<&'a Value> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_template_creates_then_updates() {
    let s = sandbox().await;
    let id = s
        .ec()
        .create_customer(&customer("山田", "太郎", "taro@example.com"))
        .to_string();
    let first = s.run(SEARCH, &id, "customer_created").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(step(&first, "branch").unwrap()["lane"], "then");
    assert_eq!(
        step(&first, "customer").unwrap()["output"]["full_name"],
        "山田 太郎"
    );
    let accounts = s.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        (accounts[0]["Name"].clone(), accounts[0]["Mail__c"].clone()),
        (json!("山田 太郎"), json!("taro@example.com"))
    );

    s.ec()
        .update_customer(id.parse().unwrap(), &fields(json!({"name02": "花子"})));
    let second = s.run(SEARCH, &id, "customer_updated").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(step(&second, "branch").unwrap()["lane"], "else");
    assert!(step(&second, "create").is_none());
    let accounts = s.accounts();
    assert_eq!(accounts.len(), 1, "updated, not created again");
    assert_eq!(accounts[0]["Name"], "山田 花子");
    // Secrets stay out of the run record.
    assert!(!second
        .to_string()
        .contains(&s.sf.sim.config().client_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upsert_template_needs_one_salesforce_call_and_survives_an_email_change() {
    let s = sandbox().await;
    let id = s
        .ec()
        .create_customer(&customer("佐藤", "一郎", "ichiro@example.com"))
        .to_string();
    let first = s.run(UPSERT, &id, "customer_created").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(step(&first, "upsert").unwrap()["output"]["created"], true);
    s.ec().update_customer(
        id.parse().unwrap(),
        &fields(json!({"email": "ichiro.sato@example.com"})),
    );
    let second = s.run(UPSERT, &id, "customer_updated").await;
    assert_eq!(step(&second, "upsert").unwrap()["output"]["created"], false);
    let accounts = s.accounts();
    assert_eq!(
        accounts.len(),
        1,
        "still one Account after the email change"
    );
    assert_eq!(accounts[0]["Mail__c"], "ichiro.sato@example.com");
    assert_eq!(accounts[0]["Ecforce_Customer_Id__c"], id.as_str());
    let calls = s.sf.sim.stats()["calls"].clone();
    assert_eq!(
        calls,
        json!({"upsert": 2}),
        "one Salesforce call per synced customer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_template_makes_a_second_account_when_the_email_changes() {
    // The known limitation of matching by email, documented in the template.
    let s = sandbox().await;
    let id = s
        .ec()
        .create_customer(&customer("鈴木", "次郎", "jiro@example.com"))
        .to_string();
    s.run(SEARCH, &id, "customer_created").await;
    s.ec().update_customer(
        id.parse().unwrap(),
        &fields(json!({"email": "jiro.suzuki@example.com"})),
    );
    let second = s.run(SEARCH, &id, "customer_updated").await;
    assert_eq!(step(&second, "branch").unwrap()["lane"], "then");
    assert_eq!(s.accounts().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_customers_fail_with_a_clear_error_and_write_nothing() {
    let s = sandbox().await;
    let no_email = s
        .ec()
        .create_customer(&customer("名無", "権兵衛", ""))
        .to_string();
    let long_name = s
        .ec()
        .create_customer(&customer(&"長".repeat(300), "太郎", "long@example.com"))
        .to_string();
    let bad_email = s
        .ec()
        .create_customer(&customer("山田", "三郎", "not-an-email"))
        .to_string();
    let cases = [
        (
            no_email.as_str(),
            "search",
            "the customer’s email (customer.email) is empty",
        ),
        (long_name.as_str(), "create", "STRING_TOO_LONG"),
        (bad_email.as_str(), "create", "INVALID_EMAIL_ADDRESS"),
        (
            "999",
            "customer",
            "ecforce: customer 999 was not found (404)",
        ),
    ];
    for (id, failed_step, needle) in cases {
        let run = s.run(SEARCH, id, "customer_created").await;
        assert_eq!(run["status"], "failed", "{run}");
        assert_eq!(run["error"]["step"], failed_step, "{run}");
        let message = run["error"]["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    let run = s.run(SEARCH, &long_name, "customer_created").await;
    assert_eq!(run["error"]["error"]["fields"], json!(["Name"]));
    assert!(
        s.accounts().is_empty(),
        "nothing half-written in Salesforce"
    );
}
