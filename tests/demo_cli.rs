//! `flowbot demo --once`: the whole sync on a fresh machine, both templates.

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
    assert!(String::from_utf8_lossy(&out.stderr).contains("--template is `search` or `upsert`"));
}
