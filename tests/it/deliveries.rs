//! Outbound webhooks end to end: the sandbox sends a signed platform event, Herald records it and
//! delivers it through the queue to the tenant's endpoint (a test server here), retrying a
//! refused attempt; a published post is delivered as `post.published`; the signatures verify
//! with the reference Standard Webhooks library (Python `standardwebhooks`), during a secret
//! rotation with both secrets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use herald::worker::poll_once;
use herald_testkit::{TestApp, TestEnv};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
    answered: u16,
}

/// The tenant's endpoint: records every request; refuses the first attempt of each message with 500.
async fn tenant_endpoint() -> (String, Arc<Mutex<Vec<Received>>>) {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = received.clone();
    let handler = move |headers: HeaderMap, body: String| {
        let log = log.clone();
        async move {
            let mut log = log.lock().unwrap();
            let headers: Vec<(String, String)> = headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect();
            let id = headers.iter().find(|(k, _)| k == "webhook-id").map(|(_, v)| v.clone());
            let seen = log.iter().any(|r| r.headers.iter().any(|(k, v)| k == "webhook-id" && Some(v) == id.as_ref()));
            let answered = if seen { StatusCode::NO_CONTENT } else { StatusCode::INTERNAL_SERVER_ERROR };
            log.push(Received { headers, body, answered: answered.as_u16() });
            answered
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/hooks", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, received)
}

/// Runs the worker on the work queue until `done` holds. A retry's backoff is an SQS delay on the
/// test's time: when the queue has nothing due, the test's time moves two seconds (the first
/// retry's longest backoff), never waiting real time. (The deliveries' timestamps move with it,
/// at most a minute in all, well inside the reference verifier's five-minute tolerance.)
async fn drain_until(env: &TestEnv, app: &TestApp, done: impl Fn() -> bool) {
    let worker = app.worker(10).await;
    for _ in 0..30 {
        if done() {
            return;
        }
        let stats = poll_once(&env.aws.sqs, &env.resources.work_queue_url, &worker, Duration::ZERO).await.unwrap();
        if stats.received == 0 {
            app.advance(time::Duration::seconds(2)).await;
        }
    }
    assert!(done(), "the deliveries did not arrive");
}

/// Verifies each (secret, delivery) with the reference library; returns what it printed.
fn reference_verify(cases: &[(String, &Received)]) -> String {
    let cases: Vec<Value> = cases
        .iter()
        .map(|(secret, r)| json!({ "secret": secret, "body": r.body, "headers": r.headers.iter().cloned().collect::<std::collections::HashMap<_, _>>() }))
        .collect();
    let file = std::env::temp_dir().join(format!("herald-swh-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = r#"
import json, sys
from standardwebhooks import Webhook
results = []
for case in json.load(open(sys.argv[1])):
    try:
        Webhook(case["secret"]).verify(case["body"], case["headers"])
        results.append("ok")
    except Exception as e:
        results.append("refused")
print(" ".join(results))
"#;
    let launcher = herald::local::Launcher::in_repo(&herald_testkit::repo_root());
    let out = std::process::Command::new(&launcher.python).arg("-c").arg(script).arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn events_reach_the_tenants_endpoint_once_signed_per_standard_webhooks() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    app.connect_all("user-1").await;
    let (url, received) = tenant_endpoint().await;

    // Registering: https only, except on loopback; the secret is shown once.
    let (refused, _) = app
        .call(reqwest::Method::PUT, "/v1/webhook-endpoint", Some(json!({ "url": "http://example.com/hooks" })))
        .await;
    assert_eq!(refused, 422);
    let registered: Value = app.call(reqwest::Method::PUT, "/v1/webhook-endpoint", Some(json!({ "url": url }))).await.1;
    let secret = registered["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let shown: Value = app.call(reqwest::Method::GET, "/v1/webhook-endpoint", None).await.1;
    assert_eq!(shown["url"], url.as_str());
    assert!(shown.get("secret").is_none(), "the secret is not shown again");

    // A platform event arrives; Herald records it and queues its delivery.
    let event = json!({ "object": "page", "entry": [{ "id": "104000000000001", "time": 9, "changes": [{ "field": "feed", "value": { "verb": "add" } }] }] });
    let report = app.platform_webhook("meta", event).await;
    assert_eq!(report["status"], 200);
    let platform_deliveries = || {
        received.lock().unwrap().iter().filter(|r| r.body.contains("\"platform.event\"")).cloned().collect::<Vec<_>>()
    };
    // The first attempt is refused (500); the retry is accepted.
    drain_until(&env, &app, || platform_deliveries().iter().any(|r| r.answered == 204)).await;
    let deliveries = platform_deliveries();
    assert_eq!(
        deliveries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 204],
        "refused, retried, delivered once"
    );
    let ids: std::collections::HashSet<_> =
        deliveries.iter().map(|r| r.headers.iter().find(|(k, _)| k == "webhook-id").unwrap().1.clone()).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same webhook-id");
    let body: Value = serde_json::from_str(&deliveries[0].body).unwrap();
    assert_eq!(body["type"], "platform.event");
    assert_eq!(body["data"]["reason"], "feed");
    assert_eq!(body["data"]["data"]["verb"], "add");

    // A post's outcome is an event too.
    let x = app.accounts("user-1").await.into_iter().find(|a| a["platform"] == "x").unwrap()["id"].clone();
    let (status, post) = app
        .post(json!({ "user_id": "user-1", "targets": [{ "account_id": x }], "text": "tell my endpoint" }), None)
        .await;
    assert_eq!((status, post["targets"][0]["status"].as_str()), (202, Some("published")), "{post}");
    let outcome = || {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body.contains("\"post.published\"") && r.answered == 204)
            .cloned()
            .collect::<Vec<_>>()
    };
    drain_until(&env, &app, || !outcome().is_empty()).await;
    let published: Value = serde_json::from_str(&outcome()[0].body).unwrap();
    assert_eq!(published["data"]["data"]["post_id"], post["id"]);
    assert_eq!(published["data"]["account_id"], x);
    assert!(published["data"]["data"]["platform_post_id"].is_string());

    // The reference implementation accepts Herald's signatures, and refuses another secret's.
    let accepted = deliveries.last().unwrap();
    let other: Value = app.call(reqwest::Method::PUT, "/v1/webhook-endpoint", Some(json!({ "url": url }))).await.1;
    let other_secret = other["secret"].as_str().unwrap().to_owned();
    assert_eq!(reference_verify(&[(secret.clone(), accepted), (other_secret.clone(), accepted)]), "ok refused");

    // Rotation: for a day, deliveries carry a signature with each secret.
    let rotated: Value = app.call(reqwest::Method::POST, "/v1/webhook-endpoint/rotate", None).await.1;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(rotated["previous_secret_valid_until"].is_string());
    let before = platform_deliveries().len();
    let second = json!({ "object": "page", "entry": [{ "id": "104000000000001", "time": 10, "changes": [{ "field": "feed", "value": { "verb": "edited" } }] }] });
    assert_eq!(app.platform_webhook("meta", second).await["status"], 200);
    drain_until(&env, &app, || platform_deliveries().len() >= before + 2).await;
    let during = platform_deliveries().last().unwrap().clone();
    assert_eq!(during.answered, 204);
    let signature = &during.headers.iter().find(|(k, _)| k == "webhook-signature").unwrap().1;
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert_eq!(reference_verify(&[(other_secret, &during), (new_secret, &during), (secret, &during)]), "ok ok refused");

    // Connecting an account is an event the connect function queues for delivery.
    assert_eq!(app.connect("user-2", "x", "2244994945", "approve").await["status"], "connected");
    let connected = || {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body.contains("\"account.connected\"") && r.answered == 204)
            .count()
    };
    drain_until(&env, &app, || connected() == 1).await;
}
