//! The pure limit check: `check_limit` (period computation included) and the period
//! computation alone, for the period types and time zones tenants use. Target: a p99 of 10 µs
//! per check in-process, with usage read from rollups on top (not measured here).
//!
//! Before measuring, the bench checks that the check path does not allocate, and prints the
//! p50/p99/p99.9 of single checks timed one by one (criterion reports means and medians).
//!
//! `cargo bench --bench limits`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use meterdb::Timestamp;
use meterdb::usage::check::check_limit_in;
use meterdb::usage::{
    GraceState, LimitSettings, LimitType, PeriodType, UsageLimit, check_limit, period_containing,
};

/// Counts allocations, to prove the check path makes none.
struct CountingAlloc;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// 2026-11-01T10:00:00Z.
const T0: i64 = 1_793_527_200_000_000_000;
const MINUTE: i64 = 60_000_000_000;

/// Instants spread over a year, so that every lookup is not the same one.
fn instants() -> Vec<Timestamp> {
    (0..1024)
        .map(|i| Timestamp(T0 + i * 517 * MINUTE + i * 7))
        .collect()
}

fn limits() -> Vec<(&'static str, UsageLimit)> {
    let hard_day = UsageLimit::new(
        "calls",
        LimitType::HardLimit,
        "api_calls",
        10_000.0,
        PeriodType::Day,
    );
    let month_paris = UsageLimit {
        period_type: PeriodType::Month,
        timezone: Some(chrono_tz::Europe::Paris),
        ..hard_day.clone()
    };
    let rate_minute_ny = UsageLimit {
        limit_type: LimitType::RateLimit,
        period_type: PeriodType::Minute,
        timezone: Some(chrono_tz::America::New_York),
        ..hard_day.clone()
    };
    vec![
        ("hard_day_utc", hard_day),
        ("hard_month_paris", month_paris),
        ("rate_minute_new_york", rate_minute_ny),
    ]
}

fn assert_no_allocation(limits: &[(&str, UsageLimit)], at: &[Timestamp]) {
    let settings = LimitSettings::default();
    let mut state = GraceState::default();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for (_, limit) in limits {
        for (i, now) in at.iter().enumerate() {
            let usage = (i % 12_000) as f64;
            let (r, s) = check_limit(limit, usage, *now, state, &settings).unwrap();
            black_box(r);
            state = s;
        }
    }
    let made = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(made, 0, "the check path allocated {made} times");
}

fn print_percentiles(limits: &[(&str, UsageLimit)], at: &[Timestamp]) {
    let settings = LimitSettings::default();
    for (name, limit) in limits {
        let mut samples: Vec<Duration> = Vec::with_capacity(200_000);
        for round in 0..200_000usize {
            let now = at[round % at.len()];
            let start = Instant::now();
            let r = check_limit(
                limit,
                black_box(9_000.0),
                now,
                GraceState::default(),
                &settings,
            );
            samples.push(start.elapsed());
            black_box(r).unwrap();
        }
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        eprintln!(
            "check_limit {name}: p50 {:?}, p99 {:?}, p99.9 {:?} (single calls, timer included)",
            pct(0.50),
            pct(0.99),
            pct(0.999)
        );
    }
}

fn bench(c: &mut Criterion) {
    let limits = limits();
    let at = instants();
    assert_no_allocation(&limits, &at);
    print_percentiles(&limits, &at);

    let settings = LimitSettings::default();
    let mut g = c.benchmark_group("check_limit");
    for (name, limit) in &limits {
        g.bench_function(*name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % at.len();
                check_limit(
                    limit,
                    black_box(9_000.0),
                    black_box(at[i]),
                    GraceState::default(),
                    &settings,
                )
            })
        });
    }
    let (_, limit) = &limits[1];
    let period = limit.period_at(at[0]).unwrap();
    g.bench_function("hard_month_paris_period_given", |b| {
        b.iter(|| {
            check_limit_in(
                limit,
                period,
                black_box(9_000.0),
                black_box(at[0]),
                GraceState::default(),
                &settings,
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("period_containing");
    for (name, unit, tz) in [
        ("day_utc", PeriodType::Day, chrono_tz::UTC),
        ("month_paris", PeriodType::Month, chrono_tz::Europe::Paris),
        (
            "hour_new_york",
            PeriodType::Hour,
            chrono_tz::America::New_York,
        ),
    ] {
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % at.len();
                period_containing(black_box(at[i]), unit, 1, tz)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the machine is shared, and the figures are stable within a few percent.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
