//! The Threads simulator against Meta's Threads documentation (docs/fidelity-ledger.md, Threads).

mod common;

use common::{Harness, harness, query};
use serde_json::{Value, json};

const APP: &str = "9876543210987654";
const SECRET: &str = "threads-secret";
const CALLBACK: &str = "http://127.0.0.1:9/oauth/threads/callback";
const USER: &str = "25100000000000001";

async fn setup() -> Harness {
    let h = harness().await;
    h.control(
        "/_sandbox/apps",
        json!({ "platform": "threads", "client_id": APP, "client_secret": SECRET, "redirect_uris": [CALLBACK] }),
    )
    .await;
    h.control("/_sandbox/users", json!({ "platform": "threads", "id": USER, "name": "Mary", "username": "mary" }))
        .await;
    h
}

async fn get(h: &Harness, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let response = h.http.get(h.url(path)).query(params).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn post(h: &Harness, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = h.http.post(h.url(path)).form(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Consent, the code's exchange and the long-lived token; returns the long-lived token.
async fn long_lived(h: &Harness, scopes: &str) -> String {
    let mut url = url::Url::parse(&h.url("/threads/web/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", APP)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", scopes)
        .append_pair("response_type", "code")
        .append_pair("state", "s1");
    let location = h.consent(url.as_str(), USER, "approve").await;
    assert!(location.ends_with("#_"), "Threads appends #_: {location}");
    let back = query(location.trim_end_matches("#_"));
    assert_eq!(back["state"], "s1");
    let form = [
        ("client_id", APP),
        ("client_secret", SECRET),
        ("grant_type", "authorization_code"),
        ("redirect_uri", CALLBACK),
        ("code", back["code"].as_str()),
    ];
    let (status, short) = post(h, "/threads/graph/oauth/access_token", &form).await;
    assert_eq!(status, 200, "{short}");
    assert_eq!(short["user_id"], json!(USER.parse::<u64>().unwrap()));
    let (status, again) = post(h, "/threads/graph/oauth/access_token", &form).await;
    assert_eq!((status, again["error"]["code"].as_i64()), (400, Some(100)), "codes are single-use: {again}");
    let short = short["access_token"].as_str().unwrap().to_owned();
    let (status, wrong) = get(
        h,
        "/threads/graph/access_token",
        &[("grant_type", "th_exchange_token"), ("client_secret", "nope"), ("access_token", &short)],
    )
    .await;
    assert_eq!(status, 400, "{wrong}");
    let (status, long) = get(
        h,
        "/threads/graph/access_token",
        &[("grant_type", "th_exchange_token"), ("client_secret", SECRET), ("access_token", &short)],
    )
    .await;
    assert_eq!(
        (status, long["expires_in"].as_i64(), long["token_type"].as_str()),
        (200, Some(5_183_944), Some("bearer"))
    );
    long["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn threads_tokens_are_exchanged_then_refreshed_once_a_day_old() {
    let h = setup().await;
    let long = long_lived(&h, "threads_basic,threads_content_publish").await;
    let refresh = [("grant_type", "th_refresh_token"), ("access_token", long.as_str())];
    let (status, early) = get(&h, "/threads/graph/refresh_access_token", &refresh).await;
    assert_eq!(status, 400, "under a day old: {early}");
    h.control("/_sandbox/clock/advance", json!({ "seconds": 86_401 })).await;
    let (status, renewed) = get(&h, "/threads/graph/refresh_access_token", &refresh).await;
    assert_eq!((status, renewed["expires_in"].as_i64()), (200, Some(5_183_944)), "{renewed}");
    // Past 60 days unrefreshed, a token is dead (190, subcode 463).
    h.control("/_sandbox/clock/advance", json!({ "seconds": 5_183_944 })).await;
    let (status, dead) = get(&h, &format!("/threads/graph/v1.0/{USER}"), &[("access_token", long.as_str())]).await;
    assert_eq!(
        (status, dead["error"]["code"].as_i64(), dead["error"]["error_subcode"].as_i64()),
        (400, Some(190), Some(463))
    );
}

#[tokio::test]
async fn threads_containers_follow_the_posts_guide() {
    let h = setup().await;
    let token = long_lived(&h, "threads_basic,threads_content_publish").await;
    let t = token.as_str();
    let create = format!("/threads/graph/v1.0/{USER}/threads");
    let media = |name: &str| h.url(&format!("/_sandbox/media/{name}"));
    // 500 characters, an emoji counting its UTF-8 bytes: 496 letters and a thumbs-up are 500.
    let at_limit = format!("{}👍", "a".repeat(496));
    let over = format!("{}👍", "a".repeat(497));
    let (status, _) = post(&h, &create, &[("media_type", "TEXT"), ("text", &at_limit), ("access_token", t)]).await;
    assert_eq!(status, 200);
    let (status, _) = post(&h, &create, &[("media_type", "TEXT"), ("text", &over), ("access_token", t)]).await;
    assert_eq!(status, 400, "501 as Threads counts");
    let (status, _) = post(&h, &create, &[("media_type", "TEXT"), ("access_token", t)]).await;
    assert_eq!(status, 400, "TEXT needs text");
    let gif = media("moving.gif");
    let (status, _) = post(&h, &create, &[("media_type", "IMAGE"), ("image_url", &gif), ("access_token", t)]).await;
    assert_eq!(status, 400, "JPEG and PNG only");
    let (status, _) = post(&h, &create, &[("media_type", "CAROUSEL"), ("children", "1"), ("access_token", t)]).await;
    assert_eq!(status, 400, "a carousel needs two children");

    let png = media("a.png");
    let mut children = Vec::new();
    for _ in 0..2 {
        let (status, child) = post(
            &h,
            &create,
            &[("media_type", "IMAGE"), ("image_url", &png), ("is_carousel_item", "true"), ("access_token", t)],
        )
        .await;
        assert_eq!(status, 200, "{child}");
        children.push(child["id"].as_str().unwrap().to_owned());
    }
    let joined = children.join(",");
    let (_, carousel) =
        post(&h, &create, &[("media_type", "CAROUSEL"), ("children", &joined), ("text", "two"), ("access_token", t)])
            .await;
    let id = carousel["id"].as_str().unwrap();
    let (_, status) = get(&h, &format!("/threads/graph/v1.0/{id}"), &[("fields", "status"), ("access_token", t)]).await;
    assert_eq!(status["status"], "FINISHED");
    let publish = format!("/threads/graph/v1.0/{USER}/threads_publish");
    let (code, published) = post(&h, &publish, &[("creation_id", id), ("access_token", t)]).await;
    assert_eq!(code, 200, "{published}");
    let (code, _) = post(&h, &publish, &[("creation_id", id), ("access_token", t)]).await;
    assert_eq!(code, 400, "published once");
    let (_, status) = get(&h, &format!("/threads/graph/v1.0/{id}"), &[("fields", "status"), ("access_token", t)]).await;
    assert_eq!(status["status"], "PUBLISHED");
    let (_, limit) = get(
        &h,
        &format!("/threads/graph/v1.0/{USER}/threads_publishing_limit"),
        &[("fields", "quota_usage,config"), ("access_token", t)],
    )
    .await;
    assert_eq!(limit["data"][0]["quota_usage"], 1);
    assert_eq!(limit["data"][0]["config"]["quota_total"], 250);

    // Deleting needs threads_delete.
    let post_id = published["id"].as_str().unwrap();
    let response = h
        .http
        .delete(h.url(&format!("/threads/graph/v1.0/{post_id}")))
        .query(&[("access_token", t)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}
