//! Test support: the local AWS emulation (moto, once per test binary) and fresh, isolated
//! resources per test, so tests run in parallel without seeing each other's data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aws_sdk_sqs::types::QueueAttributeName;
use herald::aws::AwsClients;
use herald::aws::AwsSettings;
use herald::bootstrap::{Resources, bootstrap};
use herald::clock::SharedClock;
use herald::config::Config;
use herald::local::{Launcher, LocalAws};
use herald::schema::ResourceNames;
use herald::startup::Function;

pub mod calls;
pub mod pds;

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
    /// The sandbox's development apps, stored as this environment's secrets and read back as the
    /// functions read them at cold start ([`herald::secrets::load`]).
    pub app_secrets: herald::config::AppSecretIds,
    apps: herald::platforms::settings::PlatformApps,
    functions: Functions,
}

/// What builds Herald's functions against one test environment (cheap to clone).
#[derive(Clone)]
pub struct Functions {
    sdk: aws_config::SdkConfig,
    settings: AwsSettings,
    resource_map: Arc<calls::ResourceMap>,
    app_secrets: herald::config::AppSecretIds,
    /// The benchmarks' call counters, on every function's clients too.
    counts: Option<Arc<herald::aws::CallCounts>>,
}

impl Functions {
    /// AWS clients for one of Herald's functions: with `HERALD_AWS_CALLS` set, every call they
    /// make is recorded as that function's, for the roles check ([`calls`]).
    pub fn aws_for(&self, function: Function) -> AwsClients {
        let recorder = calls::Recorder::new(function.name(), self.resource_map.clone());
        let interceptors = recorder
            .map(herald::aws::SharedInterceptor::new)
            .into_iter()
            .chain(self.counts.clone().map(herald::aws::counting))
            .collect();
        AwsClients::intercepted(&self.sdk, &self.settings, interceptors)
    }

    /// `function`'s state as its cold start leaves it: its own clients, the secrets it reads
    /// loaded from this environment's, its connections warmed up.
    pub async fn state(&self, function: Function, mut config: Config, clock: SharedClock) -> herald::app::App {
        let aws = self.aws_for(function);
        config.app_secrets = self.app_secrets.clone();
        herald::startup::prepare(function, &aws, &mut config)
            .await
            .unwrap_or_else(|e| panic!("{} cannot start: {e}", function.name()));
        herald::app::App::new(config, &aws, clock)
    }
}

impl TestEnv {
    /// Bootstraps a fresh, uniquely named set of resources.
    pub async fn fresh() -> Self {
        Self::fresh_with(None).await
    }

    /// As [`fresh`](Self::fresh), counting every AWS call Herald makes into `counts`.
    pub async fn fresh_with(counts: Option<Arc<herald::aws::CallCounts>>) -> Self {
        let settings = tokio::task::spawn_blocking(local_aws).await.expect("emulation start does not panic");
        let sdk = herald::local::sdk_config(&settings).await;
        let aws = match counts.clone() {
            Some(counts) => AwsClients::counted(&sdk, &settings, counts),
            None => AwsClients::from_sdk_config(&sdk, &settings),
        };
        let suffix: [u8; 6] = herald::domain::random_bytes();
        let names = ResourceNames::with_prefix(&format!("t{}", hex::encode(suffix)));
        let resources = bootstrap(&aws, &names).await.unwrap_or_else(|e| panic!("bootstrap failed: {e}"));
        let values = herald_sandbox::dev::app_secrets();
        let app_secrets =
            herald::bootstrap::store_app_secrets(&aws.secrets, &names, values.each_ref().map(String::as_str))
                .await
                .unwrap_or_else(|e| panic!("storing the app secrets failed: {e}"));
        let mut apps = herald::platforms::settings::PlatformApps { linkedin_organizations: true, ..Default::default() };
        herald::secrets::load(&aws.secrets, &app_secrets, &mut apps)
            .await
            .unwrap_or_else(|e| panic!("reading the app secrets failed: {e}"));
        let resource_map = Arc::new(calls::ResourceMap::new(&resources, &app_secrets));
        let functions =
            Functions { sdk, settings: settings.clone(), resource_map, app_secrets: app_secrets.clone(), counts };
        Self { aws, settings, resources, names, app_secrets, apps, functions }
    }

    /// See [`Functions::aws_for`].
    pub fn aws_for(&self, function: Function) -> AwsClients {
        self.functions.aws_for(function)
    }

    /// See [`Functions::state`].
    pub async fn function_state(&self, function: Function, config: Config, clock: SharedClock) -> herald::app::App {
        self.functions.state(function, config, clock).await
    }

    /// Injects DynamoDB faults on this environment's table (`infra/moto_server.py`,
    /// `DynamoFaults`): each a JSON object with `kind` (`transaction_conflict`, `throttling`,
    /// `provisioned_throughput`, `internal_error_after_apply`) and optionally `operation`,
    /// `key_prefix`, `times`, `probability`. Returns how many of each kind were raised so far.
    pub async fn dynamodb_faults(&self, faults: Vec<serde_json::Value>) -> serde_json::Value {
        let faults: Vec<serde_json::Value> = faults
            .into_iter()
            .map(|mut f| {
                f["table"] = serde_json::Value::String(self.resources.table.clone());
                f
            })
            .collect();
        self.fault_control(reqwest::Method::POST, Some(faults)).await
    }

    /// Clears this table's DynamoDB faults; returns how many of each kind were raised.
    pub async fn clear_dynamodb_faults(&self) -> serde_json::Value {
        self.fault_control(reqwest::Method::DELETE, None).await
    }

    async fn fault_control(&self, method: reqwest::Method, body: Option<Vec<serde_json::Value>>) -> serde_json::Value {
        let endpoint = self.settings.dynamodb_endpoint.as_ref().expect("the local DynamoDB endpoint");
        let mut url = endpoint.join("/_herald/faults").expect("a URL");
        url.query_pairs_mut().append_pair("table", &self.resources.table);
        let mut request = reqwest::Client::new().request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the DynamoDB emulator answers");
        assert!(response.status().is_success(), "fault control: {}", response.status());
        response.json().await.expect("counts")
    }

    /// Herald's apps on the sandbox's development fixtures, as read from this environment's secrets.
    pub fn dev_apps(&self) -> herald::platforms::settings::PlatformApps {
        self.apps.clone()
    }

    /// Configuration for Herald's functions against this environment (`herald::local::config`,
    /// as `herald dev` has it; production platform endpoints until a test points them elsewhere).
    pub fn config(&self) -> Config {
        herald::local::config(
            self.settings.clone(),
            &self.resources,
            herald::platforms::settings::PlatformEndpoints::production(),
            Some("http://127.0.0.1:3000".parse().expect("static URL")),
        )
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

/// Herald served on a loopback port against this environment and an in-process platform sandbox,
/// with a development tenant, a clock the test controls, and a browser-like HTTP client.
pub struct TestApp {
    pub url: String,
    pub api_key: String,
    pub tenant: herald::domain::TenantId,
    pub state: herald::http::AppState,
    /// The test's one clock: Herald's, which the in-process sandbox reads too. Move it with
    /// [`advance`](Self::advance), which also sets the emulated queues' time; moving it directly
    /// leaves the queues behind (only the worker benchmark does, on purpose).
    pub clock: herald::clock::ManualClock,
    pub sandbox: herald_sandbox::Running,
    /// The user's browser: follows no redirects (the test looks at every hop, as a browser would
    /// take them), keeps its own cookies, and navigates as a browser does ([`new_browser`]).
    pub browser: reqwest::Client,
    functions: Functions,
    /// The test's own DynamoDB client (no function's).
    dynamodb: aws_sdk_dynamodb::Client,
    /// The emulated queues' clock (`infra/moto_server.py`, `QueueClock`).
    queue_clock: QueueClock,
    server: tokio::task::JoinHandle<()>,
}

/// This test's queues' time in the SQS emulation (`infra/moto_server.py`, `QueueClock`): set to
/// Herald's clock when the app starts and whenever [`TestApp::advance`] moves it, so a delayed
/// message (a retry's backoff) or an expired visibility timeout comes due when the test's time
/// says, never after real seconds.
struct QueueClock {
    url: reqwest::Url,
    queues: Vec<String>,
    /// Whether the test's clock runs ([`TestApp::run_clock`]).
    running: std::sync::atomic::AtomicBool,
}

impl QueueClock {
    const PATH: &'static str = "/_herald/queue-clock";

    async fn set(&self, now: time::OffsetDateTime) {
        let at_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let running = self.running.load(std::sync::atomic::Ordering::SeqCst);
        let body = serde_json::json!({ "queues": self.queues, "at_ms": at_ms, "running": running });
        let response =
            reqwest::Client::new().post(self.url.clone()).json(&body).send().await.expect("the SQS emulator answers");
        assert!(response.status().is_success(), "queue clock: {}", response.status());
    }
}

/// A browser of its own: a cookie jar nobody else shares, no redirects followed, and the Fetch
/// Metadata headers every current engine sends when the user opens a page (`Sec-Fetch-Mode:
/// navigate`, `Sec-Fetch-Dest: document`). Each attacker and victim in a test gets one.
pub fn new_browser() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("sec-fetch-mode", reqwest::header::HeaderValue::from_static("navigate"));
    headers.insert("sec-fetch-dest", reqwest::header::HeaderValue::from_static("document"));
    headers.insert("sec-fetch-site", reqwest::header::HeaderValue::from_static("cross-site"));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .expect("client")
}

/// The origin every test tenant may send users back to.
pub const RETURN_ORIGIN: &str = "https://app.example.test";

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestEnv {
    /// Runs `worker` on the work queue until nothing due is left in it (the queue's time does
    /// not move: what waits stays queued).
    pub async fn drain(&self, worker: &herald::worker::Worker) {
        loop {
            let queue = &self.resources.work_queue_url;
            let stats = herald::worker::poll_once(&self.aws.sqs, queue, worker, std::time::Duration::ZERO).await;
            if stats.expect("a poll of the work queue").received == 0 {
                return;
            }
        }
    }

    /// Starts Herald (every HTTP route) and the sandbox, wired to each other like `herald dev`.
    pub async fn spawn_app(&self) -> TestApp {
        self.spawn_app_with(|_| {}).await
    }

    /// As [`spawn_app`](Self::spawn_app), with Bluesky on the process's real PDS ([`pds::shared`]).
    pub async fn spawn_app_with_pds(&self) -> TestApp {
        let pds = pds::shared();
        self.spawn_app_with(|config| {
            config.platforms = config.platforms.clone().with_pds(&pds.url, &pds.plc).expect("the PDS's URLs");
        })
        .await
    }

    /// As [`spawn_app`](Self::spawn_app), with changes to Herald's configuration.
    pub async fn spawn_app_with(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        // One clock: Herald's, which the sandbox reads too (and the queues are set to, below).
        let clock = herald::clock::ManualClock::new(time::OffsetDateTime::now_utc());
        let sandbox_time = {
            let clock = clock.clone();
            herald_sandbox::TimeSource(Arc::new(move || herald::Clock::now(&clock).unix_timestamp()))
        };
        let sandbox = herald_sandbox::start(
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
            herald_sandbox::SandboxConfig {
                seed: 11,
                dev_fixtures: true,
                herald_url: url.clone(),
                clock: Some(sandbox_time),
            },
        )
        .await
        .expect("sandbox starts");
        let mut config = self.config();
        config.public_url = Some(url.parse().expect("loopback URL"));
        config.platforms = herald::platforms::settings::PlatformEndpoints::sandbox(&sandbox.url).expect("sandbox URL");
        // Short, so tests of calls that never answer do not wait long.
        config.platforms.timeout = std::time::Duration::from_millis(1500);
        config.apps = self.dev_apps();
        adjust(&mut config);
        let shared: SharedClock = Arc::new(clock.clone());
        // Each function as on AWS: its own clients (recorded for the roles check), its own secrets.
        let [connect, posts, webhooks] = [Function::Connect, Function::Posts, Function::Webhooks]
            .map(|function| self.function_state(function, config.clone(), shared.clone()));
        let (connect, posts, webhooks) = futures_util::join!(connect, posts, webhooks);
        let router = herald::http::functions_router(connect, posts, webhooks);
        // The test's own view, for looking into the store: its calls are no function's.
        let state = herald::http::AppState::new(config, &self.aws, shared);
        let origin = herald::store::Origin::parse(RETURN_ORIGIN).expect("valid origin");
        let (tenant, key) = state.tenants.create("Test tenant", vec![origin]).await.expect("tenant");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let browser = new_browser();
        let functions = self.functions.clone();
        let dynamodb = self.aws.dynamodb.clone();
        let queue_clock = QueueClock {
            url: self
                .settings
                .endpoint
                .as_ref()
                .expect("the local AWS endpoint")
                .join(QueueClock::PATH)
                .expect("a URL"),
            queues: vec![self.names.work_queue.clone(), self.names.dead_letter_queue.clone()],
            running: false.into(),
        };
        queue_clock.set(herald::Clock::now(&clock)).await;
        TestApp {
            url,
            queue_clock,
            api_key: key.reveal().to_owned(),
            tenant: tenant.id,
            state,
            clock,
            sandbox,
            browser,
            functions,
            dynamodb,
            server,
        }
    }
}

/// A benchmark's setup: its size (the first argument, default 200), AWS call counters, and
/// Herald with room for any number of X posts (Herald's per-account budget and the sandbox's
/// limit both raised), `user-1`'s X account connected.
pub struct Bench {
    pub size: usize,
    pub counts: Arc<herald::aws::CallCounts>,
    pub env: TestEnv,
    pub app: TestApp,
    pub account: String,
}

impl Bench {
    pub async fn start() -> Self {
        let size = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
        let counts = Arc::new(herald::aws::CallCounts::default());
        let env = TestEnv::fresh_with(Some(counts.clone())).await;
        let (app, account) = env.spawn_unthrottled_x().await;
        Self { size, counts, env, app, account }
    }
}

impl TestEnv {
    async fn spawn_unthrottled_x(&self) -> (TestApp, String) {
        let app = self
            .spawn_app_with(|config| {
                config.rate_limits = vec![account_budget(herald::domain::Platform::X, 100_000, 86_400)]
            })
            .await;
        app.browser
            .post(format!("{}/_sandbox/limits", app.sandbox.url))
            .json(&serde_json::json!({ "platform": "x", "name": "tweets/user", "limit": 100_000, "window": 86_400 }))
            .send()
            .await
            .expect("sandbox");
        assert_eq!(app.connect("user-1", "x", "2244994945", "approve").await["status"], "connected");
        let account = app.accounts("user-1").await[0]["id"].as_str().expect("account").to_owned();
        (app, account)
    }
}

/// The jobs a sweep fans out into (one per shard of each index), as one SQS event: handing it to
/// a worker does a whole sweep at once, as the queue would over several invocations.
pub fn sweep_event() -> aws_lambda_events::event::sqs::SqsEvent {
    let records = herald::sweep::shard_jobs()
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let body = serde_json::to_string(&herald::queue::Envelope { job, not_before: None, enqueued_at: 0 })
                .expect("a job serializes");
            serde_json::json!({ "messageId": format!("sweep-{i}"), "body": body })
        })
        .collect();
    sqs_event(records)
}

/// The sandbox's development app id for a platform's webhooks (`meta`, `x`, `linkedin`).
pub fn dev_client_id(platform: &str) -> &'static str {
    use herald_sandbox::dev;
    match platform {
        "meta" => dev::META_APP_ID,
        "x" => dev::X_CLIENT_ID,
        _ => dev::LINKEDIN_CLIENT_ID,
    }
}

impl TestApp {
    /// The sandbox's control plane (`/_sandbox/...`, tests/sandbox/src/control.rs): posts `body`
    /// to `path`, fails the test unless the sandbox accepts it, and returns its answer (JSON, or
    /// null when it has none).
    pub async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self.browser.post(format!("{}{path}", self.sandbox.url)).json(&body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Adds a platform fault (the kinds are in tests/sandbox/src/faults.rs).
    pub async fn fault(&self, fault: serde_json::Value) {
        self.control("/_sandbox/faults", fault).await;
    }

    /// Removes every platform fault.
    pub async fn clear_faults(&self) {
        let response = self.browser.delete(format!("{}/_sandbox/faults", self.sandbox.url)).send().await.unwrap();
        assert!(response.status().is_success(), "clearing faults: {}", response.status());
    }

    /// Runs `work` (which makes one platform call a `hang` fault holds) and releases the call
    /// once the sandbox holds it, instead of waiting for Herald's timeout: the connection is cut
    /// before any answer, which Herald reads as it reads a timeout after sending.
    pub async fn releasing<F: std::future::Future>(&self, work: F) -> F::Output {
        self.releasing_after(work, async {}).await
    }

    /// As [`releasing`](Self::releasing), running `meanwhile` while the sandbox holds the call
    /// (a fault added for what Herald does once the answer is lost).
    pub async fn releasing_after<F: std::future::Future, G: std::future::Future>(
        &self,
        work: F,
        meanwhile: G,
    ) -> F::Output {
        let release = async {
            let held = self.browser.get(format!("{}/_sandbox/faults/held?count=1", self.sandbox.url)).send().await;
            assert!(held.unwrap().status().is_success(), "the call never reached the sandbox");
            meanwhile.await;
            self.control("/_sandbox/faults/release", serde_json::json!({})).await;
        };
        tokio::join!(work, release).0
    }

    /// Moves the test's one time forward: Herald's clock, which the in-process sandbox reads
    /// too, and the emulated queues' (their delays and visibility timeouts).
    pub async fn advance(&self, by: time::Duration) {
        assert!(!by.is_negative(), "time only moves forward: {by}");
        self.clock.advance(by);
        self.queue_clock.set(herald::Clock::now(&self.clock)).await;
    }

    /// From now on the test's one time also passes by itself (Herald's clock, the sandbox's and
    /// the queues' together), on top of what [`advance`](Self::advance) adds.
    pub async fn run_clock(&self) {
        self.clock.run();
        self.queue_clock.running.store(true, std::sync::atomic::Ordering::SeqCst);
        self.queue_clock.set(herald::Clock::now(&self.clock)).await;
    }

    /// The `retries` function's worker, as its cold start leaves it, on this app's configuration
    /// and clock, processing `concurrency` messages at once.
    pub async fn worker(&self, concurrency: usize) -> herald::worker::Worker {
        let config = (*self.state.config).clone();
        let app = self.functions.state(Function::Retries, config, Arc::new(self.clock.clone())).await;
        herald::worker::Worker::new(app, concurrency)
    }

    /// `POST /v1/posts` handled by a posts function instance of its own, as a Lambda execution
    /// environment that starts, serves this one request and is reclaimed: its own clients,
    /// caches and rate-limit leases.
    pub async fn post_from_new_instance(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        use tower::ServiceExt as _;
        let config = (*self.state.config).clone();
        let state = self.functions.state(Function::Posts, config, Arc::new(self.clock.clone())).await;
        let router = herald::http::finish(herald::http::posts_routes(), state);
        let request = axum::http::Request::post("/v1/posts")
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("content-type", "application/json")
            .header("host", "127.0.0.1")
            .body(axum::body::Body::from(body.to_string()))
            .expect("a request");
        let response = router.oneshot(request).await.expect("the router answers");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// The stored size of each item of post `post` (the post and its targets, with the events
    /// they keep), by DynamoDB's rules for item size: `(what, bytes)`.
    pub async fn item_sizes(&self, post: &str) -> Vec<(String, usize)> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let items = self
            .dynamodb
            .query()
            .table_name(&self.state.config.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("POST#{}#{post}", self.tenant)))
            .consistent_read(true)
            .send()
            .await
            .expect("the post's items")
            .items
            .unwrap_or_default();
        // A settled target keeps its outcome's event (`store::journal`): no event item of its own.
        let key = |item: &HashMap<String, AttributeValue>| match item.get("sk") {
            Some(AttributeValue::S(sk)) if sk.starts_with("TARGET#") && item.contains_key("event") => {
                "target, with its outcome's event".to_owned()
            }
            Some(AttributeValue::S(sk)) if sk.starts_with("TARGET#") => "target".to_owned(),
            _ => "post".to_owned(),
        };
        items.iter().map(|item| (key(item), dynamodb_item_size(item))).collect()
    }

    /// The tenant's events as the journal lists them (its own items and the events targets
    /// keep), oldest first.
    pub async fn events(&self) -> Vec<herald::store::Event> {
        self.state.journal.list(&self.tenant, false).await.expect("the tenant's events")
    }

    /// Units counted so far on `platform`'s app-wide publishing budget, over every window.
    pub async fn app_budget_used(&self, platform: herald::domain::Platform) -> u64 {
        let out = self
            .dynamodb
            .query()
            .table_name(&self.state.config.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("RL#{platform}#publish#app")),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("the counters");
        out.items().iter().filter_map(|i| i.get("count")?.as_n().ok()?.parse::<u64>().ok()).sum()
    }

    pub fn clock_now(&self) -> time::OffsetDateTime {
        herald::Clock::now(&self.clock)
    }

    /// A `/v1` request with the tenant's API key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.browser.request(method, format!("{}{path}", self.url)).bearer_auth(&self.api_key)
    }

    /// A `/v1` call with the tenant's key and an optional JSON body: the status and the JSON
    /// answer (`null` when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.api(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("Herald answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The sandbox signs `payload` as `platform` (`meta`, `x`, `linkedin`) signs webhooks and
    /// posts it to Herald's `/webhooks/{platform}`; returns the sandbox's report (`status`,
    /// `body`, `sent`, `signature`).
    pub async fn platform_webhook(&self, platform: &str, payload: serde_json::Value) -> serde_json::Value {
        let url = format!("{}/webhooks/{platform}", self.url);
        let body = serde_json::json!({ "platform": platform, "url": url, "client_id": dev_client_id(platform), "payload": payload });
        let response = self
            .browser
            .post(format!("{}/_sandbox/webhooks/deliver", self.sandbox.url))
            .json(&body)
            .send()
            .await
            .expect("sandbox");
        assert!(response.status().is_success(), "sandbox: {}", response.status());
        response.json().await.expect("a report")
    }

    /// `POST /v1/connect-links`; returns the link URL.
    pub async fn connect_link(&self, user: &str, platform: &str) -> String {
        self.connect_link_as(&self.api_key, user, platform).await
    }

    /// [`connect_link`](Self::connect_link) with another tenant's API key.
    pub async fn connect_link_as(&self, api_key: &str, user: &str, platform: &str) -> String {
        let response = self
            .browser
            .post(format!("{}/v1/connect-links", self.url))
            .bearer_auth(api_key)
            .json(&serde_json::json!({ "user_id": user, "platform": platform, "return_to": format!("{RETURN_ORIGIN}/done") }))
            .send()
            .await
            .expect("Herald answers");
        assert_eq!(response.status(), 201, "connect link");
        let body: serde_json::Value = response.json().await.expect("json");
        body["url"].as_str().expect("url").to_owned()
    }

    /// GET that must redirect; returns the `Location`.
    pub async fn redirected(&self, url: &str) -> String {
        self.redirected_in(&self.browser, url).await
    }

    /// [`redirected`](Self::redirected) in another browser.
    pub async fn redirected_in(&self, browser: &reqwest::Client, url: &str) -> String {
        let response = browser.get(url).send().await.expect("answered");
        assert_eq!(response.status(), 302, "expected a redirect from {url}: {}", response.status());
        response.headers()["location"].to_str().expect("ascii").to_owned()
    }

    /// The consent screen at `authorize_url`: signs in as `user`, decides, returns the redirect.
    pub async fn consent(&self, authorize_url: &str, user: &str, decision: &str) -> String {
        self.consent_in(&self.browser, authorize_url, user, decision).await
    }

    /// [`consent`](Self::consent) in another browser.
    pub async fn consent_in(
        &self,
        browser: &reqwest::Client,
        authorize_url: &str,
        user: &str,
        decision: &str,
    ) -> String {
        let page = browser.get(authorize_url).send().await.expect("consent page");
        assert_eq!(page.status(), 200, "consent page at {authorize_url}");
        let html = page.text().await.expect("html");
        let action = html.split("action=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a consent form");
        let response = browser
            .post(format!("{}{action}", self.sandbox.url))
            .form(&[("user", user), ("decision", decision)])
            .send()
            .await
            .expect("decision");
        assert_eq!(response.status(), 302);
        response.headers()["location"].to_str().expect("ascii").to_owned()
    }

    /// The whole browser journey from link to the tenant's return URL; returns its query.
    pub async fn connect(
        &self,
        user: &str,
        platform: &str,
        platform_user: &str,
        decision: &str,
    ) -> HashMap<String, String> {
        let link = self.connect_link(user, platform).await;
        let authorize = self.redirected(&link).await;
        let callback = self.consent(&authorize, platform_user, decision).await;
        let back = self.redirected(&callback).await;
        assert!(back.starts_with(RETURN_ORIGIN), "sent back elsewhere: {back}");
        query(&back)
    }

    /// `POST /v1/posts`, optionally with an idempotency key: status and body.
    pub async fn post(&self, body: serde_json::Value, key: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.api(reqwest::Method::POST, "/v1/posts").json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("answered");
        (response.status().as_u16(), response.json().await.expect("json"))
    }

    /// `GET /v1/posts/{id}`'s answer.
    pub async fn read_post(&self, id: &str) -> serde_json::Value {
        self.call(reqwest::Method::GET, &format!("/v1/posts/{id}"), None).await.1
    }

    /// Runs the queued jobs of `account`'s target of `post` as they fall due (the clock moved a
    /// minute at a time, or to the next attempt) until it settles; the target as it then stands.
    pub async fn settle(&self, post: &str, account: &str) -> serde_json::Value {
        let worker = self.worker(2).await;
        let open = ["pending", "retrying", "publishing", "deleting"];
        // Each round moves a minute, or to the target's own next attempt where that is later:
        // the backoff's random draw decides how far, never whether it is reached (eight attempts'
        // ceilings add up to more than twelve minutes).
        for _ in 0..12 {
            let read = self.read_post(post).await;
            let target =
                read["targets"].as_array().and_then(|targets| targets.iter().find(|t| t["account_id"] == account));
            let target = target.cloned().unwrap_or_else(|| panic!("{post} has no target {account}: {read}"));
            if !open.contains(&target["status"].as_str().unwrap_or_default()) {
                return target;
            }
            let due = target["next_attempt_at"]
                .as_str()
                .and_then(|at| time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok())
                .map_or(time::Duration::ZERO, |at| at - herald::Clock::now(&self.clock));
            self.advance(due.max(time::Duration::seconds(60)) + time::Duration::seconds(1)).await;
            let failures = worker.handle_batch(self.publish_event(post, account, 1)).await.batch_item_failures;
            assert!(failures.is_empty(), "{post}: the job failed");
        }
        panic!("{post} did not settle");
    }

    /// The tenant's `POST /v1/posts/{post}/targets/{account}/retry` (accepted), then the target
    /// driven until it settles ([`settle`](Self::settle)).
    pub async fn retry_and_settle(&self, post: &str, account: &str) -> serde_json::Value {
        let path = format!("/v1/posts/{post}/targets/{account}/retry");
        let (status, retried) = self.call(reqwest::Method::POST, &path, None).await;
        assert_eq!(status, 202, "{retried}");
        self.settle(post, account).await
    }

    /// A media URL on the sandbox (`name` ending in .jpg or .png).
    pub fn media(&self, name: &str) -> String {
        format!("{}/_sandbox/media/{name}", self.sandbox.url)
    }

    /// What the sandbox holds for a platform (`x`, `meta`, `linkedin`), per account.
    pub fn published(&self, platform: herald_sandbox::Platform) -> Vec<herald_sandbox::Post> {
        self.sandbox.state.world().posts.iter().filter(|p| p.platform == platform).cloned().collect()
    }

    /// Every request the sandbox received so far, oldest first.
    pub fn sandbox_calls(&self) -> Vec<herald_sandbox::Call> {
        self.sandbox.state.world().calls.clone()
    }

    /// Connects each platform's development user for `user`; returns the account ids by key:
    /// `x`, `facebook`, `instagram`, `linkedin_member`, `linkedin_org`.
    pub async fn connect_all(&self, user: &str) -> HashMap<&'static str, String> {
        for (platform, platform_user) in [
            ("x", "2244994945"),
            ("facebook", "10158000000000001"),
            ("instagram", "10158000000000001"),
            ("linkedin", "yrZCpj2Z12"),
        ] {
            assert_eq!(self.connect(user, platform, platform_user, "approve").await["status"], "connected");
        }
        let mut ids = HashMap::new();
        for account in self.accounts(user).await {
            let key = match (account["platform"].as_str(), account["kind"].as_str()) {
                (Some("x"), _) => "x",
                (Some("facebook"), _) => "facebook",
                (Some("instagram"), _) => "instagram",
                (Some("linkedin"), Some("member")) => "linkedin_member",
                (Some("linkedin"), _) => "linkedin_org",
                _ => continue,
            };
            ids.insert(key, account["id"].as_str().expect("an id").to_owned());
        }
        ids
    }

    /// An SQS event holding `copies` deliveries of the publish job for `account`'s target of
    /// `post`, as the retries function receives it.
    pub fn publish_event(&self, post: &str, account: &str, copies: usize) -> aws_lambda_events::event::sqs::SqsEvent {
        sqs_event((0..copies).map(|i| self.publish_record(post, account, &format!("m{i}"))).collect())
    }

    /// One SQS record (JSON) carrying the publish job for `account`'s target of `post`.
    pub fn publish_record(&self, post: &str, account: &str, message_id: &str) -> serde_json::Value {
        let envelope = herald::queue::Envelope {
            job: herald::queue::Job::Publish {
                tenant: self.tenant.clone(),
                post: post.parse().expect("a post id"),
                account: account.parse().expect("an account id"),
            },
            not_before: None,
            enqueued_at: 0,
        };
        serde_json::json!({ "messageId": message_id, "body": serde_json::to_string(&envelope).expect("serializes") })
    }

    pub async fn accounts(&self, user: &str) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self
            .api(reqwest::Method::GET, &format!("/v1/users/{user}/accounts"))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("json");
        body["accounts"].as_array().cloned().unwrap_or_default()
    }
}

/// An SQS event of `records` (JSON records as Lambda delivers them).
pub fn sqs_event(records: Vec<serde_json::Value>) -> aws_lambda_events::event::sqs::SqsEvent {
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SQS event")
}

/// A URL's query parameters.
/// The value of `attribute="…"` after `after` in `html` (a form's `action`, a hidden field's
/// `value` on Herald's own sign-in pages).
pub fn attribute(html: &str, after: &str, attribute: &str) -> String {
    let rest = &html[html.find(after).unwrap_or_else(|| panic!("{after} in {html}"))..];
    let start = rest.find(&format!("{attribute}=\"")).expect("the attribute") + attribute.len() + 2;
    rest[start..].split('"').next().expect("a closing quote").to_owned()
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default()
}

/// Every log line of this test binary from the first call on, as Herald writes them (JSON).
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// Installs (once) a subscriber that records every log line at debug level and above.
pub fn captured_logs() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    })
    .clone()
}

/// A per-account publishing budget of `limit` per fixed window of `seconds`.
pub fn account_budget(platform: herald::domain::Platform, limit: u32, seconds: i64) -> herald::ratelimit::Budget {
    herald::ratelimit::Budget {
        platform,
        endpoint: "publish".into(),
        scope: herald::ratelimit::Scope::Account,
        limit,
        window: herald::ratelimit::Window::Fixed { seconds },
    }
}

/// Asserts that `target` (as `GET /v1/posts/{id}` shows it) stands at `status` with the error
/// `code` (`None`: no error).
#[track_caller]
pub fn assert_target(target: &serde_json::Value, status: &str, code: Option<&str>) {
    assert_eq!((target["status"].as_str(), target["error"]["code"].as_str()), (Some(status), code), "{target}");
}

/// An item's size as DynamoDB bills it (the "Item sizes and formats" page of its developer
/// guide): each attribute's name plus its value; a string or binary its bytes, a number about one
/// byte per two significant digits plus one, a Boolean or null one byte, a list or map 3 bytes
/// plus one per element and its elements (a map's names counted), a set its members.
pub fn dynamodb_item_size(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    fn number(n: &str) -> usize {
        let digits = n.trim_start_matches('-').replace('.', "");
        let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
        significant.div_ceil(2) + 1
    }
    fn value(v: &V) -> usize {
        match v {
            V::S(s) => s.len(),
            V::N(n) => number(n),
            V::B(b) => b.as_ref().len(),
            V::Bool(_) | V::Null(_) => 1,
            V::Ss(set) => set.iter().map(String::len).sum(),
            V::Ns(set) => set.iter().map(|n| number(n)).sum(),
            V::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
            V::L(list) => 3 + list.iter().map(|v| 1 + value(v)).sum::<usize>(),
            V::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>(),
            _ => 0,
        }
    }
    item.iter().map(|(name, v)| name.len() + value(v)).sum()
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue as V;

    /// DynamoDB's rules for item size, one value kind at a time.
    #[test]
    fn item_sizes_follow_dynamodbs_rules() {
        let size = |name: &str, value: V| super::dynamodb_item_size(&[(name.to_owned(), value)].into());
        assert_eq!(size("pk", V::S("POST#x".into())), 2 + 6);
        assert_eq!(size("n", V::N("12345".into())), 1 + 3 + 1, "two digits a byte, plus one");
        assert_eq!(size("n", V::N("0.0100".into())), 1 + 1 + 1, "leading and trailing zeros are not significant");
        assert_eq!(size("b", V::Bool(true)), 1 + 1);
        assert_eq!(size("m", V::M([("a".to_owned(), V::S("bc".into()))].into())), 1 + 3 + (1 + 1 + 2));
        assert_eq!(size("l", V::L(vec![V::Null(true), V::S("xy".into())])), 1 + 3 + (1 + 1) + (1 + 2));
    }
}
