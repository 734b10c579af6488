//! The `posts` function's routes. Post submission and status arrive with the publishing work;
//! until then every path here answers with a `route_not_found` problem document.

use axum::Router;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
