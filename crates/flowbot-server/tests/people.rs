//! Approvals and tasks against the real server and worker: a run waits for people without
//! a worker, My Tasks lists what asks each member, a decision resumes the run once (two
//! approvers at once: one settles it), a send-back runs the earlier step again with the
//! comment, a task's answers are checked next to their fields, a deadline takes the else
//! lane, an outsider's link decides once, operators see the runs they were asked in, and
//! every decision is audited.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use flowbot_engine::WorkerConfig;
use flowbot_server::AppConfig;
use flowbot_store::{NewUser, Role, RunStatus, Store, StoreConfig};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

const REFUND: &str = r#"version: 1
id: refund
name: 返金申請
trigger: { app: webhook }
steps:
  - id: draft
    set: { note: "{{ trigger.body.amount }} 円 {{ sent_back.comment }}" }
  - id: boss
    name: 上長承認
    approval:
      to: { members: [alice, bob] }
      message: "{{ draft.note }} の返金を承認してください"
      send_back_to: draft
      then:
        - id: ok
          set: { by: "{{ boss.decided_by }}" }
      else:
        - id: no
          set: { said: "{{ boss.comment }}" }
  - id: after
    set: { done: true }
"#;

const CHECK: &str = r#"version: 1
id: check
name: 確認
trigger: { app: webhook }
steps:
  - id: confirm
    name: 担当者確認
    task:
      to: { roles: [operator] }
      message: "{{ trigger.body.name }} さんの住所を確認"
      fields:
        - { key: zip, label: 郵便番号, required: true, pattern: "^[0-9]{3}-[0-9]{4}$" }
        - { key: ok, label: 確認済み, type: checkbox }
  - id: use
    set: { zip: "{{ confirm.answers.zip }}" }
"#;

const OUTSIDE: &str = r#"version: 1
id: outside
name: 外部承認
trigger: { app: webhook }
steps:
  - id: boss
    approval:
      to: { emails: ["{{ trigger.body.mail }}"] }
      message: "{{ trigger.body.amount }} 円の承認"
"#;

const LATE: &str = r#"version: 1
id: late
name: 期限
trigger: { app: webhook }
steps:
  - id: boss
    approval:
      to: { emails: [boss@example.com] }
      message: please
      deadline: { after: 1s, then: else }
      else:
        - id: no
          set: { said: "{{ boss.decision }}" }
"#;

struct T {
    url: String,
    store: Store,
    http: reqwest::Client,
    tokens: HashMap<&'static str, String>,
    hooks: HashMap<&'static str, String>,
    _app: common::TestApp,
    _dir: tempfile::TempDir,
}

async fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let mut hooks = HashMap::new();
    for (id, yaml) in [
        ("refund", REFUND),
        ("check", CHECK),
        ("late", LATE),
        ("outside", OUTSIDE),
    ] {
        let info = store.import_flow(id, id, yaml, "test").await.unwrap();
        store.set_enabled(id, true, "test").await.unwrap();
        hooks.insert(id, info.webhook_token);
    }
    let app = common::spawn_app(
        &store,
        AppConfig {
            admin_password: Some(PASSWORD.into()),
            worker: Some(WorkerConfig {
                idle_poll: Duration::from_millis(50),
                people_every: Duration::from_millis(100),
                ..WorkerConfig::default()
            }),
            ..AppConfig::default()
        },
    )
    .await;
    let mut tokens = HashMap::new();
    for (name, role) in [
        ("alice", Role::Editor),
        ("bob", Role::Editor),
        ("carol", Role::Operator),
    ] {
        let mut new = NewUser::basic(name, &flowbot_server::auth::hash_password(PASSWORD), role);
        new.email = format!("{name}@example.com");
        let user = store.create_user(new, "test").await.unwrap();
        let token = format!("fbt_{}", flowbot_server::auth::random_token());
        store
            .create_api_token(
                &user,
                "test",
                false,
                &flowbot_server::auth::token_hash(&token),
                "test",
            )
            .await
            .unwrap();
        tokens.insert(name, token);
    }
    T {
        url: app.url.clone(),
        store,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        tokens,
        hooks,
        _app: app,
        _dir: dir,
    }
}

impl T {
    async fn start(&self, flow: &str, body: Value) -> String {
        let r = self
            .http
            .post(format!("{}/hooks/{flow}/{}", self.url, self.hooks[flow]))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        v["run_id"].as_str().unwrap().to_string()
    }

    async fn until(&self, run: &str, status: RunStatus) {
        for _ in 0..200 {
            if self.store.run(run).await.unwrap().status == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "run {run} is {:?}, not {status:?}",
            self.store.run(run).await.unwrap().status
        );
    }

    fn as_(&self, who: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.tokens[who])
    }

    async fn open_tasks(&self, who: &str) -> Vec<Value> {
        let v: Value = self
            .as_(who, reqwest::Method::GET, "/api/v1/tasks")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    }

    async fn decide(&self, who: &str, id: &str, body: Value) -> reqwest::Response {
        self.as_(
            who,
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{id}/decision"),
        )
        .json(&body)
        .send()
        .await
        .unwrap()
    }

    async fn output(&self, run: &str, path: &str) -> Value {
        self.store
            .step_records(run)
            .await
            .unwrap()
            .into_iter()
            .rev()
            .find(|r| r.path == path)
            .and_then(|r| r.output)
            .unwrap_or(Value::Null)
    }
}

#[tokio::test]
async fn two_approvers_at_once_resume_the_run_once() {
    let t = setup().await;
    let run = t.start("refund", json!({"amount": 3000})).await;
    t.until(&run, RunStatus::Waiting).await;
    let open = t.open_tasks("alice").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["message"], "3000 円  の返金を承認してください");
    assert_eq!(t.open_tasks("bob").await.len(), 1);
    assert!(t.open_tasks("carol").await.is_empty(), "carol is not asked");
    let id = open[0]["id"].as_str().unwrap().to_string();

    let (a, b) = tokio::join!(
        t.decide(
            "alice",
            &id,
            json!({"decision": "approve", "comment": "OK"})
        ),
        t.decide("bob", &id, json!({"decision": "approve"})),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 409],
        "one settles it, the other hears it is decided"
    );
    t.until(&run, RunStatus::Succeeded).await;
    let boss = t.output(&run, "boss").await;
    assert_eq!(boss["decision"], "approved");
    assert_eq!(t.output(&run, "after").await, json!({"done": true}));
    let by = t.output(&run, "ok").await["by"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(by == "alice" || by == "bob", "{by}");
    // One execution of the approval, one request, one resumption.
    let records = t.store.step_records(&run).await.unwrap();
    assert_eq!(records.iter().filter(|r| r.path == "ok").count(), 1);
    assert_eq!(t.store.requests_of_run(&run).await.unwrap().len(), 1);
    assert!(t.open_tasks("alice").await.is_empty());

    // The history of what each decided, and the audit log.
    let answered: Value = t
        .as_(&by, reqwest::Method::GET, "/api/v1/tasks?state=answered")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answered[0]["outcome"], "approved");
    let entries = t
        .store
        .audit_entries(&flowbot_store::AuditFilter {
            action: Some("request".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "one decision was taken");
    assert_eq!(entries[0].actor, by);
    assert_eq!(entries[0].target, run);
}

#[tokio::test]
async fn a_send_back_runs_the_step_again_and_asks_again() {
    let t = setup().await;
    let run = t.start("refund", json!({"amount": 500})).await;
    t.until(&run, RunStatus::Waiting).await;
    let id = t.open_tasks("bob").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .decide(
            "bob",
            &id,
            json!({"decision": "send_back", "comment": "金額を確認"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // The draft runs again with the comment, and the approval asks again.
    for _ in 0..100 {
        if t.store.requests_of_run(&run).await.unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.until(&run, RunStatus::Waiting).await;
    assert_eq!(t.output(&run, "draft").await["note"], "500 円 金額を確認");
    let again = t.open_tasks("alice").await;
    assert_eq!(again.len(), 1);
    assert_ne!(again[0]["id"], json!(id));
    assert!(
        again[0]["message"].as_str().unwrap().contains("金額を確認"),
        "{}",
        again[0]["message"]
    );
    // Bob answered the first request: the second asks him again.
    assert_eq!(t.open_tasks("bob").await.len(), 1);
    let r = t
        .decide(
            "alice",
            again[0]["id"].as_str().unwrap(),
            json!({"decision": "reject", "comment": "不可"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    t.until(&run, RunStatus::Succeeded).await;
    assert_eq!(t.output(&run, "no").await, json!({"said": "不可"}));
    assert_eq!(
        t.output(&run, "after").await,
        Value::Null,
        "a rejection ends the run"
    );
    // The run page lists both requests with who decided what.
    let page = t
        .as_(
            "alice",
            reqwest::Method::GET,
            &format!("/api/v1/runs/{run}/requests"),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let outcomes: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["sent_back", "rejected"]);
}

#[tokio::test]
async fn a_task_checks_its_answers_and_operators_see_only_their_runs() {
    let t = setup().await;
    let run = t.start("check", json!({"name": "山田"})).await;
    let other = t.start("refund", json!({"amount": 1})).await;
    t.until(&run, RunStatus::Waiting).await;
    let open = t.open_tasks("carol").await;
    assert_eq!(open.len(), 1, "asked by role");
    let id = open[0]["id"].as_str().unwrap();
    assert_eq!(open[0]["kind"], "task");

    // Wrong answers: each named by its field, nothing recorded.
    let r = t
        .decide(
            "carol",
            id,
            json!({"decision": "complete", "answers": {"zip": "12345"}}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_answers");
    assert_eq!(e["error"]["diagnostics"][0]["path"], "zip");
    assert_eq!(t.open_tasks("carol").await.len(), 1, "still open");
    let r = t.decide("carol", id, json!({"decision": "approve"})).await;
    assert_eq!(r.status(), 409, "a task is completed, not approved");

    // An operator reads the run they were asked in, and no other.
    let page = |run: &str| {
        t.as_(
            "carol",
            reqwest::Method::GET,
            &format!("/api/v1/runs/{run}"),
        )
        .send()
    };
    assert_eq!(page(&run).await.unwrap().status(), 200);
    assert_eq!(page(&other).await.unwrap().status(), 403);

    let r = t
        .decide(
            "carol",
            id,
            json!({"decision": "complete", "answers": {"zip": "100-0001", "ok": true}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    t.until(&run, RunStatus::Succeeded).await;
    assert_eq!(t.output(&run, "use").await, json!({"zip": "100-0001"}));
    assert_eq!(t.output(&run, "confirm").await["answers"]["ok"], true);
    assert_eq!(
        t.decide(
            "carol",
            id,
            json!({"decision": "complete", "answers": {"zip": "100-0001"}})
        )
        .await
        .status(),
        409,
        "decided once"
    );
}

#[tokio::test]
async fn a_deadline_takes_the_else_lane_and_an_outsider_link_decides_once() {
    let t = setup().await;
    // Nobody answers the outsider's request: at its deadline the run takes the else lane.
    let run = t.start("late", json!({})).await;
    t.until(&run, RunStatus::Succeeded).await;
    assert_eq!(t.output(&run, "no").await, json!({"said": "expired"}));
    let reqs = t.store.requests_of_run(&run).await.unwrap();
    assert_eq!(reqs[0].status, "expired");
    assert_eq!(reqs[0].people[0].email.as_deref(), Some("boss@example.com"));

    // A link for a request still open: it shows the request, decides once, then is refused.
    let run = t
        .start("outside", json!({"amount": 7, "mail": "Ext@Example.com"}))
        .await;
    t.until(&run, RunStatus::Waiting).await;
    let req = &t.store.requests_of_run(&run).await.unwrap()[0];
    assert_eq!(req.people[0].email.as_deref(), Some("ext@example.com"));
    let token = t
        .store
        .request_link(&req.id, "ext@example.com", 60_000)
        .await
        .unwrap();
    let expired = t
        .store
        .request_link(&req.id, "ext@example.com", -1)
        .await
        .unwrap();
    let refused = t
        .http
        .post(format!("{}/r/{expired}", t.url))
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 410, "an expired link is refused");
    let r = t
        .http
        .get(format!("{}/r/{token}", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("7 円"), "{html}");
    assert!(
        !html.contains("href=\"/runs/"),
        "an outsider sees no run link"
    );
    let r = t
        .http
        .post(format!("{}/r/{token}", t.url))
        .form(&[("decision", "approve"), ("comment", "外から承認")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    t.until(&run, RunStatus::Succeeded).await;
    let again = t
        .http
        .post(format!("{}/r/{token}", t.url))
        .form(&[("decision", "reject")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410, "a used link is refused");
    assert_eq!(
        t.http
            .get(format!("{}/r/{token}", t.url))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(
        t.http
            .get(format!("{}/r/not-a-token", t.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn a_run_waiting_when_its_flow_is_edited_goes_on_with_the_version_it_started_with() {
    let t = setup().await;
    let run = t.start("refund", json!({"amount": 10})).await;
    t.until(&run, RunStatus::Waiting).await;
    // A new version whose approved lane says something else.
    t.store
        .import_flow(
            "refund",
            "refund",
            &REFUND.replace(
                r#"set: { by: "{{ boss.decided_by }}" }"#,
                r#"set: { by: "v2" }"#,
            ),
            "test",
        )
        .await
        .unwrap();
    let id = t.open_tasks("alice").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t.decide("alice", &id, json!({"decision": "approve"})).await;
    assert_eq!(r.status(), 200);
    t.until(&run, RunStatus::Succeeded).await;
    assert_eq!(
        t.output(&run, "ok").await,
        json!({"by": "alice"}),
        "the pinned version ran"
    );
    // A run started now uses the new version.
    let next = t.start("refund", json!({"amount": 20})).await;
    t.until(&next, RunStatus::Waiting).await;
    let id = t.open_tasks("bob").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.decide("bob", &id, json!({"decision": "approve"})).await;
    t.until(&next, RunStatus::Succeeded).await;
    assert_eq!(t.output(&next, "ok").await, json!({"by": "v2"}));
}

#[tokio::test]
async fn the_member_who_answers_a_members_only_form_is_the_starter_asked() {
    let t = setup().await;
    let info = t
        .store
        .import_flow(
            "own",
            "own",
            "version: 1\nid: own\nname: own\ntrigger:\n  app: form\n  options:\n    members_only: true\n    fields:\n      - { key: what, label: 内容, required: true }\nsteps:\n  - id: confirm\n    approval:\n      to: { starter: true }\n      message: \"{{ trigger.what }} を確認\"\n",
            "test",
        )
        .await
        .unwrap();
    t.store.set_enabled("own", true, "test").await.unwrap();
    let r = t
        .http
        .post(format!("{}/api/v1/login", t.url))
        .json(&json!({"username": "bob", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = common::set_cookie(&r);
    let r = t
        .http
        .post(format!("{}/forms/own/{}", t.url, info.webhook_token))
        .header("cookie", &cookie)
        .form(&[("what", "経費")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let mut asked = Vec::new();
    for _ in 0..100 {
        asked = t.open_tasks("bob").await;
        if !asked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(asked.len(), 1, "bob answered the form, so bob is asked");
    assert_eq!(asked[0]["message"], "経費 を確認");
    assert!(t.open_tasks("alice").await.is_empty());
}
