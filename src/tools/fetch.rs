//! The guarded web fetch: GET a URL a model or a user gave us without letting it reach the
//! machine, the cluster or the cloud metadata service behind Threadline (SSRF), and without
//! letting it take unbounded time or memory.
//!
//! Every hop (the first URL and each redirect, followed here by hand) is checked the same way:
//! the scheme is `http` or `https`; a literal IP host is classified by [`refused_range`] before
//! anything is sent; a host name goes through [`GuardedResolver`], which resolves it once
//! with `tokio::net::lookup_host`, drops every refused address and hands reqwest only the
//! addresses it checked, so there is no second lookup a rebinding DNS server could answer
//! differently. Proxies from the environment are ignored (a proxy would resolve the name
//! itself). Hosts on the operator's [`FetchPolicy::allow_hosts`] skip the address check and are
//! fetched through a second client with the system resolver.
//!
//! # Layout
//! - [`FetchPolicy`], [`Fetcher`], [`Fetched`], [`FetchError`]: the API.
//! - [`refused_range`], [`Refusal`], [`SpecialRange`], [`Embedding`]: the address classifier.
//! - [`GuardedResolver`]: DNS that yields only allowed addresses.
//! - the hop loop, and reading the body under the size limit.
//! - tests: the classifier table, then real servers on loopback.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode, Url, redirect};

use super::readable::ContentKind;

/// What the fetcher asks for; it accepts exactly the [`ContentKind`] media types.
const ACCEPTED: &str = "text/html, application/xhtml+xml, text/plain, text/markdown, text/csv, \
                        application/json, application/pdf";

/// Limits and exceptions of a [`Fetcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Operator allow-list: hosts that bypass the address check (not the scheme check, nor the
    /// limits), for an intranet wiki the operator wants reachable, or a test server on
    /// loopback. Each entry is a host name (`wiki.internal`, matched case-insensitively,
    /// exactly: no wildcards, subdomains are not included) or an IP literal (`10.1.2.3`,
    /// `::1` or `[::1]`), optionally with `:port` (`127.0.0.1:8080`, `[::1]:8080`,
    /// `wiki.internal:443`), in which case only that port is allowed (the default port of the
    /// scheme counts as the URL's port). An allow-listed name is resolved by the system
    /// resolver and may reach any address. An entry that matches no URL does nothing.
    pub allow_hosts: Vec<String>,
    /// Largest body accepted, in bytes; reading stops and fails as soon as it goes over
    /// (default 5 MiB).
    pub max_bytes: u64,
    /// Time allowed for the whole fetch: every hop and the body (default 10 s).
    pub timeout: Duration,
    /// Most redirects followed (default 5); one more is [`FetchError::TooManyRedirects`].
    pub max_redirects: usize,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_hosts: Vec::new(),
            max_bytes: 5 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            max_redirects: 5,
            user_agent: concat!("Threadline/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A fetched document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The URL the body came from, after redirects.
    pub final_url: Url,
    /// The media type without parameters, lower case (`text/html`); one of [`ContentKind`]'s.
    pub media_type: String,
    /// The body, at most [`FetchPolicy::max_bytes`] long.
    pub bytes: Vec<u8>,
}

/// Why a fetch failed. Each message says what was refused and why; none carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL, or a redirect, or an address its host resolves to, is not allowed (a 400/403,
    /// or a tool error the model can read): `reason` says which and why, e.g. "address
    /// 10.0.0.1 of internal.example is private".
    #[error("refused to fetch {url}: {reason}")]
    Refused { url: String, reason: String },
    /// The body is larger than the limit (a 413, or a tool error).
    #[error("the response from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// The fetch took longer than the time limit (a 504, or a tool error).
    #[error("fetching {url} took longer than {limit:?}")]
    Timeout { url: String, limit: Duration },
    /// More redirects than the limit (a 502, or a tool error).
    #[error("{url} redirected more than {limit} times")]
    TooManyRedirects { url: String, limit: usize },
    /// The response is not HTML, text or PDF (a 415, or a tool error).
    #[error("{url} is {}, which cannot be read (only HTML, text, Markdown, CSV, JSON or PDF)", shown_type(.media_type))]
    UnsupportedType { url: String, media_type: String },
    /// The server answered with this non-success status (a 502, or a tool error).
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The host could not be resolved or reached, TLS failed, or the connection broke (a 502,
    /// or a tool error).
    #[error("cannot fetch {url}: {message}")]
    Network { url: String, message: String },
}

fn shown_type(media_type: &str) -> String {
    if media_type.is_empty() {
        "of no declared content type".to_owned()
    } else {
        format!("of type {media_type}")
    }
}

/// The HTTP client of the fetcher could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the web fetch client: {0}")]
pub struct FetcherBuildError(#[source] reqwest::Error);

/// Fetches URLs under a [`FetchPolicy`]. Build it once; clones share the connection pools.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// Connects only to addresses [`GuardedResolver`] or the literal check allowed.
    guarded: Client,
    /// For allow-listed hosts only (system resolver); `None` when the list is empty.
    open: Option<Client>,
    allow: Arc<[AllowEntry]>,
    policy: Arc<FetchPolicy>,
}

impl Fetcher {
    /// A fetcher that applies `policy`.
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, FetcherBuildError> {
        let builder = || {
            Client::builder()
                .redirect(redirect::Policy::none())
                .no_proxy()
                .user_agent(policy.user_agent.clone())
                .connect_timeout(policy.timeout)
        };
        let guarded = builder()
            .dns_resolver(Arc::new(GuardedResolver))
            .build()
            .map_err(FetcherBuildError)?;
        let open = if policy.allow_hosts.is_empty() {
            None
        } else {
            Some(builder().build().map_err(FetcherBuildError)?)
        };
        let allow = policy
            .allow_hosts
            .iter()
            .map(|entry| AllowEntry::parse(entry))
            .collect();
        Ok(Fetcher {
            guarded,
            open,
            allow,
            policy: Arc::new(policy),
        })
    }

    /// The policy this fetcher applies.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// GETs `url`, following redirects, within the policy's limits.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let limit = self.policy.timeout;
        match tokio::time::timeout(limit, self.fetch_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_owned(),
                limit,
            }),
        }
    }

    async fn fetch_unbounded(&self, start: &str) -> Result<Fetched, FetchError> {
        let mut url = Url::parse(start).map_err(|e| FetchError::Refused {
            url: start.to_owned(),
            reason: format!("it is not a valid URL ({e})"),
        })?;
        let mut redirects = 0;
        loop {
            let client = self.client_for(&url)?;
            let response = client
                .get(url.clone())
                .header(ACCEPT, ACCEPTED)
                .send()
                .await
                .map_err(|e| self.request_error(&url, e))?;
            let status = response.status();
            if is_followed_redirect(status) {
                let Some(location) = response.headers().get(LOCATION) else {
                    return Err(FetchError::Status(status.as_u16()));
                };
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|location| url.join(location).ok())
                    .ok_or_else(|| FetchError::Refused {
                        url: url.to_string(),
                        reason: "it redirects to an invalid location".to_owned(),
                    })?;
                redirects += 1;
                if redirects > self.policy.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: start.to_owned(),
                        limit: self.policy.max_redirects,
                    });
                }
                tracing::debug!(from = %url, to = %next, "web fetch redirected");
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let media_type = essence(&content_type);
            if ContentKind::of(&media_type).is_none() {
                return Err(FetchError::UnsupportedType {
                    url: url.to_string(),
                    media_type,
                });
            }
            let mut bytes = self.read_body(&url, response).await?;
            if matches!(
                ContentKind::of(&media_type),
                Some(ContentKind::Html | ContentKind::Text)
            ) {
                bytes = to_utf8(&content_type, &media_type, bytes);
            }
            return Ok(Fetched {
                final_url: url,
                media_type,
                bytes,
            });
        }
    }

    /// Checks one hop's scheme and host, and picks the client that may send it.
    fn client_for(&self, url: &Url) -> Result<&Client, FetchError> {
        let refused = |reason: String| FetchError::Refused {
            url: url.to_string(),
            reason,
        };
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(refused(format!(
                "the scheme {scheme} is not allowed (only http and https)"
            )));
        }
        let Some(host) = UrlHost::of(url) else {
            return Err(refused("it has no host".to_owned()));
        };
        let port = url.port_or_known_default().unwrap_or_default();
        if let Some(open) = &self.open
            && self.allow.iter().any(|entry| entry.matches(&host, port))
        {
            return Ok(open);
        }
        // reqwest connects to a literal IP without asking the resolver: check it here.
        if let UrlHost::Ip(ip) = host
            && let Some(refusal) = refused_range(ip)
        {
            return Err(refused(format!("address {ip} is {refusal}")));
        }
        Ok(&self.guarded)
    }

    fn request_error(&self, url: &Url, error: reqwest::Error) -> FetchError {
        if let Some(refused) = find_source::<AddressRefused>(&error) {
            return FetchError::Refused {
                url: url.to_string(),
                reason: refused.to_string(),
            };
        }
        if error.is_timeout() {
            return FetchError::Timeout {
                url: url.to_string(),
                limit: self.policy.timeout,
            };
        }
        FetchError::Network {
            url: url.to_string(),
            message: error_chain(&error),
        }
    }

    /// The body, failing as soon as it goes over the limit (nothing past it is kept).
    async fn read_body(&self, url: &Url, mut response: Response) -> Result<Vec<u8>, FetchError> {
        let limit = self.policy.max_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };
        let declared = response.content_length();
        if declared.is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let capacity = declared.unwrap_or(0).min(limit).min(1024 * 1024);
        let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.request_error(url, e))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Text in the charset it declares (the `Content-Type` parameter, else for HTML a `<meta>`
/// charset in its first 1024 bytes, else UTF-8), as UTF-8. A byte-order mark wins over both.
fn to_utf8(content_type: &str, media_type: &str, bytes: Vec<u8>) -> Vec<u8> {
    let declared = charset_param(content_type).or_else(|| {
        (media_type == "text/html")
            .then(|| meta_charset(&bytes[..bytes.len().min(1024)]))
            .flatten()
    });
    let encoding = declared
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = encoding.decode(&bytes);
    match text {
        std::borrow::Cow::Borrowed(_) if encoding == encoding_rs::UTF_8 => bytes,
        text => text.into_owned().into_bytes(),
    }
}

/// The `charset` parameter of a `Content-Type` value.
fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// `<meta charset="…">` or `<meta http-equiv=… content="…; charset=…">` in the start of a page.
fn meta_charset(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let value: String = head[at..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    (!value.is_empty()).then_some(value)
}

/// `text/HTML; charset=utf-8` → `text/html`.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn find_source<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// `error: its source: its source`, without repeating a message a wrapper already shows.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let part = source.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = source.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Hosts and the allow-list

/// A URL's host: `url` writes IPv4 hosts in dotted form (also `2130706433` and `0x7f.1`) and
/// IPv6 ones in brackets, so the text tells the kinds apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlHost {
    Ip(IpAddr),
    Name(String),
}

impl UrlHost {
    fn of(url: &Url) -> Option<UrlHost> {
        let host = url.host_str()?;
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse::<Ipv6Addr>().ok().map(|ip| UrlHost::Ip(ip.into()));
        }
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return Some(UrlHost::Ip(v4.into()));
        }
        Some(UrlHost::Name(normal_name(host)))
    }
}

fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// One parsed [`FetchPolicy::allow_hosts`] entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    host: UrlHost,
    port: Option<u16>,
}

impl AllowEntry {
    fn parse(entry: &str) -> AllowEntry {
        let entry = entry.trim();
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return AllowEntry {
                host: UrlHost::Ip(ip),
                port: None,
            };
        }
        if let Ok(socket) = entry.parse::<SocketAddr>() {
            return AllowEntry {
                host: UrlHost::Ip(socket.ip()),
                port: Some(socket.port()),
            };
        }
        if let Some(ip) = entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .and_then(|e| e.parse::<Ipv6Addr>().ok())
        {
            return AllowEntry {
                host: UrlHost::Ip(ip.into()),
                port: None,
            };
        }
        let (name, port) = match entry.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => (name, port.parse().ok()),
            _ => (entry, None),
        };
        AllowEntry {
            host: UrlHost::Name(normal_name(name)),
            port,
        }
    }

    fn matches(&self, host: &UrlHost, port: u16) -> bool {
        self.host == *host && self.port.is_none_or(|p| p == port)
    }
}

// ---------------------------------------------------------------------------------------------
// The address classifier

/// A special-purpose address range the fetcher refuses to connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialRange {
    /// `0.0.0.0`, `::` (on Linux, connecting to it reaches the machine itself).
    Unspecified,
    /// `0.0.0.0/8` ("this network").
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `100.64.0.0/10` (carrier-grade NAT, also used inside clouds).
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// `192.0.0.0/24` (IETF protocol assignments: DS-Lite, NAT64 discovery, …).
    ProtocolAssignments,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` (also used by proxies for fake-IP DNS), `2001:2::/48`.
    Benchmarking,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`, `192.88.99.0/24` (6to4 relays), and IPv6 outside `2000::/3` not
    /// named above (e.g. `100::/64`).
    Reserved,
    /// `fc00::/7`.
    UniqueLocal,
    /// `fec0::/10` (deprecated, still routed internally on some networks).
    SiteLocal,
    /// `2001::/32`: Teredo tunnels (the embedded addresses are obfuscated).
    Teredo,
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecialRange::Unspecified => "unspecified",
            SpecialRange::ThisNetwork => "in 0.0.0.0/8 (\"this network\")",
            SpecialRange::Loopback => "loopback",
            SpecialRange::Private => "private",
            SpecialRange::SharedAddressSpace => "shared address space (carrier-grade NAT)",
            SpecialRange::LinkLocal => "link-local",
            SpecialRange::ProtocolAssignments => "reserved for IETF protocol assignments",
            SpecialRange::Documentation => "reserved for documentation",
            SpecialRange::Benchmarking => "reserved for benchmarking",
            SpecialRange::Multicast => "multicast",
            SpecialRange::Broadcast => "broadcast",
            SpecialRange::Reserved => "reserved (not globally routable)",
            SpecialRange::UniqueLocal => "unique-local",
            SpecialRange::SiteLocal => "site-local",
            SpecialRange::Teredo => "a Teredo tunnel address",
        })
    }
}

/// How an IPv6 address carries an IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`.
    Mapped,
    /// `::a.b.c.d` (deprecated).
    Compatible,
    /// `64:ff9b::a.b.c.d` and the local-use `64:ff9b:1::/48`.
    Nat64,
    /// `2002:aabb:ccdd::/48`.
    SixToFour,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Nat64 => "NAT64",
            Embedding::SixToFour => "6to4",
        })
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The range (of the embedded IPv4 address, when there is one).
    pub range: SpecialRange,
    /// The IPv4 address an IPv6 one carries, and how.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            None => write!(f, "{}", self.range),
            Some((how, v4)) => write!(f, "{} ({how} {v4})", self.range),
        }
    }
}

/// Why the fetcher refuses to connect to `ip`, or `None` when it may.
pub fn refused_range(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4).map(|range| Refusal {
            range,
            embedded: None,
        }),
        IpAddr::V6(v6) => v6_refusal(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<SpecialRange> {
    use SpecialRange::*;
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        _ if ip.is_unspecified() => Unspecified,
        _ if ip.is_broadcast() => Broadcast,
        (0, _, _) => ThisNetwork,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => SharedAddressSpace,
        (127, _, _) => Loopback,
        (169, 254, _) => LinkLocal,
        (192, 0, 0) => ProtocolAssignments,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (192, 88, 99) => Reserved,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    };
    Some(range)
}

fn v6_refusal(ip: Ipv6Addr) -> Option<Refusal> {
    use SpecialRange::*;
    let s = ip.segments();
    let plain = |range| {
        Some(Refusal {
            range,
            embedded: None,
        })
    };
    let embedded = |how, v4: Ipv4Addr| {
        v4_range(v4).map(|range| Refusal {
            range,
            embedded: Some((how, v4)),
        })
    };
    let low_v4 = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if ip.is_unspecified() {
        return plain(Unspecified);
    }
    if ip.is_loopback() {
        return plain(Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return embedded(Embedding::Mapped, v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, _, _] => return embedded(Embedding::Compatible, low_v4),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => {
            return embedded(Embedding::Nat64, low_v4);
        }
        [0x2002, high, low, ..] => {
            let v4 = Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            return embedded(Embedding::SixToFour, v4);
        }
        _ => {}
    }
    let range = match s {
        [first, ..] if first & 0xff00 == 0xff00 => Multicast,
        [first, ..] if first & 0xffc0 == 0xfe80 => LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => SiteLocal,
        [first, ..] if first & 0xfe00 == 0xfc00 => UniqueLocal,
        [0x2001, 0, ..] => Teredo,
        [0x2001, 0x0db8, ..] => Documentation,
        [0x3fff, second, ..] if second & 0xf000 == 0 => Documentation,
        [0x2001, 2, 0, ..] => Benchmarking,
        [first, ..] if first & 0xe000 != 0x2000 => Reserved,
        _ => return None,
    };
    plain(range)
}

// ---------------------------------------------------------------------------------------------
// DNS

/// Resolves a host name once and yields only the addresses [`refused_range`] allows; fails
/// with [`AddressRefused`] when none remain.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<_>, Vec<_>) = found
                .into_iter()
                .map(|addr| (addr, refused_range(addr.ip())))
                .partition(|(_, refusal)| refusal.is_none());
            let refused: Vec<(IpAddr, Refusal)> = refused
                .into_iter()
                .filter_map(|(addr, refusal)| refusal.map(|r| (addr.ip(), r)))
                .collect();
            if allowed.is_empty() {
                let error: Box<dyn StdError + Send + Sync> =
                    Box::new(AddressRefused { host, refused });
                return Err(error);
            }
            if !refused.is_empty() {
                tracing::debug!(%host, dropped = refused.len(), "web fetch dropped refused addresses");
            }
            let addrs: Addrs = Box::new(allowed.into_iter().map(|(addr, _)| addr));
            Ok(addrs)
        })
    }
}

/// Every address a host name resolved to is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRefused {
    /// The host name.
    pub host: String,
    /// Each address and why it is refused (empty when the name resolved to nothing).
    pub refused: Vec<(IpAddr, Refusal)>,
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.refused.as_slice() {
            [] => write!(f, "{} resolves to no address", self.host),
            [(ip, refusal)] => write!(f, "address {ip} of {} is {refusal}", self.host),
            all => {
                let list: Vec<String> = all
                    .iter()
                    .map(|(ip, refusal)| format!("{ip} is {refusal}"))
                    .collect();
                write!(
                    f,
                    "every address of {} is refused: {}",
                    self.host,
                    list.join(", ")
                )
            }
        }
    }
}

impl StdError for AddressRefused {}

#[cfg(test)]
mod tests {
    #[test]
    fn text_in_another_charset_is_read_as_utf8() {
        // "café" in Latin-1 (declared in the header) and in Windows-1252 (declared in a meta tag).
        let latin1 = b"caf\xe9".to_vec();
        assert_eq!(
            to_utf8("text/plain; charset=ISO-8859-1", "text/plain", latin1),
            "café".as_bytes()
        );
        let page =
            b"<html><head><meta charset=\"windows-1252\"></head><p>caf\xe9 \x80</p>".to_vec();
        let decoded = String::from_utf8(to_utf8("text/html", "text/html", page)).unwrap();
        assert!(decoded.contains("café €"), "{decoded}");
        let utf8 = "naïve".as_bytes().to_vec();
        assert_eq!(to_utf8("text/html", "text/html", utf8.clone()), utf8);
        assert_eq!(
            charset_param("text/html; Charset=\"Shift_JIS\""),
            Some("Shift_JIS".into())
        );
        assert_eq!(
            meta_charset(b"<meta http-equiv='Content-Type' content='text/html; charset=euc-kr'>"),
            Some("euc-kr".into())
        );
    }

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::tools::readable::readable_text;

    // -- the classifier ------------------------------------------------------------------------

    #[test]
    fn the_address_classifier_refuses_every_special_range_and_allows_public_addresses() {
        use SpecialRange::*;
        let table: &[(&str, Option<SpecialRange>)] = &[
            // IPv4
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(ThisNetwork)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("100.64.0.1", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("169.254.169.254", Some(LinkLocal)),
            ("192.0.0.8", Some(ProtocolAssignments)),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("192.88.99.1", Some(Reserved)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            // IPv4 just outside the ranges, and public
            ("93.184.215.14", None),
            ("1.1.1.1", None),
            ("8.8.8.8", None),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("169.253.255.255", None),
            ("192.0.1.1", None),
            ("198.17.255.255", None),
            ("198.20.0.0", None),
            ("223.255.255.255", None),
            ("11.0.0.1", None),
            // IPv6
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("ff02::1", Some(Multicast)),
            ("ff05::2", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Teredo)),
            ("100::1", Some(Reserved)),
            ("4000::1", Some(Reserved)),
            // IPv4-mapped, -compatible, NAT64 and 6to4 with a refused embedded address
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::127.0.0.1", Some(Loopback)),
            ("::192.168.0.1", Some(Private)),
            ("::0.0.0.2", Some(ThisNetwork)),
            ("64:ff9b::127.0.0.1", Some(Loopback)),
            ("64:ff9b::10.1.2.3", Some(Private)),
            ("64:ff9b::169.254.169.254", Some(LinkLocal)),
            ("64:ff9b:1::192.168.0.1", Some(Private)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a00:1::1", Some(Private)),
            // ... and with a public one
            ("::ffff:93.184.215.14", None),
            ("::93.184.215.14", None),
            ("64:ff9b::93.184.215.14", None),
            ("2002:5db8:d70e::1", None),
            // public IPv6
            ("2606:4700::1", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("2001:4860:4860::8888", None),
            ("2001:db9::1", None),
            ("3fff:1000::1", None),
        ];
        for (text, expected) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(
                refused_range(ip).map(|r| r.range),
                *expected,
                "classifying {text}"
            );
        }
    }

    #[test]
    fn a_refusal_of_an_embedded_address_names_it() {
        let ip: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            refused_range(ip).unwrap().to_string(),
            "private (IPv4-mapped 10.0.0.1)"
        );
        let message = AddressRefused {
            host: "internal.example".to_owned(),
            refused: vec![(
                "10.0.0.1".parse().unwrap(),
                refused_range("10.0.0.1".parse().unwrap()).unwrap(),
            )],
        };
        assert_eq!(
            message.to_string(),
            "address 10.0.0.1 of internal.example is private"
        );
    }

    #[test]
    fn allow_list_entries_parse_with_and_without_ports() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let cases = [
            ("127.0.0.1", UrlHost::Ip(v4), None),
            ("127.0.0.1:8080", UrlHost::Ip(v4), Some(8080)),
            ("::1", UrlHost::Ip(v6), None),
            ("[::1]", UrlHost::Ip(v6), None),
            ("[::1]:81", UrlHost::Ip(v6), Some(81)),
            (
                "Wiki.Internal.",
                UrlHost::Name("wiki.internal".to_owned()),
                None,
            ),
            (
                "wiki.internal:443",
                UrlHost::Name("wiki.internal".to_owned()),
                Some(443),
            ),
        ];
        for (entry, host, port) in cases {
            assert_eq!(
                AllowEntry::parse(entry),
                AllowEntry { host, port },
                "{entry}"
            );
        }
    }

    // -- real servers on loopback --------------------------------------------------------------

    /// What a test server answers to a request for a path.
    enum Reply {
        /// Write these bytes and close.
        Bytes(Vec<u8>),
        /// Write these bytes, then hold the connection open without writing more.
        ThenStall(Vec<u8>),
    }

    fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn ok(content_type: &str, body: &[u8]) -> Reply {
        Reply::Bytes(response(
            "200 OK",
            &[("Content-Type", content_type.to_owned())],
            body,
        ))
    }

    fn redirect_to(location: String) -> Reply {
        Reply::Bytes(response("302 Found", &[("Location", location)], b""))
    }

    /// An HTTP server on `bind` answering with `reply(path)`; counts its connections.
    struct Server {
        port: u16,
        connections: Arc<AtomicUsize>,
    }

    async fn serve<F>(bind: &str, reply: F) -> Server
    where
        F: Fn(&str) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(bind).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move { answer(stream, &*reply).await });
            }
        });
        Server { port, connections }
    }

    async fn answer(mut stream: TcpStream, reply: &(dyn Fn(&str) -> Reply + Send + Sync)) {
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let request = String::from_utf8_lossy(&request);
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
        match reply(&path) {
            Reply::Bytes(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            }
            Reply::ThenStall(bytes) => {
                let _ = stream.write_all(&bytes).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }

    /// A listener that nothing should reach.
    async fn untouched(bind: &str) -> TcpListener {
        TcpListener::bind(bind).await.unwrap()
    }

    async fn saw_no_connection(listener: &TcpListener) -> bool {
        tokio::time::timeout(Duration::from_millis(200), listener.accept())
            .await
            .is_err()
    }

    fn fetcher(allow_hosts: Vec<String>) -> Fetcher {
        Fetcher::new(FetchPolicy {
            allow_hosts,
            timeout: Duration::from_secs(5),
            ..FetchPolicy::default()
        })
        .unwrap()
    }

    fn assert_refused(result: Result<Fetched, FetchError>, says: &[&str]) {
        match result {
            Err(FetchError::Refused { reason, .. }) => {
                for part in says {
                    assert!(reason.contains(part), "{reason:?} should mention {part:?}");
                }
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_loopback_ip_is_refused_without_an_allow_list_and_never_connected_to() {
        let listener = untouched("127.0.0.1:0").await;
        let port = listener.local_addr().unwrap().port();
        let fetcher = fetcher(Vec::new());
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://2130706433:{port}/"),
            format!("http://0x7f.0.0.1:{port}/"),
            format!("http://127.1:{port}/"),
            format!("http://0.0.0.0:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("https://127.0.0.1:{port}/"),
        ] {
            let result = fetcher.fetch(&url).await;
            assert!(
                matches!(result, Err(FetchError::Refused { .. })),
                "{url}: {result:?}"
            );
        }
        assert_refused(
            fetcher.fetch(&format!("http://127.0.0.1:{port}/")).await,
            &["address 127.0.0.1 is loopback"],
        );
        assert!(saw_no_connection(&listener).await);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_and_never_connected_to() {
        let listener = untouched("127.0.0.1:0").await;
        let port = listener.local_addr().unwrap().port();
        let result = fetcher(Vec::new())
            .fetch(&format!("http://localhost:{port}/"))
            .await;
        assert_refused(result, &["localhost", "127.0.0.1", "loopback"]);
        assert!(saw_no_connection(&listener).await);
    }

    #[tokio::test]
    async fn other_schemes_are_refused() {
        let fetcher = fetcher(Vec::new());
        assert_refused(fetcher.fetch("file:///etc/passwd").await, &["scheme file"]);
        assert_refused(fetcher.fetch("ftp://example.com/x").await, &["scheme ftp"]);
        assert_refused(fetcher.fetch("not a url").await, &["not a valid URL"]);
    }

    #[tokio::test]
    async fn a_redirect_from_an_allowed_server_to_a_refused_one_is_not_followed() {
        let refused_v4 = untouched("127.0.0.1:0").await;
        let port_b = refused_v4.local_addr().unwrap().port();
        let refused_v6 = untouched("[::1]:0").await;
        let port_b6 = refused_v6.local_addr().unwrap().port();
        let allowed = serve("127.0.0.1:0", move |path| match path {
            "/to-localhost" => redirect_to(format!("http://localhost:{port_b}/")),
            "/to-v6" => redirect_to(format!("http://[::1]:{port_b6}/")),
            "/to-other-port" => redirect_to(format!("http://127.0.0.1:{port_b}/")),
            "/to-file" => redirect_to("file:///etc/passwd".to_owned()),
            _ => ok("text/plain", b"fine"),
        })
        .await;
        let port_a = allowed.port;
        let fetcher = fetcher(vec![format!("127.0.0.1:{port_a}")]);
        let base = format!("http://127.0.0.1:{port_a}");

        assert_eq!(
            fetcher.fetch(&format!("{base}/")).await.unwrap().bytes,
            b"fine"
        );
        assert_refused(
            fetcher.fetch(&format!("{base}/to-localhost")).await,
            &["localhost", "loopback"],
        );
        assert_refused(
            fetcher.fetch(&format!("{base}/to-v6")).await,
            &["address ::1 is loopback"],
        );
        // The allow-list entry names a port: another port of the same address is refused.
        assert_refused(
            fetcher.fetch(&format!("{base}/to-other-port")).await,
            &["address 127.0.0.1 is loopback"],
        );
        assert_refused(
            fetcher.fetch(&format!("{base}/to-file")).await,
            &["scheme file"],
        );
        assert!(saw_no_connection(&refused_v4).await);
        assert!(saw_no_connection(&refused_v6).await);
        assert_eq!(allowed.connections.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn an_allow_listed_name_is_fetched() {
        let server = serve("127.0.0.1:0", |_| ok("text/plain", b"named")).await;
        let fetched = fetcher(vec![format!("LOCALHOST:{}", server.port)])
            .fetch(&format!("http://localhost:{}/page", server.port))
            .await
            .unwrap();
        assert_eq!(fetched.bytes, b"named");
        assert_eq!(fetched.final_url.path(), "/page");
    }

    fn limited(port: u16, policy: FetchPolicy) -> Fetcher {
        Fetcher::new(FetchPolicy {
            allow_hosts: vec![format!("127.0.0.1:{port}")],
            ..policy
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_body_over_the_size_limit_fails_as_soon_as_it_goes_over() {
        let server = serve("127.0.0.1:0", |path| match path {
            // Declares too much and then sends nothing: waiting for the body would time out.
            "/declared" => Reply::ThenStall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2000\r\n\r\n"
                    .to_vec(),
            ),
            // No length: sends 1500 bytes and keeps the connection open.
            "/streamed" => {
                let mut bytes =
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                        .to_vec();
                bytes.extend(std::iter::repeat_n(b'x', 1500));
                Reply::ThenStall(bytes)
            }
            "/exact" => ok("text/plain", &[b'y'; 1000]),
            _ => ok("text/plain", &[b'z'; 1001]),
        })
        .await;
        let fetcher = limited(
            server.port,
            FetchPolicy {
                max_bytes: 1000,
                timeout: Duration::from_secs(5),
                ..FetchPolicy::default()
            },
        );
        let base = format!("http://127.0.0.1:{}", server.port);
        for path in ["/declared", "/streamed", "/over"] {
            let result = fetcher.fetch(&format!("{base}{path}")).await;
            assert!(
                matches!(result, Err(FetchError::TooLarge { limit: 1000, .. })),
                "{path}: {result:?}"
            );
        }
        let exact = fetcher.fetch(&format!("{base}/exact")).await.unwrap();
        assert_eq!(exact.bytes.len(), 1000);
    }

    #[tokio::test]
    async fn a_server_that_stalls_hits_the_time_limit() {
        let server = serve("127.0.0.1:0", |path| match path {
            "/headers" => Reply::ThenStall(Vec::new()),
            _ => Reply::ThenStall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nsome"
                    .to_vec(),
            ),
        })
        .await;
        let fetcher = limited(
            server.port,
            FetchPolicy {
                timeout: Duration::from_millis(300),
                ..FetchPolicy::default()
            },
        );
        for path in ["/headers", "/body"] {
            let result = fetcher
                .fetch(&format!("http://127.0.0.1:{}{path}", server.port))
                .await;
            assert!(
                matches!(result, Err(FetchError::Timeout { .. })),
                "{path}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn redirects_are_followed_up_to_the_limit_and_no_further() {
        let server = serve("127.0.0.1:0", |path| {
            let Some(n) = path.rsplit('/').next().and_then(|n| n.parse::<u32>().ok()) else {
                return ok("text/plain", b"?");
            };
            match path {
                p if p.starts_with("/five/") && n == 5 => ok("text/plain", b"arrived"),
                p if p.starts_with("/five/") => redirect_to(format!("/five/{}", n + 1)),
                _ => redirect_to(format!("/loop/{}", n + 1)),
            }
        })
        .await;
        let fetcher = limited(server.port, FetchPolicy::default());
        let base = format!("http://127.0.0.1:{}", server.port);

        let arrived = fetcher.fetch(&format!("{base}/five/0")).await.unwrap();
        assert_eq!(arrived.bytes, b"arrived");
        assert_eq!(arrived.final_url.path(), "/five/5");
        assert_eq!(server.connections.load(Ordering::SeqCst), 6);

        let result = fetcher.fetch(&format!("{base}/loop/0")).await;
        assert!(
            matches!(result, Err(FetchError::TooManyRedirects { limit: 5, .. })),
            "{result:?}"
        );
        assert_eq!(server.connections.load(Ordering::SeqCst), 12);
    }

    #[tokio::test]
    async fn unsupported_types_and_error_statuses_fail() {
        let server = serve("127.0.0.1:0", |path| match path {
            "/png" => ok("image/png", b"\x89PNG"),
            "/untyped" => Reply::Bytes(response("200 OK", &[], b"bytes")),
            "/json" => ok("application/json; charset=utf-8", b"{}"),
            _ => Reply::Bytes(response(
                "404 Not Found",
                &[("Content-Type", "text/plain".to_owned())],
                b"no",
            )),
        })
        .await;
        let fetcher = limited(server.port, FetchPolicy::default());
        let base = format!("http://127.0.0.1:{}", server.port);
        match fetcher.fetch(&format!("{base}/png")).await {
            Err(error @ FetchError::UnsupportedType { .. }) => {
                assert!(error.to_string().contains("of type image/png"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            fetcher.fetch(&format!("{base}/untyped")).await,
            Err(FetchError::UnsupportedType { media_type, .. }) if media_type.is_empty()
        ));
        assert_eq!(
            fetcher.fetch(&format!("{base}/missing")).await,
            Err(FetchError::Status(404))
        );
        let json = fetcher.fetch(&format!("{base}/json")).await.unwrap();
        assert_eq!(json.media_type, "application/json");
    }

    #[tokio::test]
    async fn an_html_page_from_an_allowed_server_reads_as_its_article() {
        let page = "<!doctype html><html><head><title>News &amp; Views</title>\
                    <script>document.write('tracking')</script></head><body>\
                    <nav><a href=\"/\">Home</a> <a href=\"/about\">About</a></nav>\
                    <article><h1>Big story</h1><p>It happened&nbsp;today.</p>\
                    <script>alert('x')</script><p>More details.</p></article>\
                    <footer>&copy; Example</footer></body></html>";
        let server = serve("127.0.0.1:0", move |_| {
            ok("text/html; charset=UTF-8", page.as_bytes())
        })
        .await;
        let fetched = limited(server.port, FetchPolicy::default())
            .fetch(&format!("http://127.0.0.1:{}/story", server.port))
            .await
            .unwrap();
        assert_eq!(fetched.media_type, "text/html");
        let read = readable_text(&fetched.media_type, &fetched.bytes).unwrap();
        assert_eq!(read.title.as_deref(), Some("News & Views"));
        assert_eq!(read.text, "Big story\nIt happened today.\nMore details.");
    }
}
