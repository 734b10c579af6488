//! Benchmark: the retry worker through the local stack.
//!
//! 1. Throughput: `N` posts to X wait in the due index; one sweep queues their attempts and the
//!    worker (batches of up to 10, 10 at a time, as the `retries` function runs) drains the work
//!    queue in moto. Reports posts per second and SQS calls per job.
//! 2. Batch concurrency: with the same injected platform latency on every call, the time the
//!    handler takes for a batch of 10 messages against a batch of 1 (median of several runs).
//!
//! Prints a Markdown section for docs/benchmarks.md.

use std::time::{Duration, Instant};

use herald::worker::{Worker, poll_once};
use herald_testkit::TestApp;
use serde_json::json;

/// Injected latency of every X call in the batch measurement.
const PLATFORM_LATENCY_MS: u64 = 200;
/// Runs per batch size (the median is reported); `HERALD_BENCH_CHECK` (CI's smoke run) takes one.
fn batch_runs() -> usize {
    if std::env::var_os("HERALD_BENCH_CHECK").is_some() { 1 } else { 7 }
}

/// Submits `count` posts to X due in a minute (nothing is attempted at submission); returns ids.
async fn scheduled_posts(app: &TestApp, account: &str, count: usize, tag: &str) -> Vec<String> {
    let at = (app.clock_now() + time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let body = json!({ "user_id": "user-1", "targets": [{ "account_id": account }], "text": format!("{tag} {i}"), "scheduled_at": at });
        let (status, post) = app.post(body, None).await;
        assert_eq!(status, 202, "{post}");
        ids.push(post["id"].as_str().expect("id").to_owned());
    }
    ids
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let herald_testkit::Bench { size: posts, counts, env, app, account } = herald_testkit::Bench::start().await;
    let worker = Worker::new(app.state.clone(), 10);
    // The sweep's shard jobs (what the schedule's sweep fans out into), handled at once.
    let sweep = herald_testkit::sweep_event();

    // 1. Throughput through SQS (moto).
    scheduled_posts(&app, &account, posts, "throughput").await;
    // Herald's clock alone (the test kit's `advance` would move the queue's too): the posts' own
    // jobs stay delayed in the queue, so the run measures the sweep's jobs, one per post.
    app.clock.advance(time::Duration::minutes(1));
    let (_, _, s0) = counts.snapshot();
    let started = Instant::now();
    assert!(worker.handle_batch(sweep.clone()).await.batch_item_failures.is_empty());
    let mut done = 0;
    while done < posts {
        let stats = poll_once(&env.aws.sqs, &env.resources.work_queue_url, &worker, Duration::from_secs(1))
            .await
            .expect("poll");
        assert_eq!(stats.failed, 0);
        done += stats.received;
    }
    let wall = started.elapsed().as_secs_f64();
    let (_, _, s1) = counts.snapshot();
    let published = app.published(herald_sandbox::Platform::X).len();
    assert_eq!(published, posts, "every queued post published once");

    // 2. A batch of 10 against a batch of 1, without and with the same latency on every
    //    platform call.
    let mut rows = Vec::new();
    for latency in [0, PLATFORM_LATENCY_MS] {
        app.browser.delete(format!("{}/_sandbox/faults", app.sandbox.url)).send().await.expect("sandbox");
        if latency > 0 {
            let slow =
                json!({ "method": "POST", "path": "/x/api/2/tweets", "kind": { "type": "slow", "millis": latency } });
            app.browser.post(format!("{}/_sandbox/faults", app.sandbox.url)).json(&slow).send().await.expect("sandbox");
        }
        let mut times = [Vec::new(), Vec::new()];
        let mut dynamodb_calls = 0;
        for run in 0..batch_runs() {
            for (slot, size) in [(0usize, 1usize), (1, 10)] {
                let ids = scheduled_posts(&app, &account, size, &format!("batch {latency} {run} {size}")).await;
                app.clock.advance(time::Duration::minutes(1));
                let records =
                    ids.iter().enumerate().map(|(i, id)| app.publish_record(id, &account, &format!("b{i}"))).collect();
                let (d0, _, _) = counts.snapshot();
                let started = Instant::now();
                let response = worker.handle_batch(herald_testkit::sqs_event(records)).await;
                times[slot].push(started.elapsed().as_secs_f64() * 1000.0);
                assert!(response.batch_item_failures.is_empty());
                if size == 10 {
                    dynamodb_calls += counts.snapshot().0 - d0;
                }
            }
        }
        let [one, ten] = times.map(median);
        rows.push((latency, one, ten, dynamodb_calls as f64 / (batch_runs() * 10) as f64));
    }

    println!("## Retry worker: throughput and batch concurrency\n");
    println!("Throughput: {posts} posts to X queued by one sweep, drained from SQS (moto) by the worker");
    println!("(batches of up to 10, 10 at a time).\n");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| posts published per second through the local stack | {:.1} |", posts as f64 / wall);
    println!(
        "| SQS calls per job (the sweep's batched sends; receive and delete per batch) | {:.2} |",
        (s1 - s0) as f64 / posts as f64
    );
    println!();
    println!(
        "Batch concurrency: the handler's time for one SQS event of 1 and of 10 publish jobs, median of {} runs,",
        batch_runs()
    );
    println!("without and with every X call delayed by the sandbox.\n");
    println!("| X call latency | 1 message | 10 messages | ratio | DynamoDB calls per message |");
    println!("|---|---|---|---|---|");
    for (latency, one, ten, calls) in &rows {
        println!("| {latency} ms | {one:.0} ms | {ten:.0} ms | {:.2} | {calls:.1} |", ten / one);
    }
    if let Ok(out) = std::env::var("HERALD_BENCH_OUT") {
        let batches: Vec<_> = rows
            .iter()
            .map(|(latency, one, ten, calls)| json!({ "latency_ms": latency, "one_ms": one, "ten_ms": ten, "dynamodb_per_message": calls }))
            .collect();
        let figures = json!({ "posts_per_second": posts as f64 / wall, "sqs_per_job": (s1 - s0) as f64 / posts as f64, "batches": batches });
        std::fs::write(std::path::Path::new(&out).join("worker.json"), figures.to_string())
            .expect("writes the figures");
    }
    let (_, one0, ten0, _) = rows[0];
    let (_, one1, ten1, _) = rows[1];
    println!();
    println!(
        "Adding {PLATFORM_LATENCY_MS} ms to every platform call adds {:.0} ms to a batch of 1 and {:.0} ms to a batch of 10 \
         (one after another, it would add {} ms).",
        one1 - one0,
        ten1 - ten0,
        PLATFORM_LATENCY_MS * 10
    );
}
