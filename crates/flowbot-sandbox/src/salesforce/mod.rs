//! A Salesforce org on loopback, faithful to the REST API shapes in api-facts: the OAuth 2.0
//! token endpoint (client credentials, JWT bearer, refresh token, authorization code with
//! PKCE) with tokens that expire, the data API (query with a SOQL subset and
//! `nextRecordsUrl`, sObject rows, upsert by external ID, sObject Collections, describe),
//! errors as arrays with Salesforce's codes, and `Sforce-Limit-Info` on every data answer.
//! Control endpoints under `/__control/` inject faults and expose what happened.

mod control;
mod data;
mod handlers;
mod oauth;
pub mod schema;
pub mod soql;
mod table;

use control::*;
use data::*;
use handlers::*;
use oauth::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::faults::Faults;
use schema::Object;

/// How the simulated org is set up.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// The connected app's consumer key and secret.
    pub client_id: String,
    pub client_secret: String,
    /// The integration user (JWT `sub`).
    pub username: String,
    /// The connected app's certificate, for JWT bearer assertions (PEM public key).
    pub jwt_public_key_pem: Option<String>,
    /// Sessions stop working after this long.
    pub token_ttl: Duration,
    /// Each refresh answers with a new refresh token and retires the old one.
    pub rotate_refresh_tokens: bool,
    /// The org's daily API allowance, shown in `Sforce-Limit-Info`.
    pub api_limit: u64,
    /// Records per query batch unless `Sforce-Query-Options: batchSize=N` says otherwise.
    pub query_batch_size: usize,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        SalesforceConfig {
            client_id: "3MVG9sandbox_consumer_key".into(),
            client_secret: "sandbox-consumer-secret".into(),
            username: "integration@flowbot.example".into(),
            jwt_public_key_pem: None,
            token_ttl: Duration::from_secs(2 * 3600),
            rotate_refresh_tokens: false,
            api_limit: 100_000,
            query_batch_size: 2000,
        }
    }
}

pub const VERSIONS: &[(&str, &str)] = &[
    ("Summer '24", "61.0"),
    ("Winter '25", "62.0"),
    ("Spring '25", "63.0"),
];

#[derive(Default)]
struct Org {
    records: HashMap<&'static str, table::Table>,
    next_id: u64,
    tokens: HashMap<String, Instant>,
    refresh_tokens: HashSet<String>,
    codes: HashMap<String, (String, Option<String>)>,
    cursors: HashMap<String, (String, Vec<Value>)>,
    api_usage: u64,
    calls: BTreeMap<String, u64>,
    tokens_issued: u64,
    refreshes: u64,
}

pub struct SalesforceSim {
    cfg: SalesforceConfig,
    objects: Vec<Object>,
    org: Mutex<Org>,
    pub faults: Faults,
    base_url: Mutex<String>,
    /// Woken at every record created or put, for `/__control/wait/{object}`.
    inserted: tokio::sync::Notify,
}

/// A Salesforce error, answered as the REST API's JSON array.
#[derive(Debug, Clone)]
pub struct SfError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<String>,
}

fn sf_err(status: StatusCode, code: &'static str, message: impl Into<String>) -> SfError {
    SfError {
        status,
        code,
        message: message.into(),
        fields: Vec::new(),
    }
}

impl SfError {
    fn with_fields(mut self, fields: Vec<String>) -> SfError {
        self.fields = fields;
        self
    }

    fn body(&self, key: &str) -> Value {
        let mut e = json!({ "message": self.message, key: self.code });
        if !self.fields.is_empty() {
            e["fields"] = json!(self.fields);
        }
        e
    }
}

impl SalesforceSim {
    pub fn new(cfg: SalesforceConfig) -> Arc<SalesforceSim> {
        Arc::new(SalesforceSim {
            cfg,
            objects: schema::objects(),
            org: Mutex::new(Org::default()),
            faults: Faults::default(),
            base_url: Mutex::new(String::new()),
            inserted: tokio::sync::Notify::new(),
        })
    }

    pub fn config(&self) -> &SalesforceConfig {
        &self.cfg
    }

    pub fn base_url(&self) -> String {
        self.base_url.lock().expect("base url").clone()
    }

    pub fn set_base_url(&self, url: &str) {
        *self.base_url.lock().expect("base url") = url.to_string();
    }

    /// Every record of an object, in creation order.
    pub fn records(&self, object: &str) -> Vec<Map<String, Value>> {
        let org = self.org.lock().expect("org");
        self.object(object)
            .and_then(|o| org.records.get(o.name))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// How many records of the object exist (cheaper than [`SalesforceSim::records`]).
    pub fn count(&self, object: &str) -> usize {
        let org = self.org.lock().expect("org");
        self.object(object)
            .and_then(|o| org.records.get(o.name))
            .map_or(0, |m| m.len())
    }

    /// Calls per operation, and the totals a test may want.
    pub fn stats(&self) -> Value {
        let org = self.org.lock().expect("org");
        let counts: serde_json::Map<String, Value> = org
            .records
            .iter()
            .map(|(k, m)| (k.to_string(), json!(m.len())))
            .collect();
        json!({
            "calls": org.calls,
            "records": counts,
            "api_usage": org.api_usage,
            "tokens_issued": org.tokens_issued,
            "refreshes": org.refreshes,
            "injected_faults": self.faults.injected(),
        })
    }

    /// Make every issued session invalid (as an org's timeout would).
    pub fn expire_tokens(&self) {
        self.org.lock().expect("org").tokens.clear();
    }

    /// Change a record behind flowbot's back (tests of drift and reconciliation).
    pub fn put_record(&self, object: &str, id: &str, fields: Map<String, Value>) {
        let mut org = self.org.lock().expect("org");
        if let Some(o) = self.object(object) {
            org.records
                .entry(o.name)
                .or_default()
                .update(id, |rec| rec.extend(fields));
            self.inserted.notify_waiters();
        }
    }

    pub fn delete_record_quietly(&self, object: &str, id: &str) {
        let mut org = self.org.lock().expect("org");
        if let Some(o) = self.object(object) {
            org.records.entry(o.name).or_default().remove(id);
        }
    }

    pub fn reset(&self) {
        *self.org.lock().expect("org") = Org::default();
        self.faults.clear();
    }

    fn object(&self, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    fn issue_token(&self, org: &mut Org) -> String {
        let token = format!("00D000000000001!AQ{}", uuid::Uuid::new_v4().simple());
        org.tokens
            .insert(token.clone(), Instant::now() + self.cfg.token_ttl);
        org.tokens_issued += 1;
        token
    }

    fn token_answer(&self, org: &mut Org, refresh: Option<String>) -> Value {
        let token = self.issue_token(org);
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let mut body = json!({
            "access_token": token,
            "instance_url": self.base_url(),
            "id": format!("{}/id/00D000000000001EAA/005000000000001AAA", self.base_url()),
            "token_type": "Bearer",
            "issued_at": now_ms.to_string(),
            "signature": URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes()),
            "scope": "api refresh_token",
        });
        if let Some(r) = refresh {
            body["refresh_token"] = json!(r);
        }
        body
    }
}

/// Start the simulator on `127.0.0.1:port` (0 for any free port).
pub async fn start(
    cfg: SalesforceConfig,
    port: u16,
) -> std::io::Result<crate::Running<SalesforceSim>> {
    let sim = SalesforceSim::new(cfg);
    crate::serve(sim.clone(), router(sim), port, |sim, url| {
        sim.set_base_url(url)
    })
    .await
}

pub fn router(sim: Arc<SalesforceSim>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/authorize", get(authorize))
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{v}/query", get(query))
        .route("/services/data/{v}/query/", get(query))
        .route("/services/data/{v}/query/{locator}", get(query_more))
        .route("/services/data/{v}/sobjects", get(describe_global))
        .route("/services/data/{v}/sobjects/", get(describe_global))
        .route("/services/data/{v}/sobjects/{object}", post(create))
        .route("/services/data/{v}/sobjects/{object}/", post(create))
        .route(
            "/services/data/{v}/sobjects/{object}/describe",
            get(describe),
        )
        .route(
            "/services/data/{v}/sobjects/{object}/{id}",
            get(get_record).patch(update).delete(delete),
        )
        .route(
            "/services/data/{v}/sobjects/{object}/{field}/{value}",
            axum::routing::patch(upsert),
        )
        .route(
            "/services/data/{v}/composite/sobjects",
            post(collection_create).patch(collection_update),
        )
        .route(
            "/services/data/{v}/composite/sobjects/{object}/{field}",
            axum::routing::patch(collection_upsert),
        )
        .route("/__control/faults", post(set_faults).delete(clear_faults))
        .route("/__control/expire-tokens", post(expire_tokens))
        .route("/__control/records/{object}", get(control_records))
        .route("/__control/stats", get(control_stats))
        .route("/__control/wait/{object}", get(control_wait))
        .route("/__control/reset", post(control_reset))
        .with_state(sim)
}
