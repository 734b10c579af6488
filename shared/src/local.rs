//! The local AWS emulation: moto servers on loopback, started and stopped with their owner.
//!
//! Used by `herald dev` and by the test kit. The processes are killed when [`LocalAws`] is
//! dropped, and exit by themselves if their parent dies (`--exit-with-parent`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use crate::BoxError;
use crate::config::AwsSettings;

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
        let python = std::env::var_os("HERALD_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root.join(".venv/bin/python"));
        Self {
            python,
            script: repo_root.join("infra/moto_server.py"),
        }
    }
}

/// One running moto server.
#[derive(Debug)]
pub struct Emulator {
    _child: Child,
    pub url: Url,
}

impl Emulator {
    pub async fn start(
        launcher: &Launcher,
        port: u16,
        single_threaded: bool,
    ) -> Result<Self, BoxError> {
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
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--exit-with-parent",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if single_threaded {
            command.arg("--single-threaded");
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout from the emulator")?;
        let mut lines = BufReader::new(stdout).lines();
        // Importing moto takes a few seconds on a cold machine.
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line.strip_prefix("READY ") {
                    return Ok::<_, std::io::Error>(port.trim().parse::<u16>().ok());
                }
            }
            Ok(None)
        })
        .await;
        let port = match ready {
            Ok(Ok(Some(port))) => port,
            Ok(Ok(None)) | Ok(Err(_)) => {
                return Err("the moto server exited before it was ready".into());
            }
            Err(_) => return Err("the moto server did not become ready within 120 s".into()),
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            _child: child,
            url: Url::parse(&format!("http://127.0.0.1:{port}"))?,
        })
    }
}

/// DynamoDB on a single-threaded moto (atomic conditional updates), KMS and SQS on a threaded one.
#[derive(Debug)]
pub struct LocalAws {
    pub dynamodb: Emulator,
    pub services: Emulator,
}

impl LocalAws {
    /// Starts both servers; port 0 picks free ports.
    pub async fn start(
        launcher: &Launcher,
        dynamodb_port: u16,
        services_port: u16,
    ) -> Result<Self, BoxError> {
        let (dynamodb, services) = tokio::try_join!(
            Emulator::start(launcher, dynamodb_port, true),
            Emulator::start(launcher, services_port, false),
        )?;
        Ok(Self { dynamodb, services })
    }

    pub fn settings(&self) -> AwsSettings {
        AwsSettings {
            region: Some(LOCAL_REGION.to_owned()),
            endpoint: Some(self.services.url.clone()),
            dynamodb_endpoint: Some(self.dynamodb.url.clone()),
        }
    }
}

/// SDK configuration for the emulation: static throwaway credentials and the local region, so
/// nothing depends on the caller's environment.
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let region = settings
        .region
        .clone()
        .unwrap_or_else(|| LOCAL_REGION.to_owned());
    crate::aws::loader(settings)
        .region(Region::new(region))
        .credentials_provider(Credentials::new(
            LOCAL_ACCESS_KEY,
            "herald-local-secret",
            None,
            None,
            "herald-local",
        ))
        .load()
        .await
}
