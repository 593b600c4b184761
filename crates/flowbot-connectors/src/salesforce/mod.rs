//! Salesforce over its REST API: OAuth 2.0 (client credentials, JWT bearer, refresh token),
//! sessions cached per connection and shared by concurrent runs, one transparent re-login on
//! `INVALID_SESSION_ID`, records read and written one by one or 200 at a time through
//! sObject Collections, and Salesforce's error array mapped to retryable or not.
//!
//! Everything comes from the connection: the My Domain URL, the API version, and the
//! `instance_url` the token endpoint answers with. Nothing assumes the simulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flowbot_core::manifest::AppManifest;
use flowbot_core::{ActionCall, ActionError, ApiUsage, Connection, Connector};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

mod api;
mod auth;
mod errors;
mod soql;
mod spec;

use auth::*;
use errors::*;
use soql::*;
use spec::*;

pub use api::parse_limit_info;
pub use auth::jwt_assertion;
pub use errors::check_settings;
pub use soql::build_search;

pub const DEFAULT_API_VERSION: &str = "v62.0";
/// sObject Collections take at most this many records per call.
pub const COLLECTION_LIMIT: usize = 200;

#[derive(Clone)]
struct Session {
    pub(super) access_token: String,
    pub(super) instance_url: String,
}

/// Per connection: the current session, and the newest refresh token (a refresh answer may
/// rotate it; the old one then stops working).
#[derive(Default)]
struct Slot {
    pub(super) session: Option<Session>,
    pub(super) refresh_token: Option<String>,
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
        let body = self.token_request(c, &form).await?;
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
        crate::http::rotated_refresh_tokens(&mut self.rotated.lock().expect("rotated tokens"))
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
