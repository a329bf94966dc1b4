//! The HTTP server: InfluxDB-compatible writes and queries, the JSON events endpoint, the
//! usage API ([`usage`]) and the operational endpoints, all behind one authentication layer
//! ([`auth`]).
//!
//! Handlers stay thin: they decode the request ([`body`]), call the engine or the InfluxQL
//! executor, and shape the answer ([`error::ApiError`] for every failure). Blocking engine
//! calls (scans, parsing large bodies) run on the blocking pool so that the async workers keep
//! accepting requests.

pub mod auth;
pub mod body;
pub mod config;
pub mod conn;
pub mod deletion;
pub mod error;
pub mod events;
pub mod export;
pub mod metrics;
pub mod ops;
pub mod query;
pub mod retention;
pub mod usage;
pub mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::Engine;
use crate::clock::Clock;
use crate::tracker::UsageTracker;
pub use config::ServerConfig;
use metrics::Metrics;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The storage engine.
    pub engine: Arc<Engine>,
    /// Server settings.
    pub config: ServerConfig,
    /// The clock for `now()` and for lines without a timestamp.
    pub clock: Arc<dyn Clock>,
    /// Counters and histograms served on `/metrics`.
    pub metrics: Metrics,
    /// Decompressed write bytes in flight, in KiB permits: a flood of writes is answered with
    /// 429 instead of growing memory without bound.
    pub write_budget: Arc<Semaphore>,
    /// The usage tracker behind `/api/v1/tenants/{tenant}/...` (limits, usage, meters).
    pub tracker: Arc<UsageTracker>,
}

impl AppState {
    /// State for `engine` with `config`; `tracker` must be over the same engine.
    pub fn new(
        engine: Arc<Engine>,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
        tracker: Arc<UsageTracker>,
    ) -> AppState {
        let permits = (config.max_in_flight_write_bytes / 1024).max(1);
        AppState {
            metrics: Metrics::new(engine.clone()),
            engine,
            config,
            clock,
            write_budget: Arc::new(Semaphore::new(permits)),
            tracker,
        }
    }
}

/// Every route, behind the authentication layer.
pub fn router(state: Arc<AppState>) -> Router {
    let timeout = state.config.request_timeout;
    Router::new()
        .route("/write", post(write::write))
        .route("/api/v2/write", post(write::write))
        .route("/api/v1/events", post(events::post_events))
        .route("/query", get(query::query_get).post(query::query_post))
        .route("/ping", get(ops::ping).head(ops::ping))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route(
            "/api/v1/tenants/{tenant}",
            axum::routing::delete(deletion::delete_tenant),
        )
        .nest("/api/v1/tenants/{tenant}", usage_routes(state.clone()))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        // One span per request with method, path, status and latency: `METERDB_LOG=tower_http=debug`.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .with_state(state)
}

/// The usage API's routes, relative to `/api/v1/tenants/{tenant}` (see [`usage`]), each
/// timed into `meterdb_usage_request_duration_seconds`.
fn usage_routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/usage", get(usage::usage))
        .route("/metrics", get(usage::metrics))
        .route("/meters", get(usage::list_meters).post(usage::create_meter))
        .route(
            "/meters/{name}",
            get(usage::get_meter).delete(usage::delete_meter),
        )
        .route("/limits", get(usage::list_limits).post(usage::create_limit))
        .route("/limits/check", get(usage::check_limit))
        .route("/users/{user}/export", get(export::export))
        .route(
            "/users/{user}",
            axum::routing::delete(deletion::delete_user),
        )
        .route(
            "/limits/{id}",
            get(usage::get_limit)
                .put(usage::update_limit)
                .delete(usage::delete_limit),
        )
        .route(
            "/retention",
            get(retention::get_retention)
                .put(retention::put_retention)
                .delete(retention::delete_retention),
        )
        .route_layer(axum::middleware::from_fn_with_state(state, usage::timed))
}

/// Serves `state` on `listener` until `shutdown` completes, then stops accepting, lets the
/// requests in flight finish (for at most `grace`), and returns. Connections are cut off by
/// the header-read timeout and capped in number ([`conn`]). Flushing and closing the engine
/// is the caller's, once this returns.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let limits = conn::Limits::of(&state.config);
    let app = router(state);
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let server = conn::run(listener, app, limits, async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stopped_tx.send(());
    });
    let server = tokio::spawn(server);
    // Once shutdown begins, in-flight requests get `grace` to finish.
    let _ = stopped_rx.await;
    match tokio::time::timeout(grace, server).await {
        Ok(joined) => joined.map_err(std::io::Error::other),
        Err(_) => {
            tracing::warn!(
                ?grace,
                "requests still in flight after the grace period; stopping"
            );
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
