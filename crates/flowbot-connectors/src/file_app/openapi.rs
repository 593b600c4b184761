//! OpenAPI (3.0, 3.1) and Swagger 2.0 documents → an app file: every operation an action
//! with typed inputs from its parameters and request body, outputs from its 2xx answer,
//! auth from the security schemes, names from the summaries. Local `$ref`s, `allOf`,
//! `oneOf`/`anyOf` are resolved; a document that cannot be used is refused with the JSON
//! pointer of what is wrong.
//!
//! One concern, kept in one file on purpose: reading a document's schemas, parameters,
//! bodies, answers and security schemes is one walk whose pieces share the `$ref` resolver
//! and the pointer bookkeeping.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// How deep `$ref`s and compositions are followed (a cycle stops here, as `json`).
const MAX_DEPTH: usize = 12;
/// The most operations one import takes (a bigger API is imported with `only`).
pub const MAX_OPERATIONS: usize = 300;

/// A problem in the document, at a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.pointer.is_empty() {
                "/"
            } else {
                &self.pointer
            },
            self.message
        )
    }
}

fn err(pointer: &str, message: impl Into<String>) -> ImportError {
    ImportError {
        pointer: pointer.to_string(),
        message: message.into(),
    }
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The app's id (default: from the title).
    pub id: Option<String>,
    /// Only operations with one of these tags or operation ids (empty: all).
    pub only: Vec<String>,
}

/// One operation of the document, as offered for picking.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    pub id: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    pub tags: Vec<String>,
}

/// Read a document (JSON or YAML text).
pub fn read(text: &str) -> Result<Value, ImportError> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_yaml::from_str::<Value>(text)
        .map_err(|e| err("", format!("the document is neither JSON nor YAML: {e}")))
}

struct Doc<'a> {
    root: &'a Value,
    swagger2: bool,
}

impl<'a> Doc<'a> {
    /// Follow `$ref`s to the schema (or parameter, body…) they name.
    fn deref(
        &self,
        v: &'a Value,
        at: &str,
        depth: usize,
    ) -> Result<(&'a Value, String), ImportError> {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return Ok((v, at.to_string()));
        };
        if depth > MAX_DEPTH {
            return Err(err(at, format!("`$ref` `{r}` goes around in a circle")));
        }
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(err(
                at,
                format!("`$ref` `{r}` points outside the document; bundle it first"),
            ));
        };
        let target = self
            .root
            .pointer(pointer)
            .ok_or_else(|| err(at, format!("`$ref` `{r}` does not resolve")))?;
        self.deref(target, pointer, depth + 1)
    }

    /// A schema with `$ref`, `allOf`, `oneOf` and `anyOf` resolved into one object schema
    /// (the alternatives' properties become optional).
    fn schema(&self, v: &'a Value, at: &str, depth: usize) -> Result<Value, ImportError> {
        if depth > MAX_DEPTH {
            return Ok(json!({}));
        }
        let (v, at) = self.deref(v, at, depth)?;
        let mut out = v.as_object().cloned().unwrap_or_default();
        out.remove("$ref");
        let mut merged_props = Map::new();
        let mut required: BTreeSet<String> = BTreeSet::new();
        if let Some(Value::Object(p)) = out.get("properties") {
            for (k, s) in p {
                merged_props.insert(
                    k.clone(),
                    self.schema(s, &format!("{at}/properties/{}", escape(k)), depth + 1)?,
                );
            }
        }
        required.extend(required_of(&Value::Object(out.clone())));
        for (key, keeps_required) in [("allOf", true), ("oneOf", false), ("anyOf", false)] {
            let Some(parts) = v.get(key).and_then(Value::as_array) else {
                continue;
            };
            out.remove(key);
            for (i, part) in parts.iter().enumerate() {
                let part = self.schema(part, &format!("{at}/{key}/{i}"), depth + 1)?;
                if let Some(Value::Object(p)) = part.get("properties") {
                    for (k, s) in p {
                        merged_props.entry(k.clone()).or_insert(s.clone());
                    }
                }
                if keeps_required {
                    required.extend(required_of(&part));
                }
                for k in ["type", "enum", "items", "description", "format"] {
                    if !out.contains_key(k) {
                        if let Some(x) = part.get(k) {
                            out.insert(k.into(), x.clone());
                        }
                    }
                }
            }
        }
        if let Some(items) = v.get("items") {
            out.insert(
                "items".into(),
                self.schema(items, &format!("{at}/items"), depth + 1)?,
            );
        }
        if !merged_props.is_empty() {
            out.insert("properties".into(), Value::Object(merged_props));
            out.entry("type").or_insert(json!("object"));
        }
        if !required.is_empty() {
            out.insert("required".into(), json!(required));
        }
        Ok(Value::Object(out))
    }
}

/// The names a schema's `required` lists.
fn required_of(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// An identifier for templates and ids: lower-case letters, digits and `_`.
fn ident(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out
    } else {
        format!("x_{out}")
    }
}

fn kind_of(schema: &Value) -> &'static str {
    if schema
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty())
    {
        return "select";
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        Some(Value::String(t)) => Some(t.as_str()),
        _ => None,
    };
    match ty {
        Some("integer") => "integer",
        Some("number") => "number",
        Some("boolean") => "boolean",
        Some("array") => "list",
        Some("object") => "json",
        Some("string") => "text",
        _ => "json",
    }
}

fn text(s: &str) -> Value {
    json!({ "en": s, "ja": s })
}

fn field(name: &str, schema: &Value, required: bool, description: Option<&str>) -> Value {
    let mut f = json!({
        "name": name,
        "label": text(schema.get("title").and_then(Value::as_str).unwrap_or(name)),
        "kind": kind_of(schema),
    });
    if required {
        f["required"] = json!(true);
    }
    if let Some(d) = description.or_else(|| schema.get("description").and_then(Value::as_str)) {
        f["help"] = text(&d.chars().take(300).collect::<String>());
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        f["choices"] = json!(values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>());
    }
    if let Some(d) = schema.get("default") {
        f["default"] = d.clone();
    }
    f
}

/// The operations of a document, for picking.
pub fn operations(doc: &Value) -> Result<Vec<Operation>, ImportError> {
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| err("/paths", "the document has no `paths`"))?;
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(ident)
                .unwrap_or_else(|| ident(&format!("{method}_{path}")));
            out.push(Operation {
                id,
                method: method.to_uppercase(),
                path: path.clone(),
                summary: op
                    .get("summary")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                tags: op
                    .get("tags")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// The app file (YAML) for `doc`.
pub fn import(doc: &Value, options: &ImportOptions) -> Result<String, ImportError> {
    let swagger2 = doc
        .get("swagger")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("2."));
    let openapi3 = doc
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with('3'));
    if !swagger2 && !openapi3 {
        return Err(err(
            "",
            "not an OpenAPI 3 or Swagger 2.0 document (no `openapi: 3…` or `swagger: \"2.0\"`)",
        ));
    }
    let d = Doc {
        root: doc,
        swagger2,
    };
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .ok_or_else(|| err("/info/title", "the document has no title"))?;
    let id = options.id.clone().unwrap_or_else(|| ident(title));
    let mut fields: Vec<Value> = Vec::new();
    let base_url = base_url(doc, swagger2);
    fields.push(json!({
        "name": "base_url",
        "label": { "en": "API URL", "ja": "API の URL" },
        "kind": "text",
        "required": base_url.is_none(),
        "default": base_url,
    }));
    if fields[0]["default"].is_null() {
        fields[0].as_object_mut().unwrap().remove("default");
    }
    let auth = auth(doc, swagger2, &mut fields)?;
    let mut actions = Vec::new();
    let mut seen = BTreeSet::new();
    let ops = operations(doc)?;
    for o in ops.iter().filter(|o| {
        options.only.is_empty()
            || options
                .only
                .iter()
                .any(|w| *w == o.id || o.tags.contains(w))
    }) {
        if !seen.insert(o.id.clone()) {
            continue;
        }
        let at = format!("/paths/{}/{}", escape(&o.path), o.method.to_lowercase());
        let op = doc.pointer(&at).expect("listed just now");
        actions.push(action(&d, o, op, &at)?);
        if actions.len() > MAX_OPERATIONS {
            return Err(err(
                "/paths",
                format!("more than {MAX_OPERATIONS} operations: import some with `only` (tags or operation ids)"),
            ));
        }
    }
    if actions.is_empty() {
        return Err(err(
            "/paths",
            if options.only.is_empty() {
                "the document has no operations".to_string()
            } else {
                format!("no operation has the tag or id {}", options.only.join(", "))
            },
        ));
    }
    // The connection test: the first read that needs no input.
    let test = actions
        .iter()
        .find(|a| {
            a["request"]["method"] == "GET"
                && a["inputs"]
                    .as_array()
                    .is_none_or(|i| i.iter().all(|f| f["required"] != true))
        })
        .map(|a| a["id"].clone());
    let description = doc
        .pointer("/info/description")
        .and_then(Value::as_str)
        .map(|d| d.chars().take(500).collect::<String>())
        .unwrap_or_default();
    let mut connection = json!({
        "fields": fields,
        "base_url": "{{ connection.base_url }}",
        "auth": auth,
    });
    if let Some(t) = test {
        connection["test"] = t;
    }
    let app = json!({
        "flowbot_app": 1,
        "id": id,
        "name": text(title),
        "description": text(&description),
        "category": "imported",
        "connection": connection,
        "actions": actions,
    });
    let yaml = serde_yaml::to_string(&app).map_err(|e| err("", e.to_string()))?;
    Ok(format!(
        "# Imported from the OpenAPI document \"{title}\" by `flowbot apps import-openapi`.\n# Check the names (ja) and the outputs, then `flowbot apps validate` this file.\n{yaml}"
    ))
}

fn base_url(doc: &Value, swagger2: bool) -> Option<String> {
    if swagger2 {
        let host = doc.get("host")?.as_str()?;
        let scheme = doc
            .get("schemes")
            .and_then(Value::as_array)
            .and_then(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .find(|s| *s == "https")
                    .or(s.first()?.as_str())
            })
            .unwrap_or("https");
        let base = doc.get("basePath").and_then(Value::as_str).unwrap_or("");
        return Some(format!("{scheme}://{host}{base}"));
    }
    let server = doc.pointer("/servers/0")?;
    let mut url = server.get("url")?.as_str()?.to_string();
    for (name, var) in server
        .get("variables")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(d) = var.get("default").and_then(Value::as_str) {
            url = url.replace(&format!("{{{name}}}"), d);
        }
    }
    Some(url)
}

fn secret_field(name: &str, en: &str, ja: &str) -> Value {
    json!({ "name": name, "label": { "en": en, "ja": ja }, "kind": "text", "required": true, "secret": true })
}

/// The security scheme the document asks for first (global `security`, else the first
/// defined), as the app's auth; its credentials become connection fields.
fn auth(doc: &Value, swagger2: bool, fields: &mut Vec<Value>) -> Result<Value, ImportError> {
    let (schemes, at) = if swagger2 {
        (doc.get("securityDefinitions"), "/securityDefinitions")
    } else {
        (
            doc.pointer("/components/securitySchemes"),
            "/components/securitySchemes",
        )
    };
    let Some(schemes) = schemes.and_then(Value::as_object) else {
        return Ok(json!({ "kind": "none" }));
    };
    let wanted = doc
        .pointer("/security/0")
        .and_then(Value::as_object)
        .and_then(|m| m.keys().next().cloned())
        .or_else(|| schemes.keys().next().cloned());
    let Some(name) = wanted else {
        return Ok(json!({ "kind": "none" }));
    };
    let at = format!("{at}/{}", escape(&name));
    let s = schemes.get(&name).ok_or_else(|| {
        err(
            "/security/0",
            format!("security scheme `{name}` is not defined"),
        )
    })?;
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let scheme = s
        .get("scheme")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match (ty, scheme.as_str()) {
        ("apiKey", _) => {
            let place = s.get("in").and_then(Value::as_str).unwrap_or("header");
            if place == "cookie" {
                return Err(err(&at, "an API key in a cookie is not supported"));
            }
            fields.push(secret_field("api_key", "API key", "API キー"));
            json!({
                "kind": "api_key",
                "in": place,
                "name": s.get("name").and_then(Value::as_str).ok_or_else(|| err(&at, "the API key has no `name`"))?,
                "value": "{{ connection.api_key }}",
            })
        }
        ("basic", _) | ("http", "basic") => {
            fields.push(json!({ "name": "username", "label": { "en": "User name", "ja": "ユーザー名" }, "kind": "text", "required": true }));
            fields.push(secret_field("password", "Password", "パスワード"));
            json!({ "kind": "basic", "username": "{{ connection.username }}", "password": "{{ connection.password }}" })
        }
        ("http", "bearer") => {
            fields.push(secret_field("token", "Access token", "アクセストークン"));
            json!({ "kind": "bearer", "token": "{{ connection.token }}" })
        }
        ("oauth2", _) => {
            // Swagger 2.0 puts the flow on the scheme; OpenAPI 3 has a map of flows.
            let (grant, flow) = if swagger2 {
                match s.get("flow").and_then(Value::as_str) {
                    Some("accessCode") => ("authorization_code", s),
                    Some("application") => ("client_credentials", s),
                    other => return Err(err(&at, format!("the OAuth flow {other:?} is not supported (authorization code or client credentials)"))),
                }
            } else if let Some(f) = s.pointer("/flows/authorizationCode") {
                ("authorization_code", f)
            } else if let Some(f) = s.pointer("/flows/clientCredentials") {
                ("client_credentials", f)
            } else {
                return Err(err(
                    &format!("{at}/flows"),
                    "only the authorization-code and client-credentials flows are supported",
                ));
            };
            fields.push(json!({ "name": "client_id", "label": { "en": "Client ID", "ja": "クライアント ID" }, "kind": "text", "required": true }));
            fields.push(json!({ "name": "client_secret", "label": { "en": "Client secret", "ja": "クライアントシークレット" }, "kind": "text", "secret": true }));
            let scopes: Vec<&String> = flow
                .get("scopes")
                .and_then(Value::as_object)
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            let mut a = json!({
                "kind": "oauth2",
                "grant": grant,
                "token_url": flow.get("tokenUrl").and_then(Value::as_str).ok_or_else(|| err(&at, "the OAuth flow has no `tokenUrl`"))?,
                "scopes": scopes,
                "client_id": "{{ connection.client_id }}",
                "client_secret": "{{ connection.client_secret }}",
            });
            if grant == "authorization_code" {
                a["authorize_url"] = json!(flow
                    .get("authorizationUrl")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(&at, "the OAuth flow has no `authorizationUrl`"))?);
            }
            a
        }
        _ => {
            return Err(err(
                &at,
                format!("the security scheme type `{ty}` {scheme} is not supported"),
            ))
        }
    })
}

fn action(d: &Doc<'_>, o: &Operation, op: &Value, at: &str) -> Result<Value, ImportError> {
    let mut inputs: Vec<Value> = Vec::new();
    let mut names = BTreeSet::new();
    let mut query = Map::new();
    let mut headers = Map::new();
    let mut path = o.path.clone();
    // Path-level parameters apply to every operation of the path.
    let item_at = at.rsplit_once('/').map(|(p, _)| p).unwrap_or(at);
    let shared = d
        .root
        .pointer(&format!("{item_at}/parameters"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let own = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut body_params: Vec<(String, Value)> = Vec::new();
    for (i, p) in shared.iter().chain(own.iter()).enumerate() {
        let p_at = format!("{at}/parameters/{i}");
        let (p, p_at) = d.deref(p, &p_at, 0)?;
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&p_at, "a parameter without `name`"))?;
        let place = p.get("in").and_then(Value::as_str).unwrap_or("query");
        let required = p
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(place == "path");
        let schema = if d.swagger2 && place != "body" {
            p.clone()
        } else {
            match p.get("schema") {
                Some(s) => d.schema(s, &format!("{p_at}/schema"), 0)?,
                None => json!({ "type": "string" }),
            }
        };
        if place == "body" {
            body_params.push((name.to_string(), schema));
            continue;
        }
        if place == "cookie" {
            continue;
        }
        let input = ident(name);
        if !names.insert(input.clone()) {
            continue;
        }
        let t = format!("{{{{ input.{input} }}}}");
        match place {
            "path" => path = path.replace(&format!("{{{name}}}"), &t),
            "header" => {
                headers.insert(name.to_string(), json!(t));
            }
            "formData" => body_params.push((name.to_string(), schema.clone())),
            _ => {
                query.insert(name.to_string(), json!(t));
            }
        }
        if place != "formData" {
            inputs.push(field(
                &input,
                &schema,
                required,
                p.get("description").and_then(Value::as_str),
            ));
        }
    }
    let mut request = json!({ "method": o.method, "path": path });
    if !query.is_empty() {
        request["query"] = Value::Object(query);
    }
    if !headers.is_empty() {
        request["headers"] = Value::Object(headers);
    }
    // The request body: its properties become inputs.
    let body = request_body(d, op, at, &body_params)?;
    if let Some((media, schema)) = body {
        let mut template = Map::new();
        let props = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match props {
            Some(props) if !props.is_empty() => {
                for (k, s) in props {
                    if s.get("readOnly") == Some(&json!(true)) {
                        continue;
                    }
                    let mut input = ident(k);
                    if !names.insert(input.clone()) {
                        input = format!("body_{input}");
                        names.insert(input.clone());
                    }
                    template.insert(k.clone(), json!(format!("{{{{ input.{input} }}}}")));
                    inputs.push(field(&input, s, required.contains(&k.as_str()), None));
                }
                request["body"] = json!({ media: template });
            }
            _ if media == "json" => {
                inputs.push(field(
                    "body",
                    &schema,
                    true,
                    Some("The request body (JSON)"),
                ));
                request["body"] = json!({ media: "{{ input.body }}" });
            }
            _ => request["body"] = json!({ media: {} }),
        }
    }
    let outputs = outputs(d, op, at)?;
    let name = if o.summary.is_empty() {
        o.id.clone()
    } else {
        o.summary.clone()
    };
    let mut a = json!({
        "id": o.id,
        "name": text(&name),
        "idempotent": matches!(o.method.as_str(), "GET" | "PUT" | "DELETE"),
        "writes": o.method != "GET",
        "request": request,
    });
    if let Some(desc) = op.get("description").and_then(Value::as_str) {
        a["description"] = text(&desc.chars().take(500).collect::<String>());
    }
    if !inputs.is_empty() {
        a["inputs"] = json!(inputs);
    }
    if !outputs.is_empty() {
        a["outputs"] = json!(outputs);
    }
    Ok(a)
}

/// The body's media (`json` or `form`) and schema.
fn request_body(
    d: &Doc<'_>,
    op: &Value,
    at: &str,
    swagger_params: &[(String, Value)],
) -> Result<Option<(&'static str, Value)>, ImportError> {
    if d.swagger2 {
        if let Some((_, schema)) = swagger_params.iter().find(|(_, s)| s.get("in").is_none()) {
            return Ok(Some(("json", schema.clone())));
        }
        let form: Vec<&(String, Value)> = swagger_params
            .iter()
            .filter(|(_, s)| s.get("in").and_then(Value::as_str) == Some("formData"))
            .collect();
        if !form.is_empty() {
            let props: Map<String, Value> =
                form.iter().map(|(n, s)| (n.clone(), s.clone())).collect();
            let required: Vec<&String> = form
                .iter()
                .filter(|(_, s)| s.get("required") == Some(&json!(true)))
                .map(|(n, _)| n)
                .collect();
            return Ok(Some((
                "form",
                json!({ "type": "object", "properties": props, "required": required }),
            )));
        }
        return Ok(None);
    }
    let Some(body) = op.get("requestBody") else {
        return Ok(None);
    };
    let (body, body_at) = d.deref(body, &format!("{at}/requestBody"), 0)?;
    let content = body
        .get("content")
        .and_then(Value::as_object)
        .ok_or_else(|| err(&body_at, "a request body without `content`"))?;
    for (media, kind) in [
        ("application/json", "json"),
        ("application/x-www-form-urlencoded", "form"),
        ("multipart/form-data", "multipart"),
    ] {
        if let Some(m) = content.get(media) {
            let schema = match m.get("schema") {
                Some(s) => {
                    d.schema(s, &format!("{body_at}/content/{}/schema", escape(media)), 0)?
                }
                None => json!({}),
            };
            return Ok(Some((kind, schema)));
        }
    }
    // Any other JSON-like media (application/vnd…+json).
    if let Some((media, m)) = content.iter().find(|(k, _)| k.ends_with("json")) {
        let schema = match m.get("schema") {
            Some(s) => d.schema(s, &format!("{body_at}/content/{}/schema", escape(media)), 0)?,
            None => json!({}),
        };
        return Ok(Some(("json", schema)));
    }
    Err(err(
        &format!("{body_at}/content"),
        format!(
            "no request body media flowbot can send (JSON, form or multipart): {}",
            content.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// The labelled outputs of the first 2xx answer's object properties.
fn outputs(d: &Doc<'_>, op: &Value, at: &str) -> Result<Vec<Value>, ImportError> {
    let Some(responses) = op.get("responses").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let Some((status, r)) = responses.iter().find(|(k, _)| k.starts_with('2')) else {
        return Ok(Vec::new());
    };
    let r_at = format!("{at}/responses/{}", escape(status));
    let (r, r_at) = d.deref(r, &r_at, 0)?;
    let schema = if d.swagger2 {
        r.get("schema").map(|s| (s, format!("{r_at}/schema")))
    } else {
        r.get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.iter().find(|(k, _)| k.ends_with("json")))
            .and_then(|(k, m)| {
                m.get("schema")
                    .map(|s| (s, format!("{r_at}/content/{}/schema", escape(k))))
            })
    };
    let Some((schema, s_at)) = schema else {
        return Ok(Vec::new());
    };
    let schema = d.schema(schema, &s_at, 0)?;
    Ok(schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(k, s)| {
                    let kind = match kind_of(s) {
                        "select" => "text",
                        k => k,
                    };
                    json!({
                        "name": k,
                        "label": text(s.get("title").and_then(Value::as_str).unwrap_or(k)),
                        "kind": kind,
                    })
                })
                .collect()
        })
        .unwrap_or_default())
}
