//! X's official OpenAPI document (`specs/x-openapi.json`, version 2.167, a byte-identical copy
//! of xdevplatform/docs' `openapi.json`; `specs/x-openapi.json.SOURCE.txt`) as the judge of every
//! JSON body sent to the X simulator: a body the document's request schema refuses is answered
//! 400 (`invalid-request`) before the simulator sees it, so neither Herald nor the simulator can
//! drift from X's own description. Every call is also entered in a ledger by operation
//! (`GET /_sandbox/spec`): validated against the document, sent without a JSON body (form or
//! multipart: not validated), or on a path the document lacks (the OAuth endpoints), so nothing
//! is skipped silently.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::state::Shared;

const X_OPENAPI: &str = include_str!("../specs/x-openapi.json");

struct Operation {
    method: String,
    template: String,
    segments: Vec<String>,
    /// The JSON request body's schema, where the operation has one.
    json: Option<jsonschema::Validator>,
}

static X: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let spec: Value = serde_json::from_str(X_OPENAPI).expect("X's OpenAPI document is JSON");
    let mut operations = Vec::new();
    for (template, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            let json = (!schema.is_null()).then(|| {
                // The schema with the document's components beside it, so its `$ref`s resolve.
                let mut root = schema.clone();
                root["components"] = spec["components"].clone();
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .build(&root)
                    .expect("X's request schemas compile")
            });
            operations.push(Operation {
                method: method.to_ascii_uppercase(),
                template: template.clone(),
                segments: template.split('/').map(str::to_owned).collect(),
                json,
            });
        }
    }
    operations
});

/// Compiles the document's request schemas now (they are compiled once per process).
pub fn warm() {
    LazyLock::force(&X);
}

/// How a call stood against the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judged {
    /// Its JSON body matched the operation's request schema.
    Validated,
    /// The operation is described, but the call carried no JSON body to check.
    NoJsonBody,
    /// The document does not describe this path and method.
    Undescribed,
}

/// The ledger: `"METHOD /template"` → how many calls were judged how.
pub type Ledger = BTreeMap<String, BTreeMap<Judged, u64>>;

/// Counts one call in a ledger.
pub fn tally(ledger: &mut Ledger, key: String, judged: Judged) {
    *ledger.entry(key).or_default().entry(judged).or_default() += 1;
}

/// The operation `method path` (an X API path such as `/2/tweets`) is, preferring literal
/// segments over templated ones.
fn operation(method: &str, path: &str) -> Option<&'static Operation> {
    let segments: Vec<&str> = path.split('/').collect();
    X.iter()
        .filter(|op| op.method == method && op.segments.len() == segments.len())
        .filter(|op| op.segments.iter().zip(&segments).all(|(want, got)| want.starts_with('{') || want == got))
        .max_by_key(|op| op.segments.iter().filter(|s| !s.starts_with('{')).count())
}

/// Judges one call; `Err` with the schema's complaints where the body does not match.
pub fn judge(method: &str, path: &str, json: Option<&[u8]>) -> Result<(String, Judged), Vec<String>> {
    let Some(op) = operation(method, path) else { return Ok((format!("{method} {path}"), Judged::Undescribed)) };
    let key = format!("{method} {}", op.template);
    match (json, &op.json) {
        (Some(body), Some(validator)) => {
            let value: Value = serde_json::from_slice(body).map_err(|e| vec![format!("not JSON: {e}")])?;
            let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
            if errors.is_empty() { Ok((key, Judged::Validated)) } else { Err(errors) }
        }
        _ => Ok((key, Judged::NoJsonBody)),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")))
}

/// Middleware on the X simulator's API host: judges each call against the document first.
pub async fn check_x(State(sandbox): State<Shared>, request: Request, next: Next) -> Response {
    let Some(path) = request.uri().path().strip_prefix("/x/api").map(str::to_owned) else {
        return next.run(request).await;
    };
    let method = request.method().as_str().to_owned();
    let (parts, body) = request.into_parts();
    let json = is_json(&parts.headers);
    let bytes = if json {
        match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
            Ok(bytes) => Some(bytes),
            Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
        }
    } else {
        let request = Request::from_parts(parts.clone(), body);
        if let Ok((key, judged)) = judge(&method, &path, None) {
            record(&sandbox, key, judged);
        }
        return next.run(request).await;
    };
    match judge(&method, &path, bytes.as_deref()) {
        Ok((key, judged)) => record(&sandbox, key, judged),
        Err(errors) => {
            let detail = format!("The request body does not match X's OpenAPI document: {}", errors.join("; "));
            return crate::x::problem(
                StatusCode::BAD_REQUEST,
                "Invalid Request",
                &detail,
                "https://api.x.com/2/problems/invalid-request",
            );
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes.unwrap_or_default()))).await
}

fn record(sandbox: &Shared, key: String, judged: Judged) {
    tally(&mut sandbox.world().x_spec, key, judged);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_judged_by_xs_own_schemas() {
        let judged = |method, path, body: &str| judge(method, path, Some(body.as_bytes()));
        assert_eq!(judged("POST", "/2/tweets", r#"{"text":"hi"}"#), Ok(("POST /2/tweets".into(), Judged::Validated)));
        assert!(judged("POST", "/2/tweets", r#"{"txt":"hi"}"#).is_err(), "an unknown field");
        assert!(judged("POST", "/2/tweets", r#"{"text":"hi","media":{"media_ids":[]}}"#).is_err(), "no media ids");
        assert_eq!(
            judged("POST", "/2/media/metadata", r#"{"id":"123","metadata":{"alt_text":{"text":"a cat"}}}"#),
            Ok(("POST /2/media/metadata".into(), Judged::Validated))
        );
        assert!(judged("POST", "/2/media/metadata", r#"{"id":"12a"}"#).is_err(), "ids are digits");
        assert_eq!(
            judge("POST", "/2/oauth2/token", None),
            Ok(("POST /2/oauth2/token".into(), Judged::Undescribed)),
            "the OAuth endpoints are not in the document"
        );
        assert_eq!(
            judge("GET", "/2/users/123/tweets", None),
            Ok(("GET /2/users/{id}/tweets".into(), Judged::NoJsonBody))
        );
        assert_eq!(
            judge("POST", "/2/media/upload/initialize", None).map(|(k, _)| k),
            Ok("POST /2/media/upload/initialize".into()),
            "literal segments win over templated ones"
        );
    }
}
