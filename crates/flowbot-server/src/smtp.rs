//! The mail trigger's receiver: a small SMTP server (`flowbot serve --smtp-addr`) that
//! takes mail for `<token>@<domain>` — the token is the flow's webhook token — and answers
//! the end of `DATA` with `250` only once the parsed mail is stored with its run, the
//! webhooks' promise: once acknowledged, never lost. A mail that cannot be stored now gets
//! a temporary `451`, so the sending server tries again; the same mail sent again (its
//! `Message-ID`, or its bytes when it has none) is stored once.
//!
//! Written by hand because it is only the receiving half of RFC 5321 without relaying:
//! the commands a sending server needs (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
//! every line, the message, the recipients, the connections and each wait bounded. The
//! MIME message itself is read by `mail-parser`. It speaks plain SMTP: put it behind a
//! mail server or a proxy that terminates TLS when mail crosses a network you do not own.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use flowbot_core::mail;
use flowbot_core::runner::concurrency_key;
use flowbot_store::{EnqueueOutcome, NewEvent, Source};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// Where and how the receiver listens.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub addr: SocketAddr,
    /// The domain of the flows' addresses (`<token>@<domain>`); recipients at any other
    /// domain are refused (no relaying).
    pub domain: String,
    /// The largest mail taken, in bytes (announced with `SIZE`).
    pub max_size: usize,
}

impl MailConfig {
    pub const DEFAULT_MAX_SIZE: usize = 25 * 1024 * 1024;
}

/// The longest command line (RFC 5321 says 512; some senders add parameters).
const MAX_COMMAND: usize = 2048;
/// Recipients of one mail.
const MAX_RECIPIENTS: usize = 20;
/// Connections served at once; one more is told to come back (`421`).
const MAX_CONNECTIONS: usize = 64;
/// How long a client may stay silent while it owes a command or message bytes.
const IDLE: Duration = Duration::from_secs(60);
/// How long one connection may last in all.
const SESSION: Duration = Duration::from_secs(10 * 60);
/// The most attachments kept of one mail.
const MAX_ATTACHMENTS: usize = 50;
/// The text and HTML bodies kept in the trigger's value (each); a longer body is cut and
/// marked `truncated`. Attachments are stored as files and are bounded by the mail's size.
const MAX_BODY_TEXT: usize = 1024 * 1024;
/// Memory all mails being received and parsed may take together, in MiB. A mail is
/// charged twice its size (its bytes and what the parser makes of them); one that does not
/// fit now is told to come back (`452`), so many large mails at once cannot exhaust memory.
const MEMORY_BUDGET_MIB: u32 = 512;
/// Connections one address may hold at once: one sender cannot take every slot.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;
/// The same mail sent again within this window starts no second run.
const DEDUPE_WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);

/// Accept mail on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    cfg: MailConfig,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let budget = Arc::new(tokio::sync::Semaphore::new(MEMORY_BUDGET_MIB as usize));
    let per_address: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let cfg = Arc::new(cfg);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "the mail receiver could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let held = AddressSlot::take(&per_address, peer.ip());
        let permit = slots.clone().try_acquire_owned();
        let (Some(held), Ok(permit)) = (held, permit) else {
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"421 4.3.2 too many connections, try again later\r\n")
                    .await;
            });
            continue;
        };
        let (state, cfg, shutdown) = (state.clone(), cfg.clone(), shutdown.clone());
        let budget = budget.clone();
        tokio::spawn(async move {
            let (_permit, _held) = (permit, held);
            let session = Session::new(&state, &cfg, peer, budget);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = tokio::time::timeout(SESSION, session.run(stream)) => {
                    if r.is_err() {
                        tracing::info!(%peer, "a mail connection lasted too long and was closed");
                    }
                }
            }
        });
    }
}

/// One of an address's connections, given back when dropped.
struct AddressSlot {
    counts: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl AddressSlot {
    fn take(counts: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<Self> {
        let mut c = counts.lock().expect("connection counts");
        let n = c.entry(ip).or_default();
        if *n >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().expect("connection counts");
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

/// One recipient the mail goes to: its flow.
struct Recipient {
    address: String,
    flow: flowbot_store::FlowInfo,
}

struct Session<'a> {
    state: &'a AppState,
    cfg: &'a MailConfig,
    peer: SocketAddr,
    from: Option<String>,
    to: Vec<Recipient>,
    budget: Arc<tokio::sync::Semaphore>,
}

/// A line read from the client.
enum Line {
    Text(Vec<u8>),
    /// Longer than allowed: its bytes were read to its end and dropped.
    TooLong,
    /// The client closed the connection.
    Closed,
}

/// Read one line (up to and including `\n`) of at most `max` bytes; a longer one is read
/// to its end and dropped, so the conversation stays in step.
async fn read_line(r: &mut (impl AsyncBufRead + Unpin), max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = tokio::time::timeout(IDLE, r.fill_buf())
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if buf.is_empty() {
            return Ok(Line::Closed);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long {
            if line.len() + take > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(&buf[..take]);
            }
        }
        r.consume(take);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            });
        }
    }
}

/// The address inside `<…>` of a `MAIL FROM:` / `RCPT TO:` argument.
fn angle_address(arg: &str) -> Option<&str> {
    let start = arg.find('<')?;
    let end = start + arg[start..].find('>')?;
    Some(arg[start + 1..end].trim())
}

impl<'a> Session<'a> {
    fn new(
        state: &'a AppState,
        cfg: &'a MailConfig,
        peer: SocketAddr,
        budget: Arc<tokio::sync::Semaphore>,
    ) -> Session<'a> {
        Session {
            state,
            cfg,
            peer,
            from: None,
            to: Vec::new(),
            budget,
        }
    }

    async fn run(mut self, stream: TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let greeting = format!("220 {} flowbot ESMTP ready\r\n", self.cfg.domain);
        if write.write_all(greeting.as_bytes()).await.is_err() {
            return;
        }
        loop {
            let line = match read_line(&mut read, MAX_COMMAND).await {
                Ok(Line::Text(l)) => l,
                Ok(Line::TooLong) => {
                    if reply(&mut write, "500 5.5.2 line too long").await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(Line::Closed) | Err(_) => return,
            };
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let (verb, arg) = match text.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
                None => (text.to_ascii_uppercase(), ""),
            };
            let answer = match verb.as_str() {
                "EHLO" => format!(
                    "250-{} greets {}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250 SMTPUTF8",
                    self.cfg.domain,
                    arg.chars().take(100).collect::<String>(),
                    self.cfg.max_size
                ),
                "HELO" => format!("250 {}", self.cfg.domain),
                "MAIL" => self.mail_from(arg),
                "RCPT" => self.rcpt_to(arg).await,
                "DATA" => {
                    if self.from.is_none() || self.to.is_empty() {
                        "503 5.5.1 give MAIL FROM and RCPT TO first".to_string()
                    } else {
                        if reply(&mut write, "354 end the mail with <CRLF>.<CRLF>")
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let read = read_data(&mut read, self.cfg.max_size, &self.budget).await;
                        let answer = match read {
                            Ok(Data::Mail(raw, _charged)) => self.deliver(raw).await,
                            Ok(Data::TooLarge) => format!(
                                "552 5.3.4 the mail is larger than {} bytes",
                                self.cfg.max_size
                            ),
                            Ok(Data::Busy) => {
                                "452 4.3.1 too many large mails at once; try again later"
                                    .to_string()
                            }
                            Err(_) => return,
                        };
                        self.reset();
                        answer
                    }
                }
                "RSET" => {
                    self.reset();
                    "250 2.0.0 OK".to_string()
                }
                "NOOP" => "250 2.0.0 OK".to_string(),
                "VRFY" => "252 2.1.5 cannot verify, send the mail".to_string(),
                "QUIT" => {
                    let _ = reply(&mut write, "221 2.0.0 bye").await;
                    return;
                }
                "STARTTLS" | "AUTH" | "BDAT" => "502 5.5.1 not offered".to_string(),
                _ => "500 5.5.2 unknown command".to_string(),
            };
            if reply(&mut write, &answer).await.is_err() {
                return;
            }
        }
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    fn mail_from(&mut self, arg: &str) -> String {
        let Some(rest) = strip_prefix_ci(arg, "FROM:") else {
            return "501 5.5.4 use MAIL FROM:<address>".to_string();
        };
        let Some(address) = angle_address(rest) else {
            return "501 5.5.4 use MAIL FROM:<address>".to_string();
        };
        // A declared size over the limit is refused before any byte of the mail is sent.
        let declared = rest
            .split_whitespace()
            .find_map(|p| strip_prefix_ci(p, "SIZE="))
            .and_then(|n| n.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.cfg.max_size) {
            return format!(
                "552 5.3.4 the mail is larger than {} bytes",
                self.cfg.max_size
            );
        }
        self.from = Some(address.to_string());
        self.to.clear();
        "250 2.1.0 OK".to_string()
    }

    async fn rcpt_to(&mut self, arg: &str) -> String {
        if self.from.is_none() {
            return "503 5.5.1 give MAIL FROM first".to_string();
        }
        let Some(address) = strip_prefix_ci(arg, "TO:").and_then(angle_address) else {
            return "501 5.5.4 use RCPT TO:<address>".to_string();
        };
        if self.to.len() >= MAX_RECIPIENTS {
            return "452 4.5.3 too many recipients".to_string();
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return "550 5.1.1 no such mailbox".to_string();
        };
        if !domain.eq_ignore_ascii_case(&self.cfg.domain) {
            return "550 5.7.1 this server takes mail only for its own flows".to_string();
        }
        let token = local.to_ascii_lowercase();
        let flow = match self.state.store.flow_by_token(&token).await {
            Ok(Some(f)) => f,
            Ok(None) => return "550 5.1.1 no such mailbox".to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "a mail's recipient could not be looked up");
                return "451 4.3.0 try again later".to_string();
            }
        };
        match self
            .state
            .flows
            .get(
                &self.state.store,
                &self.state.apps,
                &flow.id,
                flow.current_version,
            )
            .await
        {
            Ok(f) if f.trigger.app == mail::APP => {}
            Ok(_) => return "550 5.1.1 no such mailbox".to_string(),
            Err(e) => {
                tracing::warn!(error = %e, flow_id = %flow.id, "a mail's flow could not be read");
                return "451 4.3.0 try again later".to_string();
            }
        }
        if !self.to.iter().any(|r| r.flow.id == flow.id) {
            self.to.push(Recipient {
                address: format!("{token}@{}", self.cfg.domain),
                flow,
            });
        }
        "250 2.1.5 OK".to_string()
    }

    /// Store the mail for each recipient's flow; `250` only when every one is stored.
    async fn deliver(&self, raw: Vec<u8>) -> String {
        // Parsing a large mail is CPU work: off the threads that serve connections.
        let parsed = tokio::task::spawn_blocking(move || {
            let parsed = MessageParser::default().parse(&raw).map(|m| parse(&m));
            parsed.map(|p| (p, raw))
        })
        .await;
        let Ok(Some((parsed, raw))) = parsed else {
            return "554 5.6.0 the mail could not be read".to_string();
        };
        let mut stored = 0;
        for r in &self.to {
            match self.store_for(r, &parsed, &raw).await {
                Ok(()) => stored += 1,
                Err(e) => {
                    tracing::error!(error = %e, flow_id = %r.flow.id, peer = %self.peer, "a received mail could not be stored");
                    return "451 4.3.0 the mail could not be stored now; try again later"
                        .to_string();
                }
            }
        }
        format!("250 2.0.0 OK: stored for {stored} flow(s)")
    }

    async fn store_for(&self, r: &Recipient, parsed: &Parsed, raw: &[u8]) -> Result<(), String> {
        let s = self.state;
        let flow = s
            .flows
            .get(&s.store, &s.apps, &r.flow.id, r.flow.current_version)
            .await
            .map_err(|e| e.to_string())?;
        let mut trigger = parsed.value.clone();
        trigger["recipient"] = json!(r.address);
        trigger["received_at"] = json!(jiff::Timestamp::now().to_string());
        let filter = mail::filter_of(&flow.trigger.options)
            .map_err(|p| format!("the flow's mail conditions cannot be read: {p:?}"))?;
        let accepted = filter.accepts(&trigger);
        // A "test trigger" waiting for this flow sees what the mail gives the flow, as a
        // webhook's would (attachments by name: they are stored only for a run).
        if r.flow.capture_until > s.store.clock().now().as_millisecond() {
            let mut mail = trigger.clone();
            mail["attachments"] = parsed
                .attachments
                .iter()
                .map(|a| json!({ "name": a.name, "content_type": a.content_type, "size": a.bytes.len() }))
                .collect();
            let sample = if accepted {
                mail
            } else {
                json!({ "ignored": "the mail does not meet the trigger's conditions", "mail": mail })
            };
            if let Err(e) = s.store.capture_fill(&r.flow.id, &sample).await {
                tracing::warn!(flow_id = %r.flow.id, error = %e, "a test-trigger capture could not be stored");
            }
        }
        if !accepted {
            tracing::info!(flow_id = %r.flow.id, "a received mail does not meet the flow's conditions: no run");
            return Ok(());
        }
        let mut files = Vec::new();
        let mut refs = Vec::new();
        for a in &parsed.attachments {
            let id = crate::auth::random_token()[..32].to_string();
            let saved = s
                .store
                .save_file(
                    &id,
                    &r.flow.id,
                    &a.name,
                    &a.content_type,
                    &mut a.bytes.as_slice(),
                    self.cfg.max_size as u64,
                )
                .await
                .map_err(|e| e.to_string())?;
            files.push(saved.file_id.clone());
            refs.push(serde_json::to_value(&saved).unwrap_or(Value::Null));
        }
        trigger["attachments"] = Value::Array(refs);
        // A sender that lost our `250` sends the mail again: the same Message-ID (or, without
        // one, the same bytes) is stored once.
        // Hashed: a Message-ID is the sender's text, of any length, and the key is indexed.
        let sha = |bytes: &[u8]| hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        let key = match &parsed.message_id {
            Some(id) => format!("mail:{}", sha(id.as_bytes())),
            None => format!("mail-sha256:{}", sha(raw)),
        };
        let event = NewEvent {
            flow_id: r.flow.id.clone(),
            flow_version: Some(r.flow.current_version),
            source: Source::Mail,
            headers: json!({ "mail_from": self.from.clone().unwrap_or_default(), "peer": self.peer.ip().to_string() }),
            body: trigger.clone(),
            concurrency_key: concurrency_key(&flow, &trigger),
            // Always the mail's own key: a flow's `dedupe` must not undo the promise that a
            // mail sent again starts no second run.
            dedupe: Some((key, DEDUPE_WINDOW)),
            trigger,
            files,
        };
        match s.store.enqueue(event).await.map_err(|e| e.to_string())? {
            EnqueueOutcome::Queued { run_id, .. } => {
                tracing::info!(flow_id = %r.flow.id, %run_id, "a mail started a run")
            }
            other => {
                tracing::info!(flow_id = %r.flow.id, outcome = ?other, "a mail was stored without a new run")
            }
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s[prefix.len()..].trim_start())
}

async fn reply(w: &mut (impl AsyncWriteExt + Unpin), text: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(text.len() + 2);
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    tokio::time::timeout(IDLE, w.write_all(&bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))?
}

/// The message after `DATA`, dot-unstuffed, up to the line `.`; `None` when it was larger
/// than `max` (read to its end and dropped, so the sender sees the answer).
/// What DATA gave.
enum Data {
    /// The mail, with its share of the memory budget (held until it is stored).
    Mail(Vec<u8>, Option<tokio::sync::OwnedSemaphorePermit>),
    /// Past the size limit: read to its end and dropped.
    TooLarge,
    /// The memory budget is spent by other mails now: read to its end and dropped.
    Busy,
}

async fn read_data(
    r: &mut (impl AsyncBufRead + Unpin),
    max: usize,
    budget: &Arc<tokio::sync::Semaphore>,
) -> std::io::Result<Data> {
    let mut raw = Vec::new();
    let mut too_large = false;
    let mut busy = false;
    let mut charged: Option<tokio::sync::OwnedSemaphorePermit> = None;
    // The mail ends only at CRLF . CRLF (RFC 5321 4.1.1.4). A `.` line after a bare LF, or
    // ended by one, is content: ending there would let a message smuggle a second one
    // past a relay that reads the end differently.
    let mut after_crlf = true;
    loop {
        // A line is bounded by what is left of the mail (plus its end), so a mail without
        // line ends cannot grow past the limit either.
        let room = if too_large { 1024 } else { max - raw.len() + 3 };
        let line = match read_line(r, room.max(1024)).await? {
            Line::Text(l) => l,
            Line::TooLong => {
                too_large = true;
                raw = Vec::new();
                continue;
            }
            Line::Closed => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed within DATA",
                ))
            }
        };
        if line == b".\r\n" && after_crlf {
            return Ok(if too_large {
                Data::TooLarge
            } else if busy {
                Data::Busy
            } else {
                Data::Mail(raw, charged)
            });
        }
        after_crlf = line.ends_with(b"\r\n");
        if too_large || busy {
            continue;
        }
        let body = if line.first() == Some(&b'.') && line.ends_with(b"\r\n") {
            &line[1..]
        } else {
            &line[..]
        };
        if raw.len() + body.len() > max {
            too_large = true;
            raw = Vec::new();
            continue;
        }
        raw.extend_from_slice(body);
        // Twice the mail's MiB so far, rounded up, taken from the budget as it grows.
        let need = 2 * ((raw.len() >> 20) as u32 + 1);
        let held = charged.as_ref().map_or(0, |p| p.num_permits() as u32);
        if need > held {
            match budget.clone().try_acquire_many_owned(need - held) {
                Ok(more) => match &mut charged {
                    Some(p) => p.merge(more),
                    None => charged = Some(more),
                },
                Err(_) => {
                    busy = true;
                    raw = Vec::new();
                    charged = None;
                }
            }
        }
    }
}

/// A mail read into the trigger's value, with its attachments' bytes kept aside.
pub struct Parsed {
    pub value: Value,
    pub message_id: Option<String>,
    pub attachments: Vec<Attachment>,
}

pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<Value> {
    a.map(|a| {
        a.iter()
            .map(
                |x| json!({ "name": x.name().unwrap_or(""), "address": x.address().unwrap_or("") }),
            )
            .collect()
    })
    .unwrap_or_default()
}

fn cut(text: &str, what: &str, truncated: &mut Vec<String>) -> String {
    if text.len() <= MAX_BODY_TEXT {
        return text.to_string();
    }
    truncated.push(what.to_string());
    let mut end = MAX_BODY_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Read a parsed message into the mail trigger's value (without `attachments`, which the
/// store gives references to, and without `recipient` / `received_at`).
pub fn parse(m: &mail_parser::Message<'_>) -> Parsed {
    let from = addresses(m.from())
        .into_iter()
        .next()
        .unwrap_or(json!({ "name": "", "address": "" }));
    let mut truncated = Vec::new();
    // Line ends as people write them in a flow (`\n`), whatever the mail carried.
    let text = m
        .body_text(0)
        .map(|t| cut(&t.replace("\r\n", "\n"), "text", &mut truncated))
        .unwrap_or_default();
    // A mail without an HTML part has none: the parser's HTML made from the text is not
    // what the sender wrote.
    let html = match m.html_part(0) {
        Some(p) if p.is_text_html() => m
            .body_html(0)
            .map(|h| cut(&h.replace("\r\n", "\n"), "html", &mut truncated))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let attachments: Vec<Attachment> = m
        .attachments()
        .filter(|p| !p.is_message() || !p.contents().is_empty())
        .take(MAX_ATTACHMENTS)
        .enumerate()
        .map(|(i, p)| Attachment {
            name: p
                .attachment_name()
                .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect())
                .filter(|n: &String| !n.trim().is_empty())
                .unwrap_or_else(|| format!("attachment-{}", i + 1)),
            content_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(sub) => format!("{}/{}", c.ctype(), sub),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            bytes: p.contents().to_vec(),
        })
        .collect();
    let message_id = m.message_id().map(str::to_string);
    let value = json!({
        "from_address": from["address"],
        "from": from,
        "to": addresses(m.to()),
        "cc": addresses(m.cc()),
        "subject": m.subject().unwrap_or(""),
        "text": text,
        "html": html,
        "date": m.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
        "message_id": message_id.clone().unwrap_or_default(),
        "truncated": truncated,
    });
    Parsed {
        value,
        message_id,
        attachments,
    }
}
