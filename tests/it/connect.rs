//! Connecting accounts end to end: Herald on loopback, the platform sandbox, DynamoDB/KMS in moto,
//! and the test as the user's browser.

use herald_testkit::{RETURN_ORIGIN, TestEnv, query};
use reqwest::Method;
use serde_json::{Value, json};

const X_USER: &str = "2244994945";
const META_USER: &str = "10158000000000001";
const LINKEDIN_MEMBER: &str = "yrZCpj2Z12";

fn ids(outcome: &std::collections::HashMap<String, String>) -> Vec<String> {
    outcome.get("accounts").map(|a| a.split(',').map(str::to_owned).collect()).unwrap_or_default()
}

#[tokio::test]
async fn x_oauth2_from_link_to_connected_account() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let outcome = app.connect("user-1", "x", X_USER, "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    assert_eq!(outcome["platform"], "x");
    let accounts = app.accounts("user-1").await;
    assert_eq!(accounts.len(), 1);
    let account = &accounts[0];
    assert_eq!(account["id"].as_str(), Some(ids(&outcome)[0].as_str()));
    assert_eq!(account["platform"], "x");
    assert_eq!(account["platform_account_id"], X_USER);
    assert_eq!(account["name"], "@ada");
    assert_eq!(account["kind"], "member");
    assert_eq!(account["status"], "active");
    assert!(account["token_expires_at"].is_string());
    assert!(account["scopes"].as_array().unwrap().contains(&json!("offline.access")));
    let text = account.to_string();
    assert!(!text.contains("xat_") && !text.contains("xrt_"), "a token leaked into the API: {text}");

    // Connecting the same X account again updates it rather than duplicating it.
    let again = app.connect("user-1", "x", X_USER, "approve").await;
    assert_eq!(ids(&again), ids(&outcome));
    assert_eq!(app.accounts("user-1").await.len(), 1);
}

#[tokio::test]
async fn x_oauth1_when_the_tenant_chooses_it() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let response = app.api(Method::PATCH, "/v1/tenant").json(&json!({ "x_auth": "oauth1" })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let outcome = app.connect("user-1", "x", X_USER, "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    let accounts = app.accounts("user-1").await;
    assert_eq!(accounts[0]["scopes"], json!(["oauth1"]));
    assert!(accounts[0]["token_expires_at"].is_null(), "OAuth 1.0a tokens do not expire");
    let denied = app.connect("user-2", "x", X_USER, "deny").await;
    assert_eq!((denied["status"].as_str(), denied["error"].as_str()), ("error", "access_denied"));
    assert!(app.accounts("user-2").await.is_empty());
}

/// A tenant chooses a connector per platform (`connectors`: X's and Bluesky's, the platforms with
/// a choice); `x_auth` is the old name of X's choice, still taken and shown, and tenants stored
/// with it keep their choice.
#[tokio::test]
async fn connectors_are_chosen_per_platform_and_the_old_setting_still_holds() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let tenant = || async { app.api(Method::GET, "/v1/tenant").send().await.unwrap().json::<Value>().await.unwrap() };
    let shown = |t: &Value| (t["connectors"].clone(), t["x_auth"].clone());
    assert_eq!(shown(&tenant().await), (json!({ "x": "oauth2", "bluesky": "app_password" }), json!("oauth2")));

    for (patch, field) in [
        (json!({ "connectors": { "x": "oauth3" } }), "connectors.x"),
        (json!({ "connectors": { "facebook": "oauth1" } }), "connectors.facebook"),
        (json!({ "x_auth": "oauth1a" }), "x_auth"),
        (json!({ "name": "renamed", "connectors": { "x": "oauth1", "linkedin": "basic" } }), "connectors.linkedin"),
    ] {
        let response = app.api(Method::PATCH, "/v1/tenant").json(&patch).send().await.unwrap();
        assert_eq!(response.status(), 422, "{patch}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some("unknown_connector"), Some(field)));
    }
    let unchanged = tenant().await;
    assert_eq!(
        shown(&unchanged),
        (json!({ "x": "oauth2", "bluesky": "app_password" }), json!("oauth2")),
        "a refused patch changes nothing"
    );
    assert_ne!(unchanged["name"], "renamed");

    let response =
        app.api(Method::PATCH, "/v1/tenant").json(&json!({ "connectors": { "x": "oauth1" } })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        shown(&response.json().await.unwrap()),
        (json!({ "x": "oauth1", "bluesky": "app_password" }), json!("oauth1"))
    );
    let outcome = app.connect("user-1", "x", X_USER, "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    assert_eq!(app.accounts("user-1").await[0]["scopes"], json!(["oauth1"]));

    // A tenant stored before connectors, with only the old attribute, keeps OAuth 1.0a.
    env.aws
        .dynamodb
        .update_item()
        .table_name(&env.resources.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", app.tenant)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("TENANT".into()))
        .update_expression("SET x_auth = :v REMOVE connector_x")
        .expression_attribute_values(":v", aws_sdk_dynamodb::types::AttributeValue::S("oauth1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(shown(&tenant().await), (json!({ "x": "oauth1", "bluesky": "app_password" }), json!("oauth1")));
    let again = app.connect("user-2", "x", X_USER, "approve").await;
    assert_eq!(again["status"], "connected", "{again:?}");
    assert_eq!(app.accounts("user-2").await[0]["scopes"], json!(["oauth1"]));
}

/// Graph pages `/me/accounts` (25 a page by default): an agency's user with 103 Pages connects
/// every one of them (the audit's F9), not the first page's.
#[tokio::test]
async fn every_page_of_pages_is_connected() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let pages: Vec<Value> =
        (0..103).map(|i| json!({ "id": format!("1050000000{i:05}"), "name": format!("Client {i}") })).collect();
    app.control(
        "/_sandbox/users",
        json!({ "platform": "meta", "id": "10158000000000777", "name": "Agency", "pages": pages }),
    )
    .await;
    let outcome = app.connect("user-1", "facebook", "10158000000000777", "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    let accounts = app.accounts("user-1").await;
    assert_eq!(accounts.len(), 103);
    let mut names: Vec<&str> = accounts.iter().map(|a| a["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 103, "each Page once");
    let listed = app.sandbox.state.world().calls.iter().filter(|c| c.path.ends_with("/me/accounts")).count();
    assert_eq!(listed, 2, "100 a page: two pages");
}

/// Pages reached through a Business portfolio (the audit's F2): `/me/accounts` lists only the
/// user's own Page roles, so Herald asks for `business_management` and reads each business's
/// owned and client Pages too; the Instagram account behind a business's Page connects and
/// publishes (which needs that permission), and a Page listed twice connects once.
#[tokio::test]
async fn pages_held_through_a_business_portfolio_connect_and_publish() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let pages = json!([
        { "id": "106000000000001", "name": "Own Page" },
        { "id": "106000000000002", "name": "Owned by the business", "business": "900000000000001",
          "instagram": { "id": "17841400000000902", "username": "bizowned" } },
        { "id": "106000000000003", "name": "A client's", "business": "900000000000001", "client": true },
        { "id": "106000000000004", "name": "Another business's", "business": "900000000000002" },
    ]);
    app.control(
        "/_sandbox/users",
        json!({ "platform": "meta", "id": "10158000000000888", "name": "Agency", "pages": pages }),
    )
    .await;
    let outcome = app.connect("user-1", "facebook", "10158000000000888", "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    let mut names: Vec<String> =
        app.accounts("user-1").await.iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["A client's", "Another business's", "Own Page", "Owned by the business"]);

    let outcome = app.connect("user-1", "instagram", "10158000000000888", "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    let accounts = app.accounts("user-1").await;
    let ig = accounts.iter().find(|a| a["platform"] == "instagram").expect("the business's Instagram account");
    assert_eq!(ig["name"], "@bizowned");
    let body = json!({ "user_id": "user-1", "targets": [{ "account_id": ig["id"] }], "text": "via the business",
                       "media": [{ "url": app.media("a.jpg") }] });
    let (status, post) = app.post(body, None).await;
    assert_eq!((status, post["targets"][0]["status"].as_str()), (202, Some("published")), "{post}");
}

/// LinkedIn organizations as `organizationAcls` really answers (the audit's F9 and F12): paged,
/// without names, and with roles that cannot post. Herald reads every page, connects only the
/// organizations the member may post as (administrator, content administrator), and names
/// each from the Organization Lookup API.
#[tokio::test]
async fn linkedin_organizations_are_read_whole_named_and_limited_to_posting_roles() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let role = |i: usize| match i {
        0 | 1 => "ANALYST",
        2 => "CONTENT_ADMINISTRATOR",
        3 => "RECRUITING_POSTER",
        _ => "ADMINISTRATOR",
    };
    let organizations: Vec<Value> = (0..104)
        .map(|i| json!({ "id": format!("{}", 7_000_000 + i), "name": format!("Org {i}"), "role": role(i) }))
        .collect();
    let member = json!({ "platform": "linkedin", "id": "agencyMember1", "name": "Agency Member", "organizations": organizations });
    app.control("/_sandbox/users", member).await;
    let outcome = app.connect("user-1", "linkedin", "agencyMember1", "approve").await;
    assert_eq!(outcome["status"], "connected", "{outcome:?}");
    let accounts = app.accounts("user-1").await;
    let orgs: Vec<&Value> = accounts.iter().filter(|a| a["kind"] == "organization").collect();
    assert_eq!(orgs.len(), 101, "104 roles, 3 of them unable to post");
    let org = |id: u32| orgs.iter().find(|a| a["platform_account_id"] == format!("urn:li:organization:{id}")).copied();
    assert_eq!(org(7_000_002).map(|a| a["name"].clone()), Some(json!("Org 2")), "named by its lookup, not its URN");
    assert!(org(7_000_000).is_none() && org(7_000_003).is_none(), "an analyst and a recruiting poster cannot post");
    assert_eq!(org(7_000_103).map(|a| a["name"].clone()), Some(json!("Org 103")), "the last page too");
}

#[tokio::test]
async fn facebook_pages_instagram_accounts_and_linkedin_members_and_organizations() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;

    let facebook = app.connect("user-1", "facebook", META_USER, "approve").await;
    assert_eq!(facebook["status"], "connected", "{facebook:?}");
    let instagram = app.connect("user-1", "instagram", META_USER, "approve").await;
    assert_eq!(instagram["status"], "connected", "{instagram:?}");
    let linkedin = app.connect("user-1", "linkedin", LINKEDIN_MEMBER, "approve").await;
    assert_eq!(linkedin["status"], "connected", "{linkedin:?}");
    assert_eq!(ids(&linkedin).len(), 2, "the member and the organization they administer");

    let accounts = app.accounts("user-1").await;
    let by_kind = |kind: &str| accounts.iter().find(|a| a["kind"] == kind).cloned().unwrap_or(Value::Null);
    assert_eq!(by_kind("page")["platform_account_id"], "104000000000001");
    assert_eq!(by_kind("page")["name"], "Hopper Bakery");
    assert!(by_kind("page")["token_expires_at"].is_null(), "Page tokens from a long-lived user token do not expire");
    assert_eq!(by_kind("professional_account")["platform_account_id"], "17841400000000001");
    assert_eq!(by_kind("professional_account")["name"], "@hopperbakery");
    assert_eq!(by_kind("member")["platform_account_id"], format!("urn:li:person:{LINKEDIN_MEMBER}"));
    assert_eq!(by_kind("organization")["platform_account_id"], "urn:li:organization:2414183");
    assert!(by_kind("member")["refresh_token_expires_at"].is_string(), "the dev LinkedIn app has refresh tokens");

    // The organization publishes with the member's grant.
    let org_id: herald::domain::AccountId = by_kind("organization")["id"].as_str().unwrap().parse().unwrap();
    let user = "user-1".parse().unwrap();
    let org = app.state.accounts.get(&app.tenant, &user, &org_id).await.unwrap().unwrap();
    let member_tokens = app.state.tokens.usable(&org).await.unwrap();
    use secrecy::ExposeSecret;
    assert!(member_tokens.access_token.expose_secret().starts_with("AQV"));
}

#[tokio::test]
async fn refusals_store_nothing() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;

    // Denial at the platform.
    let denied = app.connect("user-1", "facebook", META_USER, "deny").await;
    assert_eq!(denied["error"], "access_denied");

    // A return URL outside the tenant's origins.
    for return_to in ["https://evil.example/steal", "javascript:alert(1)", "http://app.example.test/x", "not a url"] {
        let response = app
            .api(Method::POST, "/v1/connect-links")
            .json(&json!({ "user_id": "user-1", "platform": "x", "return_to": return_to }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{return_to}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "return_to_not_allowed");
    }
    let bad_platform = app
        .api(Method::POST, "/v1/connect-links")
        .json(&json!({ "user_id": "user-1", "platform": "myspace", "return_to": format!("{RETURN_ORIGIN}/") }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_platform.json::<Value>().await.unwrap()["code"], "invalid_platform");

    // A link works once.
    let link = app.connect_link("user-1", "x").await;
    let authorize = app.redirected(&link).await;
    let again = app.redirected(&link).await;
    assert_eq!(query(&again)["error"], "link_used");
    let unknown = app.browser.get(format!("{}/connect/not-a-real-link", app.url)).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    // A state works once: the replayed callback is refused (after the first one succeeded).
    let callback = app.consent(&authorize, X_USER, "approve").await;
    let first = query(&app.redirected(&callback).await);
    assert_eq!(first["status"], "connected");
    let replay = query(&app.redirected(&callback).await);
    assert_eq!(replay["error"], "state_invalid");

    // A forged callback (a state Herald never issued) gets a problem document, not a redirect.
    let forged = app.browser.get(format!("{}/oauth/x/callback?state=forged&code=abc", app.url)).send().await.unwrap();
    assert_eq!(forged.status(), 400);
    assert_eq!(forged.json::<Value>().await.unwrap()["code"], "state_invalid");

    // An expired state: the user took longer than ten minutes on the consent screen.
    let link = app.connect_link("user-2", "x").await;
    let authorize = app.redirected(&link).await;
    let callback = app.consent(&authorize, X_USER, "approve").await;
    app.advance(time::Duration::minutes(11)).await;
    let expired = query(&app.redirected(&callback).await);
    assert_eq!(expired["error"], "state_expired");
    assert!(app.accounts("user-2").await.is_empty(), "nothing stored for refused connections");

    // An expired link.
    let link = app.connect_link("user-3", "x").await;
    app.advance(time::Duration::minutes(16)).await;
    assert_eq!(query(&app.redirected(&link).await)["error"], "link_expired");
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_accounts() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app().await;
    let outcome = app.connect("user-1", "x", X_USER, "approve").await;
    let account = ids(&outcome)[0].clone();

    let (_, other_key) = app.state.tenants.create("Other", vec![]).await.unwrap();
    let other = |method: Method, path: &str| {
        app.browser.request(method, format!("{}{path}", app.url)).bearer_auth(other_key.reveal())
    };
    let listed: Value = other(Method::GET, "/v1/users/user-1/accounts").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!({ "accounts": [] }));
    let deleted = other(Method::DELETE, &format!("/v1/users/user-1/accounts/{account}")).send().await.unwrap();
    assert_eq!(deleted.status(), 404);
    assert_eq!(deleted.json::<Value>().await.unwrap()["code"], "account_not_found");
    assert_eq!(app.accounts("user-1").await.len(), 1, "the other tenant changed nothing");

    // The owner disconnects: revoked at X, deleted here, audited.
    let response = app.api(Method::DELETE, &format!("/v1/users/user-1/accounts/{account}")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(app.accounts("user-1").await.is_empty());
    let revokes = app.sandbox.state.world().calls.iter().filter(|c| c.path.ends_with("/2/oauth2/revoke")).count();
    assert_eq!(revokes, 1);
    let audit = app.state.journal.list(&app.tenant, true).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].kind, "account.disconnected");
    assert_eq!(audit[0].account_id, account);
}

/// Without `HERALD_PUBLIC_URL` (the template's default), links and callback URLs are built from
/// each request's own host, and the whole flow still works.
#[tokio::test]
async fn without_a_public_url_each_request_names_its_own_base() {
    let env = TestEnv::fresh().await;
    let app = env.spawn_app_with(|config| config.public_url = None).await;
    let link = app.connect_link("user-1", "linkedin").await;
    assert!(link.starts_with(&format!("{}/connect/", app.url)), "{link}");
    let authorize = app.redirected(&link).await;
    let redirect_uri = query(&authorize)["redirect_uri"].clone();
    assert_eq!(redirect_uri, format!("{}/oauth/linkedin/callback", app.url));
    let callback = app.consent(&authorize, LINKEDIN_MEMBER, "approve").await;
    assert_eq!(query(&app.redirected(&callback).await)["status"], "connected");
}
