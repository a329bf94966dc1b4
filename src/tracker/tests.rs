//! The tracker over a real engine, with a manual clock shared by both: every limit transition
//! happens at a time the test sets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::America::New_York;
use chrono_tz::Tz;

use super::*;
use crate::clock::ManualClock;
use crate::config::{Options, SyncPolicy};
use crate::usage::{LimitStatus, LimitType};

const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;

/// An RFC 3339 time as a timestamp.
fn at(rfc3339: &str) -> Timestamp {
    Timestamp(
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap(),
    )
}

fn open(dir: &Path, clock: &Arc<ManualClock>, settings: UsageSettings) -> UsageTracker {
    let options = Options {
        shards: Some(2),
        sync: SyncPolicy::None,
        clock: clock.clone(),
        ..Options::default()
    };
    let engine = Arc::new(Engine::open(dir, options).unwrap());
    UsageTracker::new(engine, settings, clock.clone()).unwrap()
}

fn close(tracker: UsageTracker) {
    let engine = tracker.engine().clone();
    drop(tracker);
    Arc::try_unwrap(engine).unwrap().close().unwrap();
}

fn grace(minutes: u64) -> UsageSettings {
    let mut s = UsageSettings::default();
    s.limits.grace_period = Duration::from_secs(minutes * 60);
    s
}

/// `n` API calls of `tenant`, now.
fn calls(t: &UsageTracker, tenant: &str, n: usize) {
    for _ in 0..n {
        let call = ApiCall {
            tenant,
            endpoint: "/api/users",
            method: "GET",
            status_code: Some(200),
            response_time_ms: Some(12.5),
            ..ApiCall::default()
        };
        assert_eq!(t.record_api_call(&call).unwrap().written, 1);
    }
}

fn limit(limit_type: LimitType, value: f64, period: PeriodType, tz: Option<Tz>) -> UsageLimit {
    let mut l = UsageLimit::new("test limit", limit_type, "api_calls", value, period);
    l.timezone = tz;
    l
}

fn state(t: &UsageTracker, tenant: &str) -> (bool, CheckStatus, f64) {
    let c = t.check_limit(tenant, "api_calls").unwrap();
    (c.allowed(), c.status(), c.result.map_or(-1.0, |r| r.usage))
}

#[test]
fn hard_limit_grace_then_denied_then_reset_with_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:00:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    t.create_limit(
        "acme",
        limit(LimitType::HardLimit, 3.0, PeriodType::Day, None),
    )
    .unwrap();
    calls(&t, "acme", 2);
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Ok, 2.0));
    calls(&t, "acme", 1);
    // Reached at 12:00: five minutes of grace.
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Grace, 3.0));
    clock.advance(4 * MINUTE + 59_000_000_000);
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Grace, 3.0));
    clock.advance(1_000_000_000);
    assert_eq!(state(&t, "acme"), (false, CheckStatus::Exceeded, 3.0));
    clock.set(at("2026-11-10T23:59:59Z"));
    assert_eq!(state(&t, "acme"), (false, CheckStatus::Exceeded, 3.0));
    // A new day: usage starts from zero, and so does the grace period.
    clock.set(at("2026-11-11T00:00:00Z"));
    let check = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!((check.allowed(), check.status()), (true, CheckStatus::Ok));
    let r = check.result.unwrap();
    assert_eq!((r.usage, r.remaining), (0.0, 3.0));
    assert_eq!(r.resets_at, at("2026-11-12T00:00:00Z"));
    calls(&t, "acme", 3);
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Grace, 3.0));
    // Other tenants are not affected.
    assert_eq!(state(&t, "globex"), (true, CheckStatus::Ok, -1.0));
}

#[test]
fn enforcement_disabled_reports_but_allows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:00:00Z")));
    let mut settings = grace(0);
    settings.limits.enforcement_enabled = false;
    let t = open(dir.path(), &clock, settings);
    let mut l = limit(LimitType::HardLimit, 2.0, PeriodType::Hour, None);
    l.enforce_immediately = true;
    t.create_limit("acme", l).unwrap();
    calls(&t, "acme", 5);
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Exceeded, 5.0));
}

#[test]
fn soft_limits_and_warning_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:00:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    let mut soft = limit(LimitType::SoftLimit, 10.0, PeriodType::Day, None);
    soft.warning_threshold = 0.5;
    t.create_limit("acme", soft).unwrap();
    calls(&t, "acme", 4);
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Ok, 4.0));
    calls(&t, "acme", 1);
    let c = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!((c.allowed(), c.status()), (true, CheckStatus::Warning));
    assert_eq!(c.result.unwrap().remaining, 5.0);
    calls(&t, "acme", 6);
    let c = t.check_limit("acme", "api_calls").unwrap();
    // A soft limit never denies; nothing is left.
    assert_eq!((c.allowed(), c.status()), (true, CheckStatus::Exceeded));
    assert_eq!(c.result.unwrap().remaining, 0.0);
}

#[test]
fn the_most_restrictive_limit_answers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:30:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    let monthly = t
        .create_limit(
            "acme",
            limit(LimitType::HardLimit, 1000.0, PeriodType::Month, None),
        )
        .unwrap();
    let soft = t
        .create_limit(
            "acme",
            limit(LimitType::SoftLimit, 2.0, PeriodType::Day, None),
        )
        .unwrap();
    let mut off = limit(LimitType::HardLimit, 1.0, PeriodType::Day, None);
    off.status = LimitStatus::Inactive;
    t.create_limit("acme", off).unwrap();
    calls(&t, "acme", 1);
    // Both ok: the one with less left answers.
    let c = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!(c.limit.as_ref().unwrap().id, soft.id);
    assert_eq!(c.status(), CheckStatus::Ok);
    calls(&t, "acme", 2);
    let c = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!((c.allowed(), c.status()), (true, CheckStatus::Exceeded));
    assert_eq!(c.limit.as_ref().unwrap().id, soft.id);
    // A hard hourly limit reached with no grace denies, which beats an allowed exceeded.
    let mut hourly = limit(LimitType::HardLimit, 3.0, PeriodType::Hour, None);
    hourly.enforce_immediately = true;
    let hourly = t.create_limit("acme", hourly).unwrap();
    let c = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!((c.allowed(), c.status()), (false, CheckStatus::Exceeded));
    assert_eq!(c.limit.as_ref().unwrap().id, hourly.id);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["limit_id"], hourly.id.clone().unwrap());
    assert_eq!(json["period_start"], "2026-11-10T12:00:00Z");
    assert_eq!(json["resets_at"], "2026-11-10T13:00:00Z");
    // The next hour, the soft limit is the most restrictive again.
    clock.advance(HOUR);
    let c = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!(c.limit.as_ref().unwrap().id, soft.id);
    assert!(c.allowed());
    // A hard limit in its grace period (denial minutes away) outranks a reached soft limit.
    let daily = t
        .create_limit(
            "acme",
            limit(LimitType::HardLimit, 3.0, PeriodType::Day, None),
        )
        .unwrap();
    let c = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!((c.allowed(), c.status()), (true, CheckStatus::Grace));
    assert_eq!(c.limit.as_ref().unwrap().id, daily.id);
    t.delete_limit("acme", daily.id.as_deref().unwrap())
        .unwrap();
    // Deleting a limit takes it out of checks.
    t.delete_limit("acme", soft.id.as_deref().unwrap()).unwrap();
    t.delete_limit("acme", hourly.id.as_deref().unwrap())
        .unwrap();
    let c = t.check_limit("acme", "api_calls").unwrap();
    assert_eq!(c.limit.as_ref().unwrap().id, monthly.id);
}

#[test]
fn no_limit_allows_and_unknown_meters_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:00:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    let c = t.check_limit("nobody", "api_calls").unwrap();
    assert!(c.allowed() && c.result.is_none() && c.limit.is_none());
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["status"], "ok");
    assert!(json["limit"].is_null() && json["remaining"].is_null() && json["limit_id"].is_null());
    assert!(matches!(
        t.check_limit("acme", "nope"),
        Err(Error::UnknownMeter { .. })
    ));
    let mut l = limit(LimitType::HardLimit, 5.0, PeriodType::Day, None);
    l.resource_type = "uploads".into();
    assert!(matches!(
        t.create_limit("acme", l.clone()),
        Err(Error::UnknownMeter { .. })
    ));
    t.define_meter("acme", Meter::count("uploads", "storage"))
        .unwrap();
    let created = t.create_limit("acme", l).unwrap();
    let id = created.id.clone().unwrap();
    assert_eq!(t.limit("acme", &id).unwrap(), created);
    assert!(matches!(
        t.limit("globex", &id),
        Err(Error::UnknownLimit { .. })
    ));
    let mut changed = created.clone();
    changed.limit_value = 7.0;
    assert_eq!(
        t.update_limit("acme", &id, changed).unwrap().limit_value,
        7.0
    );
    changed = created.clone();
    changed.id = Some("other".into());
    assert!(matches!(
        t.update_limit("acme", &id, changed),
        Err(Error::InvalidLimit(_))
    ));
    assert!(matches!(
        t.update_limit("acme", "missing", created),
        Err(Error::UnknownLimit { .. })
    ));
}

#[test]
fn calendar_months_follow_the_tenant_time_zone_across_dst() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-30T23:59:00-05:00")));
    let t = open(dir.path(), &clock, grace(5));
    let ny = t
        .create_limit(
            "acme",
            limit(
                LimitType::HardLimit,
                100.0,
                PeriodType::Month,
                Some(New_York),
            ),
        )
        .unwrap();
    calls(&t, "acme", 1); // November, New York time
    clock.set(at("2026-12-01T00:01:00-05:00"));
    calls(&t, "acme", 2); // December, New York time
    let r = t.check_limit("acme", "api_calls").unwrap().result.unwrap();
    assert_eq!(r.usage, 2.0);
    let json = serde_json::to_value(t.check_limit("acme", "api_calls").unwrap()).unwrap();
    assert_eq!(json["period_start"], "2026-12-01T00:00:00-05:00");
    assert_eq!(json["resets_at"], "2027-01-01T00:00:00-05:00");
    // Just before local midnight: November, which began in daylight time (UTC-4) and ends
    // in standard time (UTC-5).
    clock.set(at("2026-11-30T23:59:30-05:00"));
    let json = serde_json::to_value(t.check_limit("acme", "api_calls").unwrap()).unwrap();
    assert_eq!(json["usage"], 1.0);
    assert_eq!(json["period_start"], "2026-11-01T00:00:00-04:00");
    assert_eq!(json["period_end"], "2026-12-01T00:00:00-05:00");
    // In UTC, all three calls fall on December 1.
    t.delete_limit("acme", ny.id.as_deref().unwrap()).unwrap();
    t.create_limit(
        "acme",
        limit(LimitType::HardLimit, 100.0, PeriodType::Month, None),
    )
    .unwrap();
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Ok, 3.0));
    let now = t
        .get_current_usage("acme", "api_calls", PeriodType::Month, New_York)
        .unwrap();
    assert_eq!(now.value, 1.0);
    assert_eq!(
        serde_json::to_value(&now).unwrap()["period_start"],
        "2026-11-01T00:00:00-04:00"
    );
}

#[test]
fn the_day_clocks_fall_back_lasts_25_hours() {
    let dir = tempfile::tempdir().unwrap();
    // 00:30 EDT on Sunday 2026-11-01; clocks fall back at 02:00 EDT.
    let clock = Arc::new(ManualClock::new(at("2026-11-01T00:30:00-04:00")));
    let t = open(dir.path(), &clock, grace(5));
    t.create_limit(
        "acme",
        limit(LimitType::HardLimit, 2.0, PeriodType::Day, Some(New_York)),
    )
    .unwrap();
    calls(&t, "acme", 1);
    // 23:30 EST the same local day, 24 hours after midnight EDT.
    clock.set(at("2026-11-01T23:30:00-05:00"));
    calls(&t, "acme", 1);
    let c = serde_json::to_value(t.check_limit("acme", "api_calls").unwrap()).unwrap();
    assert_eq!(
        (c["usage"].as_f64(), c["status"].as_str()),
        (Some(2.0), Some("grace"))
    );
    assert_eq!(c["period_start"], "2026-11-01T00:00:00-04:00");
    assert_eq!(c["period_end"], "2026-11-02T00:00:00-05:00");
    clock.set(at("2026-11-02T00:00:00-05:00"));
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Ok, 0.0));
}

#[test]
fn years_turn_at_local_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-12-31T23:59:00-05:00")));
    let t = open(dir.path(), &clock, grace(5));
    t.create_limit(
        "acme",
        limit(LimitType::SoftLimit, 10.0, PeriodType::Year, Some(New_York)),
    )
    .unwrap();
    calls(&t, "acme", 2);
    clock.set(at("2027-01-01T00:00:00-05:00"));
    calls(&t, "acme", 1);
    let c = serde_json::to_value(t.check_limit("acme", "api_calls").unwrap()).unwrap();
    assert_eq!(c["usage"], 1.0);
    assert_eq!(c["period_start"], "2027-01-01T00:00:00-05:00");
    assert_eq!(c["resets_at"], "2028-01-01T00:00:00-05:00");
    clock.set(at("2026-12-31T23:59:59-05:00"));
    assert_eq!(state(&t, "acme"), (true, CheckStatus::Ok, 2.0));
}

#[test]
fn limits_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:00:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    t.define_meter("acme", Meter::count("uploads", "storage"))
        .unwrap();
    let mut l = limit(LimitType::RateLimit, 2.0, PeriodType::Minute, None);
    l.resource_type = "uploads".into();
    l.warning_message = Some("slow down".into());
    let a = t.create_limit("acme", l).unwrap();
    let b = t
        .create_limit(
            "globex",
            limit(LimitType::HardLimit, 9.0, PeriodType::Week, Some(New_York)),
        )
        .unwrap();
    for _ in 0..2 {
        let op = StorageUsage {
            tenant: "acme",
            operation: "write",
            size_bytes: 1024,
            file_type: Some("image/jpeg"),
            ..StorageUsage::default()
        };
        assert_eq!(t.record_storage_usage(&op).unwrap().written, 1);
    }
    assert!(!t.check_limit("acme", "uploads").unwrap().allowed());
    close(t);

    let t = open(dir.path(), &clock, grace(5));
    assert_eq!(t.limits("acme"), vec![a]);
    assert_eq!(t.limits("globex"), vec![b]);
    let c = t.check_limit("acme", "uploads").unwrap();
    assert_eq!((c.allowed(), c.result.unwrap().usage), (false, 2.0));
    let bytes = t
        .get_current_usage("acme", "storage_bytes", PeriodType::Day, Tz::UTC)
        .unwrap();
    assert_eq!(bytes.value, 2048.0);
    close(t);
}

#[test]
fn metrics_per_bucket_and_a_backfilled_meter() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T10:15:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    for (time, ms) in [
        ("2026-11-10T10:15:00Z", 10.0),
        ("2026-11-10T10:45:00Z", 30.0),
        ("2026-11-10T12:05:00Z", 5.0),
    ] {
        clock.set(at(time));
        let q = DatabaseQuery {
            tenant: "acme",
            user: Some("u1"),
            query_type: "select",
            table: "users",
            duration_ms: Some(ms),
            rows: Some(3),
            ..DatabaseQuery::default()
        };
        assert_eq!(t.record_database_query(&q).unwrap().written, 1);
    }
    let m = t
        .get_usage_metrics(
            "acme",
            "db_queries",
            at("2026-11-10T10:00:00Z"),
            at("2026-11-10T13:00:00Z"),
            Granularity::Hour,
        )
        .unwrap();
    let counts: Vec<_> = m.iter().map(|b| (b.value, b.count)).collect();
    assert_eq!(counts, vec![(Some(2.0), 2), (Some(0.0), 0), (Some(1.0), 1)]);
    assert_eq!(m[0].period_end, at("2026-11-10T11:00:00Z"));
    // A count meter has no min, max or avg.
    assert!(m[0].min.is_none() && m[0].avg.is_none());
    assert!(serde_json::to_value(m[0]).unwrap().get("min").is_none());

    // A meter defined after the events counts them (backfill).
    let slow: Meter = serde_json::from_str(
        r#"{"name":"query_ms","measurement":"db_queries","aggregation":"sum","field":"duration_ms"}"#,
    )
    .unwrap();
    t.define_meter("acme", slow).unwrap();
    let m = t
        .get_usage_metrics(
            "acme",
            "query_ms",
            at("2026-11-10T10:00:00Z"),
            at("2026-11-10T11:00:00Z"),
            Granularity::Hour,
        )
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].value, m[0].min, m[0].max, m[0].avg),
        (Some(40.0), Some(10.0), Some(30.0), Some(20.0))
    );
    let day = t
        .get_current_usage("acme", "query_ms", PeriodType::Day, Tz::UTC)
        .unwrap();
    assert_eq!(day.value, 45.0);
    assert!(matches!(
        t.get_usage_metrics(
            "acme",
            "nope",
            at("2026-11-10T10:00:00Z"),
            at("2026-11-10T11:00:00Z"),
            Granularity::Hour
        ),
        Err(Error::UnknownMeter { .. })
    ));
}

#[test]
fn an_event_id_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:00:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    let call = ApiCall {
        tenant: "acme",
        endpoint: "/a",
        method: "POST",
        event_id: Some("req-1"),
        ..ApiCall::default()
    };
    assert_eq!(t.record_api_call(&call).unwrap().written, 1);
    assert_eq!(t.record_api_call(&call).unwrap().duplicates, 1);
    let usage = t
        .get_current_usage("acme", "api_calls", PeriodType::Day, Tz::UTC)
        .unwrap();
    assert_eq!(usage.value, 1.0);
    // A field of another type than the stored one is an error, not a silent drop.
    let bad = UsageEvent::new("acme", "api_call").meta("response_time_ms", MetaValue::Bool(true));
    let typed = ApiCall {
        response_time_ms: Some(3.0),
        event_id: None,
        ..call
    };
    assert_eq!(t.record_api_call(&typed).unwrap().written, 1);
    assert!(matches!(
        t.record_event(&bad),
        Err(Error::InvalidEvent { .. })
    ));
}

#[test]
fn a_meter_capped_by_limits_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-10T12:30:00Z")));
    let t = open(dir.path(), &clock, grace(5));
    let gets = Meter {
        filter: vec![("method".into(), "GET".into())],
        ..Meter::count("get_calls", "api_calls")
    };
    t.define_meter("acme", gets).unwrap();
    let mut on_gets = limit(LimitType::HardLimit, 10.0, PeriodType::Day, None);
    on_gets.resource_type = "get_calls".into();
    let on_gets = t.create_limit("acme", on_gets).unwrap();
    let id = on_gets.id.clone().unwrap();
    match t.delete_meter("acme", "get_calls") {
        Err(Error::MeterInUse { limits, .. }) => assert_eq!(limits, vec![id.clone()]),
        other => panic!("deleting a capped meter gave {other:?}"),
    }
    assert!(t.meter("acme", "get_calls").is_some());
    t.delete_limit("acme", &id).unwrap();
    t.delete_meter("acme", "get_calls").unwrap();
    assert!(t.meter("acme", "get_calls").is_none());
}
