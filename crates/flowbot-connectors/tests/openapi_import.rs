//! OpenAPI 3.0, 3.1 and Swagger 2.0 documents written here become app files that load,
//! with typed inputs, outputs and auth; an unusable document is refused at its JSON
//! pointer; and an imported action runs against a loopback server.

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use flowbot_connectors::file_app::openapi::{import, operations, read, ImportOptions};
use flowbot_connectors::file_app::{format, FileApp};
use flowbot_core::manifest::FieldKind;
use flowbot_core::{ActionCall, Connection, Connector};
use serde_json::{json, Map, Value};

fn pets_30(base: &str) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Pet Store", "version": "1" },
        "servers": [{ "url": format!("{base}/{{version}}"), "variables": { "version": { "default": "v1" } } }],
        "security": [{ "key": [] }],
        "components": {
            "securitySchemes": {
                "key": { "type": "apiKey", "in": "header", "name": "X-Pet-Key" },
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": {
                "Named": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string", "title": "Name" } } },
                "Pet": {
                    "allOf": [
                        { "$ref": "#/components/schemas/Named" },
                        { "type": "object", "properties": {
                            "id": { "type": "integer", "readOnly": true },
                            "kind": { "type": "string", "enum": ["cat", "dog"] },
                            "tags": { "type": "array", "items": { "$ref": "#/components/schemas/Tag" } }
                        } }
                    ]
                },
                "Tag": { "type": "object", "properties": { "label": { "type": "string" } } }
            },
            "parameters": {
                "PetId": { "name": "petId", "in": "path", "required": true, "schema": { "type": "integer" } }
            }
        },
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets", "summary": "List pets", "tags": ["pets"],
                    "parameters": [{ "name": "kind", "in": "query", "schema": { "type": "string", "enum": ["cat", "dog"] } }],
                    "responses": { "200": { "description": "ok", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "pets": { "type": "array", "items": { "$ref": "#/components/schemas/Pet" } }, "count": { "type": "integer" } }
                    } } } } }
                },
                "post": {
                    "operationId": "createPet", "summary": "Add a pet", "tags": ["pets"],
                    "requestBody": { "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pet" } } } },
                    "responses": { "201": { "description": "made", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pet" } } } } }
                }
            },
            "/pets/{petId}": {
                "parameters": [{ "$ref": "#/components/parameters/PetId" }],
                "get": { "operationId": "getPet", "summary": "Get a pet", "tags": ["pets"],
                         "responses": { "200": { "description": "ok", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pet" } } } } } }
            },
            "/pets/{petId}/photo": {
                "parameters": [{ "$ref": "#/components/parameters/PetId" }],
                "post": { "operationId": "uploadPhoto", "tags": ["photos"],
                          "requestBody": { "content": { "multipart/form-data": { "schema": { "type": "object", "properties": { "caption": { "type": "string" } } } } } },
                          "responses": { "204": { "description": "ok" } } }
            },
            "/visits": {
                "post": { "operationId": "logVisit", "tags": ["visits"],
                          "requestBody": { "content": { "application/x-www-form-urlencoded": { "schema": { "type": "object", "required": ["pet"], "properties": { "pet": { "type": "string" }, "minutes": { "type": "integer" } } } } } },
                          "responses": { "200": { "description": "ok" } } }
            }
        }
    })
}

fn load(yaml: &str) -> format::AppFile {
    format::parse(yaml).unwrap_or_else(|e| panic!("the imported app does not load: {e:?}\n{yaml}"))
}

#[test]
fn an_openapi_3_0_document_becomes_an_app_with_typed_inputs_outputs_and_auth() {
    let doc = pets_30("https://pets.example");
    let yaml = import(&doc, &ImportOptions::default()).unwrap();
    let app = load(&yaml);
    assert_eq!(app.id, "pet_store");
    let m = app.manifest();
    let ids: Vec<&str> = m.actions.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "list_pets",
            "create_pet",
            "get_pet",
            "upload_photo",
            "log_visit"
        ]
    );
    // The server URL with its variable's default, and the first security requirement.
    let base = m.connection.iter().find(|f| f.name == "base_url").unwrap();
    assert_eq!(base.default, Some(json!("https://pets.example/v1")));
    assert!(m.connection.iter().any(|f| f.name == "api_key" && f.secret));
    assert_eq!(app.connection.test.as_deref(), Some("list_pets"));
    // Enums become selects; allOf merges the required name; readOnly ids are not inputs.
    let list = m.action("list_pets").unwrap();
    let kind = &list.inputs[0];
    assert_eq!(
        (kind.name.as_str(), kind.kind, kind.choices.clone()),
        (
            "kind",
            FieldKind::Select,
            vec!["cat".to_string(), "dog".to_string()]
        )
    );
    assert!(list.idempotent && !list.writes);
    let create = m.action("create_pet").unwrap();
    let names: Vec<(&str, bool, FieldKind)> = create
        .inputs
        .iter()
        .map(|f| (f.name.as_str(), f.required, f.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("name", true, FieldKind::Text),
            ("kind", false, FieldKind::Select),
            ("tags", false, FieldKind::List)
        ]
    );
    assert!(!create.idempotent && create.writes);
    let outs: Vec<&str> = create.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outs, ["name", "id", "kind", "tags"]);
    // A path parameter shared by the path item; multipart and form bodies.
    let photo = app.action("upload_photo").unwrap();
    assert_eq!(photo.request.path, "/pets/{{ input.pet_id }}/photo");
    assert!(photo.request.body.as_ref().unwrap().multipart.is_some());
    let visit = app.action("log_visit").unwrap();
    assert!(visit.request.body.as_ref().unwrap().form.is_some());
    assert!(m
        .action("log_visit")
        .unwrap()
        .inputs
        .iter()
        .any(|f| f.name == "pet" && f.required));
    // `only` takes tags or operation ids.
    let only = import(
        &doc,
        &ImportOptions {
            id: Some("pets".into()),
            only: vec!["photos".into(), "getPet".into(), "get_pet".into()],
        },
    )
    .unwrap();
    let only = load(&only);
    assert_eq!(only.id, "pets");
    assert_eq!(
        only.actions
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["get_pet", "upload_photo"]
    );
    assert_eq!(operations(&doc).unwrap().len(), 5);
}

#[test]
fn openapi_3_1_and_swagger_2_0_documents_are_read_too() {
    let v31 = json!({
        "openapi": "3.1.0",
        "info": { "title": "Notes" },
        "servers": [{ "url": "https://notes.example/api" }],
        "components": { "securitySchemes": { "oauth": { "type": "oauth2", "flows": { "authorizationCode": {
            "authorizationUrl": "https://notes.example/oauth/authorize", "tokenUrl": "https://notes.example/oauth/token",
            "scopes": { "notes.read": "read", "notes.write": "write" } } } } } },
        "paths": { "/notes": { "post": {
            "operationId": "addNote",
            "requestBody": { "content": { "application/json": { "schema": {
                "oneOf": [
                    { "type": "object", "properties": { "text": { "type": ["string", "null"] } } },
                    { "type": "object", "properties": { "url": { "type": "string" } } }
                ] } } } },
            "responses": { "200": { "description": "ok" } }
        } } }
    });
    let app = load(&import(&v31, &ImportOptions::default()).unwrap());
    match &app.connection.auth {
        format::Auth::OAuth2 {
            grant,
            authorize_url,
            scopes,
            ..
        } => {
            assert_eq!(*grant, format::Grant::AuthorizationCode);
            assert_eq!(
                authorize_url.as_deref(),
                Some("https://notes.example/oauth/authorize")
            );
            assert_eq!(scopes, &["notes.read", "notes.write"]);
        }
        other => panic!("{other:?}"),
    }
    let inputs: Vec<(String, FieldKind)> = app.manifest().actions[0]
        .inputs
        .iter()
        .map(|f| (f.name.clone(), f.kind))
        .collect();
    assert_eq!(
        inputs,
        [
            ("text".to_string(), FieldKind::Text),
            ("url".to_string(), FieldKind::Text)
        ]
    );

    let v2 = json!({
        "swagger": "2.0",
        "info": { "title": "Legacy CRM" },
        "host": "crm.example", "basePath": "/v2", "schemes": ["http", "https"],
        "securityDefinitions": { "basic": { "type": "basic" } },
        "definitions": { "Contact": { "type": "object", "required": ["email"], "properties": { "email": { "type": "string" }, "age": { "type": "integer" } } } },
        "paths": {
            "/contacts": {
                "post": { "operationId": "createContact", "parameters": [{ "name": "body", "in": "body", "schema": { "$ref": "#/definitions/Contact" } }],
                          "responses": { "201": { "description": "ok", "schema": { "$ref": "#/definitions/Contact" } } } },
                "get": { "operationId": "findContacts", "parameters": [{ "name": "limit", "in": "query", "type": "integer" }], "responses": { "200": { "description": "ok" } } }
            },
            "/uploads": { "post": { "operationId": "upload", "consumes": ["application/x-www-form-urlencoded"],
                "parameters": [{ "name": "title", "in": "formData", "type": "string", "required": true }], "responses": { "200": { "description": "ok" } } } }
        }
    });
    let app = load(&import(&v2, &ImportOptions::default()).unwrap());
    assert!(matches!(app.connection.auth, format::Auth::Basic { .. }));
    let m = app.manifest();
    assert_eq!(
        m.connection[0].default,
        Some(json!("https://crm.example/v2"))
    );
    let create = m.action("create_contact").unwrap();
    assert_eq!(
        create
            .inputs
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect::<Vec<_>>(),
        [("email", true), ("age", false)]
    );
    assert_eq!(
        m.action("find_contacts").unwrap().inputs[0].kind,
        FieldKind::Integer
    );
    let upload = app.action("upload").unwrap();
    assert!(upload.request.body.as_ref().unwrap().form.is_some());
}

#[test]
fn an_unusable_document_is_refused_at_its_json_pointer() {
    let bad_ref = json!({
        "openapi": "3.0.0", "info": { "title": "Bad" },
        "paths": { "/a/{id}": { "get": { "responses": { "200": { "description": "ok", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Nope" } } } } } } } }
    });
    let e = import(&bad_ref, &ImportOptions::default()).unwrap_err();
    assert_eq!(
        e.pointer,
        "/paths/~1a~1{id}/get/responses/200/content/application~1json/schema"
    );
    assert!(e.message.contains("#/components/schemas/Nope"), "{e}");
    let external = json!({
        "openapi": "3.0.0", "info": { "title": "Ext" },
        "paths": { "/a": { "post": { "requestBody": { "content": { "application/json": { "schema": { "$ref": "other.yaml#/X" } } } }, "responses": {} } } }
    });
    let e = import(&external, &ImportOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/paths/~1a/post/requestBody/content/application~1json/schema: "),
        "{e}"
    );
    assert!(e.message.contains("outside the document"), "{e}");
    let e = import(&json!({ "info": {} }), &ImportOptions::default()).unwrap_err();
    assert!(e.message.contains("not an OpenAPI"), "{e}");
    let cookie = json!({
        "openapi": "3.0.0", "info": { "title": "C" },
        "components": { "securitySchemes": { "c": { "type": "apiKey", "in": "cookie", "name": "sid" } } },
        "paths": { "/a": { "get": { "responses": {} } } }
    });
    let e = import(&cookie, &ImportOptions::default()).unwrap_err();
    assert_eq!(e.pointer, "/components/securitySchemes/c");
    // YAML documents are read too.
    assert!(read("openapi: 3.0.0\ninfo: { title: Y }\npaths: {}\n").is_ok());
    assert!(read("{ not: [json").is_err());
}

#[tokio::test]
async fn an_imported_action_runs_against_the_api() {
    let app = Router::new()
        .route(
            "/v1/pets",
            post(|headers: HeaderMap, Json(b): Json<Value>| async move {
                Json(json!({ "id": 7, "name": b["name"], "kind": b["kind"], "key": headers["x-pet-key"].to_str().unwrap() }))
            })
            .get(|Query(q): Query<Map<String, Value>>| async move { Json(json!({ "pets": [], "count": 0, "asked": q })) }),
        )
        .route("/v1/pets/{id}", get(|Path(id): Path<String>| async move { Json(json!({ "id": id, "name": "Tama" })) }))
        .route("/v1/visits", post(|Form(f): Form<Map<String, Value>>| async move { Json(json!({ "logged": f })) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let yaml = import(&pets_30(&base), &ImportOptions::default()).unwrap();
    let app = FileApp::new(load(&yaml), reqwest::Client::new());
    let conn = Connection {
        name: "pets".into(),
        app: "pet_store".into(),
        settings: json!({ "base_url": format!("{base}/v1"), "api_key": "k-1" })
            .as_object()
            .unwrap()
            .clone(),
    };
    let run = |action: &'static str, input: Value| {
        let (app, conn) = (&app, &conn);
        async move {
            app.execute(ActionCall {
                action,
                input: input.as_object().unwrap(),
                connection: Some(conn),
            })
            .await
            .unwrap()
        }
    };
    let made = run("create_pet", json!({ "name": "Pochi", "kind": "dog" })).await;
    assert_eq!(
        made,
        json!({ "id": 7, "name": "Pochi", "kind": "dog", "key": "k-1" })
    );
    assert_eq!(run("get_pet", json!({ "pet_id": 3 })).await["id"], "3");
    assert_eq!(
        run("list_pets", json!({ "kind": "cat" })).await["asked"],
        json!({ "kind": "cat" })
    );
    assert_eq!(
        run("log_visit", json!({ "pet": "Pochi", "minutes": 15 })).await["logged"],
        json!({ "pet": "Pochi", "minutes": "15" })
    );
    app.test_connection(&conn).await.unwrap();
}
