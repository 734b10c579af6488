//! The real Bluesky PDS in the loop (issue 17, first step): the server Herald's Bluesky module
//! will be judged by starts here offline, takes an account and a post, and gives the behaviours
//! that module will rely on as infra/pds's facts say (docs/decisions.md, "Bluesky: the real PDS").

use serde_json::{Value, json};

async fn xrpc(method: reqwest::Method, url: String, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    herald::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the PDS answers");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_real_pds_takes_a_post_once_by_its_record_key_and_reads_it_back() {
    let pds = herald_testkit::pds::shared();
    assert!(pds.url.starts_with("http://localhost:"), "{}", pds.url);
    let post = |path: &str| format!("{}/xrpc/{path}", pds.url);
    let (status, account) = xrpc(
        reqwest::Method::POST,
        post("com.atproto.server.createAccount"),
        None,
        Some(json!({ "handle": "ada.test", "email": "ada@example.test", "password": "correct horse battery" })),
    )
    .await;
    assert_eq!(status, 200, "{account}");
    let (did, token) = (account["did"].as_str().unwrap(), account["accessJwt"].as_str().unwrap());

    // A client-chosen record key with `swapRecord: null`: the same post again is a no-op, a
    // different one under that key is refused (InvalidSwap), so a resend never posts twice.
    let record = json!({ "$type": "app.bsky.feed.post", "text": "hello from Herald's tests", "createdAt": "2026-12-02T06:00:00.000Z" });
    let put = |record: Value| json!({ "repo": did, "collection": "app.bsky.feed.post", "rkey": "3m2aaaaaaaa22", "record": record, "swapRecord": null });
    let (status, first) =
        xrpc(reqwest::Method::POST, post("com.atproto.repo.putRecord"), Some(token), Some(put(record.clone()))).await;
    assert_eq!(status, 200, "{first}");
    assert!(first["commit"].is_object(), "{first}");
    let (status, again) =
        xrpc(reqwest::Method::POST, post("com.atproto.repo.putRecord"), Some(token), Some(put(record.clone()))).await;
    assert_eq!((status, again["uri"].clone()), (200, first["uri"].clone()), "{again}");
    assert!(again["commit"].is_null(), "the same content again is a no-op: {again}");
    let mut other = record.clone();
    other["text"] = json!("something else");
    let (status, refused) =
        xrpc(reqwest::Method::POST, post("com.atproto.repo.putRecord"), Some(token), Some(put(other))).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("InvalidSwap")), "{refused}");

    let read =
        format!("{}?repo={did}&collection=app.bsky.feed.post&rkey=3m2aaaaaaaa22", post("com.atproto.repo.getRecord"));
    let (status, got) = xrpc(reqwest::Method::GET, read, None, None).await;
    assert_eq!((status, got["value"]["text"].as_str()), (200, Some("hello from Herald's tests")), "{got}");
}
