//! The functions' handlers fed the events Lambda delivers: API Gateway HTTP API (payload 2.0) and
//! function URL requests through `lambda_http`'s own conversion, and an SQS batch through the
//! retries handler, whose partial batch response must name exactly the failed message.

use axum::Router;
use herald::http;
use herald::startup::Function;
use herald::store::Origin;
use herald::worker::Worker;
use herald_testkit::{TestEnv, repo_root};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures").join(name)).unwrap()
}

async fn call(router: Router, event: &str) -> (u16, String, Value) {
    let request = lambda_http::request::from_str(event).expect("a valid Lambda event");
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_gateway_events_reach_the_connect_router() {
    let env = TestEnv::fresh().await;
    let state = env.function_state(Function::Connect, env.config(), TestEnv::system_clock()).await;
    let (_, key) = state.tenants.create("Acme", vec![Origin::parse("https://app.acme.test").unwrap()]).await.unwrap();
    let connect = || http::finish(http::connect_routes(), state.clone());

    let get = fixture("apigw_v2_get_tenant.json").replace("{{API_KEY}}", key.reveal());
    let (status, _, body) = call(connect(), &get).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Acme");

    // A base64-encoded body, as API Gateway sends some payloads.
    let patch = fixture("apigw_v2_patch_tenant_base64.json").replace("{{API_KEY}}", key.reveal());
    let (status, _, body) = call(connect(), &patch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Acme via Lambda");

    let anonymous = fixture("apigw_v2_get_tenant.json").replace("Bearer {{API_KEY}}", "Bearer nope");
    let (status, content_type, body) = call(connect(), &anonymous).await;
    assert_eq!(
        (status, content_type.as_str(), body["code"].as_str()),
        (401, "application/problem+json", Some("unauthorized"))
    );

    // The connect function does not serve other functions' routes.
    let elsewhere = get.replace("/v1/tenant", "/v1/posts");
    let (status, _, body) = call(connect(), &elsewhere).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("route_not_found")));
}

#[tokio::test]
async fn function_url_events_reach_the_webhooks_router() {
    let env = TestEnv::fresh().await;
    let state = env.function_state(Function::Webhooks, env.config(), TestEnv::system_clock()).await;
    let (status, content_type, body) =
        call(http::finish(http::webhooks_routes(), state), &fixture("function_url_post.json")).await;
    // The fixture carries no X-Hub-Signature-256: refused before its body is read.
    assert_eq!(
        (status, content_type.as_str(), body["code"].as_str()),
        (401, "application/problem+json", Some("webhook_signature_invalid"))
    );
}

#[tokio::test]
async fn sqs_event_gets_a_partial_batch_response() {
    let env = TestEnv::fresh().await;
    let clock = TestEnv::system_clock();
    let worker = Worker::new(env.function_state(Function::Retries, env.config(), clock).await, 10);
    let event = serde_json::from_str(&fixture("sqs_batch.json")).unwrap();
    let response = worker.handle_batch(event).await;
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da" }] })
    );
}
