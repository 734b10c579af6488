//! `herald verify` against the sandbox: the contract check an operator runs against the real
//! platforms on deploy (docs/operations.md, "Verify a platform") finds every platform as Herald
//! expects it, cleans up after itself, and says what differs when something does.

use herald::verify::{Verdict, Verify};
use herald_sandbox::Platform as SandboxPlatform;
use herald_testkit::TestEnv;
use serde_json::json;

async fn verify(app: &herald_testkit::TestApp, account_id: &str, media: bool) -> herald::verify::Report {
    let user = "user-1".parse().unwrap();
    let id = account_id.parse().unwrap();
    let account = app.state.accounts.get(&app.tenant, &user, &id).await.unwrap().expect("the account");
    let check = Verify {
        platforms: &app.state.platforms,
        tokens: &app.state.tokens,
        clock: app.state.clock.as_ref(),
        account: &account,
        media_url: media.then(|| app.media("a.jpg").parse().unwrap()),
    };
    check.run().await
}

fn kind(verdict: Option<&Verdict>) -> &'static str {
    match verdict {
        Some(Verdict::Expected(_)) => "expected",
        Some(Verdict::Differs(_)) => "differs",
        Some(Verdict::NotChecked(_)) => "not checked",
        None => "absent",
    }
}

#[tokio::test]
async fn herald_verify_finds_each_platform_as_herald_expects_and_cleans_up() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    let names = ["token", "text post", "read back", "delete", "media post", "media delete", "rate-limit headers"];
    let expected: [(&str, [&str; 7]); 4] = [
        ("x", ["expected", "expected", "expected", "expected", "expected", "expected", "expected"]),
        ("facebook", ["not checked", "expected", "expected", "expected", "expected", "expected", "expected"]),
        // Instagram takes no post without media and gives apps no delete.
        ("instagram", ["not checked", "not checked", "absent", "absent", "expected", "not checked", "expected"]),
        // LinkedIn gives posting apps no read of their posts and documents no rate-limit headers.
        ("linkedin_member", ["expected", "expected", "not checked", "expected", "expected", "expected", "not checked"]),
    ];
    for (key, want) in expected {
        let report = verify(&app, &ids[key], true).await;
        let got: Vec<&str> = names.iter().map(|name| kind(report.verdict(name))).collect();
        assert_eq!(got, want, "{key}:\n{report}");
        assert!(report.passed(), "{key}:\n{report}");
    }
    assert!(app.published(SandboxPlatform::X).is_empty(), "X's posts were deleted");
    assert!(app.published(SandboxPlatform::Linkedin).is_empty(), "LinkedIn's posts were deleted");
    let meta = app.published(SandboxPlatform::Meta);
    assert_eq!(meta.len(), 1, "only Instagram's media post is left (no delete): {meta:?}");
}

#[tokio::test]
async fn herald_verify_says_what_differs() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let ids = app.connect_all("user-1").await;
    app.fault(json!({ "method": "DELETE", "path": "/x/api/2/tweets/", "kind": { "type": "status", "status": 403 } }))
        .await;
    let report = verify(&app, &ids["x"], false).await;
    assert!(!report.passed(), "{report}");
    assert_eq!(kind(report.verdict("delete")), "differs", "{report}");
    assert_eq!(kind(report.verdict("media post")), "not checked", "{report}");
    assert!(report.to_string().contains("DIFFERS  delete"), "{report}");
}
