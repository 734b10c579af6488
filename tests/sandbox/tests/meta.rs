//! The Facebook and Instagram simulator against Meta's documented behaviour (platforms.md §2).

mod common;

use common::{Harness, harness, query, send_json};
use serde_json::{Value, json};

const APP: &str = "1234567890123456";
const SECRET: &str = "meta-secret";
const CALLBACK: &str = "http://127.0.0.1:9/oauth/facebook/callback";
const USER: &str = "10158000000000001";
const PAGE: &str = "104000000000001";
const IG: &str = "17841400000000001";
const V: &str = "v26.0";
const SCOPES: &str =
    "pages_show_list,pages_manage_posts,pages_read_engagement,instagram_basic,instagram_content_publish";

async fn setup() -> Harness {
    let h = harness().await;
    h.control(
        "/_sandbox/apps",
        json!({ "platform": "meta", "client_id": APP, "client_secret": SECRET, "redirect_uris": [CALLBACK] }),
    )
    .await;
    h.control(
        "/_sandbox/users",
        json!({
            "platform": "meta", "id": USER, "name": "Grace",
            "pages": [{ "id": PAGE, "name": "Bakery", "instagram": { "id": IG, "username": "bakery" } }],
        }),
    )
    .await;
    h
}

fn dialog(h: &Harness, version: &str) -> String {
    let mut url = url::Url::parse(&h.url(&format!("/meta/web/{version}/dialog/oauth"))).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", APP)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("state", "s1")
        .append_pair("scope", SCOPES);
    url.to_string()
}

async fn graph_get(h: &Harness, path: &str, params: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = h.http.get(h.url(&format!("/meta/graph/{V}{path}"))).query(params).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

async fn graph_post(h: &Harness, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = h.http.post(h.url(&format!("/meta/graph/{V}{path}"))).form(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn exchange_code(h: &Harness, code: &str, redirect: &str) -> (u16, Value) {
    let params = [("client_id", APP), ("client_secret", SECRET), ("redirect_uri", redirect), ("code", code)];
    let (status, _, body) = graph_get(h, "/oauth/access_token", &params).await;
    (status, body)
}

/// Login → short-lived token → long-lived token.
async fn long_lived(h: &Harness) -> String {
    let location = h.consent(&dialog(h, V), USER, "approve").await;
    assert!(location.ends_with("#_=_"), "{location}");
    let code = query(&location)["code"].clone();
    let (status, short) = exchange_code(h, &code, CALLBACK).await;
    assert_eq!(status, 200, "{short}");
    let params = [
        ("grant_type", "fb_exchange_token"),
        ("client_id", APP),
        ("client_secret", SECRET),
        ("fb_exchange_token", short["access_token"].as_str().unwrap()),
    ];
    let (status, _, long) = graph_get(h, "/oauth/access_token", &params).await;
    assert_eq!(status, 200, "{long}");
    assert_eq!(long["token_type"], "bearer");
    assert_eq!(long["expires_in"], 5_183_944);
    long["access_token"].as_str().unwrap().to_owned()
}

async fn page_token(h: &Harness) -> String {
    let user_token = long_lived(h).await;
    let (status, _, accounts) = graph_get(h, "/me/accounts", &[("access_token", &user_token)]).await;
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(accounts["data"][0]["id"], PAGE);
    assert!(accounts["data"][0]["tasks"].as_array().unwrap().contains(&json!("CREATE_CONTENT")));
    accounts["data"][0]["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn login_long_lived_token_pages_and_instagram_discovery() {
    let h = setup().await;
    let token = page_token(&h).await;
    let app_token = format!("{APP}|{SECRET}");
    let (_, _, debug) = graph_get(&h, "/debug_token", &[("input_token", &token), ("access_token", &app_token)]).await;
    assert_eq!(debug["data"]["type"], "PAGE");
    assert_eq!(debug["data"]["is_valid"], true);
    assert_eq!(debug["data"]["expires_at"], 0, "Page tokens from a long-lived user token do not expire");
    assert_eq!(debug["data"]["profile_id"], PAGE);

    let (status, _, page) =
        graph_get(&h, &format!("/{PAGE}"), &[("fields", "instagram_business_account"), ("access_token", &token)]).await;
    assert_eq!(status, 200);
    assert_eq!(page["instagram_business_account"]["id"], IG);
}

#[tokio::test]
async fn login_refusals_use_meta_error_objects() {
    let h = setup().await;
    let code = query(&h.consent(&dialog(&h, V), USER, "approve").await)["code"].clone();
    let (status, body) = exchange_code(&h, &code, "http://127.0.0.1:9/elsewhere").await;
    assert_eq!((status, body["error"]["error_subcode"].as_i64()), (400, Some(36008)), "{body}");
    let (_, body) = exchange_code(&h, &code, CALLBACK).await;
    assert_eq!(body["error"]["error_subcode"], 36009, "a code is single-use");

    let code = query(&h.consent(&dialog(&h, V), USER, "approve").await)["code"].clone();
    let params = [("client_id", APP), ("client_secret", "wrong"), ("redirect_uri", CALLBACK), ("code", code.as_str())];
    let (_, _, body) = graph_get(&h, "/oauth/access_token", &params).await;
    assert_eq!(body["error"]["code"], 1);

    let (status, _, body) = graph_get(
        &h,
        "/oauth/access_token",
        &[
            ("grant_type", "fb_exchange_token"),
            ("client_id", APP),
            ("client_secret", SECRET),
            ("fb_exchange_token", "EAAexpired"),
        ],
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(190)));

    let response = h.http.get(h.url("/meta/graph/v99.0/me")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], 2500, "unknown Graph versions are refused");
    let response = h.http.get(dialog(&h, "v99.0")).send().await.unwrap();
    assert!(!response.text().await.unwrap().contains("<form"), "no consent for an unknown version");

    let denied = h.consent(&dialog(&h, V), USER, "deny").await;
    let q = query(&denied);
    assert_eq!(
        (q["error"].as_str(), q["error_reason"].as_str(), q["state"].as_str()),
        ("access_denied", "user_denied", "s1")
    );
}

#[tokio::test]
async fn dead_tokens_get_code_190_with_subcodes() {
    let h = setup().await;
    let token = long_lived(&h).await;
    h.control("/_sandbox/grants/revoke", json!({ "platform": "meta", "user_id": USER })).await;
    let (status, _, body) = graph_get(&h, "/me", &[("access_token", &token)]).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64(), body["error"]["error_subcode"].as_i64()),
        (400, Some(190), Some(458))
    );
    assert!(body["error"]["fbtrace_id"].is_string());

    let token = long_lived(&h).await;
    h.advance(5_183_945).await;
    let (_, _, body) = graph_get(&h, "/me", &[("access_token", &token)]).await;
    assert_eq!(body["error"]["error_subcode"], 463);
}

#[tokio::test]
async fn page_posts_photos_and_multi_photo_posts() {
    let h = setup().await;
    let token = page_token(&h).await;
    let (status, post) =
        graph_post(&h, &format!("/{PAGE}/feed"), &[("message", "Fresh bread"), ("access_token", &token)]).await;
    assert_eq!(status, 200, "{post}");
    assert!(post["id"].as_str().unwrap().starts_with(&format!("{PAGE}_")));

    let (_, photo) = graph_post(
        &h,
        &format!("/{PAGE}/photos"),
        &[("url", "https://cdn.example/a.jpg"), ("caption", "One"), ("access_token", &token)],
    )
    .await;
    assert!(photo["id"].is_string() && photo["post_id"].is_string(), "{photo}");

    let mut ids = Vec::new();
    for name in ["b", "c"] {
        let url = format!("https://cdn.example/{name}.jpg");
        let (_, unpublished) = graph_post(
            &h,
            &format!("/{PAGE}/photos"),
            &[("url", &url), ("published", "false"), ("access_token", &token)],
        )
        .await;
        assert!(unpublished.get("post_id").is_none());
        ids.push(unpublished["id"].as_str().unwrap().to_owned());
    }
    let attached: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("attached_media[{i}]"), json!({ "media_fbid": id }).to_string()))
        .collect();
    let mut form: Vec<(&str, &str)> = attached.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.extend([("message", "Two photos"), ("access_token", token.as_str())]);
    let (status, multi) = graph_post(&h, &format!("/{PAGE}/feed"), &form).await;
    assert_eq!(status, 200, "{multi}");
    let (status, again) = graph_post(
        &h,
        &format!("/{PAGE}/feed"),
        &form.iter().map(|(k, v)| if *k == "message" { (*k, "Again") } else { (*k, *v) }).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!((status, again["error"]["code"].as_i64()), (400, Some(100)), "photos attach once");

    let posts = h.posts("meta").await;
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[2]["media"].as_array().unwrap().len(), 2);

    let (_, dup) =
        graph_post(&h, &format!("/{PAGE}/feed"), &[("message", "Fresh bread"), ("access_token", &token)]).await;
    assert_eq!(dup["error"]["code"], 506);
    let (_, blocked) =
        graph_post(&h, &format!("/{PAGE}/feed"), &[("message", "spam #sandbox-blocked"), ("access_token", &token)])
            .await;
    assert_eq!(blocked["error"]["code"], 368);
    let (_, early) = graph_post(
        &h,
        &format!("/{PAGE}/feed"),
        &[("message", "soon"), ("published", "false"), ("scheduled_publish_time", "1"), ("access_token", &token)],
    )
    .await;
    assert_eq!(early["error"]["code"], 100);
    let user_token = long_lived(&h).await;
    let (status, denied) =
        graph_post(&h, &format!("/{PAGE}/feed"), &[("message", "as user"), ("access_token", &user_token)]).await;
    assert_eq!((status, denied["error"]["code"].as_i64()), (403, Some(200)), "a user token cannot publish as the Page");
    assert_eq!(h.posts("meta").await.len(), 3, "refused calls create nothing");
}

async fn container(h: &Harness, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let mut form = params.to_vec();
    form.push(("access_token", token));
    graph_post(h, &format!("/{IG}/media"), &form).await
}

async fn status_code(h: &Harness, token: &str, id: &str) -> String {
    let (_, _, body) = graph_get(h, &format!("/{id}"), &[("fields", "status_code"), ("access_token", token)]).await;
    body["status_code"].as_str().unwrap().to_owned()
}

async fn publish(h: &Harness, token: &str, id: &str) -> (u16, Value) {
    graph_post(h, &format!("/{IG}/media_publish"), &[("creation_id", id), ("access_token", token)]).await
}

#[tokio::test]
async fn instagram_containers_publish_only_when_finished() {
    let h = setup().await;
    let token = page_token(&h).await;

    let (_, png) = container(&h, &token, &[("image_url", &h.url("/_sandbox/media/a.png")), ("caption", "x")]).await;
    assert_eq!(png["error"]["code"], 9004, "JPEG only");
    let (_, image_type) =
        container(&h, &token, &[("image_url", &h.url("/_sandbox/media/a.jpg")), ("media_type", "IMAGE")]).await;
    assert_eq!(image_type["error"]["code"], 100, "IMAGE is not a media_type");

    let (status, image) =
        container(&h, &token, &[("image_url", &h.url("/_sandbox/media/a.jpg")), ("caption", "Croissants")]).await;
    assert_eq!(status, 200, "{image}");
    let id = image["id"].as_str().unwrap().to_owned();
    let (status, early) = publish(&h, &token, &id).await;
    assert_eq!(
        (status, early["error"]["code"].as_i64(), early["error"]["error_subcode"].as_i64()),
        (400, Some(9007), Some(2207027))
    );
    assert_eq!(status_code(&h, &token, &id).await, "IN_PROGRESS");
    assert_eq!(status_code(&h, &token, &id).await, "FINISHED");
    let (status, published) = publish(&h, &token, &id).await;
    assert_eq!(status, 200, "{published}");
    assert!(published["id"].is_string());
    assert_eq!(status_code(&h, &token, &id).await, "PUBLISHED");
    assert_eq!(publish(&h, &token, &id).await.1["error"]["error_subcode"], 2207035, "a container publishes once");

    // Carousel: children first, then the parent; a reel needs more processing.
    let mut children = Vec::new();
    for name in ["c1", "c2", "c3"] {
        let url = h.url(&format!("/_sandbox/media/{name}.jpg"));
        let (_, child) = container(&h, &token, &[("image_url", &url), ("is_carousel_item", "true")]).await;
        let child = child["id"].as_str().unwrap().to_owned();
        while status_code(&h, &token, &child).await != "FINISHED" {}
        children.push(child);
    }
    let (_, too_few) = container(&h, &token, &[("media_type", "CAROUSEL"), ("children", &children[0])]).await;
    assert_eq!(too_few["error"]["code"], 100);
    let (_, parent) =
        container(&h, &token, &[("media_type", "CAROUSEL"), ("children", &children.join(",")), ("caption", "Box")])
            .await;
    let parent = parent["id"].as_str().unwrap().to_owned();
    while status_code(&h, &token, &parent).await != "FINISHED" {}
    assert_eq!(publish(&h, &token, &parent).await.0, 200);

    let (_, reel) = container(&h, &token, &[("media_type", "REELS"), ("video_url", "https://cdn.example/v.mp4")]).await;
    let reel = reel["id"].as_str().unwrap().to_owned();
    let mut states = Vec::new();
    loop {
        let state = status_code(&h, &token, &reel).await;
        states.push(state.clone());
        if state != "IN_PROGRESS" {
            break;
        }
    }
    assert_eq!(states, ["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "FINISHED"]);

    let (_, stale) = container(&h, &token, &[("image_url", &h.url("/_sandbox/media/late.jpg"))]).await;
    let stale = stale["id"].as_str().unwrap().to_owned();
    h.advance(86_401).await;
    assert_eq!(status_code(&h, &token, &stale).await, "EXPIRED");
    assert_eq!(publish(&h, &token, &stale).await.0, 400);

    let posts = h.posts("meta").await;
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1]["media"].as_array().unwrap().len(), 3, "the carousel carries its children");
}

#[tokio::test]
async fn instagram_publishing_quota_is_rolling_and_enforced() {
    let h = setup().await;
    h.control("/_sandbox/limits", json!({ "platform": "meta", "name": "ig_quota", "limit": 2 })).await;
    let token = page_token(&h).await;
    for i in 0..3 {
        let url = h.url(&format!("/_sandbox/media/{i}.jpg"));
        let (_, created) = container(&h, &token, &[("image_url", &url)]).await;
        let id = created["id"].as_str().unwrap().to_owned();
        while status_code(&h, &token, &id).await != "FINISHED" {}
        let (status, body) = publish(&h, &token, &id).await;
        if i < 2 {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(
                (status, body["error"]["code"].as_i64(), body["error"]["error_subcode"].as_i64()),
                (400, Some(9), Some(2207042))
            );
        }
    }
    let (_, _, limit) = graph_get(
        &h,
        &format!("/{IG}/content_publishing_limit"),
        &[("fields", "quota_usage,config"), ("access_token", &token)],
    )
    .await;
    assert_eq!(limit["data"][0]["quota_usage"], 2);
    assert_eq!(limit["data"][0]["config"], json!({ "quota_total": 2, "quota_duration": 86400 }));
    h.advance(86_401).await;
    let (_, _, limit) = graph_get(&h, &format!("/{IG}/content_publishing_limit"), &[("access_token", &token)]).await;
    assert_eq!(limit["data"][0]["quota_usage"], 0, "the window rolls");
}

#[tokio::test]
async fn usage_headers_climb_and_throttle_at_100_percent() {
    let h = setup().await;
    h.control("/_sandbox/limits", json!({ "platform": "meta", "name": "app_calls_per_hour", "limit": 4 })).await;
    let token = long_lived(&h).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = graph_get(&h, "/me", &[("access_token", &token)]).await;
        assert_eq!(status, 200);
        let usage: Value = serde_json::from_str(headers["x-app-usage"].to_str().unwrap()).unwrap();
        seen.push(usage["call_count"].as_i64().unwrap());
    }
    assert_eq!(seen, [25, 50, 75, 100]);
    let (status, headers, body) = graph_get(&h, "/me", &[("access_token", &token)]).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (403, Some(4)));
    assert!(headers.contains_key("x-app-usage"));

    let h = setup().await;
    h.control("/_sandbox/limits", json!({ "platform": "meta", "name": "page_calls_per_day", "limit": 2 })).await;
    let page = page_token(&h).await;
    for _ in 0..2 {
        let (status, headers, _) = graph_get(&h, &format!("/{PAGE}"), &[("access_token", &page)]).await;
        assert_eq!(status, 200);
        let usage: Value = serde_json::from_str(headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
        assert_eq!(usage[PAGE][0]["type"], "pages");
    }
    let response =
        send_json(h.http.get(h.url(&format!("/meta/graph/{V}/{PAGE}"))).query(&[("access_token", page.as_str())]))
            .await;
    assert_eq!(response["error"]["code"], 80001);
}

#[tokio::test]
async fn injected_throttling_uses_each_documented_code() {
    let h = setup().await;
    let token = long_lived(&h).await;
    for code in [4, 17, 32, 613, 80001, 80002] {
        h.control(
            "/_sandbox/faults",
            json!({ "path": "/meta/graph", "kind": { "type": "rate_limited", "code": code, "reset_after": 120 }, "times": 1 }),
        )
        .await;
        let (status, headers, body) = graph_get(&h, "/me", &[("access_token", &token)]).await;
        assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(code)), "{body}");
        assert!(headers.contains_key("x-app-usage") || headers.contains_key("x-business-use-case-usage"));
    }
    let (status, _, _) = graph_get(&h, "/me", &[("access_token", &token)]).await;
    assert_eq!(status, 200, "each fault was used once");
}

/// With "Require App Secret" on, every Graph call with a token needs its `appsecret_proof`
/// (hex HMAC-SHA256 of the token keyed with the app secret); a missing or wrong one is code 100.
#[tokio::test]
async fn an_app_that_requires_the_secret_refuses_calls_without_its_proof() {
    let h = harness().await;
    let app = json!({ "platform": "meta", "client_id": APP, "client_secret": SECRET, "redirect_uris": [CALLBACK], "require_app_secret": true });
    h.control("/_sandbox/apps", app).await;
    let user = json!({ "platform": "meta", "id": USER, "name": "Grace", "pages": [{ "id": PAGE, "name": "Bakery" }] });
    h.control("/_sandbox/users", user).await;
    let token = long_lived(&h).await;

    let (status, _, missing) = graph_get(&h, "/me/accounts", &[("access_token", &token)]).await;
    assert_eq!((status, missing["error"]["code"].as_i64()), (400, Some(100)), "{missing}");
    assert_eq!(missing["error"]["type"], "GraphMethodException");
    let wrong = "0".repeat(64);
    let (status, _, refused) =
        graph_get(&h, "/me/accounts", &[("access_token", &token), ("appsecret_proof", &wrong)]).await;
    assert_eq!((status, refused["error"]["code"].as_i64()), (400, Some(100)), "{refused}");

    // The proof as Python's hmac module computes it.
    let script = "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())";
    let proof = std::process::Command::new("python3").args(["-c", script, SECRET, &token]).output().unwrap();
    let proof = String::from_utf8(proof.stdout).unwrap().trim().to_owned();
    let (status, _, accounts) =
        graph_get(&h, "/me/accounts", &[("access_token", &token), ("appsecret_proof", &proof)]).await;
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(accounts["data"][0]["id"], PAGE);
}

/// Graph versions are served from their introduction until two years after the next one (the
/// changelog's dates), on the sandbox's clock: at 2026-12-02, v27.0 (2026-11-04) is served and
/// v20.0 (until 2026-09-24) is not; v21.0 goes on 2027-01-21.
#[tokio::test]
async fn graph_versions_follow_their_published_windows() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let now = Arc::new(AtomicI64::new(1_796_169_600)); // 2026-12-02T00:00:00Z
    let time = now.clone();
    let sandbox = herald_sandbox::start(
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
        herald_sandbox::SandboxConfig {
            seed: 7,
            dev_fixtures: false,
            clock: Some(herald_sandbox::TimeSource(Arc::new(move || time.load(Ordering::SeqCst)))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let served = |version: &'static str| {
        let (http, base) = (http.clone(), sandbox.url.clone());
        async move {
            let body: Value =
                http.get(format!("{base}/meta/graph/{version}/me")).send().await.unwrap().json().await.unwrap();
            // An active version gets as far as asking for a token (104); an inactive one is 2500.
            body["error"]["code"] != 2500
        }
    };
    for (version, want) in [("v20.0", false), ("v21.0", true), ("v26.0", true), ("v27.0", true), ("v28.0", false)] {
        assert_eq!(served(version).await, want, "{version} on 2026-12-02");
    }
    now.store(1_800_489_600, Ordering::SeqCst); // 2027-01-21T00:00:00Z
    assert!(!served("v21.0").await, "v21.0 is gone on 2027-01-21");
    assert!(served("v22.0").await);
}
