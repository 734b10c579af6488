//! Threads through the sandbox's simulator (built from Meta's Threads documentation; its ledger in
//! docs/sandbox.md): connecting through the Authorization Window and the long-lived token, the
//! token's refresh, text, image and carousel posts, exactly once across a lost answer, the
//! 250-post quota, a dead token, bad input, and the deauthorize and data-deletion callbacks.

use herald::domain::AccountStatus;
use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::{TestApp, TestEnv};
use serde_json::{Value, json};

const THREADS_USER: &str = "25100000000000001";

async fn connect(app: &TestApp, user: &str) -> String {
    let back = app.connect(user, "threads", THREADS_USER, "approve").await;
    assert_eq!(back["status"], "connected", "{back:?}");
    let accounts = app.accounts(user).await;
    let account = accounts.iter().find(|a| a["platform"] == "threads").expect("a Threads account");
    assert_eq!((account["name"].as_str(), account["kind"].as_str()), (Some("@maryjackson"), Some("member")));
    account["id"].as_str().unwrap().to_owned()
}

fn post_body(user: &str, account: &str, text: &str, media: Value) -> Value {
    json!({ "user_id": user, "targets": [{ "account_id": account }], "text": text, "media": media })
}

fn threads_posts(app: &TestApp) -> Vec<herald_sandbox::Post> {
    app.published(SandboxPlatform::Threads)
}

async fn run_publish_job(app: &TestApp, post: &str, account: &str) {
    let worker = app.worker(2).await;
    assert!(worker.handle_batch(app.publish_event(post, account, 1)).await.batch_item_failures.is_empty());
}

async fn account_status(app: &TestApp, id: &str) -> Option<Value> {
    app.accounts("user-1").await.iter().find(|a| a["id"] == id).map(|a| a["status"].clone())
}

/// Connect: the Authorization Window on Threads' own host, the code exchanged for a short-lived
/// token, that at once for a 60-day one, which is what Herald keeps; it is refreshed with itself
/// (`th_refresh_token`) once due, and a denied consent connects nothing.
#[tokio::test]
async fn threads_connects_with_a_long_lived_token_and_refreshes_it() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let link = app.connect_link("user-1", "threads").await;
    let authorize = app.redirected(&link).await;
    assert!(authorize.starts_with(&format!("{}/threads/web/oauth/authorize?", app.sandbox.url)), "{authorize}");
    let query = herald_testkit::query(&authorize);
    assert_eq!(query["scope"], "threads_basic,threads_content_publish,threads_delete");
    let callback = app.consent(&authorize, THREADS_USER, "deny").await;
    let back = herald_testkit::query(&app.redirected(&callback).await);
    assert_eq!((back["status"].as_str(), back["error"].as_str()), ("error", "access_denied"), "{back:?}");
    assert!(app.accounts("user-1").await.is_empty());

    let id = connect(&app, "user-1").await;
    let calls: Vec<String> = app
        .sandbox
        .state
        .world()
        .calls
        .iter()
        .filter(|c| c.platform == SandboxPlatform::Threads)
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    for expected in
        ["POST /threads/graph/oauth/access_token", "GET /threads/graph/access_token", "GET /threads/graph/v1.0/me"]
    {
        assert!(calls.iter().any(|c| c == expected), "{expected} in {calls:?}");
    }
    let user: herald::domain::UserId = "user-1".parse().unwrap();
    let account = app.state.accounts.get(&app.tenant, &user, &id.parse().unwrap()).await.unwrap().unwrap();
    let expires = account.access_expires_at.expect("a long-lived token expires");
    let days = (expires - app.clock_now()).whole_days();
    assert!((59..=60).contains(&days), "60 days, not the short-lived hour: {days}");

    // Refreshable once a day old: two days on, a refresh gives another 60 days.
    app.advance(time::Duration::days(2)).await;
    app.state.tokens.refresh_now(&account).await.expect("refreshed");
    let refreshed = app.state.accounts.get(&app.tenant, &user, &id.parse().unwrap()).await.unwrap().unwrap();
    let days = (refreshed.access_expires_at.unwrap() - app.clock_now()).whole_days();
    assert!((59..=60).contains(&days), "{days}");
    let refreshes = app
        .sandbox
        .state
        .world()
        .calls
        .iter()
        .filter(|c| c.path == "/threads/graph/refresh_access_token" && c.status == Some(200))
        .count();
    assert_eq!(refreshes, 1);
    // The refreshed token publishes.
    let (status, post) = app.post(post_body("user-1", &id, "after a refresh", json!([])), None).await;
    assert_eq!((status, post["targets"][0]["status"].as_str()), (202, Some("published")), "{post}");
}

/// Text, an image with alt text and a carousel, each published once through containers.
#[tokio::test]
async fn threads_publishes_text_images_and_carousels() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    let (_, text) = app.post(post_body("user-1", &id, "Hello from Herald 👋", json!([])), None).await;
    assert_eq!(text["targets"][0]["status"], "published", "{text}");
    let image = json!([{ "url": app.media("cake.png"), "alt_text": "a cake" }]);
    let (_, single) = app.post(post_body("user-1", &id, "one image", image), None).await;
    assert_eq!(single["targets"][0]["status"], "published", "{single}");
    let three = json!([{ "url": app.media("a.jpg") }, { "url": app.media("b.png") }, { "url": app.media("c.jpg") }]);
    let (_, carousel) = app.post(post_body("user-1", &id, "three images", three), None).await;
    assert_eq!(carousel["targets"][0]["status"], "published", "{carousel}");
    let posts = threads_posts(&app);
    let shape: Vec<(String, usize)> = posts.iter().map(|p| (p.text.clone(), p.media.len())).collect();
    assert_eq!(
        shape,
        [("Hello from Herald 👋".to_owned(), 0), ("one image".to_owned(), 1), ("three images".to_owned(), 3)]
    );
    assert!(posts.iter().all(|p| p.account == THREADS_USER));
    let platform_id = single["targets"][0]["platform_post_id"].as_str().unwrap_or_default();
    assert!(posts.iter().any(|p| p.id == platform_id), "{single}");
}

/// A lost answer to `threads_publish`: applied → the container says PUBLISHED and the target is
/// published, once; not applied → the container is still FINISHED and publishing is retried
/// through the queue, the same container, published once.
#[tokio::test]
async fn a_lost_threads_publish_is_read_back_from_its_container() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    let fault = |kind: Value| {
        // POST only: `threads_publishing_limit` begins with the same path.
        let path = format!("/threads/graph/v1.0/{THREADS_USER}/threads_publish");
        app.fault(json!({ "method": "POST", "path": path, "kind": kind, "times": 1 }))
    };
    fault(json!({ "type": "applied_then_hang" })).await;
    let (_, post) = app.releasing(app.post(post_body("user-1", &id, "lost answer", json!([])), None)).await;
    assert_eq!(post["targets"][0]["status"], "published", "{post}");

    fault(json!({ "type": "hang" })).await;
    let (_, post) = app.releasing(app.post(post_body("user-1", &id, "never sent", json!([])), None)).await;
    assert_eq!(post["targets"][0]["status"], "retrying", "{post}");
    app.advance(time::Duration::seconds(120)).await;
    let post_id = post["id"].as_str().unwrap();
    run_publish_job(&app, post_id, &id).await;
    assert_eq!(app.read_post(post_id).await["targets"][0]["status"], "published");
    let texts: Vec<String> = threads_posts(&app).into_iter().map(|p| p.text).collect();
    assert_eq!(texts, ["lost answer", "never sent"], "each once");
}

/// The quota is read before anything is made: with the profile's 250 posts spent, the target
/// waits (rate limited) and nothing is created; Herald's own budget is Threads' 250 a day.
#[tokio::test]
async fn a_spent_threads_quota_defers_without_making_containers() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    app.control("/_sandbox/limits", json!({ "platform": "threads", "name": "quota", "limit": 1 })).await;
    let (_, first) = app.post(post_body("user-1", &id, "the one allowed", json!([])), None).await;
    assert_eq!(first["targets"][0]["status"], "published", "{first}");
    let containers = || {
        app.sandbox.state.world().calls.iter().filter(|c| c.method == "POST" && c.path.ends_with("/threads")).count()
    };
    let before = containers();
    let (_, second) = app.post(post_body("user-1", &id, "over the quota", json!([])), None).await;
    let target = &second["targets"][0];
    assert_eq!(
        (target["status"].as_str(), target["error"]["code"].as_str()),
        (Some("retrying"), Some("rate_limited")),
        "{second}"
    );
    assert_eq!(containers(), before, "no container made over the quota");
    assert_eq!(threads_posts(&app).len(), 1);
}

/// A dead token (code 190, sent with HTTP 400): the refresh is refused as well, so the account
/// needs the user again, with an event, and the target fails saying so.
#[tokio::test]
async fn a_revoked_threads_grant_needs_reauth_with_an_event() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    app.control("/_sandbox/grants/revoke", json!({ "platform": "threads", "user_id": THREADS_USER })).await;
    let (_, post) = app.post(post_body("user-1", &id, "after removing the app", json!([])), None).await;
    let target = &post["targets"][0];
    assert_eq!(
        (target["status"].as_str(), target["error"]["platform_code"].as_str()),
        (Some("retrying"), Some("190")),
        "{post}"
    );
    app.advance(time::Duration::seconds(5)).await;
    let post_id = post["id"].as_str().unwrap();
    run_publish_job(&app, post_id, &id).await;
    let read = app.read_post(post_id).await;
    assert_eq!(read["targets"][0]["error"]["code"], "account_needs_reauth", "{read}");
    let user: herald::domain::UserId = "user-1".parse().unwrap();
    let stored = app.state.accounts.get(&app.tenant, &user, &id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.status, AccountStatus::NeedsReauth);
    let events = app.events().await;
    assert!(events.iter().any(|e| e.kind == "account.needs_reauth" && e.account_id == id), "{events:?}");
    assert!(threads_posts(&app).is_empty());
}

/// Bad input is refused before any Threads call: 501 characters (an emoji counting its UTF-8
/// bytes, as Threads counts it), 21 images, a GIF; exactly 500 is taken.
#[tokio::test]
async fn bad_threads_posts_are_refused_before_any_call() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    let calls = || app.sandbox.state.world().calls.iter().filter(|c| c.platform == SandboxPlatform::Threads).count();
    let before = calls();
    let many: Vec<Value> = (0..21).map(|i| json!({ "url": app.media(&format!("{i}.jpg")) })).collect();
    for (text, media, code) in [
        ("a".repeat(501), json!([]), "text_too_long"),
        (format!("{}👍", "a".repeat(497)), json!([]), "text_too_long"),
        ("many".to_owned(), Value::Array(many), "too_many_media"),
        ("a gif".to_owned(), json!([{ "url": app.media("moving.gif") }]), "media_type_not_allowed"),
    ] {
        let (status, problem) = app.post(post_body("user-1", &id, &text, media), None).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some(code)), "{problem}");
    }
    assert_eq!(calls(), before, "nothing reached Threads");
    let (_, taken) = app.post(post_body("user-1", &id, &format!("{}👍", "a".repeat(496)), json!([])), None).await;
    assert_eq!(taken["targets"][0]["status"], "published", "{taken}");
}

/// The Threads app's deauthorize and data-deletion callbacks, signed with the Threads app secret:
/// a forged one is refused; a genuine one revokes (then erases) the Threads account, and a Meta
/// signature does not pass for Threads.
#[tokio::test]
async fn threads_deauthorize_and_data_deletion_callbacks_are_verified() {
    use herald_sandbox::dev;
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    let forged = app
        .browser
        .post(format!("{}/webhooks/threads/deauthorize", app.url))
        .form(&[("signed_request", "bm90.c2lnbmVk")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let send = |path: &str, platform: &str, client: &str| {
        app.control(
            "/_sandbox/webhooks/signed_request",
            json!({ "platform": platform, "client_id": client, "url": format!("{}/webhooks/threads/{path}", app.url), "user_id": THREADS_USER }),
        )
    };
    let with_meta = send("deauthorize", "meta", dev::META_APP_ID).await;
    assert_eq!(with_meta["status"], 401, "Meta's app secret does not sign Threads' callbacks: {with_meta}");
    assert_eq!(account_status(&app, &id).await, Some(json!("active")));
    let answer = send("deauthorize", "threads", dev::THREADS_APP_ID).await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(account_status(&app, &id).await, Some(json!("revoked")));
    let answer = send("data-deletion", "threads", dev::THREADS_APP_ID).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let url = body["url"].as_str().unwrap();
    assert!(url.contains("/webhooks/threads/data-deletion/"), "{body}");
    let status = app.browser.get(url).send().await.unwrap();
    assert_eq!(status.status(), 200);
}
