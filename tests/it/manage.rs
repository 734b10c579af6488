//! A tenant acting on its posts (issue 18, item 3): retrying a failed or unknown target (an
//! unknown one looked for first, so it never duplicates), deleting a post (open targets
//! canceled, published ones deleted from the platform, each its own tracked step), and changing a
//! scheduled post before its first attempt. Every action is idempotent and emits events.

use std::collections::HashMap;

use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::{TestApp, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

fn texts(app: &TestApp, platform: SandboxPlatform) -> Vec<String> {
    app.published(platform).into_iter().map(|p| p.text).collect()
}

async fn retry(app: &TestApp, post: &str, account: &str, body: Option<Value>) -> (u16, Value) {
    app.call(Method::POST, &format!("/v1/posts/{post}/targets/{account}/retry"), body).await
}

fn target<'a>(post: &'a Value, account: &str) -> &'a Value {
    post["targets"].as_array().unwrap().iter().find(|t| t["account_id"] == account).unwrap()
}

async fn event_kinds(app: &TestApp) -> Vec<String> {
    let events = app.events().await;
    events.into_iter().map(|e| e.kind).collect()
}

/// Submits `text` to `account` with faults on the way; the post's id once its target settled.
async fn settled_post(
    app: &TestApp,
    ids: &HashMap<&str, String>,
    account: &str,
    faults: &[Value],
    text: &str,
) -> String {
    for fault in faults {
        app.fault(fault.clone()).await;
    }
    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids[account] }], "text": text });
    let hangs = faults.iter().any(|f| f["kind"]["type"].as_str().is_some_and(|k| k.ends_with("hang")));
    let (status, post) = if hangs { app.releasing(app.post(body, None)).await } else { app.post(body, None).await };
    assert_eq!(status, 202, "{post}");
    let id = post["id"].as_str().unwrap().to_owned();
    app.settle(&id, &ids[account]).await;
    app.clear_faults().await;
    id
}

#[tokio::test]
async fn a_retried_unknown_target_is_looked_for_first_and_never_duplicates() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let x = &ids["x"];
    let create =
        |kind: &str| json!({ "method": "POST", "path": "/x/api/2/tweets", "kind": { "type": kind }, "times": 1 });
    // The timeline refuses the reads that would find the post: unknown, with the reason.
    let refuse_read =
        json!({ "method": "GET", "path": "/x/api/2/users/", "kind": { "type": "status", "status": 403 } });

    for (kind, text) in [("applied_then_hang", "made, answer lost"), ("hang", "never made")] {
        let post = settled_post(&app, &ids, "x", &[create(kind), refuse_read.clone()], text).await;
        let unknown = target(&app.read_post(&post).await, x).clone();
        assert_eq!(
            (unknown["status"].as_str(), unknown["error"]["code"].as_str()),
            (Some("unknown"), Some("outcome_unknown"))
        );
        assert!(unknown["error"]["message"].as_str().unwrap().contains("refused the read"), "{unknown}");

        let (status, retried) = retry(&app, &post, x, None).await;
        assert_eq!(status, 202, "{retried}");
        assert_eq!(target(&retried, x)["status"], "retrying");
        assert_eq!(target(&retried, x)["attempts"], 0, "a fresh count of attempts");
        // Asked twice, the second finds it on its way: nothing more.
        let (again, _) = retry(&app, &post, x, None).await;
        assert_eq!(again, 202);

        let settled = app.settle(&post, x).await;
        assert_eq!(settled["status"], "published", "{settled}");
        let found = settled["history"].as_array().unwrap().last().unwrap().get("found").is_some();
        assert_eq!(found, kind == "applied_then_hang", "{kind}: found, or sent because it was not there: {settled}");
        let (status, refused) = retry(&app, &post, x, None).await;
        assert_eq!((status, refused["code"].as_str()), (409, Some("target_not_retryable")));
    }
    assert_eq!(texts(&app, SandboxPlatform::X), ["made, answer lost", "never made"], "each once");
    let kinds = event_kinds(&app).await;
    assert_eq!(kinds.iter().filter(|k| *k == "post.retry_requested").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "post.unknown").count(), 2, "{kinds:?}");
}

#[tokio::test]
async fn a_target_the_platform_cannot_read_back_is_retried_only_on_the_tenants_word() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let member = &ids["linkedin_member"];
    let hang = json!({ "method": "POST", "path": "/linkedin/api/rest/posts", "kind": { "type": "hang" }, "times": 1 });
    let post = settled_post(&app, &ids, "linkedin_member", &[hang], "maybe on linkedin").await;
    assert_eq!(target(&app.read_post(&post).await, member)["status"], "unknown");

    let (status, refused) = retry(&app, &post, member, None).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("cannot_look_up")), "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("assume_absent"), "{refused}");
    assert_eq!(target(&app.read_post(&post).await, member)["status"], "unknown", "nothing changed");

    let (status, bad) = retry(&app, &post, member, Some(json!({ "assume_absent": "yes" }))).await;
    assert_eq!((status, bad["code"].as_str()), (422, Some("invalid_body")));
    let (status, _) = retry(&app, &post, member, Some(json!({ "assume_absent": true }))).await;
    assert_eq!(status, 202);
    assert_eq!(app.settle(&post, member).await["status"], "published");
    assert_eq!(texts(&app, SandboxPlatform::Linkedin), ["maybe on linkedin"], "sent once, on the tenant's word");

    // A failed target (the platform refused it) is retried as it is.
    let refuse = json!({ "method": "POST", "path": "/meta/graph/v26.0/104000000000001/feed", "kind": { "type": "status", "status": 400 }, "times": 1 });
    let post = settled_post(&app, &ids, "facebook", &[refuse], "refused once").await;
    assert_eq!(target(&app.read_post(&post).await, &ids["facebook"])["status"], "failed");
    assert_eq!(retry(&app, &post, &ids["facebook"], None).await.0, 202);
    let settled = app.settle(&post, &ids["facebook"]).await;
    assert_eq!(settled["status"], "published", "{settled}");
    assert_eq!(settled["history"].as_array().unwrap().len(), 2, "both attempts in the history: {settled}");

    // Not a target of this post, not a post, not this tenant's: not found.
    assert_eq!(retry(&app, &post, &ids["x"], None).await.1["code"], "target_not_found");
    assert_eq!(retry(&app, "p_nope", member, None).await.1["code"], "post_not_found");
    let other = app.browser.post(format!("{}/v1/posts/{post}/targets/{}/retry", app.url, ids["facebook"]));
    assert_eq!(other.bearer_auth("hk_not_a_key").send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn deleting_a_post_cancels_what_is_open_and_deletes_what_is_published_once() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let accounts = ["x", "facebook", "instagram", "linkedin_member"];
    let body = json!({
        "user_id": "user-1",
        "targets": accounts.iter().map(|a| json!({ "account_id": ids[a] })).collect::<Vec<_>>(),
        "text": "to be deleted",
        "media": [{ "url": app.media("a.jpg") }],
    });
    let (status, post) = app.post(body, None).await;
    assert_eq!(status, 202, "{post}");
    let id = post["id"].as_str().unwrap().to_owned();
    for account in accounts {
        assert_eq!(app.settle(&id, &ids[account]).await["status"], "published");
    }
    // X's first delete fails in passing: tried again, deleted once.
    let flaky = json!({ "method": "DELETE", "path": "/x/api/2/tweets/", "kind": { "type": "status", "status": 503 }, "times": 1 });
    app.fault(flaky).await;

    let (status, deleted) = app.call(Method::DELETE, &format!("/v1/posts/{id}"), None).await;
    assert_eq!(status, 202, "{deleted}");
    assert!(deleted["deleted_at"].is_string(), "{deleted}");
    for account in ["x", "facebook", "linkedin_member"] {
        assert_eq!(target(&deleted, &ids[account])["status"], "deleting", "{account}");
    }
    let instagram = target(&deleted, &ids["instagram"]);
    assert_eq!(
        (instagram["status"].as_str(), instagram["error"]["code"].as_str()),
        (Some("published"), Some("delete_not_supported"))
    );
    for account in ["x", "facebook", "linkedin_member"] {
        let settled = app.settle(&id, &ids[account]).await;
        assert_eq!(settled["status"], "deleted", "{account}: {settled}");
    }
    let x = target(&app.read_post(&id).await, &ids["x"]).clone();
    let steps: Vec<_> =
        x["history"].as_array().unwrap().iter().map(|a| a["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(steps, ["published", "deleting", "deleted"], "each deletion try in the history: {x}");
    for platform in [SandboxPlatform::X, SandboxPlatform::Linkedin] {
        assert!(app.published(platform).is_empty(), "{platform:?}: gone");
    }
    assert_eq!(app.published(SandboxPlatform::Meta).len(), 1, "Instagram's stays; the Page's is gone");

    // Asked again: the post as it stands, nothing more.
    let (status, again) = app.call(Method::DELETE, &format!("/v1/posts/{id}"), None).await;
    assert_eq!((status, &again["deleted_at"]), (202, &deleted["deleted_at"]));
    assert_eq!(retry(&app, &id, &ids["x"], None).await.1["code"], "post_deleted");
    let kinds = event_kinds(&app).await;
    assert_eq!(kinds.iter().filter(|k| *k == "post.deleted").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "post.delete_failed").count(), 1, "{kinds:?}");

    // A scheduled post deleted before its time: canceled, and its queued attempt does nothing.
    let at =
        (app.clock_now() + time::Duration::minutes(5)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let body =
        json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "never", "scheduled_at": at });
    let (_, scheduled) = app.post(body, None).await;
    let scheduled = scheduled["id"].as_str().unwrap().to_owned();
    let (_, canceled) = app.call(Method::DELETE, &format!("/v1/posts/{scheduled}"), None).await;
    assert_eq!(target(&canceled, &ids["x"])["status"], "canceled", "{canceled}");
    app.advance(time::Duration::minutes(6)).await;
    let worker = app.worker(1).await;
    assert!(worker.handle_batch(app.publish_event(&scheduled, &ids["x"], 1)).await.batch_item_failures.is_empty());
    assert_eq!(target(&app.read_post(&scheduled).await, &ids["x"])["status"], "canceled");
    assert!(!texts(&app, SandboxPlatform::X).contains(&"never".to_owned()));
    assert!(event_kinds(&app).await.contains(&"post.canceled".to_owned()));
}

#[tokio::test]
async fn a_post_being_published_is_not_deleted_under_its_attempt() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let at =
        (app.clock_now() + time::Duration::minutes(2)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "in flight", "scheduled_at": at });
    let (_, post) = app.post(body, None).await;
    let id = post["id"].as_str().unwrap().to_owned();
    app.advance(time::Duration::minutes(2)).await;
    // A worker holds the target's claim.
    let post_id: herald::domain::PostId = id.parse().unwrap();
    let stored = app.state.posts.get(&app.tenant, &post_id).await.unwrap().unwrap();
    app.state.posts.claim(&app.tenant, &post_id, &stored.targets[0], time::Duration::minutes(2)).await.unwrap();

    let response = app.api(Method::DELETE, &format!("/v1/posts/{id}")).send().await.unwrap();
    assert_eq!(response.status(), 409);
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((119..=120).contains(&wait), "until the claim's lease ends: {wait}");
    let problem: Value = response.json().await.unwrap();
    assert_eq!((problem["code"].as_str(), problem["retry_after"].as_u64()), (Some("target_publishing"), Some(wait)));
    assert!(app.read_post(&id).await.get("deleted_at").is_none(), "nothing was written");
}

#[tokio::test]
async fn a_scheduled_post_is_changed_before_its_first_attempt_and_not_after() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let rfc = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let now = app.clock_now().replace_nanosecond(0).unwrap();
    let body = json!({
        "user_id": "user-1",
        "targets": [{ "account_id": ids["x"] }, { "account_id": ids["linkedin_member"] }],
        "text": "first draft",
        "scheduled_at": rfc(now + time::Duration::hours(2)),
    });
    let (_, post) = app.post(body, None).await;
    let id = post["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/posts/{id}");

    let (status, too_long) = app.call(Method::PATCH, &path, Some(json!({ "text": "a".repeat(281) }))).await;
    assert_eq!(
        (status, too_long["code"].as_str(), too_long["field"].as_str()),
        (422, Some("text_too_long"), Some("text"))
    );
    let (status, past) = app.call(Method::PATCH, &path, Some(json!({ "scheduled_at": rfc(now) }))).await;
    assert_eq!((status, past["code"].as_str()), (422, Some("scheduled_at_in_past")));
    let (status, unknown) = app.call(Method::PATCH, &path, Some(json!({ "txt": "typo" }))).await;
    assert_eq!((status, unknown["code"].as_str()), (422, Some("invalid_body")));
    assert_eq!(app.read_post(&id).await["text"], "first draft", "nothing changed");

    let change = json!({ "text": "final", "scheduled_at": rfc(now + time::Duration::minutes(5)) });
    let (status, changed) = app.call(Method::PATCH, &path, Some(change.clone())).await;
    assert_eq!((status, changed["text"].as_str()), (200, Some("final")), "{changed}");
    for t in changed["targets"].as_array().unwrap() {
        assert_eq!(t["next_attempt_at"], change["scheduled_at"], "{t}");
    }
    let (status, same) = app.call(Method::PATCH, &path, Some(change.clone())).await;
    assert_eq!((status, &same["text"]), (200, &changed["text"]), "asked again: the same post");
    let kinds = event_kinds(&app).await;
    assert_eq!(kinds.iter().filter(|k| *k == "post.updated").count(), 2, "one per target, once: {kinds:?}");

    app.advance(time::Duration::minutes(5)).await;
    for account in ["x", "linkedin_member"] {
        assert_eq!(app.settle(&id, &ids[account]).await["status"], "published");
    }
    assert_eq!(texts(&app, SandboxPlatform::X), ["final"]);
    assert_eq!(texts(&app, SandboxPlatform::Linkedin), ["final"]);
    let (status, late) = app.call(Method::PATCH, &path, Some(json!({ "text": "too late" }))).await;
    assert_eq!((status, late["code"].as_str()), (409, Some("post_not_editable")));

    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "now" });
    let (_, now_post) = app.post(body, None).await;
    let path = format!("/v1/posts/{}", now_post["id"].as_str().unwrap());
    let (status, unscheduled) = app.call(Method::PATCH, &path, Some(json!({ "text": "later" }))).await;
    assert_eq!((status, unscheduled["code"].as_str()), (409, Some("post_not_scheduled")));
}

/// A target's first outcome event is kept in the target's own item, written in the outcome's one
/// write (issue 18, item 5: no event item and no transaction on the warm path); a later outcome's
/// event, after the tenant's retry, is an item of its own. The journal lists them all, in order,
/// and each reads back where it is kept, through the target's later writes too.
#[tokio::test]
async fn a_targets_first_outcome_event_is_kept_with_it_and_the_journal_lists_every_event_in_order() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let facebook = &ids["facebook"];
    let refuse = json!({ "method": "POST", "path": "/meta/graph/v26.0/104000000000001/feed", "kind": { "type": "status", "status": 400 }, "times": 1 });
    // A second between steps: ids order events by their millisecond (the test's clock stands
    // still unless moved, and within one millisecond events have no order).
    let post = settled_post(&app, &ids, "facebook", &[refuse], "refused, then retried").await;
    app.advance(time::Duration::seconds(1)).await;
    assert_eq!(retry(&app, &post, facebook, None).await.0, 202);
    app.advance(time::Duration::seconds(1)).await;
    assert_eq!(app.settle(&post, facebook).await["status"], "published");

    let events: Vec<_> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.data.as_ref().is_some_and(|d| d["post_id"] == post.as_str()))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["post.failed", "post.retry_requested", "post.published"], "in order");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));

    let (post_id, account) = (post.parse().unwrap(), facebook.parse().unwrap());
    let stored = app.state.posts.target(&app.tenant, &post_id, &account).await.unwrap().unwrap();
    let kept = stored.kept_event.as_ref().expect("the target keeps its first outcome's event");
    assert_eq!((kept.id.as_str(), kept.kind.as_str()), (events[0].id.as_str(), "post.failed"));
    // The kept event is no item of its own; the later ones are.
    let journal = &app.state.journal;
    assert_eq!(journal.get_event(&app.tenant, &events[0].id, None).await.unwrap(), None);
    let home = Some((&post_id, &account));
    assert_eq!(journal.get_event(&app.tenant, &events[0].id, home).await.unwrap().as_ref(), Some(&events[0]));
    for later in &events[1..] {
        assert_eq!(journal.get_event(&app.tenant, &later.id, None).await.unwrap().as_ref(), Some(later));
        assert_eq!(journal.get_event(&app.tenant, &later.id, home).await.unwrap(), None, "not the kept one");
    }
    // A warm publish's outcome event is kept too: its post has no event item at all.
    let (status, warm) =
        app.post(json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "warm" }), None).await;
    assert_eq!((status, warm["targets"][0]["status"].as_str()), (202, Some("published")));
    let warm_id = warm["id"].as_str().unwrap().parse().unwrap();
    let x = ids["x"].parse().unwrap();
    let stored = app.state.posts.target(&app.tenant, &warm_id, &x).await.unwrap().unwrap();
    let kept = stored.kept_event.expect("kept");
    assert_eq!(kept.kind, "post.published");
    assert_eq!(journal.get_event(&app.tenant, &kept.id, None).await.unwrap(), None);
    let listed = app.events().await;
    assert_eq!(listed.iter().filter(|e| e.id == kept.id).count(), 1, "listed once");
}
