//! The accept loop: one HTTP/1 connection per task, with the limits that keep hostile or
//! broken clients from holding the server's memory and file descriptors.
//!
//! - **Header-read timeout** ([`ServerConfig::header_timeout`]): a connection that has not
//!   sent a complete request head within it (after opening, or after its previous response)
//!   is closed. This cuts off slowloris clients that trickle header bytes, and idle sockets
//!   that never send anything. A slow *body* is the request timeout's: bodies are read inside
//!   the handlers, under the router's `TimeoutLayer`.
//! - **Request-head size**: at most [`MAX_HEAD_BYTES`] of request line and headers are
//!   buffered; beyond it the client gets 431 (or 414 for a long URL) and the connection is
//!   closed.
//! - **Connection cap** ([`ServerConfig::max_connections`]): a connection accepted beyond it
//!   is answered 503 with `Retry-After` and closed at once, so thousands of idle sockets cost
//!   neither memory nor tasks.
//!
//! `axum::serve` offers none of these (it runs hyper without a timer), so connections are
//! served here with hyper's HTTP/1 connection builder, the way `axum::serve` does it
//! otherwise: the router is the service of every connection, and on shutdown the listener is
//! dropped and each connection finishes its request in flight, then closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::ServerConfig;

/// Most bytes of request line and headers buffered for one request (hyper's smallest read
/// buffer is 8 KiB; its default of about 400 KiB would let each of `max_connections`
/// slowloris clients pin that much).
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// What the accept loop enforces, from [`ServerConfig`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// See [`ServerConfig::header_timeout`].
    pub header_timeout: Duration,
    /// See [`ServerConfig::max_connections`].
    pub max_connections: usize,
}

impl Limits {
    /// The limits of `config`.
    pub fn of(config: &ServerConfig) -> Limits {
        Limits {
            header_timeout: config.header_timeout,
            max_connections: config.max_connections.max(1),
        }
    }
}

/// Serves `app` on `listener` until `signal` completes; then stops accepting and returns
/// once every connection has finished its request in flight and closed.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    // `signal_rx` is dropped when the signal fires: connections watch `signal_tx.closed()`.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        signal.await;
        drop(signal_rx);
    });
    // Every connection task holds a `close_rx`; `close_tx.closed()` waits for them all.
    let (close_tx, close_rx) = watch::channel(());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = signal_tx.closed() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream, limits.max_connections);
            continue;
        };
        // Small answers (a 204, a limit check) go out at once instead of waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut signal = std::pin::pin!(signal_tx.closed());
            let mut draining = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut signal, if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
            drop(slot);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// After a failed `accept`: errors of one connection (reset before it was accepted) are
/// skipped; others (out of file descriptors) are logged and retried after a pause, rather
/// than spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Answers a connection over the cap with 503 and closes it. The answer is written without
/// waiting (it fits any socket buffer); if it cannot be written now, the client sees the
/// connection closed instead.
fn refuse(stream: &TcpStream, max_connections: usize) {
    tracing::debug!(max_connections, "connection refused: too many open");
    let body = format!(
        "{{\"code\":\"unavailable\",\"message\":\"too many connections (max_connections = \
         {max_connections}); retry later\",\"error\":\"too many connections \
         (max_connections = {max_connections}); retry later\"}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}
