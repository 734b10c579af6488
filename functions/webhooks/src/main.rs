//! The `webhooks` Lambda function: platform webhooks (behind a Lambda function URL).
//! Everything but the wiring lives in the shared crate (`herald::http`).

use herald::http::{self, AppState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (config, aws) = herald::startup::init(herald::startup::Function::Webhooks).await?;
    let state = AppState::new(config, &aws, std::sync::Arc::new(herald::SystemClock));
    // Not `Send`: awaited on the main task, never spawned.
    lambda_http::run(http::finish(http::webhooks_routes(), state)).await
}
