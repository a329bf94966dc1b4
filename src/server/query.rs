//! `GET|POST /query`: InfluxQL in, InfluxDB 1.x's JSON out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::body::read_small;
use crate::influxql::{self, QueryBudget, QueryOptions, QueryResponse};
use crate::ingest::lineproto::Precision;

/// `GET /query?q=&epoch=&db=&pretty=`.
pub async fn query_get(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    answer(state, params).await
}

/// `POST /query`: parameters in the URL or in an `application/x-www-form-urlencoded` body.
pub async fn query_post(
    State(state): State<Arc<AppState>>,
    Query(mut params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match read_small(&state, &headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    for (k, v) in form_urlencoded(&form) {
        params.entry(k).or_insert(v);
    }
    answer(state, params).await
}

async fn answer(state: Arc<AppState>, params: HashMap<String, String>) -> Response {
    let started = Instant::now();
    let pretty = params.get("pretty").is_some_and(|p| p == "true");
    let Some(q) = params.get("q").filter(|q| !q.trim().is_empty()).cloned() else {
        return respond(
            StatusCode::BAD_REQUEST,
            &QueryResponse::error("missing required parameter \"q\""),
            None,
            pretty,
        );
    };
    let epoch = match params.get("epoch").map(String::as_str) {
        None | Some("") => None,
        Some(e) => match Precision::parse(e) {
            Some(p) => Some(p),
            None => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    &QueryResponse::error(format!("invalid epoch {e:?}: use ns, u, ms or s")),
                    None,
                    pretty,
                );
            }
        },
    };
    let statements = match influxql::parse_query(&q) {
        Ok(s) => s,
        Err(e) => {
            state.metrics.record_query(started.elapsed(), false);
            return respond(
                StatusCode::BAD_REQUEST,
                &QueryResponse::error(format!("error parsing query: {e}")),
                None,
                pretty,
            );
        }
    };
    // The query stops at its time budget (never later than the request timeout, which
    // answers 408), or as soon as this handler is dropped: the client went away or the
    // request timed out, and nobody will read the answer.
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancelled.clone());
    let timeout = state.config.query_timeout.min(state.config.request_timeout);
    let options = QueryOptions {
        now: state.clock.now().0,
        tenant: None,
        database: params.get("db").cloned(),
        budget: QueryBudget {
            cancelled: Some(cancelled),
            max_rows: state.config.query_max_rows,
            max_cells: state.config.query_max_cells,
            max_scan_rows: state.config.query_max_scan_rows,
            ..QueryBudget::with_timeout(timeout)
        },
    };
    let engine = state.engine.clone();
    let result =
        tokio::task::spawn_blocking(move || influxql::execute_all(&engine, &statements, &options))
            .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => QueryResponse::error(format!("query failed: {e}")),
    };
    let ok = response.error.is_none() && response.results.iter().all(|r| r.error.is_none());
    state.metrics.record_query(started.elapsed(), ok);
    respond(StatusCode::OK, &response, epoch, pretty)
}

/// Sets the flag when dropped: with the handler's future, when the request ends.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn respond(
    status: StatusCode,
    response: &QueryResponse,
    epoch: Option<Precision>,
    pretty: bool,
) -> Response {
    let mut json = response.to_json(epoch);
    if pretty && let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) {
        json = serde_json::to_string_pretty(&v).unwrap_or(json);
    }
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// The pairs of an `application/x-www-form-urlencoded` body.
fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}
