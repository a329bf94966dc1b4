//! String columns of a row group (string fields, and event ids that are not all hex or UUID).
//!
//! [`enc::STR_PLAIN`]: the varint byte length of every present value, then their bytes
//! concatenated; [`enc::STR_ZSTD`]: the same bytes in one zstd frame behind their varint raw
//! length, used when smaller.
//!
//! **Invariant:** every decoded value is valid UTF-8 and no longer than
//! [`limits::MAX_STRING_LEN`](crate::model::limits::MAX_STRING_LEN).

use super::{
    Encoded, decode_optional, enc, encode_optional, invalid, smallest, zstd_candidate, zstd_unwrap,
};
use crate::codec::{ByteReader, PutLe};
use crate::error::CorruptionKind;
use crate::model::limits::MAX_STRING_LEN;
use crate::scan::StrColumn;

/// The plain form of dense strings.
pub(crate) fn encode_plain(dense: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in dense {
        out.put_varint(s.len() as u64);
    }
    for s in dense {
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// The smaller of the plain and the zstd form of dense strings.
pub(crate) fn encode_dense(dense: &[&str]) -> Encoded {
    let plain = encode_plain(dense);
    let zstd = zstd_candidate(&plain).map(|b| Encoded::new(enc::STR_ZSTD, b));
    let plain = Encoded::new(enc::STR_PLAIN, plain);
    smallest(std::iter::once(plain).chain(zstd))
        .unwrap_or_else(|| Encoded::new(enc::STR_PLAIN, Vec::new()))
}

/// Decodes `n` dense strings of either form.
pub(crate) fn decode_dense(
    codec: u8,
    bytes: &[u8],
    n: usize,
) -> Result<Vec<String>, CorruptionKind> {
    let mut out = Vec::with_capacity(n.min(bytes.len()));
    for_each_dense(codec, bytes, n, |s| out.push(s.to_owned()))?;
    Ok(out)
}

/// Calls `f` with each of `n` dense strings of either form, in order, without a copy of each.
pub(crate) fn for_each_dense(
    codec: u8,
    bytes: &[u8],
    n: usize,
    f: impl FnMut(&str),
) -> Result<(), CorruptionKind> {
    match codec {
        enc::STR_PLAIN => for_each_plain(bytes, n, f),
        enc::STR_ZSTD => {
            let raw = zstd_unwrap(bytes, n.saturating_mul(MAX_STRING_LEN + 10))?;
            for_each_plain(&raw, n, f)
        }
        other => Err(invalid(format!("unknown string encoding {other}"))),
    }
}

fn for_each_plain(bytes: &[u8], n: usize, mut f: impl FnMut(&str)) -> Result<(), CorruptionKind> {
    if n > bytes.len() {
        return Err(CorruptionKind::Truncated);
    }
    let mut r = ByteReader::new(bytes);
    let lens = (0..n).map(|_| r.varint()).collect::<Result<Vec<_>, _>>()?;
    for len in lens {
        if len > MAX_STRING_LEN as u64 {
            return Err(invalid(format!("string of {len} bytes exceeds the limit")));
        }
        let b = r.take(len as usize)?;
        f(std::str::from_utf8(b).map_err(|_| invalid("string is not UTF-8"))?);
    }
    if !r.is_empty() {
        return Err(invalid("trailing bytes after the last string"));
    }
    Ok(())
}

/// Encodes an optional string column.
pub(crate) fn encode(values: &StrColumn) -> Encoded {
    let v: Vec<Option<&str>> = values.iter().collect();
    encode_optional(&v, encode_dense)
}

/// Decodes an optional string column of `n_rows` rows.
pub(crate) fn decode(
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
) -> Result<Vec<Option<String>>, CorruptionKind> {
    decode_optional(encoding, payload, n_rows, decode_dense)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_in_both_forms() {
        let col: StrColumn = [Some("a"), None, Some(""), Some("héllo")]
            .into_iter()
            .collect();
        let e = encode(&col);
        assert_eq!(e.enc, enc::STR_PLAIN | enc::PRESENCE);
        let back = decode(e.enc, &e.bytes, 4).unwrap_or_default();
        assert_eq!(
            back,
            vec![
                Some("a".into()),
                None,
                Some(String::new()),
                Some("héllo".into())
            ]
        );

        let long: StrColumn = (0..200).map(|_| Some("the same string")).collect();
        let e = encode(&long);
        assert_eq!(e.enc, enc::STR_ZSTD);
        assert_eq!(
            decode(e.enc, &e.bytes, 200).map(|v| v.len()).ok(),
            Some(200)
        );
    }
}
