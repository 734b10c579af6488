//! Posts: what a tenant asks to publish ([`intake`]), the per-platform rules checked before
//! anything is stored, and each target's attempts (the records are [`crate::domain::post`]).

pub mod intake;
pub mod manage;
pub mod outcome;
pub mod publish;
pub mod validate;

pub use crate::domain::post::{Attempt, DeadLetterState, Media, Outcome, Post, Target, TargetError, TargetStatus};
