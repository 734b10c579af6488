//! The composition root: the application's services, built once per cold start, and each use
//! case's share of them. Only the top floor (HTTP handlers, the retries worker) and the function
//! entry points import this; a use case receives its own context ([`Publisher`], [`Sweeper`],
//! [`Recorder`], [`Deliverer`]) and can reach nothing else.

use crate::platforms::settings::AppCredentials;
use std::sync::Arc;

use crate::aws::AwsClients;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::connections::Connections;
use crate::crypto::Sealer;
use crate::egress::Egress;
use crate::events::Events;
use crate::platforms::PlatformClient;
use crate::posts::publish::Publisher;
use crate::queue::WorkQueue;
use crate::queue::dead::DeadLetterQueue;
use crate::ratelimit::RateLimiter;
use crate::store::{AccountStore, ConnectStore, EndpointStore, Journal, PostStore, TenantStore};
use crate::sweep::Sweeper;
use crate::tokens::{TokenManager, TokenReader};
use crate::webhooks::Recorder;
use crate::webhooks::outbound::Deliverer;

#[derive(Clone)]
pub struct App {
    pub tenants: TenantStore,
    pub accounts: AccountStore,
    pub connect: ConnectStore,
    pub posts: PostStore,
    pub endpoints: EndpointStore,
    /// Reads of recorded events, audit records and webhook deliveries seen.
    pub journal: Journal,
    /// Recording an event and announcing it to the tenant.
    pub events: Events,
    pub platforms: Arc<PlatformClient>,
    /// Every request to a URL a tenant supplied (media, webhook endpoints).
    pub egress: Arc<Egress>,
    pub tokens: Arc<TokenManager>,
    pub queue: WorkQueue,
    pub dead_letters: DeadLetterQueue,
    pub limits: Arc<RateLimiter>,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    /// Connecting, disconnecting and revoking accounts.
    pub connections: Connections,
    /// Attempting targets from the queue (the retries function: may refresh tokens).
    pub publisher: Publisher<TokenManager>,
    /// Submitting posts and their first attempts (the posts function: reads tokens only).
    pub first_attempts: Publisher<TokenReader>,
    /// The sweep's shard jobs.
    pub sweeper: Sweeper,
    /// Verified platform webhooks, recorded as events.
    pub recorder: Recorder,
    /// Events delivered to tenants' endpoints.
    pub deliverer: Deliverer,
}

impl App {
    pub fn new(config: Config, aws: &AwsClients, clock: SharedClock) -> Self {
        let sealer = Arc::new(Sealer::new(aws.kms.clone(), config.crypto.clone(), clock.clone()));
        let table = &config.table;
        let accounts = AccountStore::new(aws.dynamodb.clone(), table, sealer.clone(), clock.clone());
        let endpoints = EndpointStore::new(aws.dynamodb.clone(), table, sealer.clone(), clock.clone());
        let server_apps =
            crate::store::server_apps::ServerAppStore::new(aws.dynamodb.clone(), table, sealer.clone(), clock.clone());
        let posts = PostStore::new(aws.dynamodb.clone(), table, clock.clone());
        let queue = WorkQueue::new(aws.sqs.clone(), &config.queue_url, clock.clone());
        let dead_letters = DeadLetterQueue::new(aws.sqs.clone(), &config.dead_letter_queue_url);
        let journal = Journal::new(aws.dynamodb.clone(), table, clock.clone());
        let events = Events::new(journal.clone(), queue.clone(), endpoints.clone());
        let egress = Arc::new(Egress::new(&config.egress));
        let platforms = Arc::new(
            PlatformClient::new(config.platforms.clone(), config.apps.clone(), clock.clone(), egress.clone())
                .with_server_apps(Arc::new(server_apps)),
        );
        let tokens = Arc::new(TokenManager::new(accounts.clone(), platforms.clone(), events.clone(), clock.clone()));
        let limits = Arc::new(RateLimiter::new(
            aws.dynamodb.clone(),
            table,
            clock.clone(),
            crate::ratelimit::with_overrides(&config.rate_limits),
        ));
        let publisher = Publisher {
            posts: posts.clone(),
            accounts: accounts.clone(),
            tokens: tokens.clone(),
            limits: limits.clone(),
            platforms: platforms.clone(),
            events: events.clone(),
            queue: queue.clone(),
            dead_letters: dead_letters.clone(),
            clock: clock.clone(),
            first_attempt_budget: config.first_attempt_budget,
        };
        Self {
            first_attempts: publisher.with_tokens(Arc::new(TokenReader::new(accounts.clone(), clock.clone()))),
            publisher,
            connections: Connections {
                accounts: accounts.clone(),
                platforms: platforms.clone(),
                events: events.clone(),
                journal: journal.clone(),
            },
            sweeper: Sweeper {
                posts: posts.clone(),
                accounts: accounts.clone(),
                tokens: tokens.clone(),
                queue: queue.clone(),
                clock: clock.clone(),
                settings: config.sweep,
            },
            recorder: Recorder { journal: journal.clone(), accounts: accounts.clone(), events: events.clone() },
            deliverer: Deliverer {
                endpoints: endpoints.clone(),
                journal: journal.clone(),
                egress: egress.clone(),
                queue: queue.clone(),
                dead_letters: dead_letters.clone(),
                clock: clock.clone(),
            },
            tenants: TenantStore::new(aws.dynamodb.clone(), table, clock.clone()),
            connect: ConnectStore::new(aws.dynamodb.clone(), table, sealer.clone(), clock.clone()),
            posts,
            endpoints,
            accounts,
            journal,
            events,
            platforms,
            egress,
            tokens,
            queue,
            dead_letters,
            limits,
            clock,
            config: Arc::new(config),
        }
    }
}

/// The store of apps on users' servers, as the platforms ask for them.
impl crate::platforms::ServerApps for crate::store::server_apps::ServerAppStore {
    fn get<'a>(
        &'a self,
        platform: crate::domain::Platform,
        server: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<AppCredentials>, crate::BoxError>> {
        Box::pin(async move {
            let kept = self.read(platform, server).await?;
            Ok(kept.map(|(client_id, client_secret)| AppCredentials { client_id, client_secret }))
        })
    }

    fn put<'a>(
        &'a self,
        platform: crate::domain::Platform,
        server: &'a str,
        app: &'a AppCredentials,
    ) -> futures_util::future::BoxFuture<'a, Result<AppCredentials, crate::BoxError>> {
        Box::pin(async move {
            let (client_id, client_secret) = self.write(platform, server, &app.client_id, &app.client_secret).await?;
            Ok(AppCredentials { client_id, client_secret })
        })
    }
}
