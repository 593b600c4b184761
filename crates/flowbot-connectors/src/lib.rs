//! flowbot's apps: implementations of core's `Connector` trait and the registry of their
//! manifests. A connector talks to exactly one outside service and classifies that
//! service's errors as retryable or fatal; it never touches the store.

pub mod builtin;
pub mod ecforce;
pub mod http;
pub mod messaging;
pub mod salesforce;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use flowbot_core::Apps;

/// Every app this build of flowbot ships.
pub fn registry() -> Apps {
    let client = reqwest::Client::builder()
        .user_agent(concat!("flowbot/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("the HTTP client's configuration is static and valid");
    let mut apps = Apps::new();
    apps.add(Arc::new(http::HttpConnector::new(client.clone())));
    apps.add(Arc::new(salesforce::SalesforceConnector::new(
        client.clone(),
    )));
    apps.add(Arc::new(ecforce::EcforceConnector::new(client.clone())));
    apps.add(Arc::new(messaging::SlackConnector::new(client.clone())));
    apps.add(Arc::new(messaging::ChatworkConnector::new(client)));
    apps.add(Arc::new(messaging::EmailConnector::new()));
    for app in builtin::trigger_apps() {
        apps.add(Arc::new(app));
    }
    apps
}
