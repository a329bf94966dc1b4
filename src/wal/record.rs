//! Byte layout of a WAL file: the file header and the record frames (storage-format.md,
//! "WAL file"). Pure encoding and decoding, no I/O.
//!
//! Every offset and size is derived from the named constants below, so that this file and the
//! format document cannot drift apart field by field.

use std::mem::size_of;

use crate::codec::{ByteReader, PutLe, crc32c, crc32c_append};
use crate::error::CorruptionKind;
use crate::model::SeqNo;

/// The first bytes of every WAL file.
pub const FILE_MAGIC: [u8; 8] = *b"METERWAL";

/// The WAL format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

const HEADER_VERSION_OFFSET: usize = FILE_MAGIC.len();
const HEADER_CRC_OFFSET: usize = HEADER_VERSION_OFFSET + size_of::<u16>();

/// Size of the file header: magic, version, CRC32C of the two.
pub const HEADER_LEN: usize = HEADER_CRC_OFFSET + size_of::<u32>();

/// The first bytes of every frame. A reader that lost its place in a damaged file looks for
/// these bytes to find candidate frame starts, so that it only computes checksums where a
/// frame may begin.
pub const FRAME_MAGIC: [u8; 4] = [0xF5, b'W', b'R', 0x0A];

const FRAME_CRC_OFFSET: usize = FRAME_MAGIC.len();
const FRAME_LEN_OFFSET: usize = FRAME_CRC_OFFSET + size_of::<u32>();
const FRAME_SEQ_OFFSET: usize = FRAME_LEN_OFFSET + size_of::<u32>();

/// Size of a frame without its payload: magic, CRC32C, payload length, sequence number.
pub const FRAME_HEADER_LEN: usize = FRAME_SEQ_OFFSET + size_of::<u64>();

/// Longest payload a frame may carry (256 MiB). A reader treats a longer length as damage, so
/// that a flipped bit in a length field never makes it skip or allocate gigabytes.
pub const MAX_RECORD_LEN: usize = 256 * 1024 * 1024;

/// A payload longer than [`MAX_RECORD_LEN`] was offered to the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("wal record of {len} bytes exceeds the limit of {max} bytes", max = MAX_RECORD_LEN)]
pub struct RecordTooLarge {
    /// The payload's length in bytes.
    pub len: usize,
}

/// The file header of a file in format `version`.
pub(super) fn header_bytes(version: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&FILE_MAGIC);
    out.put_u16(version);
    let crc = crc32c(&out);
    out.put_u32(crc);
    out
}

/// Appends the file header of the current format to `out`: the first [`HEADER_LEN`] bytes of
/// every WAL file.
pub fn encode_file_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&header_bytes(FORMAT_VERSION));
}

/// Fails when a payload of `len` bytes cannot be framed.
pub fn check_record_len(len: usize) -> Result<(), RecordTooLarge> {
    if len > MAX_RECORD_LEN {
        return Err(RecordTooLarge { len });
    }
    Ok(())
}

/// Appends one frame (`seq`, `payload`) to `out`, or fails without touching `out` when the
/// payload is longer than [`MAX_RECORD_LEN`].
pub fn try_encode_frame(
    out: &mut Vec<u8>,
    seq: SeqNo,
    payload: &[u8],
) -> Result<(), RecordTooLarge> {
    check_record_len(payload.len())?;
    let len = u32::try_from(payload.len()).map_err(|_| RecordTooLarge { len: payload.len() })?;
    let len_bytes = len.to_le_bytes();
    let seq_bytes = seq.0.to_le_bytes();
    let crc = crc32c_append(crc32c_append(crc32c(&len_bytes), &seq_bytes), payload);
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&FRAME_MAGIC);
    out.put_u32(crc);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(payload);
    Ok(())
}

/// What the first bytes of a file say about it.
#[derive(Debug, PartialEq)]
pub(super) enum Header {
    /// A valid header of the current version.
    Valid,
    /// Fewer than [`HEADER_LEN`] bytes, all of them a prefix of a valid header: the file was
    /// created but its header never became durable, so it holds no record.
    Torn,
    /// Not a WAL file of a version this build reads.
    Damaged(CorruptionKind),
}

/// Checks the file header at the start of `bytes`.
pub(super) fn check_header(bytes: &[u8]) -> Header {
    let expected = header_bytes(FORMAT_VERSION);
    if bytes.len() < HEADER_LEN {
        if expected.starts_with(bytes) {
            return Header::Torn;
        }
        let magic_part = bytes.get(..FILE_MAGIC.len()).unwrap_or(bytes);
        if !FILE_MAGIC.starts_with(magic_part) {
            return Header::Damaged(CorruptionKind::BadMagic);
        }
        return Header::Damaged(CorruptionKind::Truncated);
    }
    let (magic, version, stored_crc) = match header_fields(bytes) {
        Ok(fields) => fields,
        Err(kind) => return Header::Damaged(kind),
    };
    if magic != FILE_MAGIC {
        return Header::Damaged(CorruptionKind::BadMagic);
    }
    let actual_crc = crc32c(bytes.get(..HEADER_CRC_OFFSET).unwrap_or_default());
    if actual_crc != stored_crc {
        return Header::Damaged(CorruptionKind::ChecksumMismatch {
            expected: stored_crc,
            actual: actual_crc,
        });
    }
    if version != FORMAT_VERSION {
        return Header::Damaged(CorruptionKind::UnknownVersion(version));
    }
    Header::Valid
}

/// The magic, version and stored checksum of a header.
fn header_fields(bytes: &[u8]) -> Result<(&[u8], u16, u32), CorruptionKind> {
    let mut reader = ByteReader::new(bytes);
    let magic = reader.take(FILE_MAGIC.len())?;
    let version = reader.u16()?;
    let stored_crc = reader.u32()?;
    Ok((magic, version, stored_crc))
}

/// A frame decoded from a file.
#[derive(Debug, PartialEq)]
pub(super) struct Frame<'a> {
    /// The record's sequence number.
    pub(super) seq: SeqNo,
    /// The record's payload.
    pub(super) payload: &'a [u8],
    /// Bytes the whole frame takes, header included.
    pub(super) encoded_len: usize,
}

/// Decodes the frame that starts at the first byte of `bytes`.
///
/// Checks, in this order: enough bytes for a frame header (else `Truncated`), the frame magic,
/// the length against [`MAX_RECORD_LEN`] and against the bytes left, then the checksum — so
/// nothing is read or checksummed beyond what the length check allowed.
pub(super) fn decode_frame(bytes: &[u8]) -> Result<Frame<'_>, CorruptionKind> {
    if bytes.len() < FRAME_HEADER_LEN {
        return Err(CorruptionKind::Truncated);
    }
    let mut reader = ByteReader::new(bytes);
    let magic = reader.take(FRAME_MAGIC.len())?;
    if magic != FRAME_MAGIC {
        return Err(CorruptionKind::Invalid("no frame magic".into()));
    }
    let stored_crc = reader.u32()?;
    let len = reader.u32()?;
    let seq = reader.u64()?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= MAX_RECORD_LEN)
        .ok_or_else(|| {
            CorruptionKind::Invalid(format!(
                "record length {len} exceeds the limit of {MAX_RECORD_LEN} bytes"
            ))
        })?;
    let left = reader.remaining();
    if len > left {
        return Err(CorruptionKind::Invalid(format!(
            "record length {len} runs past the end of the file ({left} bytes left)"
        )));
    }
    let payload = reader.take(len)?;
    let encoded_len = reader.position();
    let covered = bytes
        .get(FRAME_LEN_OFFSET..encoded_len)
        .ok_or(CorruptionKind::Truncated)?;
    let actual_crc = crc32c(covered);
    if actual_crc != stored_crc {
        return Err(CorruptionKind::ChecksumMismatch {
            expected: stored_crc,
            actual: actual_crc,
        });
    }
    Ok(Frame {
        seq: SeqNo(seq),
        payload,
        encoded_len,
    })
}

/// The offset of the first frame magic at or after `from`, if any.
pub(super) fn find_frame_magic(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(FRAME_MAGIC.len())
        .position(|window| window == FRAME_MAGIC)
        .map(|idx| from + idx)
}
