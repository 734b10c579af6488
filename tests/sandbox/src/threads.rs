//! Threads (Meta): the Authorization Window, short-lived tokens exchanged for long-lived ones
//! (`th_exchange_token`) and refreshed (`th_refresh_token`), the profile, containers (`TEXT`,
//! `IMAGE`, `CAROUSEL`; status; `threads_publish`), the 250-post quota
//! (`threads_publishing_limit`), the profile's threads and their deletion; Graph error objects.
//!
//! Sources, all developers.facebook.com/documentation/threads/…: get-started,
//! get-started/get-access-tokens-and-permissions, get-started/long-lived-tokens, posts, overview,
//! posts/delete-posts, troubleshooting; each behaviour is a row of docs/sandbox.md's ledger.
//!
//! | prefix | stands for |
//! |---|---|
//! | `/threads/web` | `https://threads.com` (the Authorization Window) |
//! | `/threads/graph` | `https://graph.threads.net` (tokens, `v1.0` API) |

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::consent::{self, Code, Flow, Pending, with_query};
use crate::meta::{bad_param, graph_error, graph_listing, invalid_token, params};
use crate::state::{Grant, GrantKind, Platform, Post, Shared, World};

const P: Platform = Platform::Threads;
const VERSION: &str = "v1.0";
/// Authorization codes are single-use; the sandbox lets them live ten minutes, as Meta's do.
const CODE_TTL: i64 = 600;
/// "Short-lived … valid for one hour"; long-lived "valid for 60 days" (`expires_in` 5183944).
const SHORT_TTL: i64 = 3600;
const LONG_TTL: i64 = 5_183_944;
/// "Long-lived tokens … can be refreshed as long as they are at least 24 hours old".
const REFRESH_MIN_AGE: i64 = 86_400;
/// "Threads profiles are limited to 250 API-published posts within a 24-hour moving period."
pub const QUOTA: u32 = 250;
/// "Text posts are limited to 500 characters"; emojis count as their UTF-8 bytes.
const TEXT_MAX: usize = 500;
/// Carousels: 2 to 20 items.
const CAROUSEL_MIN: usize = 2;
const CAROUSEL_MAX: usize = 20;
/// "The container was not published within 24 hours and has expired."
const CONTAINER_TTL: i64 = 86_400;
/// "The delete endpoint has a rate limit of 100 deletes per day per account."
const DELETES_PER_DAY: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Text,
    Image,
    Carousel(Vec<String>),
}

#[derive(Debug, Clone)]
struct Container {
    user: String,
    kind: Kind,
    carousel_item: bool,
    text: String,
    media_url: String,
    created_at: i64,
    /// Status checks left before processing finishes.
    polls_left: u32,
    failed: bool,
    published: bool,
}

#[derive(Default)]
pub struct ThreadsWorld {
    codes: HashMap<String, Code>,
    /// Short-lived tokens (exchangeable) and long-lived ones (refreshable).
    short: HashSet<String>,
    long: HashSet<String>,
    containers: HashMap<String, Container>,
    /// Publishes per user, for the rolling 24 h quota.
    publishes: HashMap<String, Vec<i64>>,
    deletes: HashMap<String, Vec<i64>>,
    /// Overrides: `quota`, `image_polls` (status checks an image stays IN_PROGRESS, default 0).
    pub limits: HashMap<String, u32>,
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/threads/web/oauth/authorize", get(authorize))
        .route("/threads/graph/oauth/access_token", get(code_exchange).post(code_exchange))
        .route("/threads/graph/access_token", get(long_lived))
        .route("/threads/graph/refresh_access_token", get(refresh))
        .route("/threads/graph/{version}/{node}", get(node).post(node_post).delete(node_delete))
        .route("/threads/graph/{version}/{node}/{edge}", get(edge).post(edge_post))
}

fn permission(message: &str) -> Response {
    graph_error(StatusCode::FORBIDDEN, 10, None, &format!("(#10) {message}"))
}

fn limit(world: &World, key: &str, default: u32) -> u32 {
    world.threads.limits.get(key).copied().unwrap_or(default)
}

fn secret_ok(world: &World, client_id: &str, secret: &str) -> bool {
    world.app(P, client_id).is_some_and(|a| bool::from(a.client_secret.as_bytes().ct_eq(secret.as_bytes())))
}

// ---------------------------------------------------------------------------------------------
// Authorization

async fn authorize(State(sandbox): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut world = sandbox.world();
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let Some(app) = world.app(P, &client_id).cloned() else {
        return (StatusCode::BAD_REQUEST, "Invalid platform app").into_response();
    };
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    if !app.redirect_uris.contains(&redirect_uri) {
        return (StatusCode::BAD_REQUEST, "Invalid redirect_uri").into_response();
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return (StatusCode::BAD_REQUEST, "response_type must be code").into_response();
    }
    let scopes: Vec<String> =
        q.get("scope").map(|s| s.split(',').map(|s| s.trim().to_owned()).collect()).unwrap_or_default();
    if !scopes.iter().any(|s| s == "threads_basic") {
        return (StatusCode::BAD_REQUEST, "threads_basic is required for all Threads endpoints").into_response();
    }
    let pending = Pending {
        platform: P,
        client_id,
        scopes,
        flow: Flow::Threads { redirect_uri, state: q.get("state").cloned() },
    };
    consent::show(&mut world, pending)
}

/// Back to the app with a code (or the denial), and the `#_` Threads appends to the redirect.
pub fn complete_consent(world: &mut World, pending: Pending, user_id: &str, approve: bool) -> String {
    let Flow::Threads { redirect_uri, state } = pending.flow else { return String::new() };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code = world.token("thcode_");
    if approve {
        let expires_at = world.now() + CODE_TTL;
        world.threads.codes.insert(
            code.clone(),
            Code::approved((pending.client_id, pending.scopes), &redirect_uri, user_id, None, expires_at),
        );
        pairs.push(("code", &code));
    } else {
        pairs.extend([
            ("error", "access_denied"),
            ("error_reason", "user_denied"),
            ("error_description", "The user denied your request."),
        ]);
    }
    if let Some(state) = &state {
        pairs.push(("state", state));
    }
    format!("{}#_", with_query(&redirect_uri, &pairs))
}

fn issue(world: &mut World, client_id: &str, user_id: &str, scopes: Vec<String>, ttl: i64) -> String {
    let token = world.token("TH");
    let now = world.now();
    world.grants.insert(
        token.clone(),
        Grant {
            platform: P,
            client_id: client_id.to_owned(),
            user_id: user_id.to_owned(),
            scopes,
            expires_at: Some(now + ttl),
            issued_at: now,
            revoked: false,
            kind: GrantKind::Access,
        },
    );
    token
}

/// `POST /oauth/access_token` (`client_id`, `client_secret`, `code`, `grant_type`,
/// `redirect_uri`) → `{"access_token", "user_id"}`, a short-lived token.
async fn code_exchange(
    State(sandbox): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = params(&query, &headers, &body);
    let mut world = sandbox.world();
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if !secret_ok(&world, &client_id, q.get("client_secret").map(String::as_str).unwrap_or_default()) {
        return graph_error(StatusCode::BAD_REQUEST, 101, None, "Error validating client secret.");
    }
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return bad_param("grant_type must be authorization_code");
    }
    let now = world.now();
    let Some(code) = q.get("code").and_then(|c| world.threads.codes.get_mut(c)) else {
        return graph_error(StatusCode::BAD_REQUEST, 100, Some(36009), "Invalid verification code format.");
    };
    if code.used || code.expires_at <= now {
        code.used = true;
        return graph_error(StatusCode::BAD_REQUEST, 100, Some(36009), "This authorization code has been used.");
    }
    code.used = true;
    if code.client_id != client_id || q.get("redirect_uri") != Some(&code.redirect_uri) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        );
    }
    let code = code.clone();
    let token = issue(&mut world, &client_id, &code.user_id, code.scopes, SHORT_TTL);
    world.threads.short.insert(token.clone());
    Json(json!({ "access_token": token, "user_id": code.user_id.parse::<u64>().unwrap_or_default() })).into_response()
}

/// `GET /access_token?grant_type=th_exchange_token&client_secret=…&access_token=<short-lived>`.
async fn long_lived(State(sandbox): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut world = sandbox.world();
    let grant = match token_grant(&world, &q, "th_exchange_token", |threads, token| threads.short.contains(token)) {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    if !secret_ok(&world, &grant.client_id, q.get("client_secret").map(String::as_str).unwrap_or_default()) {
        return graph_error(StatusCode::BAD_REQUEST, 101, None, "Error validating client secret.");
    }
    long_lived_answer(&mut world, grant)
}

/// The live grant of the `access_token` a `grant_type` exchange presents, which must be of the
/// kind `kind` says (short-lived to exchange, long-lived to refresh).
fn token_grant(
    world: &World,
    q: &HashMap<String, String>,
    grant_type: &str,
    kind: fn(&ThreadsWorld, &str) -> bool,
) -> Result<Grant, Response> {
    if q.get("grant_type").map(String::as_str) != Some(grant_type) {
        return Err(bad_param(&format!("grant_type must be {grant_type}")));
    }
    let token = q.get("access_token").cloned().unwrap_or_default();
    let grant = live(world, &token)?;
    if !kind(&world.threads, &token) {
        return Err(bad_param(&format!("This token cannot be used with {grant_type}.")));
    }
    Ok(grant)
}

/// A new 60-day token for `grant`'s user, as both long-lived answers give it.
fn long_lived_answer(world: &mut World, grant: Grant) -> Response {
    let long = issue(world, &grant.client_id, &grant.user_id, grant.scopes, LONG_TTL);
    world.threads.long.insert(long.clone());
    Json(json!({ "access_token": long, "token_type": "bearer", "expires_in": LONG_TTL })).into_response()
}

/// `GET /refresh_access_token?grant_type=th_refresh_token&access_token=<long-lived>`: at least a
/// day old and unexpired; a new 60-day token (the old one keeps working until it expires).
async fn refresh(State(sandbox): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut world = sandbox.world();
    let grant = match token_grant(&world, &q, "th_refresh_token", |threads, token| threads.long.contains(token)) {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    // The message is the sandbox's own: Meta documents the rule, not its error.
    if world.now() - grant.issued_at < REFRESH_MIN_AGE {
        return bad_param("The access token must be at least 24 hours old to be refreshed.");
    }
    long_lived_answer(&mut world, grant)
}

/// The token's grant: known, not revoked (458), not expired (463).
fn live(world: &World, token: &str) -> Result<Grant, Response> {
    let Some(grant) = world.grants.get(token).filter(|g| g.platform == P) else {
        return Err(invalid_token(None));
    };
    if grant.revoked {
        return Err(invalid_token(Some(458)));
    }
    if grant.expires_at.is_some_and(|t| t <= world.now()) {
        return Err(invalid_token(Some(463)));
    }
    Ok(grant.clone())
}

// ---------------------------------------------------------------------------------------------
// The API

/// The caller's grant from its `access_token` parameter, on a version Threads serves.
fn caller(world: &World, version: &str, q: &HashMap<String, String>) -> Result<Grant, Response> {
    if version != VERSION {
        return Err(graph_error(StatusCode::BAD_REQUEST, 2500, None, &format!("Unknown path components: /{version}")));
    }
    let Some(token) = q.get("access_token") else {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            104,
            None,
            "An access token is required to request this resource.",
        ));
    };
    live(world, token)
}

/// A node or edge of the token's own user: `me` or its id.
fn own(grant: &Grant, node: &str) -> Result<(), Response> {
    if node == "me" || node == grant.user_id {
        Ok(())
    } else {
        Err(permission("The token cannot act for this Threads user."))
    }
}

fn scoped(grant: &Grant, scope: &str) -> Result<(), Response> {
    if grant.scopes.iter().any(|s| s == scope) {
        Ok(())
    } else {
        Err(permission(&format!("The {scope} permission is required.")))
    }
}

type Answer = Result<Response, Response>;

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(|response| response)
}

async fn node(
    State(sandbox): State<Shared>,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = sandbox.world();
    answer((|| {
        let grant = caller(&world, &version, &q)?;
        if node == "me" || node == grant.user_id {
            let user = world.user(P, &grant.user_id).cloned().ok_or_else(|| invalid_token(None))?;
            return Ok(Json(json!({ "id": user.id, "username": user.username, "name": user.name })).into_response());
        }
        let now = world.now();
        let container = world.threads.containers.get_mut(&node).filter(|c| c.user == grant.user_id);
        let Some(container) = container else {
            return Err(bad_param(&format!("Unsupported get request. Object with ID '{node}' does not exist")));
        };
        if container.polls_left > 0 {
            container.polls_left -= 1;
        }
        let container = container.clone();
        let status = status(&container, now);
        let mut body = json!({ "id": node, "status": status });
        if status == "ERROR" {
            body["error_message"] = json!("FAILED_DOWNLOADING_IMAGE");
        }
        Ok(Json(body).into_response())
    })())
}

fn status(container: &Container, now: i64) -> &'static str {
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

async fn node_post(Path((_version, node)): Path<(String, String)>) -> Response {
    bad_param(&format!("Unsupported post request. Object with ID '{node}' does not support this operation"))
}

/// `DELETE /{threads-media-id}` (`threads_delete`): `{"success": true, "deleted_id"}`.
async fn node_delete(
    State(sandbox): State<Shared>,
    Path((version, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = sandbox.world();
    answer((|| {
        let grant = caller(&world, &version, &q)?;
        scoped(&grant, "threads_delete")?;
        let since = world.now() - 86_400;
        let deletes = world.threads.deletes.entry(grant.user_id.clone()).or_default();
        deletes.retain(|t| *t > since);
        if deletes.len() >= DELETES_PER_DAY {
            return Err(graph_error(StatusCode::BAD_REQUEST, 4, None, "(#4) Delete limit reached for today."));
        }
        let before = world.posts.len();
        world.posts.retain(|p| !(p.platform == P && p.id == node && p.account == grant.user_id));
        if world.posts.len() == before {
            return Err(bad_param(&format!("Object with ID '{node}' does not exist")));
        }
        let now = world.now();
        world.threads.deletes.entry(grant.user_id).or_default().push(now);
        Ok(Json(json!({ "success": true, "deleted_id": node })).into_response())
    })())
}

async fn edge(
    State(sandbox): State<Shared>,
    Path((version, node, edge)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = sandbox.world();
    answer((|| {
        let grant = caller(&world, &version, &q)?;
        own(&grant, &node)?;
        let user = grant.user_id.clone();
        match edge.as_str() {
            "threads_publishing_limit" => {
                scoped(&grant, "threads_content_publish")?;
                let used = publishes_in_window(&mut world, &user);
                let quota = limit(&world, "quota", QUOTA);
                Ok(Json(json!({ "data": [{ "quota_usage": used, "config": { "quota_total": quota, "quota_duration": 86_400 } }] }))
                    .into_response())
            }
            "threads" => {
                let since: i64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
                let username = world.user(P, &user).map(|u| u.username.clone()).unwrap_or_default();
                let mine = |p: &Post| p.platform == P && p.account == user && p.created_at >= since;
                let link = format!("https://graph.threads.net/v1.0/{user}/threads");
                Ok(graph_listing(&world, mine, &q, &link, |p| {
                    json!({
                        "id": p.id,
                        "text": p.text,
                        "permalink": format!("https://www.threads.com/@{username}/post/{}", p.id),
                        "timestamp": crate::state::rfc3339(p.created_at),
                    })
                }))
            }
            _ => Err(bad_param(&format!("Tried accessing nonexisting field ({edge})"))),
        }
    })())
}

async fn edge_post(
    State(sandbox): State<Shared>,
    Path((version, node, edge)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = params(&query, &headers, &body);
    let mut world = sandbox.world();
    answer((|| {
        let grant = caller(&world, &version, &q)?;
        own(&grant, &node)?;
        scoped(&grant, "threads_content_publish")?;
        match edge.as_str() {
            "threads" => create(&mut world, &grant.user_id, &q),
            "threads_publish" => publish(&mut world, &grant.user_id, &q),
            _ => Err(bad_param(&format!("Unsupported post request on edge {edge}"))),
        }
    })())
}

/// The length as Threads documents it: a character each, an emoji (a code point from U+1F000, or
/// in the Miscellaneous Symbols and Dingbats blocks) its UTF-8 bytes; the sandbox counts code
/// points, so joined emoji count their joiners' bytes too.
fn length(text: &str) -> usize {
    text.chars()
        .map(
            |c| {
                if matches!(c as u32, 0x2600..=0x27BF | 0x1F000..=0x1FAFF | 0xFE0F | 0x200D) { c.len_utf8() } else { 1 }
            },
        )
        .sum()
}

fn create(world: &mut World, user: &str, q: &HashMap<String, String>) -> Answer {
    let text = q.get("text").cloned().unwrap_or_default();
    if length(&text) > TEXT_MAX {
        return Err(bad_param("The parameter text must be at most 500 characters long."));
    }
    let carousel_item = q.get("is_carousel_item").is_some_and(|v| v == "true");
    let (kind, media_url, polls) = match q.get("media_type").map(String::as_str) {
        Some("TEXT") => {
            if text.trim().is_empty() {
                return Err(bad_param("The parameter text is required for media_type TEXT."));
            }
            if carousel_item {
                return Err(bad_param("A TEXT container cannot be a carousel item."));
            }
            (Kind::Text, String::new(), 0)
        }
        Some("IMAGE") => {
            let Some(url) = q.get("image_url") else { return Err(bad_param("The parameter image_url is required.")) };
            // "Format: JPEG and PNG": Threads downloads the image and judges its bytes.
            if !matches!(crate::control::media_format(url), Some("jpeg" | "png")) {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    Some(2207052),
                    "The image format is not supported: use JPEG or PNG.",
                ));
            }
            (Kind::Image, url.clone(), limit(world, "image_polls", 0))
        }
        Some("CAROUSEL") => {
            let children: Vec<String> = q
                .get("children")
                .map(|c| c.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            if !(CAROUSEL_MIN..=CAROUSEL_MAX).contains(&children.len()) {
                return Err(bad_param("A carousel needs 2 to 20 children."));
            }
            for child in &children {
                let ok = world
                    .threads
                    .containers
                    .get(child)
                    .is_some_and(|c| c.user == user && c.carousel_item && !c.published);
                if !ok {
                    return Err(bad_param(&format!("Invalid carousel child: {child}")));
                }
            }
            (Kind::Carousel(children), String::new(), 0)
        }
        Some("VIDEO") => return Err(bad_param("The sandbox does not model video yet.")),
        _ => return Err(bad_param("The parameter media_type must be one of TEXT, IMAGE, VIDEO, CAROUSEL.")),
    };
    let failed = media_url.contains("/broken");
    let id = world.numeric_id(17);
    let now = world.now();
    world.threads.containers.insert(
        id.clone(),
        Container {
            user: user.to_owned(),
            kind,
            carousel_item,
            text,
            media_url,
            created_at: now,
            polls_left: polls,
            failed,
            published: false,
        },
    );
    Ok(Json(json!({ "id": id })).into_response())
}

fn publishes_in_window(world: &mut World, user: &str) -> usize {
    let since = world.now() - 86_400;
    let list = world.threads.publishes.entry(user.to_owned()).or_default();
    list.retain(|t| *t > since);
    list.len()
}

fn publish(world: &mut World, user: &str, q: &HashMap<String, String>) -> Answer {
    let Some(creation_id) = q.get("creation_id").cloned() else {
        return Err(bad_param("The parameter creation_id is required."));
    };
    let now = world.now();
    let Some(container) =
        world.threads.containers.get(&creation_id).filter(|c| c.user == user && !c.carousel_item).cloned()
    else {
        return Err(graph_error(StatusCode::BAD_REQUEST, 100, Some(4279009), "The media could not be found."));
    };
    let children_ready = match &container.kind {
        Kind::Carousel(children) => {
            children.iter().all(|c| world.threads.containers.get(c).is_some_and(|c| status(c, now) == "FINISHED"))
        }
        _ => true,
    };
    match status(&container, now) {
        "FINISHED" if children_ready => {}
        "PUBLISHED" => {
            return Err(graph_error(
                StatusCode::BAD_REQUEST,
                100,
                Some(4279010),
                "The media has already been published.",
            ));
        }
        "EXPIRED" => {
            return Err(graph_error(StatusCode::BAD_REQUEST, 100, Some(4279011), "The media container has expired."));
        }
        "ERROR" => {
            return Err(graph_error(StatusCode::BAD_REQUEST, 100, Some(4279012), "The media could not be processed."));
        }
        _ => {
            return Err(graph_error(
                StatusCode::BAD_REQUEST,
                24,
                Some(4279009),
                "The media is not ready for publishing.",
            ));
        }
    }
    let quota = limit(world, "quota", QUOTA) as usize;
    if publishes_in_window(world, user) >= quota {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            9,
            None,
            "You have reached the maximum number of posts allowed within a 24 hour period.",
        ));
    }
    world.threads.publishes.entry(user.to_owned()).or_default().push(now);
    let media: Vec<String> = match &container.kind {
        Kind::Carousel(children) => {
            children.iter().filter_map(|c| world.threads.containers.get(c).map(|c| c.media_url.clone())).collect()
        }
        Kind::Image => vec![container.media_url.clone()],
        Kind::Text => Vec::new(),
    };
    if let Some(stored) = world.threads.containers.get_mut(&creation_id) {
        stored.published = true;
    }
    let id = world.numeric_id(17);
    world.posts.push(Post {
        platform: P,
        account: user.to_owned(),
        id: id.clone(),
        text: container.text,
        media,
        created_at: now,
    });
    Ok(Json(json!({ "id": id })).into_response())
}
