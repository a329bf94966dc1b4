//! `POST /api/v1/events`: a JSON array of the spec's `UsageEvent` objects.
//!
//! Mapping onto MeterDB's model: `tenant_id` is the tenant (else `?tenant=`); `event_type`
//! picks the measurement (`api_call` → `api_calls`, `storage`/`storage_operation` → `storage`,
//! `database_query` → `db_queries`, anything else is used as written); `user_id` becomes the
//! tag `user`, `event_name` the tag `event_name`, `resource_consumed` the tag `resource`;
//! `quantity` is a float field; `metadata` strings are tags, numbers fields (integers when
//! written without a fraction or exponent, floats otherwise; `response_time_ms` and
//! `quantity` are always floats) and booleans boolean fields. `timestamp` is RFC 3339 or
//! epoch nanoseconds; missing means now. `event_id` is the event's id.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value as Json;

use super::AppState;
use super::body::read_write_body;
use super::error::{ApiError, Rejected};
use super::write::answer;
use crate::model::{FieldValueRef, Timestamp, WriteBatch};

/// Query parameters of `/api/v1/events`.
#[derive(Debug, Default, Deserialize)]
pub struct EventParams {
    /// Tenant of events without `tenant_id`.
    pub tenant: Option<String>,
}

/// Fields that are floats even when a client writes a whole number, so that `150` and
/// `150.5` land in one column.
const FLOAT_FIELDS: &[&str] = &["quantity", "response_time_ms"];

/// `POST /api/v1/events`.
pub async fn post_events(
    State(state): State<Arc<AppState>>,
    Query(params): Query<EventParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    let decoded = read_write_body(&state, &headers, body).await?;
    let body_len = decoded.bytes.len();
    let now = state.clock.now();
    let (batch, numbers, rejected) =
        tokio::task::spawn_blocking(move || decode(&decoded.bytes, params.tenant.as_deref(), now))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    let receipt = state.engine.write_async(batch).await?;
    answer(&state, &receipt, &numbers, rejected, body_len, started)
}

/// Decodes the array into a batch; returns it with the 1-based position of each event and
/// the refused elements.
pub fn decode(
    body: &[u8],
    default_tenant: Option<&str>,
    now: Timestamp,
) -> Result<(WriteBatch, Vec<usize>, Vec<Rejected>), ApiError> {
    let items: Vec<Json> = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a JSON array of events: {e}")))?;
    let mut batch = WriteBatch::new();
    let mut numbers = Vec::new();
    let mut rejected = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut one = WriteBatch::new();
        let result = append(item, default_tenant, now, &mut one).and_then(|()| {
            let event = one.event(0).ok_or("the event could not be built")?;
            event.validate().map_err(|r| r.to_string())?;
            batch.push_ref(&event);
            Ok(())
        });
        match result {
            Ok(()) => numbers.push(i + 1),
            Err(error) => rejected.push(Rejected { line: i + 1, error }),
        }
    }
    Ok((batch, numbers, rejected))
}

fn append(
    item: &Json,
    default_tenant: Option<&str>,
    now: Timestamp,
    batch: &mut WriteBatch,
) -> Result<(), String> {
    let obj = item.as_object().ok_or("an event must be a JSON object")?;
    let text = |key: &str| -> Result<Option<&str>, String> {
        match obj.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{key} must be a string")),
        }
    };
    let tenant = text("tenant_id")?
        .or(default_tenant)
        .ok_or("no tenant: set tenant_id or ?tenant=")?;
    let measurement = match text("event_type")?.ok_or("event_type is missing")? {
        "api_call" | "api_calls" => "api_calls",
        "storage" | "storage_operation" | "storage_usage" => "storage",
        "database_query" | "db_query" | "db_queries" => "db_queries",
        other => other,
    };
    let ts = match obj.get("timestamp") {
        None | Some(Json::Null) => now,
        Some(Json::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(Timestamp)
            .ok_or_else(|| format!("timestamp {s:?} is not RFC 3339"))?,
        Some(Json::Number(n)) => n
            .as_i64()
            .map(Timestamp)
            .ok_or_else(|| format!("timestamp {n} is not integer nanoseconds"))?,
        Some(_) => return Err("timestamp must be an RFC 3339 string or epoch nanoseconds".into()),
    };
    let event_id = text("event_id")?;
    let mut e = batch.add(tenant, measurement, ts);
    for (key, tag) in [
        ("user_id", "user"),
        ("event_name", "event_name"),
        ("resource_consumed", "resource"),
    ] {
        if let Some(v) = text(key)? {
            e.tag(tag, v);
        }
    }
    match obj.get("quantity") {
        None | Some(Json::Null) => {}
        Some(Json::Number(n)) => {
            e.field("quantity", FieldValueRef::F64(n.as_f64().unwrap_or(0.0)));
        }
        Some(_) => return Err("quantity must be a number".into()),
    }
    match obj.get("metadata") {
        None | Some(Json::Null) => {}
        Some(Json::Object(meta)) => {
            for (k, v) in meta {
                match v {
                    Json::Null => {}
                    Json::String(s) => {
                        e.tag(k, s);
                    }
                    Json::Bool(b) => {
                        e.field(k, FieldValueRef::Bool(*b));
                    }
                    Json::Number(n) => {
                        let value = match (n.as_i64(), FLOAT_FIELDS.contains(&k.as_str())) {
                            (Some(i), false) => FieldValueRef::I64(i),
                            _ => FieldValueRef::F64(
                                n.as_f64()
                                    .ok_or_else(|| format!("metadata.{k}: {n} is out of range"))?,
                            ),
                        };
                        e.field(k, value);
                    }
                    Json::Array(_) | Json::Object(_) => {
                        return Err(format!(
                            "metadata.{k}: nested arrays and objects are not supported"
                        ));
                    }
                }
            }
        }
        Some(_) => return Err("metadata must be an object".into()),
    }
    if let Some(id) = event_id {
        e.event_id(id);
    }
    Ok(())
}
