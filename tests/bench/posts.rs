//! Benchmark: AWS calls and CPU time per published post on the warm path.
//!
//! Herald runs in this process against moto (DynamoDB, KMS, SQS) and the platform sandbox (also
//! in this process). After a warm-up, it publishes `N` text posts to X through the HTTP API and
//! reports DynamoDB, KMS and SQS calls per post (counted by an SDK interceptor) and this
//! process's CPU time per post (which includes the sandbox's share; moto runs elsewhere).
//! Prints a Markdown section for docs/benchmarks.md and writes the figures to
//! `$HERALD_BENCH_OUT/posts.json` when that is set. With `HERALD_BENCH_CHECK` set (CI's smoke
//! run), it fails when a warm publish makes more AWS calls than issue 8's targets allow.

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
    // Everything from the first post on, data-key decryption included (KMS calls per post over the run).
    let (_, kms_start, _) = counts.snapshot();
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
    // One more post, after the counts: its items as stored.
    let (_, last) = app.post(body(999_999), None).await;
    let sizes = app.item_sizes(last["id"].as_str().unwrap()).await;
    let largest = sizes.iter().map(|(_, bytes)| *bytes).max().unwrap_or(0);

    // Short-lived instances (AWS audit F6): each starts, publishes once and is gone, as Lambda
    // environments under a burst. What they take from X's app-wide budget is what they used.
    let before = app.app_budget_used(herald::domain::Platform::X).await;
    for i in 0..INSTANCES {
        let (status, post) = app.post_from_new_instance(body(100_000 + i)).await;
        assert_eq!(post["targets"][0]["status"], "published", "{status}: {post}");
    }
    let instance_units = app.app_budget_used(herald::domain::Platform::X).await - before;
    let per = |a: u64, b: u64| (b - a) as f64 / posts as f64;
    let (dynamodb, kms, sqs) = (per(d0, d1), per(k0, k1), per(s0, s1));
    let kms_run = (k1 - kms_start) as f64 / (posts + 5) as f64;
    let cpu_ms = cpu * 1000.0 / posts as f64;
    println!("## Publish: AWS calls and CPU per post (warm path)\n");
    println!(
        "{posts} text posts to X through `POST /v1/posts`, sequentially, after 5 warm-up posts (`tests/bench/posts.rs`).\n"
    );
    println!("| measure | per post |");
    println!("|---|---|");
    println!("| DynamoDB calls | {dynamodb:.2} |");
    println!("| KMS calls | {kms:.2} |");
    println!("| SQS calls | {sqs:.2} |");
    println!("| KMS calls over the whole run of {} posts, cold data-key cache included | {kms_run:.4} |", posts + 5);
    println!("| CPU time in Herald's process (incl. the in-process sandbox and HTTP client) | {cpu_ms:.2} ms |");
    println!(
        "| wall time through moto (not a Herald figure: moto serves ~150 calls/s) | {:.1} ms |",
        wall * 1000.0 / posts as f64
    );
    println!("\n## Item sizes after a warm publish\n");
    println!(
        "One more post, as stored once published, measured by DynamoDB's rules for item size (`dynamodb_item_size`): the unit model below assumes each under 1 KB, one write unit per plain write and two per transactional one.\n"
    );
    println!("| item | bytes | write units per write (plain / transactional) |");
    println!("|---|---|---|");
    for (item, bytes) in &sizes {
        let units = bytes.div_ceil(1024);
        println!("| {item} | {bytes} | {units} / {} |", 2 * units);
    }
    println!("\n## App-wide budget: short-lived instances\n");
    println!(
        "{INSTANCES} posts instances (`TestApp::post_from_new_instance`: each its own clients, caches and leases) publish one X post each, as Lambda environments that serve one request and are reclaimed. Units taken from X's app-wide budget counter (leases included):\n"
    );
    println!("| instances | posts published | app-wide units consumed | bound |");
    println!("|---|---|---|---|");
    println!(
        "| {INSTANCES} | {INSTANCES} | {instance_units} | ≤ {INSTANCES}: an instance's first lease is the one unit it uses; one that publishes `n` times takes fewer than `2n` and at most `n + 9` |"
    );
    if let Ok(out) = std::env::var("HERALD_BENCH_OUT") {
        let figures = json!({ "item_bytes": largest, "posts": posts, "dynamodb": dynamodb, "kms": kms, "sqs": sqs, "kms_over_run": kms_run, "cpu_ms": cpu_ms, "instances": INSTANCES, "instance_units": instance_units });
        std::fs::write(std::path::Path::new(&out).join("posts.json"), figures.to_string()).expect("writes the figures");
    }
    // No DynamoDB call at all means the counters are not on the functions' clients: a check
    // that could not fail.
    if std::env::var_os("HERALD_BENCH_CHECK").is_some() && (dynamodb > 3.0 || dynamodb == 0.0 || kms > 0.0 || sqs > 0.0)
    {
        eprintln!(
            "a warm publish makes {dynamodb:.2} DynamoDB, {kms:.2} KMS and {sqs:.2} SQS calls; the targets are 3, 0 and 0"
        );
        std::process::exit(1);
    }
    // The unit model: a post and a target that keeps its outcome's event (no event item), each
    // under 1 KB.
    let kept = sizes.iter().any(|(item, _)| item == "target, with its outcome's event");
    if std::env::var_os("HERALD_BENCH_CHECK").is_some() && (sizes.len() != 2 || !kept || largest > 1024) {
        eprintln!(
            "a warm publish's items ({sizes:?}) are not a post and a target keeping its event, each under 1 KB, as the unit model assumes"
        );
        std::process::exit(1);
    }
    if std::env::var_os("HERALD_BENCH_CHECK").is_some() && instance_units > INSTANCES as u64 {
        eprintln!(
            "{INSTANCES} instances publishing once took {instance_units} app-wide units; the bound is {INSTANCES}"
        );
        std::process::exit(1);
    }
}

/// Short-lived instances, each publishing once.
const INSTANCES: usize = 100;
