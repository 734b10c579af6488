//! Herald's platform sandbox: local simulators of X, Facebook, Instagram, LinkedIn, Threads and a Mastodon server, served
//! over real HTTP on loopback.
//!
//! Built from the platforms' documentation (`../shared/reference/platforms.md`), not from what
//! Herald's adapters send: it refuses what the real platform refuses. Each platform lives under
//! its own prefix, standing in for its hosts:
//!
//! | prefix | stands for |
//! |---|---|
//! | `/x/web` | `https://x.com` (OAuth 2.0 consent) |
//! | `/x/api` | `https://api.x.com` (API, OAuth 2.0 tokens, OAuth 1.0a) |
//! | `/meta/web` | `https://www.facebook.com` (Login dialog) |
//! | `/meta/graph` | `https://graph.facebook.com` (Graph API, Facebook and Instagram) |
//! | `/linkedin/www` | `https://www.linkedin.com` (OAuth) |
//! | `/linkedin/api` | `https://api.linkedin.com` (REST API) |
//! | `/threads/web` | `https://threads.com` (the Authorization Window) |
//! | `/threads/graph` | `https://graph.threads.net` (tokens and the Threads API) |
//! | `/dns` | a DNS-over-HTTPS resolver the tests control (Bluesky handles' TXT records) |
//! | `/mastodon` | one Mastodon server (its OAuth and API), at a path as a server may be |
//! | `/_sandbox` | control and inspection: apps, users, faults, posts, calls, webhooks, clock |
//!
//! Everything random comes from one generator seeded at start, so a run is repeatable.

// Handlers return `Result<_, Response>` so an error is already the platform's answer; the
// size of `Response` in the error arm does not matter in a test server.
#![allow(clippy::result_large_err)]

mod consent;
mod control;
mod dns;
mod faults;
mod linkedin;
mod mastodon;
mod mastodon_spec;
mod meta;
mod meta_spec;
pub mod oauth1;
pub mod spec;
mod state;
mod threads;
mod webhooks;
mod x;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use control::dev;
pub use state::{Call, Grant, GrantKind, Platform, Post, SandboxConfig, Shared, TimeSource};
pub use x::alt_text as x_alt_text;

/// A running sandbox.
pub struct Running {
    pub url: String,
    pub state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every simulator and the control plane on one router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .merge(x::routes())
        .merge(meta::routes())
        .merge(linkedin::routes())
        .merge(threads::routes())
        .merge(mastodon::routes())
        .merge(dns::routes())
        .merge(control::routes())
        .merge(webhooks::routes())
        .merge(consent::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), spec::check_x))
        .layer(axum::middleware::from_fn_with_state(state.clone(), mastodon_spec::check))
        .layer(axum::middleware::from_fn_with_state(state.clone(), faults::inject))
        .layer(axum::middleware::from_fn_with_state(state.clone(), state::record_call))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> (axum::http::StatusCode, String) {
    (axum::http::StatusCode::NOT_FOUND, format!("the sandbox has no route {}", uri.path()))
}

/// Serves the sandbox on `addr` (loopback; port 0 picks one) until the returned handle is dropped.
pub async fn start(addr: SocketAddr, config: SandboxConfig) -> std::io::Result<Running> {
    assert!(addr.ip().is_loopback(), "the sandbox binds loopback only");
    // reqwest is built without a default TLS provider in this workspace; ring is the one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // X's OpenAPI document and twitter-text's URL patterns are compiled before the first call,
    // never during one: a call that paid for them could outlast its client's timeout (about a
    // second and a tenth of one in a debug build; once per process).
    let warm = || {
        spec::warm();
        meta_spec::warm();
        mastodon_spec::warm();
        herald_x_text::urls::warm();
    };
    tokio::task::spawn_blocking(warm).await.map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let url = format!("http://{local}");
    let state: Shared = Arc::new(state::Sandbox::new(config, url.clone()));
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Ok(Running { url, state, task })
}
