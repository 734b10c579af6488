//! The `posts` Lambda function: post submission and status.
//! Everything but the wiring lives in the shared crate (`herald::http`).

use herald::http::{self, AppState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (config, aws) = herald::startup::init(herald::startup::Function::Posts).await?;
    let state = AppState::new(config, &aws, std::sync::Arc::new(herald::SystemClock));
    // Not `Send`: awaited on the main task, never spawned.
    lambda_http::run(http::finish(http::posts_routes(), state)).await
}
