//! The HTTP API's common contract, through the same router the functions serve: API-key auth
//! and one problem-document shape for every error.

use axum::Router;
use axum::body::Body;
use herald::http::AppState;
use herald::store::{Origin, TenantStore};
use herald_testkit::TestEnv;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Api {
    router: Router,
    key: String,
    tenants: TenantStore,
}

async fn api(env: &TestEnv) -> Api {
    let state = AppState::new(env.config(), &env.aws, TestEnv::system_clock());
    let tenants = state.tenants.clone();
    let (_, key) = tenants.create("Acme", vec![Origin::parse("https://app.acme.test").unwrap()]).await.unwrap();
    Api { router: herald::http::all_routes(state), key: key.reveal().to_owned(), tenants }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: http::HeaderMap,
    body: Value,
}

impl Api {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let content_type =
            headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Reply { status, content_type, headers, body }
    }

    fn authed(&self, method: &str, uri: &str) -> http::request::Builder {
        Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {}", self.key))
    }
}

/// Every error: the status, `application/problem+json`, and the RFC 9457 members plus `code`.
fn assert_problem(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    assert_eq!(reply.body["status"], status.as_u16());
    assert_eq!(reply.body["type"], format!("urn:herald:problem:{code}"));
    assert!(reply.body["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn v1_routes_need_a_valid_api_key() {
    let env = TestEnv::fresh().await;
    let api = api(&env).await;

    let ok = api.send(api.authed("GET", "/v1/tenant").body(Body::empty()).unwrap()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["name"], "Acme");
    assert_eq!(ok.body["allowed_origins"], json!(["https://app.acme.test"]));

    let unknown_key = format!("hk_{}", "A".repeat(43));
    let attempts = [
        None,
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer not-a-key".to_owned()),
        Some(format!("Bearer {unknown_key}")),
        Some(format!("Bearer {}x", api.key)),
    ];
    for authorization in attempts {
        for uri in ["/v1/tenant", "/v1/users/u1/accounts"] {
            let mut request = Request::builder().uri(uri);
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let reply = api.send(request.body(Body::empty()).unwrap()).await;
            assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer realm=\"herald\"");
            assert!(!reply.body.to_string().contains(&api.key), "the key was echoed");
        }
    }
    // The scheme is case-insensitive (RFC 9110).
    let lower = Request::builder().uri("/v1/tenant").header(header::AUTHORIZATION, format!("bearer {}", api.key));
    assert_eq!(api.send(lower.body(Body::empty()).unwrap()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let env = TestEnv::fresh().await;
    let api = api(&env).await;
    let (other, other_key) = api.tenants.create("Other", vec![]).await.unwrap();
    let mine = api.send(api.authed("GET", "/v1/tenant").body(Body::empty()).unwrap()).await;
    let theirs = api
        .send(
            Request::builder()
                .uri("/v1/tenant")
                .header(header::AUTHORIZATION, format!("Bearer {}", other_key.reveal()))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(theirs.body["id"], other.id.as_str());
    assert_ne!(mine.body["id"], theirs.body["id"]);
}

#[tokio::test]
async fn malformed_requests_get_problem_documents_and_change_nothing() {
    let env = TestEnv::fresh().await;
    let api = api(&env).await;
    let patch = |content_type: Option<&str>, body: Body| {
        let mut request = api.authed("PATCH", "/v1/tenant");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        request.body(body).unwrap()
    };
    let json = Some("application/json");

    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (patch(json, Body::from("{\"name\": ")), StatusCode::BAD_REQUEST, "invalid_json"),
        (patch(json, Body::from("not json")), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            patch(Some("text/plain"), Body::from("{\"name\":\"x\"}")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (patch(None, Body::from("{\"name\":\"x\"}")), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            patch(json, Body::from(format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024)))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (patch(json, Body::from("{\"colour\":\"red\"}")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (patch(json, Body::from("{\"name\":42}")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (patch(json, Body::from("{\"name\":\"  \"}")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
        (
            patch(json, Body::from("{\"allowed_origins\":[\"http://evil.test\"]}")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_origin",
        ),
        (
            patch(json, Body::from("{\"allowed_origins\":[\"https://a.test/path\"]}")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_origin",
        ),
        (api.authed("GET", "/v1/nowhere").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND, "route_not_found"),
        (Request::builder().uri("/").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND, "route_not_found"),
        (
            api.authed("DELETE", "/v1/tenant").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            api.authed("GET", "/v1/users/a%23b/accounts").body(Body::empty()).unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = api.send(request).await;
        assert_problem(&reply, status, code);
        assert!(reply.body["detail"].is_string() || reply.body.get("detail").is_none(), "{what}");
    }

    let after = api.send(api.authed("GET", "/v1/tenant").body(Body::empty()).unwrap()).await;
    assert_eq!(after.body["name"], "Acme", "a refused request changed the tenant");
    assert_eq!(after.body["allowed_origins"], json!(["https://app.acme.test"]));
}

#[tokio::test]
async fn tenant_settings_update() {
    let env = TestEnv::fresh().await;
    let api = api(&env).await;
    let request = api
        .authed("PATCH", "/v1/tenant")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name":"Acme Inc","allowed_origins":["https://app.acme.test/","http://localhost:5173"]}"#))
        .unwrap();
    let reply = api.send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let after = api.send(api.authed("GET", "/v1/tenant").body(Body::empty()).unwrap()).await;
    assert_eq!(after.body["name"], "Acme Inc");
    assert_eq!(after.body["allowed_origins"], json!(["https://app.acme.test", "http://localhost:5173"]));
}

#[tokio::test]
async fn accounts_list_is_empty_for_a_new_user() {
    let env = TestEnv::fresh().await;
    let api = api(&env).await;
    let reply = api.send(api.authed("GET", "/v1/users/user-1/accounts").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({ "accounts": [] }));
}
