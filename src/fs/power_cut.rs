//! An in-memory [`FileSystem`] that simulates power loss (feature `failpoints`): at
//! [`PowerCutFs::cut`] it forgets everything the engine had not made durable, as the strictest
//! POSIX reading allows — file bytes not yet `fdatasync`ed, and directory entries (creations,
//! renames, removals) whose directory was not fsynced since. A crash test over it checks the
//! engine's write protocol itself, not the forgiving habits of one kernel's file system.
//!
//! Simplifications, none of which the engine relies on: directories are durable as soon as
//! they are created; a file is only ever appended to or cut back to a length it had, so its
//! durable bytes are a prefix of its current bytes; a file opened with `create` is a new file
//! (an old file of that name keeps its durable bytes under that name until the directory is
//! synced, as an unlinked inode would).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileBytes, FileSystem, LockGuard, WritableFile};

#[derive(Debug, Default)]
struct Inode {
    bytes: Vec<u8>,
    /// Length of the prefix that an `fdatasync` made durable.
    durable_len: usize,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    /// The namespace as the running process sees it.
    names: BTreeMap<PathBuf, usize>,
    /// The namespace a power cut would leave: entries of each directory as of its last fsync.
    durable_names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    /// Set by a power cut: the machine is off, every operation fails.
    off: bool,
}

impl State {
    fn check_on(&self) -> io::Result<()> {
        if self.off {
            return Err(io::Error::other("the power is off"));
        }
        Ok(())
    }

    fn inode_of(&self, path: &Path) -> io::Result<usize> {
        self.check_on()?;
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }

    fn check_dir(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new(""));
        if !self.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory {}", dir.display()),
            ));
        }
        Ok(())
    }
}

/// The in-memory file system; clones share the same files.
#[derive(Clone, Default)]
pub struct PowerCutFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for PowerCutFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerCutFs").finish_non_exhaustive()
    }
}

impl PowerCutFs {
    /// An empty file system with its power on.
    pub fn new() -> PowerCutFs {
        PowerCutFs::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the power: from now on every operation on this file system (and its clones) fails,
    /// as the process would be gone. Returns the file system a reboot finds: only what was
    /// durable at this instant.
    pub fn cut(&self) -> PowerCutFs {
        let mut state = self.state();
        state.off = true;
        let mut after = State {
            dirs: state.dirs.clone(),
            ..State::default()
        };
        let mut renumbered = BTreeMap::new();
        for (path, &ino) in &state.durable_names {
            let new = *renumbered.entry(ino).or_insert_with(|| {
                let inode = &state.inodes[ino];
                after.inodes.push(Inode {
                    bytes: inode.bytes[..inode.durable_len].to_vec(),
                    durable_len: inode.durable_len,
                });
                after.inodes.len() - 1
            });
            after.names.insert(path.clone(), new);
        }
        after.durable_names = after.names.clone();
        PowerCutFs {
            state: Arc::new(Mutex::new(after)),
        }
    }
}

#[derive(Debug)]
struct PowerCutFile {
    fs: PowerCutFs,
    ino: usize,
}

impl WritableFile for PowerCutFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut state = self.fs.state();
        state.check_on()?;
        state.inodes[self.ino].bytes.extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.fs.state();
        state.check_on()?;
        let inode = &mut state.inodes[self.ino];
        inode.durable_len = inode.bytes.len();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut state = self.fs.state();
        state.check_on()?;
        let inode = &mut state.inodes[self.ino];
        let len = usize::try_from(len).map_err(io::Error::other)?;
        inode.bytes.truncate(len);
        inode.durable_len = inode.durable_len.min(len);
        Ok(())
    }
}

impl FileSystem for PowerCutFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.check_on()?;
        for dir in path.ancestors() {
            state.dirs.insert(dir.to_owned());
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut state = self.state();
        state.check_on()?;
        state.check_dir(path)?;
        state.inodes.push(Inode::default());
        let ino = state.inodes.len() - 1;
        state.names.insert(path.to_owned(), ino);
        Ok(Box::new(PowerCutFile {
            fs: self.clone(),
            ino,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let ino = self.state().inode_of(path)?;
        Ok(Box::new(PowerCutFile {
            fs: self.clone(),
            ino,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.state();
        let ino = state.inode_of(path)?;
        Ok(state.inodes[ino].bytes.clone())
    }

    fn map(&self, path: &Path) -> io::Result<FileBytes> {
        self.read(path).map(FileBytes::Owned)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        let ino = state.inode_of(from)?;
        state.check_dir(to)?;
        state.names.remove(from);
        state.names.insert(to.to_owned(), ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.inode_of(path)?;
        state.names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.check_on()?;
        let in_dir = |p: &Path| p.parent() == Some(path);
        state.durable_names.retain(|p, _| !in_dir(p));
        let entries: Vec<_> = state
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &ino)| (p.clone(), ino))
            .collect();
        state.durable_names.extend(entries);
        Ok(())
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        state.check_on()?;
        if !state.dirs.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                path.display().to_string(),
            ));
        }
        let mut names: Vec<String> = state
            .names
            .keys()
            .filter(|p| p.parent() == Some(path))
            .chain(state.dirs.iter().filter(|d| d.parent() == Some(path)))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        let state = self.state();
        let ino = state.inode_of(path)?;
        Ok(state.inodes[ino].bytes.len() as u64)
    }

    fn lock(&self, _path: &Path) -> io::Result<Option<LockGuard>> {
        // One engine per file system in the tests that use it: nothing to exclude.
        self.state().check_on()?;
        Ok(Some(LockGuard { _file: None }))
    }
}
