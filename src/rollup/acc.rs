//! [`Acc`]: the aggregate of one rollup bucket, and [`Usage`]: what a caller reads from one.
//!
//! One state serves every aggregation, so that buckets of different meters merge by the same
//! rule; the meter's aggregation decides which part a caller reads ([`Usage::value`]).

use roaring::RoaringBitmap;

use crate::usage::{Aggregation, Contribution};

/// The aggregate of the events that fell into one bucket (or a merge of buckets).
///
/// Merging is commutative and associative except for the floating-point rounding of `sum`
/// (integer values are summed exactly up to 2^53), so a bucket does not depend on the order
/// its events arrived in.
#[derive(Clone, Debug, PartialEq)]
pub struct Acc {
    /// Events that contributed: every match for count, every value for the numeric
    /// aggregations, every event carrying the tag for unique_count.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value (`+inf` when there is none).
    pub min: f64,
    /// Largest value (`-inf` when there is none).
    pub max: f64,
    /// The value with the latest timestamp; of equal timestamps, the largest value, so that
    /// arrival order does not matter.
    pub latest: Option<(i64, f64)>,
    /// Distinct tag values, as ids of the tenant's value dictionary.
    pub unique: RoaringBitmap,
}

impl Default for Acc {
    fn default() -> Acc {
        Acc {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            latest: None,
            unique: RoaringBitmap::new(),
        }
    }
}

impl Acc {
    /// True when nothing has contributed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one event's contribution at time `t`; `distinct` is the dictionary id of a
    /// [`Contribution::Distinct`] value.
    pub fn add(&mut self, contribution: &Contribution<'_>, t: i64, distinct: u32) {
        match *contribution {
            Contribution::NoMatch | Contribution::Missing => {}
            Contribution::One => self.count += 1,
            Contribution::Value(v) => self.add_value(t, v),
            Contribution::Distinct(_) => self.add_distinct(distinct),
        }
    }

    /// Adds one event carrying the distinct value numbered `id`.
    pub fn add_distinct(&mut self, id: u32) {
        self.count += 1;
        self.unique.insert(id);
    }

    /// Adds one numeric value at time `t`.
    pub fn add_value(&mut self, t: i64, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.take_latest(t, v);
    }

    /// Folds `other` into this bucket.
    pub fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if let Some((t, v)) = other.latest {
            self.take_latest(t, v);
        }
        union_into(&mut self.unique, &other.unique);
    }

    fn take_latest(&mut self, t: i64, v: f64) {
        let newer = match self.latest {
            None => true,
            Some((lt, lv)) => t > lt || (t == lt && v > lv),
        };
        if newer {
            self.latest = Some((t, v));
        }
    }

    /// What a caller reads.
    pub fn usage(&self) -> Usage {
        let some = |v: f64| (self.count > 0 && v.is_finite()).then_some(v);
        Usage {
            count: self.count,
            sum: self.sum,
            min: some(self.min),
            max: some(self.max),
            latest: self.latest,
            unique: self.unique.len(),
        }
    }
}

/// Adds the values of `from` to `into`. Bitmaps of a few values (most minute buckets) are
/// merged by inserting them, which does not allocate as a union does.
pub fn union_into(into: &mut RoaringBitmap, from: &RoaringBitmap) {
    if from.len() <= 8 {
        for id in from {
            into.insert(id);
        }
    } else {
        *into |= from;
    }
}

/// Usage over a time range: everything a meter's aggregation can ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Contributing events (see [`Acc::count`]).
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value, if any.
    pub min: Option<f64>,
    /// Largest value, if any.
    pub max: Option<f64>,
    /// The latest value and its time, if any.
    pub latest: Option<(i64, f64)>,
    /// Distinct tag values.
    pub unique: u64,
}

impl Usage {
    /// The meter's figure under `aggregation`; `None` for min, max, avg and latest when no
    /// value fell in the range (a count, sum or unique count of nothing is 0).
    pub fn value(&self, aggregation: Aggregation) -> Option<f64> {
        match aggregation {
            Aggregation::Count => Some(self.count as f64),
            Aggregation::Sum => Some(self.sum),
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::Avg => (self.count > 0).then(|| self.sum / self.count as f64),
            Aggregation::UniqueCount => Some(self.unique as f64),
            Aggregation::Latest => self.latest.map(|(_, v)| v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(values: &[(i64, f64)]) -> Acc {
        let mut a = Acc::default();
        for &(t, v) in values {
            a.add(&Contribution::Value(v), t, 0);
        }
        a
    }

    #[test]
    fn merge_does_not_depend_on_order() {
        let (x, y) = (acc(&[(1, 5.0), (3, 2.0)]), acc(&[(3, 7.0), (2, -1.0)]));
        let mut xy = x.clone();
        xy.merge(&y);
        let mut yx = y.clone();
        yx.merge(&x);
        assert_eq!(xy, yx);
        let u = xy.usage();
        assert_eq!(
            (u.count, u.sum, u.min, u.max),
            (4, 13.0, Some(-1.0), Some(7.0))
        );
        assert_eq!(u.latest, Some((3, 7.0)), "equal times: the larger value");
        assert_eq!(u.value(Aggregation::Avg), Some(3.25));
    }

    #[test]
    fn empty_usage_has_no_extremes() {
        let u = Acc::default().usage();
        assert_eq!(u.value(Aggregation::Count), Some(0.0));
        assert_eq!(u.value(Aggregation::Sum), Some(0.0));
        assert_eq!(u.value(Aggregation::Min), None);
        assert_eq!(u.value(Aggregation::Avg), None);
        assert_eq!(u.value(Aggregation::Latest), None);
    }

    #[test]
    fn distinct_values_count_once() {
        let mut a = Acc::default();
        for id in [3, 1, 3, 3] {
            a.add(&Contribution::Distinct("x"), 0, id);
        }
        assert_eq!((a.usage().count, a.usage().unique), (4, 2));
    }
}
