//! `herald dev`: the whole stack on this machine, for trying Herald and for development.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use herald::aws::AwsClients;
use herald::bootstrap::bootstrap;
use herald::config::{Config, Env};
use herald::local::{Launcher, LocalAws};
use herald::platforms::settings::PlatformEndpoints;
use herald::schema::ResourceNames;
use herald::store::{Origin, TenantStore};
use tokio::net::TcpListener;

#[derive(Args)]
pub struct DevArgs {
    /// Port for Herald's HTTP functions (loopback only; 0: any free port).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Port for the DynamoDB emulator (0: any free port).
    #[arg(long, default_value_t = 4510)]
    dynamodb_port: u16,
    /// Port for the KMS + SQS emulator (0: any free port).
    #[arg(long, default_value_t = 4511)]
    aws_port: u16,
    /// Port for the platform sandbox (0: any free port).
    #[arg(long, default_value_t = 4000)]
    sandbox_port: u16,
    /// Seed for the sandbox's random choices (ids, tokens, injected faults).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The repository root (for .venv and infra/moto_server.py).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Real platform apps instead of the sandbox's: a JSON file `{"x": {…}, "meta": {…},
    /// "linkedin": {…}, "threads": {…}}`, each value the platform's secret as Herald reads it from Secrets Manager
    /// (docs/operations.md); a platform left out keeps the sandbox's development app. Point the
    /// platform at the real API with its `HERALD_*_URL` variables.
    #[arg(long)]
    apps: Option<PathBuf>,
}

pub async fn run(args: DevArgs) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("port {} is taken; pass --port", args.port))?;
    let port = listener.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");

    let launcher = Launcher::in_repo(&args.repo);
    let (dynamodb_port, aws_port) = (args.dynamodb_port, args.aws_port);
    let local = tokio::task::spawn_blocking(move || LocalAws::start(&launcher, dynamodb_port, aws_port))
        .await?
        .map_err(|e| anyhow::anyhow!(e))
        .context("starting the AWS emulation")?;
    let sandbox = herald_sandbox::start(
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, args.sandbox_port)),
        herald_sandbox::SandboxConfig { seed: args.seed, dev_fixtures: true, herald_url: base.clone(), clock: None },
    )
    .await
    .with_context(|| format!("starting the platform sandbox on port {}", args.sandbox_port))?;
    let repo = args.repo.clone();
    let pds = tokio::task::spawn_blocking(move || herald::local::LocalPds::start(&repo, None, false))
        .await?
        .map_err(|e| anyhow::anyhow!(e))
        .context("starting the Bluesky PDS")?;
    let settings = local.settings();
    let aws = AwsClients::from_sdk_config(&herald::local::sdk_config(&settings).await, &settings);
    let names = ResourceNames::with_prefix("herald");
    let resources =
        bootstrap(&aws, &names).await.map_err(|e| anyhow::anyhow!(e)).context("creating the table, key and queues")?;
    // The sandbox's apps (or the operator's, `--apps`) as secrets, read back as the functions read
    // them at cold start.
    let mut values = herald_sandbox::dev::app_secrets();
    if let Some(path) = &args.apps {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let given: serde_json::Value = serde_json::from_str(&text).context("--apps must be a JSON object")?;
        for (slot, platform) in values.iter_mut().zip(["x", "meta", "linkedin", "threads"]) {
            if let Some(secret) = given.get(platform) {
                *slot = secret.to_string();
            }
        }
    }
    let app_secrets = herald::bootstrap::store_app_secrets(&aws.secrets, &names, values.each_ref().map(String::as_str))
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("storing the platform apps' secrets")?;

    let clock = crate::clock();
    let tenants = TenantStore::new(aws.dynamodb.clone(), &resources.table, clock.clone());
    let origins = vec![Origin::parse(&base)?, Origin::parse(&format!("http://localhost:{port}"))?];
    let (tenant, key) = tenants.create("Development", origins).await?;

    // The configuration the functions would read from this environment, with the local stack
    // wherever a variable is unset (`local::dev_defaults`).
    let defaults = herald::local::dev_defaults(
        &resources,
        &app_secrets,
        &PlatformEndpoints::sandbox(&sandbox.url)?.with_pds(&pds.url, &pds.plc)?,
        &base.parse()?,
    );
    let mut config = Config::from_env(&Env::from_process().or(defaults)).context("the HERALD_* variables")?;
    config.aws = settings.clone();
    herald::secrets::load(&aws.secrets, &config.app_secrets, &mut config.apps)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("reading the platform apps' secrets")?;

    let dynamodb = settings.dynamodb_endpoint.as_ref().map(|u| u.to_string()).unwrap_or_default();
    let services = settings.endpoint.as_ref().map(|u| u.to_string()).unwrap_or_default();
    println!(
        r#"
Herald is running locally.

  API (every function):  {base}
  Dev tenant:            {tenant_id}
  Dev API key:           {key}
  DynamoDB (moto):       {dynamodb}
  KMS, SQS, Secrets Manager (moto): {services}
  Work queue:            {queue}
  Platform sandbox:      {sandbox}   (X, Facebook, Instagram, LinkedIn, Threads; state at {sandbox}/_sandbox)
                         Herald's platform endpoints point at it.
  Mastodon:              {sandbox}/mastodon   (a sandbox server: enter this address on Herald's page)
  Bluesky:               {pds}   (the real reference PDS, PLC directory {plc})
                         Make an account and an app password to connect with:
  curl -s {pds}/xrpc/com.atproto.server.createAccount -H 'content-type: application/json' \
       -d '{{"handle":"ada.test","email":"ada@example.test","password":"a long password"}}'
  curl -s {pds}/xrpc/com.atproto.server.createAppPassword -H 'content-type: application/json' \
       -H 'Authorization: Bearer <accessJwt from above>' -d '{{"name":"herald"}}'
  then open a connect link for "bluesky" (POST /v1/connect-links) and enter ada.test and it;
  or choose AT Protocol OAuth (PATCH /v1/tenant {{"connectors": {{"bluesky": "oauth"}}}}), enter
  ada.test, and sign in on the PDS's own page with the account's password.

Try:
  curl -s {base}/v1/tenant -H 'Authorization: Bearer {key}'
  curl -s {base}/v1/users/user-1/accounts -H 'Authorization: Bearer {key}'
  curl -s -i {base}/v1/tenant          # no key: 401 problem document

Operator commands against this stack (in another shell):
  export AWS_REGION={region} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
         AWS_ENDPOINT_URL={services} AWS_ENDPOINT_URL_DYNAMODB={dynamodb} \
         HERALD_TABLE={table} HERALD_QUEUE_URL={queue} HERALD_DLQ_URL={dlq}
  cargo run -q -p herald-cli -- tenant create --name acme --allowed-origin https://app.acme.test
  cargo run -q -p herald-cli -- queue ping
  cargo run -q -p herald-cli -- dlq list

Logs follow as JSON lines. Stop with Ctrl-C (the emulators stop with it; their data is not kept).
"#,
        tenant_id = tenant.id,
        key = key.reveal(),
        queue = resources.work_queue_url,
        dlq = resources.dead_letter_queue_url,
        table = resources.table,
        region = herald::local::LOCAL_REGION,
        sandbox = sandbox.url,
        pds = pds.url,
        plc = pds.plc,
    );

    let result = crate::serve(listener, config, &aws, Arc::clone(&clock), crate::shutdown_signal()).await;
    sandbox.stop();
    drop(pds);
    drop(local);
    result
}
