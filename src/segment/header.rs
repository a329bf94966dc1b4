//! The fixed-size pieces at both ends of a segment file: the header (magic, format version,
//! CRC) and the trailer (where the footer is, its CRC, magic again).
//!
//! **Invariant:** the header and trailer layouts are the same in every format version, so a
//! reader of any version can tell a segment from other bytes and learn its version before
//! interpreting anything else. Byte layout: storage-format.md, "Segment files", "Header" and
//! "Trailer".

use std::mem::size_of;

use crate::codec::{ByteReader, PutLe, crc32c};
use crate::error::CorruptionKind;

/// First and last 8 bytes of every segment file.
pub(crate) const MAGIC: [u8; 8] = *b"MTRDBSEG";
/// The format version this build writes and the only one it reads.
pub(crate) const FORMAT_VERSION: u16 = 1;

/// Offset of the version in the header.
pub(crate) const VERSION_OFFSET: usize = MAGIC.len();
/// Offset of the header CRC (over magic and version).
pub(crate) const HEADER_CRC_OFFSET: usize = VERSION_OFFSET + size_of::<u16>();
/// Length of the header; the first block starts here.
pub(crate) const HEADER_LEN: usize = HEADER_CRC_OFFSET + size_of::<u32>();

/// Length of the trailer: footer offset, footer length, footer CRC, magic.
pub(crate) const TRAILER_LEN: usize =
    size_of::<u64>() + size_of::<u32>() + size_of::<u32>() + MAGIC.len();

/// The header's bytes.
pub(crate) fn encode_header() -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&MAGIC);
    out.put_u16(FORMAT_VERSION);
    let crc = crc32c(&out);
    out.put_u32(crc);
    out
}

/// Checks the header at the start of `file`: magic, then CRC, then version (a future version
/// has a valid CRC, so it is reported as [`CorruptionKind::UnknownVersion`]). Errors carry the
/// offset of the damaged field.
pub(crate) fn check_header(file: &[u8]) -> Result<(), (u64, CorruptionKind)> {
    let header = file
        .get(..HEADER_LEN)
        .ok_or((file.len() as u64, CorruptionKind::Truncated))?;
    let mut r = ByteReader::new(header);
    let at = |offset: usize| move |kind| (offset as u64, kind);
    if r.take(MAGIC.len()).map_err(at(0))? != MAGIC {
        return Err((0, CorruptionKind::BadMagic));
    }
    let version = r.u16().map_err(at(VERSION_OFFSET))?;
    let stored = r.u32().map_err(at(HEADER_CRC_OFFSET))?;
    let actual = crc32c(header.get(..HEADER_CRC_OFFSET).unwrap_or_default());
    if stored != actual {
        return Err((
            0,
            CorruptionKind::ChecksumMismatch {
                expected: stored,
                actual,
            },
        ));
    }
    if version != FORMAT_VERSION {
        return Err((
            VERSION_OFFSET as u64,
            CorruptionKind::UnknownVersion(version),
        ));
    }
    Ok(())
}

/// Where the footer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    /// Offset of the footer's first byte.
    pub footer_offset: u64,
    /// Footer length in bytes; the footer ends where the trailer starts.
    pub footer_len: u32,
    /// CRC32C of the footer's bytes.
    pub footer_crc: u32,
}

impl Trailer {
    /// The trailer's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TRAILER_LEN);
        out.put_u64(self.footer_offset);
        out.put_u32(self.footer_len);
        out.put_u32(self.footer_crc);
        out.extend_from_slice(&MAGIC);
        out
    }

    /// Reads the trailer at the end of `file` and checks that the footer it points to lies
    /// between the header and the trailer, ending exactly where the trailer starts.
    pub fn decode(file: &[u8]) -> Result<Trailer, (u64, CorruptionKind)> {
        let len = file.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err((len as u64, CorruptionKind::Truncated));
        }
        let start = len - TRAILER_LEN;
        let at = |kind| (start as u64, kind);
        let mut r = ByteReader::new(file.get(start..).unwrap_or_default());
        let footer_offset = r.u64().map_err(at)?;
        let footer_len = r.u32().map_err(at)?;
        let footer_crc = r.u32().map_err(at)?;
        if r.take(MAGIC.len()).map_err(at)? != MAGIC {
            return Err(((len - MAGIC.len()) as u64, CorruptionKind::BadMagic));
        }
        let end = footer_offset.checked_add(u64::from(footer_len));
        if footer_offset < HEADER_LEN as u64 || end != Some(start as u64) {
            return Err(at(CorruptionKind::Invalid(format!(
                "footer at {footer_offset} of {footer_len} bytes does not end at the trailer ({start})"
            ))));
        }
        Ok(Trailer {
            footer_offset,
            footer_len,
            footer_crc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_reports_versions() {
        let h = encode_header();
        assert_eq!(h.len(), HEADER_LEN);
        assert_eq!(check_header(&h), Ok(()));
        let mut future = h[..HEADER_CRC_OFFSET].to_vec();
        future[VERSION_OFFSET] = 9;
        let crc = crc32c(&future);
        future.put_u32(crc);
        assert_eq!(
            check_header(&future),
            Err((VERSION_OFFSET as u64, CorruptionKind::UnknownVersion(9)))
        );
        assert_eq!(check_header(b"MTRDB"), Err((5, CorruptionKind::Truncated)));
        assert_eq!(
            check_header(&[0; HEADER_LEN]),
            Err((0, CorruptionKind::BadMagic))
        );
    }
}
