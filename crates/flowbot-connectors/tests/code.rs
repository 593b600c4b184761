//! The code step: scripts, their values, their errors, and the limits that keep a script
//! from reaching outside or taking the worker with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowbot_connectors::code::CodeApp;
use flowbot_core::{ActionCall, ActionError, Connector};
use serde_json::{json, Map, Value};

fn input(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("inputs are objects"),
    }
}

async fn run_on(app: &CodeApp, v: Value) -> Result<Value, ActionError> {
    let input = input(v);
    app.execute(ActionCall {
        action: "javascript",
        input: &input,
        connection: None,
    })
    .await
}

async fn run(v: Value) -> Result<Value, ActionError> {
    run_on(&CodeApp::default(), v).await
}

#[tokio::test]
async fn the_registry_offers_the_code_step() {
    let apps = flowbot_connectors::registry();
    let m = apps.manifest("code").expect("the code app is built in");
    let action = m.action("javascript").unwrap();
    assert_eq!(action.name.ja, "JavaScript を実行する");
    assert_eq!(
        action.inputs[0].kind,
        flowbot_core::manifest::FieldKind::Code
    );
}

#[tokio::test]
async fn a_script_result_becomes_the_output_with_an_objects_keys_at_the_top() {
    let out = run(json!({
        "code": "const [last, first] = values.name.split(/\\s+/);\nreturn { last, first, total: values.items.reduce((a, b) => a + b.price, 0) };",
        "values": {"name": "山田 太郎", "items": [{"price": 1200}, {"price": 300.5}]},
    }))
    .await
    .unwrap();
    assert_eq!(out["last"], "山田");
    assert_eq!(out["first"], "太郎");
    assert_eq!(out["total"], 1500.5);
    assert_eq!(
        out["result"],
        json!({"last": "山田", "first": "太郎", "total": 1500.5})
    );
    assert_eq!(out["logs"], json!([]));
}

#[tokio::test]
async fn other_results_and_console_output() {
    let out = run(json!({
        "code": "console.log('n =', values.n, {a: 1}); console.warn('careful'); return [values.n * 2, 'x', true, null];",
        "values": {"n": 21},
    }))
    .await
    .unwrap();
    assert_eq!(out["result"], json!([42, "x", true, null]));
    assert_eq!(out["logs"], json!(["n = 21 {\"a\":1}", "[warn] careful"]));
    // A script that returns nothing gives null.
    let out = run(json!({"code": "let x = 1;"})).await.unwrap();
    assert_eq!(out["result"], Value::Null);
}

#[tokio::test]
async fn console_output_is_bounded() {
    let out = run(
        json!({"code": "for (let i = 0; i < 500; i++) console.log('x'.repeat(5000)); return 1;"}),
    )
    .await
    .unwrap();
    let logs = out["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 101);
    assert_eq!(logs[0].as_str().unwrap().chars().count(), 1001);
    assert_eq!(logs[100], "(400 more lines were not kept)");
}

#[tokio::test]
async fn a_thrown_error_is_fatal_with_its_message_and_line() {
    let e = run(json!({"code": "const a = 1;\nif (a) {\n  throw new Error('no customer for ' + values.email);\n}", "values": {"email": "a@b"}}))
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(
        e.message.contains("Error: no customer for a@b"),
        "{}",
        e.message
    );
    assert!(e.message.contains("(line 3)"), "{}", e.message);
    // Mistakes of the engine's own finding name their kind and line too.
    let e = run(json!({"code": "let x = 1;\nreturn x.y.z;"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("TypeError"), "{}", e.message);
    assert!(e.message.contains("(line 2)"), "{}", e.message);
    let e = run(json!({"code": "return {;"})).await.unwrap_err();
    assert!(e.message.contains("SyntaxError"), "{}", e.message);
    let e = run(json!({"code": "throw 'plain text';"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("plain text"), "{}", e.message);
    let e = run(json!({"code": "throw new Error('x'.repeat(100000));"}))
        .await
        .unwrap_err();
    assert!(e.message.chars().count() < 1100, "{}", e.message.len());
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_its_time_limit() {
    let started = Instant::now();
    let e = run(json!({"code": "while (true) {}", "time_limit_ms": 300}))
        .await
        .unwrap_err();
    assert_eq!(e.message, "the code ran longer than its 300 ms limit");
    assert!(!e.is_retryable());
    // Not a timing check: only that it ended, well before any other bound would end it.
    assert!(started.elapsed() < Duration::from_secs(20));
    // Catching the interruption does not keep it running.
    let e = run(json!({"code": "for (;;) { try { while (true) {} } catch (e) {} }"}))
        .await
        .unwrap_err();
    assert_eq!(e.message, "the code ran longer than its 1 s limit");
}

#[tokio::test]
async fn an_allocation_loop_is_stopped_at_its_memory_limit() {
    let e = run(json!({"code": "let a = []; while (true) a.push(new Array(1e6).fill(1));"}))
        .await
        .unwrap_err();
    assert_eq!(e.message, "the code used more than its 64 MiB memory limit");
    assert!(!e.is_retryable());
    // Many small objects: the limit is met where QuickJS cannot even make the error.
    let e = run(
        json!({"code": "let a = []; while (true) a.push({ n: a.length });", "memory_limit_mb": 8}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "the code used more than its 8 MiB memory limit");
}

#[tokio::test]
async fn deep_recursion_is_an_error_not_a_crash() {
    let e = run(json!({"code": "const f = (n) => f(n + 1) + 1; return f(0);"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("stack"), "{}", e.message);
}

#[tokio::test]
async fn nothing_outside_the_script_is_reachable() {
    let out = run(json!({"code": "return [typeof Date, typeof require, typeof fetch, typeof process, typeof setTimeout, typeof performance, typeof XMLHttpRequest, typeof std, typeof os, typeof import_meta];"}))
        .await
        .unwrap();
    assert!(
        out["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t == "undefined"),
        "{}",
        out["result"]
    );
    let e = run(json!({"code": "return new Date();"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("ReferenceError"), "{}", e.message);
    // No module loader: a dynamic import never reaches a file.
    let e = run(json!({"code": "return import('/etc/passwd');"})).await;
    match e {
        Err(e) => assert!(!e.message.contains("root:"), "{}", e.message),
        Ok(out) => assert!(!out.to_string().contains("root:"), "{out}"),
    }
}

#[tokio::test]
async fn results_that_are_not_json_are_refused_clearly() {
    let e = run(json!({"code": "return () => 1;"})).await.unwrap_err();
    assert_eq!(
        e.message,
        "the code's result is not JSON: the result is a function"
    );
    let e = run(json!({"code": "return { total: 1, when: Symbol('x') };"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("`when` is a symbol"), "{}", e.message);
    let e = run(json!({"code": "return { seen: new Set([1]) };"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("`seen` is a Set"), "{}", e.message);
    let e = run(json!({"code": "return { big: 10n };"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("`big` is a BigInt"), "{}", e.message);
    let e = run(json!({"code": "return { ratio: 1 / 0 };"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("`ratio` is Infinity"), "{}", e.message);
    let e = run(json!({"code": "const a = {}; a.self = a; return a;"}))
        .await
        .unwrap_err();
    assert!(
        e.message.starts_with("the code's result is not JSON: "),
        "{}",
        e.message
    );
    let e = run(json!({"code": "async function f() { return 1; } return f();"}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("the result is a Promise"),
        "{}",
        e.message
    );
    let e = run(json!({"code": "return 'x'.repeat(2 * 1024 * 1024);"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("at most 1024 KiB"), "{}", e.message);
}

#[tokio::test]
async fn limits_beyond_their_caps_are_refused() {
    let e = run(json!({"code": "return 1;", "time_limit_ms": 60_000}))
        .await
        .unwrap_err();
    assert!(e.message.contains("`time_limit_ms`"), "{}", e.message);
    let e = run(json!({"code": "return 1;", "memory_limit_mb": 4096}))
        .await
        .unwrap_err();
    assert!(e.message.contains("`memory_limit_mb`"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_script_does_not_stop_others() {
    let app = Arc::new(CodeApp::with_concurrency(2));
    let looping = {
        let app = app.clone();
        tokio::spawn(async move {
            run_on(
                &app,
                json!({"code": "while (true) {}", "time_limit_ms": 3_000}),
            )
            .await
        })
    };
    // Let the runaway script take its thread first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let short = tokio::time::timeout(
        Duration::from_millis(2_500),
        run_on(
            &app,
            json!({"code": "return values.n + 1;", "values": {"n": 1}}),
        ),
    )
    .await
    .expect("the short script finished while the other still ran")
    .unwrap();
    assert_eq!(short["result"], 2);
    assert!(
        !looping.is_finished(),
        "the runaway script was still running"
    );
    let e = looping.await.unwrap().unwrap_err();
    assert!(e.message.contains("3 s limit"), "{}", e.message);
}

#[test]
fn a_flow_with_code_that_looks_like_a_template_checks_clean() {
    let yaml = r#"
version: 1
id: tidy
name: tidy
trigger: { app: manual }
steps:
  - id: tidy
    app: code
    action: javascript
    input:
      code: |
        const braces = `{{ not a template }} {% neither %}`;
        return { braces, name: values.name };
      values:
        name: "{{ trigger.name }}"
      time_limit_ms: 500
  - id: after
    set: { last: "{{ tidy.name }}" }
"#;
    let checked = flowbot_core::check(yaml, &flowbot_connectors::registry());
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    // A template error in another input is still found.
    let broken = yaml.replace("\"{{ trigger.name }}\"", "\"{{ trigger.name \"");
    assert!(
        !flowbot_core::check(&broken, &flowbot_connectors::registry())
            .diagnostics
            .is_empty()
    );
}
