//! `FROM`: reads the rows a statement needs as [`ColumnBatch`]es, whatever the source: a
//! measurement (one scan with the tenant, measurement, time range and columns pushed down), a
//! regex over measurement names, or a subquery, whose result series are turned back into
//! batches so that the outer statement runs on them like on stored data.

use std::collections::HashMap;

use regex::Regex;

use super::super::ast::{MeasurementName, SelectStatement, Source};
use super::super::{QueryError, QueryOptions, Series, Value};
use super::condition::TimeRange;
use super::plan::{Dims, compile};
use crate::Engine;
use crate::model::TenantId;
use crate::scan::{
    ColumnBatch, FieldColumn, FieldValues, NO_TAG, ScanRequest, StrColumn, TagColumn, TagPredicate,
};

use super::columns::TENANT;

/// What to read from the stored sources.
pub(super) struct Request<'a> {
    /// Tenant to read, if one.
    pub tenant: Option<&'a str>,
    /// Time range.
    pub time: TimeRange,
    /// The statement's `GROUP BY` tags, passed on to its subqueries.
    pub dims: &'a Dims,
    /// The statement's `GROUP BY time(...)`, passed on to its subqueries.
    pub interval: Option<(i64, i64)>,
    /// Tag conditions the scan applies.
    pub predicates: Vec<TagPredicate>,
    /// Columns; `None` means all.
    pub columns: Option<Vec<String>>,
    /// Fields only `count` reads ([`crate::ScanRequest::presence_only`]).
    pub presence_only: Vec<String>,
}

/// Reads every source of `stmt`.
pub(super) fn load(
    engine: &Engine,
    stmt: &SelectStatement,
    req: &Request<'_>,
    options: &QueryOptions,
) -> Result<Vec<ColumnBatch>, QueryError> {
    let mut out = Vec::new();
    for source in &stmt.sources {
        match source {
            Source::Measurement(MeasurementName::Name { name, .. }) => {
                out.extend(
                    engine.scan_checked(&scan_request(req, Some(name.clone())), |read| {
                        options.budget.check_scan(read)
                    })?,
                );
            }
            Source::Measurement(MeasurementName::Regex(pattern)) => {
                let re: Regex = compile(pattern)?;
                out.extend(
                    engine
                        .scan_checked(&scan_request(req, None), |read| {
                            options.budget.check_scan(read)
                        })?
                        .into_iter()
                        .filter(|b| re.is_match(&b.measurement)),
                );
            }
            Source::Subquery(inner) => {
                let outer = super::Outer {
                    nested: true,
                    time: req.time,
                    dims: Dims {
                        tags: req.dims.tags.clone(),
                        ..Dims::default()
                    },
                    interval: req.interval,
                };
                let series = super::run(engine, inner, options, &outer)?;
                out.extend(to_batches(series));
            }
        }
    }
    Ok(out)
}

fn scan_request(req: &Request<'_>, measurement: Option<String>) -> ScanRequest {
    ScanRequest {
        tenant: req.tenant.map(TenantId::new),
        measurement,
        time: req.time.to_scan(),
        predicates: req.predicates.clone(),
        columns: req.columns.clone(),
        presence_only: req.presence_only.clone(),
    }
}

/// A subquery's series as batches, one per measurement, tenant, tag keys and columns (not
/// one per series: a subquery grouped by a high-cardinality tag yields thousands of series).
/// The series' tags become dictionary-encoded tag columns (the `tenant` tag becomes the
/// batch's tenant), its columns typed fields.
fn to_batches(series: Vec<Series>) -> Vec<ColumnBatch> {
    type Group = (String, String, Vec<String>, Vec<String>);
    let mut groups: Vec<(Group, Vec<Series>)> = Vec::new();
    let mut index: HashMap<Group, usize> = HashMap::new();
    for s in series {
        if s.values.is_empty() {
            continue;
        }
        let tenant = s
            .tags
            .iter()
            .find(|(k, _)| k == TENANT)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let keys: Vec<String> = s
            .tags
            .iter()
            .filter(|(k, _)| k != TENANT)
            .map(|(k, _)| k.clone())
            .collect();
        let g = (s.name.clone(), tenant, keys, s.columns.clone());
        match index.get(&g) {
            Some(&i) => {
                if let Some(group) = groups.get_mut(i) {
                    group.1.push(s);
                }
            }
            None => {
                index.insert(g.clone(), groups.len());
                groups.push((g, vec![s]));
            }
        }
    }
    groups
        .into_iter()
        .map(|((name, tenant, keys, columns), members)| {
            let rows: Vec<&Vec<Value>> = members.iter().flat_map(|s| &s.values).collect();
            let tags = keys
                .iter()
                .map(|k| {
                    let mut col = TagColumn {
                        key: k.clone(),
                        ..TagColumn::default()
                    };
                    let mut ids: HashMap<&str, u32> = HashMap::new();
                    for s in &members {
                        let v = s.tags.iter().find(|(tk, _)| tk == k).map_or("", |(_, v)| v);
                        let id = *ids.entry(v).or_insert_with(|| {
                            col.dict.push(v.to_owned());
                            u32::try_from(col.dict.len() - 1).unwrap_or(NO_TAG)
                        });
                        col.ids.extend(std::iter::repeat_n(id, s.values.len()));
                    }
                    col
                })
                .collect();
            let timestamps = rows
                .iter()
                .map(|row| match row.first() {
                    Some(Value::Time(t)) => *t,
                    _ => 0,
                })
                .collect();
            let fields = columns
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, key)| FieldColumn {
                    key: key.clone(),
                    values: column(&rows, i),
                })
                .collect();
            ColumnBatch {
                tenant: TenantId::new(&tenant),
                measurement: name,
                timestamps,
                tags,
                fields,
                event_ids: None,
                presence: Vec::new(),
            }
        })
        .collect()
}

/// Column `i` of the rows, typed by its values: integers stay integers unless mixed with
/// floats.
fn column(rows: &[&Vec<Value>], i: usize) -> FieldValues {
    let cells = || rows.iter().map(move |r| r.get(i).unwrap_or(&Value::Null));
    let (mut ints, mut floats, mut uints, mut bools, mut strs) = (0, 0, 0, 0, 0);
    for v in cells() {
        match v {
            Value::Integer(_) => ints += 1,
            Value::Float(_) => floats += 1,
            Value::Unsigned(_) => uints += 1,
            Value::Bool(_) => bools += 1,
            Value::String(_) | Value::Time(_) => strs += 1,
            Value::Null => {}
        }
    }
    if strs > 0 {
        let mut c = StrColumn::default();
        for v in cells() {
            match v {
                Value::String(s) => c.push(Some(s)),
                Value::Null => c.push(None),
                other => c.push(Some(&format!("{other:?}"))),
            }
        }
        FieldValues::Str(c)
    } else if bools > 0 && ints + floats + uints == 0 {
        FieldValues::Bool(
            cells()
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect(),
        )
    } else if floats > 0 || (ints > 0 && uints > 0) {
        FieldValues::F64(
            cells()
                .map(|v| match v {
                    Value::Float(f) => Some(*f),
                    Value::Integer(x) => Some(*x as f64),
                    Value::Unsigned(x) => Some(*x as f64),
                    _ => None,
                })
                .collect(),
        )
    } else if uints > 0 {
        FieldValues::U64(
            cells()
                .map(|v| match v {
                    Value::Unsigned(x) => Some(*x),
                    _ => None,
                })
                .collect(),
        )
    } else {
        FieldValues::I64(
            cells()
                .map(|v| match v {
                    Value::Integer(x) => Some(*x),
                    _ => None,
                })
                .collect(),
        )
    }
}
