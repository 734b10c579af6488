//! The LinkedIn simulator against LinkedIn's documented behaviour (platforms.md §3).

mod common;

use common::{Harness, harness, query};
use serde_json::{Value, json};

const CLIENT: &str = "86linkedin";
const SECRET: &str = "li-secret";
const CALLBACK: &str = "http://127.0.0.1:9/oauth/linkedin/callback";
const MEMBER: &str = "yrZCpj2Z12";
const ORG: &str = "2414183";
const VERSION: &str = "202609";

async fn setup(refresh_tokens: bool) -> Harness {
    let h = harness().await;
    h.control(
        "/_sandbox/apps",
        json!({ "platform": "linkedin", "client_id": CLIENT, "client_secret": SECRET, "redirect_uris": [CALLBACK], "refresh_tokens": refresh_tokens }),
    )
    .await;
    h.control(
        "/_sandbox/users",
        json!({ "platform": "linkedin", "id": MEMBER, "name": "Katherine Johnson", "organizations": [{ "id": ORG, "name": "Orbital" }] }),
    )
    .await;
    h
}

fn authorize(h: &Harness, scope: &str) -> String {
    let mut url = url::Url::parse(&h.url("/linkedin/www/oauth/v2/authorization")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("state", "li-state")
        .append_pair("scope", scope);
    url.to_string()
}

async fn token_call(h: &Harness, form: &[(&str, &str)]) -> (u16, Value) {
    let response = h.http.post(h.url("/linkedin/www/oauth/v2/accessToken")).form(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn connect(h: &Harness, scope: &str) -> Value {
    let location = h.consent(&authorize(h, scope), MEMBER, "approve").await;
    let q = query(&location);
    assert_eq!(q["state"], "li-state");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", CALLBACK),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
    ];
    let (status, body) = token_call(h, &form).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn rest(h: &Harness, path: &str, token: &str) -> reqwest::RequestBuilder {
    h.http
        .post(h.url(&format!("/linkedin/api/rest/{path}")))
        .bearer_auth(token)
        .header("LinkedIn-Version", VERSION)
        .header("X-Restli-Protocol-Version", "2.0.0")
}

fn post_body(author: &str, text: &str) -> Value {
    json!({
        "author": author,
        "commentary": text,
        "visibility": "PUBLIC",
        "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": false,
    })
}

#[tokio::test]
async fn oauth_gives_60_day_tokens_and_refresh_tokens_only_when_enabled() {
    let h = setup(false).await;
    let body = connect(&h, "openid profile email w_member_social").await;
    assert_eq!(body["expires_in"], 5_184_000);
    assert!(body.get("refresh_token").is_none(), "refresh tokens are for enabled (MDP) apps only");

    let info: Value = h
        .http
        .get(h.url("/linkedin/api/v2/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], MEMBER);
    assert_eq!(info["name"], "Katherine Johnson");

    let h = setup(true).await;
    let first = connect(&h, "openid,w_member_social").await;
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(first["refresh_token_expires_in"], 31_536_000);
    h.advance(1000).await;
    let (status, second) = token_call(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["refresh_token_expires_in"], 31_536_000 - 1000, "the refresh token's lifetime is fixed");

    h.control("/_sandbox/grants/revoke", json!({ "platform": "linkedin", "user_id": MEMBER })).await;
    let (status, body) = token_call(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn oauth_refusals() {
    let h = setup(false).await;
    let location = h.consent(&authorize(&h, "openid w_member_social"), MEMBER, "approve").await;
    let code = query(&location)["code"].clone();
    let wrong_secret = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("client_id", CLIENT),
        ("client_secret", "x"),
    ];
    assert_eq!(token_call(&h, &wrong_secret).await.0, 401);
    let good = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
    ];
    assert_eq!(token_call(&h, &good).await.0, 200);
    assert_eq!(token_call(&h, &good).await.0, 400, "codes are single-use");

    let denied = h.consent(&authorize(&h, "openid"), MEMBER, "deny").await;
    assert_eq!(query(&denied)["error"], "user_cancelled_authorize");
    let bad_scope = h.http.get(authorize(&h, "openid r_liteprofile")).send().await.unwrap();
    assert_eq!(bad_scope.status(), 302, "deprecated scopes are refused");
    assert_eq!(query(bad_scope.headers()["location"].to_str().unwrap())["error"], "invalid_scope");
}

#[tokio::test]
async fn posts_need_version_and_protocol_headers_and_answer_with_the_urn() {
    let h = setup(false).await;
    let token = connect(&h, "openid w_member_social w_organization_social rw_organization_admin").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let author = format!("urn:li:person:{MEMBER}");

    let response = rest(&h, "posts", &token).json(&post_body(&author, "Hello LinkedIn")).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let urn = response.headers()["x-restli-id"].to_str().unwrap().to_owned();
    assert!(urn.starts_with("urn:li:share:"), "{urn}");
    assert!(response.text().await.unwrap().is_empty());

    let org = format!("urn:li:organization:{ORG}");
    assert_eq!(rest(&h, "posts", &token).json(&post_body(&org, "As the org")).send().await.unwrap().status(), 201);
    let other_org = "urn:li:organization:999";
    assert_eq!(rest(&h, "posts", &token).json(&post_body(other_org, "Not mine")).send().await.unwrap().status(), 403);

    let no_version = h
        .http
        .post(h.url("/linkedin/api/rest/posts"))
        .bearer_auth(&token)
        .header("X-Restli-Protocol-Version", "2.0.0")
        .json(&post_body(&author, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let retired = h
        .http
        .post(h.url("/linkedin/api/rest/posts"))
        .bearer_auth(&token)
        .header("LinkedIn-Version", "202401")
        .header("X-Restli-Protocol-Version", "2.0.0")
        .json(&post_body(&author, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(retired.status(), 426);
    let body: Value = retired.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "status": 426, "code": "NONEXISTENT_VERSION", "message": "Requested version 20240101 is not active" })
    );
    let no_protocol = h
        .http
        .post(h.url("/linkedin/api/rest/posts"))
        .bearer_auth(&token)
        .header("LinkedIn-Version", VERSION)
        .json(&post_body(&author, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_protocol.status(), 400);

    let mut missing = post_body(&author, "x");
    missing.as_object_mut().unwrap().remove("distribution");
    assert_eq!(rest(&h, "posts", &token).json(&missing).send().await.unwrap().status(), 422);
    assert_eq!(
        rest(&h, "posts", &token).json(&post_body(&author, &"a".repeat(3001))).send().await.unwrap().status(),
        422
    );
    assert_eq!(h.posts("linkedin").await.len(), 2);
}

#[tokio::test]
async fn images_upload_then_post() {
    let h = setup(false).await;
    let token = connect(&h, "openid w_member_social").await["access_token"].as_str().unwrap().to_owned();
    let author = format!("urn:li:person:{MEMBER}");
    let mut images = Vec::new();
    for _ in 0..2 {
        let init: Value = rest(&h, "images?action=initializeUpload", &token)
            .json(&json!({ "initializeUploadRequest": { "owner": author } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let upload_url = init["value"]["uploadUrl"].as_str().unwrap().to_owned();
        let image = init["value"]["image"].as_str().unwrap().to_owned();
        assert!(image.starts_with("urn:li:image:"));
        images.push((image, upload_url));
    }
    let mut with_image = post_body(&author, "picture");
    with_image["content"] = json!({ "media": { "id": images[0].0, "altText": "a cat" } });
    assert_eq!(rest(&h, "posts", &token).json(&with_image).send().await.unwrap().status(), 422, "not uploaded yet");

    for (_, url) in &images {
        let put = h.http.put(url).bearer_auth(&token).body(vec![0xFF, 0xD8, 0xFF]).send().await.unwrap();
        assert_eq!(put.status(), 201);
    }
    assert_eq!(rest(&h, "posts", &token).json(&with_image).send().await.unwrap().status(), 201);
    let mut multi = post_body(&author, "two");
    multi["content"] = json!({ "multiImage": { "images": [{ "id": images[0].0 }, { "id": images[1].0 }] } });
    assert_eq!(rest(&h, "posts", &token).json(&multi).send().await.unwrap().status(), 201);
    let mut one = post_body(&author, "one");
    one["content"] = json!({ "multiImage": { "images": [{ "id": images[0].0 }] } });
    assert_eq!(rest(&h, "posts", &token).json(&one).send().await.unwrap().status(), 422, "2 to 20 images");
}

#[tokio::test]
async fn dead_tokens_and_daily_limits() {
    let h = setup(false).await;
    h.control("/_sandbox/limits", json!({ "platform": "linkedin", "name": "member_daily", "limit": 2 })).await;
    let token = connect(&h, "openid w_member_social").await["access_token"].as_str().unwrap().to_owned();
    let author = format!("urn:li:person:{MEMBER}");
    for i in 0..2 {
        assert_eq!(
            rest(&h, "posts", &token).json(&post_body(&author, &format!("p{i}"))).send().await.unwrap().status(),
            201
        );
    }
    let limited = rest(&h, "posts", &token).json(&post_body(&author, "p2")).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.json::<Value>().await.unwrap()["code"], "TOO_MANY_REQUESTS");

    // The daily window resets at midnight UTC.
    let now = h.get_json("/_sandbox").await["now"].as_i64().unwrap();
    h.advance(86_400 - now.rem_euclid(86_400)).await;
    assert_eq!(rest(&h, "posts", &token).json(&post_body(&author, "p3")).send().await.unwrap().status(), 201);

    h.control("/_sandbox/grants/expire", json!({ "platform": "linkedin", "user_id": MEMBER })).await;
    let expired = rest(&h, "posts", &token).json(&post_body(&author, "late")).send().await.unwrap();
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.json::<Value>().await.unwrap()["code"], "EXPIRED_ACCESS_TOKEN");
    let fresh = connect(&h, "openid w_member_social").await["access_token"].as_str().unwrap().to_owned();
    h.control("/_sandbox/grants/revoke", json!({ "platform": "linkedin", "user_id": MEMBER })).await;
    let revoked = rest(&h, "posts", &fresh).json(&post_body(&author, "gone")).send().await.unwrap();
    assert_eq!(revoked.json::<Value>().await.unwrap()["code"], "REVOKED_ACCESS_TOKEN");
}
