//! `/metrics` after a small customer-sync burst through the simulators: every promised
//! series is there, with its labels, and only for a signed-in caller.

#[path = "../../flowbot/src/setup.rs"]
mod setup;

use std::time::{Duration, Instant};

use flowbot_engine::WorkerConfig;
use flowbot_sandbox::ecforce;
use flowbot_sandbox::faults::{FaultConfig, InjectedError};
use flowbot_sandbox::salesforce;
use flowbot_server::{App, AppConfig};
use flowbot_store::{RunStatus, Store, StoreConfig};
use serde_json::{json, Map, Value};
use setup::{install_template, SyncApps};
use tokio_util::sync::CancellationToken;

const TEMPLATE: &str = "ecforce-customer-to-salesforce-upsert";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test]
async fn metrics_show_webhooks_runs_steps_retries_queue_workers_and_api_usage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
    let apps = flowbot_connectors::registry();
    let sf = salesforce::start(Default::default(), 0).await.unwrap();
    let ec = ecforce::start(Default::default(), 0).await.unwrap();
    let cfg = sf.sim.config();
    let info = install_template(
        &store,
        &apps,
        TEMPLATE,
        &SyncApps::sandbox(&ec, &sf),
        "test",
    )
    .await
    .unwrap();
    // Quick retries, so the injected faults below are retried within the test.
    let yaml = flowbot_connectors::templates::template(TEMPLATE)
        .unwrap()
        .yaml
        .replace(
            "concurrency_key:",
            "retry: { max_attempts: 6, initial_interval: 10ms, jitter: false }\nconcurrency_key:",
        );
    store
        .import_flow(TEMPLATE, "sync", &yaml, "test")
        .await
        .unwrap();
    // Every third upsert answers 503 once.
    sf.sim.faults.set(FaultConfig {
        every: Some(3),
        only: vec!["upsert".into()],
        errors: vec![InjectedError {
            status: 503,
            code: None,
            message: None,
            fields: vec![],
            retry_after: None,
        }],
        ..Default::default()
    });

    flowbot_server::auth::ensure_admin(&store, Some("pw"))
        .await
        .unwrap();
    let (admin, _) = store.user_for_login("admin").await.unwrap().unwrap();
    let token = flowbot_server::auth::random_token();
    store
        .create_api_token(
            &admin,
            "prometheus",
            true,
            &flowbot_server::auth::token_hash(&token),
            "test",
        )
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = App::start(
        store.clone(),
        apps.clone(),
        AppConfig {
            worker: Some(WorkerConfig {
                id: "metrics-worker".into(),
                idle_poll: Duration::from_millis(20),
                ..WorkerConfig::default()
            }),
            ..AppConfig::default()
        },
        listener,
        stop.clone(),
    )
    .await
    .unwrap();
    let url = app.url();
    ec.sim
        .send_customer_events_to(&format!("{url}/hooks/{TEMPLATE}/{}", info.webhook_token));
    for i in 0..6 {
        ec.sim.create_customer(&obj(json!({
            "email": format!("m{i}@example.jp"), "name01": "測定", "name02": format!("{i}"),
        })));
    }
    let http = reqwest::Client::new();
    let bad = http
        .post(format!("{url}/hooks/{TEMPLATE}/wrong-token"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 404);
    let malformed = http
        .post(format!("{url}/hooks/{TEMPLATE}/{}", info.webhook_token))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .count_runs(Some(TEMPLATE), RunStatus::Succeeded)
        .await
        .unwrap()
        < 6
    {
        assert!(Instant::now() < deadline, "the burst did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let refused = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "metrics need a token or a session");
    let r = http
        .get(format!("{url}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no series `{series}` in:\n{text}"))
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value(r#"flowbot_webhooks_total{outcome="accepted",reason="queued"}"#),
        6.0
    );
    assert_eq!(
        value(r#"flowbot_webhooks_total{outcome="rejected",reason="not_found"}"#),
        1.0
    );
    assert_eq!(
        value(r#"flowbot_webhooks_total{outcome="rejected",reason="malformed_body"}"#),
        1.0
    );
    assert_eq!(
        value(&format!(
            r#"flowbot_runs{{flow_id="{TEMPLATE}",status="succeeded"}}"#
        )),
        6.0
    );
    assert_eq!(
        value(&format!(
            r#"flowbot_runs_finished_total{{flow_id="{TEMPLATE}",status="succeeded"}}"#
        )),
        6.0
    );
    let retries = value(&format!(
        r#"flowbot_run_retries_total{{flow_id="{TEMPLATE}"}}"#
    ));
    assert!(retries >= 1.0, "injected 503s are retried: {retries}");
    assert_eq!(
        value(r#"flowbot_step_retries_total{app="salesforce",action="upsert_record"}"#),
        retries
    );
    assert_eq!(
        value(
            r#"flowbot_step_duration_seconds_count{app="salesforce",action="upsert_record",status="succeeded"}"#
        ),
        6.0
    );
    assert_eq!(
        value(
            r#"flowbot_step_duration_seconds_count{app="salesforce",action="upsert_record",status="failed"}"#
        ),
        retries
    );
    assert_eq!(
        value(
            r#"flowbot_step_duration_seconds_count{app="ecforce",action="get_customer",status="succeeded"}"#
        ),
        6.0
    );
    assert_eq!(
        value(
            r#"flowbot_step_duration_seconds_bucket{le="+Inf",app="ecforce",action="get_customer",status="succeeded"}"#
        ),
        6.0
    );
    assert_eq!(value("flowbot_queue_depth"), 0.0);
    assert_eq!(value("flowbot_queue_oldest_due_seconds"), 0.0);
    assert_eq!(value("flowbot_workers"), 1.0);
    let used =
        value(r#"flowbot_app_api_calls_used{app="salesforce",connection="Salesforce (sandbox)"}"#);
    assert!(used >= 6.0, "{used}");
    assert_eq!(
        value(r#"flowbot_app_api_calls_limit{app="salesforce",connection="Salesforce (sandbox)"}"#),
        cfg.api_limit as f64
    );

    stop.cancel();
    app.wait().await.unwrap();
    assert!(
        store
            .live_workers(Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "a worker that stopped cleanly is no longer counted"
    );
}
