//! The runner's guarantees, checked against a scripted app: completed steps are never
//! repeated, failed ones are retried per policy, in-doubt creates make the run start over.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};

use super::*;
use crate::connector::{ActionCall, ActionError, Apps, Connection, Connector};
use crate::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, Text};

/// An outside app whose answers are scripted per action; it logs every call.
struct Scripted {
    manifest: AppManifest,
    answers: Mutex<HashMap<String, VecDeque<Result<Value, ActionError>>>>,
    calls: Mutex<Vec<(String, Value)>>,
    delay: Option<Duration>,
}

fn spec(id: &str, idempotent: bool) -> ActionSpec {
    ActionSpec {
        id: id.into(),
        name: Text::new(id, id),
        description: Text::new("", ""),
        inputs: vec![
            FieldSpec::new("value", FieldKind::Json, Text::new("v", "v")),
            FieldSpec::new("token", FieldKind::Text, Text::new("t", "t")).secret(),
            FieldSpec::new("script", FieldKind::Code, Text::new("s", "s")),
        ],
        outputs: vec![],
        idempotent,
        writes: !idempotent,
        usage: false,
    }
}

impl Scripted {
    fn new() -> Arc<Scripted> {
        Arc::new(Scripted {
            manifest: AppManifest {
                id: "crm".into(),
                name: Text::new("crm", "crm"),
                description: Text::new("", ""),
                connection: vec![FieldSpec::new("url", FieldKind::Text, Text::new("u", "u"))],
                triggers: vec![],
                actions: vec![
                    spec("search", true),
                    spec("create", false),
                    spec("update", true),
                ],
            },
            answers: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            delay: None,
        })
    }

    fn answer(&self, action: &str, r: Result<Value, ActionError>) {
        self.answers
            .lock()
            .unwrap()
            .entry(action.into())
            .or_default()
            .push_back(r);
    }

    fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }
}

#[async_trait]
impl Connector for Scripted {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        self.calls
            .lock()
            .unwrap()
            .push((call.action.to_string(), Value::Object(call.input.clone())));
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let next = self
            .answers
            .lock()
            .unwrap()
            .get_mut(call.action)
            .and_then(VecDeque::pop_front);
        next.unwrap_or_else(|| Ok(json!({ "echo": call.input })))
    }
}

struct TestClock {
    now: Mutex<Timestamp>,
}

impl TestClock {
    fn new() -> TestClock {
        TestClock {
            now: Mutex::new("2026-11-29T00:00:00Z".parse().unwrap()),
        }
    }

    fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap();
        *now = now
            .checked_add(SignedDuration::try_from(d).unwrap())
            .unwrap();
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap()
    }

    fn random_unit(&self) -> f64 {
        1.0
    }
}

/// The customer-sync shape: search, then create or update.
const SYNC: &str = r#"
version: 1
id: sync
name: sync
connections: { crm: { app: crm } }
trigger: { app: crm_trigger }
retry: { max_attempts: 3, initial_interval: 2s, jitter: false }
steps:
  - id: search
    app: crm
    action: search
    connection: crm
    input: { value: "{{ trigger.email }}", token: "s3cret" }
  - id: decide
    branch:
      if: { value: "{{ search.totalSize }}", op: equals, to: 0 }
      then:
        - id: create
          app: crm
          action: create
          connection: crm
          input: { value: "{{ trigger.name }}" }
      else:
        - id: update
          app: crm
          action: update
          connection: crm
          input: { value: "{{ search.records[0].Id }}" }
  - id: done
    set: { result: "{{ decide.lane }}" }
"#;

struct TriggerOnly(AppManifest);

#[async_trait]
impl Connector for TriggerOnly {
    fn manifest(&self) -> &AppManifest {
        &self.0
    }
    async fn execute(&self, _: ActionCall<'_>) -> Result<Value, ActionError> {
        Err(ActionError::fatal("no actions"))
    }
}

fn apps(crm: &Arc<Scripted>) -> Apps {
    let mut apps = Apps::new();
    apps.add(crm.clone());
    apps.add(Arc::new(TriggerOnly(AppManifest {
        id: "crm_trigger".into(),
        name: Text::new("t", "t"),
        description: Text::new("", ""),
        connection: vec![],
        triggers: vec![crate::manifest::TriggerSpec {
            id: "event".into(),
            name: Text::new("e", "e"),
            options: vec![],
            outputs: vec![],
            polling: false,
            setup: None,
        }],
        actions: vec![],
    })));
    apps
}

fn flow(src: &str, apps: &Apps) -> Flow {
    let checked = crate::validate::check(src, apps);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    checked.flow.unwrap()
}

fn connections() -> HashMap<String, Connection> {
    HashMap::from([(
        "crm".to_string(),
        Connection {
            name: "crm".into(),
            app: "crm".into(),
            settings: Map::new(),
        },
    )])
}

struct Harness {
    crm: Arc<Scripted>,
    apps: Apps,
    flow: Flow,
    conns: HashMap<String, Connection>,
    journal: MemoryJournal,
    clock: TestClock,
}

impl Harness {
    fn new(src: &str) -> Harness {
        let crm = Scripted::new();
        let apps = apps(&crm);
        let flow = flow(src, &apps);
        Harness {
            crm,
            apps,
            flow,
            conns: connections(),
            journal: MemoryJournal::default(),
            clock: TestClock::new(),
        }
    }

    async fn run(&self, trigger: Value) -> RunOutcome {
        let prior = self.journal.records();
        self.run_on(&self.journal, trigger, &prior).await.unwrap()
    }

    /// One attempt journaled elsewhere, from records the test has shaped.
    async fn run_on(
        &self,
        journal: &dyn Journal,
        trigger: Value,
        prior: &[StepRecord],
    ) -> Result<RunOutcome, JournalError> {
        let runner = Runner {
            flow: &self.flow,
            apps: &self.apps,
            connections: &self.conns,
            journal,
            clock: &self.clock,
        };
        runner.run(&trigger, prior).await
    }

    fn last(&self, path: &str) -> StepRecord {
        self.journal
            .records()
            .into_iter()
            .rev()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no record for {path}"))
    }
}

fn not_found() -> Result<Value, ActionError> {
    Ok(json!({"totalSize": 0, "records": []}))
}

fn found() -> Result<Value, ActionError> {
    Ok(json!({"totalSize": 1, "records": [{"Id": "001A"}]}))
}

#[tokio::test]
async fn a_new_customer_takes_the_create_lane() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", not_found());
    let out = h.run(json!({"email": "a@b", "name": "A"})).await;
    assert_eq!(out, RunOutcome::Succeeded);
    assert_eq!(h.crm.calls(), ["search", "create"]);
    assert_eq!(h.last("decide").lane.as_deref(), Some("then"));
    assert_eq!(h.last("done").output, Some(json!({"result": "then"})));
    // Each action is journaled started, then finished.
    let statuses: Vec<_> = h
        .journal
        .records()
        .iter()
        .filter(|r| r.path == "create")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [StepStatus::Started, StepStatus::Succeeded]);
    // Secret inputs are redacted in the record, not in the call.
    assert_eq!(h.last("search").input.unwrap()["token"], "[redacted]");
    assert_eq!(h.crm.calls.lock().unwrap()[0].1["token"], "s3cret");
}

#[tokio::test]
async fn program_text_reaches_the_app_unrendered_while_other_inputs_are_rendered() {
    // Code holds `{{` and `{%` as plain text; neither the checker nor the runner reads it.
    let src = r#"
version: 1
id: code
name: code
connections: { crm: { app: crm } }
trigger: { app: crm_trigger }
steps:
  - id: search
    app: crm
    action: search
    connection: crm
    input:
      value: "{{ trigger.email }}"
      script: "return `{{ trigger.email }} {% if x %}` + values.missing;"
"#;
    let h = Harness::new(src);
    assert_eq!(h.run(json!({"email": "a@b"})).await, RunOutcome::Succeeded);
    let input = h.crm.calls.lock().unwrap()[0].1.clone();
    assert_eq!(input["value"], "a@b");
    assert_eq!(
        input["script"],
        "return `{{ trigger.email }} {% if x %}` + values.missing;"
    );
    assert_eq!(
        h.last("search").input.unwrap()["script"],
        input["script"],
        "the record shows the code as written"
    );
}

#[tokio::test]
async fn an_existing_customer_takes_the_update_lane() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", found());
    assert_eq!(
        h.run(json!({"email": "a@b", "name": "A"})).await,
        RunOutcome::Succeeded
    );
    assert_eq!(h.crm.calls(), ["search", "update"]);
    assert_eq!(h.last("update").input.unwrap()["value"], "001A");
}

#[tokio::test]
async fn a_retryable_failure_resumes_at_the_failed_step() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", not_found());
    h.crm.answer(
        "create",
        Err(ActionError::retryable("lock").with_retry_after(Some(Duration::from_secs(1)))),
    );
    let out = h.run(json!({"email": "a@b", "name": "A"})).await;
    let RunOutcome::RetryLater {
        path,
        delay,
        attempt,
        max_attempts,
        ..
    } = out
    else {
        panic!("expected a retry, got {out:?}")
    };
    assert_eq!((path.as_str(), attempt, max_attempts), ("create", 1, 3));
    assert_eq!(
        delay,
        Duration::from_secs(2),
        "policy delay beats a shorter retry-after"
    );

    assert_eq!(
        h.run(json!({"email": "a@b", "name": "A"})).await,
        RunOutcome::Succeeded
    );
    assert_eq!(
        h.crm.calls(),
        ["search", "create", "create"],
        "search is not repeated"
    );
    assert_eq!(h.last("create").attempt, 2);
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", not_found());
    for _ in 0..3 {
        h.crm.answer("create", Err(ActionError::retryable("busy")));
    }
    let trigger = json!({"email": "a@b", "name": "A"});
    let mut delays = Vec::new();
    loop {
        match h.run(trigger.clone()).await {
            RunOutcome::RetryLater { delay, .. } => delays.push(delay.as_secs()),
            RunOutcome::Failed { path, error } => {
                assert_eq!(path, "create");
                assert!(error.retryable);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(delays, [2, 4]);
    assert_eq!(h.crm.calls(), ["search", "create", "create", "create"]);
}

#[tokio::test]
async fn a_fatal_error_fails_at_once() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", not_found());
    h.crm.answer(
        "create",
        Err(ActionError::fatal("Required fields are missing: [Name]")
            .with_code("REQUIRED_FIELD_MISSING")
            .with_fields(vec!["Name".into()])),
    );
    let out = h.run(json!({"email": "a@b", "name": ""})).await;
    let RunOutcome::Failed { path, error } = out else {
        panic!("{out:?}")
    };
    assert_eq!(path, "create");
    assert_eq!(error.code.as_deref(), Some("REQUIRED_FIELD_MISSING"));
    assert_eq!(error.fields, ["Name"]);
    assert!(h.journal.records().iter().all(|r| r.path != "done"));
}

#[tokio::test]
async fn an_in_doubt_create_makes_the_run_start_over_and_update_instead() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", not_found());
    // A worker died mid-call: the create was journaled as started and never finished.
    let out = h.run(json!({"email": "a@b", "name": "A"})).await;
    assert_eq!(out, RunOutcome::Succeeded);
    let mut records = h.journal.records();
    records.retain(|r| !(r.path == "create" && r.status == StepStatus::Succeeded));
    records.retain(|r| r.path != "done");
    let journal = MemoryJournal::default();
    for r in &records {
        journal.record(r).await.unwrap();
    }
    // The lost create did happen: the search now finds the Account.
    h.crm.answer("search", found());
    let out = h
        .run_on(&journal, json!({"email": "a@b", "name": "A"}), &records)
        .await
        .unwrap();
    assert_eq!(out, RunOutcome::Succeeded);
    assert_eq!(h.crm.calls(), ["search", "create", "search", "update"]);
    let new: Vec<StepRecord> = journal.records().into_iter().skip(records.len()).collect();
    assert!(new.iter().all(|r| r.generation == 1), "a new generation");
    assert_eq!(
        new.iter()
            .find(|r| r.path == "decide")
            .unwrap()
            .lane
            .as_deref(),
        Some("else")
    );
}

#[tokio::test]
async fn an_in_doubt_idempotent_step_is_simply_run_again() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", found());
    assert_eq!(h.run(json!({"email": "a@b"})).await, RunOutcome::Succeeded);
    let mut records = h.journal.records();
    records.retain(|r| !(r.path == "update" && r.status == StepStatus::Succeeded));
    records.retain(|r| r.path != "done");
    let journal = MemoryJournal::default();
    let out = h
        .run_on(&journal, json!({"email": "a@b"}), &records)
        .await
        .unwrap();
    assert_eq!(out, RunOutcome::Succeeded);
    assert_eq!(h.crm.calls(), ["search", "update", "update"]);
    let again = journal.records();
    assert!(again.iter().all(|r| r.generation == 0));
    assert_eq!(again[0].path, "update");
    assert_eq!(again[0].attempt, 2);
}

#[tokio::test]
async fn a_resumed_branch_keeps_the_lane_it_recorded() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", not_found());
    h.crm.answer("create", Err(ActionError::retryable("busy")));
    assert!(matches!(
        h.run(json!({"email": "a@b", "name": "A"})).await,
        RunOutcome::RetryLater { .. }
    ));
    // Even if the search would now find something, the decision already taken stands.
    h.crm.answer("search", found());
    assert_eq!(
        h.run(json!({"email": "a@b", "name": "A"})).await,
        RunOutcome::Succeeded
    );
    assert_eq!(h.crm.calls(), ["search", "create", "create"]);
}

#[tokio::test]
async fn a_missing_value_fails_the_step_naming_the_field_and_value() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", not_found());
    let out = h.run(json!({"email": "a@b"})).await;
    let RunOutcome::Failed { path, error } = out else {
        panic!("{out:?}")
    };
    assert_eq!(path, "create");
    assert_eq!(
        error.message,
        "input `value`: `trigger.name` is not defined: `trigger` has no `name` (it has: email)"
    );
    assert_eq!(h.crm.calls(), ["search"], "nothing half-written");
}

#[tokio::test]
async fn a_missing_connection_fails_before_any_call() {
    let mut h = Harness::new(SYNC);
    h.conns.clear();
    let out = h.run(json!({"email": "a@b"})).await;
    let RunOutcome::Failed { path, error } = out else {
        panic!("{out:?}")
    };
    assert_eq!(path, "search");
    assert!(error.message.contains("connection `crm` is not set up"));
    assert!(h.crm.calls().is_empty());
}

#[tokio::test]
async fn a_slow_call_times_out_as_retryable() {
    let src = SYNC.replace("retry: {", "timeout: 50ms\nretry: {");
    let crm = Arc::new(Scripted {
        delay: Some(Duration::from_secs(5)),
        ..Arc::into_inner(Scripted::new()).unwrap()
    });
    let apps = apps(&crm);
    let flow = flow(&src, &apps);
    let journal = MemoryJournal::default();
    let clock = TestClock::new();
    let conns = connections();
    let runner = Runner {
        flow: &flow,
        apps: &apps,
        connections: &conns,
        journal: &journal,
        clock: &clock,
    };
    let out = runner.run(&json!({"email": "a@b"}), &[]).await.unwrap();
    let RunOutcome::RetryLater { error, .. } = out else {
        panic!("{out:?}")
    };
    assert!(error.retryable);
    assert_eq!(error.message, "no answer within 50ms");
}

const LOOP: &str = r#"
version: 1
id: loop
name: loop
connections: { crm: { app: crm } }
trigger: { app: crm_trigger }
retry: { max_attempts: 3, jitter: false }
steps:
  - id: each
    for_each:
      items: "{{ trigger.items }}"
      max_iterations: 3
      steps:
        - id: big
          branch:
            if: { value: "{{ each.item }}", op: greater_than, to: "10" }
            then:
              - id: save
                app: crm
                action: update
                connection: crm
                input: { value: "{{ each.item }}" }
  - id: after
    set:
      count: "{{ each.count }}"
      saved: "{{ each.results | selectattr('save') | map(attribute='index') | list }}"
"#;

#[tokio::test]
async fn loops_address_each_iteration_and_collect_results() {
    let h = Harness::new(LOOP);
    h.crm.answer("update", Ok(json!({"ok": 1})));
    h.crm.answer("update", Err(ActionError::retryable("lock")));
    let trigger = json!({"items": [50, "5", "20"]});
    assert!(
        matches!(h.run(trigger.clone()).await, RunOutcome::RetryLater { ref path, .. } if path == "each[2].save")
    );
    assert_eq!(h.run(trigger).await, RunOutcome::Succeeded);
    // Iteration 0's save is not repeated; iteration 2's is.
    assert_eq!(h.crm.calls(), ["update", "update", "update"]);
    assert_eq!(h.last("each[1].big").lane.as_deref(), Some("else"));
    assert_eq!(
        h.last("after").output,
        Some(json!({"count": 3, "saved": [0, 2]}))
    );
}

#[tokio::test]
async fn loops_refuse_too_many_items_and_non_lists() {
    let h = Harness::new(LOOP);
    let out = h.run(json!({"items": [1, 2, 3, 4]})).await;
    let RunOutcome::Failed { error, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        error.message,
        "the loop has 4 items, more than its max_iterations of 3"
    );

    let h = Harness::new(LOOP);
    let out = h.run(json!({"items": "nope"})).await;
    let RunOutcome::Failed { error, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(error.message, "`items` must give a list, but gave text");
    assert!(h.crm.calls().is_empty());
}

#[tokio::test]
async fn a_wait_step_suspends_until_its_time() {
    let src = r#"
version: 1
id: waits
name: waits
trigger: { app: crm_trigger }
steps:
  - id: first
    set: { a: 1 }
  - id: pause
    wait: 5m
  - id: second
    set: { b: "{{ first.a }}" }
"#;
    let h = Harness::new(src);
    let out = h.run(json!({})).await;
    let RunOutcome::WaitUntil { path, until } = out else {
        panic!("{out:?}")
    };
    assert_eq!(path, "pause");
    assert_eq!(until.to_string(), "2026-11-29T00:05:00Z");
    h.clock.advance(Duration::from_secs(60));
    assert!(
        matches!(h.run(json!({})).await, RunOutcome::WaitUntil { .. }),
        "too early"
    );
    h.clock.advance(Duration::from_secs(240));
    assert_eq!(h.run(json!({})).await, RunOutcome::Succeeded);
    assert_eq!(h.last("second").output, Some(json!({"b": 1})));
    assert_eq!(h.last("pause").status, StepStatus::Succeeded);
}

#[tokio::test]
async fn switch_takes_the_first_matching_case_or_default() {
    let src = r#"
version: 1
id: sw
name: sw
trigger: { app: crm_trigger }
steps:
  - id: tier
    switch:
      cases:
        - { name: gold, if: { value: "{{ trigger.total }}", op: greater_or_equal, to: 10000 }, steps: [ { id: g, set: { t: gold } } ] }
        - { name: silver, if: { value: "{{ trigger.total }}", op: greater_or_equal, to: 1000 }, steps: [ { id: s, set: { t: silver } } ] }
      default: [ { id: d, set: { t: none } } ]
"#;
    for (total, lane) in [
        (json!("20000"), "gold"),
        (json!(5000), "silver"),
        (json!(1), "default"),
    ] {
        let h = Harness::new(src);
        assert_eq!(
            h.run(json!({ "total": total })).await,
            RunOutcome::Succeeded
        );
        assert_eq!(h.last("tier").lane.as_deref(), Some(lane));
        assert_eq!(
            h.journal.records().len(),
            2,
            "the decision and one lane step"
        );
    }
}

struct BrokenJournal;

#[async_trait]
impl Journal for BrokenJournal {
    async fn record(&self, _: &StepRecord) -> Result<(), JournalError> {
        Err(JournalError("disk full".into()))
    }
}

#[tokio::test]
async fn a_journal_failure_stops_before_the_call() {
    let h = Harness::new(SYNC);
    assert!(h
        .run_on(&BrokenJournal, json!({"email": "a@b"}), &[])
        .await
        .is_err());
    assert!(
        h.crm.calls().is_empty(),
        "no call without a durable started record"
    );
}

/// Logs each record, and which calls were announced (with whether they write).
#[derive(Default)]
struct SortingJournal {
    log: Mutex<Vec<(Option<bool>, String, StepStatus)>>,
}

#[async_trait]
impl Journal for SortingJournal {
    async fn record(&self, rec: &StepRecord) -> Result<(), JournalError> {
        let entry = (None, rec.path.clone(), rec.status);
        self.log.lock().unwrap().push(entry);
        Ok(())
    }

    async fn before_call(&self, rec: &StepRecord, writes: bool) -> Result<(), JournalError> {
        let entry = (Some(writes), rec.path.clone(), rec.status);
        self.log.lock().unwrap().push(entry);
        Ok(())
    }
}

#[tokio::test]
async fn every_call_is_announced_and_only_a_change_must_have_its_start_durable() {
    let h = Harness::new(SYNC);
    h.crm.answer("search", Ok(json!({"totalSize": 0})));
    h.crm.answer("create", Ok(json!({"id": "001"})));
    let journal = SortingJournal::default();
    let outcome = h
        .run_on(&journal, json!({"email": "a@b", "name": "A"}), &[])
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::Succeeded);
    let calls: Vec<_> = journal
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(writes, path, status)| Some((path.clone(), *status, (*writes)?)))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("search".to_string(), StepStatus::Started, false),
            ("create".to_string(), StepStatus::Started, true),
        ],
        "each call announced; only the create must be durable before it goes out"
    );
    assert_eq!(journal.log.lock().unwrap().len(), 6);
}

const APPROVAL: &str = r#"
version: 1
id: refund
name: refund
connections: { crm: { app: crm } }
trigger: { app: crm_trigger }
steps:
  - id: draft
    connection: crm
    app: crm
    action: create
    input: { value: "draft {{ sent_back.comment }}" }
  - id: boss
    name: 上長承認
    approval:
      to: { members: ["{{ trigger.boss }}"], roles: [admin], emails: ["{{ trigger.mail }}"] }
      message: "{{ trigger.amount }} 円の返金"
      rule: all
      send_back_to: draft
      deadline: { after: 2d, then: else }
      then:
        - id: refund
          connection: crm
          app: crm
          action: update
          input: { value: "{{ boss.comment }}" }
      else:
        - id: sorry
          set: { said: "{{ boss.decision }}" }
  - id: done
    set: { ok: true }
"#;

/// What the store writes when people decide: the step's started record, finished with
/// the decision as its output.
fn decided(h: &Harness, path: &str, output: Value) {
    let mut rec = h.last(path);
    rec.status = StepStatus::Succeeded;
    rec.output = Some(output);
    rec.finished_at = Some(h.clock.now());
    h.journal.records.lock().unwrap().push(rec);
}

#[tokio::test]
async fn an_approval_asks_once_and_waits_for_its_decision() {
    let h = Harness::new(APPROVAL);
    let trigger = json!({"boss": "tanaka", "mail": ["a@example.com", ""], "amount": 500});
    let RunOutcome::WaitForPeople { path, request } = h.run(trigger.clone()).await else {
        panic!("the approval must wait")
    };
    assert_eq!(path, "boss");
    assert_eq!(request.kind, "approval");
    assert_eq!(request.title, "上長承認");
    assert_eq!(request.message, "500 円の返金");
    assert_eq!(request.to.members, ["tanaka"]);
    assert_eq!(request.to.roles, ["admin"]);
    assert_eq!(
        request.to.emails,
        ["a@example.com"],
        "empty addresses are dropped"
    );
    assert_eq!(request.needed, 0, "rule all");
    assert_eq!(request.send_back_path.as_deref(), Some("draft"));
    assert_eq!(
        request.deadline_at.unwrap().to_string(),
        "2026-12-01T00:00:00Z"
    );
    // Taken up again before anyone answered: the same request, nothing called again.
    let again = h.run(trigger.clone()).await;
    assert!(
        matches!(&again, RunOutcome::WaitForPeople { request: r, .. } if r.round == request.round),
        "{again:?}"
    );
    assert_eq!(h.crm.calls(), ["create"]);

    decided(
        &h,
        "boss",
        json!({"decision": "approved", "comment": "OK", "decided_by": "tanaka"}),
    );
    assert_eq!(h.run(trigger).await, RunOutcome::Succeeded);
    assert_eq!(h.crm.calls(), ["create", "update"]);
    assert_eq!(h.last("refund").input.unwrap()["value"], json!("OK"));
    assert_eq!(h.last("done").output, Some(json!({"ok": true})));
}

#[tokio::test]
async fn a_rejection_takes_the_else_lane_and_ends_the_run() {
    let h = Harness::new(APPROVAL);
    let trigger = json!({"boss": "tanaka", "mail": "", "amount": 1});
    h.run(trigger.clone()).await;
    decided(
        &h,
        "boss",
        json!({"decision": "rejected", "decided_by": "tanaka"}),
    );
    assert_eq!(h.run(trigger).await, RunOutcome::Succeeded);
    assert_eq!(h.last("sorry").output, Some(json!({"said": "rejected"})));
    assert!(
        h.journal.records().iter().all(|r| r.path != "done"),
        "the run ended"
    );
    assert_eq!(h.crm.calls(), ["create"]);
}

#[tokio::test]
async fn a_send_back_runs_the_earlier_step_again_with_the_comment() {
    let h = Harness::new(APPROVAL);
    let trigger = json!({"boss": "tanaka", "mail": "", "amount": 1});
    h.run(trigger.clone()).await;
    decided(
        &h,
        "boss",
        json!({"decision": "sent_back", "comment": "金額を確認", "decided_by": "sato",
               "send_back_path": "draft", "step": "boss"}),
    );
    let RunOutcome::WaitForPeople { request, .. } = h.run(trigger.clone()).await else {
        panic!("asked again")
    };
    assert_eq!(
        request.round, 2,
        "a second request for the second execution"
    );
    assert_eq!(h.crm.calls(), ["create", "create"]);
    assert_eq!(h.last("draft").attempt, 2);
    assert_eq!(
        h.last("draft").input.unwrap()["value"],
        json!("draft 金額を確認")
    );
    decided(
        &h,
        "boss",
        json!({"decision": "approved", "comment": "", "decided_by": "tanaka"}),
    );
    assert_eq!(h.run(trigger).await, RunOutcome::Succeeded);
    assert_eq!(h.crm.calls(), ["create", "create", "update"]);
}

#[tokio::test]
async fn an_expired_request_follows_the_deadline_rule() {
    let h = Harness::new(&APPROVAL.replace("then: else }", "then: fail }"));
    let trigger = json!({"boss": "tanaka", "mail": "", "amount": 1});
    h.run(trigger.clone()).await;
    decided(&h, "boss", json!({"decision": "expired"}));
    let RunOutcome::Failed { path, error } = h.run(trigger).await else {
        panic!("the run fails at its deadline")
    };
    assert_eq!(path, "boss");
    assert!(error.message.contains("deadline"), "{}", error.message);
}

#[test]
fn people_steps_are_checked_where_they_are_written() {
    let crm = Scripted::new();
    let apps = apps(&crm);
    let bad = APPROVAL
        .replace("roles: [admin]", "roles: [admn]")
        .replace("send_back_to: draft", "send_back_to: done");
    let messages: Vec<String> = crate::validate::check(&bad, &apps)
        .diagnostics
        .into_iter()
        .map(|d| format!("{} {}", d.path, d.message))
        .collect();
    let all = messages.join("\n");
    assert!(
        all.contains("steps[1].approval.to.roles[0] unknown role `admn`"),
        "{all}"
    );
    assert!(all.contains("steps[1].approval.send_back_to"), "{all}");
    let bad = APPROVAL.replace("then: else }", "then: later }");
    let all: Vec<String> = crate::validate::check(&bad, &apps)
        .diagnostics
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert_eq!(all, ["steps[1].approval.deadline.then"]);
    let task = r#"
version: 1
id: t
name: t
trigger: { app: crm_trigger }
steps:
  - id: fill
    task:
      to: { starter: true }
      message: hi
      fields:
        - { key: note, type: colour }
"#;
    let all: Vec<String> = crate::validate::check(task, &apps)
        .diagnostics
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert!(
        all.iter().any(|p| p == "steps[0].task.fields[0].type"),
        "{all:?}"
    );
}
