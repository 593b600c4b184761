//! `flowbot backfill` and `flowbot reconcile`: the customer sync applied to every customer
//! that already exists, and a comparison of both sides. Both read the flow itself — its
//! ecforce "get customer" step and its Salesforce upsert step — so the records they write are
//! the ones the flow would write, and both keep within a Salesforce API budget.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flowbot_core::model::StepKind;
use flowbot_core::template::{render_value, Scope};
use flowbot_core::{ActionCall, ActionError, Connection, Connector, ErrorClass, Flow};
use flowbot_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use crate::store_cmds::StoreArgs;

/// Salesforce takes at most this many records per sObject Collections call.
const COLLECTION_LIMIT: usize = 200;
/// ecforce's largest page.
const PAGE: u64 = 100;

#[derive(clap::Args)]
pub struct BudgetArgs {
    /// Make at most this many Salesforce calls in this run (a backfill resumes where it stopped)
    #[arg(long, value_name = "N")]
    max_api_calls: Option<u64>,
    /// Space Salesforce calls to at most this many a minute
    #[arg(long, value_name = "N")]
    calls_per_minute: Option<u32>,
    /// Stop when the org has used this share of its daily API allowance (Sforce-Limit-Info)
    #[arg(long, default_value_t = 90.0, value_name = "PERCENT")]
    max_org_usage: f64,
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    /// The flow whose mapping to apply (one with an ecforce trigger and a Salesforce upsert)
    flow: String,
    /// Records per sObject Collections call (at most 200)
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Forget a previous, unfinished backfill of this flow and start from the first customer
    #[arg(long)]
    restart: bool,
}

#[derive(clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    /// The flow whose mapping defines what Salesforce should hold
    flow: String,
    /// Repair what differs: upsert the missing and differing records
    #[arg(long)]
    fix: bool,
}

/// What the flow writes, read out of its steps.
struct Plan {
    flow: Flow,
    /// The id of the step that fetches the customer: later templates say `{{ <id>.email }}`.
    customer_step: String,
    ecforce: Arc<dyn Connector>,
    ecforce_conn: Connection,
    salesforce: Arc<dyn Connector>,
    salesforce_conn: Connection,
    object: String,
    external_id_field: String,
    /// The upsert step's `external_id` and `fields` templates.
    external_id: Value,
    fields: Map<String, Value>,
}

/// One customer as Salesforce should hold it.
struct Wanted {
    customer_id: String,
    email: String,
    external_id: String,
    fields: Map<String, Value>,
}

async fn plan(store: &Store, flow_id: &str) -> anyhow::Result<Plan> {
    let apps = flowbot_connectors::registry();
    let info = store
        .flow(flow_id)
        .await
        .with_context(|| format!("no flow `{flow_id}` in this store"))?;
    let yaml = store.current_yaml(&info.id).await?;
    let checked = flowbot_core::check(&yaml, &apps);
    let Some(flow) = checked.flow.filter(|_| checked.diagnostics.is_empty()) else {
        bail!("flow `{flow_id}` has errors; fix them first (flowbot validate)");
    };
    if flow.trigger.app != "ecforce" {
        bail!(
            "flow `{flow_id}` is started by `{}`, not by ecforce: backfill and reconcile go through ecforce's customers",
            flow.trigger.app
        );
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
    let (customer_step, get) = action("ecforce", "get_customer").with_context(|| {
        format!("flow `{flow_id}` has no ecforce “get customer” step to take the customer's values from")
    })?;
    let (_, upsert) = action("salesforce", "upsert_record").with_context(|| {
        format!(
            "flow `{flow_id}` has no Salesforce “upsert record” step: backfill and reconcile need \
             a key both sides share (an External ID field), as in the template \
             ecforce-customer-to-salesforce-upsert"
        )
    })?;
    let connections = store.flow_connections(&info.id).await?;
    let conn = |slot: &Option<String>, app: &str| -> anyhow::Result<Connection> {
        let slot = slot.clone().unwrap_or_else(|| app.to_string());
        connections.get(&slot).cloned().with_context(|| {
            format!("flow `{flow_id}` has no connection chosen for `{slot}`; choose one in the web UI (Flows → {flow_id})")
        })
    };
    let literal = |key: &str| -> anyhow::Result<String> {
        match upsert.input.get(key) {
            Some(Value::String(s)) if !flowbot_core::template::is_template(s) => Ok(s.clone()),
            _ => bail!("the upsert step's `{key}` must be a fixed name for backfill and reconcile"),
        }
    };
    Ok(Plan {
        customer_step,
        ecforce: apps.get("ecforce").expect("built in").clone(),
        ecforce_conn: conn(&get.connection, "ecforce")?,
        salesforce: apps.get("salesforce").expect("built in").clone(),
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
        flow,
    })
}

impl Plan {
    /// The record the flow would write for this customer.
    fn wanted(&self, customer: &Value) -> Result<Wanted, String> {
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
    async fn list(
        &self,
        since: Option<&str>,
        page: u64,
    ) -> Result<(Vec<Value>, Option<u64>), ActionError> {
        let mut input = Map::new();
        input.insert("page".into(), json!(page));
        input.insert("per".into(), json!(PAGE));
        if let Some(s) = since {
            input.insert("updated_since".into(), json!(s));
        }
        let out = with_retries(|| {
            self.ecforce.execute(ActionCall {
                action: "list_customers",
                input: &input,
                connection: Some(&self.ecforce_conn),
            })
        })
        .await?;
        let customers = out["customers"].as_array().cloned().unwrap_or_default();
        Ok((customers, out["total_count"].as_u64()))
    }

    /// One sObject Collections upsert; per-record results in the order given.
    async fn upsert(&self, batch: &[&Wanted], budget: &mut Budget) -> anyhow::Result<Vec<Value>> {
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
            .await
            .map_err(|e| e.context("Salesforce refused the batch"))?;
        Ok(out["results"].as_array().cloned().unwrap_or_default())
    }

    /// One Salesforce action, retried like [`with_retries`]; every try counts against the
    /// budget. A spent budget is said as it is, an app's refusal as the app's error.
    async fn salesforce_call(
        &self,
        action: &str,
        input: &Map<String, Value>,
        budget: &mut Budget,
    ) -> Result<Value, CallError> {
        let mut backoff = Backoff::default();
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
                Err(e) => match backoff.after(&e) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(CallError::App(e)),
                },
                Ok(v) => return Ok(v),
            }
        }
    }

    /// Every record of the object that carries an external id, by that id.
    async fn salesforce_records(
        &self,
        budget: &mut Budget,
    ) -> anyhow::Result<HashMap<String, Map<String, Value>>> {
        let mut names: Vec<&str> = vec!["Id", self.external_id_field.as_str()];
        for f in self.fields.keys() {
            if !names.contains(&f.as_str()) {
                names.push(f);
            }
        }
        let soql = format!("SELECT {} FROM {}", names.join(", "), self.object);
        let mut input = Map::new();
        input.insert("soql".into(), json!(soql));
        let out = self
            .salesforce_call("query", &input, budget)
            .await
            .map_err(|e| e.context(format!("cannot read the {} records", self.object)))?;
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
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Why a budgeted call gave up.
enum CallError {
    Budget(anyhow::Error),
    App(ActionError),
}

impl CallError {
    fn context(self, what: impl std::fmt::Display) -> anyhow::Error {
        match self {
            CallError::Budget(e) => e,
            CallError::App(e) => anyhow::anyhow!("{what}: {e}"),
        }
    }
}

/// Transient failures (network, 5xx, row locks, rate limits) are tried again, up to five
/// times, waiting as the app asks.
struct Backoff {
    attempt: u32,
    delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempt: 1,
            delay: Duration::from_millis(200),
        }
    }
}

impl Backoff {
    /// How long to wait before trying again after `e`, or `None` to give up.
    fn after(&mut self, e: &ActionError) -> Option<Duration> {
        if e.class != ErrorClass::Retryable || self.attempt >= 5 {
            return None;
        }
        let wait = e.retry_after.unwrap_or(self.delay).max(self.delay);
        tracing::warn!(attempt = self.attempt, error = %e, "retrying in {wait:?}");
        self.attempt += 1;
        self.delay *= 2;
        Some(wait)
    }
}

async fn with_retries<F, Fut>(mut call: F) -> Result<Value, ActionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, ActionError>>,
{
    let mut backoff = Backoff::default();
    loop {
        match call().await {
            Err(e) => match backoff.after(&e) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(e),
            },
            ok => return ok,
        }
    }
}

/// Keeps a run within its Salesforce allowance.
struct Budget {
    max_calls: Option<u64>,
    spacing: Option<Duration>,
    max_org_usage: f64,
    calls: u64,
    last: Option<Instant>,
}

impl Budget {
    fn new(a: &BudgetArgs) -> Budget {
        Budget {
            max_calls: a.max_api_calls,
            spacing: a
                .calls_per_minute
                .filter(|n| *n > 0)
                .map(|n| Duration::from_secs(60) / n),
            max_org_usage: a.max_org_usage,
            calls: 0,
            last: None,
        }
    }

    async fn before_call(&mut self, salesforce: &dyn Connector) -> anyhow::Result<()> {
        if let Some(max) = self.max_calls {
            if self.calls >= max {
                bail!("the budget of {max} Salesforce calls for this run is spent");
            }
        }
        for u in salesforce.api_usage() {
            if u.limit > 0 && u.used as f64 * 100.0 / u.limit as f64 >= self.max_org_usage {
                bail!(
                    "the Salesforce org has used {} of its {} daily API calls (--max-org-usage {}%)",
                    u.used,
                    u.limit,
                    self.max_org_usage
                );
            }
        }
        if let (Some(gap), Some(last)) = (self.spacing, self.last) {
            let since = last.elapsed();
            if since < gap {
                tokio::time::sleep(gap - since).await;
            }
        }
        self.calls += 1;
        self.last = Some(Instant::now());
        Ok(())
    }
}

/// Where a backfill has got to: customers are read oldest change first, from `cursor`
/// (an `updated_at`), skipping those already done at exactly that time.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    cursor: Option<String>,
    done_at_cursor: Vec<String>,
    synced: u64,
    created: u64,
    failed: Vec<Value>,
    salesforce_calls: u64,
    total: Option<u64>,
}

fn progress_bar(total: Option<u64>, done: u64) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} customers ({per_sec}, {eta} left)",
        )
        .expect("a valid template"),
    );
    bar.set_position(done);
    bar
}

pub fn backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    crate::store_cmds::runtime()?.block_on(async {
        if args.batch == 0 || args.batch > COLLECTION_LIMIT {
            bail!("--batch must be between 1 and {COLLECTION_LIMIT}");
        }
        let store = args.store.open().await?;
        let plan = plan(&store, &args.flow).await?;
        let job = format!("backfill:{}", plan.flow.id);
        if args.restart {
            store.set_job_progress(&job, None).await?;
        }
        let mut p: Progress = match store.job_progress(&job).await? {
            Some(v) => {
                let p: Progress = serde_json::from_value(v).context("the saved backfill progress cannot be read; start again with --restart")?;
                eprintln!("resuming the backfill of `{}`: {} customers already synced", plan.flow.id, p.synced);
                p
            }
            None => Progress::default(),
        };
        let mut budget = Budget::new(&args.budget);
        let started = Instant::now();
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut bar: Option<ProgressBar> = None;
        let mut stopped: Option<String> = None;
        let mut listing_calls = 0u64;
        // Customers listed but not yet sent. The listing runs ahead of what is saved: it
        // has its own cursor, and a resumed run lists again from the saved one.
        let mut pending: VecDeque<(Value, Result<Wanted, String>)> = VecDeque::new();
        let mut list_cursor = p.cursor.clone();
        let mut listed_at_cursor: HashSet<String> = p.done_at_cursor.iter().cloned().collect();
        let mut exhausted = false;
        loop {
            while pending.len() < args.batch && !exhausted {
                // Customers at exactly the cursor's time come first, by id; skip whole pages
                // of those already seen.
                let page = 1 + listed_at_cursor.len() as u64 / PAGE;
                let (customers, total) = plan
                    .list(list_cursor.as_deref(), page)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot list ecforce's customers: {e}"))?;
                listing_calls += 1;
                if p.cursor.is_none() && p.total.is_none() {
                    p.total = total;
                }
                bar.get_or_insert_with(|| {
                    let b = progress_bar(p.total, p.synced + p.failed.len() as u64);
                    if !interactive {
                        b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                    }
                    b
                })
                .tick();
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
            let take = pending.len().min(args.batch);
            let batch: Vec<(Value, Result<Wanted, String>)> = pending.drain(..take).collect();
            let wanted: Vec<&Wanted> = batch.iter().filter_map(|(_, w)| w.as_ref().ok()).collect();
            if !wanted.is_empty() {
                let results = match plan.upsert(&wanted, &mut budget).await {
                    Ok(r) => r,
                    Err(e) => {
                        stopped = Some(e.to_string());
                        break;
                    }
                };
                p.salesforce_calls += 1;
                for (w, r) in wanted.iter().zip(results.iter().chain(std::iter::repeat(&Value::Null))) {
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
                    p.failed.push(json!({"customer_id": text(&c["id"]), "error": e}));
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
            store.set_job_progress(&job, Some(&serde_json::to_value(&p)?)).await?;
            let done = p.synced + p.failed.len() as u64;
            if let Some(b) = &bar {
                b.set_position(done);
            }
            if !interactive {
                eprintln!("batch {} saved: {done} customers done", p.salesforce_calls);
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let secs = started.elapsed().as_secs_f64();
        println!("backfill of `{}`", plan.flow.id);
        println!("  customers synced:   {} ({} created, {} updated)", p.synced, p.created, p.synced - p.created);
        println!("  customers failed:   {}", p.failed.len());
        for f in p.failed.iter().take(20) {
            println!("    {f}");
        }
        println!(
            "  Salesforce calls:   {} in all ({} in this run); ecforce list calls in this run: {listing_calls}",
            p.salesforce_calls, budget.calls
        );
        println!("  this run took:      {secs:.1} s");
        match stopped {
            Some(why) => {
                println!("  stopped early: {why}; run the same command again to resume");
                Ok(ExitCode::from(3))
            }
            None => {
                store.set_job_progress(&job, None).await?;
                Ok(if p.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
        }
    })
}

/// How a customer's record differs from what the flow would write.
#[derive(Debug)]
enum Drift {
    Missing,
    Differs(Vec<(String, Value, Value)>),
}

/// Salesforce's value equals the wanted one (null and "" alike; numbers as text).
fn same(wanted: &Value, actual: Option<&Value>) -> bool {
    let actual = actual.unwrap_or(&Value::Null);
    text(wanted) == text(actual)
}

pub fn reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    crate::store_cmds::runtime()?.block_on(async {
        let store = args.store.open().await?;
        let plan = plan(&store, &args.flow).await?;
        let mut budget = Budget::new(&args.budget);
        let mut customers = Vec::new();
        let mut page = 1;
        loop {
            let (batch, _) = plan
                .list(None, page)
                .await
                .map_err(|e| anyhow::anyhow!("cannot list ecforce's customers: {e}"))?;
            let n = batch.len() as u64;
            customers.extend(batch);
            if n < PAGE {
                break;
            }
            page += 1;
        }
        let records = plan.salesforce_records(&mut budget).await?;
        // By customer id, numerically where it is a number; the id itself keeps two
        // non-numeric ids apart.
        let mut drift: BTreeMap<(u64, String), (Wanted, Drift)> = BTreeMap::new();
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
            match records.get(&w.external_id) {
                None => {
                    drift.insert(order, (w, Drift::Missing));
                }
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
                    if !diffs.is_empty() {
                        drift.insert(order, (w, Drift::Differs(diffs)));
                    }
                }
            }
        }
        let extra: Vec<&String> = records.keys().filter(|k| !known.contains(*k)).collect();

        println!(
            "reconcile `{}`: {} ecforce customers, {} {} records with {}",
            plan.flow.id,
            customers.len(),
            records.len(),
            plan.object,
            plan.external_id_field
        );
        let missing = drift
            .values()
            .filter(|(_, d)| matches!(d, Drift::Missing))
            .count();
        println!("  missing in Salesforce: {missing}");
        println!("  different:             {}", drift.len() - missing);
        for (w, d) in drift.values() {
            match d {
                Drift::Missing => {
                    println!("    missing   customer {} <{}>", w.customer_id, w.email)
                }
                Drift::Differs(diffs) => {
                    let what: Vec<String> = diffs
                        .iter()
                        .map(|(f, want, have)| {
                            format!("{f}: Salesforce has {have}, ecforce gives {want}")
                        })
                        .collect();
                    println!(
                        "    differs   customer {} <{}>: {}",
                        w.customer_id,
                        w.email,
                        what.join("; ")
                    );
                }
            }
        }
        if !extra.is_empty() {
            println!("  in Salesforce only (left alone): {}", extra.len());
        }
        for u in &unmappable {
            println!("  cannot be mapped: {u}");
        }
        if drift.is_empty() {
            println!("  everything is in sync");
            return Ok(ExitCode::SUCCESS);
        }
        if !args.fix {
            println!("  run again with --fix to repair");
            return Ok(ExitCode::FAILURE);
        }
        let todo: Vec<&Wanted> = drift.values().map(|(w, _)| w).collect();
        let mut fixed = 0;
        let mut failed = Vec::new();
        for chunk in todo.chunks(COLLECTION_LIMIT) {
            let results = plan.upsert(chunk, &mut budget).await?;
            for (i, w) in chunk.iter().enumerate() {
                if results.get(i).is_some_and(|r| r["success"] == true) {
                    fixed += 1;
                } else {
                    failed.push(format!(
                        "customer {}: {}",
                        w.customer_id,
                        results
                            .get(i)
                            .map(|r| r["errors"].to_string())
                            .unwrap_or_default()
                    ));
                }
            }
        }
        println!("  repaired: {fixed}");
        for f in &failed {
            println!("  not repaired: {f}");
        }
        Ok(if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
