//! `SELECT`: raw rows, aggregates, `GROUP BY time` and tags, fill, subqueries, top/bottom.
//!
//! A statement runs in four steps, each owned by a submodule:
//! 1. `plan` reads the projections and dimensions; `condition` splits `WHERE` into the
//!    time range, the tenant and a residual condition (`filter`).
//! 2. `source` reads the needed columns as batches: a scan with tenant, measurement, time
//!    range, tag conditions (`pushdown`) and columns pushed down, a regex over
//!    measurements, or a subquery's result.
//! 3. `raw` or `grouped` turns batches into rows per series, in output order and paged
//!    (`LIMIT`/`OFFSET`): rows are assigned to series (`series`) and time buckets (`window`)
//!    per batch, then fed column at a time to the functions (`aggregate`); empty buckets are
//!    filled (`fill`).
//! 4. The series are ordered here (`ORDER BY time DESC`, `SLIMIT`/`SOFFSET`).
//!
//! The tenant is a tag named `tenant` and the event id a string field named `event_id`
//! (`columns`). MeterDB extension: `distinct()` and `count(distinct())` also read tags,
//! `tenant` included.
//!
//! Known differences from InfluxDB 1.6 (the rest is checked against its recorded answers in
//! `tests/influxql_select.rs`): float sums, means and deviations may differ in the last digit
//! (values are added in another order); `SLIMIT` counts output series, where InfluxDB counts
//! stored series before grouping; points tied on value and time may come in another order
//! from `top`/`bottom`/`percentile`; `SELECT *` over a subquery keeps its rows whole, where
//! InfluxDB splits them per column.
//!
//! Subqueries follow InfluxDB: the outer time range bounds the subquery, the outer `GROUP BY`
//! tags and interval are pushed into it (a subquery without `GROUP BY time` aggregates per
//! outer bucket), and `fill(null)` inside a subquery leaves empty buckets out.

mod aggregate;
mod columns;
// SHOW reads its WHERE's time bounds with the same rules.
pub(super) mod condition;
mod fill;
mod filter;
mod grouped;
mod plan;
mod pushdown;
mod raw;
mod series;
mod source;
mod window;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use super::ast::{Expr, Fill, Page, SelectStatement};
use super::{QueryBudget, QueryError, QueryOptions, Series, Value};
use crate::Engine;
use crate::scan::ColumnBatch;
use condition::TimeRange;
use filter::Cond;
use plan::{Dims, Plan, Projection, RawColumn};
use series::SeriesKey;

/// Runs a `SELECT`.
pub fn execute(
    engine: &Engine,
    statement: &SelectStatement,
    options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    run(engine, statement, options, &Outer::default())
}

/// What the row-producing steps share.
pub(super) struct Context<'a> {
    /// Time range rows must fall in.
    time: TimeRange,
    /// True when the rows come from subqueries.
    from_subquery: bool,
    /// Residual condition.
    cond: Option<&'a Cond>,
    /// Names known to be fields.
    fields: &'a HashSet<String>,
    /// `GROUP BY` tag keys, sorted.
    dims: &'a [String],
    /// `GROUP BY time(interval, offset)`.
    interval: Option<(i64, i64)>,
    /// `tz(...)`.
    tz: Option<chrono_tz::Tz>,
    /// `fill(...)`.
    fill: &'a Fill,
    /// True inside a subquery.
    nested: bool,
    /// `ORDER BY time DESC`.
    descending: bool,
    /// `LIMIT` / `OFFSET`: rows per series, applied where the rows are made, in output order.
    page: Page,
    /// Time and memory the statement may spend.
    budget: &'a QueryBudget,
}

impl Context<'_> {
    /// `OFFSET + LIMIT` when a `LIMIT` is given: no row after that many is returned.
    fn keep(&self) -> Option<usize> {
        (self.page.limit > 0).then(|| {
            usize::try_from(self.page.limit.saturating_add(self.page.offset)).unwrap_or(usize::MAX)
        })
    }

    /// `OFFSET` and `LIMIT` applied to rows in output order.
    fn page<T>(&self, rows: impl IntoIterator<Item = T>) -> Vec<T> {
        let skip = usize::try_from(self.page.offset).unwrap_or(usize::MAX);
        let take = match self.page.limit {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        rows.into_iter().skip(skip).take(take).collect()
    }

    /// The rows of `batch` that pass the time range and the residual condition.
    fn mask(&self, batch: &ColumnBatch, mask: &mut Vec<bool>) {
        mask.clear();
        if self.from_subquery {
            // A subquery is bounded by the outer time range already, and InfluxDB keeps its
            // bucket starts even before that range.
            mask.resize(batch.len(), true);
        } else {
            mask.extend(batch.timestamps.iter().map(|&t| self.time.contains(t)));
        }
        if let Some(c) = self.cond {
            c.apply(batch, self.fields, mask);
        }
    }
}

/// One series of a statement, before ordering and paging.
pub(super) struct Output {
    key: SeriesKey,
    tags: Vec<(String, String)>,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// What an outer statement imposes on its subquery.
#[derive(Clone, Debug)]
pub(super) struct Outer {
    /// True inside a subquery.
    nested: bool,
    /// The outer time range, which also bounds the subquery's.
    time: TimeRange,
    /// The outer `GROUP BY` tags named (not `*` or regexes, which expand to the subquery's
    /// own tags): InfluxDB groups the subquery by them too, so that the outer statement can
    /// group by tags the subquery did not name.
    dims: Dims,
    /// The outer `GROUP BY time(...)`: a subquery without one aggregates per outer bucket,
    /// as in InfluxDB.
    interval: Option<(i64, i64)>,
}

impl Default for Outer {
    fn default() -> Outer {
        Outer {
            nested: false,
            time: TimeRange::ALL,
            dims: Dims::default(),
            interval: None,
        }
    }
}

/// Runs a statement, inside the bounds of an outer one when it is a subquery.
fn run(
    engine: &Engine,
    stmt: &SelectStatement,
    options: &QueryOptions,
    outer: &Outer,
) -> Result<Vec<Series>, QueryError> {
    options.budget.check()?;
    let mut plan = Plan::new(stmt)?;
    plan.dims.merge(&outer.dims);
    if plan.interval.is_none() && matches!(plan.projection, Projection::Aggregate(_)) {
        plan.interval = outer.interval;
    }
    let nested = outer.nested;
    let tz = match &stmt.timezone {
        Some(z) => Some(
            z.parse::<chrono_tz::Tz>()
                .map_err(|_| QueryError::Invalid(format!("unable to find time zone {z}")))?,
        ),
        None => None,
    };
    let split = condition::split(stmt.condition.as_ref(), options.now, tz)?;
    let mut time = split.time.intersect(&outer.time);
    if plan.interval.is_some() && !time.has_max() {
        // InfluxDB ends GROUP BY time queries without an upper bound at now().
        time.max = options.now;
    }
    let tenant = match (&options.tenant, &split.tenant) {
        (Some(scope), Some(asked)) if scope.as_str() != asked => return Ok(Vec::new()),
        (Some(scope), _) => Some(scope.as_str()),
        (None, asked) => asked.as_deref(),
    };
    if split.contradiction || time.is_empty() {
        return Ok(Vec::new());
    }
    if let (Some((interval, offset)), true) = (plan.interval, time.has_min()) {
        // Too many buckets (`GROUP BY time(1ns)` over years) is refused before anything is
        // read; without a lower bound the buckets start at the first point, once read.
        window::Windows::new(interval, offset, tz, time.min, time.max)?;
    }
    let pushed = pushdown::split(engine, stmt, tenant, split.residual)?;
    let cond = pushed.residual.as_ref().map(Cond::new).transpose()?;
    let request = source::Request {
        tenant,
        time,
        dims: &plan.dims,
        interval: plan.interval,
        predicates: pushed.predicates,
        columns: needed_columns(&plan, pushed.residual.as_ref()),
        presence_only: presence_only(&plan, pushed.residual.as_ref()),
    };
    let mut batches = source::load(engine, stmt, &request, options)?;
    // The engine returns batches in no particular order; a fixed order makes float sums (and
    // ties between equal times) the same from one run to the next.
    batches.sort_by(|a, b| {
        (
            a.measurement.as_str(),
            a.tenant.as_str(),
            a.timestamps.first(),
        )
            .cmp(&(
                b.measurement.as_str(),
                b.tenant.as_str(),
                b.timestamps.first(),
            ))
    });
    // A field absent from a batch reads as null in conditions, not as an empty tag.
    let mut fields: HashSet<String> = pushed.fields.into_iter().collect();
    if cond.is_some() {
        for b in &batches {
            for f in &b.fields {
                if !fields.contains(&f.key) {
                    fields.insert(f.key.clone());
                }
            }
            if b.event_ids.is_some() {
                fields.insert(columns::EVENT_ID.to_owned());
            }
        }
    }
    let dims = plan.dims.resolve(batches.iter().flat_map(|b| {
        b.tags
            .iter()
            .map(|t| t.key.as_str())
            .chain(columns::has_tenant(b).then_some(columns::TENANT))
    }));
    let ctx = Context {
        time,
        from_subquery: stmt
            .sources
            .iter()
            .any(|s| matches!(s, super::ast::Source::Subquery(_))),
        cond: cond.as_ref(),
        fields: &fields,
        dims: &dims,
        interval: plan.interval,
        tz,
        fill: &stmt.fill,
        nested,
        descending: stmt.descending,
        page: stmt.limit,
        budget: &options.budget,
    };
    let outputs = match &plan.projection {
        Projection::Raw(cols) => raw::run(cols, &batches, &ctx)?,
        Projection::Aggregate(calls) => grouped::run(calls, &batches, &ctx)?,
    };
    Ok(shape(outputs, stmt))
}

/// The columns to read, or `None` for all (wildcards, `GROUP BY *` or a regex).
fn needed_columns(plan: &Plan, residual: Option<&Expr>) -> Option<Vec<String>> {
    if plan.dims.is_dynamic() {
        return None;
    }
    let mut cols: Vec<String> = plan.dims.tags.clone();
    match &plan.projection {
        Projection::Raw(raw) => {
            for c in raw {
                match c {
                    RawColumn::Named { name, .. } => cols.push(name.clone()),
                    RawColumn::Wildcard { .. } => return None,
                }
            }
        }
        Projection::Aggregate(calls) => {
            for c in calls {
                if c.expand.is_some() {
                    return None;
                }
                cols.push(c.field.clone());
                if let plan::AggKind::Top { tag: Some(t), .. }
                | plan::AggKind::Bottom { tag: Some(t), .. } = &c.kind
                {
                    cols.push(t.clone());
                }
            }
        }
    }
    if let Some(e) = residual {
        var_refs(e, &mut cols);
    }
    cols.sort();
    cols.dedup();
    Some(cols)
}

/// The fields nothing but `count` reads: the scan then reads which rows hold them, not their
/// values (a segment knows it from its footer and presence bitmaps).
fn presence_only(plan: &Plan, residual: Option<&Expr>) -> Vec<String> {
    let Projection::Aggregate(calls) = &plan.projection else {
        return Vec::new();
    };
    if plan.dims.is_dynamic() || calls.iter().any(|c| c.expand.is_some()) {
        return Vec::new();
    }
    let mut other = plan.dims.tags.clone();
    for c in calls {
        let counts = matches!(c.kind, plan::AggKind::Count) && c.cast.as_deref() != Some("tag");
        if !counts {
            other.push(c.field.clone());
        }
        if let plan::AggKind::Top { tag: Some(t), .. }
        | plan::AggKind::Bottom { tag: Some(t), .. } = &c.kind
        {
            other.push(t.clone());
        }
    }
    if let Some(e) = residual {
        var_refs(e, &mut other);
    }
    let mut fields: Vec<String> = calls
        .iter()
        .map(|c| c.field.clone())
        .filter(|f| f != columns::EVENT_ID && !other.contains(f))
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

fn var_refs(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::VarRef { name, .. } => out.push(name.clone()),
        Expr::Paren(inner) => var_refs(inner, out),
        Expr::Binary { lhs, rhs, .. } => {
            var_refs(lhs, out);
            var_refs(rhs, out);
        }
        Expr::Call { args, .. } => args.iter().for_each(|a| var_refs(a, out)),
        _ => {}
    }
}

/// Orders and pages the series (their rows come in output order, paged): InfluxDB reverses
/// the series under `ORDER BY time DESC`, and applies `SOFFSET`/`SLIMIT` to each
/// measurement's series on its own.
fn shape(mut outputs: Vec<Output>, stmt: &SelectStatement) -> Vec<Series> {
    if stmt.descending {
        outputs.reverse();
    }
    let skip = usize::try_from(stmt.slimit.offset).unwrap_or(usize::MAX);
    let take = match stmt.slimit.limit {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let mut out: Vec<Series> = Vec::new();
    let (mut current, mut rank) = (None::<String>, 0usize);
    for o in outputs {
        if current.as_deref() != Some(o.key.measurement.as_str()) {
            current = Some(o.key.measurement.clone());
            rank = 0;
        }
        rank += 1;
        if rank <= skip || rank - skip > take || o.rows.is_empty() {
            continue;
        }
        out.push(Series {
            name: o.key.measurement,
            tags: o.tags,
            columns: o.columns,
            values: o.rows,
        });
    }
    out
}
