//! `herald-sandbox`: the platform simulators on their own, for poking at by hand.

use std::net::{Ipv4Addr, SocketAddr};

use clap::Parser;
use herald_sandbox::SandboxConfig;

#[derive(Parser)]
#[command(name = "herald-sandbox", about = "Local simulators of X, Facebook, Instagram and LinkedIn.")]
struct Args {
    /// Loopback port (0: any free port).
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// Seed for every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let running = herald_sandbox::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)),
        SandboxConfig { seed: args.seed, ..SandboxConfig::default() },
    )
    .await?;
    println!("sandbox listening on {} (state: {}/_sandbox)", running.url, running.url);
    tokio::signal::ctrl_c().await?;
    running.stop();
    Ok(())
}
