//! The X simulator against X's documented behaviour (platforms.md §1): every refusal the issue
//! lists, and the documented shape of each success.

mod common;

use base64::Engine as _;
use common::{Harness, harness, query, send_json};
use herald_sandbox::oauth1;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CLIENT: &str = "x-client";
const SECRET: &str = "x-secret";
const CALLBACK: &str = "http://127.0.0.1:9/oauth/x/callback";
const CONSUMER: &str = "x-consumer";
const CONSUMER_SECRET: &str = "x-consumer-secret";
const USER: &str = "2244994945";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

async fn setup() -> Harness {
    let h = harness().await;
    h.control(
        "/_sandbox/apps",
        json!({
            "platform": "x", "client_id": CLIENT, "client_secret": SECRET, "redirect_uris": [CALLBACK],
            "confidential": true, "consumer_key": CONSUMER, "consumer_secret": CONSUMER_SECRET,
        }),
    )
    .await;
    h.control("/_sandbox/users", json!({ "platform": "x", "id": USER, "name": "Ada", "username": "ada" })).await;
    h
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(h: &Harness, scope: &str, method: &str, challenge: &str) -> String {
    let mut url = url::Url::parse(&h.url("/x/web/i/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", scope)
        .append_pair("state", "st4te")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", method);
    url.to_string()
}

const SCOPES: &str = "tweet.read tweet.write users.read media.write offline.access";

async fn code(h: &Harness) -> String {
    let location = h.consent(&authorize_url(h, SCOPES, "S256", &challenge(VERIFIER)), USER, "approve").await;
    let q = query(&location);
    assert!(location.starts_with(CALLBACK), "{location}");
    assert_eq!(q["state"], "st4te");
    q["code"].clone()
}

async fn exchange(h: &Harness, form: &[(&str, &str)], basic: bool) -> (u16, Value) {
    let mut request = h.http.post(h.url("/x/api/2/oauth2/token")).form(form);
    if basic {
        request = request.basic_auth(CLIENT, Some(SECRET));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn redeem(h: &Harness, code: &str, verifier: &str) -> (u16, Value) {
    exchange(
        h,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ],
        true,
    )
    .await
}

async fn tokens(h: &Harness) -> Value {
    let code = code(h).await;
    let (status, body) = redeem(h, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn tweet(h: &Harness, token: &str, body: Value) -> reqwest::Response {
    h.http.post(h.url("/x/api/2/tweets")).bearer_auth(token).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn oauth2_pkce_success_has_the_documented_shape() {
    let h = setup().await;
    let body = tokens(&h).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body["scope"], SCOPES);
    assert!(body["refresh_token"].is_string(), "offline.access yields a refresh token");

    let me: Value =
        send_json(h.http.get(h.url("/x/api/2/users/me")).bearer_auth(body["access_token"].as_str().unwrap())).await;
    assert_eq!(me, json!({ "data": { "id": USER, "name": "Ada", "username": "ada" } }));

    // Without offline.access there is no refresh token.
    let location = h.consent(&authorize_url(&h, "tweet.read users.read", "plain", VERIFIER), USER, "approve").await;
    let (status, body) = redeem(&h, &query(&location)["code"], VERIFIER).await;
    assert_eq!(status, 200, "plain PKCE works: {body}");
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn bad_verifier_reused_and_expired_codes_are_refused() {
    let h = setup().await;

    let code1 = code(&h).await;
    let (status, body) = redeem(&h, &code1, "the-wrong-verifier-the-wrong-verifier-0123456").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    // The code was spent by the failed attempt.
    assert_eq!(redeem(&h, &code1, VERIFIER).await.0, 400);

    let code2 = code(&h).await;
    assert_eq!(redeem(&h, &code2, VERIFIER).await.0, 200);
    let (status, body) = redeem(&h, &code2, VERIFIER).await;
    assert_eq!(status, 400, "reused code: {body}");
    assert_eq!(body["error_description"], "Value passed for the authorization code was invalid.");

    let code3 = code(&h).await;
    h.advance(31).await;
    assert_eq!(redeem(&h, &code3, VERIFIER).await.0, 400, "codes live 30 s");

    let code4 = code(&h).await;
    let (status, body) = exchange(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code4),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", VERIFIER),
        ],
        true,
    )
    .await;
    assert_eq!(status, 400, "redirect_uri must match: {body}");
}

#[tokio::test]
async fn confidential_clients_must_use_basic_auth() {
    let h = setup().await;
    let code = code(&h).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
        ("client_id", CLIENT),
    ];
    let (status, body) = exchange(&h, &form, false).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized_client")), "{body}");
    let response =
        h.http.post(h.url("/x/api/2/oauth2/token")).basic_auth(CLIENT, Some("wrong")).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_rotated_one_is_refused() {
    let h = setup().await;
    let first = tokens(&h).await;
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let (status, second) = exchange(&h, &[("grant_type", "refresh_token"), ("refresh_token", old_refresh)], true).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);

    let (status, body) = exchange(&h, &[("grant_type", "refresh_token"), ("refresh_token", old_refresh)], true).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let new_refresh = second["refresh_token"].as_str().unwrap();
    assert_eq!(exchange(&h, &[("grant_type", "refresh_token"), ("refresh_token", new_refresh)], true).await.0, 200);

    // The call log tells refreshes from code exchanges.
    let refreshes = h.calls("/x/api/2/oauth2/token").await;
    let count = refreshes.iter().filter(|c| c["note"] == "grant_type=refresh_token").count();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn authorize_refuses_unknown_clients_and_redirects_errors() {
    let h = setup().await;
    let bad_client = authorize_url(&h, SCOPES, "S256", &challenge(VERIFIER)).replace(CLIENT, "nope");
    let response = h.http.get(bad_client).send().await.unwrap();
    assert_eq!(response.status(), 400, "no redirect for an unknown client");

    let bad_redirect = authorize_url(&h, SCOPES, "S256", &challenge(VERIFIER)).replace("%2Fcallback", "%2Fevil");
    let response = h.http.get(bad_redirect).send().await.unwrap();
    assert_eq!(response.status(), 400, "no redirect to an unregistered URI");

    let no_pkce = authorize_url(&h, SCOPES, "S256", "").replace("&code_challenge=&code_challenge_method=S256", "");
    let response = h.http.get(no_pkce).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(query(response.headers()["location"].to_str().unwrap())["error"], "invalid_request");

    let denied = h.consent(&authorize_url(&h, SCOPES, "S256", &challenge(VERIFIER)), USER, "deny").await;
    assert_eq!(query(&denied)["error"], "access_denied");
    assert_eq!(query(&denied)["state"], "st4te");
}

#[tokio::test]
async fn posts_have_the_documented_shape_and_refusals() {
    let h = setup().await;
    let token = tokens(&h).await["access_token"].as_str().unwrap().to_owned();

    let response = tweet(&h, &token, json!({ "text": "hello from the sandbox" })).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("x-rate-limit-remaining"));
    let body: Value = response.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["edit_history_tweet_ids"], json!([id]));
    assert_eq!(body["data"]["text"], "hello from the sandbox");

    let cases = [
        (json!({ "text": "a".repeat(281) }), 400),
        (json!({ "text": "日".repeat(141) }), 400),
        (json!({ "text": "ok", "colour": "red" }), 400),
        (json!({}), 400),
        (json!({ "text": "ok", "media": { "media_ids": ["123"] } }), 400),
        (json!({ "text": "ok", "reply": { "in_reply_to_tweet_id": "1" } }), 400),
        (json!({ "text": "hello from the sandbox" }), 403),
    ];
    for (body, status) in cases {
        let response = tweet(&h, &token, body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
    }
    assert_eq!(tweet(&h, &token, json!({ "text": "a".repeat(280) })).await.status(), 201);
    assert_eq!(
        tweet(&h, &token, json!({ "text": "reply", "reply": { "in_reply_to_tweet_id": id } })).await.status(),
        201
    );
    assert_eq!(tweet(&h, "not-a-token", json!({ "text": "x" })).await.status(), 401);
    assert_eq!(h.posts("x").await.len(), 3);

    // A token without tweet.write may read but not post.
    let location =
        h.consent(&authorize_url(&h, "tweet.read users.read", "S256", &challenge(VERIFIER)), USER, "approve").await;
    let (_, read_only) = redeem(&h, &query(&location)["code"], VERIFIER).await;
    let response = tweet(&h, read_only["access_token"].as_str().unwrap(), json!({ "text": "nope" })).await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn expired_and_revoked_tokens_get_401() {
    let h = setup().await;
    let token = tokens(&h).await["access_token"].as_str().unwrap().to_owned();
    h.control("/_sandbox/grants/expire", json!({ "platform": "x", "user_id": USER })).await;
    let response = tweet(&h, &token, json!({ "text": "late" })).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "title": "Unauthorized", "detail": "Unauthorized", "type": "about:blank", "status": 401 })
    );

    let fresh = tokens(&h).await;
    h.control("/_sandbox/grants/revoke", json!({ "platform": "x", "user_id": USER })).await;
    assert_eq!(tweet(&h, fresh["access_token"].as_str().unwrap(), json!({ "text": "x" })).await.status(), 401);
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", fresh["refresh_token"].as_str().unwrap())];
    assert_eq!(exchange(&h, &refresh, true).await.0, 400, "a revoked refresh token is refused");

    // Also with the documented 2 h lifetime: an access token dies by itself.
    let again = tokens(&h).await;
    h.advance(7201).await;
    assert_eq!(tweet(&h, again["access_token"].as_str().unwrap(), json!({ "text": "y" })).await.status(), 401);
}

#[tokio::test]
async fn over_limit_calls_get_429_with_reset_headers() {
    let h = setup().await;
    h.control("/_sandbox/limits", json!({ "platform": "x", "name": "tweets/user", "limit": 3, "window": 900 })).await;
    let token = tokens(&h).await["access_token"].as_str().unwrap().to_owned();
    let now = h.get_json("/_sandbox").await["now"].as_i64().unwrap();
    for i in 0..3 {
        let response = tweet(&h, &token, json!({ "text": format!("post {i}") })).await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-rate-limit-limit"], "3");
        assert_eq!(response.headers()["x-rate-limit-remaining"], (2 - i).to_string().as_str());
    }
    let response = tweet(&h, &token, json!({ "text": "one too many" })).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-rate-limit-remaining"], "0");
    let reset: i64 = response.headers()["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
    assert!((now + 899..=now + 901).contains(&reset), "reset {reset} vs now {now}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["title"], "Too Many Requests");
    assert_eq!(h.posts("x").await.len(), 3, "a refused call creates nothing");

    h.advance(900).await;
    assert_eq!(tweet(&h, &token, json!({ "text": "after the reset" })).await.status(), 201);
}

const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1];

#[tokio::test]
async fn media_upload_one_shot_and_chunked_with_processing() {
    let h = setup().await;
    let token = tokens(&h).await["access_token"].as_str().unwrap().to_owned();

    let form = reqwest::multipart::Form::new()
        .text("media_category", "tweet_image")
        .part("media", reqwest::multipart::Part::bytes(JPEG.to_vec()).file_name("a.jpg"));
    let response =
        h.http.post(h.url("/x/api/2/media/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let image: Value = response.json().await.unwrap();
    let image_id = image["data"]["id"].as_str().unwrap().to_owned();
    assert!(image["data"]["media_key"].as_str().unwrap().ends_with(&image_id));

    let not_an_image =
        json!({ "media": base64::engine::general_purpose::STANDARD.encode(b"hello"), "media_category": "tweet_image" });
    let response =
        h.http.post(h.url("/x/api/2/media/upload")).bearer_auth(&token).json(&not_an_image).send().await.unwrap();
    assert_eq!(response.status(), 400);

    let post = json!({ "text": "with a picture", "media": { "media_ids": [image_id] } });
    assert_eq!(tweet(&h, &token, post).await.status(), 201);

    // Chunked video: initialize, append, finalize, then processing until succeeded.
    let video = vec![0u8; 1000];
    let init: Value = send_json(
        h.http
            .post(h.url("/x/api/2/media/upload/initialize"))
            .bearer_auth(&token)
            .json(&json!({ "media_type": "video/mp4", "total_bytes": video.len(), "media_category": "tweet_video" })),
    )
    .await;
    let id = init["data"]["id"].as_str().unwrap().to_owned();
    for (i, chunk) in video.chunks(400).enumerate() {
        let part = json!({ "media": base64::engine::general_purpose::STANDARD.encode(chunk), "segment_index": i });
        let response = h
            .http
            .post(h.url(&format!("/x/api/2/media/upload/{id}/append")))
            .bearer_auth(&token)
            .json(&part)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let finalized: Value =
        send_json(h.http.post(h.url(&format!("/x/api/2/media/upload/{id}/finalize"))).bearer_auth(&token)).await;
    assert_eq!(finalized["data"]["processing_info"]["state"], "pending");
    let with_video = json!({ "text": "video", "media": { "media_ids": [id] } });
    assert_eq!(tweet(&h, &token, with_video.clone()).await.status(), 400, "unprocessed media is refused");

    let mut states = Vec::new();
    loop {
        let status: Value = send_json(
            h.http
                .get(h.url("/x/api/2/media/upload"))
                .query(&[("command", "STATUS"), ("media_id", id.as_str())])
                .bearer_auth(&token),
        )
        .await;
        let state = status["data"]["processing_info"]["state"].as_str().unwrap().to_owned();
        states.push(state.clone());
        if state == "succeeded" {
            break;
        }
        assert!(states.len() < 5, "{states:?}");
    }
    assert_eq!(states, ["pending", "in_progress", "succeeded"]);
    assert_eq!(tweet(&h, &token, with_video).await.status(), 201);
}

/// Signs an OAuth 1.0a request the way a client must (RFC 5849 §3.4), for the flow tests.
fn oauth1_header(
    method: &str,
    url: &str,
    extra: &[(&str, &str)],
    token: Option<(&str, &str)>,
    timestamp: i64,
    nonce: &str,
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("oauth_consumer_key".into(), CONSUMER.into()),
        ("oauth_nonce".into(), nonce.into()),
        ("oauth_signature_method".into(), "HMAC-SHA1".into()),
        ("oauth_timestamp".into(), timestamp.to_string()),
        ("oauth_version".into(), "1.0".into()),
    ];
    if let Some((t, _)) = token {
        params.push(("oauth_token".into(), t.into()));
    }
    params.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let base = oauth1::base_string(method, url, &params);
    let signature = oauth1::sign(&base, CONSUMER_SECRET, token.map(|(_, s)| s).unwrap_or(""));
    params.push(("oauth_signature".into(), signature));
    let fields: Vec<String> =
        params.iter().map(|(k, v)| format!("{}=\"{}\"", oauth1::encode(k), oauth1::encode(v))).collect();
    format!("OAuth {}", fields.join(", "))
}

#[tokio::test]
async fn oauth1_three_legged_flow_and_signature_refusals() {
    let h = setup().await;
    let now = h.get_json("/_sandbox").await["now"].as_i64().unwrap();
    let request_url = h.url("/x/api/oauth/request_token");
    let post = |header: String| h.http.post(&request_url).header("authorization", header).send();

    // Refusals: wrong secret, stale timestamp, unregistered callback, replayed nonce.
    let good = oauth1_header("POST", &request_url, &[("oauth_callback", CALLBACK)], None, now, "n1");
    let forged = good.replace("oauth_nonce=\"n1\"", "oauth_nonce=\"n2\"");
    let response = post(forged).await.unwrap();
    assert_eq!(response.status(), 401, "signature over another nonce");
    assert_eq!(response.json::<Value>().await.unwrap()["errors"][0]["code"], 32);

    let stale = oauth1_header("POST", &request_url, &[("oauth_callback", CALLBACK)], None, now - 3600, "n3");
    let response = post(stale).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["errors"][0]["code"], 135);

    let elsewhere = oauth1_header("POST", &request_url, &[("oauth_callback", "http://evil.test/cb")], None, now, "n4");
    assert_eq!(post(elsewhere).await.unwrap().status(), 403);

    let response = post(good.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    let issued: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(response.text().await.unwrap().as_bytes()).into_owned().collect();
    assert_eq!(issued["oauth_callback_confirmed"], "true");
    assert_eq!(post(good).await.unwrap().status(), 401, "a replayed nonce is refused");

    // The user approves; X redirects with the verifier.
    let location = h
        .consent(&format!("{}?oauth_token={}", h.url("/x/api/oauth/authorize"), issued["oauth_token"]), USER, "approve")
        .await;
    let q = query(&location);
    assert_eq!(q["oauth_token"], issued["oauth_token"]);

    let access_url = h.url("/x/api/oauth/access_token");
    let request_token = (issued["oauth_token"].as_str(), issued["oauth_token_secret"].as_str());
    let wrong_verifier =
        oauth1_header("POST", &access_url, &[("oauth_verifier", "nope")], Some(request_token), now, "n5");
    let response = h.http.post(&access_url).header("authorization", wrong_verifier).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // The failed attempt spent the request token: start again, then succeed.
    let good = oauth1_header("POST", &request_url, &[("oauth_callback", CALLBACK)], None, now, "n6");
    let issued: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(post(good).await.unwrap().text().await.unwrap().as_bytes()).into_owned().collect();
    let location = h
        .consent(&format!("{}?oauth_token={}", h.url("/x/api/oauth/authorize"), issued["oauth_token"]), USER, "approve")
        .await;
    let verifier = query(&location)["oauth_verifier"].clone();
    let request_token = (issued["oauth_token"].as_str(), issued["oauth_token_secret"].as_str());
    let header = oauth1_header("POST", &access_url, &[("oauth_verifier", &verifier)], Some(request_token), now, "n7");
    let response = h.http.post(&access_url).header("authorization", header).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let access: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(response.text().await.unwrap().as_bytes()).into_owned().collect();
    assert_eq!(access["user_id"], USER);
    assert_eq!(access["screen_name"], "ada");

    // The user token posts with a signed JSON request (the JSON body is not signed).
    let tweets_url = h.url("/x/api/2/tweets");
    let token = (access["oauth_token"].as_str(), access["oauth_token_secret"].as_str());
    let signed_tweet = |header: String, text: &str| {
        h.http.post(&tweets_url).header("authorization", header).json(&json!({ "text": text })).send()
    };
    let header = oauth1_header("POST", &tweets_url, &[], Some(token), now, "n8");
    assert_eq!(signed_tweet(header, "signed").await.unwrap().status(), 201);
    let wrong_secret = oauth1_header("POST", &tweets_url, &[], Some((token.0, "wrong")), now, "n9");
    assert_eq!(signed_tweet(wrong_secret, "forged").await.unwrap().status(), 401);
    assert_eq!(h.posts("x").await.len(), 1);

    // Denial sends the user back with `denied`.
    let good = oauth1_header("POST", &request_url, &[("oauth_callback", CALLBACK)], None, now, "n10");
    let issued: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(post(good).await.unwrap().text().await.unwrap().as_bytes()).into_owned().collect();
    let location = h
        .consent(&format!("{}?oauth_token={}", h.url("/x/api/oauth/authorize"), issued["oauth_token"]), USER, "deny")
        .await;
    assert_eq!(query(&location)["denied"], issued["oauth_token"]);
}

#[tokio::test]
async fn injected_faults_fail_the_way_x_fails() {
    let h = setup().await;
    let token = tokens(&h).await["access_token"].as_str().unwrap().to_owned();
    h.control(
        "/_sandbox/faults",
        json!({ "path": "/x/api/2/tweets", "kind": { "type": "status", "status": 503 }, "times": 1 }),
    )
    .await;
    let response = tweet(&h, &token, json!({ "text": "first" })).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(tweet(&h, &token, json!({ "text": "second" })).await.status(), 201, "the fault was used up");

    // Applied, then the answer never comes: the post exists although the client saw a timeout.
    h.control(
        "/_sandbox/faults",
        json!({ "path": "/x/api/2/tweets", "kind": { "type": "applied_then_hang" }, "times": 1 }),
    )
    .await;
    let result = h
        .http
        .post(h.url("/x/api/2/tweets"))
        .bearer_auth(&token)
        .json(&json!({ "text": "applied" }))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    let texts: Vec<Value> = h.posts("x").await.iter().map(|p| p["text"].clone()).collect();
    assert_eq!(texts, [json!("second"), json!("applied")]);

    // A held call waits for the test, not for the client's timeout: once the sandbox reports it
    // held, releasing it cuts the connection before any answer (the client has no timeout
    // here; the outer one only keeps a broken release from hanging the suite).
    h.control("/_sandbox/faults", json!({ "path": "/x/api/2/tweets", "kind": { "type": "hang" }, "times": 1 })).await;
    let call = h.http.post(h.url("/x/api/2/tweets")).bearer_auth(&token).json(&json!({ "text": "held" })).send();
    let release = async {
        let held: Value =
            h.http.get(h.url("/_sandbox/faults/held?count=1")).send().await.unwrap().json().await.unwrap();
        assert_eq!(held["held"], 1);
        h.control("/_sandbox/faults/release", json!({})).await
    };
    let (answer, released) =
        tokio::time::timeout(std::time::Duration::from_secs(10), async { tokio::join!(call, release) }).await.unwrap();
    assert_eq!(released["released"], 1, "{released}");
    assert!(answer.as_ref().is_err_and(|e| !e.is_timeout()), "the connection is cut, no answer: {answer:?}");
    assert_eq!(h.posts("x").await.len(), 2, "a released hang applied nothing");
    let held: Value = h.http.get(h.url("/_sandbox/faults/held?count=0")).send().await.unwrap().json().await.unwrap();
    assert_eq!(held["held"], 0, "nothing is held after the release");

    h.control(
        "/_sandbox/faults",
        json!({ "path": "/x/api/2/tweets", "kind": { "type": "rate_limited", "reset_after": 60 }, "times": 1 }),
    )
    .await;
    let response = tweet(&h, &token, json!({ "text": "limited" })).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("x-rate-limit-reset"));
}

#[tokio::test]
async fn the_same_seed_gives_the_same_world() {
    let first = setup().await;
    let second = setup().await;
    let a = tokens(&first).await;
    let b = tokens(&second).await;
    assert_eq!(a["access_token"], b["access_token"], "same seed, same calls, same tokens");
    assert_eq!(a["refresh_token"], b["refresh_token"]);
}

/// A sandbox run in process reads the time its host gives it (the test kit hands it Herald's
/// test clock, so there is one clock); `clock/advance` moves it ahead of that source.
#[tokio::test]
async fn the_clock_can_be_the_hosts() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    let time = Arc::new(AtomicI64::new(2_000_000_000));
    let source = {
        let time = time.clone();
        herald_sandbox::TimeSource(Arc::new(move || time.load(Ordering::SeqCst)))
    };
    let sandbox = herald_sandbox::start(
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
        herald_sandbox::SandboxConfig { seed: 7, dev_fixtures: false, clock: Some(source), ..Default::default() },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let now = || async {
        let info: serde_json::Value =
            http.get(format!("{}/_sandbox", sandbox.url)).send().await.unwrap().json().await.unwrap();
        info["now"].as_i64().unwrap()
    };
    assert_eq!(now().await, 2_000_000_000, "the host's time, not the wall clock's");
    time.fetch_add(600, Ordering::SeqCst);
    assert_eq!(now().await, 2_000_000_600, "it moves when the host's does");
    let advanced = http
        .post(format!("{}/_sandbox/clock/advance", sandbox.url))
        .json(&serde_json::json!({ "seconds": 5 }))
        .send()
        .await
        .unwrap();
    assert!(advanced.status().is_success());
    assert_eq!(now().await, 2_000_000_605);
}
