//! ecforce over its admin API v2: customers and orders read through JSON:API documents and
//! flattened into obtained values, customer webhooks (event name from `x-ecf-event`, the id
//! from a configurable path because merchants edit the body template), and a polling
//! trigger for shops without the webhook option.
//!
//! The shop's base URL and token come from the connection; nothing assumes the simulator.

use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::manifest::{
    ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text, TriggerSpec,
};
use flowbot_core::{ActionCall, ActionError, Connection, Connector, PollCall, Polled};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http::{retry_after, transport_error};

pub const CUSTOMER_EVENTS: &[&str] = &[
    "customer_created",
    "customer_updated",
    "customer_member",
    "customer_cancel",
];

/// JIS X 0401 prefecture codes, as ecforce's `prefecture_id`.
pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

pub struct EcforceConnector {
    manifest: AppManifest,
    client: reqwest::Client,
}

impl EcforceConnector {
    pub fn new(client: reqwest::Client) -> Self {
        EcforceConnector {
            manifest: manifest(),
            client,
        }
    }
}

fn t(en: &str, ja: &str) -> Text {
    Text::new(en, ja)
}

/// The obtained values of a customer.
fn customer_outputs() -> Vec<OutputSpec> {
    [
        ("id", FieldKind::Text, "Customer ID", "顧客ID"),
        ("number", FieldKind::Text, "Customer number", "顧客番号"),
        ("email", FieldKind::Text, "Email", "メールアドレス"),
        ("name01", FieldKind::Text, "Family name", "姓"),
        ("name02", FieldKind::Text, "Given name", "名"),
        ("kana01", FieldKind::Text, "Family name (kana)", "セイ"),
        ("kana02", FieldKind::Text, "Given name (kana)", "メイ"),
        ("full_name", FieldKind::Text, "Full name", "氏名"),
        (
            "full_names",
            FieldKind::Text,
            "Full name (kana)",
            "氏名（カナ）",
        ),
        ("tel", FieldKind::Text, "Phone", "電話番号"),
        ("zip", FieldKind::Text, "Postal code", "郵便番号"),
        ("prefecture", FieldKind::Text, "Prefecture", "都道府県"),
        ("address", FieldKind::Text, "Address", "住所"),
        ("state", FieldKind::Text, "Membership state", "会員状態"),
        ("created_at", FieldKind::Text, "Created at", "作成日時"),
        ("updated_at", FieldKind::Text, "Updated at", "更新日時"),
        (
            "raw",
            FieldKind::Json,
            "The whole API answer",
            "API の応答全体",
        ),
    ]
    .into_iter()
    .map(|(n, k, en, ja)| OutputSpec::new(n, k, t(en, ja)))
    .collect()
}

fn manifest() -> AppManifest {
    let id_path = FieldSpec::new("customer_id_path", FieldKind::Text, t("Where the customer ID is", "顧客IDの場所"))
        .default_value(json!("id"))
        .help(
            "Path in the webhook body, e.g. `id` or `customer.id`: the body comes from your ecforce webhook template",
            "Webhook ボディ内のパス（例: `id`、`customer.id`）。ボディは ecforce の Webhook テンプレートで決まります",
        );
    let event_outputs = vec![
        OutputSpec::new("customer_id", FieldKind::Text, t("Customer ID", "顧客ID")),
        OutputSpec::new("event", FieldKind::Text, t("Event", "イベント")),
        OutputSpec::new("body", FieldKind::Json, t("Webhook body", "Webhook ボディ")),
    ];
    let mut triggers: Vec<TriggerSpec> = CUSTOMER_EVENTS
        .iter()
        .zip([
            ("A customer was created", "顧客情報が登録されたら"),
            ("A customer was updated", "顧客情報が更新されたら"),
            ("A customer became a member", "会員登録されたら"),
            ("A customer withdrew", "退会したら"),
        ])
        .map(|(id, (en, ja))| TriggerSpec {
            id: (*id).into(),
            name: t(en, ja),
            options: vec![id_path.clone()],
            outputs: event_outputs.clone(),
            polling: false,
            setup: None,
        })
        .collect();
    triggers.push(TriggerSpec {
        id: "customers_updated".into(),
        name: t(
            "Customers changed (checked every few minutes)",
            "顧客情報が変更されたら（定期確認）",
        ),
        options: vec![
            FieldSpec::new("interval", FieldKind::Text, t("Every", "間隔"))
                .default_value(json!("5m"))
                .help(
                    "For shops without the webhook option",
                    "Webhook オプションのないショップ向け",
                ),
        ],
        outputs: customer_outputs(),
        polling: true,
        setup: None,
    });
    AppManifest {
        id: "ecforce".into(),
        name: t("ecforce", "ecforce"),
        description: t(
            "Customers and orders of an ecforce shop.",
            "ecforce ショップの顧客・受注。",
        ),
        connection: vec![
            FieldSpec::new(
                "account_name",
                FieldKind::Text,
                t("Account name", "アカウント名"),
            ),
            FieldSpec::new("base_url", FieldKind::Text, t("Shop URL", "ドメイン"))
                .required()
                .help(
                    "Your shop's admin host, e.g. https://shop.example.com",
                    "ショップのドメイン（例: https://shop.example.com）",
                ),
            FieldSpec::new(
                "access_token",
                FieldKind::Text,
                t("Access token", "アクセストークン"),
            )
            .required()
            .secret()
            .help(
                "Issued to an API user under システム管理 > メンバー管理",
                "システム管理 > メンバー管理 で API 連携ユーザーに発行",
            ),
        ],
        triggers,
        actions: vec![
            ActionSpec {
                id: "get_customer".into(),
                name: t("Get a customer", "顧客情報を取得"),
                description: t(
                    "Read a customer with their billing address.",
                    "請求先住所を含む顧客情報を取得します。",
                ),
                inputs: vec![FieldSpec::new(
                    "customer_id",
                    FieldKind::Text,
                    t("Customer ID", "顧客ID"),
                )
                .required()],
                outputs: customer_outputs(),
                idempotent: true,
                writes: false,
                usage: false,
            },
            ActionSpec {
                id: "list_customers".into(),
                name: t("List customers", "顧客の一覧を取得"),
                description: t(
                    "A page of customers, optionally those updated since a time.",
                    "顧客の一覧（指定日時以降に更新された顧客に絞り込み可）。",
                ),
                inputs: vec![
                    FieldSpec::new(
                        "updated_since",
                        FieldKind::Text,
                        t("Updated since", "更新日時（以降）"),
                    ),
                    FieldSpec::new("page", FieldKind::Integer, t("Page", "ページ"))
                        .default_value(json!(1)),
                    FieldSpec::new("per", FieldKind::Integer, t("Per page", "1ページの件数"))
                        .default_value(json!(100)),
                ],
                outputs: vec![
                    OutputSpec::new("customers", FieldKind::List, t("Customers", "顧客")),
                    OutputSpec::new("page", FieldKind::Integer, t("Page", "ページ")),
                    OutputSpec::new(
                        "next_page",
                        FieldKind::Integer,
                        t("Next page", "次のページ"),
                    ),
                    OutputSpec::new("total_count", FieldKind::Integer, t("Total", "総件数")),
                ],
                idempotent: true,
                writes: false,
                usage: false,
            },
            ActionSpec {
                id: "get_order".into(),
                name: t("Get an order", "受注情報を取得"),
                description: t("Read an order.", "受注情報を取得します。"),
                inputs: vec![
                    FieldSpec::new("order_id", FieldKind::Text, t("Order ID", "受注ID")).required(),
                ],
                outputs: vec![
                    OutputSpec::new("id", FieldKind::Text, t("Order ID", "受注ID")),
                    OutputSpec::new(
                        "raw",
                        FieldKind::Json,
                        t("The whole API answer", "API の応答全体"),
                    ),
                ],
                idempotent: true,
                writes: false,
                usage: false,
            },
        ],
    }
}

fn need<'a>(c: &'a Connection, key: &str) -> Result<&'a str, ActionError> {
    c.setting_str(key).filter(|s| !s.is_empty()).ok_or_else(|| {
        ActionError::fatal(format!(
            "the ecforce connection `{}` has no `{key}`: add it to the connection",
            c.name
        ))
    })
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn join(parts: &[String], sep: &str) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(sep)
}

/// A JSON:API customer (with its included billing address) as obtained values.
pub fn flatten_customer(data: &Value, included: &[Value], raw: &Value) -> Value {
    let attrs = data.get("attributes").cloned().unwrap_or(json!({}));
    let rel = data.pointer("/relationships/billing_address/data");
    let address = rel
        .and_then(|r| {
            included
                .iter()
                .find(|i| i.get("type") == r.get("type") && i.get("id") == r.get("id"))
        })
        .and_then(|a| a.get("attributes"))
        .cloned()
        .unwrap_or(json!({}));
    let a = |k: &str| text(address.get(k));
    let prefecture = address
        .get("prefecture_id")
        .and_then(|p| p.as_u64().or_else(|| p.as_str()?.parse().ok()))
        .and_then(|p| PREFECTURES.get((p as usize).wrapping_sub(1)))
        .map(|p| p.to_string())
        .unwrap_or_default();
    json!({
        "id": text(data.get("id")),
        "number": text(attrs.get("number")),
        "email": text(attrs.get("email")),
        "name01": a("name01"),
        "name02": a("name02"),
        "kana01": a("kana01"),
        "kana02": a("kana02"),
        "full_name": join(&[a("name01"), a("name02")], " "),
        "full_names": join(&[a("kana01"), a("kana02")], " "),
        "tel": join(&[a("tel01"), a("tel02"), a("tel03")], "-"),
        "zip": join(&[a("zip01"), a("zip02")], "-"),
        "prefecture": prefecture,
        "address": format!("{prefecture}{}{}{}", a("addr01"), a("addr02"), a("addr03")),
        "state": text(attrs.get("state")),
        "created_at": text(attrs.get("created_at")),
        "updated_at": text(attrs.get("updated_at")),
        "raw": raw,
    })
}

impl EcforceConnector {
    async fn get(
        &self,
        c: &Connection,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Value, ActionError> {
        let base = need(c, "base_url")?.trim_end_matches('/');
        let token = need(c, "access_token")?;
        let url = format!("{base}/api/v2/admin{path}");
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            ActionError::fatal(format!(
                "the ecforce connection's base_url is not a URL ({e})"
            ))
        })?;
        let resp = self
            .client
            .get(parsed.clone())
            .query(query)
            .header("authorization", format!("Token token=\"{token}\""))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| transport_error(&Method::GET, &parsed, e))?;
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let detail = body
            .pointer("/errors/0/message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let e = match status {
            StatusCode::NOT_FOUND => ActionError::fatal(format!("ecforce: {what} was not found (404)")),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ActionError::fatal(format!(
                "ecforce refused the access token of connection `{}` ({status}): check the token and that the shop's API option is on",
                c.name
            )),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                ActionError::retryable(format!("ecforce answered {status} for {what}: {detail}"))
            }
            _ => ActionError::fatal(format!("ecforce answered {status} for {what}: {detail}")),
        };
        Err(e
            .with_code(format!("HTTP_{}", status.as_u16()))
            .with_retry_after(retry))
    }

    async fn customer(&self, c: &Connection, id: &str) -> Result<Value, ActionError> {
        if id.is_empty()
            || !id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(ActionError::fatal(format!(
                "input `customer_id`: `{id}` is not a customer ID"
            )));
        }
        let doc = self
            .get(
                c,
                &format!("/customers/{id}"),
                &[("include", "billing_address".into())],
                &format!("customer {id}"),
            )
            .await?;
        let included = doc
            .get("included")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(flatten_customer(
            doc.get("data").unwrap_or(&Value::Null),
            &included,
            &doc,
        ))
    }

    /// One page of customers, flattened, oldest change first.
    async fn list(
        &self,
        c: &Connection,
        since: Option<&str>,
        page: u64,
        per: u64,
    ) -> Result<(Vec<Value>, Value), ActionError> {
        let mut q = vec![
            ("include", "billing_address".to_string()),
            ("page", page.to_string()),
            ("per", per.to_string()),
        ];
        if let Some(s) = since.filter(|s| !s.is_empty()) {
            q.push(("q[updated_at_gteq]", s.to_string()));
        }
        let doc = self.get(c, "/customers", &q, "the customer list").await?;
        let included = doc
            .get("included")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let customers = doc
            .get("data")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .map(|x| flatten_customer(x, &included, x))
                    .collect()
            })
            .unwrap_or_default();
        Ok((customers, doc.get("meta").cloned().unwrap_or(Value::Null)))
    }
}

/// Reads `a.b.c` in a JSON value; numbers in the path index lists.
fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(v, |cur, part| match cur {
            Value::Array(a) => a.get(part.parse::<usize>().ok()?),
            _ => cur.get(part),
        })
}

/// The customer id of an ecforce webhook body, from wherever the merchant's template put it.
pub fn webhook_customer_id(body: &Value, path: &str) -> Result<String, String> {
    match at_path(body, path) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!(
            "the webhook body has no customer id at `{path}`: set the trigger's customer_id_path to where your ecforce webhook template puts it"
        )),
    }
}

#[async_trait]
impl Connector for EcforceConnector {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        let c = call
            .connection
            .ok_or_else(|| ActionError::fatal("this ecforce step has no connection"))?;
        let input = call.input;
        let id_of = |key: &str| -> Result<String, ActionError> {
            match input.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(ActionError::fatal(format!("input `{key}` is required"))),
            }
        };
        match call.action {
            "get_customer" => self.customer(c, &id_of("customer_id")?).await,
            "list_customers" => {
                let page = input
                    .get("page")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1);
                let per = input
                    .get("per")
                    .and_then(Value::as_u64)
                    .unwrap_or(100)
                    .clamp(1, 100);
                let since = input.get("updated_since").and_then(Value::as_str);
                let (customers, meta) = self.list(c, since, page, per).await?;
                let pages = meta.get("total_pages").and_then(Value::as_u64);
                let next = match pages {
                    Some(p) if page < p => json!(page + 1),
                    // Totals are not documented: a full page may have a successor.
                    None if customers.len() as u64 == per => json!(page + 1),
                    _ => Value::Null,
                };
                Ok(
                    json!({ "customers": customers, "page": page, "next_page": next, "total_count": meta.get("total_count") }),
                )
            }
            "get_order" => {
                let id = id_of("order_id")?;
                let doc = self
                    .get(c, &format!("/orders/{id}"), &[], &format!("order {id}"))
                    .await?;
                let mut out = doc
                    .pointer("/data/attributes")
                    .cloned()
                    .unwrap_or(json!({}));
                if let Value::Object(m) = &mut out {
                    m.insert(
                        "id".into(),
                        doc.pointer("/data/id").cloned().unwrap_or(Value::Null),
                    );
                    m.insert("raw".into(), doc.clone());
                }
                Ok(out)
            }
            other => Err(ActionError::fatal(format!(
                "the ecforce app has no action `{other}`"
            ))),
        }
    }

    /// Customers changed since the cursor `updated_at|id`, every page, oldest first.
    async fn poll(&self, call: PollCall<'_>) -> Result<Polled, ActionError> {
        let c = call
            .connection
            .ok_or_else(|| ActionError::fatal("the ecforce trigger has no connection"))?;
        let cursor = call.cursor.filter(|s| !s.is_empty());
        let (since, after_id) = match cursor.and_then(|s| s.split_once('|')) {
            Some((ts, id)) => (Some(ts.to_string()), id.parse::<u64>().unwrap_or(0)),
            None => (None, 0),
        };
        let since_ts = since
            .as_deref()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok());
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let (customers, meta) = self.list(c, since.as_deref(), page, 100).await?;
            let n = customers.len();
            for cust in customers {
                let updated = cust["updated_at"]
                    .as_str()
                    .and_then(|u| u.parse::<jiff::Timestamp>().ok());
                let id: u64 = cust["id"]
                    .as_str()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0);
                // The filter is `>=`: skip what the last poll already took.
                let newer = match (since_ts, updated) {
                    (Some(s), Some(u)) => u > s || (u == s && id > after_id),
                    _ => true,
                };
                if newer {
                    items.push(cust);
                }
            }
            let pages = meta.get("total_pages").and_then(Value::as_u64);
            let more = match pages {
                Some(p) => page < p,
                None => n == 100,
            };
            if !more || n == 0 {
                break;
            }
            page += 1;
        }
        let next = items
            .last()
            .map(|c| {
                format!(
                    "{}|{}",
                    c["updated_at"].as_str().unwrap_or_default(),
                    c["id"].as_str().unwrap_or_default()
                )
            })
            .or(cursor.map(str::to_string));
        for item in &mut items {
            item["event"] = json!("customer_updated");
            item["customer_id"] = item["id"].clone();
        }
        Ok(Polled {
            items,
            cursor: next,
        })
    }

    fn webhook_event(
        &self,
        call: flowbot_core::connector::WebhookCall<'_>,
    ) -> Result<Option<Value>, String> {
        let event = call
            .headers
            .get("x-ecf-event")
            .and_then(Value::as_str)
            .unwrap_or("");
        let path = call
            .options
            .get("customer_id_path")
            .and_then(Value::as_str)
            .unwrap_or("id");
        // What the sender got wrong in the body comes first: it is what they can fix.
        let id = webhook_customer_id(call.body, path);
        if event.is_empty() {
            return Err(match id {
                Err(e) => format!("{e} (and the request has no x-ecf-event header)"),
                Ok(_) => {
                    "the request has no x-ecf-event header: is it from ecforce's webhook?".into()
                }
            });
        }
        if !call.events.iter().any(|e| e == event) {
            return Ok(None);
        }
        let id = id?;
        Ok(Some(
            json!({ "event": event, "customer_id": id, "body": call.body }),
        ))
    }

    /// ecforce publishes no schema API: the customer fields flowbot knows are offered.
    async fn describe(
        &self,
        _connection: Option<&Connection>,
        object: Option<&str>,
    ) -> Result<Value, ActionError> {
        Ok(match object {
            None => json!([{ "name": "customer", "label": "顧客 / Customer" }]),
            Some("customer") => Value::Array(
                customer_outputs()
                    .into_iter()
                    .map(|o| {
                        json!({ "name": o.name, "label": format!("{} / {}", o.label.ja, o.label.en), "type": o.kind.name() })
                    })
                    .collect(),
            ),
            Some(other) => {
                return Err(ActionError::fatal(format!(
                    "ecforce has no object `{other}` flowbot knows; `customer` is"
                )))
            }
        })
    }

    async fn test_connection(&self, c: &Connection) -> Result<(), ActionError> {
        self.list(c, None, 1, 1).await.map(|_| ())
    }

    /// The most recently changed customer, as its webhook would start the flow. ecforce
    /// lists oldest change first, so the last page holds the newest.
    async fn samples(&self, call: flowbot_core::SampleCall<'_>) -> Result<Vec<Value>, ActionError> {
        let c = call.connection.ok_or_else(|| {
            ActionError::fatal("choose the trigger's ecforce connection to fetch a sample")
        })?;
        let list = |page: u64| {
            let mut input = serde_json::Map::new();
            input.insert("per".into(), json!(100));
            input.insert("page".into(), json!(page));
            input
        };
        let first = self
            .execute(ActionCall {
                action: "list_customers",
                input: &list(1),
                connection: Some(c),
            })
            .await?;
        let total = first["total_count"].as_u64().unwrap_or(0);
        let last_page = total.div_ceil(100).max(1);
        let last = if last_page == 1 {
            first
        } else {
            self.execute(ActionCall {
                action: "list_customers",
                input: &list(last_page),
                connection: Some(c),
            })
            .await?
        };
        let event = call
            .events
            .first()
            .cloned()
            .unwrap_or_else(|| "customer_updated".into());
        Ok(last["customers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .rev()
                    .take(5)
                    .map(|c| json!({ "event": event, "customer_id": c["id"], "body": { "id": c["id"] } }))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_read_from_merchant_templates() {
        assert_eq!(
            webhook_customer_id(&json!({"id": "42"}), "id").unwrap(),
            "42"
        );
        assert_eq!(webhook_customer_id(&json!({"id": 42}), "id").unwrap(), "42");
        assert_eq!(
            webhook_customer_id(&json!({"customer": {"id": " 7 "}}), "customer.id").unwrap(),
            "7"
        );
        assert_eq!(
            webhook_customer_id(&json!({"items": [{"id": 9}]}), "items.0.id").unwrap(),
            "9"
        );
        let e = webhook_customer_id(&json!({"email": "a@b"}), "id").unwrap_err();
        assert!(e.contains("customer_id_path"), "{e}");
        assert!(webhook_customer_id(&json!({"id": ""}), "id").is_err());
    }

    #[test]
    fn a_json_api_customer_is_flattened() {
        let doc = json!({
            "data": {"id": "42", "type": "customer", "attributes": {"number": "C1", "email": "taro@example.com", "created_at": "c", "updated_at": "u"},
                     "relationships": {"billing_address": {"data": {"id": "9", "type": "billing_address"}}}},
            "included": [{"id": "9", "type": "billing_address", "attributes": {"name01": "山田", "name02": "太郎", "kana01": "ヤマダ", "kana02": "タロウ",
                          "zip01": "150", "zip02": "0001", "prefecture_id": 13, "addr01": "渋谷区", "addr02": "神宮前1-1", "addr03": "",
                          "tel01": "03", "tel02": "1234", "tel03": "5678"}}]
        });
        let inc = doc["included"].as_array().unwrap().clone();
        let f = flatten_customer(&doc["data"], &inc, &doc);
        assert_eq!(f["full_name"], "山田 太郎");
        assert_eq!(f["full_names"], "ヤマダ タロウ");
        assert_eq!(f["tel"], "03-1234-5678");
        assert_eq!(f["zip"], "150-0001");
        assert_eq!(f["prefecture"], "東京都");
        assert_eq!(f["address"], "東京都渋谷区神宮前1-1");
        assert_eq!(f["raw"], doc);
    }
}
