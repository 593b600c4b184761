//! The REST API against the real server on port 0, on SQLite and (with TEST_DATABASE_URL)
//! PostgreSQL.

mod common;

use flowbot_server::routes::Kind;
use flowbot_store::{Store, StoreConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A flowbot behind the recording proxy: everything a test sends through `url` is held to
/// the API description when the test ends (`common::contract`).
struct Api {
    url: String,
    _recorder: common::contract::Recorder,
    _app: common::TestApp,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
    name: &'static str,
}

async fn fresh_pg() -> Option<String> {
    let base = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let db = format!(
        "flowbot_t_{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let ok = std::process::Command::new("psql")
        .args([base.as_str(), "-q", "-c", &format!("CREATE DATABASE {db}")])
        .status()
        .unwrap()
        .success();
    assert!(ok, "psql could not create a test database");
    Some(format!("{}/{db}", base.rsplit_once('/').unwrap().0))
}

async fn apis() -> Vec<Api> {
    let mut out = vec![api(None, "sqlite").await];
    if let Some(url) = fresh_pg().await {
        out.push(api(Some(url), "postgres").await);
    }
    out
}

async fn api(database_url: Option<String>, name: &'static str) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig {
        database_url,
        data_dir: dir.path().into(),
        secret_key: None,
    })
    .await
    .unwrap();
    let app = common::spawn_server(&store, "correct horse").await;
    let recorder = common::contract::Recorder::start(&app.url).await;
    Api {
        url: recorder.url.clone(),
        _recorder: recorder,
        _app: app,
        _dir: dir,
        http: reqwest::Client::new(),
        name,
    }
}

/// A signed-in browser-like client: its session cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Api {
    async fn login(&self, password: &str) -> Result<Session, StatusCode> {
        let r = self
            .http
            .post(format!("{}/api/v1/login", self.url))
            .json(&json!({"username": "admin", "password": password}))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            return Err(r.status());
        }
        let cookie = common::set_cookie(&r);
        assert!(r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly"));
        let body: Value = r.json().await.unwrap();
        Ok(Session {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        })
    }

    fn req(&self, s: &Session, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf)
    }
}

#[tokio::test]
async fn every_api_route_refuses_a_caller_without_session_or_token() {
    let a = api(None, "sqlite").await;
    // The router's own table: a route cannot exist without being here.
    let routes: Vec<_> = flowbot_server::route_docs()
        .into_iter()
        .filter(|d| d.kind == Kind::Api)
        .collect();
    assert!(routes.len() > 50, "{} routes", routes.len());
    for d in routes.iter().filter(|d| d.perm().is_some()) {
        let method = d.method;
        let path = d.path_params().iter().fold(d.path.to_string(), |p, name| {
            p.replace(&format!("{{{name}}}"), "x")
        });
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = a
            .http
            .request(m.clone(), format!("{}{path}", a.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        let r = a
            .http
            .request(m, format!("{}{path}", a.url))
            .header("authorization", "Bearer fbt_nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} with a wrong token");
    }
    let s = a.login("correct horse").await.unwrap();
    let doc: Value = a
        .req(&s, reqwest::Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for d in &routes {
        let op = &doc["paths"][d.path][d.method];
        assert!(op.is_object(), "{} {} is documented", d.method, d.path);
        let declared: Vec<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(declared, d.path_params(), "{} {}", d.method, d.path);
    }
    // Request bodies carry the schema of the type their handler reads them into.
    let login = &doc["paths"]["/api/v1/login"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(login["$ref"], "#/components/schemas/LoginBody", "{login}");
    let schema = &doc["components"]["schemas"]["LoginBody"];
    assert_eq!(
        schema["required"],
        json!(["username", "password"]),
        "{schema}"
    );
    let typed = routes.iter().filter(|d| !d.bodies.is_empty()).count();
    assert!(typed >= 15, "{typed} routes take a body");
    // Every JSON answer has the schema of its Rust type.
    for d in &routes {
        for answer in &d.answers {
            if answer.media == Some("application/json") {
                assert!(
                    answer.schema.is_some(),
                    "{} {}: the answer has no schema",
                    d.method,
                    d.path
                );
            }
        }
    }
    let runs = &doc["paths"]["/api/v1/runs"]["get"]["parameters"];
    let limit = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap_or_else(|| panic!("{runs}"));
    assert_eq!(limit["in"], "query");
    assert!(
        limit["schema"]["type"].to_string().contains("integer"),
        "{limit}"
    );
    let run = &doc["paths"]["/api/v1/runs/{id}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert_eq!(run["$ref"], "#/components/schemas/RunDetail", "{run}");
    assert_valid_openapi(&doc);
}

/// The check every API test's exchanges go through can fail: answers and requests that
/// break the description are each reported.
#[test]
fn the_contract_check_reports_what_the_description_does_not_allow() {
    use common::contract::{check, Exchange};
    let doc = flowbot_server::openapi::build(&flowbot_server::route_docs());
    let exchange =
        |method: &str, path: &str, query: &[&str], request: Value, status, answer: Value| {
            Exchange {
                method: method.into(),
                path: path.into(),
                query: query.iter().map(|q| q.to_string()).collect(),
                request_type: (!request.is_null()).then(|| "application/json".into()),
                request: if request.is_null() {
                    Default::default()
                } else {
                    request.to_string().into()
                },
                status,
                answer_type: Some("application/json".into()),
                answer: answer.to_string().into(),
            }
        };
    let good = [
        exchange(
            "post",
            "/api/v1/login",
            &[],
            json!({"username": "a", "password": "b"}),
            200,
            json!({"user": {"id": "u", "username": "a", "display_name": "A", "email": "",
                            "language": "ja", "time_zone": "Asia/Tokyo", "role": "owner"},
                   "csrf_token": "c"}),
        ),
        exchange(
            "get",
            "/api/v1/runs",
            &["limit"],
            Value::Null,
            200,
            json!({"runs": [], "next_before": null}),
        ),
        exchange(
            "get",
            "/api/v1/flows/x",
            &[],
            Value::Null,
            404,
            json!({"error": {"code": "not_found", "message": "no"}}),
        ),
    ];
    assert_eq!(check(&doc, &good), Vec::<String>::new());
    let bad = [
        // The sign-in answer without its CSRF token.
        exchange(
            "post",
            "/api/v1/login",
            &[],
            json!({"username": "a", "password": "b"}),
            200,
            json!({"user": {"id": "u", "username": "a", "display_name": "A", "email": "",
                            "language": "ja", "time_zone": "Asia/Tokyo", "role": "owner"}}),
        ),
        // An accepted body the description does not allow.
        exchange(
            "post",
            "/api/v1/tokens",
            &[],
            json!({"title": "x"}),
            201,
            json!({"token": "t", "info": {"id": "i", "name": "x", "read_only": false, "created_at": 1, "last_used_at": null}}),
        ),
        // A status the route does not describe.
        exchange(
            "post",
            "/api/v1/tokens",
            &[],
            json!({"name": "x"}),
            200,
            json!({"token": "t", "info": {"id": "i", "name": "x", "read_only": false, "created_at": 1, "last_used_at": null}}),
        ),
        // An undeclared query parameter.
        exchange(
            "get",
            "/api/v1/runs",
            &["page"],
            Value::Null,
            200,
            json!({"runs": [], "next_before": null}),
        ),
        // A refusal outside the envelope.
        exchange(
            "get",
            "/api/v1/flows/x",
            &[],
            Value::Null,
            404,
            json!({"message": "no"}),
        ),
        // A route nobody described.
        exchange(
            "get",
            "/api/v1/secret-route",
            &[],
            Value::Null,
            200,
            json!({}),
        ),
    ];
    let problems = check(&doc, &bad);
    for (needle, x) in [
        ("csrf_token", "POST /api/v1/login"),
        ("request body", "POST /api/v1/tokens → 201"),
        ("status 200 is not described", "POST /api/v1/tokens → 200"),
        ("`page`", "GET /api/v1/runs"),
        ("refusal", "GET /api/v1/flows/x → 404"),
        ("no such route", "GET /api/v1/secret-route"),
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle) && p.contains(x)),
            "{x}: nothing says {needle}: {problems:#?}"
        );
    }
    assert_eq!(problems.len(), 6, "{problems:#?}");
}

/// Check the document against the OpenAPI 3.1 specification with an independent validator
/// (`@seriousme/openapi-schema-validator`, which `./test.sh` installs from npm).
fn assert_valid_openapi(doc: &Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/npm");
    let validator = root.join("node_modules/@seriousme/openapi-schema-validator/index.js");
    assert!(
        validator.exists(),
        "{} is missing: run ./test.sh, which installs the OpenAPI validator from npm",
        validator.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, doc.to_string()).unwrap();
    let script = format!(
        "import {{ Validator }} from {validator:?};\n\
         import {{ readFileSync }} from 'node:fs';\n\
         const v = new Validator();\n\
         const r = await v.validate(JSON.parse(readFileSync({spec:?}, 'utf8')));\n\
         console.log(JSON.stringify({{ valid: r.valid, version: v.version, errors: r.errors }}));",
        validator = validator.display().to_string(),
        spec = spec.display().to_string(),
    );
    let out = std::process::Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .output()
        .expect("node runs (apt-get install nodejs)");
    let said = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(said.trim())
        .unwrap_or_else(|e| panic!("{e}: {said}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["version"], "3.1", "{r}");
    assert_eq!(r["valid"], true, "the OpenAPI document is invalid: {r:#}");
}

#[tokio::test]
async fn logins_are_checked_rate_limited_and_csrf_protected() {
    let a = api(None, "sqlite").await;
    assert_eq!(a.login("wrong").await.err(), Some(StatusCode::UNAUTHORIZED));
    let s = a.login("correct horse").await.unwrap();
    let me: Value = a
        .req(&s, reqwest::Method::GET, "/api/v1/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["username"], "admin");
    // A cookie alone cannot change anything: the CSRF token must come with it.
    let r = a
        .http
        .post(format!("{}/api/v1/tokens", a.url))
        .header("cookie", &s.cookie)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = a
        .req(&s, reqwest::Method::POST, "/api/v1/tokens")
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token: Value = r.json().await.unwrap();
    let bearer = token["token"].as_str().unwrap().to_string();
    // Scripts use the token, without cookie or CSRF.
    let r = a
        .http
        .get(format!("{}/api/v1/flows", a.url))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = token["info"]["id"].as_str().unwrap();
    a.req(&s, reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    let r = a
        .http
        .get(format!("{}/api/v1/flows", a.url))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a deleted token stops working");
    // Logout ends the session.
    a.req(&s, reqwest::Method::POST, "/api/v1/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(
        a.req(&s, reqwest::Method::GET, "/api/v1/me")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for _ in 0..10 {
        let _ = a.login("guess").await;
    }
    assert_eq!(
        a.login("correct horse").await.err(),
        Some(StatusCode::TOO_MANY_REQUESTS),
        "locked out for a while"
    );
}

#[tokio::test]
async fn flows_are_imported_with_located_errors_exported_and_versioned() {
    for a in apis().await {
        let s = a.login("correct horse").await.unwrap();
        let bad = "version: 1\nid: x\nname: x\ntrigger: { app: webhook }\nstpes: []\n";
        let r = a
            .req(&s, reqwest::Method::POST, "/api/v1/flows")
            .header("content-type", "application/yaml")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{}", a.name);
        let e: Value = r.json().await.unwrap();
        let d = &e["error"]["diagnostics"];
        assert!(
            d.as_array().unwrap().iter().any(|x| x["line"] == 5
                && x["column"] == 1
                && x["message"]
                    .as_str()
                    .unwrap()
                    .contains("did you mean `steps`")),
            "{e}"
        );

        let good = "version: 1\nid: hello\nname: こんにちは\ntrigger: { app: webhook }\nsteps:\n  - id: a\n    set: { x: 1 }\n";
        let r = a
            .req(&s, reqwest::Method::POST, "/api/v1/flows")
            .json(&json!({"yaml": good}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        assert!(v["webhook_path"]
            .as_str()
            .unwrap()
            .starts_with("/hooks/hello/"));
        let yaml = a
            .req(&s, reqwest::Method::GET, "/api/v1/flows/hello/export")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(yaml, good);
        a.req(&s, reqwest::Method::POST, "/api/v1/flows")
            .header("content-type", "application/yaml")
            .body(good.replace("x: 1", "x: 2"))
            .send()
            .await
            .unwrap();
        let versions: Value = a
            .req(&s, reqwest::Method::GET, "/api/v1/flows/hello/versions")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(versions.as_array().unwrap().len(), 2);
        // Nothing to check before ON: no connections.
        let on: Value = a
            .req(&s, reqwest::Method::POST, "/api/v1/flows/hello/enable")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(on["flow"]["enabled"], true);
        let r = a
            .req(&s, reqwest::Method::DELETE, "/api/v1/flows/hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(
            a.req(&s, reqwest::Method::GET, "/api/v1/flows/hello")
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
}

#[tokio::test]
async fn a_template_stays_off_until_its_connections_work_and_secrets_are_never_shown() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let enable = |lang: &'static str| {
        a.req(
            &s,
            reqwest::Method::POST,
            "/api/v1/flows/ecforce-customer-to-salesforce/enable",
        )
        .header("accept-language", lang)
        .send()
    };
    let r = a
        .req(
            &s,
            reqwest::Method::POST,
            "/api/v1/templates/ecforce-customer-to-salesforce/import",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = enable("en").await.unwrap();
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connection `ecforce` (ecforce) is not chosen"),
        "{e}"
    );
    // Said in the caller's language.
    let r = enable("ja,en;q=0.5").await.unwrap();
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    let m = e["error"]["message"].as_str().unwrap();
    assert!(
        m.starts_with("トリガーは OFF のままです")
            && m.contains("連携「ecforce」（ecforce）が選択されていません"),
        "{m}"
    );

    let ec = flowbot_sandbox::ecforce::start(Default::default(), 0)
        .await
        .unwrap();
    let token = ec.sim.config().access_token.clone();
    let created: Value = a
        .req(&s, reqwest::Method::POST, "/api/v1/connections")
        .json(&json!({"name": "shop", "app": "ecforce", "settings": {"base_url": ec.url, "access_token": "wrong-token"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        created["settings"]["access_token"],
        json!({"set": true}),
        "the secret is write-only"
    );
    assert!(!created.to_string().contains("wrong-token"));
    let id = created["connection"]["id"].as_str().unwrap().to_string();
    let test: Value = a
        .req(
            &s,
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/test"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], false);
    // Chosen but not working: the refusal explains, in plain words, what to do.
    let r = a
        .req(
            &s,
            reqwest::Method::POST,
            "/api/v1/flows/ecforce-customer-to-salesforce/connections",
        )
        .json(&json!({"slot": "ecforce", "connection_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = enable("ja").await.unwrap();
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    let m = e["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("連携「ecforce」が動作しません。アプリがログイン情報を受け付けませんでした"),
        "{m}"
    );
    assert!(!m.contains("wrong-token"), "the secret is not shown: {m}");
    a.req(
        &s,
        reqwest::Method::PUT,
        &format!("/api/v1/connections/{id}"),
    )
    .json(&json!({"name": "shop", "app": "ecforce", "settings": {"access_token": token}}))
    .send()
    .await
    .unwrap();
    let test: Value = a
        .req(
            &s,
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/test"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], true, "{test}");
    let r = a
        .req(
            &s,
            reqwest::Method::POST,
            "/api/v1/flows/ecforce-customer-to-salesforce/connections",
        )
        .json(&json!({"slot": "salesforce", "connection_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "an ecforce connection cannot fill the Salesforce slot"
    );
}

#[tokio::test]
async fn test_trigger_shows_the_next_request_s_obtained_values() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let good = "version: 1\nid: hook\nname: hook\ntrigger: { app: webhook }\nsteps:\n  - id: a\n    set: { x: 1 }\n";
    let v: Value = a
        .req(&s, reqwest::Method::POST, "/api/v1/flows")
        .header("content-type", "application/yaml")
        .body(good)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = v["webhook_path"].as_str().unwrap().to_string();
    let waiting = a
        .req(
            &s,
            reqwest::Method::POST,
            "/api/v1/flows/hook/test-trigger?wait=20",
        )
        .send();
    let waiter = tokio::spawn(async move { waiting.await.unwrap().json::<Value>().await.unwrap() });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    a.http
        .post(format!("{}{path}?src=test", a.url))
        .json(&json!({"email": "taro@example.jp"}))
        .send()
        .await
        .unwrap();
    let got = waiter.await.unwrap();
    assert_eq!(got["received"], true);
    assert_eq!(got["trigger"]["body"]["email"], "taro@example.jp");
    assert_eq!(got["trigger"]["query"]["src"], "test");
}

#[tokio::test]
async fn salesforce_connects_through_oauth_with_pkce_and_keeps_the_refresh_token() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let sf = flowbot_sandbox::salesforce::start(Default::default(), 0)
        .await
        .unwrap();
    let cfg = sf.sim.config().clone();
    let created: Value = a
        .req(&s, reqwest::Method::POST, "/api/v1/connections")
        .json(&json!({"name": "org", "app": "salesforce", "settings": {"my_domain_url": sf.url, "client_id": cfg.client_id, "client_secret": cfg.client_secret}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["connection"]["id"].as_str().unwrap().to_string();
    // Follow the browser's trip by hand: flowbot → Salesforce's approval → flowbot.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The page to come back to is a path on this server, never another site.
    for evil in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let r = a
            .req(
                &s,
                reqwest::Method::POST,
                &format!("/api/v1/connections/{id}/oauth/start"),
            )
            .json(&json!({ "return_to": evil }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{evil}");
    }
    let r = a
        .req(
            &s,
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/oauth/start"),
        )
        .json(&json!({ "return_to": "/flows/sync" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    let authorize = started["authorize_url"].as_str().unwrap().to_string();
    assert!(
        authorize.starts_with(&format!("{}/services/oauth2/authorize?", sf.url))
            && authorize.contains("code_challenge="),
        "{authorize}"
    );
    let r = no_redirect.get(&authorize).send().await.unwrap();
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.contains("/oauth/callback?code="), "{callback}");
    let callback = callback.replacen("http://127.0.0.1:8080", &a.url, 1);
    let r = no_redirect
        .get(&callback)
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/flows/sync?connected=1",
        "back to the page that started the sign-in"
    );
    let shown: Value = a
        .req(&s, reqwest::Method::GET, "/api/v1/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 1);
    let test: Value = a
        .req(
            &s,
            reqwest::Method::POST,
            &format!("/api/v1/connections/{id}/test"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], true, "{test}");
    assert_eq!(
        sf.sim.stats()["refreshes"],
        1,
        "the connection now signs in with the refresh token"
    );
    // A replayed callback is refused.
    let r = no_redirect
        .get(&callback)
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_editor_round_trips_yaml_tests_steps_and_diffs_versions() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let sf = flowbot_sandbox::salesforce::start(Default::default(), 0)
        .await
        .unwrap();
    let cfg = sf.sim.config().clone();
    let created: Value = a
        .req(&s, reqwest::Method::POST, "/api/v1/connections")
        .json(&json!({"name": "org", "app": "salesforce", "settings": {
            "my_domain_url": sf.url, "client_id": cfg.client_id, "client_secret": cfg.client_secret}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conn = created["connection"]["id"].as_str().unwrap().to_string();
    let post = |path: &str, body: Value| a.req(&s, reqwest::Method::POST, path).json(&body).send();
    let yaml = "# a comment\nversion: 1\nid: ed\nname: ed\nconnections:\n  salesforce: { app: salesforce }\ntrigger: { app: manual }\nsteps:\n  - id: prep\n    set: { name: \"{{ trigger.name }}\" }\n  - id: create\n    app: salesforce\n    action: create_record\n    connection: salesforce\n    input:\n      object: Account\n      fields:\n        Name: \"{{ prep.name }}\"\n";

    // YAML → document → YAML: nothing changes; a change touches its line only.
    let parsed: Value = post("/api/v1/editor/parse", json!({ "yaml": yaml }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(parsed["diagnostics"], json!([]));
    let mut doc = parsed["doc"].clone();
    doc["steps"][1]["input"]["object"] = json!("Contact");
    let back: Value = post(
        "/api/v1/editor/yaml",
        json!({ "doc": doc, "header": parsed["header"], "base": yaml }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        back["yaml"],
        json!(yaml.replace("object: Account", "object: Contact"))
    );
    assert_eq!(back["diagnostics"], json!([]));

    // The values available at `create`: the trigger and `prep`, with the sample.
    let r = a
        .req(&s, reqwest::Method::PUT, "/api/v1/flows/ed/samples/trigger")
        .json(&json!({ "name": "x".repeat(300) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let values: Value = post(
        "/api/v1/editor/values",
        json!({ "yaml": yaml, "step_id": "create" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let groups: Vec<&str> = values["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["trigger", "prep"]);
    assert!(values.to_string().contains("trigger.name"), "{values}");

    // Test `prep`, then `create`: a write asks first, and a 300-character Name for a
    // 255-character field is flagged.
    let prep: Value = post(
        "/api/v1/editor/test-step",
        json!({ "yaml": yaml, "step_id": "prep" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(prep["ok"], true, "{prep}");
    let ask: Value = post(
        "/api/v1/editor/test-step",
        json!({ "yaml": yaml, "step_id": "create", "connections": { "salesforce": conn } }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(ask["needs_confirmation"], true, "{ask}");
    assert!(sf.sim.records("Account").is_empty(), "nothing written yet");
    let preview: Value = post(
        "/api/v1/editor/test-step",
        json!({ "yaml": yaml, "step_id": "create", "dry_run": true, "connections": { "salesforce": conn } }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let warning = preview["warnings"][0]["message"].as_str().unwrap_or("");
    assert!(
        warning.contains("Name takes at most 255 characters"),
        "{preview}"
    );
    // A mapping left empty is flagged before it reaches production.
    let empty = yaml.replace(
        "        Name: \"{{ prep.name }}\"\n",
        "        Name: \"{{ prep.name }}\"\n        Mail__c: \"\"\n",
    );
    assert_ne!(empty, yaml);
    let preview: Value = post(
        "/api/v1/editor/test-step",
        json!({ "yaml": empty, "step_id": "create", "dry_run": true, "connections": { "salesforce": conn } }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let said: Vec<&str> = preview["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["message"].as_str())
        .collect();
    assert!(
        said.iter()
            .any(|m| m.starts_with("fields.Mail__c is empty in this test") && m.contains("空です")),
        "{preview}"
    );

    // Describe: objects with labels, fields with type and length.
    let objects: Value = a
        .req(
            &s,
            reqwest::Method::GET,
            &format!("/api/v1/connections/{conn}/describe"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(objects["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "Account" && o["label"] == "取引先"));
    let fields: Value = a
        .req(
            &s,
            reqwest::Method::GET,
            &format!("/api/v1/connections/{conn}/describe?object=Account"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(fields["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "Mail__c" && f["label"] == "メール" && f["length"] == 80));

    // Versions: a diff and a restore.
    for y in [
        yaml.to_string(),
        yaml.replace("object: Account", "object: Contact"),
    ] {
        let r = a
            .req(&s, reqwest::Method::POST, "/api/v1/flows")
            .json(&json!({ "yaml": y }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let diff: Value = a
        .req(
            &s,
            reqwest::Method::GET,
            "/api/v1/flows/ed/diff?from=1&to=2",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let changed: Vec<String> = diff["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["op"] != " ")
        .map(|l| {
            format!(
                "{}{}",
                l["op"].as_str().unwrap(),
                l["text"].as_str().unwrap().trim()
            )
        })
        .collect();
    assert_eq!(changed, ["-object: Account", "+object: Contact"]);
    let r = post("/api/v1/flows/ed/versions/1/restore", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let now: Value = a
        .req(&s, reqwest::Method::GET, "/api/v1/flows/ed")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["flow"]["current_version"], 3);
    assert!(now["yaml"].as_str().unwrap().contains("object: Account"));
}

#[tokio::test]
async fn malformed_requests_answer_in_the_error_envelope() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let cases = [
        (
            reqwest::Method::POST,
            "/api/v1/tokens",
            "{\"name\": ",
            "application/json",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tokens",
            "{\"nom\": \"x\"}",
            "application/json",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/tokens",
            "name=x",
            "text/plain",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/login",
            "not json",
            "application/json",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/runs?limit=many",
            "",
            "application/json",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/no-such-route",
            "",
            "application/json",
        ),
    ];
    for (method, path, body, ct) in cases {
        let r = a
            .req(&s, method.clone(), path)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        assert!(status.is_client_error(), "{method} {path}: {status}");
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{method} {path}: {v}"
        );
    }
}

#[tokio::test]
async fn a_salesforce_domain_with_a_path_is_refused_when_saved() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let r = a
        .req(&s, reqwest::Method::POST, "/api/v1/connections")
        .json(&json!({"name": "org", "app": "salesforce", "settings": {"my_domain_url": "https://acme.my.salesforce.com/lightning/page/home", "client_id": "id", "client_secret": "secret"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("remove `/lightning/page/home`"), "{m}");
    let listed: Value = a
        .req(&s, reqwest::Method::GET, "/api/v1/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing saved");
}

/// An OpenAPI document imported through the API becomes an app that runs at once: its
/// operations are offered, the app file is saved, a flow using it validates and its step
/// test calls the API; a broken app file or a built-in id is refused.
#[tokio::test]
async fn an_imported_openapi_document_becomes_an_app_a_flow_can_use() {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/tickets",
        post(
            |headers: axum::http::HeaderMap, axum::Json(b): axum::Json<Value>| async move {
                axum::Json(json!({
                    "id": "T-1",
                    "title": b["title"],
                    "key": headers.get("x-desk-key").and_then(|v| v.to_str().ok()),
                }))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let desk = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let spec = json!({
        "openapi": "3.0.3",
        "info": { "title": "Help Desk" },
        "servers": [{ "url": format!("{desk}/v1") }],
        "components": { "securitySchemes": { "key": { "type": "apiKey", "in": "header", "name": "X-Desk-Key" } } },
        "paths": {
            "/tickets": { "post": {
                "operationId": "createTicket", "summary": "Open a ticket", "tags": ["tickets"],
                "requestBody": { "content": { "application/json": { "schema": {
                    "type": "object", "required": ["title"], "properties": { "title": { "type": "string" } } } } } },
                "responses": { "200": { "description": "ok", "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "id": { "type": "string", "title": "Ticket ID" } } } } } } }
            } },
            "/users": { "get": { "operationId": "listUsers", "tags": ["admin"], "responses": { "200": { "description": "ok" } } } }
        }
    })
    .to_string();
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let post = |path: &str, body: Value| a.req(&s, reqwest::Method::POST, path).json(&body).send();
    let preview = post(
        "/api/v1/apps/openapi",
        json!({ "spec": spec, "only": ["tickets"] }),
    )
    .await
    .unwrap();
    assert_eq!(preview.status(), 200);
    let preview: Value = preview.json().await.unwrap();
    assert_eq!(preview["operations"].as_array().unwrap().len(), 2);
    let yaml = preview["yaml"].as_str().unwrap().to_string();
    assert!(
        yaml.contains("id: create_ticket") && !yaml.contains("list_users"),
        "{yaml}"
    );
    // A document that cannot be used says where.
    let bad = post(
        "/api/v1/apps/openapi",
        json!({ "spec": "{\"openapi\": \"3.0.0\", \"paths\": {}}" }),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/info/title"),
        "{bad}"
    );
    // Saved, it runs at once.
    let saved = post("/api/v1/apps", json!({ "yaml": yaml })).await.unwrap();
    assert_eq!(saved.status(), 201);
    let apps: Value = a
        .req(&s, reqwest::Method::GET, "/api/v1/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        apps.as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "help_desk"),
        "{apps}"
    );
    let conn: Value = post(
        "/api/v1/connections",
        json!({ "name": "desk", "app": "help_desk", "settings": { "api_key": "dk-1" } }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let conn_id = conn["connection"]["id"].as_str().unwrap().to_string();
    let flow = "version: 1\nid: desk\nname: desk\nconnections:\n  desk: { app: help_desk }\ntrigger: { app: manual }\nsteps:\n  - id: open\n    app: help_desk\n    action: create_ticket\n    connection: desk\n    input:\n      title: \"{{ trigger.subject }}\"\n";
    let r = post("/api/v1/flows", json!({ "yaml": flow }))
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    a.req(
        &s,
        reqwest::Method::PUT,
        "/api/v1/flows/desk/samples/trigger",
    )
    .json(&json!({ "subject": "printer on fire" }))
    .send()
    .await
    .unwrap();
    let tested: Value = post(
        "/api/v1/editor/test-step",
        json!({ "yaml": flow, "step_id": "open", "confirm": true, "connections": { "desk": conn_id } }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(
        tested["output"],
        json!({ "id": "T-1", "title": "printer on fire", "key": "dk-1" })
    );
    // A broken app file: every problem, located; a built-in app's id: refused.
    let broken = post("/api/v1/apps", json!({ "yaml": "flowbot_app: 1\nid: x\n" }))
        .await
        .unwrap();
    assert_eq!(broken.status(), 422);
    let broken: Value = broken.json().await.unwrap();
    assert_eq!(broken["error"]["code"], "invalid_app");
    assert_eq!(broken["error"]["diagnostics"][0]["line"], 1, "{broken}");
    let clash = post(
        "/api/v1/apps",
        json!({ "yaml": "flowbot_app: 1\nid: slack\nname: { en: S, ja: S }\n" }),
    )
    .await
    .unwrap();
    assert_eq!(clash.status(), 409);
}

/// A connection's address is checked when saved, and moving a saved connection to another
/// address asks for its secrets again: they never follow the address unasked.
#[tokio::test]
async fn connection_addresses_are_checked_and_secrets_never_follow_a_changed_one() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let save = |settings: Value| {
        a.req(&s, reqwest::Method::POST, "/api/v1/connections")
            .json(&json!({"name": "kintone", "app": "kintone", "settings": settings}))
            .send()
    };
    let r = save(json!({"domain_url": "http://example.cybozu.com", "api_token": "s3cr3t-value"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "plain http to another host is refused");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`domain_url`"),
        "{v}"
    );
    let r = save(json!({"domain_url": "https://example.cybozu.com", "api_token": "s3cr3t-value"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["connection"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let update = |settings: Value| {
        a.req(
            &s,
            reqwest::Method::PUT,
            &format!("/api/v1/connections/{id}"),
        )
        .json(&json!({"name": "kintone", "app": "kintone", "settings": settings}))
        .send()
    };
    let r = update(json!({"domain_url": "https://attacker.example"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("`domain_url` changed") && m.contains("`api_token`"),
        "{m}"
    );
    assert!(
        !m.contains("s3cr3t-value"),
        "the secret is not repeated: {m}"
    );
    // With the token given again, the move is the user's own.
    let r = update(json!({"domain_url": "https://other.cybozu.com", "api_token": "tok2"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Other changes keep the saved secret.
    let r = update(json!({"login_name": "taro"})).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Using a template twice makes a copy the second time — a new id, a "（コピー）" name, the
/// template's comments kept — and never touches the flow made the first time.
#[tokio::test]
async fn a_template_used_again_becomes_a_copy_never_the_same_flow() {
    let a = api(None, "sqlite").await;
    let s = a.login("correct horse").await.unwrap();
    let import = || async {
        let r = a
            .req(
                &s,
                reqwest::Method::POST,
                "/api/v1/templates/shopify-customer-to-kintone/import",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()
    };
    let first = import().await;
    assert_eq!(first["flow"]["id"], "shopify-customer-to-kintone");
    assert_eq!(first["page"], "/flows/shopify-customer-to-kintone");
    let second = import().await;
    assert_eq!(second["flow"]["id"], "shopify-customer-to-kintone-copy");
    assert_eq!(second["page"], "/flows/shopify-customer-to-kintone-copy");
    let name = second["flow"]["name"].as_str().unwrap();
    assert!(name.ends_with("（コピー）"), "{name}");
    let yaml = second["yaml"].as_str().unwrap();
    assert!(
        yaml.contains("# Shopify → kintone customer sync"),
        "comments kept"
    );
    assert!(
        yaml.contains("\nid: shopify-customer-to-kintone-copy\n"),
        "{yaml}"
    );
    let third = import().await;
    assert_eq!(third["flow"]["id"], "shopify-customer-to-kintone-copy-2");
    let first_again: Value = a
        .req(
            &s,
            reqwest::Method::GET,
            "/api/v1/flows/shopify-customer-to-kintone",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first_again["flow"]["current_version"], 1,
        "the first flow is untouched"
    );
}
