//! Compaction and retention over time, through the engine's API with a simulated clock.
//!
//! 1. **60 days with 30-day retention**: each simulated day writes
//!    `METERDB_BENCH_EVENTS_PER_DAY` (default 200,000) usage events of 50 tenants and 2,000
//!    users (one event id each) in batches of 5,000, with 4 MiB buffers so that a day makes
//!    several flushes, then runs one compaction pass (as the background thread would).
//!    Prints, for chosen days, the segment and rollup bytes on disk and the segment count
//!    (after compaction one per shard and day), and at the end the write amplification:
//!    (bytes flushed + bytes compaction wrote) / bytes flushed.
//! 2. **Ingest with and without compaction**: `sync=always`, 4 writer threads, 4 MiB buffers
//!    (a flush every few seconds, so merges keep coming), 1.5M events per run; runs
//!    alternate without and with a background [`Compactor`] (pass every 200 ms, default
//!    pace 1.0), 3 runs each. Prints each run and the medians' ratio.
//!
//! `cargo bench --bench compaction`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meterdb::clock::ManualClock;
use meterdb::engine::Compactor;
use meterdb::{Engine, FieldValueRef, Options, SyncPolicy, Timestamp, WriteBatch};

const DAY: i64 = 86_400_000_000_000;
/// 2026-10-01T00:00:00Z.
const START: i64 = 20_362 * DAY;
const BATCH: usize = 5_000;

fn batch(first: u64, n: usize, t0: i64, spread: i64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for i in 0..n as u64 {
        let k = first + i;
        // A cheap mix so that tenants and users are not in lockstep.
        let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let ts = t0 + (h % spread as u64) as i64;
        b.add(&format!("tenant{}", h % 50), "api_calls", Timestamp(ts))
            .tag("user", &format!("user{}", (h >> 8) % 2_000))
            .tag("endpoint", &format!("/v1/r{}", (h >> 20) % 40))
            .field(
                "response_time_ms",
                FieldValueRef::F64(((h >> 32) % 900) as f64 / 3.0),
            )
            .event_id(&format!("ev{k}"));
    }
    b
}

fn disk(engine: &Engine) -> (u64, u64, usize) {
    let s = engine.stats();
    (
        s.iter().map(|x| x.segment_bytes).sum(),
        s.iter().map(|x| x.rollup_file_bytes).sum(),
        s.iter().map(|x| x.segments).sum(),
    )
}

fn sixty_days(per_day: u64) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(START)));
    let options = Options {
        shards: Some(2),
        sync: SyncPolicy::None,
        max_buffer_bytes: 4 << 20,
        clock: clock.clone(),
        compaction_pace: 0.0,
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    println!("60 days, {per_day} events/day, 30-day raw retention, a compaction pass a day");
    println!("| day | segment MiB | rollup MiB | segments (2 shards) | flushes so far |");
    println!("|---|---|---|---|---|");
    let mut next = 0;
    let started = Instant::now();
    for day in 0..60 {
        let t0 = START + day * DAY;
        clock.set(Timestamp(t0 + DAY - 1));
        let mut left = per_day;
        while left > 0 {
            let n = left.min(BATCH as u64);
            let r = engine.write(batch(next, n as usize, t0, DAY - 1)).unwrap();
            assert!(r.rejected.is_empty());
            next += n;
            left -= n;
        }
        engine.flush().unwrap();
        engine.compact().unwrap();
        if [0, 9, 19, 29, 30, 34, 39, 44, 49, 54, 59].contains(&day) {
            let (seg, roll, n) = disk(&engine);
            let flushes: u64 = engine.stats().iter().map(|s| s.flushes).sum();
            println!(
                "| {} | {:.1} | {:.2} | {n} | {flushes} |",
                day + 1,
                seg as f64 / 1048576.0,
                roll as f64 / 1048576.0
            );
        }
    }
    let stats = engine.stats();
    let flushed: u64 = stats.iter().map(|s| s.flushed_bytes).sum();
    let compacted: u64 = stats.iter().map(|s| s.compacted_bytes_written).sum();
    let rewrites: u64 = stats.iter().map(|s| s.compactions).sum();
    println!(
        "write amplification (flushed + compacted) / flushed = {:.2} ({} rewrites; {:.1} MiB flushed, {:.1} MiB rewritten); {:.1} s",
        (flushed + compacted) as f64 / flushed.max(1) as f64,
        rewrites,
        flushed as f64 / 1048576.0,
        compacted as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    println!(
        "bytes per stored event after day 60: {:.1} (segments only)",
        disk(&engine).0 as f64 / (30 * per_day) as f64
    );
}

/// Writes `events` with 4 threads; returns events/s.
fn ingest(engine: &Engine, first: u64, events: u64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..4u64 {
            s.spawn(move || {
                let mut k = first + w * events / 4;
                let end = k + events / 4;
                while k < end {
                    let n = (end - k).min(BATCH as u64);
                    let r = engine
                        .write(batch(
                            k,
                            n as usize,
                            now - 3_600_000_000_000,
                            3_600_000_000_000,
                        ))
                        .unwrap();
                    assert!(r.rejected.is_empty());
                    k += n;
                }
            });
        }
    });
    events as f64 / started.elapsed().as_secs_f64()
}

fn with_and_without() {
    let events = 1_500_000;
    println!("\ningest, sync=always, 4 writer threads, {events} events per run");
    println!("| run | compaction | events/s | segments after |");
    println!("|---|---|---|---|");
    let mut off = Vec::new();
    let mut on = Vec::new();
    for run in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(
            Engine::open(
                dir.path(),
                Options {
                    shards: Some(2),
                    max_buffer_bytes: 4 << 20,
                    ..Options::default()
                },
            )
            .unwrap(),
        );
        let compacting = run % 2 == 1;
        let compactor =
            compacting.then(|| Compactor::spawn(&engine, Duration::from_millis(200)).unwrap());
        let rate = ingest(&engine, run as u64 * events, events);
        drop(compactor);
        let segments: usize = engine.stats().iter().map(|s| s.segments).sum();
        println!(
            "| {} | {} | {rate:.0} | {segments} |",
            run + 1,
            if compacting { "running" } else { "off" }
        );
        if compacting {
            on.push(rate)
        } else {
            off.push(rate)
        }
        match Arc::try_unwrap(engine) {
            Ok(e) => e.close().unwrap(),
            Err(_) => panic!("engine still shared"),
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut off), median(&mut on));
    println!(
        "median without {a:.0} events/s, with {b:.0} events/s: {:.1}% of the rate without",
        100.0 * b / a
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let per_day = std::env::var("METERDB_BENCH_EVENTS_PER_DAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    sixty_days(per_day);
    with_and_without();
}
