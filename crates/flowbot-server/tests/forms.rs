//! The form trigger against the real server: the page drawn from the flow's fields, every
//! wrong answer refused next to its field with nothing stored, a good one stored with its
//! run before the thanks, bots and floods turned away, members-only forms closed to
//! strangers, and a form's problems reported with their line.

mod common;

use flowbot_store::{RunFilter, Store, StoreConfig};
use serde_json::json;

const FORM: &str = r#"version: 1
id: contact
name: お問い合わせ
trigger:
  app: form
  options:
    title: { ja: お問い合わせ, en: Contact us }
    thanks: お問い合わせを受け付けました。
    fields:
      - { key: name, label: { ja: お名前, en: Name }, required: true, max_length: 20 }
      - { key: email, label: メールアドレス, type: email, required: true }
      - { key: topic, label: 種別, type: select, choices: [見積, 不具合] }
      - { key: body, label: 内容, type: long_text }
steps:
  - id: note
    set: { who: "{{ trigger.name }}" }
"#;

struct Setup {
    url: String,
    form: String,
    store: Store,
    http: reqwest::Client,
    _app: common::TestApp,
    _dir: tempfile::TempDir,
}

async fn setup(yaml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let info = store
        .import_flow("contact", "お問い合わせ", yaml, "test")
        .await
        .unwrap();
    store.set_enabled("contact", true, "test").await.unwrap();
    let app = common::spawn_server(&store, "correct horse battery").await;
    let form = format!("/forms/contact/{}", info.webhook_token);
    Setup {
        url: app.url.clone(),
        form,
        store,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _app: app,
        _dir: dir,
    }
}

impl Setup {
    async fn send(&self, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{}", self.url, self.form))
            .header("accept-language", "ja")
            .form(pairs)
            .send()
            .await
            .unwrap()
    }

    async fn runs(&self) -> Vec<flowbot_store::RunInfo> {
        self.store
            .runs(&RunFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn events(&self) -> usize {
        self.store.events(None, 100).await.unwrap().len()
    }
}

#[tokio::test]
async fn a_form_is_answered_checked_and_stored_with_its_run() {
    let s = setup(FORM).await;
    let page = s
        .http
        .get(format!("{}{}", s.url, s.form))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Contact us") && html.contains("Name"),
        "{html}"
    );
    assert!(html.contains(r#"<select id="f-topic""#) && html.contains("<textarea"));
    let wrong = s
        .http
        .get(format!("{}/forms/contact/not-the-token", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);

    // Wrong answers: each error next to its field, the answers kept, nothing stored.
    let r = s
        .send(&[("name", "山田"), ("email", "yamada"), ("topic", "ほか")])
        .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"id="e-email""#) && html.contains("メールアドレスを入力してください。"),
        "{html}"
    );
    assert!(html.contains(r#"id="e-topic""#));
    assert!(!html.contains(r#"id="e-name""#));
    assert!(html.contains(r#"value="山田""#), "what was typed stays");
    assert_eq!(s.events().await, 0);

    // A good answer: stored with its run, then thanked.
    let r = s
        .send(&[
            ("name", "山田 太郎"),
            ("email", "taro@example.co.jp"),
            ("topic", "見積"),
            ("body", "10台の見積をお願いします。\n納期も教えてください。"),
        ])
        .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.ends_with("?sent=1"), "{to}");
    let thanks = s
        .http
        .get(format!("{}{to}", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(thanks.contains("お問い合わせを受け付けました。"));
    let runs = s.runs().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].trigger,
        json!({ "name": "山田 太郎", "email": "taro@example.co.jp", "topic": "見積",
                "body": "10台の見積をお願いします。\n納期も教えてください。" })
    );
    let events = s.store.events(None, 10).await.unwrap();
    assert_eq!(events[0].source, "form");
    // The run page shows the answers under the form's own labels.
    let r = s
        .http
        .post(format!("{}/api/v1/login", s.url))
        .json(&json!({ "username": "admin", "password": "correct horse battery" }))
        .send()
        .await
        .unwrap();
    let cookie = common::set_cookie(&r);
    let run_page = s
        .http
        .get(format!("{}/runs/{}", s.url, runs[0].id))
        .header("cookie", cookie)
        .header("accept-language", "ja")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        run_page.contains("お名前") && run_page.contains("山田 太郎"),
        "{run_page}"
    );

    // A bot fills the hidden field: thanked all the same, nothing stored.
    let r = s
        .send(&[
            ("name", "bot"),
            ("email", "bot@example.com"),
            ("website", "http://spam.example"),
        ])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(s.events().await, 1);

    // A flood from one address is cut off.
    let mut last = 0;
    for i in 0..12 {
        let r = s
            .send(&[("name", &format!("n{i}")), ("email", "a@example.co.jp")])
            .await;
        last = r.status().as_u16();
    }
    assert_eq!(last, 429);
    assert!(s.events().await <= 11, "{}", s.events().await);

    // An answer larger than any form takes is refused unread.
    let big = "x".repeat(300 * 1024);
    let r = s.send(&[("body", &big)]).await;
    assert!(matches!(r.status().as_u16(), 413 | 429), "{}", r.status());
}

#[tokio::test]
async fn a_form_of_a_flow_switched_off_or_for_members_takes_no_stranger_s_answer() {
    let s = setup(FORM).await;
    s.store.set_enabled("contact", false, "test").await.unwrap();
    let r = s
        .send(&[("name", "山田"), ("email", "taro@example.co.jp")])
        .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("現在受け付けていません"));
    let members = setup(&FORM.replace(
        "    thanks: お問い合わせを受け付けました。",
        "    thanks: お問い合わせを受け付けました。\n    members_only: true",
    ))
    .await;
    let r = members
        .http
        .get(format!("{}{}", members.url, members.form))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let r = members
        .send(&[("name", "山田"), ("email", "taro@example.co.jp")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(members.events().await, 0);
}

#[test]
fn a_form_s_problems_name_their_field_and_line() {
    let bad = FORM
        .replace("type: email", "type: mail")
        .replace("choices: [見積, 不具合]", "choices: []");
    let checked = flowbot_core::check(&bad, &flowbot_connectors::registry());
    assert!(checked.flow.is_none());
    let d: Vec<(usize, String)> = checked
        .diagnostics
        .iter()
        .map(|d| (d.line, d.message.clone()))
        .collect();
    assert!(
        d.iter()
            .any(|(line, m)| *line == 11 && m.contains("`mail` is not a field type")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|(line, m)| *line == 12 && m.contains("needs `choices`")),
        "{d:?}"
    );
}

#[tokio::test]
async fn the_same_filling_in_sent_twice_is_stored_once() {
    let s = setup(FORM).await;
    let page = s
        .http
        .get(format!("{}{}", s.url, s.form))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let id = page
        .split(r#"name="_submission" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page names its filling-in")
        .to_string();
    let answer = [
        ("name", "山田"),
        ("email", "taro@example.co.jp"),
        ("_submission", id.as_str()),
    ];
    // A retry after an answer that seemed lost, and a double click.
    for _ in 0..3 {
        assert_eq!(s.send(&answer).await.status(), 303);
    }
    let runs = s.runs().await;
    assert_eq!(runs.len(), 1, "one filling-in, one run");
    assert!(runs[0].trigger.get("_submission").is_none());
    // Another filling-in of the same answers is another answer.
    assert_eq!(
        s.send(&[("name", "山田"), ("email", "taro@example.co.jp")])
            .await
            .status(),
        303
    );
    assert_eq!(s.runs().await.len(), 2);
}

/// The editor offers a form's fields as the trigger's obtained values, with their labels.
#[tokio::test]
async fn the_editor_offers_the_form_s_fields_as_obtained_values() {
    let s = setup(FORM).await;
    let (admin, _) = s.store.user_for_login("admin").await.unwrap().unwrap();
    let token = format!("fbt_{}", flowbot_server::auth::random_token());
    s.store
        .create_api_token(
            &admin,
            "t",
            false,
            &flowbot_server::auth::token_hash(&token),
            "test",
        )
        .await
        .unwrap();
    let values: serde_json::Value = s
        .http
        .post(format!("{}/api/v1/editor/values", s.url))
        .bearer_auth(&token)
        .json(&json!({ "yaml": FORM, "step_id": "note" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let trigger = &values["groups"][0];
    assert_eq!(trigger["id"], "trigger", "{values}");
    let text = trigger.to_string();
    for (expr, label) in [
        ("trigger.email", "メールアドレス"),
        ("trigger.name", "お名前"),
    ] {
        assert!(
            text.contains(expr) && text.contains(label),
            "{expr}: {text}"
        );
    }
}
