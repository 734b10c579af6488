//! Herald's platform app credentials, read from AWS Secrets Manager: one secret per platform app,
//! a JSON object of named fields, read once per cold start by the functions that use it.
//!
//! | secret (env var naming it) | fields |
//! |---|---|
//! | X (`HERALD_X_SECRET_ID`) | `client_id`, `client_secret` (OAuth 2.0), `consumer_key`, `consumer_secret` (OAuth 1.0a) |
//! | Meta (`HERALD_META_SECRET_ID`) | `app_id`, `app_secret`, `webhook_verify_token` |
//! | LinkedIn (`HERALD_LINKEDIN_SECRET_ID`) | `client_id`, `client_secret` |
//! | Threads (`HERALD_THREADS_SECRET_ID`) | `app_id`, `app_secret`, `webhook_verify_token` (the Threads app ID and secret) |
//!
//! Every field is optional; an id comes with its secret or not at all, and `{}` (what the template
//! creates) leaves the platform unconfigured. A malformed secret stops the cold start with an error
//! naming the secret and the field, never a value (serde's own messages can quote a value, so the
//! object is checked here field by field). See docs/operations.md ("Platform credentials").

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde_json::Value;

use crate::config::AppSecretIds;
use crate::platforms::settings::{AppCredentials, PlatformApps};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("secret {secret}: {reason}")]
pub struct SecretError {
    /// The secret's id (its ARN or name, which are not secret).
    pub secret: String,
    pub reason: String,
}

/// A secret's fields, checked: only `known` names, each a string; empty strings count as unset.
struct Fields {
    secret: String,
    values: BTreeMap<String, String>,
}

impl Fields {
    fn parse(secret: &str, raw: &str, known: &[&str]) -> Result<Self, SecretError> {
        let error = |reason: String| SecretError { secret: secret.to_owned(), reason };
        let object = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(error("expected a JSON object of named strings".into())),
            Err(e) => {
                return Err(error(format!("not JSON ({:?} at line {} column {})", e.classify(), e.line(), e.column())));
            }
        };
        let mut values = BTreeMap::new();
        for (name, value) in object {
            if !known.contains(&name.as_str()) {
                return Err(error(format!("unknown field {name:?} (expected {})", known.join(", "))));
            }
            match value {
                Value::String(s) if s.trim().is_empty() => {}
                Value::String(s) => {
                    values.insert(name, s.trim().to_owned());
                }
                Value::Null => {}
                _ => return Err(error(format!("field {name:?} must be a string"))),
            }
        }
        Ok(Self { secret: secret.to_owned(), values })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// An id and its secret, both or neither.
    fn pair(&mut self, id: &str, secret: &str) -> Result<Option<AppCredentials>, SecretError> {
        match (self.take(id), self.take(secret)) {
            (None, None) => Ok(None),
            (Some(client_id), Some(client_secret)) => {
                Ok(Some(AppCredentials { client_id, client_secret: SecretString::from(client_secret) }))
            }
            (Some(_), None) => Err(self.missing(secret, id)),
            (None, Some(_)) => Err(self.missing(id, secret)),
        }
    }

    fn missing(&self, field: &str, with: &str) -> SecretError {
        SecretError {
            secret: self.secret.clone(),
            reason: format!("field {field:?} is missing (it comes with {with:?})"),
        }
    }
}

/// Reads the X secret into `apps`.
pub fn apply_x(apps: &mut PlatformApps, secret: &str, raw: &str) -> Result<(), SecretError> {
    let mut fields = Fields::parse(secret, raw, &["client_id", "client_secret", "consumer_key", "consumer_secret"])?;
    apps.x = fields.pair("client_id", "client_secret")?;
    apps.x_oauth1 = fields.pair("consumer_key", "consumer_secret")?;
    Ok(())
}

/// Reads the Meta secret into `apps`.
pub fn apply_meta(apps: &mut PlatformApps, secret: &str, raw: &str) -> Result<(), SecretError> {
    let mut fields = Fields::parse(secret, raw, &["app_id", "app_secret", "webhook_verify_token"])?;
    apps.meta = fields.pair("app_id", "app_secret")?;
    apps.meta_webhook_verify_token = fields.take("webhook_verify_token").map(SecretString::from);
    Ok(())
}

/// Reads the Threads secret into `apps`.
pub fn apply_threads(apps: &mut PlatformApps, secret: &str, raw: &str) -> Result<(), SecretError> {
    let mut fields = Fields::parse(secret, raw, &["app_id", "app_secret", "webhook_verify_token"])?;
    apps.threads = fields.pair("app_id", "app_secret")?;
    apps.threads_webhook_verify_token = fields.take("webhook_verify_token").map(SecretString::from);
    Ok(())
}

/// Reads the LinkedIn secret into `apps`.
pub fn apply_linkedin(apps: &mut PlatformApps, secret: &str, raw: &str) -> Result<(), SecretError> {
    let mut fields = Fields::parse(secret, raw, &["client_id", "client_secret"])?;
    apps.linkedin = fields.pair("client_id", "client_secret")?;
    Ok(())
}

/// Reads every secret named in `ids` (at once) into `apps`. Any failure, a missing secret or a
/// refused read among them, ends the cold start: a function without its credentials would fail
/// each call that needs them, later and less clearly.
pub async fn load(
    client: &aws_sdk_secretsmanager::Client,
    ids: &AppSecretIds,
    apps: &mut PlatformApps,
) -> Result<(), crate::BoxError> {
    type Apply = fn(&mut PlatformApps, &str, &str) -> Result<(), SecretError>;
    let wanted: Vec<(&str, Apply)> = [
        (ids.x.as_deref(), apply_x as Apply),
        (ids.meta.as_deref(), apply_meta as Apply),
        (ids.linkedin.as_deref(), apply_linkedin as Apply),
        (ids.threads.as_deref(), apply_threads as Apply),
    ]
    .into_iter()
    .filter_map(|(id, apply)| id.map(|id| (id, apply)))
    .collect();
    let reads = futures_util::future::join_all(wanted.iter().map(|(id, _)| async move {
        let value = client.get_secret_value().secret_id(*id).send().await.map_err(|e| SecretError {
            secret: (*id).to_owned(),
            reason: format!("cannot be read: {}", crate::telemetry::cause_chain(&e)),
        })?;
        value
            .secret_string
            .ok_or_else(|| SecretError { secret: (*id).to_owned(), reason: "has no string value".into() })
    }))
    .await;
    for ((id, apply), raw) in wanted.iter().zip(reads) {
        let raw = zeroize::Zeroizing::new(raw?);
        apply(apps, id, &raw)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn an_x_secret_holds_both_apps_and_empty_leaves_them_unconfigured() {
        let mut apps = PlatformApps::default();
        apply_x(
            &mut apps,
            "herald/x",
            r#"{"client_id":"cid","client_secret":"cs","consumer_key":"ck","consumer_secret":"csec"}"#,
        )
        .unwrap();
        assert_eq!(apps.x.as_ref().unwrap().client_id, "cid");
        assert_eq!(apps.x_oauth1.as_ref().unwrap().client_secret.expose_secret(), "csec");

        apply_x(&mut apps, "herald/x", "{}").unwrap();
        assert!(apps.x.is_none() && apps.x_oauth1.is_none());
        apply_x(&mut apps, "herald/x", r#"{"client_id":" ","client_secret":""}"#).unwrap();
        assert!(apps.x.is_none());
    }

    #[test]
    fn meta_carries_the_webhook_verify_token() {
        let mut apps = PlatformApps::default();
        apply_meta(&mut apps, "m", r#"{"app_id":"1","app_secret":"s","webhook_verify_token":"v"}"#).unwrap();
        assert_eq!(apps.meta.as_ref().unwrap().client_id, "1");
        assert_eq!(apps.meta_webhook_verify_token.as_ref().unwrap().expose_secret(), "v");
    }

    #[test]
    fn malformed_secrets_name_the_field_and_never_a_value() {
        let cases = [
            (r#"{"client_id":"cid"}"#, "\"client_secret\" is missing"),
            (r#"{"client_secret":"hunter2-value"}"#, "\"client_id\" is missing"),
            (r#"{"client_id":"cid","clientsecret":"hunter2-value"}"#, "unknown field \"clientsecret\""),
            (r#"{"client_id":"cid","client_secret":9912345}"#, "must be a string"),
            (r#"["hunter2-value"]"#, "JSON object"),
            (r#"{"client_id": hunter2-value"#, "not JSON"),
        ];
        for (raw, expected) in cases {
            let mut apps = PlatformApps::default();
            let err = apply_linkedin(&mut apps, "arn:aws:secretsmanager:eu-west-1:1:secret:herald/linkedin-AbC", raw)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{raw}: {err}");
            assert!(err.contains("herald/linkedin"), "names the secret: {err}");
            assert!(!err.contains("hunter2") && !err.contains("9912345"), "no value in: {err}");
        }
    }
}
