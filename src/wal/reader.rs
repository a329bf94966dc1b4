//! Replaying WAL files: decode every valid frame, repair torn tails, report everything else.
//!
//! [`replay_bytes`] holds the whole policy for one file and does no I/O, so that the fuzzer
//! exercises exactly the code recovery runs; [`replay`] adds listing, reading and cutting.
//!
//! **Invariants:** a record is handed to the visitor only if its frame's checksum matches; no
//! length read from the file is used before it is checked against [`MAX_RECORD_LEN`] and the
//! bytes left; damage in the middle of a file never hides the valid frames after it.

use std::path::{Path, PathBuf};

use super::list_files;
#[cfg(doc)]
use super::record::MAX_RECORD_LEN;
use super::record::{HEADER_LEN, Header, check_header, decode_frame, find_frame_magic};
use crate::error::{Corruption, Error, Result};
use crate::fs::{FileBytes, FileSystem};
use crate::model::SeqNo;

/// The callback replay hands each valid record to: its sequence number, payload, file and
/// frame offset in that file. An error it returns stops the replay.
pub type Visit<'a> = dyn FnMut(SeqNo, &[u8], &Path, u64) -> Result<()> + 'a;

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Records handed to the visitor.
    pub records: u64,
    /// Highest sequence number seen.
    pub last_seq: Option<SeqNo>,
    /// Torn tails cut off: file, offset cut at, bytes removed.
    pub truncated: Vec<(PathBuf, u64, u64)>,
    /// Damaged records in the middle of a file (the records after them were recovered).
    pub corruptions: Vec<Corruption>,
}

/// Bytes at the end of a file that hold no valid frame and are followed by none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where the torn bytes start: the end of the last valid frame (or 0 for a torn header).
    pub offset: u64,
    /// How many bytes are torn, up to the end of the file.
    pub len: u64,
}

/// What replaying one file's bytes found.
#[derive(Debug, Default)]
pub struct FileReplay {
    /// Records handed to the visitor.
    pub records: u64,
    /// Highest sequence number seen.
    pub last_seq: Option<SeqNo>,
    /// The torn tail, if any: the file should be cut at its offset.
    pub torn_tail: Option<TornTail>,
    /// A bad header (then no record was read) or damaged frames followed by valid ones.
    pub corruptions: Vec<Corruption>,
}

/// Replays the bytes of one WAL file (`path` only names it in reports), calling `visit` with
/// each valid record's sequence number, payload, `path` and frame offset, in file order.
///
/// A bad header is reported and no record is read. After the header, damaged bytes are skipped
/// by scanning for the next frame magic whose frame decodes: damage followed by a valid frame
/// is reported in [`FileReplay::corruptions`], damage running to the end of the file is the
/// [`FileReplay::torn_tail`]. Does no I/O and never panics.
///
/// # Errors
///
/// Only what `visit` returns; it stops the replay.
pub fn replay_bytes(bytes: &[u8], path: &Path, visit: &mut Visit<'_>) -> Result<FileReplay> {
    let mut out = FileReplay::default();
    match check_header(bytes) {
        Header::Valid => {}
        Header::Torn => {
            if !bytes.is_empty() {
                out.torn_tail = Some(TornTail {
                    offset: 0,
                    len: bytes.len() as u64,
                });
            }
            return Ok(out);
        }
        Header::Damaged(kind) => {
            let corruption = Corruption::new(path, 0, kind);
            tracing::error!(%corruption, "skipping wal file with a bad header");
            out.corruptions.push(corruption);
            return Ok(out);
        }
    }

    let mut pos = HEADER_LEN;
    // Where the current run of undecodable bytes started and why its first frame failed.
    let mut damage = None;
    while let Some(rest) = bytes.get(pos..).filter(|rest| !rest.is_empty()) {
        match decode_frame(rest) {
            Ok(frame) => {
                if let Some((start, kind)) = damage.take() {
                    let corruption = Corruption::new(path, offset(start), kind);
                    tracing::error!(
                        %corruption,
                        skipped_bytes = pos - start,
                        "skipping damaged wal bytes; replay continues with the next valid record"
                    );
                    out.corruptions.push(corruption);
                }
                visit(frame.seq, frame.payload, path, offset(pos))?;
                out.records += 1;
                out.last_seq = out.last_seq.max(Some(frame.seq));
                pos += frame.encoded_len;
            }
            Err(kind) => {
                if damage.is_none() {
                    damage = Some((pos, kind));
                }
                pos = find_frame_magic(bytes, pos + 1).unwrap_or(bytes.len());
            }
        }
    }
    if let Some((start, _)) = damage {
        out.torn_tail = Some(TornTail {
            offset: offset(start),
            len: offset(bytes.len() - start),
        });
    }
    Ok(out)
}

/// Replays every record of every WAL file in `dir`, oldest first, calling `visit` with each
/// record's sequence number, payload, file and offset. Torn tails are truncated (and reported),
/// damaged records in the middle are reported and skipped.
///
/// # Errors
///
/// `Error::Io` when listing, reading or cutting a file fails; any error `visit` returns (it
/// stops the replay).
pub fn replay(fs: &dyn FileSystem, dir: &Path, visit: &mut Visit<'_>) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for (_, path) in list_files(fs, dir)? {
        // Mapped rather than copied: replay reads each byte once, so a copy only adds page
        // faults and a memcpy per byte. The map is dropped before a torn tail is cut.
        let file = {
            let bytes = fs.map(&path).map_err(|e| Error::io("map", &path, e))?;
            if let FileBytes::Mapped(map) = &bytes {
                // Only a hint for the kernel's read-ahead; replay is correct without it.
                let _ = map.advise(memmap2::Advice::Sequential);
            }
            replay_bytes(&bytes, &path, visit)?
        };
        report.records += file.records;
        report.last_seq = report.last_seq.max(file.last_seq);
        report.corruptions.extend(file.corruptions);
        if let Some(torn) = file.torn_tail {
            cut_torn_tail(fs, &path, torn)?;
            report.truncated.push((path, torn.offset, torn.len));
        }
    }
    Ok(report)
}

/// Cuts a torn tail off and makes the cut durable before anything is appended after it.
fn cut_torn_tail(fs: &dyn FileSystem, path: &Path, torn: TornTail) -> Result<()> {
    tracing::warn!(
        file = %path.display(),
        offset = torn.offset,
        bytes_cut = torn.len,
        "cutting torn wal tail"
    );
    let mut file = fs
        .open_append(path)
        .map_err(|e| Error::io("open", path, e))?;
    file.truncate(torn.offset)
        .map_err(|e| Error::io("truncate", path, e))?;
    file.sync_data().map_err(|e| Error::io("fsync", path, e))
}

/// A position in a file: `usize` always fits in `u64` on the platforms the engine supports.
fn offset(pos: usize) -> u64 {
    pos as u64
}
