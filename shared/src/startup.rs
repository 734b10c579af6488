//! The cold-start sequence every function shares: logs, configuration, AWS clients, and the
//! connections the first invocation will need.

use std::time::Duration;

use crate::BoxError;
use crate::aws::AwsClients;
use crate::config::Config;

/// How long the cold start waits for its warm-up calls; past it, the first invocation connects.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// Sets up JSON logs, reads the configuration (a missing variable is logged by name and ends
/// the cold start), builds the AWS clients once and warms them up ([`warm_up`]) with
/// `concurrency` DynamoDB connections: as many as the function's invocations use at once, and
/// a KMS connection when the function uses KMS (`webhooks` does not, and may not call it).
pub async fn init(concurrency: usize, uses_kms: bool) -> Result<(Config, AwsClients), BoxError> {
    crate::telemetry::init();
    let config = Config::from_process_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let aws = AwsClients::load(&config.aws).await;
    warm_up(&aws, &config, concurrency, uses_kms).await;
    Ok((config, aws))
}

/// Opens the DynamoDB and KMS connections (TLS handshakes, credentials, signing) during init, so
/// the first invocation does not pay for them: DynamoDB's `DescribeEndpoints` (free) and KMS's
/// `DescribeKey` on Herald's key (one request per cold start, which also tells at once when the
/// key is not usable; the roles that use the key may `kms:DescribeKey` it). Failures are logged,
/// never fatal: the invocation would connect anyway.
pub async fn warm_up(aws: &AwsClients, config: &Config, concurrency: usize, uses_kms: bool) {
    let dynamodb =
        futures_util::future::join_all((0..concurrency.max(1)).map(|_| aws.dynamodb.describe_endpoints().send()));
    let kms =
        async { if uses_kms { Some(aws.kms.describe_key().key_id(&config.crypto.key_id).send().await) } else { None } };
    match tokio::time::timeout(WARM_UP_TIMEOUT, futures_util::future::join(dynamodb, kms)).await {
        Ok((dynamodb, kms)) => {
            if let Some(Err(e)) = dynamodb.into_iter().find(Result::is_err) {
                tracing::warn!(error = %crate::telemetry::cause_chain(&e), "DynamoDB warm-up failed");
            }
            if let Some(Err(e)) = kms {
                tracing::error!(error = %crate::telemetry::cause_chain(&e), "the KMS key cannot be described; sealing and opening tokens will fail");
            }
        }
        Err(_) => tracing::warn!("the warm-up calls did not finish in time; the first invocation connects"),
    }
}
