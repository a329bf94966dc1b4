//! The footer: the segment's own description ([`SegmentInfo`]), the segment's tag value
//! table, the tenant directory, and per table its schema, row groups, chunk descriptors and
//! block checksums.
//!
//! To keep small tables cheap (a day holds thousands of tables of a few rows), the footer is
//! varint-coded and stored as one zstd frame; names, schemas and tag values are interned once
//! per file; a chunk's offset is not stored but implied (a tenant's chunks follow each other
//! from the tenant's start, in footer order); row-group boundaries are implied by
//! [`ROW_GROUP_ROWS`]; and a table whose chunks total at most [`PACK_LIMIT`] bytes is one
//! checksummed block instead of one block per chunk.
//!
//! **Invariants** (checked by [`decode`], so the reader can slice without further checks):
//! every chunk lies inside its tenant's byte range, tenant ranges are ascending, disjoint and
//! between the header and the footer; tenants are strictly ascending by name and a tenant's
//! measurements strictly ascending; tag values are strictly ascending; every table has
//! 1..=u32::MAX rows and its row groups' time ranges are ascending and span the table's.
//! Byte layout: storage-format.md, "Segment files", "Footer".

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::column::{invalid as col_invalid, unzigzag, zigzag, zstd_unwrap, zstd_wrap};
use super::header::HEADER_LEN;
use super::{SegmentId, SegmentInfo, TableInfo};
use crate::codec::{ByteReader, PutLe};
use crate::error::CorruptionKind;
use crate::model::limits::MAX_TAG_VALUE_LEN;
use crate::model::{Day, FieldType, SeqNo, TenantId};
use crate::scan::StrColumn;

/// Rows per row group (the last one of a table may be shorter).
///
/// 8192 (a multiple of pco's 256-value batches) is large enough for pco's per-chunk header to
/// be noise next to the data, and small enough that a narrow time range decodes at most a few
/// thousand rows beyond what it needs.
pub(crate) const ROW_GROUP_ROWS: u32 = 8192;

/// A table whose chunks total at most this many bytes is stored as one block with one CRC.
///
/// One page: a read of any column of such a table touches the whole page anyway, so separate
/// checksums would buy nothing but 4 bytes each, and most tables of a day are this small.
pub(crate) const PACK_LIMIT: u64 = 4096;

/// Largest decompressed footer a reader accepts (a bound for damaged length fields).
pub(crate) const MAX_FOOTER_RAW: usize = 1 << 30;

/// A checksummed byte range: a whole small table, or one chunk of a larger one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRef {
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

/// One encoded column piece: a table's tag chunk, or one column of one row group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef {
    pub offset: u64,
    pub len: u32,
    /// Encoding id (see `column::enc`).
    pub enc: u8,
    /// Index of the block holding it in [`Table::blocks`].
    pub block: usize,
}

/// A run of at most [`ROW_GROUP_ROWS`] rows of a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowGroup {
    /// Index of its first row in the table.
    pub first_row: u32,
    pub n_rows: u32,
    pub min_time: i64,
    pub max_time: i64,
    pub timestamps: ChunkRef,
    /// One per field of the schema, in schema order.
    pub fields: Vec<ChunkRef>,
    /// Present when the schema has event ids.
    pub event_ids: Option<ChunkRef>,
}

/// One table: its public description, its tag chunk, row groups and blocks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    pub info: TableInfo,
    /// Dictionaries and postings of every tag key; absent when the schema has no tags.
    pub tags: Option<ChunkRef>,
    pub row_groups: Vec<RowGroup>,
    /// The checksummed blocks covering the table's chunks, in file order.
    pub blocks: Vec<BlockRef>,
}

impl Table {
    /// Every chunk, in file order: the tag chunk, then per row group the timestamps, the
    /// fields in schema order and the event ids.
    pub fn chunks_mut(&mut self) -> impl Iterator<Item = &mut ChunkRef> {
        self.tags
            .iter_mut()
            .chain(self.row_groups.iter_mut().flat_map(|rg| {
                std::iter::once(&mut rg.timestamps)
                    .chain(rg.fields.iter_mut())
                    .chain(rg.event_ids.iter_mut())
            }))
    }
}

/// A tenant's entry in the directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TenantDir {
    pub tenant: TenantId,
    /// Its bytes in the file.
    pub range: Range<u64>,
    /// Its tables, as indexes into [`Footer::tables`].
    pub tables: Range<usize>,
}

/// The decoded footer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Footer {
    pub info: SegmentInfo,
    /// Per tag key (ascending), every value of that key in the segment, strictly ascending;
    /// tag chunks refer to them by index. Held in one buffer per key rather than one `String`
    /// each: every open segment keeps them, and a `String` costs 24 bytes plus an allocation,
    /// several times a short value (a user id) itself.
    pub tag_values: Vec<(String, StrColumn)>,
    pub tenants: Vec<TenantDir>,
    pub tables: Vec<Table>,
}

/// The schema part of a table, interned in the footer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Schema {
    measurement: u32,
    tags: Vec<u32>,
    fields: Vec<(u32, u8)>,
    has_event_ids: bool,
}

/// Row groups of a table of `n_rows` rows.
pub(crate) fn n_row_groups(n_rows: u64) -> u64 {
    n_rows.div_ceil(u64::from(ROW_GROUP_ROWS))
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_varint(s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends sorted strings front-coded: shared prefix length, suffix length, suffix.
pub(crate) fn put_front_coded<'a>(
    out: &mut Vec<u8>,
    values: impl ExactSizeIterator<Item = &'a str>,
) {
    out.put_varint(values.len() as u64);
    let mut prev: &[u8] = &[];
    for value in values {
        let v = value.as_bytes();
        let shared = prev.iter().zip(v).take_while(|(a, b)| a == b).count();
        let suffix = v.get(shared..).unwrap_or_default();
        out.put_varint(shared as u64);
        out.put_varint(suffix.len() as u64);
        out.extend_from_slice(suffix);
        prev = v;
    }
}

/// Reads what [`put_front_coded`] wrote, requiring strictly ascending values.
pub(crate) fn get_front_coded(
    r: &mut ByteReader<'_>,
    max_len: usize,
) -> Result<StrColumn, CorruptionKind> {
    let n = count(r)?;
    let mut out = StrColumn::new();
    let mut value = Vec::new();
    for i in 0..n {
        let shared = r.varint()?;
        let suffix_len = r.varint()?;
        let prev = i
            .checked_sub(1)
            .and_then(|p| out.get(p))
            .unwrap_or_default();
        let prefix = usize::try_from(shared)
            .ok()
            .and_then(|s| prev.as_bytes().get(..s));
        let prefix =
            prefix.ok_or_else(|| col_invalid("front-coded prefix longer than its predecessor"))?;
        if suffix_len > max_len as u64 {
            return Err(col_invalid("front-coded value exceeds the length limit"));
        }
        value.clear();
        value.extend_from_slice(prefix);
        value.extend_from_slice(r.take(suffix_len as usize)?);
        let text = std::str::from_utf8(&value).map_err(|_| col_invalid("value is not UTF-8"))?;
        if i > 0 && prev >= text {
            return Err(col_invalid("front-coded values are not strictly ascending"));
        }
        out.push(Some(text));
    }
    Ok(out)
}

fn put_chunk(out: &mut Vec<u8>, c: &ChunkRef) {
    out.put_varint(u64::from(c.len));
    out.put_u8(c.enc);
}

/// Encodes the footer (zstd-wrapped); `None` if zstd fails. The caller guarantees the
/// invariants in the module docs.
pub(crate) fn encode(f: &Footer) -> Option<Vec<u8>> {
    let mut names = Interner::default();
    let mut schema_ids: HashMap<Schema, u32> = HashMap::new();
    let mut schemas: Vec<Schema> = Vec::new();
    let mut table_schema = Vec::with_capacity(f.tables.len());
    for t in &f.tables {
        let s = Schema {
            measurement: names.id(&t.info.measurement),
            tags: t.info.tag_keys.iter().map(|k| names.id(k)).collect(),
            fields: t
                .info
                .fields
                .iter()
                .map(|(k, ty)| (names.id(k), ty.code()))
                .collect(),
            has_event_ids: t.info.has_event_ids,
        };
        let next = schemas.len() as u32;
        let id = *schema_ids.entry(s.clone()).or_insert_with(|| {
            schemas.push(s);
            next
        });
        table_schema.push(id);
    }

    for (key, _) in &f.tag_values {
        names.id(key);
    }
    let mut out = Vec::new();
    let i = &f.info;
    for v in [
        i.id.0,
        u64::from(i.shard),
        zigzag(i.day.0),
        i.seq_min.0,
        i.seq_max.0,
        i.commit,
    ] {
        out.put_varint(v);
    }
    out.put_varint(u64::from(i.commit_parts));
    out.put_varint(i.replaces.len() as u64);
    for r in &i.replaces {
        out.put_varint(r.0);
    }
    out.put_varint(names.names.len() as u64);
    for n in &names.names {
        put_str(&mut out, n);
    }
    out.put_varint(f.tag_values.len() as u64);
    for (key, values) in &f.tag_values {
        out.put_varint(u64::from(names.id(key)));
        put_front_coded(&mut out, values.iter().map(Option::unwrap_or_default));
    }
    out.put_varint(schemas.len() as u64);
    for s in &schemas {
        out.put_varint(u64::from(s.measurement));
        out.put_varint(s.tags.len() as u64);
        for &t in &s.tags {
            out.put_varint(u64::from(t));
        }
        out.put_varint(s.fields.len() as u64);
        for &(k, ty) in &s.fields {
            out.put_varint(u64::from(k));
            out.put_u8(ty);
        }
        out.put_u8(u8::from(s.has_event_ids));
    }
    let day_start = i.day.start();
    out.put_varint(f.tenants.len() as u64);
    for d in &f.tenants {
        put_str(&mut out, d.tenant.as_str());
        out.put_varint(d.range.start);
        out.put_varint(d.range.end - d.range.start);
        out.put_varint(d.tables.len() as u64);
        let tables = f.tables.iter().zip(&table_schema).skip(d.tables.start);
        for (t, &schema) in tables.take(d.tables.len()) {
            out.put_varint(u64::from(schema));
            out.put_varint(t.info.n_rows);
            out.put_varint(zigzag(t.info.min_time.wrapping_sub(day_start)));
            out.put_varint(t.info.max_time.wrapping_sub(t.info.min_time) as u64);
            if t.row_groups.len() > 1 {
                let mut prev = t.info.min_time;
                for rg in &t.row_groups {
                    out.put_varint(rg.min_time.wrapping_sub(prev) as u64);
                    out.put_varint(rg.max_time.wrapping_sub(rg.min_time) as u64);
                    prev = rg.max_time;
                }
            }
            if let Some(c) = &t.tags {
                put_chunk(&mut out, c);
            }
            for rg in &t.row_groups {
                put_chunk(&mut out, &rg.timestamps);
                for c in &rg.fields {
                    put_chunk(&mut out, c);
                }
                if let Some(c) = &rg.event_ids {
                    put_chunk(&mut out, c);
                }
            }
            for b in &t.blocks {
                out.put_u32(b.crc);
            }
        }
    }
    zstd_wrap(&out)
}

/// Reads a count of items that take at least one byte each.
fn count(r: &mut ByteReader<'_>) -> Result<usize, CorruptionKind> {
    let n = r.varint()?;
    if n > r.remaining() as u64 {
        return Err(invalid(format!(
            "count {n} exceeds the {} bytes left",
            r.remaining()
        )));
    }
    Ok(n as usize)
}

fn invalid(why: impl Into<String>) -> CorruptionKind {
    CorruptionKind::Invalid(format!("footer: {}", why.into()))
}

fn get_str(r: &mut ByteReader<'_>) -> Result<String, CorruptionKind> {
    let n = count(r)?;
    let b = r.take(n)?;
    String::from_utf8(b.to_vec()).map_err(|_| invalid("name is not UTF-8"))
}

fn u32_of(v: u64, what: &str) -> Result<u32, CorruptionKind> {
    u32::try_from(v).map_err(|_| invalid(format!("{what} {v} is out of range")))
}

/// Lays chunks one after the other from a tenant's start, never past its end.
struct ChunkCursor {
    next: u64,
    end: u64,
}

impl ChunkCursor {
    fn read(&mut self, r: &mut ByteReader<'_>) -> Result<ChunkRef, CorruptionKind> {
        let len = u32_of(r.varint()?, "chunk length")?;
        let enc = r.u8()?;
        let offset = self.next;
        self.next = offset + u64::from(len);
        if self.next > self.end {
            return Err(invalid(format!(
                "chunk at {offset} of {len} bytes passes its tenant's end {}",
                self.end
            )));
        }
        Ok(ChunkRef {
            offset,
            len,
            enc,
            block: 0,
        })
    }
}

type SchemaDef = (Arc<str>, Arc<[String]>, Arc<[(String, FieldType)]>, bool);

/// Decodes and checks a footer; `data_end` is the footer's own offset (chunks end before it).
pub(crate) fn decode(stored: &[u8], data_end: u64) -> Result<Footer, CorruptionKind> {
    let raw = zstd_unwrap(stored, MAX_FOOTER_RAW)?;
    let mut r = ByteReader::new(&raw);
    let id = SegmentId(r.varint()?);
    let shard = u32_of(r.varint()?, "shard")?;
    let day = Day(unzigzag(r.varint()?));
    let (seq_min, seq_max, commit) = (SeqNo(r.varint()?), SeqNo(r.varint()?), r.varint()?);
    let commit_parts = u32_of(r.varint()?, "commit parts")?;
    let n_replaces = count(&mut r)?;
    let replaces = (0..n_replaces)
        .map(|_| r.varint().map(SegmentId))
        .collect::<Result<_, _>>()?;
    let info = SegmentInfo {
        id,
        shard,
        day,
        seq_min,
        seq_max,
        commit,
        commit_parts,
        replaces,
    };

    let n_names = count(&mut r)?;
    let names = (0..n_names)
        .map(|_| get_str(&mut r))
        .collect::<Result<Vec<_>, _>>()?;
    let name = |r: &mut ByteReader<'_>| -> Result<String, CorruptionKind> {
        let i = r.varint()?;
        names
            .get(i as usize)
            .cloned()
            .ok_or_else(|| invalid(format!("name index {i} out of range")))
    };
    let n_keys = count(&mut r)?;
    let mut tag_values: Vec<(String, StrColumn)> = Vec::with_capacity(n_keys);
    for _ in 0..n_keys {
        let key = name(&mut r)?;
        if tag_values.last().is_some_and(|(prev, _)| *prev >= key) {
            return Err(invalid("tag value tables are not ascending by key"));
        }
        let mut values = get_front_coded(&mut r, MAX_TAG_VALUE_LEN)?;
        values.shrink_to_fit();
        tag_values.push((key, values));
    }
    let n_schemas = count(&mut r)?;
    let mut schemas: Vec<SchemaDef> = Vec::with_capacity(n_schemas);
    for _ in 0..n_schemas {
        let measurement = name(&mut r)?;
        let n_tags = count(&mut r)?;
        let tags = (0..n_tags)
            .map(|_| name(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let n_fields = count(&mut r)?;
        let mut fields = Vec::with_capacity(n_fields);
        for _ in 0..n_fields {
            let key = name(&mut r)?;
            let code = r.u8()?;
            let ty = FieldType::from_code(code)
                .ok_or_else(|| invalid(format!("unknown field type {code}")))?;
            fields.push((key, ty));
        }
        let has_event_ids = match r.u8()? {
            0 => false,
            1 => true,
            other => return Err(invalid(format!("event id flag {other}"))),
        };
        schemas.push((
            measurement.into(),
            tags.into(),
            fields.into(),
            has_event_ids,
        ));
    }

    let day_start = day.start();
    let n_tenants = count(&mut r)?;
    let mut tenants: Vec<TenantDir> = Vec::with_capacity(n_tenants);
    let mut tables: Vec<Table> = Vec::new();
    let mut prev_end = HEADER_LEN as u64;
    for _ in 0..n_tenants {
        let tenant = TenantId::new(&get_str(&mut r)?);
        if tenants.last().is_some_and(|p| p.tenant >= tenant) {
            return Err(invalid("tenants are not strictly ascending"));
        }
        let start = r.varint()?;
        let len = r.varint()?;
        let end = start
            .checked_add(len)
            .filter(|&e| start >= prev_end && e <= data_end);
        let end = end.ok_or_else(|| {
            invalid(format!(
                "tenant {tenant} range {start}+{len} is outside {prev_end}..{data_end}"
            ))
        })?;
        prev_end = end;
        let mut cursor = ChunkCursor { next: start, end };
        let n_tables = count(&mut r)?;
        let first_table = tables.len();
        for _ in 0..n_tables {
            let schema_id = r.varint()?;
            let schema = schemas.get(schema_id as usize).cloned();
            let (measurement, tag_keys, fields, has_event_ids) =
                schema.ok_or_else(|| invalid(format!("schema index {schema_id} out of range")))?;
            let prev_table = tables.get(first_table..).and_then(<[Table]>::last);
            if prev_table.is_some_and(|p| p.info.measurement >= measurement) {
                return Err(invalid(
                    "a tenant's measurements are not strictly ascending",
                ));
            }
            let info = TableInfo {
                tenant: tenant.clone(),
                measurement,
                n_rows: r.varint()?,
                min_time: day_start.wrapping_add(unzigzag(r.varint()?)),
                max_time: 0,
                tag_keys,
                fields,
                has_event_ids,
            };
            let max_time = info.min_time.wrapping_add(r.varint()? as i64);
            let info = TableInfo { max_time, ..info };
            tables.push(decode_table(&mut r, &mut cursor, info)?);
        }
        if cursor.next != end {
            return Err(invalid(format!(
                "tenant {tenant}: chunks end at {} but its range at {end}",
                cursor.next
            )));
        }
        tenants.push(TenantDir {
            tenant,
            range: start..end,
            tables: first_table..tables.len(),
        });
    }
    if !r.is_empty() {
        return Err(invalid("trailing bytes"));
    }
    // Every open segment keeps its footer: without the spare capacity the vectors grew with.
    tables.shrink_to_fit();
    Ok(Footer {
        info,
        tag_values,
        tenants,
        tables,
    })
}

fn decode_table(
    r: &mut ByteReader<'_>,
    cursor: &mut ChunkCursor,
    info: TableInfo,
) -> Result<Table, CorruptionKind> {
    let (n_rows, min_time, max_time) = (info.n_rows, info.min_time, info.max_time);
    if n_rows == 0 || n_rows > u64::from(u32::MAX) || max_time < min_time {
        return Err(invalid(format!(
            "table of {n_rows} rows from {min_time} to {max_time}"
        )));
    }
    let n_rg = n_row_groups(n_rows);
    // Every row group has at least one descriptor byte; refuse counts the footer cannot hold.
    if n_rg > r.remaining() as u64 {
        return Err(CorruptionKind::Truncated);
    }
    let mut ranges = Vec::with_capacity(n_rg as usize);
    if n_rg == 1 {
        ranges.push((min_time, max_time));
    } else {
        let mut prev = min_time;
        for _ in 0..n_rg {
            let (gap, span) = (r.varint()?, r.varint()?);
            let lo = prev.checked_add_unsigned(gap);
            let range = lo.and_then(|lo| Some((lo, lo.checked_add_unsigned(span)?)));
            let range = range.filter(|&(_, hi)| hi <= max_time);
            let range = range.ok_or_else(|| invalid("row group time range outside its table's"))?;
            ranges.push(range);
            prev = range.1;
        }
        if ranges.first().map(|g| g.0) != Some(min_time)
            || ranges.last().map(|g| g.1) != Some(max_time)
        {
            return Err(invalid("row group time ranges do not span their table's"));
        }
    }
    let start = cursor.next;
    let tags = if info.tag_keys.is_empty() {
        None
    } else {
        Some(cursor.read(r)?)
    };
    let mut row_groups = Vec::with_capacity(ranges.len());
    for (g, (lo, hi)) in ranges.into_iter().enumerate() {
        let first_row = g as u64 * u64::from(ROW_GROUP_ROWS);
        let rows = (n_rows - first_row).min(u64::from(ROW_GROUP_ROWS));
        let timestamps = cursor.read(r)?;
        let fields = (0..info.fields.len())
            .map(|_| cursor.read(r))
            .collect::<Result<Vec<_>, _>>()?;
        let event_ids = if info.has_event_ids {
            Some(cursor.read(r)?)
        } else {
            None
        };
        row_groups.push(RowGroup {
            first_row: first_row as u32,
            n_rows: rows as u32,
            min_time: lo,
            max_time: hi,
            timestamps,
            fields,
            event_ids,
        });
    }
    let mut table = Table {
        info,
        tags,
        row_groups,
        blocks: Vec::new(),
    };
    let total = cursor.next - start;
    if total <= PACK_LIMIT {
        table.blocks.push(BlockRef {
            offset: start,
            len: total as u32,
            crc: r.u32()?,
        });
    } else {
        let mut blocks = Vec::new();
        for chunk in table.chunks_mut() {
            chunk.block = blocks.len();
            blocks.push(BlockRef {
                offset: chunk.offset,
                len: chunk.len,
                crc: 0,
            });
        }
        for b in &mut blocks {
            b.crc = r.u32()?;
        }
        table.blocks = blocks;
    }
    Ok(table)
}
