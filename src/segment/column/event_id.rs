//! The event id column of a row group.
//!
//! Ids are usually random 128-bit values printed as text, which no general compressor
//! shrinks below 16 bytes. So when every present id of the block is exactly 32 lowercase hex
//! digits ([`enc::ID_HEX`]) or a canonical lowercase UUID `8-4-4-4-12` ([`enc::ID_UUID`]), the
//! block stores the 16 raw bytes of each; otherwise it falls back to the string encodings of
//! [`super::strings`]. The encoding id is the block's flag saying which form it holds.
//!
//! **Invariant:** ids round-trip exactly; uppercase hex or any other spelling takes the string
//! fallback rather than being normalised.

use super::{Encoded, Presence, decode_optional, enc, encode_optional, invalid, strings};
use crate::error::CorruptionKind;
use crate::scan::StrColumn;

/// Raw bytes per id in the binary forms.
pub(crate) const ID_BYTES: usize = 16;

/// Hyphen positions of a canonical UUID's text.
const UUID_HYPHENS: [usize; 4] = [8, 13, 18, 23];
/// Length of a canonical UUID's text.
const UUID_LEN: usize = 36;

/// The longest text of an id with a binary form: the buffer [`IdKey::text`] prints into.
pub(crate) const ID_TEXT_MAX: usize = UUID_LEN;

/// Length of a hex id's text.
const HEX_LEN: usize = 2 * ID_BYTES;

/// The value of each lowercase hex digit, `INVALID` for every other byte.
// Built at compile time: an index out of range would fail the build, not a read.
#[allow(clippy::indexing_slicing)]
const HEX_VALUES: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};
/// A table entry that is not a digit: any bit above the low four.
const INVALID: u8 = 0xf0;

/// The value of a hex digit, or `INVALID`.
fn digit(b: u8) -> u8 {
    HEX_VALUES.get(usize::from(b)).copied().unwrap_or(INVALID)
}

/// The value of 32 lowercase hex digits (the first digit is the top nibble). Every id of every
/// write is parsed, so this looks each digit up in a table and checks them all at once at the
/// end instead of per digit. A number rather than bytes: the id's hash read bytes stored one
/// at a time back 8 at a time, and those loads stalled (about a tenth of a WAL replay's CPU).
fn parse_hex(digits: &[u8]) -> Option<u128> {
    if digits.len() != HEX_LEN {
        return None;
    }
    let mut value = 0u128;
    let mut bad = 0u8;
    for &c in digits {
        let d = digit(c);
        bad |= d;
        value = value << 4 | u128::from(d & 0x0f);
    }
    (bad & INVALID == 0).then_some(value)
}

fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != UUID_LEN || UUID_HYPHENS.iter().any(|&i| b.get(i) != Some(&b'-')) {
        return None;
    }
    let mut digits = [0u8; HEX_LEN];
    let groups = [0..8, 9..13, 14..18, 19..23, 24..36];
    let mut at = 0;
    for group in groups {
        let part = b.get(group)?;
        digits.get_mut(at..at + part.len())?.copy_from_slice(part);
        at += part.len();
    }
    parse_hex(&digits)
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes the 32 lowercase hex digits of `value` into `out`, with the UUID hyphens when
/// `hyphens`; returns the text written.
fn write_digits(value: u128, hyphens: bool, out: &mut [u8; UUID_LEN]) -> &str {
    let mut at = 0;
    for i in 0..HEX_LEN {
        if hyphens && matches!(i, 8 | 12 | 16 | 20) {
            if let Some(b) = out.get_mut(at) {
                *b = b'-';
            }
            at += 1;
        }
        let nibble = (value >> (4 * (HEX_LEN - 1 - i))) & 0xf;
        if let (Some(b), Some(&d)) = (out.get_mut(at), DIGITS.get(nibble as usize)) {
            *b = d;
        }
        at += 1;
    }
    // Only ASCII digits and hyphens were written.
    std::str::from_utf8(out.get(..at).unwrap_or_default()).unwrap_or_default()
}

/// An event id as the segments store it: the 16 bytes (as a number) of a lowercase hex or
/// canonical UUID spelling, else the text. Each spelling has exactly one key, so two ids are
/// equal exactly when their keys are, and a stored id is compared and hashed without being
/// printed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IdKey<'a> {
    /// 32 lowercase hex digits.
    Hex(u128),
    /// A lowercase `8-4-4-4-12` UUID.
    Uuid(u128),
    /// Any other spelling.
    Text(&'a str),
}

impl<'a> IdKey<'a> {
    /// The key of an id's text.
    pub(crate) fn of(id: &'a str) -> IdKey<'a> {
        match id.len() {
            HEX_LEN => parse_hex(id.as_bytes()).map_or(IdKey::Text(id), IdKey::Hex),
            UUID_LEN => parse_uuid(id).map_or(IdKey::Text(id), IdKey::Uuid),
            _ => IdKey::Text(id),
        }
    }

    /// The id's text: its own for [`IdKey::Text`], else printed into `buf` (no allocation;
    /// a buffer prints hundreds of thousands of ids when it is flushed).
    pub(crate) fn text<'b>(self, buf: &'b mut [u8; ID_TEXT_MAX]) -> &'b str
    where
        'a: 'b,
    {
        match self {
            IdKey::Hex(v) => write_digits(v, false, buf),
            IdKey::Uuid(v) => write_digits(v, true, buf),
            IdKey::Text(s) => s,
        }
    }
}

fn binary(dense: &[&str], parse: impl Fn(&str) -> Option<u128>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(dense.len() * ID_BYTES);
    for id in dense {
        out.extend_from_slice(&parse(id)?.to_be_bytes());
    }
    Some(out)
}

/// Encodes an event id column.
pub(crate) fn encode(values: &StrColumn) -> Encoded {
    let v: Vec<Option<&str>> = values.iter().collect();
    encode_optional(&v, |dense| {
        // Random 128-bit ids take 16 bytes in any encoding, so when the binary form applies
        // the string fallback (a zstd pass over the column) cannot win and is not tried.
        if let Some(b) = binary(dense, |s| parse_hex(s.as_bytes())) {
            return Encoded::new(enc::ID_HEX, b);
        }
        if let Some(b) = binary(dense, parse_uuid) {
            return Encoded::new(enc::ID_UUID, b);
        }
        strings::encode_dense(dense)
    })
}

/// Decodes an event id column of `n_rows` rows.
pub(crate) fn decode(
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
) -> Result<Vec<Option<String>>, CorruptionKind> {
    decode_optional(encoding, payload, n_rows, |codec, bytes, n| match codec {
        enc::ID_HEX | enc::ID_UUID => {
            if Some(bytes.len()) != n.checked_mul(ID_BYTES) {
                return Err(invalid("binary event id block has the wrong length"));
            }
            let hyphens = codec == enc::ID_UUID;
            let mut buf = [0; UUID_LEN];
            Ok(bytes
                .chunks_exact(ID_BYTES)
                .map(|b| {
                    let value = u128::from_be_bytes(b.try_into().unwrap_or_default());
                    write_digits(value, hyphens, &mut buf).to_owned()
                })
                .collect())
        }
        enc::STR_PLAIN | enc::STR_ZSTD => strings::decode_dense(codec, bytes, n),
        other => Err(invalid(format!("unknown event id encoding {other}"))),
    })
}

/// Calls `f` with the [`IdKey`] of every id in an event id block of `n_rows` rows, in row
/// order, skipping rows without one. Ids stored as 16 bytes are not printed back to text.
pub(crate) fn for_each_key(
    encoding: u8,
    payload: &[u8],
    n_rows: usize,
    mut f: impl FnMut(IdKey<'_>),
) -> Result<(), CorruptionKind> {
    let Some((codec, bytes, n)) = Presence::of(encoding, payload, n_rows)?.dense(n_rows) else {
        return Ok(());
    };
    match codec {
        enc::ID_HEX | enc::ID_UUID => {
            if Some(bytes.len()) != n.checked_mul(ID_BYTES) {
                return Err(invalid("binary event id block has the wrong length"));
            }
            for chunk in bytes.chunks_exact(ID_BYTES) {
                let mut raw = [0u8; ID_BYTES];
                raw.copy_from_slice(chunk);
                let raw = u128::from_be_bytes(raw);
                f(if codec == enc::ID_HEX {
                    IdKey::Hex(raw)
                } else {
                    IdKey::Uuid(raw)
                });
            }
            Ok(())
        }
        enc::STR_PLAIN | enc::STR_ZSTD => {
            strings::for_each_dense(codec, bytes, n, |s| f(IdKey::of(s)))
        }
        other => Err(invalid(format!("unknown event id encoding {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ids: &[Option<&str>]) -> (u8, Vec<Option<String>>) {
        let col: StrColumn = ids.iter().copied().collect();
        let e = encode(&col);
        (
            e.enc,
            decode(e.enc, &e.bytes, ids.len()).unwrap_or_default(),
        )
    }

    fn owned(ids: &[Option<&str>]) -> Vec<Option<String>> {
        ids.iter().map(|s| s.map(str::to_owned)).collect()
    }

    #[test]
    fn lowercase_hex_is_stored_as_16_bytes() {
        let ids = [Some("f70b62414b1a31d5e3501084b5965048"), None];
        assert_eq!(round_trip(&ids), (enc::ID_HEX | enc::PRESENCE, owned(&ids)));
    }

    #[test]
    fn canonical_uuids_are_stored_as_16_bytes() {
        let ids = [Some("123e4567-e89b-12d3-a456-426614174000")];
        assert_eq!(round_trip(&ids), (enc::ID_UUID, owned(&ids)));
    }

    #[test]
    fn a_hex_id_is_exactly_32_lowercase_hex_digits() {
        let good = *b"0123456789abcdef0123456789abcdef";
        assert!(parse_hex(&good).is_some());
        for bad in (0..=255u8).filter(|b| !b.is_ascii_digit() && !(b'a'..=b'f').contains(b)) {
            for at in [0, 17, 31] {
                let mut id = good;
                id[at] = bad;
                assert_eq!(parse_hex(&id), None, "byte {bad} at {at}");
            }
        }
        assert_eq!(parse_hex(&good[..31]), None);
        assert_eq!(
            parse_uuid("01234567-89ab-cdef-0123-456789abcdef"),
            parse_hex(&good)
        );
        assert_eq!(parse_uuid("01234567-89ab-cdef-0123_456789abcdef"), None);
    }

    #[test]
    fn stored_keys_are_the_keys_of_the_texts() {
        let ids = [
            Some("f70b62414b1a31d5e3501084b5965048"),
            None,
            Some("123e4567-e89b-12d3-a456-426614174000"),
            Some("F70B62414B1A31D5E3501084B5965048"),
            Some("x"),
            Some("f70b62414b1a31d5e3501084b596504g"),
        ];
        // Each block as one form: all hex, all UUID, and the mixed string fallback.
        for block in [&ids[..2], &ids[2..3], &ids[..]] {
            let col: StrColumn = block.iter().copied().collect();
            let e = encode(&col);
            let mut keys = Vec::new();
            for_each_key(e.enc, &e.bytes, block.len(), |k| {
                keys.push(format!("{k:?}"));
            })
            .unwrap_or_else(|err| panic!("{err:?}"));
            let want: Vec<String> = block
                .iter()
                .flatten()
                .map(|s| format!("{:?}", IdKey::of(s)))
                .collect();
            assert_eq!(keys, want, "block encoded as {}", e.enc);
        }
        assert!(matches!(
            IdKey::of(ids[0].unwrap_or_default()),
            IdKey::Hex(_)
        ));
        assert!(matches!(
            IdKey::of(ids[2].unwrap_or_default()),
            IdKey::Uuid(_)
        ));
        assert!(matches!(
            IdKey::of(ids[3].unwrap_or_default()),
            IdKey::Text(_)
        ));
        assert_ne!(
            IdKey::of("00000000000000000000000000000000"),
            IdKey::of("00000000-0000-0000-0000-000000000000")
        );
    }

    #[test]
    fn other_spellings_fall_back_to_strings() {
        for ids in [
            [
                Some("F70B62414B1A31D5E3501084B5965048"),
                Some("f70b62414b1a31d5e3501084b5965048"),
            ],
            [Some("123E4567-E89B-12D3-A456-426614174000"), Some("x")],
            [Some("f70b62414b1a31d5e3501084b596504"), Some("")],
        ] {
            let (encoding, back) = round_trip(&ids);
            assert!(
                matches!(encoding, enc::STR_PLAIN | enc::STR_ZSTD),
                "{encoding}"
            );
            assert_eq!(back, owned(&ids));
        }
    }
}
