//! The write-ahead log: framed, checksummed records in rolled files; replay with torn-tail
//! truncation and resynchronisation past damaged records.
//!
//! Payload-agnostic: a record is a sequence number and opaque bytes (the shard stores encoded
//! [`crate::WriteBatch`]es). Knows nothing of segments or the manifest.

use std::path::{Path, PathBuf};

use crate::error::{Corruption, Result};
use crate::fs::FileSystem;
use crate::model::SeqNo;

/// Appends one framed record (`seq`, `payload`) to `out`; a group of frames is then written
/// with one [`WalWriter::write`] and made durable with one [`WalWriter::sync`].
pub fn encode_frame(out: &mut Vec<u8>, seq: SeqNo, payload: &[u8]) {
    let _ = (out, seq, payload);
    unimplemented!("wal::encode_frame")
}

/// An open WAL file being appended to.
#[derive(Debug)]
pub struct WalWriter {}

impl WalWriter {
    /// Creates WAL file number `file_no` in `dir` (with its header) and fsyncs the directory.
    pub fn create(fs: &dyn FileSystem, dir: &Path, file_no: u64) -> Result<WalWriter> {
        let _ = (fs, dir, file_no);
        unimplemented!()
    }

    /// The file's number.
    pub fn file_no(&self) -> u64 {
        unimplemented!()
    }

    /// Bytes in the file so far.
    pub fn len(&self) -> u64 {
        unimplemented!()
    }

    /// Appends already framed bytes. On error the file is cut back to its length before the
    /// call, so that a failed write leaves no partial frame behind (if that cut fails too,
    /// the error says so and the caller must roll to a new file).
    pub fn write(&mut self, frames: &[u8]) -> Result<()> {
        let _ = frames;
        unimplemented!()
    }

    /// fdatasync.
    pub fn sync(&mut self) -> Result<()> {
        unimplemented!()
    }
}

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

/// The WAL files in `dir`, by ascending number.
pub fn list_files(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let _ = (fs, dir);
    unimplemented!()
}

/// Replays every record of every WAL file in `dir`, oldest first, calling `visit` with each
/// record's sequence number, payload, file and offset. Torn tails are truncated (and reported),
/// damaged records in the middle are reported and skipped.
pub fn replay(
    fs: &dyn FileSystem,
    dir: &Path,
    visit: &mut dyn FnMut(SeqNo, &[u8], &Path, u64) -> Result<()>,
) -> Result<ReplayReport> {
    let _ = (fs, dir, visit);
    unimplemented!()
}

/// Removes the WAL files numbered below `file_no`; returns how many.
pub fn remove_files_below(fs: &dyn FileSystem, dir: &Path, file_no: u64) -> Result<usize> {
    let _ = (fs, dir, file_no);
    unimplemented!()
}
