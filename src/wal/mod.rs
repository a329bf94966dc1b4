//! The write-ahead log: framed, checksummed records in rolled files; replay with torn-tail
//! truncation and resynchronisation past damaged records.
//!
//! Payload-agnostic: a record is a sequence number and opaque bytes (the shard stores encoded
//! [`crate::WriteBatch`]es). Knows nothing of segments or the manifest; the shard decides when
//! to roll to a new file, when to sync (group commit) and which files to trim after a flush.
//!
//! The byte layout is in storage-format.md, "WAL file"; `record.rs` encodes and decodes it,
//! `writer.rs` appends, `reader.rs` replays.
//!
//! **Invariants:**
//! - WAL files are named `{file_no:012}.wal`; [`file_name`] and [`parse_file_name`] are the
//!   only places that know it.
//! - A file is never overwritten and never keeps a partial frame from a failed write.
//! - Replay repairs only a torn tail (bytes after the last valid frame that no valid frame
//!   follows); every other kind of damage is reported, skipped, and the valid records after it
//!   are still replayed.
//! - Nothing here panics or allocates on a length read from disk.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

mod reader;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::model::SeqNo;

pub use reader::{FileReplay, ReplayReport, TornTail, Visit, replay, replay_bytes};
pub use record::{
    FILE_MAGIC, FORMAT_VERSION, FRAME_HEADER_LEN, FRAME_MAGIC, HEADER_LEN, MAX_RECORD_LEN,
    RecordTooLarge, check_record_len, encode_file_header, try_encode_frame,
};
pub use writer::WalWriter;

/// Suffix of WAL file names.
pub const FILE_SUFFIX: &str = ".wal";

/// Digits of the zero-padded file number in a WAL file name.
pub const FILE_NO_WIDTH: usize = 12;

/// Appends one framed record (`seq`, `payload`) to `out`; a group of frames is then written
/// with one [`WalWriter::write`] and made durable with one [`WalWriter::sync`].
///
/// # Panics
///
/// When `payload` is longer than [`MAX_RECORD_LEN`]: such a frame would be unreadable, and
/// written at the end of a file it would later be cut off as a torn tail, silently losing an
/// acknowledged write. Callers that cannot bound their payloads use [`try_encode_frame`].
pub fn encode_frame(out: &mut Vec<u8>, seq: SeqNo, payload: &[u8]) {
    if let Err(too_large) = try_encode_frame(out, seq, payload) {
        panic!("{too_large}");
    }
}

/// The name of WAL file number `file_no`: `{file_no:012}.wal`.
pub fn file_name(file_no: u64) -> String {
    format!("{file_no:0width$}{FILE_SUFFIX}", width = FILE_NO_WIDTH)
}

/// The number of the WAL file called `name`, or `None` when `name` is not exactly what
/// [`file_name`] builds (so that stray files such as `1.wal` or `x.wal.tmp` are ignored).
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(FILE_SUFFIX)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let file_no = digits.parse().ok()?;
    (file_name(file_no) == name).then_some(file_no)
}

/// The path of WAL file number `file_no` in `dir`.
pub fn file_path(dir: &Path, file_no: u64) -> PathBuf {
    dir.join(file_name(file_no))
}

/// The WAL files in `dir`, by ascending number.
///
/// # Errors
///
/// `Error::Io` when the directory exists but cannot be listed; a missing directory has no
/// files.
pub fn list_files(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let names = match fs.list(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut files: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|name| parse_file_name(name).map(|file_no| (file_no, dir.join(name))))
        .collect();
    files.sort_unstable_by_key(|&(file_no, _)| file_no);
    Ok(files)
}

/// Removes the WAL files of `dir` numbered below `file_no` (their records are in durable
/// segments) and fsyncs the directory; returns how many were removed.
///
/// # Errors
///
/// `Error::Io` when listing, removing or syncing fails. Files removed before the failure may
/// reappear after a crash, which is safe: replay hands their records over again and the shard
/// skips sequence numbers that are already in segments.
pub fn remove_files_below(fs: &dyn FileSystem, dir: &Path, file_no: u64) -> Result<usize> {
    let mut n_removed = 0;
    for (_, path) in list_files(fs, dir)?
        .into_iter()
        .filter(|&(no, _)| no < file_no)
    {
        fs.remove_file(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
        n_removed += 1;
    }
    if n_removed > 0 {
        fs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(n_removed)
}
