//! The data model: events, their typed fields, and the identifiers the engine uses.
//!
//! Depends on nothing else in the crate but the error type. See `DESIGN.md` for the meaning of
//! each concept; the byte encoding of a [`WriteBatch`] is in `storage-format.md` ("WAL record
//! payload").

mod batch;

use std::fmt;
use std::sync::Arc;

pub use batch::{EventRef, FieldValueRef, WriteBatch};

/// Nanoseconds in one UTC day: the engine's time partition.
pub const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The tenant an event belongs to: the unit of sharding, isolation, retention and deletion.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Wraps a tenant name.
    pub fn new(name: &str) -> TenantId {
        TenantId(Arc::from(name))
    }

    /// The tenant name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for TenantId {
    fn from(name: &str) -> TenantId {
        TenantId::new(name)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point in time: nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The earliest timestamp the engine stores (InfluxDB's lower bound, so that every value
    /// InfluxDB accepts is accepted here too).
    pub const MIN: Timestamp = Timestamp(i64::MIN + 2);
    /// The latest timestamp the engine stores (InfluxDB's upper bound).
    pub const MAX: Timestamp = Timestamp(i64::MAX - 1);

    /// The UTC day this timestamp falls in, counted from 1970-01-01 (negative before it).
    pub fn day(self) -> Day {
        Day(self.0.div_euclid(NANOS_PER_DAY))
    }
}

/// A UTC day, counted from 1970-01-01: the engine's time partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(pub i64);

impl Day {
    /// The first nanosecond of the day.
    pub fn start(self) -> i64 {
        self.0.saturating_mul(NANOS_PER_DAY)
    }

    /// The first nanosecond after the day.
    pub fn end(self) -> i64 {
        (self.0 + 1).saturating_mul(NANOS_PER_DAY)
    }
}

impl fmt::Display for Day {
    /// Formats as `YYYY-MM-DD` (proleptic Gregorian), the form used in file names and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Converts days since 1970-01-01 to a (year, month, day) date.
///
/// Howard Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>):
/// exact for every i64 day that a [`Timestamp`] can produce.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A per-shard sequence number: every WAL record gets the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqNo(pub u64);

/// The type of a field; fixed per tenant, measurement, field key and day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FieldType {
    /// 64-bit float.
    Float = 1,
    /// 64-bit signed integer.
    Integer = 2,
    /// 64-bit unsigned integer.
    Unsigned = 3,
    /// Boolean.
    Boolean = 4,
    /// UTF-8 string.
    String = 5,
}

impl FieldType {
    /// The type for a stored code, if the code is valid.
    pub fn from_code(code: u8) -> Option<FieldType> {
        Some(match code {
            1 => FieldType::Float,
            2 => FieldType::Integer,
            3 => FieldType::Unsigned,
            4 => FieldType::Boolean,
            5 => FieldType::String,
            _ => return None,
        })
    }

    /// The stored code of this type.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// InfluxDB's name for the type, as `SHOW FIELD KEYS` prints it.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Integer => "integer",
            FieldType::Unsigned => "unsigned",
            FieldType::Boolean => "boolean",
            FieldType::String => "string",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A typed field value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// 64-bit float.
    F64(f64),
    /// 64-bit signed integer.
    I64(i64),
    /// 64-bit unsigned integer.
    U64(u64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
}

impl FieldValue {
    /// The value's type.
    pub fn field_type(&self) -> FieldType {
        self.as_ref().field_type()
    }

    /// Borrows the value.
    pub fn as_ref(&self) -> FieldValueRef<'_> {
        match self {
            FieldValue::F64(v) => FieldValueRef::F64(*v),
            FieldValue::I64(v) => FieldValueRef::I64(*v),
            FieldValue::U64(v) => FieldValueRef::U64(*v),
            FieldValue::Bool(v) => FieldValueRef::Bool(*v),
            FieldValue::Str(v) => FieldValueRef::Str(v),
        }
    }
}

/// One usage event: something a tenant did, at a point in time.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// What kind of event it is (`api_calls`, `storage`, `db_queries`, or any custom name).
    pub measurement: String,
    /// Indexed string attributes (endpoint, method, user, ...).
    pub tags: Vec<(String, String)>,
    /// Typed values (response time, bytes, ...).
    pub fields: Vec<(String, FieldValue)>,
    /// When it happened.
    pub timestamp: Timestamp,
    /// The client's id for the event, when it has one (counted once however often it is sent).
    pub event_id: Option<String>,
}

/// Limits on names and values; InfluxDB's where it has one, so that what InfluxDB accepts is
/// accepted here (its line protocol limits a string field to 64 KiB).
pub mod limits {
    /// Longest tenant name, in bytes.
    pub const MAX_TENANT_LEN: usize = 256;
    /// Longest measurement name, tag key or field key, in bytes.
    pub const MAX_NAME_LEN: usize = 256;
    /// Longest tag value, in bytes.
    pub const MAX_TAG_VALUE_LEN: usize = 4096;
    /// Longest string field value, in bytes.
    pub const MAX_STRING_LEN: usize = 64 * 1024;
    /// Longest event id, in bytes.
    pub const MAX_EVENT_ID_LEN: usize = 256;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_formats_as_civil_date() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(
            Timestamp(1_793_491_200 * 1_000_000_000).day().to_string(),
            "2026-11-01"
        );
        assert_eq!(Timestamp(-1).day().to_string(), "1969-12-31");
        assert_eq!(Day(-719_468).to_string(), "0000-03-01");
    }
}
