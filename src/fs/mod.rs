//! The file layer: every file operation of the engine goes through [`FileSystem`], so that tests
//! can replace it (`FaultyFs` fails chosen operations and `PowerCutFs` simulates power loss,
//! both behind the `failpoints` feature) and so that the crash-safety protocol of
//! storage-format.md is written once, in [`write_atomic`].
//!
//! **Invariant:** nothing else in the crate calls `std::fs` directly.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A file opened for appending.
pub trait WritableFile: Send + fmt::Debug {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes; later writes continue at `len`.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// Read-only bytes of a whole file: a memory map, or a copy for layers that cannot map.
pub enum FileBytes {
    /// A read-only memory map.
    Mapped(memmap2::Mmap),
    /// The file's bytes, read into memory.
    Owned(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

impl FileBytes {
    /// Lets the kernel drop the pages of a map from this process's memory: they stay in the
    /// page cache and are read back on the next access. A caller that has read what it needs
    /// from a large part of a file (the event ids of a whole segment) calls this so that the
    /// process's resident memory does not grow with the data it once scanned.
    pub fn release_pages(&self) {
        if let FileBytes::Mapped(m) = self {
            // SAFETY: the map is read-only and private over a sealed file (see `StdFs::map`):
            // its pages have no changes to lose, and refault with the same bytes.
            #[allow(unsafe_code)]
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileBytes({} bytes)", self.len())
    }
}

/// The operations the engine needs from a file system.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Maps a whole file read-only. The engine only maps files it does not write, truncate or
    /// rename over while the map lives.
    fn map(&self, path: &Path) -> io::Result<FileBytes>;
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Lists the names of a directory's entries.
    fn list(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Size of a file in bytes.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Takes the exclusive lock on `path` (created if missing), held until the returned guard
    /// is dropped. `Ok(None)` when another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
}

/// Holds a lock taken with [`FileSystem::lock`].
#[derive(Debug)]
pub struct LockGuard {
    _file: Option<File>,
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl WritableFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        use std::io::Seek;
        self.0.set_len(len)?;
        self.0.seek(io::SeekFrom::Start(len)).map(|_| ())
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(StdFile(File::create(path)?)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(StdFile(
            OpenOptions::new().append(true).open(path)?,
        )))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn map(&self, path: &Path) -> io::Result<FileBytes> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            // Mapping an empty file fails on some systems; there is nothing to map anyway.
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: the engine maps only files it does not change while they are mapped: sealed
        // segments, which it never writes, truncates or renames over, and removes only after
        // every reader has dropped its map (segments are reference-counted); and WAL files
        // during replay, before any writer exists, with each map dropped before a torn tail is
        // cut. See UNSAFE.md.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(FileBytes::Mapped(map))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { _file: Some(file) })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The default file system, shared.
pub fn std_fs() -> Arc<dyn FileSystem> {
    Arc::new(StdFs)
}

/// Writes `bytes` to `path` so that after a crash the path holds either its old content or all
/// of the new one: write a temporary file, fsync it, rename it over `path`, fsync the directory
/// (storage-format.md, "Write and commit protocol").
pub fn write_atomic(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let mut file = fs.create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("write", &tmp, e))?;
    file.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(file);
    fs.rename(&tmp, path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The temporary name a file is written under before its atomic rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TEMP_SUFFIX);
    path.with_file_name(name)
}

/// Suffix of files not yet renamed into place; recovery deletes them.
pub const TEMP_SUFFIX: &str = ".tmp";

#[cfg(feature = "failpoints")]
mod faulty;
#[cfg(feature = "failpoints")]
pub use faulty::{FaultKind, FaultyFs};
#[cfg(feature = "failpoints")]
mod power_cut;
#[cfg(feature = "failpoints")]
pub use power_cut::PowerCutFs;
