//! The sandbox's world: registered apps and users, issued grants, created content, the call log
//! and injected faults, behind one lock. Time is the wall clock plus an offset that tests advance.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

/// How the sandbox starts.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Seeds every random choice (ids, tokens, injected faults).
    pub seed: u64,
    /// Register the development apps and users (`dev_fixtures`) at start.
    pub dev_fixtures: bool,
    /// Herald's base URL, for the development apps' redirect URIs.
    pub herald_url: String,
    /// Where the sandbox reads the time (Unix seconds): the wall clock when `None`; a test kit
    /// running the sandbox in process hands it Herald's test clock, so the two are one clock.
    /// `POST /_sandbox/clock/advance` moves the sandbox ahead of its source either way.
    pub clock: Option<TimeSource>,
}

/// A source of the time in Unix seconds.
#[derive(Clone)]
pub struct TimeSource(pub Arc<dyn Fn() -> i64 + Send + Sync>);

impl std::fmt::Debug for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimeSource")
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self { seed: 42, dev_fixtures: true, herald_url: "http://127.0.0.1:3000".into(), clock: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    X,
    Meta,
    Linkedin,
    Threads,
    Mastodon,
}

impl Platform {
    /// The answer header naming the request: Graph's `x-fb-trace-id` (Facebook, Instagram,
    /// Threads), LinkedIn's `x-li-uuid`, Mastodon's (Rails') `x-request-id`; X documents none.
    pub fn request_id_header(self) -> Option<&'static str> {
        match self {
            Platform::X => None,
            Platform::Meta | Platform::Threads => Some("x-fb-trace-id"),
            Platform::Linkedin => Some("x-li-uuid"),
            Platform::Mastodon => Some("x-request-id"),
        }
    }

    pub fn of_path(path: &str) -> Option<Self> {
        let first = path.trim_start_matches('/').split('/').next()?;
        match first {
            "x" => Some(Platform::X),
            "meta" => Some(Platform::Meta),
            "linkedin" => Some(Platform::Linkedin),
            "threads" => Some(Platform::Threads),
            "mastodon" => Some(Platform::Mastodon),
            _ => None,
        }
    }
}

/// A developer app registered with a platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub platform: Platform,
    pub client_id: String,
    pub client_secret: String,
    /// Exact-match redirect (callback) URLs.
    pub redirect_uris: Vec<String>,
    /// X: confidential clients must authenticate with HTTP Basic on the token endpoints.
    #[serde(default = "yes")]
    pub confidential: bool,
    /// X OAuth 1.0a consumer key and secret (the app's "API key").
    #[serde(default)]
    pub consumer_key: Option<String>,
    #[serde(default)]
    pub consumer_secret: Option<String>,
    /// LinkedIn: whether the app may use programmatic refresh tokens (MDP partners only).
    #[serde(default)]
    pub refresh_tokens: bool,
    /// Access-token lifetime in seconds (X: 7200, LinkedIn: 60 days); tests shorten it.
    #[serde(default)]
    pub access_ttl: Option<i64>,
    /// Meta: the App Dashboard's "Require App Secret" (Settings → Advanced), which Meta's
    /// security guide recommends: every Graph call with a user or Page token must carry its
    /// `appsecret_proof`.
    #[serde(default)]
    pub require_app_secret: bool,
}

fn yes() -> bool {
    true
}

impl App {
    /// A confidential app with its redirect URIs and nothing platform-specific.
    pub fn confidential(platform: Platform, client_id: &str, client_secret: &str, redirect_uris: Vec<String>) -> Self {
        Self {
            platform,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris,
            confidential: true,
            consumer_key: None,
            consumer_secret: None,
            refresh_tokens: false,
            access_ttl: None,
            require_app_secret: false,
        }
    }
}

/// An account holder on a platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub platform: Platform,
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub username: String,
    /// Facebook Pages the user manages (Meta).
    #[serde(default)]
    pub pages: Vec<Page>,
    /// LinkedIn organizations the member administers.
    #[serde(default)]
    pub organizations: Vec<Organization>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub id: String,
    pub name: String,
    /// The Instagram professional account connected to the Page, if any.
    #[serde(default)]
    pub instagram: Option<InstagramAccount>,
    /// The Business portfolio through which the user holds their role on the Page (the audit's
    /// F2): such a Page is listed by the business's `owned_pages` (or `client_pages`, with
    /// `client`), not by `/me/accounts`. `None`: a role on the Page itself.
    #[serde(default)]
    pub business: Option<String>,
    /// The business manages the Page for a client rather than owning it.
    #[serde(default)]
    pub client: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstagramAccount {
    pub id: String,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    /// The member's role in it (LinkedIn's organization roles: `ADMINISTRATOR`,
    /// `CONTENT_ADMINISTRATOR`, `ANALYST`, `CURATOR`, `RECRUITING_POSTER`, …).
    #[serde(default = "administrator")]
    pub role: String,
}

fn administrator() -> String {
    "ADMINISTRATOR".to_owned()
}

/// An access or refresh token the sandbox issued.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub platform: Platform,
    pub client_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    pub issued_at: i64,
    pub revoked: bool,
    pub kind: GrantKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GrantKind {
    Access,
    /// `rotated` once used: a rotated refresh token is refused.
    Refresh {
        rotated: bool,
    },
    /// A Facebook Page token.
    Page {
        page_id: String,
    },
    /// An X OAuth 1.0a access token and its secret.
    OAuth1 {
        secret: String,
    },
}

/// Something a platform published, as tests inspect it.
#[derive(Debug, Clone, Serialize)]
pub struct Post {
    pub platform: Platform,
    /// The account it was published as (X user, Page, IG account, LinkedIn person/organization URN).
    pub account: String,
    pub id: String,
    pub text: String,
    pub media: Vec<String>,
    pub created_at: i64,
}

/// One request the sandbox received (control routes excluded).
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub platform: Platform,
    pub method: String,
    pub path: String,
    /// Set by handlers where the path alone is ambiguous, e.g. the OAuth grant type.
    pub note: Option<String>,
    pub status: Option<u16>,
    /// The platform's id for the request, in the answer's header where the platform names one
    /// ([`Platform::request_id_header`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub at: i64,
}

/// A note a handler attaches to its response for the call log.
#[derive(Debug, Clone)]
pub struct CallNote(pub String);

pub struct World {
    pub rng: StdRng,
    pub clock: Option<TimeSource>,
    pub clock_offset: i64,
    pub apps: Vec<App>,
    pub users: Vec<User>,
    pub grants: HashMap<String, Grant>,
    pub posts: Vec<Post>,
    pub calls: Vec<Call>,
    pub faults: Vec<crate::faults::Fault>,
    pub consents: HashMap<String, crate::consent::Pending>,
    /// OAuth 1.0a `(consumer key, nonce)` pairs already seen.
    pub nonces: HashSet<(String, String)>,
    pub x: crate::x::XWorld,
    pub meta: crate::meta::MetaWorld,
    pub linkedin: crate::linkedin::LinkedinWorld,
    pub threads: crate::threads::ThreadsWorld,
    pub mastodon: crate::mastodon::MastodonWorld,
    /// TXT records by name, for the DNS-over-HTTPS resolver ([`crate::dns`]).
    pub dns: HashMap<String, Vec<String>>,
    /// Seconds a new post takes to show in its account's listings (X's user timeline, a Page's
    /// feed, a Threads profile): reads lag writes on every platform, by an amount none documents.
    pub read_lag: i64,
    /// The most posts one page of an account's listing holds, whatever the client asks
    /// (`POST /_sandbox/listing_page`): Graph documents that an edge may serve fewer than
    /// `limit` while more follow, and pages go on for as long as the cursor says.
    pub listing_page: Option<usize>,
    /// How each Mastodon call stood against the Mastodon OpenAPI description ([`crate::mastodon_spec`]).
    pub mastodon_spec: crate::spec::Ledger,
    /// How each X call stood against X's OpenAPI document ([`crate::spec`]).
    pub x_spec: crate::spec::Ledger,
    /// How each Graph call stood against Meta's Graph API specs ([`crate::meta_spec`]).
    pub meta_spec: crate::spec::Ledger,
}

/// A time (Unix seconds) in RFC 3339, as the platforms' answers and headers write times.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

impl World {
    pub fn now(&self) -> i64 {
        let source = match &self.clock {
            Some(TimeSource(read)) => read(),
            None => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0),
        };
        source + self.clock_offset
    }

    /// Whether `post` shows in its account's listings yet ([`World::read_lag`]).
    pub fn listed(&self, post: &Post) -> bool {
        post.created_at + self.read_lag <= self.now()
    }

    /// One page of an account's listing, newest first: the listed posts `matching`, from the one
    /// after the post `after` names (the page before's last; a cursor that names an item, as
    /// Graph's and X's do, so new posts do not shift it), at most `limit` (and
    /// [`World::listing_page`]); with whether more follow. `None` when `after` names no such post.
    pub fn listing(
        &self,
        matching: impl Fn(&Post) -> bool,
        after: Option<&str>,
        limit: usize,
    ) -> Option<(Vec<&Post>, bool)> {
        let all: Vec<&Post> = self.posts.iter().rev().filter(|p| matching(p) && self.listed(p)).collect();
        let start = match after {
            None => 0,
            Some(id) => all.iter().position(|p| p.id == id)? + 1,
        };
        let limit = self.listing_page.map_or(limit, |most| limit.min(most));
        let page: Vec<&Post> = all.iter().skip(start).take(limit).copied().collect();
        let more = start + page.len() < all.len();
        Some((page, more))
    }

    /// A random URL-safe token with a recognisable prefix.
    pub fn token(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 24];
        self.rng.fill_bytes(&mut bytes);
        format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A random version-4 UUID, as LinkedIn's `challengeCode`.
    pub fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }

    /// 32 random bytes in standard base64, as X's `crc_token` looks.
    pub fn base64_token(&mut self) -> String {
        use base64::Engine as _;
        let mut b = [0u8; 32];
        self.rng.fill_bytes(&mut b);
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    /// A random numeric id of `digits` digits, as X and Meta use.
    pub fn numeric_id(&mut self, digits: u32) -> String {
        let low = 10u64.pow(digits - 1);
        let n = low + self.rng.next_u64() % (9 * low);
        n.to_string()
    }

    pub fn app(&self, platform: Platform, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.platform == platform && a.client_id == client_id)
    }

    pub fn user(&self, platform: Platform, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.platform == platform && u.id == id)
    }

    /// A live grant of `kind` for this token value: known, not revoked, not expired.
    pub fn live_grant(&self, platform: Platform, token: &str) -> Option<&Grant> {
        let now = self.now();
        self.grants.get(token).filter(|g| g.platform == platform && !g.revoked && g.expires_at.is_none_or(|t| t > now))
    }
}

pub struct Sandbox {
    pub config: SandboxConfig,
    /// The sandbox's own base URL, e.g. `http://127.0.0.1:4000`.
    pub base_url: String,
    world: Mutex<World>,
    /// Calls a `hang` fault holds now; tests wait on it (`GET /_sandbox/faults/held`).
    pub held: tokio::sync::watch::Sender<usize>,
    /// Bumped by `POST /_sandbox/faults/release`: every call held then is let go.
    pub release: tokio::sync::watch::Sender<u64>,
}

pub type Shared = Arc<Sandbox>;

impl Sandbox {
    pub fn new(config: SandboxConfig, base_url: String) -> Self {
        let mut world = World {
            rng: StdRng::seed_from_u64(config.seed),
            clock: config.clock.clone(),
            clock_offset: 0,
            apps: Vec::new(),
            users: Vec::new(),
            grants: HashMap::new(),
            posts: Vec::new(),
            calls: Vec::new(),
            faults: Vec::new(),
            consents: HashMap::new(),
            nonces: HashSet::new(),
            x: Default::default(),
            meta: Default::default(),
            linkedin: Default::default(),
            threads: Default::default(),
            mastodon: Default::default(),
            dns: Default::default(),
            read_lag: 0,
            listing_page: None,
            mastodon_spec: Default::default(),
            x_spec: Default::default(),
            meta_spec: Default::default(),
        };
        if config.dev_fixtures {
            crate::control::dev_fixtures(&mut world, &config.herald_url);
        }
        Self {
            config,
            base_url,
            world: Mutex::new(world),
            held: tokio::sync::watch::Sender::new(0),
            release: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The world, locked. Never held across an await.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Records every platform call (not control routes) with its final status.
pub async fn record_call(State(sandbox): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let Some(platform) = Platform::of_path(&path) else {
        return next.run(request).await;
    };
    let index = {
        let mut world = sandbox.world();
        let at = world.now();
        let index = world.calls.len();
        let request_id = platform.request_id_header().map(|_| format!("Sbx{index:08}"));
        let method = request.method().to_string();
        world.calls.push(Call { platform, method, path, note: None, status: None, request_id, at });
        index
    };
    let mut response = next.run(request).await;
    let note = response.extensions().get::<CallNote>().map(|n| n.0.clone());
    let mut world = sandbox.world();
    if let Some(call) = world.calls.get_mut(index) {
        call.status = Some(response.status().as_u16());
        call.note = note;
        if let (Some(header), Some(id)) = (platform.request_id_header(), &call.request_id) {
            response.headers_mut().insert(header, id.parse().expect("a request id is a header value"));
        }
    }
    response
}
