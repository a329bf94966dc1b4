//! The six benchmark queries of the usage benchmark kit (`tests/bench/`, the same scripts the
//! peer comparison runs), unchanged, against an engine loaded with the kit's generated data.
//! Q1/Q3/Q5/Q6 are checked against the kit's oracle the way the benchmark checks them; Q2
//! (hourly sums) and Q4 (daily 95th percentiles) against a brute-force recount of the lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "bench/queries.rs"]
mod queries;

use meterdb::influxql::{QueryOptions, Series, Value, execute, parse_query};
use meterdb::ingest::lineproto::{LineOptions, Precision, append_to_batch};
use meterdb::{Engine, Options, SyncPolicy, Timestamp, WriteBatch};

const EVENTS: usize = 50_000;
const END: i64 = 1_793_491_200 * 1_000_000_000; // 2026-11-01T00:00:00Z
const START: i64 = END - 7 * DAY;
const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

fn kit(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bench")
        .join(script)
}

/// The generated dataset, cached under the target directory between runs.
fn dataset() -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("usage_{EVENTS}.lp"));
    if !path.exists() {
        let tmp = path.with_extension("lp.tmp");
        let status = Command::new("python3")
            .arg(kit("gen_usage.py"))
            .args(["--events", &EVENTS.to_string(), "--out"])
            .arg(&tmp)
            .status()
            .expect("python3 runs the benchmark kit");
        assert!(status.success(), "gen_usage.py failed");
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

fn oracle(data: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(kit("oracle.py"))
        .arg(data)
        .output()
        .expect("python3 runs the benchmark kit");
    assert!(out.status.success(), "oracle.py failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `influx_queries(t)` of the kit's `query.py`, string for string.
fn influx_queries(t: &str) -> BTreeMap<&'static str, String> {
    queries::queries(t).into_iter().collect()
}

fn run(engine: &Engine, q: &str) -> Vec<Series> {
    let statements = parse_query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(statements.len(), 1);
    let statement = statements.first().unwrap();
    let options = QueryOptions {
        now: END + DAY,
        ..QueryOptions::default()
    };
    execute(engine, statement, &options).unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// The values of the only series, as `query.py`'s `influx_parse` reads them.
fn values(series: &[Series]) -> Vec<Vec<Value>> {
    assert!(
        series.len() <= 1,
        "one series expected, got {}",
        series.len()
    );
    series.first().map(|s| s.values.clone()).unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => *i,
        Value::Null => 0,
        other => panic!("integer expected, got {other:?}"),
    }
}

/// One `api_calls` line of the benchmark data, as the brute force needs it.
struct Call {
    tenant: String,
    ts: i64,
    bytes: i64,
    response_time_ms: f64,
}

fn api_calls(data: &[u8]) -> Vec<Call> {
    let text = std::str::from_utf8(data).unwrap();
    text.lines()
        .filter(|l| l.starts_with("api_calls,"))
        .map(|l| {
            let mut parts = l.split(' ');
            let (key, fields, ts) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let tenant = key
                .split(',')
                .find_map(|kv| kv.strip_prefix("tenant="))
                .unwrap();
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                    .unwrap()
            };
            Call {
                tenant: tenant.to_owned(),
                ts: ts.parse().unwrap(),
                bytes: field("bytes").trim_end_matches('i').parse().unwrap(),
                response_time_ms: field("response_time_ms").parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn benchmark_queries_match_the_oracle_and_a_brute_force_recount() {
    let data_path = dataset();
    let oracle = oracle(&data_path);
    let data = std::fs::read(&data_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            sync: SyncPolicy::None,
            // The data set is dated: accept any age, whatever day the tests run.
            raw_retention: std::time::Duration::MAX,
            ..Options::default()
        },
    )
    .unwrap();
    let mut rest: &[u8] = &data;
    while !rest.is_empty() {
        let cut = rest
            .iter()
            .take(1 << 20)
            .rposition(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (body, tail) = rest.split_at(cut);
        let mut batch = WriteBatch::new();
        let opts = LineOptions {
            precision: Precision::Nanoseconds,
            default_tenant: None,
            now: Timestamp(END),
        };
        let errors = append_to_batch(body, &opts, &mut batch);
        assert!(errors.is_empty(), "{errors:?}");
        let receipt = engine.write(batch).unwrap();
        assert!(receipt.rejected.is_empty());
        rest = tail;
    }

    let tenant = oracle["tenant"].as_str().unwrap();
    let qs = influx_queries(tenant);
    let q = |name: &str| values(&run(&engine, &qs[name]));

    // Q1: hourly counts, 168 buckets, empty hours as 0.
    let q1: Vec<i64> = q("Q1").iter().map(|r| int(&r[1])).collect();
    let want: Vec<i64> = serde_json::from_value(oracle["q1_hourly_counts"].clone()).unwrap();
    assert_eq!(q1, want, "Q1");

    // Q3: top-10 endpoints, compared as query.py sorts them.
    let series = run(&engine, &qs["Q3"]);
    assert_eq!(series[0].columns, ["time", "top", "endpoint"]);
    let mut q3: Vec<(String, i64)> = values(&series)
        .iter()
        .map(|r| match &r[2] {
            Value::String(e) => (e.clone(), int(&r[1])),
            other => panic!("endpoint expected, got {other:?}"),
        })
        .collect();
    q3.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let want: Vec<(String, i64)> =
        serde_json::from_value(oracle["q3_top10_endpoints"].clone()).unwrap();
    assert_eq!(q3, want, "Q3");

    // Q5: distinct users per day.
    let q5: Vec<i64> = q("Q5").iter().map(|r| int(&r[1])).collect();
    let want: Vec<i64> =
        serde_json::from_value(oracle["q5_distinct_users_per_day"].clone()).unwrap();
    assert_eq!(q5, want, "Q5");

    // Q6: one count over every tenant, at the query's lower bound.
    let q6 = q("Q6");
    assert_eq!(q6.len(), 1);
    assert_eq!(q6[0][0], Value::Time(END - DAY));
    assert_eq!(
        int(&q6[0][1]),
        oracle["q6_api_calls_last_24h"].as_i64().unwrap(),
        "Q6"
    );

    let calls: Vec<Call> = api_calls(&data)
        .into_iter()
        .filter(|c| c.tenant == tenant && (START..END).contains(&c.ts))
        .collect();

    // Q2: hourly sums of an integer field stay integers; empty hours are null.
    let mut sums: Vec<Option<i64>> = vec![None; 168];
    for c in &calls {
        let h = ((c.ts - START) / HOUR) as usize;
        sums[h] = Some(sums[h].unwrap_or(0) + c.bytes);
    }
    let q2 = q("Q2");
    assert_eq!(q2.len(), 168);
    for (h, row) in q2.iter().enumerate() {
        assert_eq!(row[0], Value::Time(START + h as i64 * HOUR));
        assert_eq!(
            row[1],
            sums[h].map_or(Value::Null, Value::Integer),
            "Q2 hour {h}"
        );
    }

    // Q4: daily nearest-rank 95th percentile, InfluxDB's definition.
    let q4 = q("Q4");
    assert_eq!(q4.len(), 7);
    for (d, row) in q4.iter().enumerate() {
        let mut day: Vec<f64> = calls
            .iter()
            .filter(|c| (c.ts - START) / DAY == d as i64)
            .map(|c| c.response_time_ms)
            .collect();
        day.sort_by(f64::total_cmp);
        let i = (day.len() as f64 * 0.95 + 0.5).floor() as usize - 1;
        assert_eq!(row[0], Value::Time(START + d as i64 * DAY));
        assert_eq!(row[1], Value::Float(day[i]), "Q4 day {d}");
    }
}
