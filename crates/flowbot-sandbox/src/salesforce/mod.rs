//! A Salesforce org on loopback, faithful to the REST API shapes in api-facts: the OAuth 2.0
//! token endpoint (client credentials, JWT bearer, refresh token, authorization code with
//! PKCE) with tokens that expire, the data API (query with a SOQL subset and
//! `nextRecordsUrl`, sObject rows, upsert by external ID, sObject Collections, describe),
//! errors as arrays with Salesforce's codes, and `Sforce-Limit-Info` on every data answer.
//! Control endpoints under `/__control/` inject faults and expose what happened.

pub mod schema;
pub mod soql;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::faults::{self, Faults, InjectedError};
use schema::{FieldType, Object};

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
    records: HashMap<&'static str, BTreeMap<String, Map<String, Value>>>,
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
        json!({
            "calls": org.calls,
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
            let rec = org
                .records
                .entry(o.name)
                .or_default()
                .entry(id.to_string())
                .or_default();
            rec.extend(fields);
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
        .route("/__control/reset", post(control_reset))
        .with_state(sim)
}

// ---- OAuth ----

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    assertion: Option<String>,
    refresh_token: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct JwtClaims {
    iss: String,
    sub: String,
    exp: i64,
}

async fn token(State(sim): State<Arc<SalesforceSim>>, Form(f): Form<TokenForm>) -> Response {
    let cfg = &sim.cfg;
    let client_ok = || {
        f.client_id.as_deref() == Some(cfg.client_id.as_str())
            && f.client_secret.as_deref() == Some(cfg.client_secret.as_str())
    };
    let mut org = sim.org.lock().expect("org");
    match f.grant_type.as_deref() {
        Some("client_credentials") => {
            if f.client_id.as_deref() != Some(cfg.client_id.as_str()) {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if !client_ok() {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            Json(sim.token_answer(&mut org, None)).into_response()
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(pem) = &cfg.jwt_public_key_pem else {
                return oauth_error(
                    "invalid_grant",
                    "no certificate is configured for the connected app",
                );
            };
            let Some(assertion) = &f.assertion else {
                return oauth_error("invalid_request", "assertion is missing");
            };
            let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()) else {
                return oauth_error(
                    "invalid_grant",
                    "the connected app's certificate is unusable",
                );
            };
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            // Not the My Domain URL: Salesforce rejects that audience.
            validation.set_audience(&[
                "https://login.salesforce.com",
                "https://test.salesforce.com",
            ]);
            validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
            let claims = match jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation) {
                Ok(data) => data.claims,
                Err(e) => return oauth_error("invalid_grant", &format!("invalid assertion: {e}")),
            };
            if claims.iss != cfg.client_id {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if claims.sub != cfg.username {
                return oauth_error("invalid_grant", "user hasn't approved this consumer");
            }
            let now = jiff::Timestamp::now().as_second();
            if claims.exp > now + 180 + 5 {
                return oauth_error("invalid_grant", "expiration time is too far in the future");
            }
            Json(sim.token_answer(&mut org, None)).into_response()
        }
        Some("refresh_token") => {
            if !client_ok() {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let Some(rt) = &f.refresh_token else {
                return oauth_error("invalid_request", "refresh_token is missing");
            };
            if !org.refresh_tokens.contains(rt) {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
            org.refreshes += 1;
            let next = if cfg.rotate_refresh_tokens {
                org.refresh_tokens.remove(rt);
                let n = format!("5Aep861{}", uuid::Uuid::new_v4().simple());
                org.refresh_tokens.insert(n.clone());
                Some(n)
            } else {
                None
            };
            Json(sim.token_answer(&mut org, next)).into_response()
        }
        Some("authorization_code") => {
            if !client_ok() {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let Some((redirect, challenge)) = f.code.as_ref().and_then(|c| org.codes.remove(c))
            else {
                return oauth_error("invalid_grant", "invalid authorization code");
            };
            if f.redirect_uri.as_deref() != Some(redirect.as_str()) {
                return oauth_error(
                    "redirect_uri_mismatch",
                    "redirect_uri must match configuration",
                );
            }
            if let Some(challenge) = challenge {
                let verifier = f.code_verifier.clone().unwrap_or_default();
                let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
                if URL_SAFE_NO_PAD.encode(digest.as_ref()) != challenge {
                    return oauth_error("invalid_grant", "invalid code verifier");
                }
            }
            let rt = format!("5Aep861{}", uuid::Uuid::new_v4().simple());
            org.refresh_tokens.insert(rt.clone());
            Json(sim.token_answer(&mut org, Some(rt))).into_response()
        }
        _ => oauth_error("unsupported_grant_type", "grant type not supported"),
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
}

/// Approves at once and sends the browser back with a code, as a user clicking "Allow".
async fn authorize(
    State(sim): State<Arc<SalesforceSim>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    if q.response_type.as_deref() != Some("code")
        || q.client_id.as_deref() != Some(sim.cfg.client_id.as_str())
    {
        return (StatusCode::BAD_REQUEST, "error=invalid_client_id").into_response();
    }
    let Some(redirect) = q.redirect_uri else {
        return (StatusCode::BAD_REQUEST, "error=redirect_uri_missing").into_response();
    };
    let code = format!("aPrx{}", uuid::Uuid::new_v4().simple());
    sim.org
        .lock()
        .expect("org")
        .codes
        .insert(code.clone(), (redirect.clone(), q.code_challenge));
    let mut url = match reqwest::Url::parse(&redirect) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "error=invalid redirect_uri").into_response(),
    };
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.state {
        url.query_pairs_mut().append_pair("state", &state);
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

async fn versions() -> Json<Value> {
    Json(json!(VERSIONS
        .iter()
        .map(|(label, v)| json!({ "label": label, "url": format!("/services/data/v{v}"), "version": v }))
        .collect::<Vec<_>>()))
}

// ---- the data API ----

/// Authenticate, count, inject faults, run, and answer with `Sforce-Limit-Info`.
async fn data_call(
    sim: &SalesforceSim,
    headers: &HeaderMap,
    op: &str,
    f: impl FnOnce(&SalesforceSim, &mut Org) -> Result<(StatusCode, Option<Value>), SfError>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    {
        let mut org = sim.org.lock().expect("org");
        let valid = token
            .as_ref()
            .and_then(|t| org.tokens.get(t))
            .is_some_and(|exp| *exp > Instant::now());
        if !valid {
            *org.calls.entry("unauthorized".into()).or_default() += 1;
            return error_response(
                &sf_err(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_SESSION_ID",
                    "Session expired or invalid",
                ),
                None,
            );
        }
        *org.calls.entry(op.into()).or_default() += 1;
        org.api_usage += 1;
    }
    let (latency, injected) = sim.faults.decide(op);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let limit = {
        let org = sim.org.lock().expect("org");
        format!("api-usage={}/{}", org.api_usage, sim.cfg.api_limit)
    };
    if let Some(e) = injected {
        return injected_response(e, &limit);
    }
    let result = {
        let mut org = sim.org.lock().expect("org");
        f(sim, &mut org)
    };
    match result {
        Ok((status, body)) => {
            let mut resp = match body {
                Some(b) => (status, Json(b)).into_response(),
                None => status.into_response(),
            };
            resp.headers_mut()
                .insert("sforce-limit-info", limit.parse().expect("ascii header"));
            resp
        }
        Err(e) => error_response(&e, Some(&limit)),
    }
}

fn error_response(e: &SfError, limit: Option<&str>) -> Response {
    let mut resp = (e.status, Json(json!([e.body("errorCode")]))).into_response();
    if let Some(l) = limit {
        resp.headers_mut()
            .insert("sforce-limit-info", l.parse().expect("ascii header"));
    }
    resp
}

fn injected_response(e: InjectedError, limit: &str) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = e.code.unwrap_or_else(|| match e.status {
        503 => "SERVER_UNAVAILABLE".into(),
        403 => "REQUEST_LIMIT_EXCEEDED".into(),
        _ => "UNKNOWN_EXCEPTION".into(),
    });
    let message = e.message.unwrap_or_else(|| match code.as_str() {
        "REQUEST_LIMIT_EXCEEDED" => "TotalRequests Limit exceeded.".into(),
        "UNABLE_TO_LOCK_ROW" => {
            "unable to obtain exclusive access to this record or 1 records".into()
        }
        "SERVER_UNAVAILABLE" => "Server temporarily unavailable".into(),
        other => format!("{other} (injected)"),
    });
    let mut body = json!({ "message": message, "errorCode": code });
    if !e.fields.is_empty() {
        body["fields"] = json!(e.fields);
    }
    let mut resp = (status, Json(json!([body]))).into_response();
    resp.headers_mut()
        .insert("sforce-limit-info", limit.parse().expect("ascii header"));
    if let Some(s) = e.retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, s.into());
    }
    resp
}

fn parse_body(body: &Bytes) -> Result<Value, SfError> {
    serde_json::from_slice(body).map_err(|e| {
        sf_err(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("Unexpected character: {e}"),
        )
    })
}

impl SalesforceSim {
    fn known(&self, name: &str) -> Result<&Object, SfError> {
        self.object(name).ok_or_else(|| {
            sf_err(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("The requested resource does not exist: sObject type '{name}' is not supported."),
            )
        })
    }

    fn new_id(&self, org: &mut Org, obj: &Object) -> String {
        org.next_id += 1;
        format!("{}{:015}", obj.key_prefix, org.next_id)
    }

    /// Check and normalise the fields of a write. `existing` is the record being updated.
    fn check_fields(
        &self,
        org: &Org,
        obj: &Object,
        fields: &Map<String, Value>,
        existing: Option<(&str, &Map<String, Value>)>,
    ) -> Result<Map<String, Value>, SfError> {
        let mut out = Map::new();
        for (k, v) in fields {
            if k == "attributes" {
                continue;
            }
            let Some(field) = obj.field(k) else {
                return Err(sf_err(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type {}", obj.name),
                )
                .with_fields(vec![k.clone()]));
            };
            if field.system {
                return Err(sf_err(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    format!("Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", field.name),
                )
                .with_fields(vec![field.name.to_string()]));
            }
            let text = match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => {
                    return Err(sf_err(
                        StatusCode::BAD_REQUEST,
                        "JSON_PARSER_ERROR",
                        format!(
                            "Cannot deserialize instance of string from {} value for field {}",
                            if v.is_array() {
                                "START_ARRAY"
                            } else {
                                "START_OBJECT"
                            },
                            field.name
                        ),
                    ))
                }
            };
            if let Some(t) = &text {
                let n = t.chars().count();
                if n > field.length {
                    let shown: String = t.chars().take(40).collect();
                    return Err(sf_err(
                        StatusCode::BAD_REQUEST,
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {shown}... (max length={})",
                            field.label, field.length
                        ),
                    )
                    .with_fields(vec![field.name.to_string()]));
                }
                if field.kind == FieldType::Email && !t.is_empty() && !schema::looks_like_email(t) {
                    return Err(sf_err(
                        StatusCode::BAD_REQUEST,
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {t}", field.label),
                    )
                    .with_fields(vec![field.name.to_string()]));
                }
                if field.external_id && !t.is_empty() {
                    let dup = org.records.get(obj.name).and_then(|recs| {
                        recs.iter().find(|(id, r)| {
                            Some(id.as_str()) != existing.map(|e| e.0)
                                && r.get(field.name)
                                    .and_then(Value::as_str)
                                    .is_some_and(|x| x.eq_ignore_ascii_case(t))
                        })
                    });
                    if let Some((id, _)) = dup {
                        return Err(sf_err(
                            StatusCode::BAD_REQUEST,
                            "DUPLICATE_VALUE",
                            format!("duplicate value found: {} duplicates value on record with id: {id}", field.name),
                        )
                        .with_fields(vec![field.name.to_string()]));
                    }
                }
            }
            out.insert(
                field.name.to_string(),
                text.map_or(Value::Null, Value::String),
            );
        }
        let missing: Vec<String> = obj
            .fields
            .iter()
            .filter(|f| f.required)
            .filter(|f| {
                let now = out
                    .get(f.name)
                    .or_else(|| existing.and_then(|e| e.1.get(f.name)));
                !matches!(now, Some(Value::String(s)) if !s.trim().is_empty())
            })
            .map(|f| f.name.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(sf_err(
                StatusCode::BAD_REQUEST,
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .with_fields(missing));
        }
        Ok(out)
    }

    fn insert(
        &self,
        org: &mut Org,
        obj: &Object,
        fields: &Map<String, Value>,
    ) -> Result<String, SfError> {
        let mut clean = self.check_fields(org, obj, fields, None)?;
        let id = self.new_id(org, obj);
        let now = jiff::Timestamp::now().to_string();
        clean.insert("Id".into(), json!(id));
        clean.insert("CreatedDate".into(), json!(now));
        clean.insert("LastModifiedDate".into(), json!(now));
        org.records
            .entry(obj.name)
            .or_default()
            .insert(id.clone(), clean);
        Ok(id)
    }

    fn modify(
        &self,
        org: &mut Org,
        obj: &Object,
        id: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), SfError> {
        let existing = org
            .records
            .get(obj.name)
            .and_then(|r| r.get(id))
            .cloned()
            .ok_or_else(|| not_found_id(obj, id))?;
        let clean = self.check_fields(org, obj, fields, Some((id, &existing)))?;
        let rec = org
            .records
            .entry(obj.name)
            .or_default()
            .entry(id.to_string())
            .or_default();
        rec.extend(clean);
        rec.insert(
            "LastModifiedDate".into(),
            json!(jiff::Timestamp::now().to_string()),
        );
        Ok(())
    }

    /// Upsert by an external-ID field: `Ok((id, created))`.
    fn upsert_by(
        &self,
        org: &mut Org,
        obj: &Object,
        field: &str,
        value: &str,
        fields: &Map<String, Value>,
    ) -> Result<(String, bool), SfError> {
        let Some(f) = obj.field(field).filter(|f| f.external_id || f.name == "Id") else {
            return Err(sf_err(
                StatusCode::BAD_REQUEST,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {field}"),
            ));
        };
        let matches: Vec<String> = org
            .records
            .get(obj.name)
            .map(|recs| {
                recs.iter()
                    .filter(|(_, r)| {
                        r.get(f.name)
                            .and_then(Value::as_str)
                            .is_some_and(|x| x.eq_ignore_ascii_case(value))
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut body = fields.clone();
        body.retain(|k, _| !k.eq_ignore_ascii_case(f.name));
        match matches.as_slice() {
            [] => {
                body.insert(f.name.to_string(), json!(value));
                Ok((self.insert(org, obj, &body)?, true))
            }
            [id] => {
                self.modify(org, obj, id, &body)?;
                Ok((id.clone(), false))
            }
            _ => Err(sf_err(
                StatusCode::MULTIPLE_CHOICES,
                "MULTIPLE_CHOICES",
                format!("Multiple records found for {}={value}", f.name),
            )),
        }
    }
}

fn not_found_id(obj: &Object, id: &str) -> SfError {
    let well_formed =
        (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric());
    if !well_formed || !id.starts_with(obj.key_prefix) {
        sf_err(
            StatusCode::BAD_REQUEST,
            "MALFORMED_ID",
            format!("{} ID: id value of incorrect type: {id}", obj.name),
        )
    } else {
        sf_err(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }
}

fn record_url(v: &str, obj: &str, id: &str) -> String {
    format!("/services/data/{v}/sobjects/{obj}/{id}")
}

fn with_attributes(
    v: &str,
    obj: &Object,
    rec: &Map<String, Value>,
    fields: Option<&[String]>,
) -> Value {
    let id = rec.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({ "type": obj.name, "url": record_url(v, obj.name, id) }),
    );
    match fields {
        Some(fs) => {
            for f in fs {
                let canonical = obj.field(f).map_or(f.as_str(), |x| x.name);
                out.insert(
                    canonical.to_string(),
                    rec.get(canonical).cloned().unwrap_or(Value::Null),
                );
            }
        }
        None => {
            for f in &obj.fields {
                out.insert(
                    f.name.to_string(),
                    rec.get(f.name).cloned().unwrap_or(Value::Null),
                );
            }
        }
    }
    Value::Object(out)
}

#[derive(Deserialize)]
struct Q {
    q: Option<String>,
}

async fn query(
    State(sim): State<Arc<SalesforceSim>>,
    Path(v): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> Response {
    let batch = headers
        .get("sforce-query-options")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(sim.cfg.query_batch_size)
        .max(1);
    data_call(&sim, &headers, "query", |sim, org| {
        let text = q.q.unwrap_or_default();
        let parsed = soql::parse(&text).map_err(|e| {
            sf_err(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", format!("\n{text}\n^\nERROR at Row:1:Column:1\n{e}"))
        })?;
        let obj = sim.object(&parsed.object).ok_or_else(|| {
            sf_err(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                format!("\n{text}\n^\nERROR at Row:1:Column:1\nsObject type '{}' is not supported.", parsed.object),
            )
        })?;
        for f in parsed.fields.iter().chain(parsed.conditions.iter().map(|c| &c.field)) {
            if obj.field(f).is_none() {
                return Err(sf_err(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    format!("\n{text}\n^\nERROR at Row:1:Column:1\nNo such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.", obj.name),
                ));
            }
        }
        let mut rows: Vec<&Map<String, Value>> = org
            .records
            .get(obj.name)
            .map(|r| r.values().collect())
            .unwrap_or_default();
        rows.retain(|r| {
            parsed.conditions.iter().all(|c| {
                let name = obj.field(&c.field).map_or("", |f| f.name);
                let have = r.get(name).cloned().unwrap_or(Value::Null);
                // Text comparisons with = ignore case, as in a real org.
                let eq = match (&have, &c.value) {
                    (Value::String(a), Value::String(b)) => a.to_lowercase() == b.to_lowercase(),
                    (Value::String(a), Value::Number(n)) => *a == n.to_string(),
                    (a, b) => a == b,
                };
                eq != c.negated
            })
        });
        if let Some((f, desc)) = &parsed.order_by {
            let name = obj.field(f).map_or("", |x| x.name);
            rows.sort_by(|a, b| {
                let (x, y) = (a.get(name).map(Value::to_string), b.get(name).map(Value::to_string));
                if *desc { y.cmp(&x) } else { x.cmp(&y) }
            });
        }
        if let Some(l) = parsed.limit {
            rows.truncate(l);
        }
        let all: Vec<Value> = rows.iter().map(|r| with_attributes(&v, obj, r, Some(&parsed.fields))).collect();
        Ok((StatusCode::OK, Some(page(org, &v, all, batch))))
    })
    .await
}

fn page(org: &mut Org, v: &str, mut all: Vec<Value>, batch: usize) -> Value {
    let total = all.len();
    if total <= batch {
        return json!({ "totalSize": total, "done": true, "records": all });
    }
    let rest = all.split_off(batch);
    let locator = format!("01g{}", &uuid::Uuid::new_v4().simple().to_string()[..15]);
    let next = format!("/services/data/{v}/query/{locator}-{batch}");
    org.cursors.insert(locator, (v.to_string(), rest));
    json!({ "totalSize": total, "done": false, "nextRecordsUrl": next, "records": all })
}

async fn query_more(
    State(sim): State<Arc<SalesforceSim>>,
    Path((v, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let batch = sim.cfg.query_batch_size;
    data_call(&sim, &headers, "query", |_, org| {
        let key = locator.split('-').next().unwrap_or_default().to_string();
        let (_, rest) = org.cursors.remove(&key).ok_or_else(|| {
            sf_err(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            )
        })?;
        let size = locator
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(batch)
            .max(1);
        let mut body = page(org, &v, rest, size);
        // The total is of the whole result, which the first page reported.
        body.as_object_mut().map(|m| m.remove("totalSize"));
        Ok((StatusCode::OK, Some(body)))
    })
    .await
}

async fn describe_global(
    State(sim): State<Arc<SalesforceSim>>,
    Path(v): Path<String>,
    headers: HeaderMap,
) -> Response {
    data_call(&sim, &headers, "describe", |sim, _| {
        let sobjects: Vec<Value> = sim
            .objects
            .iter()
            .map(|o| json!({ "name": o.name, "label": o.label, "keyPrefix": o.key_prefix, "queryable": true, "createable": true,
                             "urls": { "sobject": format!("/services/data/{v}/sobjects/{}", o.name), "describe": format!("/services/data/{v}/sobjects/{}/describe", o.name) } }))
            .collect();
        Ok((StatusCode::OK, Some(json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects }))))
    })
    .await
}

async fn describe(
    State(sim): State<Arc<SalesforceSim>>,
    Path((v, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    data_call(&sim, &headers, "describe", |sim, _| {
        let obj = sim.known(&object)?;
        Ok((StatusCode::OK, Some(obj.describe(&v))))
    })
    .await
}

fn object_body(body: &Bytes) -> Result<Map<String, Value>, SfError> {
    match parse_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(sf_err(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Expected a JSON object",
        )),
    }
}

async fn create(
    State(sim): State<Arc<SalesforceSim>>,
    Path((_v, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    data_call(&sim, &headers, "create", |sim, org| {
        let obj = sim.known(&object)?;
        let fields = object_body(&body)?;
        let id = sim.insert(org, obj, &fields)?;
        Ok((
            StatusCode::CREATED,
            Some(json!({ "id": id, "success": true, "errors": [] })),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct FieldsQuery {
    fields: Option<String>,
}

async fn get_record(
    State(sim): State<Arc<SalesforceSim>>,
    Path((v, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(q): Query<FieldsQuery>,
) -> Response {
    data_call(&sim, &headers, "get", |sim, org| {
        let obj = sim.known(&object)?;
        let rec = org
            .records
            .get(obj.name)
            .and_then(|r| r.get(&id))
            .ok_or_else(|| not_found_id(obj, &id))?;
        let fields: Option<Vec<String>> = q
            .fields
            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect());
        if let Some(fs) = &fields {
            if let Some(bad) = fs.iter().find(|f| obj.field(f).is_none()) {
                return Err(sf_err(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    format!("No such column '{bad}' on entity '{}'", obj.name),
                ));
            }
        }
        Ok((
            StatusCode::OK,
            Some(with_attributes(&v, obj, rec, fields.as_deref())),
        ))
    })
    .await
}

async fn update(
    State(sim): State<Arc<SalesforceSim>>,
    Path((_v, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    data_call(&sim, &headers, "update", |sim, org| {
        let obj = sim.known(&object)?;
        let fields = object_body(&body)?;
        sim.modify(org, obj, &id, &fields)?;
        Ok((StatusCode::NO_CONTENT, None))
    })
    .await
}

async fn delete(
    State(sim): State<Arc<SalesforceSim>>,
    Path((_v, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    data_call(&sim, &headers, "delete", |sim, org| {
        let obj = sim.known(&object)?;
        match org.records.get_mut(obj.name).and_then(|r| r.remove(&id)) {
            Some(_) => Ok((StatusCode::NO_CONTENT, None)),
            None => Err(not_found_id(obj, &id)),
        }
    })
    .await
}

async fn upsert(
    State(sim): State<Arc<SalesforceSim>>,
    Path((_v, object, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    data_call(&sim, &headers, "upsert", |sim, org| {
        let obj = sim.known(&object)?;
        let fields = object_body(&body)?;
        let (id, created) = sim.upsert_by(org, obj, &field, &value, &fields)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((
            status,
            Some(json!({ "id": id, "success": true, "errors": [], "created": created })),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct CollectionBody {
    #[serde(default, rename = "allOrNone")]
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

fn collection_body(body: &Bytes) -> Result<CollectionBody, SfError> {
    let v = parse_body(body)?;
    let c: CollectionBody = serde_json::from_value(v)
        .map_err(|e| sf_err(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", format!("{e}")))?;
    if c.records.len() > 200 {
        return Err(sf_err(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    Ok(c)
}

/// Run each record's write; with allOrNone, one failure undoes them all.
fn each_record(
    sim: &SalesforceSim,
    org: &mut Org,
    c: CollectionBody,
    mut write: impl FnMut(
        &SalesforceSim,
        &mut Org,
        &Map<String, Value>,
    ) -> Result<(String, Option<bool>), SfError>,
) -> Value {
    let snapshot = c.all_or_none.then(|| (org.records.clone(), org.next_id));
    let mut results = Vec::new();
    let mut failed = false;
    for rec in &c.records {
        match write(sim, org, rec) {
            Ok((id, created)) => {
                let mut r = json!({ "id": id, "success": true, "errors": [] });
                if let Some(c) = created {
                    r["created"] = json!(c);
                }
                results.push(r);
            }
            Err(e) => {
                failed = true;
                results.push(json!({ "success": false, "errors": [e.body("statusCode")] }));
            }
        }
    }
    if let (true, Some((records, next))) = (failed, snapshot) {
        org.records = records;
        org.next_id = next;
        for r in results.iter_mut() {
            if r["success"] == true {
                *r = json!({ "success": false, "errors": [{ "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header" }] });
            }
        }
    }
    json!(results)
}

fn record_object<'a>(
    sim: &'a SalesforceSim,
    rec: &Map<String, Value>,
) -> Result<&'a Object, SfError> {
    let t = rec
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            sf_err(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                "Each record needs attributes.type",
            )
        })?;
    sim.object(t).ok_or_else(|| {
        sf_err(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("sObject type '{t}' is not supported."),
        )
    })
}

async fn collection_create(
    State(sim): State<Arc<SalesforceSim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    data_call(&sim, &headers, "collection_create", |sim, org| {
        let c = collection_body(&body)?;
        let out = each_record(sim, org, c, |sim, org, rec| {
            let obj = record_object(sim, rec)?;
            Ok((sim.insert(org, obj, rec)?, None))
        });
        Ok((StatusCode::OK, Some(out)))
    })
    .await
}

async fn collection_update(
    State(sim): State<Arc<SalesforceSim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    data_call(&sim, &headers, "collection_update", |sim, org| {
        let c = collection_body(&body)?;
        let out = each_record(sim, org, c, |sim, org, rec| {
            let obj = record_object(sim, rec)?;
            let id = rec
                .get("id")
                .or_else(|| rec.get("Id"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    sf_err(
                        StatusCode::BAD_REQUEST,
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                    )
                })?
                .to_string();
            let mut fields = rec.clone();
            fields.remove("id");
            fields.remove("Id");
            sim.modify(org, obj, &id, &fields)?;
            Ok((id, None))
        });
        Ok((StatusCode::OK, Some(out)))
    })
    .await
}

async fn collection_upsert(
    State(sim): State<Arc<SalesforceSim>>,
    Path((_v, object, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    data_call(&sim, &headers, "collection_upsert", |sim, org| {
        let obj = sim.known(&object)?;
        let c = collection_body(&body)?;
        let out = each_record(sim, org, c, |sim, org, rec| {
            let key = rec
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&field))
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .ok_or_else(|| {
                    sf_err(
                        StatusCode::BAD_REQUEST,
                        "MISSING_ARGUMENT",
                        format!("{field} not specified"),
                    )
                })?;
            let (id, created) = sim.upsert_by(org, obj, &field, &key, rec)?;
            Ok((id, Some(created)))
        });
        Ok((StatusCode::OK, Some(out)))
    })
    .await
}

// ---- control ----

async fn set_faults(State(sim): State<Arc<SalesforceSim>>, Json(v): Json<Value>) -> Response {
    match faults::parse(v) {
        Ok(cfg) => {
            sim.faults.set(cfg);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn clear_faults(State(sim): State<Arc<SalesforceSim>>) -> StatusCode {
    sim.faults.clear();
    StatusCode::NO_CONTENT
}

async fn expire_tokens(State(sim): State<Arc<SalesforceSim>>) -> StatusCode {
    sim.expire_tokens();
    StatusCode::NO_CONTENT
}

async fn control_records(
    State(sim): State<Arc<SalesforceSim>>,
    Path(object): Path<String>,
) -> Json<Value> {
    Json(json!(sim.records(&object)))
}

async fn control_stats(State(sim): State<Arc<SalesforceSim>>) -> Json<Value> {
    Json(sim.stats())
}

async fn control_reset(State(sim): State<Arc<SalesforceSim>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}
