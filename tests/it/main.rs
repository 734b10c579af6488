//! Herald's integration tests: real SDK calls against moto (DynamoDB single-threaded, KMS, SQS),
//! one fresh set of resources per test. One binary, so the emulation starts once.

mod api;
mod aws_faults;
mod bluesky;
mod chaos;
mod connect;
mod crash;
mod crypto;
mod dead_letters;
mod deliveries;
mod lambda;
mod manage;
mod mastodon;
mod openapi;
mod posts;
mod queue;
mod reconcile;
mod secrets;
mod security;
mod sweep;
mod template;
mod threads;
mod token_store;
mod tokens;
mod verify;
mod webhooks;
