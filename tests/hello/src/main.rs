//! Echoes its event: the smallest `lambda_runtime` function, built with the same profile and
//! dependency versions as Herald's functions, so their init times can be read as a ratio.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}
