//! The InfluxQL differential test: MeterDB must answer every query of
//! `tests/data/influxql/queries.txt` over `data.lp` as InfluxDB 1.6 did, recorded in
//! `expected.json` by `record.sh` (which needs a real `influxd`; this test does not).
//!
//! Each query runs twice: with the data in the in-memory buffers, then after `flush()` with
//! the data in segments. Answers are compared as parsed JSON:
//! - floats are equal within 1e-9 relative, because MeterDB may sum in another order than
//!   InfluxDB (and `2.0` and `2` are the same number, as Go writes whole floats without `.0`);
//! - where InfluxDB answered an error (a query that does not parse, or one statement's
//!   error), MeterDB only has to answer an error too, for the same statement: the messages
//!   are its own.
//!
//! Every query's outcome is printed (`cargo test --test influxql_compat -- --nocapture`), and
//! the test fails if any differs.

use std::path::Path;

use meterdb::influxql::{QueryOptions, QueryResponse, execute_all, parse_query};
use meterdb::ingest::lineproto::{LineOptions, Precision, append_to_batch};
use meterdb::{Engine, Options, SyncPolicy, Timestamp, WriteBatch};
use serde_json::Value as Json;

/// Lines per write: keeps each WAL record far below its size limit.
const LINES_PER_WRITE: usize = 1000;

/// One recorded answer.
struct Case {
    query: String,
    epoch: Option<Precision>,
    response: Json,
}

fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/influxql"))
}

fn load_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(data_dir().join("expected.json")).unwrap();
    let cases: Json = serde_json::from_str(&text).unwrap();
    cases
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            query: c["query"].as_str().unwrap().to_owned(),
            epoch: c["epoch"].as_str().map(|e| Precision::parse(e).unwrap()),
            response: c["response"].clone(),
        })
        .collect()
}

fn load_data(engine: &Engine) {
    let body = std::fs::read_to_string(data_dir().join("data.lp")).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let opts = LineOptions {
        precision: Precision::Nanoseconds,
        default_tenant: None,
        now: Timestamp(0),
    };
    for chunk in lines.chunks(LINES_PER_WRITE) {
        let mut batch = WriteBatch::new();
        let errors = append_to_batch(chunk.join("\n").as_bytes(), &opts, &mut batch);
        assert!(errors.is_empty(), "data.lp: {errors:?}");
        let receipt = engine.write(batch).unwrap();
        assert!(receipt.rejected.is_empty(), "{:?}", receipt.rejected);
    }
}

/// MeterDB's answer, as the HTTP endpoint would serialize it.
fn answer(engine: &Engine, query: &str, epoch: Option<Precision>) -> Json {
    let options = QueryOptions {
        database: Some("meterdb".into()),
        ..QueryOptions::default()
    };
    let response = match parse_query(query) {
        Ok(statements) => execute_all(engine, &statements, &options),
        Err(e) => QueryResponse::error(format!("error parsing query: {e}")),
    };
    serde_json::from_str(&response.to_json(epoch)).unwrap()
}

/// Why `actual` differs from `expected`, or `None` when they agree.
fn compare(expected: &Json, actual: &Json) -> Option<String> {
    if expected.get("error").is_some() {
        let any_error = actual.get("error").is_some()
            || results(actual).iter().any(|r| r.get("error").is_some());
        return (!any_error).then(|| "InfluxDB answered an error, MeterDB did not".into());
    }
    if let Some(e) = actual.get("error") {
        return Some(format!("MeterDB answered the error {e}"));
    }
    let (want, got) = (results(expected), results(actual));
    if want.len() != got.len() {
        return Some(format!("{} results, expected {}", got.len(), want.len()));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        match (w.get("error"), g.get("error")) {
            (Some(_), Some(_)) => continue,
            (Some(_), None) => return Some(format!("statement {i}: expected an error")),
            (None, Some(e)) => return Some(format!("statement {i}: MeterDB answered {e}")),
            (None, None) => {}
        }
        if let Some(why) = diff(w, g, &format!("results[{i}]")) {
            return Some(why);
        }
    }
    None
}

fn results(response: &Json) -> &[Json] {
    response
        .get("results")
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Structural equality with floats equal within 1e-9 relative.
fn diff(expected: &Json, actual: &Json, at: &str) -> Option<String> {
    match (expected, actual) {
        (Json::Number(w), Json::Number(g)) => {
            let same = match (w.as_i64(), g.as_i64(), w.as_u64(), g.as_u64()) {
                (Some(a), Some(b), _, _) => a == b,
                (_, _, Some(a), Some(b)) => a == b,
                _ => {
                    let (a, b) = (
                        w.as_f64().unwrap_or(f64::NAN),
                        g.as_f64().unwrap_or(f64::NAN),
                    );
                    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
                }
            };
            (!same).then(|| format!("{at}: expected {w}, got {g}"))
        }
        (Json::Array(w), Json::Array(g)) => {
            if w.len() != g.len() {
                return Some(format!(
                    "{at}: expected {} items, got {}: expected {}, got {}",
                    w.len(),
                    g.len(),
                    short(expected),
                    short(actual)
                ));
            }
            w.iter()
                .zip(g)
                .enumerate()
                .find_map(|(i, (a, b))| diff(a, b, &format!("{at}[{i}]")))
        }
        (Json::Object(w), Json::Object(g)) => {
            let mut keys: Vec<&String> = w.keys().chain(g.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (w.get(k), g.get(k)) {
                (Some(a), Some(b)) => diff(a, b, &format!("{at}.{k}")),
                (Some(a), None) => Some(format!("{at}: missing {k} (expected {})", short(a))),
                (None, Some(b)) => Some(format!("{at}: unexpected {k} = {}", short(b))),
                (None, None) => None,
            })
        }
        (w, g) => (w != g).then(|| format!("{at}: expected {}, got {}", short(w), short(g))),
    }
}

/// A JSON value cut to a readable length.
fn short(v: &Json) -> String {
    let s = v.to_string();
    match s.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s,
    }
}

#[test]
fn influxql_answers_match_influxdb() {
    let cases = load_cases();
    assert!(
        cases.len() >= 80,
        "expected.json holds {} cases",
        cases.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        sync: SyncPolicy::None,
        // The data set is dated: accept any age, whatever day the tests run.
        raw_retention: std::time::Duration::MAX,
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    load_data(&engine);

    let mut failures = Vec::new();
    for phase in ["buffer", "segments"] {
        if phase == "segments" {
            engine.flush().unwrap();
        }
        for case in &cases {
            let epoch = if case.epoch.is_some() {
                "ns"
            } else {
                "rfc3339"
            };
            let got = answer(&engine, &case.query, case.epoch);
            match compare(&case.response, &got) {
                None => println!("PASS [{phase}, {epoch}] {}", case.query),
                Some(why) => {
                    println!("FAIL [{phase}, {epoch}] {}\n     {why}", case.query);
                    failures.push(format!("[{phase}, {epoch}] {}", case.query));
                }
            }
        }
    }
    let total = 2 * cases.len();
    println!(
        "{} of {total} answers match InfluxDB",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} answers differ from InfluxDB:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
