//! Keeping platform grants usable: refresh before expiry, one refresher at a time, and the
//! account marked for reconnection when the platform refuses (the secret type itself is
//! [`crate::domain::tokens::TokenSet`]).

mod manager;
mod reader;

pub use crate::domain::tokens::TokenSet;
pub use manager::{SweepReport, TokenError, TokenManager};
pub use reader::TokenReader;
