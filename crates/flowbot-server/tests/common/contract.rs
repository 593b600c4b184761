//! The API description held to what the server really does: a recording proxy stands
//! between a test and flowbot, and every request and answer that passed through it is
//! checked against `/api/v1/openapi.json` when the proxy is dropped — the route and its
//! method are described, query parameters are declared, a successful answer has a
//! described status, media type and schema, an accepted request body fits its schema, and
//! a refusal is the error envelope. The schemas are checked by an independent JSON Schema
//! 2020-12 validator (ajv, which `./test.sh` installs from npm).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// One request and its answer, as they crossed the proxy.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: Vec<String>,
    pub request_type: Option<String>,
    pub request: Bytes,
    pub status: u16,
    pub answer_type: Option<String>,
    pub answer: Bytes,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Exchange>>>,
}

/// A recording proxy in front of a flowbot; checks what it saw when dropped.
pub struct Recorder {
    pub url: String,
    seen: Arc<Mutex<Vec<Exchange>>>,
    stop: CancellationToken,
}

impl Recorder {
    pub async fn start(upstream: &str) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            base: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            seen: seen.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await
                .unwrap()
        });
        Recorder { url, seen, stop }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.cancel();
        // A test that failed already has said why; this would only add noise.
        if std::thread::panicking() {
            return;
        }
        let doc = flowbot_server::openapi::build(&flowbot_server::route_docs());
        let problems = check(&doc, &self.exchanges());
        assert!(
            problems.is_empty(),
            "the API did not do what /api/v1/openapi.json says:\n{}",
            problems.join("\n")
        );
    }
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let request = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let target = format!(
        "{}{}",
        up.base,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = parts.headers.clone();
    for h in ["connection", "content-length", "transfer-encoding"] {
        headers.remove(h);
    }
    let sent = up
        .http
        .request(parts.method.clone(), &target)
        .headers(headers)
        .body(request.clone())
        .send()
        .await;
    let r = match sent {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = r.status();
    let mut answer_headers: HeaderMap = r.headers().clone();
    for h in ["connection", "content-length", "transfer-encoding"] {
        answer_headers.remove(h);
    }
    let answer = r.bytes().await.unwrap_or_default();
    let media = |h: &HeaderMap| {
        h.get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
    };
    up.seen.lock().unwrap().push(Exchange {
        method: parts.method.as_str().to_lowercase(),
        path: parts.uri.path().to_string(),
        query: parts
            .uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.split('=').next())
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        request_type: media(&parts.headers),
        request,
        status: status.as_u16(),
        answer_type: media(&answer_headers),
        answer: answer.clone(),
    });
    let mut resp = (status, answer).into_response();
    *resp.headers_mut() = answer_headers;
    resp
}

/// The described route a concrete path and method belong to: the one with the most
/// literal segments, so `/samples/trigger/fetch` wins over `/samples/{step}`.
fn route_of<'d>(doc: &'d Value, method: &str, path: &str) -> Option<(&'d str, &'d Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .filter_map(|(pattern, item)| {
            let parts: Vec<&str> = pattern.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (p, s) in parts.iter().zip(&segments) {
                if p.starts_with('{') {
                    continue;
                }
                if p != s {
                    return None;
                }
                literal += 1;
            }
            let op = item.get(method)?;
            Some((literal, pattern.as_str(), op))
        })
        .max_by_key(|(literal, _, _)| *literal)
        .map(|(_, pattern, op)| (pattern, op))
}

/// Everything the exchanges and the description disagree on.
pub fn check(doc: &Value, exchanges: &[Exchange]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut instances = Vec::new();
    for x in exchanges {
        let what = format!("{} {} → {}", x.method.to_uppercase(), x.path, x.status);
        let Some((pattern, op)) = route_of(doc, &x.method, &x.path) else {
            // The pages and their assets are not the API; a refused unknown route is right.
            let api = ["/api/", "/hooks/", "/oauth/"]
                .iter()
                .any(|p| x.path.starts_with(p));
            if api && !matches!(x.status, 404 | 405) {
                problems.push(format!("{what}: no such route is described"));
            }
            continue;
        };
        let what = format!("{what} ({pattern})");
        let success = (200..300).contains(&x.status) || (300..400).contains(&x.status);
        if success {
            let query: Vec<&Value> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .collect();
            // A free-form parameter (`style: form`, an object) takes any name.
            let any_name = query.iter().any(|p| p["schema"]["type"] == "object");
            let declared: Vec<&str> = query.iter().filter_map(|p| p["name"].as_str()).collect();
            for q in &x.query {
                if !any_name && !declared.contains(&q.as_str()) {
                    problems.push(format!("{what}: query parameter `{q}` is not described"));
                }
            }
            if let Some(content) = op["requestBody"]["content"].as_object() {
                let sent = x.request_type.as_deref().unwrap_or("");
                let optional = op["requestBody"]["required"] == json!(false);
                if x.request.is_empty() && optional {
                    // Left out, as the description allows.
                } else if x.request.is_empty() {
                    problems.push(format!("{what}: accepted without the body it describes"));
                } else if !content.contains_key(sent) {
                    problems.push(format!(
                        "{what}: accepted a {sent} body it does not describe"
                    ));
                } else if sent == "application/json" {
                    match (
                        content.get(sent),
                        serde_json::from_slice::<Value>(&x.request),
                    ) {
                        (Some(media), Ok(body)) => instances.push(json!({
                            "what": format!("{what}: the request body"),
                            "schema": media["schema"],
                            "instance": body,
                        })),
                        (None, _) => problems.push(format!(
                            "{what}: accepted a {sent} body it does not describe"
                        )),
                        (_, Err(e)) => {
                            problems.push(format!("{what}: accepted a body that is not JSON: {e}"))
                        }
                    }
                }
            } else if !x.request.is_empty() && x.request.as_ref() != b"{}" {
                // (A client's empty object to a route without a body is harmless.)
                problems.push(format!("{what}: accepted a body it does not describe"));
            }
            let Some(answer) = op["responses"].get(x.status.to_string()) else {
                problems.push(format!("{what}: status {} is not described", x.status));
                continue;
            };
            match answer["content"].as_object() {
                None => {
                    if !x.answer.is_empty() {
                        problems.push(format!("{what}: answered a body where none is described"));
                    }
                }
                Some(content) => {
                    let got = x.answer_type.as_deref().unwrap_or("");
                    // A described range (`image/*`) takes any type of its kind.
                    let described = content.get(got).or_else(|| {
                        let kind = got.split('/').next().unwrap_or("");
                        content.get(&format!("{kind}/*"))
                    });
                    let Some(media) = described else {
                        problems.push(format!(
                            "{what}: answered {got:?}, described {:?}",
                            content.keys().collect::<Vec<_>>()
                        ));
                        continue;
                    };
                    if got == "application/json" {
                        match serde_json::from_slice::<Value>(&x.answer) {
                            Ok(body) => instances.push(json!({
                                "what": format!("{what}: the answer"),
                                "schema": media["schema"],
                                "instance": body,
                            })),
                            Err(e) => problems.push(format!("{what}: the answer is not JSON: {e}")),
                        }
                    }
                }
            }
        } else {
            // Every refusal of a described route is the error envelope.
            match serde_json::from_slice::<Value>(&x.answer) {
                Ok(body) if x.answer_type.as_deref() == Some("application/json") => {
                    instances.push(json!({
                        "what": format!("{what}: the refusal"),
                        "schema": { "$ref": "#/components/schemas/Error" },
                        "instance": body,
                    }))
                }
                _ => problems.push(format!(
                    "{what}: the refusal is not the JSON error envelope: {:?}",
                    String::from_utf8_lossy(&x.answer)
                )),
            }
        }
    }
    problems.extend(validate(doc, instances));
    problems
}

fn npm_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/npm/node_modules")
}

/// Each instance against its schema, by ajv: the problems, each naming the exchange.
fn validate(doc: &Value, instances: Vec<Value>) -> Vec<String> {
    if instances.is_empty() {
        return Vec::new();
    }
    let ajv = npm_root().join("ajv/dist/2020.js");
    assert!(
        ajv.exists(),
        "{} is missing: run ./test.sh, which installs ajv from npm",
        ajv.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("contract.json");
    std::fs::write(
        &input,
        json!({ "components": doc["components"]["schemas"], "items": instances }).to_string(),
    )
    .unwrap();
    // The document's `#/components/schemas/X` references, resolved in one schema resource.
    let script = format!(
        r##"
const Ajv2020 = require({ajv:?});
const {{ components, items }} = JSON.parse(require('fs').readFileSync({input:?}, 'utf8'));
const ajv = new Ajv2020({{ strict: false, validateFormats: false, allErrors: true }});
const relink = (s) => JSON.parse(JSON.stringify(s).replaceAll('"#/components/schemas/', '"api#/$defs/'));
ajv.addSchema({{ $id: 'api', $defs: relink(components) }});
const problems = [];
for (const it of items) {{
  const validate = ajv.compile(relink(it.schema));
  if (!validate(it.instance)) {{
    problems.push(`${{it.what}}: ${{ajv.errorsText(validate.errors)}} in ${{JSON.stringify(it.instance).slice(0, 400)}}`);
  }}
}}
console.log(JSON.stringify(problems));
"##,
        ajv = ajv.display().to_string(),
        input = input.display().to_string(),
    );
    let out = std::process::Command::new("node")
        .args(["-e", &script])
        .output()
        .expect("node runs (apt-get install nodejs)");
    let said = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(said.trim())
        .unwrap_or_else(|e| panic!("{e}: {said}{}", String::from_utf8_lossy(&out.stderr)))
}
