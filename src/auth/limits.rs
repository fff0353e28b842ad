//! Abuse limits: fixed-window counters per key (a client IP, an email address), counted in
//! memory on each node.
//!
//! - anonymous sign-ups per client IP per minute;
//! - registrations per client IP per hour;
//! - failed logins per account (email) and per client IP per 15 minutes. Once a key has used
//!   its failures, every login for it is refused until the window resets — a correct password
//!   included — without spending a password check on it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::config::LimitSettings;
use crate::error::ApiError;

/// Window of the failed-login limits.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Window of the registration limit.
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Keys kept before old windows are swept out.
const SWEEP_AT: usize = 100_000;

/// A fixed-window counter per key.
pub struct RateLimiter<K: Eq + Hash + Clone = IpAddr> {
    per_window: u32,
    window: Duration,
    counts: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// Allows `per_window` hits per `window` for each key (0 = unlimited).
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit of `key`; `Err(seconds)` tells how long until it would be allowed.
    pub fn check(&self, key: K) -> Result<(), u64> {
        self.blocked(&key)?;
        self.hit(key);
        Ok(())
    }

    /// `Err(seconds)` when `key` has used its window, without counting a hit.
    pub fn blocked(&self, key: &K) -> Result<(), u64> {
        if self.per_window == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let counts = self.lock();
        match counts.get(key) {
            Some((start, n))
                if now.duration_since(*start) < self.window && *n >= self.per_window =>
            {
                let left = self.window.saturating_sub(now.duration_since(*start));
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a hit of `key`.
    pub fn hit(&self, key: K) {
        if self.per_window == 0 {
            return;
        }
        let now = Instant::now();
        let mut counts = self.lock();
        if counts.len() > SWEEP_AT {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counts.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, u32)>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The node's abuse limits.
pub struct Limits {
    /// Anonymous accounts per client IP per minute.
    pub anonymous: RateLimiter<IpAddr>,
    /// Registrations per client IP per hour.
    pub registrations: RateLimiter<IpAddr>,
    /// Failed logins per email address.
    pub login_account: RateLimiter<String>,
    /// Failed logins per client IP.
    pub login_ip: RateLimiter<IpAddr>,
}

impl Limits {
    /// Counters for `settings`.
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            anonymous: RateLimiter::new(settings.anonymous_per_minute, Duration::from_secs(60)),
            registrations: RateLimiter::new(settings.registrations_per_hour, REGISTRATION_WINDOW),
            login_account: RateLimiter::new(settings.login_failures_per_account, LOGIN_WINDOW),
            login_ip: RateLimiter::new(settings.login_failures_per_ip, LOGIN_WINDOW),
        }
    }

    /// Counts an anonymous sign-up from `ip`.
    pub fn anonymous_sign_up(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        self.anonymous
            .check(ip)
            .map_err(|wait| refused("too many anonymous accounts from this address", wait))
    }

    /// Counts a registration from `ip`.
    pub fn registration(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        self.registrations
            .check(ip)
            .map_err(|wait| refused("too many registrations from this address", wait))
    }

    /// Refuses a login for `email` from `ip` while either has used its failures.
    pub fn login_allowed(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let ip_blocked = ip.map_or(Ok(()), |ip| self.login_ip.blocked(&ip));
        self.login_account
            .blocked(&email.to_owned())
            .and(ip_blocked)
            .map_err(|wait| refused("too many failed sign-ins", wait))
    }

    /// Counts a failed login for `email` from `ip`.
    pub fn login_failed(&self, email: &str, ip: Option<IpAddr>) {
        self.login_account.hit(email.to_owned());
        if let Some(ip) = ip {
            self.login_ip.hit(ip);
        }
    }
}

fn refused(what: &str, retry_after: u64) -> ApiError {
    ApiError::TooManyRequests {
        detail: format!("{what}; retry in {retry_after} s"),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_allows_the_quota_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_ok());
        let wait = limiter.check(ip).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(
            limiter.check([10, 0, 0, 1].into()).is_ok(),
            "other IPs are counted apart"
        );
    }

    #[test]
    fn a_zero_limit_means_unlimited() {
        let limiter = RateLimiter::new(0, Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(limiter.check(IpAddr::from([127, 0, 0, 1])).is_ok());
        }
    }

    #[test]
    fn failed_logins_block_the_account_from_every_address_and_the_address_for_every_account() {
        let limits = Limits::new(LimitSettings {
            login_failures_per_account: 2,
            login_failures_per_ip: 3,
            ..LimitSettings::default()
        });
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        limits.login_failed("m@example.com", Some(a));
        assert!(limits.login_allowed("m@example.com", Some(b)).is_ok());
        limits.login_failed("m@example.com", Some(a));
        assert!(limits.login_allowed("m@example.com", Some(b)).is_err());
        assert!(limits.login_allowed("other@example.com", Some(a)).is_ok());
        limits.login_failed("third@example.com", Some(a));
        assert!(limits.login_allowed("other@example.com", Some(a)).is_err());
        assert!(limits.login_allowed("other@example.com", Some(b)).is_ok());
    }
}
