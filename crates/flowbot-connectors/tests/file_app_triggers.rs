//! An app file's triggers: webhooks read by its templates and refused when their signature
//! or timestamp does not check out (GitHub-, Stripe-, Slack- and LINE-style schemes), and
//! polling through a listing action on a loopback server, without repeats or gaps.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use flowbot_connectors::file_app::{format, FileApp};
use flowbot_core::{Connection, Connector, PollCall, WebhookCall};
use ring::hmac;
use serde_json::{json, Map, Value};

const NOW: i64 = 1_790_000_000;

fn app(signature: &str) -> FileApp {
    let source = format!(
        r#"
flowbot_app: 1
id: shop
name: {{ en: Shop, ja: ショップ }}
connection:
  fields:
    - {{ name: secret, label: {{ en: Secret, ja: シークレット }}, kind: text, secret: true }}
    - {{ name: base_url, label: {{ en: URL, ja: URL }}, kind: text }}
  base_url: "{{{{ connection.base_url }}}}"
webhooks:
  event: "{{{{ headers['x-shop-topic'] }}}}"
  object_id: "{{{{ body.id }}}}"
{signature}
  setup: {{ en: "Add the webhook URL in Settings → Notifications", ja: "設定 → 通知 に Webhook URL を追加します" }}
triggers:
  - id: order_paid
    name: {{ en: Order paid, ja: 注文の支払い }}
    webhook:
      when: orders/paid
      output:
        order_id: "{{{{ object_id }}}}"
        total: "{{{{ body.total }}}}"
    outputs:
      - {{ name: order_id, label: {{ en: Order ID, ja: 注文 ID }}, kind: text }}
  - id: any_event
    name: {{ en: Any event, ja: すべてのイベント }}
    webhook: {{}}
  - id: new_orders
    name: {{ en: New orders, ja: 新しい注文 }}
    polling:
      action: list_orders
      items: "{{{{ output.orders }}}}"
      id: "{{{{ item.id }}}}"
      cursor: "{{{{ item.updated }}}}"
      cursor_input: since
actions:
  - id: list_orders
    name: {{ en: List orders, ja: 注文の一覧 }}
    idempotent: true
    inputs:
      - {{ name: since, label: {{ en: Since, ja: 以降 }}, kind: integer }}
    request:
      method: GET
      path: /orders
      query: {{ since: "{{{{ input.since }}}}" }}
"#
    );
    FileApp::new(
        format::parse(&source).unwrap_or_else(|e| panic!("{e:?}")),
        reqwest::Client::new(),
    )
}

fn sign(algorithm: hmac::Algorithm, secret: &str, payload: &str) -> Vec<u8> {
    hmac::sign(
        &hmac::Key::new(algorithm, secret.as_bytes()),
        payload.as_bytes(),
    )
    .as_ref()
    .to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn conn(secret: &str, base: &str) -> Connection {
    Connection {
        name: "shop".into(),
        app: "shop".into(),
        settings: json!({ "secret": secret, "base_url": base })
            .as_object()
            .unwrap()
            .clone(),
    }
}

fn headers(pairs: &[(&str, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

/// Verify then read, as ingress does.
fn receive(
    app: &FileApp,
    events: &[String],
    h: &Map<String, Value>,
    raw: &str,
    c: &Connection,
    now: i64,
) -> Result<Option<Value>, String> {
    let body: Value = serde_json::from_str(raw).unwrap();
    let query = Map::new();
    let call = WebhookCall {
        events,
        options: &Map::new(),
        headers: h,
        query: &query,
        body: &body,
        raw: raw.as_bytes(),
        connection: Some(c),
    };
    app.verify_webhook(&call, now)?;
    app.webhook_event(call)
}

const RAW: &str = r#"{"id":"o-1","total":1200}"#;

#[test]
fn a_github_style_hex_signature_with_a_prefix() {
    let a = app("  signature: { header: X-Shop-Hmac, algorithm: hmac_sha256, encoding: hex, prefix: \"sha256=\", secret: \"{{ connection.secret }}\" }");
    let events = vec!["order_paid".to_string()];
    assert!(a.webhook_needs_connection(&events));
    let c = conn("s3", "");
    let good = format!("sha256={}", hex(&sign(hmac::HMAC_SHA256, "s3", RAW)));
    let h = headers(&[
        ("x-shop-hmac", good.clone()),
        ("x-shop-topic", "orders/paid".into()),
    ]);
    let got = receive(&a, &events, &h, RAW, &c, NOW).unwrap();
    assert_eq!(got, Some(json!({ "order_id": "o-1", "total": 1200 })));
    // Another event: recorded, no run.
    let h2 = headers(&[
        ("x-shop-hmac", good.clone()),
        ("x-shop-topic", "orders/create".into()),
    ]);
    assert_eq!(receive(&a, &events, &h2, RAW, &c, NOW).unwrap(), None);
    // The default output of a trigger that listens to everything.
    let all = vec!["any_event".to_string()];
    let got = receive(&a, &all, &h2, RAW, &c, NOW).unwrap().unwrap();
    assert_eq!(got["event"], "orders/create");
    assert_eq!(got["object_id"], "o-1");
    // A changed body, a wrong secret, a missing header: refused.
    let tampered = RAW.replace("1200", "1");
    let e = receive(&a, &events, &h, &tampered, &c, NOW).unwrap_err();
    assert!(e.contains("does not match"), "{e}");
    assert!(receive(&a, &events, &h, RAW, &conn("other", ""), NOW).is_err());
    let e = receive(
        &a,
        &events,
        &headers(&[("x-shop-topic", "orders/paid".into())]),
        RAW,
        &c,
        NOW,
    )
    .unwrap_err();
    assert!(e.contains("no `X-Shop-Hmac`"), "{e}");
}

#[test]
fn a_stripe_style_header_with_a_timestamp_refuses_replays() {
    let a = app("  signature: { header: X-Shop-Signature, algorithm: hmac_sha256, encoding: hex, signature_key: v1, timestamp_key: t, payload: \"{timestamp}.{body}\", secret: \"{{ connection.secret }}\" }");
    let events = vec!["order_paid".to_string()];
    let c = conn("whsec", "");
    let t = NOW - 10;
    let v1 = hex(&sign(hmac::HMAC_SHA256, "whsec", &format!("{t}.{RAW}")));
    // Several v1 signatures (a secret being rolled): any one may match.
    let h = headers(&[
        ("x-shop-signature", format!("t={t},v1=00ff,v1={v1}")),
        ("x-shop-topic", "orders/paid".into()),
    ]);
    assert!(receive(&a, &events, &h, RAW, &c, NOW).unwrap().is_some());
    // The same request ten minutes later is a replay.
    let e = receive(&a, &events, &h, RAW, &c, NOW + 600).unwrap_err();
    assert!(e.contains("replay"), "{e}");
}

#[test]
fn slack_and_line_style_signatures() {
    // Slack: v0= hex over "v0:{timestamp}:{body}", the timestamp in its own header.
    let a = app("  signature: { header: X-Slack-Signature, algorithm: hmac_sha256, encoding: hex, prefix: \"v0=\", timestamp_header: X-Slack-Request-Timestamp, payload: \"v0:{timestamp}:{body}\", secret: \"{{ connection.secret }}\" }");
    let events = vec!["any_event".to_string()];
    let c = conn("slack-secret", "");
    let sig = hex(&sign(
        hmac::HMAC_SHA256,
        "slack-secret",
        &format!("v0:{NOW}:{RAW}"),
    ));
    let h = headers(&[
        ("x-slack-signature", format!("v0={sig}")),
        ("x-slack-request-timestamp", NOW.to_string()),
    ]);
    assert!(receive(&a, &events, &h, RAW, &c, NOW + 5)
        .unwrap()
        .is_some());
    // LINE: base64 HMAC-SHA256 of the body; SHA-1 schemes are read the same way.
    let a = app("  signature: { header: X-Line-Signature, algorithm: hmac_sha256, encoding: base64, secret: \"{{ connection.secret }}\" }");
    let c = conn("line-secret", "");
    let b64 = base64::engine::general_purpose::STANDARD.encode(sign(
        hmac::HMAC_SHA256,
        "line-secret",
        RAW,
    ));
    let h = headers(&[("x-line-signature", b64)]);
    assert!(receive(&a, &events, &h, RAW, &c, NOW).unwrap().is_some());
    let a = app("  signature: { header: X-Sig, algorithm: hmac_sha1, encoding: hex, secret: \"{{ connection.secret }}\" }");
    let sha1 = hex(&sign(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        "line-secret",
        RAW,
    ));
    assert!(
        receive(&a, &events, &headers(&[("x-sig", sha1)]), RAW, &c, NOW)
            .unwrap()
            .is_some()
    );
}

#[test]
fn broken_signature_rules_are_refused_with_their_place() {
    let source = "flowbot_app: 1\nid: x\nname: { en: X, ja: X }\nwebhooks:\n  signature: { header: X-Sig, algorithm: hmac_sha256, encoding: hex, payload: \"{timestamp}.{body}\", secret: s }\ntriggers:\n  - id: t\n    name: { en: T, ja: T }\n";
    let problems = format::parse(source).unwrap_err();
    let text: Vec<String> = problems
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("5:") && t.contains("`{timestamp}`")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("7:") && t.contains("either `webhook` or `polling`")),
        "{text:?}"
    );
}

type Orders = Arc<Mutex<(Vec<Value>, Vec<Option<String>>)>>;

async fn orders(State(o): State<Orders>, Query(q): Query<Map<String, Value>>) -> Json<Value> {
    let mut o = o.lock().unwrap();
    let since = q.get("since").and_then(Value::as_str).map(str::to_string);
    o.1.push(since.clone());
    let since: i64 = since.and_then(|s| s.parse().ok()).unwrap_or(0);
    // "At or after": the API shows again what is at the cursor.
    let list: Vec<Value> =
        o.0.iter()
            .filter(|x| x["updated"].as_i64().unwrap() >= since)
            .cloned()
            .collect();
    Json(json!({ "orders": list }))
}

/// A loopback order list with two orders, listing "at or after" its `since` parameter.
async fn orders_server() -> (Orders, String) {
    let store: Orders = Arc::default();
    store.lock().unwrap().0 = vec![
        json!({ "id": "a", "updated": 100 }),
        json!({ "id": "b", "updated": 200 }),
    ];
    let router = Router::new()
        .route("/orders", get(orders))
        .with_state(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (store, base)
}

#[tokio::test]
async fn polling_neither_repeats_nor_skips_items_at_the_cursor() {
    let (store, base) = orders_server().await;
    let a = app("");
    let c = conn("", &base);
    let poll = |cursor: Option<String>| {
        let (a, c) = (&a, &c);
        async move {
            a.poll(PollCall {
                trigger: "new_orders",
                options: &Map::new(),
                connection: Some(c),
                cursor: cursor.as_deref(),
            })
            .await
            .unwrap()
        }
    };
    let first = poll(None).await;
    assert_eq!(first.items.len(), 2);
    // Nothing new: the item at the cursor is not repeated.
    let second = poll(first.cursor.clone()).await;
    assert!(second.items.is_empty(), "{:?}", second.items);
    // A new item with the same time as the cursor, and a later one: both, once.
    store
        .lock()
        .unwrap()
        .0
        .push(json!({ "id": "c", "updated": 200 }));
    store
        .lock()
        .unwrap()
        .0
        .push(json!({ "id": "d", "updated": 300 }));
    let third = poll(second.cursor.clone()).await;
    let ids: Vec<&str> = third
        .items
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c", "d"]);
    let fourth = poll(third.cursor.clone()).await;
    assert!(fourth.items.is_empty());
    // The cursor went to the listing action as its `since` input.
    let sent = store.lock().unwrap().1.clone();
    assert_eq!(
        sent,
        [
            None,
            Some("200".into()),
            Some("200".into()),
            Some("300".into())
        ]
    );
    // The manifest offers the polling trigger with its interval option.
    let m = a.manifest();
    let t = m.trigger("new_orders").unwrap();
    assert!(t.polling && t.options.iter().any(|o| o.name == "interval"));
}

/// The generic HTTP app (an app file) polls a URL: the cursor goes in the query parameter
/// the flow names, and a cursor kept as a plain value (as an earlier flowbot stored it)
/// still means "everything up to here was seen".
#[tokio::test]
async fn the_http_app_polls_a_url_with_its_cursor_parameter() {
    let (store, base) = orders_server().await;
    let apps = flowbot_connectors::registry();
    let http = apps.get("http").unwrap();
    let options = json!({ "url": format!("{base}/orders"), "items_path": "orders", "cursor_field": "updated", "cursor_param": "since" });
    let poll = |cursor: Option<&'static str>| {
        let options = options.as_object().unwrap().clone();
        async move {
            http.poll(PollCall {
                trigger: "poll",
                options: &options,
                connection: None,
                cursor,
            })
            .await
            .unwrap()
        }
    };
    let first = poll(None).await;
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.cursor.as_deref(), Some("200"));
    // A plain cursor: the item at it is not taken again.
    let again = poll(Some("200")).await;
    assert!(again.items.is_empty(), "{:?}", again.items);
    store
        .lock()
        .unwrap()
        .0
        .push(json!({ "id": "c", "updated": 300 }));
    let third = poll(Some("200")).await;
    assert_eq!(third.items, vec![json!({ "id": "c", "updated": 300 })]);
    assert_eq!(third.cursor.as_deref(), Some("300"));
    let sent = store.lock().unwrap().1.clone();
    assert_eq!(sent, [None, Some("200".into()), Some("200".into())]);
}
