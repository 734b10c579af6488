//! Who a Bluesky identifier names and where their repository lives (atproto.com/specs/handle,
//! /specs/did): a handle resolves to a DID (the configured service's
//! `com.atproto.identity.resolveHandle`, else the handle's own
//! `https://<handle>/.well-known/atproto-did`), the DID to its document (`did:plc` at the PLC
//! directory, `did:web` at its host's `/.well-known/did.json`), and the document names the PDS
//! (`#atproto_pds`) and, for the handle to be believed, the handle back (`alsoKnownAs`
//! `at://<handle>`: the spec's bidirectional check). DNS TXT records (`_atproto.<handle>`) are
//! left to the service, which resolves them.

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::{P, refusal};
use crate::platforms::{PlatformClient, PlatformError};

/// An account, as its DID document says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub did: String,
    /// The handle the document claims, where it does (else the account is named by its DID).
    pub handle: Option<String>,
    pub pds: Url,
}

fn invalid(message: impl Into<String>) -> PlatformError {
    PlatformError::Refused { platform: P, status: 400, code: "InvalidIdentifier".into(), message: message.into() }
}

/// A handle as the spec writes its syntax (labels of letters, digits and inner hyphens, at most
/// 63 each, the last not starting with a digit, at most 253 in all), in lower case.
pub(super) fn handle(raw: &str) -> Option<String> {
    let handle = raw.trim().trim_start_matches('@').to_ascii_lowercase();
    let labels: Vec<&str> = handle.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let last_ok = labels.last().is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
    (handle.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) && last_ok).then_some(handle)
}

/// A DID of the two methods atproto blesses: `did:plc:` and 24 base32 characters, or `did:web:`
/// and a host name.
fn did(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    if let Some(id) = raw.strip_prefix("did:plc:") {
        return (id.len() == 24 && id.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))).then_some(raw);
    }
    raw.strip_prefix("did:web:").and_then(handle).map(|_| raw)
}

impl PlatformClient {
    /// Resolves what a user typed (a handle, with or without `@`, or a DID) to their account.
    pub(super) async fn bluesky_identity(&self, identifier: &str) -> Result<Identity, PlatformError> {
        let (did, typed_handle) = match did(identifier) {
            Some(did) => (did.to_owned(), None),
            None => {
                let handle = handle(identifier)
                    .ok_or_else(|| invalid("that is neither a Bluesky handle (name.bsky.social) nor a DID"))?;
                (self.resolve_handle(&handle).await?, Some(handle))
            }
        };
        let document = self.did_document(&did).await?;
        let pds = document["service"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                let id = s["id"].as_str().unwrap_or_default();
                (id == "#atproto_pds" || id == format!("{did}#atproto_pds"))
                    && s["type"].as_str() == Some("AtprotoPersonalDataServer")
            })
            .and_then(|s| s["serviceEndpoint"].as_str())
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| invalid(format!("{did}'s DID document names no PDS")))?;
        let claimed = document["alsoKnownAs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|aka| aka.as_str()?.strip_prefix("at://"))
            .find_map(handle);
        if let Some(typed) = &typed_handle
            && claimed.as_deref() != Some(typed)
        {
            return Err(invalid(format!("{typed} points at {did}, whose DID document does not name it back")));
        }
        Ok(Identity { did, handle: claimed, pds })
    }

    /// A handle's DID from its DNS TXT record (`_atproto.{handle}`: `did=…`; atproto.com/specs/
    /// handle, "Handle Resolution"), asked of the DNS-over-HTTPS resolver the operator
    /// configures (its JSON form, `application/dns-json`, as Cloudflare's and Google's serve it).
    async fn dns_handle(&self, handle: &str) -> Result<Option<String>, PlatformError> {
        let mut url = self.endpoints.bluesky_dns.clone();
        url.query_pairs_mut().append_pair("name", &format!("_atproto.{handle}")).append_pair("type", "TXT");
        let request = self.http.get(url).header("accept", "application/dns-json");
        let answer: Value = self.json(P, "GET /dns-query (TXT)", request, refusal).await?;
        Ok(txt_did(&answer))
    }

    /// A handle's DID: the service's answer, else its DNS TXT record, else the handle's own
    /// domain's `/.well-known/atproto-did`.
    async fn resolve_handle(&self, handle: &str) -> Result<String, PlatformError> {
        let mut url = xrpc(&self.endpoints.bluesky_service, "com.atproto.identity.resolveHandle");
        url.query_pairs_mut().append_pair("handle", handle);
        let request = self.bluesky_request(Method::GET, &url)?;
        match self.json::<Value>(P, "GET /xrpc/com.atproto.identity.resolveHandle", request, refusal).await {
            Ok(found) => {
                if let Some(did) = found["did"].as_str().and_then(did) {
                    return Ok(did.to_owned());
                }
            }
            Err(PlatformError::Refused { .. }) => {}
            Err(e) => return Err(e),
        }
        match self.dns_handle(handle).await {
            Ok(Some(did)) => return Ok(did),
            // No record, or no resolver answer: the well-known file may still say.
            Ok(None) | Err(PlatformError::Refused { .. } | PlatformError::Transient { .. }) => {}
            Err(e) => return Err(e),
        }
        let url = Url::parse(&format!("https://{handle}/.well-known/atproto-did"))
            .map_err(|_| invalid(format!("{handle} is not a host name")))?;
        let request = self.bluesky_request(Method::GET, &url)?;
        let (_, body) = self
            .answer(P, "GET /.well-known/atproto-did", request, refusal)
            .await
            .map_err(|_| invalid(format!("{handle} does not resolve to a Bluesky account")))?;
        let text = String::from_utf8_lossy(&body);
        did(&text).map(str::to_owned).ok_or_else(|| invalid(format!("{handle} does not resolve to a Bluesky account")))
    }

    /// The DID's document.
    async fn did_document(&self, did: &str) -> Result<Value, PlatformError> {
        let (url, endpoint) = match did.strip_prefix("did:web:") {
            Some(host) => (Url::parse(&format!("https://{host}/.well-known/did.json")), "GET /.well-known/did.json"),
            None => {
                let plc = self.endpoints.bluesky_plc.as_str().trim_end_matches('/');
                (Url::parse(&format!("{plc}/{did}")), "GET /{did} (PLC directory)")
            }
        };
        let url = url.map_err(|_| invalid(format!("{did} has no document URL")))?;
        let request = self.bluesky_request(Method::GET, &url)?;
        self.json(P, endpoint, request, refusal).await
    }
}

/// The URL of an XRPC method on `host`.
/// The DID a DNS-over-HTTPS answer's TXT records name (`did=…`; a record may come in quoted
/// pieces, joined), if exactly one does: records naming different DIDs resolve to none (the
/// handle spec: "resolution should fail").
fn txt_did(answer: &Value) -> Option<String> {
    let mut dids: Vec<String> = answer["Answer"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|record| record["type"].as_u64() == Some(16))
        .filter_map(|record| record["data"].as_str())
        .map(|data| data.split('"').filter(|piece| !piece.trim().is_empty()).collect::<String>())
        .filter_map(|text| text.trim().strip_prefix("did=").and_then(did).map(str::to_owned))
        .collect();
    dids.dedup();
    (dids.len() == 1).then(|| dids.remove(0))
}

pub(super) fn xrpc(host: &Url, nsid: &str) -> Url {
    let mut url = host.clone();
    url.set_path(&format!("/xrpc/{nsid}"));
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DNS-over-HTTPS answers as Cloudflare's and Google's JSON API write them.
    #[test]
    fn txt_records_name_one_did_or_none() {
        let answer = |records: &[&str]| {
            let records: Vec<Value> = records
                .iter()
                .map(|d| serde_json::json!({ "name": "_atproto.ada.test.", "type": 16, "data": d }))
                .collect();
            serde_json::json!({ "Status": 0, "Answer": records })
        };
        let plc = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
        assert_eq!(txt_did(&answer(&[&format!("\"did={plc}\"")])).as_deref(), Some(plc));
        assert_eq!(
            txt_did(&answer(&["\"did=did:plc:ewvi7nx\" \"zyoun6zhxrhs64oiz\""])).as_deref(),
            Some(plc),
            "pieces joined"
        );
        assert_eq!(txt_did(&answer(&[&format!("did={plc}"), "\"v=spf1 -all\""])).as_deref(), Some(plc));
        assert_eq!(
            txt_did(&answer(&[&format!("did={plc}"), "did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"])),
            None,
            "two DIDs"
        );
        assert_eq!(txt_did(&serde_json::json!({ "Status": 3 })), None, "NXDOMAIN");
        assert_eq!(txt_did(&answer(&["\"did=not-a-did\""])), None);
    }

    #[test]
    fn handles_and_dids_as_the_specs_write_them() {
        assert_eq!(handle("@Alice.bsky.social").as_deref(), Some("alice.bsky.social"));
        assert_eq!(handle("ada.test").as_deref(), Some("ada.test"));
        for bad in ["alice", "alice.", ".alice.com", "-a.com", "a-.com", "a.1com", "a b.com", "a_b.com", ""] {
            assert_eq!(handle(bad), None, "{bad}");
        }
        assert_eq!(handle(&format!("{}.com", "a".repeat(64))), None);
        assert_eq!(did("did:plc:ewvi7nxzyoun6zhxrhs64oiz"), Some("did:plc:ewvi7nxzyoun6zhxrhs64oiz"));
        assert_eq!(did("did:web:example.com"), Some("did:web:example.com"));
        for bad in ["did:plc:short", "did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ", "did:key:z6Mk", "did:web:localhost:8080"] {
            assert_eq!(did(bad), None, "{bad}");
        }
    }
}
