//! Clocks a component can wait on: tokio's timer, or a virtual clock on which waiting takes no
//! time and every wait is recorded (for tests that check how long something would wait
//! without timing it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A clock to wait on.
#[derive(Clone, Default)]
pub enum Clock {
    /// Tokio's timer.
    #[default]
    Real,
    /// Time passes at once; every wait is recorded.
    Virtual(Arc<VirtualClock>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::Real => "Real",
            Clock::Virtual(_) => "Virtual",
        })
    }
}

impl Clock {
    /// Waits `d` (nothing for a zero wait).
    pub async fn sleep(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        match self {
            Clock::Real => tokio::time::sleep(d).await,
            Clock::Virtual(v) => v.record(d),
        }
    }
}

/// A clock on which waiting takes no time: the waits asked of it, in order.
#[derive(Debug, Default)]
pub struct VirtualClock {
    waits: Mutex<Vec<Duration>>,
}

impl VirtualClock {
    fn record(&self, d: Duration) {
        if let Ok(mut waits) = self.waits.lock() {
            waits.push(d);
        }
    }

    /// The waits so far (and forgets them).
    pub fn take(&self) -> Vec<Duration> {
        self.waits
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}
