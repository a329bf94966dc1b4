//! Boolean field columns of a row group: one bit per present row ([`enc::BITMAP`]), behind a
//! presence bitmap when some rows lack the value.

use super::{Encoded, decode_optional, enc, encode_optional, invalid, pack_bits, unpack_bits};
use crate::error::CorruptionKind;

/// Encodes a bool column.
pub(crate) fn encode(values: &[Option<bool>]) -> Encoded {
    encode_optional(values, |dense| {
        Encoded::new(enc::BITMAP, pack_bits(dense.iter().copied()))
    })
}

/// Decodes a bool column of `n_rows` rows.
pub(crate) fn decode(
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
) -> Result<Vec<Option<bool>>, CorruptionKind> {
    decode_optional(encoding, payload, n_rows, |codec, bytes, n| match codec {
        enc::BITMAP => unpack_bits(bytes, n),
        other => Err(invalid(format!("unknown bool encoding {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_round_trip() {
        let v = vec![Some(true), None, Some(false), Some(true)];
        let e = encode(&v);
        assert_eq!(e.enc, enc::BITMAP | enc::PRESENCE);
        assert_eq!(e.bytes, vec![0b1101, 0b101]);
        assert_eq!(decode(e.enc, &e.bytes, 4).ok(), Some(v));
    }
}
