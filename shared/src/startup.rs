//! The cold-start sequence every function shares: logs, configuration, AWS clients.

use crate::BoxError;
use crate::aws::AwsClients;
use crate::config::Config;

/// Sets up JSON logs, reads the configuration (a missing variable is logged by name and ends
/// the cold start) and builds the AWS clients once.
pub async fn init() -> Result<(Config, AwsClients), BoxError> {
    crate::telemetry::init();
    let config = Config::from_process_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let aws = AwsClients::load(&config.aws).await;
    Ok((config, aws))
}
