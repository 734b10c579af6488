//! One Mastodon server, under `/mastodon` (a server with a path prefix, as Herald takes any
//! server URL): app registration, OAuth 2.0 with PKCE, the account, the server's configuration,
//! media (v2, processed asynchronously), statuses with `Idempotency-Key`, deletion, revocation and
//! the `X-RateLimit-*` headers. Every request is first held to the Mastodon OpenAPI description
//! ([`crate::mastodon_spec`]).
//!
//! Sources, docs.joinmastodon.org: methods/apps, methods/oauth, spec/oauth, methods/accounts,
//! methods/instance, methods/media, methods/statuses, api/rate-limits, entities/Error; each
//! behaviour is a row of docs/fidelity-ledger.md.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::consent::{self, Code, Flow, Pending, with_query};
use crate::state::{App, Grant, GrantKind, Platform, Post, Shared, World};

const P: Platform = Platform::Mastodon;
/// "300 requests per 5 minutes" per account (api/rate-limits).
const CALLS_PER_WINDOW: u32 = 300;
const WINDOW: i64 = 300;
/// The server's configuration (`GET /api/v2/instance`): Mastodon's defaults.
const MAX_CHARACTERS: usize = 500;
const URL_CHARACTERS: usize = 23;
const MAX_MEDIA: usize = 4;
/// "Idempotency keys are stored for up to 1 hour."
const IDEMPOTENCY_TTL: i64 = 3600;
const CODE_TTL: i64 = 600;

#[derive(Debug, Clone)]
struct Attachment {
    account: String,
    description: Option<String>,
    /// Checks left before it is processed.
    polls_left: u32,
    attached: bool,
}

#[derive(Default)]
pub struct MastodonWorld {
    codes: HashMap<String, Code>,
    media: HashMap<String, Attachment>,
    /// `(account, Idempotency-Key)` → (status id, when first seen).
    idempotency: HashMap<(String, String), (String, i64)>,
    /// Calls per account in the current window.
    usage: HashMap<String, (i64, u32)>,
    /// The scopes each app registered.
    scopes: HashMap<String, String>,
    /// Overrides: `media_polls` (checks an upload stays processing, default 0), `calls`,
    /// `status_processing_ms` (how long making a status takes, default 0).
    pub limits: HashMap<String, u32>,
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/mastodon/api/v1/apps", post(register))
        .route("/mastodon/oauth/authorize", get(authorize))
        .route("/mastodon/oauth/token", post(token))
        .route("/mastodon/oauth/revoke", post(revoke))
        .route("/mastodon/api/v1/accounts/verify_credentials", get(verify_credentials))
        .route("/mastodon/api/v1/accounts/{id}/statuses", get(account_statuses))
        .route("/mastodon/api/v2/instance", get(instance))
        .route("/mastodon/api/v2/media", post(upload))
        .route("/mastodon/api/v1/media/{id}", get(media))
        .route("/mastodon/api/v1/statuses", post(status))
        .route("/mastodon/api/v1/statuses/{id}", axum::routing::delete(delete_status))
}

/// Mastodon's error entity: `{"error": "…"}` (and `error_description` for OAuth).
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Json(json!({ "error": code, "error_description": description }))).into_response()
}

/// A body's fields: JSON, or a form (as [`crate::mastodon_spec::form_object`] reads it).
fn fields(headers: &HeaderMap, body: &[u8]) -> Value {
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if kind.starts_with("application/json") {
        serde_json::from_slice(body).unwrap_or_default()
    } else {
        crate::mastodon_spec::form_object(body)
    }
}

fn server_url(sandbox: &Shared) -> String {
    format!("{}/mastodon", sandbox.base_url)
}

// ---------------------------------------------------------------------------------------------
// Apps and OAuth

/// `POST /api/v1/apps`: `client_name`, `redirect_uris` (a string or a list), `scopes` (default
/// `read`) → the Application with `client_id` and `client_secret`.
async fn register(State(sandbox): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let q = fields(&headers, &body);
    let name = q["client_name"].as_str().unwrap_or_default().to_owned();
    let redirects: Vec<String> = match &q["redirect_uris"] {
        Value::String(one) => one.split_whitespace().map(str::to_owned).collect(),
        Value::Array(many) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if name.is_empty() || redirects.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: Application name can't be blank, Redirect URI can't be blank",
        );
    }
    let scopes = q["scopes"].as_str().unwrap_or("read").to_owned();
    let mut world = sandbox.world();
    let id = world.numeric_id(6);
    let client_id = world.token("");
    let client_secret = world.token("");
    world.apps.push(App::confidential(P, &client_id, &client_secret, redirects.clone()));
    world.mastodon.scopes.insert(client_id.clone(), scopes.clone());
    Json(json!({
        "id": id,
        "name": name,
        "website": q["website"],
        "scopes": scopes.split(' ').collect::<Vec<_>>(),
        "redirect_uri": redirects.join("\n"),
        "redirect_uris": redirects,
        "client_id": client_id,
        "client_secret": client_secret,
        "client_secret_expires_at": 0,
    }))
    .into_response()
}

/// `GET /oauth/authorize`: a known client, one of its redirect URIs, `response_type=code`, scopes
/// the app registered, PKCE (`S256`) where sent; the consent screen.
async fn authorize(State(sandbox): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut world = sandbox.world();
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let Some(app) = world.app(P, &client_id).cloned() else {
        return (StatusCode::BAD_REQUEST, "Client authentication failed due to unknown client").into_response();
    };
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    if !app.redirect_uris.contains(&redirect_uri) {
        return (StatusCode::BAD_REQUEST, "The redirect uri included is not valid.").into_response();
    }
    let registered = world.mastodon.scopes.get(&client_id).cloned().unwrap_or_default();
    let scopes: Vec<String> = q.get("scope").map(|s| s.split(' ').map(str::to_owned).collect()).unwrap_or_default();
    if scopes.iter().any(|s| !registered.split(' ').any(|r| r == s)) {
        let location = with_query(
            &redirect_uri,
            &[
                ("error", "invalid_scope"),
                ("error_description", "The requested scope is invalid, unknown, or malformed."),
            ],
        );
        return consent::redirect(&location);
    }
    let challenge = q
        .get("code_challenge")
        .map(|c| (c.clone(), q.get("code_challenge_method").cloned().unwrap_or_else(|| "plain".into())));
    let pending = Pending {
        platform: P,
        client_id,
        scopes,
        flow: Flow::Mastodon { redirect_uri, state: q.get("state").cloned(), challenge },
    };
    consent::show(&mut world, pending)
}

pub fn complete_consent(world: &mut World, pending: Pending, user_id: &str, approve: bool) -> String {
    let Flow::Mastodon { redirect_uri, state, challenge } = pending.flow else { return String::new() };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code = world.token("");
    if approve {
        let expires_at = world.now() + CODE_TTL;
        world.mastodon.codes.insert(
            code.clone(),
            Code::approved((pending.client_id, pending.scopes), &redirect_uri, user_id, challenge, expires_at),
        );
        pairs.push(("code", &code));
    } else {
        pairs.extend([
            ("error", "access_denied"),
            ("error_description", "The resource owner or authorization server denied the request."),
        ]);
    }
    if let Some(state) = &state {
        pairs.push(("state", state));
    }
    with_query(&redirect_uri, &pairs)
}

fn client_ok(world: &World, q: &Value) -> Option<App> {
    let id = q["client_id"].as_str()?;
    let secret = q["client_secret"].as_str()?;
    world.app(P, id).filter(|a| a.client_secret == secret).cloned()
}

/// `POST /oauth/token` (`authorization_code`): the client's credentials, a single-use code, the
/// same `redirect_uri`, the PKCE verifier where a challenge was sent → a token that does not
/// expire.
async fn token(State(sandbox): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let q = fields(&headers, &body);
    let mut world = sandbox.world();
    let Some(app) = client_ok(&world, &q) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    };
    if q["grant_type"] != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let now = world.now();
    let invalid = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        )
    };
    let Some(code) = q["code"].as_str().and_then(|c| world.mastodon.codes.get_mut(c)) else { return invalid() };
    if code.used
        || code.expires_at <= now
        || code.client_id != app.client_id
        || q["redirect_uri"].as_str() != Some(code.redirect_uri.as_str())
    {
        code.used = true;
        return invalid();
    }
    code.used = true;
    let code = code.clone();
    if let Some((challenge, method)) = &code.challenge {
        let verified = q["code_verifier"].as_str().is_some_and(|v| crate::x::pkce_matches(method, challenge, v));
        if !verified {
            return invalid();
        }
    }
    let access = world.token("");
    world.grants.insert(
        access.clone(),
        Grant {
            platform: P,
            client_id: app.client_id,
            user_id: code.user_id,
            scopes: code.scopes.clone(),
            expires_at: None,
            issued_at: now,
            revoked: false,
            kind: GrantKind::Access,
        },
    );
    Json(json!({ "access_token": access, "token_type": "Bearer", "scope": code.scopes.join(" "), "created_at": now }))
        .into_response()
}

/// `POST /oauth/revoke`: the client's credentials and a token of theirs → `{}`.
async fn revoke(State(sandbox): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let q = fields(&headers, &body);
    let mut world = sandbox.world();
    let Some(app) = client_ok(&world, &q) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
    };
    let token = q["token"].as_str().unwrap_or_default().to_owned();
    match world.grants.get_mut(&token) {
        Some(grant) if grant.client_id == app.client_id => grant.revoked = true,
        // "You are not authorized to revoke this token" for another client's.
        Some(_) => {
            return oauth_error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                "You are not authorized to revoke this token",
            );
        }
        None => {}
    }
    Json(json!({})).into_response()
}

// ---------------------------------------------------------------------------------------------
// The API

/// The caller's grant from `Authorization: Bearer`, counted against its account's window; its
/// `X-RateLimit-*` headers.
fn caller(world: &mut World, headers: &HeaderMap, scope: &str) -> Result<(Grant, [(String, String); 3]), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(grant) = world.grants.get(token).filter(|g| g.platform == P).cloned() else {
        return Err(error(StatusCode::UNAUTHORIZED, "The access token is invalid"));
    };
    if grant.revoked {
        return Err(error(StatusCode::UNAUTHORIZED, "The access token was revoked"));
    }
    let family = scope.split(':').next().unwrap_or(scope);
    if !grant.scopes.iter().any(|s| s == scope || s == family) {
        return Err(error(StatusCode::FORBIDDEN, "This action is outside the authorized scopes"));
    }
    let now = world.now();
    let limit = world.mastodon.limits.get("calls").copied().unwrap_or(CALLS_PER_WINDOW);
    let start = now - now.rem_euclid(WINDOW);
    let used = {
        let entry = world.mastodon.usage.entry(grant.user_id.clone()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        entry.1 += 1;
        entry.1
    };
    let reset = crate::state::rfc3339(start + WINDOW);
    let rate = [
        ("x-ratelimit-limit".to_owned(), limit.to_string()),
        ("x-ratelimit-remaining".to_owned(), limit.saturating_sub(used).to_string()),
        ("x-ratelimit-reset".to_owned(), reset),
    ];
    if used > limit {
        return Err(with_rate(error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"), &rate));
    }
    Ok((grant, rate))
}

fn with_rate(mut response: Response, rate: &[(String, String); 3]) -> Response {
    for (name, value) in rate {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn answer(
    sandbox: &Shared,
    headers: &HeaderMap,
    scope: &str,
    then: impl FnOnce(&mut World, &Grant) -> Response,
) -> Response {
    let mut world = sandbox.world();
    match caller(&mut world, headers, scope) {
        Ok((grant, rate)) => with_rate(then(&mut world, &grant), &rate),
        Err(response) => response,
    }
}

async fn verify_credentials(State(sandbox): State<Shared>, headers: HeaderMap) -> Response {
    let server = server_url(&sandbox);
    answer(&sandbox, &headers, "read:accounts", |world, grant| {
        let Some(user) = world.user(P, &grant.user_id).cloned() else {
            return error(StatusCode::NOT_FOUND, "Record not found");
        };
        Json(json!({
            "id": user.id,
            "username": user.username,
            "acct": user.username,
            "display_name": user.name,
            "url": format!("{server}/@{}", user.username),
        }))
        .into_response()
    })
}

/// `GET /api/v1/accounts/:id/statuses`: the account's statuses, newest first, `limit` (default
/// 20, at most 40), below `max_id`, with a `Link` to the next page while more follow. Anyone may
/// read public statuses; a token, if given, must hold `read:statuses` (or `read`), as Mastodon's
/// `authorize_if_got_token!` has it. The sandbox's ids are not time-ordered, so `max_id` must
/// name a status of the account: the last of the page before, as clients send it.
async fn account_statuses(
    State(sandbox): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let server = server_url(&sandbox);
    let mut world = sandbox.world();
    let rate = match headers.contains_key(header::AUTHORIZATION) {
        true => match caller(&mut world, &headers, "read:statuses") {
            Ok((_, rate)) => Some(rate),
            Err(response) => return response,
        },
        false => None,
    };
    if world.user(P, &id).is_none() {
        return error(StatusCode::NOT_FOUND, "Record not found");
    }
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).clamp(1, 40);
    let Some((page, more)) =
        world.listing(|p| p.platform == P && p.account == id, q.get("max_id").map(String::as_str), limit)
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "max_id names no status of this account");
    };
    let statuses: Vec<Value> = page.iter().map(|post| status_json(&server, post)).collect();
    let mut response = Json(statuses).into_response();
    if let (true, Some(last)) = (more, page.last()) {
        let next = format!("<{server}/api/v1/accounts/{id}/statuses?limit={limit}&max_id={}>; rel=\"next\"", last.id);
        if let Ok(value) = HeaderValue::from_str(&next) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    match rate {
        Some(rate) => with_rate(response, &rate),
        None => response,
    }
}

async fn instance(State(sandbox): State<Shared>) -> Response {
    let domain = sandbox.base_url.trim_start_matches("http://").to_owned();
    Json(json!({
        "domain": domain,
        "title": "Herald sandbox",
        "version": "4.5.0",
        "configuration": {
            "statuses": {
                "max_characters": MAX_CHARACTERS,
                "max_media_attachments": MAX_MEDIA,
                "characters_reserved_per_url": URL_CHARACTERS,
            },
            "media_attachments": {
                "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp"],
                "image_size_limit": 16_777_216,
            },
        },
    }))
    .into_response()
}

/// The image format of uploaded bytes, by their signature.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
        [b'G', b'I', b'F', b'8', ..] => Some("image/gif"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        _ => None,
    }
}

/// `POST /api/v2/media` (`write:media`), multipart `file` and `description`: 200 with its `url`
/// when processed at once, 202 with `url: null` while it is processed.
async fn upload(State(sandbox): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut parts: HashMap<String, Vec<u8>> = HashMap::new();
    if let Ok(request) =
        axum::http::Request::builder().header(header::CONTENT_TYPE, kind).body(axum::body::Body::from(body))
        && let Ok(mut multipart) =
            <axum::extract::Multipart as axum::extract::FromRequest<()>>::from_request(request, &()).await
    {
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or_default().to_owned();
            if let Ok(data) = field.bytes().await {
                parts.insert(name, data.to_vec());
            }
        }
    }
    let server = server_url(&sandbox);
    answer(&sandbox, &headers, "write:media", |world, grant| {
        let Some(file) = parts.get("file") else {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: File can't be blank");
        };
        if sniff(file).is_none() {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: File content type is invalid");
        }
        let polls = world.mastodon.limits.get("media_polls").copied().unwrap_or(0);
        let id = world.numeric_id(18);
        let description = parts.get("description").map(|d| String::from_utf8_lossy(d).into_owned());
        world.mastodon.media.insert(
            id.clone(),
            Attachment {
                account: grant.user_id.clone(),
                description: description.clone(),
                polls_left: polls,
                attached: false,
            },
        );
        let url = (polls == 0).then(|| format!("{server}/system/media/{id}"));
        let status = if polls == 0 { StatusCode::OK } else { StatusCode::ACCEPTED };
        (status, Json(json!({ "id": id, "type": "image", "url": url, "description": description }))).into_response()
    })
}

/// `GET /api/v1/media/:id`: 206 while it is processed, 200 once it is.
async fn media(State(sandbox): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let server = server_url(&sandbox);
    answer(&sandbox, &headers, "write:media", |world, grant| {
        let Some(attachment) = world.mastodon.media.get_mut(&id).filter(|a| a.account == grant.user_id) else {
            return error(StatusCode::NOT_FOUND, "Record not found");
        };
        if attachment.polls_left > 0 {
            attachment.polls_left -= 1;
            return (StatusCode::PARTIAL_CONTENT, Json(json!({ "id": id, "type": "image", "url": null })))
                .into_response();
        }
        Json(json!({ "id": id, "type": "image", "url": format!("{server}/system/media/{id}"), "description": attachment.description }))
            .into_response()
    })
}

/// The length as Mastodon counts it: a URL as 23 characters, a remote mention as its local
/// part, every other character once (code points here; Mastodon counts grapheme clusters).
fn length(text: &str) -> usize {
    text.split(' ')
        .map(|word| {
            if word.starts_with("http://") || word.starts_with("https://") {
                URL_CHARACTERS
            } else if let Some((user, _)) = word.strip_prefix('@').and_then(|w| w.split_once('@')) {
                user.chars().count() + 1
            } else {
                word.chars().count()
            }
        })
        .sum::<usize>()
        + text.matches(' ').count()
}

/// `POST /api/v1/statuses` (`write:statuses`): `status` and/or `media_ids` (this account's
/// processed, unattached uploads, at most 4), 500 characters; the same `Idempotency-Key` within
/// an hour answers the status it made.
///
/// As Mastodon's `PostStatusService`: the key is read first, the status is made, and only then
/// is the key stored. Making it takes `status_processing_ms` (a limit, default 0); a request
/// under the same key meanwhile finds no key and makes a second status. The server finishes a
/// status it began even when the client has gone; while it does, the status counts among the
/// held calls (`GET /_sandbox/faults/held?at_most=0` waits for it).
async fn status(State(sandbox): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let q = fields(&headers, &body);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let server = server_url(&sandbox);
    let mut slow = None;
    let checked = answer(&sandbox, &headers, "write:statuses", |world, grant| {
        if let Some(key) = &key
            && let Some((id, at)) = world.mastodon.idempotency.get(&(grant.user_id.clone(), key.clone())).cloned()
            && world.now() - at < IDEMPOTENCY_TTL
            && let Some(made) = world.posts.iter().find(|p| p.platform == P && p.id == id)
        {
            return Json(status_json(&server, made)).into_response();
        }
        if let Err(refused) = acceptable(world, grant, &q) {
            return refused;
        }
        match world.mastodon.limits.get("status_processing_ms").copied().unwrap_or(0) {
            0 => make_status(world, grant, &q, key.clone(), &server),
            millis => {
                slow = Some((grant.clone(), millis));
                StatusCode::ACCEPTED.into_response()
            }
        }
    });
    let Some((grant, millis)) = slow else { return checked };
    let held = crate::faults::Held::count(&sandbox);
    let making = tokio::spawn({
        let sandbox = sandbox.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(millis))).await;
            let made = make_status(&mut sandbox.world(), &grant, &q, key, &server);
            drop(held);
            made
        }
    });
    let mut made = making.await.unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "status not made"));
    for (name, value) in checked.headers() {
        if name.as_str().starts_with("x-ratelimit") {
            made.headers_mut().insert(name.clone(), value.clone());
        }
    }
    made
}

/// The status's text and attachments as the server validates them, before it makes it.
fn acceptable(world: &World, grant: &Grant, q: &Value) -> Result<(), Response> {
    let text = q["status"].as_str().unwrap_or_default();
    let media = media_ids(q);
    if text.trim().is_empty() && media.is_empty() {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: Text can't be blank"));
    }
    if length(text) > MAX_CHARACTERS {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: Text character limit of 500 exceeded"));
    }
    if media.len() > MAX_MEDIA {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: Media attachments limit exceeded"));
    }
    for id in &media {
        match world.mastodon.media.get(id) {
            Some(a) if a.account == grant.user_id && !a.attached && a.polls_left == 0 => {}
            Some(a) if a.polls_left > 0 => {
                return Err(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Cannot attach files that have not finished processing. Try again in a moment!",
                ));
            }
            _ => return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed: Media attachment is invalid")),
        }
    }
    Ok(())
}

/// Makes the status (its attachments attached), then stores its key.
fn make_status(world: &mut World, grant: &Grant, q: &Value, key: Option<String>, server: &str) -> Response {
    let text = q["status"].as_str().unwrap_or_default().to_owned();
    let media = media_ids(q);
    for id in &media {
        if let Some(a) = world.mastodon.media.get_mut(id) {
            a.attached = true;
        }
    }
    let now = world.now();
    let id = world.numeric_id(18);
    let post = Post { platform: P, account: grant.user_id.clone(), id: id.clone(), text, media, created_at: now };
    world.posts.push(post.clone());
    if let Some(key) = key {
        world.mastodon.idempotency.insert((grant.user_id.clone(), key), (id, now));
    }
    Json(status_json(server, &post)).into_response()
}

/// The request's `media_ids`.
fn media_ids(q: &Value) -> Vec<String> {
    q["media_ids"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn status_json(server: &str, post: &Post) -> Value {
    let created_at = time::OffsetDateTime::from_unix_timestamp(post.created_at).ok().and_then(|t| {
        t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z")).ok()
    });
    json!({
        "id": post.id,
        "created_at": created_at,
        "uri": format!("{server}/users/{}/statuses/{}", post.account, post.id),
        "url": format!("{server}/@{}/{}", post.account, post.id),
        "content": content(server, &post.text),
        "visibility": "public",
        "media_attachments": post.media.iter().map(|id| json!({ "id": id, "type": "image" })).collect::<Vec<_>>(),
    })
}

/// A status's `content` as Mastodon's `TextFormatter` writes plain text: HTML-escaped, URLs
/// linked with their scheme in an `invisible` span and the rest cut after 30 characters into an
/// `ellipsis` and a second `invisible` span, hashtags linked, and Rails' `simple_format`
/// paragraphs (a blank line) and `<br />` (a line break). Mentions stay text, as they do for an
/// account the server does not know.
fn content(server: &str, text: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
    };
    let word = |w: &str| {
        if let Some(prefix) =
            ["https://www.", "http://www.", "https://", "http://"].into_iter().find(|p| w.starts_with(p))
        {
            let rest = &w[prefix.len()..];
            let cut = rest.char_indices().nth(30).map_or(rest.len(), |(i, _)| i);
            let class = if cut < rest.len() { "ellipsis" } else { "" };
            return format!(
                r#"<a href="{}" target="_blank" rel="nofollow noopener noreferrer"><span class="invisible">{}</span><span class="{class}">{}</span><span class="invisible">{}</span></a>"#,
                escape(w),
                escape(prefix),
                escape(&rest[..cut]),
                escape(&rest[cut..])
            );
        }
        match w.strip_prefix('#').filter(|tag| !tag.is_empty() && tag.chars().all(char::is_alphanumeric)) {
            Some(tag) => {
                format!(r#"<a href="{server}/tags/{tag}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>"#)
            }
            None => escape(w),
        }
    };
    let line = |l: &str| l.split(' ').map(word).collect::<Vec<_>>().join(" ");
    text.split("\n\n")
        .filter(|paragraph| !paragraph.trim().is_empty())
        .map(|paragraph| format!("<p>{}</p>", paragraph.lines().map(line).collect::<Vec<_>>().join("<br />")))
        .collect()
}

/// `DELETE /api/v1/statuses/:id`: the account's own status → the deleted status.
async fn delete_status(State(sandbox): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let server = server_url(&sandbox);
    answer(&sandbox, &headers, "write:statuses", |world, grant| {
        let Some(index) = world.posts.iter().position(|p| p.platform == P && p.id == id && p.account == grant.user_id)
        else {
            return error(StatusCode::NOT_FOUND, "Record not found");
        };
        let post = world.posts.remove(index);
        Json(status_json(&server, &post)).into_response()
    })
}
