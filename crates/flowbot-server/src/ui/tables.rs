//! Tables (データベース): the list of a project's tables, and one table's grid — sorted,
//! filtered, searched and paged by the API, edited in place, imported from CSV and run
//! through the flows that start on it. The grid is drawn by `web/static/tables.js`.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{page, render, texts, words, LangQuery, TABLE_TEXT};
use crate::routes::Perm;
use crate::AppState;

pub async fn tables(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let project = p.project.clone().unwrap_or_default();
    let list: Vec<_> = s
        .store
        .tables(Some(std::slice::from_ref(&project)))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            json!({ "id": t.id, "name": t.name, "rows": t.rows, "columns": t.schema.columns.len(),
                    "updated": p.time(t.updated_at) })
        })
        .collect();
    let t = texts(p.lang);
    render(
        &p,
        "tables.html",
        t["tables"],
        "tables",
        json!({ "tables": list, "table_text": words(&TABLE_TEXT, p.lang) }),
    )
}

pub async fn table(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let table = match s.store.table(&id).await {
        Ok(t) => t,
        Err(_) => return Redirect::to("/tables").into_response(),
    };
    let p = p.in_project(&table.project_id);
    let flows: Vec<_> = s
        .store
        .flows_watching(&id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(id, name, on)| json!({ "id": id, "name": name, "on": on }))
        .collect();
    let setup = json!({
        "table": table, "flows": flows,
        "run": p.can(Perm::Run), "build": p.can(Perm::Build),
    });
    render(
        &p,
        "table.html",
        &table.name.clone(),
        "tables",
        json!({ "table": table, "setup": setup, "table_text": words(&TABLE_TEXT, p.lang) }),
    )
}
