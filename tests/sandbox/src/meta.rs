//! Meta Graph API: Facebook Login, long-lived user tokens, Page tokens, `debug_token`, Page
//! publishing (feed, photos, multi-photo via unpublished photos + `attached_media`), Instagram
//! content publishing (containers, status, `media_publish`, `content_publishing_limit`), Graph
//! error objects and the `X-App-Usage` / `X-Business-Use-Case-Usage` headers.
//!
//! Sources: platforms.md §2 and platforms-crosscheck.md §6–9.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::consent::{self, Flow, Pending, with_query};
use crate::state::{Grant, GrantKind, Platform, Post, Shared, World};

const P: Platform = Platform::Meta;
/// Versions the sandbox serves (v21.0 expires 2027-01-21; v26.0 is the newest confirmed).
/// Graph versions with the day each was introduced (developers.facebook.com/docs/graph-api/changelog
/// and /changelog/versions: v26.0 on 2026-07-29; v27.0 on 2026-11-04, per Meta's v27 announcement).
/// Each is served from then until two years after the next one came out, as the changelog's
/// "available until" dates show (v25.0 until 2028-07-29, v21.0 until 2027-01-21, v20.0 until
/// 2026-09-24); the newest until its successor's date is known.
pub const VERSIONS: &[(&str, &str)] = &[
    ("v20.0", "2024-05-21"),
    ("v21.0", "2024-09-24"),
    ("v22.0", "2025-01-21"),
    ("v23.0", "2025-05-20"),
    ("v24.0", "2025-10-08"),
    ("v25.0", "2026-02-18"),
    ("v26.0", "2026-07-29"),
    ("v27.0", "2026-11-04"),
];

/// Whether Graph serves `version` at `now` (Unix seconds).
pub fn version_active(version: &str, now: i64) -> bool {
    let day = |date: &str| {
        time::Date::parse(date, time::macros::format_description!("[year]-[month]-[day]"))
            .map(|d| d.midnight().assume_utc())
            .ok()
    };
    let Some(i) = VERSIONS.iter().position(|(v, _)| *v == version) else { return false };
    let Some(introduced) = day(VERSIONS[i].1) else { return false };
    let until = VERSIONS.get(i + 1).and_then(|(_, next)| day(next)).map(|next| next.replace_year(next.year() + 2));
    introduced.unix_timestamp() <= now
        && until.is_none_or(|until| until.is_ok_and(|until| now < until.unix_timestamp()))
}
/// Login dialog codes are single-use; Meta lets them live about ten minutes.
const CODE_TTL: i64 = 600;
/// Short-lived user tokens last hours; long-lived ones about 60 days (`expires_in` 5183944).
const SHORT_TTL: i64 = 3600;
const LONG_TTL: i64 = 5_183_944;
/// Instagram: "100 API-published posts within a 24-hour moving period" per the guide, 50 per the
/// reference; the sandbox defaults to the conservative 50.
pub const IG_QUOTA: u32 = 50;
const IG_CAPTION_MAX: usize = 2200;
const IG_CAROUSEL_MAX: usize = 10;
const CONTAINER_TTL: i64 = 86_400;
/// Platform rate limit: calls per hour = 200 × users; the sandbox counts one user per app.
pub const APP_CALLS_PER_HOUR: u32 = 200;
/// Pages BUC: 4,800 × engaged users per 24 h; one engaged user.
pub const PAGE_CALLS_PER_DAY: u32 = 4800;

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    user_id: String,
    scopes: Vec<String>,
    expires_at: i64,
    used: bool,
    /// PKCE `(code_challenge, method)` from the dialog, when the app sent one.
    challenge: Option<(String, String)>,
}

#[derive(Debug, Clone)]
struct Photo {
    page_id: String,
    published: bool,
    created_at: i64,
    attached: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ContainerKind {
    Image,
    Reels,
    Stories,
    Carousel(Vec<String>),
}

#[derive(Debug, Clone)]
struct Container {
    ig_user: String,
    kind: ContainerKind,
    carousel_item: bool,
    caption: String,
    media_url: String,
    created_at: i64,
    /// Status checks left before processing finishes.
    polls_left: u32,
    failed: bool,
    published: bool,
}

#[derive(Default)]
pub struct MetaWorld {
    codes: HashMap<String, Code>,
    photos: HashMap<String, Photo>,
    containers: HashMap<String, Container>,
    /// Instagram publishes per IG user, for the rolling 24 h quota.
    publishes: HashMap<String, Vec<i64>>,
    /// Calls per app per hour and per Page per day, for the usage headers.
    usage: HashMap<String, (i64, u32)>,
    /// Overrides: `ig_quota`, `app_calls_per_hour`, `page_calls_per_day`.
    pub limits: HashMap<String, u32>,
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/meta/web/{version}/dialog/oauth", get(dialog))
        .route("/meta/graph/{version}/oauth/access_token", get(access_token))
        .route("/meta/graph/{version}/debug_token", get(debug_token))
        .route("/meta/graph/{version}/{node}", get(node).post(node_post).delete(node_delete))
        .route("/meta/graph/{version}/{node}/{edge}", get(edge).post(edge_post))
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A Graph error object.
pub fn graph_error(status: StatusCode, code: u32, subcode: Option<u32>, message: &str) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AsandboxTraceId",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

pub(crate) fn bad_param(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 100, None, &format!("(#100) {message}"))
}

fn permission(message: &str) -> Response {
    graph_error(StatusCode::FORBIDDEN, 200, None, &format!("(#200) {message}"))
}

/// Code 190: the token is invalid, expired (463) or the app was removed (458).
pub(crate) fn invalid_token(subcode: Option<u32>) -> Response {
    let message = match subcode {
        Some(463) => "Error validating access token: Session has expired.",
        Some(458) => "Error validating access token: The user has not authorized application.",
        _ => "Invalid OAuth access token - Cannot parse access token",
    };
    graph_error(StatusCode::BAD_REQUEST, 190, subcode, message)
}

fn unknown_version(version: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 2500, None, &format!("Unknown path components: /{version}"))
}

fn check_version(version: &str, now: i64) -> Result<(), Response> {
    if version_active(version, now) { Ok(()) } else { Err(unknown_version(version)) }
}

// ---------------------------------------------------------------------------------------------
// Facebook Login

async fn dialog(
    State(sandbox): State<Shared>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !version_active(&version, sandbox.world().now()) {
        return Html("<h1>Sorry, something went wrong.</h1><p>Unknown Graph API version.</p>").into_response();
    }
    let mut world = sandbox.world();
    let Some(app) = q.get("client_id").and_then(|id| world.app(P, id)).cloned() else {
        return (StatusCode::BAD_REQUEST, Html("<h1>Invalid App ID</h1>")).into_response();
    };
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| app.redirect_uris.contains(r)).cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            Html("<h1>URL blocked</h1><p>This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings.</p>"),
        )
            .into_response();
    };
    let scopes: Vec<String> = q
        .get("scope")
        .map(|s| s.split([',', ' ']).filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let pending = Pending {
        platform: P,
        client_id: app.client_id,
        scopes,
        flow: Flow::Meta {
            redirect_uri,
            state: q.get("state").cloned(),
            challenge: q
                .get("code_challenge")
                .map(|c| (c.clone(), q.get("code_challenge_method").cloned().unwrap_or_else(|| "plain".into()))),
        },
    };
    consent::show(&mut world, pending)
}

pub fn complete_consent(world: &mut World, pending: Pending, user_id: &str, approve: bool) -> String {
    let Flow::Meta { redirect_uri, state, challenge } = pending.flow else { return String::new() };
    let state_pair: Vec<(&str, &str)> = state.as_deref().map(|s| vec![("state", s)]).unwrap_or_default();
    if !approve {
        let mut pairs = vec![
            ("error", "access_denied"),
            ("error_code", "200"),
            ("error_description", "Permissions error"),
            ("error_reason", "user_denied"),
        ];
        pairs.extend(state_pair);
        return format!("{}#_=_", with_query(&redirect_uri, &pairs));
    }
    let code = world.token("fbcode_");
    let expires_at = world.now() + CODE_TTL;
    world.meta.codes.insert(
        code.clone(),
        Code {
            client_id: pending.client_id,
            redirect_uri: redirect_uri.clone(),
            user_id: user_id.to_owned(),
            scopes: pending.scopes,
            expires_at,
            used: false,
            challenge,
        },
    );
    let mut pairs = vec![("code", code.as_str())];
    pairs.extend(state_pair);
    format!("{}#_=_", with_query(&redirect_uri, &pairs))
}

fn app_secret_ok(world: &World, client_id: &str, secret: &str) -> bool {
    world.app(P, client_id).is_some_and(|a| bool::from(a.client_secret.as_bytes().ct_eq(secret.as_bytes())))
}

fn grant(
    world: &mut World,
    client_id: &str,
    user_id: &str,
    scopes: Vec<String>,
    ttl: Option<i64>,
    kind: GrantKind,
) -> String {
    let prefix = if matches!(kind, GrantKind::Page { .. }) { "EAAPage" } else { "EAAUser" };
    let token = world.token(prefix);
    let now = world.now();
    world.grants.insert(
        token.clone(),
        Grant {
            platform: P,
            client_id: client_id.to_owned(),
            user_id: user_id.to_owned(),
            scopes,
            expires_at: ttl.map(|t| now + t),
            issued_at: now,
            revoked: false,
            kind,
        },
    );
    token
}

async fn access_token(
    State(sandbox): State<Shared>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = check_version(&version, sandbox.world().now()) {
        return response;
    }
    undescribed(&sandbox, "GET /oauth/access_token");
    let mut world = sandbox.world();
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if !app_secret_ok(&world, &client_id, q.get("client_secret").map(String::as_str).unwrap_or_default()) {
        return graph_error(StatusCode::BAD_REQUEST, 1, None, "Error validating client secret.");
    }
    if q.get("grant_type").map(String::as_str) == Some("fb_exchange_token") {
        return exchange_long_lived(&mut world, &client_id, q.get("fb_exchange_token"));
    }
    let Some(code_value) = q.get("code") else {
        return bad_param("Missing authorization code");
    };
    let now = world.now();
    let Some(code) = world.meta.codes.get_mut(code_value) else {
        return graph_error(StatusCode::BAD_REQUEST, 100, Some(36009), "Invalid verification code format.");
    };
    if code.used {
        return graph_error(StatusCode::BAD_REQUEST, 100, Some(36009), "This authorization code has been used.");
    }
    code.used = true;
    if code.expires_at <= now {
        return graph_error(StatusCode::BAD_REQUEST, 100, Some(36007), "This authorization code has expired.");
    }
    if code.client_id != client_id || q.get("redirect_uri") != Some(&code.redirect_uri) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        );
    }
    // A code issued with a PKCE challenge needs its verifier (Meta's manual-flow OIDC guide; the
    // error text is the sandbox's own: Meta's is not documented).
    if let Some((challenge, method)) = &code.challenge {
        let verified = q.get("code_verifier").is_some_and(|v| crate::x::pkce_matches(method, challenge, v));
        if !verified {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                Some(36008),
                "Error validating verification code: the code verifier does not match.",
            );
        }
    }
    let (user_id, scopes) = (code.user_id.clone(), code.scopes.clone());
    let token = grant(&mut world, &client_id, &user_id, scopes, Some(SHORT_TTL), GrantKind::Access);
    Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": SHORT_TTL })).into_response()
}

fn exchange_long_lived(world: &mut World, client_id: &str, short: Option<&String>) -> Response {
    // "An expired token cannot be exchanged."
    let Some(short) = short.and_then(|t| world.live_grant(P, t)).filter(|g| g.kind == GrantKind::Access).cloned()
    else {
        return invalid_token(Some(463));
    };
    if short.client_id != client_id {
        return invalid_token(None);
    }
    let token = grant(world, client_id, &short.user_id, short.scopes, Some(LONG_TTL), GrantKind::Access);
    Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": LONG_TTL })).into_response()
}

async fn debug_token(
    State(sandbox): State<Shared>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = check_version(&version, sandbox.world().now()) {
        return response;
    }
    undescribed(&sandbox, "GET /debug_token");
    let world = sandbox.world();
    // The caller proves itself with an app token `{app-id}|{app-secret}`.
    let app_ok = q
        .get("access_token")
        .and_then(|t| t.split_once('|'))
        .is_some_and(|(id, secret)| app_secret_ok(&world, id, secret));
    if !app_ok {
        return invalid_token(None);
    }
    let input = q.get("input_token").cloned().unwrap_or_default();
    let Some(grant) = world.grants.get(&input).filter(|g| g.platform == P) else {
        return Json(json!({ "data": { "is_valid": false, "error": { "code": 190, "message": "Invalid OAuth access token." } } }))
            .into_response();
    };
    let now = world.now();
    let valid = !grant.revoked && grant.expires_at.is_none_or(|t| t > now);
    let mut data = json!({
        "app_id": grant.client_id,
        "type": if matches!(grant.kind, GrantKind::Page { .. }) { "PAGE" } else { "USER" },
        "application": "Sandbox app",
        "expires_at": grant.expires_at.unwrap_or(0),
        "is_valid": valid,
        "issued_at": grant.issued_at,
        "scopes": grant.scopes,
        "user_id": grant.user_id,
    });
    if let GrantKind::Page { page_id } = &grant.kind {
        data["profile_id"] = json!(page_id);
    }
    Json(json!({ "data": data })).into_response()
}

// ---------------------------------------------------------------------------------------------
// Graph nodes and edges

/// Graph parameters come from the query, a form body or a JSON body.
pub(crate) fn params(query: &HashMap<String, String>, headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let mut all = query.clone();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                all.insert(k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
            }
        }
    } else {
        all.extend(url::form_urlencoded::parse(body).into_owned());
    }
    all
}

/// The token's grant; Graph takes it as `access_token` or a Bearer header.
fn caller(world: &World, params: &HashMap<String, String>, headers: &HeaderMap) -> Result<Grant, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = params.get("access_token").cloned().or(bearer) else {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            104,
            None,
            "An access token is required to request this resource.",
        ));
    };
    let Some(grant) = world.grants.get(&token).filter(|g| g.platform == P) else {
        return Err(invalid_token(None));
    };
    if grant.revoked {
        return Err(invalid_token(Some(458)));
    }
    if grant.expires_at.is_some_and(|t| t <= world.now()) {
        return Err(invalid_token(Some(463)));
    }
    app_secret_proof(world, grant, &token, params)?;
    Ok(grant.clone())
}

/// Where the grant's app requires it ("Require App Secret"), the call's `appsecret_proof` must be
/// the hex HMAC-SHA256 of its token keyed with the app secret; Graph answers a missing one and a
/// wrong one with code 100 (the answers as clients report them: "API calls from the server
/// require an appsecret_proof argument", "Invalid appsecret_proof provided in the API
/// argument"; developers.facebook.com/docs/facebook-login/security).
fn app_secret_proof(
    world: &World,
    grant: &Grant,
    token: &str,
    params: &HashMap<String, String>,
) -> Result<(), Response> {
    let Some(app) = world.apps.iter().find(|a| a.platform == P && a.client_id == grant.client_id) else {
        return Ok(());
    };
    if !app.require_app_secret {
        return Ok(());
    }
    let Some(proof) = params.get("appsecret_proof") else {
        return Err(graph_method_error("API calls from the server require an appsecret_proof argument"));
    };
    let expected = crate::webhooks::hmac_sha256(app.client_secret.as_bytes(), token.as_bytes());
    let valid = hex::decode(proof).is_ok_and(|proof| proof == expected);
    if !valid {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "Invalid appsecret_proof provided in the API argument",
        ));
    }
    Ok(())
}

fn graph_method_error(message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "GraphMethodException", "code": 100, "fbtrace_id": "AsandboxTraceId" } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn limit(world: &World, key: &str, default: u32) -> u32 {
    world.meta.limits.get(key).copied().unwrap_or(default)
}

/// Counts a call in a fixed window and returns the percentage used.
fn count_usage(world: &mut World, key: String, budget: u32, window: i64) -> u32 {
    let now = world.now();
    let entry = world.meta.usage.entry(key).or_insert((now, 0));
    if now >= entry.0 + window {
        *entry = (now, 0);
    }
    entry.1 += 1;
    (entry.1 * 100 / budget.max(1)).min(100)
}

/// Meters a call by token type: Page tokens against the Page's BUC budget, others against the
/// app's hourly budget. `Err` is the throttling error once usage passed 100 %.
fn meter(world: &mut World, grant: &Grant) -> Result<(&'static str, String), Response> {
    match &grant.kind {
        GrantKind::Page { page_id } => {
            let budget = limit(world, "page_calls_per_day", PAGE_CALLS_PER_DAY);
            let before = world.meta.usage.get(&format!("page/{page_id}")).map(|u| u.1).unwrap_or(0);
            let pct = count_usage(world, format!("page/{page_id}"), budget, 86_400);
            let minutes = if before >= budget { 60 } else { 0 };
            let header = json!({ page_id.as_str(): [{ "type": "pages", "call_count": pct, "total_cputime": pct / 2, "total_time": pct / 2, "estimated_time_to_regain_access": minutes }] });
            if before >= budget {
                let mut response = graph_error(
                    StatusCode::BAD_REQUEST,
                    80001,
                    Some(2494055),
                    "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
                );
                insert_header(&mut response, "x-business-use-case-usage", &header.to_string());
                return Err(response);
            }
            Ok(("x-business-use-case-usage", header.to_string()))
        }
        _ => {
            let budget = limit(world, "app_calls_per_hour", APP_CALLS_PER_HOUR);
            let before = world.meta.usage.get(&format!("app/{}", grant.client_id)).map(|u| u.1).unwrap_or(0);
            let pct = count_usage(world, format!("app/{}", grant.client_id), budget, 3600);
            let header = json!({ "call_count": pct, "total_cputime": pct / 2, "total_time": pct / 2 }).to_string();
            if before >= budget {
                let mut response =
                    graph_error(StatusCode::FORBIDDEN, 4, None, "(#4) Application request limit reached");
                insert_header(&mut response, "x-app-usage", &header);
                return Err(response);
            }
            Ok(("x-app-usage", header))
        }
    }
}

fn insert_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// Authenticates, meters and runs a Graph call; the usage header goes on every answer.
/// The type the Graph API specs give `node` (see [`crate::meta_spec`]).
fn node_type(world: &World, grant: &Grant, node: &str) -> &'static str {
    if node == "me" || node == grant.user_id {
        return if matches!(grant.kind, GrantKind::Page { .. }) { "Page" } else { "User" };
    }
    if find_page(world, node).is_some() {
        "Page"
    } else if find_ig(world, node).is_some() {
        "IGUser"
    } else if world.meta.containers.contains_key(node) {
        "ShadowIGMediaBuilder"
    } else if world.meta.photos.contains_key(node) {
        "Photo"
    } else if world.users.iter().any(|u| u.pages.iter().any(|p| p.business.as_deref() == Some(node))) {
        "Business"
    } else if node.contains('_') {
        "PagePost"
    } else {
        "Unknown"
    }
}

/// Enters an OAuth or token-inspection call, which the specs do not describe, in the ledger.
fn undescribed(sandbox: &Shared, what: &str) {
    let mut world = sandbox.world();
    crate::spec::tally(&mut world.meta_spec, what.to_owned(), crate::meta_spec::Judged::Undescribed);
}

/// Which call a Graph request is: its method, node and edge (`None`: the node itself).
struct Call<'a>(&'a str, &'a str, Option<&'a str>);

fn graph_call(
    sandbox: &Shared,
    Call(method, node, edge): Call,
    version: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    handler: impl FnOnce(&mut World, &Grant, &HashMap<String, String>) -> Response,
) -> Response {
    if let Err(response) = check_version(version, sandbox.world().now()) {
        return response;
    }
    let params = params(query, headers, body);
    let mut world = sandbox.world();
    let grant = match caller(&world, &params, headers) {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    // Meta's own specs judge the parameters first (crate::meta_spec).
    let kind = node_type(&world, &grant, node);
    match crate::meta_spec::judge(method, kind, edge, &params) {
        Ok((key, judged)) => crate::spec::tally(&mut world.meta_spec, key, judged),
        Err(errors) => {
            let message = format!("(#100) Not as Meta's Graph API specs describe it: {}", errors.join("; "));
            return graph_error(StatusCode::BAD_REQUEST, 100, None, &message);
        }
    }
    let (name, value) = match meter(&mut world, &grant) {
        Ok(usage) => usage,
        Err(response) => return response,
    };
    let mut response = handler(&mut world, &grant, &params);
    insert_header(&mut response, name, &value);
    response
}

async fn node(
    State(sandbox): State<Shared>,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    graph_call(&sandbox, Call("GET", &node, None), &version, &q, &headers, &[], |world, grant, params| {
        read_node(world, grant, &node, params)
    })
}

async fn node_post(
    State(sandbox): State<Shared>,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graph_call(&sandbox, Call("POST", &node, None), &version, &q, &headers, &body, |_, _, _| {
        bad_param("Unsupported post request.")
    })
}

/// `DELETE /{post-id}` with the Page's token (`pages_manage_posts`): `{"success": true}`.
async fn node_delete(
    State(sandbox): State<Shared>,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    graph_call(&sandbox, Call("DELETE", &node, None), &version, &q, &headers, &[], |world, grant, _| {
        let Some(page) = world.posts.iter().find(|p| p.platform == P && p.id == node).map(|p| p.account.clone()) else {
            return graph_error(StatusCode::BAD_REQUEST, 100, Some(33), "Object does not exist or cannot be loaded.");
        };
        if let Err(response) = page_token_for(grant, &page) {
            return response;
        }
        world.posts.retain(|p| !(p.platform == P && p.id == node));
        Json(json!({ "success": true })).into_response()
    })
}

async fn edge(
    State(sandbox): State<Shared>,
    Path((version, node, edge)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    graph_call(&sandbox, Call("GET", &node, Some(&edge)), &version, &q, &headers, &[], |world, grant, _| {
        match edge.as_str() {
            "accounts" => accounts(world, grant, &node, &q),
            "businesses" => businesses(world, grant, &node),
            "owned_pages" | "client_pages" => business_pages(world, grant, &node, &edge, &q),
            "content_publishing_limit" => publishing_limit(world, grant, &node),
            "feed" => page_posts(world, grant, &node, &q),
            "media" => ig_media(world, grant, &node, &q),
            _ => bad_param(&format!("Tried accessing nonexisting field ({edge})")),
        }
    })
}

async fn edge_post(
    State(sandbox): State<Shared>,
    Path((version, node, edge)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graph_call(&sandbox, Call("POST", &node, Some(&edge)), &version, &q, &headers, &body, |world, grant, params| {
        match edge.as_str() {
            "feed" => page_feed(world, grant, &node, params),
            "photos" => page_photo(world, grant, &node, params),
            "media" => ig_container(world, grant, &node, params),
            "media_publish" => ig_publish(world, grant, &node, params),
            _ => bad_param(&format!("Unsupported post request ({edge})")),
        }
    })
}

fn find_page(world: &World, page_id: &str) -> Option<(String, crate::state::Page)> {
    world
        .users
        .iter()
        .filter(|u| u.platform == P)
        .find_map(|u| u.pages.iter().find(|p| p.id == page_id).map(|p| (u.id.clone(), p.clone())))
}

fn find_ig(world: &World, ig_id: &str) -> Option<(String, crate::state::Page)> {
    world.users.iter().filter(|u| u.platform == P).find_map(|u| {
        u.pages.iter().find(|p| p.instagram.as_ref().is_some_and(|i| i.id == ig_id)).map(|p| (u.id.clone(), p.clone()))
    })
}

fn read_node(world: &mut World, grant: &Grant, node: &str, params: &HashMap<String, String>) -> Response {
    let fields: Vec<&str> = params.get("fields").map(|f| f.split(',').collect()).unwrap_or_default();
    if node == "me" || node == grant.user_id {
        if let GrantKind::Page { page_id } = &grant.kind {
            return read_node_page(world, page_id, &fields);
        }
        let Some(user) = world.user(P, &grant.user_id) else { return invalid_token(None) };
        return Json(json!({ "id": user.id, "name": user.name })).into_response();
    }
    if find_page(world, node).is_some() {
        return read_node_page(world, node, &fields);
    }
    if let Some((owner, page)) = find_ig(world, node)
        && let Some(ig) = page.instagram.clone()
    {
        // Reading the profile needs `instagram_basic` and a token of the Page or its owner.
        if !may_act_for(grant, &owner, &page.id) || !grant.scopes.iter().any(|s| s == "instagram_basic") {
            return permission("The token cannot read this Instagram account.");
        }
        return Json(json!({ "id": ig.id, "username": ig.username })).into_response();
    }
    let now = world.now();
    if let Some(container) = world.meta.containers.get_mut(node) {
        let status = container_status(container, now);
        container.polls_left = container.polls_left.saturating_sub(1);
        let mut body = json!({ "id": node, "status_code": status });
        if fields.contains(&"status") {
            body["status"] =
                json!(if status == "ERROR" { "Error: Media download has failed. (2207026)" } else { status });
        }
        return Json(body).into_response();
    }
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        Some(33),
        &format!(
            "Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
    )
}

fn read_node_page(world: &World, page_id: &str, fields: &[&str]) -> Response {
    let Some((_, page)) = find_page(world, page_id) else { return bad_param("Unknown page") };
    let mut body = json!({ "id": page.id, "name": page.name });
    if fields.contains(&"instagram_business_account")
        && let Some(ig) = &page.instagram
    {
        body["instagram_business_account"] = json!({ "id": ig.id });
    }
    Json(body).into_response()
}

/// An edge of the user node, which only the user's own token reads (a Page token is the Page).
fn user_edge(grant: &Grant, node: &str, edge: &str) -> Result<(), Response> {
    if matches!(grant.kind, GrantKind::Page { .. }) || (node != "me" && node != grant.user_id) {
        return Err(bad_param(&format!("Tried accessing nonexisting field ({edge}) on node type (Page)")));
    }
    Ok(())
}

/// `/me/accounts`: each Page the user manages with its Page token. From a long-lived user token
/// the Page tokens do not expire; from a short-lived one they expire with it. Paged as Graph
/// pages its edges (developers.facebook.com/docs/graph-api/results, cursor-based): `limit`
/// (default 25, at most 100) and `after`; `paging.cursors` on every page, `paging.next` only while
/// more follow.
fn accounts(world: &mut World, grant: &Grant, node: &str, q: &HashMap<String, String>) -> Response {
    if let Err(response) = user_edge(grant, node, "accounts") {
        return response;
    }
    if !grant.scopes.iter().any(|s| s == "pages_show_list") {
        return permission("The pages_show_list permission is required to list Pages.");
    }
    // Only the Pages of the user's own Page roles: those held through a business are the
    // business's to list (F2).
    let all: Vec<_> = world.user(P, &grant.user_id).map(|u| u.pages.clone()).unwrap_or_default();
    let all: Vec<_> = all.into_iter().filter(|p| p.business.is_none()).collect();
    page_list(world, grant, node, "accounts", &all, q)
}

/// The businesses whose Pages the user holds a role on (`GET /me/businesses`, which needs
/// `business_management`).
fn businesses(world: &mut World, grant: &Grant, node: &str) -> Response {
    if let Err(response) = user_edge(grant, node, "businesses") {
        return response;
    }
    if !grant.scopes.iter().any(|s| s == "business_management") {
        return permission("(#100) Missing permission: business_management is required to list businesses.");
    }
    let mut ids: Vec<String> = world
        .user(P, &grant.user_id)
        .map(|u| u.pages.iter().filter_map(|p| p.business.clone()).collect())
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    let data: Vec<Value> = ids.iter().map(|id| json!({ "id": id, "name": format!("Business {id}") })).collect();
    Json(json!({ "data": data })).into_response()
}

/// A business's Pages the user reaches through it: `owned_pages`, or `client_pages` (F2).
fn business_pages(
    world: &mut World,
    grant: &Grant,
    business: &str,
    edge: &str,
    q: &HashMap<String, String>,
) -> Response {
    if !grant.scopes.iter().any(|s| s == "business_management") {
        return permission("(#100) Missing permission: business_management is required to read a business's Pages.");
    }
    let client = edge == "client_pages";
    let all: Vec<_> = world.user(P, &grant.user_id).map(|u| u.pages.clone()).unwrap_or_default();
    let all: Vec<_> =
        all.into_iter().filter(|p| p.business.as_deref() == Some(business) && p.client == client).collect();
    page_list(world, grant, business, edge, &all, q)
}

/// One page of Pages with their Page tokens, behind Graph's cursors (25 a page by default).
fn page_list(
    world: &mut World,
    grant: &Grant,
    node: &str,
    edge: &str,
    all: &[crate::state::Page],
    q: &HashMap<String, String>,
) -> Response {
    use base64::Engine as _;
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100);
    let cursor = |index: usize| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("page:{index}"));
    let start = match q.get("after") {
        None => 0,
        Some(after) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(after)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|raw| raw.strip_prefix("page:").and_then(|i| i.parse::<usize>().ok()))
        {
            Some(index) => index + 1,
            None => return bad_param("Invalid cursor"),
        },
    };
    let pages: Vec<_> = all.iter().skip(start).take(limit).cloned().collect();
    let long_lived = grant.expires_at.is_some_and(|t| t - grant.issued_at > SHORT_TTL);
    let ttl = if long_lived { None } else { grant.expires_at.map(|t| t - world.now()) };
    let data: Vec<Value> = pages
        .iter()
        .map(|page| {
            let token = self::grant(
                world,
                &grant.client_id,
                &grant.user_id,
                grant.scopes.clone(),
                ttl,
                GrantKind::Page { page_id: page.id.clone() },
            );
            json!({
                "access_token": token,
                "category": "Product/service",
                "name": page.name,
                "id": page.id,
                "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"],
            })
        })
        .collect();
    if data.is_empty() {
        return Json(json!({ "data": [] })).into_response();
    }
    let last = start + data.len() - 1;
    let link = format!("https://graph.facebook.com/{node}/{edge}");
    let paging = graph_paging(&cursor(start), &cursor(last), last + 1 < all.len(), &link, q);
    Json(json!({ "data": data, "paging": paging })).into_response()
}

/// A Graph page's `paging`: its `cursors`, and while more follow `next`, `link` with the request's
/// query and `after` the page's last cursor (the token in it, as Graph writes it).
fn graph_paging(before: &str, after: &str, more: bool, link: &str, q: &HashMap<String, String>) -> Value {
    let mut paging = json!({ "cursors": { "before": before, "after": after } });
    if more {
        let mut next = url::Url::parse(link).expect("a Graph link");
        next.query_pairs_mut().extend_pairs(q.iter().filter(|(key, _)| *key != "after")).append_pair("after", after);
        paging["next"] = json!(next.as_str());
    }
    paging
}

// ---------------------------------------------------------------------------------------------
// Facebook Page publishing

fn page_token_for(grant: &Grant, page_id: &str) -> Result<(), Response> {
    match &grant.kind {
        GrantKind::Page { page_id: token_page } if token_page == page_id => {}
        GrantKind::Page { .. } => return Err(permission("The Page token does not belong to this Page.")),
        // "(#32) Page request limit reached" is not it; a user token cannot publish as a Page.
        _ => return Err(permission("Publishing to a Page requires a Page access token.")),
    }
    if grant.scopes.iter().any(|s| s == "pages_manage_posts") {
        Ok(())
    } else {
        Err(permission("The pages_manage_posts permission is required to publish as this Page."))
    }
}

fn truthy(value: Option<&String>, default: bool) -> bool {
    value.map(|v| v == "true" || v == "1").unwrap_or(default)
}

/// Content the sandbox treats as blocked by policy (code 368), so that path can be tested.
const BLOCKED_MARKER: &str = "#sandbox-blocked";

/// `GET /{page-id}/feed`: the Page's published posts, newest first, from `since` (Unix seconds),
/// a page at a time ([`graph_listing`]).
fn page_posts(world: &World, grant: &Grant, page_id: &str, q: &HashMap<String, String>) -> Response {
    if let Err(response) = page_token_for(grant, page_id) {
        return response;
    }
    let since = q.get("since").and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MIN);
    let mine = |p: &Post| p.platform == Platform::Meta && p.account == page_id && p.created_at >= since;
    let link = format!("https://graph.facebook.com/{page_id}/feed");
    graph_listing(world, mine, q, &link, |p| json!({ "id": p.id, "message": p.text }))
}

/// One page of an account's posts as a Graph edge serves them (developers.facebook.com/docs/
/// graph-api/results, cursor-based): `limit` (default 25, at most 100) and `after`, a cursor
/// naming the page before's last post; `paging.cursors` on a page with posts, and `paging.next`
/// (`link` with the same query and the new `after`, the token in it, as Graph writes it) only
/// while more follow.
pub(crate) fn graph_listing(
    world: &World,
    matching: impl Fn(&Post) -> bool,
    q: &HashMap<String, String>,
    link: &str,
    item: impl Fn(&Post) -> Value,
) -> Response {
    use base64::Engine as _;
    let code = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100);
    let after = match q.get("after").map(|cursor| code.decode(cursor).ok().and_then(|raw| String::from_utf8(raw).ok()))
    {
        None => None,
        Some(Some(id)) => Some(id),
        Some(None) => return bad_param("Invalid cursor"),
    };
    let Some((page, more)) = world.listing(matching, after.as_deref(), limit) else {
        return bad_param("Invalid cursor");
    };
    let data: Vec<Value> = page.iter().map(|p| item(p)).collect();
    let (Some(first), Some(last)) = (page.first(), page.last()) else {
        return Json(json!({ "data": [] })).into_response();
    };
    let paging = graph_paging(&code.encode(&first.id), &code.encode(&last.id), more, link, q);
    Json(json!({ "data": data, "paging": paging })).into_response()
}

fn page_feed(world: &mut World, grant: &Grant, page_id: &str, params: &HashMap<String, String>) -> Response {
    if let Err(response) = page_token_for(grant, page_id) {
        return response;
    }
    let message = params.get("message").cloned().unwrap_or_default();
    let link = params.get("link").cloned();
    let attached = attached_media(params);
    if message.is_empty() && link.is_none() && attached.is_empty() {
        return bad_param("Your post must contain a message, a link or attached media.");
    }
    if message.contains(BLOCKED_MARKER) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            368,
            Some(1390008),
            "It looks like you were misusing this feature by going too fast. You've been temporarily blocked from using it.",
        );
    }
    let now = world.now();
    let published = truthy(params.get("published"), true);
    if let Some(at) = params.get("scheduled_publish_time") {
        let Ok(at) = at.parse::<i64>() else { return bad_param("Invalid scheduled_publish_time.") };
        if published {
            return bad_param("Cannot specify a scheduled publish time on a published post.");
        }
        // "The publish date must be between 10 minutes and 30 days from the time of the API request."
        if at < now + 600 || at > now + 30 * 86_400 {
            return bad_param("The specified scheduled publish time is invalid.");
        }
    }
    for id in &attached {
        let ok = world
            .meta
            .photos
            .get(id)
            .is_some_and(|p| p.page_id == page_id && !p.published && !p.attached && p.created_at > now - 86_400);
        if !ok {
            return bad_param(&format!("Invalid attached_media: {id}"));
        }
    }
    let duplicate = !message.is_empty()
        && world
            .posts
            .iter()
            .any(|p| p.platform == P && p.account == page_id && p.text == message && p.created_at > now - 86_400);
    if duplicate {
        return graph_error(StatusCode::BAD_REQUEST, 506, None, "(#506) Duplicate status message");
    }
    for id in &attached {
        if let Some(photo) = world.meta.photos.get_mut(id) {
            photo.attached = true;
        }
    }
    let id = format!("{page_id}_{}", world.numeric_id(16));
    let mut media = attached.clone();
    media.extend(link);
    world.posts.push(Post {
        platform: P,
        account: page_id.to_owned(),
        id: id.clone(),
        text: message,
        media,
        created_at: now,
    });
    Json(json!({ "id": id })).into_response()
}

/// `attached_media[0]={"media_fbid":"…"}` form fields, or one JSON array.
fn attached_media(params: &HashMap<String, String>) -> Vec<String> {
    let mut indexed: Vec<(usize, String)> = params
        .iter()
        .filter_map(|(k, v)| {
            let index = k.strip_prefix("attached_media[")?.strip_suffix(']')?.parse().ok()?;
            let id = serde_json::from_str::<Value>(v).ok()?.get("media_fbid")?.as_str()?.to_owned();
            Some((index, id))
        })
        .collect();
    indexed.sort();
    let mut ids: Vec<String> = indexed.into_iter().map(|(_, id)| id).collect();
    if let Some(Ok(Value::Array(list))) = params.get("attached_media").map(|v| serde_json::from_str::<Value>(v)) {
        ids.extend(list.iter().filter_map(|item| item.get("media_fbid")?.as_str().map(str::to_owned)));
    }
    ids
}

fn page_photo(world: &mut World, grant: &Grant, page_id: &str, params: &HashMap<String, String>) -> Response {
    if let Err(response) = page_token_for(grant, page_id) {
        return response;
    }
    let Some(url) = params.get("url").filter(|u| u.starts_with("https://") || u.starts_with("http://")) else {
        return bad_param("A photo needs a public url (or an uploaded source).");
    };
    let published = truthy(params.get("published"), true);
    let now = world.now();
    let id = world.numeric_id(16);
    world
        .meta
        .photos
        .insert(id.clone(), Photo { page_id: page_id.to_owned(), published, created_at: now, attached: false });
    if !published {
        // Unpublished photos wait to be attached to a post; unused ones are deleted after 24 h.
        return Json(json!({ "id": id })).into_response();
    }
    let text = params.get("caption").or(params.get("message")).cloned().unwrap_or_default();
    let post_id = format!("{page_id}_{}", world.numeric_id(16));
    world.posts.push(Post {
        platform: P,
        account: page_id.to_owned(),
        id: post_id.clone(),
        text,
        media: vec![url.clone()],
        created_at: now,
    });
    Json(json!({ "id": id, "post_id": post_id })).into_response()
}

// ---------------------------------------------------------------------------------------------
// Instagram content publishing

/// A Page token of that Page, or a user token of the Page's owner.
fn may_act_for(grant: &Grant, owner: &str, page_id: &str) -> bool {
    match &grant.kind {
        GrantKind::Page { page_id: token_page } => token_page == page_id,
        _ => grant.user_id == owner,
    }
}

/// Instagram calls take the Page's token or the user's (with `instagram_content_publish`).
fn ig_access(world: &World, grant: &Grant, ig_user: &str) -> Result<String, Response> {
    let Some((owner, page)) = find_ig(world, ig_user) else {
        return Err(bad_param("Unknown Instagram user."));
    };
    if !may_act_for(grant, &owner, &page.id) {
        return Err(permission("The token cannot act for this Instagram account."));
    }
    if !grant.scopes.iter().any(|s| s == "instagram_content_publish") {
        return Err(permission("The instagram_content_publish permission is required."));
    }
    // "If the app user was granted a role via the Business Manager on the Page connected to the
    // targeted IG User, you will also need one of: ads_management, ads_read" (Meta's
    // content-publishing guide; business_management in its current copy; F2).
    let via_business = page.business.is_some();
    let allowed = ["ads_management", "ads_read", "business_management"];
    if via_business && !grant.scopes.iter().any(|s| allowed.contains(&s.as_str())) {
        return Err(permission(
            "The Page's role comes through Business Manager: ads_management, ads_read or business_management is required.",
        ));
    }
    Ok(owner)
}

fn container_status(container: &Container, now: i64) -> &'static str {
    if container.published {
        "PUBLISHED"
    } else if container.failed {
        "ERROR"
    } else if now > container.created_at + CONTAINER_TTL {
        "EXPIRED"
    } else if container.polls_left > 0 {
        "IN_PROGRESS"
    } else {
        "FINISHED"
    }
}

fn ig_container(world: &mut World, grant: &Grant, ig_user: &str, params: &HashMap<String, String>) -> Response {
    if let Err(response) = ig_access(world, grant, ig_user) {
        return response;
    }
    let caption = params.get("caption").cloned().unwrap_or_default();
    if caption.chars().count() > IG_CAPTION_MAX {
        return bad_param("The caption is longer than 2,200 characters.");
    }
    if caption.matches('#').count() > 30 {
        return bad_param("The caption has more than 30 hashtags.");
    }
    let carousel_item = truthy(params.get("is_carousel_item"), false);
    let now = world.now();
    let (kind, media_url, polls) = match params.get("media_type").map(String::as_str) {
        // A single image omits media_type.
        None => {
            let Some(url) = params.get("image_url") else { return bad_param("The parameter image_url is required.") };
            // "JPEG is the only image format supported": Instagram fetches the file and judges
            // its bytes, not its name (F15); the sandbox can fetch only its own media.
            if crate::control::media_format(url) != Some("jpeg") {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    9004,
                    Some(2207052),
                    "Only photo or video can be accepted as media type.",
                );
            }
            // How many status checks an image stays IN_PROGRESS (`ig_image_polls`, default 1).
            (ContainerKind::Image, url.clone(), limit(world, "ig_image_polls", 1))
        }
        Some("REELS") => {
            let Some(url) = params.get("video_url") else { return bad_param("The parameter video_url is required.") };
            (ContainerKind::Reels, url.clone(), 3)
        }
        Some("STORIES") => {
            let Some(url) = params.get("image_url").or(params.get("video_url")) else {
                return bad_param("The parameter image_url or video_url is required.");
            };
            (ContainerKind::Stories, url.clone(), 1)
        }
        Some("CAROUSEL") => {
            let children: Vec<String> = params
                .get("children")
                .map(|c| {
                    c.trim_matches(['[', ']'])
                        .split(',')
                        .map(|s| s.trim().trim_matches('"').to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            if children.len() < 2 || children.len() > IG_CAROUSEL_MAX {
                return bad_param("A carousel needs 2 to 10 children.");
            }
            for child in &children {
                let ok = world
                    .meta
                    .containers
                    .get(child)
                    .is_some_and(|c| c.ig_user == ig_user && c.carousel_item && !c.published);
                if !ok {
                    return bad_param(&format!("Invalid carousel child: {child}"));
                }
            }
            (ContainerKind::Carousel(children), String::new(), 1)
        }
        Some(other) => {
            return bad_param(&format!(
                "The media_type {other} is not supported; use CAROUSEL, REELS or STORIES, or omit it for an image."
            ));
        }
    };
    let failed = media_url.contains("/broken");
    let id = world.numeric_id(17);
    world.meta.containers.insert(
        id.clone(),
        Container {
            ig_user: ig_user.to_owned(),
            kind,
            carousel_item,
            caption,
            media_url,
            created_at: now,
            polls_left: polls,
            failed,
            published: false,
        },
    );
    Json(json!({ "id": id })).into_response()
}

fn publishes_in_window(world: &mut World, ig_user: &str) -> usize {
    let since = world.now() - 86_400;
    let list = world.meta.publishes.entry(ig_user.to_owned()).or_default();
    list.retain(|t| *t > since);
    list.len()
}

fn ig_publish(world: &mut World, grant: &Grant, ig_user: &str, params: &HashMap<String, String>) -> Response {
    if let Err(response) = ig_access(world, grant, ig_user) {
        return response;
    }
    let Some(creation_id) = params.get("creation_id").cloned() else {
        return bad_param("The parameter creation_id is required.");
    };
    let now = world.now();
    let Some(container) =
        world.meta.containers.get(&creation_id).filter(|c| c.ig_user == ig_user && !c.carousel_item).cloned()
    else {
        return graph_error(StatusCode::BAD_REQUEST, 100, Some(2207001), "The media could not be found.");
    };
    let children_ready = match &container.kind {
        ContainerKind::Carousel(children) => children
            .iter()
            .all(|c| world.meta.containers.get(c).is_some_and(|c| container_status(c, now) == "FINISHED")),
        _ => true,
    };
    match container_status(&container, now) {
        "FINISHED" if children_ready => {}
        "PUBLISHED" => {
            return graph_error(StatusCode::BAD_REQUEST, 100, Some(2207035), "The media has already been published.");
        }
        "EXPIRED" => {
            return graph_error(StatusCode::BAD_REQUEST, 100, Some(2207008), "The media container has expired.");
        }
        "ERROR" => {
            return graph_error(StatusCode::BAD_REQUEST, 100, Some(2207026), "The media could not be processed.");
        }
        // Still IN_PROGRESS (or a carousel child is): "The media is not ready for publishing".
        _ => return graph_error(StatusCode::BAD_REQUEST, 9007, Some(2207027), "Media ID is not available"),
    }
    let quota = limit(world, "ig_quota", IG_QUOTA) as usize;
    if publishes_in_window(world, ig_user) >= quota {
        return graph_error(
            StatusCode::BAD_REQUEST,
            9,
            Some(2207042),
            "You have reached the maximum number of posts allowed within a 24 hour period.",
        );
    }
    world.meta.publishes.entry(ig_user.to_owned()).or_default().push(now);
    let media: Vec<String> = match &container.kind {
        ContainerKind::Carousel(children) => {
            children.iter().filter_map(|c| world.meta.containers.get(c).map(|c| c.media_url.clone())).collect()
        }
        _ => vec![container.media_url.clone()],
    };
    if let Some(stored) = world.meta.containers.get_mut(&creation_id) {
        stored.published = true;
    }
    let id = world.numeric_id(17);
    world.posts.push(Post {
        platform: P,
        account: ig_user.to_owned(),
        id: id.clone(),
        text: container.caption,
        media,
        created_at: now,
    });
    Json(json!({ "id": id })).into_response()
}

/// `GET /{ig-user-id}/media`: the account's published media, newest first, from `since` (Unix
/// seconds), with the fields asked for among `id`, `caption`, `permalink` and `timestamp` (the
/// IG User Media edge, Graph's spec; it lists what the read lag lets show).
fn ig_media(world: &mut World, grant: &Grant, ig_user: &str, q: &HashMap<String, String>) -> Response {
    if let Err(response) = ig_access(world, grant, ig_user) {
        return response;
    }
    let since = q.get("since").and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MIN);
    let fields: Vec<&str> = q.get("fields").map(|f| f.split(',').collect()).unwrap_or_else(|| vec!["id"]);
    let mine = |p: &Post| p.platform == P && p.account == ig_user && p.created_at >= since;
    let link = format!("https://graph.facebook.com/{ig_user}/media");
    graph_listing(world, mine, q, &link, |p| {
        let mut media = serde_json::Map::new();
        for field in &fields {
            let value = match *field {
                "id" => json!(p.id),
                "caption" => json!(p.text),
                "permalink" => json!(format!("https://www.instagram.com/p/{}/", p.id)),
                "timestamp" => json!(crate::state::rfc3339(p.created_at)),
                _ => continue,
            };
            media.insert((*field).to_owned(), value);
        }
        Value::Object(media)
    })
}

fn publishing_limit(world: &mut World, grant: &Grant, ig_user: &str) -> Response {
    if let Err(response) = ig_access(world, grant, ig_user) {
        return response;
    }
    let used = publishes_in_window(world, ig_user);
    let quota = limit(world, "ig_quota", IG_QUOTA);
    Json(json!({ "data": [{ "quota_usage": used, "config": { "quota_total": quota, "quota_duration": 86_400 } }] }))
        .into_response()
}
