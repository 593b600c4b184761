//! `flowbot backfill` and `flowbot reconcile` against the simulators: a backfill killed after
//! its first batch resumes without repeating it, and reconcile finds exactly the records that
//! were corrupted or deleted behind flowbot's back, and repairs them.

#[path = "../crates/flowbot/src/setup.rs"]
mod setup;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use flowbot_sandbox::{ecforce, salesforce};
use flowbot_store::{Store, StoreConfig};
use serde_json::{json, Map, Value};
use setup::{install_template, SyncApps};

const FLOW: &str = "ecforce-customer-to-salesforce-upsert";
const CUSTOMERS: usize = 450;

fn flowbot(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowbot"));
    c.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("DATABASE_URL");
    c
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Customer ids named on the report's `missing`/`differs` lines.
fn named(report: &str, kind: &str) -> BTreeSet<String> {
    report
        .lines()
        .filter_map(|l| l.trim().strip_prefix(kind))
        .filter_map(|l| l.trim().strip_prefix("customer "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backfill_resumes_and_reconcile_repairs_drift() {
    let (sf, ec, dir) = world(CUSTOMERS, 0, Default::default()).await;

    // Salesforce calls at most every 400 ms: the kill after the first saved batch lands
    // well before the second call.
    let mut first = flowbot(dir.path(), &["backfill", FLOW, "--calls-per-minute", "150"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(first.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let saved = line.starts_with("batch 1 saved");
        seen.push(line);
        if saved {
            first.kill().unwrap();
            break;
        }
    }
    first.wait().unwrap();
    assert!(
        seen.iter().any(|l| l.starts_with("batch 1 saved")),
        "{seen:?}"
    );
    let calls = |op: &str| sf.sim.stats()["calls"][op].as_u64().unwrap_or(0);
    assert_eq!(calls("collection_upsert"), 1, "killed after one batch");
    assert_eq!(sf.sim.records("Account").len(), 200);

    let resumed = flowbot(dir.path(), &["backfill", FLOW]).output().unwrap();
    let report = stdout(&resumed);
    assert!(
        resumed.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("resuming"),
        "the second run resumes"
    );
    assert!(
        report.contains(&format!(
            "customers synced:   {CUSTOMERS} ({CUSTOMERS} created, 0 updated)"
        )),
        "every customer synced once, none twice: {report}"
    );
    assert_eq!(
        calls("collection_upsert") as usize,
        CUSTOMERS.div_ceil(200),
        "ceil(customers / 200) Salesforce calls"
    );
    let listing = ec.sim.stats()["calls"]["list_customers"].as_u64().unwrap();
    assert_eq!(
        sf.sim.stats()["api_usage"].as_u64().unwrap() as usize,
        CUSTOMERS.div_ceil(200),
        "no other Salesforce API call: {}",
        sf.sim.stats()
    );
    assert!(listing >= (CUSTOMERS as u64).div_ceil(100), "{listing}");
    let accounts = sf.sim.records("Account");
    assert_eq!(accounts.len(), CUSTOMERS);
    let keys: BTreeSet<_> = accounts
        .iter()
        .map(|a| a["Ecforce_Customer_Id__c"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), CUSTOMERS, "one Account per customer");

    // Nothing to do when in sync.
    let clean = flowbot(dir.path(), &["reconcile", FLOW]).output().unwrap();
    assert!(clean.status.success(), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("everything is in sync"));

    // Drift behind flowbot's back: 10 records changed, 5 deleted.
    let mut changed = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for (i, a) in accounts.iter().enumerate().take(15) {
        let id = a["Id"].as_str().unwrap();
        let customer = a["Ecforce_Customer_Id__c"].as_str().unwrap().to_string();
        if i < 10 {
            let field = if i % 2 == 0 { "Name" } else { "Mail__c" };
            let mut m = Map::new();
            m.insert(field.into(), json!("tampered"));
            sf.sim.put_record("Account", id, m);
            changed.insert(customer);
        } else {
            sf.sim.delete_record_quietly("Account", id);
            deleted.insert(customer);
        }
    }
    let found = flowbot(dir.path(), &["reconcile", FLOW]).output().unwrap();
    let report = stdout(&found);
    assert_eq!(found.status.code(), Some(1), "drift is a failure: {report}");
    assert_eq!(named(&report, "differs"), changed, "{report}");
    assert_eq!(named(&report, "missing"), deleted, "{report}");
    assert!(report.contains("Salesforce has \"tampered\""), "{report}");

    let fixed = flowbot(dir.path(), &["reconcile", FLOW, "--fix"])
        .output()
        .unwrap();
    assert!(fixed.status.success(), "{}", stdout(&fixed));
    assert!(
        stdout(&fixed).contains("repaired: 15"),
        "{}",
        stdout(&fixed)
    );
    let again = flowbot(dir.path(), &["reconcile", FLOW]).output().unwrap();
    assert!(again.status.success(), "{}", stdout(&again));
    assert!(stdout(&again).contains("everything is in sync"));
    assert_eq!(sf.sim.records("Account").len(), CUSTOMERS);
}

/// The simulators with `n` customers, the upsert template installed in a fresh store.
async fn world(
    n: usize,
    long_names: usize,
    sf_cfg: salesforce::SalesforceConfig,
) -> (
    flowbot_sandbox::Running<salesforce::SalesforceSim>,
    flowbot_sandbox::Running<ecforce::EcforceSim>,
    tempfile::TempDir,
) {
    let sf = salesforce::start(sf_cfg, 0).await.unwrap();
    let ec = ecforce::start(Default::default(), 0).await.unwrap();
    for i in 0..n {
        // Account.Name takes 255 characters: these customers Salesforce refuses.
        let name = if i < long_names {
            "長".repeat(300)
        } else {
            format!("{i}")
        };
        let fields: Map<String, Value> = json!({
            "email": format!("c{i}@example.jp"), "name01": "顧客", "name02": name,
        })
        .as_object()
        .cloned()
        .unwrap();
        ec.sim.create_customer(&fields);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    install_template(
        &store,
        &flowbot_connectors::registry(),
        FLOW,
        &SyncApps::sandbox(&ec, &sf),
        "test",
    )
    .await
    .unwrap();
    drop(store);
    (sf, ec, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_saves_the_batch_and_says_how_to_resume_and_every_failure_is_kept() {
    let (sf, _ec, dir) = world(450, 25, Default::default()).await;
    let failures = dir.path().join("failed.jsonl");
    let failures_arg = failures.to_str().unwrap().to_string();
    let mut first = flowbot(
        dir.path(),
        &[
            "backfill",
            FLOW,
            "--calls-per-minute",
            "150",
            "--failures-out",
            &failures_arg,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = BufReader::new(first.stderr.take().unwrap());
    // Read to the end: the summary still writes to standard error after the signal.
    for line in stderr.lines().map_while(Result::ok) {
        if line.starts_with("batch 1 saved") {
            // SAFETY: kill(2) with the child's own pid.
            unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
        }
    }
    let out = first.wait_with_output().unwrap();
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "stopped early: {report}");
    assert!(report.contains("stopped early: interrupted"), "{report}");
    assert!(
        report.contains(&format!("to resume: flowbot backfill {FLOW}")),
        "{report}"
    );
    let calls = |op: &str| sf.sim.stats()["calls"][op].as_u64().unwrap_or(0);
    assert_eq!(
        calls("collection_upsert"),
        1,
        "the batch in flight finished, no more"
    );

    let resumed = flowbot(
        dir.path(),
        &["backfill", FLOW, "--failures-out", &failures_arg],
    )
    .output()
    .unwrap();
    let report = stdout(&resumed);
    assert_eq!(
        resumed.status.code(),
        Some(1),
        "25 customers failed: {report}"
    );
    assert!(report.contains("customers failed:   25"), "{report}");
    assert!(report.contains("… and 5 more"), "{report}");
    let kept = std::fs::read_to_string(&failures).unwrap();
    assert_eq!(kept.lines().count(), 25, "every failure in the file");
    assert!(kept.contains("STRING_TOO_LONG"), "{kept}");
    assert_eq!(sf.sim.records("Account").len(), 425);

    // Reconcile: the 25 are drift until a repair finds Salesforce refuses them; from then
    // on they are listed apart, and everything that can be in sync is.
    let before = flowbot(dir.path(), &["reconcile", FLOW]).output().unwrap();
    assert_eq!(before.status.code(), Some(1), "{}", stdout(&before));
    let fix = flowbot(dir.path(), &["reconcile", FLOW, "--fix"])
        .output()
        .unwrap();
    let report = stdout(&fix);
    assert_eq!(fix.status.code(), Some(0), "{report}");
    assert_eq!(
        report.matches("cannot be synced: customer").count(),
        25,
        "{report}"
    );
    let after = flowbot(dir.path(), &["reconcile", FLOW]).output().unwrap();
    let report = stdout(&after);
    assert_eq!(after.status.code(), Some(0), "{report}");
    assert!(
        report.contains("cannot be synced (Salesforce refuses them"),
        "{report}"
    );
    assert_eq!(
        report.matches("    refused   customer").count(),
        25,
        "{report}"
    );
    assert!(report.contains("missing in Salesforce: 0"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_out_of_budget_says_what_it_repaired_and_counts_every_page() {
    // Queries answer 100 records a page: reading 300 Accounts takes three calls.
    let cfg = salesforce::SalesforceConfig {
        query_batch_size: 100,
        ..Default::default()
    };
    let (sf, _ec, dir) = world(300, 0, cfg).await;
    let done = flowbot(dir.path(), &["backfill", FLOW]).output().unwrap();
    assert!(done.status.success(), "{}", stdout(&done));
    // 250 records deleted behind flowbot's back: two collection calls to repair.
    for a in sf.sim.records("Account").iter().take(250) {
        sf.sim
            .delete_record_quietly("Account", a["Id"].as_str().unwrap());
    }
    let usage = || sf.sim.stats()["api_usage"].as_u64().unwrap();
    let before = usage();
    // Budget 2: the read (one query of one page now: 50 records) and one repair call.
    let out = flowbot(
        dir.path(),
        &["reconcile", FLOW, "--fix", "--max-api-calls", "2"],
    )
    .output()
    .unwrap();
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert!(report.contains("repaired: 200"), "{report}");
    assert!(report.contains("stopped early"), "{report}");
    assert!(report.contains("200 of 250 repaired so far"), "{report}");
    assert!(report.contains("to resume: flowbot reconcile"), "{report}");
    assert_eq!(usage() - before, 2, "the budget held");
    // Now 250 records: the read takes three pages, so a budget of 3 leaves nothing for
    // a repair and the run says so rather than overspending.
    let before = usage();
    let out = flowbot(
        dir.path(),
        &["reconcile", FLOW, "--fix", "--max-api-calls", "3"],
    )
    .output()
    .unwrap();
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert!(report.contains("repaired: 0"), "{report}");
    assert_eq!(usage() - before, 3, "three pages read, no repair: {report}");
    let out = flowbot(dir.path(), &["reconcile", FLOW, "--fix"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("repaired: 50"), "{}", stdout(&out));
    assert_eq!(sf.sim.records("Account").len(), 300);
}
