//! SHOW statements over a small engine, ASTs built by hand; shapes checked against what
//! InfluxDB 1.6 answers for the same data.

use super::*;
use crate::Options;
use crate::influxql::ast::{BinaryOp, Expr, Literal};
use crate::ingest::lineproto::{LineOptions, Precision, append_to_batch};
use crate::model::{Timestamp, WriteBatch};

const T0: i64 = 1_793_491_200_000_000_000;

fn engine(dir: &tempfile::TempDir) -> Engine {
    let engine = Engine::open(dir.path(), Options::any_time()).unwrap();
    let body = format!(
        "api_calls,tenant=acme,endpoint=/a,region=eu rt=1.5,event_id=\"e1\" {T0}\n\
         api_calls,tenant=globex,endpoint=/b rt=2.5 {}\n\
         storage,tenant=acme,operation=write size=10i {}\n",
        T0 + 1,
        T0 + 2
    );
    let mut batch = WriteBatch::new();
    let opts = LineOptions {
        precision: Precision::Nanoseconds,
        default_tenant: None,
        now: Timestamp(0),
    };
    assert!(append_to_batch(body.as_bytes(), &opts, &mut batch).is_empty());
    assert!(engine.write(batch).unwrap().rejected.is_empty());
    engine
}

fn tag(key: &str, op: BinaryOp, value: &str) -> Expr {
    let rhs = match op {
        BinaryOp::EqRegex | BinaryOp::NotEqRegex => Expr::Regex(value.into()),
        _ => Expr::Literal(Literal::String(value.into())),
    };
    Expr::Binary {
        op,
        lhs: Box::new(Expr::VarRef {
            name: key.into(),
            cast: None,
        }),
        rhs: Box::new(rhs),
    }
}

fn and(l: Expr, r: Expr) -> Expr {
    Expr::Binary {
        op: BinaryOp::And,
        lhs: Box::new(l),
        rhs: Box::new(r),
    }
}

/// `(measurement, rows as strings)` of each series.
fn run(engine: &Engine, st: &Statement, options: &QueryOptions) -> Vec<(String, Vec<String>)> {
    execute(engine, st, options)
        .unwrap()
        .into_iter()
        .map(|s| {
            let rows = s
                .values
                .iter()
                .map(|row| {
                    let cells: Vec<String> = row
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    cells.join("=")
                })
                .collect();
            (s.name, rows)
        })
        .collect()
}

fn name(n: &str) -> MeasurementName {
    MeasurementName::Name {
        database: None,
        retention_policy: None,
        name: n.into(),
    }
}

fn owned(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    v.iter()
        .map(|(m, rows)| (m.to_string(), rows.iter().map(|r| r.to_string()).collect()))
        .collect()
}

#[test]
fn databases_and_retention_policies() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir);
    let o = QueryOptions::default();
    assert_eq!(
        run(&e, &Statement::ShowDatabases, &o),
        owned(&[("databases", &["meterdb"])])
    );
    let rp = execute(&e, &Statement::ShowRetentionPolicies { database: None }, &o).unwrap();
    assert_eq!(rp.len(), 1);
    assert!(rp[0].name.is_empty());
    assert_eq!(rp[0].columns[2], "shardGroupDuration");
}

#[test]
fn measurements_follow_influxdb_index_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir);
    let o = QueryOptions::default();
    let show = |condition, page| Statement::ShowMeasurements {
        source: None,
        condition,
        page,
    };
    assert_eq!(
        run(&e, &show(None, Page::default()), &o),
        owned(&[("measurements", &["api_calls", "storage"])])
    );
    let second = Page {
        limit: 1,
        offset: 1,
    };
    assert_eq!(
        run(&e, &show(None, second), &o),
        owned(&[("measurements", &["storage"])])
    );
    // A measurement lacking the key never matches; `!=` matches when no value is equal.
    let ne = tag("region", BinaryOp::NotEq, "eu");
    assert!(run(&e, &show(Some(ne), Page::default()), &o).is_empty());
    let ne_other = tag("region", BinaryOp::NotEq, "us");
    assert_eq!(
        run(&e, &show(Some(ne_other), Page::default()), &o),
        owned(&[("measurements", &["api_calls"])])
    );
    let op = and(
        tag("tenant", BinaryOp::Eq, "acme"),
        tag("operation", BinaryOp::EqRegex, "^w"),
    );
    assert_eq!(
        run(&e, &show(Some(op), Page::default()), &o),
        owned(&[("measurements", &["storage"])])
    );
    let globex = QueryOptions {
        tenant: Some(TenantId::new("globex")),
        ..QueryOptions::default()
    };
    assert_eq!(
        run(&e, &show(None, Page::default()), &globex),
        owned(&[("measurements", &["api_calls"])])
    );
    let time = Expr::Binary {
        op: BinaryOp::Gt,
        lhs: Box::new(Expr::VarRef {
            name: "time".into(),
            cast: None,
        }),
        rhs: Box::new(Expr::Literal(Literal::Integer(0))),
    };
    assert!(matches!(
        execute(&e, &show(Some(time), Page::default()), &o),
        Err(QueryError::Invalid(_))
    ));
}

#[test]
fn tag_keys_and_values_with_and_without_where() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir);
    let o = QueryOptions::default();
    let keys = |condition| Statement::ShowTagKeys {
        sources: Vec::new(),
        condition,
        page: Page::default(),
    };
    let all = owned(&[
        ("api_calls", &["endpoint", "region", "tenant"]),
        ("storage", &["operation", "tenant"]),
    ]);
    assert_eq!(run(&e, &keys(None), &o), all);
    // Rows without a region: globex's call and the storage row.
    let no_region = tag("region", BinaryOp::Eq, "");
    assert_eq!(
        run(&e, &keys(Some(no_region)), &o),
        owned(&[
            ("api_calls", &["endpoint", "tenant"]),
            ("storage", &["operation", "tenant"]),
        ])
    );

    let values = |keys, condition| Statement::ShowTagValues {
        sources: vec![name("api_calls")],
        keys,
        condition,
        page: Page::default(),
    };
    let tenants = TagKeyFilter::Eq("tenant".into());
    assert_eq!(
        run(&e, &values(tenants.clone(), None), &o),
        owned(&[("api_calls", &["tenant=acme", "tenant=globex"])])
    );
    let eu = tag("region", BinaryOp::Eq, "eu");
    assert_eq!(
        run(&e, &values(tenants.clone(), Some(eu)), &o),
        owned(&[("api_calls", &["tenant=acme"])])
    );
    let not_tenant = TagKeyFilter::NotEq("tenant".into());
    let globex = tag("tenant", BinaryOp::Eq, "globex");
    assert_eq!(
        run(&e, &values(not_tenant.clone(), Some(globex)), &o),
        owned(&[("api_calls", &["endpoint=/b"])])
    );
    let scoped = QueryOptions {
        tenant: Some(TenantId::new("acme")),
        ..QueryOptions::default()
    };
    assert_eq!(
        run(&e, &values(TagKeyFilter::Regex(".".into()), None), &scoped),
        owned(&[("api_calls", &["endpoint=/a", "region=eu", "tenant=acme"])])
    );
    let field = Expr::Binary {
        op: BinaryOp::Gt,
        lhs: Box::new(Expr::VarRef {
            name: "rt".into(),
            cast: None,
        }),
        rhs: Box::new(Expr::Literal(Literal::Integer(1))),
    };
    assert!(matches!(
        execute(&e, &values(tenants, Some(field)), &o),
        Err(QueryError::Unsupported(_))
    ));
}

#[test]
fn field_keys_with_types_and_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir);
    e.flush().unwrap();
    let o = QueryOptions::default();
    let show = |sources, page| Statement::ShowFieldKeys { sources, page };
    assert_eq!(
        run(&e, &show(Vec::new(), Page::default()), &o),
        owned(&[
            ("api_calls", &["event_id=string", "rt=float"]),
            ("storage", &["size=integer"]),
        ])
    );
    let regex = vec![MeasurementName::Regex("^s".into())];
    let page = Page {
        limit: 1,
        offset: 0,
    };
    assert_eq!(
        run(&e, &show(regex, page), &o),
        owned(&[("storage", &["size=integer"])])
    );
}
