//! Where notifications land in a sandbox: a Slack-style incoming-webhook endpoint and an
//! HTTP view of the SMTP sink's mail, so a test in another process can read both.
//!
//! `POST /slack/{anything}` keeps the JSON body and answers `ok`, as Slack does;
//! `GET /__control/slack` lists what arrived, `GET /__control/mails` the mail.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::smtp::SmtpSink;

pub struct Sinks {
    slack: Mutex<Vec<Value>>,
    smtp: SmtpSink,
}

impl Sinks {
    pub fn smtp_port(&self) -> u16 {
        self.smtp.port
    }

    pub fn mails(&self) -> Vec<crate::smtp::Mail> {
        self.smtp.mails()
    }

    pub fn slack_messages(&self) -> Vec<Value> {
        self.slack.lock().expect("slack").clone()
    }
}

pub async fn start(port: u16) -> std::io::Result<crate::Running<Sinks>> {
    let sinks = Arc::new(Sinks {
        slack: Mutex::new(Vec::new()),
        smtp: crate::smtp::start().await?,
    });
    let router = Router::new()
        .route("/slack/{*path}", post(slack))
        .route("/__control/slack", get(list_slack))
        .route("/__control/mails", get(list_mails))
        .with_state(sinks.clone());
    crate::serve(sinks, router, port, |_, _| {}).await
}

async fn slack(
    State(s): State<Arc<Sinks>>,
    Path(path): Path<String>,
    Json(body): Json<Value>,
) -> &'static str {
    s.slack
        .lock()
        .expect("slack")
        .push(json!({ "path": path, "body": body }));
    "ok"
}

async fn list_slack(State(s): State<Arc<Sinks>>) -> Json<Value> {
    Json(json!(s.slack_messages()))
}

async fn list_mails(State(s): State<Arc<Sinks>>) -> Json<Value> {
    let mails: Vec<Value> = s
        .smtp
        .mails()
        .into_iter()
        .map(|m| json!({ "from": m.from, "to": m.to, "data": m.data }))
        .collect();
    Json(json!(mails))
}
