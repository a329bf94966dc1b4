//! `fill(...)`: what an empty bucket shows, column by column (each aggregate is filled on its
//! own, as InfluxDB fills each call's iterator): `null` (but `0` for `count`), `none` (the
//! row is dropped when every column is empty), a number (cast to the column's type),
//! `previous`, or `linear` interpolation between the neighbouring non-empty buckets.

use super::super::Value;
use super::super::ast::{Fill, Literal};
use crate::model::FieldType;

/// What a column needs to know about itself to be filled.
#[derive(Clone, Copy, Debug)]
pub(super) struct Column {
    /// `count` or `count(distinct)`.
    pub count: bool,
    /// The type of its values, when known: a fill number is cast to it.
    pub ty: Option<FieldType>,
}

/// Fills `grid` (one row per bucket in output order, one cell per column, `None` = empty)
/// and returns the rows to keep with their index. `times` are the bucket start times.
///
/// (In a subquery InfluxDB leaves empty buckets null under `fill(null)`, even for `count`,
/// and an outer query ignores rows without values: the caller passes `fill(none)` there.)
pub(super) fn apply(
    grid: Vec<Vec<Option<Value>>>,
    times: &[i64],
    fill: &Fill,
    columns: &[Column],
) -> Vec<(usize, Vec<Value>)> {
    let mut out = Vec::with_capacity(grid.len());
    match fill {
        Fill::None => {
            for (b, row) in grid.into_iter().enumerate() {
                if row.iter().any(Option::is_some) {
                    out.push((
                        b,
                        row.into_iter().map(|v| v.unwrap_or(Value::Null)).collect(),
                    ));
                }
            }
        }
        Fill::Null => {
            for (b, row) in grid.into_iter().enumerate() {
                let row = row
                    .into_iter()
                    .zip(columns)
                    .map(|(v, c)| match v {
                        Some(v) => v,
                        None if c.count => Value::Integer(0),
                        None => Value::Null,
                    })
                    .collect();
                out.push((b, row));
            }
        }
        Fill::Number(lit) => {
            for (b, row) in grid.into_iter().enumerate() {
                let row = row
                    .into_iter()
                    .zip(columns)
                    .map(|(v, c)| v.unwrap_or_else(|| number(lit, c.ty)))
                    .collect();
                out.push((b, row));
            }
        }
        Fill::Previous => {
            let mut prev: Vec<Value> = vec![Value::Null; columns.len()];
            for (b, row) in grid.into_iter().enumerate() {
                let row = row
                    .into_iter()
                    .zip(prev.iter_mut())
                    .map(|(v, p)| match v {
                        Some(v) => {
                            *p = v.clone();
                            v
                        }
                        None => p.clone(),
                    })
                    .collect();
                out.push((b, row));
            }
        }
        Fill::Linear => {
            let filled: Vec<Vec<Value>> = (0..columns.len())
                .map(|c| linear_column(&grid, times, c))
                .collect();
            for b in 0..grid.len() {
                let row = filled
                    .iter()
                    .map(|col| col.get(b).cloned().unwrap_or(Value::Null))
                    .collect();
                out.push((b, row));
            }
        }
    }
    out
}

/// A fill number as a value of the column's type, as InfluxDB casts it (a string column
/// gets `""`, a boolean one `false`).
fn number(lit: &Literal, ty: Option<FieldType>) -> Value {
    let f = match lit {
        Literal::Integer(i) => *i as f64,
        Literal::Unsigned(u) => *u as f64,
        Literal::Float(f) => *f,
        Literal::Duration(d) => *d as f64,
        Literal::Boolean(_) | Literal::String(_) => return Value::Null,
    };
    match ty {
        Some(FieldType::Integer) => match lit {
            Literal::Integer(i) => Value::Integer(*i),
            _ => Value::Integer(f as i64),
        },
        Some(FieldType::Unsigned) => Value::Unsigned(f as u64),
        Some(FieldType::String) => Value::String(String::new()),
        Some(FieldType::Boolean) => Value::Bool(false),
        Some(FieldType::Float) | None => Value::Float(f),
    }
}

fn linear_column(grid: &[Vec<Option<Value>>], times: &[i64], c: usize) -> Vec<Value> {
    let cell = |b: usize| grid.get(b).and_then(|r| r.get(c)).and_then(Option::as_ref);
    let time = |b: usize| times.get(b).copied().unwrap_or(0);
    // The next non-empty bucket of every bucket, found in one backward pass.
    let mut next = vec![None; grid.len()];
    let mut after = None;
    for b in (0..grid.len()).rev() {
        if let Some(slot) = next.get_mut(b) {
            *slot = after;
        }
        if cell(b).is_some() {
            after = Some(b);
        }
    }
    let mut out = Vec::with_capacity(grid.len());
    let mut prev: Option<usize> = None;
    for b in 0..grid.len() {
        if let Some(v) = cell(b) {
            out.push(v.clone());
            prev = Some(b);
            continue;
        }
        let v = match (prev, next.get(b).copied().flatten()) {
            (Some(p), Some(n)) => match (cell(p), cell(n)) {
                (Some(pv), Some(nv)) => interpolate(pv, nv, time(p), time(n), time(b)),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
        out.push(v);
    }
    out
}

/// InfluxDB's `linearFloat` / `linearInteger`: the value on the line between the neighbours.
fn interpolate(prev: &Value, next: &Value, tp: i64, tn: i64, t: i64) -> Value {
    // i128: bucket times far apart must not overflow.
    let dt = (i128::from(tn) - i128::from(tp)) as f64;
    let x = (i128::from(t) - i128::from(tp)) as f64;
    match (prev, next) {
        (Value::Integer(a), Value::Integer(b)) => {
            let m = (i128::from(*b) - i128::from(*a)) as f64 / dt;
            Value::Integer((m * x + *a as f64) as i64)
        }
        (Value::Float(a), Value::Float(b)) => Value::Float((b - a) / dt * x + a),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(v: &[Option<i64>]) -> Vec<Vec<Option<Value>>> {
        v.iter().map(|x| vec![x.map(Value::Integer)]).collect()
    }

    const SUM: Column = Column {
        count: false,
        ty: Some(FieldType::Integer),
    };

    #[test]
    fn linear_interpolates_integers_like_influxdb() {
        let out = apply(
            grid(&[Some(1), None, None, Some(10), None]),
            &[0, 1, 2, 3, 4],
            &Fill::Linear,
            &[SUM],
        );
        let vals: Vec<Value> = out.into_iter().map(|(_, r)| r[0].clone()).collect();
        assert_eq!(
            vals,
            vec![
                Value::Integer(1),
                Value::Integer(4),
                Value::Integer(7),
                Value::Integer(10),
                Value::Null
            ]
        );
    }

    #[test]
    fn null_fill_counts_zero() {
        let count = Column {
            count: true,
            ty: Some(FieldType::Integer),
        };
        let out = apply(grid(&[None]), &[0], &Fill::Null, &[count]);
        assert_eq!(out[0].1, vec![Value::Integer(0)]);
    }

    #[test]
    fn none_drops_empty_rows_and_previous_carries() {
        assert!(apply(grid(&[None]), &[0], &Fill::None, &[SUM]).is_empty());
        let out = apply(
            grid(&[None, Some(2), None]),
            &[0, 1, 2],
            &Fill::Previous,
            &[SUM],
        );
        let vals: Vec<Value> = out.into_iter().map(|(_, r)| r[0].clone()).collect();
        assert_eq!(
            vals,
            vec![Value::Null, Value::Integer(2), Value::Integer(2)]
        );
    }
}
