//! Raw statements (no aggregate): the selected fields and tags of every row, in time order per
//! series. `*` expands to every field and tag of the data read, sorted by name as InfluxDB
//! does, without the `GROUP BY` tags; a row with none of the selected fields set is left out.

use std::collections::BTreeMap;

use super::super::{QueryError, Value};
use super::aggregate::NO_CELL;
use super::columns::{Col, EVENT_ID, Kind, TENANT, has_tenant, resolve};
use super::plan::RawColumn;
use super::series::SeriesSet;
use super::{Context, Output};
use crate::scan::ColumnBatch;

/// One output column: what it reads and under which name.
struct Spec {
    name: String,
    kind: Kind,
    column: String,
}

/// A row chosen for output: its time and where it is (batch, row), in batch order so that
/// rows with equal times keep a fixed order.
type Pick = (i64, u32, u32);

/// Runs a raw statement. Rows are first chosen as (time, batch, row) and only the rows kept
/// after `LIMIT`/`OFFSET` are turned into values: `SELECT * ... LIMIT 10` over millions of
/// rows stays cheap.
pub(super) fn run(
    projection: &[RawColumn],
    batches: &[ColumnBatch],
    ctx: &Context<'_>,
) -> Result<Vec<Output>, QueryError> {
    let specs = expand(projection, batches, ctx.dims);
    let mut columns = vec!["time".to_owned()];
    columns.extend(specs.iter().map(|s| s.column.clone()));
    let mut set = SeriesSet::new(ctx.dims.to_vec());
    let mut picks: Vec<Vec<Pick>> = Vec::new();
    let (mut mask, mut series) = (Vec::new(), Vec::new());
    for (b, batch) in batches.iter().enumerate() {
        ctx.budget.check()?;
        ctx.mask(batch, &mut mask);
        set.assign(batch, &mask, &mut series)?;
        if picks.len() < set.len() {
            picks.resize_with(set.len(), Vec::new);
        }
        let cols = resolve_all(&specs, batch);
        let b = u32::try_from(b).unwrap_or(u32::MAX);
        for (row, (&s, &t)) in series.iter().zip(&batch.timestamps).enumerate() {
            if s == NO_CELL || !cols.iter().any(|c| c.is_field() && c.is_present(row)) {
                continue;
            }
            if let Some(p) = picks.get_mut(s as usize) {
                p.push((t, b, u32::try_from(row).unwrap_or(u32::MAX)));
                // Keep memory bounded under a LIMIT: only the first rows (in output order)
                // can be returned.
                if let Some(k) = ctx.keep()
                    && p.len() >= k.saturating_mul(2).max(4096)
                {
                    keep_first(p, k, ctx.descending);
                }
            }
        }
    }
    let mut n_rows = 0usize;
    let max_rows = ctx.budget.max_rows;
    let mut out = Vec::new();
    for s in set.sorted() {
        ctx.budget.check()?;
        let (Some(key), Some(p)) = (set.key(s), picks.get_mut(s)) else {
            continue;
        };
        if let Some(k) = ctx.keep() {
            keep_first(p, k, ctx.descending);
        }
        if ctx.descending {
            // Latest first; rows of equal time keep their order, as in InfluxDB.
            p.sort_unstable_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        } else {
            p.sort_unstable();
        }
        let p = ctx.page(p.iter().copied());
        if p.is_empty() {
            continue;
        }
        n_rows += p.len();
        if n_rows > max_rows {
            return Err(QueryError::Invalid(format!(
                "the query returns more than {max_rows} rows (query_max_rows): add a LIMIT, a \
                 narrower time range or an aggregate"
            )));
        }
        let rows = p
            .into_iter()
            .filter_map(|(t, b, row)| {
                let batch = batches.get(b as usize)?;
                let row = row as usize;
                let mut values = Vec::with_capacity(specs.len() + 1);
                values.push(Value::Time(t));
                values.extend(resolve_all(&specs, batch).iter().map(|c| match c {
                    Col::Tenant("") => Value::Null,
                    c => c.value(row),
                }));
                Some(values)
            })
            .collect();
        out.push(Output {
            key: key.clone(),
            tags: set.tags(s),
            columns: columns.clone(),
            rows,
        });
    }
    Ok(out)
}

fn resolve_all<'a>(specs: &[Spec], batch: &'a ColumnBatch) -> Vec<Col<'a>> {
    specs
        .iter()
        .map(|s| resolve(batch, &s.name, s.kind))
        .collect()
}

/// Keeps the `k` first picks in output order (earliest, or latest when descending).
fn keep_first(picks: &mut Vec<Pick>, k: usize, descending: bool) {
    if picks.len() <= k {
        return;
    }
    if k == 0 {
        picks.clear();
        return;
    }
    if descending {
        picks.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    } else {
        picks.select_nth_unstable(k - 1);
    }
    picks.truncate(k);
}

/// The output columns, wildcards expanded against the data read.
fn expand(projection: &[RawColumn], batches: &[ColumnBatch], dims: &[String]) -> Vec<Spec> {
    let mut out = Vec::new();
    for p in projection {
        match p {
            RawColumn::Named { name, cast, column } => out.push(Spec {
                name: name.clone(),
                kind: Kind::of_cast(cast.as_deref()),
                column: column.clone(),
            }),
            RawColumn::Wildcard { cast } => {
                let want = Kind::of_cast(cast.as_deref());
                // Name → kind; a name that is a field anywhere is a field.
                let mut names: BTreeMap<String, Kind> = BTreeMap::new();
                for b in batches {
                    if want != Kind::Field {
                        for t in &b.tags {
                            names.entry(t.key.clone()).or_insert(Kind::Tag);
                        }
                        if has_tenant(b) {
                            names.entry(TENANT.to_owned()).or_insert(Kind::Tag);
                        }
                    }
                    if want != Kind::Tag {
                        for f in &b.fields {
                            names.insert(f.key.clone(), Kind::Field);
                        }
                        if b.event_ids.is_some() {
                            names.insert(EVENT_ID.to_owned(), Kind::Field);
                        }
                    }
                }
                for (name, kind) in names {
                    if kind == Kind::Tag && dims.contains(&name) {
                        continue;
                    }
                    out.push(Spec {
                        column: name.clone(),
                        name,
                        kind,
                    });
                }
            }
        }
    }
    out
}
