//! The API's OpenAPI document, served at `/api/v1/openapi.json`. Written from one table of
//! routes, which the tests also walk to check that every one refuses a caller without a
//! session or token.

use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, summary) of every `/api/v1` route that needs a caller.
pub const PROTECTED: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/openapi.json", "This document"),
    ("get", "/api/v1/me", "The signed-in user"),
    ("post", "/api/v1/logout", "End the login session"),
    ("get", "/api/v1/tokens", "List your API tokens"),
    ("post", "/api/v1/tokens", "Create an API token (shown once)"),
    ("delete", "/api/v1/tokens/{id}", "Delete an API token"),
    ("get", "/api/v1/flows", "List flows"),
    (
        "post",
        "/api/v1/flows",
        "Import a flow (YAML); problems come back with line and column",
    ),
    (
        "get",
        "/api/v1/flows/{id}",
        "A flow with its YAML and webhook path",
    ),
    (
        "delete",
        "/api/v1/flows/{id}",
        "Delete a flow and its history",
    ),
    ("get", "/api/v1/flows/{id}/export", "The flow's YAML"),
    ("get", "/api/v1/flows/{id}/versions", "The flow's versions"),
    (
        "post",
        "/api/v1/flows/{id}/enable",
        "Turn the trigger ON (after checking the flow and its connections)",
    ),
    ("post", "/api/v1/flows/{id}/disable", "Turn the trigger OFF"),
    (
        "post",
        "/api/v1/flows/{id}/token",
        "Regenerate the webhook token",
    ),
    (
        "post",
        "/api/v1/flows/{id}/connections",
        "Choose the connection for a slot",
    ),
    (
        "post",
        "/api/v1/flows/{id}/rerun-failed",
        "Re-run every failed run from its failed step",
    ),
    ("get", "/api/v1/templates", "List the built-in templates"),
    ("post", "/api/v1/templates/{id}/import", "Import a template"),
    (
        "get",
        "/api/v1/connections",
        "List connections (never their secrets)",
    ),
    ("post", "/api/v1/connections", "Create a connection"),
    (
        "put",
        "/api/v1/connections/{id}",
        "Update a connection (unsent settings keep their value)",
    ),
    ("delete", "/api/v1/connections/{id}", "Delete a connection"),
    ("post", "/api/v1/connections/{id}/test", "Test a connection"),
    (
        "get",
        "/api/v1/runs",
        "List runs (filters: flow, status, since, until; paginated by before)",
    ),
    (
        "get",
        "/api/v1/runs/{id}",
        "A run with every step's input, obtained values, timing and errors",
    ),
    (
        "post",
        "/api/v1/runs/{id}/rerun",
        "Re-run from the failed step or from the start",
    ),
    (
        "post",
        "/api/v1/runs/{id}/cancel",
        "Cancel a queued or running run",
    ),
    ("get", "/api/v1/events", "The event inbox"),
    ("get", "/api/v1/apps", "The apps and their manifests"),
    (
        "get",
        "/api/v1/settings/notifications",
        "Failure-notification channels",
    ),
    (
        "put",
        "/api/v1/settings/notifications",
        "Set the failure-notification channels",
    ),
    (
        "post",
        "/api/v1/settings/notifications/channels",
        "Add a failure-notification channel",
    ),
    (
        "delete",
        "/api/v1/settings/notifications/channels/{index}",
        "Remove a failure-notification channel",
    ),
    (
        "post",
        "/api/v1/validate",
        "Check a flow file without saving it",
    ),
    (
        "post",
        "/api/v1/flows/{id}/test-trigger",
        "Wait for the next webhook request and show what the flow receives",
    ),
    (
        "post",
        "/api/v1/connections/{id}/oauth/start",
        "Start connecting an app through OAuth (authorization code with PKCE): the approval page's URL",
    ),
    ("get", "/metrics", "Prometheus metrics (OpenMetrics text)"),
    (
        "post",
        "/api/v1/editor/parse",
        "A flow file as the editor's document, with its problems",
    ),
    (
        "post",
        "/api/v1/editor/yaml",
        "The editor's document as a flow file, with its problems",
    ),
    (
        "post",
        "/api/v1/editor/values",
        "The obtained values available at a step, with samples",
    ),
    (
        "post",
        "/api/v1/editor/test-step",
        "Run one step with the samples of the steps before it",
    ),
    (
        "get",
        "/api/v1/flows/{id}/samples",
        "The flow's sample values",
    ),
    (
        "put",
        "/api/v1/flows/{id}/samples/{step}",
        "Enter a sample (the trigger's, or a step's)",
    ),
    (
        "post",
        "/api/v1/flows/{id}/samples/trigger/fetch",
        "Take the newest object the trigger's app offers as the trigger's sample",
    ),
    (
        "get",
        "/api/v1/flows/{id}/diff",
        "A line diff between two versions",
    ),
    (
        "post",
        "/api/v1/flows/{id}/versions/{v}/restore",
        "Make an old version current again",
    ),
    (
        "get",
        "/api/v1/connections/{id}/describe",
        "The app's objects, or an object's fields",
    ),
    (
        "get",
        "/api/v1/apps/{app}/describe",
        "Objects and fields an app knows without a connection",
    ),
];

/// Routes open to anyone.
pub const PUBLIC: &[(&str, &str, &str)] = &[
    (
        "post",
        "/api/v1/login",
        "Sign in; sets the session cookie and returns the CSRF token",
    ),
    (
        "get",
        "/oauth/callback",
        "Where an app's OAuth approval page sends the browser back",
    ),
    ("post", "/hooks/{flow_id}/{token}", "Webhook ingress"),
    ("get", "/healthz", "Liveness"),
    ("get", "/readyz", "Readiness (the database answers)"),
];

pub async fn document() -> Json<Value> {
    let mut paths: Map<String, Value> = Map::new();
    for (public, table) in [(false, PROTECTED), (true, PUBLIC)] {
        for (method, path, summary) in table {
            let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
            let mut op = json!({
                "summary": summary,
                "responses": { "200": { "description": "OK" }, "4XX": { "description": "{\"error\":{\"code\",\"message\"}}" } },
            });
            if !public {
                op["security"] = json!([{ "session": [] }, { "bearer": [] }]);
            }
            entry[*method] = op;
        }
    }
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "flowbot API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "securitySchemes": {
            "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE,
                         "description": "Unsafe methods also need the X-CSRF-Token header" },
            "bearer": { "type": "http", "scheme": "bearer" },
        }},
    }))
}
