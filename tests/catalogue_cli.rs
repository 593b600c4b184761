//! The app catalogue, through the real binary: every built-in action's contract (its worked
//! examples: the exact request, the vendor's documented answer, the obtained values), a
//! small flow per app run by `flowbot run` against the catalogue simulator, and the
//! catalogue's size.

use std::collections::BTreeMap;
use std::process::Command;

use flowbot_sandbox::catalogue::{self, AppSource, CatalogueConfig};
use serde_json::{json, Value};

/// The catalogue's apps (the built-in apps written as files, besides the generic ones).
const CATALOGUE: &[&str] = &[
    "kintone",
    "google_sheets",
    "hubspot",
    "shopify",
    "stripe",
    "line",
    "notion",
    "backlog",
    "microsoft_teams",
    "google_chat",
];

fn flowbot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowbot"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn app_file(id: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/crates/flowbot-connectors/apps/{id}.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn actions(yaml: &str) -> Vec<Value> {
    let v: Value = serde_yaml::from_str(yaml).unwrap();
    v["actions"].as_array().unwrap().clone()
}

#[test]
fn every_catalogue_action_sends_its_exact_request_and_reads_the_documented_answer() {
    let (code, out, err) = flowbot(&["apps", "test", "--builtin"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let last = out.lines().last().unwrap();
    assert!(last.ends_with("passed, 0 failed"), "{last}");
    assert!(!last.contains("no example for"), "{last}");
    for app in CATALOGUE {
        for a in actions(&app_file(app)) {
            let id = a["id"].as_str().unwrap();
            let examples = a["examples"].as_array().map_or(0, Vec::len);
            assert!(examples >= 1, "{app}.{id} has no example");
            let ok = out
                .lines()
                .filter(|l| l.contains(&format!("{app}.yaml: {id}: ")) && l.ends_with(": ok"))
                .count();
            assert_eq!(ok, examples, "{app}.{id}: every example passed\n{out}");
        }
    }
}

#[test]
fn a_request_that_drifts_from_its_example_is_reported_with_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    // The example now expects another path than the action sends.
    let drifted = app_file("kintone").replacen(
        "          path: /k/v1/record/comment.json\n",
        "          path: /k/v1/record/comments.json\n",
        1,
    );
    assert!(
        drifted != app_file("kintone"),
        "the example's path was found"
    );
    let file = dir.path().join("kintone.yaml");
    std::fs::write(&file, drifted).unwrap();
    let (code, out, _) = flowbot(&["apps", "test", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("add_comment: example 1: FAILED"), "{out}");
    assert!(
        out.contains("path: sent /k/v1/record/comment.json, expected /k/v1/record/comments.json"),
        "{out}"
    );
    assert!(out.ends_with("passed, 1 failed\n"), "{out}");
}

#[test]
fn the_catalogue_has_over_45_actions_across_15_apps() {
    let (code, out, err) = flowbot(&["apps", "--json"]);
    assert_eq!(code, 0, "{err}");
    let apps: Vec<Value> = serde_json::from_str(&out).unwrap();
    let actions: usize = apps
        .iter()
        .map(|a| a["actions"].as_array().unwrap().len())
        .sum();
    assert!(apps.len() >= 15, "{} apps", apps.len());
    assert!(actions >= 45, "{actions} actions");
    for id in CATALOGUE {
        let app = apps.iter().find(|a| a["id"] == *id).expect(id);
        assert!(app["name"]["ja"].as_str().is_some_and(|n| !n.is_empty()));
        for a in app["actions"].as_array().unwrap() {
            assert!(
                a["name"]["ja"].as_str().is_some_and(|n| !n.is_empty())
                    && a["name"]["en"].as_str().is_some_and(|n| !n.is_empty()),
                "{id}.{}: names in both languages",
                a["id"]
            );
        }
        let page = format!("{}/docs/apps/{id}.md", env!("CARGO_MANIFEST_DIR"));
        assert!(std::path::Path::new(&page).exists(), "{page}");
    }
}

/// For each app: a flow whose steps are its actions' first successful examples, run by
/// `flowbot run` against the catalogue simulator; each step gets the example's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_flow_of_each_app_runs_against_the_sandbox_simulator() {
    let sources: Vec<AppSource> = CATALOGUE
        .iter()
        .map(|id| AppSource {
            id: id.to_string(),
            yaml: app_file(id),
        })
        .collect();
    let sim = catalogue::start(&sources, CatalogueConfig::default(), 0)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for id in CATALOGUE {
        let yaml = app_file(id);
        let file: Value = serde_yaml::from_str(&yaml).unwrap();
        // The connection: the file's example values, every URL pointed at the simulator.
        let mut settings = serde_json::Map::new();
        for f in file["connection"]["fields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if !f["default"].is_null() {
                settings.insert(f["name"].as_str().unwrap().into(), f["default"].clone());
            }
        }
        for (k, v) in file["connection"]["example"]
            .as_object()
            .into_iter()
            .flatten()
        {
            settings.insert(k.clone(), v.clone());
        }
        if file["connection"]["auth"]["grant"] == "authorization_code" {
            settings.insert("refresh_token".into(), json!("sandbox-refresh-token"));
        }
        for v in settings.values_mut() {
            if let Some(s) = v.as_str().filter(|s| s.starts_with("http")) {
                *v = json!(sim.sim.rewrite(id, s));
            }
        }
        let mut steps = Vec::new();
        let mut expected = BTreeMap::new();
        for a in actions(&yaml) {
            let Some(ex) = a["examples"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["response"]["status"].as_u64().unwrap_or(200) < 400)
            else {
                continue;
            };
            let action = a["id"].as_str().unwrap();
            steps.push(json!({
                "id": action,
                "app": id,
                "action": action,
                "connection": "conn",
                "input": ex["input"],
            }));
            if !ex["output"].is_null() {
                expected.insert(action.to_string(), ex["output"].clone());
            }
        }
        assert!(!steps.is_empty(), "{id}");
        let flow = json!({
            "version": 1,
            "id": format!("try-{}", id.replace('_', "-")),
            "name": format!("try {id}"),
            "connections": { "conn": { "app": id } },
            "trigger": { "app": "manual" },
            "steps": steps,
        });
        let flow_path = dir.path().join(format!("{id}.yaml"));
        std::fs::write(&flow_path, serde_yaml::to_string(&flow).unwrap()).unwrap();
        let conn_path = dir.path().join(format!("{id}-connections.yaml"));
        std::fs::write(
            &conn_path,
            serde_yaml::to_string(&json!({ "conn": settings })).unwrap(),
        )
        .unwrap();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_flowbot"))
                .arg("run")
                .arg(&flow_path)
                .arg("--connections")
                .arg(&conn_path)
                .args(["--json", "--no-retry"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let run: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| {
            panic!(
                "{id}: no run record: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(run["status"], "succeeded", "{id}: {run}");
        for (action, want) in expected {
            let step = run["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["path"] == action.as_str())
                .unwrap_or_else(|| panic!("{id}.{action}: no step record"));
            assert_eq!(step["output"], want, "{id}.{action}");
        }
    }
}
