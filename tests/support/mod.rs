//! What the black-box tests share.

use std::process::Command;

/// A fresh database on the PostgreSQL server `TEST_DATABASE_URL` points at; `None` when
/// it is not set (the PostgreSQL variants are then skipped).
pub fn fresh_pg() -> Option<String> {
    let base = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let db = format!("flowbot_t_{}", uuid::Uuid::new_v4().simple());
    let (prefix, _) = base.rsplit_once('/')?;
    let status = Command::new("psql")
        .args([base.as_str(), "-q", "-c", &format!("CREATE DATABASE {db}")])
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql could not create a test database");
    Some(format!("{prefix}/{db}"))
}
