//! Control and inspection under `/_sandbox`: register apps and users, expire or revoke grants,
//! inject faults, change budgets, move the clock, and read what was posted and called.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::faults::Fault;
use crate::state::{App, Platform, Shared, User, World};

/// The development apps' credentials (sandbox only; never real secrets).
pub mod dev {
    pub const X_CLIENT_ID: &str = "herald-dev-x";
    pub const X_CLIENT_SECRET: &str = "herald-dev-x-secret";
    pub const X_CONSUMER_KEY: &str = "herald-dev-x-consumer";
    pub const X_CONSUMER_SECRET: &str = "herald-dev-x-consumer-secret";
    pub const META_APP_ID: &str = "1234567890123456";
    pub const META_APP_SECRET: &str = "herald-dev-meta-secret";
    pub const LINKEDIN_CLIENT_ID: &str = "86heralddevli";
    pub const LINKEDIN_CLIENT_SECRET: &str = "herald-dev-linkedin-secret";
    /// The Threads app ID and secret (a Meta app with the Threads use case has its own pair).
    pub const THREADS_APP_ID: &str = "9876543210987654";
    pub const THREADS_APP_SECRET: &str = "herald-dev-threads-secret";
    pub const THREADS_WEBHOOK_VERIFY_TOKEN: &str = "herald-dev-threads-verify-token";
    /// The verify token Meta's webhook subscription check sends (set in the App Dashboard).
    pub const META_WEBHOOK_VERIFY_TOKEN: &str = "herald-dev-meta-verify-token";

    /// Herald's secrets for these apps (X, Meta, LinkedIn), as it reads them from Secrets
    /// Manager: one list for `herald dev`, the test kit and the functions the benchmarks start.
    pub fn app_secrets() -> [String; 4] {
        [
            serde_json::json!({
                "client_id": X_CLIENT_ID,
                "client_secret": X_CLIENT_SECRET,
                "consumer_key": X_CONSUMER_KEY,
                "consumer_secret": X_CONSUMER_SECRET,
            }),
            serde_json::json!({
                "app_id": META_APP_ID,
                "app_secret": META_APP_SECRET,
                "webhook_verify_token": META_WEBHOOK_VERIFY_TOKEN,
            }),
            serde_json::json!({ "client_id": LINKEDIN_CLIENT_ID, "client_secret": LINKEDIN_CLIENT_SECRET }),
            serde_json::json!({
                "app_id": THREADS_APP_ID,
                "app_secret": THREADS_APP_SECRET,
                "webhook_verify_token": THREADS_WEBHOOK_VERIFY_TOKEN,
            }),
        ]
        .map(|secret| secret.to_string())
    }
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/_sandbox", get(summary))
        .route("/_sandbox/apps", post(add_app))
        .route("/_sandbox/users", post(add_user))
        .route("/_sandbox/grants/expire", post(expire))
        .route("/_sandbox/grants/revoke", post(revoke))
        .route("/_sandbox/faults", post(add_fault).delete(clear_faults))
        .route("/_sandbox/faults/held", get(held))
        .route("/_sandbox/faults/release", post(release))
        .route("/_sandbox/limits", post(set_limit))
        .route("/_sandbox/clock/advance", post(advance_clock))
        .route("/_sandbox/read_lag", post(set_read_lag))
        .route("/_sandbox/listing_page", post(set_listing_page))
        .route("/_sandbox/posts", get(posts))
        .route("/_sandbox/calls", get(calls))
        .route("/_sandbox/spec", get(spec_ledger))
        .route("/_sandbox/media/{name}", get(media))
}

/// Apps and users for `herald dev` and quick experiments (tests register their own). The
/// credentials are the constants in [`dev`], which `herald dev` hands to Herald.
pub fn dev_fixtures(world: &mut World, herald: &str) {
    let herald = herald.trim_end_matches('/');
    let callback = |platform: &str| format!("{herald}/oauth/{platform}/callback");
    world.apps.push(App {
        platform: Platform::X,
        client_id: dev::X_CLIENT_ID.into(),
        client_secret: dev::X_CLIENT_SECRET.into(),
        redirect_uris: vec![callback("x")],
        confidential: true,
        consumer_key: Some(dev::X_CONSUMER_KEY.into()),
        consumer_secret: Some(dev::X_CONSUMER_SECRET.into()),
        refresh_tokens: false,
        access_ttl: None,
        require_app_secret: false,
    });
    world.users.push(User {
        platform: Platform::X,
        id: "2244994945".into(),
        name: "Ada Lovelace".into(),
        username: "ada".into(),
        pages: vec![],
        organizations: vec![],
    });
    world.apps.push(App {
        platform: Platform::Meta,
        client_id: dev::META_APP_ID.into(),
        client_secret: dev::META_APP_SECRET.into(),
        redirect_uris: vec![callback("facebook"), callback("instagram")],
        confidential: true,
        consumer_key: None,
        consumer_secret: None,
        refresh_tokens: false,
        access_ttl: None,
        // As Meta recommends; so every test checks Herald's proofs.
        require_app_secret: true,
    });
    world.users.push(User {
        platform: Platform::Meta,
        id: "10158000000000001".into(),
        name: "Grace Hopper".into(),
        username: String::new(),
        pages: vec![crate::state::Page {
            id: "104000000000001".into(),
            name: "Hopper Bakery".into(),
            instagram: Some(crate::state::InstagramAccount {
                id: "17841400000000001".into(),
                username: "hopperbakery".into(),
            }),
            business: None,
            client: false,
        }],
        organizations: vec![],
    });
    world.apps.push(App {
        platform: Platform::Linkedin,
        client_id: dev::LINKEDIN_CLIENT_ID.into(),
        client_secret: dev::LINKEDIN_CLIENT_SECRET.into(),
        redirect_uris: vec![callback("linkedin")],
        confidential: true,
        consumer_key: None,
        consumer_secret: None,
        refresh_tokens: true,
        access_ttl: None,
        require_app_secret: false,
    });
    world.users.push(User {
        platform: Platform::Linkedin,
        id: "yrZCpj2Z12".into(),
        name: "Katherine Johnson".into(),
        username: String::new(),
        pages: vec![],
        organizations: vec![crate::state::Organization {
            id: "2414183".into(),
            name: "Johnson Orbital".into(),
            role: "ADMINISTRATOR".into(),
        }],
    });
    world.apps.push(App::confidential(
        Platform::Threads,
        dev::THREADS_APP_ID,
        dev::THREADS_APP_SECRET,
        vec![callback("threads")],
    ));
    world.users.push(User {
        platform: Platform::Mastodon,
        id: "109300000000000001".into(),
        name: "Dorothy Vaughan".into(),
        username: "dorothy".into(),
        pages: vec![],
        organizations: vec![],
    });
    world.users.push(User {
        platform: Platform::Threads,
        id: "25100000000000001".into(),
        name: "Mary Jackson".into(),
        username: "maryjackson".into(),
        pages: vec![],
        organizations: vec![],
    });
}

async fn summary(State(sandbox): State<Shared>) -> Json<serde_json::Value> {
    let world = sandbox.world();
    let base = &sandbox.base_url;
    Json(json!({
        "platforms": {
            "x": { "web": format!("{base}/x/web"), "api": format!("{base}/x/api") },
            "meta": { "web": format!("{base}/meta/web"), "graph": format!("{base}/meta/graph") },
            "linkedin": { "www": format!("{base}/linkedin/www"), "api": format!("{base}/linkedin/api") },
            "threads": { "web": format!("{base}/threads/web"), "graph": format!("{base}/threads/graph") },
            "mastodon": { "server": format!("{base}/mastodon") },
        },
        "apps": world.apps.iter().map(|a| json!({ "platform": a.platform, "client_id": a.client_id })).collect::<Vec<_>>(),
        "users": world.users.iter().map(|u| json!({ "platform": u.platform, "id": u.id, "name": u.name })).collect::<Vec<_>>(),
        "now": world.now(),
    }))
}

async fn add_app(State(sandbox): State<Shared>, Json(app): Json<App>) -> Response {
    let mut world = sandbox.world();
    world.apps.retain(|a| !(a.platform == app.platform && a.client_id == app.client_id));
    world.apps.push(app);
    StatusCode::CREATED.into_response()
}

async fn add_user(State(sandbox): State<Shared>, Json(user): Json<User>) -> Response {
    let mut world = sandbox.world();
    world.users.retain(|u| !(u.platform == user.platform && u.id == user.id));
    world.users.push(user);
    StatusCode::CREATED.into_response()
}

/// Which grants a control call acts on: one token, or all of a user's (optionally for one app).
#[derive(Debug, Deserialize)]
struct GrantSelector {
    platform: Platform,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

impl GrantSelector {
    fn matches(&self, token: &str, grant: &crate::state::Grant) -> bool {
        grant.platform == self.platform
            && self.token.as_deref().is_none_or(|t| t == token)
            && self.user_id.as_deref().is_none_or(|u| u == grant.user_id)
            && self.client_id.as_deref().is_none_or(|c| c == grant.client_id)
            && (self.token.is_some() || self.user_id.is_some())
    }
}

/// Makes matching access tokens expire now (refresh tokens keep working).
async fn expire(State(sandbox): State<Shared>, Json(selector): Json<GrantSelector>) -> Json<serde_json::Value> {
    let mut world = sandbox.world();
    let now = world.now();
    let mut count = 0;
    for (token, grant) in world.grants.iter_mut() {
        if selector.matches(token, grant) && grant.kind == crate::state::GrantKind::Access {
            grant.expires_at = Some(now);
            count += 1;
        }
    }
    Json(json!({ "expired": count }))
}

/// Revokes every matching grant, as when the user removes the app.
async fn revoke(State(sandbox): State<Shared>, Json(selector): Json<GrantSelector>) -> Json<serde_json::Value> {
    let mut world = sandbox.world();
    let mut count = 0;
    for (token, grant) in world.grants.iter_mut() {
        if selector.matches(token, grant) {
            grant.revoked = true;
            count += 1;
        }
    }
    Json(json!({ "revoked": count }))
}

async fn add_fault(State(sandbox): State<Shared>, Json(fault): Json<Fault>) -> Response {
    sandbox.world().faults.push(fault);
    StatusCode::CREATED.into_response()
}

async fn clear_faults(State(sandbox): State<Shared>) -> Response {
    sandbox.world().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct HeldQuery {
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    at_most: Option<usize>,
}

/// Answers once at least `count` calls are held by `hang` faults (so a test knows its call
/// reached the platform), or once at most `at_most` are held or still being served after their
/// client left (a Mastodon status still being made), or 408 after 10 seconds.
async fn held(State(sandbox): State<Shared>, Query(q): Query<HeldQuery>) -> Response {
    let mut held = sandbox.held.subscribe();
    let wanted = |n: &usize| q.count.is_none_or(|count| *n >= count) && q.at_most.is_none_or(|most| *n <= most);
    let reached = tokio::time::timeout(std::time::Duration::from_secs(10), held.wait_for(wanted)).await;
    match reached {
        Ok(Ok(n)) => Json(json!({ "held": *n })).into_response(),
        _ => (StatusCode::REQUEST_TIMEOUT, Json(json!({ "held": *sandbox.held.borrow() }))).into_response(),
    }
}

/// Lets every held call go: each connection is cut before any answer.
async fn release(State(sandbox): State<Shared>) -> Json<serde_json::Value> {
    let held = *sandbox.held.borrow();
    sandbox.release.send_modify(|generation| *generation += 1);
    Json(json!({ "released": held }))
}

/// A budget override. Names: X `tweets/user`, `tweets/app`, `media/user` (with `window` seconds);
/// Meta `ig_quota`, `app_calls_per_hour`, `page_calls_per_day`; LinkedIn `member_daily`, `app_daily`;
/// Threads `quota`, `image_polls`; Mastodon `media_polls`, `calls`, `status_processing_ms`.
#[derive(Debug, Deserialize)]
struct Limit {
    platform: Platform,
    name: String,
    limit: u32,
    #[serde(default)]
    window: Option<i64>,
}

#[derive(Deserialize)]
struct ReadLag {
    seconds: i64,
}

/// How long new posts stay out of their account's listings (`{"seconds": 30}`).
async fn set_read_lag(State(sandbox): State<Shared>, Json(lag): Json<ReadLag>) -> Response {
    sandbox.world().read_lag = lag.seconds.max(0);
    Json(json!({ "read_lag": lag.seconds.max(0) })).into_response()
}

#[derive(Deserialize)]
struct ListingPage {
    posts: Option<usize>,
}

/// The most posts a page of an account's listing holds (`{"posts": 5}`; `null` for what the
/// client asks).
async fn set_listing_page(State(sandbox): State<Shared>, Json(page): Json<ListingPage>) -> Response {
    let most = page.posts.map(|n| n.max(1));
    sandbox.world().listing_page = most;
    Json(json!({ "listing_page": most })).into_response()
}

async fn set_limit(State(sandbox): State<Shared>, Json(limit): Json<Limit>) -> Response {
    let mut world = sandbox.world();
    match limit.platform {
        Platform::X if ["tweets/user", "tweets/app", "media/user"].contains(&limit.name.as_str()) => {
            let window = limit.window.unwrap_or(if limit.name.ends_with("/app") { 86_400 } else { 900 });
            world.x.budgets.insert(limit.name, crate::x::Budget { limit: limit.limit, window });
        }
        Platform::Meta
            if ["ig_quota", "app_calls_per_hour", "page_calls_per_day", "ig_image_polls"]
                .contains(&limit.name.as_str()) =>
        {
            world.meta.limits.insert(limit.name, limit.limit);
        }
        Platform::Linkedin if ["member_daily", "app_daily"].contains(&limit.name.as_str()) => {
            world.linkedin.limits.insert(limit.name, limit.limit);
        }
        Platform::Threads if ["quota", "image_polls"].contains(&limit.name.as_str()) => {
            world.threads.limits.insert(limit.name, limit.limit);
        }
        Platform::Mastodon if ["media_polls", "calls", "status_processing_ms"].contains(&limit.name.as_str()) => {
            world.mastodon.limits.insert(limit.name, limit.limit);
        }
        _ => return (StatusCode::BAD_REQUEST, "unknown limit").into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(sandbox): State<Shared>, Json(advance): Json<Advance>) -> Json<serde_json::Value> {
    let mut world = sandbox.world();
    world.clock_offset += advance.seconds;
    Json(json!({ "now": world.now() }))
}

#[derive(Debug, Deserialize)]
struct Filter {
    platform: Option<Platform>,
    account: Option<String>,
    path: Option<String>,
}

async fn posts(State(sandbox): State<Shared>, Query(filter): Query<Filter>) -> Json<serde_json::Value> {
    let world = sandbox.world();
    let posts: Vec<_> = world
        .posts
        .iter()
        .filter(|p| filter.platform.is_none_or(|x| x == p.platform))
        .filter(|p| filter.account.as_deref().is_none_or(|a| a == p.account))
        .collect();
    Json(json!({ "posts": posts }))
}

async fn calls(State(sandbox): State<Shared>, Query(filter): Query<Filter>) -> Json<serde_json::Value> {
    let world = sandbox.world();
    let calls: Vec<_> = world
        .calls
        .iter()
        .filter(|c| filter.platform.is_none_or(|x| x == c.platform))
        .filter(|c| filter.path.as_deref().is_none_or(|p| c.path.starts_with(p)))
        .collect();
    Json(json!({ "calls": calls }))
}

/// How each X call stood against X's OpenAPI document (`crate::spec`): by operation, how many
/// were validated, carried no JSON body, or were on a path the document lacks.
async fn spec_ledger(State(sandbox): State<Shared>) -> Json<serde_json::Value> {
    let world = sandbox.world();
    Json(json!({ "x": world.x_spec, "meta": world.meta_spec, "mastodon": world.mastodon_spec }))
}

/// What `/_sandbox/media/{name}` serves: by the name's extension (`.png`, `.gif`, else JPEG),
/// unless `?type=jpeg|png|gif` says otherwise, so a test can serve a mislabelled file or one
/// whose URL names no format; `?size=N` pads it to N bytes. A name containing `missing` answers
/// 404.
fn served(name: &str, kind: Option<&str>) -> &'static str {
    let lower = name.to_ascii_lowercase();
    match kind {
        Some("png") => "png",
        Some("gif") => "gif",
        Some(_) => "jpeg",
        None if lower.ends_with(".png") => "png",
        None if lower.ends_with(".gif") => "gif",
        None => "jpeg",
    }
}

/// The format the sandbox's own media URL `url` holds, as a platform that fetches media would
/// find it (Instagram's `image_url`); `None` for any other URL, which the sandbox cannot fetch.
pub fn media_format(url: &str) -> Option<&'static str> {
    let url = url::Url::parse(url).ok()?;
    let name = url.path().strip_prefix("/_sandbox/media/")?;
    if name.contains("missing") {
        return None;
    }
    let kind = url.query_pairs().find(|(k, _)| k == "type").map(|(_, v)| v.into_owned());
    Some(served(name, kind.as_deref()))
}

#[derive(serde::Deserialize)]
struct MediaQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Pads the file to this many bytes (a large image, for size limits).
    size: Option<usize>,
}

async fn media(
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<MediaQuery>,
) -> Response {
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0xFF, 0xD9];
    const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0, b'I', b'E', b'N', b'D'];
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    if name.contains("missing") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let bytes = match served(&name, q.kind.as_deref()) {
        "png" => PNG,
        "gif" => GIF,
        _ => JPEG,
    };
    let mut bytes = bytes.to_vec();
    bytes.resize(q.size.unwrap_or(0).clamp(bytes.len(), 16 * 1024 * 1024), 0);
    // The content type a careless server sends: the name's, whatever the bytes are.
    let content_type = format!("image/{}", served(&name, None));
    ([(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response()
}
