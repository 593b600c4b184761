//! `flowbot apps test`: every action's worked examples run for real. For each example the
//! action is executed with the example's input against the sandbox's app simulator, which
//! records the request and answers with the example's documented response; the request
//! must be exactly the one the example names, and the obtained values (or the error) must be
//! the ones it names. The built-in catalogue's contract tests are this command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use flowbot_connectors::file_app::format::{self, AppFile, Auth, ExampleDef, Grant};
use flowbot_connectors::file_app::FileApp;
use flowbot_core::{ActionCall, Connection, Connector};
use flowbot_sandbox::catalogue::{self, AppSource, CatalogueConfig, CatalogueSim, Seen};
use serde_json::{Map, Value};

/// What one app's examples came to.
#[derive(Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    /// Actions without any example.
    pub untested: Vec<String>,
}

pub fn main(files: &[PathBuf], builtin: bool) -> anyhow::Result<ExitCode> {
    let mut sources: Vec<(String, String)> = Vec::new();
    if builtin {
        for (name, yaml) in flowbot_connectors::file_app::builtin_sources() {
            sources.push((format!("(built in) {name}"), yaml.to_string()));
        }
    }
    for f in files {
        let yaml =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        sources.push((f.display().to_string(), yaml));
    }
    if sources.is_empty() {
        anyhow::bail!("name app files to test, or --builtin");
    }
    let rt = crate::store_cmds::runtime()?;
    let mut total = Report::default();
    let mut broken = false;
    for (label, yaml) in &sources {
        let app = match format::parse(yaml) {
            Ok(app) => app,
            Err(problems) => {
                broken = true;
                for p in problems {
                    println!("{label}:{}:{}: {}", p.line, p.column, p.message);
                }
                continue;
            }
        };
        let r = rt.block_on(test_app(label, yaml, app))?;
        total.passed += r.passed;
        total.failed += r.failed;
        total.untested.extend(r.untested);
    }
    println!(
        "{} examples passed, {} failed{}",
        total.passed,
        total.failed,
        if total.untested.is_empty() {
            String::new()
        } else {
            format!("; no example for {}", total.untested.join(", "))
        }
    );
    Ok(if broken {
        ExitCode::from(2)
    } else if total.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn test_app(label: &str, yaml: &str, mut app: AppFile) -> anyhow::Result<Report> {
    let sim = catalogue::start(
        &[AppSource {
            id: app.id.clone(),
            yaml: yaml.to_string(),
        }],
        CatalogueConfig::default(),
        0,
    )
    .await?;
    let conn = sandbox_connection(&app, &sim.sim);
    // URLs written into the file itself go to the simulator too.
    if let Some(b) = &mut app.connection.base_url {
        *b = sim.sim.rewrite(&app.id, b);
    }
    if let Auth::OAuth2 { token_url, .. } = &mut app.connection.auth {
        *token_url = sim.sim.rewrite(&app.id, token_url);
    }
    // Whatever the file says, nothing leaves this machine: a request for any other host
    // goes to a closed port (example credentials never reach a real app).
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::custom(|url| {
            (url.host_str() != Some("127.0.0.1")).then(|| "http://127.0.0.1:9".to_string())
        }))
        .build()?;
    let file = FileApp::new(app.clone(), client);
    let mut report = Report::default();
    for a in &app.actions {
        if a.examples.is_empty() {
            report.untested.push(format!("{}.{}", app.id, a.id));
        }
        for (i, ex) in a.examples.iter().enumerate() {
            sim.sim.clear_requests();
            // A URL the step gives (a generic HTTP app's) goes to the simulator too.
            let input: Map<String, Value> = ex
                .input
                .iter()
                .map(
                    |(k, v)| match v.as_str().filter(|s| s.starts_with("http")) {
                        Some(url) => (k.clone(), Value::String(sim.sim.rewrite(&app.id, url))),
                        None => (k.clone(), v.clone()),
                    },
                )
                .collect();
            let got = file
                .execute(ActionCall {
                    action: &a.id,
                    input: &input,
                    connection: Some(&conn),
                })
                .await;
            let sent: Vec<Seen> = sim
                .sim
                .requests()
                .into_iter()
                .filter(|r| !r.action.is_empty())
                .collect();
            let problems = compare(ex, sent.first(), &got);
            let name = ex
                .name
                .as_deref()
                .map_or_else(|| format!("example {}", i + 1), str::to_string);
            if problems.is_empty() {
                report.passed += 1;
                println!("{label}: {}: {name}: ok", a.id);
            } else {
                report.failed += 1;
                println!("{label}: {}: {name}: FAILED", a.id);
                for p in problems {
                    println!("    {p}");
                }
            }
        }
    }
    for t in &app.triggers {
        if t.webhook.is_none() {
            continue;
        }
        if t.examples.is_empty() {
            report
                .untested
                .push(format!("{}.{} (trigger)", app.id, t.id));
        }
        for (i, ex) in t.examples.iter().enumerate() {
            let name = ex
                .name
                .as_deref()
                .map_or_else(|| format!("example {}", i + 1), str::to_string);
            let problems = check_webhook(&file, &t.id, ex, &conn);
            if problems.is_empty() {
                report.passed += 1;
                println!("{label}: trigger {}: {name}: ok", t.id);
            } else {
                report.failed += 1;
                println!("{label}: trigger {}: {name}: FAILED", t.id);
                for p in problems {
                    println!("    {p}");
                }
            }
        }
    }
    Ok(report)
}

/// A webhook example: signed as the app signs (the signature must pass, and fail once the
/// body is changed), then read into the trigger's obtained values.
fn check_webhook(
    file: &FileApp,
    trigger: &str,
    ex: &format::WebhookExample,
    conn: &Connection,
) -> Vec<String> {
    let mut problems = Vec::new();
    let raw = match &ex.body {
        Value::String(text) => text.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut headers: Map<String, Value> = ex
        .headers
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    match file.sign_webhook(conn, &raw, now) {
        Ok(signed) => {
            for (k, v) in signed {
                headers.insert(k.to_lowercase(), Value::String(v));
            }
        }
        Err(e) => problems.push(format!("cannot sign: {e}")),
    }
    let events = [trigger.to_string()];
    let call = |raw| webhook_call(&events, &headers, &ex.body, raw, conn);
    if let Err(e) = file.verify_webhook(&call(&raw), now) {
        problems.push(format!("the signature was refused: {e}"));
    }
    let mut tampered = raw.clone();
    tampered.push(b' ');
    let signed = !file
        .sign_webhook(conn, &raw, now)
        .unwrap_or_default()
        .is_empty();
    if signed && file.verify_webhook(&call(&tampered), now).is_ok() {
        problems.push("a changed body still passed the signature check".into());
    }
    match (file.webhook_event(call(&raw)), ex.starts_run, &ex.output) {
        (Err(e), _, _) => problems.push(format!("the request was not read: {e}")),
        (Ok(None), true, _) => problems.push("the request started no run".into()),
        (Ok(Some(out)), false, _) => problems.push(format!("the request started a run with {out}")),
        (Ok(Some(out)), true, Some(want)) if !same_output(&out, want) => {
            problems.push(format!("output: got {out}, expected {want}"))
        }
        _ => {}
    }
    problems
}

fn webhook_call<'a>(
    events: &'a [String],
    headers: &'a Map<String, Value>,
    body: &'a Value,
    raw: &'a [u8],
    conn: &'a Connection,
) -> flowbot_core::WebhookCall<'a> {
    flowbot_core::WebhookCall {
        events,
        options: &EMPTY,
        headers,
        query: &EMPTY,
        body,
        raw,
        connection: Some(conn),
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// The connection an app's examples (and the sandbox) use: the defaults, the file's
/// `connection.example` values, a refresh token where the app signs in with OAuth, and
/// every URL pointed at the simulator.
pub fn sandbox_connection(app: &AppFile, sim: &CatalogueSim) -> Connection {
    let mut settings = Map::new();
    for f in &app.connection.fields {
        if let Some(d) = &f.default {
            settings.insert(f.name.clone(), d.clone());
        }
    }
    for (k, v) in &app.connection.example {
        settings.insert(k.clone(), v.clone());
    }
    if let Auth::OAuth2 {
        grant: Grant::AuthorizationCode,
        ..
    } = &app.connection.auth
    {
        settings
            .entry("refresh_token")
            .or_insert_with(|| Value::String("sandbox-refresh-token".into()));
    }
    for v in settings.values_mut() {
        if let Some(s) = v.as_str().filter(|s| s.starts_with("http")) {
            *v = Value::String(sim.rewrite(&app.id, s));
        }
    }
    Connection {
        name: format!("{} (sandbox)", app.id),
        app: app.id.clone(),
        settings,
    }
}

fn compare(
    ex: &ExampleDef,
    sent: Option<&Seen>,
    got: &Result<Value, flowbot_core::ActionError>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(sent) = sent else {
        problems.push(format!(
            "no request reached the app ({})",
            match got {
                Err(e) => e.message.clone(),
                Ok(_) => "the step succeeded without one".into(),
            }
        ));
        return problems;
    };
    let want = &ex.request;
    if !sent.method.eq_ignore_ascii_case(&want.method) {
        problems.push(format!(
            "method: sent {}, expected {}",
            sent.method, want.method
        ));
    }
    // The base URL's own path (e.g. /v4) comes first; the example names the whole path.
    if sent.path != want.path {
        problems.push(format!("path: sent {}, expected {}", sent.path, want.path));
    }
    if sent.query != want.query {
        problems.push(format!(
            "query: sent {}, expected {}",
            show(&sent.query),
            show(&want.query)
        ));
    }
    for (name, value) in &want.headers {
        match sent.headers.get(&name.to_lowercase()) {
            Some(v) if v == value => {}
            Some(v) => problems.push(format!("header {name}: sent `{v}`, expected `{value}`")),
            None => problems.push(format!("header {name}: not sent")),
        }
    }
    let form = sent
        .headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let body = if form {
        let text = String::from_utf8_lossy(&sent.raw);
        Value::Object(
            catalogue::url_pairs(&text)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else {
        sent.body.clone()
    };
    let want_body = ex.request.body.clone().unwrap_or(Value::Null);
    if body != want_body {
        problems.push(format!("body: sent {body}, expected {want_body}"));
    }
    match (got, &ex.output, ex.response.status) {
        (Ok(out), Some(want), _) if !same_output(out, want) => {
            problems.push(format!("output: got {out}, expected {want}"))
        }
        (Ok(_), None, status) if status >= 400 => {
            problems.push(format!("the step succeeded on a {status} answer"))
        }
        (Err(e), _, status) if status < 400 => {
            problems.push(format!("the step failed: {}", e.message))
        }
        _ => {}
    }
    if let (Ok(out), Some(want)) = (got, &ex.error) {
        problems.push(format!(
            "the step succeeded with {out}, expected it to fail saying `{want}`"
        ));
    }
    if let (Err(e), Some(want)) = (got, &ex.error) {
        if !e.message.contains(want.as_str()) && e.code.as_deref() != Some(want) {
            problems.push(format!(
                "error: got `{}` (code {}), expected it to say `{want}`",
                e.message,
                e.code.as_deref().unwrap_or("none")
            ));
        }
    }
    problems
}

/// The output an example names: each key it lists has exactly that value (a generic app's
/// example may leave out what changes from call to call, such as a date header).
fn same_output(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w.iter().all(|(k, v)| g.get(k) == Some(v)),
        _ => got == want,
    }
}

fn show(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_default()
}
