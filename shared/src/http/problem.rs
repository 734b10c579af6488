//! One error shape for the whole API: RFC 9457 problem details with a stable `code` member.
//!
//! Clients get the status, a stable machine-readable `code` and a human message; logs get the
//! cause chain. Nothing secret goes into either. Every code is listed in docs/errors.md.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `urn:herald:problem:{code}`; documented in docs/errors.md.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable, machine-readable; safe to branch on.
    pub code: &'static str,
    /// Extension members, e.g. the field a validation error is about.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:herald:problem:{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            code,
            extensions: serde_json::Map::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Missing or invalid API key")
            .detail("Send `Authorization: Bearer <api key>`.")
    }

    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "route_not_found", "No such route")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed on this route")
    }

    pub fn not_found(code: &'static str, title: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, title)
    }

    /// A request that parsed but breaks a rule; `field` names what to fix.
    pub fn invalid(code: &'static str, field: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, "The request is invalid").detail(detail).with("field", field)
    }

    /// For failures that are ours, not the caller's. The cause is logged, never returned.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %crate::telemetry::cause_chain(cause), "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side")
            .detail("The failure was logged; retrying later may succeed.")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"herald\""));
        }
        // A problem that says when to ask again says it in the header too (RFC 9110 §10.2.3).
        if let Some(seconds) = self.extensions.get("retry_after").and_then(serde_json::Value::as_u64) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(err: crate::store::StoreError) -> Self {
        Problem::internal(&err)
    }
}
