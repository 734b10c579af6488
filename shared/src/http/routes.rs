//! A router that remembers what it serves, so the OpenAPI document can be checked against it.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use super::AppState;

/// One served operation: method and path template (`{name}` parameters, as in OpenAPI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
}

/// Routes being built: the axum router and the list of what it serves.
pub struct Routes {
    pub(super) router: Router<AppState>,
    pub specs: Vec<RouteSpec>,
}

impl Routes {
    pub fn new() -> Self {
        Self { router: Router::new(), specs: Vec::new() }
    }

    /// Serves `handler` for `method` on `path`.
    pub fn on<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
        self.router = self.router.route(path, on(filter, handler));
        self.specs.push(RouteSpec { method, path });
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.specs.extend(other.specs);
        self
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}
