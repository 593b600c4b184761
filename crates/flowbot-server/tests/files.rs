//! Files sent with a form answer, against the real server and worker: streamed to the
//! store with their checksum and attached with the answer, refused next to their field when
//! too large or of a kind the field does not take (nothing stored then), downloaded only by
//! those who may read the flow, and sent on as an email attachment.

mod common;

use std::time::Duration;

use flowbot_engine::WorkerConfig;
use flowbot_server::AppConfig;
use flowbot_store::{Role, RunFilter, RunStatus, Store, StoreConfig};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

const FLOW: &str = r#"version: 1
id: receipts
name: 領収書
connections:
  mail: { app: email }
trigger:
  app: form
  options:
    title: 領収書の提出
    fields:
      - { key: name, label: お名前, required: true }
      - { key: receipt, label: 領収書, type: file, required: true, max_size: 2KB, accept: [txt, pdf] }
steps:
  - id: forward
    app: email
    action: send_email
    connection: mail
    input:
      to: keiri@example.jp
      subject: "{{ trigger.name }} の領収書"
      body: 添付します
      attachments: ["{{ trigger.receipt }}"]
"#;

struct T {
    url: String,
    form: String,
    store: Store,
    smtp: flowbot_sandbox::smtp::SmtpSink,
    http: reqwest::Client,
    _app: common::TestApp,
    _dir: tempfile::TempDir,
}

async fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let smtp = flowbot_sandbox::smtp::start().await.unwrap();
    let info = store
        .import_flow("receipts", "領収書", FLOW, "t")
        .await
        .unwrap();
    let mut settings = serde_json::Map::new();
    for (k, v) in [
        ("host", json!("127.0.0.1")),
        ("port", json!(smtp.port)),
        ("security", json!("plain")),
        ("from", json!("flowbot@example.jp")),
    ] {
        settings.insert(k.into(), v);
    }
    let conn = store
        .save_connection("mail", "email", &settings, "t")
        .await
        .unwrap();
    store
        .bind_connection("receipts", "mail", &conn.id, "t")
        .await
        .unwrap();
    store.set_enabled("receipts", true, "t").await.unwrap();
    let app = common::spawn_app(
        &store,
        AppConfig {
            admin_password: Some(PASSWORD.into()),
            worker: Some(WorkerConfig {
                idle_poll: Duration::from_millis(50),
                ..WorkerConfig::default()
            }),
            ..AppConfig::default()
        },
    )
    .await;
    T {
        url: app.url.clone(),
        form: format!("/forms/receipts/{}", info.webhook_token),
        store,
        smtp,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _app: app,
        _dir: dir,
    }
}

impl T {
    async fn send(&self, name: &str, file: &str, bytes: Vec<u8>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file.to_string())
            .mime_str("text/plain")
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("name", name.to_string())
            .part("receipt", part);
        self.http
            .post(format!("{}{}", self.url, self.form))
            .header("accept-language", "ja")
            .multipart(form)
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

    /// A signed-in member's API token.
    async fn token(&self, name: &str, role: Role) -> String {
        common::member_token(&self.store, name, role).await
    }
}

#[tokio::test]
async fn a_file_is_stored_with_its_answer_downloaded_and_sent_as_an_attachment() {
    let t = setup().await;
    let page = t
        .http
        .get(format!("{}{}", t.url, t.form))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("enctype=\"multipart/form-data\""), "{page}");
    assert!(
        page.contains("type=\"file\"") && page.contains("accept=\".txt,.pdf\""),
        "{page}"
    );

    let content: Vec<u8> = (0..1500u32).map(|i| b'a' + (i % 26) as u8).collect();
    let r = t
        .send("山田", "C:\\Users\\yamada\\領収書.txt", content.clone())
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let mut run = None;
    for _ in 0..200 {
        if let Some(r) = t
            .runs()
            .await
            .into_iter()
            .find(|r| r.status == RunStatus::Succeeded)
        {
            run = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = run.expect("the answer's run succeeds");
    let receipt = &run.trigger["receipt"];
    assert_eq!(
        receipt["name"], "領収書.txt",
        "the path a browser sends is not kept"
    );
    assert_eq!(receipt["size"], 1500);
    assert_eq!(receipt["content_type"], "text/plain");
    assert_eq!(receipt["sha256"].as_str().unwrap().len(), 64);

    // Downloaded by a member who reads the flow, as sent; not by one who does not.
    let id = receipt["file_id"].as_str().unwrap();
    let viewer = t.token("viewer1", Role::Viewer).await;
    let r = t
        .http
        .get(format!("{}/api/v1/files/{id}", t.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename*=UTF-8''"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), content);
    let operator = t.token("op1", Role::Operator).await;
    let r = t
        .http
        .get(format!("{}/api/v1/files/{id}", t.url))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "an operator asked nothing in the run cannot"
    );

    // The email step attached it.
    let mails = t.smtp.mails();
    assert_eq!(mails.len(), 1);
    let data = &mails[0].data;
    assert!(data.contains("multipart/mixed"), "{data}");
    assert!(data.contains("Content-Disposition: attachment"), "{data}");
    // Plain text goes as it is (7bit); anything else would be base64.
    let raw = String::from_utf8(content[..60].to_vec()).unwrap();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&content[..57]);
    assert!(
        data.contains(&raw) || data.contains(&encoded[..40]),
        "the attachment's bytes are in the mail: {data}"
    );
    assert!(
        data.contains("%E9%A0%98%E5%8F%8E%E6%9B%B8.txt"),
        "the file keeps its name: {data}"
    );
}

#[tokio::test]
async fn a_file_too_large_or_of_the_wrong_kind_is_refused_next_to_its_field() {
    let t = setup().await;
    let r = t.send("山田", "big.txt", vec![b'x'; 3000]).await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"e-receipt\""), "{page}");
    assert!(page.contains("ファイルが大きすぎます"), "{page}");
    let r = t.send("山田", "virus.exe", vec![b'x'; 10]).await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("この種類のファイルは添付できません"),
        "{page}"
    );
    // Nothing was stored: no run, no file, nothing left in the upload folder.
    assert!(t.runs().await.is_empty());
    let uploads = t.store.data_dir().join("uploads");
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "spooled files are removed");
    // A body far over the form's limits is cut off.
    let r = t
        .send("山田", "huge.txt", vec![b'x'; 2 * 1024 * 1024])
        .await;
    assert_eq!(r.status(), 413);
}
