//! `flowbot demo --once`: each template run end to end on a fresh machine against the simulators.

use std::process::Command;

fn demo(template: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowbot"))
        .args([
            "demo",
            "--once",
            "--port",
            "0",
            "--customers",
            "6",
            "--template",
            template,
        ])
        .output()
        .expect("run flowbot demo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_demo_syncs_every_customer_with_the_search_template() {
    let (ok, out) = demo("search");
    assert!(ok, "{out}");
    assert!(out.contains("customers in sync: 6 of 6"), "{out}");
    assert!(out.contains("0 failed, 0 not finished"), "{out}");
    assert!(out.contains("Salesforce: 6 Accounts; 6 created"), "{out}");
    assert!(out.trim_end().ends_with("everything synced"), "{out}");
}

#[test]
fn the_demo_syncs_every_customer_with_the_upsert_template() {
    let (ok, out) = demo("upsert");
    assert!(ok, "{out}");
    assert!(out.contains("customers in sync: 6 of 6"), "{out}");
    assert!(out.contains("0 created, 0 updated"), "{out}");
}

#[test]
fn an_unknown_template_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowbot"))
        .args(["demo", "--once", "--port", "0", "--template", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--template is `search`, `upsert`, `shopify-customer-to-kintone`"));
}

#[test]
fn the_demo_syncs_shopify_customers_into_kintone() {
    let (ok, out) = demo("shopify-customer-to-kintone");
    assert!(ok, "{out}");
    assert!(
        out.contains("kintone: 6 records for 6 Shopify customers; 6 in sync"),
        "{out}"
    );
    assert!(
        out.contains("a webhook with a forged signature was answered 401"),
        "{out}"
    );
}

#[test]
fn the_demo_tells_line_of_every_failed_stripe_payment() {
    let (ok, out) = demo("stripe-payment-failed-to-line");
    assert!(ok, "{out}");
    assert!(
        out.contains("LINE: 6 messages pushed for 6 failed payments"),
        "{out}"
    );
    assert!(out.contains("(a replay) was answered 401"), "{out}");
}
