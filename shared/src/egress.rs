//! Requests to URLs that tenants supply — media Herald downloads, and tenants' webhook endpoints —
//! under one policy, so that Herald cannot be made to reach inside the network it runs in.
//!
//! - **https only**; plain http only to a loopback host, and only when the local runner says so
//!   (`HERALD_ALLOW_LOOPBACK_URLS=true`), never by default.
//! - **Public addresses only**: loopback, private, link-local, CGNAT, multicast, unspecified,
//!   IPv4-mapped/compatible, NAT64, 6to4, Teredo, documentation, benchmarking and reserved
//!   ranges are refused ([`non_public`]). A literal address is checked when the URL is submitted
//!   and before each request; a name is checked when it is resolved, by the resolver the
//!   connection itself uses, so the address checked is the address connected to (a name that
//!   answers a public address to a first lookup and an internal one to the second gains
//!   nothing).
//! - **Redirects** (media only) are followed at most [`MAX_REDIRECTS`] times, each hop checked
//!   like the first; webhook deliveries follow none. No proxy from the environment is used.
//! - **Bodies are streamed** and the size limit is enforced while reading, so an endless body
//!   costs at most the limit plus one chunk. Every request has a connect and a total time limit.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

/// Redirects a media download may follow.
pub const MAX_REDIRECTS: usize = 3;

/// How Herald reaches tenant-supplied URLs (part of [`crate::config::Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressSettings {
    /// `HERALD_ALLOW_LOOPBACK_URLS` (default false): allow http and loopback addresses, for the
    /// local runner and tests only.
    pub allow_loopback: bool,
    /// Names answered without DNS, as `/etc/hosts` would (tests only; never read from the
    /// environment). Their addresses are checked like any other.
    pub hosts: HashMap<String, Vec<IpAddr>>,
    /// The whole request, headers and body (default 10 s).
    pub timeout: Duration,
}

impl Default for EgressSettings {
    fn default() -> Self {
        Self { allow_loopback: false, hosts: HashMap::new(), timeout: Duration::from_secs(10) }
    }
}

/// Why a URL or an address is not reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only https URLs are allowed, not {0}")]
    Scheme(String),
    #[error("the URL must not carry credentials")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("{address} is not a public address ({class})")]
    Address { address: IpAddr, class: &'static str },
    #[error("{0} is a local name")]
    LocalName(String),
    #[error("{0} resolves to no public address")]
    Resolves(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
}

/// The class of a non-public address, or `None` for an address on the public internet.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified",
        (127, ..) => "loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "CGNAT",
        (192, 0, 0) => "IETF protocol assignments",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved or broadcast",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback",
        // Whatever IPv4 address it carries, a mapped or compatible address is refused: it is how
        // `::ffff:127.0.0.1` slips past checks that only know IPv4.
        [0, 0, 0, 0, 0, 0xffff, _, _] => "IPv4-mapped",
        [0, 0, 0, 0, 0, 0, _, _] => "IPv4-compatible",
        [0x64, 0xff9b, ..] => "NAT64",
        [0x100, 0, 0, 0, ..] => "discard",
        [0x2001, 0, ..] => "Teredo",
        [0x2001, 0xdb8, ..] => "documentation",
        [0x2001, 0x2 | 0x10..=0x2f, ..] => "benchmarking or ORCHID",
        [0x2002, ..] => "6to4",
        [x, ..] if x & 0xfe00 == 0xfc00 => "unique local",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local",
        [x, ..] if x & 0xffc0 == 0xfec0 => "site-local",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast",
        // Only 2000::/3 is allocated for global unicast.
        [x, ..] if x & 0xe000 != 0x2000 => "reserved",
        _ => return None,
    })
}

/// The rules, shared by submission-time checks, the resolver and the redirect policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    allow_loopback: bool,
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

fn local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

impl Policy {
    pub fn new(allow_loopback: bool) -> Self {
        Self { allow_loopback }
    }

    /// Whether Herald may connect to `ip`.
    pub fn address(&self, ip: IpAddr) -> Result<(), Refusal> {
        match non_public(ip) {
            None => Ok(()),
            Some(_) if self.allow_loopback && is_loopback(ip) => Ok(()),
            Some(class) => Err(Refusal::Address { address: ip, class }),
        }
    }

    /// Everything that can be told from the URL alone: scheme, credentials, literal addresses and
    /// local names. Names are checked again, by address, when they are resolved.
    pub fn url(&self, url: &Url) -> Result<(), Refusal> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        let loopback_host = match url.host() {
            None => return Err(Refusal::NoHost),
            Some(Host::Ipv4(v4)) => {
                self.address(IpAddr::V4(v4))?;
                v4.is_loopback()
            }
            Some(Host::Ipv6(v6)) => {
                self.address(IpAddr::V6(v6))?;
                v6.is_loopback()
            }
            Some(Host::Domain(name)) if local_name(name) => {
                if !self.allow_loopback {
                    return Err(Refusal::LocalName(name.to_owned()));
                }
                true
            }
            Some(Host::Domain(_)) => false,
        };
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_loopback && loopback_host => Ok(()),
            other => Err(Refusal::Scheme(other.to_owned())),
        }
    }
}

/// Resolves names like the system does (or from [`EgressSettings::hosts`]) and keeps only the
/// addresses the policy allows; with none left, the connection fails with [`Refusal::Resolves`].
struct CheckedResolver {
    policy: Policy,
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let fixed = self.hosts.get(&host).cloned();
        Box::pin(async move {
            let found: Vec<IpAddr> = match fixed {
                Some(addresses) => addresses,
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect(),
            };
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|ip| policy.address(*ip).is_ok()).map(|ip| SocketAddr::new(ip, 0)).collect();
            if allowed.is_empty() {
                return Err(Box::new(Refusal::Resolves(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why a download or delivery did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("answered {0}")]
    Status(u16),
    #[error("over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("did not answer in time")]
    Timeout,
    #[error("could not be reached")]
    Unreachable,
    #[error("the answer was cut off")]
    CutOff,
}

impl EgressError {
    /// Classifies a transport error, finding a policy refusal anywhere in its cause chain (the
    /// resolver's and the redirect policy's arrive wrapped).
    fn from_transport(err: &reqwest::Error) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cause {
            if let Some(refusal) = e.downcast_ref::<Refusal>() {
                return Self::Refused(refusal.clone());
            }
            cause = e.source();
        }
        if err.is_timeout() { Self::Timeout } else { Self::Unreachable }
    }
}

/// A downloaded body and its declared content type.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// The HTTP clients for tenant-supplied URLs.
pub struct Egress {
    policy: Policy,
    /// Follows checked redirects (media).
    fetch: reqwest::Client,
    /// Follows none (webhook deliveries: a signed POST is not sent on elsewhere).
    deliver: reqwest::Client,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Egress {
    pub fn new(settings: &EgressSettings) -> Self {
        crate::tls::install_crypto_provider();
        let policy = Policy::new(settings.allow_loopback);
        let hosts = Arc::new(settings.hosts.clone());
        // One root store for both clients (cold start).
        let tls = crate::tls::config();
        let client = |redirect: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls.clone())
                .dns_resolver(Arc::new(CheckedResolver { policy, hosts: hosts.clone() }))
                .no_proxy()
                .redirect(redirect)
                .connect_timeout(Duration::from_secs(3))
                .timeout(settings.timeout)
                .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("the HTTP client configuration is valid")
        };
        let hops = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refusal::TooManyRedirects);
            }
            match policy.url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        Self { policy, fetch: client(hops), deliver: client(reqwest::redirect::Policy::none()) }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// GETs `url` and reads at most `limit` bytes of its body.
    pub async fn fetch(&self, url: &Url, limit: usize) -> Result<Fetched, EgressError> {
        self.read(url, limit, false).await
    }

    /// The first `n` bytes of `url` (fewer if the body is shorter), through the same policy: the
    /// connection is dropped once they are in, whatever the body's size.
    pub async fn peek(&self, url: &Url, n: usize) -> Result<Fetched, EgressError> {
        self.read(url, n, true).await
    }

    async fn read(&self, url: &Url, limit: usize, prefix: bool) -> Result<Fetched, EgressError> {
        self.policy.url(url)?;
        let mut response = self.fetch.get(url.clone()).send().await.map_err(|e| EgressError::from_transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(EgressError::Status(status.as_u16()));
        }
        if !prefix && response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(EgressError::TooLarge { limit });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        // Sized once: growing by doubling would hold the old and the new buffer at once (up to
        // 2.5 times the limit); a body without a length gets room for the limit.
        let declared = response.content_length().map_or(limit, |n| n as usize);
        let mut bytes = Vec::with_capacity(declared.min(limit));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        if prefix {
                            bytes.extend_from_slice(&chunk[..limit - bytes.len()]);
                            break;
                        }
                        return Err(EgressError::TooLarge { limit });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(EgressError::Timeout),
                Err(_) => return Err(EgressError::CutOff),
            }
        }
        Ok(Fetched { bytes, content_type })
    }

    /// A request to `url` that follows no redirects, for a caller that reads the answer itself:
    /// a platform's server found from what a user said (a Bluesky PDS, from their handle's DID
    /// document) is reached only under the same policy as a tenant's URL.
    pub fn request(&self, method: reqwest::Method, url: &Url) -> Result<reqwest::RequestBuilder, Refusal> {
        self.policy.url(url)?;
        Ok(self.deliver.request(method, url.clone()))
    }

    /// POSTs `body` to `url` with `headers`; the answer's status (its body is not read).
    pub async fn post(
        &self,
        url: &Url,
        headers: impl IntoIterator<Item = (&'static str, String)>,
        body: String,
    ) -> Result<u16, EgressError> {
        self.policy.url(url)?;
        let mut request = self.deliver.post(url.clone()).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| EgressError::from_transport(&e))?;
        Ok(response.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_non_public_class_is_named() {
        for (address, class) in [
            ("0.0.0.0", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.255", "CGNAT"),
            ("192.0.0.8", "IETF protocol assignments"),
            ("192.0.2.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved or broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::a00:1", "NAT64"),
            ("2001::1", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("2002:a00:1::1", "6to4"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("4000::1", "reserved"),
        ] {
            assert_eq!(non_public(ip(address)), Some(class), "{address}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450::1"] {
            assert_eq!(non_public(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn urls_are_https_to_public_hosts_unless_the_local_runner_allows_loopback() {
        let deployed = Policy::new(false);
        let local = Policy::new(true);
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(deployed.url(&url("https://cdn.example/a.jpg")), Ok(()));
        for refused in [
            "http://cdn.example/a.jpg",
            "https://127.0.0.1/a.jpg",
            "http://127.0.0.1:4000/a.jpg",
            "https://localhost/a.jpg",
            "https://app.localhost./a.jpg",
            "https://[::1]/a.jpg",
            "https://[::ffff:127.0.0.1]/a.jpg",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.1.2.3/a.jpg",
            "https://user:pw@cdn.example/a.jpg",
            "ftp://cdn.example/a.jpg",
            // The URL parser reads these as 127.0.0.1 and 10.0.0.1.
            "https://2130706433/a.jpg",
            "https://0x0a.0.0.1/a.jpg",
        ] {
            assert!(deployed.url(&url(refused)).is_err(), "{refused}");
        }
        assert_eq!(local.url(&url("http://127.0.0.1:4000/a.jpg")), Ok(()));
        assert_eq!(local.url(&url("http://localhost:4000/a.jpg")), Ok(()));
        assert!(local.url(&url("http://cdn.example/a.jpg")).is_err(), "http only to loopback");
        assert!(local.url(&url("https://[::ffff:127.0.0.1]/a.jpg")).is_err(), "mapped loopback stays refused");
        assert!(local.url(&url("https://10.0.0.1/a.jpg")).is_err());
    }
}
