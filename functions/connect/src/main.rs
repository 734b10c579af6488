//! The `connect` Lambda function: connect links, OAuth redirects and callbacks, tenant settings and accounts.
//! Everything but the wiring lives in the shared crate (`herald::http`).

use herald::http::{self, AppState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (config, aws) = herald::startup::init(herald::startup::Function::Connect).await?;
    let state = AppState::new(config, &aws, std::sync::Arc::new(herald::SystemClock));
    // Not `Send`: awaited on the main task, never spawned.
    lambda_http::run(http::finish(http::connect_routes(), state)).await
}
