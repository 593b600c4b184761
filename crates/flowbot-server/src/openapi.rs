//! The API's OpenAPI 3.1 document, served at `/api/v1/openapi.json`, written from the one
//! route table (`routes`) that also builds the router: every route with its path and query
//! parameters, its body, its answer, the error envelope every refusal uses, and who may
//! call it.

use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::routes::{Kind, RouteDoc};

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

/// The generators the document's schemas come from: request bodies describe what the
/// handlers accept (serde's deserialize rules: defaults make a field optional), answers what
/// they send (serialize rules: a skipped field is optional), queries are written inline.
struct Generators {
    requests: SchemaGenerator,
    answers: SchemaGenerator,
    queries: SchemaGenerator,
}

impl Generators {
    fn new() -> Self {
        // JSON Schema 2020-12, as OpenAPI 3.1 uses, with named types under components.
        let settings = || {
            let mut s = SchemaSettings::draft2020_12();
            s.definitions_path = "/components/schemas".into();
            s
        };
        let mut queries = settings();
        queries.inline_subschemas = true;
        Generators {
            requests: settings().into_generator(),
            answers: settings().for_serialize().into_generator(),
            queries: queries.into_generator(),
        }
    }

    /// The named schemas of requests and answers together. A type whose request and answer
    /// schemas differ would need two names: the document refuses to be built, rather than
    /// describe one of them wrongly.
    fn definitions(mut self) -> Map<String, Value> {
        let mut all: Map<String, Value> =
            self.requests.take_definitions(true).into_iter().collect();
        for (name, schema) in self.answers.take_definitions(true) {
            if let Some(seen) = all.get(&name) {
                assert_eq!(
                    seen, &schema,
                    "`{name}` is read and sent with different schemas; give one side its own type"
                );
            }
            all.insert(name, schema);
        }
        all
    }
}

fn operation(d: &RouteDoc, g: &mut Generators) -> Value {
    let mut parameters: Vec<Value> = d
        .path_params()
        .into_iter()
        .map(|name| {
            let ty = if d.integer_params.contains(&name) {
                "integer"
            } else {
                "string"
            };
            json!({ "name": name, "in": "path", "required": true, "schema": { "type": ty } })
        })
        .collect();
    if let Some(query) = d.query {
        parameters.extend(query_parameters(query(&mut g.queries).to_value()));
    }
    let mut responses = Map::new();
    for a in &d.answers {
        let mut answer = json!({ "description": "Done" });
        if let Some(media) = a.media {
            let schema = a
                .schema
                .map_or_else(|| json!({}), |f| f(&mut g.answers).to_value());
            answer["content"] = json!({ media: { "schema": schema } });
        }
        responses.insert(a.status.to_string(), answer);
    }
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
    if !d.bodies.is_empty() {
        let content: Map<String, Value> = d
            .bodies
            .iter()
            .map(|b| {
                (
                    b.media.to_string(),
                    json!({ "schema": (b.schema)(&mut g.requests).to_value() }),
                )
            })
            .collect();
        op["requestBody"] = json!({ "required": !d.body_optional, "content": content });
    }
    if let Some(perm) = d.perm() {
        op["security"] = json!([{ "session": [] }, { "bearer": [] }]);
        // Which roles may call it, so a client can tell a 403 in advance.
        op["x-permission"] = json!(format!("{perm:?}").to_lowercase());
    }
    op
}

/// A query type's properties as query parameters, each with its own schema and the doc
/// comment of its field.
fn query_parameters(schema: Value) -> Vec<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(properties) = schema["properties"].as_object() else {
        // A map: any names, passed on as they come (a webhook's query string).
        return vec![json!({
            "name": "params",
            "in": "query",
            "required": false,
            "style": "form",
            "explode": true,
            "description": schema.get("description").cloned().unwrap_or_else(|| json!("")),
            "schema": { "type": "object", "additionalProperties": schema["additionalProperties"] },
        })];
    };
    properties
        .iter()
        .map(|(name, prop)| {
            let mut prop = prop.clone();
            let description = prop
                .as_object_mut()
                .and_then(|p| p.remove("description"))
                .unwrap_or_else(|| json!(""));
            json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "description": description,
                "schema": prop,
            })
        })
        .collect()
}

pub fn build(docs: &[RouteDoc]) -> Value {
    let mut g = Generators::new();
    let mut paths: Map<String, Value> = Map::new();
    for d in docs.iter().filter(|d| d.kind == Kind::Api) {
        let entry = paths.entry(d.path.to_string()).or_insert_with(|| json!({}));
        entry[d.method] = operation(d, &mut g);
    }
    g.answers.subschema_for::<crate::error::ErrorEnvelope>();
    let schemas = g.definitions();
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
