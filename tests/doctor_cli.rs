//! `flowbot doctor` on a healthy setup and on a broken one: each problem is named with what
//! to do about it, and the exit code says whether there was any.

#[path = "../crates/flowbot/src/setup.rs"]
mod setup;

use std::process::Command;

use axum::routing::get;
use flowbot_sandbox::{ecforce, salesforce};
use flowbot_store::{Store, StoreConfig};
use serde_json::{json, Map, Value};
use setup::{install_template, SyncApps};

fn doctor(dir: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowbot"))
        .args(["doctor", "--data-dir"])
        .arg(dir)
        .env_remove("DATABASE_URL")
        .env_remove("FLOWBOT_SECRET_KEY")
        .env_remove("FLOWBOT_PUBLIC_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Something answering `/healthz` where the public URL points.
async fn front() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/healthz", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_setup_and_names_every_problem_of_a_broken_one() {
    let sf = salesforce::start(Default::default(), 0).await.unwrap();
    let ec = ecforce::start(Default::default(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public = front().await;
    {
        let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
        install_template(
            &store,
            &flowbot_connectors::registry(),
            "ecforce-customer-to-salesforce",
            &SyncApps::sandbox(&ec, &sf),
            "test",
        )
        .await
        .unwrap();
        store
            .set_setting(flowbot_store::notify::PUBLIC_URL, &json!(public), "test")
            .await
            .unwrap();
    }
    let (code, out) = doctor(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("connection “ecforce (sandbox)” (ecforce) answers"),
        "{out}"
    );
    assert!(
        out.contains("connection “Salesforce (sandbox)” (salesforce) answers"),
        "{out}"
    );
    assert!(out.contains("webhook URLs under"), "{out}");
    assert!(
        out.contains("no worker has reported in"),
        "a warning, not a problem: {out}"
    );
    assert!(out.contains("no problems found"), "{out}");

    // Break it: a wrong ecforce token, a public URL nobody answers at, a flow ON without
    // its Salesforce connection.
    {
        let store = Store::open(&StoreConfig::sqlite(dir.path())).await.unwrap();
        let settings: Map<String, Value> =
            json!({"account_name": "sandbox", "base_url": ec.url, "access_token": "wrong"})
                .as_object()
                .cloned()
                .unwrap();
        store
            .save_connection("ecforce (sandbox)", "ecforce", &settings, "test")
            .await
            .unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        store
            .set_setting(
                flowbot_store::notify::PUBLIC_URL,
                &json!(format!("http://{closed}")),
                "test",
            )
            .await
            .unwrap();
        store
            .import_flow(
                "half",
                "half",
                &flowbot_connectors::templates::template("ecforce-customer-to-salesforce-upsert")
                    .unwrap()
                    .yaml
                    .replace("id: ecforce-customer-to-salesforce-upsert", "id: half"),
                "test",
            )
            .await
            .unwrap();
        store.set_enabled("half", true, "test").await.unwrap();
    }
    let (code, out) = doctor(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("PROBLEM  connection “ecforce (sandbox)” (ecforce) fails its test"),
        "{out}"
    );
    assert!(out.contains("correct its settings and press Test"), "{out}");
    assert!(
        out.contains("flow `half` is ON but has no connection for ecforce, salesforce"),
        "{out}"
    );
    assert!(out.contains("/healthz cannot be reached"), "{out}");
    assert!(out.contains("is `flowbot serve` running"), "{out}");
    assert!(out.contains("3 problem(s) found"), "{out}");
}
