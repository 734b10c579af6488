//! The application's services, built once per cold start and shared by HTTP handlers and jobs.

use std::sync::Arc;

use crate::aws::AwsClients;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::platforms::PlatformClient;
use crate::queue::WorkQueue;
use crate::queue::dead::DeadLetterQueue;
use crate::ratelimit::RateLimiter;
use crate::store::{AccountStore, ConnectStore, EndpointStore, Journal, PostStore, TenantStore};
use crate::tokens::TokenManager;

#[derive(Clone)]
pub struct App {
    pub tenants: TenantStore,
    pub accounts: AccountStore,
    pub connect: ConnectStore,
    pub posts: PostStore,
    pub endpoints: EndpointStore,
    pub journal: Journal,
    pub platforms: Arc<PlatformClient>,
    /// Every request to a URL a tenant supplied (media, webhook endpoints).
    pub egress: Arc<crate::egress::Egress>,
    pub tokens: Arc<TokenManager>,
    pub queue: WorkQueue,
    pub dead_letters: DeadLetterQueue,
    pub limits: Arc<RateLimiter>,
    pub clock: SharedClock,
    pub config: Arc<Config>,
}

impl App {
    pub fn new(config: Config, aws: &AwsClients, clock: SharedClock) -> Self {
        let sealer = Arc::new(Sealer::new(aws.kms.clone(), config.crypto.clone(), clock.clone()));
        let table = &config.table;
        let accounts = AccountStore::new(aws.dynamodb.clone(), table, sealer.clone(), clock.clone());
        let endpoints = EndpointStore::new(aws.dynamodb.clone(), table, sealer, clock.clone());
        let queue = WorkQueue::new(aws.sqs.clone(), &config.queue_url, clock.clone());
        let journal =
            Journal::new(aws.dynamodb.clone(), table, clock.clone()).with_deliveries(queue.clone(), endpoints.clone());
        let egress = Arc::new(crate::egress::Egress::new(&config.egress));
        let platforms =
            Arc::new(PlatformClient::new(config.platforms.clone(), config.apps.clone(), clock.clone(), egress.clone()));
        let tokens = Arc::new(TokenManager::new(accounts.clone(), platforms.clone(), journal.clone(), clock.clone()));
        Self {
            tenants: TenantStore::new(aws.dynamodb.clone(), table, clock.clone()),
            connect: ConnectStore::new(aws.dynamodb.clone(), table, clock.clone()),
            posts: PostStore::new(aws.dynamodb.clone(), table, clock.clone()),
            endpoints,
            accounts,
            journal,
            platforms,
            egress,
            tokens,
            queue,
            dead_letters: DeadLetterQueue::new(aws.sqs.clone(), &config.dead_letter_queue_url),
            limits: Arc::new(RateLimiter::new(
                aws.dynamodb.clone(),
                table,
                clock.clone(),
                crate::ratelimit::with_overrides(&config.rate_limits),
            )),
            clock,
            config: Arc::new(config),
        }
    }
}
