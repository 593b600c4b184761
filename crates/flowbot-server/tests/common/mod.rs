//! The server tests' one way to start flowbot: the same `App::start` that `flowbot serve`
//! runs, on port 0 over the store the test prepared.

// Each test binary uses part of this.
#![allow(dead_code)]

pub mod contract;

use flowbot_server::{App, AppConfig};
use flowbot_store::Store;
use tokio_util::sync::CancellationToken;

/// A running flowbot: its base URL, and the token that stops it.
pub struct TestApp {
    pub url: String,
    pub stop: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Start flowbot over `store` with the built-in apps, as `flowbot serve` would.
pub async fn spawn_app(store: &Store, config: AppConfig) -> TestApp {
    spawn_app_with(store, flowbot_connectors::registry(), config).await
}

/// Start flowbot over `store` with these apps (e.g. with app files loaded).
pub async fn spawn_app_with(store: &Store, apps: flowbot_core::Apps, config: AppConfig) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let app = App::start(store.clone(), apps, config, listener, stop.clone())
        .await
        .expect("flowbot starts");
    let url = app.url();
    // The test holds the stop token; the app runs on until it is cancelled.
    tokio::spawn(app.wait());
    TestApp { url, stop }
}

/// Start flowbot with an admin password and no worker.
pub async fn spawn_server(store: &Store, admin_password: &str) -> TestApp {
    spawn_app(
        store,
        AppConfig {
            admin_password: Some(admin_password.into()),
            ..AppConfig::default()
        },
    )
    .await
}

/// The `name=value` of the cookie an answer sets (the session's, after a sign-in).
pub fn set_cookie(r: &reqwest::Response) -> String {
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A new member with `role` and an API token of theirs.
pub async fn member_token(store: &Store, name: &str, role: flowbot_store::Role) -> String {
    let user = store
        .create_user(
            flowbot_store::NewUser::basic(
                name,
                &flowbot_server::auth::hash_password("correct horse battery"),
                role,
            ),
            "t",
        )
        .await
        .unwrap();
    let token = format!("fbt_{}", flowbot_server::auth::random_token());
    store
        .create_api_token(
            &user,
            "t",
            false,
            &flowbot_server::auth::token_hash(&token),
            "t",
        )
        .await
        .unwrap();
    token
}
