//! `POST /api/v1/events`: a JSON array of the spec's `UsageEvent` objects.
//!
//! `tenant_id` is the tenant, else `?tenant=`. The mapping onto MeterDB's model is the one
//! the Rust `UsageTracker` uses, in [`crate::tracker::event`] (measurement from
//! `event_type`, `user_id` → tag `user`, metadata strings → tags, numbers → fields, ...).

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
use crate::model::{Timestamp, WriteBatch};
use crate::tracker::event::UsageEvent;

/// Query parameters of `/api/v1/events`.
#[derive(Debug, Default, Deserialize)]
pub struct EventParams {
    /// Tenant of events without `tenant_id`.
    pub tenant: Option<String>,
}

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
    let engine = state.engine.clone();
    let (decoded_events, decoded) = tokio::task::spawn_blocking(move || {
        let events = decode(
            &decoded.bytes,
            params.tenant.as_deref(),
            now,
            engine.shard_count(),
            |t| engine.shard_of(t),
        );
        (events, decoded)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (parts, numbers, rejected) = decoded_events?;
    let receipt = state.engine.write_parts_async(parts).await;
    // The body's share of the write budget is held until the write is done, as `/write`
    // does: under a flood, requests waiting for the writer count against it (429 beyond).
    drop(decoded);
    let receipt = receipt?;
    answer(&state, &receipt, &numbers, rejected, body_len, started)
}

/// A decoded body: the batch of each part, each stored event's 1-based position (through the
/// parts in order), the refused elements.
pub type Decoded = (Vec<WriteBatch>, Vec<usize>, Vec<Rejected>);

/// Decodes the array into `parts` batches, each event into `parts[route(tenant)]` (the last
/// for an index past it), as `/write` parses lines into one batch per shard; returns them with
/// the 1-based position of each event (through the parts in order) and the refused elements.
pub fn decode(
    body: &[u8],
    default_tenant: Option<&str>,
    now: Timestamp,
    parts: usize,
    route: impl Fn(&str) -> usize,
) -> Result<Decoded, ApiError> {
    let items: Vec<Json> = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a JSON array of events: {e}")))?;
    let last = parts.max(1) - 1;
    let mut batches = vec![WriteBatch::new(); last + 1];
    let mut numbers = vec![Vec::new(); last + 1];
    let mut rejected = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let mut one = WriteBatch::new();
        let result = UsageEvent::from_json(item, default_tenant).and_then(|event| {
            event.add_to(&mut one, now);
            let event = one.event(0).ok_or("the event could not be built")?;
            event.validate().map_err(|r| r.to_string())?;
            let part = route(event.tenant).min(last);
            let (Some(batch), Some(numbers)) = (batches.get_mut(part), numbers.get_mut(part))
            else {
                return Err("the event could not be routed".to_owned());
            };
            batch.push_ref(&event);
            numbers.push(i + 1);
            Ok(())
        });
        if let Err(error) = result {
            rejected.push(Rejected { line: i + 1, error });
        }
    }
    Ok((batches, numbers.concat(), rejected))
}
