//! The tenants' usage limits: kept in memory for the check path, persisted in the data
//! directory's `LIMITS` file, and the grace state each limit carries between checks.
//!
//! # The `LIMITS` file
//!
//! JSON, `{"version":1,"tenants":{"<tenant>":[<limit>, ...]}}`, each limit in the spec's JSON
//! form with its `id` ([`UsageLimit`]). Every change rewrites the whole file with
//! [`write_atomic`] (temp file, fsync, rename, directory fsync) through the engine's file
//! layer, and only then becomes visible: a change that could not be persisted is not made,
//! and a crash leaves the old file or the new one. Limits change rarely (an administrator's
//! action), so rewriting the file is cheaper than a log would be to get right.
//!
//! Grace states are not persisted: after a restart, a hard limit that was reached gets its
//! grace period again (at most `LIMITS_GRACE_PERIOD_MINUTES` more of allowed traffic).
//!
//! **Invariant:** readers ([`LimitStore::of`]) take a read lock for a hash lookup and an `Arc`
//! clone, nothing else; writers serialise on their own mutex, so a slow `fsync` never blocks
//! a check.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::{FileSystem, write_atomic};
use crate::model::limits::MAX_TENANT_LEN;
use crate::usage::{GraceState, LimitError, UsageLimit};

/// Name of the limits file in the data directory.
pub const LIMITS_FILE: &str = "LIMITS";
/// Version of the file's layout.
const FILE_VERSION: u32 = 1;
/// Most limits one tenant may have: enough for every meter and period, few enough that a
/// check stays fast and a client in a loop cannot grow memory without bound.
pub const MAX_LIMITS_PER_TENANT: usize = 100;

/// One limit and the grace state its checks carry.
#[derive(Debug)]
pub struct LimitEntry {
    /// The limit; its `id` is always set.
    pub limit: Arc<UsageLimit>,
    /// When the limit was first found reached in its current period (see
    /// [`crate::usage::check`]).
    pub grace: Mutex<GraceState>,
}

impl LimitEntry {
    fn new(limit: UsageLimit, grace: GraceState) -> Arc<LimitEntry> {
        Arc::new(LimitEntry {
            limit: Arc::new(limit),
            grace: Mutex::new(grace),
        })
    }

    /// The limit's id.
    pub fn id(&self) -> &str {
        self.limit.id.as_deref().unwrap_or_default()
    }

    fn grace_state(&self) -> GraceState {
        *self.grace.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A tenant's limits, in creation order.
pub type TenantLimits = Arc<[Arc<LimitEntry>]>;

/// Every tenant's limits.
#[derive(Debug)]
pub struct LimitStore {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    tenants: RwLock<HashMap<String, TenantLimits>>,
    /// Serialises changes, so that two creations never persist from the same old state.
    admin: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct LimitsFile {
    version: u32,
    tenants: BTreeMap<String, Vec<UsageLimit>>,
}

impl LimitStore {
    /// Loads the limits file of data directory `dir` (none yet: no limits).
    ///
    /// # Errors
    /// [`Error::Corruption`] when the file is not a valid limits file; I/O errors.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<LimitStore> {
        let path = dir.join(LIMITS_FILE);
        let mut tenants = HashMap::new();
        match fs.read(&path) {
            Ok(bytes) => {
                let corrupt = |why: String| {
                    Error::from(Corruption::new(&path, 0, CorruptionKind::Invalid(why)))
                };
                let file: LimitsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(format!("not a limits file: {e}")))?;
                if file.version != FILE_VERSION {
                    return Err(Corruption::new(
                        &path,
                        0,
                        CorruptionKind::UnknownVersion(
                            u16::try_from(file.version).unwrap_or(u16::MAX),
                        ),
                    )
                    .into());
                }
                for (tenant, limits) in file.tenants {
                    if limits.iter().any(|l| l.id.is_none()) {
                        return Err(corrupt(format!("a limit of tenant {tenant:?} has no id")));
                    }
                    let entries: Vec<_> = limits
                        .into_iter()
                        .map(|l| LimitEntry::new(l, GraceState::default()))
                        .collect();
                    tenants.insert(tenant, entries.into());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &path, e)),
        }
        Ok(LimitStore {
            fs,
            path,
            tenants: RwLock::new(tenants),
            admin: Mutex::new(()),
        })
    }

    /// `tenant`'s limits (empty when it has none). The check path: one read lock, one lookup.
    pub fn of(&self, tenant: &str) -> Option<TenantLimits> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
    }

    /// `tenant`'s limit `id`.
    pub fn get(&self, tenant: &str, id: &str) -> Result<Arc<LimitEntry>> {
        self.of(tenant)
            .and_then(|l| l.iter().find(|e| e.id() == id).cloned())
            .ok_or_else(|| unknown(tenant, id))
    }

    /// Adds `limit` to `tenant` with a new id; returns it as stored.
    ///
    /// # Errors
    /// [`Error::InvalidLimit`] when it does not validate, carries an id, the tenant name is
    /// invalid or the tenant has [`MAX_LIMITS_PER_TENANT`] limits already; I/O errors (then
    /// nothing changed).
    pub fn create(&self, tenant: &str, mut limit: UsageLimit) -> Result<Arc<UsageLimit>> {
        check_tenant(tenant)?;
        if let Some(id) = &limit.id {
            return Err(invalid(
                "id",
                format!(
                    "ids are assigned by the server; remove \"id\" ({:?}) from the new limit",
                    crate::usage::meter::clip(id)
                ),
            ));
        }
        limit.validate().map_err(Error::InvalidLimit)?;
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = self.of(tenant).map(|l| l.to_vec()).unwrap_or_default();
        if list.len() >= MAX_LIMITS_PER_TENANT {
            return Err(invalid(
                "id",
                format!(
                    "tenant {:?} has {MAX_LIMITS_PER_TENANT} limits, the most allowed; delete one first",
                    crate::usage::meter::clip(tenant)
                ),
            ));
        }
        limit.id = Some(new_id());
        let entry = LimitEntry::new(limit, GraceState::default());
        let stored = entry.limit.clone();
        list.push(entry);
        self.commit(tenant, list)?;
        Ok(stored)
    }

    /// Replaces `tenant`'s limit `id` with `limit` (whose `id`, if set, must be `id`); the
    /// grace state carries over, so that editing a limit does not grant a second grace
    /// period in the same period.
    ///
    /// # Errors
    /// [`Error::UnknownLimit`], [`Error::InvalidLimit`], I/O errors (then nothing changed).
    pub fn update(&self, tenant: &str, id: &str, mut limit: UsageLimit) -> Result<Arc<UsageLimit>> {
        if limit.id.as_deref().is_some_and(|given| given != id) {
            return Err(invalid(
                "id",
                format!(
                    "the body's id {:?} differs from the id {:?} in the path; ids cannot change",
                    crate::usage::meter::clip(limit.id.as_deref().unwrap_or_default()),
                    crate::usage::meter::clip(id)
                ),
            ));
        }
        limit.validate().map_err(Error::InvalidLimit)?;
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = self.of(tenant).map(|l| l.to_vec()).unwrap_or_default();
        let slot = list
            .iter_mut()
            .find(|e| e.id() == id)
            .ok_or_else(|| unknown(tenant, id))?;
        limit.id = Some(id.to_owned());
        let entry = LimitEntry::new(limit, slot.grace_state());
        let stored = entry.limit.clone();
        *slot = entry;
        self.commit(tenant, list)?;
        Ok(stored)
    }

    /// Deletes `tenant`'s limit `id`.
    ///
    /// # Errors
    /// [`Error::UnknownLimit`], I/O errors (then nothing changed).
    pub fn delete(&self, tenant: &str, id: &str) -> Result<()> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = self.of(tenant).map(|l| l.to_vec()).unwrap_or_default();
        let before = list.len();
        list.retain(|e| e.id() != id);
        if list.len() == before {
            return Err(unknown(tenant, id));
        }
        self.commit(tenant, list)
    }

    /// Persists the state with `tenant`'s limits replaced by `list`, then makes it visible.
    /// Called with `admin` held.
    fn commit(&self, tenant: &str, list: Vec<Arc<LimitEntry>>) -> Result<()> {
        let mut file = LimitsFile {
            version: FILE_VERSION,
            tenants: BTreeMap::new(),
        };
        {
            let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
            for (t, limits) in tenants.iter().filter(|(t, _)| t.as_str() != tenant) {
                file.tenants.insert(
                    t.clone(),
                    limits.iter().map(|e| (*e.limit).clone()).collect(),
                );
            }
        }
        if !list.is_empty() {
            file.tenants.insert(
                tenant.to_owned(),
                list.iter().map(|e| (*e.limit).clone()).collect(),
            );
        }
        let bytes = serde_json::to_vec(&file)
            .map_err(|e| Error::InvalidOptions(format!("limits cannot be encoded: {e}")))?;
        write_atomic(&*self.fs, &self.path, &bytes)?;
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        if list.is_empty() {
            tenants.remove(tenant);
        } else {
            tenants.insert(tenant.to_owned(), list.into());
        }
        Ok(())
    }
}

fn unknown(tenant: &str, id: &str) -> Error {
    Error::UnknownLimit {
        tenant: crate::usage::meter::clip(tenant),
        id: crate::usage::meter::clip(id),
    }
}

fn invalid(key: &'static str, reason: String) -> Error {
    Error::InvalidLimit(LimitError::Invalid { key, reason })
}

fn check_tenant(tenant: &str) -> Result<()> {
    if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN {
        return Err(invalid(
            "tenant",
            format!(
                "{:?} is not a tenant name: use 1 to {MAX_TENANT_LEN} bytes",
                crate::usage::meter::clip(tenant)
            ),
        ));
    }
    Ok(())
}

/// A random version-4 UUID, in its usual text form: ids that never repeat and reveal nothing
/// (no count of limits, no time).
fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness (never seen on supported systems): fall back to the clock and a
        // counter, which still never repeat within a process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..].copy_from_slice(&n.to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::std_fs;
    use crate::usage::{LimitType, PeriodType};

    fn limit(name: &str) -> UsageLimit {
        UsageLimit::new(
            name,
            LimitType::HardLimit,
            "api_calls",
            10.0,
            PeriodType::Day,
        )
    }

    #[test]
    fn ids_are_uuid_v4_and_distinct() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn crud_persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let store = LimitStore::open(std_fs(), dir.path()).unwrap();
        let a = store.create("acme", limit("a")).unwrap();
        let b = store.create("acme", limit("b")).unwrap();
        store.create("globex", limit("c")).unwrap();
        let id_a = a.id.clone().unwrap();
        let mut changed = limit("a2");
        changed.limit_value = 20.0;
        store.update("acme", &id_a, changed).unwrap();
        store.delete("acme", b.id.as_deref().unwrap()).unwrap();
        assert!(matches!(
            store.delete("acme", "nope"),
            Err(Error::UnknownLimit { .. })
        ));
        drop(store);
        let store = LimitStore::open(std_fs(), dir.path()).unwrap();
        let acme = store.of("acme").unwrap();
        assert_eq!(acme.len(), 1);
        assert_eq!(acme[0].limit.limit_name, "a2");
        assert_eq!(acme[0].limit.limit_value, 20.0);
        assert_eq!(acme[0].id(), id_a);
        assert_eq!(store.of("globex").unwrap().len(), 1);
    }

    #[test]
    fn bad_limits_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LimitStore::open(std_fs(), dir.path()).unwrap();
        let mut with_id = limit("x");
        with_id.id = Some("mine".into());
        let err = store.create("acme", with_id).unwrap_err().to_string();
        assert!(err.contains("assigned by the server"), "{err}");
        let mut zero = limit("x");
        zero.limit_value = 0.0;
        assert!(matches!(
            store.create("acme", zero),
            Err(Error::InvalidLimit(_))
        ));
        assert!(matches!(
            store.create("", limit("x")),
            Err(Error::InvalidLimit(_))
        ));
        assert!(store.of("acme").is_none());
        for i in 0..MAX_LIMITS_PER_TENANT {
            store.create("acme", limit(&format!("l{i}"))).unwrap();
        }
        let err = store.create("acme", limit("one more")).unwrap_err();
        assert!(err.to_string().contains("the most allowed"), "{err}");
    }

    #[test]
    fn a_damaged_file_is_reported_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LIMITS_FILE), b"{not json").unwrap();
        let err = LimitStore::open(std_fs(), dir.path()).unwrap_err();
        assert!(matches!(err, Error::Corruption(_)), "{err}");
    }
}
