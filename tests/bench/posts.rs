//! Benchmark: AWS calls and CPU time per published post on the warm path.
//!
//! Herald runs in this process against moto (DynamoDB, KMS, SQS) and the platform sandbox (also
//! in this process). After a warm-up, it publishes `N` text posts to X through the HTTP API and
//! reports DynamoDB, KMS and SQS calls per post (counted by an SDK interceptor) and this
//! process's CPU time per post (which includes the sandbox's share; moto runs elsewhere).
//! Prints a Markdown section for docs/benchmarks.md.

use std::time::Instant;

use serde_json::json;

/// User + system CPU seconds of this process, from /proc (Linux; clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() {
    let herald_testkit::Bench { size: posts, counts, env: _env, app, account } = herald_testkit::Bench::start().await;
    let body = |i: usize| json!({ "user_id": "user-1", "targets": [{ "account_id": account }], "text": format!("benchmark post {i}") });

    // Warm-up: caches (data keys, denial cache), connections.
    for i in 0..5 {
        let (status, _) = app.post(body(i), None).await;
        assert_eq!(status, 202);
    }
    let (d0, k0, s0) = counts.snapshot();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    for i in 0..posts {
        let (status, post) = app.post(body(1000 + i), None).await;
        assert_eq!(post["targets"][0]["status"], "published", "{status}: {post}");
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let (d1, k1, s1) = counts.snapshot();
    let per = |a: u64, b: u64| (b - a) as f64 / posts as f64;
    println!("## Publish: AWS calls and CPU per post (warm path)\n");
    println!("{posts} text posts to X through `POST /v1/posts`, sequentially, after 5 warm-up posts.\n");
    println!("| measure | per post |");
    println!("|---|---|");
    println!("| DynamoDB calls | {:.2} |", per(d0, d1));
    println!("| KMS calls | {:.2} |", per(k0, k1));
    println!("| SQS calls | {:.2} |", per(s0, s1));
    println!("| CPU time in Herald's process (incl. the in-process sandbox) | {:.2} ms |", cpu * 1000.0 / posts as f64);
    println!("| wall time through moto (not a Herald figure: moto is slow) | {:.1} ms |", wall * 1000.0 / posts as f64);
}
