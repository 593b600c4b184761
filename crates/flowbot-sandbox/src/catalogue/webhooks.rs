//! Webhooks as the catalogue's apps send them — the body, the event headers and the
//! signature each app's scheme asks for — so the demo and the tests can deliver events a
//! flow verifies exactly as it verifies the real apps'.

use base64::Engine;
use ring::hmac;
use serde_json::Value;

/// The headers and the raw body of one webhook request.
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn mac(secret: &str, payload: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::sign(&key, payload).as_ref().to_vec()
}

fn json(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("a JSON value serialises")
}

/// Shopify: the topic in `X-Shopify-Topic`, base64 HMAC-SHA256 of the body.
pub fn shopify(secret: &str, topic: &str, body: &Value) -> Delivery {
    let body = json(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac(secret, &body));
    Delivery {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-shopify-topic".into(), topic.into()),
            (
                "x-shopify-shop-domain".into(),
                "example.myshopify.com".into(),
            ),
            ("x-shopify-api-version".into(), "2025-01".into()),
            (
                "x-shopify-webhook-id".into(),
                uuid::Uuid::new_v4().to_string(),
            ),
            ("x-shopify-hmac-sha256".into(), sig),
        ],
        body,
    }
}

/// Stripe: `Stripe-Signature: t=<seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
pub fn stripe(secret: &str, body: &Value, now: i64) -> Delivery {
    let body = json(body);
    let mut payload = format!("{now}.").into_bytes();
    payload.extend_from_slice(&body);
    let sig: String = mac(secret, &payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Delivery {
        headers: vec![
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("stripe-signature".into(), format!("t={now},v1={sig}")),
        ],
        body,
    }
}

/// LINE: base64 HMAC-SHA256 of the body with the channel secret in `X-Line-Signature`.
pub fn line(secret: &str, body: &Value) -> Delivery {
    let body = json(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac(secret, &body));
    Delivery {
        headers: vec![
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("x-line-signature".into(), sig),
        ],
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_each_scheme() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published vector.
        let d = mac("key", b"The quick brown fox jumps over the lazy dog");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let s = stripe("whsec", &serde_json::json!({"a": 1}), 1_700_000_000);
        let header = &s.headers[1].1;
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
    }
}
