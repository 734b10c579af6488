//! The faults DynamoDB raises and moto never does, raised by the local emulation on the test's
//! own table (`infra/moto_server.py`, `DynamoFaults`), and what Herald does with them: a
//! transaction conflict or a throttle is retried and never counts as a publish attempt; a lost
//! answer on a conditional write is recognised as Herald's own write; a repeated transaction
//! (same `ClientRequestToken`) is not applied twice. Nothing is published twice, nothing is lost.

use std::collections::HashMap;

use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::{TestApp, TestEnv};
use serde_json::{Value, json};

fn targets(ids: &HashMap<&str, String>, names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| json!({ "account_id": ids[*n] })).collect())
}

fn x_posts(app: &TestApp, text: &str) -> usize {
    app.published(SandboxPlatform::X).into_iter().filter(|p| p.text == text).count()
}

/// One post to X through `faults` (DynamoFaults objects); it must be published once, with one
/// attempt counted, whatever DynamoDB did, and every fault must have been raised.
async fn publish_through(env: &TestEnv, app: &TestApp, ids: &HashMap<&str, String>, faults: Vec<Value>) {
    let label = faults.iter().map(|f| format!("{} on {}", f["kind"], f["operation"])).collect::<Vec<_>>().join(", ");
    let kinds: Vec<String> = faults.iter().map(|f| f["kind"].as_str().unwrap().to_owned()).collect();
    env.dynamodb_faults(faults).await;
    let text = format!("through {label}");
    let (status, post) =
        app.post(json!({ "user_id": "user-1", "targets": targets(ids, &["x"]), "text": text }), None).await;
    let raised = env.clear_dynamodb_faults().await;
    for kind in &kinds {
        assert!(raised[kind].as_u64() >= Some(1), "{label}: {kind} was raised: {raised}");
    }
    assert_eq!(status, 202, "{label}: {post}");
    let target = &post["targets"][0];
    assert_eq!(target["status"], "published", "{label}: {post}");
    assert_eq!(target["attempts"], 1, "{label}: Herald's own trouble is not an attempt: {post}");
    assert_eq!(x_posts(app, &text), 1, "{label}: published once");
}

fn once(kind: &str, operation: &str) -> Value {
    json!({ "kind": kind, "operation": operation, "times": 1 })
}

/// The warm path is a transaction (the post with its claim and budgets) and a single write (the
/// outcome with its event, kept in the target's item). A lost answer is resent by the SDK with the same `ClientRequestToken`, which DynamoDB
/// (and the emulation) answers without applying it again; a conflict is resent by Herald. When
/// the transactions holding the budget counters conflict at every send, the first attempt takes
/// the steps one by one: there each single
/// write meets a conflict, a throttle or a lost answer, and the claim's lost answer is recognised
/// by its write id.
#[tokio::test]
async fn conflicts_throttles_and_lost_answers_neither_count_nor_duplicate() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    publish_through(&env, &app, &ids, vec![once("internal_error_after_apply", "TransactWriteItems")]).await;
    publish_through(&env, &app, &ids, vec![once("transaction_conflict", "TransactWriteItems")]).await;
    // Both transactions that write the budget counters (the post's, then the attempt's claim),
    // each at all five of its sends.
    let counters_conflict = || json!({ "kind": "transaction_conflict", "operation": "TransactWriteItems", "key_prefix": "RL#", "times": 10 });
    for single in [
        once("transaction_conflict", "PutItem"),
        once("transaction_conflict", "UpdateItem"),
        once("throttling", "PutItem"),
        once("provisioned_throughput", "UpdateItem"),
        once("internal_error_after_apply", "PutItem"),
    ] {
        publish_through(&env, &app, &ids, vec![counters_conflict(), single]).await;
    }
}

/// A conflict that outlasts the resends (the budget counter busy for every one of them) leaves the
/// target for the queue without counting an attempt; the queued attempt publishes it once.
#[tokio::test]
async fn dynamodb_trouble_that_persists_is_queued_uncounted() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    env.dynamodb_faults(vec![
        json!({ "kind": "transaction_conflict", "operation": "TransactWriteItems", "key_prefix": "RL#", "times": 10 }),
        json!({ "kind": "transaction_conflict", "operation": "UpdateItem", "key_prefix": "RL#", "times": 5 }),
    ])
    .await;
    let text = "busy counters";
    let (status, post) =
        app.post(json!({ "user_id": "user-1", "targets": targets(&ids, &["x"]), "text": text }), None).await;
    let raised = env.clear_dynamodb_faults().await;
    assert_eq!(raised["transaction_conflict"], 15, "{raised}");
    assert_eq!(status, 202, "{post}");
    let target = &post["targets"][0];
    assert_eq!((target["status"].as_str(), target["attempts"].as_u64()), (Some("retrying"), Some(0)), "{post}");
    assert_eq!(x_posts(&app, text), 0);

    let worker = app.worker(2).await;
    let id = post["id"].as_str().unwrap();
    app.advance(time::Duration::seconds(10)).await;
    assert!(worker.handle_batch(app.publish_event(id, &ids["x"], 1)).await.batch_item_failures.is_empty());
    let (_, after) = app.call(reqwest::Method::GET, &format!("/v1/posts/{id}"), None).await;
    assert_eq!(
        (after["targets"][0]["status"].as_str(), after["targets"][0]["attempts"].as_u64()),
        (Some("published"), Some(1)),
        "{after}"
    );
    assert_eq!(x_posts(&app, text), 1);
}

/// A write whose SDK retries were all spent on DynamoDB's trouble is sent again, rather than the
/// target left `publishing` until its lease runs out and it is called `unknown` (the chaos run's
/// AWS-fault mode saw one): the outcome's write (with its event, one put of the target's item)
/// throttled at each of the SDK's three attempts; throttled twice and then applied with its answer
/// lost, where the resend recognises its own write id (a new one would fail its condition against
/// the applied write and report the outcome unrecorded); and, taking the steps one by one, the
/// claim applied with its answer lost and then throttled twice.
#[tokio::test]
async fn a_write_whose_retries_are_spent_is_sent_again() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    // On the warm path the claim is in the post's transaction: the only single write of a target
    // (`POST#…`) is the outcome's.
    let outcome =
        |kind: &str, times: u64| json!({ "kind": kind, "operation": "PutItem", "key_prefix": "POST#", "times": times });
    publish_through(&env, &app, &ids, vec![outcome("throttling", 3)]).await;
    publish_through(&env, &app, &ids, vec![outcome("throttling", 2), outcome("internal_error_after_apply", 1)]).await;
    let counters_conflict =
        json!({ "kind": "transaction_conflict", "operation": "TransactWriteItems", "key_prefix": "RL#", "times": 10 });
    let claim =
        |kind: &str, times: u64| json!({ "kind": kind, "operation": "PutItem", "key_prefix": "POST#", "times": times });
    publish_through(
        &env,
        &app,
        &ids,
        vec![counters_conflict, claim("internal_error_after_apply", 1), claim("throttling", 2)],
    )
    .await;
}
