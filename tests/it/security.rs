//! The attacks of issue 13, each run end to end as an attacker would (a second tenant, a second
//! browser, curl), and refused. docs/security.md names each with its defence.

use herald_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

/// Media and webhook endpoints at literal internal addresses are refused at submission with a
/// problem document, and nothing is stored.
#[tokio::test]
async fn internal_addresses_are_refused_at_submission() {
    let env = TestEnv::fresh().await;
    // As deployed: no loopback allowance.
    let app = env.spawn_app_with(|config| config.egress.allow_loopback = false).await;
    let ids = app.connect_all("user-1").await;
    for url in [
        "https://169.254.169.254/latest/meta-data/a.jpg",
        "https://10.0.0.1/a.jpg",
        "https://[::ffff:127.0.0.1]/a.jpg",
        "https://127.0.0.1/a.jpg",
        "https://localhost/a.jpg",
        "https://100.64.1.1/a.jpg",
        "https://[fd00::1]/a.jpg",
    ] {
        let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "hi", "media": [{ "url": url }] });
        let (status, problem) = app.post(body, None).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("media_url_not_allowed")), "{url}: {problem}");
    }
    let (status, problem) = app
        .post(json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "hi", "media": [{ "url": "http://cdn.example/a.jpg" }] }), None)
        .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("media_url_not_https")));
    assert!(app.published(herald_sandbox::Platform::X).is_empty());

    for url in [
        "http://localhost:9000/hooks",
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/hooks",
        "https://192.168.0.1/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:10.0.0.1]/hooks",
    ] {
        let (status, problem) = app.call(Method::PUT, "/v1/webhook-endpoint", Some(json!({ "url": url }))).await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert!(
            matches!(problem["code"].as_str(), Some("endpoint_url_not_allowed" | "invalid_endpoint_url")),
            "{url}: {problem}"
        );
    }
    let (status, _) = app.call(Method::GET, "/v1/webhook-endpoint", None).await;
    assert_eq!(status, 404, "no endpoint was stored");
}

/// A media URL whose name resolves inside passes submission (it is a name) and is refused at
/// fetch time, against the address actually resolved: the target fails with a clear error and
/// no request reaches the address.
#[tokio::test]
async fn media_names_resolving_inside_fail_the_target_at_fetch_time() {
    let env = TestEnv::fresh().await;
    let app = env
        .spawn_app_with(|config| {
            config.egress.allow_loopback = false;
            config.egress.hosts.insert("cdn.rebind.test".into(), vec!["127.0.0.1".parse().unwrap()]);
        })
        .await;
    let ids = app.connect_all("user-1").await;
    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "look", "media": [{ "url": "https://cdn.rebind.test/a.jpg" }] });
    let (status, post) = app.post(body, None).await;
    assert_eq!(status, 202, "{post}");
    let target = &post["targets"][0];
    assert_eq!(target["status"], "failed", "{post}");
    assert_eq!(target["error"]["code"], "media_url_blocked", "{post}");
    assert!(target["error"]["message"].as_str().unwrap().contains("cdn.rebind.test"), "{post}");
    assert!(app.published(herald_sandbox::Platform::X).is_empty());
}

/// `limit=abc` answers a problem document; a cursor Herald did not issue is refused.
#[tokio::test]
async fn bad_query_parameters_and_foreign_cursors_are_problem_documents() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let (status, first) =
        app.post(json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "one" }), None).await;
    assert_eq!(status, 202);
    let (status, _) =
        app.post(json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "two" }), None).await;
    assert_eq!(status, 202);

    let response = app.api(Method::GET, "/v1/users/user-1/posts?limit=abc").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_query_parameter", "{problem}");

    // A cursor Herald issued works; an id it never issued for this user's listing does not.
    let (status, page) = app.call(Method::GET, "/v1/users/user-1/posts?limit=1", None).await;
    assert_eq!(status, 200);
    let next = page["next"].as_str().expect("a next cursor").to_owned();
    let (status, rest) = app.call(Method::GET, &format!("/v1/users/user-1/posts?after={next}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(rest["posts"][0]["id"], first["id"], "{rest}");
    for foreign in ["pst_0000000000000000000000000", "not-a-cursor", first["id"].as_str().unwrap()] {
        let path = if foreign == first["id"] {
            // A real post, but of another user: not a cursor of this listing.
            format!("/v1/users/user-2/posts?after={foreign}")
        } else {
            format!("/v1/users/user-1/posts?after={foreign}")
        };
        let (status, problem) = app.call(Method::GET, &path, None).await;
        assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_cursor")), "{path}: {problem}");
    }
}
