//! The fixed top level stays in place, and the compose file parses.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_top_level_layout_is_complete() {
    for entry in [
        "Cargo.toml",
        "crates",
        "flows",
        "migrations/sqlite",
        "migrations/postgres",
        "web",
        "tests",
        "docker-compose.yml",
        "README.md",
        "ARCHITECTURE.md",
        "docs/flow-format.md",
        ".ci/run",
    ] {
        assert!(root().join(entry).exists(), "{entry} is missing");
    }
}

#[test]
fn the_compose_file_parses_and_declares_services() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    let services = doc["services"].as_mapping().expect("a services mapping");
    assert!(!services.is_empty());
}
