//! `flowbot validate` and `flowbot apps validate` as a user runs them: every example passes,
//! every broken fixture fails with exactly the diagnostics recorded beside it; an apps
//! directory adds its apps, and a broken app file there is reported without stopping
//! anything.

use std::path::{Path, PathBuf};
use std::process::Command;

fn flowbot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowbot"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_flow_is_valid() {
    let examples = yaml_files(&root().join("flows/examples"));
    assert!(examples.len() >= 2, "examples are missing");
    for file in examples {
        let out = flowbot()
            .arg("validate")
            .arg(&file)
            .output()
            .expect("run flowbot");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {stdout}", file.display());
        assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
        assert!(stdout.contains(": ok: flow `"), "{stdout}");
    }
}

/// Each broken file of `dir`, given to `flowbot <command…> FILE`, exits 2 and prints exactly
/// the `.expected` file beside it.
fn assert_corpus(dir: &Path, command: &[&str], at_least: usize) {
    let fixtures = yaml_files(dir);
    assert!(fixtures.len() >= at_least, "fixtures are missing");
    let mut mismatches = Vec::new();
    for file in fixtures {
        let name = file.file_name().expect("file name").to_owned();
        let expected_path = file.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let out = flowbot()
            .current_dir(dir)
            .args(command)
            .arg(&name)
            .output()
            .expect("run flowbot");
        assert_eq!(out.status.code(), Some(2), "{name:?} must exit 2");
        let got = String::from_utf8_lossy(&out.stdout);
        if got != expected {
            mismatches.push(format!("--- {name:?}\nexpected:\n{expected}got:\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_invalid_fixture_gives_exactly_its_expected_diagnostics() {
    assert_corpus(&root().join("tests/fixtures/invalid"), &["validate"], 10);
}

#[test]
fn several_files_are_checked_in_one_call() {
    let out = flowbot()
        .arg("validate")
        .arg(root().join("flows/examples/webhook-relay.yaml"))
        .arg(root().join("tests/fixtures/invalid/duplicate-ids.yaml"))
        .output()
        .expect("run flowbot");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn a_missing_file_is_named() {
    let out = flowbot()
        .args(["validate", "no-such-flow.yaml"])
        .output()
        .expect("run flowbot");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("no-such-flow.yaml: cannot read"),
        "{stdout}"
    );
}

#[test]
fn version_and_help_work() {
    let out = flowbot().arg("--version").output().expect("run flowbot");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("flowbot "));
    for cmd in ["validate", "run", "apps"] {
        let out = flowbot()
            .args([cmd, "--help"])
            .output()
            .expect("run flowbot");
        assert!(out.status.success(), "{cmd} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: flowbot"));
    }
}

// ---- app files ----

#[test]
fn the_example_app_file_is_valid() {
    let out = flowbot()
        .args(["apps", "validate"])
        .arg(root().join("flows/apps/acme.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok — app `acme` with 2 actions"),
        "{stdout}"
    );
}

#[test]
fn every_broken_app_file_gives_exactly_its_expected_diagnostics() {
    assert_corpus(
        &root().join("tests/fixtures/apps/invalid"),
        &["apps", "validate"],
        5,
    );
}

#[test]
fn an_apps_directory_adds_its_apps_and_reports_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("flows/apps/acme.yaml"),
        dir.path().join("acme.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "flowbot_app: 1\nid: broken\n",
    )
    .unwrap();
    let out = flowbot()
        .args(["apps", "--json"])
        .env("FLOWBOT_APPS_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let apps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"acme") && ids.contains(&"salesforce"),
        "{ids:?}"
    );
    assert!(!ids.contains(&"broken"), "{ids:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.yaml:") && stderr.contains("missing field `name`"),
        "{stderr}"
    );
    // A flow using the file app validates like one using a built-in app.
    let flow = dir.path().join("flow.yaml");
    std::fs::write(
        &flow,
        "version: 1\nid: uses-acme\nname: Uses Acme\ntrigger:\n  app: webhook\nconnections:\n  acme: { app: acme }\nsteps:\n  - id: add\n    app: acme\n    action: create_contact\n    connection: acme\n    input:\n      name: \"{{ trigger.body.name }}\"\n      email: \"{{ trigger.body.email }}\"\n",
    )
    .unwrap();
    let out = flowbot()
        .arg("--apps-dir")
        .arg(dir.path())
        .arg("validate")
        .arg(&flow)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_openapi_document_is_imported_as_an_app_file_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("api.yaml");
    std::fs::write(
        &spec,
        "openapi: 3.0.0\ninfo: { title: Tiny API }\nservers: [{ url: 'https://tiny.example' }]\npaths:\n  /things:\n    get:\n      operationId: listThings\n      tags: [things]\n      responses: { '200': { description: ok } }\n    post:\n      operationId: addThing\n      tags: [admin]\n      requestBody: { content: { application/json: { schema: { type: object, required: [name], properties: { name: { type: string } } } } } }\n      responses: { '201': { description: ok } }\n",
    )
    .unwrap();
    let out = flowbot()
        .args(["apps", "import-openapi", "--list"])
        .arg(&spec)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("list_things\tGET /things\tthings"),
        "{listed}"
    );
    let app = dir.path().join("tiny.yaml");
    let out = flowbot()
        .args(["apps", "import-openapi", "--only", "things"])
        .arg(&spec)
        .arg("--out")
        .arg(&app)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = flowbot()
        .args(["apps", "validate"])
        .arg(&app)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("ok — app `tiny_api` with 1 actions"),
        "{said}"
    );
    // A document that cannot be used: the JSON pointer, exit 2.
    std::fs::write(&spec, "openapi: 3.0.0\ninfo: {}\npaths: {}\n").unwrap();
    let out = flowbot()
        .args(["apps", "import-openapi"])
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("/info/title: the document has no title"),
        "{said}"
    );
}
