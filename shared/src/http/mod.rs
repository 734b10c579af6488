//! HTTP: one axum router per HTTP function, served unchanged by `lambda_http::run` on Lambda and
//! by plain HTTP in the local runner (paths exactly as behind API Gateway).

mod browser;
mod connect;
mod endpoint;
pub mod extract;
mod oauth;
mod posts;
pub mod problem;
pub mod routes;
mod webhooks;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub use problem::Problem;
pub use routes::{RouteSpec, Routes};

/// What the handlers share (see [`crate::app::App`]).
pub type AppState = crate::app::App;

/// The `connect` function's routes: tenant settings, connect links, OAuth callbacks, accounts.
pub fn connect_routes() -> Routes {
    connect::routes().merge(oauth::routes()).merge(endpoint::routes())
}

/// The `posts` function's routes.
pub fn posts_routes() -> Routes {
    posts::routes()
}

/// The `webhooks` function's routes (behind a Lambda function URL on AWS).
pub fn webhooks_routes() -> Routes {
    webhooks::routes()
}

/// Every operation any function serves (for the OpenAPI check).
pub fn route_specs() -> Vec<routes::RouteSpec> {
    connect_routes().merge(posts_routes()).merge(webhooks_routes()).specs
}

/// Adds what every function's router needs: problem documents for unknown routes and methods,
/// the body size limit, and one log line per request. Apply once, after merging.
pub fn finish(routes: Routes, state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    finish_stateless(routes.router.with_state(state), limit)
}

fn finish_stateless(router: Router, body_limit: usize) -> Router {
    router
        .fallback(|| async { Problem::route_not_found() })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(log_request))
}

/// Every route of every HTTP function on one router: what the local runner serves.
pub fn all_routes(state: AppState) -> Router {
    finish(connect_routes().merge(posts_routes()).merge(webhooks_routes()), state)
}

/// Every route of every HTTP function on one router, each function's with its own state (its
/// own AWS clients and caches), as the HTTP API and the function URL route them on AWS.
pub fn functions_router(connect: AppState, posts: AppState, webhooks: AppState) -> Router {
    let limit = connect.config.max_body_bytes;
    let router = connect_routes()
        .router
        .with_state(connect)
        .merge(posts_routes().router.with_state(posts))
        .merge(webhooks_routes().router.with_state(webhooks));
    finish_stateless(router, limit)
}

/// The base URL a request reached Herald on, from its `Host` and `X-Forwarded-Proto` (API
/// Gateway and Lambda function URLs set both; a bare local server has no proxy, hence http).
/// API Gateway only routes requests whose `Host` is one of its own domains, so on AWS the value
/// cannot be chosen by a client.
pub(crate) fn request_base(headers: &axum::http::HeaderMap) -> Option<url::Url> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let host = header("host").filter(|h| !h.is_empty())?;
    let scheme = match header("x-forwarded-proto").and_then(|v| v.split(',').next()).map(str::trim) {
        Some("https") => "https",
        _ => "http",
    };
    let url = url::Url::parse(&format!("{scheme}://{host}/")).ok()?;
    // A Host with a path, user or query is no host.
    (url.path() == "/" && url.username().is_empty() && url.query().is_none()).then_some(url)
}

/// Herald's public base URL for this request: `HERALD_PUBLIC_URL` when set, else the request's
/// own (docs/decisions.md, "Public URL").
pub(crate) fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> Result<url::Url, Problem> {
    match &state.config.public_url {
        Some(url) => Ok(url.clone()),
        None => request_base(headers).ok_or_else(host_missing),
    }
}

/// A request whose `Host` names no base URL (and none is configured).
pub(crate) fn host_missing() -> Problem {
    Problem::new(axum::http::StatusCode::BAD_REQUEST, "host_missing", "The request has no usable Host header")
}

/// One structured line per request. Logs the route template, never the concrete path or query:
/// OAuth callbacks carry codes and states there.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    tracing::info!(
        method = %method,
        route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (axum::http::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn the_request_base_is_its_host_and_forwarded_scheme() {
        let base = |pairs: &[(&'static str, &str)]| super::request_base(&headers(pairs)).map(|u| u.to_string());
        assert_eq!(
            base(&[("host", "abc123.execute-api.eu-west-1.amazonaws.com"), ("x-forwarded-proto", "https")]).as_deref(),
            Some("https://abc123.execute-api.eu-west-1.amazonaws.com/")
        );
        assert_eq!(base(&[("host", "127.0.0.1:3000")]).as_deref(), Some("http://127.0.0.1:3000/"));
        assert_eq!(
            base(&[("host", "h.example"), ("x-forwarded-proto", "https, http")]).as_deref(),
            Some("https://h.example/")
        );
        for bad in ["", "evil.example/path", "user@evil.example", "h.example?x=1", "h ex"] {
            assert_eq!(base(&[("host", bad)]), None, "{bad:?}");
        }
        assert_eq!(base(&[]), None);
    }
}
