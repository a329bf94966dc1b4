//! Deletions that the data files still hold: a user's or a whole tenant's events, hidden at
//! read time from the moment the deletion returns, until compaction has rewritten every
//! segment that held them. Persisted in the data directory's `TOMBSTONES` file (JSON,
//! replaced atomically) so that a restart keeps hiding them; a tombstone is removed once its
//! rows are physically gone, which takes the deleted id out of this file too.
//!
//! A tombstone covers the segments of its tenant's shard numbered below `before`: the
//! deletion flushes the shard first, so those hold every event stored before it, and events
//! written after it (new segments) stay visible.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::{FileSystem, write_atomic};
use crate::scan::ColumnBatch;
use crate::segment::SegmentId;

/// File name of the pending deletions, in the data directory.
pub const FILE_NAME: &str = "TOMBSTONES";
const FILE_VERSION: u32 = 1;

/// The tag that names an event's user.
pub const USER_TAG: &str = "user";

/// One pending deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Numbers tombstones in the order they were made.
    pub id: u64,
    /// The tenant.
    pub tenant: String,
    /// The user (tag `user`), or `None` for the whole tenant.
    pub user: Option<String>,
    /// The tenant's shard.
    pub shard: usize,
    /// Segments numbered below this one hold rows the deletion hides.
    pub before: u64,
    /// When the deletion was made, ns since the epoch.
    pub at: i64,
    /// `subtract` when the deleted events' contributions are taken out of the rollups,
    /// `keep` when the rollups keep them.
    #[serde(default = "keep")]
    pub rollups: String,
    /// Set once the contributions are taken out (`subtract` only).
    #[serde(default)]
    pub deducted: bool,
}

fn keep() -> String {
    "keep".to_owned()
}

impl Tombstone {
    /// Whether it hides rows of segment `id` of shard `shard`.
    pub fn covers(&self, shard: usize, id: SegmentId) -> bool {
        self.shard == shard && id.0 < self.before
    }

    /// The rows of `batch` it hides, `None` when it hides none; `batch` must carry the
    /// `user` tag column when this is a user's tombstone (a batch without it has no user).
    fn hides(&self, batch: &ColumnBatch) -> Option<Vec<bool>> {
        if batch.tenant.as_str() != self.tenant {
            return None;
        }
        match &self.user {
            None => Some(vec![true; batch.len()]),
            Some(user) => {
                let col = batch.tag(USER_TAG)?;
                let id = col.dict.iter().position(|v| v == user)? as u32;
                Some(col.ids.iter().map(|&i| i == id).collect())
            }
        }
    }
}

/// The rows of `batch` that none of `tombstones` hides.
pub fn visible(tombstones: &[Tombstone], batch: &ColumnBatch) -> Option<ColumnBatch> {
    let mut hidden: Option<Vec<bool>> = None;
    for t in tombstones {
        if let Some(h) = t.hides(batch) {
            match &mut hidden {
                None => hidden = Some(h),
                Some(all) => all.iter_mut().zip(h).for_each(|(a, b)| *a |= b),
            }
        }
    }
    hidden.map(|h| batch.filter_rows(|i| !h[i]))
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    next_id: u64,
    tombstones: Vec<Tombstone>,
}

/// The pending deletions of a data directory.
#[derive(Debug)]
pub struct Tombstones {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    state: RwLock<(u64, Vec<Tombstone>)>,
    /// Bumped by every addition: a compaction that read its segments before a deletion
    /// does not commit rows the deletion hides.
    generation: AtomicU64,
}

impl Tombstones {
    /// Reads the pending deletions of data directory `dir`.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Tombstones> {
        let path = dir.join(FILE_NAME);
        let state = match fs.read(&path) {
            Ok(bytes) => {
                let corrupt = |why: String| Corruption::new(&path, 0, CorruptionKind::Invalid(why));
                let stored: Stored = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(format!("not a valid deletion list: {e}")))?;
                if stored.version != FILE_VERSION {
                    let v = u16::try_from(stored.version).unwrap_or(u16::MAX);
                    return Err(Corruption::new(&path, 0, CorruptionKind::UnknownVersion(v)).into());
                }
                (stored.next_id, stored.tombstones)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (1, Vec::new()),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        Ok(Tombstones {
            fs,
            path,
            state: RwLock::new(state),
            generation: AtomicU64::new(0),
        })
    }

    /// Records a deletion (durably) and returns it.
    pub fn add(
        &self,
        tenant: &str,
        user: Option<&str>,
        shard: usize,
        before: SegmentId,
        at: i64,
        rollups: crate::RollupsOnDelete,
    ) -> Result<Tombstone> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let t = Tombstone {
            id: state.0,
            tenant: tenant.to_owned(),
            user: user.map(str::to_owned),
            shard,
            before: before.0,
            at,
            rollups: rollups.to_string(),
            deducted: false,
        };
        let mut list = state.1.clone();
        list.push(t.clone());
        self.store(state.0 + 1, &list)?;
        *state = (state.0 + 1, list);
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(t)
    }

    /// Records that tombstone `id`'s contributions are out of the rollups.
    pub fn mark_deducted(&self, id: u64) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut list = state.1.clone();
        list.iter_mut()
            .filter(|t| t.id == id)
            .for_each(|t| t.deducted = true);
        self.store(state.0, &list)?;
        state.1 = list;
        Ok(())
    }

    /// Forgets the tombstones `ids` (their rows are physically gone).
    pub fn remove(&self, ids: &[u64]) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let list: Vec<Tombstone> = state
            .1
            .iter()
            .filter(|t| !ids.contains(&t.id))
            .cloned()
            .collect();
        if list.len() == state.1.len() {
            return Ok(());
        }
        self.store(state.0, &list)?;
        state.1 = list;
        Ok(())
    }

    fn store(&self, next_id: u64, list: &[Tombstone]) -> Result<()> {
        let stored = Stored {
            version: FILE_VERSION,
            next_id,
            tombstones: list.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| Error::InvalidOptions(format!("encoding {FILE_NAME}: {e}")))?;
        write_atomic(&*self.fs, &self.path, &bytes)
    }

    /// The tombstones that hide rows of segment `id` of shard `shard`.
    pub fn covering(&self, shard: usize, id: SegmentId) -> Vec<Tombstone> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .1
            .iter()
            .filter(|t| t.covers(shard, id))
            .cloned()
            .collect()
    }

    /// Every pending tombstone.
    pub fn all(&self) -> Vec<Tombstone> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// Makes running compactions stale, before a deletion is recorded.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes with every addition.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFs;
    use crate::model::TenantId;
    use crate::scan::{FieldColumn, FieldValues, TagColumn};

    fn batch(tenant: &str, users: &[&str]) -> ColumnBatch {
        ColumnBatch {
            presence: Vec::new(),
            tenant: TenantId::new(tenant),
            measurement: "api_calls".into(),
            timestamps: (0..users.len() as i64).collect(),
            tags: vec![TagColumn {
                key: USER_TAG.into(),
                dict: users.iter().map(|u| (*u).to_owned()).collect(),
                ids: (0..users.len() as u32).collect(),
            }],
            fields: vec![FieldColumn {
                key: "n".into(),
                values: FieldValues::I64(vec![Some(1); users.len()]),
            }],
            event_ids: None,
        }
    }

    #[test]
    fn tombstones_persist_and_hide_only_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
        let t = Tombstones::open(fs.clone(), dir.path()).unwrap();
        let gen0 = t.generation();
        let a = t
            .add(
                "acme",
                Some("bob"),
                1,
                SegmentId(10),
                5,
                crate::RollupsOnDelete::Keep,
            )
            .unwrap();
        assert_ne!(t.generation(), gen0);
        let t = Tombstones::open(fs.clone(), dir.path()).unwrap();
        assert_eq!(t.all(), vec![a.clone()]);
        assert_eq!(t.covering(1, SegmentId(9)), vec![a.clone()]);
        assert!(t.covering(1, SegmentId(10)).is_empty());
        assert!(t.covering(0, SegmentId(9)).is_empty());
        let kept = visible(
            std::slice::from_ref(&a),
            &batch("acme", &["al", "bob", "cy"]),
        )
        .unwrap();
        assert_eq!(kept.tags[0].dict, vec!["al".to_owned(), "cy".to_owned()]);
        assert!(visible(std::slice::from_ref(&a), &batch("other", &["bob"])).is_none());
        t.remove(&[a.id]).unwrap();
        let t = Tombstones::open(fs, dir.path()).unwrap();
        assert!(t.all().is_empty());
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("bob"), "{text}");
    }

    #[test]
    fn a_damaged_file_is_corruption_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{oops").unwrap();
        let err = Tombstones::open(Arc::new(StdFs), dir.path()).unwrap_err();
        assert!(err.to_string().contains(FILE_NAME), "{err}");
    }
}
