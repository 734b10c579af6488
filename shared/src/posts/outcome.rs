//! What an attempt's result means for its target: one pure decision, free of I/O (the clock's
//! reading and the backoff's random draw are arguments), so every row of it is a unit test.
//!
//! [`decide`] turns what happened ([`Attempted`]) and the attempt's number into an [`Outcome`];
//! [`Target::settled`](crate::domain::post::Target::settled) turns that into the target's next
//! state (status, error, history, when to try again). `publish` does the I/O around both.

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::post::{Answer, Outcome, TargetError};
use crate::platforms::PlatformError;
use crate::platforms::publish::Lookup;
use crate::queue::backoff_drawn;

/// Attempts per target before it fails for good.
pub const MAX_ATTEMPTS: u32 = 8;
/// Herald's own failure is tried again this soon.
const INTERNAL_RETRY: Duration = Duration::from_secs(5);
/// A refused token is refreshed and the target tried again this soon.
const UNAUTHORIZED_RETRY: Duration = Duration::from_secs(1);
/// Throttled without a reset time: tried again after a window of the usual length.
const THROTTLED_RETRY: Duration = Duration::from_secs(900);

/// What one attempt came to, before it is judged.
#[derive(Debug, Clone)]
pub enum Attempted {
    Published {
        platform_post_id: String,
        url: Option<String>,
        /// Found on the platform, made by an earlier attempt whose answer was lost.
        found: bool,
    },
    /// The creating call's answer was lost after it may have been applied (or the worker
    /// making it died), at or after `since`; `lookup`: how the platform can be asked.
    Lost { detail: String, lookup: Lookup, since: OffsetDateTime },
    /// Looking for a post whose answer was lost failed (the read's own error).
    LookupFailed(PlatformError),
    /// The post may exist, and the platform cannot tell: the reason.
    Unreadable(String),
    /// Looked for past the last attempt and not there: not sent again (the reason).
    GaveUp(String),
    /// The platform call failed, or was not made (its answer, classified by the platform's module).
    Platform(PlatformError),
    /// The target's account was disconnected.
    AccountGone,
    /// The account's grant is dead (revoked, or its refresh refused); `after_refusal`: the
    /// platform refused the token on the publishing call first.
    GrantDead { after_refusal: bool },
    /// Herald's own failure (DynamoDB); `transient`: passing trouble that says nothing about
    /// the post (throttling, a transaction conflict), which is not counted as an attempt.
    Internal { message: String, transient: bool },
    /// Herald's budget for the platform is spent until `until`: not sent, not an attempt.
    OverBudget { until: OffsetDateTime },
    /// The token is due for a refresh, which this caller may not do: not sent, not an attempt.
    RefreshFirst,
}

impl Attempted {
    /// The attempt's answer in the history's classes.
    pub fn answer(&self) -> Answer {
        match self {
            Attempted::Published { found: true, .. } => Answer::Found,
            Attempted::Published { found: false, .. } => Answer::Done,
            Attempted::Lost { .. } => Answer::Lost,
            Attempted::LookupFailed(_) | Attempted::Unreadable(_) => Answer::Unreadable,
            // Looked for, and not there: nothing was sent.
            Attempted::GaveUp(_) => Answer::NotSent,
            Attempted::Platform(e) => match e {
                PlatformError::Refused { .. } | PlatformError::QuotaExhausted { .. } => Answer::Refused,
                PlatformError::Unauthorized { .. } => Answer::Unauthorized,
                PlatformError::RateLimited { .. } => Answer::Throttled,
                PlatformError::Transient { .. } => Answer::Failed,
                PlatformError::Unexpected { .. } => Answer::Unexpected,
                // Taken, still being processed (never in the history: waiting is not an attempt).
                PlatformError::Processing { .. } => Answer::Done,
                PlatformError::Ambiguous { .. } => Answer::Lost,
                PlatformError::Media { .. } | PlatformError::NotConfigured(_) | PlatformError::Deferred { .. } => {
                    Answer::NotSent
                }
            },
            Attempted::AccountGone
            | Attempted::GrantDead { after_refusal: false }
            | Attempted::Internal { .. }
            | Attempted::OverBudget { .. }
            | Attempted::RefreshFirst => Answer::NotSent,
            Attempted::GrantDead { after_refusal: true } => Answer::Unauthorized,
        }
    }
}

fn error(code: &str, message: impl Into<String>) -> TargetError {
    TargetError { code: code.to_owned(), message: message.into(), platform_code: None, platform_message: None }
}

/// The outcome of attempt number `attempt` (counting from 1) that came to `attempted` at `now`;
/// `draw` is the random number a backoff delay is drawn with.
pub fn decide(attempted: Attempted, attempt: u32, now: OffsetDateTime, draw: u64) -> Outcome {
    let looking = matches!(attempted, Attempted::LookupFailed(_) | Attempted::Lost { .. });
    match judge(attempted, attempt, now, draw) {
        // One look past the last attempt, never another send: lost again, it is unknown.
        Outcome::Reconcile { note, .. } if attempt > MAX_ATTEMPTS => Outcome::Unknown(error(
            "outcome_unknown",
            format!(
                "{MAX_ATTEMPTS} attempts' answers were lost, and the last look could not settle it ({})",
                note.message
            ),
        )),
        // The post may exist: when the attempts to look for it run out, it is unknown, not failed.
        Outcome::Retry { error: last, counted: true, .. } if looking && attempt >= MAX_ATTEMPTS => {
            Outcome::Unknown(error(
                "outcome_unknown",
                format!(
                    "an earlier attempt's answer was lost, and the platform could not be read in {MAX_ATTEMPTS} attempts (the last: {})",
                    last.as_ref().map(|e| e.message.as_str()).unwrap_or("retry")
                ),
            ))
        }
        // Bounded attempts: the last retryable failure fails the target with its reason.
        Outcome::Retry { error: last, counted: true, .. } if attempt >= MAX_ATTEMPTS => {
            Outcome::Exhausted(TargetError {
                code: "attempts_exhausted".into(),
                message: format!(
                    "{MAX_ATTEMPTS} attempts failed; the last: {}",
                    last.as_ref().map(|e| e.message.as_str()).unwrap_or("retry")
                ),
                platform_code: last.as_ref().and_then(|e| e.platform_code.clone()),
                platform_message: last.and_then(|e| e.platform_message),
            })
        }
        other => other,
    }
}

fn judge(attempted: Attempted, attempt: u32, now: OffsetDateTime, draw: u64) -> Outcome {
    let later = |delay: Duration| now + delay;
    match attempted {
        Attempted::Published { platform_post_id, url, found } => Outcome::Published { platform_post_id, url, found },
        Attempted::Lost { detail, lookup, since } => lost(detail, lookup, since, attempt, now, draw),
        Attempted::LookupFailed(err) => match platform(err, attempt, now, draw) {
            // The read was refused for good: the platform cannot say.
            Outcome::Failed(e) => Outcome::Unknown(error(
                "outcome_unknown",
                format!(
                    "an earlier attempt's answer was lost, and the platform refused the read that would find the post ({})",
                    e.platform_message.as_deref().unwrap_or(&e.message)
                ),
            )),
            other => other,
        },
        Attempted::Unreadable(reason) => Outcome::Unknown(error("outcome_unknown", reason)),
        Attempted::GaveUp(reason) => Outcome::Exhausted(error("attempts_exhausted", reason)),
        Attempted::AccountGone => Outcome::Failed(error("account_not_found", "the account was disconnected")),
        Attempted::GrantDead { after_refusal: false } => {
            Outcome::Failed(error("account_needs_reauth", "the account must be connected again"))
        }
        Attempted::GrantDead { after_refusal: true } => {
            Outcome::Failed(error("account_needs_reauth", "the platform refused the account's token and its refresh"))
        }
        Attempted::Internal { message, transient } => Outcome::Retry {
            at: later(INTERNAL_RETRY),
            error: Some(error("internal_error", message)),
            counted: !transient,
        },
        Attempted::OverBudget { until } => Outcome::Retry {
            at: until.max(now),
            error: Some(error("rate_limited", "over the platform's budget; deferred to the window's reset")),
            counted: false,
        },
        Attempted::RefreshFirst => Outcome::Retry { at: now, error: None, counted: false },
        Attempted::Platform(err) => platform(err, attempt, now, draw),
    }
}

/// What a lost answer means: look on the platform once its reads show the post (a listing's
/// lag), or resend under the same key (the platform answers with the post it made), or, where
/// the platform cannot be asked, `unknown`.
fn lost(
    detail: String,
    lookup: Lookup,
    since: OffsetDateTime,
    attempt: u32,
    now: OffsetDateTime,
    draw: u64,
) -> Outcome {
    match lookup {
        Lookup::Listing { lag } => Outcome::Reconcile {
            at: now + lag,
            since,
            note: error(
                "outcome_unknown",
                format!("the answer was lost ({detail}); the account's posts are read again before anything is sent"),
            ),
        },
        // Resent with backoff, and not before the platform is done with the first request;
        // `since` kept, so a resend past the key's memory is not made.
        Lookup::Resend { settle, .. } => Outcome::Reconcile {
            at: now + settle.max(backoff_drawn(attempt, draw)),
            since,
            note: error(
                "outcome_unknown",
                format!(
                    "the answer was lost ({detail}); it is sent again under the same key, which the platform does not post twice"
                ),
            ),
        },
        Lookup::None => Outcome::Unknown(error(
            "outcome_unknown",
            format!(
                "the platform may have published this post ({detail}); it cannot be read back, so it was not sent again"
            ),
        )),
    }
}

/// What a platform failure means for the target.
fn platform(err: PlatformError, attempt: u32, now: OffsetDateTime, draw: u64) -> Outcome {
    let later = |delay: Duration| now + delay;
    match err {
        PlatformError::Unauthorized { code, message, .. } => {
            // The token was refused although it looked valid: refresh once, then retry.
            Outcome::Retry {
                counted: true,
                at: later(UNAUTHORIZED_RETRY),
                error: Some(TargetError {
                    code: "unauthorized".into(),
                    message: "the platform refused the token".into(),
                    platform_code: Some(code),
                    platform_message: Some(message),
                }),
            }
        }
        PlatformError::Refused { code, message, status, .. } => Outcome::Failed(TargetError {
            code: "platform_rejected".into(),
            message: format!("the platform refused the post ({status})"),
            platform_code: Some(code),
            platform_message: Some(message),
        }),
        PlatformError::RateLimited { retry_at, .. } => {
            let at =
                retry_at.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()).unwrap_or(later(THROTTLED_RETRY));
            Outcome::Retry {
                at: at.max(now),
                error: Some(error("rate_limited", "the platform's limit was reached; deferred to its reset")),
                counted: true,
            }
        }
        PlatformError::Transient { detail, .. } => Outcome::Retry {
            at: later(backoff_drawn(attempt, draw)),
            error: Some(error("platform_unavailable", detail)),
            counted: true,
        },
        // An answer Herald cannot read, before the creating call: nothing was published.
        PlatformError::Unexpected { detail, .. } => Outcome::Retry {
            at: later(backoff_drawn(attempt, draw)),
            error: Some(error("platform_unexpected", format!("the platform's answer could not be read ({detail})"))),
            counted: true,
        },
        // Only a lookup's own read can answer this way (a creating call's is `Attempted::Lost`).
        PlatformError::Ambiguous { detail, .. } => Outcome::Retry {
            at: later(backoff_drawn(attempt, draw)),
            error: Some(error("platform_unexpected", detail)),
            counted: true,
        },
        PlatformError::Media { code, message } => Outcome::Failed(error(code, message)),
        PlatformError::QuotaExhausted { message, .. } => Outcome::Failed(TargetError {
            code: "platform_quota_exhausted".into(),
            message: "the deployment's app has spent its usage cap with the platform; the operator must raise it"
                .into(),
            platform_code: None,
            platform_message: Some(message),
        }),
        // Nothing was sent: the queue takes it from here, and it is not an attempt.
        PlatformError::Deferred { .. } => Outcome::Retry { at: now, error: None, counted: false },
        PlatformError::Processing { resume, retry_in, detail, .. } => Outcome::Processing {
            at: later(Duration::from_secs(retry_in)),
            resume,
            note: error("media_processing", detail),
        },
        PlatformError::NotConfigured(platform) => {
            Outcome::Failed(error("platform_not_configured", format!("{platform} is not configured")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;
    use crate::domain::post::{Report, Target, TargetStatus};

    const P: Platform = Platform::X;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_953_600).unwrap()
    }

    /// The kind of outcome a row expects, its target error code, whether it counts as an
    /// attempt, and when it is tried again (seconds from now: exactly, or at most for a backoff).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Published,
        Failed,
        Unknown,
        Exhausted,
        Retry,
        Reconcile,
    }
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Delay {
        Never,
        Exactly(i64),
        AtMost(i64),
        Between(i64, i64),
    }

    fn cases() -> Vec<(&'static str, Attempted)> {
        let refused = |status: u16, code: &str| {
            Attempted::Platform(PlatformError::Refused {
                platform: P,
                status,
                code: code.into(),
                message: "platform words".into(),
            })
        };
        vec![
            (
                "published",
                Attempted::Published {
                    platform_post_id: "1".into(),
                    url: Some("https://x.com/i/1".into()),
                    found: false,
                },
            ),
            ("found", Attempted::Published { platform_post_id: "1".into(), url: None, found: true }),
            (
                "lost, listed",
                Attempted::Lost {
                    detail: "timeout".into(),
                    lookup: Lookup::Listing { lag: Duration::from_secs(60) },
                    since: now(),
                },
            ),
            (
                "lost, resent",
                Attempted::Lost {
                    detail: "timeout".into(),
                    lookup: Lookup::Resend { settle: Duration::ZERO, within: None, then_listed: false },
                    since: now(),
                },
            ),
            (
                "lost, resent once settled",
                Attempted::Lost {
                    detail: "timeout".into(),
                    lookup: Lookup::Resend { settle: Duration::from_secs(60), within: None, then_listed: false },
                    since: now(),
                },
            ),
            ("lost, unreadable", Attempted::Lost { detail: "timeout".into(), lookup: Lookup::None, since: now() }),
            (
                "lookup failed",
                Attempted::LookupFailed(PlatformError::Transient { platform: P, detail: "status 503".into() }),
            ),
            (
                "lookup refused",
                Attempted::LookupFailed(PlatformError::Refused {
                    platform: P,
                    status: 403,
                    code: "200".into(),
                    message: "Permissions error".into(),
                }),
            ),
            ("unreadable", Attempted::Unreadable("the account is gone".into())),
            (
                "token refused",
                Attempted::Platform(PlatformError::Unauthorized {
                    platform: P,
                    status: 400,
                    code: "190".into(),
                    message: "Error validating access token".into(),
                }),
            ),
            ("refused 403", refused(403, "453")),
            ("refused 400", refused(400, "100")),
            (
                "throttled, reset known",
                Attempted::Platform(PlatformError::RateLimited {
                    platform: P,
                    retry_at: Some(now().unix_timestamp() + 120),
                    app_wide: false,
                }),
            ),
            (
                "throttled, reset passed",
                Attempted::Platform(PlatformError::RateLimited {
                    platform: P,
                    retry_at: Some(now().unix_timestamp() - 5),
                    app_wide: true,
                }),
            ),
            (
                "throttled, reset unknown",
                Attempted::Platform(PlatformError::RateLimited { platform: P, retry_at: None, app_wide: false }),
            ),
            ("transient", Attempted::Platform(PlatformError::Transient { platform: P, detail: "status 503".into() })),
            (
                "unreadable before the creating call",
                Attempted::Platform(PlatformError::Unexpected { platform: P, detail: "no media id".into() }),
            ),
            (
                "ambiguous",
                Attempted::Platform(PlatformError::Ambiguous {
                    platform: P,
                    detail: "timeout after the request was sent".into(),
                }),
            ),
            (
                "media",
                Attempted::Platform(PlatformError::Media { code: "media_too_large", message: "over 5 MB".into() }),
            ),
            (
                "quota exhausted",
                Attempted::Platform(PlatformError::QuotaExhausted {
                    platform: P,
                    message: "Usage cap exceeded: Monthly product cap".into(),
                }),
            ),
            ("deferred by the deadline", Attempted::Platform(PlatformError::Deferred { platform: P })),
            (
                "still processing",
                Attempted::Platform(PlatformError::Processing {
                    platform: P,
                    resume: "ready:1@0".into(),
                    retry_in: 60,
                    detail: "processing".into(),
                }),
            ),
            ("not configured", Attempted::Platform(PlatformError::NotConfigured(P))),
            ("account gone", Attempted::AccountGone),
            ("grant dead", Attempted::GrantDead { after_refusal: false }),
            ("grant dead after a refusal", Attempted::GrantDead { after_refusal: true }),
            ("internal", Attempted::Internal { message: "a DynamoDB call failed".into(), transient: false }),
            ("internal, passing", Attempted::Internal { message: "throttled".into(), transient: true }),
            ("over budget", Attempted::OverBudget { until: now() + time::Duration::seconds(300) }),
            ("refresh first", Attempted::RefreshFirst),
        ]
    }

    /// Each case at the first attempt, the last but one, the last, and the look after it (kind,
    /// code, counted, delay). A retryable, counted failure at the last attempt is exhausted.
    fn expected(name: &str, attempt: u32) -> (Kind, Option<&'static str>, bool, Delay) {
        use Delay::*;
        use Kind::*;
        let last = attempt >= MAX_ATTEMPTS;
        let counted_retry = |code, delay| {
            if last { (Exhausted, Some("attempts_exhausted"), true, Never) } else { (Retry, Some(code), true, delay) }
        };
        let backoff = AtMost(2i64.saturating_mul(1 << attempt).min(900));
        match name {
            "published" | "found" => (Published, Option::None, true, Never),
            // The post may exist: looked for again at the platform's lag, however many attempts.
            // One look past the last attempt; lost then, unknown.
            "lost, listed" | "lost, resent" | "lost, resent once settled" if attempt > MAX_ATTEMPTS => {
                (Unknown, Some("outcome_unknown"), true, Never)
            }
            "lost, listed" => (Reconcile, Some("outcome_unknown"), true, Exactly(60)),
            "lookup failed" if last => (Unknown, Some("outcome_unknown"), true, Never),
            "lost, resent" => (Reconcile, Some("outcome_unknown"), true, backoff),
            // Never before the platform is done with the first request.
            "lost, resent once settled" => (
                Reconcile,
                Some("outcome_unknown"),
                true,
                Between(60, 60.max(2i64.saturating_mul(1 << attempt).min(900))),
            ),
            "lookup failed" => (Retry, Some("platform_unavailable"), true, backoff),
            "lost, unreadable" | "lookup refused" | "unreadable" => (Unknown, Some("outcome_unknown"), true, Never),
            "token refused" => counted_retry("unauthorized", Exactly(1)),
            "refused 403" | "refused 400" => (Failed, Some("platform_rejected"), true, Never),
            "throttled, reset known" => counted_retry("rate_limited", Exactly(120)),
            "throttled, reset passed" => counted_retry("rate_limited", Exactly(0)),
            "throttled, reset unknown" => counted_retry("rate_limited", Exactly(900)),
            "transient" => counted_retry("platform_unavailable", backoff),
            "unreadable before the creating call" => counted_retry("platform_unexpected", backoff),
            "ambiguous" => counted_retry("platform_unexpected", backoff),
            "media" => (Failed, Some("media_too_large"), true, Never),
            "quota exhausted" => (Failed, Some("platform_quota_exhausted"), true, Never),
            "deferred by the deadline" | "refresh first" => (Retry, Option::None, false, Exactly(0)),
            // Waiting on the platform is never an attempt, at any attempt number.
            "still processing" => (Retry, Some("media_processing"), false, Exactly(60)),
            "not configured" => (Failed, Some("platform_not_configured"), true, Never),
            "account gone" => (Failed, Some("account_not_found"), true, Never),
            "grant dead" | "grant dead after a refusal" => (Failed, Some("account_needs_reauth"), true, Never),
            "internal" => counted_retry("internal_error", Exactly(5)),
            "internal, passing" => (Retry, Some("internal_error"), false, Exactly(5)),
            "over budget" => (Retry, Some("rate_limited"), false, Exactly(300)),
            other => panic!("no row for {other}"),
        }
    }

    fn observed(outcome: &Outcome) -> (Kind, Option<&str>, bool, Delay) {
        let seconds = |at: &OffsetDateTime| (*at - now()).whole_seconds();
        match outcome {
            Outcome::Published { .. } => (Kind::Published, None, true, Delay::Never),
            Outcome::Failed(e) => (Kind::Failed, Some(e.code.as_str()), true, Delay::Never),
            Outcome::Unknown(e) => (Kind::Unknown, Some(e.code.as_str()), true, Delay::Never),
            Outcome::Exhausted(e) => (Kind::Exhausted, Some(e.code.as_str()), true, Delay::Never),
            Outcome::Retry { at, error, counted } => {
                (Kind::Retry, error.as_ref().map(|e| e.code.as_str()), *counted, Delay::Exactly(seconds(at)))
            }
            Outcome::Processing { at, note, .. } => {
                (Kind::Retry, Some(note.code.as_str()), false, Delay::Exactly(seconds(at)))
            }
            Outcome::Reconcile { at, note, .. } => {
                (Kind::Reconcile, Some(note.code.as_str()), true, Delay::Exactly(seconds(at)))
            }
        }
    }

    #[test]
    fn every_case_at_every_attempt_edge_decides_as_its_row_says() {
        for attempt in [1, MAX_ATTEMPTS - 1, MAX_ATTEMPTS, MAX_ATTEMPTS + 1] {
            for (name, attempted) in cases() {
                // The largest draw gives the longest backoff, the smallest none: both must fit.
                for draw in [0, u64::MAX] {
                    let outcome = decide(attempted.clone(), attempt, now(), draw);
                    let (kind, code, counted, delay) = observed(&outcome);
                    let (want_kind, want_code, want_counted, want_delay) = expected(name, attempt);
                    let row = format!("{name} at attempt {attempt} (draw {draw}): {outcome:?}");
                    assert_eq!((kind, code, counted), (want_kind, want_code, want_counted), "{row}");
                    match (want_delay, delay) {
                        (Delay::AtMost(most), Delay::Exactly(got)) => assert!((0..=most).contains(&got), "{row}"),
                        (Delay::Between(least, most), Delay::Exactly(got)) => {
                            assert!((least..=most).contains(&got), "{row}")
                        }
                        (want, got) => assert_eq!(got, want, "{row}"),
                    }
                }
            }
        }
    }

    #[test]
    fn an_exhausted_target_keeps_the_last_reason_and_the_platforms_words() {
        let refused = PlatformError::Unauthorized {
            platform: P,
            status: 401,
            code: "89".into(),
            message: "Invalid or expired token".into(),
        };
        let Outcome::Exhausted(error) = decide(Attempted::Platform(refused), MAX_ATTEMPTS, now(), 0) else {
            panic!("not exhausted")
        };
        assert_eq!(error.message, "8 attempts failed; the last: the platform refused the token");
        assert_eq!(error.platform_code.as_deref(), Some("89"));
        assert_eq!(error.platform_message.as_deref(), Some("Invalid or expired token"));
    }

    /// Every row's answer class, as its history entry shows it (issue 18, item 2).
    #[test]
    fn each_attempt_names_its_answer_class() {
        use Answer::*;
        let class = |name: &str| match name {
            "published" => Done,
            "found" => Found,
            "lost, listed" | "lost, resent" | "lost, resent once settled" | "lost, unreadable" | "ambiguous" => Lost,
            "lookup failed" | "lookup refused" | "unreadable" => Unreadable,
            "token refused" | "grant dead after a refusal" => Unauthorized,
            "refused 403" | "refused 400" | "quota exhausted" => Refused,
            "throttled, reset known" | "throttled, reset passed" | "throttled, reset unknown" => Throttled,
            "transient" => Failed,
            "unreadable before the creating call" => Unexpected,
            "still processing" => Done,
            "media"
            | "deferred by the deadline"
            | "not configured"
            | "account gone"
            | "grant dead"
            | "internal"
            | "internal, passing"
            | "over budget"
            | "refresh first" => NotSent,
            other => panic!("a row without a class: {other}"),
        };
        for (name, attempted) in cases() {
            assert_eq!(attempted.answer(), class(name), "{name}");
        }
    }

    /// An attempt's report (request id, answer, calls, look) is what its history entry keeps.
    #[test]
    fn the_history_keeps_what_the_attempt_did() {
        use crate::domain::post::{Call, Look, LookResult};
        let claimed = Target::pending("acc_AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap(), P, None)
            .claimed(now(), time::Duration::minutes(2));
        let report = Report {
            answer: Some(Answer::Found),
            calls: vec![Call {
                endpoint: "GET /2/users/{id}/tweets".into(),
                status: Some(200),
                platform_request_id: None,
            }],
            looked: Some(Look { since: now(), result: LookResult::Found }),
            ..Report::new()
        };
        let outcome = Outcome::Published { platform_post_id: "1".into(), url: None, found: true };
        let entry = claimed.settled(&outcome, report.clone(), now()).history.pop().unwrap();
        assert!(entry.request_id.starts_with("att_") && entry.request_id.len() == 20, "{}", entry.request_id);
        assert_eq!(
            (entry.request_id, entry.answer, entry.calls, entry.looked),
            (report.request_id, report.answer, report.calls, report.looked)
        );
    }

    /// The decision and the transition together: what the target becomes, and what its history
    /// says, for one row of each kind.
    #[test]
    fn a_decided_outcome_settles_the_claimed_target() {
        let pending = Target::pending("acc_AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap(), P, None);
        let claimed = pending.claimed(now(), time::Duration::minutes(2));
        for (name, attempted) in cases() {
            let outcome = decide(attempted, claimed.attempts, now(), 0);
            let settled = claimed.settled(&outcome, Report::default(), now());
            let (kind, code, counted, _) = expected(name, claimed.attempts);
            let status = match kind {
                Kind::Published => TargetStatus::Published,
                Kind::Failed | Kind::Exhausted => TargetStatus::Failed,
                Kind::Unknown => TargetStatus::Unknown,
                Kind::Retry | Kind::Reconcile => TargetStatus::Retrying,
            };
            assert_eq!(settled.status, status, "{name}");
            // Only a lost answer leaves the next attempt a look to make; a final outcome clears it.
            assert_eq!(settled.check_since.is_some(), kind == Kind::Reconcile, "{name}");
            assert_eq!(settled.history.last().is_some_and(|a| a.found), name == "found", "{name}");
            assert_eq!(settled.attempts, u32::from(counted), "{name}: an uncounted deferral is not an attempt");
            assert_eq!(settled.history.len(), usize::from(counted), "{name}");
            if kind != Kind::Published {
                assert_eq!(settled.error.as_ref().map(|e| e.code.as_str()), code, "{name}");
            }
        }
    }
}
