//! One table of routes. Each route is registered once — method, path, who may call it, what
//! it does, its query parameters and body — and that registration builds both the router
//! and the OpenAPI document (`openapi`), which the access test walks. A route added
//! without its description cannot exist.

use axum::handler::Handler;
use axum::routing::MethodRouter;
use axum::Router;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A login session (unsafe methods with the CSRF token) or an API token.
    Caller,
    /// Anyone: signing in, the OAuth callback, webhook ingress, health.
    Public,
}

/// What the API description says of one route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    /// (name, what it means) of each query parameter; all are optional.
    pub query: &'static [(&'static str, &'static str)],
    /// The request body's media type, when the route takes one.
    pub body: Option<&'static str>,
    /// The body's schema, derived from the Rust type the handler reads it into.
    pub body_schema: Option<SchemaFn>,
    /// What a successful answer is (media type, status).
    pub answer: (&'static str, u16),
}

/// Writes a type's JSON Schema into the document's generator (named types become
/// `#/components/schemas/…` references).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// A route's description, to be given its handler by [`Routes::add`].
pub fn op(method: &'static str, path: &'static str, summary: &'static str) -> RouteDoc {
    let body = matches!(method, "post" | "put" | "patch").then_some("application/json");
    RouteDoc {
        method,
        path,
        access: Access::Caller,
        summary,
        query: &[],
        body,
        body_schema: None,
        answer: ("application/json", 200),
    }
}

impl RouteDoc {
    pub fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    pub fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Self {
        self.query = q;
        self
    }

    /// A JSON body read into `T`: its schema is derived from the type.
    pub fn json_body<T: JsonSchema>(mut self) -> Self {
        self.body = Some("application/json");
        self.body_schema = Some(schema_of::<T>);
        self
    }

    /// A body of another media type, or none.
    pub fn body(mut self, media: Option<&'static str>) -> Self {
        self.body = media;
        self
    }

    pub fn answers(mut self, media: &'static str, status: u16) -> Self {
        self.answer = (media, status);
        self
    }

    /// The `{name}` parameters of the path.
    pub fn path_params(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }
}

/// Routes and their descriptions, built together.
pub struct Routes {
    pub(crate) router: Router<AppState>,
    pub docs: Vec<RouteDoc>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            router: Router::new(),
            docs: Vec::new(),
        }
    }
}

impl Routes {
    /// Register `handler` for the route `doc` describes: its method is the doc's.
    pub fn add<H, T>(mut self, doc: RouteDoc, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let method: MethodRouter<AppState> = match doc.method {
            "get" => axum::routing::get(handler),
            "post" => axum::routing::post(handler),
            "put" => axum::routing::put(handler),
            "patch" => axum::routing::patch(handler),
            "delete" => axum::routing::delete(handler),
            other => panic!("no such HTTP method in the route table: {other}"),
        };
        self.router = self.router.route(doc.path, method);
        self.docs.push(doc);
        self
    }

    /// Register a route whose method router is built elsewhere (a layer on it).
    pub fn add_routed(mut self, doc: RouteDoc, method: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(doc.path, method);
        self.docs.push(doc);
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.docs.extend(other.docs);
        self
    }
}
