//! Backfill and reconcile: the customer sync applied to every customer that already exists,
//! and a comparison of both sides. Both read the flow itself — its ecforce "get customer"
//! step and its Salesforce upsert step — so the records they write are the ones the flow
//! would write, and both keep within a Salesforce API budget. The command line drives
//! them (`flowbot backfill`, `flowbot reconcile`) and says what happened.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowbot_core::model::{RetryPolicy, StepKind};
use flowbot_core::template::{render_value, Scope};
use flowbot_core::{ActionCall, ActionError, Apps, Connection, Connector, ErrorClass, Flow};
use flowbot_store::{Store, StoreError};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

/// ecforce's largest page.
const PAGE: u64 = 100;
/// Why a job stopped when it was asked to (Ctrl-C, SIGTERM).
pub const INTERRUPTED: &str = "interrupted";

/// Why a backfill or a reconcile cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The flow cannot be used for this (wrong trigger, no upsert step, a connection
    /// missing): the message says what to change.
    #[error("{0}")]
    Flow(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot list ecforce's customers: {0}")]
    Ecforce(Box<ActionError>),
    #[error("{what}: {error}")]
    Salesforce {
        what: String,
        error: Box<ActionError>,
    },
    #[error("the saved progress cannot be read ({0}); start again with --restart")]
    Progress(String),
}

/// What a run may spend: Salesforce calls in all, calls a minute, and the org's daily
/// allowance (`Sforce-Limit-Info`).
#[derive(Debug, Clone)]
pub struct BudgetLimits {
    pub max_calls: Option<u64>,
    pub calls_per_minute: Option<u32>,
    pub max_org_usage: f64,
}

/// Keeps a run within its Salesforce allowance. Every try counts, and every page a query
/// follows.
pub struct Budget {
    limits: BudgetLimits,
    spacing: Option<Duration>,
    /// Cancelled: no further call is made (a wait for the next call's turn ends at once).
    stop: CancellationToken,
    /// Salesforce calls made in this run.
    pub calls: u64,
    last: Option<Instant>,
}

impl Budget {
    pub fn new(limits: BudgetLimits) -> Budget {
        Budget {
            spacing: limits
                .calls_per_minute
                .filter(|n| *n > 0)
                .map(|n| Duration::from_secs(60) / n),
            limits,
            stop: CancellationToken::new(),
            calls: 0,
            last: None,
        }
    }

    /// Make no call once `stop` is cancelled (Ctrl-C).
    pub fn until(mut self, stop: CancellationToken) -> Budget {
        self.stop = stop;
        self
    }

    /// Wait for the next call's turn, or say why the budget does not allow it.
    async fn before_call(&mut self, salesforce: &dyn Connector) -> Result<(), String> {
        if self.stop.is_cancelled() {
            return Err(INTERRUPTED.into());
        }
        if let Some(max) = self.limits.max_calls {
            if self.calls >= max {
                return Err(format!(
                    "the budget of {max} Salesforce calls for this run is spent"
                ));
            }
        }
        for u in salesforce.api_usage() {
            if u.limit > 0 && u.used as f64 * 100.0 / u.limit as f64 >= self.limits.max_org_usage {
                return Err(format!(
                    "the Salesforce org has used {} of its {} daily API calls (--max-org-usage {}%)",
                    u.used, u.limit, self.limits.max_org_usage
                ));
            }
        }
        if let (Some(gap), Some(last)) = (self.spacing, self.last) {
            let since = last.elapsed();
            if since < gap {
                tokio::select! {
                    _ = tokio::time::sleep(gap - since) => {}
                    _ = self.stop.cancelled() => return Err(INTERRUPTED.into()),
                }
            }
        }
        self.calls += 1;
        self.last = Some(Instant::now());
        Ok(())
    }
}

/// Transient failures (network, 5xx, row locks, rate limits) are tried again by the same
/// policy runs use, quicker: a bulk job waits for the person running it.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(30),
        multiplier: 2.0,
        jitter: false,
    }
}

/// How long to wait before try `attempt + 1` after `e`, or `None` to give up.
fn retry_after(policy: &RetryPolicy, attempt: u32, e: &ActionError) -> Option<Duration> {
    if e.class != ErrorClass::Retryable || attempt >= policy.max_attempts {
        return None;
    }
    let wait = policy.delay(attempt, e.retry_after, 1.0);
    tracing::warn!(attempt, error = %e, "retrying in {wait:?}");
    Some(wait)
}

/// Why a budgeted Salesforce call gave up.
enum CallError {
    Budget(String),
    App(ActionError),
}

/// What the flow writes, read out of its steps.
pub struct SyncPlan {
    pub flow: Flow,
    /// The id of the step that fetches the customer: later templates say `{{ <id>.email }}`.
    customer_step: String,
    ecforce: Arc<dyn Connector>,
    ecforce_conn: Connection,
    salesforce: Arc<dyn Connector>,
    salesforce_conn: Connection,
    pub object: String,
    pub external_id_field: String,
    /// The upsert step's `external_id` and `fields` templates.
    external_id: Value,
    fields: Map<String, Value>,
    /// Records per collection call, as the app's manifest allows.
    pub collection_limit: usize,
}

/// One customer as Salesforce should hold it.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub customer_id: String,
    pub email: String,
    pub external_id: String,
    pub fields: Map<String, Value>,
}

impl Wanted {
    /// What the record should hold, to tell later whether the customer changed.
    fn fingerprint(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }
}

/// Read the flow's mapping: its ecforce "get customer" step and its Salesforce upsert.
pub async fn plan(store: &Store, apps: &Apps, flow_id: &str) -> Result<SyncPlan, SyncError> {
    let info = store
        .flow(flow_id)
        .await
        .map_err(|_| SyncError::Flow(format!("no flow `{flow_id}` in this store")))?;
    let yaml = store.current_yaml(&info.id).await?;
    let checked = flowbot_core::check(&yaml, apps);
    let Some(flow) = checked.flow.filter(|_| checked.diagnostics.is_empty()) else {
        return Err(SyncError::Flow(format!(
            "flow `{flow_id}` has errors; fix them first (flowbot validate)"
        )));
    };
    if flow.trigger.app != "ecforce" {
        return Err(SyncError::Flow(format!(
            "flow `{flow_id}` is started by `{}`, not by ecforce: backfill and reconcile go through ecforce's customers",
            flow.trigger.app
        )));
    }
    let steps = flow.walk();
    let action = |app: &str, action: &str| {
        steps.iter().find_map(|s| match &s.kind {
            StepKind::Action(a) if a.app == app && a.action == action => {
                Some((s.id.clone(), a.clone()))
            }
            _ => None,
        })
    };
    let (customer_step, get) = action("ecforce", "get_customer").ok_or_else(|| {
        SyncError::Flow(format!(
            "flow `{flow_id}` has no ecforce “get customer” step to take the customer's values from"
        ))
    })?;
    let (_, upsert) = action("salesforce", "upsert_record").ok_or_else(|| {
        SyncError::Flow(format!(
            "flow `{flow_id}` has no Salesforce “upsert record” step: backfill and reconcile need \
             a key both sides share (an External ID field), as in the template \
             ecforce-customer-to-salesforce-upsert"
        ))
    })?;
    let connections = store.flow_connections(&info.id).await?;
    let conn = |slot: &Option<String>, app: &str| -> Result<Connection, SyncError> {
        let slot = slot.clone().unwrap_or_else(|| app.to_string());
        connections.get(&slot).cloned().ok_or_else(|| {
            SyncError::Flow(format!(
                "flow `{flow_id}` has no connection chosen for `{slot}`; choose one in the web UI (Flows → {flow_id})"
            ))
        })
    };
    let literal = |key: &str| -> Result<String, SyncError> {
        match upsert.input.get(key) {
            Some(Value::String(s)) if !flowbot_core::template::is_template(s) => Ok(s.clone()),
            _ => Err(SyncError::Flow(format!(
                "the upsert step's `{key}` must be a fixed name for backfill and reconcile"
            ))),
        }
    };
    let app = |id: &str| {
        apps.get(id)
            .cloned()
            .ok_or_else(|| SyncError::Flow(format!("app `{id}` is not installed")))
    };
    let salesforce = app("salesforce")?;
    let collection_limit = salesforce
        .manifest()
        .action("upsert_records")
        .and_then(|a| a.inputs.iter().find(|f| f.name == "records"))
        .and_then(|f| f.max_items)
        .unwrap_or(1);
    Ok(SyncPlan {
        customer_step,
        ecforce: app("ecforce")?,
        ecforce_conn: conn(&get.connection, "ecforce")?,
        salesforce,
        salesforce_conn: conn(&upsert.connection, "salesforce")?,
        object: literal("object")?,
        external_id_field: literal("external_id_field")?,
        external_id: upsert
            .input
            .get("external_id")
            .cloned()
            .unwrap_or(Value::Null),
        fields: match upsert.input.get("fields") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        },
        collection_limit,
        flow,
    })
}

impl SyncPlan {
    /// The record the flow would write for this customer.
    pub fn wanted(&self, customer: &Value) -> Result<Wanted, String> {
        let id = text(&customer["id"]);
        let mut scope = Scope::new();
        scope.insert(
            "trigger".into(),
            json!({ "customer_id": id, "event": "backfill" }),
        );
        scope.insert(self.customer_step.clone(), customer.clone());
        let render =
            |v: &Value| render_value(v, &scope).map_err(|(at, e)| format!("{at}: {}", e.message));
        let external_id = text(&render(&self.external_id)?);
        if external_id.is_empty() {
            return Err("the external id renders empty".into());
        }
        let fields = match render(&Value::Object(self.fields.clone()))? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Ok(Wanted {
            customer_id: id,
            email: text(&customer["email"]),
            external_id,
            fields,
        })
    }

    /// Customers changed at or after `since` (all when `None`), page `page`, oldest first.
    pub async fn list(
        &self,
        since: Option<&str>,
        page: u64,
    ) -> Result<(Vec<Value>, Option<u64>), SyncError> {
        let mut input = Map::new();
        input.insert("page".into(), json!(page));
        input.insert("per".into(), json!(PAGE));
        if let Some(s) = since {
            input.insert("updated_since".into(), json!(s));
        }
        let policy = retry_policy();
        let mut attempt = 1;
        let out = loop {
            let r = self
                .ecforce
                .execute(ActionCall {
                    action: "list_customers",
                    input: &input,
                    connection: Some(&self.ecforce_conn),
                })
                .await;
            match r {
                Ok(v) => break v,
                Err(e) => match retry_after(&policy, attempt, &e) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(SyncError::Ecforce(Box::new(e))),
                },
            }
        };
        let customers = out["customers"].as_array().cloned().unwrap_or_default();
        Ok((customers, out["total_count"].as_u64()))
    }

    /// Every customer, page by page.
    pub async fn all_customers(&self) -> Result<Vec<Value>, SyncError> {
        let mut customers = Vec::new();
        let mut page = 1;
        loop {
            let (batch, _) = self.list(None, page).await?;
            let n = batch.len() as u64;
            customers.extend(batch);
            if n < PAGE {
                return Ok(customers);
            }
            page += 1;
        }
    }

    /// One sObject Collections upsert; per-record results in the order given.
    async fn upsert(
        &self,
        batch: &[&Wanted],
        budget: &mut Budget,
    ) -> Result<Vec<Value>, CallError> {
        let records: Vec<Value> = batch
            .iter()
            .map(|w| {
                let mut m = w.fields.clone();
                m.insert(self.external_id_field.clone(), json!(w.external_id));
                Value::Object(m)
            })
            .collect();
        let mut input = Map::new();
        input.insert("object".into(), json!(self.object));
        input.insert("external_id_field".into(), json!(self.external_id_field));
        input.insert("records".into(), Value::Array(records));
        input.insert("all_or_none".into(), json!(false));
        let out = self
            .salesforce_call("upsert_records", &input, budget)
            .await?;
        Ok(out["results"].as_array().cloned().unwrap_or_default())
    }

    /// One Salesforce action, retried; every try counts against the budget, and so does
    /// every further page a query followed.
    async fn salesforce_call(
        &self,
        action: &str,
        input: &Map<String, Value>,
        budget: &mut Budget,
    ) -> Result<Value, CallError> {
        let policy = retry_policy();
        let mut attempt = 1;
        loop {
            budget
                .before_call(self.salesforce.as_ref())
                .await
                .map_err(CallError::Budget)?;
            let result = self
                .salesforce
                .execute(ActionCall {
                    action,
                    input,
                    connection: Some(&self.salesforce_conn),
                })
                .await;
            match result {
                Ok(v) => {
                    let pages = v.get("pages").and_then(Value::as_u64).unwrap_or(1);
                    budget.calls += pages.saturating_sub(1);
                    return Ok(v);
                }
                Err(e) => match retry_after(&policy, attempt, &e) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(CallError::App(e)),
                },
            }
        }
    }

    /// Every record of the object that carries an external id, by that id.
    async fn salesforce_records(
        &self,
        budget: &mut Budget,
    ) -> Result<HashMap<String, Map<String, Value>>, CallError> {
        let mut names: Vec<&str> = vec!["Id", self.external_id_field.as_str()];
        for f in self.fields.keys() {
            if !names.contains(&f.as_str()) {
                names.push(f);
            }
        }
        let soql = format!("SELECT {} FROM {}", names.join(", "), self.object);
        let mut input = Map::new();
        input.insert("soql".into(), json!(soql));
        let out = self.salesforce_call("query", &input, budget).await?;
        let mut by_key = HashMap::new();
        for r in out["records"].as_array().into_iter().flatten() {
            if let Value::Object(m) = r {
                let key = text(
                    &m.get(&self.external_id_field)
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                if !key.is_empty() {
                    by_key.insert(key, m.clone());
                }
            }
        }
        Ok(by_key)
    }
}

/// Text of a scalar: strings as they are, numbers and booleans written out, null empty.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---- backfill ----

/// Where a backfill has got to: customers are read oldest change first, from `cursor`
/// (an `updated_at`), skipping those already done at exactly that time. Saved after each
/// Salesforce call, so a stopped backfill resumes without repeating or skipping a batch.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    cursor: Option<String>,
    done_at_cursor: Vec<String>,
    pub synced: u64,
    pub created: u64,
    /// Every customer that could not be synced, with why.
    pub failed: Vec<Value>,
    pub salesforce_calls: u64,
    pub total: Option<u64>,
}

impl Progress {
    pub fn done(&self) -> u64 {
        self.synced + self.failed.len() as u64
    }
}

pub struct BackfillOptions {
    /// Records per sObject Collections call (at most the app's limit).
    pub batch: usize,
    /// Forget a saved, unfinished backfill and start from the first customer.
    pub restart: bool,
    /// Cancelled (Ctrl-C, SIGTERM): the batch in flight finishes and is saved, then the
    /// backfill stops, to be resumed.
    pub stop: CancellationToken,
}

/// How a backfill ended.
pub struct BackfillOutcome {
    pub progress: Progress,
    /// Whether this run resumed a saved one.
    pub resumed: bool,
    /// Why it stopped before the end (budget, interruption); `None`: it finished.
    pub stopped: Option<String>,
    pub salesforce_calls_this_run: u64,
    pub listing_calls: u64,
}

/// What a backfill reports as it goes: the total when known, after each saved batch.
pub trait BackfillWatcher {
    fn started(&mut self, _p: &Progress, _resumed: bool) {}
    fn listed(&mut self, _p: &Progress) {}
    fn saved(&mut self, _p: &Progress) {}
}

impl BackfillWatcher for () {}

pub async fn backfill(
    store: &Store,
    plan: &SyncPlan,
    budget: &mut Budget,
    opts: &BackfillOptions,
    watch: &mut dyn BackfillWatcher,
) -> Result<BackfillOutcome, SyncError> {
    if opts.batch == 0 || opts.batch > plan.collection_limit {
        return Err(SyncError::Flow(format!(
            "--batch must be between 1 and {}",
            plan.collection_limit
        )));
    }
    let job = format!("backfill:{}", plan.flow.id);
    if opts.restart {
        store.set_job_progress(&job, None).await?;
    }
    let (mut p, resumed): (Progress, bool) = match store.job_progress(&job).await? {
        Some(v) => (
            serde_json::from_value(v).map_err(|e| SyncError::Progress(e.to_string()))?,
            true,
        ),
        None => (Progress::default(), false),
    };
    watch.started(&p, resumed);
    let mut stopped: Option<String> = None;
    let mut listing_calls = 0u64;
    let calls_before = budget.calls;
    // Customers listed but not yet sent. The listing runs ahead of what is saved: it
    // has its own cursor, and a resumed run lists again from the saved one.
    let mut pending: VecDeque<(Value, Result<Wanted, String>)> = VecDeque::new();
    let mut list_cursor = p.cursor.clone();
    let mut listed_at_cursor: HashSet<String> = p.done_at_cursor.iter().cloned().collect();
    let mut exhausted = false;
    loop {
        if opts.stop.is_cancelled() {
            stopped = Some(INTERRUPTED.into());
            break;
        }
        while pending.len() < opts.batch && !exhausted {
            // Customers at exactly the cursor's time come first, by id; skip whole pages
            // of those already seen.
            let page = 1 + listed_at_cursor.len() as u64 / PAGE;
            let (customers, total) = plan.list(list_cursor.as_deref(), page).await?;
            listing_calls += 1;
            if p.cursor.is_none() && p.total.is_none() {
                p.total = total;
            }
            watch.listed(&p);
            exhausted = (customers.len() as u64) < PAGE;
            for c in customers {
                let id = text(&c["id"]);
                let at = text(&c["updated_at"]);
                if list_cursor.as_deref() == Some(at.as_str()) {
                    if !listed_at_cursor.insert(id) {
                        continue;
                    }
                } else {
                    list_cursor = Some(at);
                    listed_at_cursor = HashSet::from([id]);
                }
                let wanted = plan.wanted(&c);
                pending.push_back((c, wanted));
            }
        }
        if pending.is_empty() {
            break;
        }
        let take = pending.len().min(opts.batch);
        let batch: Vec<(Value, Result<Wanted, String>)> = pending.drain(..take).collect();
        let wanted: Vec<&Wanted> = batch.iter().filter_map(|(_, w)| w.as_ref().ok()).collect();
        if !wanted.is_empty() {
            let results = match plan.upsert(&wanted, budget).await {
                Ok(r) => r,
                Err(CallError::Budget(why)) => {
                    stopped = Some(why);
                    break;
                }
                Err(CallError::App(e)) => {
                    stopped = Some(format!("Salesforce refused the batch: {e}"));
                    break;
                }
            };
            p.salesforce_calls += 1;
            for (w, r) in wanted
                .iter()
                .zip(results.iter().chain(std::iter::repeat(&Value::Null)))
            {
                if r["success"] == true {
                    p.synced += 1;
                    if r["created"] == true {
                        p.created += 1;
                    }
                } else {
                    p.failed.push(json!({"customer_id": w.customer_id, "email": w.email, "errors": r["errors"]}));
                }
            }
        }
        for (c, w) in &batch {
            if let Err(e) = w {
                p.failed
                    .push(json!({"customer_id": text(&c["id"]), "error": e}));
            }
        }
        // The saved cursor moves to the last customer sent; those at exactly its time
        // are remembered, so a resumed run neither repeats nor skips them.
        let last = text(&batch.last().expect("not empty").0["updated_at"]);
        let at_last: Vec<String> = batch
            .iter()
            .filter(|(c, _)| text(&c["updated_at"]) == last)
            .map(|(c, _)| text(&c["id"]))
            .collect();
        if p.cursor.as_deref() == Some(last.as_str()) {
            p.done_at_cursor.extend(at_last);
        } else {
            p.cursor = Some(last);
            p.done_at_cursor = at_last;
        }
        let saved = serde_json::to_value(&p).expect("progress serialises");
        store.set_job_progress(&job, Some(&saved)).await?;
        watch.saved(&p);
    }
    if stopped.is_none() {
        store.set_job_progress(&job, None).await?;
    }
    Ok(BackfillOutcome {
        progress: p,
        resumed,
        stopped,
        salesforce_calls_this_run: budget.calls - calls_before,
        listing_calls,
    })
}

// ---- reconcile ----

/// How a customer's record differs from what the flow would write.
#[derive(Debug)]
pub enum Drift {
    Missing,
    /// (field, what ecforce gives, what Salesforce has)
    Differs(Vec<(String, Value, Value)>),
}

/// Both sides compared.
pub struct Comparison {
    pub customers: usize,
    pub records: usize,
    /// By customer id (numerically where it is a number).
    pub drift: Vec<(Wanted, Drift)>,
    /// Customers a repair found Salesforce refuses, with its reason, unchanged since:
    /// not drift to repair again, but to fix by hand.
    pub cannot_sync: Vec<(Wanted, String)>,
    /// Customers whose record cannot even be computed (the mapping fails on them).
    pub unmappable: Vec<String>,
    /// Records in Salesforce no customer maps to (left alone).
    pub extra: usize,
}

/// Salesforce's value equals the wanted one (null and "" alike; numbers as text).
fn same(wanted: &Value, actual: Option<&Value>) -> bool {
    let actual = actual.unwrap_or(&Value::Null);
    text(wanted) == text(actual)
}

/// The customers a repair could not sync, kept so later comparisons can tell them apart:
/// customer id → (reason, fingerprint of what was wanted).
type Refused = BTreeMap<String, (String, String)>;

fn refused_job(plan: &SyncPlan) -> String {
    format!("reconcile:{}", plan.flow.id)
}

async fn refused(store: &Store, plan: &SyncPlan) -> Result<Refused, SyncError> {
    Ok(store
        .job_progress(&refused_job(plan))
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Compare every customer with Salesforce. Stops with the budget's reason if the
/// comparison alone would overspend it.
pub async fn compare(
    store: &Store,
    plan: &SyncPlan,
    budget: &mut Budget,
) -> Result<Result<Comparison, String>, SyncError> {
    let customers = plan.all_customers().await?;
    let records = match plan.salesforce_records(budget).await {
        Ok(r) => r,
        Err(CallError::Budget(why)) => return Ok(Err(why)),
        Err(CallError::App(error)) => {
            return Err(SyncError::Salesforce {
                what: format!("cannot read the {} records", plan.object),
                error: Box::new(error),
            })
        }
    };
    let refused = refused(store, plan).await?;
    let mut drift: BTreeMap<(u64, String), (Wanted, Drift)> = BTreeMap::new();
    let mut cannot_sync = Vec::new();
    let mut unmappable = Vec::new();
    let mut known = HashSet::new();
    for c in &customers {
        let w = match plan.wanted(c) {
            Ok(w) => w,
            Err(e) => {
                unmappable.push(format!("customer {}: {e}", text(&c["id"])));
                continue;
            }
        };
        known.insert(w.external_id.clone());
        let order = (
            w.customer_id.parse::<u64>().unwrap_or(u64::MAX),
            w.customer_id.clone(),
        );
        let d = match records.get(&w.external_id) {
            None => Some(Drift::Missing),
            Some(r) => {
                let diffs: Vec<(String, Value, Value)> = w
                    .fields
                    .iter()
                    .filter(|(k, v)| !same(v, r.get(*k)))
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.clone(),
                            r.get(k).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                (!diffs.is_empty()).then_some(Drift::Differs(diffs))
            }
        };
        let Some(d) = d else { continue };
        match refused.get(&w.customer_id) {
            Some((reason, print)) if *print == w.fingerprint() => {
                cannot_sync.push((w, reason.clone()));
            }
            _ => {
                drift.insert(order, (w, d));
            }
        }
    }
    let extra = records.keys().filter(|k| !known.contains(*k)).count();
    Ok(Ok(Comparison {
        customers: customers.len(),
        records: records.len(),
        drift: drift.into_values().collect(),
        cannot_sync,
        unmappable,
        extra,
    }))
}

/// What a repair did.
pub struct Repair {
    pub repaired: usize,
    /// Customers Salesforce refused, with its reason: remembered, so the next comparison
    /// lists them apart from drift until their data changes.
    pub cannot_sync: Vec<(String, String)>,
    /// Why it stopped before the end (the budget); what is left is drift still.
    pub stopped: Option<String>,
}

/// Upsert every drifting customer, a collection call at a time.
pub async fn repair(
    store: &Store,
    plan: &SyncPlan,
    drift: &[(Wanted, Drift)],
    budget: &mut Budget,
) -> Result<Repair, SyncError> {
    let todo: Vec<&Wanted> = drift.iter().map(|(w, _)| w).collect();
    let mut refused = refused(store, plan).await?;
    let mut out = Repair {
        repaired: 0,
        cannot_sync: Vec::new(),
        stopped: None,
    };
    for chunk in todo.chunks(plan.collection_limit.max(1)) {
        let results = match plan.upsert(chunk, budget).await {
            Ok(r) => r,
            Err(CallError::Budget(why)) => {
                out.stopped = Some(why);
                break;
            }
            Err(CallError::App(error)) => {
                out.stopped = Some(format!("Salesforce refused the batch: {error}"));
                break;
            }
        };
        for (i, w) in chunk.iter().enumerate() {
            let r = results.get(i);
            if r.is_some_and(|r| r["success"] == true) {
                out.repaired += 1;
                refused.remove(&w.customer_id);
            } else {
                let reason = r
                    .map(|r| reason_of(&r["errors"]))
                    .unwrap_or_else(|| "no answer for this record".into());
                refused.insert(w.customer_id.clone(), (reason.clone(), w.fingerprint()));
                out.cannot_sync.push((w.customer_id.clone(), reason));
            }
        }
    }
    store
        .set_job_progress(
            &refused_job(plan),
            Some(&serde_json::to_value(&refused).expect("serialises")),
        )
        .await?;
    Ok(out)
}

/// Salesforce's per-record errors in a line: "STRING_TOO_LONG: Name: data value too large".
fn reason_of(errors: &Value) -> String {
    let parts: Vec<String> = errors
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let fields = e["fields"]
                .as_array()
                .map(|f| f.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let code = text(&e["statusCode"]);
            let message = text(&e["message"]);
            if fields.is_empty() {
                format!("{code}: {message}")
            } else {
                format!("{code} ({fields}): {message}")
            }
        })
        .collect();
    if parts.is_empty() {
        errors.to_string()
    } else {
        parts.join("; ")
    }
}
