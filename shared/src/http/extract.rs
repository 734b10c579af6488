//! Extractors whose rejections are problem documents, not axum's plain-text defaults.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{AppState, Problem};
use crate::domain::TenantId;

/// A JSON body. Wrong content type → 415, bad syntax → 400, wrong shape → 422, too large → 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// A JSON body of the wrong shape: 422 `invalid_body`, with what serde said.
pub(super) fn invalid_body(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "The body does not have the expected shape")
        .detail(detail)
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body must be JSON")
                .detail("Send `Content-Type: application/json`.")
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_json", "The body is not valid JSON").detail(e.body_text())
        }
        JsonRejection::JsonDataError(e) => invalid_body(e.body_text()),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "The body is too large")
        }
        other => Problem::new(StatusCode::BAD_REQUEST, "invalid_body", "The body could not be read")
            .detail(other.body_text()),
    }
}

/// Path parameters, with a problem document when they do not parse.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_path_parameter", "A path parameter is invalid")
                    .detail(rejection.body_text()))
            }
            Err(rejection) => Err(Problem::internal(&rejection)),
        }
    }
}

/// Query parameters, with a problem document when they do not parse (`limit=abc`).
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_query_parameter", "A query parameter is invalid")
                    .detail(e.body_text()))
            }
            Err(rejection) => Err(Problem::internal(&rejection)),
        }
    }
}

/// The tenant whose API key authorized the request (`Authorization: Bearer <key>`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub TenantId);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .ok_or_else(Problem::unauthorized)?;
        match state.tenants.authenticate(presented).await? {
            Some(tenant) => Ok(Authenticated(tenant)),
            None => Err(Problem::unauthorized()),
        }
    }
}
