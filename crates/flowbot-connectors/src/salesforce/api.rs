//! Data-API calls: one call with a refused session replaced once, queries followed page by
//! page, and sObject Collections.

use std::time::Duration;

use flowbot_core::{ActionError, Connection};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::*;
use crate::http::{retry_after, transport_error};

impl SalesforceConnector {
    /// One data-API call: `path` below `/services/data/vNN.0` or a full `/services/…` path.
    /// A refused session is replaced once and the call repeated.
    pub(super) async fn call(
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
    pub(super) async fn query_all(&self, c: &Connection, soql: &str) -> Result<Value, ActionError> {
        let mut q = reqwest::Url::parse("http://x/query").expect("static URL");
        q.query_pairs_mut().append_pair("q", soql);
        let path = format!("/query?{}", q.query().unwrap_or_default());
        let (_, mut page) = self.call(c, Method::GET, &path, None).await?;
        let total = page.get("totalSize").cloned().unwrap_or(json!(0));
        let mut records: Vec<Value> = take_records(&mut page);
        let mut pages = 1u64;
        while page.get("done") == Some(&Value::Bool(false)) {
            let Some(next) = page
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                break;
            };
            let (_, p) = self.call(c, Method::GET, &next, None).await?;
            pages += 1;
            page = p;
            records.extend(take_records(&mut page));
        }
        Ok(
            json!({ "totalSize": total, "done": true, "records": records, "soql": soql, "pages": pages }),
        )
    }

    pub(super) async fn collection(
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

pub(super) fn take_records(page: &mut Value) -> Vec<Value> {
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
