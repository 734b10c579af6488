//! Typed configuration, read from environment variables only (a Lambda zip has no config files).
//!
//! Every variable is documented in `docs/configuration.md`. A missing or malformed variable stops
//! the cold start with an error that names it.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::aws::AwsSettings;
use crate::crypto::CryptoSettings;
use crate::platforms::settings::{
    DEFAULT_LINKEDIN_VERSION, DEFAULT_META_GRAPH_VERSION, PlatformApps, PlatformEndpoints,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A snapshot of the environment. Tests build one from pairs instead of mutating the process.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// This environment with `defaults` for the variables it leaves unset (set ones win).
    pub fn or<K: Into<String>, V: Into<String>>(mut self, defaults: impl IntoIterator<Item = (K, V)>) -> Self {
        for (name, value) in defaults {
            let name = name.into();
            if self.optional(&name).is_none() {
                self.0.insert(name, value.into());
            }
        }
        self
    }

    /// A variable's value; empty counts as unset.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    pub fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string() }),
        }
    }

    pub fn url(&self, name: &'static str) -> Result<Option<Url>, ConfigError> {
        self.optional(name)
            .map(|raw| {
                let url = Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid { name, reason: e.to_string() })?;
                match url.scheme() {
                    "http" | "https" => Ok(url),
                    other => Err(ConfigError::Invalid { name, reason: format!("scheme {other:?} is not http(s)") }),
                }
            })
            .transpose()
    }
}

/// The environment variable naming each platform app's secret (an ARN or a name).
pub const X_SECRET_ID: &str = "HERALD_X_SECRET_ID";
pub const META_SECRET_ID: &str = "HERALD_META_SECRET_ID";
pub const LINKEDIN_SECRET_ID: &str = "HERALD_LINKEDIN_SECRET_ID";
pub const THREADS_SECRET_ID: &str = "HERALD_THREADS_SECRET_ID";

/// Which secrets a function reads: the template sets only those its code uses, and its role may
/// read only those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSecretIds {
    pub x: Option<String>,
    pub meta: Option<String>,
    pub linkedin: Option<String>,
    pub threads: Option<String>,
}

/// `HERALD_MAX_BODY_BYTES`'s default: the largest request body read.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// `HERALD_FIRST_ATTEMPT_SECONDS`'s default: the posts function's first attempt (below the HTTP
/// API's 30 s).
pub const DEFAULT_FIRST_ATTEMPT: Duration = Duration::from_secs(20);

/// `HERALD_*_URL`, the API versions and the platform timeout, over the production defaults.
fn platform_endpoints(env: &Env) -> Result<PlatformEndpoints, ConfigError> {
    let defaults = PlatformEndpoints::production();
    let meta_graph_version =
        env.optional("HERALD_META_GRAPH_VERSION").map(str::trim).unwrap_or(DEFAULT_META_GRAPH_VERSION).to_owned();
    let valid_graph =
        meta_graph_version.strip_prefix('v').and_then(|v| v.split_once('.')).is_some_and(|(major, minor)| {
            !major.is_empty() && !minor.is_empty() && (major.to_owned() + minor).bytes().all(|b| b.is_ascii_digit())
        });
    if !valid_graph {
        return Err(ConfigError::Invalid {
            name: "HERALD_META_GRAPH_VERSION",
            reason: "expected vNN.N, e.g. v26.0".into(),
        });
    }
    let linkedin_version =
        env.optional("HERALD_LINKEDIN_VERSION").map(str::trim).unwrap_or(DEFAULT_LINKEDIN_VERSION).to_owned();
    if linkedin_version.len() != 6 || !linkedin_version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::Invalid {
            name: "HERALD_LINKEDIN_VERSION",
            reason: "expected YYYYMM, e.g. 202609".into(),
        });
    }
    Ok(PlatformEndpoints {
        x_api: env.url("HERALD_X_API_URL")?.unwrap_or(defaults.x_api),
        x_web: env.url("HERALD_X_WEB_URL")?.unwrap_or(defaults.x_web),
        meta_graph: env.url("HERALD_META_GRAPH_URL")?.unwrap_or(defaults.meta_graph),
        meta_web: env.url("HERALD_META_WEB_URL")?.unwrap_or(defaults.meta_web),
        meta_graph_version,
        linkedin_api: env.url("HERALD_LINKEDIN_API_URL")?.unwrap_or(defaults.linkedin_api),
        linkedin_oauth: env.url("HERALD_LINKEDIN_OAUTH_URL")?.unwrap_or(defaults.linkedin_oauth),
        linkedin_version,
        bluesky_service: env.url("HERALD_BLUESKY_SERVICE_URL")?.unwrap_or(defaults.bluesky_service),
        bluesky_plc: env.url("HERALD_BLUESKY_PLC_URL")?.unwrap_or(defaults.bluesky_plc),
        bluesky_dns: env.url("HERALD_BLUESKY_DNS_URL")?.unwrap_or(defaults.bluesky_dns),
        threads_graph: env.url("HERALD_THREADS_GRAPH_URL")?.unwrap_or(defaults.threads_graph),
        threads_web: env.url("HERALD_THREADS_WEB_URL")?.unwrap_or(defaults.threads_web),
        timeout: Duration::from_secs(env.parsed("HERALD_PLATFORM_TIMEOUT_SECONDS", 10u64)?.max(1)),
    })
}

/// Where platform apps were configured before they moved to Secrets Manager: refused by name, so
/// an old deployment's configuration fails its cold start instead of running unconfigured.
const RETIRED_APP_VARIABLES: [&str; 9] = [
    "HERALD_X_CLIENT_ID",
    "HERALD_X_CONSUMER_KEY",
    "HERALD_META_APP_ID",
    "HERALD_LINKEDIN_CLIENT_ID",
    "HERALD_X_CLIENT_SECRET",
    "HERALD_X_CONSUMER_SECRET",
    "HERALD_META_APP_SECRET",
    "HERALD_LINKEDIN_CLIENT_SECRET",
    "HERALD_META_WEBHOOK_VERIFY_TOKEN",
];

/// The whole configuration of a Herald function.
#[derive(Debug, Clone)]
pub struct Config {
    pub aws: AwsSettings,
    /// `HERALD_TABLE`: the DynamoDB table.
    pub table: String,
    pub crypto: CryptoSettings,
    /// `HERALD_QUEUE_URL`: the work queue the `retries` function consumes.
    pub queue_url: String,
    /// `HERALD_DLQ_URL`: the work queue's dead-letter queue; jobs whose attempts ran out are sent
    /// there with their history (`herald dlq list|redrive`).
    pub dead_letter_queue_url: String,
    /// `HERALD_PUBLIC_URL` (optional): the base URL users' browsers and the platforms reach Herald
    /// on; connect links and OAuth callback URLs are built from it. Unset: each request's own
    /// `Host` and `X-Forwarded-Proto` (on AWS, the HTTP API's URL), see [`crate::http::base_url`].
    pub public_url: Option<Url>,
    /// `HERALD_MAX_BODY_BYTES` (default 65536): larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// `HERALD_FIRST_ATTEMPT_SECONDS` (default 20): the posts function makes no platform call
    /// that could end later than this after the submission began; the rest is queued (the HTTP
    /// API gives up at 30 s).
    pub first_attempt_budget: Duration,
    pub platforms: PlatformEndpoints,
    /// Filled from [`Config::app_secrets`] at cold start ([`crate::startup::init`]).
    pub apps: PlatformApps,
    /// `HERALD_X_SECRET_ID`, `HERALD_META_SECRET_ID`, `HERALD_LINKEDIN_SECRET_ID` (each optional):
    /// the Secrets Manager secrets holding the platform apps' credentials ([`crate::secrets`]).
    pub app_secrets: AppSecretIds,
    /// `HERALD_RATE_LIMITS`: JSON list of budgets replacing the defaults of the same platform,
    /// endpoint and scope, e.g. `[{"platform":"x","endpoint":"publish","scope":"app","limit":1667,
    /// "window":{"type":"fixed","seconds":86400}}]` (see `herald::ratelimit`).
    pub rate_limits: Vec<crate::ratelimit::Budget>,
    /// How tenant-supplied URLs are reached (`HERALD_ALLOW_LOOPBACK_URLS`; see `herald::egress`).
    pub egress: crate::egress::EgressSettings,
    /// How much one sweep job reads ([`crate::sweep`]; not configurable, tests shrink it).
    pub sweep: crate::sweep::SweepSettings,
}

impl Config {
    pub fn from_process_env() -> Result<Self, ConfigError> {
        Self::from_env(&Env::from_process())
    }

    /// Only the AWS settings, for commands that need no more.
    pub fn aws_from_env(env: &Env) -> Result<AwsSettings, ConfigError> {
        Ok(AwsSettings {
            region: env.optional("AWS_REGION").map(str::to_owned),
            endpoint: env.url("AWS_ENDPOINT_URL")?,
            dynamodb_endpoint: env.url("AWS_ENDPOINT_URL_DYNAMODB")?,
            native_roots: env.parsed("HERALD_AWS_NATIVE_ROOTS", false)?,
            lambda_credentials: env.optional("AWS_LAMBDA_FUNCTION_NAME").is_some()
                && env.optional("AWS_ACCESS_KEY_ID").is_some_and(|k| !k.trim().is_empty()),
        })
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let aws = Self::aws_from_env(env)?;
        if let Some(name) = RETIRED_APP_VARIABLES.into_iter().find(|name| env.optional(name).is_some()) {
            return Err(ConfigError::Invalid {
                name,
                reason: "platform apps are read from Secrets Manager, not the environment (docs/configuration.md)"
                    .into(),
            });
        }
        let secret_id = |name| env.optional(name).map(|v| v.trim().to_owned());
        let crypto = CryptoSettings {
            key_id: env.required("HERALD_KMS_KEY_ID")?.trim().to_owned(),
            cache_ttl: Duration::from_secs(
                env.parsed("HERALD_DATA_KEY_CACHE_SECONDS", CryptoSettings::DEFAULT_CACHE_SECONDS)?,
            ),
            cache_capacity: env.parsed("HERALD_DATA_KEY_CACHE_ENTRIES", CryptoSettings::DEFAULT_CACHE_ENTRIES)?.max(1),
            max_uses_per_key: env.parsed("HERALD_DATA_KEY_MAX_USES", CryptoSettings::DEFAULT_MAX_USES)?.max(1),
        };
        Ok(Self {
            aws,
            table: env.required("HERALD_TABLE")?.trim().to_owned(),
            crypto,
            queue_url: env.required("HERALD_QUEUE_URL")?.trim().to_owned(),
            dead_letter_queue_url: env.required("HERALD_DLQ_URL")?.trim().to_owned(),
            public_url: env.url("HERALD_PUBLIC_URL")?,
            max_body_bytes: env.parsed("HERALD_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            first_attempt_budget: Duration::from_secs(
                env.parsed("HERALD_FIRST_ATTEMPT_SECONDS", DEFAULT_FIRST_ATTEMPT.as_secs())?,
            ),
            platforms: platform_endpoints(env)?,
            apps: PlatformApps {
                linkedin_organizations: env.parsed("HERALD_LINKEDIN_ORGANIZATIONS", false)?,
                ..PlatformApps::default()
            },
            app_secrets: AppSecretIds {
                x: secret_id(X_SECRET_ID),
                meta: secret_id(META_SECRET_ID),
                linkedin: secret_id(LINKEDIN_SECRET_ID),
                threads: secret_id(THREADS_SECRET_ID),
            },
            rate_limits: match env.optional("HERALD_RATE_LIMITS") {
                None => Vec::new(),
                Some(raw) => serde_json::from_str(raw)
                    .map_err(|e| ConfigError::Invalid { name: "HERALD_RATE_LIMITS", reason: e.to_string() })?,
            },
            egress: crate::egress::EgressSettings {
                allow_loopback: env.parsed("HERALD_ALLOW_LOOPBACK_URLS", false)?,
                ..Default::default()
            },
            sweep: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_credentials_are_read_from_the_environment_only_on_lambda() {
        let lambda = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base();
            pairs.extend_from_slice(extra);
            Config::from_env(&Env::from_pairs(pairs)).unwrap().aws.lambda_credentials
        };
        assert!(lambda(&[("AWS_LAMBDA_FUNCTION_NAME", "posts"), ("AWS_ACCESS_KEY_ID", "ASIA…")]));
        assert!(!lambda(&[("AWS_LAMBDA_FUNCTION_NAME", "posts")]), "no key: the default chain");
        assert!(!lambda(&[("AWS_ACCESS_KEY_ID", "AKIA…")]), "off Lambda: the default chain");
        assert!(!lambda(&[("AWS_LAMBDA_FUNCTION_NAME", "posts"), ("AWS_ACCESS_KEY_ID", " ")]));
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("HERALD_TABLE", "herald"),
            ("HERALD_KMS_KEY_ID", "alias/herald-tokens"),
            ("HERALD_QUEUE_URL", "http://127.0.0.1:1/000000000000/herald-work"),
            ("HERALD_DLQ_URL", "http://127.0.0.1:1/000000000000/herald-work-dlq"),
        ]
    }

    #[test]
    fn reads_required_and_defaults() {
        let cfg = Config::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(cfg.table, "herald");
        assert_eq!(cfg.crypto.cache_ttl, Duration::from_secs(300));
        assert_eq!(cfg.max_body_bytes, 65536);
        assert_eq!(cfg.aws, AwsSettings::default());
    }

    #[test]
    fn names_each_missing_variable() {
        for missing in ["HERALD_TABLE", "HERALD_KMS_KEY_ID", "HERALD_QUEUE_URL", "HERALD_DLQ_URL"] {
            let env = Env::from_pairs(base().into_iter().filter(|(k, _)| *k != missing));
            let err = Config::from_env(&env).unwrap_err();
            assert_eq!(err, ConfigError::Missing(missing));
            assert!(err.to_string().contains(missing));
        }
    }

    #[test]
    fn empty_counts_as_missing() {
        let mut pairs = base();
        pairs[0].1 = "  ";
        assert_eq!(Config::from_env(&Env::from_pairs(pairs)).unwrap_err(), ConfigError::Missing("HERALD_TABLE"));
    }

    #[test]
    fn platform_endpoints_default_to_production_and_can_point_at_the_sandbox() {
        let cfg = Config::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(cfg.platforms, PlatformEndpoints::production());
        assert_eq!(cfg.platforms.x_api.as_str(), "https://api.x.com/");

        let mut pairs = base();
        pairs.extend([("HERALD_X_API_URL", "http://127.0.0.1:4000/x/api"), ("HERALD_META_GRAPH_VERSION", "v25.0")]);
        let cfg = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        assert_eq!(cfg.platforms.x_api.as_str(), "http://127.0.0.1:4000/x/api");
        assert_eq!(cfg.platforms.meta_graph_version, "v25.0");

        let sandbox = PlatformEndpoints::sandbox("http://127.0.0.1:4000/").unwrap();
        assert_eq!(sandbox.meta_graph.as_str(), "http://127.0.0.1:4000/meta/graph");
        assert_eq!(sandbox.linkedin_oauth.as_str(), "http://127.0.0.1:4000/linkedin/www");

        for (name, value) in [
            ("HERALD_META_GRAPH_VERSION", "26"),
            ("HERALD_META_GRAPH_VERSION", "vX.0"),
            ("HERALD_LINKEDIN_VERSION", "2026-09"),
        ] {
            let mut pairs = base();
            pairs.push((name, value));
            let err = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: n, .. } if n == name), "{err}");
        }
    }

    #[test]
    fn platform_secrets_are_named_not_given() {
        let mut pairs = base();
        pairs.extend([("HERALD_X_SECRET_ID", "arn:aws:secretsmanager:eu-west-1:1:secret:herald/x-AbCdEf")]);
        let cfg = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        assert_eq!(cfg.app_secrets.x.as_deref(), Some("arn:aws:secretsmanager:eu-west-1:1:secret:herald/x-AbCdEf"));
        assert!(cfg.app_secrets.meta.is_none() && cfg.apps.x.is_none(), "read at cold start, not here");

        for retired in RETIRED_APP_VARIABLES {
            let mut pairs = base();
            pairs.push((retired, "very-secret-value"));
            let err = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name, .. } if name == retired), "{err}");
            assert!(!err.to_string().contains("very-secret-value"));
        }
    }

    #[test]
    fn malformed_values_are_named() {
        let mut pairs = base();
        pairs.push(("HERALD_MAX_BODY_BYTES", "lots"));
        let err = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "HERALD_MAX_BODY_BYTES", .. }), "{err}");

        let mut pairs = base();
        pairs.push(("AWS_ENDPOINT_URL_DYNAMODB", "ftp://x"));
        let err = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "AWS_ENDPOINT_URL_DYNAMODB", .. }), "{err}");
    }
}
