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
use serde_json::json;

use super::AppState;
use super::extract::{ApiPath, ApiQuery};
use super::problem::Problem;
use super::routes::Routes;
use crate::domain::Platform;
use crate::platforms::webhooks::{
    CallbackError, DeliveryError, Dialect, Handshake, HandshakeError, Query, SignedCallbacks, dialects,
    signed_callbacks,
};
use crate::webhooks::receive;

/// Each platform's handshake (`GET`) and deliveries (`POST`) on its path, from the registry; and
/// the deauthorize and data-deletion callbacks of Meta's apps (Facebook Login's, Threads').
pub(super) fn routes() -> Routes {
    let mut routes = Routes::new();
    for dialect in dialects() {
        routes = routes
            .on(Method::GET, dialect.path(), move |state: State<AppState>, query: ApiQuery<Query>| {
                handshake(dialect, state, query)
            })
            .on(Method::POST, dialect.path(), move |state: State<AppState>, headers: HeaderMap, body: Bytes| {
                delivery(dialect, state, headers, body)
            });
    }
    for callbacks in signed_callbacks() {
        let [deauthorized, deletion, status] = callbacks.paths;
        routes = routes
            .on(Method::POST, deauthorized, move |state: State<AppState>, body: Bytes| {
                deauthorize(callbacks, state, body)
            })
            .on(Method::POST, deletion, move |state: State<AppState>, headers: HeaderMap, body: Bytes| {
                data_deletion(callbacks, state, headers, body)
            })
            .on(Method::GET, status, data_deletion_status);
    }
    routes
}

fn refused() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "webhook_signature_invalid", "The request is not signed by the platform")
}

fn not_configured(platform: Platform) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "platform_not_configured", format!("{platform} is not configured"))
}

async fn handshake(
    dialect: &'static dyn Dialect,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<Query>,
) -> Result<Response, Problem> {
    match dialect.handshake(&state.config.apps, &query) {
        Ok(Handshake::Text(text)) => Ok(([("content-type", "text/plain")], text).into_response()),
        Ok(Handshake::Json(body)) => Ok(axum::Json(body).into_response()),
        Err(HandshakeError::NotConfigured(platform)) => Err(not_configured(platform)),
        Err(HandshakeError::VerifyTokenInvalid) => {
            Err(Problem::new(StatusCode::FORBIDDEN, "webhook_verify_token_invalid", "The verify token is not Herald's"))
        }
        Err(HandshakeError::ChallengeMissing { field, detail }) => {
            Err(Problem::invalid("webhook_challenge_missing", field, detail.to_owned()))
        }
        // A handshake input in a shape the platform never sends: answering it would sign
        // attacker-chosen bytes with the key that signs deliveries.
        Err(HandshakeError::ChallengeInvalid { field, detail }) => {
            Err(Problem::invalid("webhook_challenge_invalid", field, detail.to_owned()))
        }
    }
}

/// Verifies, parses and records one delivery.
async fn delivery(
    dialect: &'static dyn Dialect,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    match dialect.verify(&state.config.apps, &headers, &body) {
        Ok(()) => {}
        Err(DeliveryError::NotConfigured(platform)) => return Err(not_configured(platform)),
        Err(DeliveryError::Refused) => return Err(refused()),
    }
    let events = dialect.parse(&body).map_err(|_| {
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

/// The platform user a signed callback names, from its verified `signed_request`.
fn callback_user(callbacks: &SignedCallbacks, state: &AppState, body: &[u8]) -> Result<String, Problem> {
    callbacks.user(&state.config.apps, body, state.clock.now().unix_timestamp()).map_err(|e| match e {
        CallbackError::NotConfigured(platform) => not_configured(platform),
        CallbackError::Refused => refused(),
        CallbackError::NoUser => {
            Problem::new(StatusCode::BAD_REQUEST, "webhook_malformed", "The signed request names no user")
        }
    })
}

async fn deauthorize(
    callbacks: &'static SignedCallbacks,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, Problem> {
    let user = callback_user(callbacks, &state, &body)?;
    let reason = format!("app removed at {}", callbacks.platform);
    state.connections.revoke_granted(callbacks.family, &user, false, &reason).await?;
    Ok(StatusCode::OK.into_response())
}

/// A data-deletion callback: answers with where to check the request and its code.
/// The status URL is on the host the callback reached (the webhooks function URL on AWS, which
/// the function cannot be configured with: it would depend on itself), else the public URL.
async fn data_deletion(
    callbacks: &'static SignedCallbacks,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let user = callback_user(callbacks, &state, &body)?;
    // Known before anything changes: a request that cannot be answered erases nothing.
    let base =
        super::request_base(&headers).or_else(|| state.config.public_url.clone()).ok_or_else(super::host_missing)?;
    let reason = format!("data deletion requested at {}", callbacks.platform);
    let accounts = state.connections.revoke_granted(callbacks.family, &user, true, &reason).await?;
    let deletion = state.journal.record_deletion(accounts).await?;
    let url = base
        .join(&format!("webhooks/{}/data-deletion/{}", callbacks.family, deletion.confirmation_code))
        .map_err(|e| Problem::internal(&e))?;
    Ok(axum::Json(json!({ "url": url.as_str(), "confirmation_code": deletion.confirmation_code })).into_response())
}

async fn data_deletion_status(
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
