//! `POST /write` (InfluxDB 1.x) and `POST /api/v2/write` (2.x): line protocol in, 204 when
//! every line is stored, 400 listing the refused lines when some are not (the others are
//! stored, as InfluxDB does). [`answer`] shapes that reply for every write endpoint.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::AppState;
use super::body::read_write_body;
use super::error::{ApiError, MAX_LISTED, Rejected};
use crate::ingest::lineproto::{LineOptions, Precision, append_routed};
use crate::{Receipt, WriteBatch};

/// The query parameters both write endpoints understand. `db`, `rp`, `bucket` and `org` are
/// accepted and ignored: MeterDB has one namespace, partitioned by tenant.
#[derive(Debug, Default, Deserialize)]
pub struct WriteParams {
    /// Timestamp unit: `ns` (default), `us`/`u`, `ms`, `s` (and `n`).
    pub precision: Option<String>,
    /// Tenant of lines without a `tenant` tag.
    pub tenant: Option<String>,
    /// InfluxDB 1.x database (ignored).
    pub db: Option<String>,
    /// InfluxDB 1.x retention policy (ignored).
    pub rp: Option<String>,
    /// InfluxDB 2.x bucket (ignored).
    pub bucket: Option<String>,
    /// InfluxDB 2.x organization (ignored).
    pub org: Option<String>,
}

/// `POST /write?db=&precision=&tenant=` and `POST /api/v2/write?bucket=&org=&precision=&tenant=`:
/// the two differ only in the names of parameters MeterDB ignores.
pub async fn write(
    State(state): State<Arc<AppState>>,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    let precision = match params.precision.as_deref() {
        None | Some("") => Precision::Nanoseconds,
        Some(p) => Precision::parse(p).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid precision {p:?}: use ns, us, ms or s (also n and u)"
            ))
        })?,
    };
    let decoded = read_write_body(&state, &headers, body).await?;
    let body_len = decoded.bytes.len();
    let now = state.clock.now();
    let tenant = params.tenant.filter(|t| !t.is_empty());
    let engine = state.engine.clone();
    let (parts, numbers, line_errors, decoded) = tokio::task::spawn_blocking(move || {
        let opts = LineOptions {
            precision,
            default_tenant: tenant.as_deref(),
            now,
        };
        // Parsed straight into one batch per shard, the batches the shards commit.
        let shards = engine.shard_count();
        let mut parts = vec![WriteBatch::new(); shards];
        let mut numbers = vec![Vec::new(); shards];
        let errors = append_routed(&decoded.bytes, &opts, &mut parts, &mut numbers, |t| {
            engine.shard_of(t)
        });
        // The receipt counts events through the parts in order.
        (parts, numbers.concat(), errors, decoded)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let rejected: Vec<Rejected> = line_errors
        .into_iter()
        .map(|e| Rejected {
            line: e.line,
            error: format!("{}: {}", e.kind, e.quote),
        })
        .collect();
    let receipt = state.engine.write_parts_async(parts).await;
    drop(decoded);
    let receipt = receipt.inspect_err(|e| tracing::warn!(error = %e, "write failed"))?;
    answer(&state, &receipt, &numbers, rejected, body_len, started)
}

/// The answer to a write both endpoints share: 204, or 400 listing the refused lines (those
/// the parser refused, `rejected`, and those the engine refused, by their `numbers`).
pub fn answer(
    state: &AppState,
    receipt: &Receipt,
    numbers: &[usize],
    mut rejected: Vec<Rejected>,
    body_len: usize,
    started: Instant,
) -> Result<StatusCode, ApiError> {
    for (index, reason) in &receipt.rejected {
        rejected.push(Rejected {
            line: numbers.get(*index).copied().unwrap_or(0),
            error: reason.to_string(),
        });
    }
    rejected.sort_by_key(|r| r.line);
    state
        .metrics
        .record_write(receipt.written, body_len, rejected.len(), started.elapsed());
    // Duplicates (`receipt.duplicates`) are not rejections: a retried event is stored once
    // and its retry succeeds.
    if rejected.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let rejected_total = rejected.len();
    rejected.truncate(MAX_LISTED);
    Err(ApiError::Partial {
        accepted: receipt.written,
        rejected_total,
        rejected,
    })
}
