//! Engine options with their defaults.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::fs::{FileSystem, StdFs};
use crate::shard::compact::CompactionPolicy;

/// When the WAL is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync before acknowledging every write (concurrent writes share one fsync). The default:
    /// an acknowledged write survives a crash or power loss.
    Always,
    /// fsync at most this often; a crash can lose the writes of the last interval.
    Interval(Duration),
    /// Never fsync the WAL (segments and the manifest still are). For tests only.
    None,
}

impl FromStr for SyncPolicy {
    type Err = String;

    /// Parses `always`, `interval:<ms>` or `none`.
    fn from_str(s: &str) -> Result<SyncPolicy, String> {
        match s {
            "always" => Ok(SyncPolicy::Always),
            "none" => Ok(SyncPolicy::None),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .filter(|&ms| ms > 0)
                    .ok_or_else(|| {
                        format!(
                            "sync policy {s:?} is not one of always, interval:<ms> (ms > 0), none"
                        )
                    })?;
                Ok(SyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncPolicy::Always => f.write_str("always"),
            SyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            SyncPolicy::None => f.write_str("none"),
        }
    }
}

/// What a deletion does to the rollups that counted the deleted events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RollupsOnDelete {
    /// Keep their counts (billing history); the deleted user's id is replaced by its
    /// SHA-256 in the rollup files once the rows are purged. The default.
    #[default]
    Keep,
    /// Take the deleted events' contributions out: counts, sums and averages exactly, the
    /// user from `unique_count` meters over the tag `user`; a whole tenant's rollups are
    /// dropped. Smallest, largest and latest values cannot be taken back and stay.
    Subtract,
}

impl FromStr for RollupsOnDelete {
    type Err = String;

    fn from_str(s: &str) -> Result<RollupsOnDelete, String> {
        match s {
            "keep" => Ok(RollupsOnDelete::Keep),
            "subtract" => Ok(RollupsOnDelete::Subtract),
            _ => Err(format!(
                "rollups_on_delete {s:?} is not one of keep, subtract"
            )),
        }
    }
}

impl fmt::Display for RollupsOnDelete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RollupsOnDelete::Keep => "keep",
            RollupsOnDelete::Subtract => "subtract",
        })
    }
}

/// How an [`crate::Engine`] runs. Every field has a default that works on a laptop.
#[derive(Clone)]
pub struct Options {
    /// Number of shards (each with its own WAL and writer thread). Fixed when the data
    /// directory is created; `None` uses the stored count, or for a new directory the number
    /// of CPU cores (at most 16). Default = `None`.
    pub shards: Option<usize>,
    /// WAL durability. Default = [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// A shard's in-memory buffer is flushed to a segment when it holds this many bytes.
    /// Default = 32 MiB (the buffer's real footprint is up to about twice this: columns grow
    /// by doubling; a shard holds two buffers while one is flushed).
    pub max_buffer_bytes: usize,
    /// ... or when its oldest event is this old. Default = 10 minutes.
    pub max_buffer_age: Duration,
    /// A WAL file is rolled when it reaches this size. Default = 128 MiB.
    pub max_wal_file_bytes: u64,
    /// How long an event id is remembered: an event whose id the shard stores for an event
    /// of the same tenant dated within this window before now is not stored again (counted
    /// in [`crate::Receipt::duplicates`]). Ids of events dated before the window are
    /// forgotten. Default = 30 days, the raw-event retention.
    pub dedup_window: Duration,
    /// Raw-event retention: a write refuses an event dated before now minus this (listed in
    /// [`crate::Receipt::rejected`] with [`crate::InvalidEvent::TooOld`]), as it would be
    /// dropped as soon as stored. An event dated exactly at the bound is accepted.
    /// [`Duration::MAX`] accepts any age. Also the default raw-event retention of
    /// [`crate::RetentionPolicies`] (a tenant may override it). Default = 30 days.
    pub raw_retention: Duration,
    /// Rollup retention: minute, hour and day buckets older than this are dropped, for tenants
    /// without an override ([`crate::RetentionPolicies`]). Raised to `raw_retention` when
    /// shorter, so that usage stays answerable while raw events are kept.
    /// [`Duration::MAX`] keeps rollups forever. Default = 90 days.
    pub rollup_retention: Duration,
    /// A write refuses an event dated after now plus this (listed in
    /// [`crate::Receipt::rejected`] with [`crate::InvalidEvent::TooFarAhead`]): most likely
    /// a client with a wrong clock or precision. An event dated exactly at the bound is
    /// accepted. [`Duration::MAX`] accepts any date. Default = 24 hours.
    pub max_future: Duration,
    /// How long minute rollup buckets stay in memory: usage at minute precision older than
    /// this (a range edge off the hour, minute-granularity metrics) is recounted from raw
    /// events; hour and day buckets are always in memory. Default = 24 hours.
    pub rollup_minute_window: Duration,
    /// What deleting a user or a tenant does to its rollups. Default = keep.
    pub rollups_on_delete: RollupsOnDelete,
    /// How eagerly compaction merges small segments (see [`crate::shard::compact`]).
    pub compaction: CompactionPolicy,
    /// While a background compaction runs, it sleeps this many times as long as each rewrite
    /// took, so that it takes at most 1 / (1 + pace) of a core from ingestion. Default = 1.0.
    pub compaction_pace: f64,
    /// The file layer (tests substitute a fault-injecting one). Default = the real one.
    pub fs: Arc<dyn FileSystem>,
    /// The clock. Default = the system clock.
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            shards: None,
            sync: SyncPolicy::Always,
            max_buffer_bytes: 32 << 20,
            max_buffer_age: Duration::from_secs(600),
            max_wal_file_bytes: 128 << 20,
            dedup_window: Duration::from_secs(30 * 86_400),
            raw_retention: Duration::from_secs(30 * 86_400),
            rollup_retention: Duration::from_secs(90 * 86_400),
            max_future: Duration::from_secs(24 * 3600),
            rollup_minute_window: Duration::from_secs(86_400),
            rollups_on_delete: RollupsOnDelete::Keep,
            compaction: CompactionPolicy::default(),
            compaction_pace: 1.0,
            fs: Arc::new(StdFs),
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("shards", &self.shards)
            .field("sync", &self.sync)
            .field("max_buffer_bytes", &self.max_buffer_bytes)
            .field("max_buffer_age", &self.max_buffer_age)
            .field("max_wal_file_bytes", &self.max_wal_file_bytes)
            .field("dedup_window", &self.dedup_window)
            .field("rollup_minute_window", &self.rollup_minute_window)
            .field("raw_retention", &self.raw_retention)
            .field("rollup_retention", &self.rollup_retention)
            .field("max_future", &self.max_future)
            .field("rollups_on_delete", &self.rollups_on_delete)
            .field("compaction", &self.compaction)
            .field("compaction_pace", &self.compaction_pace)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl Options {
    /// The defaults, but accepting events of any date: unit tests write dated (or random)
    /// timestamps and must pass whatever day they run.
    pub(crate) fn any_time() -> Options {
        Options {
            raw_retention: Duration::MAX,
            max_future: Duration::MAX,
            ..Options::default()
        }
    }
}

/// The default shard count for a new data directory: one per core, at most 16.
pub fn default_shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_policy_parses_and_prints() {
        for s in ["always", "none", "interval:100"] {
            assert_eq!(s.parse::<SyncPolicy>().unwrap().to_string(), s);
        }
        assert!("interval:0".parse::<SyncPolicy>().is_err());
        assert!("sometimes".parse::<SyncPolicy>().is_err());
    }
}
