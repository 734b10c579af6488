//! No token or secret the platforms issued, nor the tenant's API key, reaches a log line: every
//! flow runs with all logs captured, then the logs are searched for every secret.

use herald_testkit::{TestEnv, captured_logs};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let logs = captured_logs();
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;

    // Every platform's connection, a refresh, a refused refresh, bad requests, a disconnect.
    for (platform, user) in [
        ("x", "2244994945"),
        ("facebook", "10158000000000001"),
        ("instagram", "10158000000000001"),
        ("linkedin", "yrZCpj2Z12"),
    ] {
        let outcome = app.connect("user-1", platform, user, "approve").await;
        assert_eq!(outcome["status"], "connected", "{platform}: {outcome:?}");
    }
    app.api(Method::PATCH, "/v1/tenant").json(&json!({ "x_auth": "oauth1" })).send().await.unwrap();
    assert_eq!(app.connect("user-2", "x", "2244994945", "approve").await["status"], "connected");

    let user: herald::domain::UserId = "user-1".parse().unwrap();
    let accounts = app.state.accounts.list(&app.tenant, &user).await.unwrap();
    app.advance(time::Duration::hours(3)).await;
    for account in &accounts {
        let _ = app.state.tokens.usable(account).await;
    }
    app.browser
        .get(format!("{}/oauth/x/callback?state=forged&code=secret-looking-code", app.url))
        .send()
        .await
        .unwrap();
    app.browser.get(format!("{}/v1/tenant", app.url)).bearer_auth("hk_wrong").send().await.unwrap();
    let x = accounts.iter().find(|a| a.platform == herald::domain::Platform::X).unwrap();
    let response = app.api(Method::DELETE, &format!("/v1/users/user-1/accounts/{}", x.id)).send().await.unwrap();
    assert_eq!(response.status(), 204);

    let text = logs.text();
    assert!(text.contains("\"platform call\""), "the capture sees Herald's platform-call lines");
    let mut secrets: Vec<String> = Vec::new();
    {
        let world = app.sandbox.state.world();
        for (token, grant) in &world.grants {
            secrets.push(token.clone());
            if let herald_sandbox::GrantKind::OAuth1 { secret } = &grant.kind {
                secrets.push(secret.clone());
            }
        }
    }
    assert!(secrets.len() >= 8, "the flows issued tokens: {}", secrets.len());
    use herald_sandbox::dev;
    secrets.extend(
        [dev::X_CLIENT_SECRET, dev::X_CONSUMER_SECRET, dev::META_APP_SECRET, dev::LINKEDIN_CLIENT_SECRET]
            .map(str::to_owned),
    );
    secrets.push(app.api_key.clone());
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret reached the logs: {}…", &secret[..secret.len().min(6)]);
    }
}

/// The platform apps come from Secrets Manager at cold start: what the test kit stored is what
/// each function reads (only the secrets its code uses), and a secret that is missing or
/// malformed stops the cold start with an error naming it and the field, never a value.
#[tokio::test]
async fn a_missing_or_malformed_app_secret_stops_the_cold_start() {
    use herald::startup::{Function, prepare};
    use secrecy::ExposeSecret;
    let env = TestEnv::fresh().await;
    let mut config = env.config();
    config.app_secrets = env.app_secrets.clone();

    let mut posts = config.clone();
    prepare(Function::Posts, &env.aws, &mut posts).await.unwrap();
    assert_eq!(
        posts.apps.x_oauth1.as_ref().unwrap().client_secret.expose_secret(),
        herald_sandbox::dev::X_CONSUMER_SECRET
    );
    assert!(posts.apps.meta.is_none() && posts.apps.linkedin.is_none(), "posts reads the X secret only");
    let mut webhooks = config.clone();
    prepare(Function::Webhooks, &env.aws, &mut webhooks).await.unwrap();
    assert!(webhooks.apps.meta_webhook_verify_token.is_some() && webhooks.apps.linkedin.is_some());

    let mut missing = config.clone();
    missing.app_secrets.meta = Some(format!("{}/nope", env.names.table));
    let err = prepare(Function::Connect, &env.aws, &mut missing).await.unwrap_err().to_string();
    assert!(err.contains(&format!("{}/nope", env.names.table)), "{err}");

    let name = &env.names.app_secrets[2];
    let malformed = r#"{"client_id":"li-client","client_secret":99887766,"note":"hunter2"}"#;
    env.aws.secrets.put_secret_value().secret_id(name).secret_string(malformed).send().await.unwrap();
    let mut retries = config.clone();
    let err = prepare(Function::Retries, &env.aws, &mut retries).await.unwrap_err().to_string();
    assert!(
        err.contains(name.as_str()) && (err.contains("must be a string") || err.contains("unknown field")),
        "{err}"
    );
    assert!(!err.contains("99887766") && !err.contains("hunter2"), "a value in: {err}");
}
