//! The consent screen every platform shows: a browser (or a test acting as one) picks the signed-in
//! platform user and approves or denies; the platform then redirects the way it documents.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;

use crate::state::{Platform, Shared, World};

/// A consent screen waiting for the user's decision.
#[derive(Debug, Clone)]
pub struct Pending {
    pub platform: Platform,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub flow: Flow,
}

#[derive(Debug, Clone)]
pub enum Flow {
    XOAuth2 { redirect_uri: String, state: String, challenge: String, method: String },
    XOAuth1 { request_token: String },
    Meta { redirect_uri: String, state: Option<String>, challenge: Option<(String, String)> },
    Linkedin { redirect_uri: String, state: String },
    Threads { redirect_uri: String, state: Option<String> },
    Mastodon { redirect_uri: String, state: Option<String>, challenge: Option<(String, String)> },
}

/// An authorization code the consent screen issued (Threads', Mastodon's): single-use, for one
/// client, redirect and user, with the PKCE challenge where the request sent one.
#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub challenge: Option<(String, String)>,
    pub expires_at: i64,
    pub used: bool,
}

impl Code {
    /// The code for a client's request (its scopes, redirect and challenge), approved by `user_id`.
    pub fn approved(
        pending: (String, Vec<String>),
        redirect_uri: &str,
        user_id: &str,
        challenge: Option<(String, String)>,
        expires_at: i64,
    ) -> Self {
        let (client_id, scopes) = pending;
        Self {
            client_id,
            redirect_uri: redirect_uri.to_owned(),
            user_id: user_id.to_owned(),
            scopes,
            challenge,
            expires_at,
            used: false,
        }
    }
}

pub fn routes() -> Router<Shared> {
    Router::new().route("/consent/{id}", post(decide))
}

/// Stores the pending request and renders the screen.
pub fn show(world: &mut World, pending: Pending) -> Response {
    let id = world.token("consent_");
    let users: Vec<(String, String)> =
        world.users.iter().filter(|u| u.platform == pending.platform).map(|u| (u.id.clone(), u.name.clone())).collect();
    let scopes = if pending.scopes.is_empty() { "basic access".to_owned() } else { pending.scopes.join(", ") };
    let options: String =
        users.iter().map(|(id, name)| format!(r#"<option value="{}">{}</option>"#, escape(id), escape(name))).collect();
    let html = format!(
        r#"<!doctype html>
<html><head><title>Authorize {client}</title></head>
<body>
<h1>{platform:?} sandbox</h1>
<p>The app <b>{client}</b> asks for: {scopes}</p>
<form method="post" action="/consent/{id}">
  <label>Signed in as <select name="user">{options}</select></label>
  <button name="decision" value="approve">Authorize app</button>
  <button name="decision" value="deny">Cancel</button>
</form>
</body></html>"#,
        client = escape(&pending.client_id),
        platform = pending.platform,
        scopes = escape(&scopes),
    );
    world.consents.insert(id, pending);
    Html(html).into_response()
}

#[derive(Debug, Deserialize)]
struct Decision {
    #[serde(default)]
    user: Option<String>,
    decision: String,
}

async fn decide(State(sandbox): State<Shared>, Path(id): Path<String>, Form(decision): Form<Decision>) -> Response {
    let mut world = sandbox.world();
    let Some(pending) = world.consents.remove(&id) else {
        return (StatusCode::BAD_REQUEST, "This authorization request is no longer valid.").into_response();
    };
    let approve = decision.decision == "approve";
    let user = match decision.user {
        Some(user) => user,
        None => match world.users.iter().filter(|u| u.platform == pending.platform).map(|u| u.id.clone()).next() {
            Some(only) => only,
            None => return (StatusCode::BAD_REQUEST, "No user is signed in.").into_response(),
        },
    };
    if world.user(pending.platform, &user).is_none() {
        return (StatusCode::BAD_REQUEST, "Unknown user.").into_response();
    }
    let location = match pending.flow {
        Flow::XOAuth2 { .. } | Flow::XOAuth1 { .. } => crate::x::complete_consent(&mut world, pending, &user, approve),
        Flow::Meta { .. } => crate::meta::complete_consent(&mut world, pending, &user, approve),
        Flow::Linkedin { .. } => crate::linkedin::complete_consent(&mut world, pending, &user, approve),
        Flow::Threads { .. } => crate::threads::complete_consent(&mut world, pending, &user, approve),
        Flow::Mastodon { .. } => crate::mastodon::complete_consent(&mut world, pending, &user, approve),
    };
    redirect(&location)
}

pub fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `url` with `pairs` appended to its query.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(_) => return url.to_owned(),
    };
    {
        let mut query = parsed.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    parsed.to_string()
}
