//! The web UI: server-rendered minijinja pages from `web/`, embedded in the binary, with a
//! little vanilla JS that calls the REST API. Japanese and English (Accept-Language, or
//! `?lang=` remembered in a cookie). Pages auto-escape everything: whatever a user or a
//! webhook wrote is shown as text, never as markup.

mod admin;
mod home;
mod members;
mod runs;
mod tables;
mod tasks;

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use flowbot_store::{RunFilter, RunStatus};
use minijinja::{context, AutoEscape, Environment};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth;
use crate::routes::{page as page_route, Perm, Routes};
use crate::AppState;
use flowbot_store::Role;

const PAGES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../../web/templates/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../../web/templates/login.html"),
    ),
    (
        "flows.html",
        include_str!("../../../../web/templates/flows.html"),
    ),
    (
        "flow.html",
        include_str!("../../../../web/templates/flow.html"),
    ),
    (
        "templates.html",
        include_str!("../../../../web/templates/templates.html"),
    ),
    (
        "runs.html",
        include_str!("../../../../web/templates/runs.html"),
    ),
    (
        "run.html",
        include_str!("../../../../web/templates/run.html"),
    ),
    (
        "connections.html",
        include_str!("../../../../web/templates/connections.html"),
    ),
    (
        "settings.html",
        include_str!("../../../../web/templates/settings.html"),
    ),
    (
        "apps.html",
        include_str!("../../../../web/templates/apps.html"),
    ),
    (
        "home.html",
        include_str!("../../../../web/templates/home.html"),
    ),
    (
        "members.html",
        include_str!("../../../../web/templates/members.html"),
    ),
    (
        "audit.html",
        include_str!("../../../../web/templates/audit.html"),
    ),
    (
        "account.html",
        include_str!("../../../../web/templates/account.html"),
    ),
    (
        "invite.html",
        include_str!("../../../../web/templates/invite.html"),
    ),
    (
        "projects.html",
        include_str!("../../../../web/templates/projects.html"),
    ),
    (
        "form.html",
        include_str!("../../../../web/templates/form.html"),
    ),
    (
        "forbidden.html",
        include_str!("../../../../web/templates/forbidden.html"),
    ),
    (
        "fields.html",
        include_str!("../../../../web/templates/fields.html"),
    ),
    (
        "tasks.html",
        include_str!("../../../../web/templates/tasks.html"),
    ),
    (
        "task.html",
        include_str!("../../../../web/templates/task.html"),
    ),
    (
        "tables.html",
        include_str!("../../../../web/templates/tables.html"),
    ),
    (
        "table.html",
        include_str!("../../../../web/templates/table.html"),
    ),
];

/// UI text: key → (English, Japanese), from `web/text/ui.tsv`.
static TEXT: std::sync::LazyLock<Vec<(&'static str, &'static str, &'static str)>> =
    std::sync::LazyLock::new(|| word_table(include_str!("../../../../web/text/ui.tsv")));

/// The editor's own words, handed to its script, from `web/text/editor.tsv`.
static EDITOR_TEXT: std::sync::LazyLock<Vec<(&'static str, &'static str, &'static str)>> =
    std::sync::LazyLock::new(|| word_table(include_str!("../../../../web/text/editor.tsv")));

/// The grid's words, handed to its script, from `web/text/tables.tsv`.
static TABLE_TEXT: std::sync::LazyLock<Vec<(&'static str, &'static str, &'static str)>> =
    std::sync::LazyLock::new(|| word_table(include_str!("../../../../web/text/tables.tsv")));

/// A word table file: `key<TAB>English<TAB>Japanese` a line; `#` lines are notes. The
/// files are part of the binary and checked by the tests, so a malformed line is a bug.
fn word_table(text: &'static str) -> Vec<(&'static str, &'static str, &'static str)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            match (f.next(), f.next(), f.next()) {
                (Some(k), Some(en), Some(ja)) => (k, en, ja),
                _ => panic!("a word table line needs a key, English and Japanese: {l}"),
            }
        })
        .collect()
}

const BLANK_FLOW: &str = "version: 1\nid: ''\nname: ''\ntrigger: {}\nsteps: []\n";

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, src) in PAGES {
            env.add_template(name, src)
                .expect("the embedded pages are valid templates");
        }
        env
    })
}

/// The pages for a signed-in member, each with the permission it needs.
pub fn pages() -> Routes {
    Routes::default()
        .add(
            page_route("/", "Home: today's runs and what needs attention").needs(Perm::Own),
            home::home,
        )
        .add(
            page_route("/flows", "The flows")
                .needs(Perm::Read)
                .in_projects(),
            flows,
        )
        .add(
            page_route("/flows/{id}", "A flow: built, switched and inspected")
                .needs(Perm::Read)
                .of_flow("id"),
            flow,
        )
        .add(
            page_route("/flows/new", "A new flow")
                .needs(Perm::Build)
                .in_projects(),
            new_flow,
        )
        .add(
            page_route("/flows/{id}/edit", "Old link to the editor")
                .needs(Perm::Read)
                .of_flow("id"),
            edit_flow,
        )
        .add(
            page_route("/templates", "Templates")
                .needs(Perm::Read)
                .in_projects(),
            templates,
        )
        .add(
            page_route("/runs", "Run history")
                .needs(Perm::Read)
                .in_projects(),
            runs::runs,
        )
        .add(
            page_route("/runs/{id}", "A run, step by step")
                .needs(Perm::Read)
                .of_run("id"),
            runs::run,
        )
        .add(
            page_route("/connections", "Connections (マイアプリ連携)")
                .needs(Perm::Build)
                .in_projects(),
            connections,
        )
        .add(
            page_route("/settings", "Settings").needs(Perm::Admin),
            admin::settings,
        )
        .add(
            page_route("/apps", "Apps").needs(Perm::Read).in_projects(),
            admin::apps,
        )
        .add(
            page_route("/members", "Members and invitations").needs(Perm::Admin),
            members::members,
        )
        .add(
            page_route("/audit", "The audit log").needs(Perm::Admin),
            members::audit,
        )
        .add(
            page_route("/projects", "Projects and members' roles in them").needs(Perm::Admin),
            members::projects,
        )
        .add(
            page_route("/account", "Your profile, password and API tokens").needs(Perm::Own),
            members::account,
        )
        .add(
            page_route("/tasks", "My Tasks: approvals and tasks waiting for you").needs(Perm::Own),
            tasks::tasks,
        )
        .add(
            page_route(
                "/tasks/{id}",
                "One approval or task, with its form and decisions",
            )
            .needs(Perm::Own),
            tasks::task,
        )
        .add(
            page_route("/tables", "Tables (データベース): lists kept in flowbot")
                .needs(Perm::Read)
                .in_projects(),
            tables::tables,
        )
        .add(
            page_route(
                "/tables/{id}",
                "A table's grid: rows sorted, filtered, edited, imported and exported",
            )
            .needs(Perm::Read)
            .of_table("id"),
            tables::table,
        )
}

/// The pages anyone may open: signing in, and accepting an invitation.
pub fn public_pages() -> Routes {
    Routes::default()
        .add(page_route("/login", "Sign in").public(), login)
        .add(
            page_route("/invite/{token}", "Accept an invitation").public(),
            members::invite,
        )
        .add(
            page_route("/forms/{flow_id}/{token}", "A form trigger's page").public(),
            crate::forms::page,
        )
        .add(
            crate::routes::RouteDoc {
                method: "post",
                ..page_route(
                    "/forms/{flow_id}/{token}",
                    "Send a form: checked field by field, stored with its run before the thanks",
                )
                .public()
                .without_body(303)
            },
            crate::forms::submit,
        )
        .add(
            page_route("/r/{token}", "An outsider's single-use link to one request").public(),
            tasks::link_page,
        )
        .add(
            crate::routes::RouteDoc {
                method: "post",
                ..page_route(
                    "/r/{token}",
                    "An outsider's decision: checked, then taken with the link (once)",
                )
                .public()
            },
            tasks::link_submit,
        )
        .add(
            page_route(
                "/auth/sso",
                "Sign in through the identity provider (OpenID Connect)",
            )
            .public()
            .without_body(303),
            crate::sso::start,
        )
        .add(
            page_route("/auth/sso/callback", "Back from the identity provider")
                .public()
                .without_body(303),
            crate::sso::callback,
        )
}

/// Scripts, styles and icons: the same for everyone.
pub fn assets() -> Router<AppState> {
    Router::new()
        .route(
            "/static/app.js",
            script(include_str!("../../../../web/static/app.js")),
        )
        .route(
            "/static/values.js",
            script(include_str!("../../../../web/static/values.js")),
        )
        .route(
            "/static/chips.js",
            script(include_str!("../../../../web/static/chips.js")),
        )
        .route(
            "/static/tables.js",
            script(include_str!("../../../../web/static/tables.js")),
        )
        .route(
            "/static/editor.js",
            script(include_str!("../../../../web/static/editor.js")),
        )
        .route(
            "/static/app.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    include_str!("../../../../web/static/app.css"),
                )
            }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "image/svg+xml"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    include_str!("../../../../web/static/favicon.svg"),
                )
            }),
        )
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/static/favicon.svg") }),
        )
}

/// A page script, served from the binary.
fn script(body: &'static str) -> axum::routing::MethodRouter<AppState> {
    get(move || async move {
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            body,
        )
    })
}

/// The caller's language for an API answer: the UI's cookie, else Accept-Language.
pub(crate) fn request_lang(headers: &HeaderMap) -> &'static str {
    lang(headers, &LangQuery::default()).0
}

/// The language: `?lang=` (remembered), the cookie, or the browser's Accept-Language.
fn lang(headers: &HeaderMap, q: &LangQuery) -> (&'static str, bool) {
    if let Some(l) = q.lang.as_deref() {
        return (if l == "ja" { "ja" } else { "en" }, true);
    }
    if let Some(l) = auth::cookie(headers, "flowbot_lang") {
        return (if l == "ja" { "ja" } else { "en" }, false);
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (
        if accept.trim_start().starts_with("ja") {
            "ja"
        } else {
            "en"
        },
        false,
    )
}

fn texts(lang: &str) -> HashMap<&'static str, &'static str> {
    words(&TEXT, lang)
}

/// A table of (key, English, Japanese) in one language.
fn words(
    table: &[(&'static str, &'static str, &'static str)],
    lang: &str,
) -> HashMap<&'static str, &'static str> {
    table
        .iter()
        .map(|(k, en, ja)| (*k, if lang == "ja" { *ja } else { *en }))
        .collect()
}

#[derive(Deserialize, Default)]
pub struct LangQuery {
    lang: Option<String>,
    /// The project to work in (remembered in a cookie).
    #[serde(default)]
    project: Option<String>,
}

/// What every page needs: the signed-in user (or a redirect to the login page).
struct Page {
    user: String,
    role: Option<Role>,
    /// The signed-in member (None on the pages open to anyone).
    member: Option<flowbot_store::User>,
    csrf: String,
    lang: &'static str,
    remember: bool,
    /// The projects the member may read: (id, name).
    projects: Vec<(String, String)>,
    /// The project the member works in (the pages' lists show its flows and runs).
    project: Option<String>,
    /// The project was chosen by this request: remember it.
    remember_project: bool,
    /// The member's own roles in projects.
    project_roles: HashMap<String, Role>,
    /// Approvals and tasks waiting for the member (the badge on My Tasks).
    open_tasks: i64,
}

impl Page {
    /// A page open to anyone: nobody signed in.
    fn anonymous(lang: &'static str, remember: bool) -> Page {
        Page {
            user: String::new(),
            role: None,
            member: None,
            csrf: String::new(),
            lang,
            remember,
            projects: Vec::new(),
            project: None,
            remember_project: false,
            project_roles: HashMap::new(),
            open_tasks: 0,
        }
    }

    /// The member's role in a project (owners and admins hold theirs everywhere).
    fn role_in(&self, project: &str) -> Option<Role> {
        self.role.map(|r| match r {
            Role::Owner | Role::Admin => r,
            r => self.project_roles.get(project).copied().unwrap_or(r),
        })
    }

    /// What the member may do in the project they work in (or, for workspace matters,
    /// in the workspace).
    fn can(&self, perm: Perm) -> bool {
        let role = match (&self.project, perm) {
            (Some(p), Perm::Read | Perm::Run | Perm::Build) => self.role_in(p),
            _ => self.role,
        };
        role.is_some_and(|r| perm.granted(r))
    }

    /// The projects where the member may do what needs `perm`.
    fn projects_with(&self, perm: Perm) -> Vec<String> {
        self.projects
            .iter()
            .filter(|(id, _)| self.role_in(id).is_some_and(|r| perm.granted(r)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The member's time zone (Japan's when theirs is unknown).
    fn tz(&self) -> jiff::tz::TimeZone {
        self.member
            .as_ref()
            .and_then(|m| jiff::tz::TimeZone::get(&m.time_zone).ok())
            .or_else(|| jiff::tz::TimeZone::get("Asia/Tokyo").ok())
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// A moment as the member's clock shows it.
    fn time(&self, ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| {
                t.to_zoned(self.tz())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// Work in `project` on this page (the flow or run it shows).
    fn in_project(mut self, project: &str) -> Page {
        self.project = Some(project.to_string());
        self
    }
}

async fn page(s: &AppState, headers: &HeaderMap, q: &LangQuery) -> Result<Page, Response> {
    let (lang, remember) = lang(headers, q);
    let session = match auth::cookie(headers, auth::SESSION_COOKIE) {
        Some(token) => s
            .store
            .session(&auth::token_hash(token))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    // A member's own language unless this browser chose one.
    let chosen = q.lang.is_some() || auth::cookie(headers, "flowbot_lang").is_some();
    let lang = match session.as_ref().map(|s| s.user.language.as_str()) {
        Some("ja") if !chosen => "ja",
        Some("en") if !chosen => "en",
        _ => lang,
    };
    let Some(sess) = session else {
        return Err(Redirect::to("/login").into_response());
    };
    let project_roles = s
        .store
        .project_roles_of(&sess.user.id)
        .await
        .unwrap_or_default();
    let mut p = Page {
        user: if sess.user.display_name.is_empty() {
            sess.user.username.clone()
        } else {
            sess.user.display_name.clone()
        },
        role: Some(sess.user.role),
        member: Some(sess.user),
        csrf: sess.csrf_token,
        lang,
        remember,
        projects: Vec::new(),
        project: None,
        remember_project: false,
        project_roles,
        open_tasks: 0,
    };
    if let Some(m) = &p.member {
        p.open_tasks = s.store.open_request_count(&m.username).await.unwrap_or(0);
    }
    let all = s.store.project_names().await.unwrap_or_default();
    p.projects = all
        .into_iter()
        .filter(|(id, _)| p.role_in(id).is_some_and(|r| Perm::Read.granted(r)))
        .collect();
    // The project asked for, else the one remembered, else the default one, else the first.
    let readable = |id: &str| p.projects.iter().any(|(x, _)| x == id);
    let asked = q.project.clone().filter(|x| readable(x));
    p.remember_project = asked.is_some();
    p.project = asked
        .or_else(|| {
            auth::cookie(headers, "flowbot_project")
                .map(str::to_string)
                .filter(|x| readable(x))
        })
        .or_else(|| {
            readable(flowbot_store::DEFAULT_PROJECT).then(|| flowbot_store::DEFAULT_PROJECT.into())
        })
        .or_else(|| p.projects.first().map(|(x, _)| x.clone()));
    Ok(p)
}

fn render(p: &Page, name: &str, title: &str, current: &str, extra: Value) -> Response {
    let t = texts(p.lang);
    let other = if p.lang == "ja" { "en" } else { "ja" };
    // What the member's role allows: the pages hide what it does not (the server refuses
    // it anyway).
    let can = json!({
        "read": p.can(Perm::Read), "run": p.can(Perm::Run), "build": p.can(Perm::Build),
        "admin": p.can(Perm::Admin), "owner": p.can(Perm::Owner),
    });
    let projects: Vec<Value> = p
        .projects
        .iter()
        .map(|(id, name)| json!({ "id": id, "name": name }))
        .collect();
    let ctx = context! {
        lang => p.lang, other_lang => other, t => t, user => p.user, csrf => p.csrf,
        title => title, page => current, can => can, projects => projects, project => p.project,
        open_tasks => p.open_tasks,
        ..minijinja::Value::from_serialize(&extra)
    };
    let html = match env().get_template(name).and_then(|tpl| tpl.render(ctx)) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(page = name, error = %e, "a page could not be rendered");
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response();
        }
    };
    let mut resp = Html(html).into_response();
    if p.remember {
        let c = format!(
            "flowbot_lang={}; Path=/; SameSite=Lax; Max-Age=31536000",
            p.lang
        );
        resp.headers_mut()
            .insert(header::SET_COOKIE, c.parse().expect("ascii cookie"));
    }
    if let Some(project) = p.project.as_ref().filter(|_| p.remember_project) {
        // Project ids are made by flowbot (hex and dashes, or `default`): cookie-safe.
        let c = format!("flowbot_project={project}; Path=/; SameSite=Lax; Max-Age=31536000");
        if let Ok(v) = c.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let (lang, remember) = lang(&headers, &q);
    let p = Page::anonymous(lang, remember);
    let t = texts(lang);
    render(
        &p,
        "login.html",
        t["login"],
        "login",
        json!({
            "user": Value::Null, "sso": s.sso.is_some(),
            "owners_only": s.sso.as_ref().is_some_and(|x| x.config.owners_only_passwords),
        }),
    )
}

/// The language of a page open to anyone: `?lang=`, the cookie, or the browser's.
pub(crate) fn page_lang(headers: &HeaderMap, asked: Option<&str>) -> &'static str {
    lang(
        headers,
        &LangQuery {
            lang: asked.map(str::to_string),
            project: None,
        },
    )
    .0
}

/// A form trigger's page: the form (`open`), the thank-you message (`sent`), or why it
/// takes no answer now (`closed`: the flow is OFF; `unavailable`: try again).
pub(crate) fn form_page(
    lang: &'static str,
    form: &Value,
    info: &flowbot_store::FlowInfo,
    token: &str,
    state: &str,
    status: axum::http::StatusCode,
) -> Response {
    let p = Page::anonymous(lang, false);
    let title = form["title"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or(&info.name)
        .to_string();
    let mut extra = form.clone();
    extra["form_title"] = json!(title);
    extra["action"] = json!(format!("/forms/{}/{token}", info.id));
    extra["state"] = json!(state);
    let mut r = render(&p, "form.html", &title, "form", extra);
    *r.status_mut() = status;
    r
}

/// A sign-in through the identity provider that did not go through: why, and a way back.
pub(crate) fn sso_refused(headers: &HeaderMap, why: &str) -> Response {
    let (lang, _) = lang(headers, &LangQuery::default());
    let p = Page::anonymous(lang, false);
    let t = texts(lang);
    let mut r = render(
        &p,
        "login.html",
        t["login"],
        "login",
        json!({ "user": Value::Null, "sso": true, "sso_error": why }),
    );
    *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
    r
}

async fn flows(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let since = s.store.clock().now().as_millisecond() - 24 * 3600 * 1000;
    let mut rows = Vec::new();
    let here = p.project.clone().unwrap_or_default();
    for f in s
        .store
        .flows()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.project_id == here)
    {
        let recent = s
            .store
            .runs(&RunFilter {
                flow_id: Some(f.id.clone()),
                since: Some(since),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        let last = s
            .store
            .runs(&RunFilter {
                flow_id: Some(f.id.clone()),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        rows.push(json!({
            "id": f.id, "name": f.name, "enabled": f.enabled,
            "last_status": last.first().map(|r| r.status.as_str()),
            "runs_24h": recent.len(),
            "failed_24h": recent.iter().filter(|r| r.status == RunStatus::Failed).count(),
        }));
    }
    let title = texts(p.lang)["flows"];
    render(&p, "flows.html", title, "flows", json!({ "flows": rows }))
}

/// The answer to a page the member's role does not allow: 403, in their language.
pub(crate) fn forbidden(headers: &HeaderMap) -> Response {
    let (lang, _) = lang(headers, &LangQuery::default());
    let p = Page::anonymous(lang, false);
    let t = texts(lang);
    let mut r = render(&p, "forbidden.html", t["forbidden_title"], "", json!({}));
    *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
    r
}

/// The address webhooks reach this server at: the configured public URL, else the one
/// saved in the settings.
pub(crate) async fn public_url(s: &AppState) -> String {
    match s.config.public_url() {
        Some(u) => u.to_string(),
        None => s
            .store
            .setting(flowbot_store::notify::PUBLIC_URL)
            .await
            .ok()
            .flatten()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    }
}

/// The flow page: the flow built on itself (cards, a side panel), its trigger switch,
/// webhook URL and connections, the YAML view and the versions. A new flow is the same
/// page without the parts that need a saved flow.
async fn flow(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(info) = s.store.flow(&id).await else {
        return Redirect::to("/flows").into_response();
    };
    let p = p.in_project(&info.project_id);
    let yaml = s.store.current_yaml(&id).await.unwrap_or_default();
    let parsed = s
        .flows
        .get(&s.store, &s.apps, &id, info.current_version)
        .await
        .ok();
    let bound = s.store.flow_bindings(&id).await.unwrap_or_default();
    // Only the connections the flow's project sees can fill its slots.
    let all = s
        .store
        .connections_for(&info.project_id)
        .await
        .unwrap_or_default();
    let slots: Vec<Value> = parsed
        .as_ref()
        .map(|f| {
            f.connections
                .iter()
                .map(|slot| {
                    let choices: Vec<Value> = all.iter().filter(|c| c.app == slot.app).map(|c| json!({ "id": c.id, "name": c.name })).collect();
                    // A new connection can be made right here (signing in through OAuth
                    // brings the browser back to this page).
                    let app = s.apps.get(&slot.app);
                    let fields = app.map(|a| connection_fields(a.manifest(), p.lang)).unwrap_or_default();
                    let app_name = app.map(|a| a.manifest().name.get(p.lang).to_string()).unwrap_or_else(|| slot.app.clone());
                    let oauth = app.is_some_and(|a| a.connects_with_oauth());
                    json!({ "name": slot.name, "app": slot.app, "app_name": app_name, "choices": choices,
                            "bound": bound.get(&slot.name), "fields": fields, "oauth": oauth })
                })
                .collect()
        })
        .unwrap_or_default();
    // How to make the trigger's app call this flow, as its app describes it.
    let setup = parsed.as_ref().and_then(|f| {
        let m = s.apps.manifest(&f.trigger.app)?;
        let t = m.triggers.iter().find(|t| {
            t.setup.is_some() && (f.trigger.events.is_empty() || f.trigger.events.contains(&t.id))
        })?;
        Some(t.setup.as_ref()?.get(p.lang).to_string())
    });
    let public = public_url(&s).await;
    // Open while a connection is still to be chosen: the flow cannot run without it.
    let unbound = slots.iter().any(|x| x["bound"].is_null());
    // Everything a run needs is there: offer to turn the trigger ON.
    let ready = !info.enabled && !unbound && parsed.is_some();
    // Where the flow may move: the projects the member builds in.
    let targets: Vec<Value> = p
        .projects
        .iter()
        .filter(|(x, _)| p.projects_with(Perm::Build).contains(x))
        .map(|(x, name)| json!({ "id": x, "name": name }))
        .collect();
    // A form trigger's page, for those who may hand its address out.
    let form_url = parsed
        .as_ref()
        .filter(|f| f.trigger.app == "form" && p.can(Perm::Build))
        .map(|_| format!("{public}/forms/{}/{}", info.id, info.webhook_token));
    // A mail trigger's address, when this server receives mail.
    let mail_address = parsed
        .as_ref()
        .filter(|f| f.trigger.app == flowbot_core::mail::APP && p.can(Perm::Build))
        .and(s.config.mail.as_ref())
        .map(|m| format!("{}@{}", info.webhook_token, m.domain));
    let mail_off = parsed
        .as_ref()
        .is_some_and(|f| f.trigger.app == flowbot_core::mail::APP)
        && s.config.mail.is_none();
    let extra = json!({
        "targets": targets, "form_url": form_url,
        "mail_address": mail_address, "mail_off": mail_off,
        "flow": info, "slots": slots, "setup": setup, "settings_open": unbound, "ready": ready,
        // The token is a credential: only those who build here see it.
        "webhook_url": if p.can(Perm::Build) {
            format!("{public}/hooks/{}/{}", info.id, info.webhook_token)
        } else {
            String::new()
        },
        "webhook_token": "",
    });
    flow_page(&p, &info.name, &id, &yaml, &public, extra)
}

fn flow_page(
    p: &Page,
    title: &str,
    flow_id: &str,
    yaml: &str,
    public: &str,
    extra: Value,
) -> Response {
    let mut ctx = json!({
        "flow_id": flow_id, "yaml": yaml, "public_url": public, "title_text": title,
        "editor_text": words(&EDITOR_TEXT, p.lang),
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut ctx, extra) {
        m.extend(e);
    }
    render(p, "flow.html", title, "flows", ctx)
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    lang: Option<String>,
    template: Option<String>,
}

/// A new flow on the flow page: blank, or a copy of a template. Its webhook URL is known
/// before the first save: the secret part is drawn here and kept when the flow is saved.
async fn new_flow(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NewQuery>,
) -> Response {
    let lq = LangQuery {
        lang: q.lang,
        project: None,
    };
    let p = match page(&s, &headers, &lq).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let yaml = match q.template.as_deref().and_then(|id| s.template(id)) {
        // Never the id of a flow in use: a template already used opens as a copy.
        Some(t) => crate::api::template_copy(&s, t)
            .await
            .unwrap_or_else(|_| t.to_string()),
        None => BLANK_FLOW.to_string(),
    };
    let public = public_url(&s).await;
    let token = flowbot_store::new_webhook_token();
    // The id is in the page as it arrives, so nothing the page's script does later can
    // change the field under a user already typing in it: the copy's own id, or one drawn.
    let new_id = serde_yaml::from_str::<serde_yaml::Value>(&yaml)
        .ok()
        .and_then(|v| v.get("id")?.as_str().map(str::to_string))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("flow-{}", &flowbot_store::new_webhook_token()[..6]));
    let title = texts(p.lang)["new_flow"];
    let extra = json!({
        "flow": null, "slots": [], "setup": null, "webhook_token": token, "settings_open": true,
        "webhook_url": format!("{public}/hooks/…/{token}"), "new_id": new_id,
    });
    flow_page(&p, title, "", &yaml, &public, extra)
}

/// The editor lives on the flow page now; old links land there.
async fn edit_flow(Path(id): Path<String>) -> Response {
    Redirect::to(&format!("/flows/{id}")).into_response()
}

async fn templates(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let list: Vec<Value> = s
        .templates
        .iter()
        .map(|(id, yaml)| {
            let f = flowbot_core::check(yaml, &s.apps).flow;
            json!({ "id": id, "name": f.as_ref().map(|f| f.name.clone()), "description": f.and_then(|f| f.description) })
        })
        .collect();
    let title = texts(p.lang)["templates"];
    render(
        &p,
        "templates.html",
        title,
        "templates",
        json!({ "templates": list }),
    )
}

/// The fields of a new connection's form, as the app names them.
fn connection_fields(m: &flowbot_core::manifest::AppManifest, lang: &str) -> Vec<Value> {
    m.connection
        .iter()
        .map(|f| {
            json!({
                "name": f.name, "label": f.label.get(lang), "help": f.help.get(lang),
                "secret": f.secret, "required": f.required,
                "default": f.default.as_ref().and_then(|d| d.as_str().map(str::to_string)).unwrap_or_default(),
            })
        })
        .collect()
}

async fn connections(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Connections are for those who build: in view, a project where the member does.
    let p = match p.projects_with(Perm::Build).first() {
        Some(first) if !p.can(Perm::Build) => {
            let first = first.clone();
            p.in_project(&first)
        }
        _ => p,
    };
    // The connections the project in view sees: its own, and those shared with it.
    let here = p.project.clone().unwrap_or_default();
    let name_of = |id: &str| {
        p.projects
            .iter()
            .find(|(x, _)| x == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let builds = p.projects_with(Perm::Build);
    let others: Vec<Value> = p
        .projects
        .iter()
        .filter(|(x, _)| *x != here && builds.contains(x))
        .map(|(x, n)| json!({ "id": x, "name": n }))
        .collect();
    let list: Vec<Value> = s
        .store
        .connections_for(&here)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let app = s.apps.get(&c.app);
            let app_name = app
                .map(|a| a.manifest().name.get(p.lang).to_string())
                .unwrap_or_else(|| c.app.clone());
            let oauth = app.is_some_and(|a| a.connects_with_oauth());
            let mut v = json!(c);
            v["app_name"] = json!(app_name);
            v["oauth"] = json!(oauth);
            v["project_name"] = json!(name_of(&c.project_id));
            v["own"] = json!(c.project_id == here);
            v["shared_names"] = json!(c
                .shared_with
                .iter()
                .map(|x| name_of(x))
                .collect::<Vec<_>>()
                .join(", "));
            v
        })
        .collect();
    let apps: Vec<Value> = s
        .apps
        .manifests()
        .filter(|m| !m.connection.is_empty())
        .map(|m| {
            json!({ "id": m.id, "name": m.name.get(p.lang), "fields": connection_fields(m, p.lang) })
        })
        .collect();
    let title = texts(p.lang)["connections"];
    render(
        &p,
        "connections.html",
        title,
        "connections",
        json!({ "connections": list, "apps": apps, "others": others }),
    )
}

#[cfg(test)]
mod word_tables {
    use super::*;

    #[test]
    fn every_text_has_both_languages_and_one_key() {
        for table in [&*TEXT, &*EDITOR_TEXT, &*TABLE_TEXT] {
            let mut seen = std::collections::HashSet::new();
            for (k, en, ja) in table {
                assert!(seen.insert(*k), "`{k}` twice");
                assert!(!en.trim().is_empty() && !ja.trim().is_empty(), "`{k}`");
            }
        }
        assert!(TEXT.len() > 50 && EDITOR_TEXT.len() > 50);
    }
}
