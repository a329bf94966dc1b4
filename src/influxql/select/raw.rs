//! Raw statements (no aggregate): the selected fields and tags of every row, in time order per
//! series. `*` expands to every field and tag of the data read, sorted by name as InfluxDB
//! does, without the `GROUP BY` tags; a row with none of the selected fields set is left out.

use std::collections::BTreeMap;

use super::super::{QueryError, Value};
use super::columns::{Col, EVENT_ID, Kind, TENANT, has_tenant, resolve};
use super::plan::RawColumn;
use super::series::SeriesSet;
use super::{Context, Output};
use crate::scan::ColumnBatch;

/// Most rows a raw statement may return (use LIMIT or a narrower time range beyond).
pub(super) const MAX_ROWS: usize = 2_000_000;

/// One output column: what it reads and under which name.
struct Spec {
    name: String,
    kind: Kind,
    column: String,
}

/// Runs a raw statement.
pub(super) fn run(
    projection: &[RawColumn],
    batches: &[ColumnBatch],
    ctx: &Context<'_>,
) -> Result<Vec<Output>, QueryError> {
    let specs = expand(projection, batches, ctx.dims);
    let mut columns = vec!["time".to_owned()];
    columns.extend(specs.iter().map(|s| s.column.clone()));
    let mut set = SeriesSet::new(ctx.dims.to_vec());
    let mut rows: Vec<Vec<Vec<Value>>> = Vec::new();
    let (mut mask, mut series) = (Vec::new(), Vec::new());
    let mut n_rows = 0usize;
    for batch in batches {
        ctx.mask(batch, &mut mask);
        set.assign(batch, &mask, &mut series)?;
        if rows.len() < set.len() {
            rows.resize_with(set.len(), Vec::new);
        }
        let cols: Vec<Col<'_>> = specs
            .iter()
            .map(|s| resolve(batch, &s.name, s.kind))
            .collect();
        for (row, (&s, &t)) in series.iter().zip(&batch.timestamps).enumerate() {
            if s == super::aggregate::NO_CELL
                || !cols.iter().any(|c| c.is_field() && c.is_present(row))
            {
                continue;
            }
            n_rows += 1;
            if n_rows > MAX_ROWS {
                return Err(QueryError::Invalid(format!(
                    "the query returns more than {MAX_ROWS} rows: add a LIMIT, a narrower time \
                     range or an aggregate"
                )));
            }
            let mut values = Vec::with_capacity(cols.len() + 1);
            values.push(Value::Time(t));
            values.extend(cols.iter().map(|c| match c {
                Col::Tenant("") => Value::Null,
                c => c.value(row),
            }));
            if let Some(r) = rows.get_mut(s as usize) {
                r.push(values);
            }
        }
    }
    let mut out = Vec::new();
    for s in set.sorted() {
        let (Some(key), Some(r)) = (set.key(s), rows.get_mut(s)) else {
            continue;
        };
        if r.is_empty() {
            continue;
        }
        let mut r = std::mem::take(r);
        r.sort_by_key(|row| match row.first() {
            Some(Value::Time(t)) => *t,
            _ => 0,
        });
        out.push(Output {
            key: key.clone(),
            tags: set.tags(s),
            columns: columns.clone(),
            rows: r,
        });
    }
    Ok(out)
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
