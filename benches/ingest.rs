//! In-process write throughput on the usage data set (1M events in batches of 5,000):
//! sync=always with 4 concurrent writers, sync=interval:100 with 4 writers, each measured
//! until every write is acknowledged and until everything is also flushed to segments; then
//! the bytes per event on disk after a flush (with and without event ids) and scan-and-count
//! speed.
//!
//! `cargo bench --bench ingest` (set METERDB_BENCH_EVENTS for another size).

#[path = "support/usage_data.rs"]
mod usage_data;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meterdb::{Engine, Options, ScanRequest, SyncPolicy, TagPredicate, WriteBatch};

fn events() -> usize {
    usage_data::events_from_env(1_000_000)
}

/// Writes every batch from `writers` threads into a fresh engine. Returns the time the writes
/// took (acknowledged, in the buffer) and the time until they were also flushed to segments
/// (the sustained cost); opening and closing the engine are not timed.
fn timed_load(batches: &[WriteBatch], sync: SyncPolicy, writers: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::open(
            dir.path(),
            Options {
                sync,
                // The bench data is dated: accept any age, whatever day the bench runs.
                raw_retention: Duration::MAX,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..writers {
            let (engine, next) = (engine.clone(), next.clone());
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(batch) = batches.get(i) else { break };
                    let receipt = engine.write(batch.clone()).unwrap();
                    assert!(receipt.rejected.is_empty());
                }
            });
        }
    });
    let written = start.elapsed();
    engine.flush().unwrap();
    let flushed = start.elapsed();
    Arc::into_inner(engine).unwrap().close().unwrap();
    (written, flushed)
}

fn write_throughput(c: &mut Criterion) {
    let n = events();
    let batches = usage_data::batches(n, 5000, true);
    let mut g = c.benchmark_group("write");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(n as u64));
    for (name, sync) in [
        ("sync_always_4_writers", SyncPolicy::Always),
        (
            "sync_interval_100ms_4_writers",
            SyncPolicy::Interval(Duration::from_millis(100)),
        ),
    ] {
        g.bench_function(format!("{name}/acknowledged"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| timed_load(&batches, sync, 4).0).sum())
        });
        g.bench_function(format!("{name}/flushed"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| timed_load(&batches, sync, 4).1).sum())
        });
    }
    g.finish();
}

/// Loads the data set, flushes, and reports bytes per event on disk: segments and rollup
/// files (the WAL is empty after a flush), and the rollup files' share.
fn footprint(with_ids: bool) -> (f64, f64, Engine, tempfile::TempDir) {
    let n = events();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            sync: SyncPolicy::None,
            // The bench data is dated: accept any age, whatever day the bench runs.
            raw_retention: Duration::MAX,
            ..Options::default()
        },
    )
    .unwrap();
    for batch in usage_data::batches(n, 5000, with_ids) {
        let receipt = engine.write(batch).unwrap();
        assert!(receipt.rejected.is_empty());
    }
    engine.flush().unwrap();
    let segments: u64 = engine.stats().iter().map(|s| s.segment_bytes).sum();
    let rollups: u64 = engine.stats().iter().map(|s| s.rollup_file_bytes).sum();
    let per_event = |b: u64| b as f64 / n as f64;
    (
        per_event(segments + rollups),
        per_event(rollups),
        engine,
        dir,
    )
}

fn scan_count(c: &mut Criterion) {
    let (without_ids, ..) = footprint(false);
    let (with_ids, rollups, engine, _dir) = footprint(true);
    eprintln!(
        "\non-disk bytes per event after flush (segments and rollup files): {with_ids:.2} with event ids, {without_ids:.2} without; rollup files {rollups:.2}\n"
    );
    let n = events() as u64;
    let mut g = c.benchmark_group("scan");
    g.sample_size(10).throughput(Throughput::Elements(n));
    g.bench_function("count_all", |b| {
        b.iter(|| assert_eq!(engine.count(&ScanRequest::default()).unwrap(), n))
    });
    let get = ScanRequest {
        measurement: Some("api_calls".into()),
        predicates: vec![TagPredicate::eq("method", "GET")],
        columns: Some(vec![]),
        ..ScanRequest::default()
    };
    g.bench_function("count_api_calls_method_get", |b| {
        b.iter(|| engine.count(&get).unwrap())
    });
    let rows = ScanRequest {
        measurement: Some("api_calls".into()),
        columns: Some(vec!["response_time_ms".into()]),
        ..ScanRequest::default()
    };
    g.bench_function("scan_api_calls_response_time", |b| {
        b.iter(|| {
            engine
                .scan(&rows)
                .unwrap()
                .iter()
                .map(|b| b.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, write_throughput, scan_count);
criterion_main!(benches);
