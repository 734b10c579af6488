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
    routes
        .router
        .fallback(|| async { Problem::route_not_found() })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Every route of every HTTP function on one router: what the local runner serves.
pub fn all_routes(state: AppState) -> Router {
    finish(connect_routes().merge(posts_routes()).merge(webhooks_routes()), state)
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
