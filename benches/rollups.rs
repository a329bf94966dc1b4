//! Rollup maintenance, the per-event cost ingest pays for exact usage: the shard writer's
//! event-by-event path (`count_events`: every built-in meter, straight into the store) and the
//! flush's column-by-column path (`add_batch` over the buffer's tables), on the shared usage
//! data set (1,000 tenants; default 1M events, `METERDB_BENCH_EVENTS` for another size).
//!
//! `cargo bench --bench rollups`

#[path = "support/usage_data.rs"]
mod usage_data;

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use meterdb::meters::MeterSet;
use meterdb::rollup::RollupStore;
use meterdb::rollup::delta::{Cells, add_batch, count_events};
use meterdb::rollup::store::Dict;
use meterdb::{ColumnBatch, Engine, Options, ScanRequest, SyncPolicy, Timestamp};

fn events() -> usize {
    usage_data::events_from_env(1_000_000)
}

/// The data set read back as column batches (one per tenant, measurement and source).
fn column_batches(n: usize) -> Vec<ColumnBatch> {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            sync: SyncPolicy::None,
            raw_retention: Duration::MAX,
            ..Options::default()
        },
    )
    .unwrap();
    for batch in usage_data::batches(n, 5000, true) {
        let _ = engine.write(batch).unwrap();
    }
    engine.flush().unwrap();
    engine.scan(&ScanRequest::default()).unwrap()
}

fn rollup_update(c: &mut Criterion) {
    let n = events();
    let batches = usage_data::batches(n, 5000, true);
    let meters = MeterSet::default();
    let mut g = c.benchmark_group("rollups");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements(n as u64));
    // Minute buckets kept for every event (as for live traffic), or for none (the data set
    // lies weeks before the clock, as when a backlog is imported).
    for (name, window) in [
        ("minutes_kept", Duration::MAX),
        ("minutes_past_window", Duration::ZERO),
    ] {
        g.bench_function(format!("count_events/builtin_meters/{name}"), |b| {
            b.iter_batched(
                || RollupStore::new(window, Timestamp(i64::MAX / 2)),
                |store| {
                    for batch in &batches {
                        count_events(batch.iter(), &meters, &store);
                    }
                    store
                },
                BatchSize::PerIteration,
            )
        });
    }
    drop(batches);
    let columns = column_batches(n);
    let builtins = meterdb::meters::builtins();
    g.bench_function("add_batch/builtin_meters", |b| {
        b.iter(|| {
            let mut cells = Cells::default();
            let mut dict = Dict::default();
            for batch in &columns {
                add_batch(i64::MIN, &mut cells, batch.columns(), &builtins, &mut dict);
            }
            cells.len()
        })
    });
    g.finish();
}

criterion_group!(benches, rollup_update);
criterion_main!(benches);
