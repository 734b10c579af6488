//! The tenant's webhook endpoint: where Herald delivers events, signed per Standard Webhooks.
//! Served by the `connect` function (the one allowed to seal secrets).

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiJson, Authenticated};
use super::routes::Routes;
use super::{AppState, Problem};
use crate::store::StoreError;
use crate::webhooks::outbound::new_secret;

pub(super) fn routes() -> Routes {
    Routes::new()
        .on(Method::GET, "/v1/webhook-endpoint", get_endpoint)
        .on(Method::PUT, "/v1/webhook-endpoint", put_endpoint)
        .on(Method::DELETE, "/v1/webhook-endpoint", delete_endpoint)
        .on(Method::POST, "/v1/webhook-endpoint/rotate", rotate_secret)
}

fn not_found() -> Problem {
    Problem::not_found("endpoint_not_found", "This tenant has no webhook endpoint")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointRequest {
    url: String,
}

/// A public https URL without credentials, by the egress policy (`herald::egress`): literal
/// internal addresses and local names are refused here; names that resolve inside are refused
/// at delivery time.
fn endpoint_url(raw: &str, policy: &crate::egress::Policy) -> Result<url::Url, Problem> {
    let invalid = |detail: &str| Problem::invalid("invalid_endpoint_url", "url", detail.to_owned());
    if raw.len() > 2048 {
        return Err(invalid("at most 2048 characters"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| invalid("not a URL"))?;
    match policy.url(&url) {
        Ok(()) => Ok(url),
        Err(crate::egress::Refusal::Scheme(_)) => Err(invalid("must be https")),
        Err(refusal) => Err(Problem::invalid("endpoint_url_not_allowed", "url", refusal.to_string())),
    }
}

async fn get_endpoint(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Response, Problem> {
    let endpoint = state.endpoints.get(&tenant).await?.ok_or_else(not_found)?;
    Ok(Json(endpoint).into_response())
}

/// Registers or replaces the endpoint; the answer holds its signing secret, shown only now.
async fn put_endpoint(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiJson(request): ApiJson<EndpointRequest>,
) -> Result<Response, Problem> {
    let url = endpoint_url(&request.url, state.egress.policy())?;
    let secret = new_secret();
    let endpoint = state.endpoints.register(&tenant, url, secret.clone()).await?;
    let body = json!({ "url": endpoint.url, "created_at": endpoint.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(), "secret": secret.expose_secret() });
    Ok((StatusCode::OK, Json(body)).into_response())
}

async fn delete_endpoint(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Response, Problem> {
    if state.endpoints.delete(&tenant).await? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(not_found()) }
}

/// A new secret, shown only now; the previous one keeps signing for 24 hours.
async fn rotate_secret(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Response, Problem> {
    let secret = new_secret();
    match state.endpoints.rotate(&tenant, &secret).await {
        Ok(Some(endpoint)) => {
            let until = endpoint
                .previous_secret_valid_until
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
            Ok(Json(json!({ "secret": secret.expose_secret(), "previous_secret_valid_until": until })).into_response())
        }
        Ok(None) => Err(not_found()),
        Err(StoreError::VersionConflict) => Err(Problem::new(
            StatusCode::CONFLICT,
            "endpoint_changed",
            "The endpoint changed during the rotation; try again",
        )),
        Err(e) => Err(e.into()),
    }
}
