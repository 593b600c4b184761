//! The data API's endpoints: query and its pages, describe, sObject rows, upsert by
//! external ID, and sObject Collections.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::schema::Object;

use super::*;

#[derive(Deserialize)]
pub(super) struct Q {
    q: Option<String>,
}

pub(super) async fn query(
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
        // An equality on text narrows the records to look at through the index.
        let narrowed = parsed
            .conditions
            .iter()
            .filter(|c| !c.negated)
            .find_map(|c| {
                let name = obj.field(&c.field)?.name;
                let same = org.records.get(obj.name)?.candidates(name, &c.value)?;
                Some(same.map(|(_, r)| r).collect::<Vec<_>>())
            });
        let mut rows: Vec<&Map<String, Value>> = match narrowed {
            Some(rows) => rows,
            None => org
                .records
                .get(obj.name)
                .map(|r| r.values().collect())
                .unwrap_or_default(),
        };
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

pub(super) fn page(org: &mut Org, v: &str, mut all: Vec<Value>, batch: usize) -> Value {
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

pub(super) async fn query_more(
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

pub(super) async fn describe_global(
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

pub(super) async fn describe(
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

pub(super) fn object_body(body: &Bytes) -> Result<Map<String, Value>, SfError> {
    match parse_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(sf_err(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Expected a JSON object",
        )),
    }
}

pub(super) async fn create(
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
pub(super) struct FieldsQuery {
    fields: Option<String>,
}

pub(super) async fn get_record(
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

pub(super) async fn update(
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

pub(super) async fn delete(
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

pub(super) async fn upsert(
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
pub(super) struct CollectionBody {
    #[serde(default, rename = "allOrNone")]
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

pub(super) fn collection_body(body: &Bytes) -> Result<CollectionBody, SfError> {
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
pub(super) fn each_record(
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

pub(super) fn record_object<'a>(
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

pub(super) async fn collection_create(
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

pub(super) async fn collection_update(
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

pub(super) async fn collection_upsert(
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
