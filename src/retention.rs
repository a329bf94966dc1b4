//! How long each tenant's data is kept: the defaults (`USAGE_TRACKING_EVENTS_RETENTION_DAYS`,
//! `USAGE_TRACKING_METRICS_RETENTION_DAYS`) and the tenants' overrides, persisted in the data
//! directory's `RETENTION` file (JSON, replaced atomically, so a crash leaves the old overrides
//! or the new ones; see storage-format.md, section 15).
//!
//! Knows settings, not data: what is past retention is dropped by compaction, which asks
//! [`RetentionPolicies::get`] for each tenant's effective values.
//!
//! **Invariant:** an effective metrics retention is never shorter than the effective events
//! retention. Rollups must outlive the raw events they count, otherwise usage over a period
//! whose raw events are gone could not be answered at all. [`RetentionPolicies::set`] refuses
//! an override that breaks the rule; where the rule is broken by settings no request chose
//! (defaults configured that way, or defaults changed since an override was stored), the
//! metrics retention is raised to the events retention.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::{FileSystem, write_atomic};
use crate::model::limits::MAX_TENANT_LEN;

/// File name of the overrides in the data directory.
pub const FILE_NAME: &str = "RETENTION";

/// The `version` of the file this build writes and reads.
const FILE_VERSION: u32 = 1;

/// The longest retention an override may set, in days (100 years), the same bound the
/// `USAGE_TRACKING_*_RETENTION_DAYS` settings have.
pub const MAX_DAYS: u32 = 36_500;

const SECS_PER_DAY: u64 = 86_400;

/// How long a tenant's raw events and rollups are kept. [`Duration::MAX`] keeps them forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Raw events older than this are dropped.
    pub events: Duration,
    /// Rollups (minute, hour and day buckets) older than this are dropped.
    pub metrics: Duration,
}

impl Retention {
    /// The same retention with the metrics retention raised to the events one where it is
    /// shorter (see the module's invariant).
    fn normalised(self) -> Retention {
        Retention {
            events: self.events,
            metrics: self.metrics.max(self.events),
        }
    }
}

/// What a tenant's override sets: `None` uses the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRetention {
    /// Raw-event retention in days, 1 to [`MAX_DAYS`].
    pub events_days: Option<u32>,
    /// Rollup retention in days, 1 to [`MAX_DAYS`]; at least the events retention.
    pub metrics_days: Option<u32>,
}

impl TenantRetention {
    /// True when neither value is set: the tenant uses the defaults.
    pub fn is_default(&self) -> bool {
        self.events_days.is_none() && self.metrics_days.is_none()
    }
}

/// A retention setting that is not acceptable; the text names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct RetentionError {
    /// The field: `events_days`, `metrics_days` or `tenant`.
    pub field: &'static str,
    /// What is wrong, quoting the value.
    pub reason: String,
}

impl RetentionError {
    /// A number of days that is not a whole number from 1 to [`MAX_DAYS`]; `got` as the
    /// client wrote it.
    pub fn days(field: &'static str, got: impl fmt::Display) -> RetentionError {
        RetentionError {
            field,
            reason: format!("{got} is not a whole number of days from 1 to {MAX_DAYS}"),
        }
    }
}

/// A duration of `days` days.
fn days(days: u32) -> Duration {
    Duration::from_secs(u64::from(days) * SECS_PER_DAY)
}

/// A retention for messages: `forever`, `30 days`, or the exact duration when it is not in
/// whole days (set that way by an embedding program).
struct Span(Duration);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d == Duration::MAX {
            f.write_str("forever")
        } else if d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(SECS_PER_DAY) {
            let n = d.as_secs() / SECS_PER_DAY;
            write!(f, "{n} day{}", if n == 1 { "" } else { "s" })
        } else {
            write!(f, "{d:?}")
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    /// Overrides by tenant; a tenant without one is absent.
    tenants: BTreeMap<String, TenantRetention>,
}

/// Read first, alone, so that a file of another version is reported as such even when the
/// rest of its layout differs.
#[derive(Deserialize)]
struct Version {
    version: u32,
}

/// The default retention and every tenant's override, persisted.
#[derive(Debug)]
pub struct RetentionPolicies {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    defaults: Retention,
    overrides: RwLock<BTreeMap<String, TenantRetention>>,
    /// Serialises changes, so that two of them never persist from the same old state.
    admin: Mutex<()>,
}

impl RetentionPolicies {
    /// Reads the overrides of the data directory `dir` (none when there is no file yet).
    /// `defaults` apply to every tenant without an override; a metrics retention shorter than
    /// the events one is raised to it.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the file when it does not parse, has another version, or
    /// holds a value an override could not have been given; I/O errors.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        defaults: Retention,
    ) -> Result<RetentionPolicies> {
        let path = dir.join(FILE_NAME);
        let overrides = match fs.read(&path) {
            Ok(bytes) => load(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        Ok(RetentionPolicies {
            fs,
            path,
            defaults: defaults.normalised(),
            overrides: RwLock::new(overrides),
            admin: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, TenantRetention>> {
        self.overrides.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The retention of tenants without an override.
    pub fn defaults(&self) -> Retention {
        self.defaults
    }

    /// `tenant`'s effective retention: its override where it sets a value, else the default.
    pub fn get(&self, tenant: &str) -> Retention {
        self.effective(&self.override_of(tenant)).normalised()
    }

    /// What `tenant`'s override sets (all `None` when it has none).
    pub fn override_of(&self, tenant: &str) -> TenantRetention {
        self.read().get(tenant).copied().unwrap_or_default()
    }

    /// Replaces `tenant`'s override with `r` (all `None` removes it), persisted before it
    /// takes effect; returns the tenant's effective retention.
    ///
    /// # Errors
    /// [`Error::InvalidRetention`] naming the field when a value is not 1 to [`MAX_DAYS`]
    /// days, when the effective metrics retention would be shorter than the effective events
    /// retention, or when the tenant name is empty or too long; I/O errors (then nothing
    /// changed).
    pub fn set(&self, tenant: &str, r: TenantRetention) -> Result<Retention> {
        self.validate(tenant, &r).map_err(Error::InvalidRetention)?;
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.read().clone();
        if r.is_default() {
            next.remove(tenant);
        } else {
            next.insert(tenant.to_owned(), r);
        }
        let stored = Stored {
            version: FILE_VERSION,
            tenants: next,
        };
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| Error::InvalidOptions(format!("cannot encode the retention file: {e}")))?;
        write_atomic(&*self.fs, &self.path, &bytes)?;
        *self.overrides.write().unwrap_or_else(|e| e.into_inner()) = stored.tenants;
        Ok(self.get(tenant))
    }

    /// Every tenant with an override and its effective retention, by tenant name.
    pub fn overrides(&self) -> Vec<(String, Retention)> {
        self.read()
            .iter()
            .map(|(tenant, r)| (tenant.clone(), self.effective(r).normalised()))
            .collect()
    }

    /// `r` over the defaults, without raising the metrics retention.
    fn effective(&self, r: &TenantRetention) -> Retention {
        Retention {
            events: r.events_days.map_or(self.defaults.events, days),
            metrics: r.metrics_days.map_or(self.defaults.metrics, days),
        }
    }

    fn validate(&self, tenant: &str, r: &TenantRetention) -> Result<(), RetentionError> {
        if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN {
            return Err(RetentionError {
                field: "tenant",
                reason: format!(
                    "{:?} is not a tenant name: use 1 to {MAX_TENANT_LEN} bytes",
                    crate::usage::meter::clip(tenant)
                ),
            });
        }
        for (field, value) in [
            ("events_days", r.events_days),
            ("metrics_days", r.metrics_days),
        ] {
            if let Some(n) = value.filter(|n| !(1..=MAX_DAYS).contains(n)) {
                return Err(RetentionError::days(field, n));
            }
        }
        let e = self.effective(r);
        if e.metrics >= e.events {
            return Ok(());
        }
        let default = |set: Option<u32>| if set.is_none() { ", the default" } else { "" };
        // Name the value the request set; when it set both, the metrics one is too short.
        let field = if r.metrics_days.is_some() {
            "metrics_days"
        } else {
            "events_days"
        };
        Err(RetentionError {
            field,
            reason: format!(
                "the metrics retention ({}{}) must be at least the events retention ({}{}): \
                 rollups must outlive the raw events, otherwise usage over periods whose raw \
                 events are dropped could not be answered",
                Span(e.metrics),
                default(r.metrics_days),
                Span(e.events),
                default(r.events_days),
            ),
        })
    }
}

/// Decodes and checks the file's bytes.
fn load(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, TenantRetention>> {
    // A damaged file is corruption, not a bad setting: the overrides cannot be guessed, and
    // opening without them would apply the defaults, dropping data a tenant was promised.
    let corrupt = |why: String| Error::from(Corruption::new(path, 0, CorruptionKind::Invalid(why)));
    let version: Version = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("not a valid retention file: {e}")))?;
    if version.version != FILE_VERSION {
        let version = u16::try_from(version.version).unwrap_or(u16::MAX);
        return Err(Corruption::new(path, 0, CorruptionKind::UnknownVersion(version)).into());
    }
    let stored: Stored = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("not a valid retention file: {e}")))?;
    for (tenant, r) in &stored.tenants {
        let out_of_range = [r.events_days, r.metrics_days]
            .into_iter()
            .flatten()
            .any(|n| !(1..=MAX_DAYS).contains(&n));
        if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN || r.is_default() || out_of_range {
            return Err(corrupt(format!(
                "override of tenant {:?} ({r:?}) is not one that could have been set",
                crate::usage::meter::clip(tenant)
            )));
        }
    }
    Ok(stored.tenants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::std_fs;

    const DAY: Duration = Duration::from_secs(SECS_PER_DAY);

    fn defaults() -> Retention {
        Retention {
            events: 30 * DAY,
            metrics: 90 * DAY,
        }
    }

    fn set(events_days: Option<u32>, metrics_days: Option<u32>) -> TenantRetention {
        TenantRetention {
            events_days,
            metrics_days,
        }
    }

    fn invalid(err: Error) -> RetentionError {
        match err {
            Error::InvalidRetention(e) => e,
            other => panic!("not a retention error: {other:?}"),
        }
    }

    #[test]
    fn tenants_without_an_override_get_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        assert_eq!(p.defaults(), defaults());
        assert_eq!(p.get("acme"), defaults());
        assert_eq!(p.override_of("acme"), TenantRetention::default());
        assert!(p.overrides().is_empty());
        assert!(
            !dir.path().join(FILE_NAME).exists(),
            "nothing to persist yet"
        );
    }

    #[test]
    fn an_override_changes_only_its_tenant_and_only_what_it_sets() {
        let dir = tempfile::tempdir().unwrap();
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        let got = p.set("acme", set(Some(7), None)).unwrap();
        assert_eq!(
            got,
            Retention {
                events: 7 * DAY,
                metrics: 90 * DAY
            }
        );
        assert_eq!(p.get("acme"), got);
        assert_eq!(p.override_of("acme"), set(Some(7), None));
        assert_eq!(p.get("globex"), defaults());
        let both = p.set("globex", set(Some(60), Some(365))).unwrap();
        assert_eq!(both.metrics, 365 * DAY);
        assert_eq!(
            p.overrides(),
            vec![("acme".to_owned(), got), ("globex".to_owned(), both)]
        );
    }

    #[test]
    fn an_empty_override_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        p.set("acme", set(None, Some(400))).unwrap();
        drop(p);
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        assert_eq!(p.override_of("acme"), set(None, Some(400)));
        assert_eq!(p.set("acme", set(None, None)).unwrap(), defaults());
        assert_eq!(p.override_of("acme"), TenantRetention::default());
        assert!(p.overrides().is_empty());
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        assert!(p.overrides().is_empty(), "the removal is persisted");
    }

    #[test]
    fn values_out_of_range_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        for (r, field, quoted) in [
            (set(Some(0), None), "events_days", "0 is not"),
            (set(None, Some(0)), "metrics_days", "0 is not"),
            (set(Some(10), Some(36_501)), "metrics_days", "36501 is not"),
            (set(Some(u32::MAX), None), "events_days", "4294967295"),
        ] {
            let e = invalid(p.set("acme", r).unwrap_err());
            assert_eq!(e.field, field, "{r:?}");
            let text = e.to_string();
            assert!(text.starts_with(&format!("invalid {field}: ")), "{text}");
            assert!(
                text.contains(quoted) && text.contains("1 to 36500"),
                "{text}"
            );
        }
        assert_eq!(
            invalid(p.set("", set(Some(7), None)).unwrap_err()).field,
            "tenant"
        );
        let long = "t".repeat(MAX_TENANT_LEN + 1);
        assert_eq!(
            invalid(p.set(&long, set(Some(7), None)).unwrap_err()).field,
            "tenant"
        );
        assert_eq!(
            p.set("acme", set(Some(1), Some(MAX_DAYS))).unwrap().events,
            DAY
        );
        assert!(p.set("acme", set(Some(0), None)).is_err());
        assert_eq!(
            p.override_of("acme"),
            set(Some(1), Some(MAX_DAYS)),
            "unchanged"
        );
    }

    #[test]
    fn rollups_must_outlive_raw_events() {
        let dir = tempfile::tempdir().unwrap();
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        let e = invalid(p.set("acme", set(Some(60), Some(30))).unwrap_err());
        assert_eq!(e.field, "metrics_days");
        assert_eq!(
            e.to_string(),
            "invalid metrics_days: the metrics retention (30 days) must be at least the events \
             retention (60 days): rollups must outlive the raw events, otherwise usage over \
             periods whose raw events are dropped could not be answered"
        );
        // Against the defaults: the message says which value is the default.
        let e = invalid(p.set("acme", set(Some(120), None)).unwrap_err());
        assert_eq!(e.field, "events_days");
        assert!(e.reason.contains("(90 days, the default)"), "{e}");
        let e = invalid(p.set("acme", set(None, Some(10))).unwrap_err());
        assert_eq!(e.field, "metrics_days");
        assert!(e.reason.contains("(30 days, the default)"), "{e}");
        // Equal is fine.
        assert_eq!(p.set("acme", set(Some(90), None)).unwrap().events, 90 * DAY);
        assert!(p.set("acme", set(Some(45), Some(45))).is_ok());
    }

    #[test]
    fn metrics_never_expire_before_events_whatever_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let forever = Retention {
            events: Duration::MAX,
            metrics: 90 * DAY,
        };
        let p = RetentionPolicies::open(std_fs(), dir.path(), forever).unwrap();
        let kept = Retention {
            events: Duration::MAX,
            metrics: Duration::MAX,
        };
        assert_eq!(p.defaults(), kept);
        assert_eq!(p.get("acme"), kept);
        let e = invalid(p.set("acme", set(None, Some(365))).unwrap_err());
        assert!(e.reason.contains("(forever, the default)"), "{e}");
        assert_eq!(p.set("acme", set(Some(7), None)).unwrap().events, 7 * DAY);
        drop(p);
        // Defaults that change after an override was stored cannot break the rule either.
        let short = Retention {
            events: 30 * DAY,
            metrics: 30 * DAY,
        };
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        p.set("acme", set(Some(60), None)).unwrap();
        drop(p);
        let p = RetentionPolicies::open(std_fs(), dir.path(), short).unwrap();
        let got = p.get("acme");
        assert_eq!((got.events, got.metrics), (60 * DAY, 60 * DAY));
        assert_eq!(p.overrides(), vec![("acme".to_owned(), got)]);
    }

    #[test]
    fn overrides_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        p.set("acme", set(Some(7), None)).unwrap();
        p.set("globex", set(Some(14), Some(730))).unwrap();
        p.set("initech", set(None, Some(120))).unwrap();
        p.set("initech", set(None, None)).unwrap();
        let before = p.overrides();
        drop(p);
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        assert_eq!(p.overrides(), before);
        assert_eq!(p.override_of("acme"), set(Some(7), None));
        assert_eq!(p.override_of("globex"), set(Some(14), Some(730)));
        assert_eq!(p.get("initech"), defaults());
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["tenants"]["acme"]["events_days"], 7);
        assert!(json["tenants"]["acme"]["metrics_days"].is_null());
    }

    #[test]
    fn a_damaged_file_is_corruption_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for bad in [
            "",
            "{\"version\": 1, \"tenants\": {\"acme\": {\"events_d",
            "[1, 2]",
            r#"{"version": 1, "tenants": {"acme": {"events_days": "seven"}}}"#,
            r#"{"version": 1, "tenants": {"acme": {"events_days": 0, "metrics_days": null}}}"#,
            r#"{"version": 1, "tenants": {"acme": {"events_days": null, "metrics_days": 36501}}}"#,
            r#"{"version": 1, "tenants": {"acme": {"events_days": null, "metrics_days": null}}}"#,
            r#"{"version": 1, "tenants": {"": {"events_days": 7}}}"#,
            r#"{"version": 1, "tenants": {"acme": {"events_days": 7, "colour": 1}}}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            match RetentionPolicies::open(std_fs(), dir.path(), defaults()) {
                Err(Error::Corruption(c)) => {
                    assert_eq!(c.path, path, "{bad}");
                    assert!(c.to_string().contains("RETENTION"), "{c}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        std::fs::write(
            &path,
            r#"{"version": 1, "tenants": {"acme": {"events_days": 7, "metrics_days": null}}}"#,
        )
        .unwrap();
        let p = RetentionPolicies::open(std_fs(), dir.path(), defaults()).unwrap();
        assert_eq!(p.get("acme").events, 7 * DAY);
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for (text, version) in [
            (
                r#"{"version": 2, "tenants": {"acme": {"events_days": 7}}}"#,
                2,
            ),
            (r#"{"version": 2, "policies": []}"#, 2),
            (r#"{"version": 0, "tenants": {}}"#, 0),
            (r#"{"version": 70000, "tenants": {}}"#, u16::MAX),
        ] {
            std::fs::write(&path, text).unwrap();
            match RetentionPolicies::open(std_fs(), dir.path(), defaults()) {
                Err(Error::Corruption(c)) => {
                    assert_eq!(c.path, path);
                    assert_eq!(c.kind, CorruptionKind::UnknownVersion(version), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
