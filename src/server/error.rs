//! Every failure a handler can answer, with its status code and JSON body
//! `{"code","message"}` (plus `"error"`, the field InfluxDB 1.x clients read).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One line (or array element) a write refused.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    /// 1-based line number (or array index + 1 for JSON events).
    pub line: usize,
    /// Why.
    pub error: String,
}

/// At most this many rejected lines are listed in a response.
pub const MAX_LISTED: usize = 100;

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 400: some lines were refused (the others are stored).
    Partial {
        /// Lines stored.
        accepted: usize,
        /// Lines refused in all.
        rejected_total: usize,
        /// The first [`MAX_LISTED`] of them.
        rejected: Vec<Rejected>,
    },
    /// 400: the request itself is wrong.
    BadRequest(String),
    /// 401: no or wrong credentials.
    Unauthorized(String),
    /// 404.
    NotFound(String),
    /// 409: the request conflicts with what exists (a meter name already taken).
    Conflict(String),
    /// 413: the body is over the limit.
    TooLarge(usize),
    /// 415: a content encoding other than gzip or identity.
    UnsupportedEncoding(String),
    /// 429: too many writes in flight.
    Busy,
    /// 503: the engine cannot take writes now (read-only after an fsync failure, closing).
    Unavailable(String),
    /// 507: the disk is full.
    DiskFull(String),
    /// 500.
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a [Rejected]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_total: Option<usize>,
}

impl ApiError {
    /// The status, the `code` and the message.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Partial {
                accepted,
                rejected_total,
                rejected,
            } => {
                let first = rejected
                    .first()
                    .map_or(String::new(), |r| format!(": line {}: {}", r.line, r.error));
                (
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!(
                        "partial write: {rejected_total} lines rejected, {accepted} accepted{first}"
                    ),
                )
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "invalid", m.clone()),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not found", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request too large",
                format!(
                    "request body is larger than the limit of {limit} bytes (after decompression)"
                ),
            ),
            ApiError::UnsupportedEncoding(e) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid",
                format!("unsupported Content-Encoding {e:?}: send gzip or identity"),
            ),
            ApiError::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests",
                "too many writes in flight; retry later".to_owned(),
            ),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m.clone()),
            ApiError::DiskFull(m) => (StatusCode::INSUFFICIENT_STORAGE, "disk full", m.clone()),
            ApiError::Internal(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                m.clone(),
            ),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> ApiError {
        use crate::Error;
        match &e {
            _ if e.is_disk_full() => ApiError::DiskFull(e.to_string()),
            Error::Poisoned { .. } | Error::Closed | Error::Stale => {
                ApiError::Unavailable(e.to_string())
            }
            Error::InvalidEvent { .. } | Error::InvalidScan(_) => {
                ApiError::BadRequest(e.to_string())
            }
            Error::BatchTooLarge { .. } => ApiError::BadRequest(e.to_string()),
            Error::InvalidMeter(_) | Error::InvalidLimit(_) | Error::InvalidRetention(_) => {
                ApiError::BadRequest(e.to_string())
            }
            Error::UnknownMeter { .. } | Error::UnknownLimit { .. } => {
                ApiError::NotFound(e.to_string())
            }
            Error::MeterExists { .. } | Error::MeterInUse { .. } => {
                ApiError::Conflict(e.to_string())
            }
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let (accepted, rejected, rejected_total) = match &self {
            ApiError::Partial {
                accepted,
                rejected,
                rejected_total,
            } => (
                Some(*accepted),
                Some(rejected.as_slice()),
                Some(*rejected_total),
            ),
            _ => (None, None, None),
        };
        let body = Body {
            code,
            message: &message,
            error: &message,
            accepted,
            rejected,
            rejected_total,
        };
        let json = serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned());
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], json).into_response();
        if matches!(
            self,
            ApiError::Busy | ApiError::Unavailable(_) | ApiError::DiskFull(_)
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"MeterDB\""),
            );
        }
        resp
    }
}

/// The answer to a path no route serves.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}

/// The answer when a handler panicked: a 500 and a log line, never a dropped connection.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = what, "a request handler panicked");
    ApiError::Internal("internal error; see the server log".to_owned()).into_response()
}
