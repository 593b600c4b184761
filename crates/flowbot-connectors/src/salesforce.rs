//! Salesforce over its REST API: OAuth 2.0 (client credentials, JWT bearer, refresh token),
//! sessions cached per connection and shared by concurrent runs, one transparent re-login on
//! `INVALID_SESSION_ID`, records read and written one by one or 200 at a time through
//! sObject Collections, and Salesforce's error array mapped to retryable or not.
//!
//! Everything comes from the connection: the My Domain URL, the API version, and the
//! `instance_url` the token endpoint answers with. Nothing assumes the simulator.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text};
use flowbot_core::template::soql_literal;
use flowbot_core::{ActionCall, ActionError, ApiUsage, Connection, Connector};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::http::{retry_after, transport_error};

pub const DEFAULT_API_VERSION: &str = "v62.0";
/// sObject Collections take at most this many records per call.
pub const COLLECTION_LIMIT: usize = 200;

#[derive(Clone)]
struct Session {
    access_token: String,
    instance_url: String,
}

/// Per connection: the current session, and the newest refresh token (a refresh answer may
/// rotate it; the old one then stops working).
#[derive(Default)]
struct Slot {
    session: Option<Session>,
    refresh_token: Option<String>,
}

pub struct SalesforceConnector {
    manifest: AppManifest,
    client: reqwest::Client,
    slots: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Slot>>>>,
    /// The latest `Sforce-Limit-Info` per connection name: (used, daily allowance).
    usage: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Describe answers by connection and object ("" for the object list), with when they
    /// came: schemas change rarely, and the editor asks on every change of a mapping.
    described: Mutex<HashMap<(u64, String), (std::time::Instant, Value)>>,
    /// Rotated refresh tokens not yet saved: connection name → token.
    rotated: Mutex<HashMap<String, String>>,
}

impl SalesforceConnector {
    /// The object list, or one object's fields, as Salesforce says now.
    async fn describe_now(
        &self,
        c: &Connection,
        object: Option<&str>,
    ) -> Result<Value, ActionError> {
        match object {
            None => {
                let (_, v) = self.call(c, Method::GET, "/sobjects/", None).await?;
                let mut list: Vec<Value> = v["sobjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| json!({ "name": o["name"], "label": o["label"] }))
                    .collect();
                list.sort_by_key(|o| o["name"].as_str().unwrap_or("").to_string());
                Ok(Value::Array(list))
            }
            Some(object) => {
                let object = api_name("object", object)?;
                let (_, v) = self
                    .call(
                        c,
                        Method::GET,
                        &format!("/sobjects/{object}/describe"),
                        None,
                    )
                    .await?;
                let fields: Vec<Value> = v["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        json!({
                            "name": f["name"], "label": f["label"], "type": f["type"],
                            "length": f["length"], "createable": f["createable"],
                            "updateable": f["updateable"], "externalId": f["externalId"],
                        })
                    })
                    .collect();
                Ok(Value::Array(fields))
            }
        }
    }

    pub fn new(client: reqwest::Client) -> Self {
        SalesforceConnector {
            manifest: manifest(),
            client,
            slots: Mutex::new(HashMap::new()),
            usage: Mutex::new(BTreeMap::new()),
            described: Mutex::new(HashMap::new()),
            rotated: Mutex::new(HashMap::new()),
        }
    }
}

fn t(en: &str, ja: &str) -> Text {
    Text::new(en, ja)
}

fn object_input() -> FieldSpec {
    FieldSpec::new("object", FieldKind::Text, t("Object", "オブジェクト"))
        .required()
        .help(
            "The object's API name, e.g. Account, Contact, Lead",
            "オブジェクトの API 参照名（例: Account、Contact、Lead）",
        )
}

fn fields_input(help_en: &str, help_ja: &str) -> FieldSpec {
    FieldSpec::new("fields", FieldKind::Map, t("Fields", "項目"))
        .required()
        .help(help_en, help_ja)
}

fn record_outputs(created: bool) -> Vec<OutputSpec> {
    let mut v = vec![
        OutputSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")),
        OutputSpec::new("success", FieldKind::Boolean, t("Succeeded", "成功")),
    ];
    if created {
        v.push(OutputSpec::new(
            "created",
            FieldKind::Boolean,
            t("Created", "作成された"),
        ));
    }
    v
}

fn query_outputs() -> Vec<OutputSpec> {
    vec![
        OutputSpec::new("totalSize", FieldKind::Integer, t("Records found", "件数")),
        OutputSpec::new("records", FieldKind::List, t("Records", "レコード")),
    ]
}

fn collection_outputs() -> Vec<OutputSpec> {
    vec![
        OutputSpec::new(
            "results",
            FieldKind::List,
            t("Per-record results", "レコードごとの結果"),
        ),
        OutputSpec::new("succeeded", FieldKind::Integer, t("Succeeded", "成功件数")),
        OutputSpec::new("failed", FieldKind::Integer, t("Failed", "失敗件数")),
    ]
}

fn action(
    id: &str,
    name: Text,
    description: Text,
    inputs: Vec<FieldSpec>,
    outputs: Vec<OutputSpec>,
    idempotent: bool,
    writes: bool,
) -> ActionSpec {
    ActionSpec {
        id: id.into(),
        name,
        description,
        inputs,
        outputs,
        idempotent,
        writes,
    }
}

fn manifest() -> AppManifest {
    let records_input = || {
        FieldSpec::new("records", FieldKind::List, t("Records", "レコード"))
            .required()
            .help(
                "Up to 200 records, each a mapping of fields",
                "最大200件。各レコードは項目の対応表",
            )
    };
    AppManifest {
        id: "salesforce".into(),
        name: t("Salesforce", "Salesforce"),
        description: t(
            "Search, create and update records in your Salesforce org.",
            "Salesforce 組織のレコードを検索・作成・更新します。",
        ),
        connection: vec![
            FieldSpec::new("my_domain_url", FieldKind::Text, t("My Domain URL", "マイドメイン URL"))
                .required()
                .help("e.g. https://yourcompany.my.salesforce.com (Setup → My Domain)", "例: https://yourcompany.my.salesforce.com（設定 → 私のドメイン）"),
            FieldSpec::new("api_version", FieldKind::Text, t("API version", "API バージョン"))
                .default_value(json!(DEFAULT_API_VERSION)),
            FieldSpec::new("auth", FieldKind::Select, t("Sign-in method", "認証方式"))
                .choices(&["client_credentials", "jwt_bearer", "refresh_token"])
                .default_value(json!("client_credentials")),
            FieldSpec::new("client_id", FieldKind::Text, t("Consumer key", "コンシューマ鍵")).required(),
            FieldSpec::new("client_secret", FieldKind::Text, t("Consumer secret", "コンシューマの秘密")).secret(),
            FieldSpec::new("username", FieldKind::Text, t("Username (JWT)", "ユーザー名（JWT）")),
            FieldSpec::new("private_key", FieldKind::Text, t("Private key, PEM (JWT)", "秘密鍵 PEM（JWT）")).secret(),
            FieldSpec::new("audience", FieldKind::Text, t("Audience (JWT)", "オーディエンス（JWT）"))
                .default_value(json!("https://login.salesforce.com"))
                .help("https://login.salesforce.com, or https://test.salesforce.com for a sandbox — never the My Domain URL", "本番は https://login.salesforce.com、Sandbox は https://test.salesforce.com（マイドメイン URL ではありません）"),
            FieldSpec::new("refresh_token", FieldKind::Text, t("Refresh token", "リフレッシュトークン")).secret(),
        ],
        triggers: Vec::new(),
        actions: vec![
            action(
                "search_records",
                t("Search records", "レコードを検索する"),
                t("Find records whose fields equal the given values.", "項目が指定の値と一致するレコードを検索します。"),
                vec![
                    object_input(),
                    FieldSpec::new("where", FieldKind::Map, t("Conditions", "検索条件"))
                        .required()
                        .help("Field API name → value; all must match (text compares without regard to case)", "項目の API 参照名 → 値（すべて一致。テキストは大文字小文字を区別しません）"),
                    FieldSpec::new("fields", FieldKind::List, t("Fields to return", "取得する項目"))
                        .default_value(json!(["Id"])),
                    FieldSpec::new("limit", FieldKind::Integer, t("At most", "最大件数")),
                ],
                query_outputs(),
                true,
                false,
            ),
            action(
                "query",
                t("Run a SOQL query", "SOQL で検索する"),
                t("Any SOQL query; quote values with the soql_quote filter.", "任意の SOQL。値は soql_quote フィルターで囲みます。"),
                vec![FieldSpec::new("soql", FieldKind::Text, t("SOQL", "SOQL")).required()],
                query_outputs(),
                true,
                false,
            ),
            action(
                "get_record",
                t("Get a record", "レコードを取得する"),
                t("Read one record by its ID.", "ID でレコードを1件取得します。"),
                vec![
                    object_input(),
                    FieldSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")).required(),
                    FieldSpec::new("fields", FieldKind::List, t("Fields", "項目")),
                ],
                vec![OutputSpec::new("Id", FieldKind::Text, t("Record ID", "レコード ID"))],
                true,
                false,
            ),
            action(
                "create_record",
                t("Create a record", "レコードを追加する"),
                t("Create one record.", "レコードを1件作成します。"),
                vec![object_input(), fields_input("Field API name → value", "項目の API 参照名 → 値")],
                record_outputs(true),
                false,
                true,
            ),
            action(
                "update_record",
                t("Update a record", "レコードを更新する"),
                t("Change fields of one record.", "レコード1件の項目を更新します。"),
                vec![
                    object_input(),
                    FieldSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")).required(),
                    fields_input("Fields to change: API name → value", "更新する項目: API 参照名 → 値"),
                ],
                record_outputs(false),
                true,
                true,
            ),
            action(
                "upsert_record",
                t("Create or update by external ID", "外部 ID で作成または更新する"),
                t(
                    "One call: updates the record whose external-ID field has this value, or creates it.",
                    "1回の呼び出しで、外部 ID 項目がこの値のレコードを更新、なければ作成します。",
                ),
                vec![
                    object_input(),
                    FieldSpec::new("external_id_field", FieldKind::Text, t("External ID field", "外部 ID 項目"))
                        .required()
                        .help("A field marked External ID, e.g. Ecforce_Customer_Id__c", "外部 ID に設定された項目（例: Ecforce_Customer_Id__c）"),
                    FieldSpec::new("external_id", FieldKind::Text, t("External ID", "外部 ID")).required(),
                    fields_input("Other fields: API name → value", "その他の項目: API 参照名 → 値"),
                ],
                record_outputs(true),
                true,
                true,
            ),
            action(
                "delete_record",
                t("Delete a record", "レコードを削除する"),
                t("Delete one record by its ID.", "ID でレコードを1件削除します。"),
                vec![object_input(), FieldSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")).required()],
                vec![OutputSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID"))],
                true,
                true,
            ),
            action(
                "create_records",
                t("Create up to 200 records", "レコードを一括作成する（最大200件）"),
                t("One call through sObject Collections.", "sObject Collections で1回の呼び出しで作成します。"),
                vec![
                    object_input(),
                    records_input(),
                    FieldSpec::new("all_or_none", FieldKind::Boolean, t("All or none", "すべて成功時のみ確定")).default_value(json!(false)),
                ],
                collection_outputs(),
                false,
                true,
            ),
            action(
                "update_records",
                t("Update up to 200 records", "レコードを一括更新する（最大200件）"),
                t("Each record carries its Id.", "各レコードに Id を含めます。"),
                vec![
                    object_input(),
                    records_input(),
                    FieldSpec::new("all_or_none", FieldKind::Boolean, t("All or none", "すべて成功時のみ確定")).default_value(json!(false)),
                ],
                collection_outputs(),
                true,
                true,
            ),
            action(
                "upsert_records",
                t("Create or update up to 200 records by external ID", "外部 ID で一括作成・更新する（最大200件）"),
                t("Each record carries its external-ID field.", "各レコードに外部 ID 項目を含めます。"),
                vec![
                    object_input(),
                    FieldSpec::new("external_id_field", FieldKind::Text, t("External ID field", "外部 ID 項目")).required(),
                    records_input(),
                    FieldSpec::new("all_or_none", FieldKind::Boolean, t("All or none", "すべて成功時のみ確定")).default_value(json!(false)),
                ],
                collection_outputs(),
                true,
                true,
            ),
        ],
    }
}

/// API names are pasted into URLs and SOQL: only plain names pass.
fn api_name(what: &str, s: &str) -> Result<String, ActionError> {
    let ok = !s.is_empty()
        && s.len() <= 80
        && s.split('.').all(|part| {
            let mut c = part.chars();
            matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic())
                && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(ActionError::fatal(format!(
            "input `{what}`: `{s}` is not a Salesforce API name (letters, digits and _, e.g. Mail__c)"
        )))
    }
}

fn str_in<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ActionError> {
    match input.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(ActionError::fatal(format!("input `{key}` is required"))),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn map_in<'a>(
    input: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, ActionError> {
    match input.get(key) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(ActionError::fatal(format!(
            "input `{key}` must be a mapping of field API names to values"
        ))),
    }
}

/// A SOQL literal for a value: text quoted and escaped, numbers and booleans as they are.
fn literal(v: &Value) -> Result<String, ActionError> {
    Ok(match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => soql_literal(s),
        _ => {
            return Err(ActionError::fatal(
                "a search value must be text, a number, true/false or null",
            ))
        }
    })
}

/// `SELECT … FROM … WHERE a = 'x' AND b = 'y' [LIMIT n]`, values escaped, names checked.
pub fn build_search(input: &Map<String, Value>) -> Result<String, ActionError> {
    let object = api_name("object", str_in(input, "object")?)?;
    let fields: Vec<String> = match input.get("fields") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|f| api_name("fields", f.as_str().unwrap_or_default()))
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) if !s.is_empty() => s
            .split(',')
            .map(|f| api_name("fields", f.trim()))
            .collect::<Result<_, _>>()?,
        _ => vec!["Id".into()],
    };
    let conds = map_in(input, "where")?;
    if conds.is_empty() {
        return Err(ActionError::fatal(
            "input `where` needs at least one field and value",
        ));
    }
    let mut clauses = Vec::new();
    for (k, v) in conds {
        clauses.push(format!("{} = {}", api_name("where", k)?, literal(v)?));
    }
    let mut soql = format!(
        "SELECT {} FROM {object} WHERE {}",
        fields.join(", "),
        clauses.join(" AND ")
    );
    if let Some(n) = input
        .get("limit")
        .and_then(|l| l.as_u64().or_else(|| l.as_str()?.parse().ok()))
    {
        soql.push_str(&format!(" LIMIT {n}"));
    }
    Ok(soql)
}

/// Salesforce's error array (or an OAuth error object) as an action error.
fn map_error(status: StatusCode, body: &Value, retry: Option<Duration>) -> ActionError {
    let first = body.as_array().and_then(|a| a.first()).unwrap_or(body);
    let code = first
        .get("errorCode")
        .or_else(|| first.get("statusCode"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = first
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let fields: Vec<String> = first
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let retryable = status.is_server_error()
        || matches!(
            code.as_str(),
            "REQUEST_LIMIT_EXCEEDED" | "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE"
        );
    // The code once: some answers already quote it in their message.
    let tag = if code.is_empty() || message.contains(&code) {
        String::new()
    } else {
        format!(" [{code}]")
    };
    let text = if fields.is_empty() {
        format!("Salesforce: {message}{tag}")
    } else {
        format!("Salesforce: {message}{tag} (fields: {})", fields.join(", "))
    };
    let e = if retryable {
        ActionError::retryable(text)
    } else {
        ActionError::fatal(text)
    };
    let e = if code.is_empty() {
        e
    } else {
        e.with_code(code)
    };
    e.with_fields(fields).with_retry_after(retry)
}

/// Why the token endpoint refused, always with the HTTP status, the token URL and what the
/// answer said: an OAuth error object, a Salesforce error list, or an excerpt of anything
/// else (an HTML error page from a proxy). Server errors, rate limits and Salesforce's
/// transient codes are worth trying again; a refused credential is not.
fn sign_in_error(connection: &str, url: &str, status: StatusCode, body: &[u8]) -> ActionError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let first = parsed.as_array().and_then(|a| a.first()).unwrap_or(&parsed);
    let code = first
        .get("error")
        .or_else(|| first.get("errorCode"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let desc = first
        .get("error_description")
        .or_else(|| first.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let said = match (code.as_str(), desc) {
        ("", "") => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(200).collect();
            if excerpt.is_empty() {
                "an empty answer".to_string()
            } else {
                format!("`{excerpt}`")
            }
        }
        ("", d) => d.to_string(),
        (c, "") => c.to_string(),
        (c, d) => format!("{c}: {d}"),
    };
    let message = format!(
        "Salesforce refused to sign in connection `{connection}` (HTTP {} from {url}): {said}",
        status.as_u16()
    );
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || matches!(
            code.as_str(),
            "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" | "UNABLE_TO_LOCK_ROW"
        );
    let e = if transient {
        ActionError::retryable(message)
    } else {
        ActionError::fatal(message)
    };
    if code.is_empty() {
        e
    } else {
        e.with_code(code)
    }
}

/// A 404 from an upsert says only "The requested resource does not exist": say which
/// object, field and value were used and what to check.
fn upsert_not_found(object: &str, field: &str, value: &str, e: ActionError) -> ActionError {
    ActionError {
        message: format!(
            "Salesforce found no `{object}` object with an external ID field `{field}` \
             (upserting `{field}` = `{value}`): check that the object and the field exist, that \
             the field is marked External ID, and that the connection's user can see both. \
             Salesforce said: {}",
            e.message.trim_start_matches("Salesforce: ")
        ),
        ..e
    }
}

/// Settings a Salesforce connection cannot work with, refused when it is saved.
pub fn check_settings(settings: &Map<String, Value>) -> Result<(), String> {
    let Some(domain) = settings
        .get("my_domain_url")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
    else {
        return Ok(());
    };
    let url = reqwest::Url::parse(domain.trim()).map_err(|_| {
        format!("my_domain_url `{domain}` is not a URL: give it as https://yourcompany.my.salesforce.com")
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!(
            "my_domain_url must start with https:// (e.g. https://yourcompany.my.salesforce.com), not `{}:`",
            url.scheme()
        ));
    }
    let mut extra = String::new();
    if url.path() != "/" {
        extra.push_str(url.path());
    }
    if let Some(q) = url.query() {
        extra.push('?');
        extra.push_str(q);
    }
    if let Some(f) = url.fragment() {
        extra.push('#');
        extra.push_str(f);
    }
    if !extra.is_empty() {
        let origin = url.origin().ascii_serialization();
        return Err(format!(
            "my_domain_url must be the domain only: remove `{extra}` (use {origin})"
        ));
    }
    Ok(())
}

/// How long a describe answer is reused.
const DESCRIBE_TTL: Duration = Duration::from_secs(300);

fn conn_key(c: &Connection) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.name.hash(&mut h);
    serde_json::to_string(&c.settings)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

fn setting<'a>(c: &'a Connection, key: &str) -> Option<&'a str> {
    c.setting_str(key).filter(|s| !s.is_empty())
}

fn need<'a>(c: &'a Connection, key: &str) -> Result<&'a str, ActionError> {
    setting(c, key).ok_or_else(|| {
        ActionError::fatal(format!(
            "the Salesforce connection `{}` has no `{key}`: add it to the connection",
            c.name
        ))
    })
}

fn version(c: &Connection) -> String {
    let v = setting(c, "api_version").unwrap_or(DEFAULT_API_VERSION);
    if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    }
}

impl SalesforceConnector {
    fn slot(&self, c: &Connection) -> Arc<tokio::sync::Mutex<Slot>> {
        self.slots
            .lock()
            .expect("sessions")
            .entry(conn_key(c))
            .or_default()
            .clone()
    }

    /// The connection's session, signing in when there is none. Concurrent runs wait for
    /// one sign-in rather than each making their own.
    async fn session(&self, c: &Connection) -> Result<Session, ActionError> {
        let slot = self.slot(c);
        let mut s = slot.lock().await;
        if let Some(session) = &s.session {
            return Ok(session.clone());
        }
        let session = self.sign_in(c, &mut s).await?;
        s.session = Some(session.clone());
        Ok(session)
    }

    /// Forget a session the org refused, unless another run already replaced it.
    async fn forget(&self, c: &Connection, failed: &Session) {
        let slot = self.slot(c);
        let mut s = slot.lock().await;
        if s.session
            .as_ref()
            .is_some_and(|x| x.access_token == failed.access_token)
        {
            s.session = None;
        }
    }

    async fn sign_in(&self, c: &Connection, slot: &mut Slot) -> Result<Session, ActionError> {
        let domain = need(c, "my_domain_url")?.trim_end_matches('/');
        let url = format!("{domain}/services/oauth2/token");
        let client_id = need(c, "client_id")?;
        let mut form: Vec<(&str, String)> = Vec::new();
        match setting(c, "auth").unwrap_or("client_credentials") {
            "client_credentials" => {
                form.push(("grant_type", "client_credentials".into()));
                form.push(("client_id", client_id.into()));
                form.push(("client_secret", need(c, "client_secret")?.into()));
            }
            "jwt_bearer" => {
                let assertion = jwt_assertion(
                    client_id,
                    need(c, "username")?,
                    setting(c, "audience").unwrap_or("https://login.salesforce.com"),
                    need(c, "private_key")?,
                )?;
                form.push((
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ));
                form.push(("assertion", assertion));
            }
            "refresh_token" => {
                let rt = slot
                    .refresh_token
                    .clone()
                    .map_or_else(|| need(c, "refresh_token").map(str::to_string), Ok)?;
                form.push(("grant_type", "refresh_token".into()));
                form.push(("client_id", client_id.into()));
                form.push(("client_secret", need(c, "client_secret")?.into()));
                form.push(("refresh_token", rt));
            }
            other => {
                return Err(ActionError::fatal(format!(
                    "the Salesforce connection `{}` has an unknown sign-in method `{other}`",
                    c.name
                )))
            }
        }
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            ActionError::fatal(format!("the connection's my_domain_url is not a URL: {e}"))
        })?;
        let resp = self
            .client
            .post(parsed.clone())
            .timeout(Duration::from_secs(30))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(&Method::POST, &parsed, e))?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&Method::POST, &parsed, e))?;
        if !status.is_success() {
            return Err(sign_in_error(&c.name, &url, status, &bytes).with_retry_after(retry));
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(rotated) = body.get("refresh_token").and_then(Value::as_str) {
            // Rotation retires the old refresh token: only the new one works from now on.
            slot.refresh_token = Some(rotated.to_string());
            self.rotated
                .lock()
                .expect("rotated tokens")
                .insert(c.name.clone(), rotated.to_string());
        }
        let token = body.get("access_token").and_then(Value::as_str);
        let instance = body.get("instance_url").and_then(Value::as_str);
        match (token, instance) {
            (Some(t), Some(i)) => Ok(Session {
                access_token: t.to_string(),
                instance_url: i.trim_end_matches('/').to_string(),
            }),
            _ => Err(ActionError::fatal(
                "Salesforce's token answer had no access_token or instance_url",
            )),
        }
    }

    /// One data-API call: `path` below `/services/data/vNN.0` or a full `/services/…` path.
    /// A refused session is replaced once and the call repeated.
    async fn call(
        &self,
        c: &Connection,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ActionError> {
        let mut session = self.session(c).await?;
        for attempt in 0..2 {
            let url = if path.starts_with("/services/") {
                format!("{}{path}", session.instance_url)
            } else {
                format!(
                    "{}/services/data/{}{path}",
                    session.instance_url,
                    version(c)
                )
            };
            let parsed = reqwest::Url::parse(&url)
                .map_err(|e| ActionError::fatal(format!("bad Salesforce URL {url}: {e}")))?;
            let mut req = self
                .client
                .request(method.clone(), parsed.clone())
                .bearer_auth(&session.access_token)
                .timeout(Duration::from_secs(60));
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_connect() => {
                    // Nothing was sent. The org's instance stopped answering (moved, its name
                    // gone): the cached session points there, so it is dropped, and a fresh
                    // sign-in that names another instance is tried at once.
                    let err = transport_error(&method, &parsed, e);
                    self.forget(c, &session).await;
                    if attempt == 0 {
                        if let Ok(fresh) = self.session(c).await {
                            if fresh.instance_url != session.instance_url {
                                tracing::info!(connection = %c.name, "Salesforce instance unreachable; using the one a fresh sign-in named");
                                session = fresh;
                                continue;
                            }
                        }
                    }
                    return Err(err);
                }
                Err(e) => return Err(transport_error(&method, &parsed, e)),
            };
            let status = resp.status();
            if let Some(usage) = resp
                .headers()
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_limit_info)
            {
                self.usage
                    .lock()
                    .expect("usage")
                    .insert(c.name.clone(), usage);
            }
            let retry = retry_after(resp.headers());
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| transport_error(&method, &parsed, e))?;
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                tracing::info!(connection = %c.name, "Salesforce session expired; signing in again");
                self.forget(c, &session).await;
                session = self.session(c).await?;
                continue;
            }
            if status.is_success() {
                return Ok((status, value));
            }
            if status == StatusCode::UNAUTHORIZED {
                // Signed in afresh and refused again: sessions are being revoked as they
                // are made (an administrator's revoke, expiries in a burst). Wrong
                // credentials would have failed at sign-in, so this is tried again later.
                return Err(ActionError::retryable(
                    "Salesforce refused the session just opened (it expired or was revoked again); trying again shortly",
                )
                .with_code("INVALID_SESSION_ID"));
            }
            if status == StatusCode::MULTIPLE_CHOICES {
                return Err(ActionError::fatal(
                    "Salesforce: several records have this external ID; make the field unique",
                )
                .with_code("MULTIPLE_CHOICES"));
            }
            return Err(map_error(status, &value, retry));
        }
        unreachable!("the loop returns on its second pass")
    }

    /// A query, following `nextRecordsUrl` until done.
    async fn query_all(&self, c: &Connection, soql: &str) -> Result<Value, ActionError> {
        let mut q = reqwest::Url::parse("http://x/query").expect("static URL");
        q.query_pairs_mut().append_pair("q", soql);
        let path = format!("/query?{}", q.query().unwrap_or_default());
        let (_, mut page) = self.call(c, Method::GET, &path, None).await?;
        let total = page.get("totalSize").cloned().unwrap_or(json!(0));
        let mut records: Vec<Value> = take_records(&mut page);
        while page.get("done") == Some(&Value::Bool(false)) {
            let Some(next) = page
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                break;
            };
            let (_, p) = self.call(c, Method::GET, &next, None).await?;
            page = p;
            records.extend(take_records(&mut page));
        }
        Ok(json!({ "totalSize": total, "done": true, "records": records, "soql": soql }))
    }

    async fn collection(
        &self,
        c: &Connection,
        input: &Map<String, Value>,
        kind: &str,
    ) -> Result<Value, ActionError> {
        let object = api_name("object", str_in(input, "object")?)?;
        let Some(Value::Array(records)) = input.get("records") else {
            return Err(ActionError::fatal(
                "input `records` must be a list of records",
            ));
        };
        if records.len() > COLLECTION_LIMIT {
            return Err(ActionError::fatal(format!(
                "input `records` has {} records; Salesforce takes at most {COLLECTION_LIMIT} per call",
                records.len()
            )));
        }
        let mut out = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let Value::Object(m) = r else {
                return Err(ActionError::fatal(format!(
                    "input `records[{i}]` must be a mapping of fields"
                )));
            };
            let mut m = m.clone();
            m.insert("attributes".into(), json!({ "type": object }));
            out.push(Value::Object(m));
        }
        let all_or_none = input
            .get("all_or_none")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let body = json!({ "allOrNone": all_or_none, "records": out });
        let (method, path) = match kind {
            "create" => (Method::POST, "/composite/sobjects".to_string()),
            "update" => (Method::PATCH, "/composite/sobjects".to_string()),
            _ => {
                let field = api_name("external_id_field", str_in(input, "external_id_field")?)?;
                (
                    Method::PATCH,
                    format!("/composite/sobjects/{object}/{field}"),
                )
            }
        };
        let (_, results) = self.call(c, method, &path, Some(&body)).await?;
        let list = results.as_array().cloned().unwrap_or_default();
        let ok = list.iter().filter(|r| r["success"] == true).count();
        Ok(json!({ "results": list, "succeeded": ok, "failed": list.len() - ok }))
    }
}

fn take_records(page: &mut Value) -> Vec<Value> {
    match page.get_mut("records").map(Value::take) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

/// `api-usage=1234/100000` → (1234, 100000).
pub fn parse_limit_info(h: &str) -> Option<(u64, u64)> {
    let usage = h
        .split(',')
        .find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (used, limit) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// The JWT bearer assertion: RS256, `iss` the consumer key, `sub` the username, `aud`
/// the login host (never the My Domain URL), expiring within three minutes.
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &str,
) -> Result<String, ActionError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|e| {
        ActionError::fatal(format!(
            "the connection's private_key is not an RSA private key in PEM form: {e}"
        ))
    })?;
    let exp = jiff::Timestamp::now().as_second() + 170;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| ActionError::fatal(format!("the JWT assertion could not be signed: {e}")))
}

fn path_segment(s: &str) -> String {
    let mut u = reqwest::Url::parse("http://x/").expect("static URL");
    u.path_segments_mut().expect("http URLs have paths").push(s);
    u.path().trim_start_matches('/').to_string()
}

#[async_trait]
impl Connector for SalesforceConnector {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        let c = call
            .connection
            .ok_or_else(|| ActionError::fatal("this Salesforce step has no connection"))?;
        let input = call.input;
        match call.action {
            "search_records" => self.query_all(c, &build_search(input)?).await,
            "query" => self.query_all(c, str_in(input, "soql")?).await,
            "get_record" => {
                let object = api_name("object", str_in(input, "object")?)?;
                let id = path_segment(str_in(input, "id")?);
                let fields = match input.get("fields") {
                    Some(Value::Array(a)) if !a.is_empty() => {
                        let names: Vec<String> = a
                            .iter()
                            .map(|f| api_name("fields", f.as_str().unwrap_or_default()))
                            .collect::<Result<_, _>>()?;
                        format!("?fields={}", names.join(","))
                    }
                    _ => String::new(),
                };
                Ok(self
                    .call(
                        c,
                        Method::GET,
                        &format!("/sobjects/{object}/{id}{fields}"),
                        None,
                    )
                    .await?
                    .1)
            }
            "create_record" => {
                let object = api_name("object", str_in(input, "object")?)?;
                let fields = Value::Object(map_in(input, "fields")?.clone());
                let (_, out) = self
                    .call(
                        c,
                        Method::POST,
                        &format!("/sobjects/{object}/"),
                        Some(&fields),
                    )
                    .await?;
                Ok(json!({ "id": out["id"], "success": true, "created": true }))
            }
            "update_record" => {
                let object = api_name("object", str_in(input, "object")?)?;
                let id = str_in(input, "id")?;
                let fields = Value::Object(map_in(input, "fields")?.clone());
                self.call(
                    c,
                    Method::PATCH,
                    &format!("/sobjects/{object}/{}", path_segment(id)),
                    Some(&fields),
                )
                .await?;
                Ok(json!({ "id": id, "success": true }))
            }
            "upsert_record" => {
                let object = api_name("object", str_in(input, "object")?)?;
                let field = api_name("external_id_field", str_in(input, "external_id_field")?)?;
                let value = input
                    .get("external_id")
                    .and_then(scalar_text)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ActionError::fatal("input `external_id` is required"))?;
                let mut fields = map_in(input, "fields")?.clone();
                fields.retain(|k, _| !k.eq_ignore_ascii_case(&field));
                let (status, out) = self
                    .call(
                        c,
                        Method::PATCH,
                        &format!("/sobjects/{object}/{field}/{}", path_segment(&value)),
                        Some(&Value::Object(fields)),
                    )
                    .await
                    .map_err(|e| {
                        if e.code.as_deref() == Some("NOT_FOUND") {
                            upsert_not_found(&object, &field, &value, e)
                        } else {
                            e
                        }
                    })?;
                let created = out
                    .get("created")
                    .and_then(Value::as_bool)
                    .unwrap_or(status == StatusCode::CREATED);
                Ok(json!({ "id": out["id"], "success": true, "created": created }))
            }
            "delete_record" => {
                let object = api_name("object", str_in(input, "object")?)?;
                let id = str_in(input, "id")?;
                self.call(
                    c,
                    Method::DELETE,
                    &format!("/sobjects/{object}/{}", path_segment(id)),
                    None,
                )
                .await?;
                Ok(json!({ "id": id, "deleted": true }))
            }
            "create_records" => self.collection(c, input, "create").await,
            "update_records" => self.collection(c, input, "update").await,
            "upsert_records" => self.collection(c, input, "upsert").await,
            other => Err(ActionError::fatal(format!(
                "the salesforce app has no action `{other}`"
            ))),
        }
    }

    async fn describe(
        &self,
        connection: Option<&Connection>,
        object: Option<&str>,
    ) -> Result<Value, ActionError> {
        let c = connection.ok_or_else(|| {
            ActionError::fatal("choose a Salesforce connection to list its objects")
        })?;
        let key = (conn_key(c), object.unwrap_or("").to_string());
        if let Some((at, v)) = self.described.lock().expect("described").get(&key) {
            if at.elapsed() < DESCRIBE_TTL {
                return Ok(v.clone());
            }
        }
        let answer = self.describe_now(c, object).await?;
        self.described
            .lock()
            .expect("described")
            .insert(key, (std::time::Instant::now(), answer.clone()));
        Ok(answer)
    }

    fn check_settings(&self, settings: &Map<String, Value>) -> Result<(), String> {
        check_settings(settings)
    }

    fn connects_with_oauth(&self) -> bool {
        true
    }

    fn oauth_authorize_url(
        &self,
        c: &Connection,
        r: &flowbot_core::OAuthRequest<'_>,
    ) -> Result<String, String> {
        let domain =
            setting(c, "my_domain_url").ok_or("set the connection's My Domain URL first")?;
        let client_id = setting(c, "client_id").ok_or("set the connection's consumer key first")?;
        let mut url = reqwest::Url::parse(&format!(
            "{}/services/oauth2/authorize",
            domain.trim_end_matches('/')
        ))
        .map_err(|_| "the connection's My Domain URL is not a URL".to_string())?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", r.redirect_uri)
            .append_pair("code_challenge", r.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", r.state);
        Ok(url.to_string())
    }

    /// The code for a refresh token, kept in the connection: from now on it signs in with it.
    async fn oauth_exchange(
        &self,
        c: &Connection,
        r: &flowbot_core::OAuthRequest<'_>,
        code: &str,
    ) -> Result<Map<String, Value>, ActionError> {
        let domain = need(c, "my_domain_url")?.trim_end_matches('/');
        let url = format!("{domain}/services/oauth2/token");
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            ActionError::fatal(format!("the connection's my_domain_url is not a URL: {e}"))
        })?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", r.redirect_uri),
            ("client_id", need(c, "client_id")?),
            (
                "client_secret",
                setting(c, "client_secret").unwrap_or_default(),
            ),
            ("code_verifier", r.code_verifier),
        ];
        let resp = self
            .client
            .post(parsed.clone())
            .timeout(Duration::from_secs(30))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(&Method::POST, &parsed, e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&Method::POST, &parsed, e))?;
        if !status.is_success() {
            return Err(sign_in_error(&c.name, &url, status, &bytes));
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let refresh = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ActionError::fatal(
                    "Salesforce did not connect: its answer had no refresh token (is the refresh_token scope granted to the connected app?)",
                )
            })?;
        let mut out = Map::new();
        out.insert("auth".into(), json!("refresh_token"));
        out.insert("refresh_token".into(), json!(refresh));
        Ok(out)
    }

    async fn test_connection(&self, c: &Connection) -> Result<(), ActionError> {
        self.call(c, Method::GET, "/sobjects/", None)
            .await
            .map(|_| ())
    }

    fn take_settings_updates(&self) -> Vec<(String, String, Value)> {
        self.rotated
            .lock()
            .expect("rotated tokens")
            .drain()
            .map(|(name, token)| (name, "refresh_token".to_string(), Value::String(token)))
            .collect()
    }

    fn api_usage(&self) -> Vec<ApiUsage> {
        self.usage
            .lock()
            .expect("usage")
            .iter()
            .map(|(name, (used, limit))| ApiUsage {
                connection: name.clone(),
                used: *used,
                limit: *limit,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn search_soql_escapes_values_and_checks_names() {
        let cases = [
            (
                json!({"object": "Account", "where": {"Mail__c": "taro@example.com"}, "fields": ["Id", "Name"]}),
                "SELECT Id, Name FROM Account WHERE Mail__c = 'taro@example.com'",
            ),
            (
                json!({"object": "Account", "where": {"Mail__c": "x' OR Name != '"}}),
                r"SELECT Id FROM Account WHERE Mail__c = 'x\' OR Name != \''",
            ),
            (
                json!({"object": "Account", "where": {"Name": "O'Brien \\ \"q\"\n山田"}}),
                r#"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ \"q\"\n山田'"#,
            ),
            (
                json!({"object": "Contact", "where": {"Age__c": 3, "Active__c": true}, "limit": 1}),
                "SELECT Id FROM Contact WHERE Age__c = 3 AND Active__c = true LIMIT 1",
            ),
        ];
        for (i, want) in cases {
            assert_eq!(build_search(&input(i)).unwrap(), want);
        }
        for bad in [
            json!({"object": "Account; DELETE", "where": {"Name": "x"}}),
            json!({"object": "Account", "where": {"Name = 'x' OR Id": "y"}}),
            json!({"object": "Account", "where": {}}),
            json!({"object": "Account", "where": {"Name": "x"}, "fields": ["Id, Name FROM User"]}),
        ] {
            assert!(build_search(&input(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_keep_salesforce_s_message_code_and_fields() {
        let body = json!([{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]}]);
        let e = map_error(StatusCode::BAD_REQUEST, &body, None);
        assert!(!e.is_retryable());
        assert_eq!(e.code.as_deref(), Some("REQUIRED_FIELD_MISSING"));
        assert_eq!(e.fields, ["Name"]);
        assert_eq!(e.message, "Salesforce: Required fields are missing: [Name] [REQUIRED_FIELD_MISSING] (fields: Name)");
        for (status, code) in [
            (403, "REQUEST_LIMIT_EXCEEDED"),
            (400, "UNABLE_TO_LOCK_ROW"),
            (503, "SERVER_UNAVAILABLE"),
            (500, "UNKNOWN_EXCEPTION"),
        ] {
            let e = map_error(
                StatusCode::from_u16(status).unwrap(),
                &json!([{"message": "m", "errorCode": code}]),
                None,
            );
            assert!(e.is_retryable(), "{code}");
        }
        for code in [
            "MALFORMED_QUERY",
            "INVALID_FIELD",
            "STRING_TOO_LONG",
            "DUPLICATE_VALUE",
            "INVALID_EMAIL_ADDRESS",
        ] {
            assert!(!map_error(
                StatusCode::BAD_REQUEST,
                &json!([{"message": "m", "errorCode": code}]),
                None
            )
            .is_retryable());
        }
    }

    #[test]
    fn limit_info_is_read() {
        assert_eq!(
            parse_limit_info("api-usage=1234/100000"),
            Some((1234, 100000))
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/2, api-usage=5/10"),
            Some((5, 10))
        );
        assert_eq!(parse_limit_info("nonsense"), None);
    }
}
