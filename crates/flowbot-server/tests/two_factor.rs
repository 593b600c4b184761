//! Two-factor sign-in against the real server: set up with an authenticator's code, then
//! every password sign-in asks for a code that works once, or a recovery code that works
//! once; the CLI's password reset turns it off for a locked-out owner.

mod common;

use flowbot_store::{Store, StoreConfig};
use serde_json::{json, Value};
use totp_rs::{Algorithm, Secret, TOTP};

const PASSWORD: &str = "correct horse battery";

struct Signed {
    cookie: String,
    csrf: String,
}

async fn login(
    http: &reqwest::Client,
    url: &str,
    code: Option<&str>,
) -> Result<Signed, (u16, String)> {
    let mut body = json!({ "username": "admin", "password": PASSWORD });
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    let r = http
        .post(format!("{url}/api/v1/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        return Err((status, v["error"]["code"].as_str().unwrap().to_string()));
    }
    let cookie = common::set_cookie(&r);
    let v: Value = r.json().await.unwrap();
    Ok(Signed {
        cookie,
        csrf: v["csrf_token"].as_str().unwrap().to_string(),
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_password_sign_in_asks_for_a_code_that_works_once_and_recovery_codes_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::sqlite(dir.path().join("data")))
        .await
        .unwrap();
    let app = common::spawn_server(&store, PASSWORD).await;
    let (url, http) = (app.url.clone(), reqwest::Client::new());
    let s = login(&http, &url, None).await.unwrap();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{url}{path}"))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let setup: Value = call(reqwest::Method::POST, "/api/v1/me/two-factor", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b32 = setup["secret"].as_str().unwrap();
    assert!(setup["uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/flowbot:admin?secret="));
    assert!(setup["qr"]
        .as_str()
        .unwrap()
        .starts_with("data:image/svg+xml;base64,"));
    let totp = TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        Secret::Encoded(b32.to_string()).to_bytes().unwrap(),
    )
    .unwrap();
    // A wrong code does not turn it on.
    let r = call(
        reqwest::Method::POST,
        "/api/v1/me/two-factor/confirm",
        Some(json!({ "code": "000000" })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(login(&http, &url, None).await.is_ok(), "not on yet");
    // The step after the current one: the code that confirms is spent, so the sign-in
    // below needs the next one.
    let step = now() / 30;
    let confirm_code = totp.generate(step * 30);
    let r = call(
        reqwest::Method::POST,
        "/api/v1/me/two-factor/confirm",
        Some(json!({ "code": confirm_code })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let codes: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    let me: Value = call(reqwest::Method::GET, "/api/v1/me", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["two_factor"], true);

    // The password alone is not enough now; a wrong code neither; nor the spent one.
    assert_eq!(
        login(&http, &url, None).await.err(),
        Some((401, "two_factor_required".into()))
    );
    assert_eq!(
        login(&http, &url, Some("123456")).await.err().unwrap().1,
        "wrong_code"
    );
    assert_eq!(
        login(&http, &url, Some(&confirm_code))
            .await
            .err()
            .unwrap()
            .1,
        "wrong_code",
        "the confirming code is spent"
    );
    // The next step's code works (one step of drift is allowed), once.
    let next = totp.generate((step + 1) * 30);
    assert!(login(&http, &url, Some(&next)).await.is_ok());
    assert_eq!(
        login(&http, &url, Some(&next)).await.err().unwrap().1,
        "wrong_code",
        "a code works once"
    );
    // A recovery code, typed in capitals without its dash, works once.
    let typed = codes[0].replace('-', "").to_uppercase();
    assert!(login(&http, &url, Some(&typed)).await.is_ok());
    assert!(login(&http, &url, Some(&codes[0])).await.is_err());
    // Turning it off takes a code too.
    let r = call(
        reqwest::Method::DELETE,
        "/api/v1/me/two-factor",
        Some(json!({ "code": codes[1] })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert!(login(&http, &url, None).await.is_ok());
    let log = store.audit_log(50).await.unwrap();
    for action in [
        "member.two_factor_on",
        "member.recovery_code_used",
        "member.two_factor_off",
    ] {
        assert!(log.iter().any(|e| e.action == action), "{action}");
    }
    // The secret is kept sealed: its text is nowhere in the database file.
    let mut raw = Vec::new();
    for f in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            raw.extend(std::fs::read(p).unwrap());
        }
    }
    let secret = Secret::Encoded(b32.to_string()).to_bytes().unwrap();
    assert!(!raw.windows(secret.len()).any(|w| w == secret.as_slice()));
    assert!(!raw.windows(b32.len()).any(|w| w == b32.as_bytes()));
}
