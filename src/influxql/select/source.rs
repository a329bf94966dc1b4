//! `FROM`: reads the rows a statement needs as [`ColumnBatch`]es, whatever the source: a
//! measurement (one scan with the tenant, measurement, time range and columns pushed down), a
//! regex over measurement names, or a subquery, whose result series are turned back into
//! batches so that the outer statement runs on them like on stored data.

use regex::Regex;

use super::super::ast::{MeasurementName, SelectStatement, Source};
use super::super::{QueryError, QueryOptions, Series, Value};
use super::condition::TimeRange;
use super::plan::compile;
use crate::Engine;
use crate::model::TenantId;
use crate::scan::{ColumnBatch, FieldColumn, FieldValues, ScanRequest, StrColumn, TagColumn};

use super::columns::TENANT;

/// What to read from the stored sources.
pub(super) struct Request<'a> {
    /// Tenant to read, if one.
    pub tenant: Option<&'a str>,
    /// Time range.
    pub time: TimeRange,
    /// Columns; `None` means all.
    pub columns: Option<Vec<String>>,
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
                out.extend(engine.scan(&scan_request(req, Some(name.clone())))?);
            }
            Source::Measurement(MeasurementName::Regex(pattern)) => {
                let re: Regex = compile(pattern)?;
                out.extend(
                    engine
                        .scan(&scan_request(req, None))?
                        .into_iter()
                        .filter(|b| re.is_match(&b.measurement)),
                );
            }
            Source::Subquery(inner) => {
                let series = super::run(engine, inner, options, true, req.time)?;
                out.extend(series.into_iter().filter_map(to_batch));
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
        predicates: Vec::new(),
        columns: req.columns.clone(),
    }
}

/// A subquery's series as a batch: its tags become tag columns (the `tenant` tag becomes the
/// batch's tenant), its columns become typed fields.
fn to_batch(series: Series) -> Option<ColumnBatch> {
    let n = series.values.len();
    let mut tenant = String::new();
    let mut tags = Vec::new();
    for (k, v) in series.tags {
        if k == TENANT {
            tenant = v;
        } else {
            tags.push(TagColumn {
                key: k,
                dict: vec![v],
                ids: vec![0; n],
            });
        }
    }
    let timestamps: Vec<i64> = series
        .values
        .iter()
        .map(|row| match row.first() {
            Some(Value::Time(t)) => *t,
            _ => 0,
        })
        .collect();
    let fields = series
        .columns
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, key)| FieldColumn {
            key: key.clone(),
            values: column(&series.values, i),
        })
        .collect();
    if n == 0 {
        return None;
    }
    Some(ColumnBatch {
        tenant: TenantId::new(&tenant),
        measurement: series.name,
        timestamps,
        tags,
        fields,
        event_ids: None,
    })
}

/// Column `i` of the rows, typed by its values: integers stay integers unless mixed with
/// floats.
fn column(rows: &[Vec<Value>], i: usize) -> FieldValues {
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
