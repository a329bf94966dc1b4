//! Reads an open segment: block access with CRC checks, scans and counts with pruning.
//!
//! **Invariants:** a block's CRC is checked before a single byte of it is decoded; every
//! failure is a [`Corruption`] naming the file and the block's offset; the footer was checked
//! at open ([`super::footer::decode`]), so offsets here lie inside the file.
//!
//! Pruning order for a scan: tenant (directory), measurement, table time range, tag predicates
//! on dictionaries and postings, row-group time range and selected rows; only then are the
//! projected columns of the surviving row groups decoded.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use roaring::RoaringBitmap;

use super::column::tags::{TagChunk, TagIndex};
use super::column::{self, bools, event_id, numeric, strings, timestamps};
use super::footer::{BlockRef, ChunkRef, RowGroup, Table};
use super::{IdKey, Segment};
use crate::catalog::{Catalog, CatalogRequest};
use crate::codec::crc32c;
use crate::error::{Corruption, CorruptionKind, Result};
use crate::model::{FieldType, TenantId};
use crate::scan::{
    ColumnBatch, FieldColumn, FieldValues, NO_TAG, PresenceColumn, ScanRequest, StrColumn,
    TagColumn,
};

/// The value table of a tag key the segment does not have.
static NO_VALUES: StrColumn = StrColumn::new();

/// Checked access to a segment's blocks and chunks.
#[derive(Clone, Copy)]
pub(crate) struct Blocks<'a> {
    pub file: &'a [u8],
    pub path: &'a Path,
}

impl<'a> Blocks<'a> {
    /// The block's bytes after their CRC matched.
    pub fn read(&self, b: &BlockRef) -> Result<&'a [u8], Corruption> {
        let corruption = |kind| Corruption::new(self.path, b.offset, kind);
        let end = b.offset.checked_add(u64::from(b.len));
        let bytes = end
            .and_then(|end| {
                let range = usize::try_from(b.offset).ok()?..usize::try_from(end).ok()?;
                self.file.get(range)
            })
            .ok_or_else(|| corruption(CorruptionKind::Truncated))?;
        let actual = crc32c(bytes);
        if actual != b.crc {
            return Err(corruption(CorruptionKind::ChecksumMismatch {
                expected: b.crc,
                actual,
            }));
        }
        Ok(bytes)
    }

    /// A chunk's bytes, after the CRC of the block holding it matched. Errors name the block.
    pub fn chunk(&self, table: &Table, c: &ChunkRef) -> Result<(&'a [u8], u64), Corruption> {
        let block = table.blocks.get(c.block).ok_or_else(|| {
            Corruption::new(
                self.path,
                c.offset,
                CorruptionKind::Invalid("chunk without a block".into()),
            )
        })?;
        let bytes = self.read(block)?;
        let start = c
            .offset
            .checked_sub(block.offset)
            .and_then(|s| usize::try_from(s).ok());
        let part = start.and_then(|s| bytes.get(s..s.checked_add(c.len as usize)?));
        let part = part
            .ok_or_else(|| Corruption::new(self.path, block.offset, CorruptionKind::Truncated))?;
        Ok((part, block.offset))
    }

    /// Reads and decodes a chunk, tagging decode errors with its block's offset.
    fn decode<T>(
        &self,
        table: &Table,
        c: &ChunkRef,
        f: impl FnOnce(u8, &'a [u8]) -> Result<T, CorruptionKind>,
    ) -> Result<T> {
        let (bytes, at) = self.chunk(table, c)?;
        Ok(f(c.enc, bytes).map_err(|kind| Corruption::new(self.path, at, kind))?)
    }
}

/// True when `[min, max]` overlaps the requested range.
fn overlaps(req: &ScanRequest, min: i64, max: i64) -> bool {
    req.time
        .as_ref()
        .is_none_or(|r| min < r.end && max >= r.start)
}

/// True when `[min, max]` lies inside the requested range.
fn inside(req: &ScanRequest, min: i64, max: i64) -> bool {
    req.time
        .as_ref()
        .is_none_or(|r| r.start <= min && max < r.end)
}

/// One table being scanned: its tag chunk and tag indexes are decoded at most once.
struct TableScan<'s> {
    blocks: Blocks<'s>,
    table: &'s Table,
    tag_values: &'s [(String, StrColumn)],
    tag_chunk: Option<TagChunk<'s>>,
    tag_indexes: HashMap<usize, TagIndex>,
}

impl<'s> TableScan<'s> {
    fn new(segment: &'s Segment, table: &'s Table) -> TableScan<'s> {
        TableScan {
            blocks: segment.blocks(),
            table,
            tag_values: &segment.footer.tag_values,
            tag_chunk: None,
            tag_indexes: HashMap::new(),
        }
    }

    fn n_rows(&self) -> u32 {
        self.table.info.n_rows as u32
    }

    fn tag_index(&mut self, key_idx: usize) -> Result<&TagIndex> {
        if !self.tag_indexes.contains_key(&key_idx) {
            let n = self.n_rows();
            let idx = self.with_tag_chunk(key_idx, |chunk, values| {
                chunk.decode_key(key_idx, values, n)
            })?;
            self.tag_indexes.insert(key_idx, idx);
        }
        self.tag_indexes
            .get(&key_idx)
            .ok_or_else(|| missing(self.blocks.path))
    }

    /// The column of tag key `key_idx` for `rows` (ascending), for the last use of the key in
    /// a scan: from its index if a predicate decoded it (its dictionary then moves into the
    /// column), else straight from the chunk without building postings.
    fn take_tag_column(&mut self, key_idx: usize, key: &str, rows: &[u32]) -> Result<TagColumn> {
        let (dict, ids) = match self.tag_indexes.remove(&key_idx) {
            Some(idx) => {
                let ids = idx.ids_of(rows);
                (idx.dict, ids)
            }
            None => {
                let n = self.n_rows();
                let (dict, by_row) = self.with_tag_chunk(key_idx, |chunk, values| {
                    chunk.decode_ids(key_idx, values, n)
                })?;
                let ids = if rows.len() == by_row.len() {
                    // Rows are distinct table rows, so as many as the table has are all of it.
                    by_row
                } else {
                    rows.iter()
                        .map(|&r| by_row.get(r as usize).copied().unwrap_or(NO_TAG))
                        .collect()
                };
                (dict, ids)
            }
        };
        Ok(TagColumn {
            key: key.to_owned(),
            dict,
            ids,
        })
    }

    /// The values of tag key `key_idx` in the table, ascending, without its postings.
    fn tag_dict(&mut self, key_idx: usize) -> Result<Vec<String>> {
        let n = self.n_rows();
        self.with_tag_chunk(key_idx, |chunk, values| {
            chunk.decode_dict(key_idx, values, n)
        })
    }

    /// Runs `f` on the table's tag chunk (read and split once) and the segment's values of
    /// key `key_idx`; errors name the block holding the chunk.
    fn with_tag_chunk<T>(
        &mut self,
        key_idx: usize,
        f: impl FnOnce(&TagChunk<'s>, &StrColumn) -> Result<T, CorruptionKind>,
    ) -> Result<T> {
        let (table, n) = (self.table, self.n_rows());
        let chunk_ref = table
            .tags
            .as_ref()
            .ok_or_else(|| missing(self.blocks.path))?;
        if self.tag_chunk.is_none() {
            let n_keys = table.info.tag_keys.len();
            let chunk = self.blocks.decode(table, chunk_ref, |enc, b| {
                TagChunk::split(enc, b, n_keys, n)
            })?;
            self.tag_chunk = Some(chunk);
        }
        let chunk = self
            .tag_chunk
            .as_ref()
            .ok_or_else(|| missing(self.blocks.path))?;
        let at = table
            .blocks
            .get(chunk_ref.block)
            .map_or(chunk_ref.offset, |b| b.offset);
        let key = table.info.tag_keys.get(key_idx).map(String::as_str);
        let values = key
            .and_then(|k| {
                self.tag_values
                    .binary_search_by(|(pk, _)| pk.as_str().cmp(k))
                    .ok()
            })
            .and_then(|i| self.tag_values.get(i))
            .map_or(&NO_VALUES, |(_, v)| v);
        Ok(f(chunk, values).map_err(|kind| Corruption::new(self.blocks.path, at, kind))?)
    }

    /// Rows satisfying every predicate; `None` means all rows.
    fn selection(&mut self, req: &ScanRequest) -> Result<Option<RoaringBitmap>> {
        let mut selected: Option<RoaringBitmap> = None;
        for pred in &req.predicates {
            let matching = match self.table.info.tag_keys.iter().position(|k| *k == pred.key) {
                // A key the table lacks: every row has the empty value.
                None if pred.matches("") => continue,
                None => RoaringBitmap::new(),
                Some(k) => {
                    let n = self.n_rows();
                    self.tag_index(k)?.matching(pred, n)
                }
            };
            let next = match selected {
                Some(s) => s & matching,
                None => matching,
            };
            if next.is_empty() {
                return Ok(Some(next));
            }
            selected = Some(next);
        }
        Ok(selected)
    }

    /// Table-relative rows of `rg` that are selected and inside the time range, with the
    /// row group's timestamps when they had to be decoded.
    fn rows_in(
        &self,
        rg: &RowGroup,
        sel: Option<&RoaringBitmap>,
        req: &ScanRequest,
        need_ts: bool,
    ) -> Result<(Vec<u32>, Option<Vec<i64>>)> {
        let range: Range<u32> = rg.first_row..rg.first_row + rg.n_rows;
        let candidates: Vec<u32> = match sel {
            Some(s) => s.range(range.clone()).collect(),
            None => range.clone().collect(),
        };
        if candidates.is_empty() || (!need_ts && inside(req, rg.min_time, rg.max_time)) {
            return Ok((candidates, None));
        }
        let n = rg.n_rows as usize;
        let ts = self.blocks.decode(self.table, &rg.timestamps, |enc, b| {
            timestamps::decode(enc, b, n, rg.min_time, rg.max_time)
        })?;
        if inside(req, rg.min_time, rg.max_time) {
            return Ok((candidates, Some(ts)));
        }
        let rows = candidates
            .into_iter()
            .filter(|&row| {
                ts.get((row - range.start) as usize)
                    .is_some_and(|&t| req.time_contains(t))
            })
            .collect();
        Ok((rows, Some(ts)))
    }
}

/// A chunk the checked footer guarantees was not there (an error, never a panic).
fn missing(path: &Path) -> crate::Error {
    Corruption::new(
        path,
        0,
        CorruptionKind::Invalid("a chunk the footer lists is missing".into()),
    )
    .into()
}

/// The rows of a row group a scan keeps, relative to the group.
enum Picked {
    /// Every row: decoded columns are appended whole.
    All,
    /// These rows, ascending.
    Rows(Vec<usize>),
}

impl Picked {
    fn of(rg: &RowGroup, rows: &[u32]) -> Picked {
        if rows.len() == rg.n_rows as usize {
            // Rows are distinct and inside the group, so as many as the group has are all of it.
            return Picked::All;
        }
        Picked::Rows(rows.iter().map(|&r| (r - rg.first_row) as usize).collect())
    }

    /// Appends the kept rows of a decoded column to `out`.
    fn append<T: Clone>(&self, out: &mut Vec<T>, mut values: Vec<T>) {
        match self {
            Picked::All => out.append(&mut values),
            Picked::Rows(local) => out.extend(local.iter().filter_map(|&i| values.get(i).cloned())),
        }
    }

    /// Appends the kept rows of the column `decode` appends to a vector: every row decodes
    /// straight into `out`, without a copy.
    fn decode_into<T: Clone>(
        &self,
        out: &mut Vec<T>,
        decode: impl FnOnce(&mut Vec<T>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Picked::All => decode(out),
            Picked::Rows(_) => {
                let mut values = Vec::new();
                decode(&mut values)?;
                self.append(out, values);
                Ok(())
            }
        }
    }

    fn for_each<T>(&self, values: &[T], mut f: impl FnMut(&T)) {
        match self {
            Picked::All => values.iter().for_each(f),
            Picked::Rows(local) => local.iter().filter_map(|&i| values.get(i)).for_each(&mut f),
        }
    }
}

fn extend_field(
    out: &mut FieldValues,
    blocks: &Blocks<'_>,
    t: &Table,
    b: &ChunkRef,
    n: usize,
    picked: &Picked,
) -> Result<()> {
    match out {
        FieldValues::F64(v) => picked.decode_into(v, |out| {
            blocks.decode(t, b, |e, x| numeric::decode_f64_into(out, e, x, n))
        })?,
        FieldValues::I64(v) => picked.decode_into(v, |out| {
            blocks.decode(t, b, |e, x| numeric::decode_i64_into(out, e, x, n))
        })?,
        FieldValues::U64(v) => picked.decode_into(v, |out| {
            blocks.decode(t, b, |e, x| numeric::decode_u64_into(out, e, x, n))
        })?,
        FieldValues::Bool(v) => {
            picked.append(v, blocks.decode(t, b, |e, x| bools::decode(e, x, n))?)
        }
        FieldValues::Str(v) => picked.for_each(
            &blocks.decode(t, b, |e, x| strings::decode(e, x, n))?,
            |s| v.push(s.as_deref()),
        ),
    }
    Ok(())
}

impl Segment {
    pub(crate) fn blocks(&self) -> Blocks<'_> {
        Blocks {
            file: &self.bytes,
            path: &self.path,
        }
    }

    /// Tables matching the request's tenant, measurement and time range.
    fn candidate_tables<'s>(
        &'s self,
        req: &'s ScanRequest,
    ) -> impl Iterator<Item = &'s Table> + 's {
        let dirs = match &req.tenant {
            Some(t) => match self.footer.tenants.binary_search_by(|d| d.tenant.cmp(t)) {
                Ok(i) => self.footer.tenants.get(i..=i).unwrap_or_default(),
                Err(_) => &[],
            },
            None => &self.footer.tenants[..],
        };
        dirs.iter()
            .flat_map(|d| self.footer.tables.get(d.tables.clone()).unwrap_or_default())
            .filter(move |t| {
                req.measurement
                    .as_ref()
                    .is_none_or(|m| **m == *t.info.measurement)
            })
            .filter(move |t| overlaps(req, t.info.min_time, t.info.max_time))
    }

    pub(crate) fn scan_impl(&self, req: &ScanRequest) -> Result<Vec<ColumnBatch>> {
        let mut out = Vec::new();
        for table in self.candidate_tables(req) {
            let mut ts = TableScan::new(self, table);
            if let Some(batch) = scan_table(&mut ts, req)? {
                out.push(batch);
            }
        }
        Ok(out)
    }

    pub(crate) fn count_impl(&self, req: &ScanRequest) -> Result<u64> {
        let mut total = 0;
        for table in self.candidate_tables(req) {
            let info = &table.info;
            if req.predicates.is_empty() && inside(req, info.min_time, info.max_time) {
                total += info.n_rows;
                continue;
            }
            let mut ts = TableScan::new(self, table);
            let sel = ts.selection(req)?;
            for rg in table
                .row_groups
                .iter()
                .filter(|rg| overlaps(req, rg.min_time, rg.max_time))
            {
                total += ts.rows_in(rg, sel.as_ref(), req, false)?.0.len() as u64;
            }
        }
        Ok(total)
    }

    pub(crate) fn for_each_event_key_impl(
        &self,
        tenant: Option<&TenantId>,
        mut f: impl FnMut(&TenantId, IdKey<'_>),
    ) -> Result<()> {
        let req = ScanRequest {
            tenant: tenant.cloned(),
            ..ScanRequest::default()
        };
        let blocks = self.blocks();
        for table in self.candidate_tables(&req).filter(|t| t.info.has_event_ids) {
            let tenant = &table.info.tenant;
            for rg in &table.row_groups {
                if let Some(block) = &rg.event_ids {
                    blocks.decode(table, block, |e, x| {
                        event_id::for_each_key(e, x, rg.n_rows as usize, |id| f(tenant, id))
                    })?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn catalog_impl(&self, req: &CatalogRequest, catalog: &mut Catalog) -> Result<()> {
        let tenant_only = ScanRequest {
            tenant: req.tenant.clone(),
            ..ScanRequest::default()
        };
        for table in self.candidate_tables(&tenant_only) {
            let t = &table.info;
            let Some(info) = catalog.table(req, &t.tenant, &t.measurement) else {
                continue;
            };
            let mut ts = TableScan::new(self, table);
            for (key_idx, key) in t.tag_keys.iter().enumerate() {
                let values = match req.wants_values(key) {
                    true => ts.tag_dict(key_idx)?,
                    false => Vec::new(),
                };
                info.add_tag(key, values.iter().map(String::as_str));
            }
            for (key, ty) in t.fields.iter() {
                info.add_field(key, *ty);
            }
            if t.has_event_ids {
                info.add_event_ids();
            }
        }
        Ok(())
    }

    pub(crate) fn verify_impl(&self) -> Vec<Corruption> {
        let blocks = self.blocks();
        self.footer
            .tables
            .iter()
            .flat_map(|t| &t.blocks)
            .filter_map(|b| blocks.read(b).err())
            .collect()
    }
}

fn scan_table(ts: &mut TableScan<'_>, req: &ScanRequest) -> Result<Option<ColumnBatch>> {
    let table = ts.table;
    let info = &table.info;
    let sel = ts.selection(req)?;
    if sel.as_ref().is_some_and(RoaringBitmap::is_empty) {
        return Ok(None);
    }
    let wanted_fields: Vec<(usize, &(String, FieldType))> = info
        .fields
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| req.wants(k) && !req.wants_presence_only(k))
        .collect();
    let presence_fields: Vec<(usize, &(String, FieldType))> = info
        .fields
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| req.wants(k) && req.wants_presence_only(k))
        .collect();
    let want_ids = info.has_event_ids && req.wants("event_id");
    let groups: Vec<&RowGroup> = table
        .row_groups
        .iter()
        .filter(|rg| overlaps(req, rg.min_time, rg.max_time))
        .collect();
    // Room for every row that can be kept, so that columns grow without copies.
    let in_groups: u64 = groups.iter().map(|rg| u64::from(rg.n_rows)).sum();
    let most = sel.as_ref().map_or(in_groups, |s| s.len().min(in_groups)) as usize;
    let mut batch = ColumnBatch {
        tenant: info.tenant.clone(),
        measurement: info.measurement.to_string(),
        timestamps: Vec::with_capacity(most),
        fields: wanted_fields
            .iter()
            .map(|(_, (k, ty))| FieldColumn {
                key: k.clone(),
                values: FieldValues::with_capacity(*ty, most),
            })
            .collect(),
        event_ids: want_ids.then(StrColumn::default),
        presence: presence_fields
            .iter()
            .map(|(_, (k, ty))| PresenceColumn {
                key: k.clone(),
                ty: *ty,
                present: Vec::with_capacity(most),
            })
            .collect(),
        ..ColumnBatch::default()
    };
    // The table rows kept, for the tag columns only: a scan without tags skips the list.
    let wants_tags = info.tag_keys.iter().any(|k| req.wants(k));
    let mut rows: Vec<u32> = Vec::with_capacity(if wants_tags { most } else { 0 });
    for rg in groups {
        let (rg_rows, rg_ts) = ts.rows_in(rg, sel.as_ref(), req, true)?;
        if rg_rows.is_empty() {
            continue;
        }
        let n = rg.n_rows as usize;
        let picked = Picked::of(rg, &rg_rows);
        picked.append(&mut batch.timestamps, rg_ts.unwrap_or_default());
        for (col, (field_idx, _)) in batch.fields.iter_mut().zip(&wanted_fields) {
            let block = rg
                .fields
                .get(*field_idx)
                .ok_or_else(|| missing(ts.blocks.path))?;
            extend_field(&mut col.values, &ts.blocks, table, block, n, &picked)?;
        }
        for (col, (field_idx, _)) in batch.presence.iter_mut().zip(&presence_fields) {
            let block = rg
                .fields
                .get(*field_idx)
                .ok_or_else(|| missing(ts.blocks.path))?;
            match column::presence_of_encoding(block.enc) {
                Some(every) => col.present.resize(col.present.len() + rg_rows.len(), every),
                None => picked.append(
                    &mut col.present,
                    ts.blocks
                        .decode(table, block, |e, x| column::present_rows(e, x, n))?,
                ),
            }
        }
        if let (Some(out), Some(block)) = (batch.event_ids.as_mut(), rg.event_ids.as_ref()) {
            picked.for_each(
                &ts.blocks
                    .decode(table, block, |e, x| event_id::decode(e, x, n))?,
                |id| out.push(id.as_deref()),
            );
        }
        if wants_tags {
            rows.extend(rg_rows);
        }
    }
    if batch.timestamps.is_empty() {
        return Ok(None);
    }
    for (k, key) in info.tag_keys.iter().enumerate() {
        if !req.wants(key) {
            continue;
        }
        batch.tags.push(ts.take_tag_column(k, key, &rows)?);
    }
    Ok(Some(batch))
}
