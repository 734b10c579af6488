//! The token manager against the sandbox and DynamoDB/KMS in moto: one refresh for many callers
//! (in one process and across processes), dead grants marked `needs_reauth` with an event, and
//! outages that change nothing.

use std::sync::Arc;

use herald::domain::{AccountStatus, UserId};
use herald::store::Account;
use herald::tokens::{TokenError, TokenManager};
use herald_testkit::{TestApp, TestEnv};
use secrecy::ExposeSecret;
use serde_json::json;

const X_USER: &str = "2244994945";

async fn connected(app: &TestApp, platform: &str, platform_user: &str) -> Account {
    let outcome = app.connect("user-1", platform, platform_user, "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    let id = outcome["accounts"].split(',').next().unwrap().parse().unwrap();
    let user: UserId = "user-1".parse().unwrap();
    app.state.accounts.get(&app.tenant, &user, &id).await.unwrap().unwrap()
}

async fn reload(app: &TestApp, account: &Account) -> Account {
    app.state.accounts.get(&account.tenant, &account.user, &account.id).await.unwrap().unwrap()
}

fn refreshes(app: &TestApp, path_suffix: &str) -> usize {
    app.sandbox
        .state
        .world()
        .calls
        .iter()
        .filter(|c| c.path.ends_with(path_suffix) && c.note.as_deref() == Some("grant_type=refresh_token"))
        .count()
}

/// Re-registers the dev LinkedIn app as one without programmatic refresh tokens (not an MDP partner).
async fn linkedin_without_refresh_tokens(app: &TestApp) {
    app.control(
        "/_sandbox/apps",
        json!({
            "platform": "linkedin", "client_id": herald_sandbox::dev::LINKEDIN_CLIENT_ID,
            "client_secret": herald_sandbox::dev::LINKEDIN_CLIENT_SECRET,
            "redirect_uris": [format!("{}/oauth/linkedin/callback", app.url)], "refresh_tokens": false,
        }),
    )
    .await;
}

#[tokio::test]
async fn fifty_concurrent_calls_on_an_expired_token_cause_one_refresh() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let account = connected(&app, "x", X_USER).await;
    let old = app.state.tokens.usable(&account).await.unwrap();

    // The token expires on both sides: X forgets it, Herald's clock passes its expiry.
    app.control("/_sandbox/grants/expire", json!({ "platform": "x", "user_id": X_USER })).await;
    app.advance(time::Duration::hours(2)).await;

    // Five managers stand for five Lambda instances sharing the table.
    let managers: Vec<Arc<TokenManager>> = (0..5)
        .map(|_| {
            Arc::new(TokenManager::new(
                app.state.accounts.clone(),
                app.state.platforms.clone(),
                app.state.events.clone(),
                Arc::new(app.clock.clone()),
            ))
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (manager, account) = (managers[i % 5].clone(), account.clone());
        tasks.spawn(async move { manager.usable(&account).await.map(|t| t.access_token.expose_secret().to_owned()) });
    }
    let mut tokens = Vec::new();
    while let Some(result) = tasks.join_next().await {
        tokens.push(result.unwrap().expect("every caller gets a usable token"));
    }
    assert_eq!(refreshes(&app, "/2/oauth2/token"), 1, "exactly one refresh at X");
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "all 50 callers got the same new token");
    assert_ne!(tokens[0], old.access_token.expose_secret(), "and it is not the expired one");

    // The new grant is stored (with X's rotated refresh token) and works at X.
    let stored = reload(&app, &account).await;
    assert!(stored.access_expires_at.unwrap() > app.clock_now() + time::Duration::hours(1));
    assert!(stored.refresh_lease_until.is_none(), "the lease was released");
    let posted = app
        .browser
        .post(format!("{}/x/api/2/tweets", app.sandbox.url))
        .bearer_auth(&tokens[0])
        .json(&json!({ "text": "fresh token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    // The old refresh token was never tried again: one refresh call, and it succeeded.
    let calls = app.sandbox.state.world().calls.clone();
    assert!(
        calls.iter().filter(|c| c.note.as_deref() == Some("grant_type=refresh_token")).all(|c| c.status == Some(200))
    );
}

#[tokio::test]
async fn a_refused_refresh_marks_needs_reauth_and_records_an_event() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let account = connected(&app, "x", X_USER).await;
    app.control("/_sandbox/grants/revoke", json!({ "platform": "x", "user_id": X_USER })).await;
    app.advance(time::Duration::hours(2)).await;

    let result = app.state.tokens.usable(&account).await;
    assert!(matches!(result, Err(TokenError::NeedsReauth)), "{result:?}");
    assert_eq!(reload(&app, &account).await.status, AccountStatus::NeedsReauth);
    let listed = app.accounts("user-1").await;
    assert_eq!(listed[0]["status"], "needs_reauth");
    let events = app.events().await;
    let reauth: Vec<_> = events.iter().filter(|e| e.kind == "account.needs_reauth").collect();
    assert_eq!(reauth.len(), 1);
    assert_eq!(reauth[0].account_id, account.id.as_str());
    assert_eq!(reauth[0].reason.as_deref(), Some("refresh_refused"));
    // Later calls fail fast without asking X again.
    assert!(matches!(app.state.tokens.usable(&account).await, Err(TokenError::NeedsReauth)));
    assert_eq!(refreshes(&app, "/2/oauth2/token"), 1);
}

#[tokio::test]
async fn a_platform_outage_during_refresh_changes_nothing() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let account = connected(&app, "x", X_USER).await;
    app.control(
        "/_sandbox/faults",
        json!({ "path": "/x/api/2/oauth2/token", "kind": { "type": "status", "status": 503 }, "times": 1 }),
    )
    .await;
    app.advance(time::Duration::hours(2)).await;

    let result = app.state.tokens.usable(&account).await;
    assert!(matches!(result, Err(TokenError::Transient(_))), "{result:?}");
    let after = reload(&app, &account).await;
    assert_eq!(after.status, AccountStatus::Active, "a 5xx is not the user's fault");
    assert!(after.refresh_lease_until.is_none(), "the lease was given back");
    assert!(app.events().await.iter().all(|e| e.kind != "account.needs_reauth"));

    // When X is back, the same refresh token works.
    assert!(app.state.tokens.usable(&account).await.is_ok());
    let statuses: Vec<Option<u16>> = app
        .sandbox
        .state
        .world()
        .calls
        .iter()
        .filter(|c| c.path.ends_with("/2/oauth2/token"))
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [Some(200), Some(503), Some(200)], "code exchange, the outage, the refresh");
}

#[tokio::test]
async fn linkedin_without_refresh_tokens_is_used_until_it_expires_then_needs_reauth() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    // This deployment's LinkedIn app is not an MDP partner: no refresh tokens.
    linkedin_without_refresh_tokens(&app).await;
    let account = connected(&app, "linkedin", "yrZCpj2Z12").await;
    assert!(account.refresh_expires_at.is_none());

    // Inside the skew window but not expired: the token is still used.
    app.advance(time::Duration::days(60) - time::Duration::minutes(2)).await;
    assert!(app.state.tokens.usable(&account).await.is_ok());
    assert_eq!(reload(&app, &account).await.status, AccountStatus::Active);

    app.advance(time::Duration::minutes(3)).await;
    assert!(matches!(app.state.tokens.usable(&account).await, Err(TokenError::NeedsReauth)));
    let events = app.events().await;
    assert!(events.iter().any(|e| e.kind == "account.needs_reauth" && e.reason.as_deref() == Some("expired")));
}

/// Runs one whole sweep: the jobs it fans out into, as the `retries` function receives them.
async fn sweep(app: &TestApp) {
    let response = app.worker(4).await.handle_batch(herald_testkit::sweep_event()).await;
    assert!(response.batch_item_failures.is_empty(), "the sweep failed");
}

#[tokio::test]
async fn the_sweep_refreshes_what_it_can_and_warns_once_about_what_it_cannot() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    linkedin_without_refresh_tokens(&app).await;
    let x = connected(&app, "x", X_USER).await;
    let linkedin = connected(&app, "linkedin", "yrZCpj2Z12").await;
    let warnings = |events: &[herald::store::Event]| events.iter().filter(|e| e.kind == "account.expiring").count();

    // X's token is inside the one-hour horizon: refreshed ahead of time. LinkedIn's is far off.
    app.advance(time::Duration::minutes(70)).await;
    sweep(&app).await;
    assert_eq!(refreshes(&app, "/2/oauth2/token"), 1);
    assert!(reload(&app, &x).await.access_expires_at > x.access_expires_at);
    assert_eq!(warnings(&app.events().await), 0);

    // Within seven days of LinkedIn's 60-day expiry: the tenant is told, once.
    app.advance(time::Duration::days(55)).await;
    sweep(&app).await;
    sweep(&app).await;
    let events = app.events().await;
    assert_eq!(warnings(&events), 1, "{events:?}");
    assert!(events.iter().any(|e| e.kind == "account.expiring" && e.account_id == linkedin.id.as_str()));
    assert_eq!(reload(&app, &linkedin).await.status, AccountStatus::Active);

    // Past the expiry: needs_reauth.
    app.advance(time::Duration::days(6)).await;
    sweep(&app).await;
    assert_eq!(reload(&app, &linkedin).await.status, AccountStatus::NeedsReauth);
    assert_eq!(reload(&app, &x).await.status, AccountStatus::Active, "X kept being refreshed");
}

/// A sweep decides from the record what to do with a grant it passes over (AWS audit F4: at
/// 10,000 grants the sweep made 9,951 KMS calls, one per grant, to see if it had a refresh token).
#[tokio::test]
async fn a_sweep_that_refreshes_nothing_makes_no_kms_calls() {
    let counts = Arc::new(herald::aws::CallCounts::default());
    let env = TestEnv::fresh_with(Some(counts.clone())).await;
    let app = env.spawn_app().await;
    linkedin_without_refresh_tokens(&app).await;
    let x = connected(&app, "x", X_USER).await;
    let linkedin = connected(&app, "linkedin", "yrZCpj2Z12").await;
    // Within seven days of LinkedIn's expiry (warned once), X refreshed: a sweep on.
    app.advance(time::Duration::days(55)).await;
    sweep(&app).await;
    assert_eq!(refreshes(&app, "/2/oauth2/token"), 1);

    // X's new grant is due in two hours (passed over, refreshable), LinkedIn's was announced
    // (passed over, not refreshable). Each sweep is a cold worker: no data key is cached.
    // (The cold start's own KMS call, `DescribeKey`, is made before counting.)
    let kms = || counts.snapshot().1;
    let worker = app.worker(4).await;
    let before = kms();
    assert!(worker.handle_batch(herald_testkit::sweep_event()).await.batch_item_failures.is_empty());
    assert_eq!(kms() - before, 0, "a sweep that refreshes nothing opens no tokens");
    assert_eq!(refreshes(&app, "/2/oauth2/token"), 1);

    // A record from before the attribute: its tokens are opened to find out, and it is still
    // passed over, not announced.
    for account in [&x, &linkedin] {
        env.aws
            .dynamodb
            .update_item()
            .table_name(&env.resources.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{}#{}", account.tenant, account.user)))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("ACCOUNT#{}", account.id)))
            .update_expression("REMOVE refreshable")
            .send()
            .await
            .unwrap();
    }
    let worker = app.worker(4).await;
    let before = kms();
    assert!(worker.handle_batch(herald_testkit::sweep_event()).await.batch_item_failures.is_empty());
    assert!(kms() > before, "without the attribute the tokens are the only witness");
    let events = app.events().await;
    let expiring: Vec<_> = events.iter().filter(|e| e.kind == "account.expiring").collect();
    assert_eq!(expiring.len(), 1, "{events:?}");
    assert_eq!(expiring[0].account_id, linkedin.id.as_str());
    assert_eq!(refreshes(&app, "/2/oauth2/token"), 1);
    assert_eq!(reload(&app, &x).await.status, AccountStatus::Active);
}
