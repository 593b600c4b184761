//! Who may do what: every route and page of the one route table, walked for every role
//! (with API tokens, read-only tokens and browser sessions), against the real server; and
//! the members' life — invitations, role changes, disabling and removing, with the audit
//! log recording each action by the right person.

mod common;

use std::collections::HashMap;

use flowbot_server::routes::{Kind, Perm};
use flowbot_store::{NewUser, Role, Store, StoreConfig};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

struct Team {
    url: String,
    _app: common::TestApp,
    _dir: tempfile::TempDir,
    store: Store,
    http: reqwest::Client,
    /// A full API token per role.
    tokens: HashMap<Role, String>,
    /// User ids per role.
    ids: HashMap<Role, String>,
}

/// A flowbot with one member of each role (the first start's `admin` is the owner), each
/// holding an API token.
async fn team() -> Team {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig {
        database_url: None,
        data_dir: dir.path().into(),
        secret_key: None,
    })
    .await
    .unwrap();
    let app = common::spawn_server(&store, PASSWORD).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut tokens = HashMap::new();
    let mut ids = HashMap::new();
    for role in Role::ALL {
        let user = if role == Role::Owner {
            store.user_for_login("admin").await.unwrap().unwrap().0
        } else {
            store
                .create_user(
                    NewUser::basic(
                        &uname(role),
                        &flowbot_server::auth::hash_password(PASSWORD),
                        role,
                    ),
                    "test",
                )
                .await
                .unwrap()
        };
        assert_eq!(user.role, role);
        let token = format!("fbt_{}", flowbot_server::auth::random_token());
        store
            .create_api_token(
                &user,
                "test",
                false,
                &flowbot_server::auth::token_hash(&token),
                "test",
            )
            .await
            .unwrap();
        tokens.insert(role, token);
        ids.insert(role, user.id);
    }
    Team {
        url: app.url.clone(),
        _app: app,
        _dir: dir,
        store,
        http,
        tokens,
        ids,
    }
}

/// The user name of the team's member of `role`.
fn uname(role: Role) -> String {
    if role == Role::Owner {
        "admin".into()
    } else {
        format!("{role}-member")
    }
}

/// A signed-in browser: its cookie header and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Team {
    async fn sign_in(&self, username: &str, password: &str) -> Session {
        let r = self
            .http
            .post(format!("{}/api/v1/login", self.url))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{username} signs in");
        let cookie = common::set_cookie(&r);
        let body: Value = r.json().await.unwrap();
        Session {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    /// A GET with a token, its answer as JSON.
    async fn get_json(&self, token: &str, path: &str) -> Value {
        self.as_token(token, "get", path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn as_token(&self, token: &str, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                format!("{}{path}", self.url),
            )
            .bearer_auth(token)
    }

    fn as_session(&self, s: &Session, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                format!("{}{path}", self.url),
            )
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf)
    }
}

/// A route's path with every parameter filled with a value that names nothing.
fn concrete(path: &str, params: &[&str], integers: &[&str]) -> String {
    params.iter().fold(path.to_string(), |p, name| {
        let v = if integers.contains(name) { "1" } else { "x" };
        p.replace(&format!("{{{name}}}"), v)
    })
}

#[tokio::test]
async fn every_route_and_page_answers_each_role_as_the_table_says() {
    let t = team().await;
    let docs = flowbot_server::route_docs();
    let pages = docs.iter().filter(|d| d.kind == Kind::Page).count();
    assert!(pages >= 14, "{pages} pages in the table");
    let mut sessions = HashMap::new();
    for role in Role::ALL {
        sessions.insert(role, t.sign_in(&uname(role), PASSWORD).await);
    }
    // A read-only token of the editor: reads only, whatever the role allows.
    let read_only = format!("fbt_{}", flowbot_server::auth::random_token());
    let editor = t.store.member(&uname(Role::Editor)).await.unwrap().user;
    t.store
        .create_api_token(
            &editor,
            "ro",
            true,
            &flowbot_server::auth::token_hash(&read_only),
            "test",
        )
        .await
        .unwrap();
    let mut checked = 0;
    for d in &docs {
        // Signing out would end the session the other pages are walked with.
        let Some(perm) = d.perm() else { continue };
        let path = concrete(d.path, &d.path_params(), d.integer_params);
        for role in Role::ALL {
            let allowed = perm.granted(role);
            let status = match d.kind {
                Kind::Api => t
                    .as_token(&t.tokens[&role], d.method, &path)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                Kind::Page => t
                    .as_session(&sessions[&role], d.method, &path)
                    .send()
                    .await
                    .unwrap()
                    .status(),
            };
            if allowed {
                assert!(
                    status != 403 && status != 401,
                    "{role} may {} {path}, got {status}",
                    d.method
                );
            } else {
                assert_eq!(status, 403, "{role} may not {} {path}", d.method);
            }
            checked += 1;
        }
        if d.kind == Kind::Api {
            let status = t
                .as_token(&read_only, d.method, &path)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status();
            let allowed = d.method == "get" && perm.granted(Role::Editor);
            if allowed {
                assert!(status != 403, "a read-only token may {} {path}", d.method);
            } else {
                assert_eq!(status, 403, "a read-only token may not {} {path}", d.method);
            }
        }
    }
    assert!(checked > 300, "{checked} route × role checks");
    // Every permission is used by some route, so none is left without a rule to test.
    for p in Perm::ALL {
        assert!(docs.iter().any(|d| d.perm() == Some(p)), "{p:?} is used");
    }
    // The sessions still work: nothing above signed anyone out.
    let me = t
        .as_session(&sessions[&Role::Viewer], "get", "/api/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user"]["role"], "viewer");
    assert_eq!(me["permissions"], json!(["own", "read"]));
}

#[tokio::test]
async fn a_viewer_and_an_operator_are_refused_every_write_and_a_403_page_is_in_their_language() {
    let t = team().await;
    let docs = flowbot_server::route_docs();
    let writes: Vec<_> = docs
        .iter()
        .filter(|d| d.kind == Kind::Api && d.method != "get" && d.perm().is_some())
        // Reading routes that take a body (validate, parse) change nothing.
        .filter(|d| !matches!(d.perm(), Some(Perm::Own | Perm::Read)))
        .collect();
    assert!(writes.len() > 30, "{} write routes", writes.len());
    for role in [Role::Viewer, Role::Operator] {
        for d in &writes {
            let path = concrete(d.path, &d.path_params(), d.integer_params);
            let r = t
                .as_token(&t.tokens[&role], d.method, &path)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{role}: {} {path}", d.method);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden", "{body}");
        }
    }
    let s = t.sign_in(&uname(Role::Viewer), PASSWORD).await;
    let page = t
        .as_session(&s, "get", "/connections")
        .header("accept-language", "ja")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(html.contains("権限がありません"), "{html}");
    // The viewer's pages do not offer what the role cannot do.
    let runs = t
        .as_session(&s, "get", "/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !runs.contains("href=\"/connections\""),
        "no connections link"
    );
    assert!(!runs.contains("href=\"/members\""), "no members link");
    // An operator's home holds no runs.
    let s = t.sign_in(&uname(Role::Operator), PASSWORD).await;
    let home = t
        .as_session(&s, "get", "/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("operator-home"), "{home}");
    assert!(!home.contains("href=\"/runs\""));
}

#[tokio::test]
async fn a_disabled_or_removed_member_is_signed_out_at_once_and_the_last_owner_stays() {
    let t = team().await;
    let owner = t.sign_in("admin", PASSWORD).await;
    let editor = t.sign_in(&uname(Role::Editor), PASSWORD).await;
    let viewer = t.sign_in(&uname(Role::Viewer), PASSWORD).await;
    for s in [&editor, &viewer] {
        let r = t.as_session(s, "get", "/api/v1/me").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // Disabled: the session and the token answer 401 on the next request.
    let r = t
        .as_session(
            &owner,
            "patch",
            &format!("/api/v1/members/{}", t.ids[&Role::Editor]),
        )
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = t
        .as_session(&editor, "get", "/api/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = t
        .as_token(&t.tokens[&Role::Editor], "get", "/api/v1/flows")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = t
        .http
        .post(format!("{}/api/v1/login", t.url))
        .json(&json!({ "username": uname(Role::Editor), "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a disabled member cannot sign in");
    // Removed: the same, and the member is gone.
    let r = t
        .as_session(
            &owner,
            "delete",
            &format!("/api/v1/members/{}", t.ids[&Role::Viewer]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = t
        .as_session(&viewer, "get", "/api/v1/runs")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let page = t.as_session(&viewer, "get", "/runs").send().await.unwrap();
    assert_eq!(page.status(), 303, "a page sends them to sign in");
    assert_eq!(page.headers()["location"], "/login");
    // An admin cannot change the owner; the owner cannot change themselves; the last owner
    // cannot be demoted.
    let r = t
        .as_token(
            &t.tokens[&Role::Admin],
            "patch",
            &format!("/api/v1/members/{}", t.ids[&Role::Owner]),
        )
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = t
        .as_session(
            &owner,
            "patch",
            &format!("/api/v1/members/{}", t.ids[&Role::Owner]),
        )
        .json(&json!({ "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(t
        .store
        .set_role(&t.ids[&Role::Owner], Role::Admin, "test")
        .await
        .is_err());
    // Ownership moves in one step: the admin becomes owner, the owner an admin.
    let r = t
        .as_session(
            &owner,
            "post",
            &format!("/api/v1/members/{}/transfer-ownership", t.ids[&Role::Admin]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let m = t.store.member("admin").await.unwrap();
    assert_eq!(m.user.role, Role::Admin);
    let m = t.store.member(&uname(Role::Admin)).await.unwrap();
    assert_eq!(m.user.role, Role::Owner);
}

#[tokio::test]
async fn an_invitation_makes_a_member_once_and_the_audit_log_names_who_did_what() {
    let t = team().await;
    let owner = t.sign_in("admin", PASSWORD).await;
    let r = t
        .as_session(&owner, "post", "/api/v1/invitations")
        .json(&json!({ "email": "hanako@example.co.jp", "role": "editor" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let invited: Value = r.json().await.unwrap();
    assert_eq!(invited["emailed"], false, "no email is configured");
    let link = invited["link"].as_str().unwrap();
    let token = link.rsplit('/').next().unwrap();
    // The link's page works for anyone, without signing in.
    let page = t
        .http
        .get(format!("{}/invite/{token}", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("hanako@example.co.jp"));
    // A weak password or a bad user name is refused before the link is spent.
    for (username, password) in [("hanako", "short"), ("hana ko", "long enough pw")] {
        let r = t
            .http
            .post(format!("{}/api/v1/invitations/accept", t.url))
            .json(&json!({ "token": token, "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{username}");
    }
    let accept = json!({ "token": token, "username": "hanako", "password": "long enough pw", "display_name": "山田 花子" });
    let r = t
        .http
        .post(format!("{}/api/v1/invitations/accept", t.url))
        .json(&accept)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let joined: Value = r.json().await.unwrap();
    assert_eq!(joined["user"]["role"], "editor");
    assert_eq!(joined["user"]["email"], "hanako@example.co.jp");
    let r = t
        .http
        .post(format!("{}/api/v1/invitations/accept", t.url))
        .json(&json!({ "token": token, "username": "hanako2", "password": "long enough pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a link works once");
    let hanako = t.sign_in("hanako", "long enough pw").await;
    // Her actions are hers in the log, with her address.
    let r = t
        .as_session(&hanako, "post", "/api/v1/runs/nope/cancel")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "nothing to cancel: nothing recorded");
    let r = t
        .as_session(&hanako, "post", "/api/v1/tokens")
        .json(&json!({ "name": "ci", "read_only": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let secret = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .http
        .post(format!("{}/api/v1/login", t.url))
        .json(&json!({ "username": "hanako", "password": "wrong guess!" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = t
        .as_session(&owner, "get", "/api/v1/audit?actor=hanako")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "session.sign_in_failed",
            "api_token.create",
            "session.sign_in",
            "session.sign_in",
            "member.join"
        ],
        "{page}"
    );
    for e in page["entries"].as_array().unwrap() {
        assert_eq!(e["address"], "127.0.0.1", "{e}");
    }
    let invite = t
        .as_session(&owner, "get", "/api/v1/audit?action=member.invite")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(invite["entries"][0]["actor"], "admin");
    assert_eq!(invite["entries"][0]["detail"]["role"], "editor");
    // The export holds the same, and never a secret.
    let csv = t
        .as_session(&owner, "get", "/api/v1/audit.csv?actor=hanako")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.contains("member.join"));
    let all = t
        .as_session(&owner, "get", "/api/v1/audit.csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in [secret.as_str(), token, PASSWORD, "long enough pw"] {
        assert!(!all.contains(secret), "the audit log holds a secret");
    }
    // The audit page shows the entries to the owner, not to an editor.
    let html = t
        .as_session(&owner, "get", "/audit?actor=hanako")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("member.join"), "{html}");
    let r = t.as_session(&hanako, "get", "/audit").send().await.unwrap();
    assert_eq!(r.status(), 403);
}

fn flow_yaml(id: &str) -> String {
    format!(
        "version: 1\nid: {id}\nname: {id}\ntrigger: {{ app: manual }}\nsteps:\n  - id: a\n    set: {{ x: 1 }}\n"
    )
}

#[tokio::test]
async fn a_role_of_ones_own_in_a_project_opens_that_project_and_no_other() {
    let t = team().await;
    let sales = t.store.create_project("営業", "test").await.unwrap();
    for (role, given) in [(Role::Operator, Role::Viewer), (Role::Viewer, Role::Editor)] {
        t.store
            .set_project_role(&sales.id, &t.ids[&role], Some(given), "test")
            .await
            .unwrap();
    }
    for (id, project) in [("home", None), ("deals", Some(sales.id.clone()))] {
        t.store
            .import_flow_as(
                id,
                id,
                &flow_yaml(id),
                "test",
                flowbot_store::NewFlow {
                    project,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    // The operator reads the sales project only.
    let op = &t.tokens[&Role::Operator];
    let listed: Value = t.get_json(op, "/api/v1/flows").await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["deals"]);
    for (path, status) in [
        ("/api/v1/flows/deals", 200),
        ("/api/v1/flows/home", 403),
        ("/api/v1/flows/deals/versions", 200),
    ] {
        let r = t.as_token(op, "get", path).send().await.unwrap();
        assert_eq!(r.status(), status, "operator: {path}");
    }
    let r = t
        .as_token(op, "post", "/api/v1/flows/deals/disable")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a viewer there changes nothing");
    // Nor through the editor: the other project's flow's samples stay there.
    let r = t
        .as_token(op, "post", "/api/v1/editor/values")
        .json(&json!({ "yaml": flow_yaml("home"), "step_id": "a" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "the editor reads only the caller's projects"
    );
    // The webhook URL's secret is for those who build: a reader could start the flow.
    let deals: Value = t.get_json(op, "/api/v1/flows/deals").await;
    assert_eq!(deals["flow"]["webhook_token"], "", "{deals}");
    assert_eq!(deals["webhook_path"], "");
    // The events inbox shows the events of the projects one reads.
    for id in ["home", "deals"] {
        t.store
            .enqueue(flowbot_store::NewEvent {
                files: Vec::new(),
                flow_id: id.into(),
                flow_version: None,
                source: flowbot_store::Source::Webhook,
                headers: json!({}),
                body: json!({ "n": id }),
                trigger: json!({ "n": id }),
                concurrency_key: Ok(None),
                dedupe: None,
            })
            .await
            .unwrap();
    }
    let events: Value = t.get_json(op, "/api/v1/events").await;
    let flows: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["flow_id"].as_str().unwrap())
        .collect();
    assert_eq!(flows, ["deals"], "{events}");
    let s = t.sign_in(&uname(Role::Operator), PASSWORD).await;
    for (page, status) in [("/flows/deals", 200), ("/flows/home", 403)] {
        let r = t.as_session(&s, "get", page).send().await.unwrap();
        assert_eq!(r.status(), status, "operator page {page}");
    }
    // The viewer builds in the sales project, and only there.
    let v = &t.tokens[&Role::Viewer];
    let r = t
        .as_token(v, "post", "/api/v1/flows")
        .json(&json!({ "yaml": flow_yaml("leads"), "project": sales.id }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = t
        .as_token(v, "post", "/api/v1/flows")
        .json(&json!({ "yaml": flow_yaml("elsewhere") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "not in the default project");
    let r = t
        .as_token(v, "post", "/api/v1/flows")
        .json(&json!({ "yaml": flow_yaml("home").replace("x: 1", "x: 2") }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "nor a new version of the default project's flow"
    );
    for (path, status) in [
        ("/api/v1/flows/deals/enable", 200),
        ("/api/v1/flows/home/enable", 403),
    ] {
        let r = t.as_token(v, "post", path).send().await.unwrap();
        assert_eq!(r.status(), status, "viewer: {path}");
    }
    // Moving a flow needs building on both sides.
    let r = t
        .as_token(v, "post", "/api/v1/flows/deals/move")
        .json(&json!({ "project": "default" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = t
        .as_token(&t.tokens[&Role::Admin], "post", "/api/v1/flows/deals/move")
        .json(&json!({ "project": "default" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.store
            .project_of(flowbot_store::ProjectOf::Flow, "deals")
            .await
            .unwrap()
            .as_deref(),
        Some("default")
    );
    // The projects a member sees, with their role in each.
    let mine: Value = t.get_json(op, "/api/v1/projects").await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["role"], "viewer");
}

/// With an email channel configured for notifications, an invitation goes out through its
/// SMTP server (the sandbox's sink, a real SMTP exchange) and holds the one-time link.
#[tokio::test]
async fn an_invitation_is_emailed_through_the_configured_smtp_server() {
    let t = team().await;
    let smtp = flowbot_sandbox::smtp::start().await.unwrap();
    let mut settings = serde_json::Map::new();
    for (k, v) in [
        ("host", json!("127.0.0.1")),
        ("port", json!(smtp.port)),
        ("security", json!("plain")),
        ("from", json!("flowbot@example.co.jp")),
    ] {
        settings.insert(k.into(), v);
    }
    let mail = t
        .store
        .save_connection("ops mail", "email", &settings, "test")
        .await
        .unwrap();
    let owner = &t.tokens[&Role::Owner];
    let r = t
        .as_token(owner, "put", "/api/v1/settings/notifications")
        .json(&json!({ "channels": [
            { "app": "email", "connection_id": mail.id, "to": "ops@example.co.jp" }
        ]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = t
        .as_token(owner, "post", "/api/v1/invitations")
        .json(&json!({ "email": "hanako@example.co.jp", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let invited: Value = r.json().await.unwrap();
    assert_eq!(invited["emailed"], true);
    let link = invited["link"].as_str().unwrap();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["hanako@example.co.jp"]);
    // The link may be folded by the mail's transfer encoding: its token is in there.
    let token = link.rsplit('/').next().unwrap();
    let unfolded = mails[0].data.replace("=\r\n", "").replace("\r\n", "");
    assert!(unfolded.contains(&token[..32]), "{}", mails[0].data);
}
