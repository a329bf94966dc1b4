//! The in-memory rollups: per tenant and meter, minute, hour and day buckets, and the range
//! sums that usage and limit checks read.
//!
//! Every bucket level holds the same events: a minute's aggregate is also merged into its
//! hour and its day, so that a month is read as about 30 day buckets plus the hour and minute
//! buckets at its edges instead of 43,200 minutes.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::{Acc, Granularity, MeterId};

/// Bucket levels of one meter of one tenant.
#[derive(Clone, Debug, Default)]
pub struct Levels {
    minute: BTreeMap<i64, Acc>,
    hour: BTreeMap<i64, Acc>,
    day: BTreeMap<i64, Acc>,
}

impl Levels {
    /// Merges a minute bucket (`minute` is its start, ns) into every level.
    pub fn add_minute(&mut self, minute: i64, acc: &Acc) {
        for (level, g) in [
            (&mut self.minute, Granularity::Minute),
            (&mut self.hour, Granularity::Hour),
            (&mut self.day, Granularity::Day),
        ] {
            level.entry(g.floor(minute)).or_default().merge(acc);
        }
    }

    fn level(&self, g: Granularity) -> &BTreeMap<i64, Acc> {
        match g {
            Granularity::Minute => &self.minute,
            Granularity::Hour => &self.hour,
            Granularity::Day => &self.day,
        }
    }

    /// The aggregate of `[start, end)`, both on minute boundaries, from the coarsest buckets
    /// that fit.
    pub fn sum(&self, start: i64, end: i64, out: &mut Acc) {
        for (g, piece) in decompose(start, end) {
            for (_, acc) in self.level(g).range(piece) {
                out.merge(acc);
            }
        }
    }

    /// The buckets of level `g` in `[start, end)`, with their start times.
    pub fn buckets(&self, g: Granularity, range: Range<i64>) -> impl Iterator<Item = (i64, &Acc)> {
        self.level(g).range(range).map(|(t, a)| (*t, a))
    }

    /// Minute buckets, for writing them out.
    pub fn minutes(&self) -> impl Iterator<Item = (i64, &Acc)> {
        self.minute.iter().map(|(t, a)| (*t, a))
    }
}

/// Splits `[start, end)` (minute-aligned) into pieces each covered by whole buckets of one
/// level: minutes up to the first hour, hours up to the first day, days, then back down.
pub fn decompose(start: i64, end: i64) -> Vec<(Granularity, Range<i64>)> {
    let mut out = Vec::with_capacity(5);
    split(start, end, Granularity::Hour, &mut out);
    out
}

fn split(start: i64, end: i64, g: Granularity, out: &mut Vec<(Granularity, Range<i64>)>) {
    let finer = match g {
        Granularity::Day => Granularity::Hour,
        Granularity::Hour => Granularity::Minute,
        Granularity::Minute => {
            if start < end {
                out.push((Granularity::Minute, start..end));
            }
            return;
        }
    };
    let (a, b) = (g.ceil(start), g.floor(end));
    if a >= b {
        return split(start, end, finer, out);
    }
    split(start, a, finer, out);
    if g == Granularity::Hour {
        split_days(a, b, out);
    } else {
        out.push((g, a..b));
    }
    split(b, end, finer, out);
}

fn split_days(start: i64, end: i64, out: &mut Vec<(Granularity, Range<i64>)>) {
    let (a, b) = (Granularity::Day.ceil(start), Granularity::Day.floor(end));
    if a >= b {
        out.push((Granularity::Hour, start..end));
        return;
    }
    if start < a {
        out.push((Granularity::Hour, start..a));
    }
    out.push((Granularity::Day, a..b));
    if b < end {
        out.push((Granularity::Hour, b..end));
    }
}

/// Distinct tag values of a tenant (the values unique_count meters count), numbered in
/// first-seen order; ids are never reused.
#[derive(Debug, Default)]
pub struct Dict {
    ids: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    values: Vec<Box<str>>,
}

impl Dict {
    /// The id of `value`, assigning the next one to a new value.
    pub fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    /// The value of `id`.
    pub fn value(&self, id: u32) -> Option<&str> {
        self.values.get(id as usize).map(|v| &**v)
    }

    /// Bytes held, roughly.
    pub fn bytes(&self) -> usize {
        self.values.iter().map(|v| 2 * v.len() + 48).sum()
    }
}

/// One tenant's rollups. The dictionary and the buckets are locked separately: ingest
/// interns values while computing a batch's contributions, then takes the bucket lock only
/// to merge the batch's few buckets, so a limit check waits microseconds at most.
#[derive(Debug, Default)]
pub struct TenantRollups {
    dict: Mutex<Dict>,
    meters: Mutex<HashMap<MeterId, Levels>>,
}

impl TenantRollups {
    /// The tenant's value dictionary.
    pub fn dict(&self) -> MutexGuard<'_, Dict> {
        self.dict.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's buckets by meter.
    pub fn meters(&self) -> MutexGuard<'_, HashMap<MeterId, Levels>> {
        self.meters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every tenant's rollups.
#[derive(Debug, Default)]
pub struct RollupStore {
    tenants: RwLock<HashMap<Box<str>, Arc<TenantRollups>>>,
}

impl RollupStore {
    /// The rollups of `tenant`, if it has any.
    pub fn get(&self, tenant: &str) -> Option<Arc<TenantRollups>> {
        let map = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        map.get(tenant).cloned()
    }

    /// The rollups of `tenant`, created empty if needed.
    pub fn tenant(&self, tenant: &str) -> Arc<TenantRollups> {
        if let Some(t) = self.get(tenant) {
            return t;
        }
        let mut map = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        map.entry(tenant.into()).or_default().clone()
    }

    /// Forgets a meter's buckets for `tenant` (the meter was deleted).
    pub fn remove_meter(&self, tenant: &str, meter: MeterId) {
        if let Some(t) = self.get(tenant) {
            t.meters().remove(&meter);
        }
    }

    /// Bucket count and approximate bytes held, for `/metrics` and benchmarks.
    pub fn footprint(&self) -> (usize, usize) {
        let map = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        let (mut buckets, mut bytes) = (0, 0);
        for t in map.values() {
            bytes += t.dict().bytes();
            for levels in t.meters().values() {
                for level in [&levels.minute, &levels.hour, &levels.day] {
                    buckets += level.len();
                    bytes += level
                        .values()
                        .map(|a| 96 + a.unique.serialized_size())
                        .sum::<usize>();
                }
            }
        }
        (buckets, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000_000_000;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;

    #[test]
    fn decomposition_covers_the_range_exactly_with_whole_buckets() {
        let cases = [
            (0, D),
            (5 * M, 3 * D + 2 * H + 7 * M),
            (23 * H + 30 * M, D + 30 * M),
            (10 * M, 50 * M),
            (H, 5 * H),
            (D - M, D + M),
            (7, 7),
        ];
        for (start, end) in cases {
            let pieces = decompose(start, end);
            let mut at = start;
            for (g, r) in &pieces {
                assert_eq!(r.start, at, "{pieces:?}");
                assert!(r.start < r.end);
                assert_eq!(g.floor(r.start), r.start, "{pieces:?}");
                assert_eq!(g.floor(r.end), r.end, "{pieces:?}");
                at = r.end;
            }
            assert_eq!(at, end.max(start), "{pieces:?}");
        }
        assert_eq!(
            decompose(5 * M, 3 * D + 2 * H + 7 * M),
            vec![
                (Granularity::Minute, 5 * M..H),
                (Granularity::Hour, H..D),
                (Granularity::Day, D..3 * D),
                (Granularity::Hour, 3 * D..3 * D + 2 * H),
                (Granularity::Minute, 3 * D + 2 * H..3 * D + 2 * H + 7 * M),
            ]
        );
    }

    #[test]
    fn a_sum_reads_every_level_consistently() {
        let mut levels = Levels::default();
        let one = Acc {
            count: 1,
            ..Acc::default()
        };
        let mut minutes = Vec::new();
        for i in 0..5000 {
            let minute = (i * 7919 % 4000) * M;
            levels.add_minute(minute, &one);
            minutes.push(minute);
        }
        for (start, end) in [
            (0, 4000 * M),
            (13 * M, 2900 * M),
            (H, D),
            (D + 3 * M, D + 4 * M),
        ] {
            let mut acc = Acc::default();
            levels.sum(start, end, &mut acc);
            let expected = minutes.iter().filter(|&&m| start <= m && m < end).count();
            assert_eq!(acc.count, expected as u64, "[{start}, {end})");
        }
    }
}
