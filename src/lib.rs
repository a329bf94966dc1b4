//! MeterDB: a time-series storage engine for exact SaaS usage tracking.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod codec;
pub mod config;
pub mod engine;
pub mod error;
pub mod fs;
pub mod manifest;
pub mod model;
pub mod scan;
pub mod segment;
pub mod shard;
pub mod wal;

pub use config::{Options, SyncPolicy};
pub use engine::{Engine, Receipt, ShardStatus};
pub use error::{Corruption, CorruptionKind, Error, InvalidEvent, Result};
pub use model::{
    Day, Event, EventRef, FieldType, FieldValue, FieldValueRef, SeqNo, TenantId, Timestamp,
    WriteBatch,
};
pub use scan::{
    ColumnBatch, FieldColumn, FieldValues, ScanRequest, StrColumn, TagColumn, TagOp, TagPredicate,
};
