//! The Mastodon OpenAPI description (`specs/mastodon-openapi.json`: abraham/mastodon-openapi,
//! generated from Mastodon's documentation, API 4.7.0; `specs/mastodon-openapi.SOURCE.txt`) as the
//! judge of every request sent to the Mastodon simulator: its required query parameters, and its
//! body (JSON; a form, as the fields it carries; multipart, as its field names) against the
//! operation's request schema. A request the description refuses is answered 422 before the
//! simulator sees it; every call is entered in the ledger (`GET /_sandbox/spec`, `mastodon`).
//!
//! One reading differs from the description, where the documentation wins (its README's rule):
//! `POST /api/v1/statuses` takes `oneOf` text, media or poll statuses, but "if `media_ids` is
//! provided, `status` becomes optional", so a status with text and media matches two branches,
//! which `oneOf` refuses; it is read as `anyOf`.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::spec::{Judged, tally};
use crate::state::Shared;

const MASTODON_OPENAPI: &str = include_str!("../specs/mastodon-openapi.json");
/// Where the simulated server lives on the sandbox.
pub const PREFIX: &str = "/mastodon";

struct Operation {
    method: String,
    template: String,
    segments: Vec<String>,
    required_query: Vec<String>,
    /// The request body's schema (JSON, or multipart's), and the multipart fields it names.
    body: Option<jsonschema::Validator>,
    multipart: Option<(Vec<String>, Vec<String>)>,
}

static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let spec: Value = serde_json::from_str(MASTODON_OPENAPI).expect("the Mastodon description is JSON");
    let mut operations = Vec::new();
    for (template, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let content = &operation["requestBody"]["content"];
            let mut schema = content["application/json"]["schema"].clone();
            if let Some(branches) = schema.get("oneOf").cloned().filter(|_| template == "/api/v1/statuses") {
                schema = json!({ "anyOf": branches });
            }
            let body = (!schema.is_null()).then(|| {
                let mut root = schema.clone();
                root["components"] = spec["components"].clone();
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&root)
                    .expect("the description's request schemas compile")
            });
            let form = &content["multipart/form-data"]["schema"];
            let names = |key: &str| -> Vec<String> {
                match key {
                    "required" => form["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    _ => form["properties"].as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect(),
                }
            };
            let multipart = (!form.is_null()).then(|| (names("required"), names("properties")));
            let required_query = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            operations.push(Operation {
                method: method.to_ascii_uppercase(),
                template: template.clone(),
                segments: template.split('/').map(str::to_owned).collect(),
                required_query,
                body,
                multipart,
            });
        }
    }
    operations
});

/// Compiles the description's request schemas now (once per process).
pub fn warm() {
    LazyLock::force(&OPERATIONS);
}

fn operation(method: &str, path: &str) -> Option<&'static Operation> {
    let segments: Vec<&str> = path.split('/').collect();
    OPERATIONS
        .iter()
        .filter(|op| op.method == method && op.segments.len() == segments.len())
        .filter(|op| op.segments.iter().zip(&segments).all(|(want, got)| want.starts_with('{') || want == got))
        .max_by_key(|op| op.segments.iter().filter(|s| !s.starts_with('{')).count())
}

/// What a request's body says, as the description's schemas see it.
pub enum Sent {
    None,
    Json(Value),
    /// A multipart body's field names.
    Fields(Vec<String>),
}

/// A form body as a JSON object: each field a string, `name[]` fields an array under `name`.
pub fn form_object(body: &[u8]) -> Value {
    let mut object = Map::new();
    for (key, value) in url::form_urlencoded::parse(body).into_owned() {
        match key.strip_suffix("[]") {
            Some(list) => {
                let entry = object.entry(list.to_owned()).or_insert_with(|| json!([]));
                if let Some(items) = entry.as_array_mut() {
                    items.push(json!(value));
                }
            }
            None => {
                object.insert(key, json!(value));
            }
        }
    }
    Value::Object(object)
}

/// Judges one call (`path` without the prefix); `Err` with the complaints.
pub fn judge(method: &str, path: &str, query: &[String], body: &Sent) -> Result<(String, Judged), Vec<String>> {
    let Some(op) = operation(method, path) else { return Ok((format!("{method} {path}"), Judged::Undescribed)) };
    let key = format!("{method} {}", op.template);
    let mut errors: Vec<String> = op
        .required_query
        .iter()
        .filter(|q| !query.contains(q))
        .map(|q| format!("the query parameter {q} is required"))
        .collect();
    let judged = match (body, &op.body, &op.multipart) {
        (Sent::Json(value), Some(validator), _) => {
            errors.extend(validator.iter_errors(value).map(|e| e.to_string()));
            Judged::Validated
        }
        (Sent::Fields(names), _, Some((required, known))) => {
            errors.extend(required.iter().filter(|r| !names.contains(r)).map(|r| format!("the field {r} is required")));
            errors
                .extend(names.iter().filter(|n| !known.contains(n)).map(|n| format!("the field {n} is not described")));
            Judged::Validated
        }
        (Sent::None, Some(_), _) | (Sent::None, _, Some(_)) => {
            errors.push("the operation takes a request body".into());
            Judged::NoJsonBody
        }
        _ => Judged::NoJsonBody,
    };
    if errors.is_empty() { Ok((key, judged)) } else { Err(errors) }
}

fn content_type(headers: &HeaderMap) -> String {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase()
}

/// A multipart body's field names (`Content-Disposition: form-data; name="…"`).
fn multipart_names(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.split("form-data; name=\"").skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_owned).collect()
}

/// Middleware on the Mastodon simulator: judges each call against the description first.
pub async fn check(State(sandbox): State<Shared>, request: Request, next: Next) -> Response {
    let Some(path) = request.uri().path().strip_prefix(PREFIX).map(str::to_owned) else {
        return next.run(request).await;
    };
    let method = request.method().as_str().to_owned();
    let query: Vec<String> = url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 32 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let kind = content_type(&parts.headers);
    let seen = if bytes.is_empty() {
        Sent::None
    } else if kind.starts_with("application/json") {
        match serde_json::from_slice(&bytes) {
            Ok(value) => Sent::Json(value),
            Err(_) => {
                return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "the body is not JSON" })))
                    .into_response();
            }
        }
    } else if kind.starts_with("multipart/form-data") {
        Sent::Fields(multipart_names(&bytes))
    } else {
        Sent::Json(form_object(&bytes))
    };
    match judge(&method, &path, &query, &seen) {
        Ok((key, judged)) => tally(&mut sandbox.world().mastodon_spec, key, judged),
        Err(errors) => {
            let error = format!("The request does not match the Mastodon API description: {}", errors.join("; "));
            return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "error": error }))).into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_judged_by_the_description() {
        let json = |v: Value| Sent::Json(v);
        let ok = |r: Result<(String, Judged), Vec<String>>| r.map(|(k, _)| k);
        assert_eq!(
            ok(judge(
                "POST",
                "/api/v1/apps",
                &[],
                &json(json!({ "client_name": "Herald", "redirect_uris": ["https://h/cb"] }))
            )),
            Ok("POST /api/v1/apps".into())
        );
        assert!(
            judge("POST", "/api/v1/apps", &[], &json(json!({ "client_name": "Herald" }))).is_err(),
            "redirect_uris"
        );
        assert!(judge("POST", "/api/v1/statuses", &[], &json(json!({ "status": "hi" }))).is_ok());
        assert!(
            judge("POST", "/api/v1/statuses", &[], &json(json!({ "status": "hi", "media_ids": ["1"] }))).is_ok(),
            "text and media: anyOf"
        );
        assert!(
            judge("POST", "/api/v1/statuses", &[], &json(json!({ "visibility": "public" }))).is_err(),
            "nothing to post"
        );
        assert!(judge("POST", "/api/v2/media", &[], &Sent::Fields(vec!["description".into()])).is_err(), "no file");
        assert!(judge("POST", "/api/v2/media", &[], &Sent::Fields(vec!["file".into(), "description".into()])).is_ok());
        assert!(judge("GET", "/oauth/authorize", &["client_id".into()], &Sent::None).is_err(), "redirect_uri missing");
        let form = form_object(b"grant_type=authorization_code&code=c&client_id=i&client_secret=s&redirect_uri=r");
        assert!(judge("POST", "/oauth/token", &[], &json(form)).is_ok());
        assert_eq!(ok(judge("GET", "/api/v1/media/123", &[], &Sent::None)), Ok("GET /api/v1/media/{id}".into()));
    }
}
