//! The limit check: given a limit, the usage in its current period and the time, is the next
//! request allowed, and what should the tenant be told?
//!
//! [`check_limit`] is a pure function. The only thing it remembers between calls is the
//! [`GraceState`] of one limit: when the limit was first reached in the current period. The
//! caller keeps it (per tenant and limit) and passes it back with the next check; it is reset
//! automatically when the period changes. With an explicit `now`, every transition can be
//! tested without waiting.
//!
//! # Rules
//!
//! Let `usage` be the meter's value in the period containing `now`, and `limit` the
//! `limit_value`. The limit is **reached** when `usage >= limit`: nothing is left
//! (`remaining = 0`), so a caller that checks before each request lets exactly `limit`
//! requests through. The warning threshold is compared with a relative tolerance of
//! 10^-12, so that 7 out of 100 warns at a threshold of 0.07 despite binary rounding.
//!
//! | situation | `status` | `allowed` |
//! |---|---|---|
//! | limit `inactive` | `ok` | yes |
//! | `usage < warning_threshold × limit` | `ok` | yes |
//! | `warning_threshold × limit <= usage < limit` | `warning` | yes |
//! | reached, `soft_limit` | `exceeded` | yes |
//! | reached, `hard_limit`, within the grace period | `grace` | yes |
//! | reached, `hard_limit`, grace period over, or `enforce_immediately` | `exceeded` | no |
//! | reached, `rate_limit` | `exceeded` | no |
//!
//! - The grace period (`LIMITS_GRACE_PERIOD_MINUTES`, default 5) starts the first time a check
//!   finds a hard limit reached in a period, and lasts until `first + grace_period`
//!   (exclusive). After it the limit denies until the period resets. If usage drops below the
//!   limit again (a `latest` or `max` meter can), checks answer ok or warning, but the grace
//!   period is not granted twice in one period: reaching the limit again denies at once.
//! - `rate_limit` is a fixed-window rate limit: the window is the limit's calendar period, and
//!   it never has a grace period (five minutes of free traffic would defeat a per-minute
//!   limit). Sliding windows are not implemented. `burst_limit` is not supported
//!   ([`CheckError::Unsupported`]).
//! - With enforcement disabled (`LIMITS_ENFORCEMENT_ENABLED=false`) the status is computed and
//!   reported as usual, grace included, but every check is allowed.
//!
//! **Invariant:** the check path does not allocate (the target is a p99 of 10 µs in-process);
//! only serializing a [`CheckResult`] does.

use std::time::Duration;

use chrono_tz::Tz;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::limit::{LimitStatus, LimitType, UsageLimit};
use super::period::{Period, PeriodError, to_rfc3339};
use crate::model::Timestamp;

/// How limits are enforced, from the spec's `LIMITS_*` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// `LIMITS_ENFORCEMENT_ENABLED`: when false, checks report but never deny. Default true.
    pub enforcement_enabled: bool,
    /// `LIMITS_GRACE_PERIOD_MINUTES`: how long a reached hard limit still allows requests.
    /// Default 5 minutes.
    pub grace_period: Duration,
}

impl Default for LimitSettings {
    fn default() -> LimitSettings {
        LimitSettings {
            enforcement_enabled: true,
            grace_period: Duration::from_secs(5 * 60),
        }
    }
}

/// What a check remembers about one limit: when it was first reached in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GraceState {
    /// The first time a check found the limit reached, and in which period; `None` when it
    /// has not been reached (in any period the caller kept state for).
    pub first_exceeded: Option<FirstExceeded>,
}

/// The first time a hard limit was found reached in a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FirstExceeded {
    /// Start of the period it happened in; the state only applies to that period.
    pub period_start: Timestamp,
    /// When the check found it.
    pub at: Timestamp,
}

impl GraceState {
    /// When the grace period of `period` ends (exclusive), if the limit was reached in it.
    pub fn grace_ends_at(&self, period: &Period, grace_period: Duration) -> Option<Timestamp> {
        let first = self
            .first_exceeded
            .filter(|f| f.period_start == period.start)?;
        Some(Timestamp(first.at.0.saturating_add(nanos(grace_period))))
    }
}

/// The outcome of a check, as the spec reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Below the warning threshold, or the limit is inactive.
    Ok,
    /// At or above the warning threshold, below the limit.
    Warning,
    /// The limit is reached (denied unless soft or enforcement is off).
    Exceeded,
    /// A hard limit is reached but its grace period is running: still allowed.
    Grace,
}

/// The answer to a limit check.
///
/// JSON: `{"allowed","status","usage","limit","remaining","period_start","period_end",
/// "resets_at"}`, times in RFC 3339 with the UTC offset of the limit's time zone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckResult {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Where usage stands against the limit.
    pub status: CheckStatus,
    /// Usage in the current period.
    pub usage: f64,
    /// The limit's `limit_value`.
    pub limit: f64,
    /// What is left before the limit is reached; never negative.
    pub remaining: f64,
    /// Start of the current period.
    pub period_start: Timestamp,
    /// End of the current period (exclusive).
    pub period_end: Timestamp,
    /// When usage starts again from zero: the period's end.
    pub resets_at: Timestamp,
    /// The time zone the period follows; the JSON times carry its UTC offset.
    pub tz: Tz,
}

impl Serialize for CheckResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("CheckResult", 8)?;
        out.serialize_field("allowed", &self.allowed)?;
        out.serialize_field("status", &self.status)?;
        out.serialize_field("usage", &self.usage)?;
        out.serialize_field("limit", &self.limit)?;
        out.serialize_field("remaining", &self.remaining)?;
        out.serialize_field("period_start", &to_rfc3339(self.period_start, self.tz))?;
        out.serialize_field("period_end", &to_rfc3339(self.period_end, self.tz))?;
        out.serialize_field("resets_at", &to_rfc3339(self.resets_at, self.tz))?;
        out.end()
    }
}

/// Why a check could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The period around `now` cannot be computed.
    #[error(transparent)]
    Period(#[from] PeriodError),
    /// The limit's type is not implemented.
    #[error("limit_type {0} is not supported yet")]
    Unsupported(LimitType),
    /// The limit was not validated and holds a value no check can use.
    #[error("invalid limit: {0}")]
    InvalidLimit(&'static str),
    /// The usage passed in is NaN.
    #[error("usage is not a number")]
    InvalidUsage,
    /// [`check_limit_in`] was given a period that does not contain `now`.
    #[error("the period passed to the check does not contain the time of the check")]
    PeriodMismatch,
}

/// Checks `usage` against `limit` at `now`; returns the answer and the state to pass to the
/// next check of this limit. See the module docs for the rules.
///
/// ```
/// use meterdb::Timestamp;
/// use meterdb::usage::{CheckStatus, GraceState, LimitSettings, LimitType, PeriodType, UsageLimit, check_limit};
///
/// let limit = UsageLimit::new("calls", LimitType::HardLimit, "api_calls", 100.0, PeriodType::Day);
/// let settings = LimitSettings::default();
/// let t0 = Timestamp(1_793_491_200_000_000_000);
/// let (r, state) = check_limit(&limit, 100.0, t0, GraceState::default(), &settings)?;
/// assert_eq!((r.status, r.allowed), (CheckStatus::Grace, true));
/// let six_min = Timestamp(t0.0 + 6 * 60 * 1_000_000_000);
/// let (r, _) = check_limit(&limit, 100.0, six_min, state, &settings)?;
/// assert_eq!((r.status, r.allowed), (CheckStatus::Exceeded, false));
/// # Ok::<(), meterdb::usage::CheckError>(())
/// ```
pub fn check_limit(
    limit: &UsageLimit,
    usage: f64,
    now: Timestamp,
    state: GraceState,
    settings: &LimitSettings,
) -> Result<(CheckResult, GraceState), CheckError> {
    let period = limit.period_at(now)?;
    check_limit_in(limit, period, usage, now, state, settings)
}

/// [`check_limit`] for a caller that already computed the period containing `now` (with
/// [`UsageLimit::period_at`], to read the usage over it), so as not to compute it twice.
pub fn check_limit_in(
    limit: &UsageLimit,
    period: Period,
    usage: f64,
    now: Timestamp,
    state: GraceState,
    settings: &LimitSettings,
) -> Result<(CheckResult, GraceState), CheckError> {
    if limit.limit_type == LimitType::BurstLimit {
        return Err(CheckError::Unsupported(limit.limit_type));
    }
    if !(limit.limit_value.is_finite() && limit.limit_value > 0.0) {
        return Err(CheckError::InvalidLimit("limit_value must be above 0"));
    }
    if usage.is_nan() {
        return Err(CheckError::InvalidUsage);
    }
    if !period.contains(now) {
        return Err(CheckError::PeriodMismatch);
    }
    // State from an earlier period does not carry over: usage has reset.
    let mut state = GraceState {
        first_exceeded: state
            .first_exceeded
            .filter(|f| f.period_start == period.start),
    };
    let reached = usage >= limit.limit_value;
    let (status, enforced_allowed) = if limit.status == LimitStatus::Inactive {
        (CheckStatus::Ok, true)
    } else if !reached {
        // 0.07 × 100 is 7.000000000000001 in binary floating point: without the tolerance,
        // usage 7 would not warn at a 7% threshold. One part in 10^12 is far below any
        // meaningful difference in usage.
        let warning_level = limit.warning_threshold * limit.limit_value * (1.0 - 1e-12);
        if usage >= warning_level {
            (CheckStatus::Warning, true)
        } else {
            (CheckStatus::Ok, true)
        }
    } else {
        match limit.limit_type {
            LimitType::SoftLimit => (CheckStatus::Exceeded, true),
            LimitType::RateLimit | LimitType::BurstLimit => (CheckStatus::Exceeded, false),
            LimitType::HardLimit => {
                let first = *state.first_exceeded.get_or_insert(FirstExceeded {
                    period_start: period.start,
                    at: now,
                });
                let grace_end = first.at.0.saturating_add(nanos(settings.grace_period));
                if !limit.enforce_immediately && now.0 < grace_end {
                    (CheckStatus::Grace, true)
                } else {
                    (CheckStatus::Exceeded, false)
                }
            }
        }
    };
    let result = CheckResult {
        allowed: enforced_allowed || !settings.enforcement_enabled,
        status,
        usage,
        limit: limit.limit_value,
        remaining: (limit.limit_value - usage).max(0.0),
        period_start: period.start,
        period_end: period.end,
        resets_at: period.resets_at(),
        tz: limit.tz(),
    };
    Ok((result, state))
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
