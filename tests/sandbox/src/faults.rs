//! Injected faults: tests ask the sandbox to fail some calls the way each platform fails.
//!
//! A fault matches calls by method and path prefix, for a number of calls or with a probability
//! drawn from the seeded generator. Kinds:
//! - `status`: the platform's own error body with that status (5xx, 4xx);
//! - `rate_limited`: the platform's throttling answer (X 429 with reset headers, Meta code 4 with
//!   `X-App-Usage` at 100 %, LinkedIn 429);
//! - `usage_capped`: X's answer when the app's usage cap is spent (429, problem type
//!   `https://api.x.com/2/problems/usage-capped`, docs.x.com response-codes-and-errors; other
//!   platforms: their throttling answer);
//! - `spam_restricted`: Instagram's spam restriction (HTTP 400, code 4, subcode 2207051, "We
//!   restrict certain activity to protect our community", Instagram's error-codes reference;
//!   other platforms: a 403);
//! - `slow`: the call is served after a delay;
//! - `hang`: nothing is applied and no answer comes: the client times out, as on a dropped
//!   connection, unless the test releases the call first (`POST /_sandbox/faults/release`), which
//!   cuts the connection before any answer (the client sees the connection closed after sending,
//!   which it must treat as it treats its own timeout then);
//! - `applied_then_hang`: the call takes effect (the post exists) but no answer comes, held and
//!   released in the same way. A call the platform refuses (a revoked token, a bad request) cannot
//!   take effect: its answer is served.

use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::state::{Platform, Shared};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// e.g. `POST`; any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix, e.g. `/x/api/2/tweets`.
    pub path: String,
    pub kind: FaultKind,
    /// How many matching calls it affects; every one when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// Chance that a matching call is affected (default 1).
    #[serde(default)]
    pub probability: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    Status {
        status: u16,
    },
    RateLimited {
        /// Seconds until the window resets (default 900).
        #[serde(default)]
        reset_after: Option<i64>,
        /// Meta only: the throttling code to answer with (4 app, 17 user, 32 Page, 613 custom,
        /// 80001 Pages BUC, 80002 Instagram BUC); default 4.
        #[serde(default)]
        code: Option<u32>,
    },
    UsageCapped,
    SpamRestricted,
    Slow {
        millis: u64,
    },
    Hang,
    AppliedThenHang,
    /// The call is applied, then answered with this status (a 500 or a gateway's 502 or 504 after
    /// the platform acted: the audit's F14).
    AppliedThenStatus {
        status: u16,
    },
}

/// The fault (if any) that applies to this call; consumes one use of it. Matching faults are
/// tried in the order they were added, each with its own probability.
fn pick(sandbox: &Shared, method: &str, path: &str) -> Option<(FaultKind, i64)> {
    let mut world = sandbox.world();
    let now = world.now();
    let candidates: Vec<usize> = world
        .faults
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            path.starts_with(&f.path) && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
        })
        .map(|(i, _)| i)
        .collect();
    for index in candidates {
        let probability = world.faults[index].probability.unwrap_or(1.0);
        if probability < 1.0 && !world.rng.random_bool(probability.clamp(0.0, 1.0)) {
            continue;
        }
        let fault = &mut world.faults[index];
        let kind = fault.kind.clone();
        if let Some(times) = fault.times.as_mut() {
            *times -= 1;
            if *times == 0 {
                world.faults.remove(index);
            }
        }
        return Some((kind, now));
    }
    None
}

pub async fn inject(State(sandbox): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let Some(platform) = Platform::of_path(&path) else {
        return next.run(request).await;
    };
    let Some((kind, now)) = pick(&sandbox, request.method().as_str(), &path) else {
        return next.run(request).await;
    };
    match kind {
        FaultKind::Status { status } => {
            error(platform, StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        FaultKind::RateLimited { reset_after, code } => match (platform, code) {
            (Platform::Meta, Some(code)) => meta_throttled(code, reset_after.unwrap_or(900)),
            _ => rate_limited(platform, now + reset_after.unwrap_or(900)),
        },
        FaultKind::UsageCapped => match platform {
            Platform::X => usage_capped(),
            _ => rate_limited(platform, now + 900),
        },
        FaultKind::SpamRestricted => match platform {
            Platform::Meta => crate::meta::graph_error(
                StatusCode::BAD_REQUEST,
                4,
                Some(2207051),
                "We restrict certain activity to protect our community. Tell us if you think we made a mistake.",
            ),
            _ => error(platform, StatusCode::FORBIDDEN),
        },
        FaultKind::Slow { millis } => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(request).await
        }
        FaultKind::Hang => hold(&sandbox).await,
        FaultKind::AppliedThenHang => {
            let answer = next.run(request).await;
            if !answer.status().is_success() {
                return answer;
            }
            hold(&sandbox).await
        }
        FaultKind::AppliedThenStatus { status } => {
            let answer = next.run(request).await;
            if !answer.status().is_success() {
                return answer;
            }
            error(platform, StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

/// One held call in the count (`GET /_sandbox/faults/held`), for as long as this lives (also
/// when the client gives up first and the call is dropped).
pub(crate) struct Held(Shared);

impl Held {
    pub(crate) fn count(sandbox: &Shared) -> Held {
        sandbox.held.send_modify(|n| *n += 1);
        Held(sandbox.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.send_modify(|n| *n -= 1);
    }
}

/// Holds the call until the test releases it, then cuts the connection before any answer.
async fn hold(sandbox: &Shared) -> Response {
    let mut release = sandbox.release.subscribe();
    let _held = Held::count(sandbox);
    if release.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    let cut =
        futures_util::stream::once(async { Err::<axum::body::Bytes, _>(std::io::Error::other("connection cut")) });
    Response::new(axum::body::Body::from_stream(cut))
}

/// A platform's generic error answer for `status`.
pub fn error(platform: Platform, status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    match platform {
        Platform::X => crate::x::problem(status, reason, reason, "about:blank"),
        Platform::Meta | Platform::Threads => {
            let (code, transient) = if status.is_server_error() { (2, true) } else { (1, false) };
            let body = json!({ "error": {
                "message": if transient { "An unexpected error has occurred. Please retry your request later." } else { "An unknown error has occurred." },
                "type": "OAuthException",
                "is_transient": transient,
                "code": code,
                "fbtrace_id": "AsandboxTraceId",
            }});
            (status, Json(body)).into_response()
        }
        Platform::Linkedin => (status, Json(json!({ "status": status.as_u16(), "message": reason }))).into_response(),
        Platform::Mastodon => (status, Json(json!({ "error": reason }))).into_response(),
    }
}

/// X's usage cap: a 429 whose problem type says the app's cap (not a rate window) is spent.
fn usage_capped() -> Response {
    // The shape a client reported X sending (docs.x.com names only the type).
    let body = json!({
        "account_id": 1,
        "product_name": "standard-basic",
        "title": "UsageCapExceeded",
        "detail": "Usage cap exceeded: Monthly product cap",
        "type": "https://api.x.com/2/problems/usage-capped",
        "period": "Monthly",
        "scope": "Product",
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// Meta's throttling error for `code`, with the usage header that goes with it.
fn meta_throttled(code: u32, reset_after: i64) -> Response {
    let message = match code {
        17 => "(#17) User request limit reached",
        32 => "(#32) Page request limit reached",
        613 => "(#613) Calls to this api have exceeded the rate limit.",
        80001 => "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
        80002 => "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again.",
        _ => "(#4) Application request limit reached",
    };
    let mut response = crate::meta::graph_error(StatusCode::BAD_REQUEST, code, None, message);
    let minutes = (reset_after + 59) / 60;
    let usage = if code >= 80000 || code == 32 {
        json!({ "0": [{ "type": if code == 80002 { "instagram" } else { "pages" }, "call_count": 100, "total_cputime": 10, "total_time": 10, "estimated_time_to_regain_access": minutes }] })
    } else {
        json!({ "call_count": 100, "total_cputime": 10, "total_time": 10 })
    };
    let name = if code >= 80000 || code == 32 { "x-business-use-case-usage" } else { "x-app-usage" };
    if let Ok(value) = HeaderValue::from_str(&usage.to_string()) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// A platform's throttling answer, resetting at `reset` (Unix seconds).
pub fn rate_limited(platform: Platform, reset: i64) -> Response {
    match platform {
        Platform::X => {
            let mut response = crate::x::problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Too Many Requests",
                "about:blank",
            );
            let headers = response.headers_mut();
            headers.insert("x-rate-limit-limit", HeaderValue::from_static("100"));
            headers.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
            if let Ok(value) = HeaderValue::from_str(&reset.to_string()) {
                headers.insert("x-rate-limit-reset", value);
            }
            response
        }
        // Threads answers with Graph's error objects (its API is Graph's), Meta's code 4 included.
        Platform::Meta | Platform::Threads => {
            let body = json!({ "error": {
                "message": "(#4) Application request limit reached",
                "type": "OAuthException",
                "is_transient": true,
                "code": 4,
                "fbtrace_id": "AsandboxTraceId",
            }});
            let mut response = (StatusCode::FORBIDDEN, Json(body)).into_response();
            response.headers_mut().insert(
                "x-app-usage",
                HeaderValue::from_static(r#"{"call_count":100,"total_cputime":35,"total_time":40}"#),
            );
            response
        }
        Platform::Mastodon => {
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "error": "Too many requests" }))).into_response();
            if let Ok(value) = HeaderValue::from_str(&crate::state::rfc3339(reset)) {
                response.headers_mut().insert("x-ratelimit-reset", value);
            }
            response.headers_mut().insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            response
        }
        Platform::Linkedin => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "status": 429,
                "serviceErrorCode": 101,
                "code": "TOO_MANY_REQUESTS",
                "message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
            })),
        )
            .into_response(),
    }
}
