//! App files saved from the web UI live in the database; every process loads them at
//! start and picks up new ones while it runs, so that a flow using an imported app runs on
//! whichever worker claims it.

use std::time::Duration;

use flowbot_connectors::file_app::{format, FileApp};
use flowbot_core::{Apps, Diagnostic};
use flowbot_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// How often a process looks for app files saved by another.
const REFRESH: Duration = Duration::from_secs(5);

/// Read an app file and add it to the running apps: its id, or every problem.
pub fn add(apps: &Apps, yaml: &str) -> Result<String, Vec<Diagnostic>> {
    let app = format::parse(yaml)?;
    let id = app.id.clone();
    apps.add_running(std::sync::Arc::new(FileApp::new(
        app,
        flowbot_connectors::http_client(),
    )))
    .map_err(|message| {
        vec![Diagnostic {
            line: 1,
            column: 1,
            path: "id".into(),
            message,
        }]
    })?;
    Ok(id)
}

/// Add the stored app files changed after `since`; the newest change seen.
pub async fn load(
    store: &Store,
    apps: &Apps,
    since: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let mut newest = since;
    for stored in store.app_files(since).await? {
        newest = newest.max(Some(stored.updated_at));
        if let Err(problems) = add(apps, &stored.yaml) {
            // Checked when saved; a newer flowbot may read the format differently.
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            tracing::warn!(app = %stored.id, problems = %problems.join("; "), "a stored app file was not loaded");
        }
    }
    Ok(newest)
}

/// Load the stored app files now, then keep looking for new ones until `stop`.
pub async fn keep_current(
    store: Store,
    apps: Apps,
    stop: CancellationToken,
) -> Result<(), StoreError> {
    let mut seen = load(&store, &apps, None).await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
            match load(&store, &apps, seen).await {
                Ok(newest) => seen = newest,
                Err(e) => tracing::warn!(error = %e, "stored app files could not be read"),
            }
        }
    });
    Ok(())
}
