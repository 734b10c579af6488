//! Mastodon through the sandbox's server (built from docs.joinmastodon.org; every request Herald
//! sends it held to the Mastodon OpenAPI description first): naming the server on Herald's page,
//! Herald's app registered there once, the server's consent with PKCE, statuses with images and
//! alt text, exactly once by `Idempotency-Key` across a lost answer, media still processing,
//! limits, a revoked token, bad input.

use herald::domain::AccountStatus;
use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::{TestApp, TestEnv, assert_target, attribute, query};
use reqwest::Method;
use serde_json::{Value, json};

/// The sandbox server's development user.
pub(crate) const USER: &str = "109300000000000001";

/// From a connect link through Herald's page (the server) to where Herald sends the browser.
async fn name_server(app: &TestApp, user: &str, server: &str) -> (u16, String) {
    let link = app.connect_link(user, "mastodon").await;
    let page = app.browser.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200, "Herald's own page asks for the server");
    let html = page.text().await.unwrap();
    let action = attribute(&html, "<form", "action");
    let state = attribute(&html, "name=\"state\"", "value");
    let response = app
        .browser
        .post(format!("{}{action}", app.url))
        .form(&[("state", state.as_str()), ("server", server)])
        .send()
        .await
        .unwrap();
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    (response.status().as_u16(), location)
}

fn server(app: &TestApp) -> String {
    format!("{}/mastodon", app.sandbox.url)
}

/// Connects the sandbox server's user for `user`; the Herald account id.
pub(crate) async fn connect(app: &TestApp, user: &str) -> String {
    let (status, authorize) = name_server(app, user, &server(app)).await;
    assert_eq!(status, 303, "{authorize}");
    let callback = app.consent(&authorize, USER, "approve").await;
    let back = query(&app.redirected(&callback).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    back["accounts"].clone()
}

fn post_body(account: &str, text: &str, media: Value) -> Value {
    json!({ "user_id": "user-1", "targets": [{ "account_id": account }], "text": text, "media": media })
}

fn calls(app: &TestApp, method: &str, path: &str) -> usize {
    app.sandbox.state.world().calls.iter().filter(|c| c.method == method && c.path == path).count()
}

/// Connect: Herald's page asks for the server; Herald registers its app there once (a second
/// user on the same server reuses it), sends the browser to the server's consent page with PKCE
/// S256, and keeps the account as `@user@host`. A server that is not one comes back as
/// `server_invalid`; a replayed state is refused.
#[tokio::test]
async fn mastodon_connects_through_the_server_the_user_names() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let (status, authorize) = name_server(&app, "user-1", &server(&app)).await;
    assert_eq!(status, 303);
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", server(&app))), "{authorize}");
    let q = query(&authorize);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["scope"], "read:accounts write:statuses write:media");
    let callback = app.consent(&authorize, USER, "approve").await;
    let back = query(&app.redirected(&callback).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    let accounts = app.accounts("user-1").await;
    let host = app.sandbox.url.trim_start_matches("http://").split(':').next().unwrap().to_owned();
    assert_eq!(accounts[0]["name"], format!("@dorothy@{host}"), "{accounts:?}");
    // The same state again: spent.
    let replay = app.browser.get(&callback).send().await.unwrap();
    let replayed = query(replay.headers()["location"].to_str().unwrap());
    assert_eq!(replayed["error"], "state_invalid");

    connect(&app, "user-2").await;
    assert_eq!(calls(&app, "POST", "/mastodon/api/v1/apps"), 1, "one app per server");

    let (status, back) = name_server(&app, "user-3", "not a server").await;
    assert_eq!(status, 302, "{back}");
    assert_eq!(query(&back)["error"], "server_invalid", "{back}");
    let (status, back) = name_server(&app, "user-3", "https://10.0.0.1/").await;
    assert_eq!((status, query(&back)["error"].as_str()), (302, "server_invalid"), "an internal host: {back}");

    // Disconnecting revokes the token at the server.
    let id = accounts[0]["id"].as_str().unwrap();
    let (status, _) = app.call(Method::DELETE, &format!("/v1/users/user-1/accounts/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(calls(&app, "POST", "/mastodon/oauth/revoke"), 1);
}

/// A status with two images and their alt text, through `POST /api/v2/media` and
/// `POST /api/v1/statuses`; every request Herald sent matched the Mastodon description.
#[tokio::test]
async fn mastodon_publishes_statuses_with_images_as_the_description_says() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    let media = json!([{ "url": app.media("a.jpg"), "alt_text": "a loaf" }, { "url": app.media("b.png") }]);
    let (status, post) = app.post(post_body(&id, "Fresh bread https://example.com/bread", media), None).await;
    assert_eq!((status, post["targets"][0]["status"].as_str()), (202, Some("published")), "{post}");
    let url = post["targets"][0]["url"].as_str().unwrap_or_default().to_owned();
    assert!(url.starts_with(&server(&app)), "{post}");
    let posts = app.published(SandboxPlatform::Mastodon);
    assert_eq!(posts.len(), 1);
    assert_eq!((posts[0].text.as_str(), posts[0].media.len()), ("Fresh bread https://example.com/bread", 2));
    let spec: Value =
        app.browser.get(format!("{}/_sandbox/spec", app.sandbox.url)).send().await.unwrap().json().await.unwrap();
    let ledger = &spec["mastodon"];
    for operation in ["POST /api/v1/apps", "POST /oauth/token", "POST /api/v2/media", "POST /api/v1/statuses"] {
        assert!(ledger[operation]["validated"].as_u64().unwrap_or(0) >= 1, "{operation}: {ledger}");
    }
    let undescribed: Vec<&String> =
        ledger.as_object().unwrap().iter().filter(|(_, v)| v.get("undescribed").is_some()).map(|(k, _)| k).collect();
    assert!(undescribed.is_empty(), "calls the description does not know: {undescribed:?}");
}

/// A lost answer to `POST /api/v1/statuses`: a minute later Herald asks again under the same
/// `Idempotency-Key`, and the server answers with the status it made: published once. Media still
/// processing is waited out through the queue, the same attachments, not uploaded again.
#[tokio::test]
async fn mastodon_posts_once_across_a_lost_answer_and_slow_media() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    app.fault(json!({ "method": "POST", "path": "/mastodon/api/v1/statuses", "kind": { "type": "applied_then_hang" }, "times": 1 })).await;
    let (_, post) = app.releasing(app.post(post_body(&id, "the answer was lost", json!([])), None)).await;
    assert_target(&post["targets"][0], "retrying", Some("outcome_unknown"));
    app.advance(time::Duration::seconds(60)).await;
    env.drain(&app.worker(1).await).await;
    let post_id = post["id"].as_str().unwrap();
    let (_, read) = app.call(Method::GET, &format!("/v1/posts/{post_id}"), None).await;
    assert_eq!(read["targets"][0]["status"], "published", "{read}");
    assert_eq!(calls(&app, "POST", "/mastodon/api/v1/statuses"), 2, "asked again under the same key");
    assert_eq!(app.published(SandboxPlatform::Mastodon).len(), 1, "made once");

    app.control("/_sandbox/limits", json!({ "platform": "mastodon", "name": "media_polls", "limit": 3 })).await;
    let (_, post) = app.post(post_body(&id, "slow media", json!([{ "url": app.media("c.jpg") }])), None).await;
    let target = &post["targets"][0];
    assert_target(target, "retrying", Some("media_processing"));
    app.advance(time::Duration::seconds(11)).await;
    let worker = app.worker(1).await;
    let post_id = post["id"].as_str().unwrap();
    assert!(worker.handle_batch(app.publish_event(post_id, &id, 1)).await.batch_item_failures.is_empty());
    let (_, read) = app.call(Method::GET, &format!("/v1/posts/{post_id}"), None).await;
    assert_eq!(read["targets"][0]["status"], "published", "{read}");
    assert_eq!(calls(&app, "POST", "/mastodon/api/v2/media"), 1, "the same attachment, not uploaded again");
}

/// Mastodon stores a status's `Idempotency-Key` only once it has made the status
/// (`PostStatusService`), and goes on making it after its client gave up: a resend under the key
/// meanwhile would make a second. Here making it takes longer than Herald's timeout, so the
/// answer is lost: nothing is sent again while the server may still be at it (59 s on), and once
/// it is done the resend is answered with the status it made.
#[tokio::test]
async fn a_resend_waits_until_the_server_may_have_made_the_first_status() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    // Herald's platform timeout in tests is 1.5 s.
    let making = json!({ "platform": "mastodon", "name": "status_processing_ms", "limit": 2500 });
    app.control("/_sandbox/limits", making).await;
    let (_, post) = app.post(post_body(&id, "made slowly", json!([])), None).await;
    assert_target(&post["targets"][0], "retrying", Some("outcome_unknown"));
    let worker = app.worker(1).await;
    app.advance(time::Duration::seconds(59)).await;
    env.drain(&worker).await;
    assert_eq!(calls(&app, "POST", "/mastodon/api/v1/statuses"), 1, "nothing sent while it may still be made");
    let done = app.browser.get(format!("{}/_sandbox/faults/held?at_most=0", app.sandbox.url)).send().await.unwrap();
    assert!(done.status().is_success(), "the server never finished the status");
    assert_eq!(app.published(SandboxPlatform::Mastodon).len(), 1, "the first request made it");

    app.advance(time::Duration::seconds(1)).await;
    env.drain(&worker).await;
    let post_id = post["id"].as_str().unwrap();
    let (_, read) = app.call(Method::GET, &format!("/v1/posts/{post_id}"), None).await;
    assert_eq!(read["targets"][0]["status"], "published", "{read}");
    assert_eq!(calls(&app, "POST", "/mastodon/api/v1/statuses"), 2, "asked again under the same key");
    let made = app.published(SandboxPlatform::Mastodon);
    assert_eq!(made.len(), 1, "made once: {made:?}");
    assert_eq!(read["targets"][0]["platform_post_id"], made[0].id.as_str(), "{read}");
}

/// Limits: over 500 characters as Mastodon counts them (a URL is 23) or over 4 images is refused
/// before any call; the server's `X-RateLimit-*` headers are read (`herald verify`'s check) and a
/// 429 waits until `X-RateLimit-Reset`. A revoked token is `needs_reauth`, with its event.
#[tokio::test]
async fn mastodon_limits_bad_input_and_a_revoked_token() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    let before = app.sandbox.state.world().calls.len();
    let five: Vec<Value> = (0..5).map(|i| json!({ "url": app.media(&format!("{i}.jpg")) })).collect();
    for (text, media, code) in
        [("a".repeat(501), json!([]), "text_too_long"), ("five".to_owned(), Value::Array(five), "too_many_media")]
    {
        let (status, problem) = app.post(post_body(&id, &text, media), None).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some(code)), "{problem}");
    }
    assert_eq!(app.sandbox.state.world().calls.len(), before, "nothing reached the server");
    let long_link = format!("{} https://example.com/{}", "a".repeat(470), "x".repeat(200));
    let (_, taken) = app.post(post_body(&id, &long_link, json!([])), None).await;
    assert_eq!(taken["targets"][0]["status"], "published", "a link counts 23: {taken}");

    let user: herald::domain::UserId = "user-1".parse().unwrap();
    let account = app.state.accounts.get(&app.tenant, &user, &id.parse().unwrap()).await.unwrap().unwrap();
    let tokens = app.state.tokens.usable(&account).await.unwrap();
    let found = app.state.platforms.rate_headers(&account, &tokens).await.unwrap().expect("Mastodon documents them");
    assert_eq!(found.seen, found.expected, "{found:?}");

    app.control("/_sandbox/grants/revoke", json!({ "platform": "mastodon", "user_id": USER })).await;
    let (_, post) = app.post(post_body(&id, "after the token was revoked", json!([])), None).await;
    assert_eq!(post["targets"][0]["error"]["code"], "unauthorized", "{post}");
    app.advance(time::Duration::seconds(5)).await;
    let worker = app.worker(1).await;
    let post_id = post["id"].as_str().unwrap();
    assert!(worker.handle_batch(app.publish_event(post_id, &id, 1)).await.batch_item_failures.is_empty());
    let (_, read) = app.call(Method::GET, &format!("/v1/posts/{post_id}"), None).await;
    assert_eq!(read["targets"][0]["error"]["code"], "account_needs_reauth", "{read}");
    let stored = app.state.accounts.get(&app.tenant, &user, &id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.status, AccountStatus::NeedsReauth);
    let events = app.events().await;
    assert!(events.iter().any(|e| e.kind == "account.needs_reauth" && e.account_id == id), "{events:?}");

    // A 429 (a fresh grant first): the target waits until X-RateLimit-Reset.
    connect(&app, "user-1").await;
    let id = app.accounts("user-1").await.into_iter().find(|a| a["status"] == "active").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.fault(json!({ "method": "POST", "path": "/mastodon/api/v1/statuses", "kind": { "type": "rate_limited", "reset_after": 120 }, "times": 1 })).await;
    let (_, throttled) = app.post(post_body(&id, "throttled", json!([])), None).await;
    let target = &throttled["targets"][0];
    assert_target(target, "retrying", Some("rate_limited"));
    let at = time::OffsetDateTime::parse(
        target["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((at - app.clock_now()).whole_seconds() >= 100, "until X-RateLimit-Reset: {throttled}");
}

/// Issue 18's acceptance on Mastodon, which is read back by resending under the same
/// `Idempotency-Key` (kept by the server for an hour, per user): a lost answer leaves the target
/// waiting to resend. Past the key's hour, less Herald's five-minute margin, a resend could post
/// twice, so the account's statuses are read instead (`GET /api/v1/accounts/:id/statuses`, without
/// the token): made → found there, published once; not made → sent once; the statuses unreadable
/// (a server that refuses anonymous reads) → `unknown` with the reason, never resent. A grant
/// revoked in between leaves it `unknown`; connected again within the hour, the tenant's retry
/// resends under the key and the server answers with the status it made: one status each,
/// however it went.
#[tokio::test]
async fn mastodon_lost_answers_settle_once_by_their_key_and_past_its_hour_by_the_statuses() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let id = connect(&app, "user-1").await;
    let statuses = "/mastodon/api/v1/statuses";
    let listing = "/mastodon/api/v1/accounts/";
    let lost = |text: &'static str, kind: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            app.fault(json!({ "method": "POST", "path": statuses, "kind": { "type": kind }, "times": 1 })).await;
            let (status, post) = app.releasing(app.post(post_body(&id, text, json!([])), None)).await;
            assert_eq!(status, 202, "{post}");
            let target = &post["targets"][0];
            assert_target(target, "retrying", Some("outcome_unknown"));
            post["id"].as_str().unwrap().to_owned()
        }
    };
    let made =
        |app: &TestApp, text: &str| app.published(SandboxPlatform::Mastodon).iter().filter(|p| p.text == text).count();
    let last = |target: &Value| target["history"].as_array().unwrap().last().unwrap().clone();

    // Made, past the key's hour less the margin: found among the statuses, nothing resent.
    let text = "past the hour & <made>, see https://example.com/a/rather/long/path/to/somewhere #herald";
    let post = lost(text, "applied_then_hang").await;
    app.advance(time::Duration::minutes(56)).await;
    let sent = calls(&app, "POST", statuses);
    let settled = app.settle(&post, &id).await;
    assert_eq!(settled["status"], "published", "{settled}");
    assert_eq!(
        (last(&settled)["found"].as_bool(), last(&settled)["looked"]["result"].as_str()),
        (Some(true), Some("found"))
    );
    assert_eq!(calls(&app, "POST", statuses), sent, "nothing resent past the key's hour");
    let status = app.published(SandboxPlatform::Mastodon).into_iter().find(|p| p.text == text).unwrap();
    assert_eq!(settled["platform_post_id"], status.id.as_str(), "by its own id");
    assert_eq!(made(&app, text), 1);
    let read = app.sandbox_calls().into_iter().filter(|c| c.path.starts_with(listing)).count();
    assert!(read >= 1, "the statuses were read");

    // Not made, past the hour: not among the statuses, so sent, once.
    let post = lost("past the hour, never made", "hang").await;
    app.advance(time::Duration::minutes(56)).await;
    let settled = app.settle(&post, &id).await;
    assert_eq!(
        (settled["status"].as_str(), last(&settled)["looked"]["result"].as_str()),
        (Some("published"), Some("absent"))
    );
    assert_eq!(made(&app, "past the hour, never made"), 1);

    // The statuses cannot be read (the server refuses anonymous reads): unknown, with the reason.
    let post = lost("past the hour, unreadable", "applied_then_hang").await;
    app.advance(time::Duration::minutes(56)).await;
    let refused =
        json!({ "method": "GET", "path": listing, "kind": { "type": "status", "status": 401 }, "times": 100 });
    app.fault(refused).await;
    let sent = calls(&app, "POST", statuses);
    let settled = app.settle(&post, &id).await;
    assert_target(&settled, "unknown", Some("outcome_unknown"));
    assert!(settled["error"]["message"].as_str().unwrap().contains("read without a token"), "{settled}");
    assert_eq!(calls(&app, "POST", statuses), sent, "never resent");
    assert_eq!(made(&app, "past the hour, unreadable"), 1);
    let account = app.accounts("user-1").await.into_iter().find(|a| a["id"] == id.as_str()).unwrap();
    assert_eq!(account["status"], "active", "an anonymous read refused says nothing of the grant: {account}");
    app.clear_faults().await;

    // The grant revoked before the resend: unknown; connected again, the retry finds it by its key.
    let post = lost("then revoked", "applied_then_hang").await;
    app.control("/_sandbox/grants/revoke", json!({ "platform": "mastodon", "user_id": USER })).await;
    let settled = app.settle(&post, &id).await;
    assert_target(&settled, "unknown", Some("outcome_unknown"));
    assert!(settled["error"]["message"].as_str().unwrap().contains("cannot be read"), "{settled}");
    assert_eq!(connect(&app, "user-1").await, id, "connecting again keeps the account");
    let settled = app.retry_and_settle(&post, &id).await;
    assert_eq!(settled["status"], "published", "{settled}");
    let last = settled["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["looked"]["result"], "resent", "{last}");
    assert_eq!(made(&app, "then revoked"), 1, "the retried unknown target did not post twice");
}
