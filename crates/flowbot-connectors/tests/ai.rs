//! The AI app against the sandbox's OpenAI-compatible model, over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use flowbot_core::{ActionCall, ActionError, Connection, Connector};
use flowbot_sandbox::ai::{self, AiConfig, BadAnswer};
use flowbot_sandbox::faults::{FaultConfig, InjectedError};
use serde_json::{json, Map, Value};

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object"),
    }
}

fn conn(url: &str, key: &str) -> Connection {
    Connection {
        name: "model".into(),
        app: "ai".into(),
        settings: map(
            json!({"base_url": format!("{url}/v1"), "api_key": key, "model": "sandbox-chat"}),
        ),
    }
}

/// The `every`-th call from now fails once with `status`.
fn fail_once(sim: &ai::AiSim, every: u64, status: u16, retry_after: Option<u64>) {
    sim.faults.set(FaultConfig {
        every: Some(every),
        errors: vec![InjectedError {
            status,
            code: None,
            message: None,
            fields: vec![],
            retry_after,
        }],
        max_failures: Some(1),
        ..FaultConfig::default()
    });
}

fn connector() -> Arc<dyn Connector> {
    flowbot_connectors::registry().get("ai").unwrap().clone()
}

async fn run(c: &Connection, action: &str, input: Value) -> Result<Value, ActionError> {
    let input = map(input);
    connector()
        .execute(ActionCall {
            action,
            input: &input,
            connection: Some(c),
        })
        .await
}

const INQUIRY: &str = "お名前：山田 太郎\nメール：taro@example.jp\n電話：03-1234-5678\nお問い合わせ内容：注文した商品が届きません";

fn inquiry_fields() -> Value {
    json!([
        {"name": "name", "type": "text", "description": "お名前", "required": true},
        {"name": "email", "type": "text", "description": "メールアドレス", "required": true},
        {"name": "phone", "type": "text", "description": "電話番号"},
        {"name": "inquiry", "type": "text", "description": "お問い合わせ内容", "required": true},
    ])
}

#[tokio::test]
async fn generate_answers_with_its_usage() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    let out = run(
        &c,
        "generate",
        json!({"prompt": "次のメールを要約してください。", "system": "あなたは丁寧なアシスタントです。", "temperature": "0.3", "max_tokens": 100}),
    )
    .await
    .unwrap();
    assert_eq!(out["text"], "要約: 次のメールを要約してください。");
    assert_eq!(out["finish_reason"], "stop");
    assert_eq!(out["model"], "sandbox-chat");
    // Tokens are characters / 4, rounded up: 31 characters asked, 19 answered.
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13})
    );
    let sent = &sim.sim.requests()[0];
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "あなたは丁寧なアシスタントです。"})
    );
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["max_tokens"], 100);
}

#[tokio::test]
async fn extract_reads_an_inquiry_mail() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    let out = run(
        &c,
        "extract",
        json!({"text": INQUIRY, "fields": inquiry_fields()}),
    )
    .await
    .unwrap();
    let expected = json!({
        "name": "山田 太郎",
        "email": "taro@example.jp",
        "phone": "03-1234-5678",
        "inquiry": "注文した商品が届きません",
    });
    assert_eq!(out["fields"], expected);
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&out[k], v, "{k} at the top level");
    }
    assert_eq!(out["tries"], 1);
    assert!(out["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let sent = &sim.sim.requests()[0];
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert_eq!(sent["temperature"], 0.0);
}

#[tokio::test]
async fn extract_asks_again_after_a_bad_answer_and_sums_the_usage() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    let clean = run(
        &c,
        "extract",
        json!({"text": INQUIRY, "fields": inquiry_fields()}),
    )
    .await
    .unwrap();
    let one_try = clean["usage"].clone();

    sim.sim.bad_answers(BadAnswer::MissingField, 1);
    let out = run(
        &c,
        "extract",
        json!({"text": INQUIRY, "fields": inquiry_fields()}),
    )
    .await
    .unwrap();
    assert_eq!(out["tries"], 2);
    assert_eq!(out["name"], "山田 太郎");
    // The second try sends the whole conversation, so it costs more than the first.
    let prompt = out["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        prompt > 2 * one_try["prompt_tokens"].as_u64().unwrap(),
        "{}",
        out["usage"]
    );
    let total = out["usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(
        total,
        prompt + out["usage"]["completion_tokens"].as_u64().unwrap()
    );
    // The correction told the model what was wrong.
    let retry = sim.sim.requests().last().unwrap().clone();
    let said = retry["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        said.contains("`name` is required but has no value"),
        "{said}"
    );

    sim.sim.bad_answers(BadAnswer::InvalidJson, 1);
    let out = run(
        &c,
        "extract",
        json!({"text": INQUIRY, "fields": inquiry_fields()}),
    )
    .await
    .unwrap();
    assert_eq!(out["tries"], 2);
}

#[tokio::test]
async fn extract_gives_up_after_three_answers_that_do_not_fit() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    sim.sim.bad_answers(BadAnswer::InvalidJson, 3);
    let e = run(
        &c,
        "extract",
        json!({"text": INQUIRY, "fields": inquiry_fields()}),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.message.contains("after 3 tries"), "{}", e.message);
    assert!(e.message.contains("not a JSON object"), "{}", e.message);
    let details = e.details.as_deref().unwrap();
    assert_eq!(details["tries"], 3);
    assert!(details["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(sim.sim.stats()["calls"], 3);
}

#[tokio::test]
async fn a_wrong_key_is_fatal_with_the_services_message_and_no_key() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let key = "sk-wrong-secret-key-9876";
    let c = conn(&sim.url, key);
    let e = run(&c, "generate", json!({"prompt": "hello"}))
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(
        e.message
            .contains("refused the API key of connection `model` (401"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("Incorrect API key provided"),
        "{}",
        e.message
    );
    assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
    let shown = format!("{} {:?}", e.message, e.details);
    for piece in [key, "9876", "sk-wro"] {
        assert!(!shown.contains(piece), "`{piece}` shown in {shown}");
    }
    // The connection check says the same.
    assert!(connector().test_connection(&c).await.is_err());
    assert!(connector()
        .test_connection(&conn(&sim.url, "sk-sandbox"))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_rate_limit_is_retryable_after_the_time_it_asks() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    fail_once(&sim.sim, 1, 429, Some(7));
    let e = run(&c, "generate", json!({"prompt": "hello"}))
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
    assert!(e.message.contains("429"), "{}", e.message);
    // The next call goes through.
    assert!(run(&c, "generate", json!({"prompt": "hello"}))
        .await
        .is_ok());
}

#[tokio::test]
async fn the_services_own_troubles_are_retryable_and_bad_requests_are_not() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    fail_once(&sim.sim, 1, 503, None);
    let e = run(&c, "generate", json!({"prompt": "hello"}))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{}", e.message);
    // A temperature the service refuses (400) is the flow's to fix.
    let e = run(&c, "generate", json!({"prompt": "hello", "temperature": 5}))
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.message.contains("Invalid 'temperature'"), "{}", e.message);
    // A server that is not there is worth trying again.
    sim.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = run(&c, "generate", json!({"prompt": "hello"}))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{}", e.message);
}

#[tokio::test]
async fn a_bad_fields_list_is_refused_before_any_call() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    let e = run(
        &c,
        "extract",
        json!({"text": INQUIRY, "fields": [{"name": "total", "type": "money"}]}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("`money`"), "{}", e.message);
    assert_eq!(sim.sim.stats()["calls"], 0);
}

#[test]
fn the_documented_flow_checks_clean() {
    let yaml = r#"
version: 1
id: inquiries
name: inquiries
trigger: { app: manual }
connections:
  model: { app: ai }
steps:
  - id: summary
    app: ai
    action: generate
    connection: model
    input:
      system: あなたはカスタマーサポートの担当者です。
      prompt: "次の問い合わせを 3 行で要約してください:\n{{ trigger.body }}"
      temperature: 0.2
      max_tokens: 300
  - id: inquiry
    app: ai
    action: extract
    connection: model
    input:
      text: "{{ trigger.body }}"
      fields:
        - { name: name, type: text, description: お名前, required: true }
        - { name: amount, type: number, description: 注文金額（円） }
      instructions: 金額は数値だけにしてください
  - id: note
    set: { who: "{{ inquiry.name }}", tokens: "{{ summary.usage.total_tokens }}" }
"#;
    let checked = flowbot_core::check(yaml, &flowbot_connectors::registry());
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
}

#[test]
fn plain_http_is_taken_only_for_a_server_nearby() {
    let check =
        |url: &str| connector().check_settings(&map(json!({"base_url": url, "model": "m"})));
    for ok in [
        "https://api.openai.com/v1",
        "http://127.0.0.1:8000/v1",
        "http://[::1]:8000/v1",
        "http://localhost:11434/v1",
        "http://10.0.0.5/v1",
        "http://llm-server/v1",
    ] {
        assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
    }
    for refused in [
        "http://api.openai.com/v1",
        "http://8.8.8.8/v1",
        "ftp://example.com/v1",
    ] {
        let e = check(refused).unwrap_err();
        assert!(e.contains("https://"), "{refused}: {e}");
    }
}

#[tokio::test]
async fn a_failed_second_try_still_accounts_for_the_first() {
    let sim = ai::start(AiConfig::default(), 0).await.unwrap();
    let c = conn(&sim.url, "sk-sandbox");
    sim.sim.bad_answers(BadAnswer::MissingField, 1);
    fail_once(&sim.sim, 2, 503, None);
    let e = run(
        &c,
        "extract",
        json!({"text": INQUIRY, "fields": inquiry_fields()}),
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    let details = e.details.expect("the first try's usage");
    assert_eq!(details["tries"], 1);
    assert!(
        details["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{details}"
    );
}
