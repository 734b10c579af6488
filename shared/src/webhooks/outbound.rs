//! Delivery to a tenant's own endpoint, signed per the Standard Webhooks specification
//! (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and `webhook-signature` =
//! space-separated `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one per valid
//! secret, where a secret is `whsec_` + base64 of its key bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use crate::clock::SharedClock;
use crate::domain::TenantId;
use crate::domain::post::TargetError;
use crate::egress::{Egress, EgressError};
use crate::queue::dead::{DeadLetter, DeadLetterQueue};
use crate::queue::{EventHome, Job, QueueError, WorkQueue, backoff};
use crate::store::{EndpointStore, Event, Journal, StoreError};

pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: 24 random bytes (the specification asks for 24 to 64).
pub fn new_secret() -> SecretString {
    let key: [u8; 24] = crate::domain::random_bytes();
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook signing secret is not whsec_ and base64")]
pub struct InvalidSecret;

/// One `v1,…` signature of a message.
pub fn sign(secret: &SecretString, id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidSecret> {
    let encoded = secret.expose_secret().strip_prefix(SECRET_PREFIX).ok_or(InvalidSecret)?;
    let key = zeroize::Zeroizing::new(STANDARD.decode(encoded).map_err(|_| InvalidSecret)?);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The headers of one delivery attempt, signed with every secret still valid (during a
/// rotation, the new one and the old one).
pub fn headers(
    secrets: &[SecretString],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<[(&'static str, String); 3], InvalidSecret> {
    let signatures = secrets.iter().map(|s| sign(s, id, timestamp, body)).collect::<Result<Vec<_>, _>>()?;
    Ok([
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signatures.join(" ")),
    ])
}

/// Deliveries tried before the job goes to the dead-letter queue (with backoff capped at 15
/// minutes, about an hour and a half in all).
pub const DELIVERY_ATTEMPTS: u32 = 10;

/// What delivering to tenants' endpoints uses, and nothing else: built once by
/// [`crate::app::App`].
#[derive(Clone)]
pub struct Deliverer {
    pub endpoints: EndpointStore,
    pub journal: Journal,
    pub egress: std::sync::Arc<Egress>,
    pub queue: WorkQueue,
    pub dead_letters: DeadLetterQueue,
    pub clock: SharedClock,
}

/// Why a delivery job stopped before its attempt was settled; its message is returned to the
/// queue and retried. (An endpoint's own failure is not an error: it is queued again.)
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The body of a delivery: the Standard Webhooks convention `{type, timestamp, data}`.
fn payload(event: &Event) -> serde_json::Value {
    let at = event.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut data = serde_json::json!({
        "event_id": event.id,
        "user_id": event.user_id,
        "account_id": event.account_id,
        "platform": event.platform,
    });
    if let Some(reason) = &event.reason {
        data["reason"] = serde_json::json!(reason);
    }
    if let Some(content) = &event.data {
        data["data"] = content.clone();
    }
    serde_json::json!({ "type": event.kind, "timestamp": at, "data": data })
}

/// One delivery attempt of a recorded event. A tenant without an endpoint gets nothing; a
/// refused or failed attempt is queued again with backoff, and after [`DELIVERY_ATTEMPTS`] the
/// job goes to the dead-letter queue (from where `herald dlq redrive` can send it again).
pub async fn deliver(
    deliverer: &Deliverer,
    tenant: &TenantId,
    event_id: &str,
    attempt: u32,
    home: Option<EventHome>,
) -> Result<(), DeliveryError> {
    let Some(signing) = deliverer.endpoints.signing(tenant).await? else { return Ok(()) };
    let kept = home.as_ref().map(|h| (&h.post, &h.account));
    let Some(event) = deliverer.journal.get_event(tenant, event_id, kept).await? else {
        tracing::warn!(tenant = %tenant, "an event to deliver no longer exists; dropped");
        return Ok(());
    };
    let body = payload(&event).to_string();
    // The same id on every attempt, so the tenant can deduplicate.
    let id = format!("evt_{}", event_id.replace('#', "_"));
    let now = deliverer.clock.now().unix_timestamp();
    let headers =
        headers(&signing.secrets, &id, now, body.as_bytes()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let started = std::time::Instant::now();
    let outcome = deliverer.egress.post(&signing.url, headers, body).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let failure = match &outcome {
        Ok(status) if (200..300).contains(status) => None,
        Ok(status) => Some(format!("the endpoint answered {status}")),
        Err(EgressError::Timeout) => Some("the endpoint did not answer in time".to_owned()),
        Err(EgressError::Refused(refusal)) => Some(format!("the endpoint is not allowed: {refusal}")),
        Err(_) => Some("the endpoint could not be reached".to_owned()),
    };
    let status = outcome.as_ref().copied().unwrap_or(0);
    tracing::info!(tenant = %tenant, event = %event.kind, attempt, status, latency_ms, "webhook delivery");
    let Some(failure) = failure else { return Ok(()) };
    let next = attempt + 1;
    let job = Job::Deliver { tenant: tenant.clone(), event: event_id.to_owned(), attempt: next, home };
    if next >= DELIVERY_ATTEMPTS {
        let letter = DeadLetter {
            job,
            reason: TargetError {
                code: "delivery_failed".into(),
                message: format!("{DELIVERY_ATTEMPTS} deliveries failed; the last: {failure}"),
                platform_code: None,
                platform_message: None,
            },
            history: Vec::new(),
            dead_at: now,
        };
        deliverer.dead_letters.send(&letter).await?;
        tracing::warn!(tenant = %tenant, "an event's deliveries ran out; sent to the dead-letter queue");
        return Ok(());
    }
    deliverer.queue.enqueue(job, backoff(next)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries (checked here with the Python
    /// `standardwebhooks` package: `Webhook(secret).sign(id, 1614265330, payload)`).
    #[test]
    fn the_reference_example_signs_alike() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature.unwrap(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_valid_secret_signs_and_bad_secrets_are_refused() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.expose_secret().starts_with(SECRET_PREFIX));
        assert_ne!(a.expose_secret(), b.expose_secret());
        let [_, _, (_, signature)] = headers(&[a.clone(), b.clone()], "msg_1", 7, b"{}").unwrap();
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts, [sign(&a, "msg_1", 7, b"{}").unwrap(), sign(&b, "msg_1", 7, b"{}").unwrap()]);
        assert_eq!(sign(&SecretString::from("nope".to_owned()), "m", 1, b""), Err(InvalidSecret));
        assert_eq!(sign(&SecretString::from("whsec_!!".to_owned()), "m", 1, b""), Err(InvalidSecret));
    }
}
