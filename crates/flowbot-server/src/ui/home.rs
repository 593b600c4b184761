//! The home page: what an operator checks first — today's runs, the failures that need
//! attention (re-run in one click), the flows that are ON, and the connections they lack.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use flowbot_store::{RunFilter, RunStatus};
use serde_json::json;

use super::{page, render, texts, LangQuery};
use crate::AppState;

/// Runs counted for today, at most (the page says "N+" beyond).
const TODAY_CAP: i64 = 1000;
/// Failures listed.
const FAILURES: i64 = 10;

pub async fn home(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.can(crate::routes::Perm::Read) {
        // An operator sees their own work only; no run or flow is theirs to list here.
        let t = texts(p.lang);
        return render(&p, "home.html", t["home"], "home", json!({}));
    }
    // Every project the member reads: the home page is the whole day's picture.
    let readable = p.projects_with(crate::routes::Perm::Read);
    let now = s.store.clock().now();
    // Today as the member's clock says it: midnight in their time zone.
    let tz = p.tz();
    let midnight = now
        .to_zoned(tz)
        .start_of_day()
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(0);
    let today = s
        .store
        .runs(&RunFilter {
            since: Some(midnight),
            limit: TODAY_CAP,
            projects: Some(readable.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let count = |st: RunStatus| today.iter().filter(|r| r.status == st).count();
    let full = today.len() as i64 >= TODAY_CAP;
    let infos: Vec<_> = s
        .store
        .flows()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|f| readable.contains(&f.project_id))
        .collect();
    let names: HashMap<&str, &str> = infos
        .iter()
        .map(|f| (f.id.as_str(), f.name.as_str()))
        .collect();
    let week = now.as_millisecond() - 7 * 24 * 3600 * 1000;
    let failed = s
        .store
        .runs(&RunFilter {
            status: Some(RunStatus::Failed),
            since: Some(week),
            limit: FAILURES,
            projects: Some(readable.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let mut failures = Vec::new();
    for r in &failed {
        let about = match s.store.flow_version(&r.flow_id, r.flow_version).await {
            Ok(v) => flowbot_core::check(&v.yaml, &s.apps)
                .flow
                .and_then(|f| flowbot_core::run_title(&f, &r.trigger)),
            Err(_) => None,
        };
        failures.push(json!({
            "id": r.id, "flow_id": r.flow_id,
            "flow_name": names.get(r.flow_id.as_str()).copied().unwrap_or(&r.flow_id),
            "about": about, "error": r.error, "when": p.time(r.created_at),
        }));
    }
    let mut on = Vec::new();
    let mut missing = Vec::new();
    for f in infos.iter().filter(|f| f.enabled) {
        on.push(json!({ "id": f.id, "name": f.name }));
        let Ok(yaml) = s.store.current_yaml(&f.id).await else {
            continue;
        };
        let Some(flow) = flowbot_core::check(&yaml, &s.apps).flow else {
            continue;
        };
        let bound = s.store.flow_bindings(&f.id).await.unwrap_or_default();
        for slot in flow
            .connections
            .iter()
            .filter(|c| !bound.contains_key(&c.name))
        {
            let app = s
                .apps
                .get(&slot.app)
                .map(|a| a.manifest().name.get(p.lang).to_string())
                .unwrap_or_else(|| slot.app.clone());
            missing.push(
                json!({ "flow_id": f.id, "flow_name": f.name, "slot": slot.name, "app": app }),
            );
        }
    }
    let t = texts(p.lang);
    render(
        &p,
        "home.html",
        t["home"],
        "home",
        json!({
            "today": {
                "succeeded": count(RunStatus::Succeeded),
                "failed": count(RunStatus::Failed),
                "waiting": count(RunStatus::Queued) + count(RunStatus::Running) + count(RunStatus::Waiting),
                "total": today.len(),
                "more": full,
            },
            "failures": failures,
            "on": on,
            "missing": missing,
        }),
    )
}
