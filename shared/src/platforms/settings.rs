//! Where the platforms are and Herald's apps on them: the platforms' settings (parsed from the
//! environment and Secrets Manager by [`crate::config`] and [`crate::secrets`]).

use secrecy::SecretString;
use url::Url;

/// Where the platforms are. Production defaults; `herald dev` points every one at the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEndpoints {
    /// `HERALD_X_API_URL` (default `https://api.x.com`): API, OAuth 2.0 tokens, OAuth 1.0a.
    pub x_api: Url,
    /// `HERALD_X_WEB_URL` (default `https://x.com`): the OAuth 2.0 consent page.
    pub x_web: Url,
    /// `HERALD_META_GRAPH_URL` (default `https://graph.facebook.com`).
    pub meta_graph: Url,
    /// `HERALD_META_WEB_URL` (default `https://www.facebook.com`): the Login dialog.
    pub meta_web: Url,
    /// `HERALD_META_GRAPH_VERSION` (default `v26.0`, the newest confirmed; each lives ~2 years).
    pub meta_graph_version: String,
    /// `HERALD_LINKEDIN_API_URL` (default `https://api.linkedin.com`).
    pub linkedin_api: Url,
    /// `HERALD_LINKEDIN_OAUTH_URL` (default `https://www.linkedin.com`).
    pub linkedin_oauth: Url,
    /// `HERALD_LINKEDIN_VERSION` (default `202609`): the `LinkedIn-Version` header, `YYYYMM`;
    /// versions are sunset after about a year (426 `NONEXISTENT_VERSION`), so bump it twice a year.
    pub linkedin_version: String,
    /// `HERALD_BLUESKY_SERVICE_URL` (default `https://bsky.social`): where Bluesky handles are
    /// resolved to DIDs (`com.atproto.identity.resolveHandle`, which also follows DNS TXT records).
    /// Each account's own PDS is found from its DID document, not configured.
    pub bluesky_service: Url,
    /// `HERALD_BLUESKY_PLC_URL` (default `https://plc.directory`): the directory of `did:plc`
    /// documents.
    pub bluesky_plc: Url,
    /// `HERALD_BLUESKY_DNS_URL` (default `https://cloudflare-dns.com/dns-query`): a
    /// DNS-over-HTTPS resolver's JSON API, asked for a handle's `_atproto` TXT record when the
    /// service does not resolve it (Lambda has no DNS client Herald could ask for TXT records).
    pub bluesky_dns: Url,
    /// `HERALD_THREADS_GRAPH_URL` (default `https://graph.threads.net`; Meta serves the Threads
    /// API on `graph.threads.com` too): the Threads API and its token endpoints.
    pub threads_graph: Url,
    /// `HERALD_THREADS_WEB_URL` (default `https://threads.com`): the Authorization Window.
    pub threads_web: Url,
    /// `HERALD_PLATFORM_TIMEOUT_SECONDS` (default 10): the most one platform call may take. A
    /// publish that times out after sending is recorded as `unknown`, never resent blindly.
    pub timeout: std::time::Duration,
}

pub const DEFAULT_META_GRAPH_VERSION: &str = "v26.0";
pub const DEFAULT_LINKEDIN_VERSION: &str = "202609";

fn static_url(raw: &str) -> Url {
    Url::parse(raw).expect("static URL parses")
}

impl PlatformEndpoints {
    pub fn production() -> Self {
        Self {
            x_api: static_url("https://api.x.com"),
            x_web: static_url("https://x.com"),
            meta_graph: static_url("https://graph.facebook.com"),
            meta_web: static_url("https://www.facebook.com"),
            meta_graph_version: DEFAULT_META_GRAPH_VERSION.to_owned(),
            linkedin_api: static_url("https://api.linkedin.com"),
            linkedin_oauth: static_url("https://www.linkedin.com"),
            linkedin_version: DEFAULT_LINKEDIN_VERSION.to_owned(),
            bluesky_service: static_url("https://bsky.social"),
            bluesky_plc: static_url("https://plc.directory"),
            bluesky_dns: static_url("https://cloudflare-dns.com/dns-query"),
            threads_graph: static_url("https://graph.threads.net"),
            threads_web: static_url("https://threads.com"),
            timeout: std::time::Duration::from_secs(10),
        }
    }

    /// A URL template of a platform's dialect with these settings filled in: `{x_api}`,
    /// `{x_web}`, `{meta_graph}`, `{meta_web}`, `{linkedin_api}`, `{linkedin_oauth}`, `{threads_graph}`,
    /// `{threads_web}` (each without
    /// its trailing slash) and `{meta_graph_version}`, `{linkedin_version}`. `None` when a
    /// placeholder is unknown or the result is not a URL.
    pub fn expand(&self, template: &str) -> Option<Url> {
        let trimmed = |url: &Url| url.as_str().trim_end_matches('/').to_owned();
        let values = [
            ("{x_api}", trimmed(&self.x_api)),
            ("{x_web}", trimmed(&self.x_web)),
            ("{meta_graph}", trimmed(&self.meta_graph)),
            ("{meta_web}", trimmed(&self.meta_web)),
            ("{linkedin_api}", trimmed(&self.linkedin_api)),
            ("{linkedin_oauth}", trimmed(&self.linkedin_oauth)),
            ("{threads_graph}", trimmed(&self.threads_graph)),
            ("{threads_web}", trimmed(&self.threads_web)),
            ("{meta_graph_version}", self.meta_graph_version.clone()),
            ("{linkedin_version}", self.linkedin_version.clone()),
        ];
        let mut expanded = template.to_owned();
        for (placeholder, value) in values {
            expanded = expanded.replace(placeholder, &value);
        }
        if expanded.contains('{') {
            return None;
        }
        Url::parse(&expanded).ok()
    }

    /// Every platform on the sandbox at `base` (its path prefixes stand for the hosts), except
    /// Bluesky, whose real server runs instead ([`with_pds`](Self::with_pds)).
    pub fn sandbox(base: &str) -> Result<Self, url::ParseError> {
        let base = base.trim_end_matches('/');
        let at = |prefix: &str| Url::parse(&format!("{base}/{prefix}"));
        Ok(Self {
            x_api: at("x/api")?,
            x_web: at("x/web")?,
            meta_graph: at("meta/graph")?,
            meta_web: at("meta/web")?,
            linkedin_api: at("linkedin/api")?,
            linkedin_oauth: at("linkedin/www")?,
            threads_graph: at("threads/graph")?,
            threads_web: at("threads/web")?,
            bluesky_dns: at("dns/dns-query")?,
            ..Self::production()
        })
    }
}

impl PlatformEndpoints {
    /// Bluesky on one PDS and PLC directory (the reference server `herald dev` and the tests run):
    /// handles resolve at the PDS, DIDs at the directory.
    pub fn with_pds(mut self, pds: &str, plc: &str) -> Result<Self, url::ParseError> {
        self.bluesky_service = Url::parse(pds)?;
        self.bluesky_plc = Url::parse(plc)?;
        Ok(self)
    }
}

/// An app registered with a platform: its id and secret.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Herald's apps on each platform. A platform without one cannot be connected. The credentials
/// come from Secrets Manager at cold start ([`crate::secrets`]), never from the environment.
#[derive(Debug, Clone, Default)]
pub struct PlatformApps {
    /// The X secret's `client_id` / `client_secret`: the OAuth 2.0 client (confidential).
    pub x: Option<AppCredentials>,
    /// The X secret's `consumer_key` / `consumer_secret`: the OAuth 1.0a consumer ("API key").
    pub x_oauth1: Option<AppCredentials>,
    /// The Meta secret's `app_id` / `app_secret`: Facebook Login (Facebook and Instagram).
    pub meta: Option<AppCredentials>,
    /// The LinkedIn secret's `client_id` / `client_secret`.
    pub linkedin: Option<AppCredentials>,
    /// `HERALD_LINKEDIN_ORGANIZATIONS` (default false, not a secret): also ask for organization
    /// scopes (needs LinkedIn's Community Management API product) and connect the pages a member
    /// administers.
    pub linkedin_organizations: bool,
    /// The Meta secret's `webhook_verify_token`: the verify token set for Herald's webhook
    /// callback in Meta's App Dashboard; without it, Meta's subscription check is refused.
    pub meta_webhook_verify_token: Option<SecretString>,
    /// The Threads secret's `app_id` / `app_secret`: the Threads app ID and secret (a Meta app
    /// with the Threads use case has two pairs; Threads takes its own).
    pub threads: Option<AppCredentials>,
    /// The Threads secret's `webhook_verify_token`, for Threads webhooks' subscription check.
    pub threads_webhook_verify_token: Option<SecretString>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_over_the_settings() {
        let production = PlatformEndpoints::production();
        let sandbox = PlatformEndpoints::sandbox("http://127.0.0.1:9/").unwrap();
        let rows = [
            ("{x_api}/2/oauth2/token", "https://api.x.com/2/oauth2/token", "http://127.0.0.1:9/x/api/2/oauth2/token"),
            (
                "{meta_graph}/{meta_graph_version}/oauth/access_token",
                "https://graph.facebook.com/v26.0/oauth/access_token",
                "http://127.0.0.1:9/meta/graph/v26.0/oauth/access_token",
            ),
            (
                "{linkedin_oauth}/oauth/v2/accessToken",
                "https://www.linkedin.com/oauth/v2/accessToken",
                "http://127.0.0.1:9/linkedin/www/oauth/v2/accessToken",
            ),
        ];
        for (template, there, here) in rows {
            assert_eq!(production.expand(template).map(String::from).as_deref(), Some(there));
            assert_eq!(sandbox.expand(template).map(String::from).as_deref(), Some(here));
        }
        assert_eq!(production.expand("{mastodon_instance}/oauth/token"), None, "an unknown placeholder");
        assert_eq!(production.expand("{x_api}/{x_version}/token"), None, "an unknown placeholder in the path");
        assert_eq!(production.expand("not a url"), None);
    }
}
