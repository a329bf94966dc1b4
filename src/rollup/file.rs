//! Rollup files: the persisted minute buckets of one flush (every meter, for the rows of the
//! segments that flush wrote) or of one backfill (one meter, for the segments that existed
//! when it was defined). Immutable and self-describing, like segments; byte layout in
//! storage-format.md, "Rollup files".

use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::delta::Cells;
use super::store::Dict;
use super::{Acc, Granularity, MeterId};
use crate::codec::{ByteReader, PutLe, crc32c};
use crate::error::{Corruption, CorruptionKind};
use crate::segment::SegmentId;
use crate::segment::column::{zstd_unwrap, zstd_wrap};

const MAGIC: [u8; 8] = *b"MTRROLLU";
const VERSION: u16 = 1;
/// Version 2 adds a flags byte after the version; it is written only for deductions, so
/// that every other file stays readable by version-1 readers.
const VERSION_FLAGS: u16 = 2;
/// Flag: the file's buckets are subtracted, not added (a deleted user's contributions).
const FLAG_DEDUCTS: u8 = 1;
/// Largest decompressed body a reader accepts.
const MAX_BODY: usize = 1 << 31;

const SHAPE_COUNT: u8 = 0;
const SHAPE_NUMERIC: u8 = 1;
const SHAPE_DISTINCT: u8 = 2;

const UNIT_MINUTE: u8 = 0;
const UNIT_HOUR: u8 = 1;

fn unit_code(unit: Granularity) -> u8 {
    match unit {
        Granularity::Minute => UNIT_MINUTE,
        _ => UNIT_HOUR,
    }
}

/// The file name of rollup file `id` in `dir`.
pub fn path_in(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.rollup"))
}

/// The id in a rollup file name, if it is one.
pub fn parse_name(name: &str) -> Option<u64> {
    name.strip_suffix(".rollup")?.parse().ok()
}

/// A rollup file's content. Distinct values are numbered per tenant within the file
/// (`values`), the bitmaps of its buckets refer to those numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RollupFile {
    /// The segments whose rows these buckets hold.
    pub segments: Vec<SegmentId>,
    /// The defined meters the file covers for those segments (built-in meters are always
    /// covered).
    pub meters: Vec<MeterId>,
    /// Buckets by tenant.
    pub tenants: Vec<TenantBuckets>,
    /// The buckets are subtracted from the others' (the contributions of a deleted user,
    /// when deletions subtract from rollups); such a file covers no segment.
    pub deducts: bool,
}

/// What [`RollupFile::header`] reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupHeader {
    /// See [`RollupFile::deducts`].
    pub deducts: bool,
    /// See [`RollupFile::segments`].
    pub segments: Vec<SegmentId>,
    /// See [`RollupFile::meters`].
    pub meters: Vec<MeterId>,
}

/// One tenant's buckets in a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantBuckets {
    /// The tenant.
    pub tenant: String,
    /// Its distinct values, numbered from 0.
    pub values: Vec<String>,
    /// `(meter, bucket size, bucket start, aggregate)`, ascending; the size is a minute, or
    /// an hour for events that were older than the minute horizon when the file was written.
    pub cells: Vec<(MeterId, Granularity, i64, Acc)>,
}

impl TenantBuckets {
    /// The buckets of `cells`, whose distinct values are ids of `dict`, renumbered for a file.
    pub fn from_cells(tenant: &str, cells: &Cells, dict: &Dict) -> TenantBuckets {
        let mut used = RoaringBitmap::new();
        for acc in cells.values() {
            used |= &acc.unique;
        }
        let values = used
            .iter()
            .map(|id| dict.value(id).unwrap_or_default().to_owned())
            .collect();
        let mut sorted: Vec<_> = cells.iter().collect();
        sorted.sort_unstable_by_key(|((meter, unit, start), _)| (*meter, unit_code(*unit), *start));
        let cells = sorted
            .into_iter()
            .map(|(&(meter, unit, start), acc)| {
                let mut acc = acc.clone();
                // rank(id) counts the used ids up to id, so rank - 1 is id's position.
                acc.unique = acc
                    .unique
                    .iter()
                    .map(|id| (used.rank(id) - 1) as u32)
                    .collect();
                (meter, unit, start, acc)
            })
            .collect();
        TenantBuckets {
            tenant: tenant.to_owned(),
            values,
            cells,
        }
    }
}

impl RollupFile {
    /// Encodes the file (storage-format.md, "Rollup files").
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_varint(self.tenants.len() as u64);
        for t in &self.tenants {
            body.put_bytes(t.tenant.as_bytes());
            body.put_varint(t.values.len() as u64);
            for v in &t.values {
                body.put_bytes(v.as_bytes());
            }
            let groups: Vec<&[(MeterId, Granularity, i64, Acc)]> =
                t.cells.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)).collect();
            body.put_varint(groups.len() as u64);
            for group in groups {
                encode_group(&mut body, group);
            }
        }
        let mut out = Vec::with_capacity(body.len() / 2 + 64);
        out.extend_from_slice(&MAGIC);
        if self.deducts {
            out.put_u16(VERSION_FLAGS);
            out.push(FLAG_DEDUCTS);
        } else {
            out.put_u16(VERSION);
        }
        out.put_varint(self.segments.len() as u64);
        for s in &self.segments {
            out.put_u64(s.0);
        }
        out.put_varint(self.meters.len() as u64);
        for m in &self.meters {
            out.put_u64(*m);
        }
        out.put_bytes(&zstd_wrap(&body).unwrap_or_default());
        let crc = crc32c(&out);
        out.put_u32(crc);
        out
    }

    /// A file's header — whether it deducts, the segments and meters it lists — read without
    /// decompressing its body (the checksum is still checked), or `None` for a file
    /// [`RollupFile::decode`] would refuse early. Lets callers skip the files they need not
    /// change or merge.
    pub fn header(bytes: &[u8]) -> Option<RollupHeader> {
        let body_len = bytes.len().checked_sub(4)?;
        if body_len < MAGIC.len() + 2 || bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let stored = u32::from_le_bytes(bytes[body_len..].try_into().ok()?);
        if stored != crc32c(&bytes[..body_len]) {
            return None;
        }
        let mut r = ByteReader::new(&bytes[MAGIC.len()..body_len]);
        let deducts = match r.u16().ok()? {
            VERSION => false,
            VERSION_FLAGS => r.u8().ok()? == FLAG_DEDUCTS,
            _ => return None,
        };
        let n = bounded(&mut r, 8).ok()?;
        let segments = (0..n)
            .map(|_| r.u64().ok().map(SegmentId))
            .collect::<Option<_>>()?;
        let n = bounded(&mut r, 8).ok()?;
        let meters = (0..n).map(|_| r.u64().ok()).collect::<Option<_>>()?;
        Some(RollupHeader {
            deducts,
            segments,
            meters,
        })
    }

    /// Decodes a file, checking magic, version, checksum, every count and every id.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<RollupFile, Corruption> {
        let bad = |offset: usize, kind| Corruption::new(path, offset as u64, kind);
        let body_len = bytes
            .len()
            .checked_sub(4)
            .filter(|&n| n >= MAGIC.len() + 2)
            .ok_or_else(|| bad(0, CorruptionKind::Truncated))?;
        if bytes[..MAGIC.len()] != MAGIC {
            return Err(bad(0, CorruptionKind::BadMagic));
        }
        let stored = u32::from_le_bytes(bytes[body_len..].try_into().unwrap_or_default());
        let actual = crc32c(&bytes[..body_len]);
        if stored != actual {
            return Err(bad(
                body_len,
                CorruptionKind::ChecksumMismatch {
                    expected: stored,
                    actual,
                },
            ));
        }
        let mut r = ByteReader::new(&bytes[MAGIC.len()..body_len]);
        let at = |r: &ByteReader<'_>| MAGIC.len() + r.position();
        let header = (|| {
            let version = r.u16()?;
            let deducts = match version {
                VERSION => false,
                VERSION_FLAGS => match r.u8()? {
                    0 => false,
                    FLAG_DEDUCTS => true,
                    other => {
                        return Err(CorruptionKind::Invalid(format!("unknown flags {other:#x}")));
                    }
                },
                _ => return Err(CorruptionKind::UnknownVersion(version)),
            };
            let n = bounded(&mut r, 8)?;
            let segments = (0..n)
                .map(|_| r.u64().map(SegmentId))
                .collect::<Result<_, _>>()?;
            let n = bounded(&mut r, 8)?;
            let meters = (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?;
            let body = zstd_unwrap(r.bytes()?, MAX_BODY)?;
            Ok((deducts, segments, meters, body))
        })();
        let (deducts, segments, meters, body) = header.map_err(|k| bad(at(&r), k))?;
        let mut r = ByteReader::new(&body);
        let tenants = decode_body(&mut r).map_err(|k| {
            bad(
                MAGIC.len(),
                CorruptionKind::Invalid(format!("body at {}: {k}", r.position())),
            )
        })?;
        Ok(RollupFile {
            segments,
            meters,
            tenants,
            deducts,
        })
    }
}

impl RollupFile {
    /// One file holding what `files` hold (which must all add, or all deduct, for the same
    /// meters): their segments, and their buckets merged; minute buckets of the hours that
    /// end by `minute_horizon` become hour buckets (memory keeps only hours that old, so the
    /// file need not either).
    pub fn merge(files: &[RollupFile], minute_horizon: i64) -> RollupFile {
        let mut segments: Vec<SegmentId> = files.iter().flat_map(|f| f.segments.clone()).collect();
        segments.sort_unstable();
        segments.dedup();
        let mut tenants: std::collections::BTreeMap<&str, Merging> = Default::default();
        for f in files {
            for t in &f.tenants {
                let m = tenants.entry(&t.tenant).or_default();
                let renumber: Vec<u32> = t.values.iter().map(|v| m.intern(v)).collect();
                for (meter, unit, start, acc) in &t.cells {
                    let hour = Granularity::Hour.floor(*start);
                    // Only whole hours before the horizon: a later one would move it.
                    let old = hour.saturating_add(Granularity::Hour.nanos()) <= minute_horizon;
                    let (unit, start) = if *unit == Granularity::Minute && old {
                        (Granularity::Hour, hour)
                    } else {
                        (*unit, *start)
                    };
                    let mut acc = acc.clone();
                    acc.unique = acc
                        .unique
                        .iter()
                        .filter_map(|i| renumber.get(i as usize).copied())
                        .collect();
                    m.cells
                        .entry((*meter, unit_code(unit), start))
                        .or_default()
                        .merge(&acc);
                }
            }
        }
        RollupFile {
            segments,
            meters: files.first().map(|f| f.meters.clone()).unwrap_or_default(),
            deducts: files.first().is_some_and(|f| f.deducts),
            tenants: tenants
                .into_iter()
                .map(|(tenant, m)| TenantBuckets {
                    tenant: tenant.to_owned(),
                    values: m.values,
                    cells: m
                        .cells
                        .into_iter()
                        .map(|((meter, unit, start), acc)| {
                            let unit = if unit == UNIT_MINUTE {
                                Granularity::Minute
                            } else {
                                Granularity::Hour
                            };
                            (meter, unit, start, acc)
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One tenant's buckets being merged: values renumbered, cells in file order.
#[derive(Default)]
struct Merging {
    values: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    cells: std::collections::BTreeMap<(MeterId, u8, i64), Acc>,
}

impl Merging {
    fn intern(&mut self, v: &str) -> u32 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(v.to_owned());
        self.index.insert(v.to_owned(), i);
        i
    }
}

/// A rollup file whose raw body is `body` (covering no segment), with a valid header,
/// compression and checksum: lets a fuzzer reach the body decoder.
#[doc(hidden)]
pub fn seal_body_for_fuzzing(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(&MAGIC);
    out.put_u16(VERSION);
    out.put_varint(0);
    out.put_varint(0);
    out.put_bytes(&zstd_wrap(body).unwrap_or_default());
    let crc = crc32c(&out);
    out.put_u32(crc);
    out
}

fn encode_group(out: &mut Vec<u8>, group: &[(MeterId, Granularity, i64, Acc)]) {
    let shape = if group.iter().any(|(.., a)| !a.unique.is_empty()) {
        SHAPE_DISTINCT
    } else if group.iter().any(|(.., a)| a.latest.is_some()) {
        SHAPE_NUMERIC
    } else {
        SHAPE_COUNT
    };
    let unit = group[0].1;
    out.put_u64(group[0].0);
    out.push(shape);
    out.push(unit_code(unit));
    out.put_varint(group.len() as u64);
    let mut prev = 0i64;
    for (_, _, minute, acc) in group {
        let index = minute.div_euclid(unit.nanos());
        out.put_varint(zigzag(index.wrapping_sub(prev)));
        prev = index;
        out.put_varint(acc.count);
        match shape {
            SHAPE_NUMERIC => {
                for v in [acc.sum, acc.min, acc.max] {
                    out.put_u64(v.to_bits());
                }
                let (t, v) = acc.latest.unwrap_or((*minute, f64::NAN));
                out.put_varint(zigzag(t.wrapping_sub(*minute)));
                out.put_u64(v.to_bits());
            }
            SHAPE_DISTINCT => {
                out.put_varint(acc.unique.len());
                let mut prev = 0u32;
                for id in &acc.unique {
                    out.put_varint(u64::from(id - prev));
                    prev = id;
                }
            }
            _ => {}
        }
    }
}

fn decode_body(r: &mut ByteReader<'_>) -> Result<Vec<TenantBuckets>, CorruptionKind> {
    let n_tenants = bounded(r, 5)?;
    let mut tenants = Vec::with_capacity(n_tenants);
    for _ in 0..n_tenants {
        let tenant = r.str()?.to_owned();
        let n_values = bounded(r, 4)?;
        let values = (0..n_values)
            .map(|_| r.str().map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cells = Vec::new();
        for _ in 0..bounded(r, 10)? {
            let meter = r.u64()?;
            let shape = r.u8()?;
            let unit = match r.u8()? {
                UNIT_MINUTE => Granularity::Minute,
                UNIT_HOUR => Granularity::Hour,
                other => return Err(invalid(&format!("unknown bucket size {other}"))),
            };
            let mut index = 0i64;
            for _ in 0..bounded(r, 2)? {
                index = index.wrapping_add(unzigzag(r.varint()?));
                let minute = index
                    .checked_mul(unit.nanos())
                    .ok_or_else(|| invalid("bucket start out of range"))?;
                let mut acc = Acc {
                    count: r.varint()?,
                    ..Acc::default()
                };
                match shape {
                    SHAPE_COUNT => {}
                    SHAPE_NUMERIC => {
                        acc.sum = f64::from_bits(r.u64()?);
                        acc.min = f64::from_bits(r.u64()?);
                        acc.max = f64::from_bits(r.u64()?);
                        let t = minute.wrapping_add(unzigzag(r.varint()?));
                        let v = f64::from_bits(r.u64()?);
                        acc.latest = (!v.is_nan()).then_some((t, v));
                    }
                    SHAPE_DISTINCT => {
                        let mut id = 0u64;
                        for i in 0..bounded(r, 1)? {
                            let step = r.varint()?;
                            if i > 0 && step == 0 {
                                return Err(invalid("distinct ids are not ascending"));
                            }
                            id += step;
                            if id >= n_values as u64 {
                                return Err(invalid("distinct id past the value table"));
                            }
                            acc.unique.insert(id as u32);
                        }
                    }
                    other => return Err(invalid(&format!("unknown bucket shape {other}"))),
                }
                cells.push((meter, unit, minute, acc));
            }
        }
        tenants.push(TenantBuckets {
            tenant,
            values,
            cells,
        });
    }
    if !r.is_empty() {
        return Err(invalid("bytes after the last tenant"));
    }
    Ok(tenants)
}

/// A varint count whose items take at least `item_size` bytes each: checked against the
/// bytes left, so that a damaged count never causes a huge allocation or loop.
fn bounded(r: &mut ByteReader<'_>, item_size: usize) -> Result<usize, CorruptionKind> {
    let n = r.varint()?;
    if n.saturating_mul(item_size as u64) > r.remaining() as u64 {
        return Err(invalid(&format!(
            "count {n} does not fit in the {} bytes left",
            r.remaining()
        )));
    }
    Ok(n as usize)
}

fn invalid(why: &str) -> CorruptionKind {
    CorruptionKind::Invalid(why.to_owned())
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RollupFile {
        let m = Granularity::Minute.nanos();
        let count = Acc {
            count: 7,
            ..Acc::default()
        };
        let mut numeric = Acc::default();
        numeric.add_value(3 * m + 5, 2.5);
        numeric.add_value(3 * m + 9, -1.0);
        let distinct = Acc {
            count: 3,
            unique: [0u32, 2].into_iter().collect(),
            ..Acc::default()
        };
        RollupFile {
            segments: vec![SegmentId(4), SegmentId(5)],
            meters: vec![16],
            tenants: vec![TenantBuckets {
                tenant: "acme".into(),
                values: vec!["ann".into(), "bob".into(), "cy".into()],
                cells: vec![
                    (1, Granularity::Minute, -2 * m, count.clone()),
                    (1, Granularity::Minute, 40 * m, count.clone()),
                    (1, Granularity::Hour, -120 * m, count),
                    (2, Granularity::Minute, 3 * m, numeric),
                    (4, Granularity::Minute, 3 * m, distinct),
                ],
            }],
            deducts: false,
        }
    }

    #[test]
    fn rollup_files_round_trip() {
        let f = sample();
        assert_eq!(RollupFile::decode(&f.encode(), Path::new("x")).unwrap(), f);
        let deduction = RollupFile {
            segments: Vec::new(),
            meters: Vec::new(),
            deducts: true,
            ..sample()
        };
        let bytes = deduction.encode();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), VERSION_FLAGS);
        let header = RollupFile::header(&bytes).unwrap();
        assert!(header.deducts && header.segments.is_empty());
        let header = RollupFile::header(&f.encode()).unwrap();
        assert_eq!(
            (header.deducts, header.segments, header.meters),
            (false, f.segments.clone(), f.meters.clone())
        );
        assert_eq!(
            RollupFile::decode(&bytes, Path::new("x")).unwrap(),
            deduction
        );
    }

    #[test]
    fn merged_files_hold_the_sum_of_their_buckets_with_old_minutes_as_hours() {
        let m = Granularity::Minute.nanos();
        let a = sample();
        let mut b = sample();
        b.segments = vec![SegmentId(5), SegmentId(9)];
        b.tenants[0].values = vec!["cy".into(), "dan".into(), "ann".into()];
        let merged = RollupFile::merge(&[a.clone(), b], 0);
        assert_eq!(
            merged.segments,
            vec![SegmentId(4), SegmentId(5), SegmentId(9)]
        );
        let t = &merged.tenants[0];
        let get = |meter: MeterId, unit: Granularity, start: i64| {
            t.cells
                .iter()
                .find(|c| (c.0, c.1, c.2) == (meter, unit, start))
                .map(|c| c.3.clone())
        };
        // -2m (before the horizon 0) joined the hour bucket at -60m.
        assert_eq!(get(1, Granularity::Minute, -2 * m), None);
        assert_eq!(get(1, Granularity::Hour, -60 * m).unwrap().count, 14);
        assert_eq!(get(1, Granularity::Hour, -120 * m).unwrap().count, 14);
        assert_eq!(get(1, Granularity::Minute, 40 * m).unwrap().count, 14);
        let distinct = get(4, Granularity::Minute, 3 * m).unwrap();
        let names: Vec<&str> = distinct
            .unique
            .iter()
            .map(|i| t.values[i as usize].as_str())
            .collect();
        // a: {ann, cy}; b: {cy, ann} (its values are renumbered)
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"ann") && names.contains(&"cy"));
        assert_eq!(distinct.count, 6);
        // The merged file encodes (cells grouped by meter and size) and decodes.
        assert_eq!(
            RollupFile::decode(&merged.encode(), Path::new("m")).unwrap(),
            merged
        );
    }

    #[test]
    fn every_flipped_bit_and_cut_is_detected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(RollupFile::decode(&b, Path::new("x")).is_err(), "bit {i}");
        }
        for n in 0..bytes.len() {
            assert!(
                RollupFile::decode(&bytes[..n], Path::new("x")).is_err(),
                "cut {n}"
            );
        }
    }
}
