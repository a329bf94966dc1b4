//! `SHOW DATABASES | RETENTION POLICIES | MEASUREMENTS | TAG KEYS | TAG VALUES | FIELD KEYS`:
//! what Grafana's query editor asks, answered in InfluxDB 1.6's exact shape (series names,
//! column names, sort orders, per-measurement `LIMIT`/`OFFSET`).
//!
//! Answers come from the engine's catalog ([`crate::catalog`]) without reading rows, except
//! `SHOW TAG KEYS` and `SHOW TAG VALUES` with a `WHERE`, which scan the matching rows' tag
//! columns. Time bounds there are exact, where InfluxDB only drops whole shards (a week by
//! default) outside the range.
//!
//! MeterDB has one namespace: `SHOW DATABASES` answers one database, [`DATABASE`], and
//! `SHOW RETENTION POLICIES` InfluxDB's default policy `autogen`, whatever the `ON` database.

mod condition;

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use self::condition::{Cond, Where};
use super::ast::{MeasurementName, Page, Statement, TagKeyFilter};
use super::{QueryError, QueryOptions, Series, Value};
use crate::catalog::{Catalog, CatalogRequest, TENANT_TAG};
use crate::model::FieldType;
use crate::scan::{ColumnBatch, NO_TAG, ScanRequest, TagOp};
use crate::{Engine, TenantId};

/// The name of the one database `SHOW DATABASES` lists.
pub const DATABASE: &str = "meterdb";

/// Runs a `SHOW` statement.
pub fn execute(
    engine: &Engine,
    statement: &Statement,
    options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    match statement {
        Statement::ShowDatabases => Ok(vec![Series {
            name: "databases".into(),
            columns: vec!["name".into()],
            values: vec![vec![Value::String(DATABASE.into())]],
            ..Series::default()
        }]),
        Statement::ShowRetentionPolicies { .. } => Ok(vec![retention_policies()]),
        Statement::ShowMeasurements {
            source,
            condition,
            page,
        } => {
            let w = Where::parse(condition.as_ref(), options.now, "SHOW MEASUREMENTS")?;
            if w.time.is_some() {
                return Err(QueryError::Invalid(
                    "SHOW MEASUREMENTS doesn't support time in WHERE clause".into(),
                ));
            }
            measurements(engine, source.as_ref(), w.cond.as_ref(), *page, options)
        }
        Statement::ShowTagKeys {
            sources,
            condition,
            page,
        } => {
            let w = Where::parse(condition.as_ref(), options.now, "SHOW TAG KEYS")?;
            tag_keys(engine, sources, &w, *page, options)
        }
        Statement::ShowTagValues {
            sources,
            keys,
            condition,
            page,
        } => {
            let w = Where::parse(condition.as_ref(), options.now, "SHOW TAG VALUES")?;
            tag_values(engine, sources, keys, &w, *page, options)
        }
        Statement::ShowFieldKeys { sources, page } => field_keys(engine, sources, *page, options),
        Statement::Select(_) | Statement::CreateDatabase { .. } => {
            Err(QueryError::Invalid("not a SHOW statement".into()))
        }
    }
}

/// InfluxDB's default retention policy: kept forever, week-long shard groups. (The series has
/// no name, as in InfluxDB.)
fn retention_policies() -> Series {
    Series {
        columns: [
            "name",
            "duration",
            "shardGroupDuration",
            "replicaN",
            "default",
        ]
        .map(String::from)
        .to_vec(),
        values: vec![vec![
            Value::String("autogen".into()),
            Value::String("0s".into()),
            Value::String("168h0m0s".into()),
            Value::Integer(1),
            Value::Bool(true),
        ]],
        ..Series::default()
    }
}

fn measurements(
    engine: &Engine,
    source: Option<&MeasurementName>,
    cond: Option<&Cond>,
    page: Page,
    options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    let mut keys = Vec::new();
    if let Some(c) = cond {
        c.keys(&mut keys);
    }
    let catalog = engine.catalog(&CatalogRequest {
        tenant: options.tenant.clone(),
        measurement: measurement_filter(source.into_iter())?,
        tag_values: (!keys.is_empty()).then_some(TagOp::In(keys)),
    })?;
    let names = catalog
        .measurements
        .iter()
        .filter(|(_, info)| cond.is_none_or(|c| c.eval_measurement(info)))
        .map(|(name, _)| vec![Value::String(name.clone())]);
    let values: Vec<_> = paged(names, page).collect();
    Ok(one_series("measurements", &["name"], values))
}

fn tag_keys(
    engine: &Engine,
    sources: &[MeasurementName],
    w: &Where,
    page: Page,
    options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    let catalog = engine.catalog(&CatalogRequest {
        tenant: options.tenant.clone(),
        measurement: measurement_filter(sources.iter())?,
        tag_values: None,
    })?;
    let keys: BTreeMap<String, BTreeSet<String>> = if w.cond.is_none() && w.time.is_none() {
        catalog
            .measurements
            .into_iter()
            .map(|(m, info)| (m, info.tags.into_keys().collect()))
            .collect()
    } else {
        let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        scan_matching(
            engine,
            &catalog,
            w,
            options,
            |_| true,
            |m, key, _| {
                let keys = found.entry(m.to_owned()).or_default();
                if !keys.contains(key) {
                    keys.insert(key.to_owned());
                }
            },
        )?;
        found
    };
    Ok(per_measurement(keys, page, &["tagKey"], |key| {
        vec![Value::String(key)]
    }))
}

fn tag_values(
    engine: &Engine,
    sources: &[MeasurementName],
    keys: &TagKeyFilter,
    w: &Where,
    page: Page,
    options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    let key_op = key_filter(keys)?;
    let plain = w.cond.is_none() && w.time.is_none();
    let catalog = engine.catalog(&CatalogRequest {
        tenant: options.tenant.clone(),
        measurement: measurement_filter(sources.iter())?,
        tag_values: plain.then(|| key_op.clone()),
    })?;
    let mut found: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    if plain {
        for (m, info) in catalog.measurements {
            let pairs: BTreeSet<(String, String)> = info
                .tags
                .into_iter()
                .filter(|(key, _)| key_op.matches(key))
                .flat_map(|(key, values)| values.into_iter().map(move |v| (key.clone(), v)))
                .collect();
            found.insert(m, pairs);
        }
    } else {
        scan_matching(
            engine,
            &catalog,
            w,
            options,
            |key| key_op.matches(key),
            |m, key, value| {
                let pairs = found.entry(m.to_owned()).or_default();
                let pair = (key.to_owned(), value.to_owned());
                if !pairs.contains(&pair) {
                    pairs.insert(pair);
                }
            },
        )?;
    }
    Ok(per_measurement(found, page, &["key", "value"], |(k, v)| {
        vec![Value::String(k), Value::String(v)]
    }))
}

fn field_keys(
    engine: &Engine,
    sources: &[MeasurementName],
    page: Page,
    options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    let catalog = engine.catalog(&CatalogRequest {
        tenant: options.tenant.clone(),
        measurement: measurement_filter(sources.iter())?,
        tag_values: None,
    })?;
    let fields = catalog.measurements.into_iter().map(|(m, info)| {
        let rows: Vec<(String, &'static str)> = info
            .fields
            .into_iter()
            .flat_map(|(key, types)| {
                let mut names: Vec<&'static str> = types.into_iter().map(type_name).collect();
                names.sort_unstable();
                names.into_iter().map(move |t| (key.clone(), t))
            })
            .collect();
        (m, rows)
    });
    Ok(per_measurement(
        fields,
        page,
        &["fieldKey", "fieldType"],
        |(k, t)| vec![Value::String(k), Value::String(t.into())],
    ))
}

/// InfluxQL's name of a field type.
fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Float => "float",
        FieldType::Integer => "integer",
        FieldType::Unsigned => "unsigned",
        FieldType::Boolean => "boolean",
        FieldType::String => "string",
    }
}

/// Scans the rows of the catalog's measurements that pass `w`, reading only the tag columns
/// `wanted` selects (and those the condition needs), and calls `found(measurement, key,
/// value)` for every wanted tag a matching row has (the tenant included, as a tag).
fn scan_matching(
    engine: &Engine,
    catalog: &Catalog,
    w: &Where,
    options: &QueryOptions,
    wanted: impl Fn(&str) -> bool,
    mut found: impl FnMut(&str, &str, &str),
) -> Result<(), QueryError> {
    let mut predicates = Vec::new();
    let mut cond_keys = Vec::new();
    if let Some(c) = &w.cond {
        c.required(&mut predicates);
        c.keys(&mut cond_keys);
    }
    // A required `tenant = 'x'` picks the tenant (and its shard) instead of filtering rows.
    let mut tenant = options.tenant.clone();
    let mut tag_predicates = Vec::new();
    for p in predicates {
        match (&p.op, p.key == TENANT_TAG) {
            (TagOp::Eq(t), true) => match &tenant {
                Some(only) if only.as_str() != t => return Ok(()),
                _ => tenant = Some(TenantId::new(t)),
            },
            (_, true) => {}
            (_, false) => tag_predicates.push(p),
        }
    }
    for (measurement, info) in &catalog.measurements {
        let mut columns: Vec<String> = info
            .tags
            .keys()
            .filter(|k| wanted(k) && k.as_str() != TENANT_TAG)
            .cloned()
            .collect();
        for k in &cond_keys {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        let req = ScanRequest {
            tenant: tenant.clone(),
            measurement: Some(measurement.clone()),
            time: w.time.clone(),
            predicates: tag_predicates.clone(),
            columns: Some(columns),
            presence_only: Vec::new(),
        };
        for batch in engine.scan_checked(&req, |read| options.budget.check_scan(read))? {
            options.budget.check()?;
            let rows: Vec<usize> = (0..batch.len())
                .filter(|&row| {
                    w.cond
                        .as_ref()
                        .is_none_or(|c| c.eval(&|k| value(&batch, row, k)))
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            if wanted(TENANT_TAG) {
                found(measurement, TENANT_TAG, batch.tenant.as_str());
            }
            for tag in batch.tags.iter().filter(|t| wanted(&t.key)) {
                let mut seen = vec![false; tag.dict.len()];
                for &row in &rows {
                    let id = tag.ids.get(row).copied().unwrap_or(NO_TAG);
                    if let (Some(slot), Some(v)) = (seen.get_mut(id as usize), tag.value(row))
                        && !*slot
                    {
                        *slot = true;
                        found(measurement, &tag.key, v);
                    }
                }
            }
        }
    }
    Ok(())
}

/// A row's value of tag `key` (the tenant for [`TENANT_TAG`]); `""` when the row lacks it.
fn value<'b>(batch: &'b ColumnBatch, row: usize, key: &str) -> &'b str {
    if key == TENANT_TAG {
        return batch.tenant.as_str();
    }
    batch.tag(key).and_then(|t| t.value(row)).unwrap_or("")
}

/// One series per measurement (ascending), its rows paged; measurements left without rows
/// are left out, as InfluxDB does.
fn per_measurement<T>(
    by_measurement: impl IntoIterator<Item = (String, impl IntoIterator<Item = T>)>,
    page: Page,
    columns: &[&str],
    row: impl Fn(T) -> Vec<Value>,
) -> Vec<Series> {
    by_measurement
        .into_iter()
        .filter_map(|(name, items)| {
            let values: Vec<Vec<Value>> = paged(items.into_iter().map(&row), page).collect();
            (!values.is_empty()).then(|| Series {
                name,
                columns: columns.iter().map(|c| (*c).to_owned()).collect(),
                values,
                ..Series::default()
            })
        })
        .collect()
}

/// A single series, or none when it would have no rows.
fn one_series(name: &str, columns: &[&str], values: Vec<Vec<Value>>) -> Vec<Series> {
    if values.is_empty() {
        return Vec::new();
    }
    vec![Series {
        name: name.to_owned(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        values,
        ..Series::default()
    }]
}

/// `OFFSET` then `LIMIT` (0 = no limit).
fn paged<T>(items: impl Iterator<Item = T>, page: Page) -> impl Iterator<Item = T> {
    let limit = match page.limit {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    items
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(limit)
}

/// The measurements named by `FROM` or `WITH MEASUREMENT` as one name test; `None` for all.
fn measurement_filter<'a>(
    sources: impl Iterator<Item = &'a MeasurementName>,
) -> Result<Option<TagOp>, QueryError> {
    let mut names = Vec::new();
    let mut patterns = Vec::new();
    for s in sources {
        match s {
            MeasurementName::Name { name, .. } => names.push(name.clone()),
            MeasurementName::Regex(re) => patterns.push(format!("(?:{re})")),
        }
    }
    if patterns.is_empty() {
        return Ok((!names.is_empty()).then_some(TagOp::In(names)));
    }
    // Names and patterns together: one alternation, names anchored and escaped.
    patterns.extend(names.iter().map(|n| format!("^{}$", regex::escape(n))));
    regex(&patterns.join("|")).map(|re| Some(TagOp::Regex(re)))
}

/// `WITH KEY ...` as a name test.
fn key_filter(keys: &TagKeyFilter) -> Result<TagOp, QueryError> {
    Ok(match keys {
        TagKeyFilter::Eq(k) => TagOp::Eq(k.clone()),
        TagKeyFilter::NotEq(k) => TagOp::NotEq(k.clone()),
        TagKeyFilter::In(ks) => TagOp::In(ks.clone()),
        TagKeyFilter::Regex(re) => TagOp::Regex(regex(re)?),
        TagKeyFilter::NotRegex(re) => TagOp::NotRegex(regex(re)?),
    })
}

fn regex(pattern: &str) -> Result<Regex, QueryError> {
    Regex::new(pattern).map_err(|e| QueryError::Invalid(format!("regex /{pattern}/: {e}")))
}

#[cfg(test)]
mod tests;
