//! The data API's frame: authentication, counting, fault injection, `Sforce-Limit-Info`,
//! errors as Salesforce writes them, and the org's record operations.

use std::time::Instant;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::schema::{FieldType, Object};
use crate::faults::InjectedError;

use super::*;

/// Authenticate, count, inject faults, run, and answer with `Sforce-Limit-Info`.
pub(super) async fn data_call(
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

pub(super) fn error_response(e: &SfError, limit: Option<&str>) -> Response {
    let mut resp = (e.status, Json(json!([e.body("errorCode")]))).into_response();
    if let Some(l) = limit {
        resp.headers_mut()
            .insert("sforce-limit-info", l.parse().expect("ascii header"));
    }
    resp
}

pub(super) fn injected_response(e: InjectedError, limit: &str) -> Response {
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

pub(super) fn parse_body(body: &Bytes) -> Result<Value, SfError> {
    serde_json::from_slice(body).map_err(|e| {
        sf_err(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("Unexpected character: {e}"),
        )
    })
}

impl SalesforceSim {
    pub(super) fn known(&self, name: &str) -> Result<&Object, SfError> {
        self.object(name).ok_or_else(|| {
            sf_err(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("The requested resource does not exist: sObject type '{name}' is not supported."),
            )
        })
    }

    pub(super) fn new_id(&self, org: &mut Org, obj: &Object) -> String {
        org.next_id += 1;
        format!("{}{:015}", obj.key_prefix, org.next_id)
    }

    /// Check and normalise the fields of a write. `existing` is the record being updated.
    pub(super) fn check_fields(
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
                        let mut same =
                            recs.candidates(field.name, &Value::String(t.to_string()))?;
                        same.find(|(id, r)| {
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

    pub(super) fn insert(
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
        self.inserted.notify_waiters();
        Ok(id)
    }

    pub(super) fn modify(
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
        org.records.entry(obj.name).or_default().update(id, |rec| {
            rec.extend(clean);
            rec.insert(
                "LastModifiedDate".into(),
                json!(jiff::Timestamp::now().to_string()),
            );
        });
        Ok(())
    }

    /// Upsert by an external-ID field: `Ok((id, created))`.
    pub(super) fn upsert_by(
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
            .and_then(|recs| recs.candidates(f.name, &Value::String(value.to_string())))
            .map(|same| {
                same.filter(|(_, r)| {
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

pub(super) fn not_found_id(obj: &Object, id: &str) -> SfError {
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

pub(super) fn record_url(v: &str, obj: &str, id: &str) -> String {
    format!("/services/data/{v}/sobjects/{obj}/{id}")
}

pub(super) fn with_attributes(
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
