//! `GROUP BY time(interval, offset)` buckets: InfluxDB's alignment (epoch-aligned plus the
//! offset, or local-time aligned under `tz()`), their count capped so that a query such as
//! `GROUP BY time(1ns)` over years fails with a clear error instead of exhausting memory.

use chrono::{Offset, TimeZone};

use super::super::QueryError;

/// Most buckets one series may have (InfluxDB's `max-select-buckets` is unlimited by default;
/// MeterDB refuses rather than allocate without bound).
pub(super) const MAX_BUCKETS: usize = 1_000_000;

/// The buckets covering a time range.
#[derive(Clone, Debug)]
pub(super) struct Windows {
    interval: i64,
    /// Bucket starts, when a zone makes them irregular; else computed from `first`.
    starts: Option<Vec<i64>>,
    first: i64,
    n: usize,
}

impl Windows {
    /// The buckets from the one holding `min` to the one holding `max` (inclusive).
    pub(super) fn new(
        interval: i64,
        offset: i64,
        tz: Option<chrono_tz::Tz>,
        min: i64,
        max: i64,
    ) -> Result<Windows, QueryError> {
        let first = window_start(min, interval, offset, tz);
        if max < min {
            return Ok(Windows {
                interval,
                starts: None,
                first,
                n: 0,
            });
        }
        let too_many = |n: String| {
            QueryError::Invalid(format!(
                "GROUP BY time would produce {n} buckets, more than the {MAX_BUCKETS} allowed: \
                 use a larger interval or a narrower time range"
            ))
        };
        match tz {
            None => {
                let last = window_start(max, interval, offset, None);
                let n = (i128::from(last) - i128::from(first)) / i128::from(interval) + 1;
                if n > MAX_BUCKETS as i128 {
                    return Err(too_many(n.to_string()));
                }
                Ok(Windows {
                    interval,
                    starts: None,
                    first,
                    n: usize::try_from(n).unwrap_or(0),
                })
            }
            Some(z) => {
                let mut starts = vec![first];
                let mut cur = first;
                loop {
                    let next = next_start(cur, interval, offset, z);
                    if next <= cur || next > max {
                        break;
                    }
                    if starts.len() >= MAX_BUCKETS {
                        return Err(too_many(format!("more than {MAX_BUCKETS}")));
                    }
                    starts.push(next);
                    cur = next;
                }
                let n = starts.len();
                Ok(Windows {
                    interval,
                    starts: Some(starts),
                    first,
                    n,
                })
            }
        }
    }

    /// Number of buckets.
    pub(super) fn len(&self) -> usize {
        self.n
    }

    /// The bucket of `t`, if inside the range.
    pub(super) fn index(&self, t: i64) -> Option<usize> {
        match &self.starts {
            None => {
                // Hot path (once per row): plain i64 arithmetic, overflow-checked.
                let since = t.checked_sub(self.first).filter(|d| *d >= 0)?;
                usize::try_from(since / self.interval)
                    .ok()
                    .filter(|&i| i < self.n)
            }
            Some(starts) => {
                let i = starts.partition_point(|&s| s <= t);
                i.checked_sub(1)
            }
        }
    }

    /// The bucket of each of `ts`, in order, as [`Windows::index`] gives it. A time inside
    /// the previous one's bucket reuses it without dividing: scans return times sorted, so
    /// that is nearly every row.
    pub(super) fn indexes<'a>(&'a self, ts: &'a [i64]) -> impl Iterator<Item = Option<usize>> + 'a {
        let mut last: Option<(i64, i64, usize)> = None;
        ts.iter().map(move |&t| {
            if let Some((start, end, b)) = last
                && start <= t
                && t < end
            {
                return Some(b);
            }
            let b = self.index(t)?;
            last = Some((self.start(b), self.start(b + 1), b));
            Some(b)
        })
    }

    /// Start time of bucket `i`.
    pub(super) fn start(&self, i: usize) -> i64 {
        match &self.starts {
            None => self.first.saturating_add(
                self.interval
                    .saturating_mul(i64::try_from(i).unwrap_or(i64::MAX)),
            ),
            Some(s) => s.get(i).copied().unwrap_or(i64::MAX),
        }
    }
}

fn zone_offset(tz: chrono_tz::Tz, t: i64) -> i64 {
    let dt = chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(t);
    i64::from(
        tz.offset_from_utc_datetime(&dt.naive_utc())
            .fix()
            .local_minus_utc(),
    ) * 1_000_000_000
}

/// The start of the bucket holding `t`: InfluxDB's `Window()`, which aligns on the epoch in
/// local time under a zone, then corrects for an offset change between `t` and the start.
pub(super) fn window_start(t: i64, interval: i64, offset: i64, tz: Option<chrono_tz::Tz>) -> i64 {
    let t = i128::from(t) - i128::from(offset);
    let zone = tz.map_or(0, |z| {
        i128::from(zone_offset(z, i64::try_from(t).unwrap_or(i64::MAX)))
    });
    let d = i128::from(interval);
    let dt = (t + zone).rem_euclid(d);
    let mut start = t - dt;
    if let Some(z) = tz {
        let start_zone = i128::from(zone_offset(z, i64::try_from(start).unwrap_or(i64::MIN)));
        let o = zone - start_zone;
        if o != 0 && o.abs() < d {
            start += o;
        }
    }
    let start = start + i128::from(offset);
    i64::try_from(start).unwrap_or(if start < 0 { i64::MIN } else { i64::MAX })
}

/// The start of the bucket after the one starting at `start`: the first time whose
/// [`window_start`] is later. Buckets are what InfluxDB's `Window()` makes of each point, so
/// across an offset change a bucket may last longer or shorter than the interval.
fn next_start(start: i64, interval: i64, offset: i64, tz: chrono_tz::Tz) -> i64 {
    let later = |t: i64| window_start(t, interval, offset, Some(tz)) > start;
    let guess = start.saturating_add(interval);
    if later(guess) && !later(guess.saturating_sub(1)) {
        return guess;
    }
    // Around an offset change: binary search, offsets move boundaries by less than a day.
    let (mut lo, mut hi) = (start, guess.saturating_add(DAY));
    if !later(hi) {
        return hi;
    }
    while hi.abs_diff(lo) > 1 {
        let mid = i64::try_from((i128::from(lo) + i128::from(hi)) / 2).unwrap_or(hi);
        if later(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

const DAY: i64 = 86_400_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;
    const D: i64 = 24 * H;

    #[test]
    fn utc_buckets_align_on_the_epoch_plus_offset() {
        let w = Windows::new(H, 0, None, 10, 3 * H).unwrap();
        assert_eq!(w.len(), 4);
        assert_eq!(w.index(H + 5), Some(1));
        assert_eq!(w.start(3), 3 * H);
        let w = Windows::new(H, H / 2, None, 0, 3 * H - 1).unwrap();
        assert_eq!(w.start(0), -H / 2);
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn zone_buckets_start_at_local_midnight_across_dst() {
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        // 2026-10-25 is the autumn switch in Paris: that local day lasts 25 hours.
        let day_before = 1_792_800_000_000_000_000 - 2 * H; // 2026-10-24T00:00+02:00
        let w = Windows::new(D, 0, Some(paris), day_before, day_before + 3 * D).unwrap();
        assert_eq!(w.start(0), day_before);
        assert_eq!(w.start(1), day_before + D);
        assert_eq!(w.start(2), day_before + 2 * D + H);
    }

    #[test]
    fn indexes_agree_with_index_in_any_order() {
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let min = 1_792_800_000_000_000_000 - 2 * H;
        let ts: Vec<i64> = [
            min - 1,
            min,
            min + 5,
            min + D - 1,
            min + D,
            min + 2 * D + H - 1,
            min + 2 * D + H,
            min + 3,
            min + 40 * D,
            min + 2 * D,
            i64::MAX,
            i64::MIN,
        ]
        .into();
        for w in [
            Windows::new(D, 0, Some(paris), min, min + 3 * D).unwrap(),
            Windows::new(D, H, None, min, min + 3 * D).unwrap(),
            Windows::new(H, 0, None, min, min + 3 * D).unwrap(),
        ] {
            let each: Vec<Option<usize>> = ts.iter().map(|&t| w.index(t)).collect();
            assert_eq!(w.indexes(&ts).collect::<Vec<_>>(), each);
            let mut sorted = ts.clone();
            sorted.sort_unstable();
            let each: Vec<Option<usize>> = sorted.iter().map(|&t| w.index(t)).collect();
            assert_eq!(w.indexes(&sorted).collect::<Vec<_>>(), each);
        }
    }

    #[test]
    fn too_many_buckets_is_an_error() {
        assert!(Windows::new(1, 0, None, 0, 10 * D).is_err());
    }
}
