//! The audit log of deletions: `AUDIT.log` in the data directory, one JSON object per line,
//! appended and fsynced before a deletion returns. It names users by the SHA-256 of their
//! id, never by the id itself, so that once the data files are purged the id is nowhere in
//! the directory; whoever knows the id can still find its entries.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fs::FileSystem;

/// File name of the audit log, in the data directory.
pub const FILE_NAME: &str = "AUDIT.log";

/// One entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// When, RFC 3339.
    pub time: String,
    /// `delete_user`, `delete_tenant` or `purged` (the rows are physically gone).
    pub action: &'static str,
    /// The tenant.
    pub tenant: String,
    /// SHA-256 of the user id (hex), for a user's deletion.
    pub user_sha256: Option<String>,
    /// The deletion's number.
    pub tombstone: u64,
    /// Events hidden by the deletion (for `delete_*`).
    pub events: Option<u64>,
    /// What happens to the rollups (`keep` or `subtract`).
    pub rollups: String,
}

/// The hex SHA-256 of a user id, as the audit log and the rollup files name deleted users.
pub fn user_digest(user: &str) -> String {
    Sha256::digest(user.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The audit log of a data directory.
#[derive(Debug)]
pub struct AuditLog {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    lock: Mutex<()>,
}

impl AuditLog {
    /// The log of data directory `dir` (created at its first entry).
    pub fn new(fs: Arc<dyn FileSystem>, dir: &Path) -> AuditLog {
        AuditLog {
            fs,
            path: dir.join(FILE_NAME),
            lock: Mutex::new(()),
        }
    }

    /// Appends `entry` and makes it durable.
    pub fn record(&self, entry: &AuditEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| Error::InvalidOptions(format!("encoding an audit entry: {e}")))?;
        line.push(b'\n');
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let io = |op: &'static str| move |e| Error::io(op, &self.path, e);
        let mut file = match self.fs.open_append(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = self.fs.create(&self.path).map_err(io("create"))?;
                if let Some(dir) = self.path.parent() {
                    self.fs.sync_dir(dir).map_err(io("fsync directory of"))?;
                }
                f
            }
            Err(e) => return Err(io("open")(e)),
        };
        file.write_all(&line).map_err(io("append to"))?;
        file.sync_data().map_err(io("fsync"))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
