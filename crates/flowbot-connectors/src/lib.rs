//! flowbot's apps: implementations of core's `Connector` trait and the registry of their
//! manifests. A connector talks to exactly one outside service and classifies that
//! service's errors as retryable or fatal; it never touches the store.

pub mod ai;
pub mod builtin;
pub mod code;
pub mod ecforce;
pub mod file_app;
pub mod http;
pub mod messaging;
pub mod salesforce;
pub mod table;
pub mod templates;
pub mod transform;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use file_app::{BrokenApp, FileApp};
use flowbot_core::Apps;

static APPS_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Where this process reads app files from (`--apps-dir`); set once, before the first
/// [`registry`]. Without it, `FLOWBOT_APPS_DIR`; without that, none.
pub fn set_apps_dir(dir: PathBuf) {
    let _ = APPS_DIR.set(dir);
}

/// The apps directory in effect, if any.
pub fn apps_dir() -> Option<PathBuf> {
    APPS_DIR.get().cloned().or_else(|| {
        std::env::var_os("FLOWBOT_APPS_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
    })
}

/// Every app: the built-in ones and those of the apps directory. A broken app file is
/// logged and left out; it never stops flowbot (see [`registry_with`] for the list).
pub fn registry() -> Apps {
    let (apps, broken) = registry_with(apps_dir().as_deref());
    for b in broken {
        tracing::warn!(file = %b.file.display(), problems = %b.report(), "an app file is broken and was not loaded");
    }
    apps
}

/// The built-in apps and the app files of `dir`, with the files that could not be loaded.
pub fn registry_with(dir: Option<&Path>) -> (Apps, Vec<BrokenApp>) {
    let client = http_client();
    let mut apps = builtin_apps(&client);
    let mut broken = Vec::new();
    if let Some(dir) = dir {
        let (loaded, bad) = FileApp::load_dir(dir, &client);
        broken.extend(bad);
        for app in loaded {
            let id = flowbot_core::Connector::manifest(&app).id.clone();
            if apps.get(&id).is_some() {
                broken.push(BrokenApp {
                    file: dir.join(&id),
                    problems: vec![flowbot_core::Diagnostic {
                        line: 1,
                        column: 1,
                        path: "id".into(),
                        message: format!("an app `{id}` exists already: give this one another id"),
                    }],
                });
                continue;
            }
            apps.add(Arc::new(app));
        }
    }
    for b in &broken {
        apps.add_broken(flowbot_core::BrokenFile {
            file: b.file.display().to_string(),
            problems: b.problems.clone(),
        });
    }
    (apps, broken)
}

/// The HTTP client apps share (one connection pool, flowbot's user agent).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("flowbot/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .redirect(same_origin_redirects())
        .build()
        .expect("the HTTP client's configuration is static and valid")
}

fn builtin_apps(client: &reqwest::Client) -> Apps {
    let client = client.clone();
    let mut apps = Apps::new();
    apps.add(Arc::new(salesforce::SalesforceConnector::new(
        client.clone(),
    )));
    apps.add(Arc::new(ecforce::EcforceConnector::new(client.clone())));
    for app in file_app::builtin() {
        apps.add(Arc::new(FileApp::new(app.clone(), client.clone())));
    }
    apps.add(Arc::new(messaging::EmailConnector::new()));
    for app in builtin::trigger_apps() {
        apps.add(Arc::new(app));
    }
    apps.add(Arc::new(table::TableApp::default()));
    apps.add(Arc::new(transform::TransformApp::default()));
    apps.add(Arc::new(code::CodeApp::default()));
    apps.add(Arc::new(ai::AiApp::new(client.clone())));
    apps
}

/// Redirects are followed only where they stay on the origin the request went to: apps
/// sign in with headers of their own (kintone, Shopify, Chatwork…) that reqwest would carry
/// to any host, so a redirect elsewhere is answered as it came (a 3xx the step reports).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(reqwest::Url::origin);
        if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else if first.as_ref() != Some(&attempt.url().origin()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}
