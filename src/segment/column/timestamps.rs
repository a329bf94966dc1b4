//! The timestamp column of a row group: i64 ns, ascending.
//!
//! The row group's min and max time are in the footer, so the [`enc::VARINT`] and
//! [`enc::BITPACK`] forms store only the gaps between the rows strictly inside (the first row
//! is the min, the last the max), as varints or as fixed-width bit fields (the smaller wins:
//! random gaps of a few seconds in ns need ~34 bits, which varints round up to 40);
//! [`enc::PCO`] stores every value and is checked against the footer's min and max.
//!
//! **Invariant:** decoded timestamps are ascending, start at the footer's min and end at its
//! max; anything else is corruption.

use super::{
    Encoded, bitpack, bitunpack, enc, invalid, pco_compress_with, pco_decompress, read_varints,
    smallest,
};
use crate::codec::PutLe;
use crate::error::CorruptionKind;

/// Encodes ascending timestamps (at least one).
pub(crate) fn encode(ts: &[i64]) -> Encoded {
    let gaps: Vec<u64> = ts
        .windows(2)
        .take(ts.len().saturating_sub(2))
        .filter_map(|w| match w {
            [a, b] => Some(b.wrapping_sub(*a) as u64),
            _ => None,
        })
        .collect();
    let mut varint = Vec::new();
    for &g in &gaps {
        varint.put_varint(g);
    }
    let mut candidates = vec![Encoded::new(enc::VARINT, varint)];
    if !gaps.is_empty() {
        candidates.push(Encoded::new(enc::BITPACK, bitpack(&gaps)));
    }
    if let Some(bytes) = pco_compress_with(ts, pco::DeltaSpec::TryConsecutive(1)) {
        candidates.push(Encoded::new(enc::PCO, bytes));
    }
    smallest(candidates).unwrap_or_else(|| Encoded::new(enc::VARINT, Vec::new()))
}

/// Decodes `n` timestamps of a row group whose footer says `min..=max`.
pub(crate) fn decode(
    encoding: u8,
    payload: &[u8],
    n: usize,
    min: i64,
    max: i64,
) -> Result<Vec<i64>, CorruptionKind> {
    if n == 0 || min > max || (n == 1 && min != max) {
        return Err(invalid("row group time range does not fit its row count"));
    }
    match encoding {
        enc::VARINT | enc::BITPACK => {
            let gaps = if encoding == enc::VARINT {
                read_varints(payload, n.saturating_sub(2))?
            } else {
                bitunpack(payload, n.saturating_sub(2))?
            };
            let mut out = Vec::with_capacity(n);
            out.push(min);
            let mut prev = i128::from(min);
            for gap in gaps {
                prev += i128::from(gap);
                if prev > i128::from(max) {
                    return Err(invalid("timestamps pass the row group's max time"));
                }
                out.push(prev as i64);
            }
            if n > 1 {
                out.push(max);
            }
            Ok(out)
        }
        enc::PCO => {
            let out: Vec<i64> = pco_decompress(payload, n)?;
            let ordered = out.windows(2).all(|w| matches!(w, [a, b] if a <= b));
            if !ordered || out.first() != Some(&min) || out.last() != Some(&max) {
                return Err(invalid(
                    "timestamps disagree with the row group's time range",
                ));
            }
            Ok(out)
        }
        other => Err(invalid(format!("unknown timestamp encoding {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_blocks_store_only_inner_gaps() {
        let ts = [100, 250, 250, 900];
        let e = encode(&ts);
        assert_eq!(e.enc, enc::VARINT);
        assert_eq!(e.bytes, vec![150, 1, 0]);
        assert_eq!(decode(e.enc, &e.bytes, 4, 100, 900).ok(), Some(ts.to_vec()));
        assert!(decode(e.enc, &e.bytes, 4, 100, 200).is_err());
    }

    #[test]
    fn wide_gaps_are_bit_packed() {
        // Gaps just over 2^33 take 34 bits packed but 40 as varints.
        let wide: Vec<i64> = (0..10).map(|i| i * ((1 << 33) + 12_345)).collect();
        let e = encode(&wide);
        assert_eq!(e.enc, enc::BITPACK);
        assert_eq!(e.bytes.len(), 1 + (8 * 34usize).div_ceil(8));
        assert_eq!(decode(e.enc, &e.bytes, 10, 0, wide[9]).ok(), Some(wide));
    }

    #[test]
    fn large_blocks_use_pco() {
        let ts: Vec<i64> = (0..5000)
            .map(|i| 1_700_000_000_000_000_000 + i * 1_000_003)
            .collect();
        let e = encode(&ts);
        assert_eq!(e.enc, enc::PCO);
        let (min, max) = (ts[0], ts[4999]);
        assert_eq!(decode(e.enc, &e.bytes, 5000, min, max).ok(), Some(ts));
    }
}
