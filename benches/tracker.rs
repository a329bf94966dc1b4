//! `UsageTracker::check_limit` end to end, in-process: limits from memory, usage from rollups,
//! the grace state, the most restrictive answer. 1,000 tenants, each with a monthly hard
//! limit in a time zone and a daily soft limit on `api_calls`; tenant `i` has an API call every
//! 10 minutes over the last `i mod 24 + 1` hours (75,000 events in all). Target: p99 of 10 µs
//! per check.
//!
//! Prints p50/p99/p99.9 of single checks timed one by one (timer included), then lets
//! criterion measure the mean. `cargo bench --bench tracker`
//!
//! Scale mode: `METERDB_BENCH_TRACKER_EVENTS=N cargo bench --bench tracker` first loads `N`
//! `api_calls` events with [`Engine::write`] (batches of 5,000, no event ids,
//! `SyncPolicy::None`), time-ordered over the 30 days before the (fixed) clock, with a diurnal
//! shape and a Zipf (s = 1) skew across the 1,000 tenants; prints the load time and rate, the
//! rollup memory, the disk bytes after a flush and the process's peak RSS, then the same
//! check latencies with the same limits. With that much usage the big tenants are over their
//! limits: the answers are counted by status and not asserted.

#[path = "support/rng.rs"]
mod rng;

use rng::Rng;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use meterdb::clock::ManualClock;
use meterdb::tracker::{ApiCall, UsageTracker};
use meterdb::usage::{CheckStatus, LimitType, PeriodType, UsageLimit, UsageSettings};
use meterdb::{Engine, FieldValueRef, Options, SyncPolicy, Timestamp, WriteBatch};

/// 2026-11-10T12:00:00Z.
const T0: i64 = 1_794_312_000_000_000_000;
const MINUTE: i64 = 60_000_000_000;
const DAY: i64 = 24 * 60 * MINUTE;
const TENANTS: usize = 1_000;
/// Events per `Engine::write` in scale mode.
const BATCH: usize = 5_000;
/// Days of data in scale mode (the default `raw_retention`).
const DAYS: i64 = 30;
/// Start of the monthly limit's period at `T0`: 2026-11-01T00:00:00-04:00 (America/New_York).
const MONTH_START: i64 = 1_793_505_600_000_000_000;
/// Start of the daily limit's period at `T0` (UTC): 2026-11-10T00:00:00Z.
const DAY_START: i64 = T0 - 12 * 60 * MINUTE;

fn tenant_names() -> Vec<String> {
    (0..TENANTS).map(|i| format!("tenant-{i:04}")).collect()
}

fn open(dir: &std::path::Path) -> (Arc<Engine>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let options = Options {
        sync: SyncPolicy::None,
        clock: clock.clone(),
        ..Options::default()
    };
    (Arc::new(Engine::open(dir, options).unwrap()), clock)
}

fn create_limits(tracker: &UsageTracker, tenant: &str) {
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
}

/// The default run: 75,000 events recorded one by one through the tracker.
fn setup(dir: &std::path::Path) -> (UsageTracker, Vec<String>) {
    let (engine, clock) = open(dir);
    let tracker = UsageTracker::new(engine, UsageSettings::default(), clock).unwrap();
    let tenants = tenant_names();
    for (i, tenant) in tenants.iter().enumerate() {
        create_limits(&tracker, tenant);
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

/// Relative traffic at a time of day (UTC): a trough around 04:00, a peak around 16:00,
/// 1:4 between them.
fn diurnal(t: i64) -> f64 {
    let hour = t.rem_euclid(DAY) as f64 / (60 * MINUTE) as f64;
    1.0 + 0.6 * (std::f64::consts::TAU * (hour - 10.0) / 24.0).sin()
}

/// Builds the scale data set's batches in time order and sends them to `tx`: `n` events
/// over the `DAYS` days before `T0` (the first minute of the window left out, so that no
/// event sits on the retention bound), minute by minute with the diurnal shape, each
/// event's tenant drawn from a Zipf (s = 1) distribution over the tenants. Returns each
/// tenant's event count in the monthly and in the daily limit's current period.
fn generate(
    n: u64,
    tenants: &[String],
    tx: std::sync::mpsc::SyncSender<WriteBatch>,
) -> (Vec<u64>, Vec<u64>) {
    const ENDPOINTS: [&str; 8] = [
        "/api/users",
        "/api/orders",
        "/api/products",
        "/api/search",
        "/api/login",
        "/api/reports",
        "/api/billing",
        "/api/files",
    ];
    let users: Vec<String> = (0..200).map(|u| format!("user-{u:03}")).collect();
    // Tenant rank r (0-based) has weight 1 / (r + 1).
    let mut cdf = Vec::with_capacity(tenants.len());
    let mut acc = 0.0;
    for r in 0..tenants.len() {
        acc += 1.0 / (r + 1) as f64;
        cdf.push(acc);
    }
    let total_weight = acc;
    let start = T0 - DAYS * DAY + MINUTE;
    let minutes = (T0 - start) / MINUTE;
    let weights: Vec<f64> = (0..minutes).map(|m| diurnal(start + m * MINUTE)).collect();
    let weight_sum: f64 = weights.iter().sum();
    let mut rng = Rng(0x5eed);
    let mut batch = WriteBatch::new();
    let (mut in_month, mut in_day) = (vec![0u64; tenants.len()], vec![0u64; tenants.len()]);
    let (mut cum, mut emitted) = (0.0, 0u64);
    for (m, w) in weights.iter().enumerate() {
        cum += w;
        let upto = if m as i64 == minutes - 1 {
            n
        } else {
            (n as f64 * cum / weight_sum) as u64
        };
        let k = upto - emitted;
        emitted = upto;
        let minute_start = start + m as i64 * MINUTE;
        for j in 0..k {
            // Evenly spread within the minute: time-ordered.
            let t = minute_start + (j as i64 * MINUTE) / k as i64;
            let x = rng.unit() * total_weight;
            let tenant = cdf.partition_point(|&c| c < x).min(tenants.len() - 1);
            in_month[tenant] += u64::from(t >= MONTH_START);
            in_day[tenant] += u64::from(t >= DAY_START);
            let r = rng.next();
            let endpoint = ENDPOINTS[(r & 7) as usize];
            let user = &users[((r >> 8) % 200) as usize];
            let rt = 5.0 + ((r >> 20) % 10_000) as f64 / 50.0;
            batch
                .add(&tenants[tenant], "api_calls", Timestamp(t))
                .tag("endpoint", endpoint)
                .tag("user", user)
                .field("response_time_ms", FieldValueRef::F64(rt));
            if batch.len() == BATCH {
                tx.send(std::mem::take(&mut batch)).unwrap();
            }
        }
    }
    if !batch.is_empty() {
        tx.send(batch).unwrap();
    }
    (in_month, in_day)
}

/// A line of `/proc/self/status` (`VmHWM`, `VmRSS`), in kB.
fn proc_status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of the process (every thread) from `/proc/self/stat`, in seconds
/// (at the usual 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses: utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after the name.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            total += dir_bytes(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Scale mode: `n` events loaded with `Engine::write`, then the limits.
fn setup_scale(dir: &std::path::Path, n: u64) -> (UsageTracker, Vec<String>) {
    let (engine, clock) = open(dir);
    let tenants = tenant_names();
    eprintln!(
        "loading {n} events: {TENANTS} tenants (Zipf s=1), {DAYS} days before the clock, diurnal, batches of {BATCH}, sync=none, {} shards",
        engine.shard_count()
    );
    let (tx, rx) = std::sync::mpsc::sync_channel::<WriteBatch>(4);
    let gen_tenants = tenants.clone();
    let start_cpu = cpu_seconds();
    let generator = std::thread::spawn(move || generate(n, &gen_tenants, tx));
    let start = Instant::now();
    let (mut sent, mut written, mut rejected) = (0u64, 0u64, 0u64);
    let mut next_report = 10_000_000u64;
    // Per 10M events: wall time and CPU time of the whole process (every thread), so that a
    // slowdown from the data's growth shows apart from one from the other jobs on the machine.
    let (mut last_wall, mut last_cpu, mut last_sent) = (0.0, cpu_seconds(), 0u64);
    for batch in rx {
        sent += batch.len() as u64;
        let receipt = engine.write(batch).unwrap();
        rejected += receipt.rejected.len() as u64;
        written += receipt.written as u64;
        if sent >= next_report {
            let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds());
            let n = (sent - last_sent) as f64;
            eprintln!(
                "  {sent} events in {wall:.1} s; last {n} in {:.1} s ({:.0} events/s, {:.2} µs CPU/event); RSS {} kB; loadavg {}",
                wall - last_wall,
                n / (wall - last_wall),
                (cpu - last_cpu) * 1e6 / n,
                proc_status_kb("VmRSS:").unwrap_or(0),
                std::fs::read_to_string("/proc/loadavg")
                    .unwrap_or_default()
                    .split_whitespace()
                    .next()
                    .unwrap_or("?")
            );
            (last_wall, last_cpu, last_sent) = (wall, cpu, sent);
            next_report += 10_000_000;
        }
    }
    let (in_month, in_day) = generator.join().unwrap();
    let load = start.elapsed();
    eprintln!(
        "load: {written} of {sent} events written in {:.1} s, {:.0} events/s (acknowledged), {rejected} rejected",
        load.as_secs_f64(),
        written as f64 / load.as_secs_f64()
    );
    let flush_start = Instant::now();
    engine.flush().unwrap();
    let flush = flush_start.elapsed();
    let total = start.elapsed();
    eprintln!(
        "flush after load: {:.1} s; load + flush {:.1} s, {:.0} events/s, {:.0} s CPU ({:.2} µs/event)",
        flush.as_secs_f64(),
        total.as_secs_f64(),
        written as f64 / total.as_secs_f64(),
        cpu_seconds() - start_cpu,
        (cpu_seconds() - start_cpu) * 1e6 / written.max(1) as f64
    );
    let disk = dir_bytes(dir);
    eprintln!(
        "data directory after flush: {disk} bytes ({:.1} MiB, {:.2} bytes/event)",
        mib(disk),
        disk as f64 / written.max(1) as f64
    );
    let (buckets, bytes) = engine.rollup_memory();
    eprintln!(
        "rollup memory: {buckets} buckets, {bytes} bytes ({:.1} MiB)",
        mib(bytes as u64)
    );
    let tracker = UsageTracker::new(engine, UsageSettings::default(), clock).unwrap();
    for tenant in &tenants {
        create_limits(&tracker, tenant);
    }
    // The usage the checks see against the events generated, for a few tenant ranks.
    for rank in [0, 3, 9, 99, 999] {
        let usage = |period, tz| {
            tracker
                .get_current_usage(&tenants[rank], "api_calls", period, tz)
                .unwrap()
                .value
        };
        let month = usage(PeriodType::Month, chrono_tz::America::New_York);
        let day = usage(PeriodType::Day, chrono_tz::UTC);
        eprintln!(
            "  {}: usage this month {month} (events generated {}), today {day} ({})",
            tenants[rank], in_month[rank], in_day[rank]
        );
        assert_eq!((month, day), (in_month[rank] as f64, in_day[rank] as f64));
    }
    eprintln!(
        "peak RSS (VmHWM): {} kB, RSS now (VmRSS): {} kB",
        proc_status_kb("VmHWM:").unwrap_or(0),
        proc_status_kb("VmRSS:").unwrap_or(0)
    );
    (tracker, tenants)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let scale: Option<u64> = std::env::var("METERDB_BENCH_TRACKER_EVENTS").ok().map(|v| {
        v.replace('_', "")
            .parse()
            .expect("METERDB_BENCH_TRACKER_EVENTS: a number")
    });
    let (tracker, tenants) = match scale {
        Some(n) => setup_scale(dir.path(), n),
        None => setup(dir.path()),
    };
    let mut samples: Vec<Duration> = Vec::with_capacity(200_000);
    // Answers by status: ok, warning, exceeded, grace; and how many were denied.
    let (mut statuses, mut denied) = ([0u64; 4], 0u64);
    for round in 0..200_000usize {
        let tenant = &tenants[(round * 7919) % tenants.len()];
        let start = Instant::now();
        let r = tracker.check_limit(tenant, "api_calls");
        samples.push(start.elapsed());
        let r = black_box(r).unwrap();
        if scale.is_none() {
            assert!(r.allowed());
        }
        denied += u64::from(!r.allowed());
        statuses[match r.status() {
            CheckStatus::Ok => 0,
            CheckStatus::Warning => 1,
            CheckStatus::Exceeded => 2,
            CheckStatus::Grace => 3,
        }] += 1;
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let events = scale.map_or("75,000 events".to_owned(), |n| format!("{n} events"));
    eprintln!(
        "UsageTracker::check_limit, {TENANTS} tenants x 2 limits, {events}: p50 {:?}, p99 {:?}, p99.9 {:?} (single calls, timer included)",
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
    if scale.is_some() {
        eprintln!(
            "answers: {} ok, {} warning, {} exceeded, {} grace; {denied} denied",
            statuses[0], statuses[1], statuses[2], statuses[3]
        );
    }
    let mut i = 0;
    c.bench_function("tracker_check_limit", |b| {
        b.iter(|| {
            i = (i + 7919) % tenants.len();
            tracker.check_limit(&tenants[i], "api_calls").unwrap()
        })
    });
    if scale.is_some() {
        eprintln!(
            "peak RSS (VmHWM) at the end: {} kB",
            proc_status_kb("VmHWM:").unwrap_or(0)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
