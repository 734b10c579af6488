//! AT Protocol OAuth (atproto.com/specs/oauth): the user's handle on Herald's page → DID → PDS →
//! its authorization server (`/.well-known/oauth-protected-resource`, then
//! `/.well-known/oauth-authorization-server`); a pushed authorization request (PAR) with PKCE S256
//! and a DPoP proof; the server's consent page; the code exchanged for DPoP-bound tokens whose
//! `sub` must be the DID resolved at the start, and whose issuer must be the one the PDS named
//! (RFC 9207's `iss` on the callback); refresh tokens rotated on every use. Every request to the
//! authorization server and the PDS carries a DPoP proof with the server's latest nonce, asked
//! again once when the server says `use_dpop_nonce`.
//!
//! Herald's client: on loopback the development client id (`http://localhost?redirect_uri=…&
//! scope=…`, which servers take without fetching metadata); elsewhere the URL of its client
//! metadata document, served at `/oauth/bluesky/client-metadata.json` on Herald's public URL.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::dpop::DpopKey;
use super::{Context, P, refusal};
use crate::domain::tokens::TokenSet;
use crate::platforms::{
    AuthorizeStart, CallbackParams, Discovered, FormField, Grant, PendingAuth, PlatformClient, PlatformError,
    SignInForm,
};

/// The connector's name (`PATCH /v1/tenant {"connectors": {"bluesky": "oauth"}}`).
pub(super) const OAUTH: &str = "oauth";
/// The stage of Herald's page that asks for the handle, before the server's consent.
pub(super) const HANDLE_STAGE: &str = "oauth:handle";
/// `atproto` (required) and `transition:generic`: what app passwords may do, posts included.
pub(super) const SCOPE: &str = "atproto transition:generic";
/// Where Herald's client metadata document is, on its public URL.
pub(super) const METADATA_PATH: &str = "/oauth/bluesky/client-metadata.json";

pub(super) static HANDLE_FORM: SignInForm = SignInForm {
    title: "Connect your Bluesky account",
    intro: "Enter your handle (for example alice.bsky.social). You will sign in on your own server and \
            choose whether to let this app post for you.",
    fields: &[FormField { name: "handle", label: "Handle", secret: false, autocomplete: "username" }],
};

/// What an OAuth grant needs beyond its tokens, sealed with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OAuthGrant {
    pub issuer: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    pub client_id: String,
    /// The grant's DPoP key ([`DpopKey::encoded`]).
    pub dpop_key: String,
}

impl OAuthGrant {
    fn key(&self) -> Result<DpopKey, PlatformError> {
        DpopKey::decode(&self.dpop_key).ok_or_else(|| unexpected("the grant's DPoP key does not read"))
    }
}

/// What the handle stage hands the consent stage.
#[derive(Serialize, Deserialize)]
struct Started {
    did: String,
    handle: String,
    pds: Url,
    grant: OAuthGrant,
    verifier: String,
}

fn unexpected(detail: &str) -> PlatformError {
    PlatformError::Unexpected { platform: P, detail: detail.to_owned() }
}

fn refused(code: &str, message: &str) -> PlatformError {
    PlatformError::Refused { platform: P, status: 400, code: code.to_owned(), message: message.to_owned() }
}

/// The latest `DPoP-Nonce` each server sent (by origin), for the next proof to it.
static NONCES: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Mutex::default);

fn nonce(url: &Url) -> Option<String> {
    NONCES.lock().unwrap_or_else(|e| e.into_inner()).get(&url.origin().ascii_serialization()).cloned()
}

fn remember_nonce(url: &Url, headers: &reqwest::header::HeaderMap) {
    if let Some(nonce) = crate::platforms::header(headers, "dpop-nonce") {
        NONCES.lock().unwrap_or_else(|e| e.into_inner()).insert(url.origin().ascii_serialization(), nonce.to_owned());
    }
}

/// Herald's client id for this callback: the loopback form on loopback, else the metadata URL.
pub(super) fn client_id(callback: &Url) -> String {
    let loopback = matches!(callback.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if loopback {
        // `http://localhost` exactly (no path), then its parameters (atproto.com/specs/oauth,
        // "Localhost Client Development").
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_uri", callback.as_str())
            .append_pair("scope", SCOPE)
            .finish();
        return format!("http://localhost?{query}");
    }
    let mut metadata = callback.clone();
    metadata.set_path(METADATA_PATH);
    metadata.set_query(None);
    metadata.to_string()
}

/// Herald's client metadata document (atproto.com/specs/oauth, "Client ID Metadata Document"): a
/// web client that keeps no secret and binds its tokens to DPoP keys.
pub(super) fn client_metadata(callback: &Url) -> Value {
    json!({
        "client_id": client_id(callback),
        "client_name": "Herald",
        "application_type": "web",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [callback.as_str()],
        "scope": SCOPE,
        "token_endpoint_auth_method": "none",
        "dpop_bound_access_tokens": true,
    })
}

/// A body for [`PlatformClient::bluesky_call`].
#[derive(Clone, Copy)]
pub(super) enum Payload<'a> {
    None,
    Json(&'a Value),
    Bytes(&'a [u8], &'a str),
}

impl PlatformClient {
    /// A call to the account's PDS with its access token: `Bearer` for an app-password session,
    /// `DPoP` with a proof for an OAuth grant, asked again once with the PDS's new nonce when it
    /// answers `use_dpop_nonce` (a refused proof: nothing was done). `effect`: the creating call.
    pub(super) async fn bluesky_call(
        &self,
        method: Method,
        url: &Url,
        tokens: &TokenSet,
        context: &Context,
        call: (&'static str, bool),
        payload: Payload<'_>,
    ) -> Result<reqwest::Response, PlatformError> {
        let token = tokens.access_token.expose_secret();
        let key = context.oauth.as_ref().map(OAuthGrant::key).transpose()?;
        let first = self.bluesky_send(&method, url, token, key.as_ref(), call, payload).await?;
        let wants_nonce = first.status() == reqwest::StatusCode::UNAUTHORIZED
            && crate::platforms::header(first.headers(), "www-authenticate")
                .is_some_and(|v| v.contains("use_dpop_nonce"));
        if key.is_none() || !wants_nonce {
            return Ok(first);
        }
        self.bluesky_send(&method, url, token, key.as_ref(), call, payload).await
    }

    /// One call of [`bluesky_call`](Self::bluesky_call), its proof with the nonce known now.
    async fn bluesky_send(
        &self,
        method: &Method,
        url: &Url,
        token: &str,
        key: Option<&DpopKey>,
        (endpoint, effect): (&'static str, bool),
        payload: Payload<'_>,
    ) -> Result<reqwest::Response, PlatformError> {
        let mut request = self.bluesky_request(method.clone(), url)?;
        request = match key {
            Some(key) => {
                let now = self.clock.now().unix_timestamp();
                let proof = key.proof(method.as_str(), url, now, nonce(url).as_deref(), Some(token));
                request.header("authorization", format!("DPoP {token}")).header("DPoP", proof)
            }
            None => request.bearer_auth(token),
        };
        request = match payload {
            Payload::None => request,
            Payload::Json(body) => request.json(body),
            Payload::Bytes(bytes, mime) => request.header("content-type", mime).body(bytes.to_vec()),
        };
        let response = if effect {
            self.send_effect(P, endpoint, request).await?
        } else {
            self.send(P, endpoint, request).await?
        };
        remember_nonce(url, response.headers());
        Ok(response)
    }

    /// A form POST to the authorization server with a DPoP proof, asked again once with the
    /// server's nonce when it answers `use_dpop_nonce` (400); the JSON answer (`null` if empty).
    async fn dpop_form(
        &self,
        key: &DpopKey,
        url: &Url,
        endpoint: &'static str,
        form: &[(&str, &str)],
    ) -> Result<Value, PlatformError> {
        let body = match self.dpop_post(key, url, endpoint, form).await {
            Err(PlatformError::Refused { status: 400, code, .. }) if code == "use_dpop_nonce" => {
                self.dpop_post(key, url, endpoint, form).await?
            }
            other => other?,
        };
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| unexpected(&e.to_string()))
    }

    async fn dpop_post(
        &self,
        key: &DpopKey,
        url: &Url,
        endpoint: &'static str,
        form: &[(&str, &str)],
    ) -> Result<axum::body::Bytes, PlatformError> {
        let proof = key.proof("POST", url, self.clock.now().unix_timestamp(), nonce(url).as_deref(), None);
        let request = self.bluesky_request(Method::POST, url)?.header("DPoP", proof).form(form);
        let response = self.send(P, endpoint, request).await?;
        remember_nonce(url, response.headers());
        Ok(self.read_answer(P, response, refusal).await?.1)
    }

    async fn public_json(&self, url: &Url, endpoint: &'static str) -> Result<Value, PlatformError> {
        let request = self.bluesky_request(Method::GET, url)?;
        self.json(P, endpoint, request, refusal).await
    }

    /// The handle stage: the account's PDS and its authorization server, a PAR, and the
    /// server's consent page to send the browser to.
    pub(super) async fn bluesky_oauth_begin(
        &self,
        params: &CallbackParams,
        callback: &Url,
    ) -> Result<AuthorizeStart, PlatformError> {
        let typed = params.get("handle").map(|h| h.trim()).filter(|h| !h.is_empty());
        let typed = typed.ok_or_else(|| refused("InvalidRequest", "a handle is needed"))?;
        let identity = self.bluesky_identity(typed).await?;
        let mut resource = identity.pds.clone();
        resource.set_path("/.well-known/oauth-protected-resource");
        let protected = self.public_json(&resource, "GET /.well-known/oauth-protected-resource").await?;
        let issuer = protected["authorization_servers"][0]
            .as_str()
            .and_then(|s| Url::parse(s).ok())
            .ok_or_else(|| unexpected("the PDS names no authorization server"))?;
        let mut discovery = issuer.clone();
        discovery.set_path("/.well-known/oauth-authorization-server");
        let server = self.public_json(&discovery, "GET /.well-known/oauth-authorization-server").await?;
        let url = |field: &str| server[field].as_str().and_then(|s| Url::parse(s).ok());
        let same_issuer =
            url("issuer").is_some_and(|i| i.as_str().trim_end_matches('/') == issuer.as_str().trim_end_matches('/'));
        let (Some(par), Some(authorize), Some(token), true) = (
            url("pushed_authorization_request_endpoint"),
            url("authorization_endpoint"),
            url("token_endpoint"),
            same_issuer,
        ) else {
            return Err(unexpected("the authorization server's metadata is not atproto's"));
        };
        let key = DpopKey::generate().ok_or_else(|| unexpected("no DPoP key could be made"))?;
        let client_id = client_id(callback);
        let verifier = crate::platforms::oauth2::random_token();
        let state = crate::platforms::oauth2::random_token();
        let challenge = crate::platforms::oauth2::pkce_challenge(&verifier);
        let handle = identity.handle.clone().unwrap_or_else(|| identity.did.clone());
        let form = [
            ("client_id", client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", callback.as_str()),
            ("scope", SCOPE),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", handle.as_str()),
        ];
        let pushed = self.dpop_form(&key, &par, "POST /oauth/par", &form).await?;
        let request_uri =
            pushed["request_uri"].as_str().ok_or_else(|| unexpected("the PAR answer has no request_uri"))?;
        let mut consent = authorize;
        consent.query_pairs_mut().append_pair("client_id", &client_id).append_pair("request_uri", request_uri);
        let grant = OAuthGrant {
            issuer: issuer.clone(),
            token_endpoint: token,
            revocation_endpoint: url("revocation_endpoint"),
            client_id,
            dpop_key: key.encoded(),
        };
        let started = Started { did: identity.did, handle, pds: identity.pds, grant, verifier };
        let secret = serde_json::to_string(&started).expect("the started flow serializes");
        Ok(AuthorizeStart {
            url: consent,
            pending: PendingAuth { key: state, secret: Some(SecretString::from(secret)), connector: OAUTH.to_owned() },
            form: None,
        })
    }

    /// The consent stage's callback: the code for DPoP-bound tokens of the DID resolved first.
    pub(super) async fn bluesky_oauth_finish(
        &self,
        pending: &PendingAuth,
        params: &CallbackParams,
        callback: &Url,
    ) -> Result<Vec<Discovered>, PlatformError> {
        let started: Started = pending
            .secret
            .as_ref()
            .and_then(|s| serde_json::from_str(s.expose_secret()).ok())
            .ok_or_else(|| unexpected("the authorization was not started here"))?;
        // RFC 9207: the answer names its issuer, which must be the one the PDS named.
        let iss = params.get("iss").map(|i| i.trim_end_matches('/'));
        if iss != Some(started.grant.issuer.as_str().trim_end_matches('/')) {
            return Err(refused("invalid_issuer", "the authorization came back from another server"));
        }
        let code = params.get("code").ok_or_else(|| unexpected("the callback has no code"))?;
        let key = started.grant.key()?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("client_id", started.grant.client_id.as_str()),
            ("code_verifier", started.verifier.as_str()),
        ];
        let answer = self.dpop_form(&key, &started.grant.token_endpoint, "POST /oauth/token", &form).await?;
        if answer["sub"].as_str() != Some(started.did.as_str()) {
            return Err(refused("invalid_subject", "the tokens are for another account than the handle names"));
        }
        let scopes: Vec<String> = answer["scope"].as_str().unwrap_or_default().split(' ').map(str::to_owned).collect();
        if !scopes.iter().any(|s| s == "atproto") {
            return Err(refused("invalid_scope", "the grant lacks the atproto scope"));
        }
        let context = Context { pds: started.pds, oauth: Some(started.grant) };
        let grant = self.oauth_grant(&answer, &context)?;
        Ok(vec![Discovered {
            platform: P,
            platform_account_id: started.did.clone(),
            name: started.handle,
            kind: crate::domain::AccountKind::Member,
            scopes,
            grant,
            token_source: None,
            grantor: Some(started.did),
        }])
    }

    /// A token answer as a grant, the context sealed beside the tokens.
    fn oauth_grant(&self, answer: &Value, context: &Context) -> Result<Grant, PlatformError> {
        let access = answer["access_token"].as_str().ok_or_else(|| unexpected("no access token"))?;
        let refresh = answer["refresh_token"].as_str().ok_or_else(|| unexpected("no refresh token"))?;
        if !answer["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("DPoP")) {
            return Err(unexpected("the tokens are not DPoP-bound"));
        }
        let expires = answer["expires_in"].as_i64().filter(|s| *s > 0).unwrap_or(900);
        Ok(Grant {
            tokens: TokenSet::new(access).with_refresh_token(refresh).with_context(context.sealed()),
            access_expires_at: Some(self.clock.now() + time::Duration::seconds(expires)),
            refresh_expires_at: None,
        })
    }

    /// `grant_type=refresh_token` with a DPoP proof: new tokens, the refresh token rotated.
    pub(super) async fn bluesky_oauth_refresh(
        &self,
        refresh_token: &SecretString,
        context: &Context,
        oauth: &OAuthGrant,
    ) -> Result<Grant, PlatformError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", oauth.client_id.as_str()),
        ];
        let answer = self.dpop_form(&oauth.key()?, &oauth.token_endpoint, "POST /oauth/token", &form).await?;
        self.oauth_grant(&answer, context)
    }

    /// Revokes the refresh token (RFC 7009) where the server has a revocation endpoint.
    pub(super) async fn bluesky_oauth_revoke(
        &self,
        tokens: &TokenSet,
        oauth: &OAuthGrant,
    ) -> Result<(), PlatformError> {
        let (Some(endpoint), Some(refresh)) = (&oauth.revocation_endpoint, &tokens.refresh_token) else {
            return Ok(());
        };
        let form = [("token", refresh.expose_secret()), ("client_id", oauth.client_id.as_str())];
        self.dpop_form(&oauth.key()?, endpoint, "POST /oauth/revoke", &form).await.map(|_| ())
    }
}
