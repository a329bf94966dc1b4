//! Immutable columnar segment files: one shard and one UTC day each, every tenant's rows
//! contiguous with a per-tenant directory in the footer.
//!
//! Never writes a sealed file; knows nothing of tenancy rules, retention or the WAL.
//!
//! Code map, one file per on-disk piece (byte layouts: storage-format.md, "Segment files"):
//! - `header.rs`: magic + version + CRC at the start, the trailer (footer offset, length,
//!   CRC, magic) at the end;
//! - `footer.rs`: [`SegmentInfo`], the tenant directory, tables, row groups, block
//!   descriptors;
//! - `column/`: one file per column encoding (timestamps, numeric, bools, strings, event ids,
//!   tags with dictionaries and roaring postings);
//! - `writer.rs` builds a file; `reader.rs` scans, counts and verifies an open one.
//!
//! **Invariants:** a file is written once (temporary name, fsync, rename) and never modified;
//! each tenant's blocks are one contiguous byte range; every block has a CRC32C that is
//! checked before the block is decoded; no byte of a file can make the reader panic or
//! allocate beyond what the file's own size and row counts justify.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub(crate) mod column;
mod footer;
mod header;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::crc32c;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::{FileBytes, FileSystem};
use crate::model::{Day, FieldType, SeqNo, TenantId};
use crate::scan::{ColumnBatch, ScanRequest};

pub(crate) use column::event_id::{ID_TEXT_MAX, IdKey};

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

/// One tenant's rows of one measurement in a segment. The measurement and schema are shared
/// by every table of the segment that has them: an open segment keeps one `TableInfo` per
/// table, thousands per day, and copies of these strings were a tenth of the server's heap.
#[derive(Clone, Debug, PartialEq)]
pub struct TableInfo {
    /// The tenant.
    pub tenant: TenantId,
    /// The measurement.
    pub measurement: Arc<str>,
    /// Rows.
    pub n_rows: u64,
    /// Earliest timestamp.
    pub min_time: i64,
    /// Latest timestamp.
    pub max_time: i64,
    /// Tag keys.
    pub tag_keys: Arc<[String]>,
    /// Field keys and types.
    pub fields: Arc<[(String, FieldType)]>,
    /// Whether rows carry event ids.
    pub has_event_ids: bool,
}

/// Builds a segment file.
#[derive(Debug)]
pub struct SegmentWriter {
    inner: writer::Writer,
}

impl SegmentWriter {
    /// Starts a segment.
    pub fn new(info: SegmentInfo) -> SegmentWriter {
        SegmentWriter {
            inner: writer::Writer::new(info),
        }
    }

    /// Adds one tenant's rows of one measurement, sorted by time. Tables must come grouped by
    /// tenant, tenants in ascending order, measurements ascending within a tenant.
    ///
    /// An empty batch is skipped. Returns [`Error::InvalidOptions`] when the batch breaks the
    /// order above, is not sorted by time, or has columns of the wrong length.
    pub fn add_table(&mut self, table: &ColumnBatch) -> Result<()> {
        self.inner.add_table(table)
    }

    /// Writes the file: temporary name, fsync, rename to `path`. Does not fsync the directory
    /// (the caller does it once for all the segments of a flush). Returns the file's size.
    pub fn finish(self, fs: &dyn FileSystem, path: &Path) -> Result<u64> {
        self.inner.finish(fs, path)
    }

    /// The complete file's bytes, without writing anything (tests, tools, benchmarks).
    /// Fails like [`SegmentWriter::finish`] when a chunk or the footer exceeds 4 GiB.
    pub fn into_bytes(self) -> Result<Vec<u8>> {
        self.inner.into_bytes()
    }
}

/// An open, immutable segment (memory-mapped).
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    bytes: FileBytes,
    footer: footer::Footer,
}

impl Segment {
    /// Opens and checks the header, footer and directory (block checksums are checked when a
    /// block is read, and all of them by [`Segment::verify`]).
    pub fn open(fs: &dyn FileSystem, path: &Path) -> Result<Arc<Segment>> {
        let bytes = fs.map(path).map_err(|e| Error::io("map", path, e))?;
        Segment::from_bytes(bytes, path.to_path_buf())
    }

    /// Opens a segment held in memory; `path` is only used in error reports. Runs the same
    /// checks as [`Segment::open`] (the fuzz target's entry point).
    pub fn from_bytes(bytes: FileBytes, path: PathBuf) -> Result<Arc<Segment>> {
        let at = |(offset, kind)| Error::Corruption(Corruption::new(&path, offset, kind));
        header::check_header(&bytes).map_err(at)?;
        let trailer = header::Trailer::decode(&bytes).map_err(at)?;
        let offset = trailer.footer_offset;
        let footer_bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| bytes.get(start..start.checked_add(trailer.footer_len as usize)?))
            .ok_or_else(|| at((offset, CorruptionKind::Truncated)))?;
        let actual = crc32c(footer_bytes);
        if actual != trailer.footer_crc {
            let expected = trailer.footer_crc;
            return Err(at((
                offset,
                CorruptionKind::ChecksumMismatch { expected, actual },
            )));
        }
        let footer = footer::decode(footer_bytes, offset).map_err(|kind| at((offset, kind)))?;
        Ok(Arc::new(Segment {
            path,
            bytes,
            footer,
        }))
    }

    /// The segment's own description.
    pub fn info(&self) -> &SegmentInfo {
        &self.footer.info
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops the file's pages from the process's resident memory (see
    /// [`FileBytes::release_pages`]); readers holding the segment keep working.
    pub fn release_pages(&self) {
        self.bytes.release_pages();
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Every table, tenants ascending.
    pub fn tables(&self) -> impl ExactSizeIterator<Item = &TableInfo> + Clone {
        self.footer.tables.iter().map(|t| &t.info)
    }

    /// Byte range of a tenant's data in the file, if it has any.
    pub fn tenant_range(&self, tenant: &TenantId) -> Option<std::ops::Range<u64>> {
        let dirs = &self.footer.tenants;
        let i = dirs.binary_search_by(|d| d.tenant.cmp(tenant)).ok()?;
        dirs.get(i).map(|d| d.range.clone())
    }

    /// Rows matching `req`, one batch per table with matching rows. Prunes by tenant,
    /// measurement, time (per block) and tag postings before decoding.
    ///
    /// A damaged block of a table that the scan needs is an [`Error::Corruption`] naming the
    /// file and the block's offset; tables the scan prunes are not read.
    pub fn scan(&self, req: &ScanRequest) -> Result<Vec<ColumnBatch>> {
        self.scan_impl(req)
    }

    /// Counts the rows matching `req` without decoding columns where it can: from the footer
    /// when a table lies inside the time range and there are no predicates, else from
    /// postings and the timestamps of row groups that straddle the range.
    pub fn count(&self, req: &ScanRequest) -> Result<u64> {
        self.count_impl(req)
    }

    /// Calls `f(tenant, id)` for every event id of the segment (of one tenant, if given),
    /// tables in footer order, rows in order. Reads only the event id chunks, and prints no
    /// id back to text: the event-id index reads every stored id when it rebuilds.
    pub(crate) fn for_each_event_key(
        &self,
        tenant: Option<&TenantId>,
        f: impl FnMut(&TenantId, IdKey<'_>),
    ) -> Result<()> {
        self.for_each_event_key_impl(tenant, f)
    }

    /// Adds the segment's tables to `catalog` from the footer; reads the tag dictionaries
    /// (not the postings, not the rows) of tables whose tag values are requested.
    pub fn catalog(
        &self,
        req: &crate::catalog::CatalogRequest,
        catalog: &mut crate::catalog::Catalog,
    ) -> Result<()> {
        self.catalog_impl(req, catalog)
    }

    /// Reads every block and checks its checksum; returns what is damaged.
    pub fn verify(&self) -> Vec<Corruption> {
        self.verify_impl()
    }
}

/// Recomputes every checksum of a segment image (header, blocks, footer) so that damaged
/// bytes reach the decoders behind the checksums. For fuzzing only: a reader must never do
/// this. Returns the input unchanged where its structure is too damaged to find the checksums.
#[doc(hidden)]
pub fn reseal_for_fuzzing(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(crc_slot) = out.get_mut(header::HEADER_CRC_OFFSET..header::HEADER_LEN) {
        let crc = crc32c(bytes.get(..header::HEADER_CRC_OFFSET).unwrap_or_default());
        crc_slot.copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(trailer) = header::Trailer::decode(&out) else {
        return out;
    };
    let (start, len) = (trailer.footer_offset as usize, trailer.footer_len as usize);
    let Some(stored) = out.get(start..start + len) else {
        return out;
    };
    let mut footer_bytes = stored.to_vec();
    if let Ok(mut footer) = footer::decode(stored, trailer.footer_offset) {
        for block in footer.tables.iter_mut().flat_map(|t| &mut t.blocks) {
            let range = block.offset as usize..block.offset as usize + block.len as usize;
            block.crc = crc32c(out.get(range).unwrap_or_default());
        }
        footer_bytes = footer::encode(&footer).unwrap_or(footer_bytes);
    }
    out.truncate(start);
    let trailer = header::Trailer {
        footer_offset: start as u64,
        footer_len: u32::try_from(footer_bytes.len()).unwrap_or(u32::MAX),
        footer_crc: crc32c(&footer_bytes),
    };
    out.extend_from_slice(&footer_bytes);
    out.extend_from_slice(&trailer.encode());
    out
}

/// A segment path.
pub fn path_in(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(file_name(id))
}
