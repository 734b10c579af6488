//! Herald's common crate: everything the four Lambda functions and the local runner share.
//!
//! Each function binary in `functions/` is a thin `main` that reads [`config::Config`], builds
//! the AWS clients once per cold start ([`aws::AwsClients`]) and the services ([`app::App`]), and
//! hands a router ([`http`]) or a batch handler ([`worker`]) to the Lambda runtime.
//!
//! # Layout
//!
//! Each module below sits on one floor and imports only from its own floor and the floors below
//! it, and no imports go round in a circle: `infra/check_layers.py` reads this table and fails
//! on an import that climbs, a circle, or a module missing from it. (Unit tests may import
//! anything.)
//!
//! | floor | modules | what they are |
//! |---|---|---|
//! | 7 entry | `http`, `worker` | the functions' handlers: HTTP routes, extractors and problem answers; what each queued job means |
//! | 6 root | `app` | the composition root: builds every service once and hands each use case its share |
//! | 5 wiring | `config`, `secrets`, `startup`, `bootstrap`, `local` | settings gathered from each module's own types; cold start; local resources |
//! | 4 use cases | `posts`, `connections`, `sweep`, `webhooks`, `verify` | submit and attempt posts; connect, disconnect and revoke accounts; the sweep's shard jobs; platform webhooks in, tenant webhooks out; an operator's contract check against a platform |
//! | 3 services | `tokens`, `events`, `ratelimit` | keeping grants usable; recording an event and announcing it; budgets before each call |
//! | 2 adapters | `store`, `queue`, `platforms` | DynamoDB items; SQS jobs, delays and dead letters; each platform's API |
//! | 1 primitives | `crypto`, `egress` | KMS envelope sealing; requests to URLs a tenant supplied |
//! | 0 foundations | `domain`, `clock`, `schema`, `telemetry`, `aws`, `tls` | ids, records and secret types; time; the table's shape; logs; AWS clients; TLS |
//!
//! So the store never enqueues (recording an event and announcing it are [`events`]' two
//! steps), the queue is transport only (the retries dispatcher is [`worker`]), settings types
//! live with the module that owns them, and a use case receives only the services it uses.

pub mod app;
pub mod aws;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod domain;
pub mod egress;
pub mod events;
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
pub mod sweep;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod verify;
pub mod webhooks;
pub mod worker;

/// An error for the edges (CLI, bootstrap, Lambda entry points), where a message is all anyone needs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use clock::{Clock, SystemClock};
pub use config::Config;
