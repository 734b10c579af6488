//! Reading a grant's tokens without refreshing it: all the `posts` function may do (its role may
//! open sealed tokens, not seal new ones), and the first step of every attempt.

use super::TokenSet;
use super::manager::{DEFAULT_SKEW, TokenError, check_status};
use crate::clock::SharedClock;
use crate::store::{Account, AccountStore};

#[derive(Clone)]
pub struct TokenReader {
    accounts: AccountStore,
    clock: SharedClock,
    skew: time::Duration,
}

impl TokenReader {
    pub fn new(accounts: AccountStore, clock: SharedClock) -> Self {
        Self { accounts, clock, skew: DEFAULT_SKEW }
    }

    pub fn with_skew(mut self, skew: time::Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Tokens that are good now without refreshing, for `account` (or the account holding its
    /// grant), or `None` if they are due for a refresh (which the retries function makes).
    pub async fn fresh(&self, account: &Account) -> Result<Option<TokenSet>, TokenError> {
        let holder = self.accounts.grant_holder(account).await?;
        check_status(&holder)?;
        if holder.access_expires_at.is_some_and(|at| at <= self.clock.now() + self.skew) {
            return Ok(None);
        }
        Ok(Some(self.accounts.tokens(&holder).await?))
    }
}
