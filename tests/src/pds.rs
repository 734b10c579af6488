//! Bluesky's reference PDS, the real server (not a simulator), one per test process
//! ([`herald::local::LocalPds`], with its own rate limits on), on loopback only. It stops when
//! this process ends: its standard input is held here, and closes with the process.
//!
//! Between the PDS and everyone else is one hop of the test kit's ([`Pds::cut`]): the PDS names
//! itself at the hop's port (in its DID documents, so Herald finds it there too), and the hop
//! passes every request on unchanged, except those a test asked it to lose, whose answers are cut
//! off (after the PDS applied them, or before they reach it): a lost answer from the real server.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;

/// A running PDS: its public URL (`http://localhost:PORT`, the hop) and its PLC directory's.
pub struct Pds {
    pub url: String,
    pub plc: String,
    pub admin_password: String,
    hop: Arc<Hop>,
    /// Held for the process's life: dropping it would stop the server.
    _local: herald::local::LocalPds,
}

/// Where a cut answer is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The PDS applies the request; its answer never arrives.
    AfterApplying,
    /// The request never reaches the PDS; the connection breaks as if it had.
    BeforeApplying,
}

struct Fault {
    nsid: String,
    repo: String,
    cut: Cut,
}

struct Hop {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<Vec<Fault>>,
}

static PDS: OnceLock<Pds> = OnceLock::new();

/// The process's PDS, started on first use (about 2.5 s).
pub fn shared() -> &'static Pds {
    PDS.get_or_init(start)
}

impl Pds {
    /// Loses the answer of the next call of `nsid` (`com.atproto.repo.putRecord`) whose body (or,
    /// for a read, query) names `repo` (a DID): one call, then the hop passes them on again.
    pub fn cut(&self, nsid: &str, repo: &str, cut: Cut) {
        self.hop.faults.lock().expect("faults").push(Fault { nsid: nsid.into(), repo: repo.into(), cut });
    }

    /// Whether a cut asked for is still waiting for its call.
    pub fn cut_pending(&self, repo: &str) -> bool {
        self.hop.faults.lock().expect("faults").iter().any(|f| f.repo == repo)
    }
}

fn start() -> Pds {
    herald::tls::install_crypto_provider();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port for the hop");
    let public_port = listener.local_addr().expect("bound").port();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let local = herald::local::LocalPds::start(&root, Some(public_port), true)
        .unwrap_or_else(|e| panic!("starting the Bluesky PDS: {e}"));
    let hop = Arc::new(Hop {
        upstream: local.listen.clone(),
        // A hop passes redirects on to its client; it never follows them itself.
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds"),
        faults: Mutex::new(Vec::new()),
    });
    serve_hop(listener, hop.clone());
    Pds {
        url: local.url.clone(),
        plc: local.plc.clone(),
        admin_password: local.admin_password.clone(),
        hop,
        _local: local,
    }
}

/// The hop on a runtime of its own: each test's runtime ends with its test, the hop with the process.
fn serve_hop(listener: std::net::TcpListener, hop: Arc<Hop>) {
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("the hop's listener");
            let app = axum::Router::new().fallback(forward).with_state(hop);
            let _ = axum::serve(listener, app).await;
        });
    });
}

/// A body that breaks off before its first byte: the client sees the connection fail.
fn cut_off() -> Response {
    let broken = futures_util::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("cut")) });
    Response::new(Body::from_stream(broken))
}

async fn forward(State(hop): State<Arc<Hop>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let cut = {
        let mut faults = hop.faults.lock().expect("faults");
        let hit = faults.iter().position(|f| {
            // A write names the repo in its body, a read in its query.
            let names = String::from_utf8_lossy(&body).contains(&f.repo) || path.contains(&f.repo.replace(':', "%3A"));
            path.starts_with(&format!("/xrpc/{}", f.nsid)) && names
        });
        hit.map(|i| faults.remove(i).cut)
    };
    if cut == Some(Cut::BeforeApplying) {
        return cut_off();
    }
    let mut upstream = hop.client.request(parts.method, format!("{}{path}", hop.upstream)).body(body);
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else { return cut_off() };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if cut == Some(Cut::AfterApplying) {
        return cut_off();
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != axum::http::header::TRANSFER_ENCODING && name != axum::http::header::CONTENT_LENGTH {
            // Appended: an answer may carry a header more than once (several Set-Cookie).
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}
