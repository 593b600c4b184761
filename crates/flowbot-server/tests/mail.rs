//! The mail trigger against the real server: Japanese mail in ISO-2022-JP, Shift_JIS and
//! UTF-8 (encoded-word headers, quoted-printable and base64 bodies, attachments) is stored
//! with its run before the `250`, decoded exactly; the same mail sent again starts no
//! second run; conditions choose which mails start the flow; unknown recipients, other
//! domains, oversized mails and malformed commands get clear SMTP refusals.

use std::time::Duration;

use flowbot_sandbox::mail_sender::{send_mail, SendError};
use flowbot_server::smtp::MailConfig;
use flowbot_server::{App, AppConfig, ServerConfig};
use flowbot_store::{RunFilter, Store, StoreConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

const DOMAIN: &str = "in.example.com";

fn flow(conditions: &str) -> String {
    format!(
        r#"version: 1
id: inbox
name: 受信メール
trigger:
  app: mail
  options:
    conditions: {conditions}
steps:
  - id: note
    set:
      subject: "{{{{ trigger.subject }}}}"
"#
    )
}

struct T {
    store: Store,
    smtp: String,
    address: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for T {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn setup(conditions: &str, max_size: usize) -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let info = store
        .import_flow("inbox", "受信メール", &flow(conditions), "t")
        .await
        .unwrap();
    store.set_enabled("inbox", true, "t").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let app = App::start(
        store.clone(),
        flowbot_connectors::registry(),
        AppConfig {
            admin_password: Some("correct horse battery".into()),
            server: ServerConfig {
                mail: Some(MailConfig {
                    addr: "127.0.0.1:0".parse().unwrap(),
                    domain: DOMAIN.into(),
                    max_size,
                }),
                ..ServerConfig::default()
            },
            ..AppConfig::default()
        },
        listener,
        stop.clone(),
    )
    .await
    .unwrap();
    let smtp = app.smtp_addr.unwrap().to_string();
    tokio::spawn(app.wait());
    T {
        store,
        smtp,
        address: format!("{}@{DOMAIN}", info.webhook_token),
        stop,
        _dir: dir,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/mail")
            .join(name),
    )
    .unwrap()
}

impl T {
    async fn runs(&self) -> Vec<flowbot_store::RunInfo> {
        self.store
            .runs(&RunFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn japanese_mail_decodes_exactly_and_is_stored_before_the_250() {
    let t = setup("[]", MailConfig::DEFAULT_MAX_SIZE).await;
    let expected: Value = serde_json::from_slice(&fixture("expected.json")).unwrap();
    for (file, want) in expected.as_object().unwrap() {
        let d = send_mail(&t.smtp, "sender@example.jp", &[&t.address], &fixture(file))
            .await
            .unwrap();
        assert!(d.accepted(), "{file}: {d:?}");
        // Acknowledged means stored: the run is there the moment the 250 is read.
        let runs = t.runs().await;
        let run = runs
            .iter()
            .find(|r| r.trigger["message_id"] == want["message_id"])
            .unwrap_or_else(|| panic!("{file}: no run after the 250"));
        let got = &run.trigger;
        for key in ["subject", "from", "text", "html", "message_id", "date"] {
            assert_eq!(got[key], want[key], "{file}: `{key}`");
        }
        assert_eq!(got["from_address"], want["from"]["address"], "{file}");
        assert_eq!(got["recipient"], t.address.as_str(), "{file}");
        if let Some(cc) = want.get("cc") {
            let got_cc: Vec<&Value> = got["cc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["address"])
                .collect();
            assert_eq!(got_cc, cc.as_array().unwrap().iter().collect::<Vec<_>>());
        }
        let files = got["attachments"].as_array().unwrap();
        let want_files = want["attachments"].as_array().unwrap();
        assert_eq!(files.len(), want_files.len(), "{file}: {got}");
        for (f, w) in files.iter().zip(want_files) {
            assert_eq!(f["name"], w["name"], "{file}");
            assert_eq!(f["content_type"], w["content_type"], "{file}");
            assert_eq!(f["size"], w["size"], "{file}");
            assert_eq!(f["sha256"], w["sha256"], "{file}");
            let (_, bytes) = t
                .store
                .read_file(f["file_id"].as_str().unwrap())
                .await
                .unwrap();
            assert_eq!(bytes.len() as u64, w["size"].as_u64().unwrap());
        }
    }
    assert_eq!(t.runs().await.len(), 3);
}

#[tokio::test]
async fn the_same_mail_sent_again_starts_no_second_run() {
    let t = setup("[]", MailConfig::DEFAULT_MAX_SIZE).await;
    let mail = fixture("utf-8.eml");
    for _ in 0..3 {
        let d = send_mail(&t.smtp, "a@example.jp", &[&t.address], &mail)
            .await
            .unwrap();
        assert!(d.accepted(), "{d:?}");
    }
    assert_eq!(t.runs().await.len(), 1);
    let events = t.store.events(Some("inbox"), 10).await.unwrap();
    assert_eq!(events.len(), 3, "every delivery is recorded");
    assert_eq!(
        events.iter().filter(|e| e.outcome == "duplicate").count(),
        2,
        "{events:?}"
    );
}

#[tokio::test]
async fn only_mails_that_meet_the_conditions_start_the_flow() {
    let t = setup(
        r#"[{ field: subject, op: contains, value: "返品" }, { field: from, op: regex, value: "@example\\.co\\.jp>?$" }]"#,
        MailConfig::DEFAULT_MAX_SIZE,
    )
    .await;
    for file in ["iso-2022-jp.eml", "shift_jis.eml", "utf-8.eml"] {
        let d = send_mail(&t.smtp, "a@example.jp", &[&t.address], &fixture(file))
            .await
            .unwrap();
        assert!(
            d.accepted(),
            "a mail that does not match is still taken: {d:?}"
        );
    }
    let runs = t.runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].trigger["message_id"], "sjis-1@example.co.jp");
}

#[tokio::test]
async fn a_test_trigger_sees_the_next_mail_even_one_its_conditions_let_pass() {
    let t = setup(
        r#"[{ field: subject, op: contains, value: "返品" }]"#,
        MailConfig::DEFAULT_MAX_SIZE,
    )
    .await;
    for (file, meets) in [("shift_jis.eml", true), ("utf-8.eml", false)] {
        let capture = t
            .store
            .capture_open("inbox", Duration::from_secs(20))
            .await
            .unwrap();
        let d = send_mail(&t.smtp, "a@example.jp", &[&t.address], &fixture(file))
            .await
            .unwrap();
        assert!(d.accepted(), "{d:?}");
        let seen = t
            .store
            .capture_wait(&capture, Duration::from_secs(20))
            .await
            .unwrap()
            .expect("the mail is captured");
        let mail = if meets {
            assert!(seen.get("ignored").is_none(), "{seen}");
            &seen
        } else {
            assert!(
                seen["ignored"].as_str().unwrap().contains("conditions"),
                "{seen}"
            );
            &seen["mail"]
        };
        assert!(!mail["subject"].as_str().unwrap().is_empty(), "{seen}");
        assert!(mail["attachments"].is_array(), "{seen}");
    }
}

#[tokio::test]
async fn refusals_are_clear_and_nothing_is_stored() {
    let t = setup("[]", 4096).await;
    let refused = |r: Result<_, SendError>| match r {
        Err(SendError::Refused { code, text, .. }) => (code, text),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let unknown = format!("{}@{DOMAIN}", "0".repeat(48));
    let (code, _) =
        refused(send_mail(&t.smtp, "a@x.jp", &[&unknown], b"Subject: x\r\n\r\nx").await);
    assert_eq!(code, 550);
    let other_domain = t.address.replace(DOMAIN, "elsewhere.example");
    let (code, text) =
        refused(send_mail(&t.smtp, "a@x.jp", &[&other_domain], b"Subject: x\r\n\r\nx").await);
    assert_eq!(code, 550);
    assert!(text.contains("own flows"), "{text}");
    // Larger than the limit: read to its end and refused with 552.
    let big = format!("Subject: big\r\n\r\n{}\r\n", "あ".repeat(3000));
    let d = send_mail(&t.smtp, "a@x.jp", &[&t.address], big.as_bytes())
        .await
        .unwrap();
    assert_eq!(d.code, 552, "{d:?}");
    assert!(t.runs().await.is_empty());

    // By hand: a declared size over the limit, a command line too long, commands out of
    // order, and the conversation still going on after each.
    let stream = tokio::net::TcpStream::connect(&t.smtp).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line}");
    assert!(exchange(&mut r, &mut w, "DATA\r\n".into())
        .await
        .starts_with("503"));
    assert!(
        exchange(&mut r, &mut w, format!("NOOP {}\r\n", "x".repeat(5000)))
            .await
            .starts_with("500")
    );
    assert!(
        exchange(&mut r, &mut w, "MAIL FROM:<a@x.jp> SIZE=999999\r\n".into())
            .await
            .starts_with("552")
    );
    let ehlo = exchange(&mut r, &mut w, "EHLO client\r\n".into()).await;
    assert!(ehlo.contains("SIZE 4096"), "{ehlo}");
    assert!(exchange(&mut r, &mut w, "QUIT\r\n".into())
        .await
        .starts_with("221"));
}

#[tokio::test]
async fn a_dot_after_a_bare_line_feed_does_not_end_the_mail() {
    // SMTP smuggling: a relay that ends DATA only at CRLF . CRLF passes `\n.\n` on as
    // content; ending the mail there would take what follows as a second mail.
    let t = setup("[]", MailConfig::DEFAULT_MAX_SIZE).await;
    let stream = tokio::net::TcpStream::connect(&t.smtp).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    exchange(&mut r, &mut w, "EHLO relay\r\n".into()).await;
    exchange(&mut r, &mut w, "MAIL FROM:<a@example.jp>\r\n".into()).await;
    let rcpt = exchange(&mut r, &mut w, format!("RCPT TO:<{}>\r\n", t.address)).await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(exchange(&mut r, &mut w, "DATA\r\n".into())
        .await
        .starts_with("354"));
    let smuggled = format!(
        "Subject: first\r\nMessage-ID: <first@example.jp>\r\n\r\nhello\n.\nMAIL FROM:<ceo@example.co.jp>\r\n\
         RCPT TO:<{}>\r\nDATA\r\nSubject: forged\r\n\r\npay now\r\n.\r\n",
        t.address
    );
    let answer = exchange(&mut r, &mut w, smuggled).await;
    assert!(answer.starts_with("250"), "{answer}");
    let runs = t.runs().await;
    assert_eq!(runs.len(), 1, "one mail, not two: {runs:?}");
    assert_eq!(runs[0].trigger["subject"], "first");
    assert!(
        runs[0].trigger["text"]
            .as_str()
            .unwrap()
            .contains("pay now"),
        "the rest is the first mail's content: {}",
        runs[0].trigger["text"]
    );
}

/// Send one command line and read its whole answer.
async fn exchange(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    cmd: String,
) -> String {
    w.write_all(cmd.as_bytes()).await.unwrap();
    let mut text = String::new();
    loop {
        let mut l = String::new();
        tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut l))
            .await
            .unwrap()
            .unwrap();
        text.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return text;
        }
    }
}
