//! Rendering and condition evaluation meet whatever a webhook sends: they may refuse it, but
//! they must never panic.

use flowbot_core::condition::{compare, evaluate};
use flowbot_core::model::{Condition, Operator};
use flowbot_core::template::{render_str, render_value, Scope};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("0"),
            Just("1e3"),
            Just(" 42 "),
            Just("NaN"),
            Just("-0"),
            Just("{{")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Templates built from pieces that exercise filters, lookups and syntax errors.
fn arb_template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{ v }}".to_string()),
        Just("{{ v.a }}".to_string()),
        Just("{{ v[0] }}".to_string()),
        Just("{{ v | json }}".to_string()),
        Just("{{ v | default('x') | trim }}".to_string()),
        Just("{{ v | truncate(3) }}".to_string()),
        Just("{{ v | date_format('%Y', tz='Asia/Tokyo') }}".to_string()),
        Just("{{ v | date_parse }}".to_string()),
        Just("{{ v | soql_quote }}".to_string()),
        Just("{{ v | split(',') | join('/') }}".to_string()),
        Just("{{ v | length }}".to_string()),
        Just("{{ v + 1 }}".to_string()),
        Just("{% for x in v %}{{ x }}{% endfor %}".to_string()),
        Just("{{ v ".to_string()),
        Just("{% if %}".to_string()),
        ".{0,8}".prop_map(|s| s),
    ];
    prop::collection::vec(piece, 1..4).prop_map(|p| p.concat())
}

fn scope(v: Value) -> Scope {
    let mut s = Scope::new();
    s.insert("v".to_string(), v);
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn rendering_never_panics(v in arb_json(), t in arb_template()) {
        let s = scope(v.clone());
        let _ = render_str(&t, &s);
        let _ = render_value(&json!({ "a": t, "b": [v] }), &s);
    }

    #[test]
    fn comparing_never_panics(a in arb_json(), b in arb_json(), i in 0usize..13) {
        let op = Operator::ALL[i];
        let _ = compare(&a, op, &b);
        let cond = Condition::All(vec![
            Condition::Compare { value: json!("{{ v }}"), op, to: Some(b.clone()) },
            Condition::Any(vec![Condition::Compare { value: a, op, to: Some(json!("{{ v.x }}")) }]),
        ]);
        let _ = evaluate(&cond, &scope(b));
    }

    #[test]
    fn equality_is_symmetric(a in arb_json(), b in arb_json()) {
        prop_assert_eq!(compare(&a, Operator::Equals, &b), compare(&b, Operator::Equals, &a));
    }
}

/// Flow files assembled from plausible and broken fragments.
fn arb_flow_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("version: 1\n"),
        Just("id: f\n"),
        Just("name: n\n"),
        Just("trigger: { app: manual }\n"),
        Just("steps:\n"),
        Just("  - id: a\n    set: { x: \"{{ trigger.y }}\" }\n"),
        Just("  - id: b\n    branch:\n      if: { value: 1, op: equals, to: 1 }\n      then: []\n"),
        Just("  - id: c\n    for_each: { items: [1], steps: [ { id: d, wait: 1s } ] }\n"),
        Just("  - id: e\n    app: http\n    action: get\n    input: { url: \"{{ a.x }}\" }\n"),
        Just("  - &anchor { id: z }\n"),
        Just("  - !!tag x\n"),
        Just("  -\n"),
        Just("[\n"),
        Just(": :\n"),
        Just("\t\n"),
    ];
    prop::collection::vec(line, 0..10).prop_map(|l| l.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn checking_any_file_never_panics(text in arb_flow_text(), noise in ".{0,20}") {
        let mut apps = flowbot_core::Apps::new();
        apps.add(std::sync::Arc::new(ManualOnly::new()));
        let _ = flowbot_core::check(&text, &apps);
        let _ = flowbot_core::check(&format!("{text}{noise}"), &apps);
    }
}

struct ManualOnly(flowbot_core::manifest::AppManifest);

impl ManualOnly {
    fn new() -> Self {
        use flowbot_core::manifest::{AppManifest, Text, TriggerSpec};
        ManualOnly(AppManifest {
            id: "manual".into(),
            name: Text::new("m", "m"),
            description: Text::new("", ""),
            connection: vec![],
            triggers: vec![TriggerSpec {
                id: "run".into(),
                name: Text::new("r", "r"),
                options: vec![],
                outputs: vec![],
                polling: false,
                setup: None,
            }],
            actions: vec![],
        })
    }
}

#[async_trait::async_trait]
impl flowbot_core::Connector for ManualOnly {
    fn manifest(&self) -> &flowbot_core::manifest::AppManifest {
        &self.0
    }
    async fn execute(
        &self,
        _: flowbot_core::ActionCall<'_>,
    ) -> Result<Value, flowbot_core::ActionError> {
        Err(flowbot_core::ActionError::fatal("no actions"))
    }
}
