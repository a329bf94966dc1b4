//! The crate's error type.
//!
//! One public [`Error`] enum for every fallible call of the engine. Corruption is typed and
//! always says where it was found ([`Corruption`]); invalid input says which event and why
//! ([`InvalidEvent`]). `Display` texts are for humans: lowercase, no trailing punctuation.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::model::FieldType;

/// The result type of every fallible MeterDB call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event of a write batch was rejected; nothing of that batch was stored.
    #[error("event {index} rejected: {reason}")]
    InvalidEvent {
        /// Position of the event in its batch.
        index: usize,
        /// What is wrong with it.
        reason: InvalidEvent,
    },
    /// A write batch is larger than one WAL record may be; split it.
    #[error(
        "write batch of {bytes} bytes is larger than the {max}-byte limit of one WAL record; split it"
    )]
    BatchTooLarge {
        /// Encoded size of the batch.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Stored data failed a check (checksum, magic, length); the report says where.
    #[error(transparent)]
    Corruption(#[from] Corruption),
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, e.g. "write", "fsync", "rename".
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Engine` in this one) has the data directory open.
    #[error("data directory {path} is locked by another process (lock file {lock})", lock = .path.join("LOCK").display(), path = .path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A shard stopped accepting writes after an fsync failed: the kernel may have dropped the
    /// unsynced pages, so the engine cannot tell what is durable (see storage-format.md,
    /// "Failed fsync"). Restarting the engine replays the WAL from disk.
    #[error("shard {shard} is read-only after a failed fsync ({reason}); restart to recover")]
    Poisoned {
        /// The shard.
        shard: usize,
        /// The error that poisoned it.
        reason: String,
    },
    /// The engine was closed.
    #[error("the engine is closed")]
    Closed,
    /// A compaction was not committed because a deletion arrived while it ran; the next
    /// pass redoes it with the deletion applied.
    #[error("a deletion arrived during the compaction; it is redone")]
    Stale,
    /// An option or a data directory setting is not acceptable.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A scan request is not acceptable (for example a regex that does not compile).
    #[error("invalid scan: {0}")]
    InvalidScan(String),
    /// A meter definition is not acceptable; the text names the meter and the problem.
    #[error(transparent)]
    InvalidMeter(crate::usage::MeterError),
    /// The tenant already has a meter of that name.
    #[error("tenant {tenant:?} already has a meter named {meter:?}")]
    MeterExists {
        /// The tenant.
        tenant: String,
        /// The meter.
        meter: String,
    },
    /// The tenant has no meter of that name.
    #[error("tenant {tenant:?} has no meter named {meter:?}")]
    UnknownMeter {
        /// The tenant.
        tenant: String,
        /// The meter.
        meter: String,
    },
    /// A usage limit is not acceptable; the text names the JSON key and the problem.
    #[error(transparent)]
    InvalidLimit(crate::usage::LimitError),
    /// The tenant has no limit with that id.
    #[error("tenant {tenant:?} has no limit with id {id:?}")]
    UnknownLimit {
        /// The tenant.
        tenant: String,
        /// The limit id asked for.
        id: String,
    },
    /// A meter cannot be deleted while limits cap it.
    #[error(
        "meter {meter:?} of tenant {tenant:?} is capped by limits {limits:?}; delete them first"
    )]
    MeterInUse {
        /// The tenant.
        tenant: String,
        /// The meter.
        meter: String,
        /// Ids of the limits on it.
        limits: Vec<String>,
    },
    /// A retention override is not acceptable; the text names the field and the problem.
    #[error(transparent)]
    InvalidRetention(crate::retention::RetentionError),
}

impl Error {
    /// Wraps an I/O error with the operation and path it came from.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A copy of the error for a second receiver (several writers waiting on one failed
    /// fsync or flush each get one). I/O errors keep their kind and message.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::InvalidEvent { index, reason } => Error::InvalidEvent {
                index: *index,
                reason: reason.clone(),
            },
            Error::Corruption(c) => Error::Corruption(c.clone()),
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::Poisoned { shard, reason } => Error::Poisoned {
                shard: *shard,
                reason: reason.clone(),
            },
            Error::BatchTooLarge { bytes, max } => Error::BatchTooLarge {
                bytes: *bytes,
                max: *max,
            },
            Error::Closed => Error::Closed,
            Error::Stale => Error::Stale,
            Error::InvalidOptions(s) => Error::InvalidOptions(s.clone()),
            Error::InvalidScan(s) => Error::InvalidScan(s.clone()),
            Error::InvalidMeter(e) => Error::InvalidMeter(e.clone()),
            Error::MeterExists { tenant, meter } => Error::MeterExists {
                tenant: tenant.clone(),
                meter: meter.clone(),
            },
            Error::UnknownMeter { tenant, meter } => Error::UnknownMeter {
                tenant: tenant.clone(),
                meter: meter.clone(),
            },
            Error::InvalidLimit(e) => Error::InvalidLimit(e.clone()),
            Error::UnknownLimit { tenant, id } => Error::UnknownLimit {
                tenant: tenant.clone(),
                id: id.clone(),
            },
            Error::MeterInUse {
                tenant,
                meter,
                limits,
            } => Error::MeterInUse {
                tenant: tenant.clone(),
                meter: meter.clone(),
                limits: limits.clone(),
            },
            Error::InvalidRetention(e) => Error::InvalidRetention(e.clone()),
        }
    }

    /// True when the error is the disk being full (ENOSPC) or over quota (EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
    }
}

/// Why an event was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    /// The event has no tenant.
    #[error("missing tenant")]
    MissingTenant,
    /// The measurement name is empty.
    #[error("empty measurement name")]
    EmptyMeasurement,
    /// The event has neither fields nor an event id.
    #[error("no fields")]
    NoFields,
    /// The timestamp is outside the range the engine stores.
    #[error("timestamp {0} is out of range (allowed {min}..={max} ns since the epoch)", min = crate::model::Timestamp::MIN.0, max = crate::model::Timestamp::MAX.0)]
    TimestampOutOfRange(i64),
    /// A tag or field key is empty.
    #[error("empty {0} key")]
    EmptyKey(&'static str),
    /// The same tag key appears twice.
    #[error("duplicate tag key {0:?}")]
    DuplicateTag(String),
    /// The same field key appears twice.
    #[error("duplicate field key {0:?}")]
    DuplicateField(String),
    /// A key that has a meaning of its own was used as a tag or field key.
    #[error("{kind} key {key:?} is reserved ({why})")]
    ReservedKey {
        /// "tag" or "field".
        kind: &'static str,
        /// The key.
        key: String,
        /// What to do instead.
        why: &'static str,
    },
    /// A name or value is longer than the engine accepts.
    #[error("{what} is {len} bytes long, the limit is {max}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A field's type differs from the type stored for it in the same tenant, measurement and
    /// day.
    #[error(
        "field {field:?} is {got} here but {existing} in the stored data of measurement {measurement:?} on {day}"
    )]
    FieldTypeConflict {
        /// Measurement name.
        measurement: String,
        /// Field key.
        field: String,
        /// The type already stored.
        existing: FieldType,
        /// The type of this event.
        got: FieldType,
        /// The UTC day (YYYY-MM-DD) whose data fixes the type.
        day: String,
    },
    /// The timestamp is older than the raw-event retention: the event would be dropped
    /// as soon as it was stored.
    #[error(
        "timestamp older than the raw-event retention ({retention}): {time} is before {oldest} (USAGE_TRACKING_EVENTS_RETENTION_DAYS sets the retention)",
        retention = span(*.retention),
        time = rfc3339(*.time),
        oldest = rfc3339(*.oldest)
    )]
    TooOld {
        /// The event's timestamp.
        time: crate::model::Timestamp,
        /// The oldest timestamp accepted at the time of the write.
        oldest: crate::model::Timestamp,
        /// The raw-event retention ([`crate::Options::raw_retention`]).
        retention: std::time::Duration,
    },
    /// The timestamp is further ahead of the server clock than accepted: most likely a
    /// wrong clock or precision on the client.
    #[error(
        "timestamp more than {max_future} ahead of the server clock: {time} is after {latest} (METERDB_MAX_FUTURE sets the limit)",
        max_future = hours(*.max_future),
        time = rfc3339(*.time),
        latest = rfc3339(*.latest)
    )]
    TooFarAhead {
        /// The event's timestamp.
        time: crate::model::Timestamp,
        /// The latest timestamp accepted at the time of the write.
        latest: crate::model::Timestamp,
        /// How far ahead of the clock events may be ([`crate::Options::max_future`]).
        max_future: std::time::Duration,
    },
}

/// An instant as RFC 3339 in UTC, with fractional seconds only when there are some.
fn rfc3339(t: crate::model::Timestamp) -> String {
    chrono::DateTime::from_timestamp_nanos(t.0).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A duration in whole days when it is some (`30 days`), else in the largest unit up to hours
/// that divides it, as `METERDB_MAX_FUTURE` is written (`24h`, `90m`, `1500ms`).
fn span(d: std::time::Duration) -> String {
    const DAY: u128 = 86_400_000_000_000;
    let ns = d.as_nanos();
    if ns >= DAY && ns.is_multiple_of(DAY) {
        let days = ns / DAY;
        return format!("{days} day{}", if days == 1 { "" } else { "s" });
    }
    hours(d)
}

/// A duration in the largest unit up to hours that divides it: `24h`, `90m`, `1500ms`.
fn hours(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    let units: [(u128, &str); 5] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
    ];
    match units
        .iter()
        .find(|(unit, _)| ns >= *unit && ns.is_multiple_of(*unit))
    {
        Some((unit, name)) => format!("{}{name}", ns / unit),
        None => format!("{ns}ns"),
    }
}

/// Stored bytes that failed a check, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("corruption in {path} at offset {offset}: {kind}", path = .path.display())]
pub struct Corruption {
    /// The damaged file.
    pub path: PathBuf,
    /// Byte offset of the damaged structure in the file.
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
}

impl Corruption {
    /// Builds a corruption report.
    pub fn new(path: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Corruption {
        Corruption {
            path: path.into(),
            offset,
            kind,
        }
    }
}

/// What kind of damage was found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The stored checksum does not match the bytes.
    ChecksumMismatch {
        /// Checksum recorded in the file.
        expected: u32,
        /// Checksum of the bytes read.
        actual: u32,
    },
    /// The file does not start (or end) with the expected magic bytes.
    BadMagic,
    /// The file's format version is not one this build reads.
    UnknownVersion(u16),
    /// The file ends before a structure it announces.
    Truncated,
    /// A structure decoded but its content is impossible (the text says which rule failed).
    Invalid(String),
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionKind::ChecksumMismatch { expected, actual } => {
                write!(
                    f,
                    "checksum mismatch (stored {expected:#010x}, computed {actual:#010x})"
                )
            }
            CorruptionKind::BadMagic => write!(f, "bad magic bytes"),
            CorruptionKind::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            CorruptionKind::Truncated => write!(f, "truncated"),
            CorruptionKind::Invalid(why) => write!(f, "{why}"),
        }
    }
}
