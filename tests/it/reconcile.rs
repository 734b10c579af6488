//! Exactly once across a lost answer (issue 18): the answer to a creating call is lost, and
//! the platform's listing does not show the post yet (the sandbox's read lag, as reads lag
//! writes on every platform). The target waits the platform's lag and looks again before
//! anything is sent: found → published as it is, once; not there → sent, once; the platform
//! cannot be read (its grant gone, or no read at all) → `unknown`, with the reason.
//!
//! Bluesky (record key) and Mastodon (`Idempotency-Key`) resend under the same key instead:
//! `bluesky::a_lost_answer_is_read_back_by_its_record_key_and_never_written_twice` and
//! `mastodon::mastodon_posts_once_across_a_lost_answer_and_slow_media`.

use std::collections::HashMap;

use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::TestApp;
use herald_testkit::TestEnv;
use serde_json::{Value, json};

/// A platform read by listing: its account key in `connect_all`, its creating call's path, the
/// sandbox's name for it and its grants.
struct Listed {
    account: &'static str,
    create: &'static str,
    sandbox: SandboxPlatform,
    grants: &'static str,
    /// The user whose grants are revoked.
    user: &'static str,
}

const LISTED: [Listed; 2] = [
    Listed { account: "x", create: "/x/api/2/tweets", sandbox: SandboxPlatform::X, grants: "x", user: "2244994945" },
    Listed {
        account: "facebook",
        create: "/meta/graph/v26.0/104000000000001/feed",
        sandbox: SandboxPlatform::Meta,
        grants: "meta",
        user: "10158000000000001",
    },
];

/// Submits `text` to `account` with the creating call's answer lost (`kind`: applied or not);
/// the post's id and its first target as the submission answered.
async fn lost(app: &TestApp, ids: &HashMap<&str, String>, p: &Listed, kind: &str, text: &str) -> (String, Value) {
    let fault = json!({ "method": "POST", "path": p.create, "kind": { "type": kind }, "times": 1 });
    app.fault(fault).await;
    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids[p.account] }], "text": text });
    let (status, post) = app.releasing(app.post(body, None)).await;
    assert_eq!(status, 202, "{post}");
    (post["id"].as_str().unwrap().to_owned(), post["targets"][0].clone())
}

fn texts(app: &TestApp, platform: SandboxPlatform) -> Vec<String> {
    app.published(platform).into_iter().map(|p| p.text).collect()
}

#[tokio::test]
async fn a_lost_answer_is_looked_for_after_the_platforms_lag_then_found_or_sent_once() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    app.control("/_sandbox/read_lag", json!({ "seconds": 30 })).await;
    for p in &LISTED {
        // Applied, answer lost, not listed yet: the target waits, nothing is sent again.
        let (post, first) = lost(&app, &ids, p, "applied_then_hang", &format!("{} applied", p.account)).await;
        assert_eq!(
            (first["status"].as_str(), first["error"]["code"].as_str()),
            (Some("retrying"), Some("outcome_unknown"))
        );
        assert!(first["error"]["message"].as_str().unwrap().contains("read again before anything is sent"), "{first}");
        let settled = app.settle(&post, &ids[p.account]).await;
        assert_eq!(settled["status"], "published", "{}: {settled}", p.account);
        let history = settled["history"].as_array().unwrap();
        assert_eq!(history.last().unwrap()["found"], true, "{}: found, not sent: {settled}", p.account);
        assert_eq!(history.first().unwrap()["error"]["code"], "outcome_unknown", "the lost answer is in the history");
        let made = app.published(p.sandbox);
        assert_eq!(made.len(), 1, "{}: once", p.account);
        assert_eq!(settled["platform_post_id"], made[0].id.as_str());

        // Not applied, answer lost: not there after the lag, so sent, once.
        let (post, _) = lost(&app, &ids, p, "hang", &format!("{} not applied", p.account)).await;
        let settled = app.settle(&post, &ids[p.account]).await;
        assert_eq!(settled["status"], "published", "{}: {settled}", p.account);
        assert!(settled["history"].as_array().unwrap().last().unwrap().get("found").is_none(), "{settled}");
        let want = [format!("{} applied", p.account), format!("{} not applied", p.account)];
        assert_eq!(texts(&app, p.sandbox), want, "{}: each once", p.account);

        // The grant is revoked before the look: the platform cannot be read, so unknown, with
        // the reason, and nothing more is sent.
        let (post, _) = lost(&app, &ids, p, "applied_then_hang", &format!("{} then revoked", p.account)).await;
        let revoked = app.control("/_sandbox/grants/revoke", json!({ "platform": p.grants, "user_id": p.user })).await;
        assert!(revoked["revoked"].as_u64() > Some(0), "{revoked}");
        let settled = app.settle(&post, &ids[p.account]).await;
        assert_eq!(
            (settled["status"].as_str(), settled["error"]["code"].as_str()),
            (Some("unknown"), Some("outcome_unknown")),
            "{settled}"
        );
        assert!(settled["error"]["message"].as_str().unwrap().contains("cannot be read"), "{settled}");
        assert_eq!(app.published(p.sandbox).len(), 3, "{}: the third once, never resent", p.account);
    }
}

/// A claim whose worker died is looked for like a lost answer: found → published as it is;
/// never made → sent once. (Before issue 18 it settled `unknown` without a look.)
#[tokio::test]
async fn a_dead_workers_claim_is_reconciled_not_left_unknown() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let at =
        (app.clock_now() + time::Duration::minutes(5)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut made = Vec::new();
    for (i, applied) in [true, false].into_iter().enumerate() {
        let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": format!("orphan {i}"), "scheduled_at": at });
        let (_, post) = app.post(body, None).await;
        made.push((post["id"].as_str().unwrap().to_owned(), applied));
    }
    app.advance(time::Duration::minutes(5)).await;
    for (post, applied) in &made {
        // A worker claims the target and dies, after its call reached X or before.
        let id: herald::domain::PostId = post.parse().unwrap();
        let stored = app.state.posts.get(&app.tenant, &id).await.unwrap().unwrap();
        app.state.posts.claim(&app.tenant, &id, &stored.targets[0], time::Duration::minutes(2)).await.unwrap();
        if *applied {
            let account: herald::domain::AccountId = ids["x"].parse().unwrap();
            let user = "user-1".parse().unwrap();
            let account = app.state.accounts.get(&app.tenant, &user, &account).await.unwrap().unwrap();
            let tokens = app.state.tokens.usable(&account).await.unwrap();
            let outgoing = herald::platforms::publish::Outgoing {
                text: &stored.text,
                media: &[],
                resume: None,
                key: "dead",
                made_at: stored.created_at,
            };
            app.state.platforms.publish(&account, &tokens, &outgoing).await.unwrap();
        }
    }
    app.advance(time::Duration::minutes(3)).await;
    for (post, applied) in &made {
        let settled = app.settle(post, &ids["x"]).await;
        assert_eq!(settled["status"], "published", "{settled}");
        let found = settled["history"].as_array().unwrap().last().unwrap().get("found").is_some();
        assert_eq!(found, *applied, "{settled}");
    }
    assert_eq!(texts(&app, SandboxPlatform::X), ["orphan 0", "orphan 1"], "each once");
}

/// Where the platform gives posting apps no read (LinkedIn members; Instagram beyond its
/// container), a lost answer is `unknown` at once, with the reason, and never resent.
#[tokio::test]
async fn a_platform_that_cannot_be_read_leaves_a_lost_answer_unknown_with_the_reason() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let linkedin = Listed {
        account: "linkedin_member",
        create: "/linkedin/api/rest/posts",
        sandbox: SandboxPlatform::Linkedin,
        grants: "linkedin",
        user: "",
    };
    let (post, first) = lost(&app, &ids, &linkedin, "applied_then_hang", "maybe on linkedin").await;
    assert_eq!((first["status"].as_str(), first["error"]["code"].as_str()), (Some("unknown"), Some("outcome_unknown")));
    assert!(first["error"]["message"].as_str().unwrap().contains("cannot be read back"), "{first}");
    let worker = app.worker(2).await;
    assert!(
        worker.handle_batch(app.publish_event(&post, &ids["linkedin_member"], 1)).await.batch_item_failures.is_empty()
    );
    assert_eq!(texts(&app, SandboxPlatform::Linkedin), ["maybe on linkedin"], "once, never resent");
}
