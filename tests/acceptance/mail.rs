//! Scenario 14: mail that starts a flow, received through a server crash. A sending mail
//! server delivers 500 mails and, as real ones do, sends again whatever got no `250`
//! (a refused connection, a `451`, a connection cut mid-answer); the server is killed
//! with SIGKILL and restarted while they arrive. Every mail starts exactly one run.

use std::collections::HashMap;
use std::time::Duration;

use flowbot_sandbox::mail_sender::send_mail;

use crate::harness::{databases, record, wait_until, Flowbot, Tally};

const DOMAIN: &str = "in.example.com";

const MAIL_FLOW: &str = r#"version: 1
id: inbox
name: 受信メール
trigger:
  app: mail
  options:
    conditions:
      - { field: subject, op: contains, value: "注文" }
steps:
  - id: order
    set:
      subject: "{{ trigger.subject }}"
"#;

/// A mail as a Japanese mail program writes it: ISO-2022-JP, an encoded-word subject.
fn mail(i: usize) -> Vec<u8> {
    // 注文 as a mail program writes it in ISO-2022-JP: one JIS run between ESC $ B and
    // ESC ( B (the acceptance suite has no encoder, so the JIS bytes are written out).
    let mut jis = vec![0x1b, b'$', b'B', 0x43, 0x6d, 0x4a, 0x38, 0x1b, b'(', b'B'];
    jis.extend_from_slice(format!(" {i}").as_bytes());
    format!(
        "From: sender@example.jp\r\nTo: inbox@{DOMAIN}\r\nSubject: =?ISO-2022-JP?B?{}?=\r\n\
         Message-ID: <order-{i}@example.jp>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\r\nご注文 {i} の内容です。\r\n",
        base64(&jis)
    )
    .into_bytes()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Deliver as a sending mail server does: again, after a pause, until a `250`. Gives the
/// number of tries that got no `250`.
async fn deliver(smtp: &str, to: &str, message: &[u8]) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut failed = 0;
    loop {
        match send_mail(smtp, "sender@example.jp", &[to], message).await {
            Ok(d) if d.accepted() => return failed,
            _ => failed += 1,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a mail was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_mail_received_through_a_server_crash_starts_one_run_each() {
    const N: usize = 500;
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let smtp = format!("127.0.0.1:{}", free_port());
        let mut fb = Flowbot::start_args(
            db.clone(),
            dir.path(),
            vec![
                "--smtp-addr".into(),
                smtp.clone(),
                "--smtp-domain".into(),
                DOMAIN.into(),
            ],
        )
        .await;
        let token = fb.import_enabled(MAIL_FLOW, "inbox").await;
        let to = format!("{token}@{DOMAIN}");
        let sending = {
            let (smtp, to) = (smtp.clone(), to.clone());
            tokio::spawn(async move {
                let mut tasks = tokio::task::JoinSet::new();
                let mut failed = 0;
                for i in 0..N {
                    let (smtp, to) = (smtp.clone(), to.clone());
                    tasks.spawn(async move { deliver(&smtp, &to, &mail(i)).await });
                    // Eight connections at once, as a busy sending server keeps, paced so
                    // that the crash falls in the middle of the stream.
                    if tasks.len() >= 8 {
                        failed += tasks.join_next().await.unwrap().unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(4)).await;
                }
                while let Some(r) = tasks.join_next().await {
                    failed += r.unwrap();
                }
                failed
            })
        };
        wait_until("a third of the mails", Duration::from_secs(120), || async {
            fb.runs("inbox").await.len() >= N / 3
        })
        .await;
        fb.kill_server();
        tokio::time::sleep(Duration::from_millis(500)).await;
        fb.start_processes().await;
        fb.login().await;
        let refused = sending.await.unwrap();
        // The crash was felt: some tries got no `250` and were made again.
        assert!(refused > 0, "no delivery met the crash");
        let runs = fb.settle("inbox", N, Duration::from_secs(120)).await;
        let mut per_mail: HashMap<String, usize> = HashMap::new();
        for r in &runs {
            *per_mail
                .entry(r["trigger"]["message_id"].as_str().unwrap().to_string())
                .or_default() += 1;
            let subject = r["trigger"]["subject"].as_str().unwrap();
            assert!(subject.starts_with("注文 "), "decoded: {subject}");
        }
        let lost = (0..N)
            .filter(|i| !per_mail.contains_key(&format!("order-{i}@example.jp")))
            .count();
        let doubled: usize = per_mail.values().map(|n| n - 1).sum();
        assert_eq!((lost, doubled), (0, 0), "{} runs", runs.len());
        let failed = runs.iter().filter(|r| r["status"] == "failed").count();
        assert_eq!(failed, 0);
        record(&Tally {
            scenario: "14. mail received through a server crash",
            db: db.name(),
            events: N,
            succeeded: runs.len(),
            failed,
            duplicates: doubled,
            lost,
        });
    }
}
