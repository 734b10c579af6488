//! Time as a port, so expiry, windows and backoff can be tested without waiting.

use std::sync::Arc;
use std::sync::Mutex;
use time::OffsetDateTime;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; for tests of expiry and cache lifetimes. Once
/// [`run`](Self::run) is called it also follows the wall clock from then on, like a platform
/// sandbox's "wall clock plus an offset" (and like the real delays of an SQS emulator).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<ManualState>>);

#[derive(Debug)]
struct ManualState {
    base: OffsetDateTime,
    running_since: Option<std::time::Instant>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(ManualState { base: start, running_since: None })))
    }

    pub fn advance(&self, by: time::Duration) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).base += by;
    }

    /// From now on, time also passes by itself.
    pub fn run(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.running_since.is_none() {
            state.running_since = Some(std::time::Instant::now());
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match state.running_since {
            Some(since) => state.base + since.elapsed(),
            None => state.base,
        }
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// `at` without its fraction of a second: what DynamoDB keeps of a time (epoch seconds).
pub fn whole_seconds(at: time::OffsetDateTime) -> time::OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}
