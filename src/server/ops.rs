//! `GET /ping`, `GET /health`, `GET /metrics`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;

/// The version in `/ping`'s and every response's `X-Influxdb-Version` header: clients check
/// it for "1.x" to pick the 1.x protocol.
pub const INFLUX_COMPAT_VERSION: &str = "1.8.10-meterdb";

/// `?verbose=true` of `/ping`.
#[derive(Debug, Default, Deserialize)]
pub struct PingParams {
    verbose: Option<String>,
}

/// `GET /ping`: 204 (200 with the version when `verbose=true`).
pub async fn ping(Query(p): Query<PingParams>) -> Response {
    if p.verbose.as_deref() == Some("true") {
        return axum::Json(json!({ "version": INFLUX_COMPAT_VERSION })).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /health`: `pass` (200) while every shard takes writes, `fail` (503) otherwise, with
/// what recovery found at start-up.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.engine.stats();
    let read_only: Vec<_> = stats
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.poisoned
                .as_ref()
                .map(|why| json!({"shard": i, "error": why}))
        })
        .collect();
    let damage: Vec<String> = state
        .engine
        .recovery_report()
        .iter()
        .flat_map(|r| r.corruptions.iter().map(ToString::to_string))
        .collect();
    let pass = read_only.is_empty();
    let body = json!({
        "name": "meterdb",
        "version": env!("CARGO_PKG_VERSION"),
        "status": if pass { "pass" } else { "fail" },
        "message": if pass { "ready for queries and writes" } else { "some shards are read-only" },
        "checks": {
            "shards": stats.len(),
            "read_only_shards": read_only,
            "buffered_events": stats.iter().map(|s| s.buffered_events).sum::<usize>(),
            "segments": stats.iter().map(|s| s.segments).sum::<usize>(),
            "damage_found_at_startup": damage,
        },
    });
    let status = if pass {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
