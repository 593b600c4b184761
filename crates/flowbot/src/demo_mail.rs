//! `flowbot demo --template mail-inquiry-ai-to-slack`: the server receives mail on a
//! loopback SMTP port; inquiry mails in ISO-2022-JP, Shift_JIS and UTF-8 (with full-width
//! phone numbers and half-width kana names) are sent to the flow's address by a sending
//! mail server's rules; the sandbox's OpenAI-compatible model extracts their fields, the
//! transforms tidy them, and the Slack sink gets one message per inquiry. A mail that does
//! not meet the trigger's condition starts nothing; one sent twice starts one run.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use flowbot_core::Apps;
use flowbot_sandbox::ai::{self, AiConfig};
use flowbot_sandbox::mail_sender::send_mail;
use flowbot_sandbox::sinks;
use flowbot_server::smtp::MailConfig;
use flowbot_store::{RunStatus, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::setup::object;

/// The templates this demo runs.
pub const TEMPLATES: &[&str] = &["mail-inquiry-ai-to-slack"];

const DOMAIN: &str = "inbox.flowbot.test";

/// An inquiry: the sender, its charset, subject and body, and what Slack must show.
struct Inquiry {
    from: &'static str,
    charset: &'static str,
    subject: &'static str,
    body: &'static str,
    expect: &'static [&'static str],
}

const INQUIRIES: &[Inquiry] = &[
    Inquiry {
        from: "taro.yamada@example.jp",
        charset: "ISO-2022-JP",
        subject: "商品についてのお問い合わせ",
        body: "お名前：ﾔﾏﾀﾞ ﾀﾛｳ\r\nメールアドレス：taro.yamada@example.jp\r\n\
               電話番号：０３－１２３４－５６７８\r\nご注文番号：ＡＢ－１２３４５\r\n\
               お問い合わせ内容：注文した商品がまだ届きません\r\n",
        expect: &[
            "ヤマダ タロウ 様",
            "電話 03-1234-5678",
            "注文番号 AB-12345",
            "まだ届きません",
        ],
    },
    Inquiry {
        from: "hanako.sato@example.jp",
        charset: "Shift_JIS",
        subject: "返品のお問い合わせ",
        body: "お名前：佐藤 花子\r\nメールアドレス：hanako.sato@example.jp\r\n\
               電話番号：06-2345-6789\r\nご注文番号：ＣＤ－９８７６\r\n\
               お問い合わせ内容：サイズが合わないので交換したいです\r\n",
        expect: &[
            "佐藤 花子 様",
            "電話 06-2345-6789",
            "注文番号 CD-9876",
            "交換したい",
        ],
    },
    Inquiry {
        from: "ichiro@example.co.jp",
        charset: "UTF-8",
        subject: "お問い合わせ：請求書の再発行",
        body: "お名前：ｽｽﾞｷ ｲﾁﾛｳ\r\nメールアドレス：ichiro@example.co.jp\r\n\
               お問い合わせ内容：先月分の請求書を再発行してください\r\n",
        expect: &[
            "スズキ イチロウ 様",
            "電話 なし",
            "注文番号 なし",
            "再発行して",
        ],
    },
];

/// A mail as a mail program writes it: the subject as an encoded word and the body in the
/// charset (ISO-2022-JP and Shift_JIS as 7-bit-safe base64, UTF-8 as quoted-printable).
fn compose(i: usize, q: &Inquiry, to: &str) -> Vec<u8> {
    let encode = |text: &str| -> Vec<u8> {
        match q.charset {
            "ISO-2022-JP" => encoding_rs::ISO_2022_JP.encode(text).0.into_owned(),
            "Shift_JIS" => encoding_rs::SHIFT_JIS.encode(text).0.into_owned(),
            _ => text.as_bytes().to_vec(),
        }
    };
    let b64 =
        |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let (transfer, body) = match q.charset {
        "UTF-8" => ("quoted-printable", quoted_printable(q.body.as_bytes())),
        _ => ("base64", b64(&encode(q.body))),
    };
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: =?{cs}?B?{subject}?=\r\n\
         Message-ID: <inquiry-{i}@example.jp>\r\nDate: Wed, 02 Dec 2026 10:0{i}:00 +0900\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset={cs}\r\n\
         Content-Transfer-Encoding: {transfer}\r\n\r\n{body}\r\n",
        from = q.from,
        cs = q.charset,
        subject = b64(&encode(q.subject)),
    )
    .into_bytes()
}

/// Quoted-printable with soft line breaks, as mail programs write UTF-8 text.
fn quoted_printable(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut line = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\r\n") {
            out.push_str("\r\n");
            line = 0;
            i += 2;
            continue;
        }
        let b = bytes[i];
        let piece = if (b' '..=b'~').contains(&b) && b != b'=' {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if line + piece.len() > 72 {
            out.push_str("=\r\n");
            line = 0;
        }
        line += piece.len();
        out.push_str(&piece);
        i += 1;
    }
    out
}

/// Deliver as a sending mail server does: again after a pause until a `250` (at most 30 s).
async fn deliver(smtp: &str, to: &str, raw: &[u8]) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match send_mail(smtp, "sender@example.jp", &[to], raw).await {
            Ok(d) if d.accepted() => return Ok(format!("{} {}", d.code, d.text)),
            Ok(d) if d.code >= 500 => anyhow::bail!("refused: {} {}", d.code, d.text),
            other if Instant::now() > deadline => anyhow::bail!("not accepted: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub async fn run(
    store: Store,
    apps: Apps,
    dir: &std::path::Path,
    args: &crate::demo::Args,
) -> anyhow::Result<ExitCode> {
    let template_id = TEMPLATES[0];
    let sink = sinks::start(0).await?;
    let model = ai::start(AiConfig::default(), 0).await?;
    let stop = CancellationToken::new();
    let mail = MailConfig {
        addr: "127.0.0.1:0".parse().expect("an address"),
        domain: DOMAIN.into(),
        max_size: MailConfig::DEFAULT_MAX_SIZE,
    };
    let app = crate::demo::start_server_with(
        &store,
        &apps,
        &args.bind,
        args.port,
        Some(mail),
        stop.clone(),
    )
    .await?;
    let smtp = app
        .smtp_addr
        .context("the server receives mail")?
        .to_string();

    let t = flowbot_connectors::templates::template(template_id).context("embedded")?;
    let flow = flowbot_core::check(t.yaml, &apps)
        .flow
        .with_context(|| format!("template {} does not validate", t.file))?;
    let info = store.import_flow(t.id, &flow.name, t.yaml, "demo").await?;
    let cfg = model.sim.config();
    for (slot, app_id, name, settings) in [
        (
            "ai",
            "ai",
            "AI (sandbox)",
            json!({"base_url": format!("{}/v1", model.url), "api_key": cfg.api_key, "model": cfg.model}),
        ),
        (
            "slack",
            "slack",
            "Slack (sandbox)",
            json!({"webhook_url": format!("{}/slack/demo", sink.url)}),
        ),
    ] {
        let conn = store
            .save_connection(name, app_id, &object(settings), "demo")
            .await?;
        store.bind_connection(t.id, slot, &conn.id, "demo").await?;
    }
    store.set_enabled(t.id, true, "demo").await?;
    let to = format!("{}@{DOMAIN}", info.webhook_token);

    println!("flowbot demo — {template_id}");
    println!(
        "  web UI:               {}/flows/{} (user `admin`{})",
        app.url(),
        t.id,
        app.generated_admin_password
            .as_deref()
            .map(|p| format!(", password `{p}`"))
            .unwrap_or_default()
    );
    println!("  mail server (SMTP):   {smtp}");
    println!("  the flow's address:   {to}");
    println!("  AI model simulator:   {}/v1", model.url);
    println!("  Slack seen:           {}/__control/slack", sink.url);
    println!("  data directory:       {}", dir.display());

    println!("\nsending inquiry mails…");
    for (i, q) in INQUIRIES.iter().enumerate() {
        let answer = deliver(&smtp, &to, &compose(i, q, &to)).await?;
        println!("  {} ({}) — {answer}", q.subject, q.charset);
    }
    // The first mail again, as a sender that lost the `250` would send it: no second run.
    let again = deliver(&smtp, &to, &compose(0, &INQUIRIES[0], &to)).await?;
    println!("  the first mail again — {again}");
    // Not an inquiry: the trigger's condition (the subject has 問い合わせ) lets it pass.
    let other = Inquiry {
        from: "news@example.com",
        charset: "UTF-8",
        subject: "今週のニュースレター",
        body: "新商品のご案内です。\r\n",
        expect: &[],
    };
    let news = deliver(&smtp, &to, &compose(9, &other, &to)).await?;
    println!("  a newsletter — {news} (no run: the subject has no 問い合わせ)");

    let (ok, failed) = settle(&store, t.id, INQUIRIES.len() as i64).await?;
    let slack = sink.sim.slack_messages();
    println!("\nSlack messages:");
    let texts: Vec<String> = slack
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap_or("").to_string())
        .collect();
    for t in &texts {
        println!("  {t}");
    }
    let tidy = INQUIRIES
        .iter()
        .filter(|q| {
            texts
                .iter()
                .any(|t| q.expect.iter().all(|want| t.contains(want)))
        })
        .count();
    let tokens = model.sim.stats();
    println!(
        "\nruns: {ok} succeeded, {failed} failed · Slack messages: {} for {} inquiries · \
         read and tidied as expected: {tidy} · model tokens: {}",
        texts.len(),
        INQUIRIES.len(),
        tokens["prompt_tokens"].as_u64().unwrap_or(0)
            + tokens["completion_tokens"].as_u64().unwrap_or(0)
    );
    let n = INQUIRIES.len();
    let good = failed == 0 && ok as usize == n && texts.len() == n && tidy == n;
    println!("{}", if good { "OK" } else { "NOT OK" });

    crate::demo::finish(
        app,
        stop,
        args.once,
        &format!(
            "send mail to {to} at {smtp} (any mail program, or `swaks --server {smtp} --to {to}`) \
             and watch Slack at {}/__control/slack.",
            sink.url
        ),
        good,
    )
    .await
}

/// Wait until `n` runs of the flow have ended and none is left (at most a minute).
async fn settle(store: &Store, flow: &str, n: i64) -> anyhow::Result<(i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut busy = 0;
        for s in [RunStatus::Queued, RunStatus::Running] {
            busy += store.count_runs(Some(flow), s).await?;
        }
        let ok = store.count_runs(Some(flow), RunStatus::Succeeded).await?;
        let failed = store.count_runs(Some(flow), RunStatus::Failed).await?;
        if (busy == 0 && ok + failed >= n) || Instant::now() > deadline {
            return Ok((ok, failed));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
