//! LinkedIn: OAuth 2.0 code flow (no PKCE for web apps), 60-day access tokens, refresh tokens only
//! for apps enabled for them (365 days from the first grant), `/v2/userinfo`, the versioned
//! `/rest/posts` (`LinkedIn-Version`, `X-Restli-Protocol-Version: 2.0.0`, 201 with `x-restli-id`),
//! the Images API (`initializeUpload` then PUT), daily member and app limits resetting at midnight
//! UTC, and LinkedIn's error bodies.
//!
//! Sources: platforms.md §3 and platforms-crosscheck.md §10–12.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::consent::{self, Flow, Pending, with_query};
use crate::state::{Grant, GrantKind, Platform, Post, Shared, World};

const P: Platform = Platform::Linkedin;
const CODE_TTL: i64 = 1800;
/// Access tokens: 60 days (`expires_in` 5184000).
const ACCESS_TTL: i64 = 5_184_000;
/// Programmatic refresh tokens: 365 days, fixed from the first authorization.
const REFRESH_TTL: i64 = 31_536_000;
/// Versions the sandbox accepts (`YYYYMM`); anything else is answered with 426.
/// LinkedIn's released versions and their sunsets where LinkedIn published them
/// (learn.microsoft.com/linkedin/marketing/integrations/migrations: 202511 on 2026-11-16, 202601 on
/// 2027-01-15, 202602 on 2027-02-15, 202603 on 2027-03-16; 202604 on 2027-04-15 per n8n #39065;
/// 202605 per the api-evangelist changelog; 202609 the newest seen). A version is served from the
/// first of its month (the day is not published) until its sunset; where none is published, the
/// 15th of the same month a year on ("supported for a minimum of one year", the versioning page).
pub const VERSIONS: &[(&str, Option<&str>)] = &[
    ("202511", Some("2026-11-16")),
    ("202601", Some("2027-01-15")),
    ("202602", Some("2027-02-15")),
    ("202603", Some("2027-03-16")),
    ("202604", Some("2027-04-15")),
    ("202605", None),
    ("202606", None),
    ("202607", None),
    ("202609", None),
];

/// Whether LinkedIn serves `version` (`YYYYMM`) at `now` (Unix seconds).
pub fn version_active(version: &str, now: i64) -> bool {
    let Some((_, sunset)) = VERSIONS.iter().find(|(v, _)| *v == version) else { return false };
    let (Ok(year), Ok(month)) = (version[..4].parse::<i32>(), version[4..].parse::<u8>()) else { return false };
    let Ok(month) = time::Month::try_from(month) else { return false };
    let day =
        |y: i32, d: u8| time::Date::from_calendar_date(y, month, d).map(|d| d.midnight().assume_utc().unix_timestamp());
    let released = day(year, 1);
    let sunset = match sunset {
        Some(date) => time::Date::parse(date, time::macros::format_description!("[year]-[month]-[day]"))
            .map(|d| d.midnight().assume_utc().unix_timestamp())
            .ok(),
        None => day(year + 1, 15).ok(),
    };
    matches!((released, sunset), (Ok(from), Some(until)) if from <= now && now < until)
}
const COMMENTARY_MAX: usize = 3000;
/// Widely cited Share on LinkedIn limits: 150 per member per day, 100,000 per app per day.
pub const MEMBER_DAILY: u32 = 150;
pub const APP_DAILY: u32 = 100_000;
const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "w_member_social",
    "r_member_social",
    "w_organization_social",
    "r_organization_social",
    "rw_organization_admin",
];

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    user_id: String,
    scopes: Vec<String>,
    expires_at: i64,
}

#[derive(Debug, Clone)]
struct Image {
    owner: String,
    uploaded: bool,
}

#[derive(Default)]
pub struct LinkedinWorld {
    codes: HashMap<String, Code>,
    /// Image URN → upload state; upload tokens map to URNs.
    images: HashMap<String, Image>,
    uploads: HashMap<String, String>,
    /// Calls per day (UTC) per member and per app: `(day, count)`.
    daily: HashMap<String, (i64, u32)>,
    /// Overrides: `member_daily`, `app_daily`.
    pub limits: HashMap<String, u32>,
    /// Each post's `commentary` as it was sent (little text), which the finder answers with.
    commentary: HashMap<String, String>,
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/linkedin/www/oauth/v2/authorization", get(authorization))
        .route("/linkedin/www/oauth/v2/accessToken", post(access_token))
        .route("/linkedin/www/oauth/v2/introspectToken", post(introspect))
        .route("/linkedin/api/v2/userinfo", get(userinfo))
        .route("/linkedin/api/rest/posts", post(create_post).get(find_posts))
        .route("/linkedin/api/rest/posts/{urn}", axum::routing::delete(delete_post))
        .route("/linkedin/api/rest/images", post(images_action))
        .route("/linkedin/api/rest/organizationAcls", get(organization_acls))
        .route("/linkedin/api/rest/organizations/{id}", get(organization))
        .route("/linkedin/upload/{token}", put(upload))
}

/// LinkedIn's error body: `{"status", "serviceErrorCode"?, "code"?, "message"}`.
pub fn li_error(status: StatusCode, code: Option<&str>, service_code: Option<u32>, message: &str) -> Response {
    let mut body = json!({ "status": status.as_u16(), "message": message });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    if let Some(service_code) = service_code {
        body["serviceErrorCode"] = json!(service_code);
    }
    (status, Json(body)).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error, "error_description": description }))).into_response()
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0

async fn authorization(State(sandbox): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut world = sandbox.world();
    let Some(app) = q.get("client_id").and_then(|id| world.app(P, id)).cloned() else {
        return (StatusCode::BAD_REQUEST, Html("<h1>Bummer, something went wrong.</h1><p>Invalid client_id.</p>"))
            .into_response();
    };
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| app.redirect_uris.contains(r)).cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            Html("<h1>Bummer, something went wrong.</h1><p>The redirect_uri does not match the registered value.</p>"),
        )
            .into_response();
    };
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = q.get("state") {
            pairs.push(("state", state.as_str()));
        }
        consent::redirect(&with_query(&redirect_uri, &pairs))
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail("invalid_request", "response_type must be code");
    }
    let Some(state) = q.get("state").cloned() else {
        return fail("invalid_request", "state is required");
    };
    // The official client joins scopes with commas; the docs say spaces. Both are accepted.
    let scopes: Vec<String> = q
        .get("scope")
        .map(|s| s.split([' ', ',']).filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return fail("invalid_scope", "The requested permission scope is not valid");
    }
    consent::show(
        &mut world,
        Pending { platform: P, client_id: app.client_id, scopes, flow: Flow::Linkedin { redirect_uri, state } },
    )
}

pub fn complete_consent(world: &mut World, pending: Pending, user_id: &str, approve: bool) -> String {
    let Flow::Linkedin { redirect_uri, state } = pending.flow else { return String::new() };
    if !approve {
        return with_query(
            &redirect_uri,
            &[
                ("error", "user_cancelled_authorize"),
                ("error_description", "The user cancelled the authorization"),
                ("state", &state),
            ],
        );
    }
    let code = world.token("AQT");
    let expires_at = world.now() + CODE_TTL;
    world.linkedin.codes.insert(
        code.clone(),
        Code {
            client_id: pending.client_id,
            redirect_uri: redirect_uri.clone(),
            user_id: user_id.to_owned(),
            scopes: pending.scopes,
            expires_at,
        },
    );
    with_query(&redirect_uri, &[("code", &code), ("state", &state)])
}

fn client_ok(world: &World, form: &HashMap<String, String>) -> Option<String> {
    let id = form.get("client_id")?;
    let secret = form.get("client_secret")?;
    let app = world.app(P, id)?;
    bool::from(app.client_secret.as_bytes().ct_eq(secret.as_bytes())).then(|| app.client_id.clone())
}

fn insert_grant(
    world: &mut World,
    client_id: &str,
    user_id: &str,
    scopes: &[String],
    ttl: i64,
    kind: GrantKind,
) -> String {
    let token = world.token(if kind == GrantKind::Access { "AQV" } else { "AQX" });
    let now = world.now();
    world.grants.insert(
        token.clone(),
        Grant {
            platform: P,
            client_id: client_id.to_owned(),
            user_id: user_id.to_owned(),
            scopes: scopes.to_vec(),
            expires_at: Some(now + ttl),
            issued_at: now,
            revoked: false,
            kind,
        },
    );
    token
}

async fn access_token(State(sandbox): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return oauth_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut world = sandbox.world();
    let Some(client_id) = client_ok(&world, &form) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client", "error_description": "Client authentication failed" })),
        )
            .into_response();
    };
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let mut response = match grant_type.as_str() {
        "authorization_code" => {
            let Some(code) = form.get("code").and_then(|c| world.linkedin.codes.remove(c)) else {
                return oauth_error("invalid_request", "Unable to retrieve access token: authorization code not found");
            };
            if code.expires_at <= world.now() || code.client_id != client_id {
                return oauth_error("invalid_request", "Unable to retrieve access token: authorization code expired");
            }
            if form.get("redirect_uri") != Some(&code.redirect_uri) {
                return oauth_error(
                    "invalid_request",
                    "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired. Or external member binding exists",
                );
            }
            issue(&mut world, &client_id, &code.user_id, &code.scopes, None)
        }
        "refresh_token" => {
            let Some(value) = form.get("refresh_token") else {
                return oauth_error("invalid_request", "A required parameter \"refresh_token\" is missing");
            };
            let Some(grant) = world
                .live_grant(P, value)
                .filter(|g| matches!(g.kind, GrantKind::Refresh { .. }) && g.client_id == client_id)
                .cloned()
            else {
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            };
            issue(
                &mut world,
                &client_id,
                &grant.user_id,
                &grant.scopes,
                Some((value.clone(), grant.expires_at.unwrap_or(0))),
            )
        }
        _ => oauth_error("unsupported_grant_type", "The grant type is not supported"),
    };
    response.extensions_mut().insert(crate::state::CallNote(format!("grant_type={grant_type}")));
    response
}

/// Issues a 60-day access token, and a refresh token when the app may have one. A refresh keeps
/// the refresh token and its fixed expiry.
fn issue(
    world: &mut World,
    client_id: &str,
    user_id: &str,
    scopes: &[String],
    refreshing: Option<(String, i64)>,
) -> Response {
    let ttl = world.app(P, client_id).and_then(|a| a.access_ttl).unwrap_or(ACCESS_TTL);
    let refresh_enabled = world.app(P, client_id).is_some_and(|a| a.refresh_tokens);
    let access = insert_grant(world, client_id, user_id, scopes, ttl, GrantKind::Access);
    let mut body = json!({ "access_token": access, "expires_in": ttl, "scope": scopes.join(",") });
    if refresh_enabled {
        let now = world.now();
        let (refresh, expires_at) = match refreshing {
            Some(existing) => existing,
            None => {
                let token =
                    insert_grant(world, client_id, user_id, scopes, REFRESH_TTL, GrantKind::Refresh { rotated: false });
                (token, now + REFRESH_TTL)
            }
        };
        body["refresh_token"] = json!(refresh);
        body["refresh_token_expires_in"] = json!(expires_at - now);
    }
    Json(body).into_response()
}

async fn introspect(State(sandbox): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let world = sandbox.world();
    if client_ok(&world, &form).is_none() {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" }))).into_response();
    }
    let now = world.now();
    let Some(grant) = form.get("token").and_then(|t| world.grants.get(t)).filter(|g| g.platform == P) else {
        return Json(json!({ "active": false })).into_response();
    };
    let status = if grant.revoked {
        "revoked"
    } else if grant.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    };
    Json(json!({
        "active": status == "active",
        "client_id": grant.client_id,
        "authorized_at": grant.issued_at,
        "created_at": grant.issued_at,
        "status": status,
        "expires_at": grant.expires_at,
        "scope": grant.scopes.join(","),
        "auth_type": "3L",
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// API access: bearer token, then the versioning and protocol headers of /rest

fn bearer(world: &World, headers: &HeaderMap) -> Result<Grant, Response> {
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return Err(li_error(StatusCode::UNAUTHORIZED, None, Some(401), "Empty oauth2_access_token"));
    };
    let Some(grant) = world.grants.get(token.trim()).filter(|g| g.platform == P && g.kind == GrantKind::Access) else {
        return Err(li_error(
            StatusCode::UNAUTHORIZED,
            Some("INVALID_ACCESS_TOKEN"),
            Some(65600),
            "Invalid access token",
        ));
    };
    if grant.revoked {
        return Err(li_error(
            StatusCode::UNAUTHORIZED,
            Some("REVOKED_ACCESS_TOKEN"),
            Some(65601),
            "The token used in the request has been revoked by the user",
        ));
    }
    if grant.expires_at.is_some_and(|t| t <= world.now()) {
        return Err(li_error(
            StatusCode::UNAUTHORIZED,
            Some("EXPIRED_ACCESS_TOKEN"),
            Some(65602),
            "The token used in the request has expired",
        ));
    }
    Ok(grant.clone())
}

/// `/rest` calls need `LinkedIn-Version` (a `YYYYMM` active at `now`, [`version_active`]) and
/// `X-Restli-Protocol-Version`.
fn versioned(headers: &HeaderMap, now: i64) -> Result<(), Response> {
    let version = headers.get("linkedin-version").and_then(|v| v.to_str().ok()).map(str::trim);
    match version {
        None => {
            return Err(li_error(
                StatusCode::BAD_REQUEST,
                Some("VERSION_MISSING"),
                None,
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
            ));
        }
        Some(v) if !version_active(v, now) => {
            return Err(li_error(
                StatusCode::UPGRADE_REQUIRED,
                Some("NONEXISTENT_VERSION"),
                None,
                &format!("Requested version {v}01 is not active"),
            ));
        }
        Some(_) => {}
    }
    if headers.get("x-restli-protocol-version").and_then(|v| v.to_str().ok()) != Some("2.0.0") {
        return Err(li_error(StatusCode::BAD_REQUEST, None, None, "X-Restli-Protocol-Version 2.0.0 is required"));
    }
    Ok(())
}

/// The caller of a versioned REST call: a valid bearer token and an active `LinkedIn-Version`.
fn versioned_caller(world: &World, headers: &HeaderMap) -> Result<Grant, Response> {
    let grant = bearer(world, headers)?;
    versioned(headers, world.now())?;
    Ok(grant)
}

fn today(now: i64) -> i64 {
    now.div_euclid(86_400)
}

/// Counts against the member's and the app's daily budgets (UTC days); 429 when spent.
fn metered(world: &mut World, grant: &Grant) -> Result<(), Response> {
    let day = today(world.now());
    let member_budget = world.linkedin.limits.get("member_daily").copied().unwrap_or(MEMBER_DAILY);
    let app_budget = world.linkedin.limits.get("app_daily").copied().unwrap_or(APP_DAILY);
    for (key, budget, scope) in [
        (format!("member/{}/{}", grant.client_id, grant.user_id), member_budget, "MEMBER"),
        (format!("app/{}", grant.client_id), app_budget, "APPLICATION"),
    ] {
        let entry = world.linkedin.daily.entry(key).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= budget {
            return Err(li_error(
                StatusCode::TOO_MANY_REQUESTS,
                Some("TOO_MANY_REQUESTS"),
                Some(101),
                &format!("Resource level throttle {scope} DAY limit for calls to this resource is reached."),
            ));
        }
        entry.1 += 1;
    }
    Ok(())
}

async fn userinfo(State(sandbox): State<Shared>, headers: HeaderMap) -> Response {
    let world = sandbox.world();
    let grant = match bearer(&world, &headers) {
        Ok(g) => g,
        Err(response) => return response,
    };
    if !grant.scopes.iter().any(|s| s == "openid") {
        return li_error(
            StatusCode::FORBIDDEN,
            Some("ACCESS_DENIED"),
            Some(100),
            "Not enough permissions to access: userinfo.GET.NO_VERSION",
        );
    }
    let Some(user) = world.user(P, &grant.user_id) else {
        return li_error(StatusCode::UNAUTHORIZED, Some("INVALID_ACCESS_TOKEN"), Some(65600), "Invalid access token");
    };
    let (given, family) = user.name.split_once(' ').unwrap_or((&user.name, ""));
    Json(json!({
        "sub": user.id,
        "email_verified": true,
        "name": user.name,
        "locale": { "country": "US", "language": "en" },
        "given_name": given,
        "family_name": family,
    }))
    .into_response()
}

/// `GET /rest/organizationAcls?q=roleAssignee`: the member's roles in organizations, each
/// element `{roleAssignee, state, role, organization}` and no name (the fields LinkedIn's
/// organization-access-control-by-role page lists; F12), paged by Rest.li's `start` and `count`
/// (default 10) with `paging.total`.
async fn organization_acls(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let world = sandbox.world();
    let grant = match versioned_caller(&world, &headers) {
        Ok(g) => g,
        Err(response) => return response,
    };
    if !grant.scopes.iter().any(|s| s == "rw_organization_admin" || s == "w_organization_social") {
        return li_error(
            StatusCode::FORBIDDEN,
            Some("ACCESS_DENIED"),
            Some(100),
            "Not enough permissions to access: organizationAcls.FINDER-roleAssignee",
        );
    }
    let orgs = world.user(P, &grant.user_id).map(|u| u.organizations.clone()).unwrap_or_default();
    let start = q.get("start").and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let count = q.get("count").and_then(|s| s.parse::<usize>().ok()).unwrap_or(10);
    let elements: Vec<Value> = orgs
        .iter()
        .skip(start)
        .take(count)
        .map(|o| {
            json!({
                "roleAssignee": format!("urn:li:person:{}", grant.user_id),
                "state": "APPROVED",
                "role": o.role,
                "organization": format!("urn:li:organization:{}", o.id),
            })
        })
        .collect();
    Json(
        json!({ "elements": elements, "paging": { "count": count, "start": start, "total": orgs.len(), "links": [] } }),
    )
    .into_response()
}

/// `GET /rest/organizations/{id}` (Organization Lookup): `id`, `localizedName`, `vanityName`.
async fn organization(State(sandbox): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let world = sandbox.world();
    if let Err(response) = bearer(&world, &headers) {
        return response;
    }
    if let Err(response) = versioned(&headers, world.now()) {
        return response;
    }
    let found = world
        .users
        .iter()
        .filter(|u| u.platform == P)
        .flat_map(|u| u.organizations.iter())
        .find(|o| o.id == id)
        .cloned();
    match found {
        Some(o) => Json(json!({
            "id": o.id.parse::<u64>().unwrap_or_default(),
            "localizedName": o.name,
            "vanityName": o.name.to_lowercase().replace(' ', "-"),
        }))
        .into_response(),
        None => li_error(StatusCode::NOT_FOUND, None, None, &format!("Organization {id} not found")),
    }
}

/// The roles that may create an organization's posts (the roles page: an administrator "can
/// post updates"; a content administrator manages its content).
const POSTING_ROLES: [&str; 2] = ["ADMINISTRATOR", "CONTENT_ADMINISTRATOR"];

/// Whether `author` may be posted as by this member with these scopes.
fn may_author(world: &World, grant: &Grant, author: &str) -> Result<(), Response> {
    let denied = |what: &str| {
        li_error(
            StatusCode::FORBIDDEN,
            Some("ACCESS_DENIED"),
            Some(100),
            &format!("Not enough permissions to access: {what}"),
        )
    };
    if let Some(person) = author.strip_prefix("urn:li:person:") {
        if person != grant.user_id {
            return Err(denied("partnerApiPostsExternal.CREATE (author is another member)"));
        }
        if !grant.scopes.iter().any(|s| s == "w_member_social") {
            return Err(denied("partnerApiPostsExternal.CREATE (w_member_social)"));
        }
        return Ok(());
    }
    if let Some(org) = author.strip_prefix("urn:li:organization:") {
        let admin = world
            .user(P, &grant.user_id)
            .is_some_and(|u| u.organizations.iter().any(|o| o.id == org && POSTING_ROLES.contains(&o.role.as_str())));
        if !admin || !grant.scopes.iter().any(|s| s == "w_organization_social") {
            return Err(denied("partnerApiPostsExternal.CREATE (organization)"));
        }
        return Ok(());
    }
    Err(li_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        None,
        &format!("/author :: \"{author}\" is not a valid person or organization URN"),
    ))
}

fn unprocessable(message: &str) -> Response {
    li_error(StatusCode::UNPROCESSABLE_ENTITY, None, None, message)
}

async fn create_post(State(sandbox): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut world = sandbox.world();
    let grant = match versioned_caller(&world, &headers) {
        Ok(g) => g,
        Err(response) => return response,
    };
    let Ok(post) = serde_json::from_slice::<Value>(&body) else {
        return li_error(StatusCode::BAD_REQUEST, None, None, "Request body is not valid JSON");
    };
    let author = post["author"].as_str().unwrap_or_default().to_owned();
    if let Err(response) = may_author(&world, &grant, &author) {
        return response;
    }
    for field in ["commentary", "visibility", "distribution", "lifecycleState"] {
        if post.get(field).is_none() {
            return unprocessable(&format!("/{field} :: field is required but not found and has no default value"));
        }
    }
    // What LinkedIn shows: the commentary read as little text, cut at its first unescaped
    // reserved character, as LinkedIn does while answering 201 (the little-text-format page;
    // crossposter 1.1.5 and linkedctl #194 describe the cut).
    let commentary = little_shown(post["commentary"].as_str().unwrap_or_default());
    if commentary.chars().count() > COMMENTARY_MAX {
        return unprocessable("/commentary :: length must be at most 3000 characters");
    }
    if !["PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"].contains(&post["visibility"].as_str().unwrap_or_default()) {
        return unprocessable("/visibility :: invalid enum value");
    }
    if post["distribution"]["feedDistribution"].as_str().is_none() {
        return unprocessable(
            "/distribution/feedDistribution :: field is required but not found and has no default value",
        );
    }
    if !["PUBLISHED", "DRAFT"].contains(&post["lifecycleState"].as_str().unwrap_or_default()) {
        return unprocessable("/lifecycleState :: invalid enum value");
    }
    let mut media = Vec::new();
    if let Some(id) = post["content"]["media"]["id"].as_str() {
        media.push(id.to_owned());
    }
    if let Some(images) = post["content"]["multiImage"]["images"].as_array() {
        if images.len() < 2 || images.len() > 20 {
            return unprocessable("/content/multiImage/images :: a multi-image post has 2 to 20 images");
        }
        media.extend(images.iter().filter_map(|i| i["id"].as_str().map(str::to_owned)));
    }
    for urn in &media {
        let ok = urn.starts_with("urn:li:image:")
            && world.linkedin.images.get(urn).is_some_and(|i| i.uploaded && i.owner == author);
        if !ok {
            return unprocessable(&format!("/content :: {urn} is not an uploaded image owned by the author"));
        }
    }
    // Media alone is a post (an empty commentary with images: Ayrshare and other clients post
    // them); nothing at all is refused (the sandbox's choice: no source says what LinkedIn does).
    if commentary.is_empty() && media.is_empty() {
        return unprocessable("/commentary :: a post without media needs commentary");
    }
    if let Err(response) = metered(&mut world, &grant) {
        return response;
    }
    let urn = format!("urn:li:share:{}", world.numeric_id(19));
    let now = world.now();
    world.linkedin.commentary.insert(urn.clone(), post["commentary"].as_str().unwrap_or_default().to_owned());
    world.posts.push(Post { platform: P, account: author, id: urn.clone(), text: commentary, media, created_at: now });
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&urn) {
        response.headers_mut().insert("x-restli-id", value);
    }
    response
}

/// The roles that may read an organization's posts: the posting roles and `ANALYST` (the
/// sandbox's reading of LinkedIn's roles page, which says analysts view an organization's
/// content and analytics; not confirmed against the Posts API itself).
const READING_ROLES: [&str; 3] = ["ADMINISTRATOR", "CONTENT_ADMINISTRATOR", "ANALYST"];

/// `GET /rest/posts?q=author&author={URN}&count=&sortBy=`: the Posts API's "Find Posts by
/// Authors" finder, newest first (`count` default 10, at most 100; `sortBy` `LAST_MODIFIED` or
/// `CREATED`). An organization's posts need `r_organization_social` and a role there; a member's
/// need `r_member_social`, which LinkedIn grants to partners only (Microsoft Learn, Posts API;
/// clients report the 403). Each element carries `commentary` as it was sent (little text) and
/// `createdAt`/`publishedAt` in epoch milliseconds; a post shows once the read lag lets it.
async fn find_posts(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let world = sandbox.world();
    let grant = match versioned_caller(&world, &headers) {
        Ok(g) => g,
        Err(response) => return response,
    };
    if q.get("q").map(String::as_str) != Some("author") {
        return li_error(StatusCode::BAD_REQUEST, None, None, "Invalid query parameters passed to request");
    }
    let Some(author) = q.get("author") else {
        return li_error(StatusCode::BAD_REQUEST, None, None, "Parameter 'author' is required");
    };
    let denied = || {
        li_error(
            StatusCode::FORBIDDEN,
            Some("ACCESS_DENIED"),
            Some(100),
            "Not enough permissions to access: partnerApiPostsExternal.FINDER-author",
        )
    };
    let scoped = |scope: &str| grant.scopes.iter().any(|s| s == scope);
    if let Some(org) = author.strip_prefix("urn:li:organization:") {
        let role = world
            .user(P, &grant.user_id)
            .is_some_and(|u| u.organizations.iter().any(|o| o.id == org && READING_ROLES.contains(&o.role.as_str())));
        if !role || !scoped("r_organization_social") {
            return denied();
        }
    } else if author.strip_prefix("urn:li:person:") != Some(grant.user_id.as_str()) || !scoped("r_member_social") {
        return denied();
    }
    let count = q.get("count").and_then(|c| c.parse::<usize>().ok()).unwrap_or(10);
    if count == 0 || count > 100 {
        return li_error(StatusCode::BAD_REQUEST, None, None, "count must be between 1 and 100");
    }
    if !["LAST_MODIFIED", "CREATED"].contains(&q.get("sortBy").map_or("LAST_MODIFIED", String::as_str)) {
        return li_error(StatusCode::BAD_REQUEST, None, None, "Invalid sortBy");
    }
    let start = match q.get("start").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(start)) => start,
        Some(Err(_)) => return li_error(StatusCode::BAD_REQUEST, None, None, "start must be a number"),
    };
    // Offsets, not cursors: a post made between two pages moves the rest one place on.
    let elements: Vec<Value> = world
        .posts
        .iter()
        .rev()
        .filter(|p| p.platform == P && p.account == *author && world.listed(p))
        .skip(start)
        .take(count)
        .map(|p| {
            let commentary = world.linkedin.commentary.get(&p.id).cloned().unwrap_or_else(|| p.text.clone());
            json!({
                "id": p.id,
                "author": p.account,
                "commentary": commentary,
                "createdAt": p.created_at * 1000,
                "publishedAt": p.created_at * 1000,
                "lastModifiedAt": p.created_at * 1000,
                "lifecycleState": "PUBLISHED",
                "visibility": "PUBLIC",
            })
        })
        .collect();
    let paging = json!({ "start": start, "count": count, "links": [] });
    Json(json!({ "elements": elements, "paging": paging })).into_response()
}

/// `DELETE /rest/posts/{encoded URN}`: 204 once the caller's post (one it may author) is gone,
/// 404 if there is none (Microsoft Learn, Posts API, "Delete Posts").
async fn delete_post(State(sandbox): State<Shared>, headers: HeaderMap, Path(urn): Path<String>) -> Response {
    let mut world = sandbox.world();
    let grant = match versioned_caller(&world, &headers) {
        Ok(g) => g,
        Err(response) => return response,
    };
    let Some(author) = world.posts.iter().find(|p| p.platform == P && p.id == urn).map(|p| p.account.clone()) else {
        return li_error(StatusCode::NOT_FOUND, None, None, "Not Found");
    };
    if let Err(response) = may_author(&world, &grant, &author) {
        return response;
    }
    world.posts.retain(|p| !(p.platform == P && p.id == urn));
    StatusCode::NO_CONTENT.into_response()
}

async fn images_action(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut world = sandbox.world();
    let grant = match versioned_caller(&world, &headers) {
        Ok(g) => g,
        Err(response) => return response,
    };
    if q.get("action").map(String::as_str) != Some("initializeUpload") {
        return li_error(StatusCode::BAD_REQUEST, None, None, "Unsupported action");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return li_error(StatusCode::BAD_REQUEST, None, None, "Request body is not valid JSON");
    };
    let Some(owner) = request["initializeUploadRequest"]["owner"].as_str().map(str::to_owned) else {
        return unprocessable(
            "/initializeUploadRequest/owner :: field is required but not found and has no default value",
        );
    };
    if let Err(response) = may_author(&world, &grant, &owner) {
        return response;
    }
    let urn = format!("urn:li:image:{}", world.token("D4"));
    let upload = world.token("up");
    world.linkedin.images.insert(urn.clone(), Image { owner, uploaded: false });
    world.linkedin.uploads.insert(upload.clone(), urn.clone());
    let expires = (world.now() + 86_400) * 1000;
    Json(json!({ "value": {
        "uploadUrlExpiresAt": expires,
        "uploadUrl": format!("{}/linkedin/upload/{upload}", sandbox.base_url),
        "image": urn,
    }}))
    .into_response()
}

/// The upload URL takes the image bytes with the member's bearer token.
async fn upload(State(sandbox): State<Shared>, Path(token): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut world = sandbox.world();
    if let Err(response) = bearer(&world, &headers) {
        return response;
    }
    let Some(urn) = world.linkedin.uploads.remove(&token) else {
        return li_error(StatusCode::NOT_FOUND, None, None, "Unknown upload");
    };
    if body.is_empty() {
        return li_error(StatusCode::BAD_REQUEST, None, None, "Empty upload");
    }
    if let Some(image) = world.linkedin.images.get_mut(&urn) {
        image.uploaded = true;
    }
    StatusCode::CREATED.into_response()
}

/// The characters LinkedIn's little format reserves (its Text reference).
const LITTLE_RESERVED: &str = "\\|{}@[]()<>#*_~";

/// How LinkedIn shows `commentary` in the little format: `\x` is the character `x`; a
/// mention `@[Name](urn:li:…)` shows its name; a hashtag `#word` shows as written; a URL (from
/// `http://` or `https://` to the next whitespace) shows as written, reserved characters and
/// all (the reading clients rely on: LinkedIn documents no URL element); any other reserved
/// character ends the text there. Written apart from Herald's escaping, from the same sources.
pub fn little_shown(commentary: &str) -> String {
    let mut shown = String::new();
    let mut rest = commentary;
    let mut in_url = false;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            in_url = false;
        } else if rest.starts_with("http://") || rest.starts_with("https://") {
            in_url = true;
        }
        let after = &rest[c.len_utf8()..];
        if in_url || !LITTLE_RESERVED.contains(c) {
            shown.push(c);
            rest = after;
            continue;
        }
        match c {
            '\\' => match after.chars().next() {
                Some(escaped) => {
                    shown.push(escaped);
                    rest = &after[escaped.len_utf8()..];
                }
                None => break,
            },
            '#' if after.chars().next().is_some_and(char::is_alphanumeric) => {
                shown.push('#');
                rest = after;
            }
            '@' if after.starts_with('[') => {
                let Some((name, tail)) = after[1..].split_once("](urn:li:") else { break };
                let Some((_, tail)) = tail.split_once(')') else { break };
                shown.push_str(name);
                rest = tail;
            }
            _ => break,
        }
    }
    shown
}

#[cfg(test)]
mod little_tests {
    use super::little_shown;

    #[test]
    fn unescaped_reserved_characters_cut_the_text() {
        let rows = [
            ("Launch (beta) today", "Launch "),
            (r"Launch \(beta\) today", "Launch (beta) today"),
            ("snake_case", "snake"),
            ("#rust is fun", "#rust is fun"),
            ("a # b", "a "),
            ("see https://a.co/x_(y) and more", "see https://a.co/x_(y) and more"),
            ("hi @[Ada](urn:li:person:1) there", "hi Ada there"),
            ("hi @ada", "hi "),
            (r"trailing \", "trailing "),
        ];
        for (commentary, want) in rows {
            assert_eq!(little_shown(commentary), want, "{commentary}");
        }
    }
}

#[cfg(test)]
mod version_tests {
    use super::version_active;

    /// LinkedIn's windows at 2026-12-02 and a year on: 202511 was sunset on 2026-11-16 (LinkedIn's
    /// migrations page), 202602 and 202605 are active, 202608 and 202612 were never released or
    /// are not out yet; 202609 goes on 2027-09-15 by the one-year rule.
    #[test]
    fn versions_are_served_within_their_windows() {
        let dec_2026 = 1_796_169_600;
        let sep_15_2027 = 1_820_966_400;
        let rows = [
            ("202511", dec_2026, false),
            ("202601", dec_2026, true),
            ("202602", dec_2026, true),
            ("202605", dec_2026, true),
            ("202609", dec_2026, true),
            ("202608", dec_2026, false),
            ("202612", dec_2026, false),
            ("20260", dec_2026, false),
            ("202609", sep_15_2027 - 1, true),
            ("202609", sep_15_2027, false),
        ];
        for (version, now, want) in rows {
            assert_eq!(version_active(version, now), want, "{version} at {now}");
        }
    }
}
