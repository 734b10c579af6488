//! What a verified delivery from a platform says: one [`Inbound`] per event, named by the
//! platform's id of the account it concerns, with a key that identifies the event across the
//! platform's retries.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::Platform;

/// One event of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub platform: Platform,
    /// The platform's id of the account (Page id, Instagram account id, X user id, LinkedIn URN).
    pub platform_account_id: String,
    /// The platform's name for what happened (Meta's field, X's `*_events` key, LinkedIn's type).
    pub kind: String,
    /// The same for every retry of this event: the platform's own id where it has one, else a
    /// digest of the event's content.
    pub dedupe_key: String,
    pub data: Value,
}

/// A body that verified but is not what the platform sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delivery is not in the platform's format")]
pub struct Malformed;

fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Malformed> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Malformed),
    }
}

/// A platform id given as a JSON string or number.
pub(crate) fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Meta: `{"object": "page"|"instagram", "entry": [{"id", "time", "changes": [{"field", "value"}],
/// "messaging": [...]}]}`. Objects other than Pages and Instagram accounts are acknowledged and
/// yield nothing.
pub fn meta(body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
    let root = object(body)?;
    let platform = match root.get("object").and_then(Value::as_str).ok_or(Malformed)? {
        "page" => Platform::Facebook,
        "instagram" => Platform::Instagram,
        _ => return Ok(Vec::new()),
    };
    let entries = root.get("entry").and_then(Value::as_array).ok_or(Malformed)?;
    let mut events = Vec::new();
    for entry in entries {
        let id = entry.get("id").and_then(id_string).ok_or(Malformed)?;
        let time = entry.get("time").map(Value::to_string).unwrap_or_default();
        let changes = entry.get("changes").and_then(Value::as_array).into_iter().flatten();
        for change in changes {
            let field = change.get("field").and_then(Value::as_str).ok_or(Malformed)?;
            let content = change.to_string();
            events.push(Inbound {
                platform,
                platform_account_id: id.clone(),
                kind: field.to_owned(),
                dedupe_key: digest(&["meta", &id, &time, &content]),
                data: change.get("value").cloned().unwrap_or(Value::Null),
            });
        }
        for message in entry.get("messaging").and_then(Value::as_array).into_iter().flatten() {
            let mid = message.pointer("/message/mid").and_then(id_string);
            let content = message.to_string();
            events.push(Inbound {
                platform,
                platform_account_id: id.clone(),
                kind: "messaging".into(),
                dedupe_key: match mid {
                    Some(mid) => digest(&["meta", &id, "mid", &mid]),
                    None => digest(&["meta", &id, &time, &content]),
                },
                data: message.clone(),
            });
        }
    }
    Ok(events)
}

/// X (Account Activity): `{"for_user_id", "<kind>_events": [...], ...}`; each item of each
/// `*_events` array is one event, keyed by its `id_str`/`id` where it has one.
pub fn x(body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
    let root = object(body)?;
    let user = root.get("for_user_id").and_then(id_string).ok_or(Malformed)?;
    let mut events = Vec::new();
    for (key, value) in &root {
        let (Some(kind), Some(items)) = (key.strip_suffix("_events"), value.as_array()) else { continue };
        for item in items {
            let id = item.get("id_str").or_else(|| item.get("id")).and_then(id_string);
            let identity = id.unwrap_or_else(|| item.to_string());
            events.push(Inbound {
                platform: Platform::X,
                platform_account_id: user.clone(),
                kind: key.clone(),
                dedupe_key: digest(&["x", &user, kind, &identity]),
                data: item.clone(),
            });
        }
    }
    Ok(events)
}

/// LinkedIn: `{"type": "...", "notifications": [{"notificationId", "organizationalEntity", ...}]}`
/// (organization social-action notifications, the kind a posting app can subscribe to).
pub fn linkedin(body: &[u8]) -> Result<Vec<Inbound>, Malformed> {
    let root = object(body)?;
    let kind = root.get("type").and_then(Value::as_str).ok_or(Malformed)?.to_owned();
    let mut events = Vec::new();
    for item in root.get("notifications").and_then(Value::as_array).into_iter().flatten() {
        let account = item.get("organizationalEntity").and_then(Value::as_str).ok_or(Malformed)?;
        let identity = item.get("notificationId").and_then(id_string).unwrap_or_else(|| item.to_string());
        events.push(Inbound {
            platform: Platform::Linkedin,
            platform_account_id: account.to_owned(),
            kind: kind.clone(),
            dedupe_key: digest(&["linkedin", &kind, &identity]),
            data: item.clone(),
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_entries_become_one_event_per_change_and_message() {
        let body = br#"{"object":"page","entry":[{"id":"104000000000001","time":1764400000,
            "changes":[{"field":"feed","value":{"item":"comment","verb":"add"}},{"field":"mention","value":{}}],
            "messaging":[{"message":{"mid":"m_1","text":"hi"}}]}]}"#;
        let events = meta(body).unwrap();
        assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["feed", "mention", "messaging"]);
        assert!(events.iter().all(|e| e.platform == Platform::Facebook && e.platform_account_id == "104000000000001"));
        assert_eq!(events[0].data["verb"], "add");
        // The same delivery again has the same keys; a different change has another.
        assert_eq!(meta(body).unwrap()[0].dedupe_key, events[0].dedupe_key);
        assert_ne!(events[0].dedupe_key, events[1].dedupe_key);
        let ig = br#"{"object":"instagram","entry":[{"id":"17841400000000001","time":1,"changes":[{"field":"comments","value":{}}]}]}"#;
        assert_eq!(meta(ig).unwrap()[0].platform, Platform::Instagram);
        assert!(meta(br#"{"object":"user","entry":[]}"#).unwrap().is_empty());
        for bad in
            [&b"[]"[..], b"{}", br#"{"object":"page"}"#, br#"{"object":"page","entry":[{"changes":[]}]}"#, b"\xff"]
        {
            assert_eq!(meta(bad), Err(Malformed));
        }
    }

    #[test]
    fn x_events_are_keyed_by_their_ids() {
        let body = br#"{"for_user_id":"2244994945","tweet_create_events":[{"id_str":"1","text":"a"},{"id_str":"2"}],"users":{}}"#;
        let events = x(body).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.kind == "tweet_create_events" && e.platform_account_id == "2244994945"));
        assert_ne!(events[0].dedupe_key, events[1].dedupe_key);
        assert_eq!(x(br#"{"tweet_create_events":[]}"#), Err(Malformed));
    }

    #[test]
    fn linkedin_notifications_name_their_organization() {
        let body = br#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{"notificationId":7,"organizationalEntity":"urn:li:organization:2414183","action":"COMMENT"}]}"#;
        let events = linkedin(body).unwrap();
        assert_eq!(events[0].platform_account_id, "urn:li:organization:2414183");
        assert_eq!(events[0].kind, "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS");
        assert_eq!(linkedin(br#"{"notifications":[]}"#), Err(Malformed));
    }
}
