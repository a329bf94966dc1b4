//! Functions with one small state per cell, updated in one pass: count, sum, mean, min, max,
//! spread, first, last.

use std::cmp::Ordering;

use super::super::super::{QueryError, Value};
use super::{Acc, Input, NO_CELL, Num, Point, conflict, each, grow};

pub(super) struct Count(pub(super) Vec<u64>);

impl Acc for Count {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        grow(&mut self.0, n);
        let counts = &mut self.0;
        let mut bump = |c: u32| {
            if let Some(x) = counts.get_mut(c as usize) {
                *x += 1;
            }
        };
        fn present<T>(cells: &[u32], v: &[Option<T>], bump: &mut impl FnMut(u32)) {
            for (&c, v) in cells.iter().zip(v) {
                if c != NO_CELL && v.is_some() {
                    bump(c);
                }
            }
        }
        match input {
            Input::F64(v) => present(cells, v, &mut bump),
            Input::I64(v) => present(cells, v, &mut bump),
            Input::U64(v) => present(cells, v, &mut bump),
            Input::Bool(v) => present(cells, v, &mut bump),
            Input::Str(v) => {
                for (row, &c) in cells.iter().enumerate() {
                    if c != NO_CELL && v.get(row).is_some() {
                        bump(c);
                    }
                }
            }
            Input::Present(present, _) => {
                for (&c, &p) in cells.iter().zip(*present) {
                    if c != NO_CELL && p {
                        bump(c);
                    }
                }
            }
            Input::Tag { .. } | Input::Const(_) | Input::Missing => {}
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(&n) = self.0.get(cell)
            && n > 0
        {
            out.push(Point::plain(Value::Integer(
                i64::try_from(n).unwrap_or(i64::MAX),
            )));
        }
    }
}

pub(super) struct Sum<T>(pub(super) Vec<Option<T>>);

impl<T: Num> Acc for Sum<T> {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.0, n);
        let sums = &mut self.0;
        each(cells, values, |c, _, v| {
            if let Some(s) = sums.get_mut(c) {
                *s = Some(s.map_or(v, |s| s.plus(v)));
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some(s)) = self.0.get(cell) {
            out.push(Point::plain(s.value()));
        }
    }
}

pub(super) struct Mean<T>(
    pub(super) Vec<(f64, u64)>,
    pub(super) std::marker::PhantomData<T>,
);

impl<T: Num> Acc for Mean<T> {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.0, n);
        let acc = &mut self.0;
        each(cells, values, |c, _, v| {
            if let Some((s, k)) = acc.get_mut(c) {
                *s += v.to_f64();
                *k += 1;
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(&(s, k)) = self.0.get(cell)
            && k > 0
        {
            out.push(Point::plain(Value::Float(s / k as f64)));
        }
    }
}

pub(super) struct MinMax<T> {
    pub(super) max: bool,
    pub(super) best: Vec<Option<(T, i64)>>,
}

impl<T: Num> Acc for MinMax<T> {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.best, n);
        let (best, max) = (&mut self.best, self.max);
        each(cells, values, |c, row, v| {
            let t = times.get(row).copied().unwrap_or(0);
            if let Some(b) = best.get_mut(c) {
                let better = match b {
                    None => true,
                    Some((cur, ct)) => {
                        let o = v.order(cur);
                        (if max {
                            o == Ordering::Greater
                        } else {
                            o == Ordering::Less
                        }) || (o == Ordering::Equal && t < *ct)
                    }
                };
                if better {
                    *b = Some((v, t));
                }
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some((v, t))) = self.best.get(cell) {
            out.push(Point::at(*t, v.value()));
        }
    }
}

pub(super) struct Spread<T>(pub(super) Vec<Option<(T, T)>>);

impl<T: Num> Acc for Spread<T> {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.0, n);
        let mm = &mut self.0;
        each(cells, values, |c, _, v| {
            if let Some(m) = mm.get_mut(c) {
                *m = Some(match *m {
                    None => (v, v),
                    Some((lo, hi)) => (
                        if v.order(&lo) == Ordering::Less {
                            v
                        } else {
                            lo
                        },
                        if v.order(&hi) == Ordering::Greater {
                            v
                        } else {
                            hi
                        },
                    ),
                });
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some((lo, hi))) = self.0.get(cell) {
            out.push(Point::plain(hi.minus(*lo).value()));
        }
    }
}

pub(super) struct FirstLast {
    pub(super) first: bool,
    pub(super) best: Vec<Option<(i64, Value)>>,
}

impl Acc for FirstLast {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        grow(&mut self.best, n);
        for (row, (&c, &t)) in cells.iter().zip(times).enumerate() {
            if c == NO_CELL {
                continue;
            }
            let Some(b) = self.best.get_mut(c as usize) else {
                continue;
            };
            // Decided on time first, so that most rows are skipped without reading a value.
            let (earlier, later) = match b {
                None => (true, true),
                Some((ct, _)) => (t < *ct, t > *ct),
            };
            let tie = b.as_ref().is_some_and(|(ct, _)| t == *ct);
            if !(if self.first { earlier } else { later }) && !tie {
                continue;
            }
            let Some(v) = input.value(row) else { continue };
            // On equal times InfluxDB keeps the larger value, for first and last alike.
            if tie && !b.as_ref().is_some_and(|(_, cur)| greater(&v, cur)) {
                continue;
            }
            *b = Some((t, v));
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some((t, v))) = self.best.get(cell) {
            out.push(Point::at(*t, v.clone()));
        }
    }
}

/// `a > b` for two values of one column, as Go compares them (`true > false`).
fn greater(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x > y,
        (Value::Integer(x), Value::Integer(y)) => x > y,
        (Value::Unsigned(x), Value::Unsigned(y)) => x > y,
        (Value::String(x), Value::String(y)) => x > y,
        (Value::Bool(x), Value::Bool(y)) => x & !y,
        _ => false,
    }
}
