//! The token store against DynamoDB and KMS (moto): sealed at rest, bound to its row, and
//! protected by optimistic versioning under concurrent writers.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use herald::crypto::Sealer;
use herald::domain::{AccountKind, AccountStatus, Platform, TenantId, UserId};
use herald::store::{Account, AccountStore, NewAccount, StoreError};
use herald::tokens::TokenSet;
use herald_testkit::TestEnv;
use secrecy::ExposeSecret;
use time::OffsetDateTime;

fn store(env: &TestEnv) -> AccountStore {
    let clock = TestEnv::system_clock();
    let sealer = Arc::new(Sealer::new(env.aws.kms.clone(), env.config().crypto, clock.clone()));
    AccountStore::new(env.aws.dynamodb.clone(), &env.resources.table, sealer, clock)
}

/// A fresh environment, a store on it, and a new tenant.
async fn setup() -> (TestEnv, AccountStore, TenantId) {
    let env = TestEnv::fresh().await;
    let store = store(&env);
    (env, store, TenantId::generate())
}

fn new_account(tenant: &TenantId, user: &str, platform_id: &str) -> NewAccount {
    NewAccount {
        tenant: tenant.clone(),
        user: UserId::parse(user).unwrap(),
        platform: Platform::X,
        platform_account_id: platform_id.to_owned(),
        name: format!("@{platform_id}"),
        kind: AccountKind::Member,
        scopes: vec!["tweet.write".into(), "offline.access".into()],
        access_expires_at: Some(OffsetDateTime::now_utc() + time::Duration::hours(2)),
        refresh_expires_at: None,
    }
}

/// The account's DynamoDB key, as documented in docs/data-model.md.
fn raw_key(account: &Account) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("USER#{}#{}", account.tenant, account.user))),
        ("sk".to_owned(), AttributeValue::S(format!("ACCOUNT#{}", account.id))),
    ])
}

async fn raw_item(env: &TestEnv, account: &Account) -> HashMap<String, AttributeValue> {
    env.aws
        .dynamodb
        .get_item()
        .table_name(&env.resources.table)
        .set_key(Some(raw_key(account)))
        .send()
        .await
        .unwrap()
        .item
        .expect("item stored")
}

#[tokio::test]
async fn stores_lists_and_opens_accounts_without_plaintext_at_rest() {
    let (env, store, tenant) = setup().await;
    let tokens = TokenSet::new("AT-plaintext-marker").with_refresh_token("RT-plaintext-marker");
    let account = store.insert(new_account(&tenant, "user-1", "1001"), &tokens).await.unwrap();
    assert_eq!(account.version, 1);
    assert_eq!(account.status, AccountStatus::Active);

    let fetched = store.get(&tenant, &account.user, &account.id).await.unwrap().unwrap();
    assert_eq!(fetched, account);
    let opened = store.tokens(&fetched).await.unwrap();
    assert_eq!(opened.access_token.expose_secret(), "AT-plaintext-marker");
    assert_eq!(opened.refresh_token.unwrap().expose_secret(), "RT-plaintext-marker");

    let raw = format!("{:?}", raw_item(&env, &account).await);
    assert!(!raw.contains("plaintext-marker"), "a token is stored in clear: {raw}");

    store.insert(new_account(&tenant, "user-1", "1002"), &tokens).await.unwrap();
    store.insert(new_account(&tenant, "user-2", "1003"), &tokens).await.unwrap();
    let listed = store.list(&tenant, &account.user).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|a| a.user == account.user));
    // Another tenant's user with the same id sees nothing.
    assert!(store.list(&TenantId::generate(), &account.user).await.unwrap().is_empty());
}

#[tokio::test]
async fn tokens_copied_into_another_accounts_row_do_not_open() {
    let (env, store, tenant) = setup().await;
    let victim = store.insert(new_account(&tenant, "victim", "1"), &TokenSet::new("victim-token")).await.unwrap();
    let attacker = store.insert(new_account(&tenant, "attacker", "2"), &TokenSet::new("attacker-token")).await.unwrap();

    let stolen = raw_item(&env, &victim).await.remove("tokens").unwrap();
    env.aws
        .dynamodb
        .update_item()
        .table_name(&env.resources.table)
        .set_key(Some(raw_key(&attacker)))
        .update_expression("SET tokens = :t")
        .expression_attribute_values(":t", stolen)
        .send()
        .await
        .unwrap();

    let moved = store.get(&tenant, &attacker.user, &attacker.id).await.unwrap().unwrap();
    assert!(matches!(store.tokens(&moved).await, Err(StoreError::Crypto(_))), "moved ciphertext opened");
    // A fresh store (no cached data keys) refuses it too.
    let cold = self::store(&env);
    assert!(matches!(cold.tokens(&moved).await, Err(StoreError::Crypto(_))));
}

#[tokio::test]
async fn concurrent_writers_one_wins_the_rest_see_a_conflict() {
    let (_env, store, tenant) = setup().await;
    let account = store.insert(new_account(&tenant, "user-1", "42"), &TokenSet::new("v1")).await.unwrap();

    const WRITERS: usize = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, account) = (store.clone(), account.clone());
        tasks.spawn(async move {
            let tokens = TokenSet::new(format!("writer-{i}"));
            (i, store.replace_tokens(&account, &tokens, None, None).await)
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (i, Ok(written)) => winners.push((i, written)),
            (_, Err(StoreError::VersionConflict)) => conflicts += 1,
            (_, Err(other)) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer must win");
    assert_eq!(conflicts, WRITERS - 1);

    let (winner, written) = &winners[0];
    let stored = store.get(&tenant, &account.user, &account.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(&stored, written);
    assert_eq!(store.tokens(&stored).await.unwrap().access_token.expose_secret(), format!("writer-{winner}"));

    // A writer holding the stale version is refused; one holding the current version succeeds.
    assert!(matches!(store.set_status(&account, AccountStatus::NeedsReauth).await, Err(StoreError::VersionConflict)));
    let updated = store.set_status(&stored, AccountStatus::NeedsReauth).await.unwrap();
    assert_eq!(updated.version, 3);
    assert_eq!(updated.status, AccountStatus::NeedsReauth);
}

#[tokio::test]
async fn delete_removes_the_sealed_tokens_and_stale_writes_cannot_resurrect() {
    let (_env, store, tenant) = setup().await;
    let account = store.insert(new_account(&tenant, "user-1", "7"), &TokenSet::new("t")).await.unwrap();
    let deleted = store.delete(&tenant, &account.user, &account.id).await.unwrap();
    assert_eq!(deleted.map(|a| a.id), Some(account.id.clone()));
    assert!(store.get(&tenant, &account.user, &account.id).await.unwrap().is_none());
    assert!(matches!(
        store.replace_tokens(&account, &TokenSet::new("late"), None, None).await,
        Err(StoreError::VersionConflict)
    ));
    assert!(store.get(&tenant, &account.user, &account.id).await.unwrap().is_none());
}

#[tokio::test]
async fn one_refresh_lease_at_a_time() {
    let (_env, store, tenant) = setup().await;
    let account = store.insert(new_account(&tenant, "user-1", "9"), &TokenSet::new("t")).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (store, account) = (store.clone(), account.clone());
        tasks.spawn(async move { store.acquire_refresh_lease(&account, time::Duration::seconds(30)).await });
    }
    let mut leases = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(leased) => leases.push(leased),
            Err(StoreError::VersionConflict) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(leases.len(), 1, "exactly one process may refresh");
    let leased = &leases[0];
    assert!(leased.refresh_lease_until.is_some());

    // A fresh read while the lease is live cannot take it either.
    let current = store.get(&tenant, &account.user, &account.id).await.unwrap().unwrap();
    assert!(matches!(
        store.acquire_refresh_lease(&current, time::Duration::seconds(30)).await,
        Err(StoreError::VersionConflict)
    ));
    // Writing the new tokens ends the lease; the next refresher can take it again.
    let written = store.replace_tokens(leased, &TokenSet::new("t2"), None, None).await.unwrap();
    assert!(written.refresh_lease_until.is_none());
    assert!(store.acquire_refresh_lease(&written, time::Duration::seconds(30)).await.is_ok());
}
