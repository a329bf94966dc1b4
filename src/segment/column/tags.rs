//! Tag columns: per table and tag key, the sorted dictionary of the values that occur and,
//! per value, the postings (the rows that have it, as a roaring bitmap). There is no per-row
//! id column: a reader that projects the tag derives the ids from the postings, and a
//! predicate is answered from the dictionary and postings alone.
//!
//! Plain layout ([`enc::TAG_PLAIN`]): the value count, the values front-coded against their
//! predecessor, then one postings list per value, each the smallest of three forms (sorted
//! row deltas as varints, roaring's portable serialization, or a plain bitmap over the
//! table's rows). [`enc::TAG_ZSTD`] wraps that in one zstd frame when smaller.
//!
//! **Invariants:** the dictionary is strictly ascending and holds only values some row has;
//! postings are non-empty, within the table's rows, and pairwise disjoint (a row has at most
//! one value per key); rows without the tag are in no postings.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use super::{Encoded, enc, invalid, pack_bits, smallest, unpack_bits, zstd_unwrap, zstd_wrap};
use crate::codec::{ByteReader, PutLe};
use crate::error::CorruptionKind;
use crate::model::limits::MAX_TAG_VALUE_LEN;
use crate::scan::{NO_TAG, TagPredicate};

/// Forms of one postings list, the low bits of its header varint.
mod postings_kind {
    /// Varints: the first row, then each following row minus its predecessor minus one.
    pub const DELTAS: u64 = 0;
    /// roaring's portable serialization (`RoaringBitmap::serialize_into`).
    pub const ROARING: u64 = 1;
    /// A bitmap of the table's rows, LSB first, ceil(rows / 8) bytes.
    pub const DENSE: u64 = 2;
    /// Bits of the header varint that hold the kind.
    pub const BITS: u32 = 2;
}

/// A decoded tag column of a table.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TagIndex {
    /// Distinct values, ascending.
    pub dict: Vec<String>,
    /// Rows per value, parallel to `dict`.
    pub postings: Vec<RoaringBitmap>,
}

impl TagIndex {
    /// The dictionary index of every row, [`NO_TAG`] where the row lacks the tag.
    pub fn ids(&self, n_rows: usize) -> Vec<u32> {
        let mut ids = vec![NO_TAG; n_rows];
        for (value_idx, rows) in self.postings.iter().enumerate() {
            for row in rows {
                if let Some(slot) = ids.get_mut(row as usize) {
                    *slot = value_idx as u32;
                }
            }
        }
        ids
    }

    /// Rows whose value (`""` when they lack the tag) satisfies `pred`.
    pub fn matching(&self, pred: &TagPredicate, n_rows: u32) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for (value, rows) in self.dict.iter().zip(&self.postings) {
            if pred.matches(value) {
                out |= rows;
            }
        }
        if pred.matches("") {
            let mut untagged = RoaringBitmap::new();
            untagged.insert_range(0..n_rows);
            for rows in &self.postings {
                untagged -= rows;
            }
            out |= untagged;
        }
        out
    }
}

/// Encodes the tag values of a table's rows (`None` where a row lacks the tag).
pub(crate) fn encode(values: &[Option<&str>]) -> Encoded {
    let mut by_value: BTreeMap<&str, RoaringBitmap> = BTreeMap::new();
    for (row, v) in values.iter().enumerate() {
        if let Some(v) = v {
            by_value.entry(v).or_default().insert(row as u32);
        }
    }
    let mut plain = Vec::new();
    plain.put_varint(by_value.len() as u64);
    let mut prev: &[u8] = &[];
    for value in by_value.keys() {
        let v = value.as_bytes();
        let shared = prev.iter().zip(v).take_while(|(a, b)| a == b).count();
        let suffix = v.get(shared..).unwrap_or_default();
        plain.put_varint(shared as u64);
        plain.put_varint(suffix.len() as u64);
        plain.extend_from_slice(suffix);
        prev = v;
    }
    for rows in by_value.values() {
        let (kind, bytes) = encode_postings(rows, values.len());
        plain.put_varint(((bytes.len() as u64) << postings_kind::BITS) | kind);
        plain.extend_from_slice(&bytes);
    }
    let zstd = zstd_wrap(&plain).map(|b| Encoded::new(enc::TAG_ZSTD, b));
    smallest(std::iter::once(Encoded::new(enc::TAG_PLAIN, plain)).chain(zstd))
        .unwrap_or_else(|| Encoded::new(enc::TAG_PLAIN, Vec::new()))
}

fn encode_postings(rows: &RoaringBitmap, n_rows: usize) -> (u64, Vec<u8>) {
    let mut deltas = Vec::new();
    let mut prev: Option<u32> = None;
    for row in rows {
        deltas.put_varint(u64::from(prev.map_or(row, |p| row - p - 1)));
        prev = Some(row);
    }
    let mut best = (postings_kind::DELTAS, deltas);
    let dense_len = n_rows.div_ceil(8);
    if dense_len < best.1.len() {
        let bits = pack_bits((0..n_rows).map(|r| rows.contains(r as u32)));
        best = (postings_kind::DENSE, bits);
    }
    if rows.serialized_size() < best.1.len() {
        let mut bytes = Vec::with_capacity(rows.serialized_size());
        if rows.serialize_into(&mut bytes).is_ok() {
            best = (postings_kind::ROARING, bytes);
        }
    }
    best
}

/// Decodes a tag block of a table with `n_rows` rows.
pub(crate) fn decode(
    encoding: u8,
    payload: &[u8],
    n_rows: u32,
) -> Result<TagIndex, CorruptionKind> {
    match encoding {
        enc::TAG_PLAIN => decode_plain(payload, n_rows),
        enc::TAG_ZSTD => {
            // Every value is used by at least one row, so this bounds the plain form.
            let max_raw = (n_rows as usize)
                .saturating_mul(MAX_TAG_VALUE_LEN + 32)
                .saturating_add(16);
            decode_plain(&zstd_unwrap(payload, max_raw)?, n_rows)
        }
        other => Err(invalid(format!("unknown tag encoding {other}"))),
    }
}

fn decode_plain(bytes: &[u8], n_rows: u32) -> Result<TagIndex, CorruptionKind> {
    let mut r = ByteReader::new(bytes);
    let n_values = r.varint()?;
    if n_values > u64::from(n_rows) || n_values > r.remaining() as u64 {
        return Err(invalid(format!(
            "tag dictionary of {n_values} values for {n_rows} rows"
        )));
    }
    let mut dict: Vec<String> = Vec::with_capacity(n_values as usize);
    for _ in 0..n_values {
        let shared = r.varint()? as usize;
        let suffix_len = r.varint()? as usize;
        let prev = dict.last().map(String::as_bytes).unwrap_or_default();
        let prefix = prev
            .get(..shared)
            .ok_or_else(|| invalid("front-coded prefix longer than its predecessor"))?;
        if suffix_len > MAX_TAG_VALUE_LEN {
            return Err(invalid("tag value exceeds the length limit"));
        }
        let mut value = prefix.to_vec();
        value.extend_from_slice(r.take(suffix_len)?);
        let value = String::from_utf8(value).map_err(|_| invalid("tag value is not UTF-8"))?;
        if dict.last().is_some_and(|p| *p >= value) {
            return Err(invalid("tag dictionary is not strictly ascending"));
        }
        dict.push(value);
    }
    let mut postings = Vec::with_capacity(dict.len());
    let mut seen = RoaringBitmap::new();
    for _ in 0..dict.len() {
        let header = r.varint()?;
        let len = usize::try_from(header >> postings_kind::BITS)
            .map_err(|_| CorruptionKind::Truncated)?;
        let rows = decode_postings(
            header & ((1 << postings_kind::BITS) - 1),
            r.take(len)?,
            n_rows,
        )?;
        if rows.is_empty() || rows.max().is_some_and(|m| m >= n_rows) {
            return Err(invalid("postings empty or past the table's rows"));
        }
        if !seen.is_disjoint(&rows) {
            return Err(invalid("a row is in the postings of two values of one tag"));
        }
        seen |= &rows;
        postings.push(rows);
    }
    if !r.is_empty() {
        return Err(invalid("trailing bytes after the postings"));
    }
    Ok(TagIndex { dict, postings })
}

fn decode_postings(kind: u64, bytes: &[u8], n_rows: u32) -> Result<RoaringBitmap, CorruptionKind> {
    match kind {
        postings_kind::DELTAS => {
            let mut r = ByteReader::new(bytes);
            let mut out = RoaringBitmap::new();
            let mut next: u64 = 0;
            while !r.is_empty() {
                let row = next.saturating_add(r.varint()?);
                if row >= u64::from(n_rows) {
                    return Err(invalid("posting past the table's rows"));
                }
                out.insert(row as u32);
                next = row + 1;
            }
            Ok(out)
        }
        postings_kind::DENSE => {
            let bits = unpack_bits(bytes, n_rows as usize)?;
            Ok(bits
                .iter()
                .enumerate()
                .filter(|(_, b)| **b)
                .map(|(i, _)| i as u32)
                .collect())
        }
        postings_kind::ROARING => {
            let rows = RoaringBitmap::deserialize_from(bytes)
                .map_err(|e| invalid(format!("roaring: {e}")))?;
            if rows.serialized_size() != bytes.len() {
                return Err(invalid("roaring postings length mismatch"));
            }
            Ok(rows)
        }
        other => Err(invalid(format!("unknown postings form {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(values: &[Option<&str>]) -> TagIndex {
        let e = encode(values);
        decode(e.enc, &e.bytes, values.len() as u32).unwrap_or_default()
    }

    #[test]
    fn postings_round_trip_and_leave_untagged_rows_out() {
        let values = [Some("b"), None, Some("a"), Some("b"), None, Some("ab")];
        let idx = index(&values);
        assert_eq!(idx.dict, vec!["a", "ab", "b"]);
        let ids = idx.ids(values.len());
        assert_eq!(ids, vec![2, NO_TAG, 0, 2, NO_TAG, 1]);
        let empty = idx.matching(&TagPredicate::eq("k", ""), 6);
        assert_eq!(empty.iter().collect::<Vec<_>>(), vec![1, 4]);
        let not_b = idx.matching(&TagPredicate::not_eq("k", "b"), 6);
        assert_eq!(not_b.iter().collect::<Vec<_>>(), vec![1, 2, 4, 5]);
    }

    #[test]
    fn large_tables_pick_compact_postings() {
        let values: Vec<Option<&str>> = (0..20_000)
            .map(|i| Some(if i % 10 == 0 { "rare" } else { "common" }))
            .collect();
        let e = encode(&values);
        assert!(
            e.bytes.len() < 20_000 / 8 + 2_000 + 100,
            "{}",
            e.bytes.len()
        );
        let idx = decode(e.enc, &e.bytes, 20_000).unwrap_or_default();
        assert_eq!(idx.postings.iter().map(|p| p.len()).sum::<u64>(), 20_000);
    }

    #[test]
    fn overlapping_postings_are_corruption() {
        let mut plain = Vec::new();
        plain.put_varint(2);
        for v in ["a", "b"] {
            plain.put_varint(0);
            plain.put_varint(1);
            plain.extend_from_slice(v.as_bytes());
        }
        for _ in 0..2 {
            plain.put_varint(1 << postings_kind::BITS);
            plain.put_varint(0);
        }
        assert!(decode(enc::TAG_PLAIN, &plain, 1).is_err());
    }
}
