//! The one authentication layer every endpoint sits behind.
//!
//! With no token configured every request passes (a laptop default; bind to loopback). With a
//! token, a request must present it the way InfluxDB clients do: `Authorization: Token <t>`
//! or `Bearer <t>` (2.x clients), HTTP Basic with the token as password, or `?p=<t>` (1.x
//! clients). `/ping` and `/health` stay open for load balancers. Tenant-scoped tokens will
//! extend this layer, not bypass it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::ops::INFLUX_COMPAT_VERSION;

/// Middleware: checks credentials, and stamps InfluxDB's version headers on every answer.
pub async fn require(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let open = matches!(req.uri().path(), "/ping" | "/health");
    let mut resp = match &state.config.auth_token {
        Some(token) if !open && !presented(&req).is_some_and(|t| constant_eq(&t, token)) => {
            ApiError::Unauthorized("authorization failed: missing or wrong token".into())
                .into_response()
        }
        _ => next.run(req).await,
    };
    let h = resp.headers_mut();
    h.insert(
        "x-influxdb-version",
        header::HeaderValue::from_static(INFLUX_COMPAT_VERSION),
    );
    h.insert("x-influxdb-build", header::HeaderValue::from_static("OSS"));
    resp
}

/// The token the request carries, if any.
fn presented(req: &Request) -> Option<String> {
    if let Some(auth) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = auth.split_once(' ')?;
        return match scheme.to_ascii_lowercase().as_str() {
            "token" | "bearer" => Some(rest.trim().to_owned()),
            "basic" => {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .ok()?;
                let text = String::from_utf8(decoded).ok()?;
                text.split_once(':').map(|(_, p)| p.to_owned())
            }
            _ => None,
        };
    }
    let query = req.uri().query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == "p").then_some(v))
}

/// Compares without stopping at the first difference, so that timing does not leak how much
/// of a guess was right.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
