//! Numeric field columns (f64, i64, u64) of a row group.
//!
//! Each block is the smallest of: pco (any size, wins on large blocks), plain varints (i64
//! zigzag, u64), and for f64 raw 8-byte values or, when every value is an exact decimal with
//! at most [`MAX_DECIMAL_SCALE`] digits after the point, the integers value × 10^scale as
//! zigzag varints or pco. Rows without the value are left out, behind a presence bitmap
//! (see [`super::encode_optional`]).
//!
//! **Invariant:** round trips are bit-exact (NaN payloads, -0.0 and infinities included):
//! the decimal forms are used only when `k / 10^scale` gives back the very same bits.

use super::{
    Encoded, decode_optional_into, enc, encode_optional, for_pack_i64, for_pack_u64,
    for_unpack_i64, for_unpack_u64, invalid, pco_compress, pco_decompress, read_varints, smallest,
    unzigzag, zigzag,
};
use crate::codec::{ByteReader, PutLe};
use crate::error::CorruptionKind;

/// Most digits after the decimal point the decimal forms try (6: micro-units; more rarely
/// pays off and 10^scale must stay exact in f64).
pub(crate) const MAX_DECIMAL_SCALE: u8 = 6;

/// Largest |k| of the decimal forms: every integer up to 2^53 is exact in f64.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

fn varints(values: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        out.put_varint(v);
    }
    out
}

fn pick(mut candidates: Vec<Encoded>, pco: Option<Vec<u8>>) -> Encoded {
    if let Some(bytes) = pco {
        candidates.push(Encoded::new(enc::PCO, bytes));
    }
    smallest(candidates).unwrap_or_else(|| Encoded::new(enc::VARINT, Vec::new()))
}

/// Encodes an i64 column.
pub(crate) fn encode_i64(values: &[Option<i64>]) -> Encoded {
    encode_optional(values, |dense| {
        let plain = varints(dense.iter().map(|&v| zigzag(v)));
        let packed = Encoded::new(enc::FOR_BITPACK, for_pack_i64(dense));
        pick(
            vec![Encoded::new(enc::VARINT, plain), packed],
            pco_compress(dense),
        )
    })
}

/// Encodes a u64 column.
pub(crate) fn encode_u64(values: &[Option<u64>]) -> Encoded {
    encode_optional(values, |dense| {
        let plain = varints(dense.iter().copied());
        let packed = Encoded::new(enc::FOR_BITPACK, for_pack_u64(dense));
        pick(
            vec![Encoded::new(enc::VARINT, plain), packed],
            pco_compress(dense),
        )
    })
}

/// The smallest scale at which every value is an exact decimal, with the integers.
fn as_decimals(values: &[f64]) -> Option<(u8, Vec<i64>)> {
    (0..=MAX_DECIMAL_SCALE).find_map(|scale| {
        let factor = 10f64.powi(i32::from(scale));
        values
            .iter()
            .map(|&v| {
                let k = (v * factor).round();
                // Rebuild from the integer, as the decoder will: this refuses -0.0 and NaN.
                let exact = k.abs() <= MAX_EXACT_INT
                    && ((k as i64) as f64 / factor).to_bits() == v.to_bits();
                exact.then_some(k as i64)
            })
            .collect::<Option<Vec<i64>>>()
            .map(|ks| (scale, ks))
    })
}

/// Encodes an f64 column.
pub(crate) fn encode_f64(values: &[Option<f64>]) -> Encoded {
    encode_optional(values, |dense| {
        let mut raw = Vec::with_capacity(dense.len() * 8);
        for v in dense {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let mut candidates = vec![Encoded::new(enc::F64_RAW, raw)];
        let decimals = as_decimals(dense);
        let is_decimal = decimals.is_some();
        if let Some((scale, ks)) = decimals {
            let mut plain = vec![scale];
            plain.extend(varints(ks.iter().map(|&k| zigzag(k))));
            candidates.push(Encoded::new(enc::F64_DECIMAL, plain));
            let mut packed = vec![scale];
            packed.extend(for_pack_i64(&ks));
            candidates.push(Encoded::new(enc::F64_DECIMAL_FOR, packed));
            if let Some(p) = pco_compress(&ks) {
                let mut bytes = vec![scale];
                bytes.extend(p);
                candidates.push(Encoded::new(enc::F64_DECIMAL_PCO, bytes));
            }
        }
        // Decimal floats compress better as integers; pco on their float bits only costs time.
        pick(
            candidates,
            if is_decimal {
                None
            } else {
                pco_compress(dense)
            },
        )
    })
}

fn unknown(codec: u8) -> CorruptionKind {
    invalid(format!("unknown numeric encoding {codec}"))
}

/// Decodes an i64 column of `n_rows` rows, appending to `out`.
pub(crate) fn decode_i64_into(
    out: &mut Vec<Option<i64>>,
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
) -> Result<(), CorruptionKind> {
    decode_optional_into(
        out,
        encoding,
        payload,
        n_rows,
        |codec, bytes, n| match codec {
            enc::VARINT => Ok(read_varints(bytes, n)?.into_iter().map(unzigzag).collect()),
            enc::FOR_BITPACK => for_unpack_i64(bytes, n),
            enc::PCO => pco_decompress(bytes, n),
            other => Err(unknown(other)),
        },
    )
}

/// Decodes a u64 column of `n_rows` rows, appending to `out`.
pub(crate) fn decode_u64_into(
    out: &mut Vec<Option<u64>>,
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
) -> Result<(), CorruptionKind> {
    decode_optional_into(
        out,
        encoding,
        payload,
        n_rows,
        |codec, bytes, n| match codec {
            enc::VARINT => read_varints(bytes, n),
            enc::FOR_BITPACK => for_unpack_u64(bytes, n),
            enc::PCO => pco_decompress(bytes, n),
            other => Err(unknown(other)),
        },
    )
}

fn decimals_to_f64(scale: u8, ks: Vec<i64>) -> Result<Vec<f64>, CorruptionKind> {
    if scale > MAX_DECIMAL_SCALE {
        return Err(invalid(format!("decimal scale {scale} is out of range")));
    }
    let factor = 10f64.powi(i32::from(scale));
    Ok(ks.into_iter().map(|k| k as f64 / factor).collect())
}

/// Decodes an f64 column of `n_rows` rows, appending to `out`.
pub(crate) fn decode_f64_into(
    out: &mut Vec<Option<f64>>,
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
) -> Result<(), CorruptionKind> {
    decode_optional_into(
        out,
        encoding,
        payload,
        n_rows,
        |codec, bytes, n| match codec {
            enc::F64_RAW => {
                if Some(bytes.len()) != n.checked_mul(8) {
                    return Err(CorruptionKind::Truncated);
                }
                let mut r = ByteReader::new(bytes);
                (0..n).map(|_| r.u64().map(f64::from_bits)).collect()
            }
            enc::PCO => pco_decompress(bytes, n),
            enc::F64_DECIMAL | enc::F64_DECIMAL_PCO | enc::F64_DECIMAL_FOR => {
                let (&scale, rest) = bytes.split_first().ok_or(CorruptionKind::Truncated)?;
                let ks = match codec {
                    enc::F64_DECIMAL => read_varints(rest, n)?.into_iter().map(unzigzag).collect(),
                    enc::F64_DECIMAL_FOR => for_unpack_i64(rest, n)?,
                    _ => pco_decompress(rest, n)?,
                };
                decimals_to_f64(scale, ks)
            }
            other => Err(unknown(other)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of the appending decoders.
    type Decoder<T> = fn(&mut Vec<Option<T>>, u8, &[u8], usize) -> Result<(), CorruptionKind>;

    /// A whole column, through one of the appending decoders.
    fn whole<T>(
        decode: Decoder<T>,
        e: &Encoded,
        n: usize,
    ) -> Result<Vec<Option<T>>, CorruptionKind> {
        let mut out = Vec::new();
        decode(&mut out, e.enc, &e.bytes, n)?;
        Ok(out)
    }

    fn bits(v: &[Option<f64>]) -> Vec<Option<u64>> {
        v.iter().map(|x| x.map(f64::to_bits)).collect()
    }

    #[test]
    fn two_decimal_floats_use_a_decimal_form() {
        let v: Vec<Option<f64>> = [144.15, 3.01, 218.75, 0.5].map(Some).to_vec();
        let e = encode_f64(&v);
        assert!(
            matches!(e.enc, enc::F64_DECIMAL | enc::F64_DECIMAL_FOR),
            "{}",
            e.enc
        );
        assert_eq!(e.bytes.first(), Some(&2));
        assert_eq!(whole(decode_f64_into, &e, 4).ok(), Some(v));
    }

    #[test]
    fn special_floats_round_trip_by_bits() {
        let v = vec![
            Some(f64::NAN),
            None,
            Some(-0.0),
            Some(f64::INFINITY),
            Some(f64::from_bits(0x7ff8_0000_dead_beef)),
        ];
        let e = encode_f64(&v);
        assert_eq!(e.enc, enc::F64_RAW | enc::PRESENCE);
        let back = whole(decode_f64_into, &e, v.len()).unwrap_or_default();
        assert_eq!(bits(&back), bits(&v));
    }

    #[test]
    fn integers_round_trip_with_missing_rows() {
        let v = vec![Some(i64::MIN), None, Some(0), Some(i64::MAX), None];
        let e = encode_i64(&v);
        assert_eq!(whole(decode_i64_into, &e, 5).ok(), Some(v));
        let u = vec![None, Some(u64::MAX), Some(7)];
        let e = encode_u64(&u);
        assert_eq!(whole(decode_u64_into, &e, 3).ok(), Some(u));
        let none: Vec<Option<u64>> = vec![None; 4];
        let e = encode_u64(&none);
        assert_eq!((e.enc, e.bytes.len()), (enc::ABSENT, 0));
        assert_eq!(whole(decode_u64_into, &e, 4).ok(), Some(none));
    }

    #[test]
    fn large_blocks_use_pco() {
        // Geometrically distributed values: about 2 bits of entropy each, where a
        // fixed-width packing needs 6; pco's entropy coding wins.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let v: Vec<Option<i64>> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Some(i64::from(x.trailing_zeros()))
            })
            .collect();
        let e = encode_i64(&v);
        assert_eq!(e.enc, enc::PCO);
        assert_eq!(whole(decode_i64_into, &e, 4000).ok(), Some(v));
    }
}
