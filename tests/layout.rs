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
fn the_compose_file_declares_the_scale_out_topology() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    let services = &doc["services"];
    let cmd = |s: &str| -> Vec<String> {
        services[s]["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{s} has a command"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    // PostgreSQL with a health check the others wait for.
    assert!(services["postgres"]["image"]
        .as_str()
        .unwrap()
        .starts_with("postgres:"));
    assert!(services["postgres"]["healthcheck"]["test"].is_sequence());
    // One server that only serves, on port 8080, with a health check.
    assert_eq!(cmd("server")[..2], ["serve", "--no-worker"]);
    assert_eq!(services["server"]["ports"][0].as_str(), Some("8080:8080"));
    assert!(services["server"]["healthcheck"]["test"].is_sequence());
    assert_eq!(
        services["server"]["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    // Workers: no published port (so `--scale worker=N` works), the same database and key.
    assert_eq!(cmd("worker")[0], "worker");
    assert!(services["worker"]["ports"].is_null());
    for s in ["server", "worker"] {
        let env = &services[s]["environment"];
        let merged = serde_yaml::to_string(env).unwrap();
        assert!(
            merged.contains("DATABASE_URL") || text.contains("DATABASE_URL: postgres://"),
            "{s}"
        );
        assert!(
            text.contains("FLOWBOT_SECRET_KEY"),
            "{s} shares the secret key"
        );
    }
    // The simulators for a demo, only with the demo profile.
    assert_eq!(cmd("demo")[0], "demo");
    assert_eq!(services["demo"]["profiles"][0].as_str(), Some("demo"));
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("AS build") && dockerfile.contains("USER flowbot"),
        "multi-stage, non-root"
    );
}
