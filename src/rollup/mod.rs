//! Rollups: per tenant and meter, minute, hour and day aggregates maintained at ingest, so
//! that current usage and limit checks never scan raw events.
//!
//! - [`acc`]: [`Acc`], one bucket's aggregate (count, sum, min, max, latest, distinct values
//!   as a roaring bitmap of dictionary ids), and [`Usage`], what a caller reads from it.
//! - [`store`]: the in-memory buckets of every tenant and meter (minute buckets only for a
//!   recent window), and range sums over them.
//! - [`delta`]: what events add, per minute (per hour once older than the minute window):
//!   event by event in the shard writer, straight into the store before a write is
//!   acknowledged; column by column for a flush's rollup file, replayed WAL records, a new
//!   meter's backfill and raw recounts.
//! - [`file`](mod@file): the rollup file format (storage-format.md, "Rollup files").
//!
//! **Invariant:** for every live segment and every meter, exactly one persisted rollup file
//! holds that segment's contribution (the file written by the segment's flush, or a
//! backfill file written when the meter was defined later); the buffers' contributions are
//! in memory only and rebuilt from the WAL on recovery.

pub mod acc;
pub mod delta;
pub mod file;
pub mod store;

pub use acc::{Acc, Usage};
pub use delta::Delta;
pub use store::{Levels, RollupStore, TenantRollups};

use std::fmt;
use std::str::FromStr;

/// A meter's identity in rollups: built-in meters have fixed ids, defined ones get the next
/// free id when created, so that a meter deleted and defined again never inherits buckets.
pub type MeterId = u64;

/// Bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// 60 s.
    Minute,
    /// 3,600 s.
    Hour,
    /// 86,400 s (UTC days).
    Day,
}

impl Granularity {
    /// Bucket length in ns.
    pub const fn nanos(self) -> i64 {
        match self {
            Granularity::Minute => 60_000_000_000,
            Granularity::Hour => 3_600_000_000_000,
            Granularity::Day => 86_400_000_000_000,
        }
    }

    /// Start of the bucket holding `t`.
    pub fn floor(self, t: i64) -> i64 {
        t - t.rem_euclid(self.nanos())
    }

    /// The first bucket start at or after `t`.
    pub fn ceil(self, t: i64) -> i64 {
        let f = self.floor(t);
        if f == t {
            t
        } else {
            f.saturating_add(self.nanos())
        }
    }

    /// `minute`, `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = String;

    fn from_str(s: &str) -> Result<Granularity, String> {
        match s {
            "minute" | "1m" => Ok(Granularity::Minute),
            "hour" | "1h" => Ok(Granularity::Hour),
            "day" | "1d" => Ok(Granularity::Day),
            _ => Err(format!("granularity {s:?} is not one of minute, hour, day")),
        }
    }
}
