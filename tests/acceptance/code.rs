//! Scenario 15: code that never ends. Runs whose code step loops forever or allocates
//! without end are stopped by their time and memory limits with a clear error, while runs
//! of other flows, started among them on the same worker, keep succeeding (those without
//! code are not held up at all); the server's memory stays bounded by the limits.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{databases, record, Flowbot, Tally};

const RUNAWAY: &str = r#"version: 1
id: runaway
name: 止まらないコード
trigger: { app: webhook }
steps:
  - id: spin
    app: code
    action: javascript
    input:
      code: |
        if (values.kind === 'loop') { for (;;) {} }
        const hoard = [];
        for (;;) { hoard.push(new Array(100000).fill(values.kind)); }
      values: { kind: "{{ trigger.body.kind }}" }
      time_limit_ms: 1000
      memory_limit_mb: 64
"#;

const STEADY: &str = r#"version: 1
id: steady
name: ふつうのコード
trigger: { app: webhook }
steps:
  - id: double
    app: code
    action: javascript
    input:
      code: "return { n: values.n * 2 };"
      values: { n: "{{ trigger.body.n }}" }
"#;

const PLAIN: &str = r#"version: 1
id: plain
name: コードのないフロー
trigger: { app: webhook }
steps:
  - id: tidy
    app: transform
    action: normalize
    input: { text: "ＮＯ．{{ trigger.body.n }}", mode: zenkaku_to_hankaku }
"#;

/// The peak resident memory of a process, in MiB (VmHWM).
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_runaway_code_is_stopped_by_its_limits_while_other_runs_go_on() {
    const RUNAWAYS: usize = 6;
    const STEADY_RUNS: usize = 60;
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let mut fb = Flowbot::start(db.clone(), dir.path()).await;
        fb.import_enabled(RUNAWAY, "runaway").await;
        fb.import_enabled(STEADY, "steady").await;
        fb.import_enabled(PLAIN, "plain").await;
        let (runaway_hook, steady_hook, plain_hook) = (
            fb.webhook_url("runaway").await,
            fb.webhook_url("steady").await,
            fb.webhook_url("plain").await,
        );
        let http = reqwest::Client::new();
        for i in 0..RUNAWAYS {
            let kind = if i % 2 == 0 { "loop" } else { "allocate" };
            let r = http
                .post(&runaway_hook)
                .json(&json!({ "kind": kind }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
        // The ordinary runs arrive while the runaway ones hold the code slots.
        for n in 0..STEADY_RUNS {
            for hook in [&steady_hook, &plain_hook] {
                let r = http
                    .post(hook)
                    .json(&json!({ "n": n }))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        }
        let steady = fb
            .settle("steady", STEADY_RUNS, Duration::from_secs(120))
            .await;
        let plain = fb
            .settle("plain", STEADY_RUNS, Duration::from_secs(120))
            .await;
        let runaway = fb
            .settle("runaway", RUNAWAYS, Duration::from_secs(120))
            .await;
        // Runs without code were not held up by the scripts: they were all done before
        // the last runaway script was stopped.
        let last = |runs: &[Value]| runs.iter().filter_map(|r| r["finished_at"].as_i64()).max();
        assert!(
            plain.iter().all(|r| r["status"] == "succeeded"),
            "every run without code succeeded"
        );
        assert!(
            last(&plain) < last(&runaway),
            "runs without code finished while scripts ran: {:?} < {:?}",
            last(&plain),
            last(&runaway)
        );

        let ok = steady.iter().filter(|r| r["status"] == "succeeded").count();
        assert_eq!(ok, STEADY_RUNS, "every ordinary run succeeded");
        let mut doubled = Vec::new();
        for r in &steady {
            let detail = fb.run(r["id"].as_str().unwrap()).await;
            let step = step(&detail, "double");
            doubled.push(step["output"]["n"].as_i64().unwrap());
        }
        doubled.sort();
        assert_eq!(
            doubled,
            (0..STEADY_RUNS as i64).map(|n| n * 2).collect::<Vec<_>>()
        );

        let (mut timed_out, mut out_of_memory) = (0, 0);
        for r in &runaway {
            assert_eq!(r["status"], "failed", "{r}");
            let detail = fb.run(r["id"].as_str().unwrap()).await;
            let text = step(&detail, "spin").to_string();
            if text.contains("ran longer than its 1 s limit") {
                timed_out += 1;
            } else if text.contains("used more than its 64 MiB memory limit") {
                out_of_memory += 1;
            } else {
                panic!("a runaway step ended another way: {text}");
            }
            // Not retried: the same code over the same values fails the same way.
            let tries = detail["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["step_id"] == "spin")
                .count();
            assert_eq!(tries, 1, "{detail}");
        }
        assert_eq!(
            (timed_out, out_of_memory),
            (RUNAWAYS / 2, RUNAWAYS / 2),
            "each runaway stopped by the limit it ran into"
        );
        // Two scripts at a time at most, each under 64 MiB: the server stays far below what
        // six unbounded allocations would take.
        assert!(fb.server_alive(), "the server kept running");
        let peak = peak_mib(fb.server_pid());
        assert!(peak < 512, "peak memory {peak} MiB");
        let (status, _) = fb.api(Method::GET, "/readyz", None).await;
        assert_eq!(status, 200);
        record(&Tally {
            scenario: "15. runaway code stopped by its limits",
            db: db.name(),
            events: RUNAWAYS + 2 * STEADY_RUNS,
            succeeded: ok + plain.len(),
            failed: RUNAWAYS,
            duplicates: 0,
            lost: 0,
        });
    }
}

/// The last record of a step in a run's detail.
fn step<'a>(detail: &'a Value, id: &str) -> &'a Value {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|s| s["step_id"] == id)
        .unwrap_or_else(|| panic!("no step {id}: {detail}"))
}
