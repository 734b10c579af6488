//! Benchmark: the functions as Lambda runs them.
//!
//! A Lambda Runtime API emulator (below) starts each function's release `bootstrap` with the
//! environment Lambda gives it, AWS at the local emulation through counting proxies, and the
//! platforms at the sandbox. It measures exec → the first `GET /runtime/invocation/next` (init),
//! the first invocation and a second one (warm), the AWS connections each phase opens, and the
//! process's peak RSS; repeated, next to a hello-world `lambda_runtime` binary built with the
//! same profile. The `retries` function's invocations are 10-message batches of publish jobs.
//!
//! Usage: `bench-lambda <dir> [runs]`, where `<dir>/<function>/bootstrap` are `cargo lambda
//! build --release` outputs (`hello` included, and first); `HERALD_BENCH_FUNCTIONS=hello,posts`
//! measures only those. Prints a Markdown section and writes the figures
//! as JSON to `$HERALD_BENCH_OUT/lambda.json` when that is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use herald::domain::{Platform, PostId};
use herald::posts::{Post, Target};
use herald_testkit::{Bench, TestApp, account_budget, repo_root};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

const FUNCTIONS: [&str; 5] = ["hello", "connect", "posts", "webhooks", "retries"];
/// The largest event-source batch the `retries` function is configured for.
const BATCH: usize = 10;
/// Warm invocations after the first, per process: their CPU time is the function's own.
const WARM: usize = 20;

/// A loopback HTTP proxy in front of an emulated AWS endpoint that counts the connections its
/// clients open. moto closes every connection after one answer; the proxy keeps its clients'
/// connections open as AWS does, so its count is the connections (TLS handshakes, on AWS) a
/// function would open.
#[derive(Clone)]
struct CountingProxy {
    url: String,
    accepted: Arc<AtomicU64>,
    /// When the first connection since the last reset was accepted.
    first: Arc<std::sync::Mutex<Option<Instant>>>,
}

struct CountingListener {
    inner: TcpListener,
    accepted: Arc<AtomicU64>,
    first: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl axum::serve::Listener for CountingListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok(accepted) = self.inner.accept().await {
                self.first.lock().expect("not poisoned").get_or_insert_with(Instant::now);
                self.accepted.fetch_add(1, Ordering::SeqCst);
                return accepted;
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl CountingProxy {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let accepted = Arc::new(AtomicU64::new(0));
        let client = reqwest::Client::new();
        let forward = move |request: axum::extract::Request| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut headers = parts.headers;
                headers.remove(axum::http::header::HOST);
                let answer = client
                    .request(parts.method, format!("{upstream}{path}"))
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .expect("the emulation answers");
                let mut response = axum::response::Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    // Hop-by-hop: moto's `Connection: close` must not reach the client.
                    if !matches!(name.as_str(), "connection" | "keep-alive" | "transfer-encoding" | "content-length") {
                        response = response.header(name, value);
                    }
                }
                response.body(axum::body::Body::from(answer.bytes().await.unwrap_or_default())).expect("response")
            }
        };
        let first = Arc::new(std::sync::Mutex::new(None));
        let listener = CountingListener { inner: listener, accepted: accepted.clone(), first: first.clone() };
        tokio::spawn(async move {
            let _ = axum::serve(listener, Router::new().fallback(forward)).await;
        });
        Self { url, accepted, first }
    }
}

/// What the emulator saw of one process.
#[derive(Default)]
struct Seen {
    first_next: Option<Instant>,
    /// AWS connections opened when the first `next` arrived (that is, during init).
    connections_at_init: u64,
}

#[derive(Clone)]
struct Runtime {
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    answers: mpsc::UnboundedSender<(String, bool, Value, Instant)>,
    seen: Arc<std::sync::Mutex<Seen>>,
    proxies: Arc<Vec<CountingProxy>>,
}

fn connections(proxies: &[CountingProxy]) -> u64 {
    proxies.iter().map(|p| p.accepted.load(Ordering::SeqCst)).sum()
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, axum::Json<Value>) {
    {
        let mut seen = rt.seen.lock().expect("not poisoned");
        if seen.first_next.is_none() {
            seen.first_next = Some(Instant::now());
            seen.connections_at_init = connections(&rt.proxies);
        }
    }
    // Blocks until the driver hands out an event; a process waiting here is killed at the end.
    let Some((id, event)) = rt.events.lock().await.recv().await else { return std::future::pending().await };
    let deadline = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 60_000;
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().expect("header"));
    headers.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().expect("header"));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".parse().expect("header"),
    );
    headers.insert("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".parse().expect("header"));
    (headers, axum::Json(event))
}

async fn answer(rt: Runtime, id: String, ok: bool, body: axum::body::Bytes) -> &'static str {
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let _ = rt.answers.send((id, ok, value, Instant::now()));
    ""
}

/// One run of one function's process.
struct Run {
    init: Duration,
    /// Exec → the first AWS connection: init before its warm-up calls.
    before_warm_up: Option<Duration>,
    first: Duration,
    warm: Duration,
    /// The process's own CPU time per warm invocation (`/proc/<pid>/schedstat`).
    cpu_per_warm: Option<Duration>,
    connections_init: u64,
    connections_first: u64,
    peak_rss_kib: u64,
}

/// Starts `bootstrap` under the emulator, gives it `events` one after another, and measures.
async fn run_once(bootstrap: &Path, env: &[(String, String)], proxies: &[CountingProxy], events: Vec<Value>) -> Run {
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (answer_tx, mut answer_rx) = mpsc::unbounded_channel();
    let rt = Runtime {
        events: Arc::new(Mutex::new(event_rx)),
        answers: answer_tx,
        seen: Arc::default(),
        proxies: Arc::new(proxies.to_vec()),
    };
    let base = "/2018-06-01/runtime";
    let router = Router::new()
        .route(&format!("{base}/invocation/next"), get(next))
        .route(
            &format!("{base}/invocation/{{id}}/response"),
            post(|State(rt): State<Runtime>, UrlPath(id): UrlPath<String>, body| answer(rt, id, true, body)),
        )
        .route(
            &format!("{base}/invocation/{{id}}/error"),
            post(|State(rt): State<Runtime>, UrlPath(id): UrlPath<String>, body| answer(rt, id, false, body)),
        )
        .route(
            &format!("{base}/init/error"),
            post(|State(rt): State<Runtime>, body| answer(rt, "init".into(), false, body)),
        )
        .with_state(rt.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
    let api = listener.local_addr().expect("bound").to_string();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let log = std::env::temp_dir().join(format!("bench-lambda-{}.log", std::process::id()));
    let base = connections(proxies);
    for proxy in proxies {
        *proxy.first.lock().expect("not poisoned") = None;
    }
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bootstrap)
        .env_clear()
        .envs(env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .stdout(std::fs::File::create(&log).expect("log file"))
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bootstrap.display()));
    let pid = child.id().expect("running");
    let mut times = Vec::new();
    let mut connections_first = 0;
    let mut cpu_after_first = None;
    for (i, event) in events.into_iter().enumerate() {
        let id = format!("request-{i}");
        event_tx.send((id.clone(), event)).expect("emulator running");
        let handed = Instant::now();
        let (answered, ok, body, at) = tokio::time::timeout(Duration::from_secs(60), answer_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{} did not answer; its log: {}", bootstrap.display(), log.display()))
            .expect("emulator running");
        assert!(ok && answered == id, "{} failed: {body}; its log: {}", bootstrap.display(), log.display());
        check_answer(bootstrap, &body);
        // The first event waits in the channel until the process asks: its invocation starts then.
        let from = if i == 0 { rt.seen.lock().expect("not poisoned").first_next.expect("asked") } else { handed };
        times.push(at - from);
        if i == 0 {
            cpu_after_first = cpu_ns(pid);
            // Counted from the end of init: the warm-up's connections may open after the event was queued.
            connections_first = connections(proxies) - rt.seen.lock().expect("not poisoned").connections_at_init;
        }
    }
    let peak_rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    let cpu_end = cpu_ns(pid);
    let _ = child.kill().await;
    server.abort();
    let _ = std::fs::remove_file(&log);
    let seen = rt.seen.lock().expect("not poisoned");
    let first_connection = proxies.iter().filter_map(|p| *p.first.lock().expect("not poisoned")).min();
    let init_end = seen.first_next.expect("asked");
    Run {
        init: init_end - started,
        before_warm_up: first_connection.filter(|at| *at < init_end).map(|at| at - started),
        first: times[0],
        warm: Duration::from_secs_f64(median(times[1..].iter().map(Duration::as_secs_f64).collect())),
        cpu_per_warm: cpu_after_first
            .zip(cpu_end)
            .map(|(a, b)| Duration::from_nanos((b - a) / (times.len() as u64 - 1))),
        connections_init: seen.connections_at_init - base,
        connections_first,
        peak_rss_kib,
    }
}

/// Nanoseconds a process has run on a CPU, summed over its threads (`se.sum_exec_runtime` of
/// `/proc/<pid>/task/*/sched`, in milliseconds with six decimals; the tick-based counters of
/// `/proc/<pid>/stat` are too coarse for invocations of a few milliseconds).
fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0.0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let sched = std::fs::read_to_string(task.ok()?.path().join("sched")).ok()?;
        let line = sched.lines().find(|l| l.starts_with("se.sum_exec_runtime"))?;
        total += line.rsplit(':').next()?.trim().parse::<f64>().ok()?;
    }
    Some((total * 1e6) as u64)
}

/// A function that answered its event but not as it should is not measured.
fn check_answer(bootstrap: &Path, body: &Value) {
    let name = bootstrap.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or_default();
    match name {
        "retries" => assert_eq!(body["batchItemFailures"], json!([]), "retries: {body}"),
        "hello" => {}
        _ => {
            let status = body["statusCode"].as_u64().unwrap_or(0);
            assert!((200..300).contains(&status), "{name}: {body}");
        }
    }
}

/// An API Gateway HTTP API (payload 2.0) event, from the fixture.
fn http_event(method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let raw = std::fs::read_to_string(repo_root().join("tests/fixtures/apigw_v2_get_tenant.json")).expect("fixture");
    let mut event: Value = serde_json::from_str(&raw.replace("{{API_KEY}}", key)).expect("fixture JSON");
    event["routeKey"] = json!(format!("{method} {path}"));
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    if let Some(body) = body {
        let body = body.to_string();
        event["headers"]["content-type"] = json!("application/json");
        event["headers"]["content-length"] = json!(body.len().to_string());
        event["body"] = json!(body);
    }
    event
}

/// `count` posts to X stored with their targets pending and due, as queued attempts find them;
/// the SQS event of their publish jobs.
async fn queued_batch(app: &TestApp, account: &str, count: usize, tag: &str) -> Value {
    let now = herald::store::whole_seconds(time::OffsetDateTime::now_utc());
    let mut records = Vec::new();
    for i in 0..count {
        let post = Post {
            id: PostId::generate(now),
            tenant: app.tenant.clone(),
            user_id: "user-1".parse().expect("user id"),
            text: format!("{tag} {i}"),
            media: Vec::new(),
            scheduled_at: None,
            created_at: now,
            deleted_at: None,
            targets: vec![Target::pending(account.parse().expect("account id"), Platform::X, None)],
        };
        let id = post.id.to_string();
        app.state.posts.create(post, None, Vec::new()).await.expect("stored");
        records.push(app.publish_record(&id, account, &format!("m{i}")));
    }
    json!({ "Records": records })
}

/// The process environment of a function as Lambda sets it, with Herald's configuration.
fn lambda_env(bench: &Bench, dynamodb: &CountingProxy, services: &CountingProxy) -> Vec<(String, String)> {
    let config = bench.env.config();
    let sandbox = bench.app.sandbox.url.trim_end_matches('/');
    let budgets = vec![account_budget(Platform::X, 100_000, 86_400)];
    let vars = [
        ("AWS_REGION", config.aws.region.clone().unwrap_or_else(|| "us-east-1".into())),
        ("AWS_DEFAULT_REGION", config.aws.region.clone().unwrap_or_else(|| "us-east-1".into())),
        ("AWS_ACCESS_KEY_ID", "herald-local".into()),
        ("AWS_SECRET_ACCESS_KEY", "herald-local-secret".into()),
        ("AWS_SESSION_TOKEN", "bench-session-token".into()),
        ("AWS_ENDPOINT_URL", services.url.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.url.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("_HANDLER", "bootstrap".into()),
        ("TZ", ":UTC".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("HERALD_TABLE", config.table.clone()),
        ("HERALD_KMS_KEY_ID", config.crypto.key_id.clone()),
        ("HERALD_QUEUE_URL", config.queue_url.clone()),
        ("HERALD_DLQ_URL", config.dead_letter_queue_url.clone()),
        ("HERALD_PUBLIC_URL", bench.app.url.clone()),
        ("HERALD_X_API_URL", format!("{sandbox}/x/api")),
        ("HERALD_X_WEB_URL", format!("{sandbox}/x/web")),
        ("HERALD_META_GRAPH_URL", format!("{sandbox}/meta/graph")),
        ("HERALD_META_WEB_URL", format!("{sandbox}/meta/web")),
        ("HERALD_LINKEDIN_API_URL", format!("{sandbox}/linkedin/api")),
        ("HERALD_LINKEDIN_OAUTH_URL", format!("{sandbox}/linkedin/www")),
        ("HERALD_RATE_LIMITS", serde_json::to_string(&budgets).expect("serializes")),
        ("HERALD_LINKEDIN_ORGANIZATIONS", "true".into()),
    ];
    // Each function reads the apps' secrets from Secrets Manager at cold start, as on AWS.
    let secrets = &bench.env.app_secrets;
    let secrets = [
        (herald::config::X_SECRET_ID, secrets.x.clone()),
        (herald::config::META_SECRET_ID, secrets.meta.clone()),
        (herald::config::LINKEDIN_SECRET_ID, secrets.linkedin.clone()),
    ]
    .into_iter()
    .filter_map(|(name, id)| id.map(|id| (name, id)));
    vars.into_iter().chain(secrets).map(|(k, v)| (k.to_owned(), v)).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: bench-lambda <dir> [runs]"));
    let runs: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(10).max(1);
    // `Bench::start` reads its size from the first argument; here that is the directory.
    let bench = Bench::start().await;
    let dynamodb =
        CountingProxy::start(bench.env.config().aws.dynamodb_endpoint.as_ref().expect("DynamoDB endpoint").as_str())
            .await;
    let services = CountingProxy::start(bench.env.config().aws.endpoint.as_ref().expect("AWS endpoint").as_str()).await;
    let proxies = [dynamodb.clone(), services.clone()];
    let env = lambda_env(&bench, &dynamodb, &services);
    let key = bench.app.api_key.clone();
    let challenge = format!(
        "/webhooks/meta?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
        herald_sandbox::dev::META_WEBHOOK_VERIFY_TOKEN
    );

    // `HERALD_BENCH_FUNCTIONS=hello,posts` measures only those (comparing builds of one function).
    let only = std::env::var("HERALD_BENCH_FUNCTIONS").ok();
    let selected = FUNCTIONS.iter().filter(|f| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == **f)));
    let mut rows = Vec::new();
    for &function in selected {
        let bootstrap = dir.join(function).join("bootstrap");
        let mut measured = Vec::with_capacity(runs);
        for run in 0..runs {
            // The first invocation, then WARM more (fewer for the slow batches).
            let warm = if function == "retries" { 4 } else { WARM };
            let mut events = Vec::with_capacity(warm + 1);
            for i in 0..=warm {
                events.push(match function {
                    "hello" => json!({ "hello": i }),
                    "connect" => http_event("GET", "/v1/tenant", &key, None),
                    "posts" => {
                        let body = json!({ "user_id": "user-1", "targets": [{ "account_id": bench.account }], "text": format!("lambda bench {run} {i}") });
                        http_event("POST", "/v1/posts", &key, Some(body))
                    }
                    "webhooks" => {
                        let mut event = http_event("GET", "/webhooks/meta", "", None);
                        let (path, query) = challenge.split_once('?').expect("query");
                        event["rawPath"] = json!(path);
                        event["requestContext"]["http"]["path"] = json!(path);
                        event["rawQueryString"] = json!(query);
                        event
                    }
                    _ => queued_batch(&bench.app, &bench.account, BATCH, &format!("batch {run} {i}")).await,
                });
            }
            measured.push(run_once(&bootstrap, &env, &proxies, events).await);
        }
        let ms = |f: fn(&Run) -> Duration| median(measured.iter().map(|r| f(r).as_secs_f64() * 1000.0).collect());
        rows.push(json!({
            "function": function,
            "bootstrap_bytes": file_size(&bootstrap),
            "zip_bytes": file_size(&dir.join(function).join("bootstrap.zip")),
            "init_ms": ms(|r| r.init),
            "init_before_warm_up_ms": measured.iter().all(|r| r.before_warm_up.is_some()).then(|| {
                median(measured.iter().filter_map(|r| r.before_warm_up).map(|d| d.as_secs_f64() * 1000.0).collect())
            }),
            "first_ms": ms(|r| r.first),
            "warm_ms": ms(|r| r.warm),
            "cpu_per_warm_ms": measured.iter().all(|r| r.cpu_per_warm.is_some()).then(|| {
                median(measured.iter().filter_map(|r| r.cpu_per_warm).map(|d| d.as_secs_f64() * 1000.0).collect())
            }),
            "connections_init": measured.iter().map(|r| r.connections_init).max(),
            "connections_first": measured.iter().map(|r| r.connections_first).max(),
            "peak_rss_kib": measured.iter().map(|r| r.peak_rss_kib).max(),
        }));
    }

    let hello_init = rows[0]["init_ms"].as_f64().expect("measured");
    let mib = |v: &Value| v.as_f64().map_or("–".to_owned(), |b| format!("{:.2} MiB", b / 1_048_576.0));
    println!("## Functions under a Lambda Runtime API emulator\n");
    println!(
        "Each release `bootstrap` (`cargo lambda build --release`) started {runs} times by `bench-lambda` with Lambda's \
         environment (128 MB declared), AWS at moto through counting proxies, the platforms at the sandbox. Medians; \
         connections and RSS are the largest seen. First and warm invocations: `connect` `GET /v1/tenant`, `posts` \
         `POST /v1/posts` (one X post each), `webhooks` Meta's subscription handshake, `retries` a batch of {BATCH} \
         publish jobs; `hello` echoes its event. Each process gets a first invocation and {WARM} warm ones (4 for \
         `retries`); the warm column is their median and, in brackets, the process's own CPU time per warm invocation \
         (summed over its threads from `/proc/<pid>/task/*/sched`: Herald alone, without moto, the sandbox or the emulator).\n"
    );
    println!(
        "| function | bootstrap | zip | init | init before the warm-up calls (÷ hello) | AWS connections opened in init | first invocation | AWS connections opened by it | warm invocation (its CPU) | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let init = row["init_ms"].as_f64().expect("measured");
        let own = row["init_before_warm_up_ms"].as_f64().unwrap_or(init);
        println!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms ({:.2}) | {} | {:.1} ms | {} | {:.1} ms ({:.2} ms) | {:.1} MiB |",
            row["function"].as_str().expect("name"),
            mib(&row["bootstrap_bytes"]),
            mib(&row["zip_bytes"]),
            init,
            own,
            own / hello_init,
            row["connections_init"],
            row["first_ms"].as_f64().expect("measured"),
            row["connections_first"],
            row["warm_ms"].as_f64().expect("measured"),
            row["cpu_per_warm_ms"].as_f64().unwrap_or(f64::NAN),
            row["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
    if let Ok(out) = std::env::var("HERALD_BENCH_OUT") {
        let path = Path::new(&out).join("lambda.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&json!({ "runs": runs, "functions": rows })).expect("JSON"))
            .expect("writes the figures");
    }
}
