//! `herald verify`: the calls whose shape Herald depends on, made against a platform with the
//! operator's own app and a connected test account, each reported as it went: as Herald
//! expects, different (what differs), or not checked (why). Run on deploy against the real
//! platforms (docs/operations.md, "Verify a platform"); the test suite runs it against the
//! sandbox. It posts (and deletes) real posts on the test account: never point it at a real
//! user's account.

use std::fmt;

use crate::domain::post::Media;
use crate::platforms::PlatformClient;
use crate::platforms::publish::Outgoing;
use crate::store::Account;
use crate::tokens::TokenManager;

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// As Herald expects; what was seen.
    Expected(String),
    /// Not as Herald expects: what differs.
    Differs(String),
    /// Not checked: why.
    NotChecked(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether nothing differed.
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| matches!(c.verdict, Verdict::Differs(_)))
    }

    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.checks.iter().find(|c| c.name == name).map(|c| &c.verdict)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let (mark, text) = match &check.verdict {
                Verdict::Expected(text) => ("ok     ", text),
                Verdict::Differs(text) => ("DIFFERS", text),
                Verdict::NotChecked(text) => ("skipped", text),
            };
            writeln!(f, "{mark}  {:<18} {text}", check.name)?;
        }
        Ok(())
    }
}

/// What to verify with: the services, the account, and optionally a public image URL for the
/// media check (the platform, or Herald for it, fetches it).
pub struct Verify<'a> {
    pub platforms: &'a PlatformClient,
    pub tokens: &'a TokenManager,
    pub clock: &'a dyn crate::Clock,
    pub account: &'a Account,
    pub media_url: Option<url::Url>,
}

impl Verify<'_> {
    /// A post of this run, under `key`.
    fn outgoing<'p>(&self, text: &'p str, media: &'p [Media], key: &'p str) -> Outgoing<'p> {
        Outgoing { text, media, resume: None, key, made_at: self.clock.now() }
    }

    /// Runs every check in order; a check that cannot run because an earlier one failed says so.
    pub async fn run(&self) -> Report {
        let mut checks = Vec::new();
        let mut push = |name, verdict| checks.push(Check { name, verdict });
        let account = self.account;
        // This run's posts have keys no earlier run's had, so none is taken for another.
        let run = format!("verify-{}", hex::encode(crate::domain::random_bytes::<8>()));

        // The grant: refreshed where it expires (X, LinkedIn), so the stored one is the new one.
        let tokens = if account.access_expires_at.is_none() {
            push("token", Verdict::NotChecked("the grant does not expire (a Page token): nothing to refresh".into()));
            self.tokens.usable(account).await
        } else {
            let refreshed = self.tokens.refresh_now(account).await;
            push(
                "token",
                match &refreshed {
                    Ok(_) => {
                        Verdict::Expected("refreshed: the platform issued a new grant and Herald stored it".into())
                    }
                    Err(e) => Verdict::Differs(format!("refreshing failed: {e}")),
                },
            );
            refreshed
        };
        let Ok(tokens) = tokens else {
            push("text post", Verdict::NotChecked("no usable token".into()));
            return Report { checks };
        };

        // A text post, found again among the account's posts, then deleted.
        let started = self.clock.now() - time::Duration::minutes(1);
        let text = format!("Herald contract check {}", self.clock.now().unix_timestamp());
        let text_alone = crate::platforms::rules::check(account.platform, account.kind, &text, &[]);
        let media_needed = text_alone.is_err_and(|broken| broken.code == "media_required");
        let posted = if media_needed {
            push(
                "text post",
                Verdict::NotChecked(format!("{} takes no post without media: give --media-url", account.platform)),
            );
            None
        } else {
            match self.platforms.publish(account, &tokens, &self.outgoing(&text, &[], &format!("{run}-text"))).await {
                Ok(published) => {
                    push("text post", Verdict::Expected(format!("published as {}", published.id)));
                    Some(published.id)
                }
                Err(e) => {
                    push("text post", Verdict::Differs(format!("publishing failed: {e}")));
                    None
                }
            }
        };
        if let Some(id) = &posted {
            push(
                "read back",
                match self.platforms.lists_post(account, &tokens, started, id).await {
                    Ok(Some(true)) => Verdict::Expected("among the account's recent posts".into()),
                    Ok(Some(false)) => Verdict::Differs("not among the account's recent posts".into()),
                    Ok(None) => Verdict::NotChecked("the platform gives posting apps no read of their posts".into()),
                    Err(e) => Verdict::Differs(format!("reading failed: {e}")),
                },
            );
            push("delete", self.delete(&tokens, id).await);
        }

        // A post with media (uploaded by Herald or fetched by the platform), then deleted.
        match &self.media_url {
            None => push("media post", Verdict::NotChecked("give --media-url with a public JPEG".into())),
            Some(url) => {
                let media = [Media { url: url.clone(), alt_text: Some("Herald contract check".into()) }];
                let text = format!("{text} (media)");
                let key = format!("{run}-media");
                match self.platforms.publish(account, &tokens, &self.outgoing(&text, &media, &key)).await {
                    Ok(published) => {
                        push("media post", Verdict::Expected(format!("published as {}", published.id)));
                        push("media delete", self.delete(&tokens, &published.id).await);
                    }
                    Err(e) => push("media post", Verdict::Differs(format!("publishing failed: {e}"))),
                }
            }
        }

        // The rate-limit headers Herald reads to hold off before the platform refuses.
        push(
            "rate-limit headers",
            match self.platforms.rate_headers(account, &tokens).await {
                Ok(None) => Verdict::NotChecked("the platform documents none; Herald counts its own budgets".into()),
                Ok(Some(found)) if found.seen.len() == found.expected.len() => {
                    Verdict::Expected(format!("{} carries {}", found.endpoint, found.expected.join(", ")))
                }
                Ok(Some(found)) => {
                    let missing: Vec<&str> =
                        found.expected.iter().copied().filter(|h| !found.seen.contains(h)).collect();
                    Verdict::Differs(format!("{} lacks {}", found.endpoint, missing.join(", ")))
                }
                Err(e) => Verdict::Differs(format!("the read failed: {e}")),
            },
        );
        Report { checks }
    }

    async fn delete(&self, tokens: &crate::domain::tokens::TokenSet, id: &str) -> Verdict {
        match self.platforms.delete_post(self.account, tokens, id).await {
            Ok(Some(())) => Verdict::Expected(format!("{id} deleted")),
            Ok(None) => Verdict::NotChecked(format!("the platform gives apps no delete: remove {id} by hand")),
            Err(e) => Verdict::Differs(format!("deleting {id} failed: {e}")),
        }
    }
}
