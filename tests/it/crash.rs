//! A worker killed in the middle of a batch: its messages come back, a new worker (a new Lambda
//! container, sharing nothing in memory) finishes the work, and no post is lost or sent twice.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use herald::posts::TargetStatus;
use herald::startup::Function;
use herald::worker::{Worker, poll_once};
use herald_testkit::TestEnv;
use serde_json::json;

#[tokio::test]
async fn killing_the_worker_mid_batch_loses_nothing_and_duplicates_nothing() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let sqs = &env.aws.sqs;
    let queue = &env.resources.work_queue_url;
    // Messages a dead worker held come back after 1 s instead of the deployed six minutes.
    sqs.set_queue_attributes()
        .queue_url(queue)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap();
    // Every platform answers a little slowly (well inside Herald's timeout), so the kill lands
    // while some calls are answered and others are still in flight.
    for path in ["/x/api/2/tweets", "/meta/graph/v26.0/104000000000001/feed"] {
        let fault = json!({ "method": "POST", "path": path, "kind": { "type": "slow", "millis": 300 } });
        app.fault(fault).await;
    }

    // Ten posts to two accounts, due in a minute; the sweep queues their twenty attempts.
    let at =
        (app.clock_now() + time::Duration::minutes(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut posts = Vec::new();
    for i in 0..10 {
        let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }, { "account_id": ids["facebook"] }], "text": format!("crash {i}"), "scheduled_at": at });
        let (status, post) = app.post(body, None).await;
        assert_eq!(status, 202, "{post}");
        posts.push(post["id"].as_str().unwrap().parse::<herald::domain::PostId>().unwrap());
    }
    app.advance(time::Duration::minutes(1)).await;
    let sweep = herald_testkit::sweep_event();
    assert!(app.worker(1).await.handle_batch(sweep.clone()).await.batch_item_failures.is_empty());

    // The first worker takes a batch of ten and is killed once two platform calls have started.
    let doomed = app.worker(10).await;
    let (sqs_for_task, queue_for_task) = (sqs.clone(), queue.clone());
    let run = tokio::spawn(async move { poll_once(&sqs_for_task, &queue_for_task, &doomed, Duration::ZERO).await });
    let publish_calls = || {
        app.sandbox
            .state
            .world()
            .calls
            .iter()
            .filter(|c| c.method == "POST" && (c.path.ends_with("/2/tweets") || c.path.ends_with("/feed")))
            .count()
    };
    while publish_calls() < 2 {
        assert!(!run.is_finished(), "the batch ended before the kill");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());

    // A new worker (new in-memory state, as in a new container) drains the queue; messages the
    // dead one held reappear after their visibility timeout. Then, past the dead worker's claim
    // leases, the sweep finds what it left `publishing` and reconciles it.
    let restarted = herald::app::App::new(
        (*app.state.config).clone(),
        &env.aws_for(Function::Retries),
        std::sync::Arc::new(app.clock.clone()),
    );
    let worker = Worker::new(restarted, 10);
    let open = |posts: Vec<herald::posts::Post>| {
        posts.iter().flat_map(|p| &p.targets).filter(|t| !t.status.is_terminal()).count()
    };
    for round in 0..4 {
        loop {
            let stats = poll_once(sqs, queue, &worker, Duration::from_secs(2)).await.unwrap();
            if stats.received == 0 {
                break;
            }
        }
        let mut stored = Vec::new();
        for id in &posts {
            stored.push(app.state.posts.get(&app.tenant, id).await.unwrap().expect("no post is lost"));
        }
        if open(stored) == 0 {
            break;
        }
        assert!(round < 3, "targets still open after the sweep");
        app.advance(time::Duration::minutes(3)).await;
        assert!(worker.handle_batch(sweep.clone()).await.batch_item_failures.is_empty());
    }

    let mut settled = Vec::new();
    for id in &posts {
        settled.extend(app.state.posts.get(&app.tenant, id).await.unwrap().unwrap().targets);
    }
    assert_eq!(settled.len(), 20, "no target is lost");
    // The dead worker's claims are looked for on the platform (X's timeline, the Page's feed):
    // found ones are published as they are, the others are sent now. None is left in doubt.
    assert!(settled.iter().all(|t| t.status == TargetStatus::Published), "{settled:?}");
    let platform_posts: Vec<_> =
        app.sandbox.state.world().posts.iter().map(|p| (p.account.clone(), p.text.clone())).collect();
    let distinct: HashSet<_> = platform_posts.iter().collect();
    assert_eq!(distinct.len(), platform_posts.len(), "a post was sent twice: {platform_posts:?}");
    assert_eq!(platform_posts.len(), 20, "every target is on its platform once");
    let reconciled = settled
        .iter()
        .filter(|t| t.history.iter().any(|a| a.error.as_ref().is_some_and(|e| e.code == "outcome_unknown")))
        .count();
    let found = settled.iter().filter(|t| t.history.last().is_some_and(|a| a.found)).count();
    assert!(reconciled >= 1, "the kill left claims to reconcile");
    println!(
        "killed mid-batch: 20 published ({reconciled} reconciled after the kill: {found} found on the platform, {} sent after the look), 0 unknown, 0 lost, 0 duplicates",
        reconciled - found
    );
}
