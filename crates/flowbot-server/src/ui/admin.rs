//! The administration pages: the apps (and adding one from an OpenAPI document) and the
//! settings (failure notifications).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::{page, render, texts, LangQuery};
use crate::AppState;

/// The apps, and adding one from an OpenAPI document.
pub(super) async fn apps(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let words = texts(p.lang);
    let mut list: Vec<Value> = s
        .apps
        .manifests()
        .map(|m| {
            let name = if p.lang == "ja" {
                &m.name.ja
            } else {
                &m.name.en
            };
            let source = if s.apps.is_added(&m.id) {
                words["source_added"]
            } else {
                words["source_builtin"]
            };
            json!({
                "icon": s.apps.get(&m.id).is_some_and(|c| c.icon().is_some()),
                "id": m.id,
                "name": name,
                "triggers": m.triggers.len(),
                "actions": m.actions.len(),
                "source": source,
            })
        })
        .collect();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let broken: Vec<Value> = s
        .apps
        .broken()
        .iter()
        .map(|b| {
            let problems: Vec<String> = b
                .problems
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect();
            json!({ "file": b.file, "problems": problems })
        })
        .collect();
    render(
        &p,
        "apps.html",
        words["apps"],
        "apps",
        json!({ "apps": list, "broken": broken }),
    )
}

pub(super) async fn settings(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all = s.store.connections().await.unwrap_or_default();
    let usable: Vec<Value> = all
        .iter()
        .filter(|c| flowbot_engine::notify::CHANNEL_APPS.contains(&c.app.as_str()))
        .map(|c| json!({ "id": c.id, "name": c.name, "app": c.app }))
        .collect();
    let channels: Vec<Value> = s
        .store
        .notifications()
        .await
        .unwrap_or_default()
        .channels
        .iter()
        .map(|ch| {
            let name = all
                .iter()
                .find(|c| c.id == ch.connection_id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let dest = ch.to.clone().or(ch.room_id.clone()).unwrap_or_default();
            json!({ "app": ch.app, "connection": name, "destination": dest })
        })
        .collect();
    let title = texts(p.lang)["settings"];
    render(
        &p,
        "settings.html",
        title,
        "settings",
        json!({ "channels": channels, "connections": usable }),
    )
}
