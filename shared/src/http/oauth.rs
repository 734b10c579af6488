//! Connecting accounts: one-time connect links, the redirect to the platform, the OAuth
//! callback, and disconnecting.
//!
//! The callback sends the user back to the tenant's `return_to` (an allowed origin) with
//! `status=connected&platform=…&accounts=acc_…,acc_…` or `status=error&error=<code>`; the codes
//! are listed in docs/errors.md. It does so only for the browser that started the flow
//! ([`super::browser`]): any other browser gets an error page and no redirect. A callback whose
//! state Herald never issued gets a problem document: with no state there is no trusted place to
//! redirect to.
//!
//! A connect link is used up only by a browser that proceeds to the platform: its own page
//! navigation (Fetch Metadata), or the button of the page everything else is shown (`HEAD`,
//! link-preview bots, scanners, browsers without Fetch Metadata), which `POST`s the link.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use super::browser::{self, BrowserCookie};
use super::connect::parse_user;
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use super::routes::Routes;
use super::{AppState, Problem};
use crate::domain::{AccountId, Platform};
use crate::platforms::{PendingAuth, PlatformError};
use crate::store::connect::STATE_TTL;
use crate::store::{ConsumeError, OAuthState};

pub(super) fn routes() -> Routes {
    Routes::new()
        .on(Method::POST, "/v1/connect-links", create_link)
        .on(Method::GET, "/connect/{token}", follow_link)
        .on(Method::POST, "/connect/{token}", continue_link)
        .on(Method::GET, "/oauth/{platform}/callback", callback)
        .on(Method::POST, "/oauth/{platform}/callback", form_callback)
        .on(Method::GET, "/oauth/{platform}/client-metadata.json", client_metadata)
        .on(Method::DELETE, "/v1/users/{user_id}/accounts/{account_id}", disconnect)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    user_id: String,
    platform: String,
    return_to: String,
}

#[derive(Debug, Serialize)]
struct LinkCreated {
    url: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

async fn create_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Authenticated(tenant_id): Authenticated,
    ApiJson(request): ApiJson<LinkRequest>,
) -> Result<Response, Problem> {
    let user = crate::domain::UserId::parse(request.user_id)
        .map_err(|e| Problem::invalid("invalid_user_id", "user_id", e.to_string()))?;
    let platform: Platform = request
        .platform
        .parse()
        .map_err(|e: crate::domain::InvalidId| Problem::invalid("invalid_platform", "platform", e.to_string()))?;
    let tenant = state.tenants.get(&tenant_id).await?.ok_or_else(Problem::unauthorized)?;
    // No open redirects: the user may only be sent back to one of the tenant's origins.
    let return_to = Url::parse(&request.return_to)
        .ok()
        .filter(|url| tenant.allowed_origins.iter().any(|origin| origin.contains(url)))
        .ok_or_else(|| {
            Problem::invalid(
                "return_to_not_allowed",
                "return_to",
                "return_to must be a URL on one of the tenant's allowed origins (PATCH /v1/tenant)",
            )
        })?;
    if !state.platforms.configured(platform, tenant.connectors.get(&platform).map(String::as_str)) {
        return Err(Problem::invalid(
            "platform_not_configured",
            "platform",
            format!("{platform} has no app configured on this deployment"),
        ));
    }
    let (token, link) = state.connect.create_link(&tenant_id, &user, platform, &return_to).await?;
    let mut url = super::base_url(&state, &headers)?;
    url.set_path(&format!("/connect/{token}"));
    url.set_query(None);
    Ok((StatusCode::CREATED, Json(LinkCreated { url: url.to_string(), expires_at: link.expires_at })).into_response())
}

/// Sends the browser back to the tenant with the outcome.
fn back(return_to: &Url, outcome: &[(&str, &str)]) -> Response {
    let mut url = return_to.clone();
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in outcome {
            query.append_pair(k, v);
        }
    }
    // The callback's URL carries the code; it is not passed on as a Referer.
    (StatusCode::FOUND, [(header::LOCATION, url.to_string()), (header::REFERRER_POLICY, "no-referrer".to_owned())])
        .into_response()
}

fn failed(return_to: &Url, error: &str) -> Response {
    back(return_to, &[("status", "error"), ("error", error)])
}

/// Headers of every page Herald renders itself: not cached, not framed, no referrer, no script.
fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        html,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /connect/{token}`: a browser's navigation proceeds to the platform; anything else
/// (`HEAD`, a preview bot) gets a page with a button and leaves the link unused.
async fn follow_link(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    ApiPath(token): ApiPath<String>,
) -> Result<Response, Problem> {
    if method == Method::GET && browser::is_navigation(&headers) {
        return proceed(&state, &headers, &token, StatusCode::FOUND).await;
    }
    let html = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Connect your account</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:4em auto">
<p>You are about to connect an account.</p>
<form method="post" action="/connect/{token}"><button type="submit">Continue</button></form>
</body></html>"#,
        token = escape(&token)
    );
    Ok(page(StatusCode::OK, html))
}

/// `POST /connect/{token}`: the page's button.
async fn continue_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(token): ApiPath<String>,
) -> Result<Response, Problem> {
    proceed(&state, &headers, &token, StatusCode::SEE_OTHER).await
}

/// Uses the link up, binds a new OAuth state to this browser, and sends it to the platform.
async fn proceed(state: &AppState, headers: &HeaderMap, token: &str, status: StatusCode) -> Result<Response, Problem> {
    let link = match state.connect.consume_link(token).await {
        Ok(link) => link,
        Err(ConsumeError::Expired(link)) => return Ok(failed(&link.return_to, "link_expired")),
        Err(ConsumeError::Replayed(link)) => return Ok(failed(&link.return_to, "link_used")),
        Err(ConsumeError::Unknown) => return Err(Problem::not_found("link_invalid", "This connect link is not valid")),
        Err(ConsumeError::Store(e)) => return Err(e.into()),
    };
    let tenant = state
        .tenants
        .get(&link.tenant)
        .await?
        .ok_or_else(|| Problem::not_found("link_invalid", "This connect link is not valid"))?;
    let base = super::base_url(state, headers)?;
    let start = match state
        .platforms
        .start(link.platform, tenant.connectors.get(&link.platform).map(String::as_str), &base)
        .await
    {
        Ok(start) => start,
        Err(e) => {
            tracing::warn!(platform = %link.platform, error = %e, "could not start the authorization");
            return Ok(failed(&link.return_to, "platform_unavailable"));
        }
    };
    let (secret, set_cookie) = BrowserCookie::for_public_url(&base).issue(headers);
    let pending = OAuthState {
        tenant: link.tenant,
        user: link.user,
        platform: link.platform,
        return_to: link.return_to,
        connector: start.pending.connector,
        secret: start.pending.secret,
        browser: browser::binding(&secret),
        expires_at: state.clock.now() + STATE_TTL,
    };
    state.connect.put_state(&start.pending.key, &pending).await?;
    if let Some(form) = start.form {
        let mut response = page(StatusCode::OK, sign_in_page(form, &start.url, &start.pending.key));
        response.headers_mut().insert(header::SET_COOKIE, set_cookie);
        return Ok(response);
    }
    Ok((status, [(header::LOCATION, start.url.to_string())], [(header::SET_COOKIE, set_cookie)]).into_response())
}

/// Herald's own page for a connector the platform has no consent page for: the adapter's fields,
/// posted with the state to the callback (`POST`, so nothing typed lands in a URL or a log).
fn sign_in_page(form: &crate::platforms::SignInForm, action: &Url, state: &str) -> String {
    let fields: String = form
        .fields
        .iter()
        .map(|f| {
            format!(
                r#"<p><label>{label}<br><input name="{name}" type="{kind}" autocomplete="{auto}" required style="width:100%"></label></p>"#,
                label = escape(f.label),
                name = escape(f.name),
                kind = if f.secret { "password" } else { "text" },
                auto = escape(f.autocomplete),
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:4em auto">
<h1>{title}</h1><p>{intro}</p>
<form method="post" action="{action}"><input type="hidden" name="state" value="{state}">{fields}
<button type="submit">Connect</button></form>
</body></html>"#,
        title = escape(form.title),
        intro = escape(form.intro),
        action = escape(action.path()),
        state = escape(state),
    )
}

/// A callback from a browser that did not start the flow: an error page (or a problem document
/// for a client that does not ask for HTML), never the tenant's URL.
fn foreign_browser(headers: &HeaderMap) -> Response {
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    let title = "This connection was started in another browser";
    let detail = "For your safety, an account can only be connected from the browser that opened the connect \
                  link. Go back to the application and start again from there.";
    if !wants_html {
        return Problem::new(StatusCode::FORBIDDEN, "browser_mismatch", title).detail(detail).into_response();
    }
    let html = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:4em auto">
<h1>{title}</h1><p>{detail}</p><p><small>Error: browser_mismatch</small></p>
</body></html>"#
    );
    page(StatusCode::FORBIDDEN, html)
}

/// The platform's own error codes for a user who said no.
fn denied(params: &HashMap<String, String>) -> Option<&'static str> {
    if params.contains_key("denied") {
        return Some("access_denied");
    }
    match params.get("error").map(String::as_str) {
        None => None,
        Some("access_denied" | "user_cancelled_login" | "user_cancelled_authorize") => Some("access_denied"),
        Some(_) => Some("authorization_failed"),
    }
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(platform): ApiPath<String>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Response, Problem> {
    complete(state, headers, platform, params).await
}

/// `POST /oauth/{platform}/callback`: Herald's own sign-in form ([`sign_in_page`]), its fields
/// and state in the body.
async fn form_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(platform): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let params = url::form_urlencoded::parse(&body).into_owned().collect();
    complete(state, headers, platform, params).await
}

/// The callback, from the platform's redirect or Herald's form: the state is consumed, the
/// browser checked, and the adapter finishes with the parameters.
async fn complete(
    state: AppState,
    headers: HeaderMap,
    platform: String,
    params: HashMap<String, String>,
) -> Result<Response, Problem> {
    let invalid =
        || Problem::new(StatusCode::BAD_REQUEST, "state_invalid", "This authorization is not one Herald started");
    let platform: Platform = platform.parse().map_err(|_| invalid())?;
    // X's OAuth 1.0a callback carries the request token (or `denied=<token>`) instead of a state.
    let key = params.get("state").or(params.get("oauth_token")).or(params.get("denied")).ok_or_else(invalid)?;
    // Consumed whoever presents it: a state that reached the wrong browser is spent.
    let (pending, refused) = match state.connect.consume_state(key).await {
        Ok(pending) => (pending, None),
        Err(ConsumeError::Replayed(pending)) => (pending, Some("state_invalid")),
        Err(ConsumeError::Expired(pending)) => (pending, Some("state_expired")),
        Err(ConsumeError::Unknown) => return Err(invalid()),
        Err(ConsumeError::Store(e)) => return Err(e.into()),
    };
    let base = super::base_url(&state, &headers)?;
    if !BrowserCookie::for_public_url(&base).matches(&headers, &pending.browser) {
        tracing::warn!(platform = %platform, tenant = %pending.tenant, "an authorization came back to another browser; refused");
        return Ok(foreign_browser(&headers));
    }
    if let Some(code) = refused {
        return Ok(failed(&pending.return_to, code));
    }
    if pending.platform != platform {
        return Ok(failed(&pending.return_to, "state_invalid"));
    }
    if let Some(error) = denied(&params) {
        return Ok(failed(&pending.return_to, error));
    }
    let auth = PendingAuth { key: key.clone(), secret: pending.secret.clone(), connector: pending.connector.clone() };
    // A step of Herald's own page that leads on to the platform (a Mastodon user's server): a new
    // state, bound to the same browser, and the browser sent to the platform's consent page.
    match state.platforms.proceed(platform, &auth, &params, &base).await {
        Ok(None) => {}
        Ok(Some(next)) => {
            let onward = OAuthState {
                connector: next.pending.connector,
                secret: next.pending.secret,
                expires_at: state.clock.now() + STATE_TTL,
                ..pending
            };
            state.connect.put_state(&next.pending.key, &onward).await?;
            return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, next.url.to_string())]).into_response());
        }
        Err(e) => {
            tracing::warn!(platform = %platform, error = %e, "could not reach the user's server");
            let code = match e {
                PlatformError::Refused { .. } | PlatformError::Unexpected { .. } => "server_invalid",
                _ => "platform_unavailable",
            };
            return Ok(failed(&pending.return_to, code));
        }
    }
    let discovered = match state.platforms.finish(platform, &auth, &params, &base).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(platform = %platform, error = %e, "the authorization could not be completed");
            let unavailable = matches!(e, PlatformError::Transient { .. } | PlatformError::RateLimited { .. });
            let code = if unavailable { "platform_unavailable" } else { "exchange_failed" };
            return Ok(failed(&pending.return_to, code));
        }
    };
    if discovered.is_empty() {
        return Ok(failed(&pending.return_to, "no_accounts"));
    }
    let ids = state.connections.connect(&pending.tenant, &pending.user, discovered).await?;
    let joined: Vec<&str> = ids.iter().map(AccountId::as_str).collect();
    Ok(back(
        &pending.return_to,
        &[("status", "connected"), ("platform", platform.as_str()), ("accounts", &joined.join(","))],
    ))
}

/// `GET /oauth/{platform}/client-metadata.json`: Herald's OAuth client as the platform reads it
/// (atproto OAuth's `client_id` is this document's URL), on the host the request reached.
async fn client_metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(platform): ApiPath<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found("not_found", "No client metadata for this platform");
    let platform: Platform = platform.parse().map_err(|_| not_found())?;
    let base = super::base_url(&state, &headers)?;
    let document = state.platforms.client_metadata(platform, &base).ok_or_else(not_found)?;
    Ok(([(header::CACHE_CONTROL, "max-age=300")], axum::Json(document)).into_response())
}

async fn disconnect(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiPath((user, account_id)): ApiPath<(String, String)>,
) -> Result<Response, Problem> {
    let user = parse_user(user)?;
    let not_found = || Problem::not_found("account_not_found", "No such account for this user");
    let account_id = AccountId::parse(account_id).map_err(|_| not_found())?;
    if !state.connections.disconnect(&tenant, &user, &account_id).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
