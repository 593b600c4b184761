//! `flowbot validate` as a user runs it: every example passes, every broken fixture fails
//! with exactly the diagnostics recorded beside it.

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

#[test]
fn every_invalid_fixture_gives_exactly_its_expected_diagnostics() {
    let dir = root().join("tests/fixtures/invalid");
    let fixtures = yaml_files(&dir);
    assert!(fixtures.len() >= 10, "fixtures are missing");
    let mut mismatches = Vec::new();
    for file in fixtures {
        let name = file.file_name().expect("file name").to_owned();
        let expected_path = file.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let out = flowbot()
            .current_dir(&dir)
            .arg("validate")
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
