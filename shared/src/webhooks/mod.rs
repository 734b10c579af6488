//! Webhooks: what a verified platform delivery means for Herald's accounts (each platform's
//! handshake, signature and format are its adapter's, [`crate::platforms::webhooks`]), and
//! deliveries to the tenants' own endpoints ([`outbound`]).

pub mod outbound;

use crate::events::Events;
use crate::platforms::webhooks::Inbound;
use crate::store::journal::kinds;
use crate::store::{AccountStore, Journal, StoreError};

/// What receiving a platform's webhook uses, and nothing else: built once by [`crate::app::App`].
#[derive(Clone)]
pub struct Recorder {
    /// Which deliveries were seen (a platform retries until it gets a 200).
    pub journal: Journal,
    pub accounts: AccountStore,
    pub events: Events,
}

/// What a verified delivery led to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Events recorded for the tenants whose accounts they concern.
    pub recorded: usize,
    /// Events seen before (a platform's retry or duplicate): nothing done again.
    pub duplicates: usize,
    /// Events about accounts Herald does not know: acknowledged and dropped.
    pub unknown: usize,
}

/// Records each event once for every Herald account it concerns (a platform account connected
/// by several tenants is told to each). An event that fails half-way is forgotten again, so the
/// platform's retry processes it; the caller answers 500 then.
pub async fn receive(recorder: &Recorder, events: Vec<Inbound>) -> Result<Received, StoreError> {
    let mut received = Received::default();
    for event in events {
        if !recorder.journal.first_delivery(event.platform, &event.dedupe_key).await? {
            received.duplicates += 1;
            continue;
        }
        match record(recorder, &event).await {
            Ok(0) => {
                tracing::info!(platform = %event.platform, kind = %event.kind, "webhook event for no known account; dropped");
                received.unknown += 1;
            }
            Ok(_) => received.recorded += 1,
            Err(e) => {
                if let Err(forget) = recorder.journal.forget_delivery(event.platform, &event.dedupe_key).await {
                    tracing::warn!(error = %forget, "could not forget a failed webhook event; its retry will be dropped");
                }
                return Err(e);
            }
        }
    }
    Ok(received)
}

async fn record(recorder: &Recorder, event: &Inbound) -> Result<usize, StoreError> {
    let accounts = recorder.accounts.by_platform_account(event.platform, &event.platform_account_id).await?;
    for account in &accounts {
        recorder.events.record_with_data(kinds::PLATFORM_EVENT, account, Some(&event.kind), Some(&event.data)).await?;
    }
    if event.revokes {
        // The user took Herald's access away at the platform: the grant is dead now, not at the
        // next publish.
        let reason = format!("access revoked at {}", event.platform);
        crate::connections::revoke(&recorder.accounts, &recorder.events, &recorder.journal, &accounts, false, &reason)
            .await?;
    }
    Ok(accounts.len())
}
