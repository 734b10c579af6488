//! The `posts` function's routes. Post submission and status arrive with the publishing work;
//! until then every path here answers with a `route_not_found` problem document.

use super::routes::Routes;

pub(super) fn routes() -> Routes {
    Routes::new()
}
