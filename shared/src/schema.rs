//! The shape of Herald's AWS resources, as the local bootstrap creates them.
//!
//! `template.yaml` declares the same resources for AWS; the `template_agrees_with_bootstrap`
//! test compares the two so they cannot drift apart.

/// Table partition and sort key attributes (both strings).
pub const PARTITION_KEY: &str = "pk";
pub const SORT_KEY: &str = "sk";

/// Items with this attribute (epoch seconds) are deleted by DynamoDB some time after it passes.
/// Deletion can lag by days, so readers must check expiry themselves: TTL is housekeeping only.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A global secondary index with string keys, projecting all attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gsi {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
}

/// `gsi1`: alternate lookups, e.g. `PLATFORM#{platform}#{platform account id}` → Herald accounts
/// (webhook routing). `gsi2`: time-ordered work, e.g. `DUE#…` → items by due time (scheduled
/// posts, tokens nearing expiry).
pub const GSIS: [Gsi; 2] = [
    Gsi { name: "gsi1", partition_key: "gsi1pk", sort_key: "gsi1sk" },
    Gsi { name: "gsi2", partition_key: "gsi2pk", sort_key: "gsi2sk" },
];

/// The work queue's visibility timeout: six times the `retries` function's 60 s timeout, as
/// AWS advises for SQS event sources, so a message is never redelivered while still in work.
pub const WORK_QUEUE_VISIBILITY_SECONDS: i32 = 360;
/// Deliveries before a message moves to the dead-letter queue. Herald's own retry policy counts
/// attempts in the job; this bound only catches messages that crash the handler.
pub const WORK_QUEUE_MAX_RECEIVES: i32 = 5;
/// Dead letters are kept for the SQS maximum, 14 days.
pub const DLQ_RETENTION_SECONDS: i32 = 14 * 24 * 3600;

/// Names of the resources of one deployment (or one test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    pub table: String,
    pub work_queue: String,
    pub dead_letter_queue: String,
    pub key_alias: String,
    /// The platform apps' secrets: `{prefix}/x`, `{prefix}/meta`, `{prefix}/linkedin`, as the
    /// template names them after its stack.
    pub app_secrets: [String; 4],
}

impl ResourceNames {
    /// `herald`, `herald-work`, `herald-work-dlq`, `alias/herald-tokens`, `herald/x`… with a prefix.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            table: prefix.to_owned(),
            work_queue: format!("{prefix}-work"),
            dead_letter_queue: format!("{prefix}-work-dlq"),
            key_alias: format!("alias/{prefix}-tokens"),
            app_secrets: ["x", "meta", "linkedin", "threads"].map(|platform| format!("{prefix}/{platform}")),
        }
    }
}
