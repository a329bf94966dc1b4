//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod crash;
pub mod server;

use std::path::Path;
use std::time::Duration;

use meterdb::{
    ColumnBatch, Engine, Event, FieldValue, FieldValues, Options, ScanRequest, SyncPolicy,
    TenantId, Timestamp,
};

/// Options for tests: two shards, a small buffer so that flushes happen, no fsync, and no
/// time bounds: the tests' events are dated (2026 and earlier, some after a fixed clock) and
/// must be accepted, and their ids remembered, whatever day the tests run. The tests of the
/// ingest window and of the dedup window set their own.
pub fn test_options() -> Options {
    Options {
        shards: Some(2),
        sync: SyncPolicy::None,
        raw_retention: Duration::MAX,
        max_future: Duration::MAX,
        dedup_window: Duration::MAX,
        ..Options::default()
    }
}

/// A usage event.
pub fn event(tenant: &str, ts: i64, endpoint: &str, ms: f64, id: Option<&str>) -> Event {
    Event {
        tenant: TenantId::new(tenant),
        measurement: "api_calls".into(),
        tags: vec![
            ("endpoint".into(), endpoint.into()),
            ("method".into(), "GET".into()),
        ],
        fields: vec![
            ("response_time_ms".into(), FieldValue::F64(ms)),
            ("bytes".into(), FieldValue::I64(ts % 1000)),
        ],
        timestamp: Timestamp(ts),
        event_id: id.map(str::to_owned),
    }
}

/// Every stored event, rebuilt from scan batches, in a canonical order (tenant, measurement,
/// time, then content), with tags and fields sorted by key.
pub fn all_events(engine: &Engine, req: &ScanRequest) -> Vec<Event> {
    let mut out: Vec<Event> = engine
        .scan(req)
        .unwrap()
        .iter()
        .flat_map(batch_events)
        .collect();
    sort_events(&mut out);
    out
}

/// The events of one batch.
pub fn batch_events(b: &ColumnBatch) -> Vec<Event> {
    (0..b.len())
        .map(|row| {
            let mut tags: Vec<(String, String)> = b
                .tags
                .iter()
                .filter_map(|t| Some((t.key.clone(), t.value(row)?.to_owned())))
                .collect();
            tags.sort();
            let mut fields: Vec<(String, FieldValue)> = b
                .fields
                .iter()
                .filter_map(|f| {
                    let v = match &f.values {
                        FieldValues::F64(v) => FieldValue::F64(v[row]?),
                        FieldValues::I64(v) => FieldValue::I64(v[row]?),
                        FieldValues::U64(v) => FieldValue::U64(v[row]?),
                        FieldValues::Bool(v) => FieldValue::Bool(v[row]?),
                        FieldValues::Str(v) => FieldValue::Str(v.get(row)?.to_owned()),
                    };
                    Some((f.key.clone(), v))
                })
                .collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Event {
                tenant: b.tenant.clone(),
                measurement: b.measurement.clone(),
                tags,
                fields,
                timestamp: Timestamp(b.timestamps[row]),
                event_id: b
                    .event_ids
                    .as_ref()
                    .and_then(|ids| ids.get(row))
                    .map(str::to_owned),
            }
        })
        .collect()
}

/// Puts events in the canonical order of [`all_events`], with tags and fields sorted.
pub fn sort_events(events: &mut [Event]) {
    for e in events.iter_mut() {
        e.tags.sort();
        e.fields.sort_by(|a, b| a.0.cmp(&b.0));
    }
    events.sort_by(|a, b| {
        (a.tenant.as_str(), &a.measurement, a.timestamp)
            .cmp(&(b.tenant.as_str(), &b.measurement, b.timestamp))
            .then_with(|| format!("{a:?}").cmp(&format!("{b:?}")))
    });
}

/// A copy of a live data directory, as a crash would leave it on disk: every file as written
/// so far (the lock file excluded).
pub fn crash_image(dir: &Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    copy_dir(dir, image.path());
    image
}

/// Copies a directory tree (lock files excluded: a copy is never locked).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            // A file can vanish between listing and copying (a WAL file being trimmed).
            let _ = std::fs::copy(entry.path(), &target);
        }
    }
}

/// Writes events and checks that none was rejected.
pub fn store(engine: &Engine, events: &[Event]) {
    let mut batch = meterdb::WriteBatch::new();
    for e in events {
        batch.push(e);
    }
    let receipt = engine.write(batch).unwrap();
    assert!(receipt.rejected.is_empty(), "{:?}", receipt.rejected);
    assert_eq!(receipt.written, events.len());
}

/// `q` percent-encoded for a URL's query string (every byte but the unreserved ones).
pub fn url_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether `needle` occurs in any file under `dir`, in its raw bytes or inside any zstd
/// frame the file holds (strings and dictionaries are stored compressed when that wins).
pub fn occurs_in(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    // Files come and go while a server compacts: a vanished one holds nothing.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            hits.extend(occurs_in(&path, needle));
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let mut found = contains(&bytes, needle);
        for at in 0..bytes.len().saturating_sub(4) {
            if found {
                break;
            }
            if bytes[at..at + 4] == [0x28, 0xb5, 0x2f, 0xfd] {
                let mut out = Vec::new();
                let mut d = zstd::stream::read::Decoder::new(&bytes[at..])
                    .unwrap()
                    .single_frame();
                if std::io::Read::read_to_end(&mut d, &mut out).is_ok() {
                    found = contains(&out, needle);
                }
            }
        }
        if found {
            hits.push(path.display().to_string());
        }
    }
    hits
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
