//! `SELECT` answers compared with InfluxDB 1.6.7's, recorded from a real `influxd` loaded with
//! the same line protocol (`tests/data/influxql/*.lp`). Each line of `select_golden.tsv` is
//! `dataset <TAB> query <TAB> InfluxDB's JSON answer`; MeterDB's answer must be the same JSON.
//! About 300 queries: hand-written ones per feature and random ones from a small grammar
//! (functions × conditions × GROUP BY × fill × paging). Left out of the recording are the
//! answers where MeterDB knowingly differs: float sums that differ in the last digit (values
//! added in another order), InfluxDB's `SLIMIT` applied to stored series before grouping, the
//! order of `top`/`bottom` points tied on value and time, `SELECT *` over a multi-column
//! subquery (InfluxDB splits its rows per column), `LIMIT` pushed into `top`/`bottom`, and
//! `GROUP BY time(d, offset)` without a lower time bound (InfluxDB returns times in 1677).

use std::collections::HashMap;
use std::path::Path;

use meterdb::influxql::{QueryOptions, execute_all, parse_query};
use meterdb::ingest::lineproto::{LineOptions, Precision, append_to_batch};
use meterdb::{Engine, Options, SyncPolicy, Timestamp, WriteBatch};

fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/influxql"))
}

fn load(dir: &Path, dataset: &str) -> Engine {
    let engine = Engine::open(
        dir,
        Options {
            sync: SyncPolicy::None,
            // The data set is dated: accept any age, whatever day the tests run.
            raw_retention: std::time::Duration::MAX,
            ..Options::default()
        },
    )
    .unwrap();
    let body = std::fs::read(data_dir().join(dataset)).unwrap();
    let mut batch = WriteBatch::new();
    let opts = LineOptions {
        precision: Precision::Nanoseconds,
        default_tenant: None,
        now: Timestamp(0),
    };
    let errors = append_to_batch(&body, &opts, &mut batch);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(engine.write(batch).unwrap().rejected.is_empty());
    engine
}

#[test]
fn select_answers_equal_influxdb_1_6() {
    let golden = std::fs::read_to_string(data_dir().join("select_golden.tsv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut engines: HashMap<String, Engine> = HashMap::new();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in golden.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, '\t');
        let (dataset, query, want) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let engine = engines
            .entry(dataset.to_owned())
            .or_insert_with(|| load(&dir.path().join(dataset), dataset));
        let statements = parse_query(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let options = QueryOptions {
            // Later than every point, earlier than any test run.
            now: 1_800_000_000_000_000_000,
            ..QueryOptions::default()
        };
        let got = execute_all(engine, &statements, &options).to_json(None);
        let got: serde_json::Value = serde_json::from_str(&got).unwrap();
        let want: serde_json::Value = serde_json::from_str(want).unwrap();
        if got != want {
            failures.push(format!("{query}\n  got:  {got}\n  want: {want}"));
        }
        n += 1;
    }
    assert!(n > 90, "the golden file lost its queries");
    assert!(
        failures.is_empty(),
        "{} of {n} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
