//! The in-memory rollups: per tenant and meter, minute, hour and day buckets, and the range
//! sums that usage and limit checks read.
//!
//! Every bucket level holds the same events: a minute's aggregate is also merged into its
//! hour and its day, so that a month is read as about 30 day buckets plus the hour and minute
//! buckets at its edges instead of 43,200 minutes.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use compact_str::CompactString;

use super::{Acc, Granularity, MeterId};
use crate::model::Timestamp;

/// Bucket levels of one meter of one tenant, stored in the shape its aggregation needs (a
/// count bucket is 8 bytes, not a full [`Acc`]); the shape is set by the first bucket added.
#[derive(Clone, Debug, Default)]
pub enum Levels {
    /// No bucket yet.
    #[default]
    Empty,
    /// Count meters.
    Count(Tiers<u64>),
    /// Sum, min, max, avg and latest meters.
    Numeric(Tiers<Numeric>),
    /// Unique-count meters.
    Distinct(Tiers<Distinct>),
}

/// Minute, hour and day buckets of one shape. Minute buckets older than the store's horizon
/// are not kept (the hour and day buckets hold them).
#[derive(Clone, Debug)]
pub struct Tiers<B> {
    minute: BTreeMap<i64, B>,
    hour: BTreeMap<i64, B>,
    day: BTreeMap<i64, B>,
}

/// A numeric meter's bucket.
#[derive(Clone, Copy, Debug)]
pub struct Numeric {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    latest: (i64, f64),
}

/// A unique-count meter's bucket.
#[derive(Clone, Debug, Default)]
pub struct Distinct {
    count: u64,
    ids: roaring::RoaringBitmap,
}

/// How a bucket shape takes in and gives back an [`Acc`].
pub trait Shape: Sized {
    /// A bucket holding `acc`.
    fn from_acc(acc: &Acc) -> Self;
    /// Adds `acc` to the bucket.
    fn absorb(&mut self, acc: &Acc);
    /// Adds the bucket to `acc`.
    fn merge_into(&self, acc: &mut Acc);
    /// Takes `acc` (some events' contributions) back out of the bucket: counts and sums
    /// exactly, distinct values by removing `acc`'s; smallest, largest and latest values
    /// cannot be taken back and stay.
    fn deduct(&mut self, acc: &Acc);
}

impl Shape for u64 {
    fn from_acc(acc: &Acc) -> u64 {
        acc.count
    }
    fn absorb(&mut self, acc: &Acc) {
        *self += acc.count;
    }
    fn merge_into(&self, acc: &mut Acc) {
        acc.count += self;
    }
    fn deduct(&mut self, acc: &Acc) {
        *self = self.saturating_sub(acc.count);
    }
}

impl Shape for Numeric {
    fn from_acc(acc: &Acc) -> Numeric {
        Numeric {
            count: acc.count,
            sum: acc.sum,
            min: acc.min,
            max: acc.max,
            latest: acc.latest.unwrap_or((i64::MIN, f64::NEG_INFINITY)),
        }
    }
    fn absorb(&mut self, acc: &Acc) {
        let mut merged = Acc::default();
        self.merge_into(&mut merged);
        merged.merge(acc);
        *self = Numeric::from_acc(&merged);
    }
    fn merge_into(&self, acc: &mut Acc) {
        let part = Acc {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            latest: (self.latest.0 != i64::MIN).then_some(self.latest),
            unique: roaring::RoaringBitmap::new(),
        };
        acc.merge(&part);
    }
    fn deduct(&mut self, acc: &Acc) {
        self.count = self.count.saturating_sub(acc.count);
        self.sum -= acc.sum;
        if self.count == 0 {
            self.sum = 0.0;
        }
    }
}

impl Shape for Distinct {
    fn from_acc(acc: &Acc) -> Distinct {
        Distinct {
            count: acc.count,
            ids: acc.unique.clone(),
        }
    }
    fn absorb(&mut self, acc: &Acc) {
        self.count += acc.count;
        crate::rollup::acc::union_into(&mut self.ids, &acc.unique);
    }
    fn merge_into(&self, acc: &mut Acc) {
        acc.count += self.count;
        crate::rollup::acc::union_into(&mut acc.unique, &self.ids);
    }
    fn deduct(&mut self, acc: &Acc) {
        self.count = self.count.saturating_sub(acc.count);
        self.ids -= &acc.unique;
    }
}

impl<B> Default for Tiers<B> {
    fn default() -> Tiers<B> {
        Tiers {
            minute: BTreeMap::new(),
            hour: BTreeMap::new(),
            day: BTreeMap::new(),
        }
    }
}

impl<B: Shape> Tiers<B> {
    /// The levels a bucket of size `unit` at `start` belongs to, with its key in each: hour
    /// and day, and minute too for a minute bucket not older than `horizon`.
    fn levels_of(
        &mut self,
        unit: Granularity,
        start: i64,
        horizon: i64,
    ) -> impl Iterator<Item = (&mut BTreeMap<i64, B>, i64)> {
        let minute = unit == Granularity::Minute && start >= horizon;
        [
            (&mut self.minute, Granularity::Minute),
            (&mut self.hour, Granularity::Hour),
            (&mut self.day, Granularity::Day),
        ]
        .into_iter()
        .filter(move |(_, g)| *g != Granularity::Minute || minute)
        .map(move |(level, g)| (level, g.floor(start)))
    }

    fn add(&mut self, unit: Granularity, start: i64, acc: &Acc, horizon: i64) {
        for (level, key) in self.levels_of(unit, start, horizon) {
            match level.entry(key) {
                Entry::Occupied(mut e) => e.get_mut().absorb(acc),
                Entry::Vacant(e) => {
                    e.insert(B::from_acc(acc));
                }
            }
        }
    }

    fn deduct(&mut self, unit: Granularity, start: i64, acc: &Acc, horizon: i64) {
        for (level, key) in self.levels_of(unit, start, horizon) {
            if let Some(b) = level.get_mut(&key) {
                b.deduct(acc);
            }
        }
    }

    fn level(&self, g: Granularity) -> &BTreeMap<i64, B> {
        match g {
            Granularity::Minute => &self.minute,
            Granularity::Hour => &self.hour,
            Granularity::Day => &self.day,
        }
    }

    fn sum(&self, pieces: &[(Granularity, Range<i64>)], out: &mut Acc) {
        for (g, piece) in pieces {
            for b in self.level(*g).range(piece.clone()).map(|(_, b)| b) {
                b.merge_into(out);
            }
        }
    }

    fn buckets(&self, g: Granularity, range: Range<i64>) -> Vec<(i64, Acc)> {
        self.level(g)
            .range(range)
            .map(|(t, b)| {
                let mut acc = Acc::default();
                b.merge_into(&mut acc);
                (*t, acc)
            })
            .collect()
    }

    fn evict_minutes(&mut self, horizon: i64) {
        self.minute = self.minute.split_off(&horizon);
    }

    fn drop_before(&mut self, cutoff: i64) {
        for level in [&mut self.minute, &mut self.hour, &mut self.day] {
            *level = level.split_off(&cutoff);
        }
    }

    fn len(&self) -> usize {
        self.minute.len() + self.hour.len() + self.day.len()
    }
}

impl Levels {
    /// Merges a bucket of size `unit` (minute or hour) starting at `start` (ns) into the hour
    /// and day buckets, and a minute bucket also into the minute buckets unless it is older
    /// than `horizon`.
    pub fn add(&mut self, unit: Granularity, start: i64, acc: &Acc, horizon: i64) {
        if let Levels::Empty = self {
            *self = if !acc.unique.is_empty() {
                Levels::Distinct(Tiers::default())
            } else if acc.latest.is_some() {
                Levels::Numeric(Tiers::default())
            } else {
                Levels::Count(Tiers::default())
            };
        }
        match self {
            Levels::Empty => {}
            Levels::Count(t) => t.add(unit, start, acc, horizon),
            Levels::Numeric(t) => t.add(unit, start, acc, horizon),
            Levels::Distinct(t) => t.add(unit, start, acc, horizon),
        }
    }

    /// The aggregate of `[start, end)`, both on minute boundaries and `start` at or after the
    /// minute horizon, from the coarsest buckets that fit.
    pub fn sum(&self, start: i64, end: i64, out: &mut Acc) {
        self.sum_pieces(&decompose(start, end), out);
    }

    /// The aggregate of whole buckets: each piece is a range of one level's buckets (as
    /// [`decompose`] gives them).
    pub fn sum_pieces(&self, pieces: &[(Granularity, Range<i64>)], out: &mut Acc) {
        match self {
            Levels::Empty => {}
            Levels::Count(t) => t.sum(pieces, out),
            Levels::Numeric(t) => t.sum(pieces, out),
            Levels::Distinct(t) => t.sum(pieces, out),
        }
    }

    /// The buckets of level `g` in `[start, end)`, with their start times.
    pub fn buckets(&self, g: Granularity, range: Range<i64>) -> Vec<(i64, Acc)> {
        match self {
            Levels::Empty => Vec::new(),
            Levels::Count(t) => t.buckets(g, range),
            Levels::Numeric(t) => t.buckets(g, range),
            Levels::Distinct(t) => t.buckets(g, range),
        }
    }

    /// Drops the minute buckets older than `horizon`.
    pub fn evict_minutes(&mut self, horizon: i64) {
        match self {
            Levels::Empty => {}
            Levels::Count(t) => t.evict_minutes(horizon),
            Levels::Numeric(t) => t.evict_minutes(horizon),
            Levels::Distinct(t) => t.evict_minutes(horizon),
        }
    }

    /// Takes a bucket of size `unit` starting at `start` back out, as [`Levels::add`] put
    /// it in (see [`Shape::deduct`] for what can be taken back).
    pub fn deduct(&mut self, unit: Granularity, start: i64, acc: &Acc, horizon: i64) {
        match self {
            Levels::Empty => {}
            Levels::Count(t) => t.deduct(unit, start, acc, horizon),
            Levels::Numeric(t) => t.deduct(unit, start, acc, horizon),
            Levels::Distinct(t) => t.deduct(unit, start, acc, horizon),
        }
    }

    /// Drops the buckets that start before `cutoff`.
    pub fn drop_before(&mut self, cutoff: i64) {
        match self {
            Levels::Empty => {}
            Levels::Count(t) => t.drop_before(cutoff),
            Levels::Numeric(t) => t.drop_before(cutoff),
            Levels::Distinct(t) => t.drop_before(cutoff),
        }
    }

    /// Buckets held, and their approximate bytes.
    pub fn footprint(&self) -> (usize, usize) {
        // A B-tree entry costs its key and value plus about a third for the node structure.
        match self {
            Levels::Empty => (0, 0),
            Levels::Count(t) => (t.len(), t.len() * 22),
            Levels::Numeric(t) => (t.len(), t.len() * 75),
            Levels::Distinct(t) => {
                let bitmaps: usize = [&t.minute, &t.hour, &t.day]
                    .iter()
                    .flat_map(|l| l.values())
                    .map(|d| d.ids.serialized_size())
                    .sum();
                (t.len(), t.len() * 56 + bitmaps)
            }
        }
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
/// first-seen order; ids are never reused. Values of up to 24 bytes (user ids) are stored
/// inline: interning runs for every counted event on the write path, and a lookup that
/// followed a pointer to each candidate's bytes missed the cache on most of them.
#[derive(Debug, Default)]
pub struct Dict {
    ids: HashMap<CompactString, u32, foldhash::fast::RandomState>,
    values: Vec<CompactString>,
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
        self.values.get(id as usize).map(CompactString::as_str)
    }

    /// Bytes held, roughly: each value in the list and in the map (with the map's slack),
    /// plus the bytes of values too long to be stored inline.
    pub fn bytes(&self) -> usize {
        self.values
            .iter()
            .map(|v| {
                64 + if v.is_heap_allocated() {
                    2 * v.len()
                } else {
                    0
                }
            })
            .sum()
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
#[derive(Debug)]
pub struct RollupStore {
    tenants: RwLock<HashMap<Box<str>, Arc<TenantRollups>>>,
    /// How long minute buckets are kept in memory (ns).
    minute_window: i64,
    /// Start of the oldest minute whose bucket is kept in memory: every minute bucket at or
    /// after it is complete; before it, only hour and day buckets are.
    horizon: AtomicI64,
}

impl Default for RollupStore {
    fn default() -> RollupStore {
        RollupStore::new(Duration::MAX, Timestamp(0))
    }
}

impl RollupStore {
    /// An empty store that keeps minute buckets for `minute_window` before `now` (and after
    /// it), hour and day buckets for ever.
    pub fn new(minute_window: Duration, now: Timestamp) -> RollupStore {
        let minute_window = i64::try_from(minute_window.as_nanos()).unwrap_or(i64::MAX);
        RollupStore {
            tenants: RwLock::default(),
            minute_window,
            horizon: AtomicI64::new(horizon_at(now, minute_window)),
        }
    }

    /// Start of the oldest minute whose bucket is in memory (see [`RollupStore::new`]).
    pub fn minute_horizon(&self) -> i64 {
        self.horizon.load(Ordering::Relaxed)
    }

    /// Moves the minute horizon to at least `t` (a bucket read from a file holds a whole hour
    /// from there on, so minutes before `t` are no longer complete in memory).
    pub fn raise_horizon(&self, t: i64) {
        self.horizon
            .fetch_max(Granularity::Minute.ceil(t), Ordering::Relaxed);
    }

    /// Moves the minute horizon to `now` minus the window and drops the minute buckets before
    /// it; does nothing until the horizon has moved by at least ten minutes, so that callers
    /// can call it often.
    pub fn evict_minutes(&self, now: Timestamp) {
        let next = horizon_at(now, self.minute_window);
        let current = self.horizon.load(Ordering::Relaxed);
        if next < current.saturating_add(10 * Granularity::Minute.nanos())
            || self
                .horizon
                .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let tenants: Vec<Arc<TenantRollups>> = self
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for t in tenants {
            for levels in t.meters().values_mut() {
                levels.evict_minutes(next);
            }
        }
    }

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

    /// The tenants with rollups.
    pub fn tenants(&self) -> Vec<String> {
        let map = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        map.keys().map(|k| k.to_string()).collect()
    }

    /// Drops every bucket that starts before `cutoff(tenant)` (retention).
    pub fn drop_before(&self, cutoff: &dyn Fn(&str) -> i64) {
        let tenants: Vec<(Box<str>, Arc<TenantRollups>)> = {
            let map = self.tenants.read().unwrap_or_else(|e| e.into_inner());
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (name, t) in tenants {
            let c = cutoff(&name);
            for levels in t.meters().values_mut() {
                levels.drop_before(c);
            }
        }
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
                let (n, b) = levels.footprint();
                buckets += n;
                bytes += b;
            }
        }
        (buckets, bytes)
    }
}

fn horizon_at(now: Timestamp, window: i64) -> i64 {
    Granularity::Minute.floor(now.0.saturating_sub(window))
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
            levels.add(Granularity::Minute, minute, &one, i64::MIN);
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
