//! The sweep fans out (AWS audit F4): the schedule's job only queues one job per shard of each
//! index; each shard job reads a bounded number of pages and leaves the rest, with its last key,
//! to a continuation job, sooner when its invocation's deadline is near; due targets are queued
//! in batches. Driven through the real queue (moto's SQS), jobs tallied by kind as they arrive.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use herald::queue::{Envelope, Job};
use herald::sweep::SweepSettings;
use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::{TestApp, TestEnv};
use serde_json::json;

/// Receives every message on the work queue, runs each batch (with `deadline`), and tallies the
/// jobs by kind; until the queue is empty.
async fn drain(env: &TestEnv, app: &TestApp, deadline: Option<Instant>) -> BTreeMap<String, usize> {
    let worker = app.worker(10).await;
    let sqs = &env.aws.sqs;
    let url = &env.resources.work_queue_url;
    let mut kinds = BTreeMap::new();
    loop {
        let out = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return kinds;
        }
        let mut records = Vec::new();
        for message in &messages {
            let body = message.body.clone().unwrap();
            let envelope: Envelope = serde_json::from_str(&body).unwrap();
            let kind = serde_json::to_value(&envelope.job).unwrap()["type"].as_str().unwrap().to_owned();
            *kinds.entry(kind).or_default() += 1;
            records.push(json!({ "messageId": message.message_id, "body": body }));
        }
        let response = worker.handle_batch_until(herald_testkit::sqs_event(records), deadline).await;
        assert!(response.batch_item_failures.is_empty());
        for message in messages {
            sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle.unwrap()).send().await.unwrap();
        }
    }
}

/// Herald with `settings`, every platform connected, and `count` posts to X due now. They were
/// scheduled 16 minutes ahead, past SQS's longest delay, so only the due index holds them and the
/// sweep is what queues them (the queue keeps the test's time: a nearer post's own job would
/// come due too).
async fn with_due_posts(settings: SweepSettings, count: usize) -> (TestEnv, TestApp, Vec<String>) {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with(|config| config.sweep = settings).await;
    let ids = app.connect_all("user-1").await;
    let posts = scheduled_posts(&app, &ids["x"], count).await;
    app.advance(SCHEDULED_AHEAD).await;
    (env, app, posts)
}

const SCHEDULED_AHEAD: time::Duration = time::Duration::minutes(16);

async fn scheduled_posts(app: &TestApp, account: &str, count: usize) -> Vec<String> {
    let at = (app.clock_now() + SCHEDULED_AHEAD).format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let body = json!({ "user_id": "user-1", "targets": [{ "account_id": account }], "text": format!("swept {i}"), "scheduled_at": at });
        let (status, post) = app.post(body, None).await;
        assert_eq!(status, 202, "{post}");
        ids.push(post["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn the_sweep_fans_out_per_shard_and_each_job_continues_from_its_last_key() {
    // One target a page, two pages a job: any shard holding three or more continues.
    let (env, app, posts) = with_due_posts(SweepSettings { due_page: 1, grant_page: 1, pages_per_job: 2 }, 40).await;

    let sweep = Envelope { job: Job::Sweep, not_before: None, enqueued_at: 0 };
    let event = herald_testkit::sqs_event(vec![
        json!({ "messageId": "sweep", "body": serde_json::to_string(&sweep).unwrap() }),
    ]);
    assert!(app.worker(1).await.handle_batch(event).await.batch_item_failures.is_empty());
    let kinds = drain(&env, &app, None).await;
    assert!(kinds["sweep_grants"] >= 8, "one job per expiry shard at least: {kinds:?}");
    let continued = kinds["sweep_due"] - 8;
    assert!(continued >= 1, "40 targets over 8 shards at 2 a job: some shard continues: {kinds:?}");
    assert!(kinds["sweep_due"] <= 8 + 40 / 2, "{kinds:?}");
    // Every due target was queued (by the sweep; were its own scheduled job queued too, the
    // duplicate would be harmless) and published once.
    assert!(kinds["publish"] >= 40, "{kinds:?}");
    let published = app.published(SandboxPlatform::X).len();
    assert_eq!(published, posts.len(), "each post once: {kinds:?}");
}

#[tokio::test]
async fn a_shard_job_near_its_deadline_reads_one_page_and_leaves_the_rest_to_the_queue() {
    let (env, app, _) = with_due_posts(SweepSettings { due_page: 1, grant_page: 1, pages_per_job: 100 }, 24).await;
    // 24 targets over 8 shards; an invocation with 20 s left (under the 25 s margin) reads one
    // page per job, so a shard of n targets takes n jobs where a roomy one would take one.
    let close = Some(Instant::now() + Duration::from_secs(20));
    let event = herald_testkit::sqs_event(
        (0..herald::store::posts::DUE_PARTITIONS)
            .map(|shard| {
                let job = Envelope { job: Job::SweepDue { shard, after: None }, not_before: None, enqueued_at: 0 };
                json!({ "messageId": format!("due-{shard}"), "body": serde_json::to_string(&job).unwrap() })
            })
            .collect(),
    );
    assert!(app.worker(8).await.handle_batch_until(event, close).await.batch_item_failures.is_empty());
    let kinds = drain(&env, &app, close).await;
    // One page per job: a shard of n targets takes n - 1 continuations, or n where the last full
    // page still carries a last key (DynamoDB may give one; moto does not), so 16 to 24 in all
    // (at most 8 shards hold targets). A job reading on would leave fewer.
    let continued = kinds["sweep_due"];
    assert!((16..=24).contains(&continued), "{kinds:?}");
    assert_eq!(app.published(SandboxPlatform::X).len(), 24);
}
