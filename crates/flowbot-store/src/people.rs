//! People in the loop: the requests of approval and task steps, who is asked, what each
//! person decided, outsiders' links, and deadlines.
//!
//! **Invariant:** a waiting run resumes exactly once. A request is opened in the same write
//! that concludes its run's attempt as `waiting`; whatever settles it — the decision that
//! completes the rule, or its deadline — first moves it from `open` in a statement that
//! locks the row (`UPDATE … WHERE status = 'open'`), so of two approvers pressing at once
//! (or an approver and the deadline) one settles it and the other is told it is decided.
//! Settling writes the step's record with the decision as its output and queues the run,
//! in the same transaction.

use flowbot_core::runner::{decision, Asked, PeopleRequest, StepRecord, StepStatus};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::audit::{audit, Actor};
use crate::inbox::announce_queued;
use crate::runs::json_col;
use crate::{new_id, Result, Store, StoreError};

/// The header an event carries when a member started it (a manual start, a members-only
/// form): `to: { starter: true }` asks them.
pub const STARTER_HEADER: &str = "x-flowbot-member";

/// A request as its list and page show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RequestInfo {
    pub id: String,
    pub run_id: String,
    pub flow_id: String,
    /// `approval` or `task`.
    pub kind: String,
    pub title: String,
    pub message: String,
    /// `open`, `decided`, `expired` or `canceled`.
    pub status: String,
    /// `approved`, `rejected`, `sent_back`, `completed` or `expired` once settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<i64>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    /// Whether a person may send the run back to an earlier step.
    pub can_send_back: bool,
    /// A task's form fields, as the flow file gives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
    /// Approvals needed (0: everyone asked).
    pub needed: i64,
    pub escalated: bool,
    /// Who is asked: member names and outsiders' addresses.
    pub people: Vec<Person>,
    pub decisions: Vec<PersonDecision>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Person {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Asked when the deadline escalated the request.
    pub escalated: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PersonDecision {
    /// A member's name, or an outsider's address.
    pub by: String,
    /// `approve`, `reject`, `send_back` or `complete`.
    pub decision: String,
    pub comment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers: Option<Value>,
    pub at: i64,
}

/// Who decides.
#[derive(Debug, Clone)]
pub enum Decider {
    Member(String),
    /// An outsider through their link (the token as given; only its hash is stored).
    Link(String),
}

/// What a person decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Approve,
    Reject,
    SendBack,
    Complete,
}

impl Choice {
    pub fn parse(s: &str) -> Option<Choice> {
        Some(match s {
            "approve" => Choice::Approve,
            "reject" => Choice::Reject,
            "send_back" => Choice::SendBack,
            "complete" => Choice::Complete,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Approve => "approve",
            Choice::Reject => "reject",
            Choice::SendBack => "send_back",
            Choice::Complete => "complete",
        }
    }
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Decided {
    /// The request's outcome when this decision settled it (the run goes on); None while
    /// more approvals are needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// A request an outsider's link opens, with the address it was sent to.
#[derive(Debug, Clone)]
pub struct LinkedRequest {
    pub request: RequestInfo,
    pub email: String,
}

const REQUEST_COLUMNS: &str = "id, run_id, flow_id, kind, title, message, status, outcome, \
     deadline_at, created_at, decided_at, spec, needed, escalated";

fn hash(token: &str) -> String {
    crate::crypto::sha256_hex(token.as_bytes())
}

fn request_from(r: &AnyRow) -> Result<(RequestInfo, PeopleRequest)> {
    let spec: PeopleRequest = serde_json::from_value(json_col(r, "spec")?)
        .map_err(|e| StoreError::Corrupt(format!("request spec: {e}")))?;
    let escalated: i64 = r.try_get("escalated")?;
    Ok((
        RequestInfo {
            id: r.try_get("id")?,
            run_id: r.try_get("run_id")?,
            flow_id: r.try_get("flow_id")?,
            kind: r.try_get("kind")?,
            title: r.try_get("title")?,
            message: r.try_get("message")?,
            status: r.try_get("status")?,
            outcome: r.try_get("outcome")?,
            deadline_at: r.try_get("deadline_at")?,
            created_at: r.try_get("created_at")?,
            decided_at: r.try_get("decided_at")?,
            can_send_back: spec.send_back_path.is_some(),
            fields: spec.fields.clone(),
            needed: r.try_get("needed")?,
            escalated: escalated != 0,
            people: Vec::new(),
            decisions: Vec::new(),
        },
        spec,
    ))
}

/// Members and outsiders a request asks, resolved now: names of active members, members by
/// role, addresses (a member's address reaches the member), and the run's starter.
async fn resolve(
    conn: &mut AnyConnection,
    run_id: &str,
    asked: &Asked,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut members: Vec<String> = Vec::new();
    let mut outsiders: Vec<String> = Vec::new();
    let add = |list: &mut Vec<String>, v: String| {
        if !list.contains(&v) {
            list.push(v);
        }
    };
    // The run's starter is asked as a member named like any other.
    let mut names = asked.members.clone();
    if asked.starter {
        let headers: Option<String> = sqlx::query_scalar(
            "SELECT e.headers FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = $1",
        )
        .bind(run_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        names.extend(
            headers
                .and_then(|h| serde_json::from_str::<Value>(&h).ok())
                .and_then(|h| h.get(STARTER_HEADER)?.as_str().map(str::to_string)),
        );
    }
    for name in &names {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT username FROM users WHERE username = $1 AND disabled_at IS NULL",
        )
        .bind(name.clone())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(n) = found {
            add(&mut members, n);
        }
    }
    for role in &asked.roles {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT username FROM users WHERE role = $1 AND disabled_at IS NULL ORDER BY username",
        )
        .bind(role.clone())
        .fetch_all(&mut *conn)
        .await?;
        for n in names {
            add(&mut members, n);
        }
    }
    for email in &asked.emails {
        let email = email.trim().to_lowercase();
        if !email.contains('@') {
            continue;
        }
        let member: Option<String> = sqlx::query_scalar(
            "SELECT username FROM users WHERE lower(email) = $1 AND disabled_at IS NULL",
        )
        .bind(email.clone())
        .fetch_optional(&mut *conn)
        .await?;
        match member {
            Some(n) => add(&mut members, n),
            None => add(&mut outsiders, email),
        }
    }
    Ok((members, outsiders))
}

async fn add_people(
    conn: &mut AnyConnection,
    request_id: &str,
    members: &[String],
    outsiders: &[String],
    escalated: bool,
) -> Result<()> {
    let conflict = "ON CONFLICT DO NOTHING";
    for m in members {
        sqlx::query(&format!(
            "INSERT INTO request_people (request_id, member, email, escalated) VALUES ($1, $2, NULL, $3) {conflict}"
        ))
        .bind(request_id.to_string())
        .bind(m.clone())
        .bind(i64::from(escalated))
        .execute(&mut *conn)
        .await?;
    }
    for e in outsiders {
        sqlx::query(&format!(
            "INSERT INTO request_people (request_id, member, email, escalated) VALUES ($1, NULL, $2, $3) {conflict}"
        ))
        .bind(request_id.to_string())
        .bind(e.clone())
        .bind(i64::from(escalated))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Open the request of a run concluding as `waiting`, inside the conclusion's write. Returns
/// why nobody can be asked, if so (the run then fails instead of waiting for no one). A
/// request opened before for the same execution of the step is kept as it is.
pub(crate) async fn open_request(
    conn: &mut AnyConnection,
    run_id: &str,
    path: &str,
    req: &PeopleRequest,
    now: i64,
) -> Result<std::result::Result<(), String>> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT id FROM requests WHERE run_id = $1 AND generation = $2 AND path = $3 AND round = $4",
    )
    .bind(run_id.to_string())
    .bind(i64::from(req.generation))
    .bind(path.to_string())
    .bind(i64::from(req.round))
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_some() {
        return Ok(Ok(()));
    }
    let (members, outsiders) = resolve(conn, run_id, &req.to).await?;
    if members.is_empty() && outsiders.is_empty() {
        return Ok(Err(format!(
            "nobody can be asked: no active member or address matches `to` ({})",
            describe(&req.to)
        )));
    }
    let flow_id: String = sqlx::query_scalar("SELECT flow_id FROM runs WHERE id = $1")
        .bind(run_id.to_string())
        .fetch_one(&mut *conn)
        .await?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO requests (id, run_id, flow_id, path, generation, round, kind, title, message, \
         spec, needed, status, deadline_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', $12, $13)",
    )
    .bind(id.clone())
    .bind(run_id.to_string())
    .bind(flow_id)
    .bind(path.to_string())
    .bind(i64::from(req.generation))
    .bind(i64::from(req.round))
    .bind(req.kind.clone())
    .bind(req.title.clone())
    .bind(req.message.clone())
    .bind(serde_json::to_string(req).expect("a request serialises"))
    .bind(i64::from(req.needed))
    .bind(req.deadline_at.map(|t| t.as_millisecond()))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    add_people(conn, &id, &members, &outsiders, false).await?;
    Ok(Ok(()))
}

fn describe(a: &Asked) -> String {
    let mut parts = Vec::new();
    if !a.members.is_empty() {
        parts.push(format!("members {}", a.members.join(", ")));
    }
    if !a.roles.is_empty() {
        parts.push(format!("roles {}", a.roles.join(", ")));
    }
    if !a.emails.is_empty() {
        parts.push(format!("emails {}", a.emails.join(", ")));
    }
    if a.starter {
        parts.push("the run's starter".into());
    }
    parts.join("; ")
}

/// Lock an open request for settling or deciding; None when it is not open.
async fn lock_open(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<(RequestInfo, PeopleRequest, String, i64, i64)>> {
    let row = sqlx::query(&format!(
        "UPDATE requests SET status = status WHERE id = $1 AND status = 'open' \
         RETURNING {REQUEST_COLUMNS}, path, generation, round"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (info, spec) = request_from(&row)?;
    Ok(Some((
        info,
        spec,
        row.try_get("path")?,
        row.try_get("generation")?,
        row.try_get("round")?,
    )))
}

async fn not_open(conn: &mut AnyConnection, id: &str) -> StoreError {
    let status: std::result::Result<Option<String>, sqlx::Error> =
        sqlx::query_scalar("SELECT status FROM requests WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await;
    match status {
        Ok(None) => StoreError::NotFound(format!("request {id} not found")),
        Ok(Some(s)) => StoreError::Conflict(format!(
            "this request is no longer open ({s}): someone has already decided it, or its run ended"
        )),
        Err(e) => e.into(),
    }
}

async fn decisions_of(conn: &mut AnyConnection, id: &str) -> Result<Vec<PersonDecision>> {
    let rows = sqlx::query(
        "SELECT decider, decision, comment, answers, at FROM request_decisions \
         WHERE request_id = $1 ORDER BY id",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let answers: Option<String> = r.try_get("answers")?;
            Ok(PersonDecision {
                by: r.try_get("decider")?,
                decision: r.try_get("decision")?,
                comment: r.try_get("comment")?,
                answers: answers.and_then(|a| serde_json::from_str(&a).ok()),
                at: r.try_get("at")?,
            })
        })
        .collect()
}

async fn people_of(conn: &mut AnyConnection, id: &str) -> Result<Vec<Person>> {
    let rows = sqlx::query(
        "SELECT member, email, escalated FROM request_people WHERE request_id = $1 \
         ORDER BY escalated, member, email",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let escalated: i64 = r.try_get("escalated")?;
            Ok(Person {
                member: r.try_get("member")?,
                email: r.try_get("email")?,
                escalated: escalated != 0,
            })
        })
        .collect()
}

fn iso(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

/// Settle a locked request: record the step's decision as its output, queue the run.
#[allow(clippy::too_many_arguments)]
async fn settle(
    conn: &mut AnyConnection,
    info: &RequestInfo,
    spec: &PeopleRequest,
    path: &str,
    generation: i64,
    round: i64,
    outcome: &str,
    last: Option<&PersonDecision>,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE requests SET status = $2, outcome = $3, decided_at = $4 WHERE id = $1")
        .bind(info.id.clone())
        .bind(if outcome == decision::EXPIRED {
            "expired"
        } else {
            "decided"
        })
        .bind(outcome.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let decisions = decisions_of(conn, &info.id).await?;
    let mut out = Map::new();
    out.insert("decision".into(), json!(outcome));
    out.insert(
        "decided_by".into(),
        json!(last.map(|d| d.by.clone()).unwrap_or_default()),
    );
    out.insert(
        "comment".into(),
        json!(last.map(|d| d.comment.clone()).unwrap_or_default()),
    );
    out.insert("decided_at".into(), iso(now));
    out.insert(
        "answers".into(),
        last.and_then(|d| d.answers.clone())
            .unwrap_or_else(|| json!({})),
    );
    out.insert(
        "decisions".into(),
        Value::Array(
            decisions
                .iter()
                .map(|d| {
                    json!({"by": d.by, "decision": d.decision, "comment": d.comment, "at": iso(d.at)})
                })
                .collect(),
        ),
    );
    out.insert("step".into(), json!(spec.step_id));
    if outcome == decision::SENT_BACK {
        out.insert("send_back_path".into(), json!(spec.send_back_path));
    }
    let text: Option<String> = sqlx::query_scalar(
        "SELECT record FROM step_records WHERE run_id = $1 AND generation = $2 AND path = $3 AND attempt = $4",
    )
    .bind(info.run_id.clone())
    .bind(generation)
    .bind(path.to_string())
    .bind(round)
    .fetch_optional(&mut *conn)
    .await?;
    let mut rec: StepRecord = text
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "run {} has no record of the step {path} its request belongs to",
                info.run_id
            ))
        })?;
    rec.status = StepStatus::Succeeded;
    rec.output = Some(Value::Object(out));
    rec.finished_at = jiff::Timestamp::from_millisecond(now).ok();
    sqlx::query(
        "UPDATE step_records SET status = 'succeeded', record = $5, written_at = $6 \
         WHERE run_id = $1 AND generation = $2 AND path = $3 AND attempt = $4",
    )
    .bind(info.run_id.clone())
    .bind(generation)
    .bind(path.to_string())
    .bind(round)
    .bind(serde_json::to_string(&rec).expect("a step record serialises"))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let queued = sqlx::query(
        "UPDATE runs SET status = 'queued', next_attempt_at = $2 WHERE id = $1 AND status = 'waiting'",
    )
    .bind(info.run_id.clone())
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if queued == 0 {
        return Err(StoreError::Conflict(format!(
            "run {} is no longer waiting for this request",
            info.run_id
        )));
    }
    announce_queued(conn).await
}

impl Store {
    /// A person's decision on a request. The request must be open and the person asked;
    /// a person decides once. A rejection, a send-back or a completed task settles the
    /// request at once; approvals settle it when the rule is met.
    pub async fn decide(
        &self,
        request_id: &str,
        who: Decider,
        choice: Choice,
        comment: &str,
        answers: Option<Value>,
        address: &str,
    ) -> Result<Decided> {
        let now = self.now_ms();
        let (id, comment, address) = (
            request_id.to_string(),
            comment.to_string(),
            address.to_string(),
        );
        let decided = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let by = match &who {
                        Decider::Member(name) => name.clone(),
                        Decider::Link(token) => {
                            let taken: Option<AnyRow> = sqlx::query(
                                "UPDATE request_links SET used_at = $2 WHERE token_hash = $1 \
                                 AND used_at IS NULL AND expires_at > $2 RETURNING request_id, email",
                            )
                            .bind(hash(token))
                            .bind(now)
                            .fetch_optional(&mut *conn)
                            .await?;
                            let Some(row) = taken else {
                                return Err(StoreError::Conflict(
                                    "this link has expired or has already been used".into(),
                                ));
                            };
                            let rid: String = row.try_get("request_id")?;
                            if rid != id {
                                return Err(StoreError::NotFound(format!(
                                    "request {id} not found"
                                )));
                            }
                            row.try_get::<String, _>("email")?
                        }
                    };
                    let Some((info, spec, path, generation, round)) = lock_open(conn, &id).await?
                    else {
                        return Err(not_open(conn, &id).await);
                    };
                    let asked: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM request_people WHERE request_id = $1 AND (member = $2 OR email = $2)",
                    )
                    .bind(id.clone())
                    .bind(by.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                    if asked.is_none() {
                        return Err(StoreError::Conflict(format!(
                            "{by} is not among the people this request asks"
                        )));
                    }
                    let allowed = match (info.kind.as_str(), choice) {
                        ("approval", Choice::Approve | Choice::Reject) => true,
                        ("task", Choice::Complete) => true,
                        (_, Choice::SendBack) => info.can_send_back,
                        _ => false,
                    };
                    if !allowed {
                        return Err(StoreError::Conflict(format!(
                            "a {} cannot be answered with `{}`",
                            info.kind,
                            choice.as_str()
                        )));
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO request_decisions (request_id, decider, decision, comment, answers, at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, decider) DO NOTHING",
                    )
                    .bind(id.clone())
                    .bind(by.clone())
                    .bind(choice.as_str())
                    .bind(comment.clone())
                    .bind(answers.as_ref().map(Value::to_string))
                    .bind(now)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        return Err(StoreError::Conflict(format!(
                            "{by} has already decided this request"
                        )));
                    }
                    let outcome = match choice {
                        Choice::Reject => Some(decision::REJECTED),
                        Choice::SendBack => Some(decision::SENT_BACK),
                        Choice::Complete => Some(decision::COMPLETED),
                        Choice::Approve => {
                            let approvals: i64 = sqlx::query_scalar(
                                "SELECT COUNT(*) FROM request_decisions WHERE request_id = $1 AND decision = 'approve'",
                            )
                            .bind(id.clone())
                            .fetch_one(&mut *conn)
                            .await?;
                            let needed = if info.needed > 0 {
                                info.needed
                            } else {
                                sqlx::query_scalar(
                                    "SELECT COUNT(*) FROM request_people WHERE request_id = $1",
                                )
                                .bind(id.clone())
                                .fetch_one(&mut *conn)
                                .await?
                            };
                            (approvals >= needed).then_some(decision::APPROVED)
                        }
                    };
                    let mine = PersonDecision {
                        by: by.clone(),
                        decision: choice.as_str().into(),
                        comment: comment.clone(),
                        answers: answers.clone(),
                        at: now,
                    };
                    if let Some(o) = outcome {
                        settle(conn, &info, &spec, &path, generation, round, o, Some(&mine), now)
                            .await?;
                    }
                    audit(
                        conn,
                        now,
                        &Actor::new(by.clone(), address),
                        &format!("request.{}", choice.as_str()),
                        &info.run_id,
                        json!({"request": id, "step": spec.step_id, "title": info.title,
                               "comment": comment, "outcome": outcome}),
                    )
                    .await?;
                    Ok(Decided {
                        outcome: outcome.map(str::to_string),
                    })
                })
            })
            .await?;
        if decided.outcome.is_some() {
            self.wake_workers();
        }
        Ok(decided)
    }

    /// Settle or escalate the open requests whose deadline has passed (at most `limit`):
    /// escalation asks more people once and gives them the same time again; otherwise the
    /// request expires and its run goes on to what the step says. Returns how many.
    pub async fn pass_deadlines(&self, limit: i64) -> Result<u64> {
        let now = self.now_ms();
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM requests WHERE status = 'open' AND deadline_at <= $1 \
             ORDER BY deadline_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut handled = 0;
        for id in due {
            let done = self
                .inner
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        let Some((info, spec, path, generation, round)) =
                            lock_open(conn, &id).await?
                        else {
                            return Ok(false);
                        };
                        if info.deadline_at.is_none_or(|d| d > now) {
                            return Ok(false);
                        }
                        let escalate = spec.at_deadline.as_deref() == Some("escalate")
                            && !info.escalated;
                        if escalate {
                            let to = spec.escalate_to.clone().unwrap_or_default();
                            let (members, outsiders) = resolve(conn, &info.run_id, &to).await?;
                            add_people(conn, &id, &members, &outsiders, true).await?;
                            let next = now + spec.escalate_after_ms.unwrap_or(0).max(60_000);
                            sqlx::query(
                                "UPDATE requests SET escalated = 1, deadline_at = $2, notified_at = NULL WHERE id = $1",
                            )
                            .bind(id.clone())
                            .bind(next)
                            .execute(&mut *conn)
                            .await?;
                            audit(conn, now, &Actor::new("flowbot", ""), "request.escalate", &info.run_id,
                                json!({"request": id, "step": spec.step_id, "title": info.title,
                                       "to": members.iter().chain(&outsiders).collect::<Vec<_>>()}))
                            .await?;
                        } else {
                            settle(conn, &info, &spec, &path, generation, round, decision::EXPIRED, None, now)
                                .await?;
                            audit(conn, now, &Actor::new("flowbot", ""), "request.expire", &info.run_id,
                                json!({"request": id, "step": spec.step_id, "title": info.title}))
                            .await?;
                        }
                        Ok(true)
                    })
                })
                .await?;
            if done {
                handled += 1;
            }
        }
        if handled > 0 {
            self.wake_workers();
        }
        Ok(handled)
    }

    /// One request with who is asked and what they decided.
    pub async fn request(&self, id: &str) -> Result<RequestInfo> {
        let mut conn = self.pool().acquire().await?;
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("request {id} not found")))?;
        let (mut info, _) = request_from(&row)?;
        info.people = people_of(&mut conn, id).await?;
        info.decisions = decisions_of(&mut conn, id).await?;
        Ok(info)
    }

    /// The requests of one run, oldest first.
    pub async fn requests_of_run(&self, run_id: &str) -> Result<Vec<RequestInfo>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM requests WHERE run_id = $1 ORDER BY created_at, id")
                .bind(run_id.to_string())
                .fetch_all(self.pool())
                .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.request(&id).await?);
        }
        Ok(out)
    }

    /// A member's requests: open ones they may still answer (`open`), or the ones they
    /// answered (newest first), at most `limit`.
    pub async fn requests_for(
        &self,
        member: &str,
        open: bool,
        limit: i64,
    ) -> Result<Vec<RequestInfo>> {
        let sql = if open {
            "SELECT q.id FROM requests q JOIN request_people p ON p.request_id = q.id \
             WHERE p.member = $1 AND q.status = 'open' AND NOT EXISTS ( \
               SELECT 1 FROM request_decisions d WHERE d.request_id = q.id AND d.decider = $1) \
             ORDER BY q.created_at LIMIT $2"
        } else {
            "SELECT q.id FROM requests q JOIN request_decisions d ON d.request_id = q.id \
             WHERE d.decider = $1 ORDER BY d.at DESC LIMIT $2"
        };
        let ids: Vec<String> = sqlx::query_scalar(sql)
            .bind(member.to_string())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.request(&id).await?);
        }
        Ok(out)
    }

    /// How many open requests wait for a member's answer (the badge).
    pub async fn open_request_count(&self, member: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM requests q JOIN request_people p ON p.request_id = q.id \
             WHERE p.member = $1 AND q.status = 'open' AND NOT EXISTS ( \
               SELECT 1 FROM request_decisions d WHERE d.request_id = q.id AND d.decider = $1)",
        )
        .bind(member.to_string())
        .fetch_one(self.pool())
        .await?)
    }

    /// Whether a member was asked anything in a run (operators see those runs).
    pub async fn asked_in_run(&self, run_id: &str, member: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM requests q JOIN request_people p ON p.request_id = q.id \
             WHERE q.run_id = $1 AND p.member = $2 LIMIT 1",
        )
        .bind(run_id.to_string())
        .bind(member.to_string())
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// A new single-use link for an outsider asked by a request, valid for `ttl_ms`. Only
    /// its SHA-256 is kept; the token is returned once, to be sent.
    pub async fn request_link(&self, request_id: &str, email: &str, ttl_ms: i64) -> Result<String> {
        let token = crate::flows::new_token();
        let (id, email, h) = (request_id.to_string(), email.to_string(), hash(&token));
        let now = self.now_ms();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO request_links (token_hash, request_id, email, expires_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(h)
                    .bind(id)
                    .bind(email)
                    .bind(now + ttl_ms)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(token)
    }

    /// The request an outsider's link opens, if the link is neither used nor expired and
    /// the request is still open.
    pub async fn request_by_link(&self, token: &str) -> Result<LinkedRequest> {
        let row = sqlx::query("SELECT request_id, email, expires_at, used_at FROM request_links WHERE token_hash = $1")
            .bind(hash(token))
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound("this link is not known".into()))?;
        let used: Option<i64> = row.try_get("used_at")?;
        let expires: i64 = row.try_get("expires_at")?;
        if used.is_some() || expires <= self.now_ms() {
            return Err(StoreError::Conflict(
                "this link has expired or has already been used".into(),
            ));
        }
        let id: String = row.try_get("request_id")?;
        let request = self.request(&id).await?;
        // A link decides an open request; once it is settled the link is spent too.
        if request.status != "open" {
            return Err(StoreError::Conflict(
                "this request has been decided or has passed its deadline".into(),
            ));
        }
        Ok(LinkedRequest {
            request,
            email: row.try_get("email")?,
        })
    }

    /// Open requests nobody has been told of yet (or whose escalation is news), claimed
    /// for telling: each is returned to one caller only.
    pub async fn requests_to_notify(&self, limit: i64) -> Result<Vec<RequestInfo>> {
        let now = self.now_ms();
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM requests WHERE status = 'open' AND notified_at IS NULL ORDER BY created_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for id in ids {
            let rid = id.clone();
            let claimed = self
                .inner
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        Ok(sqlx::query(
                            "UPDATE requests SET notified_at = $2 WHERE id = $1 AND notified_at IS NULL",
                        )
                        .bind(rid)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected())
                    })
                })
                .await?;
            if claimed == 1 {
                out.push(self.request(&id).await?);
            }
        }
        Ok(out)
    }

    /// A member's address and language, for telling them of a request.
    pub async fn member_contact(&self, name: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT email, language FROM users WHERE username = $1 AND disabled_at IS NULL",
        )
        .bind(name.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get("email")?, r.try_get("language")?)))
            .transpose()
    }
}

/// Cancel the open requests of runs being canceled, inside the cancel's write.
pub(crate) async fn cancel_requests_of(
    conn: &mut AnyConnection,
    run_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE requests SET status = 'canceled', decided_at = $2 WHERE run_id = $1 AND status = 'open'",
    )
    .bind(run_id.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
