//! Line-protocol parsing speed on the usage data set (200,000 lines by default): MeterDB's
//! parser alone, parsing plus appending to a `WriteBatch`, and the `influxdb-line-protocol`
//! crate (InfluxDB 3's parser) on the same bytes as a reference.
//!
//! `cargo bench --bench lineproto` (set METERDB_BENCH_EVENTS for another size, or
//! METERDB_BENCH_FILE for another file).

#[path = "support/usage_data.rs"]
mod usage_data;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meterdb::Timestamp;
use meterdb::WriteBatch;
use meterdb::ingest::lineproto::{LineOptions, Precision, append_to_batch, parse_lines};

fn events() -> usize {
    usage_data::events_from_env(200_000)
}

fn bench(c: &mut Criterion) {
    let body = std::fs::read(usage_data::data_file(events())).unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    let lines = body
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .count();

    let mut g = c.benchmark_group("lineproto");
    g.throughput(Throughput::Elements(lines as u64));
    g.sample_size(10);
    g.bench_function("meterdb_parse", |b| {
        b.iter(|| {
            let ok = parse_lines(&body, Precision::Nanoseconds)
                .filter(|(_, r)| r.is_ok())
                .count();
            assert_eq!(ok, lines);
        })
    });
    g.bench_function("meterdb_parse_into_batch", |b| {
        let opts = LineOptions {
            precision: Precision::Nanoseconds,
            default_tenant: None,
            now: Timestamp(0),
        };
        b.iter(|| {
            let mut batch = WriteBatch::new();
            let errors = append_to_batch(&body, &opts, &mut batch);
            assert!(errors.is_empty());
            assert_eq!(batch.len(), lines);
            batch
        })
    });
    g.bench_function("influxdb_line_protocol_parse", |b| {
        b.iter(|| {
            let ok = influxdb_line_protocol::parse_lines(text)
                .filter(|r| r.is_ok())
                .count();
            assert_eq!(ok, lines);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
