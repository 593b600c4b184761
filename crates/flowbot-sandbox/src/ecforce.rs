//! An ecforce shop on loopback, faithful to what is public of its admin API v2: per-shop
//! host, `Authorization: Token token="…"`, JSON:API documents with `include=billing_address`,
//! Ransack-style filters (`q[updated_at_gteq]`), `page`/`per` pagination, errors as
//! `{"errors":[{"message":…}]}`. Customer changes fire webhooks with the event name in the
//! `x-ecf-event` header and a body rendered from a merchant-editable template (ids arrive as
//! strings); a delivery without a 2xx is retried with backoff. Control endpoints under
//! `/__control/` change customers, configure webhooks and inject faults.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::faults::{self, Faults};

#[derive(Debug, Clone)]
pub struct EcforceConfig {
    pub access_token: String,
    /// Delivery attempts per webhook event before giving up.
    pub webhook_attempts: u32,
    /// First retry delay; doubled each time, capped at 5 s.
    pub webhook_backoff: Duration,
}

impl Default for EcforceConfig {
    fn default() -> Self {
        EcforceConfig {
            access_token: "ecf-sandbox-token".into(),
            webhook_attempts: 12,
            webhook_backoff: Duration::from_millis(200),
        }
    }
}

/// The billing-address fields ecforce's templates expose.
pub const ADDRESS_FIELDS: &[&str] = &[
    "name01",
    "name02",
    "kana01",
    "kana02",
    "zip01",
    "zip02",
    "prefecture_id",
    "addr01",
    "addr02",
    "addr03",
    "tel01",
    "tel02",
    "tel03",
];

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: u64,
    pub number: String,
    pub email: String,
    pub state: String,
    pub address: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Webhook {
    pub url: String,
    pub events: Vec<String>,
    /// The merchant's body template; `{{ customer.id }}`, `{{ customer.number }}` and
    /// `{{ customer.email }}` are filled in. Default: `{"id": "{{ customer.id }}"}`.
    #[serde(default)]
    pub template: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub seq: u64,
    pub event: String,
    pub customer_id: u64,
    pub url: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub delivered: bool,
    pub gave_up: bool,
}

#[derive(Default)]
struct Shop {
    customers: BTreeMap<u64, Customer>,
    orders: BTreeMap<u64, Value>,
    next_id: u64,
    webhooks: Vec<Webhook>,
    deliveries: Vec<Delivery>,
    calls: BTreeMap<String, u64>,
    /// Each change gets a distinct, increasing update time.
    last_time_ms: i64,
}

pub struct EcforceSim {
    cfg: EcforceConfig,
    shop: Mutex<Shop>,
    pub faults: Faults,
    client: reqwest::Client,
}

impl EcforceSim {
    pub fn new(cfg: EcforceConfig) -> Arc<EcforceSim> {
        Arc::new(EcforceSim {
            cfg,
            shop: Mutex::new(Shop::default()),
            faults: Faults::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a static HTTP client configuration"),
        })
    }

    pub fn config(&self) -> &EcforceConfig {
        &self.cfg
    }

    fn tick(shop: &mut Shop) -> String {
        let now = jiff::Timestamp::now()
            .as_millisecond()
            .max(shop.last_time_ms + 1);
        shop.last_time_ms = now;
        let ts = jiff::Timestamp::from_millisecond(now).expect("a valid time");
        ts.to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").expect("bundled zone"))
            .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string()
    }

    /// Create a customer (as a shop's sign-up would) and fire `customer_created`.
    pub fn create_customer(self: &Arc<Self>, fields: &Map<String, Value>) -> u64 {
        let c = {
            let mut shop = self.shop.lock().expect("shop");
            shop.next_id += 1;
            let id = shop.next_id;
            let now = Self::tick(&mut shop);
            let mut c = Customer {
                id,
                number: format!("C{id:08}"),
                email: String::new(),
                state: "guest".into(),
                address: Map::new(),
                created_at: now.clone(),
                updated_at: now,
            };
            apply(&mut c, fields);
            shop.customers.insert(id, c.clone());
            c
        };
        self.fire("customer_created", &c);
        c.id
    }

    /// Change a customer and fire `customer_updated`. Returns false for an unknown id.
    pub fn update_customer(self: &Arc<Self>, id: u64, fields: &Map<String, Value>) -> bool {
        let c = {
            let mut shop = self.shop.lock().expect("shop");
            let now = Self::tick(&mut shop);
            let Some(c) = shop.customers.get_mut(&id) else {
                return false;
            };
            apply(c, fields);
            c.updated_at = now;
            c.clone()
        };
        self.fire("customer_updated", &c);
        true
    }

    /// A customer becomes a member (`customer_member`) or withdraws (`customer_cancel`).
    pub fn set_state(self: &Arc<Self>, id: u64, event: &str) -> bool {
        let c = {
            let mut shop = self.shop.lock().expect("shop");
            let now = Self::tick(&mut shop);
            let Some(c) = shop.customers.get_mut(&id) else {
                return false;
            };
            c.state = if event == "customer_cancel" {
                "withdrawn"
            } else {
                "member"
            }
            .into();
            c.updated_at = now;
            c.clone()
        };
        self.fire(event, &c);
        true
    }

    pub fn customer(&self, id: u64) -> Option<Customer> {
        self.shop.lock().expect("shop").customers.get(&id).cloned()
    }

    pub fn customers(&self) -> Vec<Customer> {
        self.shop
            .lock()
            .expect("shop")
            .customers
            .values()
            .cloned()
            .collect()
    }

    pub fn add_order(&self, customer_id: u64, total: u64) -> u64 {
        let mut shop = self.shop.lock().expect("shop");
        shop.next_id += 1;
        let id = shop.next_id;
        let now = Self::tick(&mut shop);
        shop.orders.insert(
            id,
            json!({"id": id.to_string(), "number": format!("O{id:08}"), "customer_id": customer_id, "total": total, "created_at": now}),
        );
        id
    }

    pub fn set_webhooks(&self, hooks: Vec<Webhook>) {
        self.shop.lock().expect("shop").webhooks = hooks;
    }

    /// Send customer created and updated events (the customer-sync templates' trigger) to
    /// `url`, in ecforce's default webhook shape.
    pub fn send_customer_events_to(&self, url: &str) {
        self.set_webhooks(vec![Webhook {
            url: url.to_string(),
            events: vec!["customer_created".into(), "customer_updated".into()],
            template: None,
        }]);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shop.lock().expect("shop").deliveries.clone()
    }

    /// Deliveries still being attempted.
    pub fn pending_deliveries(&self) -> usize {
        self.shop
            .lock()
            .expect("shop")
            .deliveries
            .iter()
            .filter(|d| !d.delivered && !d.gave_up)
            .count()
    }

    pub fn stats(&self) -> Value {
        let shop = self.shop.lock().expect("shop");
        json!({
            "calls": shop.calls,
            "customers": shop.customers.len(),
            "deliveries": shop.deliveries.len(),
            "delivered": shop.deliveries.iter().filter(|d| d.delivered).count(),
            "injected_faults": self.faults.injected(),
        })
    }

    fn fire(self: &Arc<Self>, event: &str, c: &Customer) {
        let hooks: Vec<Webhook> = self
            .shop
            .lock()
            .expect("shop")
            .webhooks
            .iter()
            .filter(|h| h.events.iter().any(|e| e == event))
            .cloned()
            .collect();
        for hook in hooks {
            let body = render(hook.template.as_deref(), c);
            let seq = {
                let mut shop = self.shop.lock().expect("shop");
                let seq = shop.deliveries.len() as u64;
                shop.deliveries.push(Delivery {
                    seq,
                    event: event.to_string(),
                    customer_id: c.id,
                    url: hook.url.clone(),
                    attempts: 0,
                    last_status: None,
                    delivered: false,
                    gave_up: false,
                });
                seq
            };
            let sim = self.clone();
            let event = event.to_string();
            tokio::spawn(async move { sim.deliver(seq, hook.url, event, body).await });
        }
    }

    /// POST until a 2xx, backing off; whether real ecforce retries is not public, so flowbot
    /// must not rely on it — but tests can rely on the simulator doing so.
    async fn deliver(&self, seq: u64, url: String, event: String, body: String) {
        let mut delay = self.cfg.webhook_backoff;
        for attempt in 1..=self.cfg.webhook_attempts {
            let resp = self
                .client
                .post(&url)
                .header("x-ecf-event", &event)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let status = resp.as_ref().ok().map(|r| r.status().as_u16());
            let ok = status.is_some_and(|s| (200..300).contains(&s));
            {
                let mut shop = self.shop.lock().expect("shop");
                let d = &mut shop.deliveries[seq as usize];
                d.attempts = attempt;
                d.last_status = status;
                d.delivered = ok;
                d.gave_up = !ok && attempt == self.cfg.webhook_attempts;
            }
            if ok {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

fn apply(c: &mut Customer, fields: &Map<String, Value>) {
    for (k, v) in fields {
        match k.as_str() {
            "email" => c.email = v.as_str().unwrap_or_default().to_string(),
            "number" => c.number = v.as_str().unwrap_or_default().to_string(),
            k if ADDRESS_FIELDS.contains(&k) => {
                c.address.insert(k.to_string(), v.clone());
            }
            _ => {}
        }
    }
}

/// The merchant's template with the customer's values filled in (as text, as ecforce's
/// Liquid-style templates produce).
fn render(template: Option<&str>, c: &Customer) -> String {
    let t = template.unwrap_or(r#"{"id": "{{ customer.id }}"}"#);
    let esc = |s: &str| {
        serde_json::to_string(s)
            .map(|q| q[1..q.len() - 1].to_string())
            .unwrap_or_default()
    };
    t.replace("{{ customer.id }}", &c.id.to_string())
        .replace("{{ customer.number }}", &esc(&c.number))
        .replace("{{ customer.email }}", &esc(&c.email))
}

/// The JSON:API resource of a customer and, when asked, its billing address.
fn customer_resource(c: &Customer) -> (Value, Value) {
    let address_id = format!("{}", 100_000 + c.id);
    let data = json!({
        "id": c.id.to_string(),
        "type": "customer",
        "attributes": {
            "number": c.number,
            "email": c.email,
            "state": c.state,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
        },
        "relationships": { "billing_address": { "data": { "id": address_id, "type": "billing_address" } } },
    });
    let mut attrs = Map::new();
    for f in ADDRESS_FIELDS {
        attrs.insert(
            (*f).to_string(),
            c.address.get(*f).cloned().unwrap_or(Value::Null),
        );
    }
    let included = json!({ "id": address_id, "type": "billing_address", "attributes": attrs });
    (data, included)
}

/// Start the simulator on `127.0.0.1:port` (0 for any free port).
pub async fn start(cfg: EcforceConfig, port: u16) -> std::io::Result<crate::Running<EcforceSim>> {
    let sim = EcforceSim::new(cfg);
    crate::serve(sim.clone(), router(sim), port, |_, _| {}).await
}

pub fn router(sim: Arc<EcforceSim>) -> Router {
    Router::new()
        .route("/api/v2/admin/customers", get(list_customers))
        .route("/api/v2/admin/customers/{id}", get(get_customer))
        .route("/api/v2/admin/orders/{id}", get(get_order))
        .route(
            "/__control/customers",
            post(control_create).get(control_list),
        )
        .route(
            "/__control/customers/{id}",
            axum::routing::patch(control_update),
        )
        .route("/__control/customers/{id}/{event}", post(control_state))
        .route("/__control/webhooks", axum::routing::put(control_webhooks))
        .route("/__control/deliveries", get(control_deliveries))
        .route("/__control/faults", post(set_faults).delete(clear_faults))
        .route("/__control/stats", get(control_stats))
        .with_state(sim)
}

fn ecf_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "errors": [{ "message": message }] }))).into_response()
}

/// Authenticate, count, inject faults.
async fn admin_call(sim: &EcforceSim, headers: &HeaderMap, op: &str) -> Result<(), Response> {
    let expected = format!("Token token=\"{}\"", sim.cfg.access_token);
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    *sim.shop
        .lock()
        .expect("shop")
        .calls
        .entry(if ok { op } else { "unauthorized" }.into())
        .or_default() += 1;
    if !ok {
        return Err(ecf_error(
            StatusCode::UNAUTHORIZED,
            "認証に失敗しました (unauthorized)",
        ));
    }
    let (latency, injected) = sim.faults.decide(op);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = injected {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut resp = ecf_error(status, e.message.as_deref().unwrap_or("injected fault"));
        if let Some(s) = e.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        return Err(resp);
    }
    Ok(())
}

#[derive(Deserialize)]
struct IncludeQuery {
    include: Option<String>,
}

async fn get_customer(
    State(sim): State<Arc<EcforceSim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<IncludeQuery>,
) -> Response {
    if let Err(r) = admin_call(&sim, &headers, "get_customer").await {
        return r;
    }
    let Some(c) = id.parse::<u64>().ok().and_then(|id| sim.customer(id)) else {
        return ecf_error(
            StatusCode::NOT_FOUND,
            "レコードが見つかりません (not found)",
        );
    };
    let (data, included) = customer_resource(&c);
    let mut doc = json!({ "data": data });
    if q.include
        .as_deref()
        .is_some_and(|i| i.split(',').any(|x| x == "billing_address"))
    {
        doc["included"] = json!([included]);
    }
    Json(doc).into_response()
}

async fn list_customers(
    State(sim): State<Arc<EcforceSim>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = admin_call(&sim, &headers, "list_customers").await {
        return r;
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let since = param("q[updated_at_gteq]").and_then(|s| s.parse::<jiff::Timestamp>().ok());
    let email = param("q[email_eq]");
    let per = param("per")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page = param("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let include = param("include").is_some_and(|i| i.split(',').any(|x| x == "billing_address"));
    let mut all: Vec<Customer> = sim
        .customers()
        .into_iter()
        .filter(|c| {
            since.is_none_or(|s| {
                c.updated_at
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|u| u >= s)
            }) && email.as_ref().is_none_or(|e| &c.email == e)
        })
        .collect();
    all.sort_by(|a, b| {
        (a.updated_at.parse::<jiff::Timestamp>().ok(), a.id)
            .cmp(&(b.updated_at.parse::<jiff::Timestamp>().ok(), b.id))
    });
    let total = all.len();
    let pages = total.div_ceil(per).max(1);
    let slice: Vec<&Customer> = all.iter().skip((page - 1) * per).take(per).collect();
    let (data, included): (Vec<Value>, Vec<Value>) =
        slice.iter().map(|c| customer_resource(c)).unzip();
    let mut doc = json!({
        "data": data,
        "meta": { "total_count": total, "total_pages": pages, "current_page": page, "per_page": per },
    });
    if include {
        doc["included"] = json!(included);
    }
    Json(doc).into_response()
}

async fn get_order(
    State(sim): State<Arc<EcforceSim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admin_call(&sim, &headers, "get_order").await {
        return r;
    }
    let order = id
        .parse::<u64>()
        .ok()
        .and_then(|id| sim.shop.lock().expect("shop").orders.get(&id).cloned());
    match order {
        Some(o) => {
            let mut attrs = o.clone();
            attrs.as_object_mut().map(|m| m.remove("id"));
            Json(json!({ "data": { "id": o["id"], "type": "order", "attributes": attrs } }))
                .into_response()
        }
        None => ecf_error(
            StatusCode::NOT_FOUND,
            "レコードが見つかりません (not found)",
        ),
    }
}

// ---- control ----

async fn control_create(
    State(sim): State<Arc<EcforceSim>>,
    Json(v): Json<Map<String, Value>>,
) -> Json<Value> {
    let id = sim.create_customer(&v);
    Json(json!({ "id": id }))
}

async fn control_list(State(sim): State<Arc<EcforceSim>>) -> Json<Value> {
    Json(json!(sim.customers()))
}

async fn control_update(
    State(sim): State<Arc<EcforceSim>>,
    Path(id): Path<u64>,
    Json(v): Json<Map<String, Value>>,
) -> StatusCode {
    if sim.update_customer(id, &v) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn control_state(
    State(sim): State<Arc<EcforceSim>>,
    Path((id, event)): Path<(u64, String)>,
) -> StatusCode {
    let event = match event.as_str() {
        "member" => "customer_member",
        "cancel" => "customer_cancel",
        _ => return StatusCode::NOT_FOUND,
    };
    if sim.set_state(id, event) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn control_webhooks(
    State(sim): State<Arc<EcforceSim>>,
    Json(hooks): Json<Vec<Webhook>>,
) -> StatusCode {
    sim.set_webhooks(hooks);
    StatusCode::NO_CONTENT
}

async fn control_deliveries(State(sim): State<Arc<EcforceSim>>) -> Json<Value> {
    Json(json!(sim.deliveries()))
}

async fn set_faults(State(sim): State<Arc<EcforceSim>>, Json(v): Json<Value>) -> Response {
    match faults::parse(v) {
        Ok(cfg) => {
            sim.faults.set(cfg);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn clear_faults(State(sim): State<Arc<EcforceSim>>) -> StatusCode {
    sim.faults.clear();
    StatusCode::NO_CONTENT
}

async fn control_stats(State(sim): State<Arc<EcforceSim>>) -> Json<Value> {
    Json(sim.stats())
}
