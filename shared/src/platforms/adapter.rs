//! One trait per platform, and the registry: the one `match` on the platform that chooses its
//! adapter. [`PlatformClient`]'s methods (start, finish, refresh, revoke, publish) go through
//! [`adapter`]; each platform's folder (`x/`, `meta/`, `linkedin/`) implements [`Adapter`] and
//! holds everything of its dialect.
//!
//! The methods return boxed futures so the registry can hand out `&'static dyn Adapter`; one
//! allocation per platform call, next to an HTTPS round trip.

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use time::OffsetDateTime;
use url::Url;

use super::publish::{Listing, Lookup, Outgoing, Published, Throttle};
use super::settings::{AppCredentials, PlatformApps};
use super::{AuthorizeStart, CallbackParams, Discovered, Grant, PendingAuth, PlatformClient, PlatformError};
use crate::domain::budget::Budget;
use crate::domain::post::{Broken, Media};
use crate::domain::tokens::TokenSet;
use crate::domain::{AccountKind, Platform};
use crate::store::Account;

pub(super) type Answer<'a, T> = BoxFuture<'a, Result<T, PlatformError>>;

/// The rate-limit headers a platform documents on a call, and which of them its answer carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHeaders {
    /// The call, as logged (`GET /2/users/me`).
    pub endpoint: &'static str,
    pub expected: &'static [&'static str],
    pub seen: Vec<&'static str>,
}

/// Everything Herald does with one platform.
pub(super) trait Adapter: Send + Sync {
    /// The ways a user can authorize this platform, by the names a tenant's setting and a
    /// pending authorization use; the first is the default (X: `oauth2`, `oauth1`).
    fn connectors(&self) -> &'static [&'static str] {
        &[super::oauth2::CONNECTOR]
    }

    /// This deployment's app for the platform, for one of its connectors.
    fn app<'a>(&self, apps: &'a PlatformApps, connector: &str) -> Option<&'a AppCredentials>;

    /// Whether this deployment has an app for the platform's connector.
    fn configured(&self, apps: &PlatformApps, connector: &str) -> bool {
        self.app(apps, connector).is_some()
    }

    /// Whose users a grantor id names (the user behind an account, as the platform's
    /// deauthorize callbacks name them): Facebook and Instagram share Meta's.
    fn grantor_family(&self) -> &'static str;

    /// Where to send the user's browser through `connector` (one of [`connectors`](Self::connectors)),
    /// and what to remember until the callback.
    fn start<'a>(
        &'a self,
        client: &'a PlatformClient,
        connector: &'a str,
        callback: &'a Url,
    ) -> Answer<'a, AuthorizeStart>;

    /// A step of Herald's own page that leads on to the platform's consent page (Mastodon: the
    /// user's server, then that server's consent): the next place to send the browser, with a
    /// new pending authorization; `None` (the default) when the callback completes it.
    fn proceed<'a>(
        &'a self,
        _client: &'a PlatformClient,
        _pending: &'a PendingAuth,
        _params: &'a CallbackParams,
        _callback: &'a Url,
    ) -> Answer<'a, Option<AuthorizeStart>> {
        Box::pin(async { Ok(None) })
    }

    /// Completes the authorization from the callback's parameters and discovers the accounts.
    fn finish<'a>(
        &'a self,
        client: &'a PlatformClient,
        pending: &'a PendingAuth,
        params: &'a CallbackParams,
        callback: &'a Url,
    ) -> Answer<'a, Vec<Discovered>>;

    /// Exchanges a refresh token (of `grant`, whose context the platform may need) for a new
    /// grant; `None` where the platform's grants are not refreshed.
    fn refresh<'a>(
        &'a self,
        _client: &'a PlatformClient,
        _refresh_token: &'a SecretString,
        _grant: &'a TokenSet,
    ) -> Answer<'a, Option<Grant>> {
        Box::pin(async { Ok(None) })
    }

    /// Herald's client metadata document for this platform (atproto OAuth's client id is its URL,
    /// `/oauth/{platform}/client-metadata.json`), where the platform's OAuth has one.
    fn client_metadata(&self, _callback: &Url) -> Option<serde_json::Value> {
        None
    }

    /// Revokes the grant at the platform, where it has a revoke endpoint.
    fn revoke<'a>(&'a self, _client: &'a PlatformClient, _tokens: &'a TokenSet) -> Answer<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Publishes `post` as `account`. Only the final, creating call may fail
    /// [`PlatformError::Ambiguous`]. `post.resume`: what an earlier attempt left at the platform
    /// to come back to ([`PlatformError::Processing`]), which only that platform reads.
    fn publish<'a>(
        &'a self,
        client: &'a PlatformClient,
        account: &'a Account,
        tokens: &'a TokenSet,
        post: &'a Outgoing<'a>,
    ) -> Answer<'a, Published>;

    /// The account's posts since `since`, to look for an ambiguous publish among; `None` where
    /// the platform cannot be asked.
    fn recent<'a>(
        &'a self,
        _client: &'a PlatformClient,
        _account: &'a Account,
        _tokens: &'a TokenSet,
        _since: OffsetDateTime,
        _after: Option<&'a str>,
    ) -> Answer<'a, Option<Listing>> {
        Box::pin(async { Ok(None) })
    }

    /// How a post of `account` whose answer was lost is looked for ([`Lookup`]): by default among
    /// [`recent`](Self::recent) posts ([`Lookup::LISTED`]).
    fn lookup(&self, _account: &Account) -> Lookup {
        Lookup::LISTED
    }

    /// Whether apps may delete their posts on the platform ([`delete`](Self::delete) does it).
    fn deletes(&self) -> bool {
        false
    }

    /// Deletes the account's post `id` (an id [`publish`](Self::publish) returned); `None` where
    /// the platform gives apps no delete (Instagram). A tenant's `DELETE /v1/posts/{id}`, and
    /// `herald verify` cleaning up.
    fn delete<'a>(
        &'a self,
        _client: &'a PlatformClient,
        _account: &'a Account,
        _tokens: &'a TokenSet,
        _id: &'a str,
    ) -> Answer<'a, Option<()>> {
        Box::pin(async { Ok(None) })
    }

    /// A cheap authenticated read and the rate-limit headers the platform documents for it, as
    /// found on its answer (`herald verify`); `None` where the platform documents none.
    fn rate_headers<'a>(
        &'a self,
        _client: &'a PlatformClient,
        _account: &'a Account,
        _tokens: &'a TokenSet,
    ) -> Answer<'a, Option<RateHeaders>> {
        Box::pin(async { Ok(None) })
    }

    /// The media types the platform takes, by the URL path's extension.
    fn media_types(&self) -> &'static [&'static str];

    /// The platform's own rules for a post by an account of `kind` (its media types are checked
    /// first, by [`super::rules::check`]).
    fn check(&self, kind: AccountKind, text: &str, media: &[Media]) -> Result<(), Broken>;

    /// The platform's published limits on publishing, counted before each call.
    fn budgets(&self) -> Vec<Budget>;

    /// When a throttled call may be tried again where the answer does not say (Unix seconds
    /// `now`): in 15 minutes, unless the platform's limits reset otherwise.
    fn unsaid_retry_at(&self, now: i64) -> i64 {
        now + 900
    }

    /// The answer header carrying the platform's id for the request, which its support asks
    /// for; `None` where the platform documents none.
    fn request_id_header(&self) -> Option<&'static str> {
        None
    }

    /// What a successful answer's headers say about the budget (Unix seconds `now`).
    fn throttle_hint(&self, _headers: &reqwest::header::HeaderMap, _now: i64) -> Option<Throttle> {
        None
    }
}

/// The registry: each platform's adapter.
pub(super) fn adapter(platform: Platform) -> &'static dyn Adapter {
    match platform {
        Platform::X => &super::x::X,
        Platform::Facebook => &super::meta::FACEBOOK,
        Platform::Instagram => &super::meta::INSTAGRAM,
        Platform::Linkedin => &super::linkedin::LINKEDIN,
        Platform::Bluesky => &super::bluesky::BLUESKY,
        Platform::Threads => &super::threads::THREADS,
        Platform::Mastodon => &super::mastodon::MASTODON,
    }
}
