//! Calendar-aligned limit periods: which `[start, end)` an instant falls in, for a period type,
//! a multiple and a time zone.
//!
//! # The rule
//!
//! Periods of one kind tile time without gaps or overlaps, and every instant lies in exactly
//! one of them. A limit's usage resets at its period's end ([`Period::resets_at`]).
//!
//! - **day, week, month, year** follow the tenant's wall calendar. Period `k` starts at the
//!   local midnight opening grid cell `k`, counted from a fixed origin, so that a multiple
//!   `period_value = n` always lands on the same boundaries whatever the instant asked about:
//!   - day: days counted from 1970-01-01 (`n = 7` is *not* week-aligned; use week);
//!   - week: ISO weeks, starting Monday, counted from Monday 1969-12-29 (`n = 2`: fortnights);
//!   - month: months counted from 1970-01, so `n = 3` gives calendar quarters (Jan, Apr, Jul,
//!     Oct), `n = 6` halves, `n = 12` years;
//!   - year: years counted from 1970 (`n = 10`: decades 2020, 2030, ...).
//!
//!   A local day is as long as the calendar makes it: in Europe/Paris the last Sunday of March
//!   lasts 23 hours and the last Sunday of October 25. A local midnight that never happens
//!   (clocks jump over it, as in America/Havana or America/Santiago) starts its period at the
//!   end of the jump, the first instant the clock shows a later time; a midnight that happens
//!   twice (clocks fall back over it) starts its period at the first occurrence. Precisely, a
//!   boundary at local time `B` is the first instant at which the local clock reads `B` or later.
//!   A day that a zone skipped entirely (Pacific/Apia on 2011-12-30) is an empty period that no
//!   instant falls in.
//! - **minute, hour** are lengths of elapsed time, aligned on the local clock of the UTC offset
//!   in force (`n = 15` minutes: :00, :15, :30, :45 local; in Asia/Kolkata, hours start at
//!   :30 UTC), counted from local 1970-01-01 00:00. A period that straddles a change of UTC
//!   offset is cut at the change, so the hour Paris repeats when it falls back is two periods
//!   of one hour each, and the hour it skips in spring is none.
//!
//! Multiples are capped ([`PeriodType::max_value`]) so that a sub-day period spans at most one
//! day, within which time zones change their offset at most once.
//!
//! Pure computation with no allocation: limit checks call it on every request.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, SecondsFormat, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

const NANOS_PER_SEC: i64 = 1_000_000_000;
/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
/// 1969-12-29, the Monday opening the ISO week of the Unix epoch, in days since 1970-01-01.
const FIRST_MONDAY: i64 = -3;
/// Wider than any UTC offset a time zone ever used (local mean times reached almost 16 hours).
const MAX_OFFSET_SECS: i64 = 2 * 86_400;

/// The unit of a limit's period (the spec's `period_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodType {
    /// 60 seconds of elapsed time.
    Minute,
    /// 60 minutes of elapsed time.
    Hour,
    /// A local calendar day (23 to 25 hours around DST changes).
    Day,
    /// An ISO week, Monday to Sunday, in local time.
    Week,
    /// A local calendar month.
    Month,
    /// A local calendar year.
    Year,
}

impl PeriodType {
    /// Every period type, shortest first.
    pub const ALL: [PeriodType; 6] = [
        PeriodType::Minute,
        PeriodType::Hour,
        PeriodType::Day,
        PeriodType::Week,
        PeriodType::Month,
        PeriodType::Year,
    ];

    /// The largest `period_value` accepted: one day for minute and hour (longer periods are
    /// days), about a year of days or weeks, ten years of months, a century of years.
    pub fn max_value(self) -> u32 {
        match self {
            PeriodType::Minute => 1440,
            PeriodType::Hour => 24,
            PeriodType::Day => 366,
            PeriodType::Week => 53,
            PeriodType::Month => 120,
            PeriodType::Year => 100,
        }
    }

    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodType::Minute => "minute",
            PeriodType::Hour => "hour",
            PeriodType::Day => "day",
            PeriodType::Week => "week",
            PeriodType::Month => "month",
            PeriodType::Year => "year",
        }
    }
}

impl fmt::Display for PeriodType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PeriodType {
    type Err = String;

    fn from_str(s: &str) -> Result<PeriodType, String> {
        PeriodType::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "period type {:?} is not one of minute, hour, day, week, month, year",
                    super::meter::clip(s)
                )
            })
    }
}

/// A half-open interval of time `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    /// The first instant in the period.
    pub start: Timestamp,
    /// The first instant after it.
    pub end: Timestamp,
}

impl Period {
    /// True when `t` lies in the period.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// When usage counted in this period starts again from zero: the period's end.
    pub fn resets_at(&self) -> Timestamp {
        self.end
    }

    /// Length in nanoseconds.
    pub fn len_nanos(&self) -> i64 {
        self.end.0.saturating_sub(self.start.0)
    }
}

/// Why a period cannot be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeriodError {
    /// The multiple is 0 or above [`PeriodType::max_value`].
    #[error("period_value {value} is out of range for {period_type} periods: use 1 to {max}", max = .period_type.max_value())]
    InvalidValue {
        /// The period type.
        period_type: PeriodType,
        /// The rejected multiple.
        value: u32,
    },
    /// The period around the instant starts or ends outside the years 1677 to 2262 that a
    /// nanosecond timestamp can represent.
    #[error(
        "the {period_type} period around {at} ns since the epoch does not fit in the representable time range (years 1677 to 2262)"
    )]
    OutOfRange {
        /// The period type.
        period_type: PeriodType,
        /// The instant asked about.
        at: i64,
    },
}

/// The period of `period_value` × `period_type` in time zone `tz` that contains `t`. See the
/// module docs for the rule.
///
/// ```
/// use meterdb::Timestamp;
/// use meterdb::usage::period::{PeriodType, period_containing, to_rfc3339};
///
/// let tz: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
/// // 2026-08-15T12:00:00Z lies in the third quarter, which starts at local midnight on July 1.
/// let p = period_containing(Timestamp(1_786_795_200_000_000_000), PeriodType::Month, 3, tz)?;
/// assert_eq!(to_rfc3339(p.start, tz), "2026-07-01T00:00:00+02:00");
/// assert_eq!(to_rfc3339(p.resets_at(), tz), "2026-10-01T00:00:00+02:00");
/// # Ok::<(), meterdb::usage::period::PeriodError>(())
/// ```
pub fn period_containing(
    t: Timestamp,
    period_type: PeriodType,
    period_value: u32,
    tz: Tz,
) -> Result<Period, PeriodError> {
    if period_value == 0 || period_value > period_type.max_value() {
        return Err(PeriodError::InvalidValue {
            period_type,
            value: period_value,
        });
    }
    let n = i64::from(period_value);
    let out_of_range = PeriodError::OutOfRange {
        period_type,
        at: t.0,
    };
    let period = match period_type {
        PeriodType::Minute => elapsed_period(t.0, 60 * NANOS_PER_SEC * n, tz),
        PeriodType::Hour => elapsed_period(t.0, 3600 * NANOS_PER_SEC * n, tz),
        _ => calendar_period(t.0, period_type, n, tz),
    };
    period.ok_or(out_of_range)
}

/// Formats an instant as RFC 3339 with the UTC offset `tz` has then (`Z` for UTC), with
/// fractional seconds only when there are some.
pub fn to_rfc3339(t: Timestamp, tz: Tz) -> String {
    let utc = DateTime::from_timestamp_nanos(t.0);
    utc.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The UTC offset of `tz` at `secs` seconds since the epoch, in seconds.
fn offset_secs(tz: Tz, secs: i64) -> Option<i64> {
    let utc = DateTime::from_timestamp(secs, 0)?.naive_utc();
    Some(i64::from(
        tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
    ))
}

/// Minute and hour periods: `len` ns of elapsed time on the local grid of the offset in force
/// at `t`, cut where the offset changes.
fn elapsed_period(t: i64, len: i64, tz: Tz) -> Option<Period> {
    let t_secs = t.div_euclid(NANOS_PER_SEC);
    let offset = offset_secs(tz, t_secs)?;
    let offset_ns = offset.checked_mul(NANOS_PER_SEC)?;
    let local = t.checked_add(offset_ns)?;
    let start_local = local.div_euclid(len).checked_mul(len)?;
    let mut start = start_local.checked_sub(offset_ns)?;
    let mut end = start.checked_add(len)?;
    // Offsets change on whole seconds (tzdb transition times are in seconds), so the cut
    // points are searched for second by second, in at most 17 steps for a day.
    let start_secs = start.div_euclid(NANOS_PER_SEC);
    if offset_secs(tz, start_secs)? != offset {
        // The offset changes in (start, t]: the period starts at the change.
        let first = first_second(start_secs, t_secs, |s| {
            offset_secs(tz, s).is_some_and(|o| o == offset)
        });
        start = first.checked_mul(NANOS_PER_SEC)?;
    }
    let last_secs = (end - 1).div_euclid(NANOS_PER_SEC);
    if offset_secs(tz, last_secs)? != offset {
        // The offset changes in (t, end): the period ends at the change.
        let first = first_second(t_secs, last_secs, |s| {
            offset_secs(tz, s).is_none_or(|o| o != offset)
        });
        end = first.checked_mul(NANOS_PER_SEC)?;
    }
    Some(Period {
        start: Timestamp(start),
        end: Timestamp(end),
    })
}

/// The smallest second in `(lo, hi]` where `pred` holds, given that it does not hold at `lo`,
/// holds at `hi`, and flips once in between.
fn first_second(mut lo: i64, mut hi: i64, pred: impl Fn(i64) -> bool) -> i64 {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Day, week, month and year periods: between the instants at which the local calendar
/// reaches consecutive grid boundaries.
fn calendar_period(t: i64, unit: PeriodType, n: i64, tz: Tz) -> Option<Period> {
    let local = DateTime::from_timestamp_nanos(t)
        .with_timezone(&tz)
        .naive_local();
    let mut k = grid_index(local.date(), unit, n)?;
    // The local date picks the cell; where the clock falls back across a boundary, the instant
    // can lie in a neighbour, and a skipped day is an empty cell to step over. Real zones
    // need at most two steps; more means an inconsistent zone, reported as out of range.
    for _ in 0..4 {
        let start = boundary_instant(k, unit, n, tz)?;
        let end = boundary_instant(k.checked_add(1)?, unit, n, tz)?;
        if t < start {
            k = k.checked_sub(1)?;
        } else if t >= end {
            k = k.checked_add(1)?;
        } else {
            return Some(Period {
                start: Timestamp(start),
                end: Timestamp(end),
            });
        }
    }
    None
}

/// The grid cell of a local date.
fn grid_index(date: NaiveDate, unit: PeriodType, n: i64) -> Option<i64> {
    use chrono::Datelike;
    let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
    let years = i64::from(date.year()) - 1970;
    Some(match unit {
        PeriodType::Day => days.div_euclid(n),
        PeriodType::Week => (days - FIRST_MONDAY).div_euclid(7 * n),
        PeriodType::Month => (years * 12 + i64::from(date.month0())).div_euclid(n),
        PeriodType::Year => years.div_euclid(n),
        PeriodType::Minute | PeriodType::Hour => return None,
    })
}

/// The local midnight opening grid cell `k`.
fn boundary(k: i64, unit: PeriodType, n: i64) -> Option<NaiveDateTime> {
    let from_days = |days: i64| {
        let ce = i32::try_from(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?).ok()?;
        NaiveDate::from_num_days_from_ce_opt(ce)
    };
    let date = match unit {
        PeriodType::Day => from_days(k.checked_mul(n)?)?,
        PeriodType::Week => from_days(k.checked_mul(7 * n)?.checked_add(FIRST_MONDAY)?)?,
        PeriodType::Month => {
            let months = k.checked_mul(n)?;
            let year = i32::try_from(1970 + months.div_euclid(12)).ok()?;
            let month = u32::try_from(months.rem_euclid(12) + 1).ok()?;
            NaiveDate::from_ymd_opt(year, month, 1)?
        }
        PeriodType::Year => {
            let year = i32::try_from(k.checked_mul(n)?.checked_add(1970)?).ok()?;
            NaiveDate::from_ymd_opt(year, 1, 1)?
        }
        PeriodType::Minute | PeriodType::Hour => return None,
    };
    Some(date.and_time(chrono::NaiveTime::MIN))
}

/// The first instant, in ns, at which the local clock of `tz` reads the start of cell `k` or
/// later.
fn boundary_instant(k: i64, unit: PeriodType, n: i64, tz: Tz) -> Option<i64> {
    let local = boundary(k, unit, n)?;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) => at.timestamp_nanos_opt(),
        // Clocks fell back over this time: the first occurrence opens the period.
        LocalResult::Ambiguous(first, _) => first.timestamp_nanos_opt(),
        // Clocks jumped over this time: the period opens when the jump lands.
        LocalResult::None => {
            let target = local.and_utc().timestamp();
            let reached =
                |s: i64| offset_secs(tz, s).is_some_and(|o| s.saturating_add(o) >= target);
            let lo = target.checked_sub(MAX_OFFSET_SECS)?;
            let hi = target.checked_add(MAX_OFFSET_SECS)?;
            first_second(lo, hi, reached).checked_mul(NANOS_PER_SEC)
        }
    }
}

#[cfg(test)]
mod tests;
