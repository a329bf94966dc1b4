//! A child process that writes batches in a loop, and the checks a parent makes after killing
//! it. Each batch holds 1-5 events of one tenant, each event carries its batch number and the
//! batch's size, and ids `b{batch}-{i}`; the child prints `ack {batch}` after each write is
//! acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use meterdb::{
    Engine, FieldValueRef, FieldValues, Options, ScanRequest, SyncPolicy, Timestamp, WriteBatch,
};

/// Environment variable naming the child's data directory.
pub const CHILD_DIR: &str = "METERDB_TEST_CHILD_DIR";
/// Environment variable with the first batch number the child writes.
pub const CHILD_START: &str = "METERDB_TEST_CHILD_START";

const T0: i64 = 1_793_491_200_000_000_000;

/// Options of the crash tests: durable acks, small buffers so that flushes happen often.
pub fn crash_options() -> Options {
    Options {
        shards: Some(2),
        sync: SyncPolicy::Always,
        max_buffer_bytes: 32 << 10,
        max_wal_file_bytes: 64 << 10,
        // The batches are dated 2026-11: accept any age, whatever day the tests run.
        raw_retention: std::time::Duration::MAX,
        ..Options::default()
    }
}

/// [`crash_options`] with a clock fixed one day after the batches' first day, so that the
/// dedup window covers them whatever day the tests run (the dedup crash test re-sends them).
pub fn crash_options_fixed_clock() -> Options {
    Options {
        clock: std::sync::Arc::new(meterdb::clock::ManualClock::new(Timestamp(
            T0 + 86_400_000_000_000,
        ))),
        ..crash_options()
    }
}

/// The batch number `b` as a write batch.
pub fn numbered_batch(b: u64) -> WriteBatch {
    let n = 1 + b % 5;
    let tenant = format!("tenant{}", b % 7);
    let mut batch = WriteBatch::new();
    for i in 0..n {
        // Spread over two days so that flushes write several segments.
        let ts = T0 + (b as i64 % 2) * 86_400_000_000_000 + b as i64 * 1000 + i as i64;
        batch
            .add(&tenant, "api_calls", Timestamp(ts))
            .tag("endpoint", &format!("/api/{}", b % 11))
            .field("batch", FieldValueRef::I64(b as i64))
            .field("n", FieldValueRef::I64(n as i64))
            .event_id(&format!("b{b}-{i}"));
    }
    batch
}

/// The child's loop: runs when `CHILD_DIR` is set, with `options`, until killed. `armed` runs
/// once the engine is open (crash tests set their crash point there, so that it is reached by
/// the writes rather than by the recovery at open).
pub fn child_writer(options: Options, armed: impl FnOnce()) {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let start: u64 = std::env::var(CHILD_START)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let engine = Engine::open(&dir, options).unwrap();
    armed();
    let mut out = std::io::stdout().lock();
    for b in start.. {
        let receipt = engine.write(numbered_batch(b)).unwrap();
        assert!(receipt.rejected.is_empty());
        writeln!(out, "ack {b}").unwrap();
        out.flush().unwrap();
    }
}

/// Starts the test binary's `test_name` as a child writing into `dir` from batch `start`,
/// lets it run for `run_for` (or until it dies), kills it with SIGKILL, and returns the
/// acknowledged batch numbers.
pub fn run_child(test_name: &str, dir: &Path, start: u64, run_for: Duration) -> BTreeSet<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_START, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse().ok()))
            .collect::<BTreeSet<u64>>()
    });
    let deadline = std::time::Instant::now() + run_for;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    reader.join().unwrap()
}

/// Opens the directory and checks: every acknowledged batch is present, every batch present
/// is complete, and no event id appears twice. Returns the number of batches present.
pub fn check_store(dir: &Path, options: Options, acked: &BTreeSet<u64>) -> usize {
    let engine = Engine::open(dir, options).unwrap();
    let mut rows: BTreeMap<i64, (i64, usize)> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for batch in engine.scan(&ScanRequest::default()).unwrap() {
        let (Some(FieldValues::I64(nums)), Some(FieldValues::I64(ns))) = (
            batch.field("batch").map(|f| &f.values),
            batch.field("n").map(|f| &f.values),
        ) else {
            panic!("batch without the test's fields")
        };
        let event_ids = batch.event_ids.as_ref().expect("event ids");
        for row in 0..batch.len() {
            let entry = rows
                .entry(nums[row].unwrap())
                .or_insert((ns[row].unwrap(), 0));
            entry.1 += 1;
            let id = event_ids.get(row).unwrap().to_owned();
            assert!(ids.insert(id.clone()), "event {id} is stored twice");
        }
    }
    for (b, (n, seen)) in &rows {
        assert_eq!(
            *n as usize, *seen,
            "batch {b} is partial: {seen} of {n} events"
        );
    }
    for b in acked {
        assert!(
            rows.contains_key(&(*b as i64)),
            "acknowledged batch {b} is lost"
        );
    }
    check_rollups(&engine);
    engine.close().unwrap();
    rows.len()
}

/// Each tenant's `api_calls` usage, read from rollups, equals a count of its stored events,
/// in total and per day.
pub fn check_rollups(engine: &Engine) {
    let day = 86_400_000_000_000;
    for t in 0..7 {
        let tenant = format!("tenant{t}");
        for (start, end) in [
            (T0 - day, T0 + 3 * day),
            (T0, T0 + day),
            (T0 + day, T0 + 2 * day),
        ] {
            let stored = engine
                .count(&ScanRequest {
                    tenant: Some(tenant.as_str().into()),
                    measurement: Some("api_calls".into()),
                    time: Some(start..end),
                    ..ScanRequest::default()
                })
                .unwrap();
            let usage = engine.usage(&tenant, "api_calls", start..end).unwrap();
            assert_eq!(
                usage.count, stored,
                "{tenant}: rollups count {} api_calls in [{start}, {end}), the events are {stored}",
                usage.count
            );
        }
    }
}
