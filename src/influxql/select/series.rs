//! Series: which output series (measurement + `GROUP BY` tag values) each row belongs to.
//! Rows are grouped by dictionary ids within a batch, and each distinct id combination is
//! turned into strings once per batch, so the per-row work is integer arithmetic and, with
//! several varying tags, one integer hash lookup.

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::super::QueryError;
use super::aggregate::NO_CELL;
use super::columns::{Col, Kind, resolve, tag_str};
use crate::scan::{ColumnBatch, NO_TAG};

/// An output series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct SeriesKey {
    /// Measurement.
    pub measurement: String,
    /// Values of the dimension tags, in dimension-key order (`""` for a missing tag).
    pub tags: Vec<String>,
}

/// The series seen so far, numbered in order of appearance.
#[derive(Debug, Default)]
pub(super) struct SeriesSet {
    dims: Vec<String>,
    keys: Vec<SeriesKey>,
    /// Hash of (measurement, tag values) → ids: a lookup borrows the strings, only a new
    /// series allocates.
    index: HashMap<u64, Vec<u32>>,
    hasher: foldhash::fast::RandomState,
}

/// Direct tables up to this many id combinations; a hash map beyond.
const DIRECT: u64 = 1 << 20;

impl SeriesSet {
    /// Series over the sorted tag keys `dims`.
    pub(super) fn new(dims: Vec<String>) -> SeriesSet {
        SeriesSet {
            dims,
            ..SeriesSet::default()
        }
    }

    /// Number of series.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key of series `id`.
    pub(super) fn key(&self, id: usize) -> Option<&SeriesKey> {
        self.keys.get(id)
    }

    /// The `tags` of series `id` in a response.
    pub(super) fn tags(&self, id: usize) -> Vec<(String, String)> {
        match self.keys.get(id) {
            Some(k) => self
                .dims
                .iter()
                .cloned()
                .zip(k.tags.iter().cloned())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Series ids sorted as InfluxDB sorts series: by measurement, then tag values.
    pub(super) fn sorted(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..self.keys.len()).collect();
        ids.sort_by(|&a, &b| self.keys.get(a).cmp(&self.keys.get(b)));
        ids
    }

    fn intern(&mut self, measurement: &str, tags: &[&str]) -> u32 {
        let h = self.hasher.hash_one((measurement, tags));
        let keys = &self.keys;
        let same = |id: &u32| {
            keys.get(*id as usize).is_some_and(|k| {
                k.measurement == measurement
                    && k.tags.iter().map(String::as_str).eq(tags.iter().copied())
            })
        };
        if let Some(&id) = self
            .index
            .get(&h)
            .and_then(|ids| ids.iter().find(|id| same(id)))
        {
            return id;
        }
        let id = u32::try_from(self.keys.len()).unwrap_or(NO_CELL - 1);
        self.keys.push(SeriesKey {
            measurement: measurement.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        });
        self.index.entry(h).or_default().push(id);
        id
    }

    /// Writes the series id of every row of `batch` into `out` ([`NO_CELL`] where `mask` is
    /// false).
    pub(super) fn assign<'b>(
        &mut self,
        batch: &'b ColumnBatch,
        mask: &[bool],
        out: &mut Vec<u32>,
    ) -> Result<(), QueryError> {
        out.clear();
        out.resize(batch.len(), NO_CELL);
        let cols: Vec<Col<'_>> = self
            .dims
            .iter()
            .map(|d| resolve(batch, d, Kind::Tag))
            .collect();
        // Strides of the varying (per-row) dimensions; id 0 stands for a missing tag.
        let mut strides = Vec::with_capacity(cols.len());
        let mut combos: u64 = 1;
        for c in &cols {
            if let Col::Tag(t) = c {
                strides.push(combos);
                combos = combos.checked_mul(t.dict.len() as u64 + 1).ok_or_else(|| {
                    QueryError::Unsupported("too many GROUP BY tag combinations".into())
                })?;
            } else {
                strides.push(0);
            }
        }
        let digit = |id: u32| if id == NO_TAG { 0 } else { u64::from(id) + 1 };
        // `GROUP BY` one tag (the usual case) reads its id column directly.
        let lone = match cols.as_slice() {
            [Col::Tag(t)] => Some(&t.ids),
            _ => None,
        };
        let local = |row: usize| -> u64 {
            if let Some(ids) = lone {
                return digit(ids.get(row).copied().unwrap_or(NO_TAG));
            }
            let mut k = 0;
            for (c, s) in cols.iter().zip(&strides) {
                if let Col::Tag(t) = c {
                    k += digit(t.ids.get(row).copied().unwrap_or(NO_TAG)) * s;
                }
            }
            k
        };
        let decode = |k: u64, parts: &mut Vec<&'b str>| {
            parts.clear();
            parts.extend(cols.iter().zip(&strides).map(|(c, &s)| match c {
                Col::Tag(t) => {
                    let digit = (k / s.max(1)) % (t.dict.len() as u64 + 1);
                    if digit == 0 {
                        ""
                    } else {
                        t.dict.get((digit - 1) as usize).map_or("", String::as_str)
                    }
                }
                other => tag_str(other, 0),
            }));
        };
        let measurement = batch.measurement.as_str();
        // One buffer for every new combination's tag values: a batch can hold tens of
        // thousands (a `GROUP BY user`), and allocating a list for each showed in profiles.
        let mut parts = Vec::with_capacity(cols.len());
        let mut key_of = |k: u64, set: &mut SeriesSet| {
            decode(k, &mut parts);
            set.intern(measurement, &parts)
        };
        if combos == 1 {
            let id = key_of(0, self);
            for (o, &m) in out.iter_mut().zip(mask) {
                if m {
                    *o = id;
                }
            }
        } else if combos <= DIRECT {
            let mut table = vec![NO_CELL; usize::try_from(combos).unwrap_or(0)];
            for (row, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
                if !m {
                    continue;
                }
                let k = local(row);
                if let Some(slot) = table.get_mut(k as usize) {
                    if *slot == NO_CELL {
                        *slot = key_of(k, self);
                    }
                    *o = *slot;
                }
            }
        } else {
            let mut table: HashMap<u64, u32> = HashMap::new();
            for (row, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
                if !m {
                    continue;
                }
                let k = local(row);
                *o = match table.get(&k) {
                    Some(&id) => id,
                    None => {
                        let id = key_of(k, self);
                        table.insert(k, id);
                        id
                    }
                };
            }
        }
        Ok(())
    }
}
