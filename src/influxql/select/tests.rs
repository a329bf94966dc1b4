//! `SELECT` behaviours not covered by the recorded InfluxDB answers (`tests/influxql_select.rs`):
//! MeterDB's limits, extensions and tenant scoping, and a model check of aggregates against a
//! brute-force evaluation of random queries.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::{QueryError, QueryOptions, Series, Value, execute, parse_query};
use crate::ingest::lineproto::{LineOptions, Precision, append_to_batch};
use crate::{Engine, Options, SyncPolicy, Timestamp, WriteBatch};

const H: i64 = 3_600_000_000_000;

fn engine(lines: &str) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            sync: SyncPolicy::None,
            shards: Some(2),
            ..Options::any_time()
        },
    )
    .unwrap();
    let mut batch = WriteBatch::new();
    let opts = LineOptions {
        precision: Precision::Nanoseconds,
        default_tenant: None,
        now: Timestamp(0),
    };
    assert!(append_to_batch(lines.as_bytes(), &opts, &mut batch).is_empty());
    assert!(engine.write(batch).unwrap().rejected.is_empty());
    (dir, engine)
}

fn query(engine: &Engine, q: &str, options: &QueryOptions) -> Result<Vec<Series>, QueryError> {
    let statements = parse_query(q).unwrap();
    execute(engine, statements.first().unwrap(), options)
}

fn run(engine: &Engine, q: &str) -> Vec<Series> {
    query(engine, q, &QueryOptions::default()).unwrap_or_else(|e| panic!("{q}: {e}"))
}

const DATA: &str = "\
m,tenant=a,host=h1 v=1,i=10i 1000000000
m,tenant=a,host=h2 v=2,i=20i 7200000000000
m,tenant=b,host=h1 v=3,i=30i 7300000000000
";

#[test]
fn group_by_time_one_ns_over_years_is_refused() {
    let (_d, e) = engine(DATA);
    let err = query(
        &e,
        "SELECT count(v) FROM m WHERE time >= 0 AND time < '2020-01-01T00:00:00Z' GROUP BY time(1ns)",
        &QueryOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, QueryError::Invalid(m) if m.contains("buckets")),
        "{err}"
    );
}

#[test]
fn tenant_scope_hides_other_tenants() {
    let (_d, e) = engine(DATA);
    let scoped = QueryOptions {
        tenant: Some("a".into()),
        ..QueryOptions::default()
    };
    let s = query(&e, "SELECT count(v) FROM m", &scoped).unwrap();
    assert_eq!(s[0].values[0][1], Value::Integer(2));
    assert!(
        query(&e, "SELECT count(v) FROM m WHERE tenant = 'b'", &scoped)
            .unwrap()
            .is_empty()
    );
    let s = query(
        &e,
        "SELECT * FROM (SELECT count(v) AS c FROM m GROUP BY tenant)",
        &scoped,
    )
    .unwrap();
    assert_eq!(s[0].values.len(), 1);
}

#[test]
fn distinct_reads_tags_including_the_tenant() {
    let (_d, e) = engine(DATA);
    let s = run(&e, "SELECT count(distinct(tenant)) FROM m");
    assert_eq!(s[0].values[0][1], Value::Integer(2));
    let s = run(&e, "SELECT distinct(host) FROM m WHERE tenant = 'a'");
    let hosts: Vec<&Value> = s[0].values.iter().map(|r| &r[1]).collect();
    assert_eq!(
        hosts,
        [&Value::String("h1".into()), &Value::String("h2".into())]
    );
}

#[test]
fn unsupported_queries_name_what_is_missing() {
    let (_d, e) = engine(DATA);
    for (q, word) in [
        ("SELECT derivative(v) FROM m", "derivative"),
        ("SELECT v + 1 FROM m", "arithmetic"),
        ("SELECT count(v) FROM m WHERE time != 0", "time"),
        ("SELECT mean(host) FROM m", "tag"),
    ] {
        match query(&e, q, &QueryOptions::default()) {
            Err(QueryError::Unsupported(m)) => assert!(m.contains(word), "{q}: {m}"),
            other => panic!("{q}: {other:?}"),
        }
    }
}

#[test]
fn without_lower_bound_each_series_starts_at_its_first_bucket_and_ends_at_now() {
    let (_d, e) = engine(DATA);
    let options = QueryOptions {
        now: 3 * H,
        ..QueryOptions::default()
    };
    let s = query(
        &e,
        "SELECT count(v) FROM m GROUP BY time(1h), host",
        &options,
    )
    .unwrap();
    let times = |s: &Series| -> Vec<Value> { s.values.iter().map(|r| r[0].clone()).collect() };
    assert_eq!(s[0].tags, [("host".to_owned(), "h1".to_owned())]);
    assert_eq!(times(&s[0]), [0, H, 2 * H, 3 * H].map(Value::Time));
    assert_eq!(times(&s[1]), [2 * H, 3 * H].map(Value::Time));
}

// A model check: random points and random aggregate queries against a direct evaluation.

#[derive(Clone, Debug)]
struct Pt {
    tenant: u8,
    host: Option<u8>,
    t: i64,
    i: i64,
}

fn points() -> impl Strategy<Value = Vec<Pt>> {
    prop::collection::vec(
        (0u8..3, prop::option::of(0u8..3), 0i64..48 * 60, -50i64..50).prop_map(
            |(tenant, host, minute, i)| Pt {
                tenant,
                host,
                t: minute * 60_000_000_000,
                i,
            },
        ),
        1..60,
    )
}

#[derive(Clone, Debug)]
struct Q {
    func: &'static str,
    host_filter: Option<(bool, u8)>,
    by_host: bool,
    interval_h: Option<i64>,
    lo_h: i64,
    hi_h: i64,
}

fn queries() -> impl Strategy<Value = Q> {
    (
        prop::sample::select(vec![
            "count", "sum", "min", "max", "spread", "first", "last",
        ]),
        prop::option::of((any::<bool>(), 0u8..3)),
        any::<bool>(),
        prop::option::of(1i64..7),
        0i64..24,
        24i64..49,
    )
        .prop_map(|(func, host_filter, by_host, interval_h, lo_h, hi_h)| Q {
            func,
            host_filter,
            by_host,
            interval_h,
            lo_h,
            hi_h,
        })
}

fn host_name(h: Option<u8>) -> String {
    h.map_or_else(String::new, |h| format!("h{h}"))
}

/// What InfluxDB answers, computed point by point: series → rows of (time, value).
fn model(pts: &[Pt], q: &Q) -> BTreeMap<String, Vec<(i64, Value)>> {
    let (lo, hi) = (q.lo_h * H, q.hi_h * H);
    let mut groups: BTreeMap<String, BTreeMap<i64, Vec<&Pt>>> = BTreeMap::new();
    for p in pts {
        if p.t < lo || p.t >= hi {
            continue;
        }
        if let Some((eq, h)) = q.host_filter {
            let same = host_name(p.host) == format!("h{h}");
            if same != eq {
                continue;
            }
        }
        let series = if q.by_host {
            host_name(p.host)
        } else {
            String::new()
        };
        let bucket = match q.interval_h {
            Some(d) => p.t - p.t.rem_euclid(d * H),
            None => lo,
        };
        groups
            .entry(series)
            .or_default()
            .entry(bucket)
            .or_default()
            .push(p);
    }
    let mut out = BTreeMap::new();
    for (series, buckets) in groups {
        let mut rows = Vec::new();
        let all: Vec<i64> = match q.interval_h {
            Some(d) => {
                let first = lo - lo.rem_euclid(d * H);
                (0..)
                    .map(|k| first + k * d * H)
                    .take_while(|&b| b < hi)
                    .collect()
            }
            None => vec![lo],
        };
        for b in all {
            let mut ps: Vec<&Pt> = buckets.get(&b).cloned().unwrap_or_default();
            ps.sort_by_key(|p| p.t);
            let vals: Vec<i64> = ps.iter().map(|p| p.i).collect();
            let v = if vals.is_empty() {
                if q.func == "count" {
                    Value::Integer(0)
                } else {
                    Value::Null
                }
            } else {
                match q.func {
                    "count" => Value::Integer(vals.len() as i64),
                    "sum" => Value::Integer(vals.iter().sum()),
                    "min" => Value::Integer(*vals.iter().min().unwrap()),
                    "max" => Value::Integer(*vals.iter().max().unwrap()),
                    "spread" => {
                        Value::Integer(vals.iter().max().unwrap() - vals.iter().min().unwrap())
                    }
                    "first" => Value::Integer(vals[0]),
                    _ => Value::Integer(*vals.last().unwrap()),
                }
            };
            rows.push((b, v));
        }
        out.insert(series, rows);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn aggregates_match_a_point_by_point_evaluation(pts in points(), q in queries()) {
        // One point per time: InfluxDB keeps one per series and time, and ties between series would
        // make first() and last() ambiguous.
        let mut seen = std::collections::HashSet::new();
        let pts: Vec<Pt> = pts.into_iter().filter(|p| seen.insert(p.t)).collect();
        let lines: String = pts
            .iter()
            .map(|p| {
                let host = p.host.map_or_else(String::new, |h| format!(",host=h{h}"));
                format!("m,tenant=t{}{host} i={}i {}\n", p.tenant, p.i, p.t)
            })
            .collect();
        let (_d, e) = engine(&lines);
        let mut text = format!("SELECT {}(i) FROM m WHERE time >= {} AND time < {}", q.func, q.lo_h * H, q.hi_h * H);
        if let Some((eq, h)) = q.host_filter {
            text += &format!(" AND host {} 'h{h}'", if eq { "=" } else { "!=" });
        }
        let mut dims = Vec::new();
        if let Some(d) = q.interval_h {
            dims.push(format!("time({d}h)"));
        }
        if q.by_host {
            dims.push("host".to_owned());
        }
        if !dims.is_empty() {
            text += &format!(" GROUP BY {}", dims.join(", "));
        }
        let got = run(&e, &text);
        let want = model(&pts, &q);
        prop_assert_eq!(got.len(), want.len(), "{}", text);
        for (s, (series, rows)) in got.iter().zip(&want) {
            if q.by_host {
                prop_assert_eq!(&s.tags, &vec![("host".to_owned(), series.clone())]);
            }
            let lone_selector = q.interval_h.is_none() && matches!(q.func, "min" | "max" | "first" | "last");
            let got_rows: Vec<(i64, Value)> = s
                .values
                .iter()
                .map(|r| (match r[0] { Value::Time(t) => t, _ => i64::MIN }, r[1].clone()))
                .collect();
            if lone_selector {
                // The time is the selected point's; compare values only.
                let gv: Vec<&Value> = got_rows.iter().map(|r| &r.1).collect();
                let wv: Vec<&Value> = rows.iter().map(|r| &r.1).collect();
                prop_assert_eq!(gv, wv, "{}", text);
            } else {
                prop_assert_eq!(&got_rows, rows, "{}", text);
            }
        }
    }
}

// Queries come from the network: whatever parses must be answered or refused, never panic.

fn shared_engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<(tempfile::TempDir, Engine)> = std::sync::OnceLock::new();
    &ENGINE
        .get_or_init(|| {
            engine(concat!(
                "m,tenant=a,host=h1 v=1,i=10i,s=\"x\",b=true 1000000000\n",
                "m,tenant=a,host=h2 v=2,i=-20i 7200000000000\n",
                "m,tenant=b v=3.5,u=7u,s=\"y\" 7300000000000\n",
                "n,tenant=b,host=h1 v=4 -7200000000000\n",
                "m,tenant=c,host=h3 i=9223372036854775807i,v=-1e300 1800000000000000000\n",
            ))
        })
        .1
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &[T]) -> impl Strategy<Value = T> + use<T> {
    prop::sample::select(items.to_vec())
}

fn any_select() -> impl Strategy<Value = String> {
    let field = pick(&[
        "count(v)",
        "sum(i)",
        "mean(v)",
        "min(i)",
        "max(v)",
        "first(s)",
        "last(b)",
        "median(v)",
        "percentile(v, -5)",
        "percentile(i, 99.9)",
        "percentile(v, 1e9)",
        "spread(i)",
        "stddev(v)",
        "distinct(host)",
        "distinct(tenant)",
        "count(distinct(s))",
        "top(v, 2)",
        "bottom(i, host, 3)",
        "top(i, tenant, 1)",
        "v",
        "i",
        "s",
        "host",
        "tenant",
        "*",
        "count(*)",
        "mean(/v|i/)",
        "v + 1",
        "event_id",
        "sum(u)",
        "max(b)",
        "mean(s)",
    ]);
    let source = pick(&[
        "m",
        "/./",
        "/^x/",
        "nosuch",
        "m, n",
        "(SELECT count(v) AS v, max(i) AS i FROM m GROUP BY time(1h), host)",
        "(SELECT * FROM m)",
        "(SELECT top(v, host, 2) AS v FROM /./)",
    ]);
    let bounds = [
        "0",
        "-9223372036854775806",
        "9223372036854775806",
        "now() - 1000000000w",
        "'2026-01-01T00:00:00Z'",
        "1h",
        "'1677-09-21 00:12:43'",
    ];
    let cond = pick(&[
        "host = 'h1'",
        "v > 2",
        "i != 5",
        "s =~ /x/",
        "tenant = 'a'",
        "tenant != 'b'",
        "host = '' OR v < 0",
        "i * 2 > i / 0",
        "b = true",
        "u >= 7",
        "(host !~ /1/ AND i % 3 = 1)",
    ]);
    let dims = pick(&[
        "",
        "time(1ns)",
        "time(1h)",
        "time(1s)",
        "time(7d, -1h)",
        "time(1000000w, 5000000w)",
        "host",
        "*",
        "/h/",
        "tenant, time(1h)",
        "time(30m), host",
    ]);
    let tail = pick(&[
        "",
        " fill(none)",
        " fill(0)",
        " fill(-1.5)",
        " fill(previous)",
        " fill(linear)",
        " ORDER BY time DESC",
        " LIMIT 1 OFFSET 1",
        " SLIMIT 1 SOFFSET 1",
        " tz('Europe/Paris')",
        " fill(linear) LIMIT 9223372036854775807",
    ]);
    (
        prop::collection::vec(field, 1..4),
        source,
        prop::option::of((pick(&bounds), pick(&bounds))),
        prop::option::of(cond),
        dims,
        tail,
    )
        .prop_map(|(fields, source, bounds, cond, dims, tail)| {
            let mut q = format!("SELECT {} FROM {source}", fields.join(", "));
            let mut wh = Vec::new();
            if let Some((lo, hi)) = bounds {
                wh.push(format!("time >= {lo} AND time < {hi}"));
            }
            if let Some(c) = cond {
                wh.push(c.to_owned());
            }
            if !wh.is_empty() {
                q += &format!(" WHERE {}", wh.join(" AND "));
            }
            if !dims.is_empty() {
                q += &format!(" GROUP BY {dims}");
            }
            q + tail
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_statement_is_answered_or_refused_without_panicking(q in any_select()) {
        if let Ok(statements) = parse_query(&q) {
            let options = QueryOptions {
                now: 1_800_000_000_000_000_000,
                ..QueryOptions::default()
            };
            for st in &statements {
                let _ = super::super::execute(shared_engine(), st, &options);
            }
        }
    }
}

#[test]
fn tag_conditions_go_to_the_scan_but_fields_of_the_same_shape_stay() {
    let (_d, e) = engine("m,tenant=a,host=h1 s=\"x\",v=1 1\nn,tenant=a,s=x v=2 2\n");
    let split = |q: &str| {
        let statements = parse_query(q).unwrap();
        let Some(super::super::ast::Statement::Select(stmt)) = statements.first() else {
            panic!("{q}");
        };
        super::pushdown::split(&e, stmt, None, stmt.condition.clone()).unwrap()
    };
    let out = split("SELECT v FROM m WHERE host = 'h1' AND s = 'x' AND v > 0");
    let keys: Vec<&str> = out.predicates.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["host"]);
    assert!(out.residual.is_some());
    // `s` is a tag of n but a field of m: reading both, it must stay a row condition.
    assert!(
        split("SELECT v FROM /./ WHERE s = 'x'")
            .predicates
            .is_empty()
    );
    assert_eq!(split("SELECT v FROM n WHERE s = 'x'").predicates.len(), 1);
    // And the answers agree with the rows.
    assert_eq!(run(&e, "SELECT v FROM m WHERE s = 'x'")[0].values.len(), 1);
    assert_eq!(run(&e, "SELECT v FROM /./ WHERE s = 'x'").len(), 2);
}

#[test]
fn raw_limit_and_offset_page_the_full_answer() {
    // Enough rows per series that the bounded selection of rows kicks in.
    let lines: String = (0..12_000)
        .map(|k| {
            let host = ["h1", "h2"][k % 2];
            // Times out of order within the batch of writes, to exercise the selection.
            let t = (k as i64 * 7_919) % 12_000;
            format!("m,tenant=t{},host={host} i={k}i {t}\n", k % 3)
        })
        .collect();
    let (_d, e) = engine(&lines);
    for order in ["", " ORDER BY time DESC"] {
        let full = run(&e, &format!("SELECT i FROM m GROUP BY host{order}"));
        for (limit, offset) in [(1, 0), (3, 2), (5000, 100), (7000, 5000)] {
            let page = run(
                &e,
                &format!("SELECT i FROM m GROUP BY host{order} LIMIT {limit} OFFSET {offset}"),
            );
            assert_eq!(page.len(), full.len());
            for (p, f) in page.iter().zip(&full) {
                let want: Vec<&Vec<Value>> = f.values.iter().skip(offset).take(limit).collect();
                let got: Vec<&Vec<Value>> = p.values.iter().collect();
                assert_eq!(got, want, "LIMIT {limit} OFFSET {offset}{order}");
            }
        }
    }
}

#[test]
fn a_field_missing_from_some_rows_never_matches_a_condition() {
    // `s` is a field: rows written without it must not match `s != 'x'` (a missing tag would).
    let (_d, e) = engine("m,tenant=a s=\"y\",i=1i 1\nm,tenant=a i=2i 2\nm,tenant=b i=3i 3\n");
    let s = run(&e, "SELECT i FROM m WHERE s != 'x'");
    assert_eq!(s[0].values, [vec![Value::Time(1), Value::Integer(1)]]);
}

#[test]
fn a_subquery_groups_by_the_outer_tags_and_interval_too() {
    // As InfluxDB: the outer GROUP BY (tags named, time interval) is pushed into the subquery,
    // so grouping by a tag the subquery did not name still works, per outer bucket.
    let (_d, e) = engine(concat!(
        "m,tenant=a,host=h1 i=1i 0\n",
        "m,tenant=a,host=h2 i=2i 10\n",
        "m,tenant=a,host=h1 i=4i 3600000000000\n",
    ));
    let s = run(
        &e,
        "SELECT sum(x) FROM (SELECT sum(i) AS x FROM m WHERE time >= 0 AND time < 2h) \
         WHERE time >= 0 AND time < 2h GROUP BY time(1h), host",
    );
    type Answer = Vec<(Vec<(String, String)>, Vec<Vec<Value>>)>;
    let got: Answer = s.into_iter().map(|s| (s.tags, s.values)).collect();
    let host = |h: &str| vec![("host".to_owned(), h.to_owned())];
    assert_eq!(
        got,
        vec![
            (
                host("h1"),
                vec![
                    vec![Value::Time(0), Value::Integer(1)],
                    vec![Value::Time(H), Value::Integer(4)]
                ]
            ),
            (
                host("h2"),
                vec![
                    vec![Value::Time(0), Value::Integer(2)],
                    vec![Value::Time(H), Value::Null]
                ]
            ),
        ]
    );
}

#[test]
fn a_spent_time_budget_stops_every_kind_of_statement() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use super::super::QueryBudget;

    let (_d, e) = engine(DATA);
    let spent = QueryOptions {
        budget: QueryBudget {
            deadline: Some(Instant::now()),
            timeout: Duration::from_millis(5),
            ..QueryBudget::default()
        },
        ..QueryOptions::default()
    };
    for q in [
        "SELECT count(v) FROM m GROUP BY time(1h)",
        "SELECT * FROM m",
        "SELECT max(c) FROM (SELECT count(v) AS c FROM m GROUP BY host)",
        "SELECT count(v) FROM /m/",
    ] {
        match query(&e, q, &spent) {
            Err(err @ QueryError::Timeout(_)) => {
                let m = err.to_string();
                assert!(m.contains("5ms") && m.contains("query_timeout_secs"), "{m}");
            }
            other => panic!("{q}: {other:?}"),
        }
    }
    let gone = QueryOptions {
        budget: QueryBudget {
            cancelled: Some(Arc::new(AtomicBool::new(true))),
            ..QueryBudget::default()
        },
        ..QueryOptions::default()
    };
    assert_eq!(
        query(&e, "SELECT count(v) FROM m", &gone),
        Err(QueryError::Cancelled)
    );
    // A budget with time left answers as without one.
    let ample = QueryOptions {
        budget: QueryBudget::with_timeout(Duration::from_secs(3600)),
        ..QueryOptions::default()
    };
    let s = query(&e, "SELECT count(v) FROM m", &ample).unwrap();
    assert_eq!(s[0].values[0][1], Value::Integer(3));
}

#[test]
fn the_memory_budget_bounds_rows_and_cells_and_names_its_setting() {
    use super::super::QueryBudget;

    let (_d, e) = engine(DATA);
    let small = QueryOptions {
        budget: QueryBudget {
            max_rows: 2,
            max_cells: 2,
            ..QueryBudget::default()
        },
        ..QueryOptions::default()
    };
    let err = query(&e, "SELECT * FROM m", &small)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 2 rows (query_max_rows)"), "{err}");
    let err = query(&e, "SELECT count(v) FROM m GROUP BY host, tenant", &small)
        .unwrap_err()
        .to_string();
    assert!(err.contains("query_max_cells"), "{err}");
    let err = query(
        &e,
        "SELECT count(v) FROM m WHERE time >= 0 AND time < 3h GROUP BY time(1h)",
        &small,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("query_max_cells"), "{err}");
    let scan = QueryOptions {
        budget: QueryBudget {
            max_scan_rows: 1,
            ..QueryBudget::default()
        },
        ..QueryOptions::default()
    };
    for q in ["SELECT count(v) FROM m", "SELECT * FROM /./"] {
        let err = query(&e, q, &scan).unwrap_err().to_string();
        assert!(
            err.contains("more than 1 stored rows (query_max_scan_rows)"),
            "{q}: {err}"
        );
    }
    assert_eq!(
        query(&e, "SELECT * FROM m WHERE tenant = 'b'", &scan).unwrap()[0]
            .values
            .len(),
        1
    );
    // Within the budget, the same statements answer.
    assert_eq!(
        query(&e, "SELECT * FROM m WHERE tenant = 'b'", &small).unwrap()[0]
            .values
            .len(),
        1
    );
    assert_eq!(
        query(&e, "SELECT count(v) FROM m GROUP BY host", &small)
            .unwrap()
            .len(),
        2
    );
}
