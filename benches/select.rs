//! The six benchmark queries of the usage benchmark kit (`query.py`'s InfluxQL set, string for
//! string) through `influxql::execute_all`, on the usage data set flushed to segments:
//! Q1 hourly count, Q2 hourly sum, Q3 top-10 endpoints (subquery + `top`), Q4 daily p95,
//! Q5 distinct users per day (subquery), Q6 all tenants' last 24 h.
//!
//! `cargo bench --bench select` (set METERDB_BENCH_EVENTS for another size; the later target
//! is each query ≤ 50 ms at 10M events).

#[path = "support/usage_data.rs"]
mod usage_data;

#[path = "../tests/bench/queries.rs"]
mod bench_queries;
use bench_queries::queries;

use criterion::{Criterion, criterion_group, criterion_main};
use meterdb::influxql::{QueryOptions, execute_all, parse_query};
use meterdb::{Engine, Options, SyncPolicy};

fn events() -> usize {
    usage_data::events_from_env(1_000_000)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            sync: SyncPolicy::None,
            // The bench data is dated: accept any age, whatever day the bench runs.
            raw_retention: std::time::Duration::MAX,
            ..Options::default()
        },
    )
    .unwrap();
    for batch in usage_data::batches(events(), 5_000, true) {
        assert!(engine.write(batch).unwrap().rejected.is_empty());
    }
    engine.flush().unwrap();
    // The generator's tenants are Zipf-ranked: t0000 is the biggest, the benchmark's tenant.
    let options = QueryOptions::default();
    let mut group = c.benchmark_group("select");
    group.sample_size(10);
    for (name, q) in queries("t0000") {
        let statements = parse_query(&q).unwrap();
        let check = execute_all(&engine, &statements, &options);
        assert!(
            check.results.iter().all(|r| r.error.is_none()),
            "{name}: {q}"
        );
        group.bench_function(name, |b| {
            b.iter(|| execute_all(&engine, &statements, &options));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
