//! AWS clients, built once per cold start and shared by every invocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

use crate::config::AwsSettings;

/// The three clients Herald uses. Cloning is cheap (they are reference counted).
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub sqs: aws_sdk_sqs::Client,
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
        Self::build(sdk, settings, None)
    }

    /// As [`from_sdk_config`](Self::from_sdk_config), counting every call per service (for the
    /// benchmarks' calls-per-post figures).
    pub fn counted(sdk: &SdkConfig, settings: &AwsSettings, counts: Arc<CallCounts>) -> Self {
        Self::build(sdk, settings, Some(counts))
    }

    fn build(sdk: &SdkConfig, settings: &AwsSettings, counts: Option<Arc<CallCounts>>) -> Self {
        let counter = |service: Service| counts.clone().map(|counts| Counting { counts, service });
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(endpoint) = &settings.dynamodb_endpoint {
            dynamodb = dynamodb.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        }
        let mut kms = aws_sdk_kms::config::Builder::from(sdk);
        let mut sqs = aws_sdk_sqs::config::Builder::from(sdk);
        if let Some(c) = counter(Service::DynamoDb) {
            dynamodb = dynamodb.interceptor(c);
        }
        if let Some(c) = counter(Service::Kms) {
            kms = kms.interceptor(c);
        }
        if let Some(c) = counter(Service::Sqs) {
            sqs = sqs.interceptor(c);
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
        }
    }
}

/// AWS calls made, per service.
#[derive(Debug, Default)]
pub struct CallCounts {
    pub dynamodb: AtomicU64,
    pub kms: AtomicU64,
    pub sqs: AtomicU64,
}

impl CallCounts {
    /// (DynamoDB, KMS, SQS) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (self.dynamodb.load(Ordering::Relaxed), self.kms.load(Ordering::Relaxed), self.sqs.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Clone, Copy)]
enum Service {
    DynamoDb,
    Kms,
    Sqs,
}

#[derive(Debug)]
struct Counting {
    counts: Arc<CallCounts>,
    service: Service,
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "herald-call-counter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let counter = match self.service {
            Service::DynamoDb => &self.counts.dynamodb,
            Service::Kms => &self.counts.kms,
            Service::Sqs => &self.counts.sqs,
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
