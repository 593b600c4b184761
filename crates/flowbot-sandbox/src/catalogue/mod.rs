//! One simulator for every app of the catalogue. Each app file's actions describe their
//! requests and carry the vendor's documented example answers (`examples`); this server
//! reads the files, answers each request with the example of the action it matches, and
//! injects faults per action. With `stateful`, kintone records and HubSpot contacts are
//! kept for real (add, update, upsert, search), so flows that write and read them back —
//! and crash tests of their upserts — can be run offline.
//!
//! An app is served under its id: a connection whose URL is `https://example.cybozu.com`
//! points at `{url}/kintone` instead (see [`CatalogueSim::rewrite`]). Control routes:
//! `POST /__control/faults` (operations are `app.action`), `GET /__control/requests`,
//! `GET /__control/records/{app}`, `GET /__control/apps`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::faults::Faults;

mod records;
pub mod webhooks;

pub use records::Records;

/// The largest request body the simulator reads.
const MAX_BODY: usize = 1 << 20;
/// How many requests the log keeps (the oldest leave first).
const MAX_LOG: usize = 2_000;
/// The part of a body the log keeps (the checks compare small bodies whole).
const MAX_LOGGED_BODY: usize = 64 << 10;

/// An app file, as the simulator reads it.
#[derive(Debug, Clone)]
pub struct AppSource {
    pub id: String,
    pub yaml: String,
}

#[derive(Debug, Clone, Default)]
pub struct CatalogueConfig {
    /// Keep kintone records and HubSpot contacts instead of answering with examples.
    pub stateful: bool,
}

/// An app's actions, as routes.
struct SimApp {
    id: String,
    name: String,
    routes: Vec<Route>,
}

struct Route {
    action: String,
    /// None when the action's method is chosen at run time.
    method: Option<String>,
    path: regex::Regex,
    /// Literal characters in the path: the most specific route wins.
    literal: usize,
    examples: Vec<Example>,
}

struct Example {
    path: String,
    query: BTreeMap<String, String>,
    request_body: Value,
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// One request as it arrived.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seen {
    pub app: String,
    /// The action it matched (empty when none did).
    pub action: String,
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    /// JSON when it parses, else the text.
    pub body: Value,
    #[serde(skip)]
    pub raw: Vec<u8>,
}

pub struct CatalogueSim {
    apps: Vec<SimApp>,
    stateful: bool,
    pub faults: Faults,
    log: Mutex<std::collections::VecDeque<Seen>>,
    records: Mutex<Records>,
    url: OnceLock<String>,
}

pub async fn start(
    sources: &[AppSource],
    config: CatalogueConfig,
    port: u16,
) -> std::io::Result<crate::Running<CatalogueSim>> {
    let sim = Arc::new(CatalogueSim::new(sources, config).map_err(std::io::Error::other)?);
    let router = Router::new()
        .route("/__control/faults", post(set_faults))
        .route("/__control/requests", get(list_requests))
        .route("/__control/records/{app}", get(list_records))
        .route("/__control/apps", get(list_apps))
        .route("/{app}/{*rest}", any(serve_app))
        .with_state(sim.clone());
    crate::serve(sim, router, port, |s, url| {
        let _ = s.url.set(url.to_string());
    })
    .await
}

impl CatalogueSim {
    pub fn new(sources: &[AppSource], config: CatalogueConfig) -> Result<CatalogueSim, String> {
        let apps = sources
            .iter()
            .map(read_app)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CatalogueSim {
            apps,
            stateful: config.stateful,
            faults: Faults::default(),
            log: Mutex::new(std::collections::VecDeque::new()),
            records: Mutex::new(Records::default()),
            url: OnceLock::new(),
        })
    }

    /// The apps served, with their names.
    pub fn apps(&self) -> Vec<(String, String)> {
        self.apps
            .iter()
            .map(|a| (a.id.clone(), a.name.clone()))
            .collect()
    }

    /// `http://127.0.0.1:PORT`, once serving.
    pub fn url(&self) -> &str {
        self.url.get().map(String::as_str).unwrap_or("")
    }

    /// Where `url` (a connection's https URL) goes instead: this simulator, under the app.
    pub fn rewrite(&self, app: &str, url: &str) -> String {
        let base = self.url.get().map(String::as_str).unwrap_or("");
        rewrite(base, app, url)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.log.lock().expect("log").iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.log.lock().expect("log").clear();
    }

    /// The records kept for an app (`stateful`): kintone records, HubSpot contacts.
    pub fn records(&self, app: &str) -> Vec<Value> {
        self.records.lock().expect("records").list(app)
    }

    /// The action a request is for: the most specific path, and among routes alike the
    /// one with an example of exactly this request.
    fn route(
        &self,
        app: &SimApp,
        method: &str,
        path: &str,
        query: &BTreeMap<String, String>,
    ) -> Option<usize> {
        app.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method.as_deref().is_none_or(|m| m == method))
            .filter(|(_, r)| r.path.is_match(path))
            .max_by_key(|(_, r)| {
                let exact = r
                    .examples
                    .iter()
                    .any(|e| e.path == path && &e.query == query);
                (r.literal, exact)
            })
            .map(|(i, _)| i)
    }
}

/// `https://host/p` → `{base}/{app}/p`; a URL that is not http(s) is left alone.
pub fn rewrite(base: &str, app: &str, url: &str) -> String {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return url.to_string();
    };
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{base}/{app}{path}")
}

fn read_app(src: &AppSource) -> Result<SimApp, String> {
    let file: Value = serde_yaml::from_str(&src.yaml).map_err(|e| format!("{}: {e}", src.id))?;
    let name = file["name"]["en"].as_str().unwrap_or(&src.id).to_string();
    let mut routes = Vec::new();
    for a in file["actions"].as_array().into_iter().flatten() {
        let req = &a["request"];
        let method = req["method"].as_str().unwrap_or("GET").trim();
        let template = req["path"].as_str().unwrap_or("/");
        let (path, literal) = path_pattern(template);
        let examples = a["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| Example {
                path: e["request"]["path"].as_str().unwrap_or("").to_string(),
                query: strings(&e["request"]["query"]),
                request_body: e["request"]["body"].clone(),
                status: e["response"]["status"].as_u64().unwrap_or(200) as u16,
                headers: strings(&e["response"]["headers"]),
                body: e["response"]["body"].clone(),
            })
            .collect();
        routes.push(Route {
            action: a["id"].as_str().unwrap_or("").to_string(),
            method: (!method.contains("{{")).then(|| method.to_uppercase()),
            path: regex::Regex::new(&path).map_err(|e| format!("{}: {e}", src.id))?,
            literal,
            examples,
        });
    }
    Ok(SimApp {
        id: src.id.clone(),
        name,
        routes,
    })
}

/// A path template as a pattern: each `{{ … }}` one segment's worth; a path that is one
/// template as a whole (a URL the user gives) matches any path. Anything before the
/// template's own path (the base URL's path) may come first.
fn path_pattern(template: &str) -> (String, usize) {
    let t = template.trim();
    if t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1 {
        return ("^/.*$".into(), 0);
    }
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .map_or(t, |rest| rest.find('/').map_or("", |i| &rest[i..]));
    let mut out = String::from("^.*");
    let mut literal = 0;
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        out.push_str(&regex::escape(&rest[..start]));
        literal += start;
        out.push_str("[^/]+");
        rest = rest[start..]
            .find("}}")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    literal += rest.len();
    out.push_str(&regex::escape(rest));
    out.push('$');
    (out, literal)
}

fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            (k.clone(), text)
        })
        .collect()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

async fn serve_app(
    State(sim): State<Arc<CatalogueSim>>,
    Path((app_id, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(app) = sim.apps.iter().find(|a| a.id == app_id) else {
        return error(StatusCode::NOT_FOUND, &format!("no app `{app_id}` here"));
    };
    if body.len() > MAX_BODY {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 1 MiB");
    }
    let path = format!("/{rest}");
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<BTreeMap<String, String>>()
        })
        .unwrap_or_default();
    let method = method.as_str().to_string();
    let route = sim.route(app, &method, &path, &query);
    let parsed = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let seen = Seen {
        app: app.id.clone(),
        action: route.map_or(String::new(), |i| app.routes[i].action.clone()),
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: if body.is_empty() {
            Value::Null
        } else if body.len() > MAX_LOGGED_BODY {
            Value::String(format!("({} bytes, not kept)", body.len()))
        } else {
            parsed.clone()
        },
        raw: body[..body.len().min(MAX_LOGGED_BODY)].to_vec(),
    };
    {
        let mut log = sim.log.lock().expect("log");
        if log.len() >= MAX_LOG {
            log.pop_front();
        }
        log.push_back(seen);
    }
    let Some(i) = route else {
        // OAuth token endpoints are not actions: any token request is granted.
        if method == "POST" && path.ends_with("/token") {
            return Json(json!({
                "access_token": "sandbox-access-token",
                "token_type": "Bearer",
                "expires_in": 3600,
            }))
            .into_response();
        }
        return error(
            StatusCode::NOT_FOUND,
            &format!("no action of {} answers {method} {path}", app.name),
        );
    };
    let route = &app.routes[i];
    let op = format!("{}.{}", app.id, route.action);
    let (latency, injected) = sim.faults.decide(&op);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = injected {
        let mut r = (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({
                "message": e.message.unwrap_or_else(|| "injected fault".into()),
                "code": e.code,
            })),
        )
            .into_response();
        if let Some(s) = e.retry_after {
            r.headers_mut().insert("retry-after", s.into());
        }
        return r;
    }
    let answer = if sim.stateful {
        sim.records
            .lock()
            .expect("records")
            .handle(&app.id, &route.action, &path, &query, &parsed)
    } else {
        None
    };
    let hang = sim.faults.hang_after(&op);
    if !hang.is_zero() {
        tokio::time::sleep(hang).await;
    }
    if let Some((status, body)) = answer {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            Json(body),
        )
            .into_response();
    }
    let same = |e: &&Example| e.path == path && e.query == query;
    let example = route
        .examples
        .iter()
        .filter(same)
        .find(|e| e.request_body.is_null() || body_matches(&e.request_body, &parsed, &body))
        .or_else(|| route.examples.iter().find(same))
        .or_else(|| route.examples.first());
    let Some(e) = example else {
        return Json(json!({})).into_response();
    };
    let mut r = if e.body.is_null() {
        StatusCode::from_u16(e.status)
            .unwrap_or(StatusCode::OK)
            .into_response()
    } else if let Some(text) = e.body.as_str() {
        (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::OK),
            text.to_string(),
        )
            .into_response()
    } else {
        (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::OK),
            Json(e.body.clone()),
        )
            .into_response()
    };
    for (k, v) in &e.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// Whether a request's body is the one an example names (JSON, or form fields).
fn body_matches(want: &Value, parsed: &Value, raw: &[u8]) -> bool {
    if want == parsed {
        return true;
    }
    let fields: Map<String, Value> = url_pairs(&String::from_utf8_lossy(raw))
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    want.as_object() == Some(&fields)
}

/// `a=1&b=x%20y` as decoded pairs.
pub fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A percent-encoded form or query component (`+` is a space).
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit) =>
            {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn set_faults(State(sim): State<Arc<CatalogueSim>>, Json(v): Json<Value>) -> Response {
    match crate::faults::parse(v) {
        Ok(cfg) => {
            sim.faults.set(cfg);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn list_requests(State(sim): State<Arc<CatalogueSim>>) -> Json<Value> {
    Json(json!(sim.requests()))
}

async fn list_records(
    State(sim): State<Arc<CatalogueSim>>,
    Path(app): Path<String>,
) -> Json<Value> {
    Json(json!(sim.records(&app)))
}

async fn list_apps(State(sim): State<Arc<CatalogueSim>>) -> Json<Value> {
    let apps: Map<String, Value> = sim
        .apps
        .iter()
        .map(|a| {
            let base = sim.url.get().cloned().unwrap_or_default();
            (
                a.id.clone(),
                json!({ "name": a.name, "url": format!("{base}/{}", a.id) }),
            )
        })
        .collect();
    Json(Value::Object(apps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_patterns_and_urls_are_rewritten() {
        let (p, n) = path_pattern("/k/v1/record/{{ input.id }}.json");
        let re = regex::Regex::new(&p).unwrap();
        assert!(re.is_match("/k/v1/record/12.json"));
        assert!(re.is_match("/prefix/k/v1/record/12.json"));
        assert!(!re.is_match("/k/v1/record/1/2.json"));
        assert_eq!(n, "/k/v1/record/.json".len());
        assert_eq!(path_pattern("{{ connection.webhook_url }}").0, "^/.*$");
        assert_eq!(
            rewrite(
                "http://127.0.0.1:9",
                "teams",
                "https://x.webhook.office.com/webhookb2/a"
            ),
            "http://127.0.0.1:9/teams/webhookb2/a"
        );
        assert_eq!(
            rewrite("http://h", "k", "https://a.cybozu.com"),
            "http://h/k"
        );
        assert_eq!(
            url_pairs("a=1&b=x%20y+z&c"),
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into())
            ]
        );
    }
}
