//! The footer: the segment's own description ([`SegmentInfo`]), the tenant directory, and per
//! table its schema, row groups and block descriptors.
//!
//! To keep small tables cheap (a day holds thousands of tables of a few rows), the footer is
//! varint-coded, names and schemas are interned once per file, a block's offset is not stored
//! but implied (a tenant's blocks follow each other from the tenant's start, in footer order),
//! and row-group boundaries are implied by [`ROW_GROUP_ROWS`].
//!
//! **Invariants** (checked by [`decode`], so the reader can index without further checks):
//! every block lies inside its tenant's byte range, tenant ranges are ascending, disjoint and
//! between the header and the footer; tenants are strictly ascending by name and a tenant's
//! measurements strictly ascending; every table has 1..=u32::MAX rows, and its row groups'
//! time ranges are ascending and inside the table's. Byte layout: storage-format.md, "Segment
//! footer".

use std::collections::HashMap;
use std::ops::Range;

use super::header::HEADER_LEN;
use super::{SegmentId, SegmentInfo, TableInfo};
use crate::codec::{ByteReader, PutLe};
use crate::error::CorruptionKind;
use crate::model::{Day, FieldType, SeqNo, TenantId};

/// Rows per row group (the last one of a table may be shorter).
///
/// 8192 (a multiple of pco's 256-value batches) is large enough for pco's per-block header to
/// be noise next to the data, and small enough that a narrow time range decodes at most a few
/// thousand rows beyond what it needs.
pub(crate) const ROW_GROUP_ROWS: u32 = 8192;

/// Where a block is, how long it is, its CRC32C and encoding id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRef {
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
    pub enc: u8,
}

/// A run of at most [`ROW_GROUP_ROWS`] rows of a table, with its column blocks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowGroup {
    /// Index of its first row in the table.
    pub first_row: u32,
    pub n_rows: u32,
    pub min_time: i64,
    pub max_time: i64,
    pub timestamps: BlockRef,
    /// One per field of the schema, in schema order.
    pub fields: Vec<BlockRef>,
    /// Present when the schema has event ids.
    pub event_ids: Option<BlockRef>,
}

/// One table: its public description, tag blocks (one per tag key) and row groups.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    pub info: TableInfo,
    pub tags: Vec<BlockRef>,
    pub row_groups: Vec<RowGroup>,
}

impl Table {
    /// Every block of the table, in file order.
    pub fn blocks(&self) -> impl Iterator<Item = &BlockRef> {
        self.tags
            .iter()
            .chain(self.row_groups.iter().flat_map(|rg| {
                std::iter::once(&rg.timestamps)
                    .chain(&rg.fields)
                    .chain(&rg.event_ids)
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

fn put_block(out: &mut Vec<u8>, b: &BlockRef) {
    out.put_varint(u64::from(b.len));
    out.put_u32(b.crc);
    out.put_u8(b.enc);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_varint(s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn zz(v: i64) -> u64 {
    super::column::zigzag(v)
}

/// Encodes the footer. The caller guarantees the invariants listed in the module docs.
pub(crate) fn encode(f: &Footer) -> Vec<u8> {
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

    let mut out = Vec::new();
    let i = &f.info;
    for v in [
        i.id.0,
        u64::from(i.shard),
        zz(i.day.0),
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
        for (t, &schema) in f
            .tables
            .iter()
            .zip(&table_schema)
            .skip(d.tables.start)
            .take(d.tables.len())
        {
            out.put_varint(u64::from(schema));
            out.put_varint(t.info.n_rows);
            out.put_varint(zz(t.info.min_time.wrapping_sub(day_start)));
            out.put_varint(t.info.max_time.wrapping_sub(t.info.min_time) as u64);
            for b in &t.tags {
                put_block(&mut out, b);
            }
            let mut prev = t.info.min_time;
            for rg in &t.row_groups {
                if t.row_groups.len() > 1 {
                    out.put_varint(rg.min_time.wrapping_sub(prev) as u64);
                    out.put_varint(rg.max_time.wrapping_sub(rg.min_time) as u64);
                    prev = rg.max_time;
                }
                put_block(&mut out, &rg.timestamps);
                for b in &rg.fields {
                    put_block(&mut out, b);
                }
                if let Some(b) = &rg.event_ids {
                    put_block(&mut out, b);
                }
            }
        }
    }
    out
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

/// Reads block descriptors one after the other from `cursor`, never past `end`.
struct BlockCursor {
    next: u64,
    end: u64,
}

impl BlockCursor {
    fn read(&mut self, r: &mut ByteReader<'_>) -> Result<BlockRef, CorruptionKind> {
        let len = u32_of(r.varint()?, "block length")?;
        let crc = r.u32()?;
        let enc = r.u8()?;
        let offset = self.next;
        self.next = offset + u64::from(len);
        if self.next > self.end {
            return Err(invalid(format!(
                "block at {offset} of {len} bytes passes its tenant's end {}",
                self.end
            )));
        }
        Ok(BlockRef {
            offset,
            len,
            crc,
            enc,
        })
    }
}

/// Decodes and checks a footer; `data_end` is the footer's own offset (blocks end before it).
pub(crate) fn decode(bytes: &[u8], data_end: u64) -> Result<Footer, CorruptionKind> {
    let mut r = ByteReader::new(bytes);
    let id = SegmentId(r.varint()?);
    let shard = u32_of(r.varint()?, "shard")?;
    let day = Day(super::column::unzigzag(r.varint()?));
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
    let n_schemas = count(&mut r)?;
    let mut schemas: Vec<(String, Vec<String>, Vec<(String, FieldType)>, bool)> =
        Vec::with_capacity(n_schemas);
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
        schemas.push((measurement, tags, fields, has_event_ids));
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
        let mut cursor = BlockCursor { next: start, end };
        let n_tables = count(&mut r)?;
        let first_table = tables.len();
        for _ in 0..n_tables {
            let schema_id = r.varint()?;
            let (measurement, tag_keys, fields, has_event_ids) = schemas
                .get(schema_id as usize)
                .cloned()
                .ok_or_else(|| invalid(format!("schema index {schema_id} out of range")))?;
            if tables
                .get(first_table..)
                .and_then(<[Table]>::last)
                .is_some_and(|p| p.info.measurement >= measurement)
            {
                return Err(invalid(
                    "a tenant's measurements are not strictly ascending",
                ));
            }
            let n_rows = r.varint()?;
            if n_rows == 0 || n_rows > u64::from(u32::MAX) {
                return Err(invalid(format!("table of {n_rows} rows")));
            }
            let min_time = day_start.wrapping_add(super::column::unzigzag(r.varint()?));
            let max_time = min_time.wrapping_add(r.varint()? as i64);
            if max_time < min_time {
                return Err(invalid("table time range is inverted"));
            }
            let tags = (0..tag_keys.len())
                .map(|_| cursor.read(&mut r))
                .collect::<Result<Vec<_>, _>>()?;
            let n_rg = n_row_groups(n_rows);
            // Every row group has at least one descriptor byte; refuse counts the footer cannot hold.
            if n_rg > r.remaining() as u64 {
                return Err(CorruptionKind::Truncated);
            }
            let mut row_groups = Vec::with_capacity(n_rg as usize);
            let mut prev = min_time;
            for g in 0..n_rg {
                let first_row = g * u64::from(ROW_GROUP_ROWS);
                let rows = (n_rows - first_row).min(u64::from(ROW_GROUP_ROWS));
                let (rg_min, rg_max) = if n_rg > 1 {
                    let (gap, span) = (r.varint()?, r.varint()?);
                    let lo = prev.checked_add_unsigned(gap);
                    let hi = lo.and_then(|lo| lo.checked_add_unsigned(span).map(|hi| (lo, hi)));
                    hi.filter(|&(_, hi)| hi <= max_time)
                        .ok_or_else(|| invalid("row group time range outside its table's"))?
                } else {
                    (min_time, max_time)
                };
                prev = rg_max;
                let timestamps = cursor.read(&mut r)?;
                let field_blocks = (0..fields.len())
                    .map(|_| cursor.read(&mut r))
                    .collect::<Result<Vec<_>, _>>()?;
                let event_ids = if has_event_ids {
                    Some(cursor.read(&mut r)?)
                } else {
                    None
                };
                row_groups.push(RowGroup {
                    first_row: first_row as u32,
                    n_rows: rows as u32,
                    min_time: rg_min,
                    max_time: rg_max,
                    timestamps,
                    fields: field_blocks,
                    event_ids,
                });
            }
            if row_groups.first().is_some_and(|g| g.min_time != min_time)
                || row_groups.last().is_some_and(|g| g.max_time != max_time)
            {
                return Err(invalid("row group time ranges do not span their table's"));
            }
            let info = TableInfo {
                tenant: tenant.clone(),
                measurement,
                n_rows,
                min_time,
                max_time,
                tag_keys,
                fields,
                has_event_ids,
            };
            tables.push(Table {
                info,
                tags,
                row_groups,
            });
        }
        if cursor.next != end {
            return Err(invalid(format!(
                "tenant {tenant}: blocks end at {} but its range at {end}",
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
    Ok(Footer {
        info,
        tenants,
        tables,
    })
}
