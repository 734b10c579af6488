//! The `retries` Lambda function: consumes the SQS work queue (deferred and failed publish
//! attempts, token refresh sweeps, outbound deliveries) and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald::startup::{Function, RETRIES_BATCH_CONCURRENCY};
use herald::worker::Worker;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = herald::startup::init(Function::Retries).await?;
    let app = herald::app::App::new(config, &aws, Arc::new(herald::SystemClock));
    let worker = Worker::new(app, RETRIES_BATCH_CONCURRENCY);
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Lambda's deadline (milliseconds since the epoch) as an instant of this process.
        let left = event.context.deadline.saturating_sub(now_millis());
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(left);
        Ok::<SqsBatchResponse, Error>(worker.handle_batch_until(event.payload, Some(deadline)).await)
    }))
    .await
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
