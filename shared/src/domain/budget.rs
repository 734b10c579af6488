//! A platform's published limit on calls, as Herald counts it ([`crate::ratelimit`]); each
//! platform's adapter states its own.

use serde::{Deserialize, Serialize};

use super::Platform;

/// Whose calls a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every call of Herald's app on the platform.
    App,
    /// The calls for one connected account (X user, Page, Instagram account, LinkedIn member).
    Account,
}

/// How a budget's window is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Window {
    /// Fixed windows of `seconds`, aligned to the epoch (X's 15 minutes and 24 hours, Meta's hour).
    Fixed { seconds: i64 },
    /// Calendar days in UTC, reset at midnight (LinkedIn).
    DailyUtc,
}

impl Window {
    /// The window containing `now`: start and end, Unix seconds.
    pub fn bounds(self, now: i64) -> (i64, i64) {
        let size = match self {
            Window::Fixed { seconds } => seconds.max(1),
            Window::DailyUtc => 86_400,
        };
        let start = now.div_euclid(size) * size;
        (start, start + size)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub platform: Platform,
    /// What is counted, e.g. `publish` (each post's creating call).
    pub endpoint: String,
    pub scope: Scope,
    pub limit: u32,
    pub window: Window,
}

impl Budget {
    /// A budget on publishing (each post's creating call).
    pub fn publish(platform: Platform, scope: Scope, limit: u32, window: Window) -> Self {
        Self { platform, endpoint: "publish".into(), scope, limit, window }
    }

    /// A budget on the read that looks for a post whose answer was lost.
    pub fn read(platform: Platform, scope: Scope, limit: u32, window: Window) -> Self {
        Self { platform, endpoint: "read".into(), scope, limit, window }
    }

    /// A budget on deleting a published post (a tenant's `DELETE /v1/posts/{id}`).
    pub fn delete(platform: Platform, scope: Scope, limit: u32, window: Window) -> Self {
        Self { platform, endpoint: "delete".into(), scope, limit, window }
    }
}
