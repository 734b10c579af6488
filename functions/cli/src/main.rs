//! `herald`: the local runner and the operator's commands.
//!
//! - `herald dev`: the whole stack on this machine (AWS emulation, every function on one port,
//!   the queue poller) with a development tenant; prints what to try.
//! - `herald serve`: every function on one port against the AWS named by the environment.
//! - `herald bootstrap`, `herald tenant create|add-key`, `herald queue ping`: operations.

mod dev;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use herald::aws::AwsClients;
use herald::clock::SharedClock;
use herald::config::{Config, Env};
use herald::http::AppState;
use herald::queue::{Job, WorkQueue, Worker};
use herald::schema::ResourceNames;
use herald::store::{Origin, TenantStore};
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
    }
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
    let poller =
        tokio::spawn(herald::queue::poll_until(aws.sqs.clone(), state.queue.url().to_owned(), worker, stop_rx));
    axum::serve(listener, herald::http::all_routes(state)).with_graceful_shutdown(shutdown).await?;
    let _ = stop_tx.send(true);
    let _ = poller.await;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
