//! Tables against real SQLite and (with TEST_DATABASE_URL) real PostgreSQL: typed values,
//! unique columns, all-or-nothing writes, the grid's sorted and filtered pages, and the
//! table trigger's runs written with the change that starts them.

mod common;

use common::*;
use flowbot_core::table::{Column, ColumnType, Schema};
use flowbot_store::{
    FilterOp, RowFilter, RowOp, RowQuery, RowWriter, RunFilter, RunStatus, StoreError,
    DEFAULT_PROJECT,
};
use serde_json::{json, Map, Value};

fn col(key: &str, kind: ColumnType) -> Column {
    Column {
        key: key.into(),
        label: String::new(),
        kind,
        required: false,
        unique: false,
        choices: Vec::new(),
    }
}

fn customers() -> Schema {
    let mut email = col("email", ColumnType::Email);
    email.unique = true;
    email.required = true;
    let mut status = col("status", ColumnType::Select);
    status.choices = vec!["new".into(), "synced".into()];
    Schema {
        columns: vec![
            email,
            col("name", ColumnType::Text),
            col("points", ColumnType::Number),
            status,
        ],
        primary_key: None,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

const WATCHER: &str = r#"
version: 1
id: on-customer
name: On a customer
concurrency_key: "{{ trigger.row.email }}"
trigger:
  app: table
  events: [row_created, row_updated]
  options:
    table: 顧客
    columns: [status]
steps:
  - id: note
    set:
      email: "{{ trigger.row.email }}"
"#;

#[tokio::test]
async fn rows_are_checked_unique_and_written_with_the_runs_they_start() {
    for t in stores().await {
        let s = &t.store;
        let table = s
            .create_table(DEFAULT_PROJECT, "顧客", customers(), "owner")
            .await
            .unwrap();
        s.import_flow("on-customer", "On a customer", WATCHER, "owner")
            .await
            .unwrap();
        s.set_enabled("on-customer", true, "owner").await.unwrap();
        let add = |email: &str, points: Value| RowOp::Add {
            values: obj(
                json!({ "email": email, "name": "山田", "points": points, "status": "new" }),
            ),
        };
        let w = s
            .write_rows(
                &table.id,
                vec![
                    add("a@example.jp", json!("1,200")),
                    add("b@example.jp", json!(5)),
                ],
                RowWriter::Run("r".into()),
            )
            .await
            .unwrap();
        assert_eq!(w.runs, 2, "{}", t.name);
        assert_eq!(w.rows[0]["_id"], "1");
        assert_eq!(w.rows[0]["points"], 1200);
        // A bad row and a duplicate: nothing of the write is kept, each problem named.
        let e = s
            .write_rows(
                &table.id,
                vec![
                    add("c@example.jp", json!(1)),
                    add("a@example.jp", json!(1)),
                    add("d@example.jp", json!("many")),
                ],
                RowWriter::Run("r".into()),
            )
            .await
            .unwrap_err();
        let StoreError::InvalidRows(p) = e else {
            panic!("{e}")
        };
        let named: Vec<(usize, &str)> = p.iter().map(|p| (p.index, p.column.as_str())).collect();
        assert_eq!(named, [(1, "email"), (2, "points")], "{}", t.name);
        assert_eq!(s.table(&table.id).await.unwrap().rows, 2);
        // An update of a column the trigger does not watch starts nothing; of one it does,
        // a run. Writing back what the row holds changes nothing and starts nothing.
        let upd = |values: Value| RowOp::Update {
            id: "1".into(),
            values: obj(values),
        };
        let w = s
            .write_rows(
                &table.id,
                vec![upd(json!({"points": 7}))],
                RowWriter::Run("r".into()),
            )
            .await
            .unwrap();
        assert_eq!(w.runs, 0);
        let w = s
            .write_rows(
                &table.id,
                vec![upd(json!({"status": "synced"}))],
                RowWriter::Run("r".into()),
            )
            .await
            .unwrap();
        assert_eq!(w.runs, 1);
        let w = s
            .write_rows(
                &table.id,
                vec![upd(json!({"status": "synced"}))],
                RowWriter::Run("r".into()),
            )
            .await
            .unwrap();
        assert_eq!(w.runs, 0);
        // An upsert by the unique column updates the row that holds the value.
        let w = s
            .write_rows(
                &table.id,
                vec![RowOp::Upsert {
                    key: "email".into(),
                    values: obj(json!({"email": "b@example.jp", "points": 9})),
                }],
                RowWriter::Run("r".into()),
            )
            .await
            .unwrap();
        assert_eq!(
            (w.rows[0]["_id"].as_str(), w.created[0]),
            (Some("2"), false)
        );
        let runs = s.runs(&RunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), 3, "{}", t.name);
        assert!(runs.iter().all(|r| r.status == RunStatus::Queued));
        // The grid: sorted by a number, filtered, searched, paged with cursors.
        let page = s
            .table_rows(
                &table.id,
                &RowQuery {
                    sort: Some("points".into()),
                    desc: true,
                    limit: 1,
                    ..RowQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.rows[0]["points"], 9);
        assert_eq!(page.total, Some(2));
        let next = s
            .table_rows(
                &table.id,
                &RowQuery {
                    sort: Some("points".into()),
                    desc: true,
                    limit: 1,
                    after: page.next.clone(),
                    ..RowQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(next.rows[0]["points"], 7);
        assert!(next.next.is_none());
        assert_eq!(
            next.total, None,
            "a page after the first keeps the first's count"
        );
        let back = s
            .table_rows(
                &table.id,
                &RowQuery {
                    sort: Some("points".into()),
                    desc: true,
                    limit: 1,
                    before: next.prev.clone(),
                    ..RowQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(back.rows, page.rows);
        let filtered = s
            .table_rows(
                &table.id,
                &RowQuery {
                    filters: vec![RowFilter {
                        column: "points".into(),
                        op: FilterOp::GreaterThan,
                        value: json!(8),
                    }],
                    search: Some("B@EXAMPLE".into()),
                    limit: 10,
                    ..RowQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (filtered.rows.len(), filtered.total),
            (1, Some(1)),
            "{}",
            t.name
        );
        // A column made a number reads the old texts again, or names the rows that cannot.
        let mut schema = customers();
        schema.columns[1].kind = ColumnType::Number;
        let e = s
            .update_table(&table.id, "顧客", schema, "owner")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        // A table a flow starts on is not deleted from under it.
        assert!(matches!(
            s.delete_table(&table.id, "owner").await,
            Err(StoreError::Conflict(_))
        ));
        // Nor is a project that holds a table.
        let sales = s.create_project("営業", "owner").await.unwrap();
        let list = s
            .create_table(&sales.id, "顧客", customers(), "owner")
            .await
            .unwrap();
        assert!(matches!(
            s.delete_project(&sales.id, "owner").await,
            Err(StoreError::Conflict(_))
        ));
        s.delete_table(&list.id, "owner").await.unwrap();
        s.delete_project(&sales.id, "owner").await.unwrap();
    }
}
