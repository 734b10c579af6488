//! Meta publishing: Facebook Page posts (`/{page-id}/feed`, photos through `/{page-id}/photos`)
//! and a Page's recent posts to look for an ambiguous one. Instagram's containers are
//! `platforms::containers`, described by [`super::INSTAGRAM_CONTAINERS`].

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::graph_refusal;
use crate::domain::Platform;
use crate::domain::post::Media;
use crate::domain::tokens::TokenSet;
use crate::platforms::publish::{
    Listing, Published, RECENT_PAGE, Throttle, created_id, graph_next, graph_page, recent_posts,
};
use crate::platforms::{PlatformClient, PlatformError};
use crate::store::Account;

/// Usage at or above this share of a Meta budget counts as spent.
const META_USAGE_CEILING: i64 = 95;

/// What a successful answer's headers say about the budget: `X-App-Usage` (app-wide) or
/// `X-Business-Use-Case-Usage` (this account) near 100 % or with time to regain access.
pub(super) fn throttle_hint(headers: &reqwest::header::HeaderMap, now: i64) -> Option<Throttle> {
    let header = |name: &str| crate::platforms::header(headers, name);
    let peak = |usage: &Value| {
        ["call_count", "total_cputime", "total_time"].iter().filter_map(|k| usage[*k].as_i64()).max().unwrap_or(0)
    };
    if let Some(app) = header("x-app-usage").and_then(|v| serde_json::from_str::<Value>(v).ok())
        && peak(&app) >= META_USAGE_CEILING
    {
        return Some(Throttle { app_wide: true, until: now + 3600 });
    }
    let buc = header("x-business-use-case-usage").and_then(|v| serde_json::from_str::<Value>(v).ok())?;
    let entries: Vec<Value> =
        buc.as_object()?.values().flat_map(|v| v.as_array().cloned().unwrap_or_default()).collect();
    let wait = entries.iter().filter_map(|e| e["estimated_time_to_regain_access"].as_i64()).max().unwrap_or(0);
    if wait > 0 {
        return Some(Throttle { app_wide: false, until: now + wait * 60 });
    }
    entries.iter().any(|e| peak(e) >= META_USAGE_CEILING).then_some(Throttle { app_wide: false, until: now + 3600 })
}

/// One page of a Facebook Page's posts since `since` (the first, or the one `after` names), the
/// feed cut at `since` and paged by its `paging.next` ([`graph_next`]).
pub(super) async fn recent(
    client: &PlatformClient,
    account: &Account,
    tokens: &TokenSet,
    since: time::OffsetDateTime,
    after: Option<&str>,
) -> Result<Listing, PlatformError> {
    let page = &account.platform_account_id;
    let token = tokens.access_token.expose_secret();
    let first = [
        ("fields", "id,message".to_owned()),
        ("since", since.unix_timestamp().to_string()),
        ("limit", RECENT_PAGE.to_string()),
    ];
    let request = client
        .http
        .get(client.graph_url(&format!("/{page}/feed")))
        .query(&graph_page(&first, after))
        .query(&[("access_token", token)]);
    let request = client.proved(request, token);
    let feed: Value = client.json(Platform::Facebook, "GET /{page-id}/feed", request, graph_refusal).await?;
    let posts = recent_posts(&feed, "message", |id| format!("https://www.facebook.com/{id}"));
    Ok(Listing { posts, next: graph_next(&feed) })
}

impl PlatformClient {
    /// `request` with the `appsecret_proof` of `token`: the hex HMAC-SHA256 of the token keyed
    /// with the app secret, which Graph requires of every call with a user or Page token when the
    /// app enables "Require App Secret", as Meta's security guide recommends
    /// (developers.facebook.com/docs/facebook-login/security, "App secret proof"; F10). Sent
    /// always: without the setting, Graph checks a proof it is given and ignores none.
    pub(in crate::platforms) fn proved(
        &self,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> reqwest::RequestBuilder {
        match &self.apps.meta {
            Some(app) => request.query(&[("appsecret_proof", super::appsecret_proof(&app.client_secret, token))]),
            None => request,
        }
    }

    pub(in crate::platforms) fn graph_url(&self, path: &str) -> String {
        format!(
            "{}/{}{path}",
            self.endpoints.meta_graph.as_str().trim_end_matches('/'),
            self.endpoints.meta_graph_version
        )
    }

    pub(in crate::platforms) async fn publish_facebook(
        &self,
        account: &Account,
        tokens: &TokenSet,
        text: &str,
        media: &[Media],
    ) -> Result<Published, PlatformError> {
        let p = Platform::Facebook;
        let page = &account.platform_account_id;
        let token = tokens.access_token.expose_secret();
        let post_url = |id: &str| Some(format!("https://www.facebook.com/{id}"));
        if media.len() == 1 {
            let request = self.http.post(self.graph_url(&format!("/{page}/photos"))).form(&[
                ("url", media[0].url.as_str()),
                ("caption", text),
                ("access_token", token),
            ]);
            let request = self.proved(request, token);
            let response = self.send_effect(p, "POST /{page-id}/photos", request).await?;
            let (created, throttle) = self.read_effect(p, response, graph_refusal).await?;
            let id = created_id(p, if created["post_id"].is_string() { &created["post_id"] } else { &created["id"] })?;
            return Ok(Published { url: post_url(&id), id, throttle, found: false });
        }
        let mut form: Vec<(String, String)> =
            vec![("message".into(), text.to_owned()), ("access_token".into(), token.to_owned())];
        for (i, item) in media.iter().enumerate() {
            // Unpublished photos first; they are attached to one post below.
            let request = self.http.post(self.graph_url(&format!("/{page}/photos"))).form(&[
                ("url", item.url.as_str()),
                ("published", "false"),
                ("access_token", token),
            ]);
            let request = self.proved(request, token);
            let photo: Value = self.json(p, "POST /{page-id}/photos (unpublished)", request, graph_refusal).await?;
            let id = photo["id"]
                .as_str()
                .ok_or_else(|| PlatformError::Unexpected { platform: p, detail: "no photo id".into() })?;
            form.push((format!("attached_media[{i}]"), json!({ "media_fbid": id }).to_string()));
        }
        let request = self.proved(self.http.post(self.graph_url(&format!("/{page}/feed"))).form(&form), token);
        let response = self.send_effect(p, "POST /{page-id}/feed", request).await?;
        let (created, throttle) = self.read_effect(p, response, graph_refusal).await?;
        let id = created_id(p, &created["id"])?;
        Ok(Published { url: post_url(&id), id, throttle, found: false })
    }
}
