//! The `webhooks` function's routes (a Lambda function URL on AWS): each platform's subscription
//! handshake and its signed deliveries.
//!
//! Signatures are checked over the raw body before anything is parsed; a request that does not
//! verify is refused (401) with no side effect. A verified delivery is acknowledged (200) even
//! when it names accounts Herald does not know — platforms disable endpoints that keep failing —
//! and 500 only when Herald itself failed, so that the platform retries it.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::problem::Problem;
use super::routes::Routes;
use crate::domain::Platform;
use crate::webhooks::{inbound, receive, verify};

pub(super) fn routes() -> Routes {
    Routes::new()
        .on(Method::GET, "/webhooks/meta", meta_handshake)
        .on(Method::POST, "/webhooks/meta", meta_delivery)
        .on(Method::GET, "/webhooks/x", x_handshake)
        .on(Method::POST, "/webhooks/x", x_delivery)
        .on(Method::GET, "/webhooks/linkedin", linkedin_handshake)
        .on(Method::POST, "/webhooks/linkedin", linkedin_delivery)
}

fn refused() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "webhook_signature_invalid", "The request is not signed by the platform")
}

fn not_configured(platform: Platform) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "platform_not_configured", format!("{platform} is not configured"))
}

fn secret(state: &AppState, platform: Platform) -> Result<Vec<u8>, Problem> {
    let apps = &state.config.apps;
    let app = match platform {
        Platform::Facebook | Platform::Instagram => apps.meta.as_ref(),
        // X signs with the app's consumer secret ("API key secret").
        Platform::X => apps.x_oauth1.as_ref(),
        Platform::Linkedin => apps.linkedin.as_ref(),
    };
    app.map(|a| a.client_secret.expose_secret().as_bytes().to_vec()).ok_or_else(|| not_configured(platform))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies, parses and records one delivery.
async fn deliver(
    state: &AppState,
    verified: Result<(), verify::Refused>,
    parse: fn(&[u8]) -> Result<Vec<inbound::Inbound>, inbound::Malformed>,
    body: &[u8],
) -> Result<Response, Problem> {
    verified.map_err(|_| refused())?;
    let events = parse(body).map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "webhook_malformed", "The delivery is not in the platform's format")
    })?;
    let received = receive(state, events).await?;
    tracing::info!(
        recorded = received.recorded,
        duplicates = received.duplicates,
        unknown = received.unknown,
        "webhook delivery"
    );
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
struct MetaHandshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn meta_handshake(State(state): State<AppState>, Query(q): Query<MetaHandshake>) -> Result<Response, Problem> {
    let ours =
        state.config.apps.meta_webhook_verify_token.as_ref().ok_or_else(|| not_configured(Platform::Facebook))?;
    let challenge = verify::meta_handshake(
        ours.expose_secret().as_bytes(),
        q.mode.as_deref(),
        q.verify_token.as_deref(),
        q.challenge.as_deref(),
    )
    .map_err(|_| {
        Problem::new(StatusCode::FORBIDDEN, "webhook_verify_token_invalid", "The verify token is not Herald's")
    })?;
    Ok(([("content-type", "text/plain")], challenge.to_owned()).into_response())
}

async fn meta_delivery(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, Problem> {
    let secret = secret(&state, Platform::Facebook)?;
    let verified = verify::meta_signature(&secret, &body, header(&headers, "x-hub-signature-256"));
    deliver(&state, verified, inbound::meta, &body).await
}

#[derive(Deserialize)]
struct XHandshake {
    crc_token: Option<String>,
}

async fn x_handshake(State(state): State<AppState>, Query(q): Query<XHandshake>) -> Result<Response, Problem> {
    let secret = secret(&state, Platform::X)?;
    let token = q
        .crc_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::invalid("webhook_challenge_missing", "crc_token", "X's CRC check sends a crc_token"))?;
    Ok(axum::Json(json!({ "response_token": verify::x_crc_response(&secret, &token) })).into_response())
}

async fn x_delivery(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, Problem> {
    let secret = secret(&state, Platform::X)?;
    let verified = verify::x_signature(&secret, &body, header(&headers, "x-twitter-webhooks-signature"));
    deliver(&state, verified, inbound::x, &body).await
}

#[derive(Deserialize)]
struct LinkedinHandshake {
    #[serde(rename = "challengeCode")]
    challenge_code: Option<String>,
}

async fn linkedin_handshake(
    State(state): State<AppState>,
    Query(q): Query<LinkedinHandshake>,
) -> Result<Response, Problem> {
    let secret = secret(&state, Platform::Linkedin)?;
    let code = q.challenge_code.filter(|c| !c.is_empty()).ok_or_else(|| {
        Problem::invalid("webhook_challenge_missing", "challengeCode", "LinkedIn's validation sends a challengeCode")
    })?;
    let response = verify::linkedin_challenge_response(&secret, &code);
    Ok(axum::Json(json!({ "challengeCode": code, "challengeResponse": response })).into_response())
}

async fn linkedin_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let secret = secret(&state, Platform::Linkedin)?;
    let verified = verify::linkedin_signature(&secret, &body, header(&headers, "x-li-signature"));
    deliver(&state, verified, inbound::linkedin, &body).await
}
