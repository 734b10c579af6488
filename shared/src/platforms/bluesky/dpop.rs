//! DPoP (RFC 9449) as atproto OAuth requires it: every token request and every call with an
//! access token carries a proof, a JWT signed with the grant's own ES256 key (its public key in
//! the header), naming the method and URL, with the server's latest nonce (`DPoP-Nonce`) and, for
//! resource calls, the access token's hash (`ath`). The key is made at connect and sealed with
//! the grant; ring signs (the ECDSA P-256 implementation rustls already uses).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use sha2::Digest as _;

/// A grant's DPoP key.
pub(super) struct DpopKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl DpopKey {
    /// A new key.
    pub fn generate() -> Option<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new()).ok()?;
        Some(Self { pair, pkcs8: pkcs8.to_vec() })
    }

    /// The key as the grant keeps it (sealed): PKCS#8 in base64.
    pub fn encoded(&self) -> String {
        STANDARD.encode(&self.pkcs8)
    }

    pub fn decode(encoded: &str) -> Option<Self> {
        Self::from_pkcs8(&STANDARD.decode(encoded).ok()?)
    }

    /// The public key as a JWK (`kty` EC, `crv` P-256, `x`, `y`).
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        // Uncompressed: 0x04, then x and y, 32 bytes each.
        json!({ "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]) })
    }

    /// A proof for `method` `url` (its query and fragment dropped, as `htu` is), at `now`, with
    /// the server's `nonce` and, for a resource call, the access token it goes with.
    pub fn proof(
        &self,
        method: &str,
        url: &url::Url,
        now: i64,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> String {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() });
        let mut claims = json!({
            "jti": super::super::oauth2::random_token(),
            "htm": method,
            "htu": htu.as_str(),
            "iat": now,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes())));
        }
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proof verifies under the key its header carries (ring's verifier, fed the JWK's point),
    /// names what RFC 9449 §4.2 asks for, and a key survives being kept.
    #[test]
    fn proofs_verify_under_their_own_key() {
        let key = DpopKey::generate().unwrap();
        let url = url::Url::parse("https://pds.example/xrpc/com.atproto.repo.putRecord?x=1#f").unwrap();
        let proof = key.proof("POST", &url, 1_764_000_000, Some("n0nce"), Some("token"));
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some("dpop+jwt"), Some("ES256")));
        assert_eq!(claims["htu"], "https://pds.example/xrpc/com.atproto.repo.putRecord");
        assert_eq!((claims["htm"].as_str(), claims["nonce"].as_str()), (Some("POST"), Some("n0nce")));
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"token")));
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(header["jwk"]["x"].as_str().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(header["jwk"]["y"].as_str().unwrap()).unwrap());
        let verifier = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(verifier.verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).is_ok());
        assert!(verifier.verify(b"something else", &URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).is_err());
        let kept = DpopKey::decode(&key.encoded()).unwrap();
        assert_eq!(kept.jwk(), key.jwk());
    }
}
