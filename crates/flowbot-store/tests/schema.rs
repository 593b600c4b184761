//! Both backends' migrations build the same schema: the same tables, columns (types
//! compared through a map of equivalent names), nullability, primary keys and indexes.
//! A schema change that touches one folder only fails here.

mod common;

use std::collections::BTreeSet;

use sqlx::{Connection, Row};

/// (table, column, type, not null, part of the primary key)
type Columns = BTreeSet<(String, String, &'static str, bool, bool)>;
/// (table, index, unique, columns)
type Indexes = BTreeSet<(String, String, bool, String)>;

fn sqlite_type(t: &str) -> &'static str {
    match t.to_ascii_uppercase().as_str() {
        "TEXT" => "text",
        "INTEGER" | "BIGINT" => "integer",
        "BLOB" => "bytes",
        "REAL" | "DOUBLE PRECISION" => "float",
        other => panic!("a SQLite column type the map does not know: {other}"),
    }
}

fn postgres_type(t: &str) -> &'static str {
    match t {
        "text" => "text",
        "bigint" | "integer" => "integer",
        "bytea" => "bytes",
        "double precision" | "real" => "float",
        other => panic!("a PostgreSQL column type the map does not know: {other}"),
    }
}

async fn sqlite_schema(path: &std::path::Path) -> (Columns, Indexes) {
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut columns = Columns::new();
    let mut indexes = Indexes::new();
    for t in &tables {
        for r in sqlx::query(&format!("PRAGMA table_info('{t}')"))
            .fetch_all(&mut c)
            .await
            .unwrap()
        {
            let pk: i64 = r.get("pk");
            let notnull: i64 = r.get("notnull");
            columns.insert((
                t.clone(),
                r.get::<String, _>("name"),
                sqlite_type(&r.get::<String, _>("type")),
                notnull != 0 || pk != 0,
                pk != 0,
            ));
        }
        // Indexes made by CREATE INDEX (those behind PRIMARY KEY / UNIQUE have no SQL).
        for r in sqlx::query(&format!("PRAGMA index_list('{t}')"))
            .fetch_all(&mut c)
            .await
            .unwrap()
        {
            let name: String = r.get("name");
            if r.get::<String, _>("origin") != "c" {
                continue;
            }
            let cols: Vec<String> = sqlx::query(&format!("PRAGMA index_info('{name}')"))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect();
            indexes.insert((
                t.clone(),
                name,
                r.get::<i64, _>("unique") != 0,
                cols.join(","),
            ));
        }
    }
    (columns, indexes)
}

async fn postgres_schema(url: &str) -> (Columns, Indexes) {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let mut columns = Columns::new();
    for r in sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS col, c.data_type::text AS ty, \
         c.is_nullable::text AS nullable, \
         EXISTS (SELECT 1 FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage k \
                   ON k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name \
                 WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_name = c.table_name \
                   AND k.column_name = c.column_name) AS pk \
         FROM information_schema.columns c \
         WHERE c.table_schema = 'public' AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    {
        let nullable: String = r.get("nullable");
        columns.insert((
            r.get("t"),
            r.get("col"),
            postgres_type(&r.get::<String, _>("ty")),
            nullable == "NO",
            r.get("pk"),
        ));
    }
    let mut indexes = Indexes::new();
    // Indexes made by CREATE INDEX: not those behind a constraint.
    for r in sqlx::query(
        "SELECT t.relname::text AS t, i.relname::text AS name, x.indisunique AS uniq, \
         (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) \
            FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) \
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS cols \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    {
        indexes.insert((
            r.get("t"),
            r.get("name"),
            r.get("uniq"),
            r.get::<Option<String>, _>("cols").unwrap_or_default(),
        ));
    }
    (columns, indexes)
}

#[tokio::test]
async fn both_backends_migrate_to_the_same_schema() {
    let Some(url) = common::fresh_pg_url().await else {
        eprintln!("TEST_DATABASE_URL is not set: the schemas are not compared");
        return;
    };
    let lite = common::open("sqlite", None).await;
    let pg = common::open("postgres", Some(url.clone())).await;
    let (lite_cols, lite_idx) = sqlite_schema(&lite.dir.path().join("flowbot.db")).await;
    let (pg_cols, pg_idx) = postgres_schema(&url).await;
    assert!(lite_cols.len() > 50, "{} columns read", lite_cols.len());
    let only = |a: &Columns, b: &Columns| a.difference(b).cloned().collect::<Vec<_>>();
    assert!(
        lite_cols == pg_cols,
        "columns only in SQLite: {:#?}\ncolumns only in PostgreSQL: {:#?}",
        only(&lite_cols, &pg_cols),
        only(&pg_cols, &lite_cols)
    );
    assert!(
        lite_idx == pg_idx,
        "indexes only in SQLite: {:#?}\nindexes only in PostgreSQL: {:#?}",
        lite_idx.difference(&pg_idx).collect::<Vec<_>>(),
        pg_idx.difference(&lite_idx).collect::<Vec<_>>()
    );
    drop((lite, pg));
}
