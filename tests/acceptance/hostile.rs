//! Scenario 10: hostile and careless clients. Without signing in, nobody can exhaust the
//! server's memory, connections or password checks, read credentials a sender put in its
//! headers, or make it read a body for a webhook that is not there; every answer carries
//! the security headers. Figures go to target/reliability-hostile.md.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{databases, record, record_figures, Db, Flowbot, Sandbox, Tally, SEARCH};

/// The process's resident memory, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

/// A client that opens a new connection for every request, as a health checker does.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn login(http: &reqwest::Client, url: &str, user: &str, pw: &str) -> (u16, Option<String>) {
    let r = http
        .post(format!("{url}/api/v1/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), retry)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Every answer's security headers.
fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{what}: {csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "same-origin", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_hostile_clients_cannot_exhaust_the_server_or_read_credentials() {
    for db in databases() {
        hostile_clients(db).await;
    }
}

async fn hostile_clients(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start();
    // As `ulimit -n 1024` would start it, behind an https address.
    let mut fb = Flowbot::start_limited(
        db.clone(),
        dir.path(),
        1024,
        &["--public-url", "https://flowbot.example.jp"],
    )
    .await;
    let hook = fb.install(&sb, SEARCH).await;
    let http = fresh_client();
    let pid = fb.server_pid();

    // 9. Security headers on pages, API answers and webhook answers; Secure cookies.
    let page = http.get(format!("{}/login", fb.url)).send().await.unwrap();
    assert_security_headers(&page, "the login page");
    let api = http
        .get(format!("{}/api/v1/me", fb.url))
        .send()
        .await
        .unwrap();
    assert_security_headers(&api, "an API answer");
    let wh = http.post(&hook).body("").send().await.unwrap();
    assert_security_headers(&wh, "a webhook answer");
    // 7. An empty body is a clear 400, not a failed run.
    assert_eq!(wh.status(), 400);
    let v: Value = wh.json().await.unwrap();
    assert_eq!(v["error"]["code"], "empty_body", "{v}");
    let signed_in = http
        .post(format!("{}/api/v1/login", fb.url))
        .json(&json!({"username": "admin", "password": crate::harness::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // State never changes on GET.
    for path in [
        format!("/api/v1/flows/{SEARCH}/test-trigger"),
        "/api/v1/connections/x/oauth/start".to_string(),
    ] {
        let (status, _) = fb.api(Method::GET, &path, None).await;
        assert_eq!(status, 405, "{path} is a POST");
    }

    // 4. A big body to a webhook that is not there: 404, the body never read.
    let wrong = hook.rsplit_once('/').unwrap().0.to_string() + "/not-the-token";
    for url in [format!("{}/hooks/no-such-flow/no-token", fb.url), wrong] {
        match http
            .post(&url)
            .body(vec![b'x'; 3 * 1024 * 1024])
            .send()
            .await
        {
            Ok(r) => assert_eq!(r.status(), 404, "{url}"),
            // The server answered and closed while the body was still being sent: the
            // client sees the connection go before it reads the 404. Never read either way.
            Err(e) => assert!(
                !e.is_connect() && (e.is_request() || e.is_body()),
                "{url}: {e}"
            ),
        }
    }

    // 5. Credentials a sender puts in its headers are never stored or shown.
    let customer = sb
        .create_customer(
            json!({"email": "secret-headers@example.jp", "name01": "秘密", "name02": "様"}),
        )
        .await;
    let secrets = [
        ("authorization", "Bearer hostile-AUTHORIZATION-value"),
        ("cookie", "sid=hostile-COOKIE-value"),
        ("proxy-authorization", "Basic hostile-PROXY-value"),
        ("x-api-key", "hostile-APIKEY-value"),
        ("x-webhook-signature", "hostile-SIGNATURE-value"),
    ];
    let mut req = http
        .post(&hook)
        .header("content-type", "application/json")
        .header("x-ecf-event", "customer_created");
    for (k, v) in secrets {
        req = req.header(k, v);
    }
    let r = req
        .body(json!({"id": customer.to_string()}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    fb.settle(SEARCH, 2, Duration::from_secs(60)).await;
    let (_, events) = fb.api(Method::GET, "/api/v1/events?limit=200", None).await;
    let run = fb.run(&run_id).await;
    let (_, run_page) = fb.get_text(&format!("/runs/{run_id}")).await;
    assert!(
        events.to_string().contains("[redacted]"),
        "the event shows the header was there: {events}"
    );
    let log = std::fs::read_to_string(&fb.log).unwrap();
    let export = fb.export(SEARCH).await;
    for (name, value) in secrets {
        for (what, text) in [
            ("the export", export.clone()),
            ("the events API", events.to_string()),
            ("the runs API", run.to_string()),
            ("the run page", run_page.clone()),
            ("the log", log.clone()),
        ] {
            assert!(!text.contains(value), "{what} shows {name}");
        }
    }
    let stored = match &fb.db {
        Db::Sqlite => {
            let mut all = Vec::new();
            for f in std::fs::read_dir(&fb.dir).unwrap() {
                let p = f.unwrap().path();
                if p.is_file() {
                    all.extend(std::fs::read(&p).unwrap());
                }
            }
            all
        }
        Db::Postgres(url) => {
            let dump = std::process::Command::new("pg_dump")
                .arg(url)
                .output()
                .unwrap();
            assert!(dump.status.success());
            dump.stdout
        }
    };
    for (name, value) in secrets {
        assert!(
            !stored.windows(value.len()).any(|w| w == value.as_bytes()),
            "the database holds {name} in clear"
        );
    }

    // 2. Parallel guesses: counted before they are checked, few password checks at once,
    // and unknown names take as long as known ones.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        assert_eq!(login(&http, &fb.url, "admin", "wrong").await.0, 401);
        known.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            login(&http, &fb.url, &format!("nobody{i}"), "wrong")
                .await
                .0,
            401
        );
        unknown.push(t.elapsed());
    }
    let (known, unknown) = (median(known), median(unknown));
    assert!(
        unknown.as_secs_f64() > 0.3 * known.as_secs_f64(),
        "an unknown name is checked as a known one is: {unknown:?} vs {known:?}"
    );
    let before = rss_mib(pid);
    let peak = Arc::new(std::sync::Mutex::new(before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let now = rss_mib(pid);
                {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let guesses: Vec<_> = (0..100)
        .map(|_| {
            let (http, url) = (http.clone(), fb.url.clone());
            tokio::spawn(async move { login(&http, &url, "admin", "wrong-again").await })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for g in guesses {
        match g.await.unwrap() {
            (401, _) => checked += 1,
            (429, Some(retry)) => {
                assert!(retry.parse::<u64>().unwrap() >= 1);
                refused += 1
            }
            other => panic!("a parallel guess got {other:?}"),
        }
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let parallel_growth = *peak.lock().unwrap() - before;
    assert!(
        checked <= 10 - 3,
        "{checked} of 100 parallel guesses were checked"
    );
    assert_eq!(checked + refused, 100);
    assert!(
        parallel_growth < 80.0,
        "100 parallel guesses grew the server by {parallel_growth:.1} MiB"
    );

    // 1. 10,000 failed logins with distinct (and some huge) names: memory stays put.
    let before = rss_mib(pid);
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        u16,
        usize,
    >::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (http, url, next, statuses) =
                (http.clone(), fb.url.clone(), next.clone(), statuses.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= 10_000 {
                        break;
                    }
                    // One in five is 64 KiB long; the rest fit the 256-byte limit.
                    let name = if i % 5 == 0 {
                        format!("{i}-{}", "n".repeat(64 * 1024))
                    } else {
                        format!("{i:0>250}")
                    };
                    let (status, _) = login(&http, &url, &name, "wrong").await;
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let growth = rss_mib(pid) - before;
    let statuses = statuses.lock().unwrap().clone();
    assert_eq!(statuses.get(&400), Some(&2000), "{statuses:?}");
    assert_eq!(statuses.values().sum::<usize>(), 10_000);
    assert!(
        growth < 50.0,
        "10,000 failed logins grew the server by {growth:.1} MiB"
    );

    // 3. 1,500 slow clients for 30 s, under a 1,024 open-file limit: health checks and
    // webhooks are answered throughout, and the process never exits.
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            sb.create_customer(json!({"email": format!("steady{i}@example.jp"), "name01": "平常", "name02": format!("{i}")}))
                .await,
        );
    }
    fb.settle(SEARCH, 12, Duration::from_secs(60)).await;
    let attack = slowloris(&fb, &hook, &ids, 1500, Duration::from_secs(30)).await;
    assert!(fb.server_alive(), "the server survived");
    assert_eq!(
        attack.health_failed, 0,
        "every health check was answered: {attack:?}"
    );
    assert_eq!(attack.webhooks_accepted, attack.webhooks_sent, "{attack:?}");
    assert!(attack.webhooks_sent >= 5, "{attack:?}");
    let runs = fb
        .settle(SEARCH, 12 + attack.webhooks_sent, Duration::from_secs(60))
        .await;
    assert!(
        runs.iter().all(|r| r["status"] == "succeeded"),
        "every run synced"
    );
    let accounts = sb.accounts().await;
    assert_eq!(
        accounts.len(),
        sb.customers().await.len(),
        "one Account per customer"
    );

    record(&Tally {
        scenario: "10. hostile clients (see below)",
        db: db.name(),
        events: runs.len(),
        succeeded: runs.iter().filter(|r| r["status"] == "succeeded").count(),
        failed: runs.iter().filter(|r| r["status"] == "failed").count(),
        duplicates: accounts.len() - sb.customers().await.len(),
        lost: 0,
    });
    record_figures(&format!(
        "| {} | parallel guesses: {checked} of 100 checked, {refused} answered 429; peak growth {parallel_growth:.1} MiB | 10,000 failed logins ({statuses:?} by status): {growth:+.1} MiB | slow clients: {} connections opened, {} cut by the server; health {}/{} answered (slowest {} ms); webhooks {}/{} accepted and synced |",
        db.name(),
        attack.opened,
        attack.cut,
        attack.health_ok,
        attack.health_ok + attack.health_failed,
        attack.slowest_health.as_millis(),
        attack.webhooks_accepted,
        attack.webhooks_sent,
    ));
}

#[derive(Debug, Default)]
struct Attack {
    opened: usize,
    cut: usize,
    health_ok: usize,
    health_failed: usize,
    health_errors: Vec<String>,
    slowest_health: Duration,
    webhooks_sent: usize,
    webhooks_accepted: usize,
}

/// `n` slow clients — a third silent, a third trickling headers, a third trickling a
/// webhook body — each reconnecting 200 ms after it is cut off, for `length`; meanwhile a health check
/// every half second and a real customer webhook every three seconds.
async fn slowloris(fb: &Flowbot, hook: &str, ids: &[u64], n: usize, length: Duration) -> Attack {
    let addr = fb.url.trim_start_matches("http://").to_string();
    let path = hook
        .split_once("/hooks/")
        .map(|(_, p)| format!("/hooks/{p}"))
        .unwrap();
    let until = Instant::now() + length;
    let opened = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..n)
        .map(|i| {
            let (addr, path, opened, cut) = (addr.clone(), path.clone(), opened.clone(), cut.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let start: Vec<u8> = match i % 3 {
                        0 => Vec::new(),
                        1 => format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").into_bytes(),
                        _ => format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\nx-ecf-event: customer_created\r\ncontent-length: 100000\r\n\r\n{{").into_bytes(),
                    };
                    let mut alive = s.write_all(&start).await.is_ok();
                    let mut buf = [0u8; 512];
                    while alive && Instant::now() < until {
                        // A byte a second (none for the silent ones); the server closing
                        // the connection ends this one.
                        tokio::select! {
                            r = s.read(&mut buf) => {
                                alive = matches!(r, Ok(n) if n > 0);
                            }
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                if i % 3 != 0 {
                                    let byte: &[u8] = if i % 3 == 1 { b"X" } else { b" " };
                                    alive = s.write_all(byte).await.is_ok();
                                }
                            }
                        }
                    }
                    if !alive {
                        cut.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        })
        .collect();
    let mut a = Attack::default();
    let http = fresh_client();
    let mut tick = 0u64;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tick += 1;
        let t = Instant::now();
        match http.get(format!("{}/healthz", fb.url)).send().await {
            Ok(r) if r.status() == 200 => a.health_ok += 1,
            // What went wrong, for the report: a status, a timeout or a reset.
            Ok(r) => {
                a.health_failed += 1;
                a.health_errors.push(format!("status {}", r.status()));
            }
            Err(e) => {
                a.health_failed += 1;
                a.health_errors.push(format!("{e:?}"));
            }
        }
        a.slowest_health = a.slowest_health.max(t.elapsed());
        if tick.is_multiple_of(6) {
            a.webhooks_sent += 1;
            let id = ids[a.webhooks_sent % ids.len()];
            let r = http
                .post(hook)
                .header("content-type", "application/json")
                .header("x-ecf-event", "customer_updated")
                .body(json!({ "id": id.to_string() }).to_string())
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 202 => a.webhooks_accepted += 1,
                Ok(r) => eprintln!("webhook during the attack: {}", r.status()),
                Err(e) => eprintln!("webhook during the attack: {e:?}"),
            }
        }
    }
    for t in attackers {
        let _ = t.await;
    }
    a.opened = opened.load(Ordering::Relaxed);
    a.cut = cut.load(Ordering::Relaxed);
    a
}
