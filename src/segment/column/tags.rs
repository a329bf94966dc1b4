//! Tag columns: per table and tag key, the sorted dictionary of the values that occur and,
//! per value, the postings (the rows that have it, as a roaring bitmap). There is no per-row
//! id column: a reader that projects the tag derives the ids from the postings, and a
//! predicate is answered from the dictionary and postings alone.
//!
//! A table's tag chunk holds one section per tag key (schema order), each behind its varint
//! length so that a reader decodes only the keys it needs. A section is: the value count;
//! the dictionary as ascending indexes into the segment's tag value table (footer), the
//! first as is and the others as the gap minus one; the "implied" value (when every row has
//! the key, the postings of one value, the largest, are left out: they are the rows no other
//! value has); then the postings of every other value, each the smallest of three forms
//! (row deltas as varints, roaring's portable serialization, a plain bitmap over the table's
//! rows). [`enc::TAG_ZSTD`] wraps the whole chunk in one zstd frame when that is smaller.
//!
//! **Invariants:** dictionaries are strictly ascending and hold only values some row has;
//! postings are non-empty, within the table's rows, and pairwise disjoint (a row has at most
//! one value per key); rows without the tag are in no postings.

use std::borrow::Cow;
use std::ops::Range;

use roaring::RoaringBitmap;

use super::{
    Encoded, bitmap_len, enc, invalid, pco_compress, pco_decompress, smallest, unpack_bits,
    zstd_candidate, zstd_unwrap,
};
use crate::codec::{ByteReader, PutLe};
use crate::error::CorruptionKind;
use crate::scan::{NO_TAG, StrColumn, TagPredicate};

/// Forms of one postings list, the low bits of its header varint.
mod postings_kind {
    /// Varints: the first row, then each following row minus its predecessor minus one.
    pub const DELTAS: u64 = 0;
    /// roaring's portable serialization (`RoaringBitmap::serialize_into`).
    pub const ROARING: u64 = 1;
    /// A bitmap of the table's rows, LSB first, ceil(rows / 8) bytes.
    pub const DENSE: u64 = 2;
    /// A single row, stored in the header itself in place of the byte length (no payload):
    /// most values of small tables (users, endpoints) occur once.
    pub const SINGLE: u64 = 3;
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
    /// The dictionary index of each of `rows` (ascending), [`NO_TAG`] where the row lacks the
    /// tag. Work and memory follow the selected rows, not the table's size.
    pub fn ids_of(&self, rows: &[u32]) -> Vec<u32> {
        let mut ids = vec![NO_TAG; rows.len()];
        let (Some(&lo), Some(&hi)) = (rows.first(), rows.last()) else {
            return ids;
        };
        let span = (hi - lo) as usize + 1;
        if span <= rows.len().saturating_mul(8) {
            // Most of the span is selected (a whole table, a time range): one array over the
            // span, then a gather, instead of a binary search per posting.
            let mut by_row = vec![NO_TAG; span];
            for (value_idx, postings) in self.postings.iter().enumerate() {
                for row in postings.range(lo..=hi) {
                    if let Some(slot) = by_row.get_mut((row - lo) as usize) {
                        *slot = value_idx as u32;
                    }
                }
            }
            if span == rows.len() {
                return by_row;
            }
            for (slot, &row) in ids.iter_mut().zip(rows) {
                *slot = by_row.get((row - lo) as usize).copied().unwrap_or(NO_TAG);
            }
            return ids;
        }
        for (value_idx, postings) in self.postings.iter().enumerate() {
            for row in postings.range(lo..=hi) {
                if let Ok(i) = rows.binary_search(&row)
                    && let Some(slot) = ids.get_mut(i)
                {
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

/// Encodes a table's tag chunk: per key, each row's index into the segment's tag value
/// table (`None` where the row lacks the key).
pub(crate) fn encode(keys: &[Vec<Option<u32>>], n_rows: usize) -> Encoded {
    let mut plain = Vec::new();
    for rows in keys {
        let section = encode_section(rows, n_rows);
        plain.put_varint(section.len() as u64);
        plain.extend_from_slice(&section);
    }
    let zstd = zstd_candidate(&plain).map(|b| Encoded::new(enc::TAG_ZSTD, b));
    smallest(std::iter::once(Encoded::new(enc::TAG_PLAIN, plain)).chain(zstd))
        .unwrap_or_else(|| Encoded::new(enc::TAG_PLAIN, Vec::new()))
}

fn encode_section(values: &[Option<u32>], n_rows: usize) -> Vec<u8> {
    let postings = Postings::of(values);
    let mut out = Vec::new();
    out.put_varint(postings.values.len() as u64);
    let mut prev: Option<u32> = None;
    for &id in &postings.values {
        out.put_varint(u64::from(prev.map_or(id, |p| id - p - 1)));
        prev = Some(id);
    }
    // The last of the longest lists, when every row has the key.
    let implied = (0..postings.values.len())
        .max_by_key(|&i| postings.list(i).len())
        .filter(|_| values.iter().all(Option::is_some));
    let stored: Vec<&[u32]> = (0..postings.values.len())
        .filter(|&i| Some(i) != implied)
        .map(|i| postings.list(i))
        .collect();
    let mixed = encode_mixed(&stored, n_rows);
    // The dense form's size is known up front; build it only when it can win (it costs
    // time proportional to values × rows).
    let dense =
        (stored.len() * bitmap_len(n_rows) < mixed.len()).then(|| encode_dense(&stored, n_rows));
    let layouts = [
        (layout::MIXED, Some(mixed)),
        (layout::DENSE, dense),
        (layout::PCO, encode_pco(&stored)),
    ];
    let (form, body) = layouts
        .into_iter()
        .filter_map(|(form, body)| Some((form, body?)))
        .min_by_key(|(_, body)| body.len())
        .unwrap_or((layout::MIXED, Vec::new()));
    let implied = implied.map_or(0, |i| i as u64 + 1);
    out.put_varint((implied << layout::BITS) | form);
    out.extend_from_slice(&body);
    out
}

/// A key's postings lists, built by one sort of the (value, row) pairs: a bitmap per value
/// filled row by row cost an allocation per value and a search per row, most of a flush's
/// time in tables of thousands of users.
struct Postings {
    /// The distinct values, ascending.
    values: Vec<u32>,
    /// Where each value's rows start in `rows` (one more entry than `values`).
    starts: Vec<usize>,
    /// Every row that has the key, grouped by value, ascending within a value.
    rows: Vec<u32>,
}

impl Postings {
    fn of(values: &[Option<u32>]) -> Postings {
        let mut pairs: Vec<u64> = values
            .iter()
            .enumerate()
            .filter_map(|(row, v)| Some((u64::from((*v)?) << 32) | row as u64))
            .collect();
        pairs.sort_unstable();
        let mut postings = Postings {
            values: Vec::new(),
            starts: Vec::new(),
            rows: Vec::with_capacity(pairs.len()),
        };
        for (i, pair) in pairs.iter().enumerate() {
            let value = (pair >> 32) as u32;
            if postings.values.last() != Some(&value) {
                postings.values.push(value);
                postings.starts.push(i);
            }
            postings.rows.push(*pair as u32);
        }
        postings.starts.push(pairs.len());
        postings
    }

    /// The rows of the `i`-th value.
    fn list(&self, i: usize) -> &[u32] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&start), Some(&end)) => self.rows.get(start..end).unwrap_or_default(),
            _ => &[],
        }
    }
}

/// Every stored postings list behind a header varint (byte length, form).
fn encode_mixed(stored: &[&[u32]], n_rows: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for rows in stored {
        if let [row] = rows {
            out.put_varint((u64::from(*row) << postings_kind::BITS) | postings_kind::SINGLE);
            continue;
        }
        let (kind, bytes) = encode_postings(rows, n_rows);
        out.put_varint(((bytes.len() as u64) << postings_kind::BITS) | kind);
        out.extend_from_slice(&bytes);
    }
    out
}

/// Every stored postings list as a bitmap of the table's rows; no headers (the length is
/// fixed), which wins for the tiny tables that most of a day's tables are.
fn encode_dense(stored: &[&[u32]], n_rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len() * n_rows.div_ceil(8));
    for rows in stored {
        out.extend(row_bits(rows, n_rows));
    }
    out
}

/// A postings list as a bitmap of `n_rows` bits, set row by row (not by testing every row).
fn row_bits(rows: &[u32], n_rows: usize) -> Vec<u8> {
    let mut bits = vec![0u8; bitmap_len(n_rows)];
    for &row in rows {
        if let Some(byte) = bits.get_mut(row as usize / 8) {
            *byte |= 1 << (row % 8);
        }
    }
    bits
}

/// The lists' lengths and their row deltas (as in [`postings_kind::DELTAS`]), concatenated,
/// as two pco blocks: entropy coding beats byte-aligned varints on the long lists of large
/// tables.
fn encode_pco(stored: &[&[u32]]) -> Option<Vec<u8>> {
    if stored.is_empty() {
        return None;
    }
    let counts: Vec<u32> = stored.iter().map(|p| p.len() as u32).collect();
    let mut gaps: Vec<u32> = Vec::with_capacity(stored.iter().map(|p| p.len()).sum());
    for rows in stored {
        let mut prev: Option<u32> = None;
        for &row in *rows {
            gaps.push(prev.map_or(row, |p| row - p - 1));
            prev = Some(row);
        }
    }
    let counts = pco_compress(&counts)?;
    let mut out = Vec::new();
    out.put_varint(counts.len() as u64);
    out.extend_from_slice(&counts);
    out.extend(pco_compress(&gaps)?);
    Some(out)
}

/// A postings list (ascending rows) in the smallest of the deltas, dense and roaring forms.
fn encode_postings(rows: &[u32], n_rows: usize) -> (u64, Vec<u8>) {
    let mut deltas = Vec::new();
    let mut prev: Option<u32> = None;
    for &row in rows {
        deltas.put_varint(u64::from(prev.map_or(row, |p| row - p - 1)));
        prev = Some(row);
    }
    let mut best = (postings_kind::DELTAS, deltas);
    if n_rows.div_ceil(8) < best.1.len() {
        best = (postings_kind::DENSE, row_bits(rows, n_rows));
    }
    if let Ok(bitmap) = RoaringBitmap::from_sorted_iter(rows.iter().copied())
        && bitmap.serialized_size() < best.1.len()
    {
        let mut bytes = Vec::with_capacity(bitmap.serialized_size());
        if bitmap.serialize_into(&mut bytes).is_ok() {
            best = (postings_kind::ROARING, bytes);
        }
    }
    best
}

/// How a section stores its postings lists, the low bits of its layout varint (the high bits
/// are the implied value + 1, or 0).
mod layout {
    /// Each list behind a header varint: `byte length << 2 | postings_kind`.
    pub const MIXED: u64 = 0;
    /// Each list as a bitmap of ceil(rows / 8) bytes.
    pub const DENSE: u64 = 1;
    /// varint length of a pco block of the lists' lengths (u32), that block, then a pco
    /// block of every list's deltas (u32), concatenated.
    pub const PCO: u64 = 2;
    /// Bits of the layout varint that hold the layout.
    pub const BITS: u32 = 2;
}

/// A table's tag chunk, split into its per-key sections (not yet decoded).
#[derive(Debug, Clone)]
pub(crate) struct TagChunk<'a> {
    bytes: Cow<'a, [u8]>,
    sections: Vec<Range<usize>>,
}

impl<'a> TagChunk<'a> {
    /// Splits a tag chunk of `n_keys` sections (unwrapping zstd first).
    pub fn split(
        encoding: u8,
        payload: &'a [u8],
        n_keys: usize,
        n_rows: u32,
    ) -> Result<TagChunk<'a>, CorruptionKind> {
        let bytes = match encoding {
            enc::TAG_PLAIN => Cow::Borrowed(payload),
            enc::TAG_ZSTD => {
                // Per key: a section length, a value count, an implied index (<= 10 bytes
                // each), and per value (at most one per row) an index of <= 5 bytes and
                // postings that never take more than 5 bytes per row plus a header.
                let per_key = (n_rows as usize).saturating_mul(20).saturating_add(64);
                Cow::Owned(zstd_unwrap(payload, per_key.saturating_mul(n_keys.max(1)))?)
            }
            other => return Err(invalid(format!("unknown tag encoding {other}"))),
        };
        let mut r = ByteReader::new(&bytes);
        let mut sections = Vec::with_capacity(n_keys.min(bytes.len()));
        for _ in 0..n_keys {
            let len = usize::try_from(r.varint()?).map_err(|_| CorruptionKind::Truncated)?;
            let start = r.position();
            r.take(len)?;
            sections.push(start..start + len);
        }
        if !r.is_empty() {
            return Err(invalid("trailing bytes after the last tag section"));
        }
        Ok(TagChunk { bytes, sections })
    }

    fn section(&self, key_idx: usize) -> Result<&[u8], CorruptionKind> {
        self.sections
            .get(key_idx)
            .and_then(|r| self.bytes.get(r.clone()))
            .ok_or_else(|| invalid(format!("no tag section {key_idx}")))
    }

    /// Decodes the dictionary and postings of key `key_idx`.
    pub fn decode_key(
        &self,
        key_idx: usize,
        values: &StrColumn,
        n_rows: u32,
    ) -> Result<TagIndex, CorruptionKind> {
        let section = self.section(key_idx)?;
        decode_section(section, values, n_rows)
    }

    /// Decodes the dictionary of key `key_idx` and each row's index into it, without
    /// building its postings.
    pub fn decode_ids(
        &self,
        key_idx: usize,
        values: &StrColumn,
        n_rows: u32,
    ) -> Result<(Vec<String>, Vec<u32>), CorruptionKind> {
        decode_section_ids(self.section(key_idx)?, values, n_rows)
    }

    /// Decodes only the dictionary of key `key_idx` (its values, ascending), not its
    /// postings: what the catalog needs.
    pub fn decode_dict(
        &self,
        key_idx: usize,
        values: &StrColumn,
        n_rows: u32,
    ) -> Result<Vec<String>, CorruptionKind> {
        decode_dict(&mut ByteReader::new(self.section(key_idx)?), values, n_rows)
    }
}

/// Reads a section's dictionary: the value count and the indexes into the segment's tag
/// value table.
fn decode_dict(
    r: &mut ByteReader<'_>,
    values: &StrColumn,
    n_rows: u32,
) -> Result<Vec<String>, CorruptionKind> {
    let n_values = r.varint()?;
    if n_values > u64::from(n_rows) || n_values > r.remaining() as u64 {
        return Err(invalid(format!(
            "tag dictionary of {n_values} values for {n_rows} rows"
        )));
    }
    let mut dict: Vec<String> = Vec::with_capacity(n_values as usize);
    let mut next: u64 = 0;
    for _ in 0..n_values {
        let id = next.saturating_add(r.varint()?);
        let value = usize::try_from(id).ok().and_then(|i| values.get(i));
        dict.push(
            value
                .ok_or_else(|| invalid(format!("tag value index {id} out of range")))?
                .to_owned(),
        );
        next = id + 1;
    }
    Ok(dict)
}

/// A section with its dictionary read, its postings not yet decoded.
struct Section<'b> {
    dict: Vec<String>,
    /// The value whose postings are left out (every row not in another value's).
    implied: Option<usize>,
    layout: u64,
    body: &'b [u8],
    n_rows: u32,
}

impl<'b> Section<'b> {
    fn parse(
        bytes: &'b [u8],
        values: &StrColumn,
        n_rows: u32,
    ) -> Result<Section<'b>, CorruptionKind> {
        let mut r = ByteReader::new(bytes);
        let dict = decode_dict(&mut r, values, n_rows)?;
        let layout_word = r.varint()?;
        let implied = layout_word >> layout::BITS;
        if implied > dict.len() as u64 {
            return Err(invalid("implied tag value out of range"));
        }
        Ok(Section {
            dict,
            implied: implied.checked_sub(1).map(|i| i as usize),
            layout: layout_word & ((1 << layout::BITS) - 1),
            body: r.take(r.remaining())?,
            n_rows,
        })
    }

    /// Calls `f(value index, rows)` for each value with stored postings, in dictionary order;
    /// rows strictly ascend and lie inside the table, and every stored list is there.
    fn for_each_list(
        &self,
        mut f: impl FnMut(usize, &[u32]) -> Result<(), CorruptionKind>,
    ) -> Result<(), CorruptionKind> {
        let n_stored = self.dict.len() - usize::from(self.implied.is_some());
        let mut seen = 0;
        let mut g = |rows: &[u32]| {
            if rows.is_empty() {
                return Err(invalid("empty postings"));
            }
            let value = seen + usize::from(self.implied.is_some_and(|i| i <= seen));
            seen += 1;
            f(value, rows)
        };
        match self.layout {
            layout::MIXED => decode_mixed(self.body, n_stored, self.n_rows, &mut g)?,
            layout::DENSE => {
                let width = (self.n_rows as usize).div_ceil(8);
                if Some(self.body.len()) != width.checked_mul(n_stored) {
                    return Err(invalid("dense postings have the wrong length"));
                }
                let mut rows = Vec::new();
                for bits in self.body.chunks(width.max(1)).take(n_stored) {
                    decode_postings(postings_kind::DENSE, bits, self.n_rows, &mut rows)?;
                    g(&rows)?;
                }
            }
            layout::PCO => decode_pco(self.body, n_stored, self.n_rows, &mut g)?,
            other => return Err(invalid(format!("unknown postings layout {other}"))),
        }
        if seen != n_stored {
            return Err(invalid("missing postings"));
        }
        Ok(())
    }
}

fn decode_section(
    bytes: &[u8],
    values: &StrColumn,
    n_rows: u32,
) -> Result<TagIndex, CorruptionKind> {
    let section = Section::parse(bytes, values, n_rows)?;
    let mut postings = vec![RoaringBitmap::new(); section.dict.len()];
    let mut seen = RoaringBitmap::new();
    let mut total = 0;
    section.for_each_list(|value, rows| {
        let rows = ascending(rows)?;
        total += rows.len();
        seen |= &rows;
        if let Some(slot) = postings.get_mut(value) {
            *slot = rows;
        }
        Ok(())
    })?;
    // Checked once on the union: a check per value against the union so far costs a pass
    // over the union per value.
    if seen.len() != total {
        return Err(invalid("a row is in the postings of two values of one tag"));
    }
    if let Some(slot) = section.implied.and_then(|i| postings.get_mut(i)) {
        let mut rest = RoaringBitmap::new();
        rest.insert_range(0..n_rows);
        rest -= &seen;
        if rest.is_empty() {
            return Err(invalid("implied tag value has no rows"));
        }
        *slot = rest;
    }
    Ok(TagIndex {
        dict: section.dict,
        postings,
    })
}

/// The dictionary and each row's index into it ([`NO_TAG`] where the row lacks the tag),
/// straight from the postings without building them: what projecting a tag needs.
fn decode_section_ids(
    bytes: &[u8],
    values: &StrColumn,
    n_rows: u32,
) -> Result<(Vec<String>, Vec<u32>), CorruptionKind> {
    let section = Section::parse(bytes, values, n_rows)?;
    let mut ids = vec![NO_TAG; n_rows as usize];
    section.for_each_list(|value, rows| {
        for &row in rows {
            let slot = ids
                .get_mut(row as usize)
                .ok_or_else(|| invalid("posting past the table's rows"))?;
            if *slot != NO_TAG {
                return Err(invalid("a row is in the postings of two values of one tag"));
            }
            *slot = value as u32;
        }
        Ok(())
    })?;
    if let Some(implied) = section.implied {
        let mut any = false;
        for slot in ids.iter_mut().filter(|s| **s == NO_TAG) {
            *slot = implied as u32;
            any = true;
        }
        if !any {
            return Err(invalid("implied tag value has no rows"));
        }
    }
    Ok((section.dict, ids))
}

fn decode_mixed(
    body: &[u8],
    n_stored: usize,
    n_rows: u32,
    f: &mut impl FnMut(&[u32]) -> Result<(), CorruptionKind>,
) -> Result<(), CorruptionKind> {
    let mut r = ByteReader::new(body);
    let mut rows = Vec::new();
    for _ in 0..n_stored {
        let header = r.varint()?;
        if header & ((1 << postings_kind::BITS) - 1) == postings_kind::SINGLE {
            let row = header >> postings_kind::BITS;
            if row >= u64::from(n_rows) {
                return Err(invalid("posting past the table's rows"));
            }
            f(&[row as u32])?;
            continue;
        }
        let len = usize::try_from(header >> postings_kind::BITS)
            .map_err(|_| CorruptionKind::Truncated)?;
        decode_postings(
            header & ((1 << postings_kind::BITS) - 1),
            r.take(len)?,
            n_rows,
            &mut rows,
        )?;
        f(&rows)?;
    }
    if !r.is_empty() {
        return Err(invalid("trailing bytes after the postings"));
    }
    Ok(())
}

fn decode_pco(
    body: &[u8],
    n_stored: usize,
    n_rows: u32,
    f: &mut impl FnMut(&[u32]) -> Result<(), CorruptionKind>,
) -> Result<(), CorruptionKind> {
    let mut r = ByteReader::new(body);
    let counts_len = usize::try_from(r.varint()?).map_err(|_| CorruptionKind::Truncated)?;
    let counts: Vec<u32> = pco_decompress(r.take(counts_len)?, n_stored)?;
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total > u64::from(n_rows) {
        return Err(invalid("postings hold more rows than the table"));
    }
    // The gaps become rows in place: each list's rows are a prefix sum of its gaps.
    let mut rows: Vec<u32> = pco_decompress(r.take(r.remaining())?, total as usize)?;
    let mut at = 0;
    for count in counts {
        let list = rows
            .get_mut(at..at + count as usize)
            .ok_or_else(|| invalid("postings hold more rows than the table"))?;
        let mut next: u64 = 0;
        for slot in list.iter_mut() {
            let row = next + u64::from(*slot);
            if row >= u64::from(n_rows) {
                return Err(invalid("posting past the table's rows"));
            }
            *slot = row as u32;
            next = row + 1;
        }
        f(list)?;
        at += count as usize;
    }
    Ok(())
}

/// The bitmap of `rows`, which ascend strictly (each gap or delta counts from the row after
/// the last): built by appending, without the search per row that inserting does.
fn ascending(rows: &[u32]) -> Result<RoaringBitmap, CorruptionKind> {
    RoaringBitmap::from_sorted_iter(rows.iter().copied())
        .map_err(|_| invalid("postings out of order"))
}

/// Decodes one postings list into `rows` (cleared first), ascending.
fn decode_postings(
    kind: u64,
    bytes: &[u8],
    n_rows: u32,
    rows: &mut Vec<u32>,
) -> Result<(), CorruptionKind> {
    rows.clear();
    match kind {
        postings_kind::DELTAS => {
            let mut r = ByteReader::new(bytes);
            let mut next: u64 = 0;
            while !r.is_empty() {
                let row = next.saturating_add(r.varint()?);
                if row >= u64::from(n_rows) {
                    return Err(invalid("posting past the table's rows"));
                }
                rows.push(row as u32);
                next = row + 1;
            }
        }
        postings_kind::DENSE => {
            let bits = unpack_bits(bytes, n_rows as usize)?;
            rows.extend(
                bits.iter()
                    .enumerate()
                    .filter(|(_, b)| **b)
                    .map(|(i, _)| i as u32),
            );
        }
        postings_kind::ROARING => {
            let bitmap = RoaringBitmap::deserialize_from(bytes)
                .map_err(|e| invalid(format!("roaring: {e}")))?;
            if bitmap.serialized_size() != bytes.len() {
                return Err(invalid("roaring postings length mismatch"));
            }
            if bitmap.max().is_some_and(|m| m >= n_rows) {
                return Err(invalid("posting past the table's rows"));
            }
            rows.extend(&bitmap);
        }
        other => return Err(invalid(format!("unknown postings form {other}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(keys: &[Vec<Option<u32>>], values: &StrColumn, key: usize) -> TagIndex {
        let n = keys[0].len();
        let e = encode(keys, n);
        let chunk = TagChunk::split(e.enc, &e.bytes, keys.len(), n as u32).unwrap();
        let idx = chunk.decode_key(key, values, n as u32).unwrap();
        // The projection's decoder reads the same postings without building them.
        let all: Vec<u32> = (0..n as u32).collect();
        assert_eq!(
            chunk.decode_ids(key, values, n as u32).unwrap(),
            (idx.dict.clone(), idx.ids_of(&all))
        );
        idx
    }

    fn values(v: &[&str]) -> StrColumn {
        let mut values = StrColumn::new();
        for s in v {
            values.push(Some(s));
        }
        values
    }

    #[test]
    fn postings_round_trip_and_leave_untagged_rows_out() {
        let pool = values(&["a", "ab", "b", "zzz"]);
        let keys = vec![
            vec![Some(2), None, Some(0), Some(2), None, Some(1)],
            vec![Some(3); 6],
        ];
        let idx = index(&keys, &pool, 0);
        assert_eq!(idx.dict, vec!["a", "ab", "b"]);
        assert_eq!(
            idx.ids_of(&[0, 1, 2, 3, 4, 5]),
            vec![2, NO_TAG, 0, 2, NO_TAG, 1]
        );
        assert_eq!(idx.ids_of(&[1, 3]), vec![NO_TAG, 2]);
        let empty = idx.matching(&TagPredicate::eq("k", ""), 6);
        assert_eq!(empty.iter().collect::<Vec<_>>(), vec![1, 4]);
        let not_b = idx.matching(&TagPredicate::not_eq("k", "b"), 6);
        assert_eq!(not_b.iter().collect::<Vec<_>>(), vec![1, 2, 4, 5]);
        let all = index(&keys, &pool, 1);
        assert_eq!(
            (all.dict.clone(), all.ids_of(&[0, 1, 2, 3, 4, 5])),
            (vec!["zzz".to_string()], vec![0; 6])
        );
    }

    #[test]
    fn ids_of_agrees_for_dense_sparse_and_whole_selections() {
        let n = 1_000u32;
        let keys = vec![
            (0..n)
                .map(|i| (i % 7 != 3).then_some(i % 5))
                .collect::<Vec<_>>(),
        ];
        let idx = index(&keys, &values(&["a", "b", "c", "d", "e"]), 0);
        let expected = |rows: &[u32]| -> Vec<u32> {
            rows.iter()
                .map(|&r| keys[0][r as usize].map_or(NO_TAG, |v| v))
                .collect()
        };
        // Every row, every other row (a gather over one array), a few rows far apart (a
        // binary search per posting).
        let whole: Vec<u32> = (0..n).collect();
        let halves: Vec<u32> = (0..n).step_by(2).collect();
        let sparse = [3, 250, 999];
        for rows in [&whole[..], &halves[..], &sparse[..]] {
            assert_eq!(idx.ids_of(rows), expected(rows));
        }
    }

    #[test]
    fn large_tables_pick_compact_postings() {
        let keys = vec![
            (0..20_000)
                .map(|i| Some(u32::from(i % 10 == 0)))
                .collect::<Vec<_>>(),
        ];
        let e = encode(&keys, 20_000);
        assert!(e.bytes.len() < 2_000 + 100, "{}", e.bytes.len());
        let idx = index(&keys, &values(&["common", "rare"]), 0);
        assert_eq!(idx.postings.iter().map(|p| p.len()).sum::<u64>(), 20_000);
        assert_eq!(idx.postings[1].len(), 2_000);
    }

    #[test]
    fn overlapping_postings_are_corruption() {
        let mut section = Vec::new();
        section.put_varint(2);
        section.put_varint(0);
        section.put_varint(0);
        section.put_varint(0);
        for _ in 0..2 {
            section.put_varint(1 << postings_kind::BITS);
            section.put_varint(0);
        }
        let mut chunk = Vec::new();
        chunk.put_varint(section.len() as u64);
        chunk.extend_from_slice(&section);
        let split = TagChunk::split(enc::TAG_PLAIN, &chunk, 1, 1).unwrap();
        assert!(split.decode_key(0, &values(&["a", "b"]), 1).is_err());
        assert!(split.decode_ids(0, &values(&["a", "b"]), 1).is_err());
    }

    #[test]
    fn every_postings_layout_decodes_to_the_rows_ids() {
        let pool = values(
            &(0..300)
                .map(|i| format!("v{i:03}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let tables: Vec<Vec<Option<u32>>> = vec![
            // Tiny, each value on one row or two: mixed postings.
            vec![Some(1), Some(0), Some(1), Some(2)],
            // Few rows, each value on several: the dense layout.
            (0..16u32).map(|i| (i % 4 != 0).then_some(i % 3)).collect(),
            // Many values over many rows, every row tagged (an implied value): pco.
            (0..30_000u32).map(|i| Some((i * 7919) % 300)).collect(),
            // Skewed, with untagged rows.
            (0..5_000u32)
                .map(|i| (i % 11 != 0).then_some(if i % 3 == 0 { i % 250 } else { 7 }))
                .collect(),
        ];
        let mut layouts = Vec::new();
        for keys in tables {
            let n = keys.len();
            let e = encode(std::slice::from_ref(&keys), n);
            let chunk = TagChunk::split(e.enc, &e.bytes, 1, n as u32).unwrap();
            let section = Section::parse(chunk.section(0).unwrap(), &pool, n as u32).unwrap();
            layouts.push(section.layout);
            let idx = index(std::slice::from_ref(&keys), &pool, 0);
            let expected: Vec<u32> = keys
                .iter()
                .map(|v| {
                    v.map_or(NO_TAG, |v| {
                        idx.dict.binary_search(&format!("v{v:03}")).unwrap() as u32
                    })
                })
                .collect();
            let all: Vec<u32> = (0..n as u32).collect();
            assert_eq!(idx.ids_of(&all), expected);
        }
        assert_eq!(
            layouts,
            [layout::MIXED, layout::DENSE, layout::PCO, layout::PCO]
        );
    }
}
