//! Webhook ingress against the real server on port 0 and a real SQLite store.

mod common;

use flowbot_server::{AppConfig, ServerConfig};
use flowbot_store::{RunFilter, RunStatus, Store, StoreConfig};
use serde_json::{json, Value};

const GENERIC: &str = r#"version: 1
id: generic
name: generic
trigger: { app: webhook }
concurrency_key: "{{ trigger.body.customer }}"
steps:
  - id: note
    set: { got: "{{ trigger.body }}" }
"#;

const ECF: &str = r#"version: 1
id: ecf
name: ecf
connections: { ecforce: { app: ecforce } }
trigger: { app: ecforce, events: [customer_created], connection: ecforce, options: { customer_id_path: id } }
concurrency_key: "{{ trigger.customer_id }}"
steps:
  - id: note
    set: { id: "{{ trigger.customer_id }}" }
"#;

struct App {
    url: String,
    _app: common::TestApp,
    store: Store,
    _dir: tempfile::TempDir,
    token: String,
    ecf_token: String,
    client: reqwest::Client,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    let generic = store
        .import_flow("generic", "generic", GENERIC, "t")
        .await
        .unwrap();
    store.set_enabled("generic", true, "t").await.unwrap();
    let ecf = store.import_flow("ecf", "ecf", ECF, "t").await.unwrap();
    store.set_enabled("ecf", true, "t").await.unwrap();
    let app = common::spawn_app(
        &store,
        AppConfig {
            server: ServerConfig {
                max_body: 64 * 1024,
                ..ServerConfig::default()
            },
            ..AppConfig::default()
        },
    )
    .await;
    App {
        url: app.url.clone(),
        _app: app,
        store,
        _dir: dir,
        token: generic.webhook_token,
        ecf_token: ecf.webhook_token,
        client: reqwest::Client::new(),
    }
}

impl App {
    async fn post(
        &self,
        flow: &str,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/hooks/{flow}/{token}", self.url))
            .header("content-type", content_type)
            .header("x-ecf-event", "customer_created")
            .body(body)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn runs(&self, flow: &str) -> Vec<flowbot_store::RunInfo> {
        self.store
            .runs(&RunFilter {
                flow_id: Some(flow.into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn an_accepted_webhook_is_stored_with_its_run_before_the_answer() {
    let a = app().await;
    let (status, body) = a
        .post(
            "generic",
            &a.token,
            "application/json",
            r#"{"customer": "c1", "email": "a@b"}"#,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["outcome"], "queued");
    // The answer came after the commit: the run is there now.
    let run = a.store.run(body["run_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.concurrency_key.as_deref(), Some("c1"));
    assert_eq!(run.trigger["body"]["email"], "a@b");
    assert_eq!(run.trigger["headers"]["content-type"], "application/json");
}

#[tokio::test]
async fn any_json_value_a_bom_and_form_bodies_are_accepted() {
    let a = app().await;
    for body in ["[1, 2]", "null", "\u{feff}{\"customer\": \"bom\"}"] {
        let (status, _) = a.post("generic", &a.token, "application/json", body).await;
        // No customer key in [1,2] or null: stored, with a failed run saying why.
        assert!(status == 202, "{body}: {status}");
    }
    let (status, body) = a
        .post(
            "generic",
            &a.token,
            "application/x-www-form-urlencoded",
            "customer=f%C3%B6rm&name=%E5%B1%B1%E7%94%B0+%E5%A4%AA%E9%83%8E",
        )
        .await;
    assert_eq!(status, 202);
    let run = a.store.run(body["run_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(
        run.trigger["body"],
        json!({"customer": "förm", "name": "山田 太郎"})
    );
    let runs = a.runs("generic").await;
    assert_eq!(runs.len(), 4);
    let failed: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "the array and the null have no customer to key on"
    );
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap()
            .contains("concurrency key could not be rendered"),
        "{:?}",
        failed[0].error
    );
}

#[tokio::test]
async fn wrong_tokens_big_and_malformed_bodies_are_refused() {
    let a = app().await;
    let (status, _) = a.post("generic", "0000", "application/json", "{}").await;
    assert_eq!(status, 404);
    let (status, _) = a.post("nope", &a.token, "application/json", "{}").await;
    assert_eq!(status, 404);
    assert!(
        a.runs("generic").await.is_empty(),
        "nothing stored for a wrong token"
    );

    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, _) = a.post("generic", &a.token, "application/json", big).await;
    assert_eq!(status, 413);

    let (status, body) = a
        .post("generic", &a.token, "application/json", "{\"customer\": ")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );
    assert!(a.runs("generic").await.is_empty());
}

#[tokio::test]
async fn a_flow_whose_trigger_is_off_acknowledges_and_ignores() {
    let a = app().await;
    a.store.set_enabled("generic", false, "t").await.unwrap();
    let (status, body) = a
        .post(
            "generic",
            &a.token,
            "application/json",
            r#"{"customer": "c"}"#,
        )
        .await;
    assert_eq!((status, body["outcome"].clone()), (200, json!("ignored")));
    assert!(a.runs("generic").await.is_empty());
}

#[tokio::test]
async fn ecforce_events_are_read_by_the_trigger_app() {
    let a = app().await;
    let (status, body) = a
        .post("ecf", &a.ecf_token, "application/json", r#"{"id": "42"}"#)
        .await;
    assert_eq!(status, 202, "{body}");
    let run = a.store.run(body["run_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(
        (
            run.trigger["customer_id"].clone(),
            run.concurrency_key.clone()
        ),
        (json!("42"), Some("42".to_string()))
    );
    // A body without the id: stored, and the run fails saying where the id was expected.
    let (status, body) = a
        .post(
            "ecf",
            &a.ecf_token,
            "application/json",
            r#"{"email": "a@b"}"#,
        )
        .await;
    assert_eq!(status, 202);
    let run = a.store.run(body["run_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap().contains("customer_id_path"));
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let a = app().await;
    let r = a
        .client
        .get(format!("{}/healthz", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = a
        .client
        .get(format!("{}/readyz", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_empty_body_is_refused_with_nothing_stored() {
    let a = app().await;
    for body in ["", "  \r\n\t ", "\u{feff}"] {
        let (status, answer) = a.post("generic", &a.token, "application/json", body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert_eq!(answer["error"]["code"], "empty_body");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no body"),
            "{answer}"
        );
    }
    assert!(a.runs("generic").await.is_empty(), "no run");
    assert!(
        a.store
            .events(Some("generic"), 10)
            .await
            .unwrap()
            .is_empty(),
        "no event"
    );
}

#[tokio::test]
async fn a_body_sent_to_a_webhook_that_is_not_there_is_never_read() {
    let a = app().await;
    // Three megabytes to nowhere: 404 (not 413), before the server reads the body.
    let big = vec![b'x'; 3 * 1024 * 1024];
    for (flow, token) in [("no-such-flow", "no-token"), ("generic", "wrong-token")] {
        let resp = reqwest::Client::new()
            .post(format!("{}/hooks/{flow}/{token}", a.url))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        let resp = resp.expect("an answer");
        assert_eq!(resp.status(), 404, "{flow}/{token}");
    }
    assert!(a.store.events(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn credential_headers_are_redacted_before_anything_is_stored() {
    let a = app().await;
    let secrets = [
        ("authorization", "Bearer sk_live_AUTH"),
        ("cookie", "session=COOKIE_SECRET"),
        ("proxy-authorization", "Basic PROXY_SECRET"),
        ("x-api-key", "APIKEY_SECRET"),
        ("x-hub-signature-256", "sha256=SIGNATURE_SECRET"),
        ("x-my-webhook-token", "TOKEN_SECRET"),
        ("x-client-secret", "CLIENT_SECRET"),
    ];
    let mut req = a
        .client
        .post(format!("{}/hooks/generic/{}", a.url, a.token))
        .header("content-type", "application/json")
        .header("x-request-id", "kept-as-is");
    for (k, v) in secrets {
        req = req.header(k, v);
    }
    let resp = req.body(r#"{"customer": "c9"}"#).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let run = a.store.run(body["run_id"].as_str().unwrap()).await.unwrap();
    let events = a.store.events(Some("generic"), 10).await.unwrap();
    for (k, _) in secrets {
        assert_eq!(
            run.trigger["headers"][k], "[redacted]",
            "{k} in the trigger"
        );
        assert_eq!(events[0].headers[k], "[redacted]", "{k} in the event");
    }
    assert_eq!(run.trigger["headers"]["x-request-id"], "kept-as-is");
    let stored = format!("{} {:?}", run.trigger, events[0].headers);
    for (_, v) in secrets {
        assert!(!stored.contains(v), "{v} stored");
    }
}

#[tokio::test]
async fn an_unreadable_webhook_s_run_says_first_what_the_sender_got_wrong() {
    let a = app().await;
    for (event, body, lead) in [
        (
            Some("customer_created"),
            r#"{"email": "a@b"}"#,
            "the webhook body has no customer id at `id`",
        ),
        (
            None,
            r#"{"email": "a@b"}"#,
            "the webhook body has no customer id at `id`",
        ),
        (
            None,
            r#"{"id": "7"}"#,
            "the request has no x-ecf-event header",
        ),
    ] {
        let mut req = a
            .client
            .post(format!("{}/hooks/ecf/{}", a.url, a.ecf_token))
            .header("content-type", "application/json");
        if let Some(e) = event {
            req = req.header("x-ecf-event", e);
        }
        let answer: Value = req.body(body).send().await.unwrap().json().await.unwrap();
        let run = a
            .store
            .run(answer["run_id"].as_str().unwrap())
            .await
            .unwrap();
        let error = run.error.unwrap();
        assert!(error.starts_with(lead), "{event:?} {body}: {error}");
        assert!(!error.contains("concurrency key"), "{error}");
    }
}

/// A webhook trigger of an app file whose requests are signed: a forged request is refused
/// 401 and recorded without a run; a signed one runs with the trigger's obtained values.
#[tokio::test]
async fn a_file_app_s_signed_webhook_is_checked_before_anything_is_believed() {
    let dir = tempfile::tempdir().unwrap();
    let apps_dir = dir.path().join("apps");
    std::fs::create_dir(&apps_dir).unwrap();
    std::fs::write(
        apps_dir.join("shop.yaml"),
        r#"flowbot_app: 1
id: shop
name: { en: Shop, ja: ショップ }
connection:
  fields:
    - { name: webhook_secret, label: { en: Webhook secret, ja: Webhook シークレット }, kind: text, secret: true, required: true }
webhooks:
  event: "{{ headers['x-shop-topic'] }}"
  object_id: "{{ body.id }}"
  signature: { header: X-Shop-Hmac, algorithm: hmac_sha256, encoding: hex, secret: "{{ connection.webhook_secret }}" }
triggers:
  - id: order_paid
    name: { en: Order paid, ja: 注文の支払い }
    webhook:
      when: orders/paid
      output: { order_id: "{{ object_id }}", total: "{{ body.total }}" }
"#,
    )
    .unwrap();
    let (apps, broken) = flowbot_connectors::registry_with(Some(&apps_dir));
    assert!(broken.is_empty(), "{broken:?}");
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    let flow = r#"version: 1
id: paid
name: paid
connections: { shop: { app: shop } }
trigger: { app: shop, events: [order_paid], connection: shop }
concurrency_key: "{{ trigger.order_id }}"
steps:
  - id: note
    set: { total: "{{ trigger.total }}" }
"#;
    let info = store.import_flow("paid", "paid", flow, "t").await.unwrap();
    let mut settings = serde_json::Map::new();
    settings.insert("webhook_secret".into(), json!("whsec"));
    let conn = store
        .save_connection("shop", "shop", &settings, "t")
        .await
        .unwrap();
    store
        .bind_connection("paid", "shop", &conn.id, "t")
        .await
        .unwrap();
    store.set_enabled("paid", true, "t").await.unwrap();
    let app = common::spawn_app_with(&store, apps, AppConfig::default()).await;
    let client = reqwest::Client::new();
    let raw = r#"{"id":"o-9","total":4200}"#;
    let send = |signature: String| {
        client
            .post(format!("{}/hooks/paid/{}", app.url, info.webhook_token))
            .header("content-type", "application/json")
            .header("x-shop-topic", "orders/paid")
            .header("x-shop-hmac", signature)
            .body(raw)
            .send()
    };
    let forged = send("00".repeat(32)).await.unwrap();
    assert_eq!(forged.status(), 401);
    let answer: Value = forged.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "bad_signature", "{answer}");
    let runs = |store: Store| async move {
        store
            .runs(&RunFilter {
                flow_id: Some("paid".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
    };
    assert!(
        runs(store.clone()).await.is_empty(),
        "a forged request has no run"
    );
    let events = store.events(Some("paid"), 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert!(
        events[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("does not match"),
        "{:?}",
        events[0]
    );
    // The signature header is a credential: it is not kept.
    assert_ne!(events[0].headers["x-shop-hmac"], json!("00".repeat(32)));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"whsec");
    let tag: String = ring::hmac::sign(&key, raw.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signed = send(tag).await.unwrap();
    assert_eq!(signed.status(), 202);
    let runs = runs(store.clone()).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, json!({ "order_id": "o-9", "total": 4200 }));
    assert_eq!(runs[0].concurrency_key.as_deref(), Some("o-9"));
    assert_eq!(runs[0].status, RunStatus::Queued);
}

#[tokio::test]
async fn a_line_webhook_is_read_only_when_signed_with_the_channel_secret() {
    use flowbot_sandbox::catalogue::webhooks;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    let flow = r#"version: 1
id: line-in
name: line-in
connections: { line: { app: line } }
trigger: { app: line, events: [message_received], connection: line }
steps:
  - id: note
    set: { said: "{{ trigger.text }}" }
"#;
    let info = store
        .import_flow("line-in", "line-in", flow, "t")
        .await
        .unwrap();
    let mut settings = serde_json::Map::new();
    settings.insert("channel_access_token".into(), json!("token"));
    settings.insert("channel_secret".into(), json!("channel-secret"));
    let conn = store
        .save_connection("line", "line", &settings, "t")
        .await
        .unwrap();
    store
        .bind_connection("line-in", "line", &conn.id, "t")
        .await
        .unwrap();
    store.set_enabled("line-in", true, "t").await.unwrap();
    let app =
        common::spawn_app_with(&store, flowbot_connectors::registry(), AppConfig::default()).await;
    let client = reqwest::Client::new();
    let deliver = |d: webhooks::Delivery| {
        let mut req = client.post(format!("{}/hooks/line-in/{}", app.url, info.webhook_token));
        for (k, v) in d.headers {
            req = req.header(k, v);
        }
        req.body(d.body).send()
    };
    let message = json!({
        "destination": "U00000000000000000000000000000000",
        "events": [{
            "type": "message",
            "message": { "type": "text", "id": "468789577898262530", "text": "在庫はありますか？" },
            "webhookEventId": "01H810YECXQQZ37VAXPF6H9E6T",
            "deliveryContext": { "isRedelivery": false },
            "timestamp": 1692251666727u64,
            "source": { "type": "user", "userId": "U4af4980629af4980629af4980629af49" },
            "replyToken": "38ef843bde154d9b91c21320ffd17a0f",
            "mode": "active"
        }]
    });
    let forged = deliver(webhooks::line("not-the-secret", &message))
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // LINE's console checks a new webhook URL with a signed request without events.
    let check = json!({ "destination": "U00000000000000000000000000000000", "events": [] });
    let verified = deliver(webhooks::line("channel-secret", &check))
        .await
        .unwrap();
    assert!(verified.status().is_success(), "{}", verified.status());
    let runs = || async {
        store
            .runs(&RunFilter {
                flow_id: Some("line-in".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
    };
    assert!(
        runs().await.is_empty(),
        "neither the forged nor the check request has a run"
    );
    let signed = deliver(webhooks::line("channel-secret", &message))
        .await
        .unwrap();
    assert_eq!(signed.status(), 202);
    let runs = runs().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger["text"], "在庫はありますか？");
    assert_eq!(
        runs[0].trigger["user_id"],
        "U4af4980629af4980629af4980629af49"
    );
}
