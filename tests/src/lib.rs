//! Test support: the local AWS emulation (moto, once per test binary) and fresh, isolated
//! resources per test, so tests run in parallel without seeing each other's data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use herald::aws::AwsClients;
use herald::bootstrap::{Resources, bootstrap};
use herald::clock::SharedClock;
use herald::config::{AwsSettings, Config, CryptoSettings};
use herald::local::{Launcher, LocalAws};
use herald::schema::ResourceNames;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The moto servers for this test binary, started on first use on free loopback ports. They
/// live as long as the process; `--exit-with-parent` stops them when it exits.
pub fn local_aws() -> AwsSettings {
    static AWS: OnceLock<Result<LocalAws, String>> = OnceLock::new();
    AWS.get_or_init(|| LocalAws::start(&Launcher::in_repo(&repo_root()), 0, 0).map_err(|e| e.to_string()))
        .as_ref()
        .map(LocalAws::settings)
        .unwrap_or_else(|e| panic!("cannot start the AWS emulation: {e}"))
}

/// One test's own table, KMS key and queues in the shared emulation.
pub struct TestEnv {
    pub aws: AwsClients,
    pub settings: AwsSettings,
    pub resources: Resources,
    pub names: ResourceNames,
}

impl TestEnv {
    /// Bootstraps a fresh, uniquely named set of resources.
    pub async fn fresh() -> Self {
        let settings = tokio::task::spawn_blocking(local_aws).await.expect("emulation start does not panic");
        let aws = AwsClients::from_sdk_config(&herald::local::sdk_config(&settings).await, &settings);
        let suffix: [u8; 6] = herald::domain::random_bytes();
        let names = ResourceNames::with_prefix(&format!("t{}", hex::encode(suffix)));
        let resources = bootstrap(&aws, &names).await.unwrap_or_else(|e| panic!("bootstrap failed: {e}"));
        Self { aws, settings, resources, names }
    }

    /// Configuration for Herald's functions against this environment.
    pub fn config(&self) -> Config {
        Config {
            aws: self.settings.clone(),
            table: self.resources.table.clone(),
            crypto: CryptoSettings {
                key_id: self.resources.key_id.clone(),
                cache_ttl: Duration::from_secs(300),
                cache_capacity: 1024,
                max_uses_per_key: 1000,
            },
            queue_url: self.resources.work_queue_url.clone(),
            public_url: "http://127.0.0.1:3000".parse().expect("static URL"),
            max_body_bytes: 64 * 1024,
            platforms: herald::config::PlatformEndpoints::production(),
        }
    }

    /// Every attribute of a queue (counts, ARN, redrive policy, timeouts).
    pub async fn queue_attributes(&self, url: &str) -> HashMap<QueueAttributeName, String> {
        self.aws
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("GetQueueAttributes succeeds")
            .attributes
            .unwrap_or_default()
    }

    pub fn system_clock() -> SharedClock {
        Arc::new(herald::SystemClock)
    }
}
