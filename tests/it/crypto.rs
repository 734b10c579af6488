//! Envelope encryption against KMS (moto): round trip, context binding, tamper detection and
//! a data-key cache that makes the warm path free of KMS calls.

use std::sync::Arc;

use herald::clock::{ManualClock, SharedClock};
use herald::crypto::{CryptoError, EncryptionContext, Sealer};
use herald::domain::{AccountId, Platform, TenantId};
use herald_testkit::TestEnv;
use time::OffsetDateTime;

fn context(tenant: &str, platform: Platform, account: &str) -> EncryptionContext {
    EncryptionContext::new(&TenantId::parse(tenant).unwrap(), platform, &AccountId::parse(account).unwrap())
}

fn sealer(env: &TestEnv, clock: SharedClock) -> Sealer {
    Sealer::new(env.aws.kms.clone(), env.config().crypto, clock)
}

/// A sealer with an empty cache, as in a newly started Lambda instance.
fn cold_sealer(env: &TestEnv) -> Sealer {
    sealer(env, TestEnv::system_clock())
}

#[tokio::test]
async fn seals_and_opens() {
    let env = TestEnv::fresh().await;
    let sealer = sealer(&env, TestEnv::system_clock());
    let ctx = context("ten_a", Platform::X, "acc_1");
    let sealed = sealer.seal(&ctx, b"access-token-value").await.unwrap();
    assert!(!sealed.windows(6).any(|w| w == b"access"), "plaintext visible in ciphertext");
    assert_eq!(&*sealer.open(&ctx, &sealed).await.unwrap(), b"access-token-value");
    // A second sealer (another Lambda instance) opens it too, through KMS.
    let other = cold_sealer(&env);
    assert_eq!(&*other.open(&ctx, &sealed).await.unwrap(), b"access-token-value");
}

#[tokio::test]
async fn ciphertext_moved_to_another_context_does_not_open() {
    let env = TestEnv::fresh().await;
    let owner = context("ten_a", Platform::X, "acc_1");
    let sealed = cold_sealer(&env).seal(&owner, b"secret").await.unwrap();

    let elsewhere = [
        context("ten_a", Platform::X, "acc_2"),
        context("ten_b", Platform::X, "acc_1"),
        context("ten_a", Platform::Linkedin, "acc_1"),
    ];
    for ctx in &elsewhere {
        // Fresh sealer: KMS itself must refuse to unwrap the data key under this context.
        let fresh = cold_sealer(&env);
        assert!(matches!(fresh.open(ctx, &sealed).await, Err(CryptoError::Open)), "{ctx:?} opened it (via KMS)");
        assert_eq!(fresh.kms_calls(), 1, "KMS was asked");
    }
    // Warm sealer that has the data key cached for the owner: the cache must not open it either.
    let warm = cold_sealer(&env);
    warm.open(&owner, &sealed).await.unwrap();
    for ctx in &elsewhere {
        assert!(matches!(warm.open(ctx, &sealed).await, Err(CryptoError::Open)), "{ctx:?} opened it (via cache)");
    }
}

#[tokio::test]
async fn tampered_or_truncated_ciphertext_does_not_open() {
    let env = TestEnv::fresh().await;
    let sealer = cold_sealer(&env);
    let ctx = context("ten_a", Platform::Facebook, "acc_1");
    let sealed = sealer.seal(&ctx, b"page-token").await.unwrap();

    let mut last_byte = sealed.clone();
    *last_byte.last_mut().unwrap() ^= 0x01;
    // The wrapped key's last byte: inside KMS's own authentication tag.
    let wrapped_len = u16::from_be_bytes([sealed[1], sealed[2]]) as usize;
    let mut wrapped_key = sealed.clone();
    wrapped_key[2 + wrapped_len] ^= 0x01;
    let mut version = sealed.clone();
    version[0] = 2;
    let cases = [
        ("tag", last_byte),
        ("wrapped key", wrapped_key),
        ("version", version),
        ("truncated", sealed[..sealed.len() - 5].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bad) in cases {
        let fresh = cold_sealer(&env);
        let cold = fresh.open(&ctx, &bad).await;
        assert!(matches!(cold, Err(CryptoError::Open)), "tampered {what}: {cold:?}");
        let warm = sealer.open(&ctx, &bad).await;
        assert!(matches!(warm, Err(CryptoError::Open)), "tampered {what} (warm): {warm:?}");
    }
}

#[tokio::test]
async fn warm_cache_makes_no_kms_calls_until_the_entry_expires() {
    let env = TestEnv::fresh().await;
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let sealer = sealer(&env, Arc::new(clock.clone()));
    let ctx = context("ten_a", Platform::Instagram, "acc_1");

    let first = sealer.seal(&ctx, b"one").await.unwrap();
    assert_eq!(sealer.kms_calls(), 1, "first seal generates a data key");
    for _ in 0..50 {
        sealer.seal(&ctx, b"again").await.unwrap();
        assert_eq!(&*sealer.open(&ctx, &first).await.unwrap(), b"one");
    }
    assert_eq!(sealer.kms_calls(), 1, "cache hits must make zero KMS calls");

    // A cold instance pays one Decrypt, then nothing.
    let cold = cold_sealer(&env);
    for _ in 0..10 {
        cold.open(&ctx, &first).await.unwrap();
    }
    assert_eq!(cold.kms_calls(), 1);

    // Ten opens of one key at once on a cold instance (a batch of one account's jobs): one Decrypt.
    let herd = cold_sealer(&env);
    let opens = futures_util::future::join_all((0..10).map(|_| herd.open(&ctx, &first))).await;
    assert!(opens.iter().all(|o| o.as_ref().is_ok_and(|p| p.as_slice() == b"one")));
    assert_eq!(herd.kms_calls(), 1, "concurrent misses of one key wait for the first Decrypt");

    // Past the TTL the key is fetched again.
    clock.advance(time::Duration::seconds(301));
    sealer.open(&ctx, &first).await.unwrap();
    assert_eq!(sealer.kms_calls(), 2, "expired entry must be refreshed from KMS");
}

#[tokio::test]
async fn data_key_is_rotated_after_max_uses() {
    let env = TestEnv::fresh().await;
    let mut settings = env.config().crypto;
    settings.max_uses_per_key = 3;
    let sealer = Sealer::new(env.aws.kms.clone(), settings, TestEnv::system_clock());
    let ctx = context("ten_a", Platform::X, "acc_1");
    for _ in 0..7 {
        sealer.seal(&ctx, b"x").await.unwrap();
    }
    assert_eq!(sealer.kms_calls(), 3, "7 seals at 3 uses per key need 3 data keys");
}
