//! Tables through the API, against the real server and worker: a table made, rows added
//! and refused by their column's type, a Shift_JIS CSV refused whole with its bad line
//! named and then imported, a table-trigger run per row that writes its result back with
//! a table step, the grid's filtered page, CSV export, and each role's reach.

mod common;

use std::time::Duration;

use flowbot_engine::WorkerConfig;
use flowbot_server::AppConfig;
use flowbot_store::{Role, RunFilter, RunStatus, Store, StoreConfig};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

const FLOW: &str = r#"version: 1
id: on-row
name: 行ごとに処理
trigger:
  app: table
  event: row_created
  options:
    table: 顧客
steps:
  - id: mark
    app: table
    action: update_row
    input:
      table: 顧客
      id: "{{ trigger.row_id }}"
      values:
        status: synced
  - id: synced
    app: table
    action: count_rows
    input:
      table: 顧客
      where: { status: synced }
"#;

struct T {
    url: String,
    store: Store,
    http: reqwest::Client,
    _app: common::TestApp,
    _dir: tempfile::TempDir,
}

impl T {
    async fn token(&self, name: &str, role: Role) -> String {
        common::member_token(&self.store, name, role).await
    }

    fn req(&self, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
    }

    async fn settled(&self, n: usize) -> Vec<flowbot_store::RunInfo> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let runs = self
                .store
                .runs(&RunFilter {
                    limit: 500,
                    ..Default::default()
                })
                .await
                .unwrap();
            let done = runs
                .iter()
                .filter(|r| matches!(r.status, RunStatus::Succeeded | RunStatus::Failed))
                .count();
            if done >= n || std::time::Instant::now() > deadline {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let app = common::spawn_app(
        &store,
        AppConfig {
            admin_password: Some(PASSWORD.into()),
            worker: Some(WorkerConfig {
                idle_poll: Duration::from_millis(50),
                ..WorkerConfig::default()
            }),
            ..AppConfig::default()
        },
    )
    .await;
    T {
        url: app.url.clone(),
        store,
        http: reqwest::Client::new(),
        _app: app,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_table_is_filled_from_a_shift_jis_csv_and_each_row_starts_a_run_that_writes_back() {
    let t = setup().await;
    let editor = t.token("henshu", Role::Editor).await;
    let viewer = t.token("etsuran", Role::Viewer).await;
    use reqwest::Method;
    // A viewer reads but does not make tables.
    let made = t
        .req(&viewer, Method::POST, "/api/v1/tables")
        .json(&json!({ "name": "顧客", "columns": [{ "key": "email", "type": "email" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 403);
    let made = t
        .req(&editor, Method::POST, "/api/v1/tables")
        .json(&json!({
            "name": "顧客",
            "columns": [
                { "key": "email", "label": "メール", "type": "email", "required": true, "unique": true },
                { "key": "name", "label": "氏名", "type": "text" },
                { "key": "points", "label": "ポイント", "type": "number" },
                { "key": "status", "type": "select", "choices": ["new", "synced"] }
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let table: Value = made.json().await.unwrap();
    let id = table["id"].as_str().unwrap().to_string();
    // The flow that starts on it, imported (and checked) through the API, then ON.
    let r = t
        .req(&editor, Method::POST, "/api/v1/flows")
        .header("content-type", "application/yaml")
        .body(FLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = t
        .req(&editor, Method::POST, "/api/v1/flows/on-row/enable")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // A value of the wrong type is refused, naming its column.
    let r = t
        .req(&editor, Method::POST, &format!("/api/v1/tables/{id}/rows"))
        .json(&json!({ "values": { "email": "x@example.jp", "points": "たくさん" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_rows");
    assert_eq!(e["error"]["rows"][0]["column"], "points", "{e}");

    // A Shift_JIS file with a bad third line: nothing is imported, the line is named.
    let csv = "メール,氏名,ポイント\r\nyamada@example.jp,山田 太郎,1200\r\nsato@example,佐藤 花子,300\r\nsuzuki@example.jp,鈴木 一郎,50\r\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(csv);
    let import = |body: Vec<u8>, dry: bool| {
        t.req(
            &editor,
            Method::POST,
            &format!("/api/v1/tables/{id}/import?dry_run={dry}"),
        )
        .header("content-type", "text/csv")
        .body(body)
        .send()
    };
    let preview: Value = import(sjis.to_vec(), true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["encoding"], "shift_jis");
    assert_eq!(preview["mapping"]["氏名"], "name");
    assert_eq!(preview["preview"][0]["points"], 1200);
    assert_eq!(preview["problems"][0]["index"], 3, "{preview}");
    let r = import(sjis.to_vec(), false).await.unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["rows"][0]["index"], 3);
    assert_eq!(e["error"]["rows"][0]["column"], "email");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("line 3"),
        "{e}"
    );
    assert_eq!(t.store.table(&id).await.unwrap().rows, 0, "all or nothing");
    // Fixed, it goes in whole; each row starts a run, and each run marks its row.
    let fixed = csv.replace("sato@example,", "sato@example.jp,");
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&fixed);
    let done: Value = import(sjis.to_vec(), false)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (done["written"].as_u64(), done["runs"].as_u64()),
        (Some(3), Some(3)),
        "{done}"
    );
    let runs = t.settled(3).await;
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:?}"
    );
    let page: Value = t
        .req(
            &viewer,
            Method::GET,
            &format!(
                "/api/v1/tables/{id}/rows?sort=points&order=desc&filter={}",
                urlencode(r#"[{"column":"status","op":"equals","value":"synced"}]"#)
            ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(page["rows"][0]["name"], "山田 太郎");
    assert_eq!(page["rows"][2]["points"], 50);
    // The upsert by the unique column, from the batch API: one update, one add.
    let w: Value = t
        .req(&editor, Method::POST, &format!("/api/v1/tables/{id}/rows/batch"))
        .json(&json!({ "ops": [
            { "op": "upsert", "key": "email", "values": { "email": "suzuki@example.jp", "points": 51 } },
            { "op": "upsert", "key": "email", "values": { "email": "tanaka@example.jp", "name": "田中" } },
        ] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(w["created"], json!([false, true]), "{w}");
    // Export: UTF-8 with a byte-order mark, every row.
    let r = t
        .req(&viewer, Method::GET, &format!("/api/v1/tables/{id}/export"))
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains("鈴木 一郎,51,synced"), "{text}");
    // A value a spreadsheet would run as a formula is exported as text.
    let r = t
        .req(&editor, Method::POST, &format!("/api/v1/tables/{id}/rows"))
        .json(&json!({ "values": { "email": "calc@example.jp", "name": "=HYPERLINK(\"x\")" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let text = t
        .req(&viewer, Method::GET, &format!("/api/v1/tables/{id}/export"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#""'=HYPERLINK(""x"")""#), "{text}");
    // A viewer may not write rows.
    let r = t
        .req(
            &viewer,
            Method::DELETE,
            &format!("/api/v1/tables/{id}/rows/1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // An editor deletes a row: gone from the table, its unique email free again.
    let r = t
        .req(
            &editor,
            Method::DELETE,
            &format!("/api/v1/tables/{id}/rows/4"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = t
        .req(&viewer, Method::GET, &format!("/api/v1/tables/{id}/rows/4"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(t.store.table(&id).await.unwrap().rows, 4);
    let r = t
        .req(&editor, Method::POST, &format!("/api/v1/tables/{id}/rows"))
        .json(&json!({ "values": { "email": "tanaka@example.jp", "name": "田中" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // "Run on selected rows": the flow once more for row 1, ON or not.
    let r: Value = t
        .req(&editor, Method::POST, &format!("/api/v1/tables/{id}/run"))
        .json(&json!({ "flow_id": "on-row", "rows": ["1"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["queued"], 1);
    let runs = t.settled(7).await;
    assert_eq!(
        runs.len(),
        7,
        "6 created (3 imported, 1 upserted, 1 with a formula, 1 added again) and 1 selected"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
