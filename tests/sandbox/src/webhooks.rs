//! Webhook traffic from the platforms to an app: subscription handshakes and signed deliveries,
//! sent on request to a loopback URL, signed with the registered app's secrets the way each
//! platform documents.
//!
//! | platform | handshake | delivery signature |
//! |---|---|---|
//! | Meta | `GET ?hub.mode=subscribe&hub.challenge=…&hub.verify_token=…`, expects the challenge echoed | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`; deauthorize and data deletion: form `signed_request` |
//! | X | `GET ?crc_token=…`, expects `{"response_token":"sha256=<base64 HMAC-SHA256(consumer secret, token)>"}` | `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer secret, body)>` |
//! | LinkedIn | `GET ?challengeCode=…`, expects `{"challengeCode","challengeResponse":<hex HMAC-SHA256(client secret, code)>}` | `X-LI-Signature: <hex HMAC-SHA256(client secret, "hmacsha256=" + body)>` |

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::state::{Platform, Shared};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/_sandbox/webhooks/handshake", post(handshake))
        .route("/_sandbox/webhooks/deliver", post(deliver))
        .route("/_sandbox/webhooks/signed_request", post(signed_request))
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Only loopback targets: the sandbox never sends traffic off this machine.
fn loopback(url: &str) -> Result<url::Url, Response> {
    let parsed = url::Url::parse(url).map_err(|_| (StatusCode::BAD_REQUEST, "url is not a URL").into_response())?;
    match parsed.host_str() {
        Some("127.0.0.1" | "localhost" | "[::1]") if parsed.scheme() == "http" => Ok(parsed),
        _ => Err((StatusCode::BAD_REQUEST, "webhook targets must be http on loopback").into_response()),
    }
}

/// The app's secrets: (client secret, consumer secret).
fn secrets(sandbox: &Shared, platform: Platform, client_id: &str) -> Result<(String, Option<String>), Response> {
    let world = sandbox.world();
    world
        .app(platform, client_id)
        .map(|a| (a.client_secret.clone(), a.consumer_secret.clone()))
        .ok_or_else(|| (StatusCode::BAD_REQUEST, "unknown app").into_response())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds")
}

#[derive(Debug, Deserialize)]
struct HandshakeRequest {
    platform: Platform,
    url: String,
    client_id: String,
    /// Meta: the verify token the app was configured with.
    #[serde(default)]
    verify_token: Option<String>,
}

/// Runs the platform's subscription handshake against `url` and reports whether the app answered
/// the way the platform requires.
async fn handshake(State(sandbox): State<Shared>, Json(request): Json<HandshakeRequest>) -> Response {
    if request.platform == Platform::Mastodon {
        return (StatusCode::BAD_REQUEST, "Mastodon has no app webhooks").into_response();
    }
    let mut url = match loopback(&request.url) {
        Ok(url) => url,
        Err(response) => return response,
    };
    let (secret, consumer_secret) = match secrets(&sandbox, request.platform, &request.client_id) {
        Ok(s) => s,
        Err(response) => return response,
    };
    // Each platform's documented shape: Meta an integer, X base64, LinkedIn a UUID.
    let challenge = {
        let mut world = sandbox.world();
        match request.platform {
            Platform::Meta | Platform::Threads | Platform::Mastodon => world.numeric_id(10),
            Platform::X => world.base64_token(),
            Platform::Linkedin => world.uuid(),
        }
    };
    let expected: Value = match request.platform {
        Platform::Meta | Platform::Threads | Platform::Mastodon => {
            url.query_pairs_mut()
                .append_pair("hub.mode", "subscribe")
                .append_pair("hub.challenge", &challenge)
                .append_pair("hub.verify_token", request.verify_token.as_deref().unwrap_or_default());
            json!(challenge)
        }
        Platform::X => {
            url.query_pairs_mut().append_pair("crc_token", &challenge);
            let key = consumer_secret.unwrap_or_default();
            let token =
                base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.as_bytes(), challenge.as_bytes()));
            json!({ "response_token": format!("sha256={token}") })
        }
        Platform::Linkedin => {
            url.query_pairs_mut().append_pair("challengeCode", &challenge);
            json!({ "challengeCode": challenge, "challengeResponse": hex::encode(hmac_sha256(secret.as_bytes(), challenge.as_bytes())) })
        }
    };
    let response = match client().get(url).send().await {
        Ok(response) => response,
        Err(e) => return Json(json!({ "valid": false, "error": e.to_string() })).into_response(),
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let valid = status == 200
        && match request.platform {
            // Meta wants the challenge itself as the body.
            Platform::Meta => body.trim() == challenge,
            _ => serde_json::from_str::<Value>(&body).is_ok_and(|b| b == expected),
        };
    Json(json!({ "valid": valid, "status": status, "body": body })).into_response()
}

#[derive(Debug, Deserialize)]
struct DeliverRequest {
    platform: Platform,
    url: String,
    client_id: String,
    /// The event body, sent byte for byte as serialized here.
    payload: Value,
}

/// Signs `payload` as the platform does and POSTs it to `url`; reports the app's answer.
async fn deliver(State(sandbox): State<Shared>, Json(request): Json<DeliverRequest>) -> Response {
    if request.platform == Platform::Mastodon {
        return (StatusCode::BAD_REQUEST, "Mastodon has no app webhooks").into_response();
    }
    let url = match loopback(&request.url) {
        Ok(url) => url,
        Err(response) => return response,
    };
    let (secret, consumer_secret) = match secrets(&sandbox, request.platform, &request.client_id) {
        Ok(s) => s,
        Err(response) => return response,
    };
    let body = request.payload.to_string();
    let (header, value) = match request.platform {
        Platform::Meta | Platform::Threads | Platform::Mastodon => {
            ("x-hub-signature-256", format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), body.as_bytes()))))
        }
        Platform::X => {
            let key = consumer_secret.unwrap_or_default();
            let signature =
                base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.as_bytes(), body.as_bytes()));
            ("x-twitter-webhooks-signature", format!("sha256={signature}"))
        }
        Platform::Linkedin => {
            let message = format!("hmacsha256={body}");
            ("x-li-signature", hex::encode(hmac_sha256(secret.as_bytes(), message.as_bytes())))
        }
    };
    let sent = client()
        .post(url)
        .header("content-type", "application/json")
        .header(header, &value)
        .body(body.clone())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let answer = response.text().await.unwrap_or_default();
            Json(json!({ "status": status, "body": answer, "signature_header": header, "signature": value, "sent": body })).into_response()
        }
        Err(e) => Json(json!({ "status": null, "error": e.to_string() })).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SignedRequestDelivery {
    url: String,
    client_id: String,
    /// The app-scoped user id the callback is about.
    user_id: String,
    /// Whose app signs it: Meta's (Facebook Login, the default) or Threads'.
    #[serde(default = "meta")]
    platform: Platform,
}

fn meta() -> Platform {
    Platform::Meta
}

/// Meta's deauthorize and data-deletion callbacks: a form field `signed_request` =
/// `base64url(HMAC-SHA256(app secret, payload part)) . base64url(JSON payload)`.
async fn signed_request(State(sandbox): State<Shared>, Json(request): Json<SignedRequestDelivery>) -> Response {
    let url = match loopback(&request.url) {
        Ok(url) => url,
        Err(response) => return response,
    };
    let (secret, _) = match secrets(&sandbox, request.platform, &request.client_id) {
        Ok(s) => s,
        Err(response) => return response,
    };
    let issued_at = sandbox.world().now();
    let payload =
        json!({ "algorithm": "HMAC-SHA256", "expires": 0, "issued_at": issued_at, "user_id": request.user_id });
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac_sha256(secret.as_bytes(), encoded.as_bytes()));
    let signed = format!("{signature}.{encoded}");
    match client().post(url).form(&[("signed_request", signed.as_str())]).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let answer = response.text().await.unwrap_or_default();
            Json(json!({ "status": status, "body": answer, "signed_request": signed })).into_response()
        }
        Err(e) => Json(json!({ "status": null, "error": e.to_string() })).into_response(),
    }
}
