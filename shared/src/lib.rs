//! Herald's common crate: everything the four Lambda functions and the local runner share.
//!
//! Each function binary in `functions/` is a thin `main` that reads [`config::Config`], builds
//! the AWS clients once per cold start ([`aws::AwsClients`]), and hands a router
//! ([`http`]) or a batch handler ([`queue`]) to the Lambda runtime.

pub mod app;
pub mod aws;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod egress;
pub mod http;
pub mod local;
pub mod platforms;
pub mod posts;
pub mod queue;
pub mod ratelimit;
pub mod schema;
pub mod secrets;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod webhooks;

/// An error for the edges (CLI, bootstrap, Lambda entry points), where a message is all anyone needs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use clock::{Clock, SystemClock};
pub use config::Config;
