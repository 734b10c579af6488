//! Inbound webhooks end to end: the sandbox runs each platform's handshake against Herald and
//! sends deliveries signed the way each platform signs them; Herald records each event once for
//! the accounts it concerns and refuses anything forged, changed or malformed, storing nothing.

use herald_testkit::{TestApp, TestEnv};
use serde_json::{Value, json};

async fn sandbox(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.browser.post(format!("{}{path}", app.sandbox.url)).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

fn client_id(platform: &str) -> &'static str {
    use herald_sandbox::dev;
    match platform {
        "meta" => dev::META_APP_ID,
        "x" => dev::X_CLIENT_ID,
        _ => dev::LINKEDIN_CLIENT_ID,
    }
}

/// The sandbox signs `payload` as `platform` does and posts it to Herald; returns its report.
async fn deliver(app: &TestApp, platform: &str, payload: Value) -> Value {
    let url = format!("{}/webhooks/{platform}", app.url);
    sandbox(
        app,
        "/_sandbox/webhooks/deliver",
        json!({ "platform": platform, "url": url, "client_id": client_id(platform), "payload": payload }),
    )
    .await
}

async fn platform_events(app: &TestApp) -> Vec<herald::store::Event> {
    let events = app.state.journal.list(&app.tenant, false).await.unwrap();
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
        let report = sandbox(
            &app,
            "/_sandbox/webhooks/handshake",
            json!({ "platform": platform, "url": url, "client_id": client_id(platform), "verify_token": verify_token }),
        )
        .await;
        assert_eq!(report["valid"], true, "{platform}: {report}");
    }
    // Meta with someone else's verify token, and challenges missing: refused.
    let url = format!("{}/webhooks/meta", app.url);
    let report = sandbox(
        &app,
        "/_sandbox/webhooks/handshake",
        json!({ "platform": "meta", "url": url, "client_id": client_id("meta"), "verify_token": "guess" }),
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
    assert_eq!(deliver(&app, "meta", page_event.clone()).await["status"], 200);
    let x_event =
        json!({ "for_user_id": "2244994945", "tweet_create_events": [{ "id_str": "1799", "text": "hello" }] });
    assert_eq!(deliver(&app, "x", x_event).await["status"], 200);
    let li_event = json!({ "type": "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS", "notifications": [{ "notificationId": 42, "organizationalEntity": org_urn, "action": "COMMENT" }] });
    assert_eq!(deliver(&app, "linkedin", li_event).await["status"], 200);
    // An account nobody connected: acknowledged, dropped.
    let stranger = json!({ "object": "page", "entry": [{ "id": "999", "time": 1, "changes": [{ "field": "feed", "value": {} }] }] });
    assert_eq!(deliver(&app, "meta", stranger).await["status"], 200);
    // The platform's retry of the first delivery: acknowledged, not recorded again.
    assert_eq!(deliver(&app, "meta", page_event).await["status"], 200);

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
    let signed = sandbox(&app, "/_sandbox/webhooks/deliver", json!({ "platform": "meta", "url": format!("{}/nowhere", app.url), "client_id": client_id("meta"), "payload": event })).await;
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
    let malformed = deliver(&app, "meta", json!([1, 2, 3])).await;
    assert_eq!(malformed["status"], 400, "{malformed}");
    assert!(platform_events(&app).await.is_empty(), "nothing was recorded");

    // The genuine delivery, then its replay: recorded once.
    for _ in 0..2 {
        assert_eq!(post(body.clone(), Some(signature.clone())).await.unwrap().status(), 200);
    }
    assert_eq!(platform_events(&app).await.len(), 1);
}
