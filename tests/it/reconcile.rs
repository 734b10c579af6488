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
use herald_testkit::{TestApp, TestEnv, assert_target};
use serde_json::{Value, json};

/// A platform read by listing: its account key, its creating call's path, the sandbox's name
/// for it, its grants (whose user is revoked), and how the account is connected again.
struct Listed {
    account: &'static str,
    create: &'static str,
    sandbox: SandboxPlatform,
    grants: &'static str,
    user: &'static str,
    /// `(platform, platform user)` connected again after the revocation (Meta's revocation
    /// takes the Page and the Instagram account both).
    reconnect: &'static [(&'static str, &'static str)],
    /// Instagram posts need an image.
    media: bool,
    /// Where the platform's container status is read after a lost publish (Instagram, Threads):
    /// a fault there sends the look to the listing.
    container_reads: Option<&'static str>,
}

const THREADS_USER: &str = "25100000000000001";
/// Instagram's and Threads' container status reads, as logged.
const CONTAINER_STATUS: [&str; 2] =
    ["GET /{container-id}?fields=status_code", "GET /{threads-container-id}?fields=status"];

const LISTED: [Listed; 5] = [
    Listed {
        account: "x",
        create: "/x/api/2/tweets",
        sandbox: SandboxPlatform::X,
        grants: "x",
        user: "2244994945",
        reconnect: &[("x", "2244994945")],
        media: false,
        container_reads: None,
    },
    Listed {
        account: "facebook",
        create: "/meta/graph/v26.0/104000000000001/feed",
        sandbox: SandboxPlatform::Meta,
        grants: "meta",
        user: "10158000000000001",
        reconnect: &[("facebook", "10158000000000001"), ("instagram", "10158000000000001")],
        media: false,
        container_reads: None,
    },
    Listed {
        account: "instagram",
        create: "/meta/graph/v26.0/17841400000000001/media_publish",
        sandbox: SandboxPlatform::Meta,
        grants: "meta",
        user: "10158000000000001",
        reconnect: &[("facebook", "10158000000000001"), ("instagram", "10158000000000001")],
        media: true,
        container_reads: Some("/meta/graph/v26.0/"),
    },
    Listed {
        account: "linkedin_org",
        create: "/linkedin/api/rest/posts",
        sandbox: SandboxPlatform::Linkedin,
        grants: "linkedin",
        user: "yrZCpj2Z12",
        reconnect: &[("linkedin", "yrZCpj2Z12")],
        media: false,
        container_reads: None,
    },
    Listed {
        account: "threads",
        create: "/threads/graph/v1.0/25100000000000001/threads_publish",
        sandbox: SandboxPlatform::Threads,
        grants: "threads",
        user: THREADS_USER,
        reconnect: &[("threads", THREADS_USER)],
        media: false,
        container_reads: Some("/threads/graph/v1.0/"),
    },
];

/// Every account `connect_all` connects, and the Threads one (`threads`).
async fn connect_every(app: &TestApp) -> HashMap<&'static str, String> {
    let mut ids = app.connect_all("user-1").await;
    assert_eq!(app.connect("user-1", "threads", THREADS_USER, "approve").await["status"], "connected");
    let accounts = app.accounts("user-1").await;
    let threads = accounts.iter().find(|a| a["platform"] == "threads").expect("a Threads account");
    ids.insert("threads", threads["id"].as_str().unwrap().to_owned());
    ids
}

/// Submits `text` to `account` with the creating call's answer lost (`kind`: applied or not);
/// where `look_elsewhere`, the container's status cannot be read either, so the post is looked
/// for in the account's listing. The post's id and its first target as the submission answered.
async fn lost(
    app: &TestApp,
    ids: &HashMap<&str, String>,
    p: &Listed,
    kind: &str,
    text: &str,
    look_elsewhere: bool,
) -> (String, Value) {
    // POST only: the quota reads begin with the same paths.
    let fault = json!({ "method": "POST", "path": p.create, "kind": { "type": kind }, "times": 1 });
    app.fault(fault).await;
    let media = if p.media { json!([{ "url": app.media("a.jpg") }]) } else { json!([]) };
    let body =
        json!({ "user_id": "user-1", "targets": [{ "account_id": ids[p.account] }], "text": text, "media": media });
    let container_fault = async {
        if let (true, Some(path)) = (look_elsewhere, p.container_reads) {
            let status =
                json!({ "method": "GET", "path": path, "kind": { "type": "status", "status": 500 }, "times": 1 });
            app.fault(status).await;
        }
    };
    let (status, post) = app.releasing_after(app.post(body, None), container_fault).await;
    assert_eq!(status, 202, "{post}");
    (post["id"].as_str().unwrap().to_owned(), post["targets"][0].clone())
}

fn texts(app: &TestApp, platform: SandboxPlatform) -> Vec<String> {
    app.published(platform).into_iter().map(|p| p.text).collect()
}

/// Issue 18's acceptance, per platform read by listing (X's timeline, a Page's feed, an
/// Instagram account's media, a LinkedIn organization's posts, a Threads profile): an applied,
/// lost answer is found and published once; a lost answer never applied is sent once; an
/// unreadable platform (its grant revoked before the look) leaves it `unknown` with the reason;
/// and the tenant's retry of that unknown target, once the account is connected again, finds it
/// instead of posting it twice.
#[tokio::test]
async fn a_lost_answer_is_looked_for_after_the_platforms_lag_then_found_or_sent_once() {
    let logs = herald_testkit::captured_logs();
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let mut ids = connect_every(&app).await;
    app.control("/_sandbox/read_lag", json!({ "seconds": 30 })).await;
    for p in &LISTED {
        let account = ids[p.account].clone();
        let mine = |app: &TestApp| -> Vec<String> {
            texts(app, p.sandbox).into_iter().filter(|t| t.starts_with(p.account)).collect()
        };
        // Applied, answer lost, not listed yet: the target waits, nothing is sent again.
        let applied = format!("{} applied", p.account);
        let (post, first) = lost(&app, &ids, p, "applied_then_hang", &applied, true).await;
        assert_target(&first, "retrying", Some("outcome_unknown"));
        assert!(first["error"]["message"].as_str().unwrap().contains("read again before anything is sent"), "{first}");
        let settled = app.settle(&post, &account).await;
        assert_eq!(settled["status"], "published", "{}: {settled}", p.account);
        let history = settled["history"].as_array().unwrap();
        assert_eq!(history.last().unwrap()["found"], true, "{}: found, not sent: {settled}", p.account);
        assert_eq!(history.first().unwrap()["error"]["code"], "outcome_unknown", "the lost answer is in the history");
        says_what_happened(&app, &logs, p, history);
        let made: Vec<_> = app.published(p.sandbox).into_iter().filter(|m| m.text == applied).collect();
        assert_eq!(made.len(), 1, "{}: once", p.account);
        assert_eq!(settled["platform_post_id"], made[0].id.as_str(), "{}: by its own id", p.account);

        // Not applied, answer lost: not there after the lag (or the container still unpublished),
        // so sent, once.
        let (post, _) = lost(&app, &ids, p, "hang", &format!("{} not applied", p.account), false).await;
        let settled = app.settle(&post, &account).await;
        assert_eq!(settled["status"], "published", "{}: {settled}", p.account);
        let last = settled["history"].as_array().unwrap().last().unwrap().clone();
        assert!(last.get("found").is_none(), "{settled}");
        // Looked for, not there; where a container was made, its status (read first by the
        // attempt that comes back to it) is the look.
        let looked = match p.container_reads {
            None => last["looked"]["result"].as_str(),
            Some(_) => last["calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| CONTAINER_STATUS.iter().any(|s| c["endpoint"] == *s))
                .then_some("absent"),
        };
        assert_eq!((last["answer"].as_str(), looked), (Some("done"), Some("absent")), "{last}");
        assert_eq!(mine(&app), [applied.clone(), format!("{} not applied", p.account)], "{}: each once", p.account);

        // The grant is revoked before the look: the platform cannot be read, so unknown, with
        // the reason, and nothing more is sent.
        let revoked_text = format!("{} then revoked", p.account);
        let (post, _) = lost(&app, &ids, p, "applied_then_hang", &revoked_text, true).await;
        let revoked = app.control("/_sandbox/grants/revoke", json!({ "platform": p.grants, "user_id": p.user })).await;
        assert!(revoked["revoked"].as_u64() > Some(0), "{revoked}");
        let settled = app.settle(&post, &account).await;
        assert_target(&settled, "unknown", Some("outcome_unknown"));
        assert!(settled["error"]["message"].as_str().unwrap().contains("cannot be read"), "{settled}");
        assert_eq!(mine(&app).len(), 3, "{}: the third once, never resent", p.account);

        // Connected again, the tenant retries the unknown target: it is looked for first, found,
        // and published as it is.
        for (platform, user) in p.reconnect {
            assert_eq!(app.connect("user-1", platform, user, "approve").await["status"], "connected");
        }
        let again = connect_every(&app).await;
        assert_eq!(again[p.account], account, "connecting again keeps the account");
        ids = again;
        let settled = app.retry_and_settle(&post, &account).await;
        assert_eq!(settled["status"], "published", "{}: {settled}", p.account);
        assert_eq!(settled["history"].as_array().unwrap().last().unwrap()["found"], true, "{settled}");
        assert_eq!(mine(&app).len(), 3, "{}: the retried unknown target did not post twice", p.account);
    }
}

/// Issue 18, item 2: a lost answer found on the platform reads in the history as that, not as a
/// plain success: the first attempt's answer `lost`, its creating call unanswered; the next one's
/// answer `found`, after a look (`looked`) that made only reads. Each attempt has its own request
/// id, which its platform calls' log lines carry; a platform's own request ids are the ones it
/// answered with (X's sandbox, like X, names none).
fn says_what_happened(app: &TestApp, logs: &herald_testkit::LogBuffer, p: &Listed, history: &[Value]) {
    let (first, last) = (&history[0], history.last().unwrap());
    assert_eq!(first["answer"], "lost", "{}: {first}", p.account);
    // The creating call is the last POST (Instagram's and Threads' first make a container; X's
    // adapter reads the timeline once at once after a lost answer).
    let calls = first["calls"].as_array().unwrap();
    let sent = calls.iter().rfind(|c| c["endpoint"].as_str().unwrap().starts_with("POST ")).expect("a POST");
    assert!(sent.get("status").is_none(), "the creating call went unanswered: {first}");
    assert_eq!((last["answer"].as_str(), last["looked"]["result"].as_str()), (Some("found"), Some("found")), "{last}");
    assert!(last["looked"]["since"].is_string(), "{last}");
    let reads = last["calls"].as_array().unwrap();
    assert!(!reads.is_empty() && reads.iter().all(|c| c["endpoint"].as_str().unwrap().starts_with("GET ")), "{last}");
    let (a, b) = (first["request_id"].as_str().unwrap(), last["request_id"].as_str().unwrap());
    assert!(a.starts_with("att_") && b.starts_with("att_") && a != b, "{a} {b}");
    let answered: Vec<String> = app.sandbox_calls().into_iter().filter_map(|c| c.request_id).collect();
    for call in reads.iter().filter(|c| c.get("status").is_some()) {
        match (p.sandbox, call["platform_request_id"].as_str()) {
            (SandboxPlatform::X, id) => assert_eq!(id, None, "{call}"),
            (_, Some(id)) => assert!(answered.iter().any(|a| a == id), "{}: {id} is the platform's", p.account),
            (_, None) => panic!("{}: the platform named its request: {call}", p.account),
        }
    }
    let text = logs.text();
    let lines = text.lines().filter(|l| l.contains("\"platform call\"") && l.contains(b)).count();
    assert_eq!(
        lines,
        reads.iter().filter(|c| c.get("status").is_some()).count(),
        "{}: the look's log lines",
        p.account
    );
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
        reconnect: &[],
        media: false,
        container_reads: None,
    };
    let (post, first) = lost(&app, &ids, &linkedin, "applied_then_hang", "maybe on linkedin", false).await;
    assert_target(&first, "unknown", Some("outcome_unknown"));
    assert!(first["error"]["message"].as_str().unwrap().contains("cannot be read back"), "{first}");
    let worker = app.worker(2).await;
    assert!(
        worker.handle_batch(app.publish_event(&post, &ids["linkedin_member"], 1)).await.batch_item_failures.is_empty()
    );
    assert_eq!(texts(&app, SandboxPlatform::Linkedin), ["maybe on linkedin"], "once, never resent");
}

/// Bounded, never twice: an answer lost on every one of the 8 attempts (X's 502 to the creating
/// call, which does not say whether it was applied) is looked for once more past the last; not
/// there, the target fails `attempts_exhausted` without a 9th send, and goes to the dead-letter
/// queue for an operator.
#[tokio::test]
async fn answers_lost_on_every_attempt_end_in_one_last_look_and_no_more_sends() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let fault =
        json!({ "method": "POST", "path": "/x/api/2/tweets", "kind": { "type": "status", "status": 502 }, "times": 8 });
    app.fault(fault).await;
    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "lost every time" });
    let (status, post) = app.post(body, None).await;
    assert_eq!(status, 202, "{post}");
    let post = post["id"].as_str().unwrap().to_owned();
    let settled = app.settle(&post, &ids["x"]).await;
    assert_target(&settled, "failed", Some("attempts_exhausted"));
    assert!(settled["error"]["message"].as_str().unwrap().contains("not sent again"), "{settled}");
    let sends = app.sandbox_calls().iter().filter(|c| c.method == "POST" && c.path == "/x/api/2/tweets").count();
    assert_eq!(sends, 8, "one send per attempt, none past the last");
    let history = settled["history"].as_array().unwrap();
    assert_eq!(history.len(), 9, "{settled}");
    assert!(history[..8].iter().all(|a| a["answer"] == "lost"), "{settled}");
    let last = &history[8];
    assert_eq!(
        (last["answer"].as_str(), last["looked"]["result"].as_str()),
        (Some("not_sent"), Some("absent")),
        "{last}"
    );
    assert!(texts(&app, SandboxPlatform::X).is_empty(), "nothing was made");
    let filter = herald::queue::dead::Filter { post: Some(post.parse().unwrap()), account: None };
    let letters = app.state.dead_letters.list(&filter).await.unwrap();
    assert_eq!(letters.len(), 1, "dead-lettered once: {letters:?}");
}

/// A look reads one page of the account's posts (100, the most each platform serves at once).
/// Submits `n` posts to `p`'s account, each published at once.
async fn newer_posts(app: &TestApp, ids: &HashMap<&str, String>, p: &Listed, n: usize) {
    for n in 0..n {
        let media = if p.media { json!([{ "url": app.media("a.jpg") }]) } else { json!([]) };
        let text = format!("newer {n} on {}", p.account);
        let body =
            json!({ "user_id": "user-1", "targets": [{ "account_id": ids[p.account] }], "text": text, "media": media });
        let (status, newer) = app.post(body, None).await;
        assert_eq!((status, newer["targets"][0]["status"].as_str()), (202, Some("published")), "{newer}");
    }
}

/// The listing calls a target's attempts made, as its history records them.
fn listing_calls(target: &Value) -> usize {
    let attempts = target["history"].as_array().unwrap();
    let calls = attempts.iter().flat_map(|a| a["calls"].as_array().cloned().unwrap_or_default());
    let listings = ["/tweets", "/feed", "/media", "q=author", "/threads"];
    calls
        .filter(|c| {
            let endpoint = c["endpoint"].as_str().unwrap_or_default();
            endpoint.starts_with("GET ") && listings.iter().any(|l| endpoint.ends_with(l))
        })
        .count()
}

/// When more than a page of posts were made since the lost answer, the post is looked for page
/// by page, each page by the platform's own cursor (X's `next_token`, Graph's `paging.next`,
/// LinkedIn's `start`), and found further on: published once. X and Graph serve five a page
/// here (Graph documents that an edge may serve fewer than `limit` while more follow, so a short
/// page is not the last); LinkedIn serves what is asked, and a page short of `count` is its last,
/// so its organization gets a full page of 100 newer posts. Before pagination each of these was
/// left `unknown`; before the full-page check, a page of 20 sent one twice.
#[tokio::test]
async fn a_lost_answer_behind_pages_of_newer_posts_is_found_further_on() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = connect_every(&app).await;
    // Not listed at once: the attempt's own look misses it, and the target waits to look again.
    app.control("/_sandbox/read_lag", json!({ "seconds": 30 })).await;
    app.control("/_sandbox/listing_page", json!({ "posts": 5 })).await;
    for p in &LISTED {
        let buried = format!("buried under pages on {}", p.account);
        let (post, first) = lost(&app, &ids, p, "applied_then_hang", &buried, true).await;
        assert_eq!(first["status"], "retrying", "{}: {first}", p.account);
        app.advance(time::Duration::seconds(1)).await;
        let newer = if p.account == "linkedin_org" { 100 } else { 12 };
        newer_posts(&app, &ids, p, newer).await;
        let settled = app.settle(&post, &ids[p.account]).await;
        assert_eq!(settled["status"], "published", "{}: {settled}", p.account);
        let last = settled["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["found"].as_bool(), last["looked"]["result"].as_str()), (Some(true), Some("found")), "{last}");
        let made: Vec<_> = app.published(p.sandbox).into_iter().filter(|m| m.text == buried).collect();
        assert_eq!(made.len(), 1, "{}: made once, by the lost call, and never sent again", p.account);
        assert_eq!(settled["platform_post_id"], made[0].id.as_str(), "{}: by its own id", p.account);
        // The finding look read past the first page: 12 newer and the post make three pages of
        // five; LinkedIn's are two of 100.
        let pages = listing_calls(&json!({ "history": [last] }));
        assert_eq!(pages, if p.account == "linkedin_org" { 2 } else { 3 }, "{}: {settled}", p.account);
    }
}

/// More posts since the lost answer than a look reads (ten pages): the post's absence is never
/// concluded, so it is never sent again; looked for until the attempts run out, it is `unknown`
/// with the reason, and each page was a call of its own.
#[tokio::test]
async fn a_lost_answer_behind_more_pages_than_a_look_reads_is_never_sent_again() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = connect_every(&app).await;
    app.control("/_sandbox/read_lag", json!({ "seconds": 30 })).await;
    app.control("/_sandbox/listing_page", json!({ "posts": 5 })).await;
    for p in LISTED.iter().filter(|p| ["x", "facebook"].contains(&p.account)) {
        let buried = format!("buried under eleven pages on {}", p.account);
        let (post, _) = lost(&app, &ids, p, "applied_then_hang", &buried, false).await;
        app.advance(time::Duration::seconds(1)).await;
        newer_posts(&app, &ids, p, 55).await;
        let settled = app.settle(&post, &ids[p.account]).await;
        assert_target(&settled, "unknown", Some("outcome_unknown"));
        assert!(settled["error"]["message"].as_str().unwrap().contains("more than 10 pages of posts"), "{settled}");
        let on_platform = texts(&app, p.sandbox).into_iter().filter(|t| *t == buried).count();
        assert_eq!(on_platform, 1, "{}: made once, by the lost call, and never sent again", p.account);
        let last = settled["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(listing_calls(&json!({ "history": [last] })), 10, "{}: ten pages, each a call", p.account);
    }
}

/// Each page a look reads is its own call against the platform's read budget, checked before
/// it: with room for two reads, a look that needs three reads two pages and waits for the
/// budget's next window, sending nothing (X's read budget, per account, here two in 15 minutes).
#[tokio::test]
async fn each_page_of_a_look_counts_against_the_read_budget() {
    use herald::ratelimit::{Budget, Scope, Window};
    let env = TestEnv::fresh().await;
    let app = env
        .spawn_app_with(|config| {
            let x = herald::domain::Platform::X;
            config.rate_limits = vec![
                herald_testkit::account_budget(x, 1_000, 86_400),
                Budget::read(x, Scope::Account, 2, Window::Fixed { seconds: 900 }),
            ]
        })
        .await;
    let ids = connect_every(&app).await;
    app.control("/_sandbox/read_lag", json!({ "seconds": 30 })).await;
    app.control("/_sandbox/listing_page", json!({ "posts": 5 })).await;
    let p = &LISTED[0];
    let (post, first) = lost(&app, &ids, p, "applied_then_hang", "behind three pages, two reads", false).await;
    assert_eq!(first["status"], "retrying", "{first}");
    app.advance(time::Duration::seconds(1)).await;
    newer_posts(&app, &ids, p, 12).await;
    let timeline = |app: &TestApp| {
        app.sandbox_calls().into_iter().filter(|c| c.method == "GET" && c.path.ends_with("/tweets")).count()
    };
    let (before, tweets) = (timeline(&app), texts(&app, p.sandbox).len());
    app.advance(time::Duration::seconds(61)).await;
    let failures = app.worker(2).await.handle_batch(app.publish_event(&post, &ids[p.account], 1)).await;
    assert!(failures.batch_item_failures.is_empty());
    assert_eq!(timeline(&app) - before, 2, "two pages read, the third left for the budget's next window");
    let target = app.read_post(&post).await["targets"][0].clone();
    assert_eq!(target["status"], "retrying", "{target}");
    assert_eq!(texts(&app, p.sandbox).len(), tweets, "nothing sent while the look is unfinished");
}

/// A lost answer is looked for before a publishing unit is spent on it: a post found needs none,
/// so a spent publishing budget does not hold its look back to the window's reset (where, on a
/// busy account, the look would have had days of newer posts to read past). A post not found
/// then waits for the budget like any other, its look kept for the next attempt.
#[tokio::test]
async fn a_lost_answer_is_looked_for_before_its_publishing_budget_is_spent() {
    let env = TestEnv::fresh().await;
    let app = env
        .spawn_app_with(|config| {
            config.rate_limits = vec![herald_testkit::account_budget(herald::domain::Platform::X, 2, 86_400)]
        })
        .await;
    let ids = connect_every(&app).await;
    app.control("/_sandbox/read_lag", json!({ "seconds": 30 })).await;
    let p = &LISTED[0];
    // Both units of the day spent: one post made, one not, each answer lost.
    let (made, first) = lost(&app, &ids, p, "applied_then_hang", "made, answer lost", false).await;
    assert_target(&first, "retrying", Some("outcome_unknown"));
    let (not_made, _) = lost(&app, &ids, p, "hang", "not made, answer lost", false).await;
    app.advance(time::Duration::seconds(61)).await;
    let worker = app.worker(2).await;
    for post in [&made, &not_made] {
        assert!(worker.handle_batch(app.publish_event(post, &ids[p.account], 1)).await.batch_item_failures.is_empty());
    }
    let found = app.read_post(&made).await["targets"][0].clone();
    assert_eq!(found["status"], "published", "found without a publishing unit: {found}");
    assert_eq!(found["history"].as_array().unwrap().last().unwrap()["found"], true, "{found}");
    let waiting = app.read_post(&not_made).await["targets"][0].clone();
    assert_target(&waiting, "retrying", Some("rate_limited"));
    let last = waiting["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["looked"]["result"], "absent", "looked for first, then held for the budget: {waiting}");
    assert_eq!(texts(&app, p.sandbox), ["made, answer lost"], "nothing sent over the budget");
}
