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

#[test]
fn the_demo_turns_inquiries_checked_by_a_member_into_leads() {
    let (ok, out) = demo("inquiry-form-to-salesforce-lead");
    assert!(ok, "{out}");
    assert!(
        out.contains("runs:                 6 succeeded, 0 failed"),
        "{out}"
    );
    assert!(out.contains("Salesforce leads:     6"), "{out}");
    assert!(out.contains("Slack messages:       6"), "{out}");
    assert!(out.contains("requests emailed to tantou: 6"), "{out}");
}

#[test]
fn the_demo_approves_refunds_after_one_send_back_and_answers_by_mail() {
    let (ok, out) = demo("refund-request-approval");
    assert!(ok, "{out}");
    assert!(out.contains("joushi: send_back"), "{out}");
    assert!(out.contains("joushi: reject"), "{out}");
    assert!(out.contains("sent back and checked again: yes"), "{out}");
    assert!(out.contains("emails to customers:  6"), "{out}");
    // 6 customers; 6 + 1 (sent back) requests to the desk, 6 + 1 to the manager.
    assert!(
        out.contains("emails in all (requests to members included): 20"),
        "{out}"
    );
}

#[test]
fn the_demo_fills_a_table_whose_rows_become_accounts_written_back() {
    let (ok, out) = demo("table-customers-to-salesforce");
    assert!(ok, "{out}");
    assert!(out.contains("refused whole (422): line 3 `email`"), "{out}");
    assert!(
        out.contains("fixed and imported: 5 rows, 5 runs started"),
        "{out}"
    );
    assert!(
        out.contains("runs: 6 succeeded, 0 failed · Salesforce Accounts: 6"),
        "{out}"
    );
    assert!(out.contains("rows written back: 6/6"), "{out}");
}

#[test]
fn the_demo_reads_inquiry_mails_with_ai_and_tells_slack_tidied() {
    let (ok, out) = demo("mail-inquiry-ai-to-slack");
    assert!(ok, "{out}");
    // The three charsets decoded, full-width digits and half-width kana tidied.
    assert!(
        out.contains(
            "ヤマダ タロウ 様（taro.yamada@example.jp）電話 03-1234-5678・注文番号 AB-12345"
        ),
        "{out}"
    );
    assert!(out.contains("佐藤 花子 様"), "{out}");
    assert!(out.contains("スズキ イチロウ 様"), "{out}");
    // The mail sent twice and the newsletter started no run.
    assert!(
        out.contains("runs: 3 succeeded, 0 failed · Slack messages: 3 for 3 inquiries"),
        "{out}"
    );
}
