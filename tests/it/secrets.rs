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
    app.clock.advance(time::Duration::hours(3));
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
