//! `flowbot run` end to end: the example flows executed by the real binary against a real
//! HTTP server on loopback that records what it receives.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
struct Seen {
    /// (route, body) of every request, in order.
    calls: Vec<(String, Value)>,
    flags_failures_left: u32,
}

type Shared = Arc<Mutex<Seen>>;

async fn start(flags_failures: u32) -> (SocketAddr, Shared) {
    let seen: Shared = Arc::new(Mutex::new(Seen {
        flags_failures_left: flags_failures,
        ..Seen::default()
    }));
    let app = Router::new()
        .route(
            "/customers/{id}",
            get(
                |State(s): State<Shared>, Path(id): Path<String>| async move {
                    s.lock().unwrap().calls.push(("customer".into(), json!(id)));
                    Json(json!({
                        "id": id, "name01": "山田", "name02": "太郎",
                        "email": "taro@vip.example.com", "created_at": "2026-11-29T00:30:00Z"
                    }))
                },
            ),
        )
        .route(
            "/orders",
            get(
                |State(s): State<Shared>, Query(q): Query<Value>| async move {
                    s.lock().unwrap().calls.push(("orders".into(), q));
                    Json(json!([
                        {"id": 1, "total": 12000},
                        {"id": "2", "total": "500", "note": "ギフト包装"},
                        {"id": 3, "total": 800}
                    ]))
                },
            ),
        )
        .route(
            "/flags",
            post(
                |State(s): State<Shared>, Json(body): Json<Value>| async move {
                    let mut seen = s.lock().unwrap();
                    seen.calls.push(("flags".into(), body));
                    if seen.flags_failures_left > 0 {
                        seen.flags_failures_left -= 1;
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"error": "busy"})),
                        );
                    }
                    (StatusCode::CREATED, Json(json!({"ok": true})))
                },
            ),
        )
        .route(
            "/notify",
            post(
                |State(s): State<Shared>, headers: HeaderMap, body: String| async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    s.lock().unwrap().calls.push((
                        "notify".into(),
                        json!({"content_type": ct, "body": body, "auth": auth}),
                    ));
                    StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn flowbot(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_flowbot"))
            .args(args)
            .output()
            .expect("run flowbot")
    })
    .await
    .unwrap()
}

fn write_payload(dir: &tempfile::TempDir, payload: &Value) -> String {
    let path = dir.path().join("payload.json");
    std::fs::write(&path, payload.to_string()).unwrap();
    path.display().to_string()
}

fn routes(seen: &Shared) -> Vec<String> {
    seen.lock()
        .unwrap()
        .calls
        .iter()
        .map(|(r, _)| r.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_orders_example_runs_every_step_kind() {
    // The first /flags call answers 503: the step is retried, the steps before it are not.
    let (addr, seen) = start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let payload = write_payload(
        &dir,
        &json!({"api": format!("http://{addr}"), "customer_id": "42"}),
    );
    let flow = root().join("flows/examples/customer-orders.yaml");
    let out = flowbot(vec![
        "run".into(),
        flow.display().to_string(),
        "--payload".into(),
        payload,
        "--json".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(run["status"], "succeeded");

    let steps = run["steps"].as_array().unwrap();
    let step = |path: &str| -> &Value {
        steps
            .iter()
            .find(|s| s["path"] == path)
            .unwrap_or_else(|| panic!("no record for {path}: {stdout}"))
    };
    // set: computed values, including a date shown in Tokyo time.
    assert_eq!(step("summary")["output"]["full_name"], "山田 太郎");
    assert_eq!(step("summary")["output"]["order_count"], 3);
    assert_eq!(step("summary")["output"]["registered"], "2026年11月29日");
    // for_each + switch: "12000" is large, the gift note matches, order 3 takes default.
    assert_eq!(step("each_order")["output"]["count"], 3);
    assert_eq!(step("each_order[0].kind")["lane"], "large");
    assert_eq!(step("each_order[0].flag_large")["attempt"], 2);
    assert_eq!(step("each_order[1].kind")["lane"], "gift");
    assert_eq!(step("each_order[1].flag_gift")["status"], "succeeded");
    assert_eq!(step("each_order[2].kind")["lane"], "default");
    // A whole-expression template keeps the number type in the request body.
    assert_eq!(
        step("each_order[0].flag_large")["input"]["body"]["total"],
        12000
    );
    // branch: 3 orders make a VIP.
    assert_eq!(step("vip")["lane"], "then");
    assert!(steps.iter().all(|s| s["path"] != "notify_regular"));

    // Completed steps were not repeated by the retry.
    assert_eq!(
        routes(&seen),
        ["customer", "orders", "flags", "flags", "flags", "notify"],
        "exactly one retry of the failed call"
    );
    let calls = seen.lock().unwrap().calls.clone();
    assert_eq!(calls[1].1, json!({"customer_id": "42"}));
    assert_eq!(calls[4].1, json!({"order_id": "2", "flag": "gift"}));
    let notify: Value = serde_json::from_str(calls[5].1["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        notify["text"],
        "VIP 山田 太郎（2026年11月29日 登録）: 3 orders"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_relay_example_prints_readable_steps_with_secrets_hidden() {
    let (addr, seen) = start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let payload = write_payload(
        &dir,
        &json!({
            "body": {"event": "signup", "email": "  Taro@Example.com "},
            "headers": {"x-relay-token": "s3cret-token"},
            "query": {"relay_to": format!("http://{addr}/notify")}
        }),
    );
    let flow = root().join("flows/examples/webhook-relay.yaml");
    let out = flowbot(vec![
        "run".into(),
        flow.display().to_string(),
        "--payload".into(),
        payload,
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("✔ message"), "{stdout}");
    assert!(stdout.contains("✔ pause 少し待つ"), "{stdout}");
    assert!(stdout.contains("lane: then"), "{stdout}");
    assert!(
        stdout.contains("✔ relay 転送する  (http request"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"text\": \"SIGNUP: taro@example.com\""),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("run succeeded"), "{stdout}");
    // The token reached the service but not the printed run record.
    assert!(!stdout.contains("s3cret-token"), "{stdout}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
    let calls = seen.lock().unwrap().calls.clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1["auth"], "Bearer s3cret-token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_fails_the_run_with_the_step_named() {
    let (addr, _seen) = start(0).await;
    let dir = tempfile::tempdir().unwrap();
    // /customers is GET-only: a POST answers 405, which no retry can fix.
    let flow_path = dir.path().join("flow.yaml");
    std::fs::write(
        &flow_path,
        format!(
            "version: 1\nid: failing\nname: failing\ntrigger: {{ app: manual }}\nsteps:\n  - id: post\n    app: http\n    action: request\n    input: {{ url: \"http://{addr}/customers/1\" }}\n  - id: never\n    set: {{ x: 1 }}\n"
        ),
    )
    .unwrap();
    let out = flowbot(vec![
        "run".into(),
        flow_path.display().to_string(),
        "--json".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["step"], "post");
    assert_eq!(run["error"]["error"]["code"], "HTTP_405");
    assert_eq!(run["error"]["error"]["retryable"], false);
    assert_eq!(
        run["steps"].as_array().unwrap().len(),
        1,
        "the run stops at the failed step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_and_missing_values_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"api\": ").unwrap();
    let flow = root()
        .join("flows/examples/customer-orders.yaml")
        .display()
        .to_string();
    let out = flowbot(vec![
        "run".into(),
        flow.clone(),
        "--payload".into(),
        bad.display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.json:1:8: the payload is not valid JSON: EOF while parsing a value\n"),
        "{stderr}"
    );

    // A payload without `customer_id`: the first step fails naming the missing value, and
    // nothing is sent anywhere.
    let payload = write_payload(&dir, &json!({"api": "http://127.0.0.1:9"}));
    let out = flowbot(vec!["run".into(), flow, "--payload".into(), payload]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("run failed at step customer: input `url`: `trigger.customer_id` is not defined: `trigger` has no `customer_id` (it has: api)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_runs_without_any_outside_service() {
    let flow = root()
        .join("flows/examples/order-triage.yaml")
        .display()
        .to_string();
    let payload = root()
        .join("flows/examples/order-triage.payload.json")
        .display()
        .to_string();
    let out = flowbot(vec![
        "run".into(),
        flow,
        "--payload".into(),
        payload,
        "--json".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let output = |path: &str| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == path)
            .unwrap_or_else(|| panic!("no {path}"))["output"]
            .clone()
    };
    assert_eq!(
        output("lines[1].line"),
        json!({"sku": "CUP-02", "amount": 3000})
    );
    assert_eq!(output("order")["total"], 5400);
    assert_eq!(output("order")["ordered_jst"], "2026-11-29 09:30");
    assert_eq!(output("tier"), json!({"lane": "remote"}));
    assert_eq!(output("remote_fee")["shipping"], 1500);
    assert_eq!(
        output("welcome_back")["message"],
        "山田 太郎 様、いつもありがとうございます（2026-11-29 09:30 のご注文）"
    );
}
