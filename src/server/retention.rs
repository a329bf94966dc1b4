//! `/api/v1/tenants/{tenant}/retention`: a tenant's retention, and its override, over
//! [`crate::RetentionPolicies`].
//!
//! | route | answer |
//! |---|---|
//! | `GET retention` | `{"tenant", "events_days", "metrics_days", "override": {"events_days", "metrics_days"}}` |
//! | `PUT retention` | replaces the override with the body, `{"events_days": n\|null, "metrics_days": n\|null}` (a field left out or null uses the default; `{}` removes the override); 200 with the `GET` answer |
//! | `DELETE retention` | removes the override; 200 with the `GET` answer (the defaults now in force) |
//!
//! `events_days` and `metrics_days` at the top level are the effective values, in whole days
//! (rounded down; `null` when data is kept forever, which only an embedding program can
//! configure); `override` is what was set, `null` where the default applies. A value that is
//! not a whole number of days from 1 to 36500, a metrics retention shorter than the events
//! retention, an unknown field or a body that is not a JSON object is a 400 naming the field.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::body::read_small;
use super::error::ApiError;
use super::usage::{Tenant, tenant};
use crate::retention::{Retention, RetentionError, TenantRetention};

/// The answer of every retention route.
#[derive(Debug, Serialize)]
pub struct RetentionAnswer {
    /// The tenant.
    pub tenant: String,
    /// Effective raw-event retention in days; `None` (null): forever.
    pub events_days: Option<u64>,
    /// Effective rollup retention in days; `None` (null): forever.
    pub metrics_days: Option<u64>,
    /// What the tenant's override sets.
    #[serde(rename = "override")]
    pub overridden: TenantRetention,
}

impl RetentionAnswer {
    fn new(tenant: String, effective: Retention, overridden: TenantRetention) -> RetentionAnswer {
        RetentionAnswer {
            tenant,
            events_days: whole_days(effective.events),
            metrics_days: whole_days(effective.metrics),
            overridden,
        }
    }
}

/// `GET /api/v1/tenants/{tenant}/retention`. Memory only.
pub async fn get_retention(
    State(state): State<Arc<AppState>>,
    path: Tenant,
) -> Result<Json<RetentionAnswer>, ApiError> {
    let tenant = tenant(path)?;
    let policies = state.engine.retention();
    let (effective, overridden) = (policies.get(&tenant), policies.override_of(&tenant));
    Ok(Json(RetentionAnswer::new(tenant, effective, overridden)))
}

/// `PUT /api/v1/tenants/{tenant}/retention`: the override replaced by the body.
pub async fn put_retention(
    State(state): State<Arc<AppState>>,
    path: Tenant,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RetentionAnswer>, ApiError> {
    let tenant = tenant(path)?;
    let bytes = read_small(&state, &headers, body).await?;
    let wanted = parse(&bytes)?;
    set(&state, tenant, wanted).await
}

/// `DELETE /api/v1/tenants/{tenant}/retention`: the override removed; 200 with the defaults
/// now in force (also when there was none, so that a retried delete succeeds).
pub async fn delete_retention(
    State(state): State<Arc<AppState>>,
    path: Tenant,
) -> Result<Json<RetentionAnswer>, ApiError> {
    let tenant = tenant(path)?;
    set(&state, tenant, TenantRetention::default()).await
}

/// Sets the override on the blocking pool (it writes and fsyncs the file) and answers.
async fn set(
    state: &AppState,
    tenant: String,
    wanted: TenantRetention,
) -> Result<Json<RetentionAnswer>, ApiError> {
    let engine = state.engine.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let policies = engine.retention();
        let effective = policies.set(&tenant, wanted)?;
        let overridden = policies.override_of(&tenant);
        Ok::<_, crate::Error>(RetentionAnswer::new(tenant, effective, overridden))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(answer))
}

/// The body of a `PUT`. Decoded by hand rather than by serde, so that a wrong value is
/// reported with the field it is in (serde's type errors give only a line and column).
fn parse(bytes: &[u8]) -> Result<TenantRetention, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(bad(
            "body must be a JSON object such as {\"events_days\": 7, \"metrics_days\": 365}"
                .to_owned(),
        ));
    };
    let mut wanted = TenantRetention::default();
    for (key, value) in &fields {
        let (field, slot) = match key.as_str() {
            "events_days" => ("events_days", &mut wanted.events_days),
            "metrics_days" => ("metrics_days", &mut wanted.metrics_days),
            _ => {
                return Err(bad(format!(
                    "unknown field {:?}: the fields are events_days and metrics_days",
                    crate::usage::meter::clip(key)
                )));
            }
        };
        *slot = match value {
            Value::Null => None,
            _ => Some(
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        let shown = crate::usage::meter::clip(&value.to_string());
                        crate::Error::InvalidRetention(RetentionError::days(field, shown))
                    })?,
            ),
        };
    }
    Ok(wanted)
}

/// `d` in whole days, rounded down; `None` for [`Duration::MAX`] (kept forever).
fn whole_days(d: Duration) -> Option<u64> {
    (d != Duration::MAX).then_some(d.as_secs() / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn message(e: ApiError) -> String {
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        match e {
            ApiError::BadRequest(m) => m,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    #[test]
    fn bodies_decode_with_nulls_and_missing_fields_as_defaults() {
        let parsed = |s: &str| parse(s.as_bytes()).unwrap();
        assert_eq!(parsed("{}"), TenantRetention::default());
        assert_eq!(
            parsed(r#"{"events_days": 7}"#),
            TenantRetention {
                events_days: Some(7),
                metrics_days: None
            }
        );
        assert_eq!(
            parsed(r#"{"events_days": null, "metrics_days": 365}"#),
            TenantRetention {
                events_days: None,
                metrics_days: Some(365)
            }
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        for (body, needle) in [
            ("{\"events_days\": ", "not valid JSON"),
            ("[7]", "JSON object"),
            (r#"{"event_days": 7}"#, "unknown field \"event_days\""),
            (r#"{"events_days": -1}"#, "invalid events_days: -1 is not"),
            (
                r#"{"metrics_days": 1.5}"#,
                "invalid metrics_days: 1.5 is not",
            ),
            (
                r#"{"metrics_days": "7"}"#,
                "invalid metrics_days: \"7\" is not",
            ),
            (
                r#"{"events_days": 99999999999}"#,
                "invalid events_days: 99999999999",
            ),
        ] {
            let text = message(parse(body.as_bytes()).unwrap_err());
            assert!(text.contains(needle), "{body}: {text}");
        }
    }

    #[test]
    fn forever_has_no_day_count() {
        assert_eq!(whole_days(Duration::MAX), None);
        assert_eq!(whole_days(Duration::from_secs(90 * 86_400)), Some(90));
        assert_eq!(whole_days(Duration::from_secs(86_399)), Some(0));
    }
}
