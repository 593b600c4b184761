//! The records a stateful catalogue simulator keeps: kintone records (by app) and HubSpot
//! contacts, in the shapes of their public APIs, so writes can be read back and an upsert
//! replayed after a crash can be seen to update the record it made instead of adding one.
//! Actions are known by the ids of the built-in app files.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

#[derive(Default)]
pub struct Records {
    /// kintone: every record, with its app number in `app`.
    kintone: Vec<KintoneRecord>,
    hubspot: Vec<Value>,
    next_id: u64,
}

struct KintoneRecord {
    app: String,
    id: u64,
    revision: u64,
    fields: Map<String, Value>,
}

type Answer = Option<(u16, Value)>;

/// The records kept per app: a sandbox, not a database.
const MAX_RECORDS: usize = 10_000;
/// kintone answers at most 500 records a request.
const MAX_KINTONE_PAGE: usize = 500;

fn full() -> Answer {
    Some((
        400,
        json!({ "code": "SANDBOX_FULL", "message": format!("the sandbox keeps at most {MAX_RECORDS} records an app") }),
    ))
}

impl Records {
    pub fn list(&self, app: &str) -> Vec<Value> {
        match app {
            "kintone" => self.kintone.iter().map(KintoneRecord::view).collect(),
            "hubspot" => self.hubspot.clone(),
            _ => Vec::new(),
        }
    }

    /// The answer to an action of a kept app; None leaves it to the examples.
    pub fn handle(
        &mut self,
        app: &str,
        action: &str,
        path: &str,
        query: &BTreeMap<String, String>,
        body: &Value,
    ) -> Answer {
        match app {
            "kintone" => self.kintone(action, query, body),
            "hubspot" => self.hubspot(action, path, body),
            _ => None,
        }
    }

    fn kintone(&mut self, action: &str, query: &BTreeMap<String, String>, body: &Value) -> Answer {
        let app = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        match action {
            "add_record" if self.kintone.len() >= MAX_RECORDS => full(),
            "add_record" => {
                let id = self.add_kintone(app(&body["app"]), &body["record"]);
                Some((200, json!({ "id": id.to_string(), "revision": "1" })))
            }
            "update_record" => {
                let a = app(&body["app"]);
                match self.update_kintone(&a, body) {
                    Some((_, revision)) => Some((200, json!({ "revision": revision.to_string() }))),
                    None => Some((404, not_found())),
                }
            }
            // UPSERT mode of `PUT /k/v1/records.json`: each entry updated, or added when
            // its key matches nothing.
            "upsert_record" if self.kintone.len() >= MAX_RECORDS => full(),
            "upsert_record" => {
                let a = app(&body["app"]);
                let mut out = Vec::new();
                for entry in body["records"].as_array().into_iter().flatten() {
                    let r = match self.update_kintone(&a, entry) {
                        Some((id, revision)) => {
                            json!({ "id": id.to_string(), "revision": revision.to_string(), "operation": "UPDATE" })
                        }
                        _ if body["upsert"] == true => {
                            let key = &entry["updateKey"];
                            let mut record = entry["record"].clone();
                            if let (Some(field), Some(m)) =
                                (key["field"].as_str(), record.as_object_mut())
                            {
                                m.insert(field.to_string(), json!({ "value": key["value"] }));
                            }
                            let id = self.add_kintone(a.clone(), &record);
                            json!({ "id": id.to_string(), "revision": "1", "operation": "INSERT" })
                        }
                        _ => return Some((404, not_found())),
                    };
                    out.push(r);
                }
                Some((200, json!({ "records": out })))
            }
            "get_record" => {
                let a = query.get("app").cloned().unwrap_or_default();
                let id = query.get("id").cloned().unwrap_or_default();
                match self
                    .kintone
                    .iter()
                    .find(|r| r.app == a && r.id.to_string() == id)
                {
                    Some(r) => Some((200, json!({ "record": r.view() }))),
                    None => Some((
                        404,
                        json!({ "code": "GAIA_RE01", "id": "sandbox", "message": format!("指定したレコード（id: {id}）が見つかりません。") }),
                    )),
                }
            }
            "search_records" | "list_changed_records" => {
                let a = query.get("app").cloned().unwrap_or_default();
                // `field = "value"` and `field >= "value" order by …` are understood; any
                // other query lists the app's records.
                let cond = query.get("query").and_then(|q| condition(q));
                let mut records: Vec<&KintoneRecord> = self
                    .kintone
                    .iter()
                    .filter(|r| r.app == a)
                    .filter(|r| match &cond {
                        Some((f, op, v)) => {
                            let x = r.value(f);
                            match *op {
                                ">=" => x.as_deref() >= Some(v.as_str()),
                                _ => x.as_deref() == Some(v.as_str()),
                            }
                        }
                        None => true,
                    })
                    .collect();
                if let Some((f, ">=", _)) = &cond {
                    records.sort_by_key(|r| (r.value(f), r.id));
                }
                let records: Vec<Value> = records
                    .into_iter()
                    .take(MAX_KINTONE_PAGE)
                    .map(KintoneRecord::view)
                    .collect();
                let total = records.len().to_string();
                Some((200, json!({ "records": records, "totalCount": total })))
            }
            "delete_records" => {
                let a = app(&body["app"]);
                let ids: Vec<String> = body["ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(app)
                    .collect();
                self.kintone
                    .retain(|r| !(r.app == a && ids.contains(&r.id.to_string())));
                Some((200, json!({})))
            }
            _ => None,
        }
    }

    /// Update the record `entry` names (by `id` or `updateKey`): its id and new revision.
    fn update_kintone(&mut self, app: &str, entry: &Value) -> Option<(u64, u64)> {
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        let key = &entry["updateKey"];
        let r = self.kintone.iter_mut().find(|r| {
            r.app == app
                && if key.is_object() {
                    let field = key["field"].as_str().unwrap_or("");
                    r.fields.get(field).map(|f| text(&f["value"])) == Some(text(&key["value"]))
                } else {
                    r.id.to_string() == text(&entry["id"])
                }
        })?;
        for (k, v) in entry["record"].as_object().into_iter().flatten() {
            r.fields.insert(k.clone(), v.clone());
        }
        r.revision += 1;
        r.fields.insert(
            "更新日時".into(),
            json!({ "type": "UPDATED_TIME", "value": now() }),
        );
        Some((r.id, r.revision))
    }

    fn add_kintone(&mut self, app: String, record: &Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let mut fields = record.as_object().cloned().unwrap_or_default();
        let at = now();
        fields.insert(
            "作成日時".into(),
            json!({ "type": "CREATED_TIME", "value": at }),
        );
        fields.insert(
            "更新日時".into(),
            json!({ "type": "UPDATED_TIME", "value": at }),
        );
        self.kintone.push(KintoneRecord {
            app,
            id,
            revision: 1,
            fields,
        });
        id
    }

    fn hubspot(&mut self, action: &str, path: &str, body: &Value) -> Answer {
        let now = "2026-01-01T00:00:00.000Z";
        if matches!(action, "create_contact" | "upsert_contact")
            && self.hubspot.len() >= MAX_RECORDS
        {
            return full();
        }
        match action {
            "create_contact" => {
                let email = body["properties"]["email"].as_str().unwrap_or("");
                if let Some(c) = self.contact_by_email(email) {
                    let id = c["id"].as_str().unwrap_or("").to_string();
                    return Some((
                        409,
                        json!({
                            "status": "error",
                            "message": format!("Contact already exists. Existing ID: {id}"),
                            "category": "CONFLICT",
                        }),
                    ));
                }
                Some((201, self.add_contact(&body["properties"], now)))
            }
            "upsert_contact" => {
                let mut results = Vec::new();
                for input in body["inputs"].as_array().into_iter().flatten() {
                    let email = input["id"].as_str().unwrap_or("");
                    let existing = self
                        .hubspot
                        .iter_mut()
                        .find(|c| c["properties"]["email"] == email);
                    let out = match existing {
                        Some(c) => {
                            merge(&mut c["properties"], &input["properties"]);
                            c["updatedAt"] = json!(now);
                            let mut c = c.clone();
                            c["new"] = json!(false);
                            c
                        }
                        None => {
                            let mut props = input["properties"].clone();
                            merge(&mut props, &json!({ "email": email }));
                            let mut c = self.add_contact(&props, now);
                            c["new"] = json!(true);
                            c
                        }
                    };
                    results.push(out);
                }
                Some((200, json!({ "status": "COMPLETE", "results": results })))
            }
            "update_contact" | "get_contact" => {
                let id = path.rsplit('/').next().unwrap_or("");
                let Some(c) = self.hubspot.iter_mut().find(|c| c["id"] == id) else {
                    return Some((
                        404,
                        json!({ "status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND" }),
                    ));
                };
                if action == "update_contact" {
                    merge(&mut c["properties"], &body["properties"]);
                    c["updatedAt"] = json!(now);
                }
                Some((200, c.clone()))
            }
            "search_contacts" => {
                let filters: Vec<(String, String)> = body["filterGroups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| g["filters"].as_array().cloned().unwrap_or_default())
                    .filter(|f| f["operator"] == "EQ")
                    .map(|f| {
                        (
                            f["propertyName"].as_str().unwrap_or("").to_string(),
                            f["value"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect();
                let results: Vec<Value> = self
                    .hubspot
                    .iter()
                    .filter(|c| {
                        filters
                            .iter()
                            .all(|(k, v)| c["properties"][k].as_str() == Some(v))
                    })
                    .cloned()
                    .collect();
                Some((200, json!({ "total": results.len(), "results": results })))
            }
            _ => None,
        }
    }

    fn contact_by_email(&self, email: &str) -> Option<&Value> {
        self.hubspot
            .iter()
            .find(|c| c["properties"]["email"] == email)
    }

    fn add_contact(&mut self, properties: &Value, now: &str) -> Value {
        self.next_id += 1;
        let c = json!({
            "id": (1000 + self.next_id).to_string(),
            "properties": properties,
            "createdAt": now,
            "updatedAt": now,
            "archived": false,
        });
        self.hubspot.push(c.clone());
        c
    }
}

impl KintoneRecord {
    fn value(&self, field: &str) -> Option<String> {
        match field {
            "$id" => Some(self.id.to_string()),
            _ => self
                .fields
                .get(field)
                .and_then(|f| f["value"].as_str())
                .map(str::to_string),
        }
    }

    fn view(&self) -> Value {
        let mut m = self.fields.clone();
        m.insert(
            "$id".into(),
            json!({ "type": "__ID__", "value": self.id.to_string() }),
        );
        m.insert(
            "$revision".into(),
            json!({ "type": "__REVISION__", "value": self.revision.to_string() }),
        );
        Value::Object(m)
    }
}

fn not_found() -> Value {
    json!({
        "code": "GAIA_RE01",
        "id": "sandbox",
        "message": "指定したレコードが見つかりません。",
    })
}

fn merge(into: &mut Value, from: &Value) {
    if !into.is_object() {
        *into = json!({});
    }
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// `field = "value"` or `field >= "value"`, perhaps followed by `order by …` (the
/// simplest conditions of kintone's query language).
fn condition(q: &str) -> Option<(String, &'static str, String)> {
    let q = q.split(" order by ").next().unwrap_or(q);
    let (field, op, rest) = if let Some((f, r)) = q.split_once(">=") {
        (f, ">=", r)
    } else {
        let (f, r) = q.split_once('=')?;
        (f, "=", r)
    };
    let field = field.trim();
    let value = rest.trim().strip_prefix('"')?.strip_suffix('"')?;
    (!field.is_empty() && field.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .then(|| (field.to_string(), op, value.to_string()))
}

/// Now as kintone writes times: `2025-01-02T03:04:05Z`.
fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
