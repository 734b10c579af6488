//! The work queue against SQS (moto): typed jobs, partial batch responses from the handler, the
//! local poller standing in for Lambda's event source, and delays longer than SQS allows.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::QueueAttributeName;
use herald::queue::{Envelope, Job, WorkQueue};
use herald::worker::{Worker, poll_once};
use herald_testkit::TestEnv;

fn worker(env: &TestEnv) -> (WorkQueue, Worker) {
    let app = herald::app::App::new(env.config(), &env.aws, TestEnv::system_clock());
    (app.queue.clone(), Worker::new(app, 4))
}

async fn queue_counts(env: &TestEnv, url: &str) -> (u64, u64, u64) {
    let attributes = env.queue_attributes(url).await;
    let count = |name: QueueAttributeName| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    )
}

fn record(id: &str, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(id.to_owned());
    record.body = Some(body.to_owned());
    record
}

fn ping_body() -> String {
    serde_json::to_string(&Envelope { job: Job::Ping { note: "t".into() }, not_before: None, enqueued_at: 0 }).unwrap()
}

#[tokio::test]
async fn handler_reports_only_the_failed_messages() {
    let env = TestEnv::fresh().await;
    let (_, worker) = worker(&env);
    let mut event = SqsEvent::default();
    event.records = vec![
        record("ok-1", &ping_body()),
        record("bad-json", "{not json"),
        record("ok-2", &ping_body()),
        record("unknown-job", r#"{"job":{"type":"launch_rockets"},"enqueued_at":0}"#),
        record("no-body", ""),
    ];
    let response = worker.handle_batch(event).await;
    let mut failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    failed.sort();
    assert_eq!(failed, ["bad-json", "no-body", "unknown-job"]);
    // The wire shape Lambda expects for ReportBatchItemFailures.
    let wire = serde_json::to_value(&response).unwrap();
    assert!(wire["batchItemFailures"].as_array().unwrap().iter().all(|f| f["itemIdentifier"].is_string()));
}

#[tokio::test]
async fn poller_runs_jobs_and_deletes_only_what_succeeded() {
    let env = TestEnv::fresh().await;
    let (queue, worker) = worker(&env);
    let url = env.resources.work_queue_url.clone();
    queue.enqueue(Job::Ping { note: "one".into() }, Duration::ZERO).await.unwrap();
    queue.enqueue(Job::Ping { note: "two".into() }, Duration::ZERO).await.unwrap();
    env.aws.sqs.send_message().queue_url(&url).message_body("garbage").send().await.unwrap();

    let mut received = 0;
    let mut failed = 0;
    while received < 3 {
        let stats = poll_once(&env.aws.sqs, &url, &worker, Duration::from_secs(1)).await.unwrap();
        received += stats.received;
        failed += stats.failed;
    }
    assert_eq!((received, failed), (3, 1));
    // The two pings are gone; the garbage is in flight (invisible) until its visibility timeout,
    // after which SQS redelivers it and, after 5 receives, moves it to the DLQ.
    assert_eq!(queue_counts(&env, &url).await, (0, 1, 0));
}

#[tokio::test]
async fn delays_beyond_sqs_maximum_are_carried_not_truncated() {
    let env = TestEnv::fresh().await;
    let (queue, worker) = worker(&env);
    let url = env.resources.work_queue_url.clone();

    // Enqueue with a delay SQS cannot express: sent with the 900 s maximum, rest in the envelope.
    queue.enqueue(Job::Ping { note: "later".into() }, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(queue_counts(&env, &url).await, (0, 0, 1));

    // When such a message arrives before its time, the handler re-enqueues it for the remainder
    // and reports success (the original is deleted), so nothing runs early and nothing is lost.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let early = Envelope { job: Job::Ping { note: "early".into() }, not_before: Some(now + 2000), enqueued_at: now };
    let mut event = SqsEvent::default();
    event.records = vec![record("early", &serde_json::to_string(&early).unwrap())];
    assert!(worker.handle_batch(event).await.batch_item_failures.is_empty());
    assert_eq!(queue_counts(&env, &url).await, (0, 0, 2));

    let delayed = env.aws.sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert!(delayed.messages.unwrap_or_default().is_empty(), "a delayed job was delivered early");
}

/// One time for Herald, the sandbox and the queue (the test kit's `advance`): a throttled post's
/// retry is a delayed SQS message that comes due when the test's time reaches the platform's
/// reset, with no real waiting; a wait beyond SQS's 15-minute maximum arrives early in steps, is
/// queued again for the rest each time, and runs at its time.
#[tokio::test]
async fn queued_work_comes_due_on_the_tests_time() {
    use herald_sandbox::Platform as SandboxPlatform;
    use serde_json::json;

    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    // X says its window resets in 10 minutes (`x-rate-limit-reset`, on the sandbox's clock).
    app.fault(json!({ "path": "/x/api/2/tweets", "kind": { "type": "rate_limited", "reset_after": 600 }, "times": 1 }))
        .await;
    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "on the test's time" });
    let (status, post) = app.post(body, None).await;
    assert_eq!((status, post["targets"][0]["status"].as_str()), (202, Some("retrying")), "{post}");
    let due = time::OffsetDateTime::parse(
        post["targets"][0]["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(due.unix_timestamp() - app.clock_now().unix_timestamp(), 600, "at the reset X stated: {post}");

    let worker = app.worker(2).await;
    let url = env.resources.work_queue_url.clone();
    let poll = || async { poll_once(&env.aws.sqs, &url, &worker, Duration::ZERO).await.unwrap().received };
    assert_eq!(queue_counts(&env, &url).await, (0, 0, 1), "the retry waits in the queue");
    assert_eq!(poll().await, 0);
    app.advance(time::Duration::seconds(599)).await;
    assert_eq!(poll().await, 0, "one second early");
    assert!(app.published(SandboxPlatform::X).is_empty());
    app.advance(time::Duration::seconds(2)).await;
    assert_eq!(poll().await, 1);
    let published = app.published(SandboxPlatform::X);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].text, "on the test's time");
    assert_eq!(queue_counts(&env, &url).await, (0, 0, 0));

    // Fifty minutes: SQS delays at most 15, so the job arrives early at 900 s, 1,800 s and
    // 2,700 s, each time going back for the rest, and runs at 3,000 s.
    app.state.queue.enqueue(Job::Ping { note: "later".into() }, Duration::from_secs(3000)).await.unwrap();
    for step in [901, 900, 900] {
        app.advance(time::Duration::seconds(step)).await;
        assert_eq!(poll().await, 1, "early, after {step} s more");
        assert_eq!(queue_counts(&env, &url).await, (0, 0, 1), "queued again for the rest");
    }
    app.advance(time::Duration::seconds(3000 - 2701 - 1)).await;
    assert_eq!(poll().await, 0, "one second early");
    app.advance(time::Duration::seconds(2)).await;
    assert_eq!(poll().await, 1);
    assert_eq!(queue_counts(&env, &url).await, (0, 0, 0), "run and deleted");
}

/// `herald dev`'s stand-in for the EventBridge schedule puts the schedule's own job on the work
/// queue at each tick (here three ticks, not fifteen-minute waits).
#[tokio::test]
async fn the_local_schedule_queues_the_sweep_at_each_tick() {
    let env = TestEnv::fresh().await;
    let (queue, _) = worker(&env);
    let url = env.resources.work_queue_url.clone();
    let queued = herald::worker::schedule_sweeps(queue, futures_util::stream::iter([(), (), ()])).await;
    assert_eq!(queued, 3);
    let mut jobs = Vec::new();
    for _ in 0..10 {
        if jobs.len() >= 3 {
            break;
        }
        let out = env.aws.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
        for message in out.messages.unwrap_or_default() {
            let envelope: Envelope = serde_json::from_str(message.body().unwrap()).unwrap();
            jobs.push(envelope.job);
        }
    }
    assert_eq!(jobs, [Job::Sweep, Job::Sweep, Job::Sweep]);
}
