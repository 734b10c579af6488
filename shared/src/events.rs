//! What happened, told to the tenant: an event is recorded (the journal writes it, alone or in
//! the transaction of the outcome it reports, or the reporting target keeps it), then announced (its delivery to the tenant's
//! webhook endpoint is queued, [`crate::webhooks::outbound`] sends it).
//!
//! Two steps, in this order, so the store never enqueues: a crash between them leaves the event
//! recorded and listable, only its push lost (the same as a failed enqueue, which is logged).
//! Events are recorded only through here, so none goes unannounced.

use crate::domain::post::{Post, Target};
use crate::queue::{EventHome, Job, WorkQueue};
use crate::store::journal::PreparedEvent;
use crate::store::{Account, EndpointStore, Journal, StoreError};

#[derive(Clone)]
pub struct Events {
    journal: Journal,
    queue: WorkQueue,
    endpoints: EndpointStore,
}

impl Events {
    pub fn new(journal: Journal, queue: WorkQueue, endpoints: EndpointStore) -> Self {
        Self { journal, queue, endpoints }
    }

    /// Records an event for the tenant about one of its accounts, and announces it.
    pub async fn record(&self, kind: &str, account: &Account, reason: Option<&str>) -> Result<(), StoreError> {
        self.record_with_data(kind, account, reason, None).await
    }

    /// As [`record`](Self::record), with the event's content (a platform's webhook payload).
    pub async fn record_with_data(
        &self,
        kind: &str,
        account: &Account,
        reason: Option<&str>,
        data: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let event = self.journal.write_event(kind, account, reason, data).await?;
        self.announce(&event).await;
        Ok(())
    }

    /// The outcome event of `target`, to be kept in the target's record ([`keep`](Self::keep)) or
    /// written in the outcome's own transaction, and then [`announce`](Self::announce)d; `None`
    /// while the target is open.
    pub fn post_outcome_item(&self, post: &Post, target: &Target) -> Option<PreparedEvent> {
        self.journal.post_event_item(post, target)
    }

    /// Keeps `event` (the outcome event of `target`) in the target's own record if it keeps none
    /// yet: `true`, and writing the target writes the event ([`Journal::keep`]).
    pub fn keep(&self, event: &mut PreparedEvent, post: &Post, target: &mut Target) -> bool {
        self.journal.keep(event, post, target)
    }

    /// An event of `kind` about `target` of `post` (a tenant's action on it), to be written in
    /// the action's own transaction and then [`announce`](Self::announce)d.
    pub fn post_item(&self, kind: &str, post: &Post, target: &Target) -> PreparedEvent {
        self.journal.post_event(kind, post, target)
    }

    /// After `event` is written: queues its delivery if the tenant has a webhook endpoint.
    pub async fn announce(&self, event: &PreparedEvent) {
        match self.endpoints.exists(&event.tenant).await {
            Ok(false) => {}
            Ok(true) => {
                let home = event.home.clone().map(|(post, account)| EventHome { post, account });
                let job = Job::Deliver { tenant: event.tenant.clone(), event: event.id.clone(), attempt: 0, home };
                if let Err(e) = self.queue.enqueue(job, std::time::Duration::ZERO).await {
                    // The event is recorded; only its push to the tenant's endpoint is lost.
                    tracing::error!(error = %e, "could not queue an event's delivery");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not check for a webhook endpoint; the event is not delivered"),
        }
    }
}
