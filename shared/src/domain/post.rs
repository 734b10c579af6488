//! A post and its targets as records: what a tenant asked to publish and where each target
//! stands. The transitions are the posts use case's ([`crate::posts`]); the store maps these to
//! items.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use super::{AccountId, Platform, PostId, TenantId, UserId};
use crate::clock::whole_seconds;

/// One media item, by URL (the platforms fetch it, or Herald does for upload-only APIs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub url: Url,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
}

/// A rule of a platform (or of Herald) that a post breaks: a stable code (docs/errors.md) and a
/// sentence naming the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub code: &'static str,
    pub detail: String,
}

impl Broken {
    /// The rule `code` is broken, as `detail` says.
    pub fn err(code: &'static str, detail: impl Into<String>) -> Result<(), Broken> {
        Err(Broken { code, detail: detail.into() })
    }
}

/// A target's state. Each transition is computed here ([`Target::claimed`], [`Target::settled`])
/// and written as a conditional put (see `store::posts`):
///
/// ```text
/// pending ──claim──▶ publishing ──▶ published ──delete──▶ deleting ──▶ deleted
///    ▲                   │ ├──────▶ failed      (refused: the platform's code and message)
///    │                   │ ├──────▶ unknown     (may have been applied, and the platform cannot be read)
///    └──── retrying ◀────┘ └──────▶ retrying    (transient, throttled: queued with a delay; or
///                                               an answer lost: looked for before any resend)
/// failed, unknown ──tenant's retry──▶ retrying   (an unknown one is looked for first)
/// pending, retrying ──tenant's delete──▶ canceled
/// ```
///
/// A deletion the platform refuses (or that runs out of tries) leaves the target `published`,
/// with the reason as its error: it is still on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Pending,
    Publishing,
    Published,
    Retrying,
    Failed,
    Unknown,
    /// Not yet published when the tenant deleted the post: never will be.
    Canceled,
    /// Published, and being deleted from the platform at the tenant's request.
    Deleting,
    /// Deleted from the platform at the tenant's request.
    Deleted,
}

impl TargetStatus {
    const ALL: [TargetStatus; 9] = [
        TargetStatus::Pending,
        TargetStatus::Publishing,
        TargetStatus::Published,
        TargetStatus::Retrying,
        TargetStatus::Failed,
        TargetStatus::Unknown,
        TargetStatus::Canceled,
        TargetStatus::Deleting,
        TargetStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Pending => "pending",
            TargetStatus::Publishing => "publishing",
            TargetStatus::Published => "published",
            TargetStatus::Retrying => "retrying",
            TargetStatus::Failed => "failed",
            TargetStatus::Unknown => "unknown",
            TargetStatus::Canceled => "canceled",
            TargetStatus::Deleting => "deleting",
            TargetStatus::Deleted => "deleted",
        }
    }

    /// Whether nothing more happens to the target unless the tenant acts on it.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            TargetStatus::Pending | TargetStatus::Publishing | TargetStatus::Retrying | TargetStatus::Deleting
        )
    }
}

impl std::str::FromStr for TargetStatus {
    type Err = ();
    fn from_str(raw: &str) -> Result<Self, ()> {
        TargetStatus::ALL.into_iter().find(|s| s.as_str() == raw).ok_or(())
    }
}

/// Why a target failed (or is unknown): Herald's code and words, and the platform's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message: Option<String>,
}

/// One finished attempt at a target: when, what it led to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub status: TargetStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TargetError>,
    /// This attempt found the post on the platform, made by an earlier attempt whose answer was
    /// lost (or whose worker died): published without sending anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub found: bool,
    /// Herald's id for the attempt: every log line of it carries this as `request_id`, so the
    /// history leads to its platform calls' log lines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// What the attempt's answer was, in Herald's classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// What was sent: the platform calls the attempt made, in order (the first
    /// [`Report::MAX_CALLS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Call>,
    /// For an attempt after a lost answer: where it looked for the post first, and what it found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub looked: Option<Look>,
}

/// What an attempt's answer was, in Herald's classes (the history's `answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The platform made the post (or deleted it) and said so.
    Done,
    /// Found on the platform, made by an earlier attempt whose answer was lost (or under the
    /// same idempotency key): nothing new was made.
    Found,
    /// Sent, and the answer was lost (timeout, reset, an unreadable answer to the creating call):
    /// it may have been applied.
    Lost,
    /// The platform refused the request (its code and words in the attempt's error).
    Refused,
    /// The platform refused the account's token.
    Unauthorized,
    /// The platform is throttling.
    Throttled,
    /// The platform failed or could not be reached (5xx, network): nothing was made.
    Failed,
    /// An answer Herald cannot read, to a call that creates nothing.
    Unexpected,
    /// The post may exist and the platform cannot be read to tell.
    Unreadable,
    /// Nothing reached the platform: Herald's side (the account, its grant, DynamoDB, the
    /// media, the deadline) stopped the attempt first.
    NotSent,
}

/// One platform call of an attempt: the endpoint as logged (`POST /2/tweets`), the answer's
/// status (absent: no answer), and the platform's own id for the request where it gives one
/// (Meta's `x-fb-trace-id`, LinkedIn's `x-li-uuid`, Mastodon's `x-request-id`): what its support
/// asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_request_id: Option<String>,
}

/// Where an attempt after a lost answer looked for the post before sending: among what the
/// account made since `since`, and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Look {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub result: LookResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookResult {
    /// There: published with what the platform shows, nothing sent.
    Found,
    /// Not there: sent (or, past the last attempt, given up).
    Absent,
    /// Resent under the same idempotency key, which is the look (Bluesky's record key,
    /// Mastodon's `Idempotency-Key`).
    Resent,
    /// The platform could not be read (or the read failed): nothing sent.
    Unreadable,
}

/// What one attempt did at the platform, for its history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub request_id: String,
    pub answer: Option<Answer>,
    pub calls: Vec<Call>,
    pub looked: Option<Look>,
}

impl Report {
    /// The calls an attempt's history keeps (an Instagram carousel makes one per item).
    pub const MAX_CALLS: usize = 12;

    /// A report for an attempt with a new request id.
    pub fn new() -> Self {
        Report { request_id: super::attempt_id(), ..Report::default() }
    }
}

/// Where an exhausted target's dead letter stands: written to the target first, then sent, so a
/// crash in between is finished by the job's next delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterState {
    Pending,
    Sent,
}

impl DeadLetterState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterState::Pending => "pending",
            DeadLetterState::Sent => "sent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub account_id: AccountId,
    pub platform: Platform,
    pub status: TargetStatus,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_post_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TargetError>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Every finished attempt, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Attempt>,
    /// Set when the target failed because its attempts ran out: its job goes to the dead-letter
    /// queue, from which an operator can redrive it.
    #[serde(skip)]
    pub dead_letter: Option<DeadLetterState>,
    #[serde(skip)]
    pub lease_until: Option<OffsetDateTime>,
    /// What the last attempt left at the platform for the next one to come back to (an
    /// Instagram container still being processed), in the platform's own terms.
    #[serde(skip)]
    pub resume: Option<String>,
    /// An earlier attempt may have been applied from this time on (its answer was lost, or its
    /// worker died): the next attempt looks for the post on the platform before sending.
    #[serde(skip)]
    pub check_since: Option<OffsetDateTime>,
    /// The event of the target's first outcome, kept in the target's own record (see
    /// [`KeptEvent`]).
    #[serde(skip)]
    pub kept_event: Option<KeptEvent>,
    #[serde(skip)]
    pub version: u64,
}

/// The event of a target's first outcome (`post.published`, `post.failed`, `post.unknown`),
/// kept in the target's own record rather than as an item of its own: the outcome and its event
/// are then one single-item write (one write unit and an index entry) instead of a two-item
/// transaction (four units), and are still written together or not at all. The journal lists it
/// with the tenant's other events. Only the first outcome's event is kept so: once written it
/// never changes, and every later event about the target is an item of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The event's content, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Target {
    /// A new target on `account`, waiting for its first attempt (at `at`, if scheduled).
    pub fn pending(account_id: AccountId, platform: Platform, at: Option<OffsetDateTime>) -> Self {
        Self {
            account_id,
            platform,
            status: TargetStatus::Pending,
            attempts: 0,
            platform_post_id: None,
            url: None,
            error: None,
            next_attempt_at: at,
            history: Vec::new(),
            dead_letter: None,
            lease_until: None,
            resume: None,
            check_since: None,
            kept_event: None,
            version: 1,
        }
    }

    /// The target claimed for one attempt at `now`: `publishing` with a lease, one more attempt.
    pub fn claimed(&self, now: OffsetDateTime, lease: time::Duration) -> Target {
        Target {
            status: TargetStatus::Publishing,
            lease_until: Some(whole_seconds(now + lease)),
            attempts: self.attempts + 1,
            next_attempt_at: None,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The claimed target after its attempt's `outcome`, at `now`; `report`: what the attempt
    /// did at the platform, for its history entry.
    pub fn settled(&self, outcome: &Outcome, report: Report, now: OffsetDateTime) -> Target {
        let mut next = Target { version: self.version + 1, lease_until: None, ..self.clone() };
        next.status = match outcome {
            Outcome::Published { .. } => TargetStatus::Published,
            Outcome::Failed(_) | Outcome::Exhausted(_) => TargetStatus::Failed,
            Outcome::Unknown(_) => TargetStatus::Unknown,
            Outcome::Retry { .. } | Outcome::Processing { .. } | Outcome::Reconcile { .. } => TargetStatus::Retrying,
        };
        // Every attempt that reached the platform (or Herald's own failure) joins the history;
        // deferrals by Herald's own budget are not attempts, but one after a look keeps what the
        // look read and found.
        if report.looked.is_some()
            || !matches!(outcome, Outcome::Retry { counted: false, .. } | Outcome::Processing { .. })
        {
            next.history.push(Attempt {
                number: self.next_number(),
                at: whole_seconds(now),
                status: next.status,
                error: match outcome {
                    Outcome::Published { .. } => None,
                    Outcome::Failed(e) | Outcome::Unknown(e) | Outcome::Exhausted(e) => Some(e.clone()),
                    Outcome::Retry { error, .. } => error.clone(),
                    Outcome::Processing { note, .. } | Outcome::Reconcile { note, .. } => Some(note.clone()),
                },
                found: matches!(outcome, Outcome::Published { found: true, .. }),
                request_id: report.request_id,
                answer: report.answer,
                calls: report.calls,
                looked: report.looked,
            });
        }
        next.resume = None;
        // An unknown target keeps when its answer was lost: a tenant's retry looks from there.
        if outcome.is_final() && !matches!(outcome, Outcome::Unknown(_)) {
            next.check_since = None;
        }
        match outcome {
            Outcome::Processing { at, resume, note } => {
                // Waiting on the platform is not an attempt; the platform's module bounds how
                // long it waits.
                next.attempts = next.attempts.saturating_sub(1);
                next.next_attempt_at = Some(whole_seconds(*at));
                next.resume = Some(resume.clone());
                next.error = Some(note.clone());
            }
            Outcome::Reconcile { at, since, note } => {
                next.next_attempt_at = Some(whole_seconds(*at));
                next.check_since = Some(whole_seconds(self.check_since.map_or(*since, |earlier| earlier.min(*since))));
                next.error = Some(note.clone());
            }
            Outcome::Published { platform_post_id, url, .. } => {
                next.platform_post_id = Some(platform_post_id.clone());
                next.url = url.clone().or(next.url);
                next.error = None;
            }
            Outcome::Exhausted(error) => {
                next.error = Some(error.clone());
                next.dead_letter = Some(DeadLetterState::Pending);
            }
            Outcome::Failed(error) | Outcome::Unknown(error) => next.error = Some(error.clone()),
            Outcome::Retry { at, error, counted } => {
                if !counted {
                    next.attempts = next.attempts.saturating_sub(1);
                }
                next.next_attempt_at = Some(whole_seconds(*at));
                if let Some(error) = error {
                    next.error = Some(error.clone());
                }
            }
        }
        next
    }
}

impl Target {
    /// The number the next finished attempt takes in the history (numbers keep counting when a
    /// retry or a deletion starts a fresh count of attempts).
    fn next_number(&self) -> u32 {
        self.history.last().map_or(1, |last| last.number + 1)
    }

    /// A `failed` or `unknown` target the tenant asked to try again, at `now`: `retrying`, due now,
    /// with a fresh count of attempts (its history stays). `look_since`: an unknown target's
    /// post may exist, made at or after this time, so the next attempt looks for it first.
    pub fn reopened(&self, now: OffsetDateTime, look_since: Option<OffsetDateTime>) -> Target {
        Target {
            status: TargetStatus::Retrying,
            attempts: 0,
            next_attempt_at: Some(whole_seconds(now)),
            error: None,
            dead_letter: None,
            lease_until: None,
            resume: None,
            check_since: look_since.map(whole_seconds),
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// A target not yet published whose post the tenant deleted: `canceled`, for good.
    pub fn canceled(&self) -> Target {
        Target {
            status: TargetStatus::Canceled,
            next_attempt_at: None,
            lease_until: None,
            resume: None,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// A published target whose post the tenant deleted: `deleting`, due now, with a fresh count
    /// of attempts (the deletion's).
    pub fn deleting(&self, now: OffsetDateTime) -> Target {
        Target {
            status: TargetStatus::Deleting,
            attempts: 0,
            next_attempt_at: Some(whole_seconds(now)),
            error: None,
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// A `deleting` target after one try at deleting it from the platform, at `now` (`report`:
    /// what the try did there).
    pub fn after_deletion(&self, deletion: &Deletion, report: Report, now: OffsetDateTime) -> Target {
        let mut next = Target { attempts: self.attempts + 1, version: self.version + 1, ..self.clone() };
        let (status, error) = match deletion {
            Deletion::Deleted => (TargetStatus::Deleted, None),
            Deletion::Retry { error, .. } => (TargetStatus::Deleting, Some(error.clone())),
            Deletion::Kept(error) => (TargetStatus::Published, Some(error.clone())),
        };
        next.status = status;
        next.error = error.clone();
        next.next_attempt_at = match deletion {
            Deletion::Retry { at, .. } => Some(whole_seconds(*at)),
            _ => None,
        };
        next.history.push(Attempt {
            number: self.next_number(),
            at: whole_seconds(now),
            status,
            error,
            found: false,
            request_id: report.request_id,
            answer: report.answer,
            calls: report.calls,
            looked: None,
        });
        next
    }
}

/// What one try at deleting a published target from its platform came to.
#[derive(Debug, Clone)]
pub enum Deletion {
    /// Gone from the platform (deleted now, or already).
    Deleted,
    /// Passing trouble: try again at `at`.
    Retry { at: OffsetDateTime, error: TargetError },
    /// Not deleted, for good (refused, not offered, or the tries ran out): it stays published.
    Kept(TargetError),
}

/// What a finished attempt wrote to a target.
#[derive(Debug, Clone)]
pub enum Outcome {
    Published {
        platform_post_id: String,
        url: Option<String>,
        /// Found on the platform, made by an earlier attempt whose answer was lost.
        found: bool,
    },
    Failed(TargetError),
    /// May have been applied: never resent blindly.
    Unknown(TargetError),
    /// The platform is still processing what this attempt made: come back to `resume` at `at`
    /// (not counted as an attempt).
    Processing {
        at: OffsetDateTime,
        resume: String,
        note: TargetError,
    },
    /// The answer was lost (or the worker died) after the post may have been made: look for it
    /// on the platform at `at`, among what the account posted since `since`, before sending
    /// anything again.
    Reconcile {
        at: OffsetDateTime,
        since: OffsetDateTime,
        note: TargetError,
    },
    /// Retryable, but the attempts ran out: `failed`, and the job goes to the dead-letter queue.
    Exhausted(TargetError),
    /// Try again at `at` (transient failure, throttling, a token to refresh first). `counted`:
    /// whether this attempt counts toward the bound (not when our own budget deferred it).
    Retry {
        at: OffsetDateTime,
        error: Option<TargetError>,
        counted: bool,
    },
}

impl Outcome {
    /// Whether the target is settled for good.
    pub fn is_final(&self) -> bool {
        matches!(self, Outcome::Published { .. } | Outcome::Failed(_) | Outcome::Unknown(_) | Outcome::Exhausted(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Post {
    pub id: PostId,
    #[serde(skip)]
    pub tenant: TenantId,
    pub user_id: UserId,
    pub text: String,
    pub media: Vec<Media>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the tenant deleted the post (its targets then canceled, or deleted from the platforms).
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<OffsetDateTime>,
    pub targets: Vec<Target>,
}
