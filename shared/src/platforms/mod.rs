//! The platforms: one folder each (`x/`, `meta/`, `linkedin/`) behind one trait
//! ([`adapter`]'s `Adapter`, chosen by its one registry), and the client they share. Callers
//! never see whether a platform speaks OAuth 1.0a or 2.0.
//!
//! Every outbound call goes through [`PlatformClient::send`], which logs one structured line
//! (platform, endpoint template, status, latency) and never the URL's query or any body. Each
//! platform's refusal reader turns its answers into Herald's classes: the platform refused
//! ([`PlatformError::Refused`]), it could not be reached or failed on its side
//! ([`PlatformError::Transient`]), it is throttling ([`PlatformError::RateLimited`]), or it
//! answered something we cannot read ([`PlatformError::Unexpected`]).

mod adapter;
pub use adapter::RateHeaders;
mod bluesky;
mod containers;
mod linkedin;
mod mastodon;
mod meta;
pub mod oauth1;
mod oauth2;
pub mod publish;
pub mod rules;
pub mod settings;
mod threads;
pub mod webhooks;
mod x;

use std::time::{Duration, Instant};

use secrecy::SecretString;
use time::OffsetDateTime;
use url::Url;

use crate::clock::SharedClock;
use crate::domain::post::Call;
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountKind, Platform};
use adapter::adapter;

use crate::platforms::settings::{PlatformApps, PlatformEndpoints};

#[derive(Debug, Clone, thiserror::Error)]
pub enum PlatformError {
    /// The platform said no: denied permission, invalid request, a refused refresh.
    #[error("{platform} refused ({status}): {code}")]
    Refused { platform: Platform, status: u16, code: String, message: String },
    /// The platform refused the account's token on an API call, in its own words (X and
    /// LinkedIn: HTTP 401; Meta: OAuthException code 190, which Graph sends with HTTP 400): the
    /// token must be refreshed, or where it cannot be, the user must connect again.
    #[error("{platform} refused the token ({status}): {code}")]
    Unauthorized { platform: Platform, status: u16, code: String, message: String },
    /// Network failure, timeout, 5xx or throttling: worth retrying later.
    #[error("{platform} failed or could not be reached: {detail}")]
    Transient { platform: Platform, detail: String },
    /// An answer we cannot read, to a call that creates nothing (a step before the creating call,
    /// or a read): nothing was published, so it is tried again. (An unreadable answer to the
    /// creating call itself is [`Ambiguous`](Self::Ambiguous).)
    #[error("{platform} answered something unexpected: {detail}")]
    Unexpected { platform: Platform, detail: String },
    #[error("{0} is not configured on this deployment")]
    NotConfigured(Platform),
    /// Herald could not use the post's media (refused by the egress policy, unreachable, too
    /// large): the tenant's to fix, not the platform's answer.
    #[error("the media could not be used: {message}")]
    Media { code: &'static str, message: String },
    /// The app's quota with the platform is spent (X's usage cap: the plan's monthly cap or the
    /// pay-per-use spend): no retry helps until the operator raises it.
    #[error("{platform}: the app's usage cap is spent: {message}")]
    QuotaExhausted { platform: Platform, message: String },
    /// Over the platform's limit; `retry_at` (Unix seconds) when it says or we can tell.
    #[error("{platform} is rate limiting")]
    /// `app_wide`: the limit is the app's (every account waits), not this account's.
    RateLimited { platform: Platform, retry_at: Option<i64>, app_wide: bool },
    /// The request may have reached the platform (timeout or dropped connection after sending):
    /// it must not be resent blindly.
    #[error("{platform} may have applied the request: {detail}")]
    Ambiguous { platform: Platform, detail: String },
    /// What this attempt made is still being processed by the platform (Instagram's media
    /// containers): the next attempt, `retry_in` seconds on, comes back to `resume` instead of
    /// making it again. Nothing was published.
    #[error("{platform} is still processing the media: {detail}")]
    Processing { platform: Platform, resume: String, retry_in: u64, detail: String },
    /// Not sent: the call could not finish before the caller's deadline ([`with_deadline`]).
    #[error("{platform} was not called: the attempt's deadline is too near")]
    Deferred { platform: Platform },
}

tokio::task_local! {
    static DEADLINE: Instant;
    static CALLS: std::cell::RefCell<Vec<Call>>;
}

/// Runs `work`, keeping the platform calls it makes (endpoint, status, the platform's request
/// id) for the attempt's history: the first [`Report::MAX_CALLS`](crate::domain::post::Report).
pub async fn recording<F: std::future::Future>(work: F) -> (F::Output, Vec<Call>) {
    CALLS
        .scope(std::cell::RefCell::new(Vec::new()), async move {
            let output = work.await;
            (output, CALLS.with(|calls| calls.take()))
        })
        .await
}

/// Keeps `call` where [`recording`] runs.
fn record(call: Call) {
    let _ = CALLS.try_with(|calls| {
        let mut calls = calls.borrow_mut();
        if calls.len() < crate::domain::post::Report::MAX_CALLS {
            calls.push(call);
        }
    });
}

/// The platform's id for a request, from the answer's header that carries it, if it looks like
/// one (at most 64 of the characters such ids use): it is shown to tenants.
fn platform_request_id(platform: Platform, headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(adapter(platform).request_id_header()?)?.to_str().ok()?;
    let plausible = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-.:".contains(&b));
    plausible.then(|| value.to_owned())
}

/// Runs `work` with a deadline for its platform calls: a call that could not finish before it
/// (its timeout would run past) is not sent and fails with [`PlatformError::Deferred`]. Calls
/// already sent are never cut short, so no effect becomes ambiguous because of the deadline.
/// The posts function gives its first attempt one below the HTTP API's 30 s (AWS audit F14).
pub async fn with_deadline<F: std::future::Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

impl PlatformError {
    /// Whether the failure means the grant itself is dead (the user must connect again).
    pub fn is_dead_grant(&self) -> bool {
        match self {
            PlatformError::Unauthorized { .. } => true,
            // A token endpoint refusing the grant (RFC 6749 §5.2 `invalid_grant`; X answers
            // `invalid_request` for a refresh token it no longer knows). `invalid_client` is
            // Herald's app credentials, not the user's grant.
            PlatformError::Refused { code, .. } => code == "invalid_grant" || code == "invalid_request",
            _ => false,
        }
    }
}

/// What Herald keeps between the redirect to the platform and the callback.
#[derive(Debug, Clone)]
pub struct PendingAuth {
    /// The key the callback is matched on: our `state`, or X's OAuth 1.0a request token.
    pub key: String,
    /// OAuth 2.0 PKCE verifier, or the OAuth 1.0a request-token secret.
    pub secret: Option<SecretString>,
    /// Which of the platform's connectors the flow uses, as its adapter names it (X: `oauth2`
    /// or `oauth1`); only the adapter reads it, at the callback.
    pub connector: String,
}

pub struct AuthorizeStart {
    /// Where the browser goes next: the platform's consent page, or, with `form`, where Herald's
    /// own form posts to (the callback).
    pub url: Url,
    pub pending: PendingAuth,
    /// Herald's own page asks the user for what the platform needs instead of sending them to
    /// the platform (Bluesky's app passwords): the page's wording and fields.
    pub form: Option<&'static SignInForm>,
}

/// A form Herald shows for a connector whose platform has no consent page of its own; what the
/// user enters is posted to the callback and reaches the adapter's `finish` as its parameters.
#[derive(Debug)]
pub struct SignInForm {
    pub title: &'static str,
    /// A sentence above the fields: what to enter and where to get it.
    pub intro: &'static str,
    pub fields: &'static [FormField],
}

#[derive(Debug)]
pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    /// Shown as dots and never kept by the browser (`type=password`).
    pub secret: bool,
    /// The `autocomplete` hint (`username`, `off`).
    pub autocomplete: &'static str,
}

/// An account found after a successful authorization, with the grant it publishes with.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub platform: Platform,
    pub platform_account_id: String,
    pub name: String,
    pub kind: AccountKind,
    pub scopes: Vec<String>,
    pub grant: Grant,
    /// Publishes with another discovered account's grant (LinkedIn organizations use the
    /// member's): the index of that account in the same list.
    pub token_source: Option<usize>,
    /// The platform's id of the user who granted access, where it differs from the account
    /// (Meta: the Facebook user behind Pages and Instagram accounts). Meta's deauthorize and
    /// data-deletion callbacks name this user.
    pub grantor: Option<String>,
}

/// Tokens and their lifetimes.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tokens: TokenSet,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
}

/// The parameters the platform sent to the callback URL.
pub type CallbackParams = std::collections::HashMap<String, String>;

pub struct PlatformClient {
    http: reqwest::Client,
    endpoints: PlatformEndpoints,
    apps: PlatformApps,
    clock: SharedClock,
    /// Media downloads from tenant-supplied URLs go through the egress policy, never `http`.
    egress: std::sync::Arc<crate::egress::Egress>,
    /// Herald's apps on servers a user names (a Mastodon instance's), registered on first use.
    server_apps: Option<std::sync::Arc<dyn ServerApps>>,
}

/// Where Herald keeps the apps it registers on servers users name (a Mastodon instance has its
/// own app registry: `POST /api/v1/apps`), one per platform and server; the store implements it
/// (`store::server_apps`), sealing each secret.
pub trait ServerApps: Send + Sync {
    /// The app registered on `server` (a host name), if any.
    fn get<'a>(
        &'a self,
        platform: Platform,
        server: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<settings::AppCredentials>, crate::BoxError>>;

    /// Keeps `app` for `server` unless one is kept already; the one kept (the first registered
    /// wins a race, so every connection to a server uses one app).
    fn put<'a>(
        &'a self,
        platform: Platform,
        server: &'a str,
        app: &'a settings::AppCredentials,
    ) -> futures_util::future::BoxFuture<'a, Result<settings::AppCredentials, crate::BoxError>>;
}

impl std::fmt::Debug for PlatformClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformClient").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

impl PlatformClient {
    pub fn new(
        endpoints: PlatformEndpoints,
        apps: PlatformApps,
        clock: SharedClock,
        egress: std::sync::Arc<crate::egress::Egress>,
    ) -> Self {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            // Mozilla's roots, compiled in: the platform verifier's default parses the system's CA
            // bundle at every cold start (docs/benchmarks.md).
            .tls_backend_preconfigured(crate::tls::config())
            // OAuth endpoints must not be followed across redirects (oauth2-rs's advice).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(endpoints.timeout)
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is valid");
        Self { http, endpoints, apps, clock, egress, server_apps: None }
    }

    /// With the registry of apps on users' servers (without one, such platforms cannot connect).
    pub fn with_server_apps(mut self, server_apps: std::sync::Arc<dyn ServerApps>) -> Self {
        self.server_apps = Some(server_apps);
        self
    }

    /// A request to a host a user named or their identity points to (a Bluesky PDS, a Mastodon
    /// instance): reached only under the egress policy (public https hosts), like a tenant's URL.
    fn user_host_request(
        &self,
        platform: Platform,
        method: reqwest::Method,
        url: &Url,
    ) -> Result<reqwest::RequestBuilder, PlatformError> {
        self.egress.request(method, url).map(|r| r.timeout(self.endpoints.timeout)).map_err(|refusal| {
            PlatformError::Refused {
                platform,
                status: 0,
                code: "host_not_allowed".into(),
                message: refusal.to_string(),
            }
        })
    }

    pub fn endpoints(&self) -> &PlatformEndpoints {
        &self.endpoints
    }

    /// Whether this deployment has an app for `platform` through `connector` (the tenant's
    /// choice among [`connectors`]; `None` for the platform's default).
    pub fn configured(&self, platform: Platform, connector: Option<&str>) -> bool {
        adapter(platform).configured(&self.apps, connector_or_default(platform, connector))
    }

    /// Where to send the user's browser, and what to remember until the callback. `base` is
    /// Herald's public base URL (callbacks are `{base}/oauth/{platform}/callback`); `connector`
    /// as for [`configured`](Self::configured).
    pub async fn start(
        &self,
        platform: Platform,
        connector: Option<&str>,
        base: &Url,
    ) -> Result<AuthorizeStart, PlatformError> {
        let callback = redirect_uri(base, platform);
        adapter(platform).start(self, connector_or_default(platform, connector), &callback).await
    }

    /// Herald's client metadata document for `platform` (served at
    /// `/oauth/{platform}/client-metadata.json`), where its OAuth takes one.
    pub fn client_metadata(&self, platform: Platform, base: &Url) -> Option<serde_json::Value> {
        adapter(platform).client_metadata(&redirect_uri(base, platform))
    }

    /// What a step of Herald's own page leads to before the platform's consent (a Mastodon
    /// user's server, then its consent page): `Some` to send the browser on, with a new pending
    /// authorization; `None` when the callback completes the authorization ([`finish`](Self::finish)).
    pub async fn proceed(
        &self,
        platform: Platform,
        pending: &PendingAuth,
        params: &CallbackParams,
        base: &Url,
    ) -> Result<Option<AuthorizeStart>, PlatformError> {
        let callback = redirect_uri(base, platform);
        adapter(platform).proceed(self, pending, params, &callback).await
    }

    /// Completes the authorization from the callback's parameters and discovers the accounts.
    pub async fn finish(
        &self,
        platform: Platform,
        pending: &PendingAuth,
        params: &CallbackParams,
        base: &Url,
    ) -> Result<Vec<Discovered>, PlatformError> {
        let callback = redirect_uri(base, platform);
        adapter(platform).finish(self, pending, params, &callback).await
    }

    /// Exchanges a refresh token for a new grant. `Ok(None)`: this grant cannot be refreshed
    /// (Page tokens, OAuth 1.0a tokens, LinkedIn apps without refresh tokens).
    pub async fn refresh(&self, platform: Platform, tokens: &TokenSet) -> Result<Option<Grant>, PlatformError> {
        let Some(refresh_token) = &tokens.refresh_token else { return Ok(None) };
        adapter(platform).refresh(self, refresh_token, tokens).await
    }

    /// Revokes the grant at the platform where it has a revoke endpoint (X OAuth 2.0).
    pub async fn revoke(&self, platform: Platform, tokens: &TokenSet) -> Result<(), PlatformError> {
        adapter(platform).revoke(self, tokens).await
    }

    /// Sends one platform call and logs it: platform, endpoint template, status, latency.
    /// Any transport failure is transient (for reads and steps that are safe to repeat).
    async fn send(
        &self,
        platform: Platform,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, PlatformError> {
        self.send_logged(platform, endpoint, request, false).await
    }

    /// Sends a request that creates something (the final publish call): a failure after the
    /// connection was made is [`PlatformError::Ambiguous`], never plain transient.
    async fn send_effect(
        &self,
        platform: Platform,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, PlatformError> {
        self.send_logged(platform, endpoint, request, true).await
    }

    async fn send_logged(
        &self,
        platform: Platform,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
        effect: bool,
    ) -> Result<reqwest::Response, PlatformError> {
        let started = Instant::now();
        if DEADLINE.try_with(|deadline| started + self.endpoints.timeout > *deadline).unwrap_or(false) {
            tracing::info!(platform = %platform, endpoint, "not called: the attempt's deadline is too near");
            return Err(PlatformError::Deferred { platform });
        }
        let result = request.send().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let err = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let platform_request_id = platform_request_id(platform, response.headers());
                record(Call {
                    endpoint: endpoint.to_owned(),
                    status: Some(status),
                    platform_request_id: platform_request_id.clone(),
                });
                tracing::info!(
                    platform = %platform,
                    endpoint,
                    status,
                    latency_ms,
                    rate_limit_remaining = header("x-rate-limit-remaining"),
                    rate_limit_reset = header("x-rate-limit-reset"),
                    app_usage = header("x-app-usage"),
                    platform_request_id,
                    "platform call"
                );
                return Ok(response);
            }
            Err(err) => err,
        };
        let kind = if err.is_timeout() {
            "timeout"
        } else if err.is_connect() {
            "connect"
        } else {
            "transport"
        };
        tracing::warn!(platform = %platform, endpoint, status = 0, latency_ms, error = kind, "platform call failed");
        record(Call { endpoint: endpoint.to_owned(), status: None, platform_request_id: None });
        if effect && !err.is_connect() {
            Err(PlatformError::Ambiguous { platform, detail: format!("{kind} after the request was sent") })
        } else {
            Err(PlatformError::Transient { platform, detail: format!("{kind} error") })
        }
    }

    /// The failure an answer's status means, if any: 5xx is transient; any other non-2xx,
    /// 429 included, is the platform's own reader's (`refusal`) to classify, since a 429 is not
    /// always throttling (X's usage cap).
    fn classify(platform: Platform, answer: &Answer, refusal: Refusal) -> Result<(), PlatformError> {
        match answer.status {
            500.. => Err(PlatformError::Transient { platform, detail: format!("status {}", answer.status) }),
            200..=299 => Ok(()),
            _ => Err(refusal(platform, answer)),
        }
    }

    /// Sends, then reads the answer's headers and body; classifies non-2xx answers with
    /// `refusal`. For calls that create nothing (the creating call is `read_effect`'s).
    async fn answer(
        &self,
        platform: Platform,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
        refusal: Refusal,
    ) -> Result<(reqwest::header::HeaderMap, axum::body::Bytes), PlatformError> {
        let response = self.send(platform, endpoint, request).await?;
        self.read_answer(platform, response, refusal).await
    }

    /// Reads an answer to a call that creates nothing: its headers and body, non-2xx answers
    /// classified with `refusal`.
    async fn read_answer(
        &self,
        platform: Platform,
        response: reqwest::Response,
        refusal: Refusal,
    ) -> Result<(reqwest::header::HeaderMap, axum::body::Bytes), PlatformError> {
        let status = response.status().as_u16();
        let now = self.clock.now();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|_| PlatformError::Transient { platform, detail: "the answer was cut off".into() })?;
        Self::classify(platform, &Answer::read(platform, status, &body, &headers, now), refusal)?;
        Ok((headers, body))
    }

    /// As [`answer`](Self::answer), reading the body as JSON.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        platform: Platform,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
        refusal: Refusal,
    ) -> Result<T, PlatformError> {
        let (_, body) = self.answer(platform, endpoint, request, refusal).await?;
        serde_json::from_slice(&body).map_err(|e| PlatformError::Unexpected { platform, detail: e.to_string() })
    }
}

/// Bluesky's rich text as Herald finds it: the grapheme count and each facet as
/// `{"start", "end", "feature"}` (a mention's `did` left as its handle), for the test that holds
/// it to Bluesky's own client (tests/it/bluesky.rs).
#[doc(hidden)]
pub fn bluesky_rich_text(text: &str) -> (usize, Vec<serde_json::Value>) {
    bluesky::rich_text(text)
}

/// The ways a user can authorize `platform` (a tenant may choose one: `PATCH /v1/tenant`
/// `{connectors}`); the first is the default.
pub fn connectors(platform: Platform) -> &'static [&'static str] {
    adapter(platform).connectors()
}

/// The tenant's connector where it names one of the platform's, else the default.
fn connector_or_default(platform: Platform, connector: Option<&str>) -> &'static str {
    let known = connectors(platform);
    connector.and_then(|c| known.iter().find(|k| **k == c)).copied().unwrap_or(known[0])
}

/// Whose users a grantor id of `platform` names: Facebook and Instagram share Meta's.
pub fn grantor_family(platform: Platform) -> &'static str {
    adapter(platform).grantor_family()
}

/// Every platform's published limits on publishing, as its adapter states them.
pub fn budgets() -> Vec<crate::domain::budget::Budget> {
    Platform::ALL.into_iter().flat_map(|platform| adapter(platform).budgets()).collect()
}

/// A platform's answer as its reader sees it: the status, the body, when a throttled call may be
/// tried again by the headers (or the platform's default), and Herald's clock then (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub retry_at: i64,
    /// Whether the headers said `retry_at` (else it is the platform's default).
    pub said: bool,
    pub now: i64,
    /// The rest of what the headers say, for readers whose platform says more (X's 24-hour
    /// limits).
    pub headers: &'a reqwest::header::HeaderMap,
}

impl<'a> Answer<'a> {
    fn read(
        platform: Platform,
        status: u16,
        body: &'a [u8],
        headers: &'a reqwest::header::HeaderMap,
        now: OffsetDateTime,
    ) -> Self {
        let said = said_retry_at(headers, now);
        let retry_at = said.unwrap_or_else(|| adapter(platform).unsaid_retry_at(now.unix_timestamp()));
        Self { status, body, retry_at, said: said.is_some(), now: now.unix_timestamp(), headers }
    }
}

/// One platform's reader of its refusals: an answer that is not 2xx or 5xx as Herald's class.
pub(crate) type Refusal = fn(Platform, &Answer) -> PlatformError;

/// A throttled answer that may be tried again at `retry_at`, for this account only (what most
/// platforms' 429 means).
pub(crate) fn throttled(platform: Platform, retry_at: i64) -> PlatformError {
    PlatformError::RateLimited { platform, retry_at: Some(retry_at), app_wide: false }
}

/// A header's value, where it is text.
pub(crate) fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Herald's callback URL for a platform under `base`, as registered with the platform's app.
pub fn redirect_uri(base: &Url, platform: Platform) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("/oauth/{platform}/callback"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// When a throttled call may be tried again: X's `x-rate-limit-reset`, `Retry-After`, Meta's
/// `estimated_time_to_regain_access` (minutes); else what the platform's adapter assumes
/// ([`adapter::Adapter::unsaid_retry_at`]: 15 minutes, LinkedIn's next midnight UTC).
#[cfg(test)]
pub(crate) fn retry_at(platform: Platform, headers: &reqwest::header::HeaderMap, now: OffsetDateTime) -> i64 {
    said_retry_at(headers, now).unwrap_or_else(|| adapter(platform).unsaid_retry_at(now.unix_timestamp()))
}

/// When the answer's headers say a throttled call may be tried again, where they say.
fn said_retry_at(headers: &reqwest::header::HeaderMap, now: OffsetDateTime) -> Option<i64> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let now_s = now.unix_timestamp();
    if let Some(reset) = header("x-rate-limit-reset").and_then(|v| v.parse::<i64>().ok()) {
        return Some(reset.max(now_s));
    }
    if let Some(after) = header("retry-after").and_then(|v| v.parse::<i64>().ok()) {
        return Some(now_s.saturating_add(after.max(0)));
    }
    if let Some(minutes) = header("x-business-use-case-usage")
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .and_then(|usage| {
            usage
                .as_object()?
                .values()
                .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["estimated_time_to_regain_access"].as_i64())
                .max()
        })
        .filter(|m| *m > 0)
    {
        return Some(now_s.saturating_add(minutes.saturating_mul(60)));
    }
    None
}

/// When a lifetime of `seconds` from `now` ends. A platform's `expires_in` is untrusted input: a
/// value past the end of time reads as "no expiry known", never as a panic (release builds abort
/// on panic, which would end the invocation).
pub(crate) fn lifetime_end(now: OffsetDateTime, seconds: i64) -> Option<OffsetDateTime> {
    now.checked_add(time::Duration::seconds(seconds))
}

/// How a platform's answer is classified, as one line a table row can state: what
/// [`PlatformClient::classify`] makes of `status` and `body` (429 and 5xx first, then the
/// platform's `refusal`), with `retry_at` 1900 for a throttled answer.
#[cfg(test)]
pub(crate) fn classified(platform: Platform, status: u16, body: &str, refusal: Refusal) -> String {
    let headers = reqwest::header::HeaderMap::new();
    let answer = Answer { status, body: body.as_bytes(), retry_at: 1900, said: true, now: 1000, headers: &headers };
    match PlatformClient::classify(platform, &answer, refusal) {
        Ok(()) => "ok".into(),
        Err(e @ PlatformError::Refused { .. }) => {
            let PlatformError::Refused { status, code, .. } = &e else { unreachable!() };
            format!("refused {status} {code}{}", if e.is_dead_grant() { " dead" } else { "" })
        }
        Err(PlatformError::Unauthorized { status, code, .. }) => format!("unauthorized {status} {code}"),
        Err(PlatformError::QuotaExhausted { .. }) => "quota_exhausted".into(),
        Err(PlatformError::RateLimited { retry_at: Some(at), app_wide, .. }) => {
            format!("rate_limited until {at}{}", if app_wide { " app" } else { "" })
        }
        Err(PlatformError::RateLimited { retry_at: None, .. }) => "rate_limited".into(),
        Err(PlatformError::Transient { .. }) => "transient".into(),
        Err(other) => format!("other: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_with(endpoints: PlatformEndpoints) -> PlatformClient {
        let app = || Some(settings::AppCredentials { client_id: "cid".into(), client_secret: "sec".to_owned().into() });
        let apps = PlatformApps { x: app(), meta: app(), linkedin: app(), threads: app(), ..PlatformApps::default() };
        let egress = std::sync::Arc::new(crate::egress::Egress::new(&crate::egress::EgressSettings::default()));
        PlatformClient::new(endpoints, apps, std::sync::Arc::new(crate::SystemClock), egress)
    }

    /// A platform's request id is kept from the header it names, and only if it looks like one
    /// (it is shown to tenants); X names none.
    #[test]
    fn a_platforms_request_id_is_kept_only_from_its_own_plausible_header() {
        let headers = |name: &str, value: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
            map
        };
        let id = |platform, name, value| platform_request_id(platform, &headers(name, value));
        assert_eq!(id(Platform::Facebook, "x-fb-trace-id", "AbC+/9_="), Some("AbC+/9_=".into()));
        assert_eq!(id(Platform::Instagram, "x-fb-trace-id", "Ab1"), Some("Ab1".into()));
        assert_eq!(id(Platform::Threads, "x-fb-trace-id", "Ab1"), Some("Ab1".into()));
        assert_eq!(
            id(Platform::Linkedin, "x-li-uuid", "rjJaaGZloRVAuzITOSsAAA=="),
            Some("rjJaaGZloRVAuzITOSsAAA==".into())
        );
        assert_eq!(id(Platform::Mastodon, "x-request-id", "5f3c-a1"), Some("5f3c-a1".into()));
        assert_eq!(id(Platform::Linkedin, "x-fb-trace-id", "Ab1"), None, "another platform's header");
        assert_eq!(id(Platform::X, "x-request-id", "Ab1"), None);
        assert_eq!(id(Platform::Facebook, "x-fb-trace-id", "<b>hi</b>"), None);
        assert_eq!(id(Platform::Facebook, "x-fb-trace-id", &"a".repeat(65)), None);
    }

    /// Each platform's consent page in production, as its OAuth 2.0 dialect (data in its folder)
    /// builds it: the documented URL, the scopes and their separator, PKCE where the platform
    /// takes it. Sources: docs.x.com `authentication/oauth-2-0/authorization-code`;
    /// developers.facebook.com `facebook-login/guides/advanced/manual-flow`;
    /// learn.microsoft.com `linkedin/shared/authentication/authorization-code-flow`;
    /// developers.facebook.com `documentation/threads/get-started/get-access-tokens-and-permissions`.
    #[tokio::test]
    async fn consent_pages_follow_each_dialect() {
        let client = client_with(PlatformEndpoints::production());
        let base = Url::parse("https://herald.example.com").unwrap();
        let rows = [
            (
                Platform::X,
                "https://x.com/i/oauth2/authorize",
                "tweet.read tweet.write users.read media.write offline.access",
                true,
            ),
            (
                Platform::Facebook,
                "https://www.facebook.com/v26.0/dialog/oauth",
                "pages_show_list,pages_manage_posts,pages_read_engagement,business_management",
                true,
            ),
            (
                Platform::Instagram,
                "https://www.facebook.com/v26.0/dialog/oauth",
                "pages_show_list,pages_read_engagement,instagram_basic,instagram_content_publish,business_management",
                true,
            ),
            (
                Platform::Linkedin,
                "https://www.linkedin.com/oauth/v2/authorization",
                "openid profile w_member_social",
                false,
            ),
            (
                Platform::Threads,
                "https://threads.com/oauth/authorize",
                "threads_basic,threads_content_publish,threads_delete",
                false,
            ),
        ];
        for (platform, page, scopes, pkce) in rows {
            let start = client.start(platform, None, &base).await.unwrap();
            let mut url = start.url.clone();
            let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
            url.set_query(None);
            assert_eq!(url.as_str(), page, "{platform}");
            assert_eq!(query["scope"], scopes, "{platform}");
            assert_eq!(query["response_type"], "code", "{platform}");
            assert_eq!(query["client_id"], "cid", "{platform}");
            assert_eq!(query["redirect_uri"], format!("https://herald.example.com/oauth/{platform}/callback"));
            assert_eq!(query["state"], start.pending.key, "{platform}");
            assert_eq!(query.get("code_challenge_method").map(String::as_str), pkce.then_some("S256"), "{platform}");
            assert_eq!(start.pending.secret.is_some(), pkce, "{platform}: the verifier is kept");
            assert_eq!(start.pending.connector, "oauth2");
        }
    }

    /// A tenant's connector is used where the platform has it, else the default; X's OAuth 1.0a
    /// needs its own app.
    #[test]
    fn connectors_default_to_the_first() {
        let client = client_with(PlatformEndpoints::production());
        assert_eq!(connectors(Platform::X), ["oauth2", "oauth1"]);
        assert_eq!(connectors(Platform::Linkedin), ["oauth2"]);
        assert_eq!(connector_or_default(Platform::X, Some("oauth1")), "oauth1");
        assert_eq!(connector_or_default(Platform::X, Some("nonsense")), "oauth2");
        assert_eq!(connector_or_default(Platform::Facebook, Some("oauth1")), "oauth2");
        assert!(client.configured(Platform::X, None) && !client.configured(Platform::X, Some("oauth1")));
    }

    /// When a throttled platform may be called again, from its answer's headers (now = 1000).
    #[test]
    fn retry_times_come_from_each_platforms_headers() {
        let now = OffsetDateTime::from_unix_timestamp(1000).unwrap();
        type Headers = &'static [(&'static str, &'static str)];
        let rows: [(Platform, Headers, i64); 7] = [
            (Platform::X, &[("x-rate-limit-reset", "1900")], 1900),
            // A reset already past is now, not the past.
            (Platform::X, &[("x-rate-limit-reset", "500")], 1000),
            (Platform::X, &[("retry-after", "120")], 1120),
            (
                Platform::Facebook,
                &[(
                    "x-business-use-case-usage",
                    r#"{"104":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":7}]}"#,
                )],
                1420,
            ),
            // Nothing said: 15 minutes, or for LinkedIn (daily limits) the next UTC midnight
            // (issue 16 item 6 revisits both).
            (Platform::Facebook, &[], 1900),
            (Platform::Linkedin, &[], 86_400),
            (Platform::X, &[("x-rate-limit-reset", "soon")], 1900),
        ];
        for (platform, pairs, want) in rows {
            let mut headers = reqwest::header::HeaderMap::new();
            for (k, v) in pairs {
                headers.insert(*k, reqwest::header::HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(retry_at(platform, &headers, now), want, "{platform} {pairs:?}");
        }
    }
}
