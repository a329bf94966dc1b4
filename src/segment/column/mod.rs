//! Column block encodings: one file per kind of column. Each encoder turns one column of one
//! row group (or, for tags, of one table) into an [`Encoded`] block; each decoder turns the
//! block's bytes back, given the row count recorded in the footer.
//!
//! **Invariants:** decoders never panic and never allocate more than the row count (bounded by
//! the footer) or the block's own length justifies; every failure is a [`CorruptionKind`] that
//! the reader turns into a [`crate::Corruption`] carrying the file and the block's offset.
//! Encoders pick, per block, the smallest of the encodings they know (the choice is the
//! block's encoding id), so tiny blocks never pay pco's fixed overhead.
//!
//! The byte layout of each encoding is documented in storage-format.md, "Segment files",
//! "Column encodings"; the ids are in [`enc`].

pub(crate) mod bools;
pub(crate) mod event_id;
pub(crate) mod numeric;
pub(crate) mod strings;
pub(crate) mod tags;
pub(crate) mod timestamps;

use std::io::Read;

use crate::codec::{ByteReader, PutLe};
use crate::error::CorruptionKind;

/// Encoding ids, the `enc` byte of a block descriptor in the footer.
///
/// The low 7 bits name the codec; for field and event id blocks, [`enc::PRESENCE`] says that
/// the payload starts with a presence bitmap (some rows lack the value).
pub(crate) mod enc {
    /// No row of the row group has the value; the block is empty.
    pub const ABSENT: u8 = 0;
    /// pco standalone file of the column's numeric type.
    pub const PCO: u8 = 1;
    /// LEB128 varints: zigzag for i64, plain for u64, deltas for timestamps.
    pub const VARINT: u8 = 2;
    /// f64 as 8 little-endian bytes each.
    pub const F64_RAW: u8 = 3;
    /// f64 that are exact decimals: a scale byte, then zigzag varints of value × 10^scale.
    pub const F64_DECIMAL: u8 = 4;
    /// f64 that are exact decimals: a scale byte, then pco (i64) of value × 10^scale.
    pub const F64_DECIMAL_PCO: u8 = 5;
    /// Booleans: one bit per present row.
    pub const BITMAP: u8 = 6;
    /// Strings: varint lengths, then the bytes.
    pub const STR_PLAIN: u8 = 7;
    /// [`STR_PLAIN`] compressed: varint raw length, then one zstd frame.
    pub const STR_ZSTD: u8 = 8;
    /// Event ids that are all 32 lowercase hex digits: 16 raw bytes each.
    pub const ID_HEX: u8 = 9;
    /// Event ids that are all canonical lowercase UUIDs (8-4-4-4-12): 16 raw bytes each.
    pub const ID_UUID: u8 = 10;
    /// Tag dictionary + postings, stored as is.
    pub const TAG_PLAIN: u8 = 11;
    /// Tag dictionary + postings: varint raw length, then one zstd frame of the plain form.
    pub const TAG_ZSTD: u8 = 12;
    /// Unsigned integers bit-packed: a width byte, then each value in `width` bits, LSB first.
    pub const BITPACK: u8 = 13;
    /// Integers frame-of-reference bit-packed: the minimum as a varint (zigzag for i64),
    /// then [`BITPACK`] of each value minus the minimum.
    pub const FOR_BITPACK: u8 = 14;
    /// f64 that are exact decimals: a scale byte, then [`FOR_BITPACK`] of value × 10^scale.
    pub const F64_DECIMAL_FOR: u8 = 15;
    /// Flag: the payload starts with a presence bitmap of ceil(rows / 8) bytes.
    pub const PRESENCE: u8 = 0x80;
    /// Mask of the codec bits.
    pub const CODEC_MASK: u8 = 0x7f;
}

/// zstd level for strings, tag blocks: level 3 is zstd's default, a good size/speed balance.
pub(crate) const ZSTD_LEVEL: i32 = 3;

/// An encoded block: its encoding id and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub enc: u8,
    pub bytes: Vec<u8>,
}

impl Encoded {
    pub fn new(enc: u8, bytes: Vec<u8>) -> Encoded {
        Encoded { enc, bytes }
    }
}

/// The smallest of the candidates (the first on ties, so the order states the preference).
pub(crate) fn smallest(candidates: impl IntoIterator<Item = Encoded>) -> Option<Encoded> {
    candidates
        .into_iter()
        .fold(None, |best: Option<Encoded>, c| match best {
            Some(b) if b.bytes.len() <= c.bytes.len() => Some(b),
            _ => Some(c),
        })
}

pub(crate) fn invalid(why: impl Into<String>) -> CorruptionKind {
    CorruptionKind::Invalid(why.into())
}

/// Zigzag: small magnitudes of either sign become small unsigned numbers.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes of a bitmap of `n` bits.
pub(crate) fn bitmap_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Packs bits LSB-first: bit `i` is bit `i % 8` of byte `i / 8`.
pub(crate) fn pack_bits(bits: impl ExactSizeIterator<Item = bool>) -> Vec<u8> {
    let mut out = vec![0u8; bitmap_len(bits.len())];
    for (i, bit) in bits.enumerate() {
        if bit && let Some(slot) = out.get_mut(i / 8) {
            *slot |= 1 << (i % 8);
        }
    }
    out
}

/// Unpacks `n` bits; refuses set bits past `n` (a writer never sets them).
pub(crate) fn unpack_bits(bytes: &[u8], n: usize) -> Result<Vec<bool>, CorruptionKind> {
    if bytes.len() != bitmap_len(n) {
        return Err(CorruptionKind::Truncated);
    }
    let bits: Vec<bool> = (0..bytes.len() * 8)
        .map(|i| bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
        .collect();
    if bits.iter().skip(n).any(|&b| b) {
        return Err(invalid("bitmap has bits set past its row count"));
    }
    Ok(bits.into_iter().take(n).collect())
}

/// Compresses with zstd and prefixes the raw length (varint), so that a reader can bound the
/// output before decompressing.
pub(crate) fn zstd_wrap(raw: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        // A compression context per thread: creating one per chunk costs more than
        // compressing the small chunks most tables have.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let frame = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        c.as_mut()?.compress(raw).ok()
    })?;
    let mut out = Vec::with_capacity(frame.len() + 5);
    out.put_varint(raw.len() as u64);
    out.extend_from_slice(&frame);
    Some(out)
}

/// [`zstd_wrap`] as one of a chunk's candidate encodings: not tried on chunks so short that
/// zstd's frame overhead (about a dozen bytes) leaves nothing to gain, since starting a frame
/// costs more than encoding a small table's chunk.
pub(crate) fn zstd_candidate(raw: &[u8]) -> Option<Vec<u8>> {
    const MIN_RAW: usize = 32;
    if raw.len() < MIN_RAW {
        return None;
    }
    zstd_wrap(raw)
}

/// Inverse of [`zstd_wrap`]; `max_raw` bounds the announced raw length. Decompresses in a
/// stream, so memory grows with the output actually produced, never with a damaged length.
pub(crate) fn zstd_unwrap(bytes: &[u8], max_raw: usize) -> Result<Vec<u8>, CorruptionKind> {
    let mut r = ByteReader::new(bytes);
    let raw_len = r.varint()?;
    if raw_len > max_raw as u64 {
        return Err(invalid(format!(
            "zstd raw length {raw_len} exceeds the limit {max_raw}"
        )));
    }
    let frame = bytes.get(r.position()..).ok_or(CorruptionKind::Truncated)?;
    let decoder = zstd::stream::read::Decoder::with_buffer(frame)
        .map_err(|e| invalid(format!("zstd: {e}")))?;
    let mut out = Vec::new();
    decoder
        .take(raw_len + 1)
        .read_to_end(&mut out)
        .map_err(|e| invalid(format!("zstd: {e}")))?;
    if out.len() as u64 != raw_len {
        return Err(invalid(
            "zstd output length differs from the recorded length",
        ));
    }
    Ok(out)
}

/// Splits values into a presence bitmap (only when some are missing) and the present values.
pub(crate) fn split_optional<T: Copy>(values: &[Option<T>]) -> (Option<Vec<u8>>, Vec<T>) {
    let dense: Vec<T> = values.iter().flatten().copied().collect();
    if dense.len() == values.len() {
        (None, dense)
    } else {
        (Some(pack_bits(values.iter().map(Option::is_some))), dense)
    }
}

/// Encodes an optional column: [`enc::ABSENT`] when nothing is present, else the dense
/// values' encoding, prefixed by a presence bitmap when some rows lack the value.
pub(crate) fn encode_optional<T: Copy>(
    values: &[Option<T>],
    encode_dense: impl FnOnce(&[T]) -> Encoded,
) -> Encoded {
    let (presence, dense) = split_optional(values);
    if dense.is_empty() && !values.is_empty() {
        return Encoded::new(enc::ABSENT, Vec::new());
    }
    let inner = encode_dense(&dense);
    match presence {
        None => inner,
        Some(mut bits) => {
            bits.extend_from_slice(&inner.bytes);
            Encoded::new(inner.enc | enc::PRESENCE, bits)
        }
    }
}

/// Inverse of [`encode_optional`]: `decode_dense(codec, payload, n_present)`.
pub(crate) fn decode_optional<T: Clone>(
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
    decode_dense: impl FnOnce(u8, &[u8], usize) -> Result<Vec<T>, CorruptionKind>,
) -> Result<Vec<Option<T>>, CorruptionKind> {
    let mut out = Vec::with_capacity(n_rows);
    decode_optional_into(&mut out, encoding, payload, n_rows, decode_dense)?;
    Ok(out)
}

/// [`decode_optional`], appending to `out`: a scan decodes straight into its result.
pub(crate) fn decode_optional_into<T: Clone>(
    out: &mut Vec<Option<T>>,
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
    decode_dense: impl FnOnce(u8, &[u8], usize) -> Result<Vec<T>, CorruptionKind>,
) -> Result<(), CorruptionKind> {
    match Presence::of(encoding, payload, n_rows)? {
        Presence::None => out.resize(out.len() + n_rows, None),
        Presence::All { codec, dense } => {
            out.extend(decode_dense(codec, dense, n_rows)?.into_iter().map(Some));
        }
        Presence::Some {
            codec,
            present,
            dense,
        } => {
            let n_present = present.iter().filter(|&&p| p).count();
            let mut values = decode_dense(codec, dense, n_present)?.into_iter();
            out.extend(
                present
                    .into_iter()
                    .map(|p| if p { values.next() } else { None }),
            );
        }
    }
    Ok(())
}

/// Whether every row of an optional column block holds a value (`Some(true)`) or none does
/// (`Some(false)`), from its encoding alone; `None` when its presence bitmap says
/// ([`present_rows`]).
pub(crate) fn presence_of_encoding(encoding: u8) -> Option<bool> {
    if encoding == enc::ABSENT {
        Some(false)
    } else if encoding & enc::PRESENCE == 0 {
        Some(true)
    } else {
        None
    }
}

/// Which of the `n_rows` rows of an optional column block hold a value, without decoding the
/// values.
pub(crate) fn present_rows(
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
) -> Result<Vec<bool>, CorruptionKind> {
    Ok(match Presence::of(encoding, payload, n_rows)? {
        Presence::None => vec![false; n_rows],
        Presence::All { .. } => vec![true; n_rows],
        Presence::Some { present, .. } => present,
    })
}

/// Which rows of an optional column block hold a value, and the dense values' codec and bytes.
pub(crate) enum Presence<'a> {
    /// No row has a value.
    None,
    /// Every row has one.
    All { codec: u8, dense: &'a [u8] },
    /// The rows marked `true` have one.
    Some {
        codec: u8,
        present: Vec<bool>,
        dense: &'a [u8],
    },
}

impl<'a> Presence<'a> {
    /// Splits a block written by [`encode_optional`].
    pub(crate) fn of(
        encoding: u8,
        payload: &'a [u8],
        n_rows: usize,
    ) -> Result<Presence<'a>, CorruptionKind> {
        if encoding == enc::ABSENT {
            if !payload.is_empty() {
                return Err(invalid("absent column block is not empty"));
            }
            return Ok(Presence::None);
        }
        let codec = encoding & enc::CODEC_MASK;
        if encoding & enc::PRESENCE == 0 {
            return Ok(Presence::All {
                codec,
                dense: payload,
            });
        }
        let (bits, dense) = payload
            .split_at_checked(bitmap_len(n_rows))
            .ok_or(CorruptionKind::Truncated)?;
        Ok(Presence::Some {
            codec,
            present: unpack_bits(bits, n_rows)?,
            dense,
        })
    }

    /// The dense values' codec, bytes and count (`None` when no row has a value).
    pub(crate) fn dense(&self, n_rows: usize) -> Option<(u8, &'a [u8], usize)> {
        match self {
            Presence::None => None,
            Presence::All { codec, dense } => Some((*codec, dense, n_rows)),
            Presence::Some {
                codec,
                present,
                dense,
            } => Some((*codec, dense, present.iter().filter(|&&p| p).count())),
        }
    }
}

/// Packs `values` into `width`-bit fields, LSB first, behind a width byte. `width` is the
/// bit length of the largest value (0 when all are 0).
pub(crate) fn bitpack(values: &[u64]) -> Vec<u8> {
    let width = values
        .iter()
        .map(|v| 64 - v.leading_zeros())
        .max()
        .unwrap_or(0);
    let total_bits = values.len() * width as usize;
    let mut out = vec![0u8; 1 + total_bits.div_ceil(8)];
    if let Some(w) = out.first_mut() {
        *w = width as u8;
    }
    // Value i's bit b lands at bit i * width + b of the stream, bytes filled from their
    // least significant bit: an accumulator emits whole bytes instead of setting bit by bit.
    let mut acc: u128 = 0;
    let mut acc_bits = 0u32;
    let mut at = 1;
    for &v in values {
        acc |= u128::from(v) << acc_bits;
        acc_bits += width;
        while acc_bits >= 8 {
            if let Some(byte) = out.get_mut(at) {
                *byte = acc as u8;
            }
            at += 1;
            acc >>= 8;
            acc_bits -= 8;
        }
    }
    if acc_bits > 0
        && let Some(byte) = out.get_mut(at)
    {
        *byte = acc as u8;
    }
    out
}

/// Inverse of [`bitpack`] for `n` values; the length must match exactly.
pub(crate) fn bitunpack(bytes: &[u8], n: usize) -> Result<Vec<u64>, CorruptionKind> {
    let (&width, packed) = bytes.split_first().ok_or(CorruptionKind::Truncated)?;
    if width > 64 {
        return Err(invalid(format!("bit width {width}")));
    }
    let width = usize::from(width);
    let total_bits = n.checked_mul(width).ok_or(CorruptionKind::Truncated)?;
    if packed.len() != total_bits.div_ceil(8) {
        return Err(invalid("bit-packed block has the wrong length"));
    }
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let mut out = Vec::with_capacity(n);
    let mut bytes = packed.iter();
    let mut acc: u128 = 0;
    let mut acc_bits = 0usize;
    for _ in 0..n {
        while acc_bits < width {
            // The length check above guarantees the bytes are there.
            acc |= u128::from(bytes.next().copied().unwrap_or(0)) << acc_bits;
            acc_bits += 8;
        }
        out.push(acc as u64 & mask);
        acc >>= width;
        acc_bits -= width;
    }
    Ok(out)
}

/// Frame-of-reference packing of signed integers: zigzag(min) varint, then the offsets
/// from min bit-packed.
pub(crate) fn for_pack_i64(values: &[i64]) -> Vec<u8> {
    let min = values.iter().copied().min().unwrap_or(0);
    let mut out = Vec::new();
    out.put_varint(zigzag(min));
    let offsets: Vec<u64> = values.iter().map(|&v| v.wrapping_sub(min) as u64).collect();
    out.extend(bitpack(&offsets));
    out
}

/// Inverse of [`for_pack_i64`].
pub(crate) fn for_unpack_i64(bytes: &[u8], n: usize) -> Result<Vec<i64>, CorruptionKind> {
    let mut r = ByteReader::new(bytes);
    let min = unzigzag(r.varint()?);
    let rest = bytes.get(r.position()..).ok_or(CorruptionKind::Truncated)?;
    Ok(bitunpack(rest, n)?
        .into_iter()
        .map(|o| min.wrapping_add(o as i64))
        .collect())
}

/// Frame-of-reference packing of unsigned integers: min varint, then the offsets bit-packed.
pub(crate) fn for_pack_u64(values: &[u64]) -> Vec<u8> {
    let min = values.iter().copied().min().unwrap_or(0);
    let mut out = Vec::new();
    out.put_varint(min);
    let offsets: Vec<u64> = values.iter().map(|&v| v - min).collect();
    out.extend(bitpack(&offsets));
    out
}

/// Inverse of [`for_pack_u64`].
pub(crate) fn for_unpack_u64(bytes: &[u8], n: usize) -> Result<Vec<u64>, CorruptionKind> {
    let mut r = ByteReader::new(bytes);
    let min = r.varint()?;
    let rest = bytes.get(r.position()..).ok_or(CorruptionKind::Truncated)?;
    Ok(bitunpack(rest, n)?
        .into_iter()
        .map(|o| min.wrapping_add(o))
        .collect())
}

/// Reads exactly `n` varints and requires the input to be consumed.
pub(crate) fn read_varints(bytes: &[u8], n: usize) -> Result<Vec<u64>, CorruptionKind> {
    // Every varint takes at least one byte, so a damaged count cannot over-allocate.
    if n > bytes.len() {
        return Err(CorruptionKind::Truncated);
    }
    let mut r = ByteReader::new(bytes);
    let out = (0..n).map(|_| r.varint()).collect::<Result<Vec<_>, _>>()?;
    if !r.is_empty() {
        return Err(invalid("trailing bytes after the last value"));
    }
    Ok(out)
}

/// pco's standalone compression of a slice (pco picks delta order and mode itself).
pub(crate) fn pco_compress<T: pco::data_types::Number>(values: &[T]) -> Option<Vec<u8>> {
    pco_compress_with(values, pco::DeltaSpec::NoOp)
}

/// pco with the delta encoding given rather than searched for: the search (pco's `Auto`)
/// compresses samples with every candidate and was the largest cost of a flush, while the
/// columns' nature is known (timestamps ascend, field values and postings gaps do not trend).
/// The mode is fixed to `Classic` for the same reason; decimal floats get their own integer
/// encoding before pco sees them.
pub(crate) fn pco_compress_with<T: pco::data_types::Number>(
    values: &[T],
    delta: pco::DeltaSpec,
) -> Option<Vec<u8>> {
    // Below this many values pco's own header outweighs what it saves and the simpler
    // encodings win: over a 2M-event load, of 8,029 numeric and timestamp columns of 16-63
    // values none was smaller in pco, and 269 of 6,242 tag sections of 16-63 values saved
    // 20 kB in all; each attempt still cost a flush its bin search.
    const MIN_VALUES: usize = 64;
    if values.len() < MIN_VALUES {
        return None;
    }
    let config = pco::ChunkConfig::default()
        .with_delta_spec(delta)
        .with_mode_spec(pco::ModeSpec::Classic);
    pco::standalone::simple_compress(values, &config).ok()
}

/// pco's standalone decompression of exactly `n` values.
pub(crate) fn pco_decompress<T: pco::data_types::Number + Default>(
    bytes: &[u8],
    n: usize,
) -> Result<Vec<T>, CorruptionKind> {
    let mut out = vec![T::default(); n];
    let progress = pco::standalone::simple_decompress_into(bytes, &mut out)
        .map_err(|e| invalid(format!("pco: {e}")))?;
    if progress.n_processed != n || !progress.finished {
        return Err(invalid(format!(
            "pco block holds {} values, the footer says {n}",
            progress.n_processed
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The packing as the format defines it: value i's bit b at stream bit i * width + b.
    fn bitpack_by_definition(values: &[u64]) -> Vec<u8> {
        let width = values
            .iter()
            .map(|v| 64 - v.leading_zeros())
            .max()
            .unwrap_or(0) as usize;
        let mut out = vec![0u8; 1 + (values.len() * width).div_ceil(8)];
        out[0] = width as u8;
        for (i, &v) in values.iter().enumerate() {
            for bit in 0..width {
                if v >> bit & 1 == 1 {
                    let pos = i * width + bit;
                    out[1 + pos / 8] |= 1 << (pos % 8);
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn bitpack_matches_its_definition_and_round_trips(
            values in prop::collection::vec(any::<u64>().prop_map(|v| v >> (v % 65).min(63)), 0..200),
            top in any::<bool>(),
        ) {
            let mut values = values;
            if top && !values.is_empty() {
                values[0] = u64::MAX;
            }
            let packed = bitpack(&values);
            prop_assert_eq!(&packed, &bitpack_by_definition(&values));
            prop_assert_eq!(bitunpack(&packed, values.len()).ok(), Some(values));
        }
    }

    #[test]
    fn bits_round_trip_and_refuse_stray_bits() {
        let bits = [true, false, true, true, false, false, false, false, true];
        let packed = pack_bits(bits.iter().copied());
        assert_eq!(packed, vec![0b0000_1101, 0b1]);
        assert_eq!(unpack_bits(&packed, bits.len()).ok(), Some(bits.to_vec()));
        assert!(unpack_bits(&[0xff], 3).is_err());
    }

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, 1, -1, i64::MIN, i64::MAX, 12345, -98765] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn zstd_unwrap_refuses_a_wrong_length() {
        let wrapped = zstd_wrap(b"hello hello hello").unwrap_or_default();
        assert_eq!(
            zstd_unwrap(&wrapped, 100).ok(),
            Some(b"hello hello hello".to_vec())
        );
        assert!(zstd_unwrap(&wrapped, 5).is_err());
        let mut bad = wrapped.clone();
        bad[0] = 3;
        assert!(zstd_unwrap(&bad, 100).is_err());
    }
}
