//! Aggregate statements: rows → cells (series × time bucket) → one state per cell and
//! function → rows per series, with fill. The time column follows InfluxDB: the bucket start
//! with `GROUP BY time`; otherwise the selected point's time for a lone selector, else the
//! query's lower time bound (0 without one).

use std::collections::BTreeMap;

use super::super::ast::{Fill, Page};
use super::super::{QueryError, Value};
use super::aggregate::{Aggregator, Input, NO_CELL, Point};
use super::columns::{EVENT_ID, Kind, resolve};
use super::fill;
use super::plan::{AggKind, Call};
use super::series::SeriesSet;
use super::window::Windows;
use super::{Context, Output};
use crate::model::FieldType;
use crate::scan::ColumnBatch;

// The memory budget: at most `ctx.budget.max_cells` cells (series × buckets; each costs one
// state per function) and `ctx.budget.max_rows` rows returned (`distinct` can return one per
// point).

/// Runs the aggregate `calls` over `batches`.
pub(super) fn run(
    calls: &[Call],
    batches: &[ColumnBatch],
    ctx: &Context<'_>,
) -> Result<Vec<Output>, QueryError> {
    let expanded;
    let calls = if calls.iter().any(|c| c.expand.is_some()) {
        expanded = expand(calls, batches);
        expanded.as_slice()
    } else {
        calls
    };
    let windows = match ctx.interval {
        Some((interval, offset)) => {
            let min = if ctx.time.has_min() {
                ctx.time.min
            } else {
                // Without a lower bound the buckets start at the first point read.
                match first_time(batches, ctx) {
                    Some(t) => t,
                    None => return Ok(Vec::new()),
                }
            };
            Some(Windows::new(interval, offset, ctx.tz, min, ctx.time.max)?)
        }
        None => None,
    };
    let mut grid = Grid {
        calls,
        n_buckets: windows.as_ref().map_or(1, Windows::len),
        windows,
        set: SeriesSet::new(ctx.dims.to_vec()),
        aggs: calls
            .iter()
            .map(|c| Aggregator::new(c.kind.clone(), &c.field, ctx.descending))
            .collect(),
    };
    if grid.n_buckets == 0 {
        return Ok(Vec::new());
    }
    grid.feed(batches, ctx)?;
    grid.emit(ctx)
}

/// The cells of one statement: series × buckets, one state per cell and function.
struct Grid<'c> {
    calls: &'c [Call],
    windows: Option<Windows>,
    n_buckets: usize,
    set: SeriesSet,
    aggs: Vec<Aggregator>,
}

impl Grid<'_> {
    /// Assigns each row its cell, batch by batch, and feeds the functions column by column.
    fn feed(&mut self, batches: &[ColumnBatch], ctx: &Context<'_>) -> Result<(), QueryError> {
        let (mut mask, mut series, mut cells) = (Vec::new(), Vec::new(), Vec::<u32>::new());
        let max_cells = ctx.budget.max_cells;
        for batch in batches {
            ctx.budget.check()?;
            ctx.mask(batch, &mut mask);
            self.set.assign(batch, &mask, &mut series)?;
            let n_cells = self.set.len().saturating_mul(self.n_buckets);
            if n_cells > max_cells {
                return Err(QueryError::Invalid(format!(
                    "the query would hold {n_cells} series × buckets, more than the \
                     {max_cells} allowed (query_max_cells): narrow the time range, use a \
                     larger interval or fewer GROUP BY tags"
                )));
            }
            cells.clear();
            let cell = |s: u32, b: Option<usize>| match (s, b) {
                (NO_CELL, _) | (_, None) => NO_CELL,
                (s, Some(b)) => u32::try_from(s as usize * self.n_buckets + b).unwrap_or(NO_CELL),
            };
            match &self.windows {
                Some(w) => cells.extend(
                    series
                        .iter()
                        .zip(w.indexes(&batch.timestamps))
                        .map(|(&s, b)| cell(s, b)),
                ),
                None => cells.extend(series.iter().map(|&s| cell(s, Some(0)))),
            }
            for (agg, call) in self.aggs.iter_mut().zip(self.calls) {
                let kind = Kind::of_cast(call.cast.as_deref());
                let input = match batch.presence(&call.field) {
                    Some(p) if kind != Kind::Tag => Input::Present(&p.present, p.ty),
                    _ => Input::of(resolve(batch, &call.field, kind)),
                };
                let aux = match &call.kind {
                    AggKind::Top { tag: Some(t), .. } | AggKind::Bottom { tag: Some(t), .. } => {
                        Input::of(resolve(batch, t, Kind::Tag))
                    }
                    _ => Input::Missing,
                };
                agg.add(&cells, &batch.timestamps, input, aux, n_cells)?;
            }
        }
        Ok(())
    }

    /// The time column of bucket `b` (without `GROUP BY time`: the lower bound, or 0).
    fn bucket_time(&self, b: usize, ctx: &Context<'_>) -> i64 {
        match &self.windows {
            Some(w) => w.start(b),
            None if ctx.time.has_min() => ctx.time.min,
            None => 0,
        }
    }

    /// One output per series that has a value, in series order.
    fn emit(mut self, ctx: &Context<'_>) -> Result<Vec<Output>, QueryError> {
        let mut columns = vec!["time".to_owned()];
        columns.extend(self.calls.iter().map(|c| c.column.clone()));
        if let Some(AggKind::Top { tag: Some(t), .. } | AggKind::Bottom { tag: Some(t), .. }) =
            self.calls.first().map(|c| &c.kind)
        {
            columns.push(t.clone());
        }
        let multi_row = self.calls.iter().any(|c| c.kind.is_multi_row());
        let mut out = Vec::new();
        let mut n_rows = 0usize;
        let max_rows = ctx.budget.max_rows;
        for s in self.set.sorted() {
            ctx.budget.check()?;
            let rows = if multi_row {
                self.multi_rows(s, ctx)
            } else {
                self.filled_rows(s, ctx)
            };
            if rows.is_empty() {
                continue;
            }
            n_rows += rows.len();
            if n_rows > max_rows {
                return Err(QueryError::Invalid(format!(
                    "the query returns more than {max_rows} rows (query_max_rows): narrow the \
                     time range or use a larger interval"
                )));
            }
            let Some(key) = self.set.key(s) else { continue };
            out.push(Output {
                key: key.clone(),
                tags: self.set.tags(s),
                columns: columns.clone(),
                rows,
            });
        }
        Ok(out)
    }

    /// Bucket indexes in output order.
    fn buckets(&self, from: usize, ctx: &Context<'_>) -> Vec<usize> {
        let mut order: Vec<usize> = (from..self.n_buckets).collect();
        if ctx.descending {
            order.reverse();
        }
        order
    }

    /// Rows of `distinct`, `top` or `bottom` (alone in their statement), in output order,
    /// paged: every point of every bucket; `top`/`bottom` keep their points' times (ascending
    /// within a bucket even under `ORDER BY time DESC`, as InfluxDB lists them). Empty buckets
    /// are not filled.
    fn multi_rows(&mut self, s: usize, ctx: &Context<'_>) -> Vec<Vec<Value>> {
        let keeps_time = !matches!(self.calls.first().map(|c| &c.kind), Some(AggKind::Distinct));
        let mut rows = Vec::new();
        let mut points: Vec<Point> = Vec::new();
        for b in self.buckets(0, ctx) {
            points.clear();
            for agg in &mut self.aggs {
                agg.emit(s * self.n_buckets + b, &mut points);
            }
            for p in points.drain(..) {
                let time = match p.time {
                    Some(t) if keeps_time => t,
                    _ => self.bucket_time(b, ctx),
                };
                let mut row = vec![Value::Time(time), p.value];
                row.extend(p.aux);
                rows.push(row);
            }
        }
        ctx.page(rows)
    }

    /// Rows of single-valued functions, in output order, paged: one per bucket, empty buckets
    /// filled (only under `GROUP BY time`: without it InfluxDB does not fill, not even
    /// `count`).
    fn filled_rows(&mut self, s: usize, ctx: &Context<'_>) -> Vec<Vec<Value>> {
        let lone_selector = self.windows.is_none()
            && self.calls.len() == 1
            && self.calls.iter().all(|c| c.kind.is_selector());
        let mut grid: Vec<Vec<Option<Value>>> = Vec::with_capacity(self.n_buckets);
        let mut selected_time: Vec<Option<i64>> = Vec::with_capacity(self.n_buckets);
        let mut points: Vec<Point> = Vec::new();
        for b in 0..self.n_buckets {
            let mut row = Vec::with_capacity(self.aggs.len());
            let mut time = None;
            for agg in &mut self.aggs {
                points.clear();
                agg.emit(s * self.n_buckets + b, &mut points);
                let p = points.drain(..).next();
                time = time.or(p.as_ref().and_then(|p| p.time));
                row.push(p.map(|p| p.value));
            }
            grid.push(row);
            selected_time.push(time);
        }
        let Some(first) = grid.iter().position(|r| r.iter().any(Option::is_some)) else {
            return Vec::new();
        };
        // Without a lower bound a series starts at its own first non-empty bucket.
        let skip = if self.windows.is_some() && !ctx.time.has_min() {
            first
        } else {
            0
        };
        // InfluxDB fills in output order: under ORDER BY time DESC, `previous` is the later
        // bucket.
        let order = self.buckets(skip, ctx);
        let times: Vec<i64> = order.iter().map(|&b| self.bucket_time(b, ctx)).collect();
        let ordered: Vec<Vec<Option<Value>>> = order
            .iter()
            .map(|&b| grid.get_mut(b).map(std::mem::take).unwrap_or_default())
            .collect();
        let columns: Vec<fill::Column> = self
            .aggs
            .iter()
            .zip(self.calls)
            .map(|(a, c)| fill::Column {
                count: c.kind.is_count(),
                ty: a.output_type(),
            })
            .collect();
        let fill = match (&self.windows, ctx.fill) {
            (None, _) => &Fill::None,
            (Some(_), f) if ctx.nested && *f == Fill::Null => &Fill::None,
            (Some(_), f) => f,
        };
        let per_column = *fill == Fill::None && self.calls.len() > 1 && ctx.page != Page::default();
        let ordered = if per_column {
            page_columns(ordered, ctx)
        } else {
            ordered
        };
        let mut rows = Vec::new();
        for (i, values) in fill::apply(ordered, &times, fill, &columns) {
            let b = order.get(i).copied().unwrap_or(0);
            let time = match selected_time.get(b).copied().flatten() {
                Some(t) if lone_selector => t,
                _ => self.bucket_time(b, ctx),
            };
            let mut row = Vec::with_capacity(values.len() + 1);
            row.push(Value::Time(time));
            row.extend(values);
            rows.push(row);
        }
        if per_column { rows } else { ctx.page(rows) }
    }
}

/// `LIMIT`/`OFFSET` per column, as InfluxDB applies them to each function's points before
/// joining them by time under `fill(none)`: a row is kept when any of its cells is.
fn page_columns(mut grid: Vec<Vec<Option<Value>>>, ctx: &Context<'_>) -> Vec<Vec<Option<Value>>> {
    let n_columns = grid.first().map_or(0, Vec::len);
    let mut kept = vec![vec![false; n_columns]; grid.len()];
    for c in 0..n_columns {
        let present = (0..grid.len()).filter(|&b| {
            grid.get(b)
                .and_then(|r| r.get(c))
                .is_some_and(Option::is_some)
        });
        for b in ctx.page(present) {
            if let Some(k) = kept.get_mut(b).and_then(|r| r.get_mut(c)) {
                *k = true;
            }
        }
    }
    for (row, keep) in grid.iter_mut().zip(&kept) {
        for (cell, k) in row.iter_mut().zip(keep) {
            if !k {
                *cell = None;
            }
        }
    }
    grid
}

/// The earliest time of a row that passes the filters.
fn first_time(batches: &[ColumnBatch], ctx: &Context<'_>) -> Option<i64> {
    let mut mask = Vec::new();
    batches
        .iter()
        .filter_map(|b| {
            ctx.mask(b, &mut mask);
            b.timestamps
                .iter()
                .zip(&mask)
                .filter(|(_, m)| **m)
                .map(|(t, _)| *t)
                .min()
        })
        .min()
}

/// `f(*)` and `f(/re/)` as one call per field of the data read that `f` accepts, in field
/// name order, named `<f>_<field>` as InfluxDB names them.
fn expand(calls: &[Call], batches: &[ColumnBatch]) -> Vec<Call> {
    let mut types: BTreeMap<&str, Vec<FieldType>> = BTreeMap::new();
    for b in batches {
        for f in &b.fields {
            types.entry(&f.key).or_default().push(f.values.field_type());
        }
        if b.event_ids.is_some() {
            types.entry(EVENT_ID).or_default().push(FieldType::String);
        }
    }
    let mut out = Vec::new();
    for c in calls {
        let Some(pattern) = &c.expand else {
            out.push(c.clone());
            continue;
        };
        for (name, tys) in &types {
            if pattern.as_ref().is_some_and(|re| !re.is_match(name)) {
                continue;
            }
            let numeric = tys.iter().any(|t| {
                matches!(
                    t,
                    FieldType::Float | FieldType::Integer | FieldType::Unsigned
                )
            });
            let any_type = matches!(
                c.kind,
                AggKind::Count
                    | AggKind::CountDistinct
                    | AggKind::Distinct
                    | AggKind::First
                    | AggKind::Last
            );
            if numeric || any_type {
                out.push(Call {
                    kind: c.kind.clone(),
                    field: (*name).to_owned(),
                    cast: None,
                    column: format!("{}_{name}", c.column),
                    expand: None,
                });
            }
        }
    }
    out
}
