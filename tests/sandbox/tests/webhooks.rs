//! Webhook handshakes and signed deliveries from the sandbox, checked by a receiver written here
//! from the platforms' documentation (not from the sandbox's code).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use common::harness;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const META_APP: &str = "meta-app";
const META_SECRET: &str = "meta-app-secret";
const X_APP: &str = "x-app";
const X_CONSUMER_SECRET: &str = "x-consumer-secret";
const LI_APP: &str = "li-app";
const LI_SECRET: &str = "li-client-secret";

fn mac(key: &str, message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

type Seen = Arc<Mutex<Vec<String>>>;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// The app side: answers each handshake and accepts only correctly signed deliveries.
fn receiver(seen: Seen) -> Router {
    Router::new()
        .route(
            "/meta",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                if q.get("hub.mode").map(String::as_str) == Some("subscribe")
                    && q.get("hub.verify_token").map(String::as_str) == Some("vt")
                {
                    (StatusCode::OK, q["hub.challenge"].clone())
                } else {
                    (StatusCode::FORBIDDEN, String::new())
                }
            })
            .post(|State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                let expected = format!("sha256={}", hex::encode(mac(META_SECRET, &body)));
                if header(&headers, "x-hub-signature-256") != expected {
                    return StatusCode::UNAUTHORIZED;
                }
                seen.lock().unwrap().push(format!("meta {}", String::from_utf8_lossy(&body)));
                StatusCode::OK
            }),
        )
        .route(
            "/x",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(mac(X_CONSUMER_SECRET, q["crc_token"].as_bytes()));
                Json(json!({ "response_token": format!("sha256={token}") }))
            })
            .post(|State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                let expected = format!(
                    "sha256={}",
                    base64::engine::general_purpose::STANDARD.encode(mac(X_CONSUMER_SECRET, &body))
                );
                if header(&headers, "x-twitter-webhooks-signature") != expected {
                    return StatusCode::UNAUTHORIZED;
                }
                seen.lock().unwrap().push(format!("x {}", String::from_utf8_lossy(&body)));
                StatusCode::OK
            }),
        )
        .route(
            "/linkedin",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let code = q["challengeCode"].clone();
                Json(
                    json!({ "challengeCode": code, "challengeResponse": hex::encode(mac(LI_SECRET, code.as_bytes())) }),
                )
            })
            .post(|State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                let mut message = b"hmacsha256=".to_vec();
                message.extend_from_slice(&body);
                let got = header(&headers, "x-li-signature");
                if got.trim_start_matches("hmacsha256=") != hex::encode(mac(LI_SECRET, &message)) {
                    return StatusCode::UNAUTHORIZED;
                }
                seen.lock().unwrap().push(format!("linkedin {}", String::from_utf8_lossy(&body)));
                StatusCode::OK
            }),
        )
        .route(
            "/meta/deauthorize",
            axum::routing::post(|State(seen): State<Seen>, body: Bytes| async move {
                let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
                let (signature, payload) = form["signed_request"].split_once('.').unwrap();
                let expected =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac(META_SECRET, payload.as_bytes()));
                if signature != expected {
                    return StatusCode::UNAUTHORIZED;
                }
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
                let payload: Value = serde_json::from_slice(&decoded).unwrap();
                assert_eq!(payload["algorithm"], "HMAC-SHA256");
                seen.lock().unwrap().push(format!("deauthorize {}", payload["user_id"]));
                StatusCode::OK
            }),
        )
        .route("/wrong", get(|| async { "not the challenge" }))
        .with_state(seen)
}

#[tokio::test]
async fn handshakes_and_signed_deliveries_verify_independently() {
    let h = harness().await;
    for (platform, client_id, secret) in
        [("meta", META_APP, META_SECRET), ("x", X_APP, "x-client-secret"), ("linkedin", LI_APP, LI_SECRET)]
    {
        h.control(
            "/_sandbox/apps",
            json!({ "platform": platform, "client_id": client_id, "client_secret": secret, "redirect_uris": [], "consumer_key": "ck", "consumer_secret": X_CONSUMER_SECRET }),
        )
        .await;
    }
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, receiver(seen.clone())).into_future());

    for (platform, client_id, path) in
        [("meta", META_APP, "/meta"), ("x", X_APP, "/x"), ("linkedin", LI_APP, "/linkedin")]
    {
        let report = h
            .control("/_sandbox/webhooks/handshake", json!({ "platform": platform, "client_id": client_id, "url": format!("{app}{path}"), "verify_token": "vt" }))
            .await;
        assert_eq!(report["valid"], true, "{platform}: {report}");
        let report = h
            .control(
                "/_sandbox/webhooks/deliver",
                json!({ "platform": platform, "client_id": client_id, "url": format!("{app}{path}"), "payload": { "event": platform } }),
            )
            .await;
        assert_eq!(report["status"], 200, "{platform}: {report}");
    }
    let wrong = h
        .control(
            "/_sandbox/webhooks/handshake",
            json!({ "platform": "meta", "client_id": META_APP, "url": format!("{app}/wrong"), "verify_token": "vt" }),
        )
        .await;
    assert_eq!(wrong["valid"], false, "a wrong answer is reported as such");
    let wrong_token = h
        .control(
            "/_sandbox/webhooks/handshake",
            json!({ "platform": "meta", "client_id": META_APP, "url": format!("{app}/meta"), "verify_token": "other" }),
        )
        .await;
    assert_eq!(wrong_token["valid"], false);

    let report = h
        .control(
            "/_sandbox/webhooks/signed_request",
            json!({ "client_id": META_APP, "url": format!("{app}/meta/deauthorize"), "user_id": "42" }),
        )
        .await;
    assert_eq!(report["status"], 200, "{report}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [r#"meta {"event":"meta"}"#, r#"x {"event":"x"}"#, r#"linkedin {"event":"linkedin"}"#, r#"deauthorize "42""#]
    );

    let elsewhere = h
        .http
        .post(h.url("/_sandbox/webhooks/deliver"))
        .json(&json!({ "platform": "x", "client_id": X_APP, "url": "http://192.0.2.1/hook", "payload": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 400, "only loopback targets");
}
