//! [`UsageTracker`]: the spec's usage-tracking API, in Rust, over an [`Engine`]: record events,
//! read usage and metrics, define meters, keep limits and check them.
//!
//! - [`event`]: [`UsageEvent`] and its one mapping onto stored events (shared with the JSON
//!   events endpoint).
//! - [`limits`]: the tenants' limits, in memory and in the data directory's `LIMITS` file,
//!   with the grace state of each.
//! - this module: the tracker, which ties the engine's usage (rollups) to the pure limit
//!   check of [`crate::usage`], with the clock as an argument so that tests set the time.
//!
//! ```
//! use std::sync::Arc;
//! use meterdb::clock::ManualClock;
//! use meterdb::tracker::{ApiCall, UsageTracker};
//! use meterdb::usage::{CheckStatus, LimitType, PeriodType, UsageLimit, UsageSettings};
//! use meterdb::{Engine, Options, Timestamp};
//!
//! # fn main() -> meterdb::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! // 2026-11-01T10:00:00Z
//! let clock = Arc::new(ManualClock::new(Timestamp(1_793_527_200_000_000_000)));
//! let engine = Arc::new(Engine::open(dir.path(), Options { clock: clock.clone(), ..Options::default() })?);
//! let tracker = UsageTracker::new(engine, UsageSettings::default(), clock)?;
//! let limit = UsageLimit::new("API calls per day", LimitType::HardLimit, "api_calls", 2.0, PeriodType::Day);
//! let limit = tracker.create_limit("acme", limit)?;
//! assert!(limit.id.is_some());
//! for _ in 0..2 {
//!     let call = ApiCall { tenant: "acme", endpoint: "/api/users", method: "GET", status_code: Some(200), ..ApiCall::default() };
//!     assert_eq!(tracker.record_api_call(&call)?.written, 1);
//! }
//! let check = tracker.check_limit("acme", "api_calls")?;
//! // Reached: the hard limit's grace period (LIMITS_GRACE_PERIOD_MINUTES) starts.
//! assert_eq!((check.allowed(), check.status()), (true, CheckStatus::Grace));
//! assert_eq!(tracker.get_current_usage("acme", "api_calls", PeriodType::Day, chrono_tz::UTC)?.value, 2.0);
//! # Ok(())
//! # }
//! ```
//!
//! **Invariant:** [`UsageTracker::check_limit`], the per-request hot path, reads only memory
//! (limits, rollups): no file I/O, no lock held across the usage read.

pub mod event;
pub mod limits;

use std::sync::Arc;

use chrono_tz::Tz;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

pub use event::{MetaValue, UsageEvent};
pub use limits::{LIMITS_FILE, LimitStore, MAX_LIMITS_PER_TENANT};

use crate::clock::Clock;
use crate::engine::{Engine, Receipt};
use crate::error::{Error, Result};
use crate::model::{Timestamp, WriteBatch};
use crate::rollup::Granularity;
use crate::usage::period::to_rfc3339;
use crate::usage::{
    Aggregation, CheckError, CheckResult, CheckStatus, LimitError, Meter, PeriodType, UsageLimit,
    UsageSettings, check_limit_in, period_containing,
};

/// The usage tracker. `Send + Sync`: share it with an `Arc`.
#[derive(Debug)]
pub struct UsageTracker {
    engine: Arc<Engine>,
    settings: UsageSettings,
    clock: Arc<dyn Clock>,
    limits: LimitStore,
}

/// An API call, for [`UsageTracker::record_api_call`]: event type `api_call`, stored in
/// measurement `api_calls` with tags `endpoint`, `method` (and `user`) and fields
/// `status_code` (integer) and `response_time_ms` (float).
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiCall<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The user who made the call.
    pub user: Option<&'a str>,
    /// The endpoint called (`/api/users`).
    pub endpoint: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The response's status code.
    pub status_code: Option<u16>,
    /// How long the call took.
    pub response_time_ms: Option<f64>,
    /// The event's id: a retry with the same id counts once.
    pub event_id: Option<&'a str>,
    /// When it happened; `None` is now.
    pub timestamp: Option<Timestamp>,
}

/// A storage operation, for [`UsageTracker::record_storage_usage`]: event type `storage`,
/// stored in measurement `storage` with tags `operation`, `file_type` (and `user`) and the
/// integer field `size_bytes` (what the built-in `storage_bytes` meter sums for `write`s).
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageUsage<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The user who caused it.
    pub user: Option<&'a str>,
    /// `write`, `read`, `delete`, ...
    pub operation: &'a str,
    /// Bytes concerned.
    pub size_bytes: u64,
    /// The file's type (`image/jpeg`).
    pub file_type: Option<&'a str>,
    /// The event's id: a retry with the same id counts once.
    pub event_id: Option<&'a str>,
    /// When it happened; `None` is now.
    pub timestamp: Option<Timestamp>,
}

/// A database query, for [`UsageTracker::record_database_query`]: event type
/// `database_query`, stored in measurement `db_queries` with tags `query_type`, `table` (and
/// `user`) and fields `duration_ms` (float) and `rows` (integer).
#[derive(Clone, Copy, Debug, Default)]
pub struct DatabaseQuery<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The user who caused it.
    pub user: Option<&'a str>,
    /// `select`, `insert`, ...
    pub query_type: &'a str,
    /// The table queried.
    pub table: &'a str,
    /// How long it took.
    pub duration_ms: Option<f64>,
    /// Rows read or written.
    pub rows: Option<u64>,
    /// The event's id: a retry with the same id counts once.
    pub event_id: Option<&'a str>,
    /// When it happened; `None` is now.
    pub timestamp: Option<Timestamp>,
}

/// One bucket of [`UsageTracker::get_usage_metrics`].
///
/// JSON: `{"period_start","period_end","value","count"}`, plus `"min"`, `"max"`, `"avg"` for
/// meters that aggregate a field (sum, min, max, avg, latest) over a bucket with values.
/// `value` is null where the meter has no figure (the max of no values); times RFC 3339 UTC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UsageMetric {
    /// Start of the bucket (UTC, aligned on the granularity).
    pub period_start: Timestamp,
    /// End of the bucket (exclusive).
    pub period_end: Timestamp,
    /// The meter's figure over the bucket.
    pub value: Option<f64>,
    /// Events that counted.
    pub count: u64,
    /// Smallest value (field meters only).
    pub min: Option<f64>,
    /// Largest value (field meters only).
    pub max: Option<f64>,
    /// Mean value (field meters only).
    pub avg: Option<f64>,
}

impl Serialize for UsageMetric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("UsageMetric", 7)?;
        out.serialize_field("period_start", &to_rfc3339(self.period_start, Tz::UTC))?;
        out.serialize_field("period_end", &to_rfc3339(self.period_end, Tz::UTC))?;
        out.serialize_field("value", &self.value)?;
        out.serialize_field("count", &self.count)?;
        for (key, v) in [("min", self.min), ("max", self.max), ("avg", self.avg)] {
            match v {
                Some(v) => out.serialize_field(key, &v)?,
                None => out.skip_field(key)?,
            }
        }
        out.end()
    }
}

/// Usage of a meter in the current period, from [`UsageTracker::get_current_usage`].
///
/// JSON: `{"tenant","meter","value","period_start","period_end"}`, times RFC 3339 with the
/// UTC offset of the period's time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentUsage {
    /// The tenant.
    pub tenant: String,
    /// The meter.
    pub meter: String,
    /// The meter's figure over the period; 0 when it has none (no events).
    pub value: f64,
    /// Start of the period.
    pub period_start: Timestamp,
    /// End of the period (exclusive).
    pub period_end: Timestamp,
    /// The time zone the period follows.
    pub tz: Tz,
}

impl Serialize for CurrentUsage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("CurrentUsage", 5)?;
        out.serialize_field("tenant", &self.tenant)?;
        out.serialize_field("meter", &self.meter)?;
        out.serialize_field("value", &self.value)?;
        out.serialize_field("period_start", &to_rfc3339(self.period_start, self.tz))?;
        out.serialize_field("period_end", &to_rfc3339(self.period_end, self.tz))?;
        out.end()
    }
}

/// The answer of [`UsageTracker::check_limit`]: the most restrictive of the meter's active
/// limits, or none.
///
/// JSON: the spec's `{"allowed","status","usage","limit","remaining","period_start",
/// "period_end","resets_at"}` plus `"limit_id"` and `"limit_name"` naming the deciding limit.
/// With no active limit on the meter: allowed, status `ok`, and every other key null.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitCheck {
    /// The deciding limit's check; `None` when no active limit applies.
    pub result: Option<CheckResult>,
    /// The deciding limit.
    pub limit: Option<Arc<UsageLimit>>,
}

impl LimitCheck {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        self.result.is_none_or(|r| r.allowed)
    }

    /// Where usage stands against the deciding limit (`ok` without one).
    pub fn status(&self) -> CheckStatus {
        self.result.map_or(CheckStatus::Ok, |r| r.status)
    }
}

impl Serialize for LimitCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.result.as_ref();
        let time = |f: fn(&CheckResult) -> Timestamp| r.map(|r| to_rfc3339(f(r), r.tz));
        let mut out = s.serialize_struct("LimitCheck", 10)?;
        out.serialize_field("allowed", &self.allowed())?;
        out.serialize_field("status", &self.status())?;
        out.serialize_field("usage", &r.map(|r| r.usage))?;
        out.serialize_field("limit", &r.map(|r| r.limit))?;
        out.serialize_field("remaining", &r.map(|r| r.remaining))?;
        out.serialize_field("period_start", &time(|r| r.period_start))?;
        out.serialize_field("period_end", &time(|r| r.period_end))?;
        out.serialize_field("resets_at", &time(|r| r.resets_at))?;
        out.serialize_field(
            "limit_id",
            &self.limit.as_ref().and_then(|l| l.id.as_deref()),
        )?;
        out.serialize_field("limit_name", &self.limit.as_ref().map(|l| &l.limit_name))?;
        out.end()
    }
}

impl UsageTracker {
    /// A tracker over `engine`, with its limits loaded from the data directory.
    ///
    /// Pass the clock the engine was opened with ([`crate::Options::clock`]), so that "now"
    /// means the same to both.
    ///
    /// # Errors
    /// [`Error::Corruption`] when the `LIMITS` file is damaged; I/O errors.
    pub fn new(
        engine: Arc<Engine>,
        settings: UsageSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<UsageTracker> {
        let limits = LimitStore::open(engine.file_system(), engine.dir())?;
        Ok(UsageTracker {
            engine,
            settings,
            clock,
            limits,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The settings the tracker was made with.
    pub fn settings(&self) -> &UsageSettings {
        &self.settings
    }

    // ---- recording ----

    /// Records one event (timestamp now if it has none); returns once it is durable. As
    /// every stored event, it needs a field (a number in `metadata`, `quantity`) or an
    /// `event_id`.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] when the event is invalid or a field's type conflicts with the
    /// stored data (so the receipt's `rejected` is always empty); the engine's write errors.
    /// A repeat of a stored `event_id` is not an error: it counts once
    /// ([`Receipt::duplicates`] is 1, `written` 0).
    pub fn record_event(&self, event: &UsageEvent) -> Result<Receipt> {
        let mut batch = WriteBatch::new();
        event.add_to(&mut batch, self.clock.now());
        let mut receipt = self.engine.write(batch)?;
        if let Some((index, reason)) = receipt.rejected.pop() {
            return Err(Error::InvalidEvent { index, reason });
        }
        Ok(receipt)
    }

    /// Records an API call (see [`ApiCall`] for how it is stored).
    pub fn record_api_call(&self, call: &ApiCall<'_>) -> Result<Receipt> {
        let mut e = common(
            call.tenant,
            "api_call",
            call.user,
            call.event_id,
            call.timestamp,
        )
        .meta("endpoint", MetaValue::Str(call.endpoint.to_owned()))
        .meta("method", MetaValue::Str(call.method.to_owned()));
        if let Some(code) = call.status_code {
            e = e.meta("status_code", MetaValue::Int(i64::from(code)));
        }
        if let Some(ms) = call.response_time_ms {
            e = e.meta("response_time_ms", MetaValue::Float(ms));
        }
        self.record_event(&e)
    }

    /// Records a storage operation (see [`StorageUsage`] for how it is stored).
    pub fn record_storage_usage(&self, op: &StorageUsage<'_>) -> Result<Receipt> {
        let mut e = common(op.tenant, "storage", op.user, op.event_id, op.timestamp)
            .meta("operation", MetaValue::Str(op.operation.to_owned()));
        if let Some(t) = op.file_type {
            e = e.meta("file_type", MetaValue::Str(t.to_owned()));
        }
        let size = i64::try_from(op.size_bytes).unwrap_or(i64::MAX);
        self.record_event(&e.meta("size_bytes", MetaValue::Int(size)))
    }

    /// Records a database query (see [`DatabaseQuery`] for how it is stored).
    pub fn record_database_query(&self, q: &DatabaseQuery<'_>) -> Result<Receipt> {
        let mut e = common(q.tenant, "database_query", q.user, q.event_id, q.timestamp)
            .meta("query_type", MetaValue::Str(q.query_type.to_owned()))
            .meta("table", MetaValue::Str(q.table.to_owned()));
        if let Some(ms) = q.duration_ms {
            e = e.meta("duration_ms", MetaValue::Float(ms));
        }
        if let Some(rows) = q.rows {
            e = e.meta(
                "rows",
                MetaValue::Int(i64::try_from(rows).unwrap_or(i64::MAX)),
            );
        }
        self.record_event(&e)
    }

    // ---- reading usage ----

    /// The meter's usage per `granularity` bucket (UTC-aligned) over `[start, end)`: one
    /// entry per bucket overlapping the range, empty buckets included; the first and last
    /// buckets are whole, so they may reach outside the range.
    ///
    /// # Errors
    /// [`Error::UnknownMeter`]; [`Error::InvalidScan`] for an empty range or more than
    /// [`crate::engine::usage::MAX_SERIES_BUCKETS`] buckets.
    pub fn get_usage_metrics(
        &self,
        tenant: &str,
        meter: &str,
        start: Timestamp,
        end: Timestamp,
        granularity: Granularity,
    ) -> Result<Vec<UsageMetric>> {
        let aggregation = self.known_meter(tenant, meter)?.aggregation;
        let reads_field = !matches!(aggregation, Aggregation::Count | Aggregation::UniqueCount);
        let series = self
            .engine
            .usage_series(tenant, meter, start.0..end.0, granularity)?;
        Ok(series
            .into_iter()
            .map(|(bucket, u)| {
                let field = |v: Option<f64>| v.filter(|_| reads_field);
                UsageMetric {
                    period_start: Timestamp(bucket),
                    period_end: Timestamp(bucket.saturating_add(granularity.nanos())),
                    value: u.value(aggregation),
                    count: u.count,
                    min: field(u.min),
                    max: field(u.max),
                    avg: field(u.value(Aggregation::Avg)),
                }
            })
            .collect())
    }

    /// The meter's usage in the calendar `period_type` (in time zone `tz`) containing now.
    ///
    /// # Errors
    /// [`Error::UnknownMeter`]; errors reading raw events.
    pub fn get_current_usage(
        &self,
        tenant: &str,
        meter: &str,
        period_type: PeriodType,
        tz: Tz,
    ) -> Result<CurrentUsage> {
        let aggregation = self.known_meter(tenant, meter)?.aggregation;
        let now = self.clock.now();
        let period = period_containing(now, period_type, 1, tz).map_err(|e| {
            Error::InvalidLimit(LimitError::Invalid {
                key: "period_type",
                reason: e.to_string(),
            })
        })?;
        let usage = self
            .engine
            .usage(tenant, meter, period.start.0..period.end.0)?;
        Ok(CurrentUsage {
            tenant: tenant.to_owned(),
            meter: meter.to_owned(),
            value: usage.value(aggregation).unwrap_or(0.0),
            period_start: period.start,
            period_end: period.end,
            tz,
        })
    }

    // ---- limit checks ----

    /// Checks `tenant`'s active limits on `meter` now, and answers the most restrictive:
    /// denied before allowed, then exceeded, grace, warning, ok, then the least remaining.
    /// Each limit is compared with the meter's usage in that limit's current period (a
    /// meter without a figure, such as the max of no events, counts as 0), and carries its
    /// grace state to the next check (see [`crate::usage::check`] for the rules and
    /// `LIMITS_ENFORCEMENT_ENABLED` / `LIMITS_GRACE_PERIOD_MINUTES`).
    ///
    /// # Errors
    /// [`Error::UnknownMeter`] when the tenant has no such meter (even without limits);
    /// errors reading raw events.
    pub fn check_limit(&self, tenant: &str, meter: &str) -> Result<LimitCheck> {
        let aggregation = self.known_meter(tenant, meter)?.aggregation;
        let mut best = LimitCheck {
            result: None,
            limit: None,
        };
        let Some(limits) = self.limits.of(tenant) else {
            return Ok(best);
        };
        let now = self.clock.now();
        for entry in limits.iter() {
            let limit = &*entry.limit;
            if limit.resource_type != meter || limit.status != crate::usage::LimitStatus::Active {
                continue;
            }
            let period = limit
                .period_at(now)
                .map_err(|e| check_error(limit, e.into()))?;
            let usage = self
                .engine
                .usage(tenant, meter, period.start.0..period.end.0)?
                .value(aggregation)
                .unwrap_or(0.0);
            let result = {
                let mut grace = entry.grace.lock().unwrap_or_else(|e| e.into_inner());
                let (result, next) =
                    check_limit_in(limit, period, usage, now, *grace, &self.settings.limits)
                        .map_err(|e| check_error(limit, e))?;
                *grace = next;
                result
            };
            if best.result.is_none_or(|b| more_restrictive(&result, &b)) {
                best = LimitCheck {
                    result: Some(result),
                    limit: Some(entry.limit.clone()),
                };
            }
        }
        Ok(best)
    }

    // ---- limits ----

    /// Creates a limit for `tenant` and returns it with its new `id`. Its `resource_type`
    /// must name one of the tenant's meters.
    ///
    /// # Errors
    /// [`Error::UnknownMeter`] for a `resource_type` the tenant has no meter for;
    /// [`Error::InvalidLimit`] for a limit that does not validate or carries an `id`, or a
    /// tenant at [`MAX_LIMITS_PER_TENANT`]; I/O errors (then nothing changed).
    pub fn create_limit(&self, tenant: &str, limit: UsageLimit) -> Result<UsageLimit> {
        self.known_meter(tenant, &limit.resource_type)?;
        Ok((*self.limits.create(tenant, limit)?).clone())
    }

    /// `tenant`'s limits, in creation order.
    pub fn limits(&self, tenant: &str) -> Vec<UsageLimit> {
        self.limits
            .of(tenant)
            .map(|l| l.iter().map(|e| (*e.limit).clone()).collect())
            .unwrap_or_default()
    }

    /// `tenant`'s limit `id`.
    ///
    /// # Errors
    /// [`Error::UnknownLimit`].
    pub fn limit(&self, tenant: &str, id: &str) -> Result<UsageLimit> {
        Ok((*self.limits.get(tenant, id)?.limit).clone())
    }

    /// Replaces `tenant`'s limit `id` (the body's `id`, if any, must be `id`). A limit that
    /// was reached keeps its grace state.
    ///
    /// # Errors
    /// [`Error::UnknownLimit`], [`Error::UnknownMeter`], [`Error::InvalidLimit`], I/O errors.
    pub fn update_limit(&self, tenant: &str, id: &str, limit: UsageLimit) -> Result<UsageLimit> {
        self.limits.get(tenant, id)?;
        self.known_meter(tenant, &limit.resource_type)?;
        Ok((*self.limits.update(tenant, id, limit)?).clone())
    }

    /// Deletes `tenant`'s limit `id`.
    ///
    /// # Errors
    /// [`Error::UnknownLimit`], I/O errors.
    pub fn delete_limit(&self, tenant: &str, id: &str) -> Result<()> {
        self.limits.delete(tenant, id)
    }

    // ---- meters (the engine's) ----

    /// `tenant`'s meters: the built-in ones, then its own. See [`Engine::meters`].
    pub fn meters(&self, tenant: &str) -> Vec<Meter> {
        self.engine.meters(tenant)
    }

    /// `tenant`'s meter `name`.
    pub fn meter(&self, tenant: &str, name: &str) -> Option<Meter> {
        self.engine.meter(tenant, name)
    }

    /// Defines a meter for `tenant`, backfilled from stored events. See
    /// [`Engine::define_meter`].
    pub fn define_meter(&self, tenant: &str, meter: Meter) -> Result<()> {
        self.engine.define_meter(tenant, meter)
    }

    /// Deletes `tenant`'s meter `name` ([`Engine::delete_meter`]); refused with
    /// [`Error::MeterInUse`] while limits cap it, so that no limit is left checking a meter
    /// that does not exist.
    pub fn delete_meter(&self, tenant: &str, name: &str) -> Result<()> {
        let limits: Vec<String> = self
            .limits(tenant)
            .into_iter()
            .filter(|l| l.resource_type == name)
            .filter_map(|l| l.id)
            .collect();
        if !limits.is_empty() {
            return Err(Error::MeterInUse {
                tenant: crate::usage::meter::clip(tenant),
                meter: crate::usage::meter::clip(name),
                limits,
            });
        }
        self.engine.delete_meter(tenant, name)
    }

    fn known_meter(&self, tenant: &str, meter: &str) -> Result<Meter> {
        self.engine
            .meter(tenant, meter)
            .ok_or_else(|| Error::UnknownMeter {
                tenant: crate::usage::meter::clip(tenant),
                meter: crate::usage::meter::clip(meter),
            })
    }
}

/// The event every `record_*` helper starts from.
fn common(
    tenant: &str,
    event_type: &str,
    user: Option<&str>,
    event_id: Option<&str>,
    timestamp: Option<Timestamp>,
) -> UsageEvent {
    UsageEvent {
        user_id: user.map(str::to_owned),
        event_id: event_id.map(str::to_owned),
        timestamp,
        ..UsageEvent::new(tenant, event_type)
    }
}

/// Whether `a` restricts more than `b`: denied before allowed; among allowed answers a hard
/// limit in its grace period (denial is minutes away) before a reached soft limit (never
/// denies), then warning, ok; then less remaining.
fn more_restrictive(a: &CheckResult, b: &CheckResult) -> bool {
    let rank = |s: CheckStatus| match s {
        CheckStatus::Grace => 3,
        CheckStatus::Exceeded => 2,
        CheckStatus::Warning => 1,
        CheckStatus::Ok => 0,
    };
    let key = |r: &CheckResult| (!r.allowed, rank(r.status));
    match key(a).cmp(&key(b)) {
        std::cmp::Ordering::Equal => a.remaining < b.remaining,
        other => other.is_gt(),
    }
}

/// A check that cannot be made: the limit holds something no check can use (validation
/// should have refused it), reported with the limit's id.
fn check_error(limit: &UsageLimit, e: CheckError) -> Error {
    Error::InvalidLimit(LimitError::Invalid {
        key: "limit",
        reason: format!(
            "limit {:?} cannot be checked: {e}",
            limit.id.as_deref().unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests;
