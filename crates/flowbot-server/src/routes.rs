//! One table of routes. Each route and page is registered once — method, path, the
//! permission it needs, what it does, its query parameters and body — and that registration
//! builds the router, the permission check in front of each handler, and the OpenAPI
//! document (`openapi`, API routes only), which the access tests walk role by role. A route
//! added without its permission cannot exist: [`Routes::add`] refuses it.

use axum::handler::Handler;
use axum::routing::MethodRouter;
use axum::Router;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::auth::Caller;
use crate::AppState;
use flowbot_store::Role;

/// What the check in front of a handler knows: the permission, where it is held, and how
/// to refuse.
#[derive(Debug, Clone, Copy)]
struct Gate {
    perm: Perm,
    kind: Kind,
    scope: Scope,
}

/// Let the caller through when their role (in the workspace, or in the project of what the
/// route names) and their token's scope allow the route; refuse with 403 — in the API's
/// envelope, or as a page in the caller's language.
async fn gate(
    axum::extract::State(g): axum::extract::State<Gate>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    use flowbot_store::ProjectOf;
    let refuse = |req: &axum::extract::Request| match g.kind {
        Kind::Api => crate::error::ApiError::Forbidden.into_response(),
        Kind::Page => crate::ui::forbidden(req.headers()),
    };
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return refuse(&req);
    };
    let method = req.method().clone();
    let named = match g.scope {
        Scope::Workspace => {
            return if caller.may(g.perm, &method) {
                next.run(req).await
            } else {
                refuse(&req)
            };
        }
        Scope::Projects => None,
        Scope::Flow(p) => Some((ProjectOf::Flow, p)),
        Scope::Connection(p) => Some((ProjectOf::Connection, p)),
        Scope::Run(p) => Some((ProjectOf::Run, p)),
        Scope::Table(p) => Some((ProjectOf::Table, p)),
    };
    let Some((kind, param)) = named else {
        return if caller.may_somewhere(g.perm, &method) {
            next.run(req).await
        } else {
            refuse(&req)
        };
    };
    let (mut parts, body) = req.into_parts();
    let id = axum::extract::RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|ps| {
            ps.iter()
                .find(|(k, _)| *k == param)
                .map(|(_, v)| v.to_string())
        });
    let req = axum::extract::Request::from_parts(parts, body);
    let store = req.extensions().get::<flowbot_store::Store>().cloned();
    let (named_id, store_again) = (id.clone(), store.clone());
    let project = match (id, store) {
        (Some(id), Some(store)) => match store.project_of(kind, &id).await {
            Ok(p) => p,
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        },
        _ => None,
    };
    match project {
        Some(p) if caller.may_in(&p, g.perm, &method) => next.run(req).await,
        // Nothing by that id: whoever may do this somewhere hears "not found".
        None if caller.may_somewhere(g.perm, &method) => next.run(req).await,
        // People asked something in a run may read it (operators see only those runs).
        Some(_) if asked_in_run(&g, &method, store_again, &caller, named_id.as_deref()).await => {
            next.run(req).await
        }
        _ => refuse(&req),
    }
}

/// Whether the caller reads a run they were asked something in.
async fn asked_in_run(
    g: &Gate,
    method: &axum::http::Method,
    store: Option<flowbot_store::Store>,
    caller: &Caller,
    id: Option<&str>,
) -> bool {
    if !matches!(g.scope, Scope::Run(_))
        || g.perm != Perm::Read
        || method != axum::http::Method::GET
    {
        return false;
    }
    let (Some(store), Some(id)) = (store, id) else {
        return false;
    };
    store
        .asked_in_run(id, &caller.user.username)
        .await
        .unwrap_or(false)
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A login session (unsafe methods with the CSRF token) or an API token, whose
    /// member's role grants the permission.
    Needs(Perm),
    /// Anyone: signing in, the OAuth callback, webhook ingress, health.
    Public,
}

/// What a route does, in the terms roles are granted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    /// Anything about the caller themselves: who they are, their profile, their tokens,
    /// signing out. Every role.
    Own,
    /// Read flows, runs, events, templates and apps — no secrets. Viewer and up.
    Read,
    /// Re-run, cancel and switch flows ON and OFF. Editor and up.
    Run,
    /// Build flows and use connections (create, change, test, describe). Editor and up.
    Build,
    /// Members, invitations, settings, apps added to the workspace, the audit log.
    /// Admin and owner.
    Admin,
    /// Transferring ownership. Owner only.
    Owner,
}

impl Perm {
    pub const ALL: [Perm; 6] = [
        Perm::Own,
        Perm::Read,
        Perm::Run,
        Perm::Build,
        Perm::Admin,
        Perm::Owner,
    ];

    /// Whether a member with `role` holds this permission.
    pub fn granted(self, role: Role) -> bool {
        match role {
            Role::Owner => true,
            Role::Admin => self != Perm::Owner,
            Role::Editor => matches!(self, Perm::Own | Perm::Read | Perm::Run | Perm::Build),
            Role::Viewer => matches!(self, Perm::Own | Perm::Read),
            Role::Operator => self == Perm::Own,
        }
    }
}

/// Where a route's permission is held: in the workspace, or in the project of the thing it
/// names (a member may have a role of their own in a project).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The workspace role decides (members, settings, the audit log…).
    Workspace,
    /// Any project where the role allows it: lists are filtered to those projects, and
    /// what is made goes into one of them (the handler checks which).
    Projects,
    /// The project of the flow named by this path parameter.
    Flow(&'static str),
    /// The project of the connection named by this path parameter.
    Connection(&'static str),
    /// The project of the run named by this path parameter.
    Run(&'static str),
    /// The project of the table named by this path parameter.
    Table(&'static str),
}

/// An API route (in the OpenAPI document) or a page of the web UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Page,
}

/// What the API description says of one route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    /// None until declared: [`Routes::add`] refuses a route without it.
    pub access: Option<Access>,
    pub scope: Scope,
    pub kind: Kind,
    pub summary: &'static str,
    /// The query parameters: the properties of the type the handler reads the query into.
    pub query: Option<SchemaFn>,
    /// Path parameters that are whole numbers (the others are text).
    pub integer_params: &'static [&'static str],
    /// The request bodies the route takes, by media type (none: it takes no body).
    pub bodies: Vec<Body>,
    /// The body may be left out altogether.
    pub body_optional: bool,
    /// The successful answers (a refusal is always the error envelope).
    pub answers: Vec<Answer>,
}

/// One media type of a request body.
#[derive(Debug, Clone, Copy)]
pub struct Body {
    pub media: &'static str,
    /// The body's schema, derived from the Rust type the handler reads it into.
    pub schema: SchemaFn,
}

/// One successful answer a route gives.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    /// None: no body (204, or a redirect).
    pub media: Option<&'static str>,
    /// The JSON body's schema, derived from the type the handler answers with.
    pub schema: Option<SchemaFn>,
}

/// Writes a type's JSON Schema into the document's generator (named types become
/// `#/components/schemas/…` references).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// A route's description, to be given its handler by [`Routes::add`].
pub fn op(method: &'static str, path: &'static str, summary: &'static str) -> RouteDoc {
    RouteDoc {
        method,
        path,
        access: None,
        scope: Scope::Workspace,
        kind: Kind::Api,
        summary,
        query: None,
        integer_params: &[],
        bodies: Vec::new(),
        body_optional: false,
        answers: vec![Answer {
            status: 200,
            media: Some("application/json"),
            schema: None,
        }],
    }
}

/// A page of the web UI: HTML, for a signed-in browser (or anyone, with `public`).
pub fn page(path: &'static str, summary: &'static str) -> RouteDoc {
    RouteDoc {
        kind: Kind::Page,
        ..op("get", path, summary).answers("text/html", 200)
    }
}

impl RouteDoc {
    pub fn public(mut self) -> Self {
        self.access = Some(Access::Public);
        self
    }

    /// The permission a caller's role must grant.
    pub fn needs(mut self, perm: Perm) -> Self {
        self.access = Some(Access::Needs(perm));
        self
    }

    /// The permission is held in projects: lists are filtered, new things go into one.
    pub fn in_projects(mut self) -> Self {
        self.scope = Scope::Projects;
        self
    }

    /// The permission is held in the project of the flow `{param}` names.
    pub fn of_flow(mut self, param: &'static str) -> Self {
        self.scope = Scope::Flow(param);
        self
    }

    /// The permission is held in the project of the connection `{param}` names.
    pub fn of_connection(mut self, param: &'static str) -> Self {
        self.scope = Scope::Connection(param);
        self
    }

    /// The permission is held in the project of the run `{param}` names.
    pub fn of_run(mut self, param: &'static str) -> Self {
        self.scope = Scope::Run(param);
        self
    }

    /// The permission is held in the project of the table `{param}` names.
    pub fn of_table(mut self, param: &'static str) -> Self {
        self.scope = Scope::Table(param);
        self
    }

    /// The permission the route needs (None: public).
    pub fn perm(&self) -> Option<Perm> {
        match self.access {
            Some(Access::Needs(p)) => Some(p),
            _ => None,
        }
    }

    /// Query parameters read into `Q` (every one optional unless `Q` says otherwise).
    pub fn query<Q: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<Q>);
        self
    }

    pub fn integer_params(mut self, names: &'static [&'static str]) -> Self {
        self.integer_params = names;
        self
    }

    /// A JSON body read into `T`: its schema is derived from the type.
    pub fn json_body<T: JsonSchema>(self) -> Self {
        self.body::<T>("application/json")
    }

    /// A body of `media` read into `T` (e.g. a YAML file as a `String`, form fields as a
    /// map); a route may take several.
    pub fn body<T: JsonSchema>(mut self, media: &'static str) -> Self {
        self.bodies.push(Body {
            media,
            schema: schema_of::<T>,
        });
        self
    }

    /// A JSON body of type `T` that may be left out.
    pub fn optional_json_body<T: JsonSchema>(mut self) -> Self {
        self.body_optional = true;
        self.json_body::<T>()
    }

    /// The answer is JSON of type `T` (status 200 unless [`RouteDoc::status`] says).
    pub fn returns<T: JsonSchema>(mut self) -> Self {
        let status = self.answers.first().map_or(200, |a| a.status);
        self.answers = vec![Answer {
            status,
            media: Some("application/json"),
            schema: Some(schema_of::<T>),
        }];
        self
    }

    /// The status of the (first) successful answer.
    pub fn status(mut self, status: u16) -> Self {
        self.answers[0].status = status;
        self
    }

    /// Another successful answer, JSON of type `T`.
    pub fn also<T: JsonSchema>(mut self, status: u16) -> Self {
        self.answers.push(Answer {
            status,
            media: Some("application/json"),
            schema: Some(schema_of::<T>),
        });
        self
    }

    /// 204 No Content.
    pub fn no_content(self) -> Self {
        self.without_body(204)
    }

    /// An answer without a body (204, or a redirect's 303).
    pub fn without_body(mut self, status: u16) -> Self {
        self.answers = vec![Answer {
            status,
            media: None,
            schema: None,
        }];
        self
    }

    /// An answer that is not JSON.
    pub fn answers(mut self, media: &'static str, status: u16) -> Self {
        self.answers = vec![Answer {
            status,
            media: Some(media),
            schema: None,
        }];
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
    pub fn add<H, T>(self, doc: RouteDoc, handler: H) -> Self
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
        self.add_routed(doc, method)
    }

    /// Register a route whose method router is built elsewhere (a layer on it).
    pub fn add_routed(mut self, doc: RouteDoc, method: MethodRouter<AppState>) -> Self {
        let method = match doc.access {
            None => panic!(
                "{} {} declares no permission: say .needs(Perm::…) or .public()",
                doc.method, doc.path
            ),
            Some(Access::Public) => method,
            Some(Access::Needs(perm)) => method.layer(axum::middleware::from_fn_with_state(
                Gate {
                    perm,
                    kind: doc.kind,
                    scope: doc.scope,
                },
                gate,
            )),
        };
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
