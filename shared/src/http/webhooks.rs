//! The `webhooks` function's routes (a Lambda function URL on AWS): each platform's subscription
//! handshake and its signed deliveries.
//!
//! Signatures are checked over the raw body before anything is parsed; a request that does not
//! verify is refused (401) with no side effect. A verified delivery is acknowledged (200) even
//! when it names accounts Herald does not know — platforms disable endpoints that keep failing —
//! and 500 only when Herald itself failed, so that the platform retries it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::extract::{ApiPath, ApiQuery};
use super::problem::Problem;
use super::routes::Routes;
use crate::domain::Platform;
use crate::store::journal::kinds;
use crate::webhooks::{inbound, receive, verify};

pub(super) fn routes() -> Routes {
    Routes::new()
        .on(Method::GET, "/webhooks/meta", meta_handshake)
        .on(Method::POST, "/webhooks/meta", meta_delivery)
        .on(Method::GET, "/webhooks/x", x_handshake)
        .on(Method::POST, "/webhooks/x", x_delivery)
        .on(Method::GET, "/webhooks/linkedin", linkedin_handshake)
        .on(Method::POST, "/webhooks/linkedin", linkedin_delivery)
        .on(Method::POST, "/webhooks/meta/deauthorize", meta_deauthorize)
        .on(Method::POST, "/webhooks/meta/data-deletion", meta_data_deletion)
        .on(Method::GET, "/webhooks/meta/data-deletion/{code}", meta_data_deletion_status)
}

fn refused() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "webhook_signature_invalid", "The request is not signed by the platform")
}

/// A handshake input in a shape the platform never sends: answering it would sign attacker-chosen
/// bytes with the key that signs deliveries.
fn challenge_invalid(field: &str, detail: &str) -> Problem {
    Problem::invalid("webhook_challenge_invalid", field, detail.to_owned())
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
    let received = receive(&state.recorder, events).await?;
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

async fn meta_handshake(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<MetaHandshake>,
) -> Result<Response, Problem> {
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

async fn x_handshake(State(state): State<AppState>, ApiQuery(q): ApiQuery<XHandshake>) -> Result<Response, Problem> {
    let secret = secret(&state, Platform::X)?;
    let token = q
        .crc_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::invalid("webhook_challenge_missing", "crc_token", "X's CRC check sends a crc_token"))?;
    let response = verify::x_crc_response(&secret, &token)
        .map_err(|_| challenge_invalid("crc_token", "X's crc_token is base64, at most 256 characters"))?;
    Ok(axum::Json(json!({ "response_token": response })).into_response())
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
    ApiQuery(q): ApiQuery<LinkedinHandshake>,
) -> Result<Response, Problem> {
    let secret = secret(&state, Platform::Linkedin)?;
    let code = q.challenge_code.filter(|c| !c.is_empty()).ok_or_else(|| {
        Problem::invalid("webhook_challenge_missing", "challengeCode", "LinkedIn's validation sends a challengeCode")
    })?;
    let response = verify::linkedin_challenge_response(&secret, &code)
        .map_err(|_| challenge_invalid("challengeCode", "LinkedIn's challengeCode is a UUID"))?;
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

/// How old a Meta `signed_request` may be (by its `issued_at`).
const SIGNED_REQUEST_MAX_AGE_S: i64 = 3600;

/// The Facebook user a Meta callback names, from its verified `signed_request` form field.
fn meta_callback_user(state: &AppState, body: &[u8]) -> Result<String, Problem> {
    let secret = secret(state, Platform::Facebook)?;
    let signed = url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "signed_request")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(refused)?;
    let payload = verify::meta_signed_request(&secret, &signed).map_err(|_| refused())?;
    // A captured callback replayed later is refused: Meta signs `issued_at`.
    let now = state.clock.now().unix_timestamp();
    match payload["issued_at"].as_i64() {
        Some(issued) if issued >= now - SIGNED_REQUEST_MAX_AGE_S && issued <= now + 300 => {}
        _ => return Err(refused()),
    }
    inbound::id_string(&payload["user_id"])
        .ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "webhook_malformed", "The signed request names no user"))
}

/// Revokes every account the Facebook user granted (and, for data deletion, deletes their
/// sealed tokens), telling each tenant. Returns how many accounts there were.
async fn revoke_granted(state: &AppState, user: &str, erase: bool) -> Result<usize, Problem> {
    let reason = if erase { "data deletion requested at Meta" } else { "app removed at Meta" };
    let accounts = state.accounts.by_grantor("meta", user).await?;
    for account in &accounts {
        let already = account.status == crate::domain::AccountStatus::Revoked && !erase;
        if already {
            continue;
        }
        let revoked = if erase {
            state.accounts.erase_tokens(account).await?
        } else {
            state.accounts.set_status(account, crate::domain::AccountStatus::Revoked).await?
        };
        state.events.record(kinds::ACCOUNT_REVOKED, &revoked, Some(reason)).await?;
        state.journal.audit(kinds::ACCOUNT_REVOKED, &revoked, Some(reason)).await?;
    }
    tracing::info!(accounts = accounts.len(), erase, "meta user callback handled");
    Ok(accounts.len())
}

async fn meta_deauthorize(State(state): State<AppState>, body: Bytes) -> Result<Response, Problem> {
    let user = meta_callback_user(&state, &body)?;
    revoke_granted(&state, &user, false).await?;
    Ok(StatusCode::OK.into_response())
}

/// Meta's data-deletion callback: answers with where to check the request and its code.
/// The status URL is on the host the callback reached (the webhooks function URL on AWS, which
/// the function cannot be configured with: it would depend on itself), else the public URL.
async fn meta_data_deletion(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let user = meta_callback_user(&state, &body)?;
    // Known before anything changes: a request that cannot be answered erases nothing.
    let base =
        super::request_base(&headers).or_else(|| state.config.public_url.clone()).ok_or_else(super::host_missing)?;
    let accounts = revoke_granted(&state, &user, true).await?;
    let deletion = state.journal.record_deletion(accounts).await?;
    let url = base
        .join(&format!("webhooks/meta/data-deletion/{}", deletion.confirmation_code))
        .map_err(|e| Problem::internal(&e))?;
    Ok(axum::Json(json!({ "url": url.as_str(), "confirmation_code": deletion.confirmation_code })).into_response())
}

async fn meta_data_deletion_status(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found("deletion_not_found", "No data-deletion request with this code");
    if code.len() != 24 || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let deletion = state.journal.deletion(&code).await?.ok_or_else(not_found)?;
    Ok(axum::Json(deletion).into_response())
}
