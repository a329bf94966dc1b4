//! A fault-injecting [`FileSystem`] for tests (feature `failpoints`): wraps another file system
//! and makes chosen operations fail, so that tests pick the failure point instead of hoping
//! for it. One instance per test: no global state, tests stay parallel.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{FileBytes, FileSystem, LockGuard, WritableFile};

/// The operations a fault can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Creating a file.
    Create,
    /// Writing to a file.
    Write,
    /// fdatasync of a file.
    Sync,
    /// Renaming a file.
    Rename,
    /// fsync of a directory.
    SyncDir,
    /// Removing a file.
    Remove,
}

/// What a fault does when it triggers.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// The operation fails with this error.
    Fail(io::ErrorKind),
    /// The process dies on the spot, as with `kill -9` (for crash tests in a child process).
    Crash,
}

#[derive(Debug, Default)]
struct Plan {
    /// (kind, path substring, operations of that kind to let through first, action)
    faults: Vec<(FaultKind, String, u64, Action)>,
    counts: std::collections::HashMap<FaultKind, u64>,
}

impl Plan {
    fn check(&mut self, kind: FaultKind, path: &Path) -> io::Result<()> {
        *self.counts.entry(kind).or_default() += 1;
        let path = path.to_string_lossy();
        for (k, part, skip, action) in &mut self.faults {
            if *k == kind && path.contains(part.as_str()) {
                if *skip == 0 {
                    return match action {
                        Action::Fail(err) => Err(io::Error::new(
                            *err,
                            format!("injected {kind:?} fault on {path}"),
                        )),
                        Action::Crash => std::process::abort(),
                    };
                }
                *skip -= 1;
            }
        }
        Ok(())
    }
}

/// A file system that fails the operations it is told to.
#[derive(Clone)]
pub struct FaultyFs {
    inner: Arc<dyn FileSystem>,
    plan: Arc<Mutex<Plan>>,
}

impl fmt::Debug for FaultyFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyFs").finish_non_exhaustive()
    }
}

impl FaultyFs {
    /// Wraps `inner`; no faults until some are added.
    pub fn new(inner: Arc<dyn FileSystem>) -> FaultyFs {
        FaultyFs {
            inner,
            plan: Arc::default(),
        }
    }

    /// From now on, operations of `kind` on paths containing `path_part` fail with `error`
    /// after `skip` of them have succeeded, until [`FaultyFs::clear`].
    pub fn fail(&self, kind: FaultKind, path_part: &str, skip: u64, error: io::ErrorKind) {
        self.lock()
            .faults
            .push((kind, path_part.to_owned(), skip, Action::Fail(error)));
    }

    /// The process aborts (no destructor runs, nothing more reaches the disk) at the operation
    /// of `kind` on a path containing `path_part`, after `skip` of them have succeeded. Before
    /// the operation: a crash "at rename" leaves the file under its old name.
    pub fn crash(&self, kind: FaultKind, path_part: &str, skip: u64) {
        self.lock()
            .faults
            .push((kind, path_part.to_owned(), skip, Action::Crash));
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.lock().faults.clear();
    }

    /// How many operations of `kind` were attempted.
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.lock().counts.get(&kind).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, kind: FaultKind, path: &Path) -> io::Result<()> {
        self.lock().check(kind, path)
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn WritableFile>,
    path: std::path::PathBuf,
    fs: FaultyFs,
}

impl WritableFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Err(e) = self.fs.check(FaultKind::Write, &self.path) {
            // A failing write may still have written a part, as a real short write does.
            self.inner.write_all(&buf[..buf.len() / 2])?;
            return Err(e);
        }
        self.inner.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.check(FaultKind::Sync, &self.path)?;
        self.inner.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
}

impl FileSystem for FaultyFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check(FaultKind::Create, path)?;
        Ok(Box::new(FaultyFile {
            inner: self.inner.create(path)?,
            path: path.to_owned(),
            fs: self.clone(),
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.open_append(path)?,
            path: path.to_owned(),
            fs: self.clone(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }

    fn map(&self, path: &Path) -> io::Result<FileBytes> {
        self.inner.map(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultKind::Rename, to)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(FaultKind::Remove, path)?;
        self.inner.remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check(FaultKind::SyncDir, path)?;
        self.inner.sync_dir(path)
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list(path)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        self.inner.len(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        self.inner.lock(path)
    }
}
