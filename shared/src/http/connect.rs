//! Tenant settings and connected accounts. (Connect links and OAuth callbacks join these routes.)

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::extract::{ApiJson, ApiPath, Authenticated};
use super::routes::Routes;
use super::{AppState, Problem};
use std::collections::BTreeMap;

use crate::domain::{AccountId, AccountKind, AccountStatus, LEGACY_CONNECTOR_SETTING, Platform, UserId};
use crate::platforms;
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

/// A tenant as the API shows it: its settings, with the connector each platform that has a
/// choice uses (the tenant's, else the default).
#[derive(Debug, Serialize)]
struct TenantView {
    #[serde(flatten)]
    tenant: Tenant,
    connectors: BTreeMap<Platform, &'static str>,
    /// Deprecated: `connectors.x`, as the API showed it before connectors.
    x_auth: &'static str,
}

impl From<Tenant> for TenantView {
    fn from(tenant: Tenant) -> Self {
        let connectors: BTreeMap<Platform, &'static str> = Platform::ALL
            .into_iter()
            .filter(|platform| platforms::connectors(*platform).len() > 1)
            .map(|platform| {
                let known = platforms::connectors(platform);
                let chosen = tenant.connectors.get(&platform).and_then(|c| known.iter().find(|k| **k == c));
                (platform, *chosen.unwrap_or(&known[0]))
            })
            .collect();
        let (_, legacy) = LEGACY_CONNECTOR_SETTING;
        let x_auth = connectors.get(&legacy).copied().unwrap_or(platforms::connectors(legacy)[0]);
        Self { tenant, connectors, x_auth }
    }
}

async fn get_tenant(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<TenantView>, Problem> {
    let found = state.tenants.get(&tenant).await?;
    // A key whose tenant is gone is as good as no key.
    found.map(|tenant| Json(tenant.into())).ok_or_else(Problem::unauthorized)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    name: Option<String>,
    allowed_origins: Option<Vec<String>>,
    /// How the tenant's users authorize each platform that has a choice (`{"x": "oauth1"}`).
    connectors: Option<BTreeMap<Platform, String>>,
    /// Deprecated: the same as `connectors.x`.
    x_auth: Option<String>,
}

/// The connectors a patch chooses, each one the platform has.
fn chosen_connectors(patch: &TenantPatch) -> Result<Vec<(Platform, &str)>, Problem> {
    let (legacy_field, legacy_platform) = LEGACY_CONNECTOR_SETTING;
    let legacy = patch.x_auth.as_deref().map(|c| (legacy_platform, c, legacy_field.to_owned()));
    let listed = patch.connectors.iter().flatten().map(|(p, c)| (*p, c.as_str(), format!("connectors.{p}")));
    legacy
        .into_iter()
        .chain(listed)
        .map(|(platform, connector, field)| {
            let known = platforms::connectors(platform);
            if known.contains(&connector) {
                Ok((platform, connector))
            } else {
                Err(Problem::invalid(
                    "unknown_connector",
                    &field,
                    format!("{platform} is connected through one of: {}", known.join(", ")),
                ))
            }
        })
        .collect()
}

async fn update_tenant(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    ApiJson(patch): ApiJson<TenantPatch>,
) -> Result<Json<TenantView>, Problem> {
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
    let connectors = chosen_connectors(&patch)?;
    let origins = match &patch.allowed_origins {
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
    match state.tenants.update(&tenant, name, origins.as_deref(), &connectors).await {
        Ok(updated) => Ok(Json(updated.into())),
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
