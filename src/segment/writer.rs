//! Builds a segment file in memory, table by table, then writes it with one fsync.
//!
//! **Invariants:** tables arrive grouped by tenant, tenants strictly ascending, measurements
//! strictly ascending within a tenant, rows ascending by time; the writer refuses anything
//! else (the footer's decoder relies on that order). The file is written under its temporary
//! name, fsynced and renamed; the directory fsync is left to the caller, who does it once for
//! all segments of a flush.

use std::ops::Range;
use std::path::Path;

use super::column::{Encoded, bools, event_id, numeric, strings, tags, timestamps};
use super::footer::{self, BlockRef, Footer, ROW_GROUP_ROWS, RowGroup, Table, TenantDir};
use super::header::{HEADER_LEN, Trailer, encode_header};
use super::{SegmentInfo, TableInfo};
use crate::codec::crc32c;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, temp_path};
use crate::scan::{ColumnBatch, FieldColumn, FieldValues, NO_TAG, StrColumn};

/// A segment being built; see [`super::SegmentWriter`].
#[derive(Debug)]
pub(crate) struct Writer {
    info: SegmentInfo,
    /// The file so far: the header, then every block.
    data: Vec<u8>,
    tables: Vec<Table>,
    tenants: Vec<TenantDir>,
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
            data: encode_header(),
            tables: Vec::new(),
            tenants: Vec::new(),
        }
    }

    fn push_block(&mut self, e: Encoded) -> Result<BlockRef> {
        let len =
            u32::try_from(e.bytes.len()).map_err(|_| refuse("a block exceeds 4 GiB".into()))?;
        let block = BlockRef {
            offset: self.data.len() as u64,
            len,
            crc: crc32c(&e.bytes),
            enc: e.enc,
        };
        self.data.extend_from_slice(&e.bytes);
        Ok(block)
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
            let prev = (&last.info.tenant, &last.info.measurement);
            if prev >= (&t.tenant, &t.measurement) {
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
        if self.tenants.last().is_none_or(|d| d.tenant != t.tenant) {
            let at = self.data.len() as u64;
            self.tenants.push(TenantDir {
                tenant: t.tenant.clone(),
                range: at..at,
                tables: self.tables.len()..self.tables.len(),
            });
        }
        let mut tag_blocks = Vec::with_capacity(t.tags.len());
        for tag in &t.tags {
            let values: Vec<Option<&str>> = tag
                .ids
                .iter()
                .map(|&id| tag.dict.get(id as usize).map(String::as_str))
                .collect();
            tag_blocks.push(self.push_block(tags::encode(&values))?);
        }
        let mut row_groups = Vec::new();
        for first in (0..n).step_by(ROW_GROUP_ROWS as usize) {
            let rows = first..(first + ROW_GROUP_ROWS as usize).min(n);
            let ts = slice(&t.timestamps, rows.clone());
            let (min_time, max_time) = match (ts.first(), ts.last()) {
                (Some(&lo), Some(&hi)) => (lo, hi),
                _ => continue,
            };
            let timestamps = self.push_block(timestamps::encode(ts))?;
            let mut fields = Vec::with_capacity(t.fields.len());
            for f in &t.fields {
                fields.push(self.push_block(encode_field(f, rows.clone()))?);
            }
            let event_ids = match &t.event_ids {
                Some(ids) => Some(self.push_block(event_id::encode(&str_rows(ids, rows.clone())))?),
                None => None,
            };
            row_groups.push(RowGroup {
                first_row: rows.start as u32,
                n_rows: rows.len() as u32,
                min_time,
                max_time,
                timestamps,
                fields,
                event_ids,
            });
        }
        let info = TableInfo {
            tenant: t.tenant.clone(),
            measurement: t.measurement.clone(),
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
        self.tables.push(Table {
            info,
            tags: tag_blocks,
            row_groups,
        });
        let end = self.data.len() as u64;
        if let Some(dir) = self.tenants.last_mut() {
            dir.range.end = end;
            dir.tables.end = self.tables.len();
        }
        Ok(())
    }

    /// The complete file.
    pub fn into_bytes(self) -> Vec<u8> {
        let Writer {
            info,
            mut data,
            tables,
            tenants,
        } = self;
        let footer = footer::encode(&Footer {
            info,
            tenants,
            tables,
        });
        let trailer = Trailer {
            footer_offset: data.len() as u64,
            footer_len: u32::try_from(footer.len()).unwrap_or(u32::MAX),
            footer_crc: crc32c(&footer),
        };
        debug_assert!(data.len() >= HEADER_LEN);
        data.extend_from_slice(&footer);
        data.extend_from_slice(&trailer.encode());
        data
    }

    pub fn finish(self, fs: &dyn FileSystem, path: &Path) -> Result<u64> {
        let bytes = self.into_bytes();
        let tmp = temp_path(path);
        let mut file = fs.create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        file.write_all(&bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(file);
        fs.rename(&tmp, path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        Ok(bytes.len() as u64)
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
