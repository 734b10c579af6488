//! The dead-letter queue: exhausted jobs arrive with their reason and history (even when the
//! first send fails), listings remove nothing, and a redrive reopens the target and publishes it
//! once. Messages SQS moved there by itself are listed and redriven too; foreign ones are kept.

use std::sync::Arc;
use std::time::Duration;

use herald::posts::TargetStatus;
use herald::posts::outcome::MAX_ATTEMPTS;
use herald::queue::dead::{Filter, Letter};
use herald::queue::{Envelope, Job};
use herald::worker::{Worker, poll_once};
use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::TestEnv;
use serde_json::json;

#[tokio::test]
async fn exhausted_attempts_reach_the_dead_letter_queue_with_their_history_and_can_be_redriven() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let fault = json!({ "path": "/x/api/2/tweets", "kind": { "type": "status", "status": 503 } });
    app.fault(fault).await;
    let (_, post) = app
        .post(
            json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "never gets through" }),
            None,
        )
        .await;
    assert_eq!(post["targets"][0]["status"], "retrying", "{post}");
    let post_id: herald::domain::PostId = post["id"].as_str().unwrap().parse().unwrap();

    // Every queued attempt fails the same way; the last one's dead letter cannot be sent at first.
    let worker = app.worker(2).await;
    let mut broken = (*app.state.config).clone();
    broken.dead_letter_queue_url = format!("{}-missing", env.resources.dead_letter_queue_url);
    let broken_worker = Worker::new(herald::app::App::new(broken, &env.aws, Arc::new(app.clock.clone())), 2);
    for attempt in 2..=MAX_ATTEMPTS {
        app.advance(time::Duration::minutes(16)).await;
        let worker = if attempt == MAX_ATTEMPTS { &broken_worker } else { &worker };
        let response = worker.handle_batch(app.publish_event(post_id.as_str(), &ids["x"], 1)).await;
        assert_eq!(response.batch_item_failures.len(), usize::from(attempt == MAX_ATTEMPTS), "attempt {attempt}");
    }
    let dlq = &app.state.dead_letters;
    assert!(dlq.list(&Filter::all()).await.unwrap().is_empty(), "the failed send left nothing behind");
    let target = app.state.posts.target(&app.tenant, &post_id, &ids["x"].parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(target.status, TargetStatus::Failed);
    assert_eq!(target.error.as_ref().unwrap().code, "attempts_exhausted");

    // The message's next delivery sends it; a further duplicate adds nothing.
    for _ in 0..2 {
        let response = worker.handle_batch(app.publish_event(post_id.as_str(), &ids["x"], 1)).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let listed = dlq.list(&Filter::all()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let Letter::Exhausted(letter) = &listed[0].letter else { panic!("{listed:?}") };
    assert_eq!(letter.reason.code, "attempts_exhausted");
    let codes: Vec<&str> = letter.history.iter().map(|a| a.error.as_ref().unwrap().code.as_str()).collect();
    let mut expected = vec!["platform_unavailable"; MAX_ATTEMPTS as usize - 1];
    expected.push("attempts_exhausted");
    assert_eq!(codes, expected);
    assert_eq!(letter.history.iter().map(|a| a.number).collect::<Vec<_>>(), (1..=MAX_ATTEMPTS).collect::<Vec<_>>());
    assert_eq!(letter.history.last().unwrap().status, TargetStatus::Failed);
    assert!(matches!(&letter.job, Job::Publish { post, .. } if *post == post_id));
    // Listing removed nothing; filters select by post and account.
    assert_eq!(dlq.list(&Filter::all()).await.unwrap().len(), 1);
    let by_account = Filter { account: Some(ids["x"].parse().unwrap()), post: None };
    assert_eq!(dlq.list(&by_account).await.unwrap().len(), 1);
    let other = Filter { post: Some(herald::domain::PostId::generate(app.clock_now())), account: None };
    assert!(dlq.list(&other).await.unwrap().is_empty());
    assert!(app.published(SandboxPlatform::X).is_empty());

    // X recovers; the operator redrives this post: reopened with fresh attempts, published once.
    app.clear_faults().await;
    assert_eq!(dlq.redrive(&other, &app.state.posts, &app.state.queue).await.unwrap().requeued, 0);
    let by_post = Filter { post: Some(post_id.clone()), account: None };
    let report = dlq.redrive(&by_post, &app.state.posts, &app.state.queue).await.unwrap();
    assert_eq!(report.requeued, 1);
    assert!(dlq.list(&Filter::all()).await.unwrap().is_empty());
    let reopened = app.state.posts.target(&app.tenant, &post_id, &ids["x"].parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((reopened.status, reopened.attempts), (TargetStatus::Retrying, 0));
    // (Earlier attempts' retry messages may arrive too: their target has moved on, so they do nothing.)
    loop {
        let stats = poll_once(&env.aws.sqs, &env.resources.work_queue_url, &worker, Duration::ZERO).await.unwrap();
        assert_eq!(stats.failed, 0);
        if stats.received == 0 {
            break;
        }
    }
    let done = app.state.posts.target(&app.tenant, &post_id, &ids["x"].parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(done.status, TargetStatus::Published, "{done:?}");
    assert_eq!(done.history.len(), MAX_ATTEMPTS as usize + 1, "the history survives the redrive");
    assert_eq!(app.published(SandboxPlatform::X).len(), 1);

    // The API shows the history.
    let read: serde_json::Value =
        app.api(reqwest::Method::GET, &format!("/v1/posts/{post_id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(read["targets"][0]["history"].as_array().unwrap().len(), MAX_ATTEMPTS as usize + 1, "{read}");
}

#[tokio::test]
async fn messages_sqs_gave_up_on_are_listed_and_redriven_and_foreign_ones_kept() {
    let env = TestEnv::fresh().await;
    let app = herald::app::App::new(env.config(), &env.aws, TestEnv::system_clock());
    let sqs = &env.aws.sqs;
    let dlq_url = &env.resources.dead_letter_queue_url;
    let ping = Envelope { job: Job::Ping { note: "stuck".into() }, not_before: None, enqueued_at: 5 };
    for body in [serde_json::to_string(&ping).unwrap(), "not a job".to_owned()] {
        sqs.send_message().queue_url(dlq_url).message_body(body).send().await.unwrap();
    }
    let mut listed: Vec<Letter> =
        app.dead_letters.list(&Filter::all()).await.unwrap().into_iter().map(|e| e.letter).collect();
    listed.sort_by_key(|l| matches!(l, Letter::Malformed { .. }));
    assert_eq!(listed, [Letter::Undeliverable(ping.clone()), Letter::Malformed { bytes: 9 }]);

    let report = app.dead_letters.redrive(&Filter::all(), &app.posts, &app.queue).await.unwrap();
    assert_eq!((report.requeued, report.malformed), (1, 1));
    let remaining = app.dead_letters.list(&Filter::all()).await.unwrap();
    assert_eq!(remaining.iter().map(|e| &e.letter).collect::<Vec<_>>(), [&Letter::Malformed { bytes: 9 }]);
    let moved = sqs.receive_message().queue_url(&env.resources.work_queue_url).send().await.unwrap();
    let bodies: Vec<Envelope> =
        moved.messages().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    assert_eq!(bodies, [ping], "the original envelope, back on the work queue");
}
