//! The acceptance suite's only way to touch the system: real processes — `flowbot sandbox`
//! (the simulators and notification sinks) and `flowbot serve` / `flowbot worker` — each on
//! its own loopback port, driven over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{fresh_pg, read_ready};

pub const SEARCH: &str = "ecforce-customer-to-salesforce";
pub const UPSERT: &str = "ecforce-customer-to-salesforce-upsert";
pub const PASSWORD: &str = "acceptance-password";

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_flowbot")
}

/// Stops the process when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Sandbox {
    _proc: Proc,
    pub ecforce: String,
    pub ecforce_token: String,
    pub salesforce: String,
    pub client_id: String,
    pub client_secret: String,
    pub sinks: String,
    pub smtp_port: u16,
    /// The OpenID Connect identity provider and flowbot's client there.
    pub oidc_issuer: String,
    pub oidc_client_id: String,
    pub oidc_client_secret: String,
    http: reqwest::Client,
}

impl Sandbox {
    pub fn start() -> Sandbox {
        // Its own words go to a file that outlives the test: a simulator that fails mid-test
        // says why there.
        let log = std::env::temp_dir().join(format!("flowbot-sandbox-{}.log", std::process::id()));
        let mut child = Command::new(exe())
            .arg("sandbox")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("the sandbox's log file"))
            .spawn()
            .expect("flowbot sandbox starts");
        eprintln!("flowbot sandbox logs to {}", log.display());
        let fields = read_ready(&mut child, "flowbot sandbox");
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("sandbox printed no {k}"))
        };
        Sandbox {
            ecforce: get("ecforce"),
            ecforce_token: get("ecforce_token"),
            salesforce: get("salesforce"),
            client_id: get("salesforce_client_id"),
            client_secret: get("salesforce_client_secret"),
            sinks: get("sinks"),
            smtp_port: get("smtp").rsplit(':').next().unwrap().parse().unwrap(),
            oidc_issuer: get("oidc_issuer"),
            oidc_client_id: get("oidc_client_id"),
            oidc_client_secret: get("oidc_client_secret"),
            _proc: Proc(child),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, url: String, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, &url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// What is wrong with the identity provider's next ID tokens (`none`, `tampered`, …).
    pub async fn oidc_fault(&self, fault: &str) {
        let r = self
            .http
            .put(format!("{}/__control/fault", self.oidc_issuer))
            .json(&json!({ "id_token": fault }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// The `serve` arguments for single sign-on through the sandbox's identity provider.
    pub fn sso_args(&self) -> Vec<String> {
        [
            "--oidc-issuer",
            &self.oidc_issuer,
            "--oidc-client-id",
            &self.oidc_client_id,
            "--oidc-client-secret",
            &self.oidc_client_secret,
            "--oidc-allow-domain",
            "example.co.jp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// A new ecforce customer (its webhook goes out); its id.
    pub async fn create_customer(&self, fields: Value) -> u64 {
        self.call(
            Method::POST,
            format!("{}/__control/customers", self.ecforce),
            Some(fields),
        )
        .await["id"]
            .as_u64()
            .unwrap()
    }

    pub async fn update_customer(&self, id: u64, fields: Value) {
        self.call(
            Method::PATCH,
            format!("{}/__control/customers/{id}", self.ecforce),
            Some(fields),
        )
        .await;
    }

    pub async fn customers(&self) -> Vec<Value> {
        self.call(
            Method::GET,
            format!("{}/__control/customers", self.ecforce),
            None,
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    pub async fn set_webhook(&self, url: &str) {
        self.call(
            Method::PUT,
            format!("{}/__control/webhooks", self.ecforce),
            Some(json!([{ "url": url, "events": ["customer_created", "customer_updated"] }])),
        )
        .await;
    }

    /// Every webhook delivery: its final status and attempts.
    pub async fn deliveries(&self) -> Vec<Value> {
        self.call(
            Method::GET,
            format!("{}/__control/deliveries", self.ecforce),
            None,
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    pub async fn ecforce_stats(&self) -> Value {
        self.call(
            Method::GET,
            format!("{}/__control/stats", self.ecforce),
            None,
        )
        .await
    }

    pub async fn salesforce_stats(&self) -> Value {
        self.call(
            Method::GET,
            format!("{}/__control/stats", self.salesforce),
            None,
        )
        .await
    }

    pub async fn accounts(&self) -> Vec<Value> {
        self.call(
            Method::GET,
            format!("{}/__control/records/Account", self.salesforce),
            None,
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    pub async fn salesforce_faults(&self, faults: Value) {
        self.call(
            Method::POST,
            format!("{}/__control/faults", self.salesforce),
            Some(faults),
        )
        .await;
    }

    pub async fn clear_salesforce_faults(&self) {
        self.call(
            Method::DELETE,
            format!("{}/__control/faults", self.salesforce),
            None,
        )
        .await;
    }

    pub async fn expire_tokens(&self) {
        self.call(
            Method::POST,
            format!("{}/__control/expire-tokens", self.salesforce),
            None,
        )
        .await;
    }

    pub async fn mails(&self) -> Vec<Value> {
        self.call(Method::GET, format!("{}/__control/mails", self.sinks), None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn slack_messages(&self) -> Vec<Value> {
        self.call(Method::GET, format!("{}/__control/slack", self.sinks), None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Where flowbot keeps its data in a scenario.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite,
    Postgres(String),
}

impl Db {
    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }
}

/// SQLite always; PostgreSQL too when TEST_DATABASE_URL is set (a fresh database each).
pub fn databases() -> Vec<Db> {
    let mut out = vec![Db::Sqlite];
    if let Some(url) = fresh_pg() {
        out.push(Db::Postgres(url));
    }
    out
}

/// A flowbot deployment: one `serve` (with its worker, or `--no-worker` plus worker
/// processes) on one data directory and database.
pub struct Flowbot {
    pub db: Db,
    pub dir: PathBuf,
    pub url: String,
    port: u16,
    pub server: Option<Proc>,
    pub workers: Vec<Proc>,
    separate_workers: usize,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
    pub log: PathBuf,
    /// The open-file limit (soft and hard) the processes start with, as `ulimit -n` sets it.
    nofile: Option<u64>,
    /// More arguments for `serve`.
    serve_args: Vec<String>,
}

impl Flowbot {
    /// `serve` with its in-process worker.
    pub async fn start(db: Db, dir: &Path) -> Flowbot {
        Flowbot::start_with(db, dir, 0).await
    }

    /// `serve` with its worker and more arguments.
    pub async fn start_args(db: Db, dir: &Path, serve_args: Vec<String>) -> Flowbot {
        Flowbot::start_opts(db, dir, 0, None, serve_args).await
    }

    /// `serve` with its worker, under an open-file limit and with more arguments.
    pub async fn start_limited(db: Db, dir: &Path, nofile: u64, serve_args: &[&str]) -> Flowbot {
        Flowbot::start_opts(
            db,
            dir,
            0,
            Some(nofile),
            serve_args.iter().map(|s| s.to_string()).collect(),
        )
        .await
    }

    /// The server's process id.
    pub fn server_pid(&self) -> u32 {
        self.server.as_ref().expect("the server runs").0.id()
    }

    /// Whether the server process is still running.
    pub fn server_alive(&mut self) -> bool {
        self.server
            .as_mut()
            .is_some_and(|p| matches!(p.0.try_wait(), Ok(None)))
    }

    /// `serve --no-worker` and `workers` worker processes when `workers > 0`.
    pub async fn start_with(db: Db, dir: &Path, workers: usize) -> Flowbot {
        Flowbot::start_opts(db, dir, workers, None, Vec::new()).await
    }

    async fn start_opts(
        db: Db,
        dir: &Path,
        workers: usize,
        nofile: Option<u64>,
        serve_args: Vec<String>,
    ) -> Flowbot {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut f = Flowbot {
            db,
            dir: dir.to_path_buf(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            server: None,
            workers: Vec::new(),
            separate_workers: workers,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookie: String::new(),
            csrf: String::new(),
            log: dir.join("flowbot.log"),
            nofile,
            serve_args,
        };
        f.start_processes().await;
        f.login().await;
        f
    }

    fn command(&self, sub: &str) -> Command {
        let mut c = Command::new(exe());
        c.arg(sub)
            .arg("--data-dir")
            .arg(&self.dir)
            .env("FLOWBOT_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match &self.db {
            Db::Sqlite => c.env_remove("DATABASE_URL"),
            Db::Postgres(url) => c.env("DATABASE_URL", url),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        c.stderr(log);
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, which is async-signal-safe, runs in the child.
            unsafe {
                c.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        c
    }

    /// Start the server (and workers), and wait until it answers.
    pub async fn start_processes(&mut self) {
        let mut serve = self.command("serve");
        serve.args(["--port", &self.port.to_string()]);
        serve.args(&self.serve_args);
        if self.separate_workers > 0 {
            serve.arg("--no-worker");
        }
        self.server = Some(Proc(serve.spawn().expect("flowbot serve starts")));
        for i in self.workers.len()..self.separate_workers {
            self.workers.push(self.spawn_worker(i));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self
                .http
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            if Instant::now() > deadline {
                // The server's own words are the only clue to why it did not come up.
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "flowbot serve did not answer /readyz within 60 s; log tail:\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn spawn_worker(&self, i: usize) -> Proc {
        let mut w = self.command("worker");
        // A short lease: a killed worker's runs are taken over within seconds.
        w.args([
            "--id",
            &format!("worker-{i}"),
            "--idle-poll",
            "50ms",
            "--lease",
            "5s",
        ]);
        Proc(w.spawn().expect("flowbot worker starts"))
    }

    /// Another `serve --no-worker` on the same data and database, at its own address
    /// (PostgreSQL only: a SQLite store takes one process).
    pub async fn spawn_extra_server(&self) -> (Proc, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut serve = self.command("serve");
        serve.args(["--port", &port.to_string(), "--no-worker"]);
        let proc = Proc(serve.spawn().expect("a second flowbot serve starts"));
        let url = format!("http://127.0.0.1:{port}");
        wait_until("the second server", Duration::from_secs(60), || async {
            self.http
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        (proc, url)
    }

    /// SIGKILL the server: nothing is flushed, nothing is said goodbye.
    pub fn kill_server(&mut self) {
        self.server = None;
    }

    pub async fn login(&mut self) {
        let r = self
            .http
            .post(format!("{}/api/v1/login", self.url))
            .json(&json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login");
        self.cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body: Value = r.json().await.unwrap();
        self.csrf = body["csrf_token"].as_str().unwrap().to_string();
    }

    /// A signed-in API call: (status, JSON body or Null).
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Imports a flow, switches its trigger on and gives back its webhook token (which a
    /// form's page and a mail address are made of).
    pub async fn import_enabled(&self, yaml: &str, id: &str) -> String {
        let (status, body) = self
            .api(
                Method::POST,
                "/api/v1/flows",
                Some(serde_json::json!({ "yaml": yaml })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self
            .api(Method::POST, &format!("/api/v1/flows/{id}/enable"), None)
            .await;
        assert!(status < 300, "{status} {body}");
        let (_, flow) = self
            .api(Method::GET, &format!("/api/v1/flows/{id}"), None)
            .await;
        flow["flow"]["webhook_token"].as_str().unwrap().to_string()
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.api(method, path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }

    /// Connections to the sandbox, the template imported and bound, its trigger ON, and the
    /// sandbox sending ecforce's webhooks to it. Returns the webhook URL.
    pub async fn install(&self, sandbox: &Sandbox, template: &str) -> String {
        let ec = self
            .ok(
                Method::POST,
                "/api/v1/connections",
                Some(json!({"name": format!("ecforce {template}"), "app": "ecforce", "settings": {
                    "account_name": "sandbox", "base_url": sandbox.ecforce, "access_token": sandbox.ecforce_token}})),
            )
            .await;
        let sf = self
            .ok(
                Method::POST,
                "/api/v1/connections",
                Some(json!({"name": format!("Salesforce {template}"), "app": "salesforce", "settings": {
                    "my_domain_url": sandbox.salesforce, "client_id": sandbox.client_id,
                    "client_secret": sandbox.client_secret}})),
            )
            .await;
        self.ok(
            Method::POST,
            &format!("/api/v1/templates/{template}/import"),
            None,
        )
        .await;
        for (slot, c) in [("ecforce", &ec), ("salesforce", &sf)] {
            self.ok(
                Method::POST,
                &format!("/api/v1/flows/{template}/connections"),
                Some(json!({"slot": slot, "connection_id": c["connection"]["id"]})),
            )
            .await;
        }
        self.ok(
            Method::POST,
            &format!("/api/v1/flows/{template}/enable"),
            None,
        )
        .await;
        let hook = self.webhook_url(template).await;
        sandbox.set_webhook(&hook).await;
        hook
    }

    pub async fn webhook_url(&self, flow: &str) -> String {
        let flow_view = self
            .ok(Method::GET, &format!("/api/v1/flows/{flow}"), None)
            .await;
        let path = flow_view["webhook_path"]
            .as_str()
            .unwrap_or_else(|| panic!("the flow view has a webhook_path: {flow_view}"));
        format!("{}{path}", self.url)
    }

    /// Replace the flow's YAML (a new version).
    pub async fn import_yaml(&self, yaml: &str) {
        self.ok(Method::POST, "/api/v1/flows", Some(json!({ "yaml": yaml })))
            .await;
    }

    pub async fn export(&self, flow: &str) -> String {
        self.get_text(&format!("/api/v1/flows/{flow}/export"))
            .await
            .1
    }

    /// Every run of the flow, newest first (all pages).
    pub async fn runs(&self, flow: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut before = String::new();
        loop {
            let v = self
                .ok(
                    Method::GET,
                    &format!("/api/v1/runs?flow={flow}&limit=200{before}"),
                    None,
                )
                .await;
            out.extend(v["runs"].as_array().cloned().unwrap_or_default());
            match v["next_before"].as_i64() {
                Some(n) => before = format!("&before={n}"),
                None => return out,
            }
        }
    }

    pub async fn run(&self, id: &str) -> Value {
        self.ok(Method::GET, &format!("/api/v1/runs/{id}"), None)
            .await
    }

    /// Wait until `n` runs of the flow exist and none is queued or running.
    pub async fn settle(&self, flow: &str, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let runs = self.runs(flow).await;
            let busy = runs
                .iter()
                .filter(|r| matches!(r["status"].as_str(), Some("queued" | "running" | "waiting")))
                .count();
            if runs.len() >= n && busy == 0 {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "{flow}: {} runs, {busy} not finished, after {limit:?}",
                runs.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How a scenario ended, as a row of docs/reliability.md.
pub struct Tally {
    pub scenario: &'static str,
    pub db: &'static str,
    pub events: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub duplicates: usize,
    pub lost: usize,
}

/// Append the row to target/reliability.md (the suite's latest figures).
pub fn record(t: &Tally) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("reliability.md");
    let line = format!(
        "| {} | {} | {} | {} | {} | {} | {} |\n",
        t.scenario, t.db, t.events, t.succeeded, t.failed, t.duplicates, t.lost
    );
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

/// Append a line of figures to target/reliability-hostile.md (copied into
/// docs/reliability.md's hostile-client section).
pub fn record_figures(line: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("reliability-hostile.md"))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Accounts per value of `field`, and how many values have more than one.
pub fn duplicates(accounts: &[Value], field: &str) -> usize {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for a in accounts {
        *seen.entry(a[field].to_string()).or_default() += 1;
    }
    seen.values().filter(|n| **n > 1).count()
}
