//! Reading a request body: the size limit (before and after gzip decoding, so that a gzip bomb
//! never expands past it) and the in-flight write budget.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use tokio::sync::{OwnedSemaphorePermit, TryAcquireError};

use super::AppState;
use super::error::ApiError;

/// A decoded body and the share of the write budget it holds until dropped.
pub struct Decoded {
    /// The bytes, decompressed.
    pub bytes: Vec<u8>,
    _permits: Vec<OwnedSemaphorePermit>,
}

/// Reads and decodes a write body, holding budget for it. Answers 413 over the limit, 415 for
/// an unknown encoding, 400 for a broken gzip stream and 429 when the budget is spent.
pub async fn read_write_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Decoded, ApiError> {
    let limit = state.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let mut permits = match reserve(state, declared.unwrap_or(limit)) {
        Ok(p) => vec![p],
        Err(e) => {
            drain(body, limit).await;
            return Err(e);
        }
    };
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?;
    let bytes = match encoding(headers)? {
        Encoding::Identity => raw.to_vec(),
        Encoding::Gzip => {
            let decoded = tokio::task::spawn_blocking(move || gunzip(&raw, limit))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??;
            let held = declared.unwrap_or(limit);
            if decoded.len() > held {
                permits.push(reserve(state, decoded.len() - held)?);
            }
            decoded
        }
    };
    Ok(Decoded {
        bytes,
        _permits: permits,
    })
}

/// Reads a small body (a query form, a JSON request) under the body limit.
pub async fn read_small(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    let limit = state.config.max_body_bytes;
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?;
    match encoding(headers)? {
        Encoding::Identity => Ok(raw.to_vec()),
        Encoding::Gzip => gunzip(&raw, limit),
    }
}

/// Reads and discards a body refused before it was read (at most `limit` bytes, a chunk at a
/// time, nothing kept): a client still sending its body when the connection closed would see
/// a reset instead of the answer (429) telling it to retry later.
async fn drain(mut body: Body, limit: usize) {
    use axum::body::HttpBody;
    let mut seen = 0usize;
    while let Some(Ok(frame)) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > limit {
            break;
        }
    }
}

fn reserve(state: &AppState, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
    let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    state
        .write_budget
        .clone()
        .try_acquire_many_owned(kib)
        .map_err(|e| match e {
            TryAcquireError::NoPermits => ApiError::Busy,
            TryAcquireError::Closed => ApiError::Unavailable("the server is shutting down".into()),
        })
}

enum Encoding {
    Identity,
    Gzip,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(Encoding::Identity),
        Some(v) => match v.to_str().map(|s| s.trim().to_ascii_lowercase()) {
            Ok(s) if s.is_empty() || s == "identity" => Ok(Encoding::Identity),
            Ok(s) if s == "gzip" || s == "x-gzip" => Ok(Encoding::Gzip),
            Ok(s) => Err(ApiError::UnsupportedEncoding(s)),
            Err(_) => Err(ApiError::UnsupportedEncoding("<not text>".into())),
        },
    }
}

/// Decompresses at most `limit` bytes; one byte more means the body is too large, however
/// far it would have expanded.
pub fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_round_trip_and_limit() {
        let data = b"api_calls,tenant=a x=1 1\n".repeat(100);
        assert_eq!(gunzip(&gzip(&data), data.len()).unwrap(), data);
        assert!(matches!(
            gunzip(&gzip(&data), data.len() - 1),
            Err(ApiError::TooLarge(_))
        ));
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 1 GiB of zeros compresses to about 1 MiB; decoding must stop right after the limit.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(matches!(gunzip(&bomb, 4 << 20), Err(ApiError::TooLarge(_))));
    }

    #[test]
    fn broken_gzip_is_a_bad_request() {
        let mut g = gzip(b"hello");
        g.truncate(g.len() / 2);
        assert!(matches!(gunzip(&g, 1000), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            gunzip(b"plain", 1000),
            Err(ApiError::BadRequest(_))
        ));
    }
}
