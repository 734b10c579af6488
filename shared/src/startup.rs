//! The cold-start sequence every function shares: logs, configuration, AWS clients, and the
//! connections the first invocation will need.

use std::time::Duration;

use crate::BoxError;
use crate::aws::AwsClients;
use crate::config::AppSecretIds;
use crate::config::Config;

/// How long the cold start waits for its warm-up calls; past it, the first invocation connects.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// One of Herald's Lambda functions, as its cold start needs to know it: what it calls at once,
/// whether it uses KMS, which platform apps' secrets it reads. The template's roles allow what
/// this says (the roles check in `./infra/dev test` compares both with the calls recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Connect,
    Posts,
    Webhooks,
    Retries,
}

/// Messages of one batch the `retries` function processes at once; a batch holds at most 10
/// (the event source's batch size).
pub const RETRIES_BATCH_CONCURRENCY: usize = 10;

impl Function {
    pub const ALL: [Function; 4] = [Function::Connect, Function::Posts, Function::Webhooks, Function::Retries];

    /// The binary's name (`functions/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Function::Connect => "connect",
            Function::Posts => "posts",
            Function::Webhooks => "webhooks",
            Function::Retries => "retries",
        }
    }

    /// DynamoDB connections to open at cold start: as many as its invocations use at once.
    pub fn concurrency(self) -> usize {
        if self == Function::Retries { RETRIES_BATCH_CONCURRENCY } else { 1 }
    }

    /// Whether it opens or seals tokens (`webhooks` does not, and may not call KMS).
    pub fn uses_kms(self) -> bool {
        self != Function::Webhooks
    }

    /// The platform apps' secrets it reads, out of those the configuration names: `posts` only
    /// signs OAuth 1.0a publishes (X); `retries` refreshes X and LinkedIn grants (Meta's Page
    /// tokens are not refreshed); `connect` and `webhooks` need every app.
    pub fn secrets(self, named: &AppSecretIds) -> AppSecretIds {
        match self {
            Function::Connect | Function::Webhooks => named.clone(),
            Function::Posts => AppSecretIds { x: named.x.clone(), ..AppSecretIds::default() },
            // Threads' long-lived tokens refresh with the token alone (`th_refresh_token`).
            Function::Retries => AppSecretIds { meta: None, threads: None, ..named.clone() },
        }
    }
}

/// Sets up JSON logs, reads the configuration (a missing variable is logged by name and ends
/// the cold start), builds the AWS clients once and [`prepare`]s them.
pub async fn init(function: Function) -> Result<(Config, AwsClients), BoxError> {
    crate::telemetry::init();
    let mut config =
        Config::from_process_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let aws = AwsClients::load(&config.aws).await;
    prepare(function, &aws, &mut config).await?;
    Ok((config, aws))
}

/// Reads the platform apps' secrets `function` uses into `config.apps` ([`crate::secrets`]; a
/// failure ends the cold start) and meanwhile [`warm_up`]s the clients.
pub async fn prepare(function: Function, aws: &AwsClients, config: &mut Config) -> Result<(), BoxError> {
    let mut apps = config.apps.clone();
    let ids = function.secrets(&config.app_secrets);
    let (secrets, ()) = futures_util::future::join(
        crate::secrets::load(&aws.secrets, &ids, &mut apps),
        warm_up(aws, config, function.concurrency(), function.uses_kms()),
    )
    .await;
    secrets.inspect_err(|e| tracing::error!(error = %e, "the platform apps' secrets cannot be read"))?;
    config.apps = apps;
    Ok(())
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
