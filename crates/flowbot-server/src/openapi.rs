//! The API's OpenAPI 3.1 document, served at `/api/v1/openapi.json`, written from the one
//! route table (`routes`) that also builds the router: every route with its path and query
//! parameters, its body, its answer, the error envelope every refusal uses, and who may
//! call it.

use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::routes::{Access, RouteDoc};

/// The document, from the router's own table.
pub async fn document() -> Json<Value> {
    Json(build(&crate::route_docs()))
}

fn error_answer(what: &str) -> Value {
    json!({
        "description": what,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn operation(d: &RouteDoc, g: &mut SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = d
        .path_params()
        .into_iter()
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(d.query.iter().map(|(name, what)| {
        json!({ "name": name, "in": "query", "required": false, "description": what, "schema": { "type": "string" } })
    }));
    let (media, status) = d.answer;
    let mut responses = Map::new();
    responses.insert(
        status.to_string(),
        json!({ "description": "Done", "content": { media: { "schema": {} } } }),
    );
    responses.insert(
        "4XX".into(),
        error_answer("Refused: the envelope's code and message say why"),
    );
    responses.insert(
        "5XX".into(),
        error_answer("Not done: unavailable (try again; Retry-After) or internal"),
    );
    let mut op = json!({
        "operationId": format!("{}{}", d.method, d.path.replace(['/', '{', '}', '.', '-'], "_")),
        "summary": d.summary,
        "responses": responses,
    });
    if !parameters.is_empty() {
        op["parameters"] = json!(parameters);
    }
    if let Some(body) = d.body {
        let schema = d
            .body_schema
            .map(|f| f(g).to_value())
            .unwrap_or_else(|| json!({}));
        op["requestBody"] = json!({ "required": true, "content": { body: { "schema": schema } } });
    }
    if d.access == Access::Caller {
        op["security"] = json!([{ "session": [] }, { "bearer": [] }]);
    }
    op
}

pub fn build(docs: &[RouteDoc]) -> Value {
    // JSON Schema 2020-12, as OpenAPI 3.1 uses, with named types under components.
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for d in docs {
        let entry = paths.entry(d.path.to_string()).or_insert_with(|| json!({}));
        entry[d.method] = operation(d, &mut g);
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": { "title": "flowbot API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE,
                             "description": "Unsafe methods also need the X-CSRF-Token header" },
                "bearer": { "type": "http", "scheme": "bearer" },
            },
            "schemas": schemas,
        },
    })
}

/// The envelope every refusal answers in (`error::ApiError`).
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": { "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "string" },
                "message": { "type": "string" },
                "diagnostics": { "type": "array", "items": { "type": "object" } },
            },
        } },
    })
}
