//! Functions that keep every value of a cell until the end: median, percentile, stddev, top
//! and bottom (with a tag argument: the best point per tag value).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::super::super::{QueryError, Value};
use super::super::plan::AggKind;
use super::{Acc, Input, NO_TAG, Num, Point, conflict, each, grow};

/// Functions that need every value of a cell: median, percentile, stddev, top, bottom.
pub(super) struct Collect<T> {
    pub(super) kind: AggKind,
    pub(super) values: Vec<Vec<(T, i64)>>,
}

impl<T: Num> Acc for Collect<T> {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.values, n);
        let all = &mut self.values;
        each(cells, values, |c, row, v| {
            if let Some(cell) = all.get_mut(c) {
                cell.push((v, times.get(row).copied().unwrap_or(0)));
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        let Some(a) = self.values.get_mut(cell) else {
            return;
        };
        if a.is_empty() {
            return;
        }
        match &self.kind {
            AggKind::Median => {
                // Selection instead of a full sort: O(n) per cell.
                let (mid, even) = (a.len() / 2, a.len() % 2 == 0);
                let (lower, m, _) = a.select_nth_unstable_by(mid, |x, y| x.0.order(&y.0));
                let hi = m.0.to_f64();
                let v = if even {
                    match lower.iter().map(|p| p.0).max_by(|x, y| x.order(y)) {
                        Some(lo) => {
                            let lo = lo.to_f64();
                            lo + (hi - lo) / 2.0
                        }
                        None => return,
                    }
                } else {
                    hi
                };
                out.push(Point::plain(Value::Float(v)));
            }
            AggKind::Percentile(p) => {
                // InfluxDB's nearest rank: index floor(n * p / 100 + 0.5) - 1, none outside.
                let i = (a.len() as f64 * p / 100.0 + 0.5).floor() as i64 - 1;
                let Some(i) = usize::try_from(i).ok().filter(|&i| i < a.len()) else {
                    return;
                };
                let (_, (v, t), _) =
                    a.select_nth_unstable_by(i, |x, y| x.0.order(&y.0).then(x.1.cmp(&y.1)));
                out.push(Point::at(*t, v.value()));
            }
            AggKind::Stddev => {
                if a.len() < 2 {
                    out.push(Point::plain(Value::Null));
                    return;
                }
                // Go's two passes: a running mean, then the squared deviations.
                let mut mean = 0.0;
                for (k, (v, _)) in a.iter().enumerate() {
                    mean += (v.to_f64() - mean) / (k + 1) as f64;
                }
                let var: f64 = a.iter().map(|(v, _)| (v.to_f64() - mean).powi(2)).sum();
                out.push(Point::plain(Value::Float(
                    (var / (a.len() - 1) as f64).sqrt(),
                )));
            }
            AggKind::Top { n, .. } | AggKind::Bottom { n, .. } => {
                let top = matches!(self.kind, AggKind::Top { .. });
                a.sort_by(|x, y| rank(top, x, y));
                a.truncate(*n);
                a.sort_by_key(|p| p.1);
                out.extend(a.iter().map(|(v, t)| Point::at(*t, v.value())));
            }
            _ => {}
        }
    }
}

/// Order of `top` (largest first) or `bottom` (smallest first), earliest first on ties.
fn rank<T: Num>(top: bool, x: &(T, i64), y: &(T, i64)) -> Ordering {
    let o = x.0.order(&y.0);
    let o = if top { o.reverse() } else { o };
    o.then(x.1.cmp(&y.1))
}

/// `top(f, tag, n)` / `bottom(f, tag, n)`: the best point per tag value, then the best `n`.
pub(super) struct TopByTag<T> {
    pub(super) top: bool,
    pub(super) n: usize,
    pub(super) cells: Vec<HashMap<Option<String>, (T, i64)>>,
}

impl<T: Num> Acc for TopByTag<T> {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        aux: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        if self.cells.len() < n {
            self.cells.resize_with(n, HashMap::new);
        }
        // Reduce per (cell, dictionary id) first so that strings are touched once per batch.
        let mut local: HashMap<(u32, u32), (T, i64)> = HashMap::new();
        let top = self.top;
        each(cells, values, |c, row, v| {
            let id = match aux {
                Input::Tag { ids, .. } => ids.get(row).copied().unwrap_or(NO_TAG),
                Input::Const(_) => 0,
                _ => NO_TAG,
            };
            let t = times.get(row).copied().unwrap_or(0);
            let key = (c as u32, id);
            match local.get_mut(&key) {
                Some(cur) => {
                    if rank(top, &(v, t), cur) == Ordering::Less {
                        *cur = (v, t);
                    }
                }
                None => {
                    local.insert(key, (v, t));
                }
            }
        });
        for ((c, id), p) in local {
            let name = match aux {
                Input::Tag { dict, .. } if id != NO_TAG => dict.get(id as usize).cloned(),
                Input::Const(s) => Some((*s).to_owned()),
                _ => None,
            };
            if let Some(m) = self.cells.get_mut(c as usize) {
                match m.get_mut(&name) {
                    Some(cur) => {
                        if rank(top, &p, cur) == Ordering::Less {
                            *cur = p;
                        }
                    }
                    None => {
                        m.insert(name, p);
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        let Some(m) = self.cells.get(cell) else {
            return;
        };
        let mut pts: Vec<(&Option<String>, &(T, i64))> = m.iter().collect();
        pts.sort_by(|x, y| rank(self.top, x.1, y.1).then(x.0.cmp(y.0)));
        pts.truncate(self.n);
        pts.sort_by_key(|p| p.1.1);
        out.extend(pts.into_iter().map(|(tag, (v, t))| {
            Point {
                time: Some(*t),
                value: v.value(),
                aux: Some(
                    tag.as_ref()
                        .map_or(Value::Null, |s| Value::String(s.clone())),
                ),
            }
        }));
    }
}
