//! Event-id deduplication: write throughput with event ids (all new, or 30 % re-sent) against
//! the same events without ids; then, once, the event-id index at scale: load N events with
//! UUID ids (default 10M), report the index's memory, and time the reopen that rebuilds it.
//!
//! `cargo bench --bench dedup` (set METERDB_BENCH_DEDUP_IDS for another N, e.g. 100000000).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use meterdb::clock::ManualClock;
use meterdb::{Engine, FieldValueRef, Options, SyncPolicy, Timestamp, WriteBatch};

const DAY: i64 = 86_400_000_000_000;
const T0: i64 = 1_793_491_200_000_000_000;
const BATCH: usize = 5_000;

/// Options for the benches: two shards, no WAL fsync (the index is measured, not the disk),
/// a clock fixed after the events' days so that the window covers them.
fn options() -> Options {
    Options {
        shards: Some(2),
        sync: SyncPolicy::None,
        clock: Arc::new(ManualClock::new(Timestamp(T0 + 11 * DAY))),
        ..Options::default()
    }
}

/// A UUID-shaped id for number `n` (stored as 16 raw bytes, as client UUIDs are).
fn uuid(n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 32) as u32,
        (n >> 16) & 0xffff,
        n & 0xfff,
        (n >> 12) & 0xfff,
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
    )
}

/// Events `first..first + n`: 50 tenants, 10 days; `id(i)` gives each its id, if any.
fn batch(first: u64, n: usize, id: impl Fn(u64) -> Option<u64>) -> WriteBatch {
    let mut b = WriteBatch::new();
    for i in first..first + n as u64 {
        let tenant = format!("tenant{:02}", i % 50);
        let ts = T0 + (i % 10) as i64 * DAY + (i / 10) as i64;
        let mut event = b.add(&tenant, "api_calls", Timestamp(ts));
        event
            .tag("endpoint", "/api/users")
            .field("response_time_ms", FieldValueRef::F64(12.5));
        if let Some(id) = id(i) {
            event.event_id(&uuid(id));
        }
    }
    b
}

fn write_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("dedup_write");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    type IdOf = fn(u64) -> Option<u64>;
    let cases: [(&str, IdOf); 3] = [
        ("without_ids", |_| None),
        ("new_ids", Some),
        // Three events in ten repeat the id of an event written just before.
        ("ids_30pct_resent", |i| {
            Some(if i % 10 < 3 {
                i.saturating_sub(BATCH as u64)
            } else {
                i
            })
        }),
    ];
    for (name, id) in cases {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), options()).unwrap();
        let next = AtomicU64::new(0);
        group.bench_function(name, |b| {
            b.iter_batched(
                || batch(next.fetch_add(BATCH as u64, Ordering::Relaxed), BATCH, id),
                |batch| engine.write(batch).unwrap(),
                BatchSize::PerIteration,
            )
        });
        engine.close().unwrap();
    }
    group.finish();
}

/// Loads `METERDB_BENCH_DEDUP_IDS` events with distinct ids and prints the index's memory
/// before and after a reopen, and how long the reopen (which rebuilds it) takes.
fn index_at_scale() {
    let n: u64 = std::env::var("METERDB_BENCH_DEDUP_IDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().unwrap();
    let index_bytes =
        |e: &Engine| e.stats().iter().map(|s| s.dedup_index_bytes).sum::<u64>() as f64;
    let engine = Engine::open(dir.path(), options()).unwrap();
    let started = Instant::now();
    let mut first = 0;
    while first < n {
        let size = BATCH.min((n - first) as usize);
        let receipt = engine.write(batch(first, size, Some)).unwrap();
        assert_eq!(receipt.written, size);
        first += size as u64;
    }
    let loaded = started.elapsed();
    let live = index_bytes(&engine);
    engine.close().unwrap();
    let started = Instant::now();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let reopened = started.elapsed();
    let rebuilt = index_bytes(&engine);
    // Re-sending the first events must find every one of them.
    let again = engine.write(batch(0, BATCH, Some)).unwrap();
    assert_eq!(again.duplicates, BATCH);
    engine.close().unwrap();
    println!(
        "dedup index, {n} ids: load {loaded:.1?} ({:.0} events/s); index while loading {:.1} MiB \
         ({:.2} B/id); reopen (rebuilds the index) {reopened:.2?}; index after reopen {:.1} MiB \
         ({:.2} B/id)",
        n as f64 / loaded.as_secs_f64(),
        live / 1048576.0,
        live / n as f64,
        rebuilt / 1048576.0,
        rebuilt / n as f64,
    );
}

criterion_group!(benches, write_throughput);

fn main() {
    benches();
    // A one-off measurement, not a criterion loop; skipped when the bench runs as a test.
    if std::env::args().any(|a| a == "--bench") {
        index_at_scale();
    }
    Criterion::default().configure_from_args().final_summary();
}
