//! Benchmark: the sweep at scale (AWS audit F4). Seeds `N` due targets (their due-index items,
//! written with `BatchWriteItem`) and `M` grants in the expiry index (real accounts, sealed as
//! connections are; their access tokens expire within the warning horizon but past the refresh
//! horizon, so the sweep reads and passes over each), then runs one sweep through the work queue
//! (moto's SQS) as the `retries` function would: the schedule's job, then every job it and its
//! continuations queue, each message handled alone with a 60 s deadline (the function's timeout).
//! The publish jobs the sweep queues are counted, not run (they are delayed past the run).
//!
//! Usage: `bench-sweep [N] [M]` (default 100000 each). Prints a Markdown section; writes
//! `$HERALD_BENCH_OUT/sweep.json`. With `HERALD_BENCH_CHECK` set, fails when a job did more than
//! its bound, a due target or grant was missed, or a grant passed over cost a KMS call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures_util::StreamExt as _;
use herald::domain::{AccountId, Platform, PostId, TenantId};
use herald::queue::{Envelope, Job};
use herald::startup::Function;
use herald::sweep::{DUE_PAGE, GRANT_PAGE, PAGES_PER_JOB};
use herald_testkit::TestEnv;
use serde_json::json;

#[tokio::main]
async fn main() {
    let due_targets: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let grants: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let counts = Arc::new(herald::aws::CallCounts::default());
    let env = TestEnv::fresh_with(Some(counts.clone())).await;
    let clock = herald::clock::ManualClock::new(time::OffsetDateTime::now_utc());
    let now = herald::Clock::now(&clock);
    let mut config = env.config();
    config.apps = env.dev_apps();
    let app = env.function_state(Function::Retries, config.clone(), Arc::new(clock.clone())).await;

    // Due targets, 14 minutes from now: queued by the sweep with a delay that outlasts the run.
    let seeding = Instant::now();
    let tenant = TenantId::generate();
    let at = now + time::Duration::minutes(14);
    let items: Vec<WriteRequest> = (0..due_targets)
        .map(|i| {
            let post = PostId::generate(now + time::Duration::milliseconds(i as i64));
            let account = AccountId::generate();
            let (gsi2pk, gsi2sk) = herald::store::posts::due_keys(&tenant, &post, &account, at);
            let item = [
                ("pk", format!("POST#{tenant}#{post}")),
                ("sk", format!("TARGET#{account}")),
                ("gsi2pk", gsi2pk),
                ("gsi2sk", gsi2sk),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), AttributeValue::S(v)))
            .collect();
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
        })
        .collect();
    let batches: Vec<Vec<WriteRequest>> = items.chunks(25).map(<[WriteRequest]>::to_vec).collect();
    futures_util::stream::iter(batches)
        .for_each_concurrent(4, |batch| {
            let dynamodb = env.aws.dynamodb.clone();
            let table = env.resources.table.clone();
            async move {
                let mut pending = batch;
                while !pending.is_empty() {
                    let out = dynamodb
                        .batch_write_item()
                        .request_items(&table, pending)
                        .send()
                        .await
                        .expect("seeding writes");
                    pending = out.unprocessed_items.and_then(|mut u| u.remove(&table)).unwrap_or_default();
                }
            }
        })
        .await;
    // Grants: expiring in two days (inside the 7-day warning horizon, past the 1-hour refresh
    // horizon), refreshable, so each is read and passed over.
    let user: herald::domain::UserId = "bench-user".parse().unwrap();
    let tokens = herald::tokens::TokenSet::new("bench-access").with_refresh_token("bench-refresh");
    futures_util::stream::iter(0..grants)
        .for_each_concurrent(8, |i| {
            let new = herald::store::NewAccount {
                tenant: tenant.clone(),
                user: user.clone(),
                platform: Platform::X,
                platform_account_id: format!("{}", 1_000_000 + i),
                name: format!("bench {i}"),
                kind: herald::domain::AccountKind::Member,
                scopes: vec!["tweet.write".into()],
                access_expires_at: Some(now + time::Duration::days(2)),
                refresh_expires_at: None,
            };
            let accounts = &app.accounts;
            let tokens = &tokens;
            async move {
                accounts.insert(new, tokens).await.expect("an account");
            }
        })
        .await;
    let seeded_s = seeding.elapsed().as_secs_f64();

    // The sweep: the schedule's job, then whatever it queues, one message at a time, by a
    // function instance of its own (the seeding one's data keys are not in its cache).
    drop(app);
    let app = env.function_state(Function::Retries, config, Arc::new(clock.clone())).await;
    let worker = herald::worker::Worker::new(app, 10);
    let (d0, k0, s0) = counts.snapshot();
    let started = Instant::now();
    let sweep = Envelope { job: Job::Sweep, not_before: None, enqueued_at: 0 };
    let mut pending = vec![serde_json::to_string(&sweep).unwrap()];
    let mut jobs: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut longest, mut longest_kind) = (Duration::ZERO, "");
    let mut published_early = 0;
    let sqs = &env.aws.sqs;
    let url = &env.resources.work_queue_url;
    loop {
        for body in pending.drain(..) {
            let envelope: Envelope = serde_json::from_str(&body).unwrap();
            let kind = match envelope.job {
                Job::Sweep => "sweep",
                Job::SweepDue { .. } => "sweep_due",
                Job::SweepGrants { .. } => "sweep_grants",
                // A publish job whose delay ran out during a long run: counted, not run.
                _ => {
                    published_early += 1;
                    continue;
                }
            };
            *jobs.entry(kind).or_default() += 1;
            let event = herald_testkit::sqs_event(vec![json!({ "messageId": "m", "body": body })]);
            let took = Instant::now();
            let response = worker.handle_batch_until(event, Some(Instant::now() + Duration::from_secs(60))).await;
            assert!(response.batch_item_failures.is_empty(), "a {kind} job failed");
            if took.elapsed() > longest {
                (longest, longest_kind) = (took.elapsed(), kind);
            }
        }
        // The publish jobs wait out their 14-minute delay (runs longer than that see some).
        let out = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            pending.push(message.body.unwrap_or_default());
            sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle.unwrap()).send().await.unwrap();
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (d1, k1, s1) = counts.snapshot();
    let queued: usize = env
        .queue_attributes(url)
        .await
        .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        + published_early;

    println!("## Sweep at scale\n");
    println!(
        "{due_targets} due targets and {grants} grants in the expiry index (`tests/bench/sweep.rs`; seeded in {seeded_s:.0} s), one sweep through moto's SQS, each job handled alone with a 60 s deadline. A job reads at most {PAGES_PER_JOB} pages ({DUE_PAGE} due targets or {GRANT_PAGE} grants each).\n"
    );
    println!("| measure | value |");
    println!("|---|---|");
    for (kind, n) in &jobs {
        println!("| `{kind}` jobs | {n} |");
    }
    println!("| publish jobs queued | {queued} |");
    println!("| DynamoDB calls | {} |", d1 - d0);
    println!("| KMS calls | {} |", k1 - k0);
    println!("| SQS calls (sends, batches of 10, and the bench's own receives and deletes) | {} |", s1 - s0);
    println!("| longest job | {:.2} s (`{longest_kind}`) |", longest.as_secs_f64());
    println!("| whole sweep, one job at a time on moto | {wall:.0} s |");
    if let Ok(out) = std::env::var("HERALD_BENCH_OUT") {
        let figures = json!({ "due_targets": due_targets, "grants": grants, "jobs": jobs, "queued": queued, "dynamodb": d1 - d0, "kms": k1 - k0, "sqs": s1 - s0, "longest_s": longest.as_secs_f64(), "wall_s": wall });
        std::fs::write(std::path::Path::new(&out).join("sweep.json"), figures.to_string()).expect("writes the figures");
    }
    if std::env::var_os("HERALD_BENCH_CHECK").is_some() {
        let bound = |items: usize, page: usize| 8 + items.div_ceil(page * PAGES_PER_JOB) + 8;
        let checks = [
            (queued == due_targets, format!("{queued} of {due_targets} due targets queued")),
            (jobs["sweep_due"] <= bound(due_targets, DUE_PAGE as usize), format!("{} due jobs", jobs["sweep_due"])),
            (
                jobs["sweep_grants"] <= bound(grants, GRANT_PAGE as usize),
                format!("{} grant jobs", jobs["sweep_grants"]),
            ),
            (
                jobs["sweep_grants"] >= grants.div_ceil(GRANT_PAGE as usize * PAGES_PER_JOB),
                "too few grant jobs: a job did more than its pages".into(),
            ),
            // Every grant is passed over: the record says it is refreshable, no token is opened.
            (k1 == k0, format!("{} KMS calls by a sweep that refreshes nothing", k1 - k0)),
        ];
        for (ok, what) in checks {
            if !ok {
                eprintln!("sweep benchmark: {what}");
                std::process::exit(1);
            }
        }
    }
}
