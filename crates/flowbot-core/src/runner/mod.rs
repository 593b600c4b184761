//! The step runner: walks a flow's steps against a trigger payload, journaling every step.
//!
//! One call of [`Runner::run`] is one attempt of a run. It is given the records of earlier
//! attempts and resumes from them:
//! - a step whose latest record succeeded is not executed again; its output is replayed;
//! - a step that failed, or started and never finished, is executed again (at least once);
//! - but a non-idempotent step (a create, a sent message) that started and never finished is
//!   *in doubt*: the call may or may not have happened. The run then starts over in a new
//!   generation, so the reads before that step see whatever the lost call did (the Account
//!   search finds the Account, and the branch updates instead of creating a second one).
//!
//! A step is journaled as *started* before its call and *finished* after it. Before any
//! call goes out, every earlier record is durable, so a completed step is never run again;
//! before a call that changes an app (an action that `writes` or is not idempotent) its
//! started record is durable too. A read's started record, a decision and the last step's
//! finished record may be held back until the next call or the attempt's conclusion: a
//! crash loses only what no call has followed, and the resumed run makes it again.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::condition::evaluate;
use crate::connector::{ActionCall, ActionError, Apps, Connection, ErrorClass};
use crate::manifest::{redact_input, ActionSpec, FieldKind};
use crate::model::*;
use crate::template::{render_value, Scope, TemplateError};

/// How long a step may take when neither the step nor the flow says.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Started,
    Succeeded,
    Failed,
}

/// What a run record says about one execution of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StepRecord {
    /// Unique within the run, also inside loops: `each_customer[3].create`.
    pub path: String,
    pub step_id: String,
    pub kind: String,
    /// Increases when an in-doubt create makes the run start over.
    pub generation: u32,
    /// 1 for the first execution of this path in this generation.
    pub attempt: u32,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub idempotent: bool,
    /// The rendered input, secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The obtained values this step produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// The lane a branch or switch took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

impl StepRecord {
    pub fn duration(&self) -> Option<Duration> {
        let end = self.finished_at?;
        Duration::try_from(end.duration_since(self.started_at)).ok()
    }
}

/// A step's failure as recorded and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl StepError {
    fn fatal(message: String) -> StepError {
        StepError {
            message,
            retryable: false,
            code: None,
            fields: Vec::new(),
            details: None,
        }
    }
}

impl From<&ActionError> for StepError {
    fn from(e: &ActionError) -> Self {
        StepError {
            message: e.message.clone(),
            retryable: e.class == ErrorClass::Retryable,
            code: e.code.clone(),
            fields: e.fields.clone(),
            details: e.details.as_deref().cloned(),
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Succeeded,
    /// Not retryable, or out of attempts.
    Failed {
        path: String,
        error: StepError,
    },
    /// A retryable failure: run again after `delay`; the run resumes at `path`.
    RetryLater {
        path: String,
        error: StepError,
        delay: Duration,
        attempt: u32,
        max_attempts: u32,
    },
    /// A wait step: run again at `until`.
    WaitUntil {
        path: String,
        until: Timestamp,
    },
    /// An approval or a task: the run waits, holding no worker, until people decide (or
    /// the deadline passes); the decision is recorded as the step's output and the run is
    /// queued again.
    WaitForPeople {
        path: String,
        request: Box<PeopleRequest>,
    },
}

/// What an approval or a task asks, rendered from its step: the store keeps it as the
/// request people answer, and it is the step's started record's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PeopleRequest {
    /// `approval` or `task`.
    pub kind: String,
    pub step_id: String,
    /// The step's name.
    pub title: String,
    pub message: String,
    pub to: Asked,
    /// Approvals needed to approve; 0: every person asked.
    pub needed: u32,
    /// A task's form fields, as in the flow file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
    /// The path of the step a send-back returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_back_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<Timestamp>,
    /// `fail`, `else` or `escalate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<Asked>,
    /// How long the escalated people have, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_ms: Option<i64>,
    pub generation: u32,
    /// The step record's attempt: a request per execution of the step.
    pub round: u32,
}

/// Who is asked, rendered: member names, roles, emails, and whether the run's starter is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Asked {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starter: bool,
}

/// The decisions a people step's output may hold.
pub mod decision {
    pub const APPROVED: &str = "approved";
    pub const REJECTED: &str = "rejected";
    pub const SENT_BACK: &str = "sent_back";
    pub const COMPLETED: &str = "completed";
    pub const EXPIRED: &str = "expired";
}

#[derive(Debug, thiserror::Error)]
#[error("the run record could not be saved: {0}")]
pub struct JournalError(pub String);

/// Where step records go.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Keep `rec`. The journal may hold it back until the next [`Journal::before_call`] or
    /// the attempt's conclusion.
    async fn record(&self, rec: &StepRecord) -> Result<(), JournalError>;

    /// Keep the started record `rec` of a call about to go out, and make every earlier
    /// record durable before returning (the steps they finished are never run again).
    /// `writes`: the call changes an app, so `rec` itself must be durable too (a crash
    /// during the call must leave the record of it); otherwise `rec` may be held.
    async fn before_call(&self, rec: &StepRecord, writes: bool) -> Result<(), JournalError> {
        let _ = writes;
        self.record(rec).await
    }
}

/// Time and randomness, injectable so retry scheduling is testable without sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// A draw in [0, 1) for retry jitter.
    fn random_unit(&self) -> f64 {
        fastrand::f64()
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A journal that keeps records in memory: for `flowbot run` and tests.
#[derive(Default)]
pub struct MemoryJournal {
    records: std::sync::Mutex<Vec<StepRecord>>,
}

impl MemoryJournal {
    pub fn records(&self) -> Vec<StepRecord> {
        self.records.lock().expect("journal lock").clone()
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn record(&self, rec: &StepRecord) -> Result<(), JournalError> {
        self.records.lock().expect("journal lock").push(rec.clone());
        Ok(())
    }
}

/// Everything one attempt needs.
pub struct Runner<'a> {
    pub flow: &'a Flow,
    pub apps: &'a Apps,
    /// Connection slot name → the connection configured for it.
    pub connections: &'a HashMap<String, Connection>,
    pub journal: &'a dyn Journal,
    pub clock: &'a dyn Clock,
}

/// What the records of earlier attempts say.
struct Resume<'r> {
    generation: u32,
    /// The latest record of each path in the current generation.
    latest: HashMap<&'r str, &'r StepRecord>,
    /// The highest attempt of each path in the generation, send-backs included.
    attempts: HashMap<&'r str, u32>,
    /// The latest send-back's output: what the step sent back to sees as `sent_back`.
    sent_back: Option<Value>,
}

/// Whether a record is a send-back decision, and the path it returns to.
fn sent_back_to(r: &StepRecord) -> Option<&str> {
    let out = r.output.as_ref()?;
    (r.status == StepStatus::Succeeded
        && out.get("decision").and_then(Value::as_str) == Some(decision::SENT_BACK))
    .then(|| out.get("send_back_path").and_then(Value::as_str))
    .flatten()
}

impl<'r> Resume<'r> {
    fn plan(prior: &'r [StepRecord]) -> Resume<'r> {
        let generation = prior.iter().map(|r| r.generation).max().unwrap_or(0);
        let records: Vec<&StepRecord> = prior
            .iter()
            .filter(|r| r.generation == generation)
            .collect();
        let mut attempts: HashMap<&str, u32> = HashMap::new();
        for r in &records {
            let a = attempts.entry(r.path.as_str()).or_default();
            *a = (*a).max(r.attempt);
        }
        // A send-back undoes everything from the last execution of the step it returns to
        // up to itself: those steps run again (as new attempts), in the order they ran.
        let mut undone = vec![false; records.len()];
        let mut sent_back = None;
        for i in 0..records.len() {
            let Some(target) = sent_back_to(records[i]) else {
                continue;
            };
            let last = (0..i)
                .rev()
                .find(|&j| !undone[j] && records[j].path == target);
            // From that execution's first record (its started record, where a journal
            // keeps the started and finished records apart).
            let first = last.map(|l| {
                (0..=l)
                    .find(|&j| {
                        records[j].path == target && records[j].attempt == records[l].attempt
                    })
                    .unwrap_or(l)
            });
            if let Some(j) = first {
                undone[j..=i].iter_mut().for_each(|u| *u = true);
                sent_back = records[i].output.clone();
            }
        }
        let mut latest: HashMap<&str, &StepRecord> = HashMap::new();
        for (r, _) in records.iter().zip(&undone).filter(|(_, u)| !**u) {
            // Records arrive in order; a finished record of the same attempt replaces
            // its started record.
            match latest.get(r.path.as_str()) {
                Some(prev) if prev.attempt > r.attempt => {}
                _ => {
                    latest.insert(&r.path, r);
                }
            }
        }
        let in_doubt = latest
            .values()
            .any(|r| r.status == StepStatus::Started && !r.idempotent);
        if in_doubt {
            return Resume {
                generation: generation + 1,
                latest: HashMap::new(),
                attempts: HashMap::new(),
                sent_back: None,
            };
        }
        Resume {
            generation,
            latest,
            attempts,
            sent_back,
        }
    }

    fn succeeded(&self, path: &str) -> Option<&'r StepRecord> {
        self.latest
            .get(path)
            .copied()
            .filter(|r| r.status == StepStatus::Succeeded)
    }

    /// The attempt number for the next execution of `path`.
    fn next_attempt(&self, path: &str) -> u32 {
        self.attempts.get(path).map_or(1, |a| a + 1)
    }
}

/// Whether to go on with the next step.
enum Flow_ {
    Continue,
    Stop(RunOutcome),
}

type StepResult = Result<Flow_, JournalError>;

impl Runner<'_> {
    /// Run one attempt. `prior` holds every record of earlier attempts of this run.
    /// An `Err` means the journal failed: nothing can be trusted to have been recorded, so
    /// the caller must let the run be picked up again rather than mark it finished.
    pub async fn run(
        &self,
        trigger: &Value,
        prior: &[StepRecord],
    ) -> Result<RunOutcome, JournalError> {
        let resume = Resume::plan(prior);
        let mut scope = Scope::new();
        scope.insert("trigger".to_string(), trigger.clone());
        scope.insert(
            "sent_back".to_string(),
            match &resume.sent_back {
                Some(out) => json!({
                    "comment": out.get("comment").cloned().unwrap_or(json!("")),
                    "by": out.get("decided_by").cloned().unwrap_or(json!("")),
                    "at": out.get("decided_at").cloned().unwrap_or(Value::Null),
                    "step": out.get("step").cloned().unwrap_or(json!("")),
                }),
                None => json!({"comment": "", "by": "", "at": null, "step": ""}),
            },
        );
        match self
            .steps(&self.flow.steps, "", &mut scope, &resume)
            .await?
        {
            Flow_::Continue => Ok(RunOutcome::Succeeded),
            Flow_::Stop(outcome) => Ok(outcome),
        }
    }

    async fn steps(
        &self,
        steps: &[Step],
        prefix: &str,
        scope: &mut Scope,
        resume: &Resume<'_>,
    ) -> StepResult {
        for step in steps {
            let path = format!("{prefix}{}", step.id);
            let span = tracing::info_span!("step", step = %path);
            let flow = Box::pin(self.step(step, &path, prefix, scope, resume))
                .instrument(span)
                .await?;
            if let Flow_::Stop(_) = flow {
                return Ok(flow);
            }
        }
        Ok(Flow_::Continue)
    }

    fn record(&self, step: &Step, path: &str, resume: &Resume<'_>) -> StepRecord {
        StepRecord {
            path: path.to_string(),
            step_id: step.id.clone(),
            kind: step.kind.label().to_string(),
            generation: resume.generation,
            attempt: resume.next_attempt(path),
            status: StepStatus::Started,
            app: None,
            action: None,
            idempotent: true,
            input: None,
            output: None,
            error: None,
            lane: None,
            started_at: self.clock.now(),
            finished_at: None,
        }
    }

    /// Record a failure that no retry can fix and stop the run.
    async fn fail(&self, mut rec: StepRecord, message: String) -> StepResult {
        let error = StepError::fatal(message);
        rec.status = StepStatus::Failed;
        rec.error = Some(error.clone());
        rec.finished_at = Some(self.clock.now());
        self.journal.record(&rec).await?;
        tracing::warn!(error = %error.message, "step failed");
        Ok(Flow_::Stop(RunOutcome::Failed {
            path: rec.path,
            error,
        }))
    }

    async fn succeed(&self, mut rec: StepRecord, output: Value) -> Result<(), JournalError> {
        tracing::debug!("step succeeded");
        rec.status = StepStatus::Succeeded;
        rec.output = Some(output);
        rec.finished_at = Some(self.clock.now());
        self.journal.record(&rec).await
    }

    async fn step(
        &self,
        step: &Step,
        path: &str,
        prefix: &str,
        scope: &mut Scope,
        resume: &Resume<'_>,
    ) -> StepResult {
        let done = resume.succeeded(path);
        match &step.kind {
            StepKind::Action(a) => {
                if let Some(r) = done {
                    scope.insert(step.id.clone(), r.output.clone().unwrap_or(Value::Null));
                    return Ok(Flow_::Continue);
                }
                self.action(step, a, path, scope, resume).await
            }
            StepKind::Set(values) => {
                if let Some(r) = done {
                    scope.insert(step.id.clone(), r.output.clone().unwrap_or(Value::Null));
                    return Ok(Flow_::Continue);
                }
                let rec = self.record(step, path, resume);
                match render_value(&Value::Object(values.clone()), scope) {
                    Ok(out) => {
                        self.succeed(rec, out.clone()).await?;
                        scope.insert(step.id.clone(), out);
                        Ok(Flow_::Continue)
                    }
                    Err((field, e)) => {
                        self.fail(rec, format!("value `{field}`: {}", e.message))
                            .await
                    }
                }
            }
            StepKind::Wait(d) => self.wait(step, *d, path, resume).await,
            StepKind::Branch(b) => {
                let lane = match done.and_then(|r| r.lane.clone()) {
                    Some(lane) => lane,
                    None => {
                        let rec = self.record(step, path, resume);
                        let matched = match evaluate(&b.condition, scope) {
                            Ok(m) => m,
                            Err(e) => {
                                return self
                                    .fail(rec, format!("condition `{}`: {}", e.path, e.message))
                                    .await
                            }
                        };
                        let lane = if matched { "then" } else { "else" };
                        self.decide(rec, lane, json!({"lane": lane, "matched": matched}))
                            .await?;
                        lane.to_string()
                    }
                };
                let matched = lane == "then";
                scope.insert(step.id.clone(), json!({"lane": lane, "matched": matched}));
                let steps = if matched {
                    &b.then_steps
                } else {
                    &b.else_steps
                };
                self.steps(steps, prefix, scope, resume).await
            }
            StepKind::Switch(sw) => {
                let lane = match done.and_then(|r| r.lane.clone()) {
                    Some(lane) => lane,
                    None => {
                        let rec = self.record(step, path, resume);
                        let mut chosen = "default".to_string();
                        for (i, c) in sw.cases.iter().enumerate() {
                            match evaluate(&c.condition, scope) {
                                Ok(true) => {
                                    chosen = c.name.clone();
                                    break;
                                }
                                Ok(false) => {}
                                Err(e) => {
                                    return self
                                        .fail(
                                            rec,
                                            format!(
                                                "case {} condition `{}`: {}",
                                                i + 1,
                                                e.path,
                                                e.message
                                            ),
                                        )
                                        .await
                                }
                            }
                        }
                        self.decide(rec, &chosen, json!({ "lane": chosen })).await?;
                        chosen
                    }
                };
                scope.insert(step.id.clone(), json!({ "lane": lane }));
                let steps = sw
                    .cases
                    .iter()
                    .find(|c| c.name == lane)
                    .map_or(&sw.default, |c| &c.steps);
                self.steps(steps, prefix, scope, resume).await
            }
            StepKind::ForEach(f) => self.for_each(step, f, path, scope, resume).await,
            StepKind::Approval(p) | StepKind::Task(p) => {
                self.people(step, p, path, prefix, scope, resume).await
            }
        }
    }

    /// An approval or a task: follow its recorded decision, or ask and wait.
    async fn people(
        &self,
        step: &Step,
        p: &PeopleStep,
        path: &str,
        prefix: &str,
        scope: &mut Scope,
        resume: &Resume<'_>,
    ) -> StepResult {
        if let Some(r) = resume.succeeded(path) {
            let out = r.output.clone().unwrap_or(Value::Null);
            let said = out.get("decision").and_then(Value::as_str).unwrap_or("");
            scope.insert(step.id.clone(), out.clone());
            let deadline_else = p.deadline.as_ref().map(|d| d.then) == Some(AtDeadline::Else);
            return match said {
                decision::APPROVED => self.steps(&p.then_steps, prefix, scope, resume).await,
                decision::REJECTED => self.rejected(p, prefix, scope, resume).await,
                decision::EXPIRED if deadline_else => self.rejected(p, prefix, scope, resume).await,
                decision::EXPIRED => Ok(Flow_::Stop(RunOutcome::Failed {
                    path: path.to_string(),
                    error: StepError::fatal("nobody answered before the deadline".into()),
                })),
                _ => Ok(Flow_::Continue),
            };
        }
        // Asked already (the run was taken up again before anyone answered): wait again;
        // the store keeps one request per execution of the step.
        let asked = resume
            .latest
            .get(path)
            .filter(|r| r.status == StepStatus::Started)
            .and_then(|r| serde_json::from_value::<PeopleRequest>(r.input.clone()?).ok());
        if let Some(request) = asked {
            return Ok(Flow_::Stop(RunOutcome::WaitForPeople {
                path: path.to_string(),
                request: Box::new(request),
            }));
        }
        let mut rec = self.record(step, path, resume);
        let text = |t: &str, scope: &Scope| -> Result<String, String> {
            match crate::template::render_str(t, scope) {
                Ok(Value::String(s)) => Ok(s),
                Ok(Value::Null) => Ok(String::new()),
                Ok(v) => Ok(v.to_string()),
                Err(e) => Err(e.message),
            }
        };
        let asked = |people: &People, scope: &Scope| -> Result<Asked, String> {
            let mut out = Asked {
                roles: people.roles.clone(),
                starter: people.starter,
                ..Asked::default()
            };
            for (list, into) in [
                (&people.members, &mut out.members),
                (&people.emails, &mut out.emails),
            ] {
                for t in list {
                    // A template may give one name or address, or a list of them.
                    let v = match crate::template::render_str(t, scope) {
                        Ok(v) => v,
                        Err(e) => return Err(format!("`{t}`: {}", e.message)),
                    };
                    let items = match v {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    for item in items {
                        let s = match item {
                            Value::String(s) => s.trim().to_string(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        if !s.is_empty() && !into.contains(&s) {
                            into.push(s);
                        }
                    }
                }
            }
            Ok(out)
        };
        let message = match text(&p.message, scope) {
            Ok(m) => m,
            Err(e) => return self.fail(rec, format!("message: {e}")).await,
        };
        let to = match asked(&p.to, scope) {
            Ok(a) => a,
            Err(e) => return self.fail(rec, format!("to: {e}")).await,
        };
        let escalate_to = match &p.deadline {
            Some(d) if d.then == AtDeadline::Escalate => match asked(&d.escalate_to, scope) {
                Ok(a) => Some(a),
                Err(e) => return self.fail(rec, format!("deadline.escalate_to: {e}")).await,
            },
            _ => None,
        };
        let now = self.clock.now();
        let after = |d: Duration| {
            now.checked_add(jiff::SignedDuration::try_from(d).unwrap_or_default())
                .unwrap_or(now)
        };
        let is_task = matches!(step.kind, StepKind::Task(_));
        let request = PeopleRequest {
            kind: step.kind.label().to_string(),
            step_id: step.id.clone(),
            title: step.display_name().to_string(),
            message,
            to,
            needed: match (is_task, p.rule) {
                (true, _) | (false, ApprovalRule::Any) => 1,
                (false, ApprovalRule::All) => 0,
                (false, ApprovalRule::Count(n)) => n,
            },
            fields: p.fields.clone(),
            send_back_path: p.send_back_to.as_ref().map(|t| format!("{prefix}{t}")),
            deadline_at: p.deadline.as_ref().map(|d| after(d.after)),
            at_deadline: p.deadline.as_ref().map(|d| d.then.name().to_string()),
            escalate_to,
            escalate_after_ms: p
                .deadline
                .as_ref()
                .filter(|d| d.then == AtDeadline::Escalate)
                .map(|d| d.after.as_millis() as i64),
            generation: rec.generation,
            round: rec.attempt,
        };
        rec.input = serde_json::to_value(&request).ok();
        self.journal.record(&rec).await?;
        Ok(Flow_::Stop(RunOutcome::WaitForPeople {
            path: path.to_string(),
            request: Box::new(request),
        }))
    }

    /// A rejection: the else lane runs, then the run ends.
    async fn rejected(
        &self,
        p: &PeopleStep,
        prefix: &str,
        scope: &mut Scope,
        resume: &Resume<'_>,
    ) -> StepResult {
        match self.steps(&p.else_steps, prefix, scope, resume).await? {
            Flow_::Continue => Ok(Flow_::Stop(RunOutcome::Succeeded)),
            stop => Ok(stop),
        }
    }

    /// Record which lane a branch or switch took, before the lane runs, so that a resumed
    /// run takes the same lane even if the values it tested have changed since.
    async fn decide(
        &self,
        mut rec: StepRecord,
        lane: &str,
        output: Value,
    ) -> Result<(), JournalError> {
        rec.lane = Some(lane.to_string());
        self.succeed(rec, output).await
    }

    async fn action(
        &self,
        step: &Step,
        a: &ActionStep,
        path: &str,
        scope: &mut Scope,
        resume: &Resume<'_>,
    ) -> StepResult {
        let mut rec = self.record(step, path, resume);
        rec.app = Some(a.app.clone());
        rec.action = Some(a.action.clone());
        let Some(connector) = self.apps.get(&a.app) else {
            return self
                .fail(rec, format!("app `{}` is not installed", a.app))
                .await;
        };
        let Some(spec) = connector.manifest().action(&a.action) else {
            return self
                .fail(rec, format!("app `{}` has no action `{}`", a.app, a.action))
                .await;
        };
        rec.idempotent = spec.idempotent;
        let input = match render_input(spec, &a.input, scope) {
            Ok(m) => m,
            Err((field, e)) => {
                return self
                    .fail(rec, format!("input `{field}`: {}", e.message))
                    .await
            }
        };
        rec.input = Some(redact_input(spec, &Value::Object(input.clone())));
        let connection = match &a.connection {
            None => None,
            Some(slot) => match self.connections.get(slot) {
                Some(c) => Some(c),
                None => {
                    return self
                        .fail(
                            rec,
                            format!(
                            "connection `{slot}` is not set up: connect it before running the flow"
                        ),
                        )
                        .await
                }
            },
        };

        self.journal
            .before_call(&rec, spec.writes || !spec.idempotent)
            .await?;
        let timeout = step
            .timeout
            .or(self.flow.timeout)
            .unwrap_or(DEFAULT_STEP_TIMEOUT);
        let call = ActionCall {
            action: &a.action,
            input: &input,
            connection,
        };
        let result = match tokio::time::timeout(timeout, connector.execute(call)).await {
            Ok(r) => r,
            Err(_) => Err(ActionError::retryable(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))),
        };
        match result {
            Ok(output) => {
                self.succeed(rec, output.clone()).await?;
                scope.insert(step.id.clone(), output);
                Ok(Flow_::Continue)
            }
            Err(e) => {
                let error = StepError::from(&e);
                rec.status = StepStatus::Failed;
                rec.error = Some(error.clone());
                rec.finished_at = Some(self.clock.now());
                self.journal.record(&rec).await?;
                let policy = self.flow.retry.with_override(step.retry.as_ref());
                if e.is_retryable() && rec.attempt < policy.max_attempts {
                    let delay = policy.delay(rec.attempt, e.retry_after, self.clock.random_unit());
                    tracing::info!(error = %e.message, attempt = rec.attempt, ?delay, "step will be retried");
                    Ok(Flow_::Stop(RunOutcome::RetryLater {
                        path: path.to_string(),
                        error,
                        delay,
                        attempt: rec.attempt,
                        max_attempts: policy.max_attempts,
                    }))
                } else {
                    tracing::warn!(error = %e.message, attempt = rec.attempt, "step failed");
                    Ok(Flow_::Stop(RunOutcome::Failed {
                        path: path.to_string(),
                        error,
                    }))
                }
            }
        }
    }

    async fn wait(&self, step: &Step, d: Duration, path: &str, resume: &Resume<'_>) -> StepResult {
        if resume.succeeded(path).is_some() {
            return Ok(Flow_::Continue);
        }
        let now = self.clock.now();
        // A started wait knows when it ends; resuming before then waits for the rest.
        let started = resume
            .latest
            .get(path)
            .filter(|r| r.status == StepStatus::Started);
        let until = started
            .and_then(|r| {
                r.output
                    .as_ref()?
                    .get("until")?
                    .as_str()?
                    .parse::<Timestamp>()
                    .ok()
            })
            .unwrap_or_else(|| {
                now.checked_add(jiff::SignedDuration::try_from(d).unwrap_or_default())
                    .unwrap_or(now)
            });
        if now >= until {
            let mut rec = match started {
                Some(r) => (*r).clone(),
                None => self.record(step, path, resume),
            };
            rec.output = None;
            self.succeed(rec, json!({ "until": until.to_string() }))
                .await?;
            return Ok(Flow_::Continue);
        }
        if started.is_none() {
            let mut rec = self.record(step, path, resume);
            rec.output = Some(json!({ "until": until.to_string() }));
            self.journal.record(&rec).await?;
        }
        Ok(Flow_::Stop(RunOutcome::WaitUntil {
            path: path.to_string(),
            until,
        }))
    }

    async fn for_each(
        &self,
        step: &Step,
        f: &ForEachStep,
        path: &str,
        scope: &mut Scope,
        resume: &Resume<'_>,
    ) -> StepResult {
        // The items are fixed when the loop starts, so indices stay stable across resumes.
        let items = match resume.succeeded(path).and_then(|r| r.input.clone()) {
            Some(Value::Object(mut m)) => match m.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => {
                let rec = self.record(step, path, resume);
                let items = match render_value(&f.items, scope) {
                    Ok(Value::Array(items)) => items,
                    Ok(Value::Null) => Vec::new(),
                    Ok(other) => {
                        return self
                            .fail(
                                rec,
                                format!(
                                    "`items` must give a list, but gave {}",
                                    crate::template::kind_of(&other)
                                ),
                            )
                            .await
                    }
                    Err((_, e)) => return self.fail(rec, format!("`items`: {}", e.message)).await,
                };
                if items.len() > f.max_iterations {
                    return self
                        .fail(
                            rec,
                            format!(
                                "the loop has {} items, more than its max_iterations of {}",
                                items.len(),
                                f.max_iterations
                            ),
                        )
                        .await;
                }
                let mut rec = rec;
                rec.input = Some(json!({ "items": items }));
                self.succeed(rec, json!({ "count": items.len() })).await?;
                items
            }
        };
        let mut results = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let mut inner = scope.clone();
            inner.insert(step.id.clone(), json!({ "item": item, "index": index }));
            let prefix = format!("{path}[{index}].");
            if let Flow_::Stop(o) = self.steps(&f.steps, &prefix, &mut inner, resume).await? {
                return Ok(Flow_::Stop(o));
            }
            let mut result = Map::new();
            result.insert("item".to_string(), item.clone());
            result.insert("index".to_string(), json!(index));
            for s in walk_lanes(&f.steps) {
                if let Some(v) = inner.get(&s.id) {
                    result.insert(s.id.clone(), v.clone());
                }
            }
            results.push(Value::Object(result));
        }
        scope.insert(
            step.id.clone(),
            json!({ "count": items.len(), "results": results }),
        );
        Ok(Flow_::Continue)
    }
}

/// Steps of a loop body including those in nested branch lanes (not nested loop bodies,
/// whose results live in their own loop's value).
fn walk_lanes(steps: &[Step]) -> Vec<&Step> {
    let mut out = Vec::new();
    for s in steps {
        out.push(s);
        if !matches!(s.kind, StepKind::ForEach(_)) {
            for lane in s.lanes() {
                out.extend(walk_lanes(lane.steps));
            }
        }
    }
    out
}

/// Render a flow's concurrency key against a trigger payload: `Ok(None)` when the flow has
/// none, `Err` with a message naming the missing value when it cannot be rendered.
pub fn concurrency_key(flow: &Flow, trigger: &Value) -> Result<Option<String>, String> {
    match &flow.concurrency_key {
        None => Ok(None),
        Some(template) => render_key(template, trigger),
    }
}

/// A concurrency key template rendered against an event's `trigger` value.
pub fn render_key(template: &str, trigger: &Value) -> Result<Option<String>, String> {
    let mut scope = Scope::new();
    scope.insert("trigger".to_string(), trigger.clone());
    match crate::template::render_str(template, &scope) {
        Ok(Value::String(s)) => Ok(Some(s)),
        Ok(Value::Null) => Ok(None),
        Ok(other) => Ok(Some(other.to_string())),
        Err(e) => Err(format!(
            "the concurrency key could not be rendered from the event: {}",
            e.message
        )),
    }
}

/// The longest run title shown.
const MAX_RUN_TITLE: usize = 100;

/// What a run is about: the flow's `run_title` rendered against its trigger, on one line
/// and at most 100 characters; None without a title or when it renders empty or fails.
pub fn run_title(flow: &Flow, trigger: &Value) -> Option<String> {
    let template = flow.run_title.as_ref()?;
    let mut scope = Scope::new();
    scope.insert("trigger".to_string(), trigger.clone());
    let text = match crate::template::render_str(template, &scope).ok()? {
        Value::String(s) => s,
        Value::Null => return None,
        other => other.to_string(),
    };
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return None;
    }
    Some(match one_line.char_indices().nth(MAX_RUN_TITLE) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    })
}

/// Render a flow's de-duplication key against a trigger payload, with its window. A key
/// that cannot be rendered de-duplicates nothing (the event is never dropped for it).
pub fn dedupe_key(flow: &Flow, trigger: &Value) -> Option<(String, Duration)> {
    let d = flow.dedupe.as_ref()?;
    let mut scope = Scope::new();
    scope.insert("trigger".to_string(), trigger.clone());
    match crate::template::render_str(&d.key, &scope) {
        Ok(Value::String(s)) if !s.is_empty() => Some((s, d.window)),
        Ok(Value::Null) | Ok(Value::String(_)) | Err(_) => None,
        Ok(other) => Some((other.to_string(), d.window)),
    }
}

/// An action step's input rendered over the obtained values — all but program text
/// (`FieldKind::Code`), which the app gets as written — in the order the file gives it,
/// with the manifest's defaults for inputs left out. An error names the input field it
/// is in. The runner and the editor's step test both call it, so a test sees what a run
/// would send.
pub fn render_input(
    spec: &ActionSpec,
    input: &Map<String, Value>,
    scope: &Scope,
) -> Result<Map<String, Value>, (String, TemplateError)> {
    let is_code = |name: &str| {
        spec.inputs
            .iter()
            .any(|f| f.name == name && f.kind == FieldKind::Code)
    };
    let templated: Map<String, Value> = input
        .iter()
        .filter(|(k, _)| !is_code(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let Value::Object(mut rendered) = render_value(&Value::Object(templated), scope)? else {
        unreachable!("rendering an object gives an object")
    };
    let rendered = input
        .iter()
        .map(|(k, v)| (k.clone(), rendered.remove(k).unwrap_or_else(|| v.clone())))
        .collect();
    Ok(with_defaults(rendered, spec))
}

/// Inputs the user left out take the manifest's defaults.
fn with_defaults(
    mut input: Map<String, Value>,
    spec: &crate::manifest::ActionSpec,
) -> Map<String, Value> {
    for f in &spec.inputs {
        if let Some(d) = &f.default {
            input.entry(f.name.clone()).or_insert_with(|| d.clone());
        }
    }
    input
}

#[cfg(test)]
mod tests;
