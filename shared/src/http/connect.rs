//! Tenant settings and connected accounts. (Connect links and OAuth callbacks join these routes.)

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::extract::{ApiJson, ApiPath, Authenticated};
use super::routes::Routes;
use super::{AppState, Problem};
use crate::domain::{AccountId, AccountKind, AccountStatus, Platform, UserId};
use crate::store::{Account, Origin, Tenant};

pub(super) fn routes() -> Routes {
    Routes::new().on(Method::GET, "/v1/tenant", get_tenant).on(Method::PATCH, "/v1/tenant", update_tenant).on(
        Method::GET,
        "/v1/users/{user_id}/accounts",
        list_accounts,
    )
}

const MAX_ORIGINS: usize = 20;
const MAX_NAME_CHARS: usize = 100;

async fn get_tenant(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<Tenant>, Problem> {
    let found = state.tenants.get(&tenant).await?;
    // A key whose tenant is gone is as good as no key.
    found.map(Json).ok_or_else(Problem::unauthorized)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    name: Option<String>,
    allowed_origins: Option<Vec<String>>,
    x_auth: Option<crate::platforms::XAuth>,
}

async fn update_tenant(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiJson(patch): ApiJson<TenantPatch>,
) -> Result<Json<Tenant>, Problem> {
    let name = match patch.name.as_deref().map(str::trim) {
        Some(name) if name.is_empty() || name.chars().count() > MAX_NAME_CHARS => {
            return Err(Problem::invalid(
                "invalid_name",
                "name",
                format!("name must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        other => other,
    };
    let origins = match patch.allowed_origins {
        Some(list) if list.len() > MAX_ORIGINS => {
            return Err(Problem::invalid(
                "too_many_origins",
                "allowed_origins",
                format!("at most {MAX_ORIGINS} origins"),
            ));
        }
        Some(list) => Some(
            list.iter()
                .map(|raw| Origin::parse(raw))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Problem::invalid("invalid_origin", "allowed_origins", e.to_string()))?,
        ),
        None => None,
    };
    match state.tenants.update(&tenant, name, origins.as_deref(), patch.x_auth).await {
        Ok(updated) => Ok(Json(updated)),
        Err(crate::store::StoreError::NotFound) => Err(Problem::unauthorized()),
        Err(e) => Err(e.into()),
    }
}

/// An account as the API shows it: never a token, never a version.
#[derive(Debug, Serialize)]
struct AccountView {
    id: AccountId,
    user_id: UserId,
    platform: Platform,
    platform_account_id: String,
    name: String,
    kind: AccountKind,
    status: AccountStatus,
    scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    token_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    refresh_token_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    connected_at: OffsetDateTime,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            id: a.id,
            user_id: a.user,
            platform: a.platform,
            platform_account_id: a.platform_account_id,
            name: a.name,
            kind: a.kind,
            status: a.status,
            scopes: a.scopes,
            token_expires_at: a.access_expires_at,
            refresh_token_expires_at: a.refresh_expires_at,
            connected_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct AccountList {
    accounts: Vec<AccountView>,
}

pub(super) fn parse_user(raw: String) -> Result<UserId, Problem> {
    UserId::parse(raw).map_err(|e| {
        Problem::new(axum::http::StatusCode::BAD_REQUEST, "invalid_user_id", "The user id is invalid")
            .detail(e.to_string())
            .with("field", "user_id")
    })
}

async fn list_accounts(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<AccountList>, Problem> {
    let user = parse_user(user)?;
    let accounts = state.accounts.list(&tenant, &user).await?;
    Ok(Json(AccountList { accounts: accounts.into_iter().map(AccountView::from).collect() }))
}
