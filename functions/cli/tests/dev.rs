//! `herald dev`, as the README's run command starts it: the stack comes up, the printed key
//! reaches a `/v1` route, a job goes through the queue, Ctrl-C stops everything, and no log line
//! carries the API key.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Generous: the first start imports moto from a cold disk.
const STARTUP: Duration = Duration::from_secs(120);

struct Dev {
    child: Child,
    banner: Vec<String>,
    logs: mpsc::Receiver<String>,
}

impl Dev {
    fn start() -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["dev", "--port", "0", "--dynamodb-port", "0", "--aws-port", "0", "--sandbox-port", "0", "--repo"])
            .arg(&repo)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald dev starts");
        let (banner_tx, banner_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = banner_tx.send(line);
            }
        });
        let (log_tx, logs) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let mut banner = Vec::new();
        loop {
            let line = banner_rx.recv_timeout(STARTUP).expect("the banner is printed");
            let done = line.starts_with("Logs follow");
            banner.push(line);
            if done {
                break;
            }
        }
        Self { child, banner, logs }
    }

    fn field(&self, label: &str) -> String {
        let line = self.banner.iter().find(|l| l.trim_start().starts_with(label)).expect(label);
        line.split_whitespace().last().unwrap().to_owned()
    }

    /// `NAME=value` pairs of the printed `export` line, for operator commands.
    fn exports(&self) -> Vec<(String, String)> {
        self.banner
            .iter()
            .flat_map(|l| l.split_whitespace())
            .filter_map(|w| w.split_once('='))
            .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Log lines until one contains `needle` (or the timeout passes).
    fn logs_until(&self, needle: &str, seen: &mut Vec<String>) -> bool {
        while let Ok(line) = self.logs.recv_timeout(Duration::from_secs(60)) {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return true;
            }
        }
        false
    }
}

#[tokio::test]
async fn dev_stack_serves_queues_and_stops_without_logging_the_key() {
    let mut dev = Dev::start();
    let base = dev.field("API (every function):");
    let key = dev.field("Dev API key:");
    assert!(key.starts_with("hk_"), "{key}");

    herald::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let ok = http.get(format!("{base}/v1/tenant")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let tenant: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(tenant["name"], "Development");

    // The platform sandbox runs beside it.
    let sandbox = dev
        .banner
        .iter()
        .find(|l| l.contains("Platform sandbox:"))
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();
    let state: serde_json::Value = http.get(format!("{sandbox}/_sandbox")).send().await.unwrap().json().await.unwrap();
    assert!(state["platforms"]["x"]["api"].as_str().unwrap().starts_with(&sandbox));

    let refused = http.get(format!("{base}/v1/tenant")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "unauthorized");

    // An operator command with the printed exports puts a job on the queue; the dev runner's
    // poller hands it to the retries handler.
    let ping = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["queue", "ping"])
        .env_clear()
        .envs(dev.exports())
        .output()
        .unwrap();
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stderr));
    let mut logs = Vec::new();
    assert!(dev.logs_until("queue ping received", &mut logs), "the job never ran: {logs:#?}");

    // The dead-letter commands reach the dev stack's DLQ; a redrive must say what it redrives.
    let herald = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_herald")).args(args).env_clear().envs(dev.exports()).output().unwrap()
    };
    let list = herald(&["dlq", "list"]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(String::from_utf8_lossy(&list.stderr).contains("0 dead letter(s)"));
    let unselected = herald(&["dlq", "redrive"]);
    assert!(!unselected.status.success());
    assert!(String::from_utf8_lossy(&unselected.stderr).contains("--all, --post or --account"));
    let all = herald(&["dlq", "redrive", "--all"]);
    assert!(all.status.success(), "{}", String::from_utf8_lossy(&all.stderr));
    assert!(String::from_utf8_lossy(&all.stdout).contains("requeued 0"));

    // Ctrl-C stops the server, the poller and the emulators cleanly.
    let status = Command::new("kill").args(["-INT", &dev.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(dev.child.wait().unwrap().success());
    logs.extend(dev.logs.try_iter());

    assert!(logs.iter().any(|l| l.contains("\"route\":\"/v1/tenant\"")), "no request log: {logs:#?}");
    for line in &logs {
        assert!(!line.contains(&key), "the API key was logged: {line}");
        assert!(!line.contains(&key[3..]), "part of the API key was logged: {line}");
    }
}
