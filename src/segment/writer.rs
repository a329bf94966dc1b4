//! Builds a segment file table by table, then writes it with one fsync.
//!
//! Column chunks are encoded as tables arrive; tag chunks and the byte layout wait for the
//! end ([`Writer::finish`], [`Writer::into_bytes`]), because tag dictionaries refer to the
//! segment's tag value table, which is complete only when every table is in. The file is
//! then written as it is laid out, a piece at a time, not built whole in memory first.
//!
//! **Invariants:** tables arrive grouped by tenant, tenants strictly ascending, measurements
//! strictly ascending within a tenant, rows ascending by time; the writer refuses anything
//! else (the footer's decoder relies on that order). The file is written under its temporary
//! name, fsynced and renamed; the directory fsync is left to the caller, who does it once for
//! all segments of a flush.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use super::column::{Encoded, bools, event_id, numeric, strings, tags, timestamps};
use super::footer::{
    self, BlockRef, ChunkRef, Footer, PACK_LIMIT, ROW_GROUP_ROWS, RowGroup, Table, TenantDir,
};
use super::header::{Trailer, encode_header};
use super::{SegmentInfo, TableInfo};
use crate::codec::{crc32c, crc32c_append};
use crate::error::{Error, Result};
use crate::fs::{FileSystem, WritableFile, temp_path};
use crate::scan::{ColumnBatch, FieldColumn, FieldValues, NO_TAG, StrColumn, TagColumn};

/// Each tag value's id in the segment's value table, by tag key and value. Hashed with foldhash
/// (the values come from the network; SipHash here was a tenth of a flush's time).
type ValueIds<'a> = HashMap<(&'a str, &'a str), u32, foldhash::fast::RandomState>;

/// A row group whose columns are encoded but not yet placed in the file.
#[derive(Debug)]
struct PendingRowGroup {
    first_row: u32,
    n_rows: u32,
    min_time: i64,
    max_time: i64,
    /// Timestamps, fields in schema order, event ids.
    chunks: Vec<Encoded>,
}

/// A table waiting for [`Writer::into_bytes`].
#[derive(Debug)]
struct PendingTable {
    info: TableInfo,
    tags: Vec<TagColumn>,
    row_groups: Vec<PendingRowGroup>,
}

/// A segment being built; see [`super::SegmentWriter`].
#[derive(Debug)]
pub(crate) struct Writer {
    info: SegmentInfo,
    tables: Vec<PendingTable>,
}

fn refuse(why: String) -> Error {
    Error::InvalidOptions(format!("segment writer: {why}"))
}

fn slice<T: Copy>(v: &[T], rows: Range<usize>) -> &[T] {
    v.get(rows).unwrap_or_default()
}

fn str_rows(col: &StrColumn, rows: Range<usize>) -> StrColumn {
    col.iter().skip(rows.start).take(rows.len()).collect()
}

impl Writer {
    pub fn new(info: SegmentInfo) -> Writer {
        Writer {
            info,
            tables: Vec::new(),
        }
    }

    fn check(&self, t: &ColumnBatch) -> Result<()> {
        let n = t.len();
        let what = format!("table {}/{}", t.tenant, t.measurement);
        if u32::try_from(n).is_err() {
            return Err(refuse(format!("{what} has more than u32::MAX rows")));
        }
        if !t
            .timestamps
            .windows(2)
            .all(|w| matches!(w, [a, b] if a <= b))
        {
            return Err(refuse(format!("{what} is not sorted by time")));
        }
        if let Some(last) = self.tables.last() {
            let prev = (&last.info.tenant, &*last.info.measurement);
            if prev >= (&t.tenant, t.measurement.as_str()) {
                return Err(refuse(format!("{what} comes after {}/{}", prev.0, prev.1)));
            }
        }
        for (i, tag) in t.tags.iter().enumerate() {
            let bad_id = tag
                .ids
                .iter()
                .any(|&id| id != NO_TAG && id as usize >= tag.dict.len());
            if tag.ids.len() != n || bad_id || t.tags.iter().take(i).any(|o| o.key == tag.key) {
                return Err(refuse(format!(
                    "{what}: tag column {:?} is malformed or repeated",
                    tag.key
                )));
            }
        }
        for (i, f) in t.fields.iter().enumerate() {
            if f.values.len() != n || t.fields.iter().take(i).any(|o| o.key == f.key) {
                return Err(refuse(format!(
                    "{what}: field column {:?} is malformed or repeated",
                    f.key
                )));
            }
        }
        if t.event_ids.as_ref().is_some_and(|e| e.len() != n) {
            return Err(refuse(format!(
                "{what}: event id column has the wrong length"
            )));
        }
        Ok(())
    }

    pub fn add_table(&mut self, t: &ColumnBatch) -> Result<()> {
        if t.is_empty() {
            return Ok(());
        }
        self.check(t)?;
        let n = t.len();
        let mut row_groups = Vec::new();
        for first in (0..n).step_by(ROW_GROUP_ROWS as usize) {
            let rows = first..(first + ROW_GROUP_ROWS as usize).min(n);
            let ts = slice(&t.timestamps, rows.clone());
            let (min_time, max_time) = match (ts.first(), ts.last()) {
                (Some(&lo), Some(&hi)) => (lo, hi),
                _ => continue,
            };
            let mut chunks = vec![timestamps::encode(ts)];
            chunks.extend(t.fields.iter().map(|f| encode_field(f, rows.clone())));
            if let Some(ids) = &t.event_ids {
                chunks.push(event_id::encode(&str_rows(ids, rows.clone())));
            }
            row_groups.push(PendingRowGroup {
                first_row: rows.start as u32,
                n_rows: rows.len() as u32,
                min_time,
                max_time,
                chunks,
            });
        }
        let info = TableInfo {
            tenant: t.tenant.clone(),
            measurement: t.measurement.as_str().into(),
            n_rows: n as u64,
            min_time: row_groups.first().map_or(0, |g| g.min_time),
            max_time: row_groups.last().map_or(0, |g| g.max_time),
            tag_keys: t.tags.iter().map(|c| c.key.clone()).collect(),
            fields: t
                .fields
                .iter()
                .map(|f| (f.key.clone(), f.values.field_type()))
                .collect(),
            has_event_ids: t.event_ids.is_some(),
        };
        self.tables.push(PendingTable {
            info,
            tags: t.tags.clone(),
            row_groups,
        });
        Ok(())
    }

    /// The complete file, or an error when a chunk or the footer exceeds 4 GiB.
    pub fn into_bytes(self) -> Result<Vec<u8>> {
        let mut sink = Sink {
            buf: Vec::new(),
            written: 0,
            file: None,
        };
        self.write_to(&mut sink)?;
        Ok(sink.buf)
    }

    /// Lays the file out into `out`.
    fn write_to(self, out: &mut Sink<'_>) -> Result<()> {
        let Writer {
            info,
            tables: pending,
        } = self;
        // One sorted value table per tag key: a key's ids stay small (a dozen status codes
        // are ids 0..12, not scattered among thousands of user names).
        let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in pending.iter().flat_map(|t| &t.tags) {
            // Mark the dictionary entries rows use, then add each once (not once per row).
            let mut used = vec![false; c.dict.len()];
            for &id in &c.ids {
                if let Some(u) = used.get_mut(id as usize) {
                    *u = true;
                }
            }
            let values = by_key.entry(c.key.as_str()).or_default();
            values.extend(
                c.dict
                    .iter()
                    .zip(&used)
                    .filter(|(_, u)| **u)
                    .map(|(v, _)| v.as_str()),
            );
        }
        // Sorted once at the end rather than kept in a tree, which cost a string comparison
        // per level for each of a flush's hundreds of thousands of values.
        let tag_values: Vec<(String, StrColumn)> = by_key
            .into_iter()
            .map(|(k, mut vs)| {
                vs.sort_unstable();
                vs.dedup();
                let mut values = StrColumn::new();
                for v in vs {
                    values.push(Some(v));
                }
                (k.to_owned(), values)
            })
            .collect();
        let value_ids: ValueIds<'_> = tag_values
            .iter()
            .flat_map(|(k, vs)| {
                vs.iter()
                    .flatten()
                    .enumerate()
                    .map(move |(i, v)| ((k.as_str(), v), i as u32))
            })
            .collect();

        out.put(&encode_header())?;
        let mut tables: Vec<Table> = Vec::with_capacity(pending.len());
        let mut tenants: Vec<TenantDir> = Vec::new();
        for t in pending {
            let start = out.offset();
            if tenants.last().is_none_or(|d| d.tenant != t.info.tenant) {
                let at = tables.len();
                tenants.push(TenantDir {
                    tenant: t.info.tenant.clone(),
                    range: start..start,
                    tables: at..at,
                });
            }
            let table = place_table(t, &value_ids, out)?;
            tables.push(table);
            if let Some(dir) = tenants.last_mut() {
                dir.range.end = out.offset();
                dir.tables.end = tables.len();
            }
        }
        let footer = footer::encode(&Footer {
            info,
            tag_values,
            tenants,
            tables,
        });
        let footer = footer.ok_or_else(|| refuse("zstd failed to compress the footer".into()))?;
        let trailer = Trailer {
            footer_offset: out.offset(),
            footer_len: u32::try_from(footer.len())
                .map_err(|_| refuse("the footer exceeds 4 GiB".into()))?,
            footer_crc: crc32c(&footer),
        };
        out.put(&footer)?;
        out.put(&trailer.encode())?;
        out.drain()
    }

    pub fn finish(self, fs: &dyn FileSystem, path: &Path) -> Result<u64> {
        // Write under the temporary name, fsync, rename: after a crash `path` either does not
        // exist or holds the whole file (storage-format.md, "Segment files", "Write and commit protocol").
        let tmp = temp_path(path);
        let mut file = fs.create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut sink = Sink {
            buf: Vec::with_capacity(WRITE_SIZE),
            written: 0,
            file: Some((&mut *file, &tmp)),
        };
        if let Err(e) = self.write_to(&mut sink) {
            drop(file);
            let _ = fs.remove_file(&tmp);
            return Err(e);
        }
        let len = sink.offset();
        file.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(file);
        fs.rename(&tmp, path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        Ok(len)
    }
}

/// How much of a segment file is held before it is written out.
const WRITE_SIZE: usize = 1 << 20;

/// Where a segment's bytes go: kept in memory (`file` is `None`), or written to `file` a
/// [`WRITE_SIZE`] piece at a time. A flush built its segments whole in memory first, the
/// buffer growing by doubling: up to twice the file at the moment a flush holds the most.
struct Sink<'f> {
    buf: Vec<u8>,
    /// Bytes already written to the file.
    written: u64,
    file: Option<(&'f mut dyn WritableFile, &'f Path)>,
}

impl Sink<'_> {
    /// Offset of the next byte in the file.
    fn offset(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= WRITE_SIZE {
            self.drain()?;
        }
        Ok(())
    }

    /// Writes out what is held (nothing without a file).
    fn drain(&mut self) -> Result<()> {
        if let Some((file, path)) = &mut self.file {
            file.write_all(&self.buf)
                .map_err(|e| Error::io("write", *path, e))?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

fn encode_field(f: &FieldColumn, rows: Range<usize>) -> Encoded {
    match &f.values {
        FieldValues::F64(v) => numeric::encode_f64(slice(v, rows)),
        FieldValues::I64(v) => numeric::encode_i64(slice(v, rows)),
        FieldValues::U64(v) => numeric::encode_u64(slice(v, rows)),
        FieldValues::Bool(v) => bools::encode(slice(v, rows)),
        FieldValues::Str(v) => strings::encode(&str_rows(v, rows)),
    }
}

/// Appends a table's chunks to `out` and describes them: one block when they are small
/// together, else one block per chunk.
fn place_table(mut t: PendingTable, value_ids: &ValueIds<'_>, out: &mut Sink<'_>) -> Result<Table> {
    let n = t.info.n_rows as usize;
    let mut chunks: Vec<Encoded> = Vec::new();
    if !t.tags.is_empty() {
        let keys: Vec<Vec<Option<u32>>> = t
            .tags
            .iter()
            .map(|c| {
                // Looked up once per dictionary entry, then indexed per row.
                let key = c.key.as_str();
                let ids: Vec<Option<u32>> = c
                    .dict
                    .iter()
                    .map(|v| value_ids.get(&(key, v.as_str())).copied())
                    .collect();
                c.ids
                    .iter()
                    .map(|&id| ids.get(id as usize).copied().flatten())
                    .collect()
            })
            .collect();
        chunks.push(tags::encode(&keys, n));
    }
    let mut row_groups = Vec::with_capacity(t.row_groups.len());
    for rg in &mut t.row_groups {
        chunks.append(&mut rg.chunks);
    }
    let start = out.offset();
    let total: u64 = chunks.iter().map(|c| c.bytes.len() as u64).sum();
    let packed = total <= PACK_LIMIT;
    let mut refs = Vec::with_capacity(chunks.len());
    let mut blocks = Vec::new();
    let mut packed_crc = 0;
    for c in &chunks {
        let offset = out.offset();
        let len = u32::try_from(c.bytes.len()).map_err(|_| {
            let what = format!("{}/{}", t.info.tenant, t.info.measurement);
            refuse(format!("table {what} has a chunk over 4 GiB"))
        })?;
        if packed {
            packed_crc = crc32c_append(packed_crc, &c.bytes);
        } else {
            blocks.push(BlockRef {
                offset,
                len,
                crc: crc32c(&c.bytes),
            });
        }
        refs.push(ChunkRef {
            offset,
            len,
            enc: c.enc,
            block: if packed { 0 } else { blocks.len() - 1 },
        });
        out.put(&c.bytes)?;
    }
    if packed {
        blocks.push(BlockRef {
            offset: start,
            len: total as u32,
            crc: packed_crc,
        });
    }
    let mut refs = refs.into_iter();
    let tags = if t.tags.is_empty() { None } else { refs.next() };
    for rg in t.row_groups {
        let mut take = || {
            refs.next().unwrap_or(ChunkRef {
                offset: 0,
                len: 0,
                enc: 0,
                block: 0,
            })
        };
        let timestamps = take();
        let fields = (0..t.info.fields.len()).map(|_| take()).collect();
        let event_ids = t.info.has_event_ids.then(&mut take);
        row_groups.push(RowGroup {
            first_row: rg.first_row,
            n_rows: rg.n_rows,
            min_time: rg.min_time,
            max_time: rg.max_time,
            timestamps,
            fields,
            event_ids,
        });
    }
    Ok(Table {
        info: t.info,
        tags,
        row_groups,
        blocks,
    })
}
