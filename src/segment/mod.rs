//! Immutable columnar segment files: one shard and one UTC day each, every tenant's rows
//! contiguous with a per-tenant directory in the footer.
//!
//! Never writes a sealed file; knows nothing of tenancy rules, retention or the WAL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Corruption, Result};
use crate::fs::FileSystem;
use crate::model::{Day, FieldType, SeqNo, TenantId};
use crate::scan::{ColumnBatch, ScanRequest};

/// Identifies a segment within its shard; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u64);

/// What a segment records about itself (in its footer), so that it can be understood without
/// the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's id.
    pub id: SegmentId,
    /// The shard it belongs to.
    pub shard: u32,
    /// The UTC day all its rows fall in.
    pub day: Day,
    /// Lowest WAL sequence number whose data it holds.
    pub seq_min: SeqNo,
    /// Highest WAL sequence number whose data it holds.
    pub seq_max: SeqNo,
    /// The manifest version that adds it.
    pub commit: u64,
    /// How many segments that manifest version adds (a crash can leave some of them behind).
    pub commit_parts: u32,
    /// Segments it replaces (compaction).
    pub replaces: Vec<SegmentId>,
}

/// The file name of segment `id`.
pub fn file_name(id: SegmentId) -> String {
    format!("{:012}.seg", id.0)
}

/// The segment id in a file name made by [`file_name`].
pub fn parse_file_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(SegmentId))
        .flatten()
}

/// One tenant's rows of one measurement in a segment.
#[derive(Clone, Debug, PartialEq)]
pub struct TableInfo {
    /// The tenant.
    pub tenant: TenantId,
    /// The measurement.
    pub measurement: String,
    /// Rows.
    pub n_rows: u64,
    /// Earliest timestamp.
    pub min_time: i64,
    /// Latest timestamp.
    pub max_time: i64,
    /// Tag keys.
    pub tag_keys: Vec<String>,
    /// Field keys and types.
    pub fields: Vec<(String, FieldType)>,
    /// Whether rows carry event ids.
    pub has_event_ids: bool,
}

/// Builds a segment file.
pub struct SegmentWriter {}

impl SegmentWriter {
    /// Starts a segment.
    pub fn new(info: SegmentInfo) -> SegmentWriter {
        let _ = info;
        unimplemented!()
    }

    /// Adds one tenant's rows of one measurement, sorted by time. Tables must come grouped by
    /// tenant, tenants in ascending order, measurements ascending within a tenant.
    pub fn add_table(&mut self, table: &ColumnBatch) -> Result<()> {
        let _ = table;
        unimplemented!()
    }

    /// Writes the file: temporary name, fsync, rename to `path`. Does not fsync the directory
    /// (the caller does it once for all the segments of a flush). Returns the file's size.
    pub fn finish(self, fs: &dyn FileSystem, path: &Path) -> Result<u64> {
        let _ = (fs, path);
        unimplemented!()
    }
}

/// An open, immutable segment (memory-mapped).
#[derive(Debug)]
pub struct Segment {}

impl Segment {
    /// Opens and checks the header, footer and directory (block checksums are checked when a
    /// block is read, and all of them by [`Segment::verify`]).
    pub fn open(fs: &dyn FileSystem, path: &Path) -> Result<Arc<Segment>> {
        let _ = (fs, path);
        unimplemented!()
    }

    /// The segment's own description.
    pub fn info(&self) -> &SegmentInfo {
        unimplemented!()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        unimplemented!()
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        unimplemented!()
    }

    /// Every table, tenants ascending.
    pub fn tables(&self) -> &[TableInfo] {
        unimplemented!()
    }

    /// Byte range of a tenant's data in the file, if it has any.
    pub fn tenant_range(&self, tenant: &TenantId) -> Option<std::ops::Range<u64>> {
        let _ = tenant;
        unimplemented!()
    }

    /// Rows matching `req`, one batch per table with matching rows. Prunes by tenant,
    /// measurement, time (per block) and tag postings before decoding.
    pub fn scan(&self, req: &ScanRequest) -> Result<Vec<ColumnBatch>> {
        let _ = req;
        unimplemented!()
    }

    /// Counts the rows matching `req` without decoding columns where it can.
    pub fn count(&self, req: &ScanRequest) -> Result<u64> {
        let _ = req;
        unimplemented!()
    }

    /// Reads every block and checks its checksum; returns what is damaged.
    pub fn verify(&self) -> Vec<Corruption> {
        unimplemented!()
    }
}

/// A segment path.
pub fn path_in(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(file_name(id))
}
