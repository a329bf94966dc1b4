//! What `/metrics` serves, in the Prometheus text format: the server's own counters and
//! latency histograms, and the engine's figures read at each scrape.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Engine;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events_ingested: Counter,
    bytes_ingested: Counter,
    lines_rejected: Counter,
    write_seconds: Histogram,
    query_seconds: Histogram,
    usage_seconds: Histogram,
    queries: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Metrics {
    /// Metrics for a server over `engine`.
    pub fn new(engine: Arc<Engine>) -> Metrics {
        let mut registry = Registry::with_prefix("meterdb");
        let events_ingested = Counter::default();
        let bytes_ingested = Counter::default();
        let lines_rejected = Counter::default();
        // 50 µs .. ~26 s: a group-committed write takes a few ms, a large scan seconds.
        let write_seconds = Histogram::new(exponential_buckets(50e-6, 2.0, 20));
        let query_seconds = Histogram::new(exponential_buckets(50e-6, 2.0, 20));
        // 1 µs .. ~1.4 s in steps of 1.5x: a limit check's handler takes a few µs.
        let usage_seconds = Histogram::new(exponential_buckets(1e-6, 1.5, 36));
        let queries = Family::default();
        registry.register(
            "ingested_events",
            "Events stored by the write endpoints",
            events_ingested.clone(),
        );
        registry.register(
            "ingested_bytes",
            "Request body bytes (decompressed) received by the write endpoints",
            bytes_ingested.clone(),
        );
        registry.register(
            "rejected_lines",
            "Lines or events refused by the write endpoints",
            lines_rejected.clone(),
        );
        registry.register(
            "write_duration_seconds",
            "Time to answer a write request",
            write_seconds.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time to answer a query request",
            query_seconds.clone(),
        );
        registry.register(
            "usage_request_duration_seconds",
            "Time to answer a usage API request (/api/v1/tenants/{tenant}/...), in the handler",
            usage_seconds.clone(),
        );
        registry.register("queries", "Query requests by outcome", queries.clone());
        registry.register_collector(Box::new(EngineCollector(engine)));
        Metrics {
            registry,
            events_ingested,
            bytes_ingested,
            lines_rejected,
            write_seconds,
            query_seconds,
            usage_seconds,
            queries,
        }
    }

    /// Counts one write request.
    pub fn record_write(&self, events: usize, bytes: usize, rejected: usize, took: Duration) {
        self.events_ingested.inc_by(events as u64);
        self.bytes_ingested.inc_by(bytes as u64);
        self.lines_rejected.inc_by(rejected as u64);
        self.write_seconds.observe(took.as_secs_f64());
    }

    /// Counts one query request.
    pub fn record_query(&self, took: Duration, ok: bool) {
        self.query_seconds.observe(took.as_secs_f64());
        let outcome = if ok { "ok" } else { "error" };
        self.queries
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// Times one usage API request.
    pub fn record_usage(&self, took: Duration) {
        self.usage_seconds.observe(took.as_secs_f64());
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Reads one figure of a shard.
type ShardFigure = fn(&crate::ShardStatus) -> u64;

/// Reads the engine's figures at scrape time.
#[derive(Debug)]
struct EngineCollector(Arc<Engine>);

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let sum = |f: fn(&crate::ShardStatus) -> u64| stats.iter().map(f).sum::<u64>();
        let counters: [(&str, &str, u64); 9] = [
            ("wal_syncs", "WAL fsyncs since start", sum(|s| s.wal_syncs)),
            (
                "wal_bytes",
                "WAL bytes written since start",
                sum(|s| s.wal_bytes),
            ),
            (
                "flushes",
                "Buffer flushes to segments since start",
                sum(|s| s.flushes),
            ),
            (
                "write_stalls",
                "Writes that waited for a flush since start",
                sum(|s| s.write_stalls),
            ),
            (
                "duplicate_events",
                "Events not stored since start because their event id was stored already",
                sum(|s| s.duplicate_events),
            ),
            (
                "flushed_bytes",
                "Segment bytes written by flushes since start",
                sum(|s| s.flushed_bytes),
            ),
            (
                "compactions",
                "Segment rewrites committed by compaction since start",
                sum(|s| s.compactions),
            ),
            (
                "compacted_bytes_read",
                "Bytes of the segments compaction replaced since start",
                sum(|s| s.compacted_bytes_read),
            ),
            (
                "compacted_bytes_written",
                "Segment bytes written by compaction since start",
                sum(|s| s.compacted_bytes_written),
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let (rollup_buckets, rollup_bytes) = self.0.rollup_memory();
        let gauges: [(&str, &str, u64); 6] = [
            ("segments", "Live segment files", sum(|s| s.segments as u64)),
            (
                "rollup_file_bytes",
                "Bytes of live rollup files",
                sum(|s| s.rollup_file_bytes),
            ),
            (
                "rollup_buckets",
                "Rollup buckets (minute, hour, day) held in memory",
                rollup_buckets as u64,
            ),
            (
                "rollup_memory_bytes",
                "Approximate memory of the rollup buckets",
                rollup_bytes as u64,
            ),
            (
                "segment_bytes",
                "Bytes of live segment files",
                sum(|s| s.segment_bytes),
            ),
            (
                "dedup_index_bytes",
                "Approximate memory of the event-id indexes",
                sum(|s| s.dedup_index_bytes),
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let per_shard: [(&str, &str, ShardFigure); 3] = [
            (
                "buffered_events",
                "Events in a shard's memory buffer",
                |s| s.buffered_events as u64,
            ),
            ("buffered_bytes", "Bytes in a shard's memory buffer", |s| {
                s.buffered_bytes as u64
            }),
            (
                "shard_read_only",
                "1 when a shard refuses writes after a failed fsync",
                |s| u64::from(s.poisoned.is_some()),
            ),
        ];
        for (name, help, f) in per_shard {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (i, s) in stats.iter().enumerate() {
                let shard = i.to_string();
                let labels = [("shard", shard.as_str())];
                let g = ConstGauge::new(f(s) as i64);
                g.encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
