//! The JSON usage API under `/api/v1/tenants/{tenant}/`: current usage, metrics, meters,
//! limits and limit checks, over [`crate::tracker::UsageTracker`].
//!
//! | route | answer |
//! |---|---|
//! | `GET usage?meter=&period=&timezone=` | `{"tenant","meter","value","period_start","period_end"}`; `period` minute, hour, day, week, month (default) or year, in `timezone` (IANA, default UTC) |
//! | `GET metrics?meter=&start=&end=&granularity=` | a list of `{"period_start","period_end","value","count"}` (+ `min`, `max`, `avg` for field meters); `start` required, `end` default now, times RFC 3339 or epoch ns; `granularity` minute, hour (default) or day |
//! | `GET meters`, `POST meters` | the tenant's meters (built-in first); define one (201, 409 if the name is taken, backfilled from stored events) |
//! | `GET meters/{name}`, `DELETE meters/{name}` | one meter; delete (204; 400 for a built-in one) |
//! | `GET limits`, `POST limits` | the tenant's limits; create one (201, with its `id`) |
//! | `GET`, `PUT`, `DELETE limits/{id}` | one limit; replace it; delete it (204) |
//! | `GET limits/check?meter=` | the most restrictive active limit's check ([`crate::tracker::LimitCheck`]) |
//!
//! Tenants exist implicitly: one with no events has usage 0 and the built-in meters, and can
//! be given limits. An unknown meter or limit id is a 404; a limit on a meter the tenant does
//! not have is a 404 naming the meter; bad parameters and bodies are 400s that name the
//! parameter or JSON key.
//!
//! The tenant's retention (`retention`) has its own module, [`super::retention`], and shares
//! this module's tenant path extraction.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::body::read_small;
use super::error::ApiError;
use crate::model::Timestamp;
use crate::rollup::Granularity;
use crate::tracker::{CurrentUsage, LimitCheck, UsageMetric};
use crate::usage::limit::parse_time_zone;
use crate::usage::{Meter, PeriodType, UsageLimit};

/// Query parameters of the usage routes (each route reads its own).
#[derive(Debug, Default, Deserialize)]
pub struct UsageParams {
    /// The meter (`resource_type`).
    pub meter: Option<String>,
    /// `usage`: the calendar period.
    pub period: Option<String>,
    /// `usage`: the IANA time zone of the period.
    pub timezone: Option<String>,
    /// `metrics`: start of the range.
    pub start: Option<String>,
    /// `metrics`: end of the range (exclusive).
    pub end: Option<String>,
    /// `metrics`: bucket size.
    pub granularity: Option<String>,
}

pub(super) type Tenant = Result<Path<String>, PathRejection>;
pub(super) type TenantAnd = Result<Path<(String, String)>, PathRejection>;

/// `GET /api/v1/tenants/{tenant}/usage`.
pub async fn usage(
    State(state): State<Arc<AppState>>,
    path: Tenant,
    RawQuery(query): RawQuery,
) -> Result<Json<CurrentUsage>, ApiError> {
    let tenant = tenant(path)?;
    let p = params(query)?;
    let meter = required(p.meter, "meter")?;
    let period = match p.period.as_deref() {
        None | Some("") => PeriodType::Month,
        Some(s) => s
            .parse::<PeriodType>()
            .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"period\": {e}")))?,
    };
    let tz = match p.timezone.as_deref() {
        None | Some("") => chrono_tz::UTC,
        Some(name) => parse_time_zone(name)
            .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"timezone\": {e}")))?,
    };
    blocking(&state, move |t| {
        t.get_current_usage(&tenant, &meter, period, tz)
    })
    .await
    .map(Json)
}

/// `GET /api/v1/tenants/{tenant}/metrics`.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    path: Tenant,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<UsageMetric>>, ApiError> {
    let tenant = tenant(path)?;
    let p = params(query)?;
    let meter = required(p.meter, "meter")?;
    let start = parse_time(&required(p.start, "start")?, "start")?;
    let end = match p.end.as_deref() {
        None | Some("") => state.clock.now(),
        Some(s) => parse_time(s, "end")?,
    };
    let granularity = match p.granularity.as_deref() {
        None | Some("") => Granularity::Hour,
        Some(s) => s
            .parse::<Granularity>()
            .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"granularity\": {e}")))?,
    };
    if start >= end {
        return Err(ApiError::BadRequest(format!(
            "start ({}) must be before end ({})",
            start.0, end.0
        )));
    }
    blocking(&state, move |t| {
        t.get_usage_metrics(&tenant, &meter, start, end, granularity)
    })
    .await
    .map(Json)
}

/// `GET /api/v1/tenants/{tenant}/meters`.
pub async fn list_meters(
    State(state): State<Arc<AppState>>,
    path: Tenant,
) -> Result<Json<Vec<Meter>>, ApiError> {
    Ok(Json(state.tracker.meters(&tenant(path)?)))
}

/// `POST /api/v1/tenants/{tenant}/meters`: 201 with the meter once backfilled.
pub async fn create_meter(
    State(state): State<Arc<AppState>>,
    path: Tenant,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = tenant(path)?;
    let meter: Meter = json_body(&state, &headers, body, "meter").await?;
    let answer = meter.clone();
    blocking(&state, move |t| t.define_meter(&tenant, meter)).await?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /api/v1/tenants/{tenant}/meters/{name}`.
pub async fn get_meter(
    State(state): State<Arc<AppState>>,
    path: TenantAnd,
) -> Result<Json<Meter>, ApiError> {
    let (tenant, name) = tenant_and(path)?;
    state
        .tracker
        .meter(&tenant, &name)
        .map(Json)
        .ok_or_else(|| {
            crate::Error::UnknownMeter {
                tenant: crate::usage::meter::clip(&tenant),
                meter: crate::usage::meter::clip(&name),
            }
            .into()
        })
}

/// `DELETE /api/v1/tenants/{tenant}/meters/{name}`: 204.
pub async fn delete_meter(
    State(state): State<Arc<AppState>>,
    path: TenantAnd,
) -> Result<StatusCode, ApiError> {
    let (tenant, name) = tenant_and(path)?;
    blocking(&state, move |t| t.delete_meter(&tenant, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/tenants/{tenant}/limits`.
pub async fn list_limits(
    State(state): State<Arc<AppState>>,
    path: Tenant,
) -> Result<Json<Vec<UsageLimit>>, ApiError> {
    Ok(Json(state.tracker.limits(&tenant(path)?)))
}

/// `POST /api/v1/tenants/{tenant}/limits`: 201 with the limit and its new `id`.
pub async fn create_limit(
    State(state): State<Arc<AppState>>,
    path: Tenant,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = tenant(path)?;
    let limit: UsageLimit = json_body(&state, &headers, body, "limit").await?;
    let created = blocking(&state, move |t| t.create_limit(&tenant, limit)).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /api/v1/tenants/{tenant}/limits/{id}`.
pub async fn get_limit(
    State(state): State<Arc<AppState>>,
    path: TenantAnd,
) -> Result<Json<UsageLimit>, ApiError> {
    let (tenant, id) = tenant_and(path)?;
    Ok(Json(state.tracker.limit(&tenant, &id)?))
}

/// `PUT /api/v1/tenants/{tenant}/limits/{id}`: the limit as replaced.
pub async fn update_limit(
    State(state): State<Arc<AppState>>,
    path: TenantAnd,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UsageLimit>, ApiError> {
    let (tenant, id) = tenant_and(path)?;
    let limit: UsageLimit = json_body(&state, &headers, body, "limit").await?;
    blocking(&state, move |t| t.update_limit(&tenant, &id, limit))
        .await
        .map(Json)
}

/// `DELETE /api/v1/tenants/{tenant}/limits/{id}`: 204.
pub async fn delete_limit(
    State(state): State<Arc<AppState>>,
    path: TenantAnd,
) -> Result<StatusCode, ApiError> {
    let (tenant, id) = tenant_and(path)?;
    blocking(&state, move |t| t.delete_limit(&tenant, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/tenants/{tenant}/limits/check?meter=`. Answered on the async worker: the
/// check reads memory only (limits, rollups), in microseconds.
pub async fn check_limit(
    State(state): State<Arc<AppState>>,
    path: Tenant,
    RawQuery(query): RawQuery,
) -> Result<Json<LimitCheck>, ApiError> {
    let tenant = tenant(path)?;
    let meter = required(params(query)?.meter, "meter")?;
    Ok(Json(state.tracker.check_limit(&tenant, &meter)?))
}

/// Times a usage route's handler (from the matched route to the response, without the
/// connection's reading and writing) into the usage latency histogram.
pub async fn timed(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    state.metrics.record_usage(started.elapsed());
    response
}

/// Runs a tracker call that may block (file writes, backfills, scans of raw events) on the
/// blocking pool.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::tracker::UsageTracker) -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let tracker = state.tracker.clone();
    tokio::task::spawn_blocking(move || f(&tracker))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)
}

pub(super) fn tenant(path: Tenant) -> Result<String, ApiError> {
    path.map(|Path(t)| t).map_err(bad_path)
}

pub(super) fn tenant_and(path: TenantAnd) -> Result<(String, String), ApiError> {
    path.map(|Path(p)| p).map_err(bad_path)
}

fn bad_path(e: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid path: {}", e.body_text()))
}

fn params(query: Option<String>) -> Result<UsageParams, ApiError> {
    serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("missing required parameter {name:?}")))
}

/// A time parameter: epoch nanoseconds (digits, optionally negative) or RFC 3339.
pub(super) fn parse_time(s: &str, name: &str) -> Result<Timestamp, ApiError> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let parsed = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<i64>().ok()
    } else {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
    };
    parsed.map(Timestamp).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "invalid parameter {name:?}: {:?} is neither RFC 3339 (2026-11-01T00:00:00Z) nor epoch nanoseconds",
            crate::usage::meter::clip(s)
        ))
    })
}

/// A JSON body under the server's body limit; a 400 names what is wrong in it.
async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = read_small(state, headers, body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("body is not a valid {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_epoch_nanoseconds() {
        assert_eq!(
            parse_time("1793491200000000000", "start").unwrap().0,
            1_793_491_200_000_000_000
        );
        assert_eq!(
            parse_time("2026-11-01T00:00:00Z", "start").unwrap().0,
            1_793_491_200_000_000_000
        );
        assert_eq!(parse_time("-5", "start").unwrap().0, -5);
        for bad in ["", "-", "yesterday", "2026-11-01", "99999999999999999999"] {
            let err = parse_time(bad, "end").unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
