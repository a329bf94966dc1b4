//! MeterDB: a time-series storage engine for exact SaaS usage tracking.
//!
//! MeterDB stores usage events (API calls, storage operations, database queries, any custom
//! event) per tenant, durably and compactly, and answers scans over them by tenant,
//! measurement, time range and tag predicates. This crate is the engine, embeddable as a
//! library, plus the InfluxDB-compatible HTTP server ([`server`], [`influxql`]); the same crate
//! builds the `meterdb` binary (`serve`, `import`, `query`, `check`, `stats`; its subcommands
//! live in `src/cli/`).
//!
//! ```
//! use meterdb::clock::{Clock, SystemClock};
//! use meterdb::{Engine, FieldValueRef, Options, ScanRequest, TagPredicate, WriteBatch};
//!
//! # fn main() -> meterdb::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open(dir.path(), Options::default())?;
//! let mut batch = WriteBatch::new();
//! batch
//!     // Dated now: a write refuses events older than `Options::raw_retention` (30 days) or
//!     // more than `Options::max_future` (24 h) ahead.
//!     .add("acme", "api_calls", SystemClock.now())
//!     .tag("endpoint", "/api/users")
//!     .tag("method", "GET")
//!     .field("response_time_ms", FieldValueRef::F64(12.5))
//!     .event_id("7c9e6679-7425-40de-944b-e07fc1f90ae7");
//! let receipt = engine.write(batch)?; // returns once the WAL is fsynced
//! assert_eq!(receipt.written, 1);
//!
//! let gets = ScanRequest {
//!     tenant: Some("acme".into()),
//!     measurement: Some("api_calls".into()),
//!     predicates: vec![TagPredicate::eq("method", "GET")],
//!     ..ScanRequest::default()
//! };
//! assert_eq!(engine.count(&gets)?, 1);
//! engine.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Code map
//!
//! Dependencies flow one way: `tracker → engine → window, meters, retention, tombstone, audit,
//! shard → rollup, wal, segment, manifest → codec, fs, clock`; `model`, `scan`, `usage` and `error` are used
//! everywhere and depend on nothing else in the crate (but `model`).
//!
//! - [`model`]: events, typed field values, ids, and the columnar [`WriteBatch`] with its byte
//!   encoding (the WAL record payload). No I/O.
//! - [`catalog`]: which measurements, tag keys, tag values and fields exist, merged from
//!   buffers and segment footers without reading rows; the tenant shows as a tag, the event id
//!   as a field. No I/O of its own.
//! - [`scan`]: what a reader asks for ([`ScanRequest`]) and gets back ([`ColumnBatch`]), and
//!   row operations on batches (`scan/rows.rs`: pick, append, order by time). No I/O.
//! - [`engine`]: [`Engine`]: the directory lock, tenant → shard routing, write, scan (hiding
//!   deleted rows), flush, close, check; `engine/maintenance.rs`: compaction passes, retention,
//!   deletions and the background [`engine::Compactor`]. **Architecture invariant:** knows no
//!   byte encodings.
//! - [`tombstone`]: deletions not yet purged from the files (`TOMBSTONES`), and which rows
//!   they hide. [`audit`]: the `AUDIT.log` of deletions, naming users by SHA-256 only.
//! - [`window`]: the ingest time window (raw-event retention behind, `max_future` ahead of
//!   the clock) the engine applies to every write before it reaches a shard. No I/O.
//! - [`shard`]: one shard's write path (group-commit writer thread → WAL → in-memory buffer →
//!   flusher thread → segments + manifest), its recovery, its read views, and compaction
//!   (`shard/compact.rs`: which segments to rewrite, the rewrite, the commit through the
//!   flusher).
//!   **Architecture invariant:** an event becomes visible only after its WAL record is
//!   durable (per the sync policy), and a flush becomes visible in one step. Its event-id
//!   index (`shard/dedup.rs`: exact sets of the buffers' ids, a bloom filter over the stored
//!   ones, exact checks against segments on a filter hit) keeps a `(tenant, event_id)` pair
//!   from being stored twice; an id enters it only after its WAL record is written.
//! - [`wal`]: record framing (length, sequence number, CRC32C), rolled files, replay that cuts
//!   torn tails and resynchronises past damaged records. Payload-agnostic.
//! - [`segment`]: immutable columnar files, one shard and one UTC day each, every tenant's rows
//!   contiguous; per-column encodings; checksummed blocks; memory-mapped reads.
//!   **Architecture invariant:** never writes a sealed file.
//! - [`manifest`]: the durable list of a shard's live segments and rollup files, replaced
//!   atomically.
//! - [`meters`]: the meter registry: the built-in meters and each tenant's defined ones with
//!   their rollup ids, persisted in the data directory's `METERS` file.
//! - [`retention`]: [`RetentionPolicies`], how long each tenant's raw events and rollups are
//!   kept: the defaults ([`Options::raw_retention`], [`Options::rollup_retention`]) and the
//!   tenants' overrides, persisted in the data directory's `RETENTION` file; the engine opens
//!   it ([`Engine::retention`]). Settings only: what is past retention is dropped elsewhere.
//!   **Architecture invariant:** an effective metrics retention is never shorter than the
//!   effective events retention.
//! - [`rollup`]: per tenant and meter, minute (for a recent window), hour and day buckets
//!   maintained at ingest, the rollup file format, and range sums; the engine's usage API
//!   (`Engine::usage`, `usage_series`, `define_meter`) reads them and recounts raw events only
//!   for what buckets cannot answer exactly. **Architecture invariant:** every live segment's
//!   rows are counted for every meter by exactly one live rollup file; buffered events are
//!   counted in memory and recounted from the WAL on recovery.
//! - [`codec`]: CRC32C, a stable hash, bounds-checked little-endian reading. No I/O.
//! - [`fs`]: the [`fs::FileSystem`] trait every file operation goes through, the atomic write
//!   protocol, and (feature `failpoints`) two implementations for tests: one that fails chosen
//!   operations, and an in-memory one that simulates power loss.
//!   **Architecture invariant:** nothing else calls `std::fs`.
//! - [`clock`]: the wall clock behind a trait. Nothing else reads the time.
//! - [`config`]: [`Options`] and their defaults.
//! - [`ingest`]: wire formats in (InfluxDB line protocol) → [`WriteBatch`]; per-line errors.
//!   No I/O.
//! - [`influxql`]: the InfluxQL subset of `/query`: lexer and parser → syntax tree, `SELECT`
//!   and `SHOW` execution over [`Engine::scan`] and [`Engine::catalog`], and the answer in
//!   InfluxDB 1.x's JSON shape. No I/O of its own.
//! - [`server`]: the HTTP server (axum): write, events, query, usage, retention and deletion
//!   (`/api/v1/tenants/...`) and operational endpoints behind one authentication layer;
//!   settings layering; its own accept loop (`server/conn.rs`: header-read timeout,
//!   request-head limit, connection cap); a user's export (`server/export.rs`: JSON lines or
//!   CSV, streamed in bounded time windows).
//!   **Architecture invariant:** handlers decode, call the engine, `influxql` or the usage
//!   tracker, and shape answers; no storage logic.
//! - [`usage`]: meters, limits, calendar periods and the limit check, as pure functions over
//!   values (no I/O, no clock of their own); the spec's `USAGE_TRACKING_*` and `LIMITS_*`
//!   settings. **Architecture invariant:** knows no engine, file or HTTP type.
//! - [`tracker`]: [`tracker::UsageTracker`], the spec's usage-tracking API in Rust over an
//!   [`Engine`]: recording events (`record_api_call`, ...), current usage and metrics from
//!   rollups, meters, limits (CRUD, persisted in the data directory's `LIMITS` file) and
//!   `check_limit`, the per-request decision. Its [`tracker::UsageEvent`] is the one mapping
//!   of the spec's events onto stored events, which the JSON events endpoint shares.
//!   **Architecture invariant:** `check_limit` reads memory only (limits, rollups).
//!
//! The usage tracker, the spec's API over the engine ([`tracker`]):
//!
//! ```
//! use std::sync::Arc;
//! use meterdb::tracker::{StorageUsage, UsageTracker};
//! use meterdb::usage::{LimitType, PeriodType, UsageLimit, UsageSettings};
//! use meterdb::{Engine, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir().unwrap();
//! let options = Options::default();
//! let clock = options.clock.clone();
//! let engine = Arc::new(Engine::open(dir.path(), options)?);
//! // LIMITS_ENFORCEMENT_ENABLED, LIMITS_GRACE_PERIOD_MINUTES, ... from the environment.
//! let tracker = UsageTracker::new(engine, UsageSettings::from_env()?, clock)?;
//! let quota = UsageLimit::new("Storage", LimitType::SoftLimit, "storage_bytes", 1e9, PeriodType::Month);
//! let quota = tracker.create_limit("acme", quota)?; // persisted; has its id now
//! let upload = StorageUsage { tenant: "acme", operation: "write", size_bytes: 1024, ..StorageUsage::default() };
//! assert_eq!(tracker.record_storage_usage(&upload)?.written, 1);
//! let check = tracker.check_limit("acme", "storage_bytes")?; // memory only: microseconds
//! assert!(check.allowed());
//! assert_eq!(check.result.unwrap().usage, 1024.0);
//! assert_eq!(check.limit.unwrap().id, quota.id);
//! # Ok(())
//! # }
//! ```
//!
//! The on-disk format, byte by byte, and the crash-safety protocol are in `storage-format.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod catalog;
pub mod clock;
pub mod codec;
pub mod config;
pub mod engine;
pub mod error;
pub mod fs;
pub mod influxql;
pub mod ingest;
pub mod manifest;
pub mod meters;
pub mod model;
pub mod retention;
pub mod rollup;
pub mod scan;
pub mod segment;
pub mod server;
pub mod shard;
pub mod tombstone;
pub mod tracker;
pub mod usage;
pub mod wal;
pub mod window;

pub use config::{Options, RollupsOnDelete, SyncPolicy};
pub use engine::{Engine, Receipt, ShardStatus};
pub use error::{Corruption, CorruptionKind, Error, InvalidEvent, Result};
pub use model::{
    Day, Event, EventRef, FieldType, FieldValue, FieldValueRef, SeqNo, TenantId, Timestamp,
    WriteBatch,
};
pub use retention::{Retention, RetentionPolicies, TenantRetention};
pub use scan::{
    ColumnBatch, FieldColumn, FieldValues, PresenceColumn, ScanRequest, StrColumn, TagColumn,
    TagOp, TagPredicate,
};
