//! The Salesforce connector against the Salesforce simulator, over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use flowbot_connectors::salesforce::{jwt_assertion, SalesforceConnector};
use flowbot_core::{ActionCall, ActionError, Connection, Connector};
use flowbot_sandbox::salesforce::{self, SalesforceConfig, SalesforceSim};
use flowbot_sandbox::Running;
use serde_json::{json, Map, Value};

const PRIVATE_KEY: &str = include_str!("fixtures/jwt-test-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/jwt-test-key.pub.pem");

async fn org(cfg: SalesforceConfig) -> Running<SalesforceSim> {
    salesforce::start(cfg, 0)
        .await
        .expect("start the simulator")
}

fn connector() -> Arc<SalesforceConnector> {
    Arc::new(SalesforceConnector::new(reqwest::Client::new()))
}

fn conn(sf: &Running<SalesforceSim>, extra: Value) -> Connection {
    let mut settings = match json!({
        "my_domain_url": sf.url,
        "client_id": sf.sim.config().client_id,
        "client_secret": sf.sim.config().client_secret,
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    if let Value::Object(e) = extra {
        settings.extend(e);
    }
    Connection {
        name: "sf".into(),
        app: "salesforce".into(),
        settings,
    }
}

async fn run(
    c: &SalesforceConnector,
    conn: &Connection,
    action: &str,
    input: Value,
) -> Result<Value, ActionError> {
    let input: Map<String, Value> = match input {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    c.execute(ActionCall {
        action,
        input: &input,
        connection: Some(conn),
    })
    .await
}

#[tokio::test]
async fn records_are_created_searched_updated_upserted_and_deleted() {
    let sf = org(SalesforceConfig::default()).await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    let created = run(&c, &cn, "create_record", json!({"object": "Account", "fields": {"Name": "山田 太郎", "Mail__c": "taro@example.com"}}))
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("001") && id.len() == 18, "{id}");
    assert_eq!(created["created"], true);

    // Text compares without regard to case, as in a real org.
    let found = run(&c, &cn, "search_records", json!({"object": "Account", "where": {"Mail__c": "TARO@example.com"}, "fields": ["Id", "Name"]}))
        .await
        .unwrap();
    assert_eq!(found["totalSize"], 1);
    assert_eq!(found["records"][0]["Id"], id);
    assert_eq!(found["records"][0]["attributes"]["type"], "Account");

    run(
        &c,
        &cn,
        "update_record",
        json!({"object": "Account", "id": id, "fields": {"Name": "山田 花子"}}),
    )
    .await
    .unwrap();
    let got = run(
        &c,
        &cn,
        "get_record",
        json!({"object": "Account", "id": id, "fields": ["Name", "Mail__c"]}),
    )
    .await
    .unwrap();
    assert_eq!(got["Name"], "山田 花子");

    let up = json!({"object": "Account", "external_id_field": "Ecforce_Customer_Id__c", "external_id": "42", "fields": {"Name": "佐藤 一郎"}});
    let first = run(&c, &cn, "upsert_record", up.clone()).await.unwrap();
    assert_eq!(first["created"], true);
    let again = run(&c, &cn, "upsert_record", up).await.unwrap();
    assert_eq!(
        (again["created"].clone(), again["id"].clone()),
        (json!(false), first["id"].clone())
    );

    run(
        &c,
        &cn,
        "delete_record",
        json!({"object": "Account", "id": id}),
    )
    .await
    .unwrap();
    let names: Vec<Value> = sf
        .sim
        .records("Account")
        .iter()
        .map(|r| r["Name"].clone())
        .collect();
    assert_eq!(names, [json!("佐藤 一郎")]);
    let usage = c.api_usage();
    assert_eq!(usage.len(), 1, "Sforce-Limit-Info is read: {usage:?}");
    assert_eq!((usage[0].used, usage[0].limit), (7, 100_000));
}

#[tokio::test]
async fn searches_follow_next_records_url() {
    let sf = org(SalesforceConfig {
        query_batch_size: 2,
        ..SalesforceConfig::default()
    })
    .await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    for i in 0..5 {
        run(&c, &cn, "create_record", json!({"object": "Account", "fields": {"Name": format!("n{i}"), "Mail__c": "same@example.com"}}))
            .await
            .unwrap();
    }
    let found = run(
        &c,
        &cn,
        "search_records",
        json!({"object": "Account", "where": {"Mail__c": "same@example.com"}}),
    )
    .await
    .unwrap();
    assert_eq!(found["totalSize"], 5);
    assert_eq!(found["records"].as_array().unwrap().len(), 5);
    assert_eq!(sf.sim.stats()["calls"]["query"], 3, "three pages");
}

#[tokio::test]
async fn search_values_stay_literals() {
    let sf = org(SalesforceConfig::default()).await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    let tricky = [
        "x' OR Name != '",
        "O'Brien \\ \"quoted\"",
        "改行\nタブ\t山田",
        "back\\slash'",
    ];
    for name in tricky {
        run(
            &c,
            &cn,
            "create_record",
            json!({"object": "Account", "fields": {"Name": name}}),
        )
        .await
        .unwrap();
    }
    for name in tricky {
        let found = run(
            &c,
            &cn,
            "search_records",
            json!({"object": "Account", "where": {"Name": name}, "fields": ["Name"]}),
        )
        .await
        .unwrap();
        assert_eq!(found["totalSize"], 1, "{name:?}");
        assert_eq!(found["records"][0]["Name"], name);
    }
    // The injection attempt matches nothing it should not.
    let found = run(
        &c,
        &cn,
        "search_records",
        json!({"object": "Account", "where": {"Mail__c": "x' OR Name != '"}}),
    )
    .await
    .unwrap();
    assert_eq!(found["totalSize"], 0);
    // Raw SOQL with the soql_quote filter's escaping.
    let soql = format!(
        "SELECT Id FROM Account WHERE Name = {}",
        flowbot_core::template::soql_literal("O'Brien \\ \"quoted\"")
    );
    let q = run(&c, &cn, "query", json!({"soql": soql})).await.unwrap();
    assert_eq!(q["totalSize"], 1);
}

#[tokio::test]
async fn an_expired_session_is_replaced_once_for_all_concurrent_runs() {
    let sf = org(SalesforceConfig::default()).await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    let burst = |c: Arc<SalesforceConnector>, cn: Connection| async move {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (c, cn) = (c.clone(), cn.clone());
                tokio::spawn(async move {
                    run(
                        &c,
                        &cn,
                        "create_record",
                        json!({"object": "Account", "fields": {"Name": format!("n{i}")}}),
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    burst(c.clone(), cn.clone()).await;
    assert_eq!(
        sf.sim.stats()["tokens_issued"],
        1,
        "one sign-in shared by 20 runs"
    );
    sf.sim.expire_tokens();
    burst(c.clone(), cn.clone()).await;
    assert_eq!(
        sf.sim.stats()["tokens_issued"],
        2,
        "one re-sign-in, no failed run"
    );
    assert_eq!(sf.sim.records("Account").len(), 40);
}

#[tokio::test]
async fn jwt_bearer_signs_in_with_the_right_claims() {
    let sf = org(SalesforceConfig {
        jwt_public_key_pem: Some(PUBLIC_KEY.into()),
        ..SalesforceConfig::default()
    })
    .await;
    let c = connector();
    let cfg = sf.sim.config().clone();
    let jwt = conn(
        &sf,
        json!({"auth": "jwt_bearer", "username": cfg.username, "private_key": PRIVATE_KEY}),
    );
    run(
        &c,
        &jwt,
        "create_record",
        json!({"object": "Account", "fields": {"Name": "JWT"}}),
    )
    .await
    .unwrap();

    let assertion = jwt_assertion(
        &cfg.client_id,
        &cfg.username,
        "https://login.salesforce.com",
        PRIVATE_KEY,
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&["https://login.salesforce.com"]);
    let claims = jsonwebtoken::decode::<Value>(
        &assertion,
        &jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], cfg.client_id);
    assert_eq!(claims["sub"], cfg.username);
    let exp = claims["exp"].as_i64().unwrap() - jiff::Timestamp::now().as_second();
    assert!(
        (0..=180).contains(&exp),
        "expires within three minutes: {exp}"
    );

    // The My Domain URL is not a valid audience.
    let wrong = conn(
        &sf,
        json!({"auth": "jwt_bearer", "username": cfg.username, "private_key": PRIVATE_KEY, "audience": sf.url}),
    );
    let e = run(
        &connector(),
        &wrong,
        "create_record",
        json!({"object": "Account", "fields": {"Name": "x"}}),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.message.contains("invalid_grant"), "{}", e.message);
}

#[tokio::test]
async fn a_rotated_refresh_token_keeps_working() {
    let sf = org(SalesforceConfig {
        rotate_refresh_tokens: true,
        ..SalesforceConfig::default()
    })
    .await;
    let cfg = sf.sim.config().clone();
    // The authorization-code flow with PKCE, as the UI's "connect" button will do.
    let verifier = "a-long-random-code-verifier-0123456789-abcdefghijklmnop";
    let challenge = {
        use base64::Engine;
        let d = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}/services/oauth2/authorize", sf.url))
        .query(&[
            ("response_type", "code"),
            ("client_id", cfg.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("state", "s1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "s1");
    let token_url = format!("{}/services/oauth2/token", sf.url);
    let form = |verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", q["code"].clone()),
            ("redirect_uri", "http://127.0.0.1:9/callback".into()),
            ("client_id", cfg.client_id.clone()),
            ("client_secret", cfg.client_secret.clone()),
            ("code_verifier", verifier.to_string()),
        ]
    };
    let bad: Value = http
        .post(&token_url)
        .form(&form("wrong-verifier"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        bad["error"], "invalid_grant",
        "the wrong verifier is refused"
    );
    let resp = http
        .get(format!("{}/services/oauth2/authorize", sf.url))
        .query(&[
            ("response_type", "code"),
            ("client_id", cfg.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("code_challenge", challenge.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code: String = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let mut f = form(verifier);
    f[1].1 = code;
    let tokens: Value = http
        .post(&token_url)
        .form(&f)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string();

    let c = connector();
    let cn = conn(
        &sf,
        json!({"auth": "refresh_token", "refresh_token": refresh}),
    );
    for round in 0..3 {
        run(
            &c,
            &cn,
            "create_record",
            json!({"object": "Account", "fields": {"Name": format!("r{round}")}}),
        )
        .await
        .unwrap();
        sf.sim.expire_tokens();
    }
    assert_eq!(
        sf.sim.stats()["refreshes"],
        3,
        "each refresh used the newest rotated token"
    );
}

#[tokio::test]
async fn salesforce_errors_are_kept_and_classified_and_nothing_is_half_written() {
    let sf = org(SalesforceConfig::default()).await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    let cases = [
        (
            "create_record",
            json!({"object": "Account", "fields": {"Mail__c": "a@b.jp"}}),
            "REQUIRED_FIELD_MISSING",
            vec!["Name"],
        ),
        (
            "create_record",
            json!({"object": "Account", "fields": {"Name": "長".repeat(300)}}),
            "STRING_TOO_LONG",
            vec!["Name"],
        ),
        (
            "create_record",
            json!({"object": "Account", "fields": {"Name": "x", "Mail__c": "not-an-email"}}),
            "INVALID_EMAIL_ADDRESS",
            vec!["Mail__c"],
        ),
        (
            "create_record",
            json!({"object": "Account", "fields": {"Name": "x", "Nope__c": "1"}}),
            "INVALID_FIELD",
            vec!["Nope__c"],
        ),
        (
            "get_record",
            json!({"object": "Account", "id": "001000000000000999"}),
            "NOT_FOUND",
            vec![],
        ),
        (
            "get_record",
            json!({"object": "Account", "id": "bad"}),
            "MALFORMED_ID",
            vec![],
        ),
        (
            "query",
            json!({"soql": "SELECT Id FROM Account WHERE Name LIKE 'x%'"}),
            "MALFORMED_QUERY",
            vec![],
        ),
    ];
    for (action, input, code, fields) in cases {
        let e = run(&c, &cn, action, input).await.unwrap_err();
        assert!(!e.is_retryable(), "{code}");
        assert_eq!(e.code.as_deref(), Some(code), "{}", e.message);
        assert_eq!(e.fields, fields, "{code}");
        assert!(e.message.starts_with("Salesforce: "), "{}", e.message);
    }
    assert!(sf.sim.records("Account").is_empty(), "nothing half-written");

    for (status, code) in [
        (503, "SERVER_UNAVAILABLE"),
        (403, "REQUEST_LIMIT_EXCEEDED"),
        (400, "UNABLE_TO_LOCK_ROW"),
    ] {
        sf.sim.faults.set(flowbot_sandbox::faults::FaultConfig {
            every: Some(1),
            max_failures: Some(1),
            errors: vec![flowbot_sandbox::faults::InjectedError {
                status,
                code: Some(code.into()),
                message: None,
                fields: vec![],
                retry_after: Some(3),
            }],
            ..Default::default()
        });
        let e = run(
            &c,
            &cn,
            "create_record",
            json!({"object": "Account", "fields": {"Name": "x"}}),
        )
        .await
        .unwrap_err();
        assert!(e.is_retryable(), "{code}");
        assert_eq!(e.code.as_deref(), Some(code));
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }
    let e = run(
        &c,
        &conn(&sf, json!({"client_secret": "wrong"})),
        "query",
        json!({"soql": "SELECT Id FROM Account"}),
    )
    .await
    .unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.message.contains("refused to sign in"), "{}", e.message);
}

#[tokio::test]
async fn collections_write_up_to_200_records_per_call() {
    let sf = org(SalesforceConfig::default()).await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    run(&c, &cn, "upsert_record", json!({"object": "Account", "external_id_field": "Ecforce_Customer_Id__c", "external_id": "1", "fields": {"Name": "old"}}))
        .await
        .unwrap();
    let records: Vec<Value> = (1..=200)
        .map(|i| json!({"Ecforce_Customer_Id__c": i.to_string(), "Name": format!("c{i}")}))
        .collect();
    let out = run(&c, &cn, "upsert_records", json!({"object": "Account", "external_id_field": "Ecforce_Customer_Id__c", "records": records}))
        .await
        .unwrap();
    assert_eq!(
        (out["succeeded"].clone(), out["failed"].clone()),
        (json!(200), json!(0))
    );
    assert_eq!(out["results"][0]["created"], false);
    assert_eq!(out["results"][1]["created"], true);
    assert_eq!(sf.sim.records("Account").len(), 200);
    assert_eq!(
        sf.sim.stats()["calls"]["collection_upsert"],
        1,
        "one call for 200 records"
    );

    let too_many: Vec<Value> = (0..201).map(|i| json!({"Name": format!("n{i}")})).collect();
    let e = run(
        &c,
        &cn,
        "create_records",
        json!({"object": "Account", "records": too_many}),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("at most 200"), "{}", e.message);

    let mixed = json!({"object": "Account", "records": [{"Name": "ok"}, {"Mail__c": "no-name@example.com"}]});
    let out = run(&c, &cn, "create_records", mixed.clone()).await.unwrap();
    assert_eq!(
        (out["succeeded"].clone(), out["failed"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        out["results"][1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let mut all_or_none = mixed;
    all_or_none["all_or_none"] = json!(true);
    let before = sf.sim.records("Account").len();
    let out = run(&c, &cn, "create_records", all_or_none).await.unwrap();
    assert_eq!(out["succeeded"], 0);
    assert_eq!(
        sf.sim.records("Account").len(),
        before,
        "all or none rolled back"
    );

    let ids: Vec<Value> = sf
        .sim
        .records("Account")
        .iter()
        .take(2)
        .map(|r| json!({"Id": r["Id"], "Name": "renamed"}))
        .collect();
    let out = run(
        &c,
        &cn,
        "update_records",
        json!({"object": "Account", "records": ids}),
    )
    .await
    .unwrap();
    assert_eq!(out["succeeded"], 2);
}

#[tokio::test]
async fn a_session_refused_again_after_signing_in_anew_is_retryable() {
    let sf = org(SalesforceConfig::default()).await;
    let c = connector();
    let cn = conn(&sf, json!({}));
    // Every data call is refused as if the session had just been revoked.
    sf.sim.faults.set(flowbot_sandbox::faults::FaultConfig {
        every: Some(1),
        only: vec!["query".into()],
        errors: vec![flowbot_sandbox::faults::InjectedError {
            status: 401,
            code: Some("INVALID_SESSION_ID".into()),
            message: Some("Session expired or invalid".into()),
            fields: vec![],
            retry_after: None,
        }],
        ..Default::default()
    });
    let err = run(&c, &cn, "query", json!({"soql": "SELECT Id FROM Account"}))
        .await
        .unwrap_err();
    assert_eq!(err.class, flowbot_core::ErrorClass::Retryable, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("INVALID_SESSION_ID"));
    assert_eq!(
        sf.sim.stats()["tokens_issued"],
        2,
        "it signed in again once before giving the run back"
    );
}

/// An independent double of a Salesforce org's sign-in and query endpoints: each sign-in
/// answers the instance URL `instances` gives for that sign-in (by count).
async fn double(
    instances: impl Fn(usize, &str) -> String + Send + Sync + 'static,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sign_ins = Arc::new(AtomicUsize::new(0));
    let (count, me) = (sign_ins.clone(), url.clone());
    let instances = Arc::new(instances);
    let app = axum::Router::new()
        .route(
            "/services/oauth2/token",
            post(move || {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let instance = instances(n, &me);
                async move {
                    axum::Json(json!({"access_token": format!("tok{n}"), "instance_url": instance}))
                }
            }),
        )
        .route(
            "/services/data/{v}/query",
            get(|| async { axum::Json(json!({"totalSize": 0, "done": true, "records": []})) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, sign_ins)
}

/// A loopback port nothing listens on.
fn dead_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

fn double_conn(url: &str) -> Connection {
    Connection {
        name: "sf".into(),
        app: "salesforce".into(),
        settings: match json!({"my_domain_url": url, "client_id": "id", "client_secret": "secret"})
        {
            Value::Object(m) => m,
            _ => unreachable!(),
        },
    }
}

#[tokio::test]
async fn a_session_on_an_instance_that_stopped_answering_is_replaced_by_a_fresh_sign_in() {
    let dead = dead_port_url();
    // The first sign-in names an instance that is gone; a fresh one names the live one.
    let (url, sign_ins) =
        double(move |n, me| if n == 0 { dead.clone() } else { me.to_string() }).await;
    let (c, cn) = (connector(), double_conn(&url));
    let out = run(
        &c,
        &cn,
        "search_records",
        json!({"object": "Account", "where": {"Mail__c": "taro@example.jp"}}),
    )
    .await
    .expect("the search reaches the instance a fresh sign-in named");
    assert_eq!(out["totalSize"], 0);
    assert_eq!(sign_ins.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn transport_errors_leave_out_the_query_that_carries_customer_data() {
    let dead = dead_port_url();
    let (url, _) = double(move |_, _| dead.clone()).await;
    let (c, cn) = (connector(), double_conn(&url));
    let e = run(
        &c,
        &cn,
        "search_records",
        json!({"object": "Account", "where": {"Mail__c": "hanako@example.jp"}}),
    )
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{}", e.message);
    assert!(e.message.contains("could not connect"), "{}", e.message);
    assert!(
        e.message.contains("/query (query omitted)"),
        "{}",
        e.message
    );
    for leaked in ["hanako", "SELECT", "Mail__c", "%40"] {
        assert!(!e.message.contains(leaked), "`{leaked}` in: {}", e.message);
    }
}

#[tokio::test]
async fn sign_in_refusals_name_the_status_the_token_url_and_what_was_said() {
    use axum::http::StatusCode;
    use axum::routing::post;
    // (status, content type, body, retryable, words the message must hold)
    let cases: Vec<(u16, &str, &str, bool, Vec<&str>)> = vec![
        (
            400,
            "application/json",
            r#"[{"errorCode":"INVALID_AUTH_HEADER","message":"the client is not allowed"}]"#,
            false,
            vec![
                "HTTP 400",
                "INVALID_AUTH_HEADER",
                "the client is not allowed",
            ],
        ),
        (
            403,
            "application/json",
            r#"[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]"#,
            true,
            vec!["HTTP 403", "REQUEST_LIMIT_EXCEEDED"],
        ),
        (
            400,
            "application/json",
            r#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
            false,
            vec!["HTTP 400", "invalid_grant: authentication failure"],
        ),
        (
            502,
            "text/html",
            "<html><body>Bad Gateway from the proxy</body></html>",
            true,
            vec!["HTTP 502", "Bad Gateway from the proxy"],
        ),
        (
            401,
            "application/json",
            "",
            false,
            vec!["HTTP 401", "an empty answer"],
        ),
    ];
    for (status, ct, body, retryable, words) in cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/services/oauth2/token",
            post(move || async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("content-type", ct)],
                    body.to_string(),
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let e = run(
            &connector(),
            &double_conn(&url),
            "query",
            json!({"soql": "SELECT Id FROM Account"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.is_retryable(), retryable, "{}", e.message);
        assert!(
            e.message.contains(&format!("{url}/services/oauth2/token")),
            "{}",
            e.message
        );
        for w in words {
            assert!(e.message.contains(w), "`{w}` missing from: {}", e.message);
        }
    }
}

#[tokio::test]
async fn an_upsert_answered_not_found_says_what_was_used_and_what_to_check() {
    let sf = org(SalesforceConfig::default()).await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    for (object, field) in [("Account", "Nope__c"), ("Nothing__c", "Ext__c")] {
        let e = run(&c, &cn, "upsert_record", json!({"object": object, "external_id_field": field, "external_id": "C-42", "fields": {"Name": "x"}}))
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
        assert_eq!(e.code.as_deref(), Some("NOT_FOUND"));
        for w in [object, field, "C-42", "External ID"] {
            assert!(e.message.contains(w), "`{w}` missing from: {}", e.message);
        }
        assert_eq!(
            e.message.matches("NOT_FOUND").count(),
            1,
            "the code once: {}",
            e.message
        );
    }
}

#[test]
fn a_my_domain_url_with_a_path_is_refused_naming_the_part_to_remove() {
    let check = |url: &str| {
        flowbot_connectors::salesforce::check_settings(match &json!({"my_domain_url": url}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        })
    };
    assert!(check("https://acme.my.salesforce.com").is_ok());
    assert!(check("https://acme.my.salesforce.com/").is_ok());
    let e = check("https://acme.my.salesforce.com/lightning/page/home").unwrap_err();
    assert!(e.contains("remove `/lightning/page/home`"), "{e}");
    assert!(e.contains("https://acme.my.salesforce.com"), "{e}");
    let e = check("https://acme.my.salesforce.com/?x=1").unwrap_err();
    assert!(e.contains("remove `?x=1`"), "{e}");
    assert!(check("acme.my.salesforce.com").is_err());
}

/// `/__control/wait` answers the moment the awaited record is written, and with the count
/// so far once its time is up: benchmarks time syncs by it.
#[tokio::test]
async fn the_simulator_answers_a_waiting_benchmark_when_a_record_is_written() {
    let sf = org(SalesforceConfig::default()).await;
    let (c, cn) = (connector(), conn(&sf, json!({})));
    let http = reqwest::Client::new();
    let wait = |count: usize, ms: u64| {
        let (http, url) = (http.clone(), sf.url.clone());
        tokio::spawn(async move {
            let v: Value = http
                .get(format!(
                    "{url}/__control/wait/Account?count={count}&timeout_ms={ms}"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v["count"].as_u64().unwrap(), std::time::Instant::now())
        })
    };
    let waiting = wait(1, 10_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "no Account yet: still waiting");
    run(
        &c,
        &cn,
        "create_record",
        json!({"object": "Account", "fields": {"Name": "待機", "Mail__c": "wait@example.com"}}),
    )
    .await
    .unwrap();
    let written = std::time::Instant::now();
    let (count, answered) = waiting.await.unwrap();
    assert_eq!(count, 1);
    assert!(
        answered.duration_since(written) < Duration::from_secs(2),
        "answered when the record was written, not at the timeout"
    );
    // Already there: at once. Never reached: the count so far, after the timeout.
    assert_eq!(wait(1, 10_000).await.unwrap().0, 1);
    let started = std::time::Instant::now();
    assert_eq!(wait(2, 300).await.unwrap().0, 1);
    assert!(started.elapsed() >= Duration::from_millis(300));
}
