//! Test helpers: a sandbox per test, an HTTP client that does not follow redirects (the test is
//! the browser), and a browser-like consent step.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};

use herald_sandbox::{Running, SandboxConfig};
use serde_json::{Value, json};

pub struct Harness {
    pub sandbox: Running,
    pub http: reqwest::Client,
}

pub async fn harness() -> Harness {
    let sandbox = herald_sandbox::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SandboxConfig { seed: 7, dev_fixtures: false, ..SandboxConfig::default() },
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Harness { sandbox, http }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.url)
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let response = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "control {path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.http.get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    /// Loads the consent page at `authorize_url` and submits `decision` as `user`; returns the
    /// redirect the platform answers with.
    pub async fn consent(&self, authorize_url: &str, user: &str, decision: &str) -> String {
        let page = self.http.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200, "authorize page for {authorize_url}");
        let html = page.text().await.unwrap();
        let action = html.split("action=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a consent form");
        let response =
            self.http.post(self.url(action)).form(&[("user", user), ("decision", decision)]).send().await.unwrap();
        assert_eq!(response.status(), 302);
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    pub async fn posts(&self, platform: &str) -> Vec<Value> {
        self.get_json(&format!("/_sandbox/posts?platform={platform}")).await["posts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn calls(&self, path: &str) -> Vec<Value> {
        self.get_json(&format!("/_sandbox/calls?path={path}")).await["calls"].as_array().cloned().unwrap_or_default()
    }

    pub async fn advance(&self, seconds: i64) {
        self.control("/_sandbox/clock/advance", json!({ "seconds": seconds })).await;
    }
}

/// Sends the request and reads a JSON answer.
pub async fn send_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The query parameters of a redirect `Location`.
pub fn query(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}
