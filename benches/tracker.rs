//! `UsageTracker::check_limit` end to end, in-process: limits from memory, usage from rollups,
//! the grace state, the most restrictive answer. 1,000 tenants, each with a monthly hard
//! limit in a time zone and a daily soft limit on `api_calls`; tenant `i` has an API call every
//! 10 minutes over the last `i mod 24 + 1` hours (75,000 events in all). Target: p99 of 10 µs
//! per check.
//!
//! Prints p50/p99/p99.9 of single checks timed one by one (timer included), then lets
//! criterion measure the mean. `cargo bench --bench tracker`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use meterdb::clock::ManualClock;
use meterdb::tracker::{ApiCall, UsageTracker};
use meterdb::usage::{LimitType, PeriodType, UsageLimit, UsageSettings};
use meterdb::{Engine, Options, SyncPolicy, Timestamp};

/// 2026-11-10T12:00:00Z.
const T0: i64 = 1_794_312_000_000_000_000;
const MINUTE: i64 = 60_000_000_000;
const TENANTS: usize = 1_000;

fn setup(dir: &std::path::Path) -> (UsageTracker, Vec<String>) {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let options = Options {
        sync: SyncPolicy::None,
        clock: clock.clone(),
        ..Options::default()
    };
    let engine = Arc::new(Engine::open(dir, options).unwrap());
    let tracker = UsageTracker::new(engine, UsageSettings::default(), clock).unwrap();
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i:04}")).collect();
    for (i, tenant) in tenants.iter().enumerate() {
        let month = UsageLimit {
            timezone: Some(chrono_tz::America::New_York),
            ..UsageLimit::new(
                "monthly",
                LimitType::HardLimit,
                "api_calls",
                1e6,
                PeriodType::Month,
            )
        };
        tracker.create_limit(tenant, month).unwrap();
        let day = UsageLimit::new(
            "daily",
            LimitType::SoftLimit,
            "api_calls",
            1e4,
            PeriodType::Day,
        );
        tracker.create_limit(tenant, day).unwrap();
        // Tenant i has events in the last (i % 24 + 1) hours, one every 10 minutes.
        let hours = (i % 24 + 1) as i64;
        for m in (0..hours * 60).step_by(10) {
            let call = ApiCall {
                tenant,
                endpoint: "/api/users",
                method: "GET",
                status_code: Some(200),
                timestamp: Some(Timestamp(T0 - m * MINUTE)),
                ..ApiCall::default()
            };
            assert_eq!(tracker.record_api_call(&call).unwrap().written, 1);
        }
    }
    (tracker, tenants)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, tenants) = setup(dir.path());
    let mut samples: Vec<Duration> = Vec::with_capacity(200_000);
    for round in 0..200_000usize {
        let tenant = &tenants[(round * 7919) % tenants.len()];
        let start = Instant::now();
        let r = tracker.check_limit(tenant, "api_calls");
        samples.push(start.elapsed());
        assert!(black_box(r).unwrap().allowed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    eprintln!(
        "UsageTracker::check_limit, {TENANTS} tenants x 2 limits: p50 {:?}, p99 {:?}, p99.9 {:?} (single calls, timer included)",
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
    let mut i = 0;
    c.bench_function("tracker_check_limit", |b| {
        b.iter(|| {
            i = (i + 7919) % tenants.len();
            tracker.check_limit(&tenants[i], "api_calls").unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
