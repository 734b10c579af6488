//! The attacks of issue 13, each run end to end as an attacker would (a second tenant, a second
//! browser, curl), and refused. docs/security.md names each with its defence.

use herald_testkit::{TestEnv, query};
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
    app.advance(time::Duration::seconds(1)).await;
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

const X_USER: &str = "2244994945";
const META_USER: &str = "10158000000000001";
const LINKEDIN_MEMBER: &str = "yrZCpj2Z12";

/// Consent CSRF: the attacker starts a connect flow for their own user, stops at the platform's
/// authorize URL and sends it to a victim, who approves. The victim's browser returns to Herald
/// without the attacker's browser secret: an error page, no redirect, nothing connected, and the
/// state is spent.
#[tokio::test]
async fn an_authorize_url_sent_to_another_browser_connects_nothing() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let attacker = herald_testkit::new_browser();
    let victim = herald_testkit::new_browser();
    let mut cases =
        vec![("x", X_USER), ("facebook", META_USER), ("instagram", META_USER), ("linkedin", LINKEDIN_MEMBER)];
    cases.push(("x-oauth1", X_USER));
    for (platform, victim_account) in cases {
        if platform == "x-oauth1" {
            let (status, _) = app.call(Method::PATCH, "/v1/tenant", Some(json!({ "x_auth": "oauth1" }))).await;
            assert_eq!(status, 200);
        }
        let platform = platform.trim_end_matches("-oauth1");
        let link = app.connect_link("mallory", platform).await;
        let authorize = app.redirected_in(&attacker, &link).await;
        // The victim approves the attacker's request in their own browser.
        let callback = app.consent_in(&victim, &authorize, victim_account, "approve").await;
        let response = victim.get(&callback).send().await.unwrap();
        assert_eq!(response.status(), 403, "{platform}");
        assert!(response.headers().get("location").is_none(), "{platform}: the victim was redirected");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "browser_mismatch", "{platform}: {problem}");
        // A browser asking for HTML gets a page saying what happened.
        let page = victim.get(&callback).header("accept", "text/html").send().await.unwrap();
        assert_eq!(page.status(), 403);
        assert!(page.text().await.unwrap().contains("started in another browser"));
        // The attacker cannot use the state either: it was spent.
        let spent = query(&app.redirected_in(&attacker, &callback).await);
        assert_eq!(spent["error"], "state_invalid", "{platform}");
        assert!(app.accounts("mallory").await.is_empty(), "{platform}: the victim's account went to the attacker");
    }
}

/// Code injection, across tenants: a victim of another tenant approves their own flow; the
/// attacker obtains the victim's unused code and sends it back with their own state, from their
/// own (correctly bound) browser. PKCE makes the platform refuse the exchange (X, and Meta since
/// this issue); nothing is connected on either side.
#[tokio::test]
async fn a_stolen_code_with_the_attackers_state_connects_nothing() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let origin = herald::store::Origin::parse(herald_testkit::RETURN_ORIGIN).unwrap();
    let (victim_tenant, victim_key) = app.state.tenants.create("Victim's tenant", vec![origin]).await.unwrap();
    let attacker = herald_testkit::new_browser();
    let victim = herald_testkit::new_browser();
    for (platform, account) in [("x", X_USER), ("facebook", META_USER), ("instagram", META_USER)] {
        // The victim's flow, in the victim's tenant and browser, up to the callback it never reaches.
        let link = app.connect_link_as(victim_key.reveal(), "alice", platform).await;
        let authorize = app.redirected_in(&victim, &link).await;
        let victims_callback = app.consent_in(&victim, &authorize, account, "approve").await;
        let stolen = query(&victims_callback)["code"].clone();

        // The attacker's own flow, with the victim's code swapped in.
        let link = app.connect_link("mallory", platform).await;
        let authorize = app.redirected_in(&attacker, &link).await;
        let own = app.consent_in(&attacker, &authorize, account, "approve").await;
        let mut injected = url::Url::parse(&own).unwrap();
        injected.set_fragment(None);
        let pairs: Vec<(String, String)> = injected
            .query_pairs()
            .map(|(k, v)| {
                let value = if k == "code" { stolen.clone() } else { v.into_owned() };
                (k.into_owned(), value)
            })
            .collect();
        injected.query_pairs_mut().clear().extend_pairs(pairs);
        let outcome = query(&app.redirected_in(&attacker, injected.as_str()).await);
        assert_eq!(outcome["status"], "error", "{platform}: {outcome:?}");
        assert_eq!(outcome["error"], "exchange_failed", "{platform}: {outcome:?}");
        assert!(app.accounts("mallory").await.is_empty(), "{platform}: the victim's account went to the attacker");
        let alice = "alice".parse().unwrap();
        assert!(app.state.accounts.list(&victim_tenant.id, &alice).await.unwrap().is_empty());
    }
}

/// A `HEAD` probe or a link-preview bot does not use the link up; the user's browser still can.
/// A browser without Fetch Metadata gets the same page and continues with its button.
#[tokio::test]
async fn previews_and_probes_leave_connect_links_usable() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let link = app.connect_link("user-1", "x").await;
    let head = app.browser.head(&link).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().get("location").is_none());
    let bot = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)")
        .build()
        .unwrap();
    for _ in 0..2 {
        let preview = bot.get(&link).send().await.unwrap();
        assert_eq!(preview.status(), 200);
        assert_eq!(preview.headers()["cache-control"], "no-store");
        assert!(preview.text().await.unwrap().contains(r#"<form method="post""#));
    }
    assert!(app.redirected(&link).await.contains("/oauth2/authorize"), "the link was used up by a preview");

    // An old browser (no Fetch Metadata, but cookies): the page, its button, the platform.
    let old =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    let link = app.connect_link("user-2", "x").await;
    assert_eq!(old.get(&link).send().await.unwrap().status(), 200);
    let pressed = old.post(&link).send().await.unwrap();
    assert_eq!(pressed.status(), 303);
    let authorize = pressed.headers()["location"].to_str().unwrap().to_owned();
    let callback = app.consent_in(&old, &authorize, X_USER, "approve").await;
    let back = old.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), 302);
    assert_eq!(query(back.headers()["location"].to_str().unwrap())["status"], "connected");
}

/// What a pending authorization keeps until its callback (a PKCE verifier, an OAuth 1.0a
/// request secret, a DPoP private key) is sealed at rest like tokens, and opens only under its
/// platform's context.
#[tokio::test]
async fn pending_authorization_secrets_are_sealed_at_rest() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use herald::store::OAuthState;
    use secrecy::{ExposeSecret as _, SecretString};

    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let marker = "pkce-verifier-plaintext-marker";
    let pending = OAuthState {
        tenant: app.tenant.clone(),
        user: "alice".parse().unwrap(),
        platform: herald::domain::Platform::Bluesky,
        return_to: url::Url::parse(herald_testkit::RETURN_ORIGIN).unwrap(),
        connector: "oauth".into(),
        secret: Some(SecretString::from(marker.to_owned())),
        browser: "0".repeat(64),
        expires_at: app.clock_now() + time::Duration::minutes(10),
    };
    app.state.connect.put_state("state-at-rest", &pending).await.unwrap();
    let item = env
        .aws
        .dynamodb
        .get_item()
        .table_name(&env.resources.table)
        .key("pk", AttributeValue::S("STATE#state-at-rest".into()))
        .key("sk", AttributeValue::S("STATE".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the state is stored");
    let sealed = item["secret"].as_b().expect("the secret is stored sealed (binary), not as a string");
    assert!(!sealed.as_ref().windows(marker.len()).any(|w| w == marker.as_bytes()), "the secret is in the clear");
    assert!(!format!("{item:?}").contains(marker));
    let consumed = app.state.connect.consume_state("state-at-rest").await.unwrap();
    assert_eq!(consumed.secret.unwrap().expose_secret(), marker);
}
