//! Platform budgets, checked before each call with one conditional DynamoDB update per budget.
//!
//! Budgets are data (platform, endpoint, scope, limit, window), with the published defaults below
//! and per-deployment overrides (`HERALD_RATE_LIMITS`), since tiers differ. A denied check defers
//! the work to the window's reset; it is never dropped. What the platforms say (429s, reset
//! headers, usage at 100 %) writes a blocked-until record that every function honours.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | window counter | `RL#{platform}#{endpoint}#{scope key}` | `W#{window start}` |
//! | blocked until | `RLBLOCK#{platform}#{scope key}` | `BLOCK` |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};

use time::OffsetDateTime;

use crate::clock::SharedClock;
use crate::domain::Platform;
use crate::schema::TTL_ATTRIBUTE;
use crate::store::{StoreError, epoch, is_condition_failure, n, s};

pub use crate::domain::budget::{Budget, Scope, Window};

/// The platforms' published limits on publishing, as each adapter states them (X 100 / 15 min per
/// user and 10,000 / 24 h per app; Meta Pages 4,800 calls / 24 h per Page; Instagram 50 posts /
/// 24 h per account; LinkedIn 150 / day per member and 100,000 / day per app). None of the
/// app-wide budgets needs sharding: 100,000 a day is about 1.2 writes a second, far under
/// DynamoDB's 1,000 per item.
pub fn defaults() -> Vec<Budget> {
    crate::platforms::budgets()
}

/// Budgets with overrides applied: an override replaces the default of the same platform,
/// endpoint and scope.
pub fn with_overrides(overrides: &[Budget]) -> Vec<Budget> {
    let mut budgets = defaults();
    for o in overrides {
        budgets.retain(|b| !(b.platform == o.platform && b.endpoint == o.endpoint && b.scope == o.scope));
        budgets.push(o.clone());
    }
    budgets
}

/// A denied check: try again at `retry_at` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub retry_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("over budget until {}", .0.retry_at)]
    Denied(Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long this instance trusts its last read of an app-wide blocked-until record. Account
/// records are checked on every call (inside the attempt's transaction); the app-wide one is the
/// same item for every call, so it is read at most this often per instance, and a platform's
/// app-wide throttle seen here is honoured at once.
const APP_BLOCK_RECHECK_S: i64 = 30;
/// The most units of an app-wide budget one instance takes from the shared counter at a time.
/// Every call would otherwise write the same item, and transactions on one item conflict. The
/// lease is adaptive: an instance's first lease in a window is the one unit it needs, and each
/// next one doubles (1, 2, 4, 8, then 10), so units are taken ahead only by instances that keep
/// publishing. On Lambda, where an environment may publish once and be reclaimed, a short-lived
/// instance strands nothing; one that published `n` times in a window strands fewer than `n`
/// and at most `APP_LEASE - 1` units (AWS audit F6).
const APP_LEASE: u32 = 10;

/// The units this instance holds of one app-wide budget's window.
#[derive(Debug, Clone, Copy)]
struct Lease {
    left: u32,
    /// When the window ends (Unix seconds).
    end: i64,
    /// The size of the last lease taken: the next one doubles it.
    size: u32,
}

/// What one or more calls will take from the budgets, written in the same transaction as the
/// claim of the work they are for (see [`RateLimiter::reserve`]).
#[derive(Debug, Default)]
pub struct Reservation {
    /// Per-account counters, by cache key (`{pk}#{window start}`).
    account: BTreeMap<String, Counter>,
    /// App-wide counters, by cache key: paid from this instance's lease where it can be.
    app: BTreeMap<String, Counter>,
    /// Account blocked-until records that must not be in force.
    blocks: BTreeSet<String>,
    /// Units taken from this instance's leases; given back if the transaction is not written.
    taken: Vec<(String, u32)>,
    /// Units added to this instance's leases once the transaction is written, with the window's
    /// end and the new lease's size.
    granted: Vec<(String, u32, i64, u32)>,
}

/// One window's counter item of a budget, and the units a reservation takes from it.
#[derive(Debug, Clone)]
struct Counter {
    pk: String,
    sk: String,
    limit: u32,
    /// When the window ends (Unix seconds); the item expires an hour later.
    end: i64,
    units: u32,
}

pub struct RateLimiter {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    clock: SharedClock,
    budgets: Vec<Budget>,
    /// Denials (and blocks) known here, by key → until: a spent window costs no further writes.
    known: Mutex<HashMap<String, i64>>,
    /// When this instance last read each app-wide blocked-until record.
    checked: Mutex<HashMap<String, i64>>,
    /// App-wide units this instance holds, by cache key.
    leases: Mutex<HashMap<String, Lease>>,
}

fn block_pk(platform: Platform, key: &str) -> String {
    format!("RLBLOCK#{platform}#{key}")
}

impl RateLimiter {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        clock: SharedClock,
        budgets: Vec<Budget>,
    ) -> Self {
        Self {
            dynamodb,
            table: table.into(),
            clock,
            budgets,
            known: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Adds one `endpoint` call for the account and the app to `reservation`, to be written with
    /// [`transaction_items`](Self::transaction_items) in the same transaction as the claim of the
    /// work. `Ok(false)`: a denial or block is known here (or the app-wide block is in force), so
    /// the caller takes the step-by-step path ([`admit`](Self::admit)), which says until when.
    pub async fn reserve(
        &self,
        reservation: &mut Reservation,
        platform: Platform,
        endpoint: &str,
        account_key: &str,
        app_key: &str,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now().unix_timestamp();
        let (account_block, app_block) = (block_pk(platform, account_key), block_pk(platform, app_key));
        if self.known_until(&account_block, now).is_some() || self.known_until(&app_block, now).is_some() {
            return Ok(false);
        }
        // One caller re-reads a stale app-wide block; the ones arriving meanwhile go on with the
        // last reading (it is marked fresh before the read).
        let stale = {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            let stale = checked.get(&app_block).is_none_or(|at| now - at >= APP_BLOCK_RECHECK_S);
            if stale {
                checked.insert(app_block, now);
            }
            stale
        };
        if stale && self.blocked_until(platform, app_key, now).await?.is_some() {
            return Ok(false);
        }
        let matching: Vec<_> = self
            .budgets
            .iter()
            .filter(|b| b.platform == platform && b.endpoint == endpoint)
            .map(|budget| {
                let scope_key = if budget.scope == Scope::Account { account_key } else { app_key };
                let (start, end) = budget.window.bounds(now);
                let pk = format!("RL#{platform}#{endpoint}#{scope_key}");
                let counters = if budget.scope == Scope::Account { &reservation.account } else { &reservation.app };
                let cache_key = format!("{pk}#{start}");
                let taken = counters.get(&cache_key).map_or(0, |c| c.units);
                (
                    budget.scope,
                    cache_key,
                    Counter { pk, sk: format!("W#{start}"), limit: budget.limit, end, units: taken },
                )
            })
            .collect();
        // A known denial, or more calls in one reservation than the budget holds: step by step.
        if matching.iter().any(|(_, key, c)| c.units >= c.limit || self.known_until(key, now).is_some()) {
            return Ok(false);
        }
        reservation.blocks.insert(account_block);
        for (scope, cache_key, counter) in matching {
            let counters = if scope == Scope::Account { &mut reservation.account } else { &mut reservation.app };
            counters.entry(cache_key).or_insert(counter).units += 1;
        }
        Ok(true)
    }

    /// The writes of `reservation`: each account counter and blocked-until check, and for the
    /// app-wide budgets, units from this instance's lease or a new lease taken from the counter.
    /// Call [`settle`](Self::settle) after the transaction with whether it was written.
    pub fn transaction_items(&self, reservation: &mut Reservation) -> Result<Vec<TransactWriteItem>, StoreError> {
        let now = self.clock.now().unix_timestamp();
        let mut items = Vec::new();
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Corrupt(e.to_string());
        for pk in &reservation.blocks {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key("pk", s(pk.clone()))
                .key("sk", s("BLOCK"))
                .condition_expression("attribute_not_exists(#until) OR #until <= :now")
                .expression_attribute_names("#until", "until")
                .expression_attribute_values(":now", n(now))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let mut counters: Vec<Counter> = reservation.account.values().cloned().collect();
        {
            let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            leases.retain(|_, lease| lease.end > now);
            for (cache_key, counter) in &reservation.app {
                let held = leases.get_mut(cache_key);
                let last_size = held.as_ref().map_or(0, |lease| lease.size);
                let from_lease = held.map_or(0, |lease| {
                    let take = lease.left.min(counter.units);
                    lease.left -= take;
                    take
                });
                if from_lease > 0 {
                    reservation.taken.push((cache_key.clone(), from_lease));
                }
                let rest = counter.units - from_lease;
                if rest > 0 {
                    let size = (last_size * 2).clamp(1, APP_LEASE).min(counter.limit);
                    let lease = rest.max(size);
                    counters.push(Counter { units: lease, ..counter.clone() });
                    reservation.granted.push((cache_key.clone(), lease - rest, counter.end, size));
                }
            }
        }
        for Counter { pk, sk, limit, end, units } in counters {
            // `reserve` keeps units within the limit, and a lease is never larger than it.
            let max = limit.saturating_sub(units);
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression("ADD #count :units SET #ttl = :expires")
                .condition_expression("attribute_not_exists(#count) OR #count <= :max")
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":units", n(units))
                .expression_attribute_values(":max", n(max))
                .expression_attribute_values(":expires", n(end + 3600))
                .build()
                .map_err(build)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(items)
    }

    /// After the transaction holding `reservation`: a written one adds its new lease units to
    /// this instance, one that was not gives back the units it took.
    pub fn settle(&self, reservation: Reservation, written: bool) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if written {
            for (key, units, end, size) in reservation.granted {
                let lease = leases.entry(key).or_insert(Lease { left: 0, end, size });
                lease.left += units;
                lease.size = size;
            }
        } else {
            for (key, units) in reservation.taken {
                if let Some(lease) = leases.get_mut(&key) {
                    lease.left += units;
                }
            }
        }
    }

    fn known_until(&self, key: &str, now: i64) -> Option<i64> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        match known.get(key) {
            Some(until) if *until > now => Some(*until),
            Some(_) => {
                known.remove(key);
                None
            }
            None => None,
        }
    }

    /// Takes one unit of an app-wide budget this instance leased, if it holds one.
    fn take_leased(&self, cache_key: &str, now: i64) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        match leases.get_mut(cache_key) {
            Some(lease) if lease.left > 0 && lease.end > now => {
                lease.left -= 1;
                true
            }
            _ => false,
        }
    }

    fn remember(&self, key: String, until: i64) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(key, until);
    }

    /// Counts one `endpoint` call for the account (`account_key`) and the app (`app_key`) against
    /// every matching budget, after honouring blocked-until records. `Denied` carries when to
    /// try again.
    pub async fn admit(
        &self,
        platform: Platform,
        endpoint: &str,
        account_key: &str,
        app_key: &str,
    ) -> Result<(), LimitError> {
        let now = self.clock.now().unix_timestamp();
        for key in [account_key, app_key] {
            if let Some(until) = self.blocked_until(platform, key, now).await? {
                return Err(LimitError::Denied(Denied { retry_at: until }));
            }
        }
        for budget in self.budgets.iter().filter(|b| b.platform == platform && b.endpoint == endpoint) {
            let scope_key = if budget.scope == Scope::Account { account_key } else { app_key };
            let (start, end) = budget.window.bounds(now);
            let pk = format!("RL#{platform}#{endpoint}#{scope_key}");
            let cache_key = format!("{pk}#{start}");
            if budget.scope == Scope::App && self.take_leased(&cache_key, now) {
                continue;
            }
            if let Some(until) = self.known_until(&cache_key, now) {
                return Err(LimitError::Denied(Denied { retry_at: until }));
            }
            // The warm path writes the same counters in transactions: a conflict is sent again.
            // (A lost answer the SDK resends counts the unit twice: the budget errs safe.)
            let update = self
                .dynamodb
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(format!("W#{start}")))
                .update_expression("ADD #count :one SET #ttl = :expires")
                .condition_expression("attribute_not_exists(#count) OR #count < :limit")
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":limit", n(budget.limit))
                .expression_attribute_values(":expires", n(end + 3600));
            let result = crate::store::retry_conflicts(|| update.clone().send()).await;
            match result.map_err(StoreError::from) {
                Ok(_) => {}
                Err(StoreError::Dynamo(e)) if is_condition_failure(&e) => {
                    self.remember(cache_key, end);
                    return Err(LimitError::Denied(Denied { retry_at: end }));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn blocked_until(&self, platform: Platform, key: &str, now: i64) -> Result<Option<i64>, StoreError> {
        let pk = block_pk(platform, key);
        if let Some(until) = self.known_until(&pk, now) {
            return Ok(Some(until));
        }
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk.clone()))
            .key("sk", s("BLOCK"))
            .send()
            .await?;
        let until = out
            .item
            .as_ref()
            .and_then(|i| i.get("until"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok());
        match until {
            // Expiry is checked on read; TTL deletion lags.
            Some(until) if until > now => {
                self.remember(pk, until);
                Ok(Some(until))
            }
            _ => Ok(None),
        }
    }

    /// Records what the platform said: no calls for `key` before `until` (Unix seconds).
    pub async fn block(&self, platform: Platform, key: &str, until: i64) -> Result<(), StoreError> {
        let pk = block_pk(platform, key);
        let expires = OffsetDateTime::from_unix_timestamp(until + 3600).unwrap_or(self.clock.now());
        let update = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk.clone()))
            .key("sk", s("BLOCK"))
            .update_expression("SET #until = :until, #ttl = :expires")
            // Never shorten a block another function wrote.
            .condition_expression("attribute_not_exists(#until) OR #until < :until")
            .expression_attribute_names("#until", "until")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":expires", epoch(expires));
        // Transactions check the block item: a conflict is sent again.
        crate::store::retry_conflicts(|| update.clone().send()).await.map(|_| ()).or_else(|e| {
            let e = StoreError::from(e);
            match &e {
                StoreError::Dynamo(inner) if is_condition_failure(inner) => Ok(()),
                _ => Err(e),
            }
        })?;
        self.remember(pk, until);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limiter whose DynamoDB is never called (the app-wide block was just read).
    fn offline(budgets: Vec<Budget>) -> RateLimiter {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        let now = OffsetDateTime::from_unix_timestamp(1_795_953_600).unwrap();
        let limiter = RateLimiter::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            "t",
            std::sync::Arc::new(crate::clock::ManualClock::new(now)),
            budgets,
        );
        limiter.checked.lock().unwrap().insert(block_pk(Platform::X, "app"), now.unix_timestamp());
        limiter
    }

    #[tokio::test]
    async fn a_reservation_never_takes_more_than_a_budget_holds() {
        let app = Budget::publish(Platform::X, Scope::App, 2, Window::Fixed { seconds: 86_400 });
        let limiter = offline(vec![app]);
        let mut reservation = Reservation::default();
        for account in ["a", "b"] {
            assert!(limiter.reserve(&mut reservation, Platform::X, "publish", account, "app").await.unwrap());
        }
        assert!(
            !limiter.reserve(&mut reservation, Platform::X, "publish", "c", "app").await.unwrap(),
            "a third call does not fit a budget of 2: the steps one by one"
        );
        let items = limiter.transaction_items(&mut reservation).unwrap();
        // Two account blocked-until checks and one app-wide lease of the whole budget.
        assert_eq!(items.len(), 3);
        let update = items.iter().find_map(|i| i.update()).unwrap();
        let values = update.expression_attribute_values().unwrap();
        assert_eq!((values[":units"].as_n().unwrap().as_str(), values[":max"].as_n().unwrap().as_str()), ("2", "0"));
    }

    /// An instance's app-wide leases start at the one unit it needs and double while it keeps
    /// publishing: one that publishes once takes one unit; one that publishes `n` times has
    /// taken fewer than `2n` and at most `n + APP_LEASE - 1`.
    #[tokio::test]
    async fn app_wide_leases_start_at_one_unit_and_double() {
        let app = Budget::publish(Platform::X, Scope::App, 10_000, Window::Fixed { seconds: 86_400 });
        let limiter = offline(vec![app]);
        let mut taken = Vec::new();
        for call in 1..=40u32 {
            let mut reservation = Reservation::default();
            assert!(limiter.reserve(&mut reservation, Platform::X, "publish", "a", "app").await.unwrap());
            let items = limiter.transaction_items(&mut reservation).unwrap();
            let units = items
                .iter()
                .find_map(|i| i.update())
                .map_or(0, |u| u.expression_attribute_values().unwrap()[":units"].as_n().unwrap().parse().unwrap());
            limiter.settle(reservation, true);
            taken.push(units);
            let total: u32 = taken.iter().sum();
            assert!(total < 2 * call && total < call + APP_LEASE, "after {call} calls {total} units taken: {taken:?}");
        }
        let leases: Vec<u32> = taken.iter().copied().filter(|u| *u > 0).collect();
        assert_eq!(leases[..6], [1, 2, 4, 8, 10, 10], "{taken:?}");
    }

    #[test]
    fn windows_align_to_their_size() {
        assert_eq!(Window::Fixed { seconds: 900 }.bounds(1000), (900, 1800));
        assert_eq!(Window::DailyUtc.bounds(86_400 * 3 + 5), (86_400 * 3, 86_400 * 4));
    }

    #[test]
    fn overrides_replace_their_default() {
        let tight = Budget::publish(Platform::X, Scope::Account, 5, Window::Fixed { seconds: 60 });
        let budgets = with_overrides(std::slice::from_ref(&tight));
        let x_account: Vec<_> = budgets
            .iter()
            .filter(|b| b.platform == Platform::X && b.scope == Scope::Account && b.endpoint == "publish")
            .collect();
        assert_eq!(x_account, [&tight]);
        assert_eq!(budgets.len(), defaults().len());
    }
}
