//! The `posts` function's routes: submit a post for some of a user's accounts, read it back, list
//! a user's posts.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::connect::parse_user;
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, invalid_body};
use super::routes::Routes;
use super::{AppState, Problem};
use crate::domain::{AccountId, PostId};
use crate::posts::Post;
use crate::posts::intake::{self, IntakeError};
use crate::posts::manage::{self, ActionError};
use crate::posts::publish::submit;
use crate::store::{CreateError, Created, StoreError};

pub(super) fn routes() -> Routes {
    Routes::new()
        .on(Method::POST, "/v1/posts", create)
        .on(Method::GET, "/v1/posts/{post_id}", get_post)
        .on(Method::PATCH, "/v1/posts/{post_id}", edit)
        .on(Method::DELETE, "/v1/posts/{post_id}", delete)
        .on(Method::POST, "/v1/posts/{post_id}/targets/{account_id}/retry", retry)
        .on(Method::GET, "/v1/users/{user_id}/posts", list)
}

impl From<ActionError> for Problem {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound { code, detail } => Problem::not_found(code, "Not found").detail(detail),
            ActionError::Conflict { code, detail, retry_after } => {
                let problem =
                    Problem::new(StatusCode::CONFLICT, code, "The post is not in a state for this").detail(detail);
                match retry_after {
                    Some(seconds) => problem.with("retry_after", seconds),
                    None => problem,
                }
            }
            ActionError::Invalid { code, field, detail } => Problem::invalid(code, field, detail),
            ActionError::Store(e) => e.into(),
        }
    }
}

fn post_id(raw: String) -> Result<PostId, Problem> {
    PostId::parse(raw).map_err(|_| Problem::not_found("post_not_found", "No such post"))
}

/// A JSON body that may be empty (then `T::default()`).
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| invalid_body(e.to_string()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryRequest {
    /// The tenant looked: an unknown target's post is not on the platform, so it is sent without
    /// being looked for.
    #[serde(default)]
    assume_absent: bool,
}

async fn retry(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiPath((post, account)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: RetryRequest = optional_body(&body)?;
    let post = post_id(post)?;
    let account = AccountId::parse(account)
        .map_err(|_| Problem::not_found("target_not_found", "Not found").detail("the post has no such target"))?;
    let post = manage::retry(&state.first_attempts, &tenant, &post, &account, request.assume_absent).await?;
    Ok((StatusCode::ACCEPTED, Json(post)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiPath(post): ApiPath<String>,
) -> Result<Response, Problem> {
    let post = manage::delete(&state.first_attempts, &tenant, &post_id(post)?).await?;
    Ok((StatusCode::ACCEPTED, Json(post)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditRequest {
    text: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    scheduled_at: Option<time::OffsetDateTime>,
}

async fn edit(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiPath(post): ApiPath<String>,
    ApiJson(request): ApiJson<EditRequest>,
) -> Result<Json<Post>, Problem> {
    let post = post_id(post)?;
    manage::edit(&state.first_attempts, &tenant, &post, request.text, request.scheduled_at)
        .await
        .map(Json)
        .map_err(Into::into)
}

const MAX_IDEMPOTENCY_KEY: usize = 255;

async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, Problem> {
    // The request's hash, over its JSON with keys in order, for idempotency.
    let hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    let request: intake::Request = serde_json::from_value(body).map_err(|e| invalid_body(e.to_string()))?;
    let key = headers.get("idempotency-key").map(|v| v.to_str().map(str::trim).unwrap_or_default().to_owned());
    if let Some(key) = &key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "The Idempotency-Key header is invalid",
        )
        .detail(format!("1 to {MAX_IDEMPOTENCY_KEY} visible characters")));
    }
    let admitted = intake::admit(&state.accounts, state.egress.policy(), state.clock.now(), &tenant, request).await;
    let (post, accounts) = match admitted {
        Ok(admitted) => admitted,
        Err(IntakeError::Refused(r)) => {
            let problem = Problem::invalid(r.code, &r.field, r.detail);
            return Err(match &r.account {
                Some(id) => problem.with("account_id", id.as_str()),
                None => problem,
            });
        }
        Err(IntakeError::Store(e)) => return Err(e.into()),
    };
    let created = submit(&state.first_attempts, post, &accounts, key.as_deref().map(|k| (k, hash.as_str()))).await;
    match created {
        Ok(Created::New(post)) => Ok((StatusCode::ACCEPTED, Json(post)).into_response()),
        Ok(Created::Existing(id)) => {
            let original = state
                .posts
                .get(&tenant, &id)
                .await?
                .ok_or_else(|| Problem::not_found("post_not_found", "No such post"))?;
            Ok((StatusCode::ACCEPTED, Json(original)).into_response())
        }
        Err(CreateError::KeyReused) => Err(Problem::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request",
        )),
        Err(CreateError::Store(e)) => Err(e.into()),
        // `submit` stores the post without its claims when they contend; seen here, it is busy.
        Err(CreateError::Contended) => Err(StoreError::Busy.into()),
    }
}

async fn get_post(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Post>, Problem> {
    let id = post_id(id)?;
    state.posts.get(&tenant, &id).await?.map(Json).ok_or_else(|| Problem::not_found("post_not_found", "No such post"))
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<i32>,
    after: Option<String>,
}

#[derive(Debug, Serialize)]
struct PostPage {
    posts: Vec<Post>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<PostId>,
}

async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiPath(user): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<PostPage>, Problem> {
    let user = parse_user(user)?;
    let limit = page.limit.unwrap_or(20).clamp(1, 100);
    let invalid_cursor = || {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_cursor", "The after cursor is invalid")
            .detail("Pass the `next` of a previous page of this listing.")
    };
    let after = page.after.map(PostId::parse).transpose().map_err(|_| invalid_cursor())?;
    // A cursor is the last post of a page Herald served: a post of this tenant and user. Any
    // other value was not issued by Herald for this listing.
    if let Some(after) = &after {
        match state.posts.get(&tenant, after).await? {
            Some(post) if post.user_id == user => {}
            _ => return Err(invalid_cursor()),
        }
    }
    let page = state.posts.list(&tenant, &user, limit, after.as_ref()).await?;
    let ids = page.ids;
    let mut posts = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(post) = state.posts.get(&tenant, id).await? {
            posts.push(post);
        }
    }
    // Whenever DynamoDB says there is more, the last id is the cursor.
    let next = if page.more { ids.last().cloned() } else { None };
    Ok(Json(PostPage { posts, next }))
}
