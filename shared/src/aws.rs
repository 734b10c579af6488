//! AWS clients, built once per cold start and shared by every invocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::Url;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
pub use aws_sdk_dynamodb::config::{ConfigBag, Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// Where the AWS SDK sends its calls. Region and credentials come from the SDK's own standard
/// chain (on Lambda: the function's role); the endpoints are only set for the local emulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// `AWS_REGION`: optional here because the SDK also reads profiles; required in practice.
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL`: one endpoint for every service (the local emulation).
    pub endpoint: Option<Url>,
    /// `AWS_ENDPOINT_URL_DYNAMODB`: DynamoDB runs on its own single-threaded emulator locally,
    /// because the threaded one does not make conditional updates atomic.
    pub dynamodb_endpoint: Option<Url>,
    /// `HERALD_AWS_NATIVE_ROOTS` (default false): trust the system's CA store for AWS endpoints
    /// instead of the Amazon Trust Services roots compiled in (for partitions whose endpoints
    /// chain to other CAs). Loading the system store is most of a cold start's CPU.
    pub native_roots: bool,
    /// On Lambda (`AWS_LAMBDA_FUNCTION_NAME` and `AWS_ACCESS_KEY_ID` set) the function's role
    /// credentials are in the environment: they are read from there directly, without building
    /// the SDK's default provider chain (profiles, web identity with its STS client, containers,
    /// IMDS), which the chain would have passed over anyway.
    pub lambda_credentials: bool,
}

/// The clients Herald uses. Cloning is cheap (they are reference counted).
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Read once per cold start, for the platform apps' credentials ([`crate::secrets`]).
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// The CAs of AWS's service endpoints (Amazon Trust Services), compiled in.
const AWS_ROOTS: &str = include_str!("aws-roots.pem");

/// One HTTPS client for every SDK client: rustls with ring, the only TLS stack compiled in
/// (the SDK's default would add aws-lc-rs; see docs/decisions.md), trusting the Amazon Trust
/// Services roots unless `native_roots`: parsing the system's CA bundle was 80 % of a cold
/// start's instructions (docs/benchmarks.md).
fn http_client(native_roots: bool) -> aws_sdk_dynamodb::config::SharedHttpClient {
    let trust = if native_roots { TrustStore::default() } else { TrustStore::empty().with_pem_certificate(AWS_ROOTS) };
    let context = TlsContext::builder().with_trust_store(trust).build().expect("the compiled-in roots are valid PEM");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// Timeouts short enough that a stuck call fails inside a Lambda's budget and is retried by the
/// SDK's standard retry policy, long enough for DynamoDB/KMS/SQS at p99.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(12))
        .build()
}

pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    loader(settings).load().await
}

/// The SDK configuration loader with Herald's HTTP client, timeouts and endpoints applied;
/// credentials and anything unset come from the SDK's standard chain.
pub(crate) fn loader(settings: &AwsSettings) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client(settings.native_roots))
        .timeout_config(timeouts());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if settings.lambda_credentials {
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    if let Some(endpoint) = &settings.endpoint {
        loader = loader.endpoint_url(endpoint.as_str().trim_end_matches('/'));
    }
    loader
}

impl AwsClients {
    pub async fn load(settings: &AwsSettings) -> Self {
        Self::from_sdk_config(&sdk_config(settings).await, settings)
    }

    pub fn from_sdk_config(sdk: &SdkConfig, settings: &AwsSettings) -> Self {
        Self::build(sdk, settings, Vec::new())
    }

    /// As [`from_sdk_config`](Self::from_sdk_config), counting every call per service (for the
    /// benchmarks' calls-per-post figures).
    pub fn counted(sdk: &SdkConfig, settings: &AwsSettings, counts: Arc<CallCounts>) -> Self {
        Self::build(sdk, settings, vec![counting(counts)])
    }

    /// As [`from_sdk_config`](Self::from_sdk_config), with `interceptors` on every client (the
    /// test kit records each function's calls with one, to check them against its role).
    pub fn intercepted(sdk: &SdkConfig, settings: &AwsSettings, interceptors: Vec<SharedInterceptor>) -> Self {
        Self::build(sdk, settings, interceptors)
    }

    fn build(sdk: &SdkConfig, settings: &AwsSettings, interceptors: Vec<SharedInterceptor>) -> Self {
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(endpoint) = &settings.dynamodb_endpoint {
            dynamodb = dynamodb.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        }
        let mut kms = aws_sdk_kms::config::Builder::from(sdk);
        let mut sqs = aws_sdk_sqs::config::Builder::from(sdk);
        let mut secrets = aws_sdk_secretsmanager::config::Builder::from(sdk);
        for interceptor in interceptors {
            dynamodb.push_interceptor(interceptor.clone());
            kms.push_interceptor(interceptor.clone());
            sqs.push_interceptor(interceptor.clone());
            secrets.push_interceptor(interceptor);
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
        }
    }
}

/// AWS calls made, per service.
#[derive(Debug, Default)]
pub struct CallCounts {
    pub dynamodb: AtomicU64,
    pub kms: AtomicU64,
    pub sqs: AtomicU64,
    pub secrets: AtomicU64,
}

impl CallCounts {
    /// (DynamoDB, KMS, SQS) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (self.dynamodb.load(Ordering::Relaxed), self.kms.load(Ordering::Relaxed), self.sqs.load(Ordering::Relaxed))
    }
}

/// An interceptor counting every call into `counts`, per service.
pub fn counting(counts: Arc<CallCounts>) -> SharedInterceptor {
    SharedInterceptor::new(Counting { counts })
}

/// The operation an interceptor sees: (`DynamoDB`, `GetItem`), as the SDK names them.
pub fn operation(cfg: &ConfigBag) -> Option<(&str, &str)> {
    cfg.load::<Metadata>().map(|m| (m.service(), m.name()))
}

#[derive(Debug)]
struct Counting {
    counts: Arc<CallCounts>,
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "herald-call-counter"
    }

    // Once per operation, and after the operation's own configuration (its `Metadata`) is in
    // `cfg`: a client interceptor's `read_before_execution` runs before that.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let counter = match operation(cfg).map(|(service, _)| service) {
            Some("DynamoDB") => &self.counts.dynamodb,
            Some("KMS") => &self.counts.kms,
            Some("SQS") => &self.counts.sqs,
            _ => &self.counts.secrets,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn the_compiled_in_aws_roots_are_five_valid_certificates() {
        let certs: Vec<_> =
            CertificateDer::pem_slice_iter(super::AWS_ROOTS.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(certs);
        assert_eq!((added, ignored), (5, 0));
    }
}
