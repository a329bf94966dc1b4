//! `distinct` and `count(distinct)`: the set of values of a cell, each with the time it was
//! first seen.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::super::super::{QueryError, Value};
use super::{Acc, Input, NO_CELL, NO_TAG, Point, conflict, each};

/// `distinct(x)` and `count(distinct(x))`, over fields of any type and over tags. Each value
/// keeps the time it was first seen: InfluxDB lists distinct values in that order.
pub(super) struct Distinct {
    count_only: bool,
    /// Under `ORDER BY time DESC` InfluxDB reads points backwards, so a value is "first seen"
    /// at its last occurrence.
    descending: bool,
    sets: Sets,
}

/// Per cell: value → (first, last) time it occurs.
type FirstSeen<K> = Vec<HashMap<K, (i64, i64)>>;

enum Sets {
    /// Numbers by bit pattern, with the type to decode them.
    Num(FirstSeen<u64>, u8),
    Bool(FirstSeen<bool>),
    Str(FirstSeen<String>),
}

const F: u8 = 0;
const I: u8 = 1;
const U: u8 = 2;

impl Distinct {
    pub(super) fn new(input: &Input<'_>, count_only: bool, descending: bool) -> Distinct {
        let sets = match input {
            Input::F64(_) => Sets::Num(Vec::new(), F),
            Input::I64(_) => Sets::Num(Vec::new(), I),
            Input::U64(_) => Sets::Num(Vec::new(), U),
            Input::Bool(_) => Sets::Bool(Vec::new()),
            _ => Sets::Str(Vec::new()),
        };
        Distinct {
            count_only,
            descending,
            sets,
        }
    }
}

/// Records `key` as seen at `t` in `set`.
fn see<K: std::hash::Hash + Eq>(set: &mut HashMap<K, (i64, i64)>, key: K, t: i64) {
    set.entry(key).and_modify(|e| widen(e, t)).or_insert((t, t));
}

fn widen(e: &mut (i64, i64), t: i64) {
    e.0 = e.0.min(t);
    e.1 = e.1.max(t);
}

fn sized<K>(sets: &mut FirstSeen<K>, n: usize) {
    if sets.len() < n {
        sets.resize_with(n, HashMap::new);
    }
}

impl Acc for Distinct {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let time = |row: usize| times.get(row).copied().unwrap_or(0);
        match (&mut self.sets, input) {
            (Sets::Num(sets, F), Input::F64(v)) => num_sets(sets, n, cells, times, v, f64::to_bits),
            (Sets::Num(sets, I), Input::I64(v)) => num_sets(sets, n, cells, times, v, |x| x as u64),
            (Sets::Num(sets, U), Input::U64(v)) => num_sets(sets, n, cells, times, v, |x| x),
            (Sets::Bool(sets), Input::Bool(v)) => {
                sized(sets, n);
                each(cells, v, |c, row, b| {
                    if let Some(s) = sets.get_mut(c) {
                        see(s, b, time(row));
                    }
                });
            }
            (Sets::Str(sets), Input::Str(v)) => {
                sized(sets, n);
                for (row, &c) in cells.iter().enumerate() {
                    if c == NO_CELL {
                        continue;
                    }
                    if let (Some(s), Some(set)) = (v.get(row), sets.get_mut(c as usize)) {
                        // Look up by &str first: a String is allocated only for a new value.
                        match set.get_mut(s) {
                            Some(e) => widen(e, time(row)),
                            None => {
                                set.insert(s.to_owned(), (time(row), time(row)));
                            }
                        }
                    }
                }
            }
            (Sets::Str(sets), Input::Tag { ids, dict }) => {
                sized(sets, n);
                // One string lookup per (cell, dictionary id) and batch.
                let mut local: HashMap<(u32, u32), (i64, i64)> = HashMap::new();
                for (row, (&c, &id)) in cells.iter().zip(ids.iter()).enumerate() {
                    if c != NO_CELL && id != NO_TAG {
                        see(&mut local, (c, id), time(row));
                    }
                }
                for ((c, id), t) in local {
                    if let (Some(s), Some(set)) = (dict.get(id as usize), sets.get_mut(c as usize))
                    {
                        match set.get_mut(s.as_str()) {
                            Some(e) => {
                                e.0 = e.0.min(t.0);
                                e.1 = e.1.max(t.1);
                            }
                            None => {
                                set.insert(s.clone(), t);
                            }
                        }
                    }
                }
            }
            (Sets::Str(sets), Input::Const(s)) => {
                sized(sets, n);
                for (row, &c) in cells.iter().enumerate() {
                    if let Some(set) = sets.get_mut(c as usize) {
                        match set.get_mut(*s) {
                            Some(e) => widen(e, time(row)),
                            None => {
                                set.insert((*s).to_owned(), (time(row), time(row)));
                            }
                        }
                    }
                }
            }
            (_, other) => return Err(conflict(other)),
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        let values: Vec<Value> = match &self.sets {
            Sets::Num(sets, ty) => {
                let Some(s) = sets.get(cell) else { return };
                let decode = |b: u64| match *ty {
                    F => Value::Float(f64::from_bits(b)),
                    I => Value::Integer(b as i64),
                    _ => Value::Unsigned(b),
                };
                in_first_seen_order(s, self.descending, |a, b| match *ty {
                    F => f64::from_bits(*a).total_cmp(&f64::from_bits(*b)),
                    I => (*a as i64).cmp(&(*b as i64)),
                    _ => a.cmp(b),
                })
                .into_iter()
                .map(|b| decode(*b))
                .collect()
            }
            Sets::Bool(sets) => {
                let Some(s) = sets.get(cell) else { return };
                in_first_seen_order(s, self.descending, bool::cmp)
                    .into_iter()
                    .map(|b| Value::Bool(*b))
                    .collect()
            }
            Sets::Str(sets) => {
                let Some(s) = sets.get(cell) else { return };
                in_first_seen_order(s, self.descending, String::cmp)
                    .into_iter()
                    .map(|s| Value::String(s.clone()))
                    .collect()
            }
        };
        if values.is_empty() {
            return;
        }
        if self.count_only {
            out.push(Point::plain(Value::Integer(
                i64::try_from(values.len()).unwrap_or(i64::MAX),
            )));
        } else {
            out.extend(values.into_iter().map(Point::plain));
        }
    }
}

/// The keys ordered by the time they were first seen (reading backwards when descending),
/// then by value.
fn in_first_seen_order<K>(
    set: &HashMap<K, (i64, i64)>,
    descending: bool,
    cmp: impl Fn(&K, &K) -> Ordering,
) -> Vec<&K> {
    let mut v: Vec<(&K, i64)> = set
        .iter()
        .map(|(k, t)| (k, if descending { t.1 } else { t.0 }))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| cmp(a.0, b.0)));
    v.into_iter().map(|(k, _)| k).collect()
}

fn num_sets<T: Copy>(
    sets: &mut FirstSeen<u64>,
    n: usize,
    cells: &[u32],
    times: &[i64],
    v: &[Option<T>],
    bits: impl Fn(T) -> u64,
) {
    sized(sets, n);
    each(cells, v, |c, row, x| {
        if let Some(s) = sets.get_mut(c) {
            see(s, bits(x), times.get(row).copied().unwrap_or(0));
        }
    });
}
