//! The meter registry: the built-in meters and each tenant's defined ones, with their rollup
//! ids, persisted in the data directory's `METERS` file (JSON, replaced atomically, so a crash
//! leaves the old list or the new one).
//!
//! Knows definitions and ids, not rollups: defining a meter here only records it; the engine
//! then has the tenant's shard start and backfill its rollups.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::{FileSystem, write_atomic};
use crate::rollup::MeterId;
use crate::usage::Meter;

/// File name of the registry in the data directory.
pub const FILE_NAME: &str = "METERS";

/// The `version` of the file this build writes and reads.
const FILE_VERSION: u32 = 1;

/// Ids of defined meters start here; the ones below belong to built-in meters.
const FIRST_DEFINED_ID: MeterId = 16;

/// A meter with its rollup id.
pub type IdMeter = (MeterId, Meter);

/// The built-in meters with their fixed ids (1 to 4, in [`Meter::builtins`] order).
pub fn builtins() -> Vec<IdMeter> {
    (1..).zip(Meter::builtins()).collect()
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    next_id: MeterId,
    /// Defined meters by tenant.
    tenants: HashMap<String, Vec<StoredMeter>>,
}

#[derive(Serialize, Deserialize)]
struct StoredMeter {
    id: MeterId,
    meter: Meter,
}

/// The meters of every tenant, in memory: the built-in ones for all, plus each tenant's
/// defined ones. The shard writers keep their own copy, changed only when a meter starts or
/// stops being maintained.
#[derive(Clone, Debug)]
pub struct MeterSet {
    builtins: Arc<[IdMeter]>,
    /// Built-in and defined meters of each tenant that has defined any.
    tenants: HashMap<String, Arc<[IdMeter]>>,
}

impl Default for MeterSet {
    fn default() -> MeterSet {
        MeterSet {
            builtins: builtins().into(),
            tenants: HashMap::new(),
        }
    }
}

impl MeterSet {
    /// The meters of `tenant`: the built-in ones, then its defined ones in creation order.
    pub fn meters_for(&self, tenant: &str) -> Arc<[IdMeter]> {
        self.tenants.get(tenant).unwrap_or(&self.builtins).clone()
    }

    /// Every meter id in the set.
    pub fn ids(&self) -> Vec<MeterId> {
        let mut ids: Vec<MeterId> = self.builtins.iter().map(|(id, _)| *id).collect();
        for meters in self.tenants.values() {
            ids.extend(
                meters
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|&id| id >= FIRST_DEFINED_ID),
            );
        }
        ids.sort_unstable();
        ids
    }

    /// Every tenant's defined meters (not the built-in ones).
    pub fn defined(&self) -> impl Iterator<Item = (&str, &IdMeter)> {
        self.tenants.iter().flat_map(|(tenant, meters)| {
            meters
                .iter()
                .filter(|(id, _)| *id >= FIRST_DEFINED_ID)
                .map(move |m| (tenant.as_str(), m))
        })
    }

    /// Adds a defined meter to `tenant`.
    pub fn insert(&mut self, tenant: &str, meter: IdMeter) {
        let all: Vec<IdMeter> = self
            .meters_for(tenant)
            .iter()
            .cloned()
            .chain([meter])
            .collect();
        self.tenants.insert(tenant.to_owned(), all.into());
    }

    /// Removes `tenant`'s meter `id`.
    pub fn remove(&mut self, tenant: &str, id: MeterId) {
        let rest: Vec<IdMeter> = self
            .meters_for(tenant)
            .iter()
            .filter(|(i, _)| *i != id)
            .cloned()
            .collect();
        if rest.len() == self.builtins.len() {
            self.tenants.remove(tenant);
        } else {
            self.tenants.insert(tenant.to_owned(), rest.into());
        }
    }
}

#[derive(Clone, Debug)]
struct State {
    next_id: MeterId,
    set: MeterSet,
}

/// Every tenant's meters, persisted.
#[derive(Debug)]
pub struct MeterRegistry {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    state: RwLock<State>,
}

impl MeterRegistry {
    /// Reads the registry of the data directory `dir` (empty when there is no file yet).
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<MeterRegistry> {
        let path = dir.join(FILE_NAME);
        let mut state = State {
            next_id: FIRST_DEFINED_ID,
            set: MeterSet::default(),
        };
        let bytes = match fs.read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        if let Some(bytes) = bytes {
            // A damaged list is corruption, not a bad setting: the definitions cannot be
            // guessed, and opening without them would stop counting the tenants' meters.
            let corrupt = |why: String| Corruption::new(&path, 0, CorruptionKind::Invalid(why));
            let stored: Stored = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(format!("not a valid meter list: {e}")))?;
            if stored.version != FILE_VERSION {
                let version = u16::try_from(stored.version).unwrap_or(u16::MAX);
                return Err(
                    Corruption::new(&path, 0, CorruptionKind::UnknownVersion(version)).into(),
                );
            }
            state.next_id = stored.next_id.max(FIRST_DEFINED_ID);
            for (tenant, meters) in stored.tenants {
                for m in meters {
                    if !(FIRST_DEFINED_ID..state.next_id).contains(&m.id) {
                        return Err(corrupt(format!(
                            "meter {:?} of tenant {tenant:?} has id {}, outside {FIRST_DEFINED_ID}..{}",
                            m.meter.name, m.id, state.next_id
                        ))
                        .into());
                    }
                    state.set.insert(&tenant, (m.id, m.meter));
                }
            }
        }
        Ok(MeterRegistry {
            fs,
            path,
            state: RwLock::new(state),
        })
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the current meters.
    pub fn snapshot(&self) -> MeterSet {
        self.state().set.clone()
    }

    /// The meters of `tenant`: the built-in ones, then its defined ones in creation order.
    pub fn meters_for(&self, tenant: &str) -> Arc<[IdMeter]> {
        self.state().set.meters_for(tenant)
    }

    /// The meter `name` of `tenant`.
    pub fn get(&self, tenant: &str, name: &str) -> Option<IdMeter> {
        self.meters_for(tenant)
            .iter()
            .find(|(_, m)| m.name == name)
            .cloned()
    }

    /// Checks that `meter` could be defined for `tenant` and reserves an id for it (persisted,
    /// so that an id is never given twice, even across a crash).
    ///
    /// # Errors
    /// [`Error::InvalidMeter`] for a definition that does not validate,
    /// [`Error::MeterExists`] when the tenant has a meter of that name (built-in names
    /// included), I/O errors from persisting the reservation.
    pub fn reserve(&self, tenant: &str, meter: &Meter) -> Result<MeterId> {
        meter.validate().map_err(Error::InvalidMeter)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state
            .set
            .meters_for(tenant)
            .iter()
            .any(|(_, m)| m.name == meter.name)
        {
            return Err(Error::MeterExists {
                tenant: tenant.to_owned(),
                meter: meter.name.clone(),
            });
        }
        let id = state.next_id;
        let mut next = state.clone();
        next.next_id = id + 1;
        self.store(&next)?;
        *state = next;
        Ok(id)
    }

    /// Records `meter` under the id [`MeterRegistry::reserve`] gave it.
    ///
    /// # Errors
    /// [`Error::MeterExists`] when a meter of that name was defined meanwhile, I/O errors
    /// from persisting it (then nothing changed).
    pub fn define(&self, tenant: &str, id: MeterId, meter: Meter) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state
            .set
            .meters_for(tenant)
            .iter()
            .any(|(_, m)| m.name == meter.name)
        {
            return Err(Error::MeterExists {
                tenant: tenant.to_owned(),
                meter: meter.name,
            });
        }
        let mut next = state.clone();
        next.set.insert(tenant, (id, meter));
        self.store(&next)?;
        *state = next;
        Ok(())
    }

    /// Removes `tenant`'s defined meter `name` and returns its id.
    ///
    /// # Errors
    /// [`Error::UnknownMeter`] when there is no such meter, [`Error::InvalidMeter`] for a
    /// built-in one (they cannot be removed), I/O errors from persisting the change.
    pub fn remove(&self, tenant: &str, name: &str) -> Result<MeterId> {
        if Meter::is_builtin_name(name) {
            return Err(Error::InvalidMeter(crate::usage::MeterError::Builtin {
                name: name.to_owned(),
            }));
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let Some((id, _)) = state
            .set
            .meters_for(tenant)
            .iter()
            .find(|(_, m)| m.name == name)
            .cloned()
        else {
            return Err(Error::UnknownMeter {
                tenant: tenant.to_owned(),
                meter: name.to_owned(),
            });
        };
        let mut next = state.clone();
        next.set.remove(tenant, id);
        self.store(&next)?;
        *state = next;
        Ok(id)
    }

    fn store(&self, state: &State) -> Result<()> {
        let mut tenants: HashMap<String, Vec<StoredMeter>> = HashMap::new();
        for (tenant, (id, meter)) in state.set.defined() {
            tenants
                .entry(tenant.to_owned())
                .or_default()
                .push(StoredMeter {
                    id: *id,
                    meter: meter.clone(),
                });
        }
        let stored = Stored {
            version: FILE_VERSION,
            next_id: state.next_id,
            tenants,
        };
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| Error::InvalidOptions(format!("cannot encode the meter list: {e}")))?;
        write_atomic(&*self.fs, &self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::std_fs;
    use crate::usage::Aggregation;

    fn uploads() -> Meter {
        Meter {
            name: "uploads".into(),
            measurement: Some("storage".into()),
            aggregation: Aggregation::Count,
            field: None,
            tag: None,
            filter: vec![("operation".into(), "write".into())],
        }
    }

    #[test]
    fn definitions_survive_a_reopen_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let reg = MeterRegistry::open(std_fs(), dir.path()).unwrap();
        assert_eq!(reg.meters_for("acme").len(), 4);
        let id = reg.reserve("acme", &uploads()).unwrap();
        reg.define("acme", id, uploads()).unwrap();
        assert!(matches!(
            reg.reserve("acme", &uploads()),
            Err(Error::MeterExists { .. })
        ));
        let mut builtin = uploads();
        builtin.name = "api_calls".into();
        assert!(matches!(
            reg.reserve("other", &builtin),
            Err(Error::MeterExists { .. })
        ));
        assert_eq!(reg.meters_for("other").len(), 4, "meters are per tenant");
        let reg = MeterRegistry::open(std_fs(), dir.path()).unwrap();
        assert_eq!(reg.get("acme", "uploads"), Some((id, uploads())));
        assert_eq!(reg.remove("acme", "uploads").unwrap(), id);
        assert!(matches!(
            reg.remove("acme", "uploads"),
            Err(Error::UnknownMeter { .. })
        ));
        assert!(matches!(
            reg.remove("acme", "api_calls"),
            Err(Error::InvalidMeter(_))
        ));
        let again = reg.reserve("acme", &uploads()).unwrap();
        reg.define("acme", again, uploads()).unwrap();
        assert!(again > id);
        let reg = MeterRegistry::open(std_fs(), dir.path()).unwrap();
        assert_eq!(reg.get("acme", "uploads"), Some((again, uploads())));
    }

    #[test]
    fn a_damaged_meter_list_is_corruption_naming_the_file() {
        // It used to be reported as invalid options, which `meterdb check` does not count
        // as damage.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let meter = r#"{"name":"uploads","measurement":"storage","aggregation":"count","field":null,"tag":null,"filter":{}}"#;
        for bad in [
            "{\"version\": 1, \"next_id\": 17, \"tenants\": {\"acme\": [{\"id\"".to_owned(),
            format!(
                r#"{{"version": 2, "next_id": 17, "tenants": {{"acme": [{{"id": 16, "meter": {meter}}}]}}}}"#
            ),
            format!(
                r#"{{"version": 1, "next_id": 17, "tenants": {{"acme": [{{"id": 17, "meter": {meter}}}]}}}}"#
            ),
            format!(
                r#"{{"version": 1, "next_id": 17, "tenants": {{"acme": [{{"id": 3, "meter": {meter}}}]}}}}"#
            ),
        ] {
            std::fs::write(&path, &bad).unwrap();
            match MeterRegistry::open(std_fs(), dir.path()) {
                Err(Error::Corruption(c)) => assert_eq!(c.path, path, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let good = format!(
            r#"{{"version": 1, "next_id": 17, "tenants": {{"acme": [{{"id": 16, "meter": {meter}}}]}}}}"#
        );
        std::fs::write(&path, good).unwrap();
        let reg = MeterRegistry::open(std_fs(), dir.path()).unwrap();
        assert_eq!(reg.meters_for("acme").len(), 5);
    }
}
