//! Appending to one WAL file.
//!
//! **Invariants:** the file never keeps a partial frame from a failed [`WalWriter::write`]
//! (the file is cut back to its previous length), and after a failed fsync or a failed cut the
//! writer refuses every further call: the kernel may have dropped unsynced pages, so the file's
//! content is unknown and the caller must roll to a new file (see
//! <https://www.usenix.org/conference/atc20/presentation/rebello>, "Can applications recover
//! from fsync failures?").

use std::io;
use std::path::{Path, PathBuf};

use super::file_path;
use super::record::{HEADER_LEN, encode_file_header};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::{FileSystem, WritableFile};

/// An open WAL file being appended to.
#[derive(Debug)]
pub struct WalWriter {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    file_no: u64,
    len: u64,
    /// Why the writer refuses further calls, once an fsync or a cut back has failed.
    poisoned: Option<&'static str>,
}

impl WalWriter {
    /// Creates WAL file number `file_no` in `dir` (with its header) and fsyncs the directory.
    ///
    /// # Errors
    ///
    /// `Error::Io` when the file already exists (a WAL file is never overwritten: it may hold
    /// records not yet flushed) or when creating, writing or syncing fails; the file is
    /// removed again after a failure.
    pub fn create(fs: &dyn FileSystem, dir: &Path, file_no: u64) -> Result<WalWriter> {
        let path = file_path(dir, file_no);
        if fs.len(&path).is_ok() {
            return Err(Error::io(
                "create",
                &path,
                io::Error::new(io::ErrorKind::AlreadyExists, "wal file already exists"),
            ));
        }
        let mut file = fs
            .create(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        encode_file_header(&mut header);
        let started = file
            .write_all(&header)
            .map_err(|e| Error::io("write", &path, e))
            .and_then(|()| file.sync_data().map_err(|e| Error::io("fsync", &path, e)))
            .and_then(|()| {
                fs.sync_dir(dir)
                    .map_err(|e| Error::io("fsync directory", dir, e))
            });
        if let Err(e) = started {
            // The file holds no record yet: removing it lets a later attempt (once the disk
            // has room again) create it afresh instead of finding it in the way.
            drop(file);
            let _ = fs.remove_file(&path);
            return Err(e);
        }
        Ok(WalWriter {
            file,
            path,
            file_no,
            len: HEADER_LEN as u64,
            poisoned: None,
        })
    }

    /// Opens the existing WAL file number `file_no` in `dir` to append to it. Call it after
    /// [`replay`](super::replay), which checked the header and cut any torn tail, so that new
    /// frames follow the last valid one.
    ///
    /// # Errors
    ///
    /// `Error::Io` when the file cannot be opened; `Error::Corruption` (`Truncated`) when it is
    /// shorter than a header.
    pub fn open_append(fs: &dyn FileSystem, dir: &Path, file_no: u64) -> Result<WalWriter> {
        let path = file_path(dir, file_no);
        let len = fs.len(&path).map_err(|e| Error::io("stat", &path, e))?;
        if len < HEADER_LEN as u64 {
            return Err(Corruption::new(&path, 0, CorruptionKind::Truncated).into());
        }
        let file = fs
            .open_append(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(WalWriter {
            file,
            path,
            file_no,
            len,
            poisoned: None,
        })
    }

    /// The file's number.
    pub fn file_no(&self) -> u64 {
        self.file_no
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file so far, header included.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no frame has been written to the file (it holds only its header).
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_LEN as u64
    }

    /// Appends already framed bytes. On error the file is cut back to its length before the
    /// call, so that a failed write leaves no partial frame behind (if that cut fails too,
    /// the error says so and the caller must roll to a new file).
    ///
    /// # Errors
    ///
    /// `Error::Io` (`op` "write") when the write fails or the writer was poisoned earlier.
    pub fn write(&mut self, frames: &[u8]) -> Result<()> {
        self.check_poisoned("write")?;
        let Err(write_err) = self.file.write_all(frames) else {
            self.len += frames.len() as u64;
            return Ok(());
        };
        match self.file.truncate(self.len) {
            Ok(()) => Err(Error::io("write", &self.path, write_err)),
            Err(cut_err) => {
                self.poisoned = Some("a failed write could not be cut back");
                let message = format!(
                    "{write_err}; cutting the file back to {} bytes also failed: {cut_err}",
                    self.len
                );
                Err(Error::io(
                    "write",
                    &self.path,
                    io::Error::new(write_err.kind(), message),
                ))
            }
        }
    }

    /// fdatasync: makes every frame written so far durable.
    ///
    /// # Errors
    ///
    /// `Error::Io` (`op` "fsync") when the sync fails or the writer was poisoned earlier. A
    /// failed sync poisons the writer: no later sync can prove the earlier frames durable.
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned("fsync")?;
        self.file.sync_data().map_err(|e| {
            self.poisoned = Some("an earlier fsync failed");
            Error::io("fsync", &self.path, e)
        })
    }

    fn check_poisoned(&self, op: &'static str) -> Result<()> {
        match self.poisoned {
            None => Ok(()),
            Some(why) => Err(Error::io(
                op,
                &self.path,
                io::Error::other(format!("wal file is unusable: {why}")),
            )),
        }
    }
}
