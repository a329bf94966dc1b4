//! `DELETE /api/v1/tenants/{tenant}/users/{user}` and `DELETE /api/v1/tenants/{tenant}`:
//! a user's or a tenant's right to erasure. The events are hidden from every read when the
//! answer is sent; the background compaction then removes them from the data files (see
//! `Engine::delete_user`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::usage::{Tenant, TenantAnd, tenant, tenant_and};

/// The answer to a deletion.
#[derive(Debug, Serialize)]
pub struct DeletionAnswer {
    tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    /// The deletion's number in the audit log.
    deletion: u64,
    /// Events hidden from now on.
    events_deleted: u64,
    /// What the rollups do with the deleted events' counts: `keep` or `subtract`.
    rollups: String,
    /// The data files still hold the events until the next compaction pass.
    purge: &'static str,
}

/// `DELETE /api/v1/tenants/{tenant}/users/{user}`.
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    path: TenantAnd,
) -> Result<Json<DeletionAnswer>, ApiError> {
    let (tenant, user) = tenant_and(path)?;
    delete(state, tenant, Some(user)).await
}

/// `DELETE /api/v1/tenants/{tenant}`.
pub async fn delete_tenant(
    State(state): State<Arc<AppState>>,
    path: Tenant,
) -> Result<Json<DeletionAnswer>, ApiError> {
    delete(state, tenant(path)?, None).await
}

async fn delete(
    state: Arc<AppState>,
    tenant: String,
    user: Option<String>,
) -> Result<Json<DeletionAnswer>, ApiError> {
    let engine = state.engine.clone();
    let (t, u) = (tenant.clone(), user.clone());
    let deletion = tokio::task::spawn_blocking(move || match &u {
        Some(u) => engine.delete_user(&t, u),
        None => engine.delete_tenant(&t),
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(DeletionAnswer {
        tenant,
        user,
        deletion: deletion.id,
        events_deleted: deletion.events,
        rollups: state.engine.rollups_on_delete().to_string(),
        purge: "at the next compaction pass",
    }))
}
