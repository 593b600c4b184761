//! A list action of an app file reading every page from a loopback server, by page
//! number, offset, cursor (a token or a URL) and `Link` header, within its page bound.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use flowbot_connectors::file_app::{format, FileApp};
use flowbot_core::{ActionCall, Connection, Connector};
use serde_json::{json, Map, Value};

const TOTAL: u64 = 25;

type Asked = Arc<Mutex<Vec<String>>>;

/// 25 items, served by whichever paging the query asks for.
async fn items(
    State((asked, base)): State<(Asked, String)>,
    Query(q): Query<Map<String, Value>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let _ = headers;
    let n = |k: &str| {
        q.get(k)
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<u64>().ok())
    };
    asked.lock().unwrap().push(
        q.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("&"),
    );
    let size = n("per_page").or(n("limit")).unwrap_or(10);
    let from = if let Some(page) = n("page") {
        (page - 1) * size
    } else if let Some(offset) = n("offset") {
        offset
    } else {
        n("after").unwrap_or(0)
    };
    let to = (from + size).min(TOTAL);
    let list: Vec<Value> = (from..to).map(|i| json!({ "id": i })).collect();
    let next = (to < TOTAL).then(|| to.to_string());
    let mut h = HeaderMap::new();
    if let Some(n) = &next {
        h.insert(
            "link",
            format!("<{base}/items?after={n}&limit={size}>; rel=\"next\", <{base}/items>; rel=\"first\"")
                .parse()
                .unwrap(),
        );
    }
    let next_url = next
        .as_ref()
        .map(|n| format!("{base}/items?after={n}&limit={size}"));
    (
        h,
        Json(json!({ "data": list, "next": next, "next_url": next_url })),
    )
}

async fn server() -> (String, Asked) {
    let asked: Asked = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/items", get(items))
        .with_state((asked.clone(), base.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, asked)
}

fn app(paginate: &str) -> FileApp {
    let source = format!(
        "flowbot_app: 1\nid: lister\nname: {{ en: Lister, ja: 一覧 }}\nconnection:\n  fields:\n    - {{ name: base_url, label: {{ en: URL, ja: URL }}, kind: text }}\n  base_url: \"{{{{ connection.base_url }}}}\"\nactions:\n  - id: list\n    name: {{ en: List, ja: 一覧 }}\n    idempotent: true\n    request: {{ method: GET, path: /items }}\n    paginate: {paginate}\n"
    );
    FileApp::new(
        format::parse(&source).unwrap_or_else(|e| panic!("{e:?}")),
        reqwest::Client::new(),
    )
}

async fn list(app: &FileApp, base: &str) -> Value {
    let conn = Connection {
        name: "l".into(),
        app: "lister".into(),
        settings: json!({ "base_url": base }).as_object().unwrap().clone(),
    };
    app.execute(ActionCall {
        action: "list",
        input: &Map::new(),
        connection: Some(&conn),
    })
    .await
    .unwrap()
}

fn ids(out: &Value) -> Vec<u64> {
    out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn every_kind_of_paging_reads_all_items_once() {
    let all: Vec<u64> = (0..TOTAL).collect();
    for (paginate, expected_requests) in [
        ("{ kind: page, items: \"{{ response.body.data }}\", param: page, size_param: per_page, size: 10 }", vec!["page=1&per_page=10", "page=2&per_page=10", "page=3&per_page=10"]),
        ("{ kind: offset, items: \"{{ response.body.data }}\", param: offset, size_param: limit, size: 10 }", vec!["offset=0&limit=10", "offset=10&limit=10", "offset=20&limit=10"]),
        ("{ kind: cursor, items: \"{{ response.body.data }}\", param: after, next: \"{{ response.body.next }}\" }", vec!["", "after=10", "after=20"]),
        ("{ kind: cursor, items: \"{{ response.body.data }}\", param: after, next: \"{{ response.body.next_url }}\" }", vec!["", "after=10&limit=10", "after=20&limit=10"]),
        ("{ kind: link, items: \"{{ response.body.data }}\" }", vec!["", "after=10&limit=10", "after=20&limit=10"]),
    ] {
        let (base, asked) = server().await;
        let out = list(&app(paginate), &base).await;
        assert_eq!(ids(&out), all, "{paginate}");
        assert_eq!(out["truncated"], false, "{paginate}");
        let asked = asked.lock().unwrap().clone();
        assert_eq!(asked, expected_requests, "{paginate}");
    }
}

#[tokio::test]
async fn the_page_bound_stops_reading_and_says_so() {
    let (base, asked) = server().await;
    let a = app("{ kind: page, items: \"{{ response.body.data }}\", param: page, size_param: per_page, size: 10, max_pages: 2 }");
    let out = list(&a, &base).await;
    assert_eq!(ids(&out).len(), 20);
    assert_eq!(out["truncated"], true);
    assert_eq!(asked.lock().unwrap().len(), 2);
    // A bound the format does not allow is refused where it is written.
    let source = "flowbot_app: 1\nid: x\nname: { en: X, ja: X }\nactions:\n  - id: l\n    name: { en: L, ja: L }\n    request: { method: GET, path: \"https://x.example/items\" }\n    paginate: { kind: offset, items: \"{{ response.body }}\", max_pages: 1000 }\n";
    let problems = format::parse(source).unwrap_err();
    let text: Vec<String> = problems
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect();
    assert!(text.iter().any(|t| t.contains("needs `param`")), "{text:?}");
    assert!(
        text.iter()
            .any(|t| t.starts_with("8:") && t.contains("`max_pages` is from 1 to 100")),
        "{text:?}"
    );
}
