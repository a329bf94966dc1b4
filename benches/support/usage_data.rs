//! The benchmark data set: the shared usage-data generator's events (`gen_usage.py`), parsed
//! into write batches. The file is generated once into `target/bench-data/` (or taken from
//! `METERDB_BENCH_FILE`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use meterdb::{FieldValueRef, Timestamp, WriteBatch};

/// The number of events a bench uses: `METERDB_BENCH_EVENTS`, else `default`.
pub fn events_from_env(default: usize) -> usize {
    std::env::var("METERDB_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Path of a generated data set of `n` events, generating it if needed.
pub fn data_file(n: usize) -> PathBuf {
    if let Ok(p) = std::env::var("METERDB_BENCH_FILE") {
        return PathBuf::from(p);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("usage-{n}.lp"));
    if !file.exists() {
        let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bench/gen_usage.py");
        let status = Command::new("python3")
            .arg(&generator)
            .args(["--events", &n.to_string(), "--out"])
            .arg(&file)
            .status()
            .expect("python3 runs the generator");
        assert!(status.success(), "{} failed", generator.display());
    }
    file
}

/// The data set as batches of `batch_size` events; `with_ids` keeps the event ids.
pub fn batches(n: usize, batch_size: usize, with_ids: bool) -> Vec<WriteBatch> {
    let text = std::fs::read_to_string(data_file(n)).unwrap();
    let mut out = Vec::new();
    let mut batch = WriteBatch::new();
    for line in text.lines().take(n) {
        add_line(&mut batch, line, with_ids);
        if batch.len() == batch_size {
            out.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// Adds one generated line. The generator writes no escapes, no spaces inside values and no
/// commas inside strings, so a split is exact for its output (not a general parser).
fn add_line(batch: &mut WriteBatch, line: &str, with_ids: bool) {
    let mut parts = line.split(' ');
    let (key, fields, ts) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut key_parts = key.split(',');
    let measurement = key_parts.next().unwrap();
    let tags: Vec<(&str, &str)> = key_parts.map(|kv| kv.split_once('=').unwrap()).collect();
    let tenant = tags.iter().find(|(k, _)| *k == "tenant").unwrap().1;
    let mut e = batch.add(tenant, measurement, Timestamp(ts.parse().unwrap()));
    for (k, v) in tags.iter().filter(|(k, _)| *k != "tenant") {
        e.tag(k, v);
    }
    for kv in fields.split(',') {
        let (k, v) = kv.split_once('=').unwrap();
        if let Some(s) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            if k == "event_id" {
                if with_ids {
                    e.event_id(s);
                }
            } else {
                e.field(k, FieldValueRef::Str(s));
            }
        } else if let Some(i) = v.strip_suffix('i') {
            e.field(k, FieldValueRef::I64(i.parse().unwrap()));
        } else {
            e.field(k, FieldValueRef::F64(v.parse().unwrap()));
        }
    }
}
