//! The `transform` app through the registry, as a worker reaches it: actions called with
//! `Connector::execute`, and a flow of transform steps checked by the validator and run by
//! the runner (which fills in the manifest's defaults).

use std::collections::HashMap;

use flowbot_core::{
    ActionCall, ActionError, ErrorClass, MemoryJournal, RunOutcome, Runner, StepStatus, SystemClock,
};
use serde_json::{json, Value};

async fn run(action: &str, input: Value) -> Result<Value, ActionError> {
    let apps = flowbot_connectors::registry();
    let input = match input {
        Value::Object(m) => m,
        _ => unreachable!("inputs are objects"),
    };
    apps.get("transform")
        .expect("the transform app is built in")
        .execute(ActionCall {
            action,
            input: &input,
            connection: None,
        })
        .await
}

#[tokio::test]
async fn actions_run_through_the_connector() {
    // (action, input, expected output fields)
    let cases = [
        (
            "normalize",
            json!({"text": "ＡＢＣ１２３　テスト", "mode": "zenkaku_to_hankaku"}),
            json!({"text": "ABC123 テスト"}),
        ),
        (
            "regex_extract",
            json!({"text": "ご注文番号：#10023（2点）", "pattern": r"#(?P<no>\d+)"}),
            json!({"value": "10023", "count": 1, "found": true}),
        ),
        (
            "date_parse",
            json!({"date": "令和8年11月30日 14時05分"}),
            json!({"iso": "2026-11-30T14:05:00+09:00", "weekday_ja": "月", "wareki": "令和8年11月30日"}),
        ),
        (
            "business_days_add",
            json!({"date": "2026-12-31", "days": 1}),
            json!({"date": "2027-01-04", "weekday_ja": "月"}),
        ),
        (
            "is_business_day",
            json!({"date": "2026-11-23"}),
            json!({"is_business_day": false, "holiday_name": "勤労感謝の日"}),
        ),
        (
            "number_format",
            json!({"number": "１，２３４．５円", "decimals": 0, "prefix": "¥"}),
            json!({"text": "¥1,235", "number": 1235}),
        ),
        (
            "list_sum",
            json!({"list": [{"price": "¥1,200"}, {"price": 980}, {"price": null}], "field": "price"}),
            json!({"sum": 2180, "count": 2}),
        ),
        (
            "lookup",
            json!({"table": [{"code": "13", "name": "東京都"}], "key": "１３", "normalize": true, "key_field": "code", "value_field": "name"}),
            json!({"value": "東京都", "found": true}),
        ),
    ];
    for (action, input, want) in cases {
        let out = run(action, input.clone())
            .await
            .unwrap_or_else(|e| panic!("{action} {input}: {e}"));
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&out[k], v, "{action}.{k} for {input}");
        }
    }
}

#[tokio::test]
async fn bad_input_is_a_fatal_error_naming_the_input() {
    let e = run(
        "date_add",
        json!({"date": "2026/02/30", "amount": 1, "unit": "days"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(
        e.message
            .starts_with("input `date`: `2026/02/30` is not a real date"),
        "{}",
        e.message
    );
}

const FLOW: &str = r#"
version: 1
id: order-dates
name: 注文データを整える
trigger:
  app: manual
steps:
  - id: name
    app: transform
    action: normalize
    input:
      text: "{{ trigger.name }}"
      mode: halfwidth_kana_to_fullwidth
  - id: ship
    app: transform
    action: business_days_add
    input:
      date: "{{ trigger.ordered }}"
      days: 3
  - id: total
    app: transform
    action: number_format
    input:
      number: "{{ trigger.total }}"
      suffix: 円
  - id: message
    set:
      text: "{{ name.text }}様 {{ ship.wareki }}({{ ship.weekday_ja }})発送 {{ total.text }} {{ trigger.ordered | date_add(1, 'months') }}"
"#;

#[tokio::test]
async fn a_flow_of_transform_steps_validates_and_runs() {
    let apps = flowbot_connectors::registry();
    let checked = flowbot_core::check(FLOW, &apps);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let flow = checked.flow.expect("a valid flow");
    let journal = MemoryJournal::default();
    let runner = Runner {
        flow: &flow,
        apps: &apps,
        connections: &HashMap::new(),
        journal: &journal,
        clock: &SystemClock,
    };
    let trigger = json!({"name": "ﾔﾏﾀﾞ ﾀﾛｳ", "ordered": "2026/12/29", "total": 12800});
    let outcome = runner.run(&trigger, &[]).await.expect("the journal works");
    assert!(matches!(outcome, RunOutcome::Succeeded), "{outcome:?}");
    let records = journal.records();
    let last = records
        .iter()
        .rfind(|r| r.step_id == "message" && r.status == StepStatus::Succeeded)
        .expect("the set step ran");
    assert_eq!(
        last.output.as_ref().unwrap()["text"],
        json!("ヤマダ タロウ様 令和9年1月4日(月)発送 12,800円 2027-01-29")
    );
}

#[test]
fn the_validator_refuses_an_unknown_mode() {
    let apps = flowbot_connectors::registry();
    let bad = FLOW.replace("halfwidth_kana_to_fullwidth", "to_zenkaku");
    let checked = flowbot_core::check(&bad, &apps);
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.message.contains("`to_zenkaku`")),
        "{:?}",
        checked.diagnostics
    );
}
