//! `herald`: the local runner and the operator's commands.
//!
//! - `herald dev`: the whole stack on this machine (AWS emulation, every function on one port,
//!   the queue poller) with a development tenant; prints what to try.
//! - `herald serve`: every function on one port against the AWS named by the environment.
//! - `herald bootstrap`, `herald tenant create|add-key`, `herald queue ping`: operations.
//! - `herald verify --platform P --tenant T --user U --account A`: the contract check against a
//!   platform with a connected test account (docs/operations.md, "Verify a platform").

mod dev;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use herald::aws::AwsClients;
use herald::clock::SharedClock;
use herald::config::{Config, Env};
use herald::http::AppState;
use herald::queue::dead::{DeadLetterQueue, Filter, Letter};
use herald::queue::{Job, WorkQueue};
use herald::schema::ResourceNames;
use herald::store::{Origin, TenantStore};
use herald::worker::Worker;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "herald", version, about = "Herald: connect social accounts and publish for your users.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything locally: moto, bootstrap, every function on one port, the queue poller.
    Dev(dev::DevArgs),
    /// Serve every HTTP function on one port and poll the work queue, configured by the environment.
    Serve {
        /// Loopback address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
    },
    /// Create the table, KMS key and queues (for an emulator named by AWS_ENDPOINT_URL*).
    Bootstrap {
        #[arg(long, default_value = "herald")]
        prefix: String,
    },
    /// Tenants and their API keys (needs HERALD_TABLE and AWS access).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// The work queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Check the calls Herald depends on against the platform, with a connected test account:
    /// token refresh, a text post read back and deleted, a media post, the rate-limit headers.
    /// It posts on the account: use a test account. Exits 1 when anything differs.
    Verify(VerifyArgs),
    /// The dead-letter queue: jobs whose attempts ran out, and messages SQS gave up on.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

/// Which dead letters: all of them, or those of one post and/or account.
#[derive(clap::Args)]
struct DlqSelection {
    #[arg(long)]
    post: Option<String>,
    #[arg(long)]
    account: Option<String>,
}

impl DlqSelection {
    fn filter(&self) -> Result<Filter> {
        Ok(Filter {
            post: self.post.as_deref().map(str::parse).transpose()?,
            account: self.account.as_deref().map(str::parse).transpose()?,
        })
    }
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The platform the account is on (`x`, `facebook`, `instagram`, `linkedin`).
    #[arg(long)]
    platform: String,
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    user: String,
    /// The connected account to post as (an `acc_…` id from `GET /v1/users/{user}/accounts`).
    #[arg(long)]
    account: String,
    /// A public JPEG for the media post (Instagram needs one for any post).
    #[arg(long)]
    media_url: Option<url::Url>,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters (nothing is removed): one line each, or JSON with `--json`.
    List {
        #[command(flatten)]
        selection: DlqSelection,
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back to the work queue; exhausted targets are reopened with fresh
    /// attempts. Needs `--all`, `--post` or `--account`.
    Redrive {
        #[command(flatten)]
        selection: DlqSelection,
        #[arg(long, conflicts_with_all = ["post", "account"])]
        all: bool,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first API key (shown once; only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// An origin users may be sent back to after connecting (repeatable).
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
    },
    /// Issue another API key for a tenant (for rotation).
    AddKey {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Send a ping job through the work queue; the worker logs it with its queue latency.
    Ping,
    /// Send a refresh sweep now (EventBridge sends one every 15 minutes on AWS).
    Sweep,
}

fn clock() -> SharedClock {
    Arc::new(herald::SystemClock)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    herald::telemetry::init_stderr();
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Serve { listen } => {
            let config = Config::from_process_env()?;
            let aws = AwsClients::load(&config.aws).await;
            let listener = TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
            serve(listener, config, &aws, clock(), shutdown_signal()).await
        }
        Command::Bootstrap { prefix } => {
            let aws = AwsClients::load(&Config::aws_from_env(&Env::from_process())?).await;
            let resources = herald::bootstrap::bootstrap(&aws, &ResourceNames::with_prefix(&prefix))
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("HERALD_TABLE={}", resources.table);
            println!("HERALD_KMS_KEY_ID={}", resources.key_id);
            println!("HERALD_QUEUE_URL={}", resources.work_queue_url);
            println!("HERALD_DLQ_URL={}", resources.dead_letter_queue_url);
            Ok(())
        }
        Command::Tenant(command) => {
            let env = Env::from_process();
            let table = env.required("HERALD_TABLE")?.to_owned();
            let aws = AwsClients::load(&Config::aws_from_env(&env)?).await;
            let tenants = TenantStore::new(aws.dynamodb.clone(), table, clock());
            match command {
                TenantCommand::Create { name, allowed_origins } => {
                    let origins = allowed_origins.iter().map(|o| Origin::parse(o)).collect::<Result<Vec<_>, _>>()?;
                    let (tenant, key) = tenants.create(&name, origins).await?;
                    println!("tenant:  {}", tenant.id);
                    println!("api key: {}", key.reveal());
                    eprintln!("The key is shown only now; Herald stores its hash.");
                }
                TenantCommand::AddKey { tenant } => {
                    let tenant = tenant.parse()?;
                    if tenants.get(&tenant).await?.is_none() {
                        anyhow::bail!("no tenant {tenant}");
                    }
                    println!("api key: {}", tenants.add_key(&tenant).await?.reveal());
                }
            }
            Ok(())
        }
        Command::Queue(command) => {
            let env = Env::from_process();
            let url = env.required("HERALD_QUEUE_URL")?.to_owned();
            let aws = AwsClients::load(&Config::aws_from_env(&env)?).await;
            let job = match command {
                QueueCommand::Ping => Job::Ping { note: "herald queue ping".into() },
                QueueCommand::Sweep => Job::Sweep,
            };
            WorkQueue::new(aws.sqs.clone(), url, clock()).enqueue(job, Duration::ZERO).await?;
            println!("job enqueued");
            Ok(())
        }
        Command::Dlq(command) => dlq(command).await,
        Command::Verify(args) => {
            let mut config = Config::from_process_env()?;
            let aws = AwsClients::load(&config.aws).await;
            herald::startup::prepare(herald::startup::Function::Retries, &aws, &mut config)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let report = verify(&herald::app::App::new(config, &aws, clock()), &args).await?;
            print!("{report}");
            if !report.passed() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Finds the account and runs the contract check with it.
pub(crate) async fn verify(app: &herald::app::App, args: &VerifyArgs) -> Result<herald::verify::Report> {
    let platform: herald::domain::Platform = args.platform.parse().map_err(|e| anyhow::anyhow!("--platform: {e}"))?;
    let (tenant, user, id) = (args.tenant.parse()?, args.user.parse()?, args.account.parse()?);
    let account =
        app.accounts.get(&tenant, &user, &id).await?.with_context(|| format!("no account {id} for that user"))?;
    anyhow::ensure!(account.platform == platform, "account {id} is on {}, not {platform}", account.platform);
    let check = herald::verify::Verify {
        platforms: &app.platforms,
        tokens: &app.tokens,
        clock: app.clock.as_ref(),
        account: &account,
        media_url: args.media_url.clone(),
    };
    eprintln!("verifying {platform} as {} ({})", account.name, account.id);
    Ok(check.run().await)
}

async fn dlq(command: DlqCommand) -> Result<()> {
    let env = Env::from_process();
    let aws = AwsClients::load(&Config::aws_from_env(&env)?).await;
    let dead = DeadLetterQueue::new(aws.sqs.clone(), env.required("HERALD_DLQ_URL")?);
    match command {
        DlqCommand::List { selection, json } => {
            let entries = dead.list(&selection.filter()?).await?;
            for entry in &entries {
                let line = match &entry.letter {
                    Letter::Exhausted(letter) => serde_json::json!({
                        "message_id": entry.message_id,
                        "kind": "exhausted",
                        "job": letter.job,
                        "reason": letter.reason,
                        "attempts": letter.history.len(),
                        "dead_at": letter.dead_at,
                        "history": letter.history,
                    }),
                    Letter::Undeliverable(envelope) => serde_json::json!({
                        "message_id": entry.message_id,
                        "kind": "undeliverable",
                        "job": envelope.job,
                        "receive_count": entry.receive_count,
                    }),
                    Letter::Malformed { bytes } => serde_json::json!({
                        "message_id": entry.message_id,
                        "kind": "malformed",
                        "bytes": bytes,
                    }),
                };
                if json {
                    println!("{line}");
                } else {
                    println!("{}", summary(&line));
                }
            }
            eprintln!("{} dead letter(s)", entries.len());
        }
        DlqCommand::Redrive { selection, all } => {
            let filter = selection.filter()?;
            if !all && filter == Filter::all() {
                anyhow::bail!("say which dead letters to redrive: --all, --post or --account");
            }
            let table = env.required("HERALD_TABLE")?.to_owned();
            let work = WorkQueue::new(aws.sqs.clone(), env.required("HERALD_QUEUE_URL")?, clock());
            let posts = herald::store::PostStore::new(aws.dynamodb.clone(), table, clock());
            let report = dead.redrive(&filter, &posts, &work).await?;
            println!("requeued {}; {} malformed message(s) left in place", report.requeued, report.malformed);
        }
    }
    Ok(())
}

/// One line for a listed dead letter: id, kind, job, and the reason when there is one.
fn summary(line: &serde_json::Value) -> String {
    let job = &line["job"];
    let mut out = format!("{}  {}", line["message_id"].as_str().unwrap_or(""), line["kind"].as_str().unwrap_or(""));
    if let Some(kind) = job["type"].as_str() {
        out.push_str(&format!("  {kind}"));
    }
    for key in ["post", "account"] {
        if let Some(value) = job[key].as_str() {
            out.push_str(&format!("  {key}={value}"));
        }
    }
    if let Some(code) = line["reason"]["code"].as_str() {
        out.push_str(&format!(
            "  {code} after {} attempts: {}",
            line["attempts"],
            line["reason"]["message"].as_str().unwrap_or("")
        ));
    }
    out
}

/// Serves every HTTP function's routes and runs the queue poller until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Config,
    aws: &AwsClients,
    clock: SharedClock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = AppState::new(config, aws, clock);
    let worker = Worker::new(state.clone(), 10);
    let (stop_tx, stop_rx) = watch::channel(false);
    // The sweep on the schedule EventBridge runs it on when deployed: at once, then every 15 minutes.
    let ticks = futures_util::stream::unfold(
        (tokio::time::interval(herald::sweep::SWEEP_PERIOD), stop_rx.clone()),
        |(mut interval, mut stop)| async move {
            tokio::select! {
                _ = interval.tick() => Some(((), (interval, stop))),
                _ = stop.changed() => None,
            }
        },
    );
    let sweeps = tokio::spawn(herald::worker::schedule_sweeps(state.queue.clone(), ticks));
    let poller =
        tokio::spawn(herald::worker::poll_until(aws.sqs.clone(), state.queue.url().to_owned(), worker, stop_rx));
    axum::serve(listener, herald::http::all_routes(state)).with_graceful_shutdown(shutdown).await?;
    let _ = stop_tx.send(true);
    let _ = poller.await;
    let _ = sweeps.await;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
