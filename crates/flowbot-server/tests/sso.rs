//! Single sign-on against the sandbox's OpenID Connect identity provider (a real server
//! on loopback): members made by allowed domain or by invitation, roles from groups, and
//! every forged or replayed answer refused.

mod common;

use flowbot_sandbox::oidc::{self, OidcSim, TokenFault};
use flowbot_sandbox::Running;
use flowbot_server::sso::SsoConfig;
use flowbot_server::{AppConfig, ServerConfig};
use flowbot_store::{Role, Store, StoreConfig};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

struct Setup {
    url: String,
    idp: Running<OidcSim>,
    store: Store,
    _app: common::TestApp,
    _dir: tempfile::TempDir,
}

async fn setup(owners_only_passwords: bool) -> Setup {
    let idp = oidc::start(Default::default(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let client = idp.sim.config().client.clone();
    let app = common::spawn_app(
        &store,
        AppConfig {
            admin_password: Some(PASSWORD.into()),
            server: ServerConfig {
                sso: Some(SsoConfig {
                    issuer: idp.url.clone(),
                    client_id: client.client_id,
                    client_secret: client.client_secret,
                    groups_claim: "groups".into(),
                    role_map: vec![
                        ("flowbot-editors".into(), Role::Editor),
                        ("flowbot-admins".into(), Role::Admin),
                    ],
                    allowed_domains: vec!["example.co.jp".into()],
                    default_role: Role::Viewer,
                    owners_only_passwords,
                }),
                ..ServerConfig::default()
            },
            ..AppConfig::default()
        },
    )
    .await;
    Setup {
        url: app.url.clone(),
        idp,
        store,
        _app: app,
        _dir: dir,
    }
}

/// A browser of its own: follows no redirect, so each hop is seen.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The way back from the IdP: the callback URL, and the cookie the browser that started
/// the sign-in holds.
#[derive(Clone)]
struct Back {
    url: String,
    cookie: String,
}

/// Leave flowbot for the IdP, sign in there as `sub`: the way back.
async fn to_callback(s: &Setup, start: &str, sub: &str) -> Back {
    let http = browser();
    let r = http.get(format!("{}{start}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let started = common::set_cookie(&r);
    let authorize = url::Url::parse(&location(&r)).unwrap();
    assert!(authorize.as_str().starts_with(&s.idp.url), "{authorize}");
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256", "PKCE");
    assert!(q.contains_key("nonce") && q.contains_key("state"));
    assert!(q["scope"].split(' ').any(|x| x == "openid"));
    let page = http.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut form: Vec<(String, String)> = q
        .into_iter()
        .filter(|(k, _)| k != "scope" && k != "response_type")
        .collect();
    form.push(("sub".into(), sub.into()));
    let r = http
        .post(format!("{}/authorize", s.idp.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{}/auth/sso/callback?", s.url)),
        "{back}"
    );
    Back {
        url: back,
        cookie: started,
    }
}

/// Follow the callback in the browser that started: the session cookie and where it lands,
/// or the refusal's status and page.
async fn callback(back: &Back) -> Result<(String, String), (u16, String)> {
    let r = browser()
        .get(&back.url)
        .header("cookie", &back.cookie)
        .send()
        .await
        .unwrap();
    if r.status() != 303 {
        return Err((r.status().as_u16(), r.text().await.unwrap()));
    }
    let cookie = common::set_cookie(&r);
    Ok((cookie, location(&r)))
}

async fn me(s: &Setup, cookie: &str) -> Value {
    let r = browser()
        .get(format!("{}/api/v1/me", s.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_colleague_signs_in_through_the_identity_provider_and_gets_the_role_of_their_group() {
    let s = setup(false).await;
    let back = to_callback(&s, "/auth/sso?next=/runs", "00u-hanako").await;
    // Finished in another browser (someone sending their own callback link to a
    // colleague), the sign-in is refused; the one that started it is not affected.
    let elsewhere = Back {
        cookie: "flowbot_sso=someone-elses".into(),
        ..back.clone()
    };
    let (status, page) = callback(&elsewhere).await.expect_err("not this browser");
    assert_eq!(status, 403);
    assert!(page.contains("another browser"), "{page}");
    let back = to_callback(&s, "/auth/sso?next=/runs", "00u-hanako").await;
    let (cookie, landed) = callback(&back).await.expect("signed in");
    assert_eq!(landed, "/runs", "back where they were going");
    let who = me(&s, &cookie).await;
    assert_eq!(who["user"]["username"], "hanako");
    assert_eq!(who["user"]["email"], "hanako@example.co.jp");
    assert_eq!(who["user"]["display_name"], "山田 花子");
    assert_eq!(
        who["user"]["role"], "editor",
        "from the flowbot-editors group"
    );
    // The callback works once: the same URL again is refused.
    let (status, page) = callback(&back).await.expect_err("a replay is refused");
    assert_eq!(status, 403);
    assert!(page.contains("used already or has expired"), "{page}");
    assert_eq!(
        s.idp.sim.codes_exchanged(),
        1,
        "the replayed code was never exchanged"
    );
    // The next sign-in finds her by her subject; a group change at the provider changes
    // her role.
    let mut users = s.idp.sim.config().users.clone();
    users[0].groups = vec!["flowbot-admins".into()];
    users[0].email = "hanako.yamada@example.co.jp".into();
    s.idp.sim.set_users(users);
    let (cookie, _) = callback(&to_callback(&s, "/auth/sso", "00u-hanako").await)
        .await
        .unwrap();
    let who = me(&s, &cookie).await;
    assert_eq!(who["user"]["username"], "hanako", "the same member");
    assert_eq!(who["user"]["role"], "admin");
    assert_eq!(s.store.members().await.unwrap().len(), 2);
    // Someone from another domain, without an invitation, is not let in.
    let (status, page) = callback(&to_callback(&s, "/auth/sso", "00u-mallory").await)
        .await
        .expect_err("not a member");
    assert_eq!(status, 403);
    assert!(page.contains("mallory@elsewhere.example"), "{page}");
    // A disabled member is not let in either.
    let hanako = s.store.member("hanako").await.unwrap();
    s.store
        .set_disabled(&hanako.user.id, true, "test")
        .await
        .unwrap();
    let (status, _) = callback(&to_callback(&s, "/auth/sso", "00u-hanako").await)
        .await
        .expect_err("disabled");
    assert_eq!(status, 403);
    let log = s.store.audit_log(50).await.unwrap();
    let refused = log
        .iter()
        .filter(|e| e.action == "session.sso_refused")
        .count();
    assert_eq!(refused, 4, "{log:?}");
    assert!(log
        .iter()
        .any(|e| e.action == "member.role" && e.actor == "sso"));
}

#[tokio::test]
async fn forged_expired_and_misdirected_id_tokens_are_refused_and_make_no_member() {
    let s = setup(false).await;
    for fault in [
        TokenFault::Tampered,
        TokenFault::Unsigned,
        TokenFault::WrongAudience,
        TokenFault::WrongIssuer,
        TokenFault::Expired,
        TokenFault::WrongNonce,
    ] {
        s.idp.sim.set_fault(fault);
        let back = to_callback(&s, "/auth/sso", "00u-hanako").await;
        let (status, page) = callback(&back).await.expect_err("refused");
        assert_eq!(status, 403, "{fault:?}");
        assert!(page.contains("did not check out"), "{fault:?}: {page}");
    }
    assert_eq!(s.store.members().await.unwrap().len(), 1, "only the owner");
    s.idp.sim.set_fault(TokenFault::None);
    let (cookie, _) = callback(&to_callback(&s, "/auth/sso", "00u-hanako").await)
        .await
        .expect("a good token still works");
    assert_eq!(me(&s, &cookie).await["user"]["username"], "hanako");
}

#[tokio::test]
async fn an_invitation_is_accepted_through_the_provider_and_passwords_can_be_for_owners_only() {
    let s = setup(true).await;
    let http = browser();
    // The owner keeps a password (break-glass); members sign in through the provider.
    let r = http
        .post(format!("{}/api/v1/login", s.url))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = common::set_cookie(&r);
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let invite = |email: &'static str| {
        let (http, url, cookie, csrf) = (http.clone(), s.url.clone(), cookie.clone(), csrf.clone());
        async move {
            let r = http
                .post(format!("{url}/api/v1/invitations"))
                .header("cookie", cookie)
                .header("x-csrf-token", csrf)
                .json(&json!({ "email": email, "role": "operator" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let link = r.json::<Value>().await.unwrap()["link"]
                .as_str()
                .unwrap()
                .to_string();
            link.rsplit('/').next().unwrap().to_string()
        }
    };
    // Mallory's domain is not allowed: only the invitation lets her in, as its role.
    let token = invite("mallory@elsewhere.example").await;
    let page = http
        .get(format!("{}/invite/{token}", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("/auth/sso?invite={token}")),
        "{page}"
    );
    // With passwords for owners only, the invitation cannot be taken with a password.
    let r = http
        .post(format!("{}/api/v1/invitations/accept", s.url))
        .json(&json!({ "token": token, "username": "mallory", "password": "a long password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "sso_only"
    );
    let (cookie, _) =
        callback(&to_callback(&s, &format!("/auth/sso?invite={token}"), "00u-mallory").await)
            .await
            .expect("joined through the provider");
    let who = me(&s, &cookie).await;
    assert_eq!(who["user"]["role"], "operator");
    assert_eq!(who["user"]["email"], "mallory@elsewhere.example");
    assert!(
        s.store.invitations().await.unwrap().is_empty(),
        "the link is spent"
    );
    // An invitation for one address is not taken by another person's sign-in.
    let token = invite("someone@example.co.jp").await;
    let (status, page) =
        callback(&to_callback(&s, &format!("/auth/sso?invite={token}"), "00u-jiro").await)
            .await
            .expect_err("not the invited address");
    assert_eq!(status, 403);
    assert!(page.contains("someone@example.co.jp"), "{page}");
    assert!(s.store.member("jiro").await.is_err(), "nobody was made");
    // Without the invitation, his allowed domain makes him a member, with the default role.
    callback(&to_callback(&s, "/auth/sso", "00u-jiro").await)
        .await
        .expect("made by domain");
    let jiro = s.store.member("jiro").await.unwrap();
    assert_eq!(jiro.user.role, Role::Viewer, "made by domain, default role");
    // A member who joined through the provider cannot sign in with a password.
    let r = http
        .post(format!("{}/api/v1/login", s.url))
        .json(&json!({ "username": "mallory", "password": "sso-only" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The owner's other members may hold passwords, but may not use them.
    s.store
        .set_password(
            &jiro.user.id,
            &flowbot_server::auth::hash_password("jiro's password"),
            "test",
        )
        .await
        .unwrap();
    let r = http
        .post(format!("{}/api/v1/login", s.url))
        .json(&json!({ "username": "jiro", "password": "jiro's password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn an_email_a_member_typed_themselves_does_not_take_over_a_colleague_s_sign_in() {
    let s = setup(false).await;
    let taro = s
        .store
        .create_user(
            flowbot_store::NewUser::basic(
                "taro",
                &flowbot_server::auth::hash_password("taro's password"),
                Role::Viewer,
            ),
            "test",
        )
        .await
        .unwrap();
    s.store
        .update_profile(
            &taro.id,
            flowbot_store::Profile {
                email: Some("hanako@example.co.jp".into()),
                ..Default::default()
            },
            "taro",
        )
        .await
        .unwrap();
    let mut users = s.idp.sim.config().users.clone();
    users[0].groups = vec!["flowbot-admins".into()];
    s.idp.sim.set_users(users);
    let (cookie, _) = callback(&to_callback(&s, "/auth/sso", "00u-hanako").await)
        .await
        .expect("signed in");
    let who = me(&s, &cookie).await;
    assert_eq!(who["user"]["username"], "hanako", "a member of her own");
    assert_eq!(who["user"]["role"], "admin");
    let taro = s.store.member("taro").await.unwrap();
    assert_eq!(taro.user.role, Role::Viewer, "taro gained nothing");
}
