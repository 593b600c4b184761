//! The ecforce connector against the ecforce simulator, over real HTTP.

use flowbot_core::connector::WebhookCall;
use flowbot_core::{ActionCall, ActionError, Connection, Connector, PollCall};
use flowbot_sandbox::ecforce::{self, EcforceConfig};
use serde_json::{json, Map, Value};

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn conn(url: &str, token: &str) -> Connection {
    Connection {
        name: "shop".into(),
        app: "ecforce".into(),
        settings: fields(json!({"base_url": url, "access_token": token, "account_name": "demo"})),
    }
}

fn connector() -> std::sync::Arc<dyn Connector> {
    flowbot_connectors::registry()
        .get("ecforce")
        .unwrap()
        .clone()
}

async fn run(c: &Connection, action: &str, input: Value) -> Result<Value, ActionError> {
    let input = fields(input);
    connector()
        .execute(ActionCall {
            action,
            input: &input,
            connection: Some(c),
        })
        .await
}

#[tokio::test]
async fn a_customer_is_fetched_and_flattened() {
    let ec = ecforce::start(EcforceConfig::default(), 0).await.unwrap();
    let id = ec.sim.create_customer(&fields(json!({"email": "taro@example.com", "name01": "山田", "name02": "太郎", "kana01": "ヤマダ", "kana02": "タロウ", "prefecture_id": 27, "addr01": "大阪市北区", "tel01": "06", "tel02": "1111", "tel03": "2222"})));
    let c = conn(&ec.url, &ec.sim.config().access_token);
    let out = run(&c, "get_customer", json!({"customer_id": id.to_string()}))
        .await
        .unwrap();
    assert_eq!(out["id"], id.to_string());
    assert_eq!(out["full_name"], "山田 太郎");
    assert_eq!(out["prefecture"], "大阪府");
    assert_eq!(out["tel"], "06-1111-2222");
    assert_eq!(out["raw"]["data"]["type"], "customer");
    // Ids often arrive as numbers too.
    assert_eq!(
        run(&c, "get_customer", json!({"customer_id": id}))
            .await
            .unwrap()["email"],
        "taro@example.com"
    );
}

#[tokio::test]
async fn errors_name_the_customer_or_the_connection() {
    let ec = ecforce::start(EcforceConfig::default(), 0).await.unwrap();
    let c = conn(&ec.url, &ec.sim.config().access_token);
    let e = run(&c, "get_customer", json!({"customer_id": "999"}))
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.message, "ecforce: customer 999 was not found (404)");
    let e = run(
        &conn(&ec.url, "wrong"),
        "get_customer",
        json!({"customer_id": "1"}),
    )
    .await
    .unwrap_err();
    assert!(
        !e.is_retryable()
            && e.message
                .contains("refused the access token of connection `shop`"),
        "{}",
        e.message
    );
    let e = run(&c, "get_customer", json!({"customer_id": "1/../../x"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("is not a customer ID"), "{}", e.message);
    ec.sim.faults.set(flowbot_sandbox::faults::FaultConfig {
        every: Some(1),
        max_failures: Some(1),
        errors: vec![flowbot_sandbox::faults::InjectedError {
            status: 503,
            code: None,
            message: Some("maintenance".into()),
            fields: vec![],
            retry_after: None,
        }],
        ..Default::default()
    });
    let e = run(&c, "get_customer", json!({"customer_id": "1"}))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{}", e.message);
}

#[tokio::test]
async fn customers_are_listed_page_by_page_and_polled_by_cursor() {
    let ec = ecforce::start(EcforceConfig::default(), 0).await.unwrap();
    for i in 0..5 {
        ec.sim.create_customer(&fields(
            json!({"email": format!("c{i}@example.com"), "name01": "客", "name02": i.to_string()}),
        ));
    }
    let c = conn(&ec.url, &ec.sim.config().access_token);
    let page = run(&c, "list_customers", json!({"per": 2, "page": 1}))
        .await
        .unwrap();
    assert_eq!(page["customers"].as_array().unwrap().len(), 2);
    assert_eq!(
        (page["next_page"].clone(), page["total_count"].clone()),
        (json!(2), json!(5))
    );
    let last = run(&c, "list_customers", json!({"per": 2, "page": 3}))
        .await
        .unwrap();
    assert_eq!(last["next_page"], Value::Null);

    let options = Map::new();
    let poll = |cursor: Option<String>| {
        let c = c.clone();
        let options = options.clone();
        async move {
            connector()
                .poll(PollCall {
                    trigger: "customers_updated",
                    options: &options,
                    connection: Some(&c),
                    cursor: cursor.as_deref(),
                })
                .await
                .unwrap()
        }
    };
    let first = poll(None).await;
    assert_eq!(first.items.len(), 5);
    let again = poll(first.cursor.clone()).await;
    assert!(again.items.is_empty(), "nothing repeated");
    assert_eq!(again.cursor, first.cursor);
    ec.sim
        .update_customer(2, &fields(json!({"name02": "更新"})));
    let next = poll(first.cursor).await;
    assert_eq!(next.items.len(), 1);
    assert_eq!(next.items[0]["id"], "2");
    assert_eq!(next.items[0]["customer_id"], "2");
}

#[tokio::test]
async fn webhook_requests_become_trigger_values() {
    let events = vec![
        "customer_created".to_string(),
        "customer_updated".to_string(),
    ];
    let options = fields(json!({"customer_id_path": "customer.id"}));
    let query = Map::new();
    let call = |headers: Map<String, Value>, body: Value| {
        let (events, options, query) = (events.clone(), options.clone(), query.clone());
        move || {
            connector().webhook_event(WebhookCall {
                events: &events,
                options: &options,
                headers: &headers,
                query: &query,
                body: &body,
                raw: b"",
                connection: None,
            })
        }
    };
    let headers = fields(json!({"x-ecf-event": "customer_updated"}));
    let v = call(headers.clone(), json!({"customer": {"id": "17"}}))()
        .unwrap()
        .unwrap();
    assert_eq!(
        (v["event"].clone(), v["customer_id"].clone()),
        (json!("customer_updated"), json!("17"))
    );
    assert_eq!(
        call(
            fields(json!({"x-ecf-event": "customer_cancel"})),
            json!({"customer": {"id": 1}})
        )()
        .unwrap(),
        None,
        "not this flow's event"
    );
    assert!(call(headers.clone(), json!({"id": "17"}))()
        .unwrap_err()
        .contains("customer_id_path"));
    assert!(call(Map::new(), json!({}))()
        .unwrap_err()
        .contains("x-ecf-event"));
}

#[tokio::test]
async fn the_simulator_sends_webhooks_and_retries_until_a_2xx() {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let tries = Arc::new(Mutex::new(0));
    let (g, t) = (got.clone(), tries.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                let mut n = t.lock().unwrap();
                *n += 1;
                if *n <= 2 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let event = headers["x-ecf-event"].to_str().unwrap().to_string();
                g.lock()
                    .unwrap()
                    .push((event, serde_json::from_str(&body).unwrap()));
                axum::http::StatusCode::OK
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ec = ecforce::start(
        EcforceConfig {
            webhook_backoff: std::time::Duration::from_millis(20),
            ..EcforceConfig::default()
        },
        0,
    )
    .await
    .unwrap();
    ec.sim.set_webhooks(vec![ecforce::Webhook {
        url: format!("http://{addr}/hook"),
        events: vec!["customer_created".into()],
        template: None,
    }]);
    let id = ec
        .sim
        .create_customer(&fields(json!({"email": "a@example.com"})));
    for _ in 0..200 {
        if ec.sim.pending_deliveries() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(
        got,
        [(
            "customer_created".to_string(),
            json!({"id": id.to_string()})
        )],
        "ids arrive as strings"
    );
    assert_eq!(ec.sim.deliveries()[0].attempts, 3);
}

#[tokio::test]
async fn an_order_is_fetched() {
    let ec = ecforce::start(EcforceConfig::default(), 0).await.unwrap();
    let customer = ec
        .sim
        .create_customer(&fields(json!({"email": "a@example.com"})));
    let order = ec.sim.add_order(customer, 12800);
    let c = conn(&ec.url, &ec.sim.config().access_token);
    let out = run(&c, "get_order", json!({"order_id": order.to_string()}))
        .await
        .unwrap();
    assert_eq!(out["id"], order.to_string());
    assert_eq!(out["total"], 12800);
    assert_eq!(out["customer_id"], customer);
    let e = run(&c, "get_order", json!({"order_id": "999"}))
        .await
        .unwrap_err();
    assert_eq!(e.message, "ecforce: order 999 was not found (404)");
}

#[tokio::test]
async fn the_newest_customer_is_the_trigger_s_sample() {
    let ec = ecforce::start(EcforceConfig::default(), 0).await.unwrap();
    let c = conn(&ec.url, &ec.sim.config().access_token);
    let mut last = 0;
    // More than one page of 100, so the newest is on a later page.
    for i in 0..130 {
        last = ec
            .sim
            .create_customer(&fields(json!({"email": format!("c{i}@example.jp"), "name01": "顧客", "name02": format!("{i}")})));
    }
    let events = vec!["customer_created".to_string()];
    let samples = connector()
        .samples(flowbot_core::SampleCall {
            events: &events,
            options: &Map::new(),
            connection: Some(&c),
        })
        .await
        .unwrap();
    assert_eq!(
        samples[0]["customer_id"],
        json!(last.to_string()),
        "{samples:?}"
    );
    assert_eq!(samples[0]["event"], "customer_created");
    // Read the way the webhook would be: the flow sees the same shape.
    let from_webhook = connector()
        .webhook_event(WebhookCall {
            events: &events,
            options: &Map::new(),
            headers: &fields(json!({"x-ecf-event": "customer_created"})),
            query: &Map::new(),
            body: &json!({"id": last.to_string()}),
            raw: b"",
            connection: None,
        })
        .unwrap()
        .unwrap();
    assert_eq!(samples[0], from_webhook);
    let none = connector()
        .samples(flowbot_core::SampleCall {
            events: &events,
            options: &Map::new(),
            connection: None,
        })
        .await;
    assert!(none.is_err(), "a connection is needed");
}
