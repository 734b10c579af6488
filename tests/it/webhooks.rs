//! Inbound webhooks end to end: the sandbox runs each platform's handshake against Herald and
//! sends deliveries signed the way each platform signs them; Herald records each event once for
//! the accounts it concerns and refuses anything forged, changed or malformed, storing nothing.

use herald_testkit::{TestApp, TestEnv};
use serde_json::{Value, json};

async fn platform_events(app: &TestApp) -> Vec<herald::store::Event> {
    let events = app.events().await;
    events.into_iter().filter(|e| e.kind == "platform.event").collect()
}

#[tokio::test]
async fn each_platforms_handshake_is_answered_as_it_requires() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    for (platform, verify_token) in
        [("meta", Some(herald_sandbox::dev::META_WEBHOOK_VERIFY_TOKEN)), ("x", None), ("linkedin", None)]
    {
        let url = format!("{}/webhooks/{platform}", app.url);
        let report = app.control("/_sandbox/webhooks/handshake",
            json!({ "platform": platform, "url": url, "client_id": herald_testkit::dev_client_id(platform), "verify_token": verify_token }),
        )
        .await;
        assert_eq!(report["valid"], true, "{platform}: {report}");
    }
    // Meta with someone else's verify token, and challenges missing: refused.
    let url = format!("{}/webhooks/meta", app.url);
    let report = app.control("/_sandbox/webhooks/handshake",
        json!({ "platform": "meta", "url": url, "client_id": herald_testkit::dev_client_id("meta"), "verify_token": "guess" }),
    )
    .await;
    assert_eq!((report["valid"].as_bool(), report["status"].as_u64()), (Some(false), Some(403)), "{report}");
    for path in ["/webhooks/x", "/webhooks/linkedin"] {
        let response = app.browser.get(format!("{}{path}", app.url)).send().await.unwrap();
        assert_eq!(response.status(), 422, "{path}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "webhook_challenge_missing");
    }
}

#[tokio::test]
async fn signed_deliveries_are_recorded_once_for_the_accounts_they_concern() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let org_urn =
        app.accounts("user-1").await.into_iter().find(|a| a["kind"] == "organization").unwrap()["platform_account_id"]
            .as_str()
            .map(str::to_owned);

    let page_event = json!({ "object": "page", "entry": [{ "id": "104000000000001", "time": 1_764_400_000, "changes": [{ "field": "feed", "value": { "item": "comment", "verb": "add", "message": "nice" } }] }] });
    assert_eq!(app.platform_webhook("meta", page_event.clone()).await["status"], 200);
    let x_event =
        json!({ "for_user_id": "2244994945", "tweet_create_events": [{ "id_str": "1799", "text": "hello" }] });
    assert_eq!(app.platform_webhook("x", x_event).await["status"], 200);
    let li_event = json!({ "type": "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS", "notifications": [{ "notificationId": 42, "organizationalEntity": org_urn, "action": "COMMENT" }] });
    assert_eq!(app.platform_webhook("linkedin", li_event).await["status"], 200);
    // An account nobody connected: acknowledged, dropped.
    let stranger = json!({ "object": "page", "entry": [{ "id": "999", "time": 1, "changes": [{ "field": "feed", "value": {} }] }] });
    assert_eq!(app.platform_webhook("meta", stranger).await["status"], 200);
    // The platform's retry of the first delivery: acknowledged, not recorded again.
    assert_eq!(app.platform_webhook("meta", page_event).await["status"], 200);

    let events = platform_events(&app).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    let page = events.iter().find(|e| e.account_id == ids["facebook"]).expect("the Page's event");
    assert_eq!(page.reason.as_deref(), Some("feed"));
    assert_eq!(page.data.as_ref().unwrap()["message"], "nice");
    let tweet = events.iter().find(|e| e.account_id == ids["x"]).expect("the X user's event");
    assert_eq!(tweet.reason.as_deref(), Some("tweet_create_events"));
    let notification = events.iter().find(|e| e.account_id == ids["linkedin_org"]).expect("the organization's event");
    assert_eq!(notification.data.as_ref().unwrap()["action"], "COMMENT");
}

#[tokio::test]
async fn forged_changed_and_malformed_deliveries_are_refused_and_store_nothing() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    app.connect_all("user-1").await;
    let event = json!({ "object": "page", "entry": [{ "id": "104000000000001", "time": 5, "changes": [{ "field": "feed", "value": { "n": 1 } }] }] });
    // What the platform would send, as the sandbox signed it (delivered to a path that records nothing).
    let signed = app.control("/_sandbox/webhooks/deliver", json!({ "platform": "meta", "url": format!("{}/nowhere", app.url), "client_id": herald_testkit::dev_client_id("meta"), "payload": event })).await;
    let body = signed["sent"].as_str().unwrap().to_owned();
    let signature = signed["signature"].as_str().unwrap().to_owned();
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let post = |body: String, signature: Option<String>| {
        let mut request = app
            .browser
            .post(format!("{}/webhooks/meta", app.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send()
    };
    let forged = format!("sha256={}", "0".repeat(64));
    for (body, signature, status) in [
        (body.clone(), None, 401),
        (body.clone(), Some(forged), 401),
        (pretty, Some(signature.clone()), 401),
        (body[..body.len() - 1].to_owned(), Some(signature.clone()), 401),
        (body.replace("\"n\":1", "\"n\":2"), Some(signature.clone()), 401),
        (format!("{body}{}", " ".repeat(70 * 1024)), Some(signature.clone()), 413),
    ] {
        let response = post(body, signature).await.unwrap();
        assert_eq!(response.status(), status);
        if status == 401 {
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["code"], "webhook_signature_invalid");
        }
    }
    // Signed correctly, but not a Meta delivery.
    let malformed = app.platform_webhook("meta", json!([1, 2, 3])).await;
    assert_eq!(malformed["status"], 400, "{malformed}");
    assert!(platform_events(&app).await.is_empty(), "nothing was recorded");

    // The genuine delivery, then its replay: recorded once.
    for _ in 0..2 {
        assert_eq!(post(body.clone(), Some(signature.clone())).await.unwrap().status(), 200);
    }
    assert_eq!(platform_events(&app).await.len(), 1);
}

/// X's `user_event` revoke (Account Activity, no `for_user_id`: the audit's F11) is recorded for
/// the user's X account and revokes its grant at once; a retry of it changes nothing more.
#[tokio::test]
async fn an_x_revoke_event_revokes_the_users_grant() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let revoke = json!({ "user_event": { "revoke": {
        "date_time": "2026-12-02T09:48:12+00:00",
        "target": { "app_id": "13090192" },
        "source": { "user_id": "2244994945" },
    } } });
    for _ in 0..2 {
        let report = app.platform_webhook("x", revoke.clone()).await;
        assert_eq!(report["status"], 200, "{report}");
    }
    let accounts = app.accounts("user-1").await;
    let status =
        |key: &str| accounts.iter().find(|a| a["id"] == ids[key]).unwrap()["status"].as_str().unwrap().to_owned();
    assert_eq!((status("x"), status("facebook")), ("revoked".to_owned(), "active".to_owned()));
    let journal = app.events().await;
    let kinds: Vec<_> = journal
        .iter()
        .filter(|e| e.kind == "account.revoked" || e.kind == "platform.event")
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "account.revoked").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "platform.event").count(), 1, "{kinds:?}");
    // A post to the revoked account is refused before anything is stored.
    let (status, problem) = app
        .post(json!({ "user_id": "user-1", "targets": [{ "account_id": ids["x"] }], "text": "after the revoke" }), None)
        .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("account_needs_reauth")), "{problem}");
}

#[tokio::test]
async fn meta_deauthorize_and_data_deletion_revoke_what_the_user_granted() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let status_of = |accounts: &[Value], id: &str| {
        accounts.iter().find(|a| a["id"] == id).map(|a| a["status"].as_str().unwrap().to_owned()).unwrap()
    };
    let callback = |path: &str| {
        let url = format!("{}/webhooks/meta/{path}", app.url);
        app.control(
            "/_sandbox/webhooks/signed_request",
            json!({ "url": url, "client_id": herald_testkit::dev_client_id("meta"), "user_id": "10158000000000001" }),
        )
    };

    // Forged: refused, nothing changes.
    let forged = app
        .browser
        .post(format!("{}/webhooks/meta/deauthorize", app.url))
        .form(&[(
            "signed_request",
            "c2ln.eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiIsInVzZXJfaWQiOiIxMDE1ODAwMDAwMDAwMDAwMSJ9",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(status_of(&app.accounts("user-1").await, &ids["facebook"]), "active");

    // Deauthorized at Meta: the Page and the Instagram account are revoked, the rest untouched.
    assert_eq!(callback("deauthorize").await["status"], 200);
    let accounts = app.accounts("user-1").await;
    for (key, expected) in
        [("facebook", "revoked"), ("instagram", "revoked"), ("x", "active"), ("linkedin_member", "active")]
    {
        assert_eq!(status_of(&accounts, &ids[key]), expected, "{key}");
    }
    let revoked: Vec<_> = app.events().await.into_iter().filter(|e| e.kind == "account.revoked").collect();
    assert_eq!(revoked.len(), 2, "{revoked:#?}");
    let (status, problem) = app
        .post(
            json!({ "user_id": "user-1", "targets": [{ "account_id": ids["facebook"] }], "text": "after removal" }),
            None,
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("account_needs_reauth")));

    // Data deletion: the sealed tokens are gone, and Meta gets a status URL and a code.
    let report = callback("data-deletion").await;
    assert_eq!(report["status"], 200, "{report}");
    let answer: Value = serde_json::from_str(report["body"].as_str().unwrap()).unwrap();
    let code = answer["confirmation_code"].as_str().unwrap();
    let status_url = answer["url"].as_str().unwrap();
    assert!(status_url.starts_with(&app.url) && status_url.ends_with(code), "{status_url}");
    let status: Value = app.browser.get(status_url).send().await.unwrap().json().await.unwrap();
    assert_eq!((status["status"].as_str(), status["accounts"].as_u64()), (Some("complete"), Some(2)), "{status}");
    for key in ["facebook", "instagram"] {
        let account = app
            .state
            .accounts
            .get(&app.tenant, &"user-1".parse().unwrap(), &ids[key].parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(app.state.accounts.tokens(&account).await, Err(herald::store::StoreError::NotFound)),
            "{key}'s tokens remain"
        );
    }
    let x = app
        .state
        .accounts
        .get(&app.tenant, &"user-1".parse().unwrap(), &ids["x"].parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(app.state.accounts.tokens(&x).await.is_ok(), "other platforms' tokens are kept");
    let unknown =
        app.browser.get(format!("{}/webhooks/meta/data-deletion/{}", app.url, "0".repeat(24))).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    // A captured signed request replayed two hours later: refused.
    app.advance(time::Duration::hours(2)).await;
    let replayed = app
        .browser
        .post(format!("{}/webhooks/meta/deauthorize", app.url))
        .form(&[("signed_request", report["signed_request"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
}

/// The handshakes once signed anything: `GET /webhooks/x?crc_token=<body>` answered X's
/// delivery signature for that body, and LinkedIn's `challengeCode=<body>` (or
/// `hmacsha256=<body>`) a valid `X-LI-Signature`. An attacker with no secret signs an event
/// through the handshake, then delivers it: refused, nothing recorded.
#[tokio::test]
async fn the_handshakes_sign_nothing_but_the_platforms_own_challenges() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let challenge = |path: &str, name: &str, value: &str| {
        let mut url = url::Url::parse(&format!("{}{path}", app.url)).unwrap();
        url.query_pairs_mut().append_pair(name, value);
        app.browser.get(url).send()
    };
    let deliver = |path: &str, header: &'static str, signature: String, body: String| {
        app.browser
            .post(format!("{}{path}", app.url))
            .header("content-type", "application/json")
            .header(header, signature)
            .body(body)
            .send()
    };

    // X: the body is the crc_token; its response_token would be the delivery signature.
    let x_body = json!({ "for_user_id": "2244994945", "tweet_create_events": [{ "id_str": "666", "text": "forged" }] })
        .to_string();
    let answer = challenge("/webhooks/x", "crc_token", &x_body).await.unwrap();
    let status = answer.status();
    let answer: Value = answer.json().await.unwrap();
    // The attacker delivers with whatever the handshake answered: refused.
    let token = answer["response_token"].as_str().unwrap_or("sha256=").to_owned();
    let response = deliver("/webhooks/x", "x-twitter-webhooks-signature", token, x_body).await.unwrap();
    assert_eq!(response.status(), 401, "an X event signed through the CRC handshake was accepted");
    assert_eq!((status.as_u16(), answer["code"].as_str()), (422, Some("webhook_challenge_invalid")), "{answer}");

    // LinkedIn: both readings of X-LI-Signature.
    let li_body = json!({ "type": "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS", "notifications": [{ "notificationId": 666, "organizationalEntity": "urn:li:organization:2414183", "action": "COMMENT" }] }).to_string();
    for (code, prefix) in [(format!("hmacsha256={li_body}"), ""), (li_body.clone(), "hmacsha256=")] {
        let answer = challenge("/webhooks/linkedin", "challengeCode", &code).await.unwrap();
        let status = answer.status();
        let answer: Value = answer.json().await.unwrap();
        let signature = format!("{prefix}{}", answer["challengeResponse"].as_str().unwrap_or_default());
        let response = deliver("/webhooks/linkedin", "x-li-signature", signature, li_body.clone()).await.unwrap();
        assert_eq!(response.status(), 401, "a LinkedIn event signed through the challenge was accepted");
        assert_eq!((status.as_u16(), answer["code"].as_str()), (422, Some("webhook_challenge_invalid")), "{answer}");
    }

    // Nothing was recorded for either account; the genuine handshakes still pass.
    let events = platform_events(&app).await;
    assert!(
        events.iter().all(|e| e.account_id != ids["x"] && e.account_id != ids["linkedin_org"]),
        "forged events were recorded: {events:#?}"
    );
    for platform in ["x", "linkedin"] {
        let url = format!("{}/webhooks/{platform}", app.url);
        let report = app
            .control(
                "/_sandbox/webhooks/handshake",
                json!({ "platform": platform, "url": url, "client_id": herald_testkit::dev_client_id(platform) }),
            )
            .await;
        assert_eq!(report["valid"], true, "{platform}: {report}");
    }
}

/// A delivery Herald cannot record (here: an event over DynamoDB's 400 KB item limit) is answered
/// 5xx and forgotten, so the platform's retry is processed again instead of dropped as a duplicate.
#[tokio::test]
async fn a_delivery_that_cannot_be_recorded_is_forgotten_for_the_platforms_retry() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with(|config| config.max_body_bytes = 1024 * 1024).await;
    app.connect_all("user-1").await;
    let huge = "x".repeat(450 * 1024);
    let event = json!({ "object": "page", "entry": [{ "id": "104000000000001", "time": 7, "changes": [{ "field": "feed", "value": { "message": huge } }] }] });
    for delivery in ["first", "retry"] {
        let status = app.platform_webhook("meta", event.clone()).await["status"].as_u64();
        assert!(status.is_some_and(|s| s >= 500), "{delivery}: {status:?} (a duplicate would be 200)");
    }
    assert!(platform_events(&app).await.is_empty());
    // A small event after them is recorded as usual.
    let small = json!({ "object": "page", "entry": [{ "id": "104000000000001", "time": 8, "changes": [{ "field": "feed", "value": { "message": "ok" } }] }] });
    assert_eq!(app.platform_webhook("meta", small).await["status"], 200);
    assert_eq!(platform_events(&app).await.len(), 1);
}
