//! The `retries` Lambda function: consumes the SQS work queue (deferred and failed publish
//! attempts, token refresh sweeps, outbound deliveries) and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use herald::queue::Worker;
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// Messages of one batch processed at once; a batch holds at most 10 (the event source default).
const BATCH_CONCURRENCY: usize = 10;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = herald::startup::init(BATCH_CONCURRENCY, true).await?;
    let app = herald::app::App::new(config, &aws, Arc::new(herald::SystemClock));
    let worker = Worker::new(app, BATCH_CONCURRENCY);
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(worker.handle_batch(event.payload).await)
    }))
    .await
}
