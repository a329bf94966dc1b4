//! Format compatibility: a data directory written by format version 1 (segments, manifest,
//! and WAL records not yet flushed, as a crash leaves them) must keep opening and reading the
//! same. Regenerate it only for a new format version, into a new folder:
//! `METERDB_WRITE_GOLDEN=tests/data/v2 cargo test --test compat`.

mod common;

use std::path::Path;

use common::{all_events, crash_image};
use meterdb::{Engine, Event, FieldValue, Options, ScanRequest, SyncPolicy, TenantId, Timestamp};

const T0: i64 = 1_793_491_200_000_000_000;

/// The events of the golden directory: every field type, missing tags and fields, ids in
/// both binary forms and as plain strings, three days, three tenants.
fn golden_events() -> Vec<Event> {
    (0..60)
        .map(|i: i64| {
            let mut fields = vec![("f".to_owned(), FieldValue::F64(i as f64 / 4.0))];
            if i % 2 == 0 {
                fields.push(("i".into(), FieldValue::I64(-i * 1000)));
            }
            if i % 3 == 0 {
                fields.push(("u".into(), FieldValue::U64(i as u64 * 7)));
                fields.push(("b".into(), FieldValue::Bool(i % 2 == 1)));
            }
            if i % 5 == 0 {
                fields.push(("s".into(), FieldValue::Str(format!("note {i}"))));
            }
            let mut tags = vec![("endpoint".to_owned(), format!("/api/{}", i % 4))];
            if i % 4 != 0 {
                tags.push((
                    "method".into(),
                    ["GET", "POST", "PUT"][i as usize % 3].into(),
                ));
            }
            let event_id = match i % 3 {
                0 => Some(format!("{:032x}", i * 7919)),
                1 => Some(format!("00000000-0000-4000-8000-{:012x}", i)),
                _ => (i % 2 == 0).then(|| format!("id-{i}")),
            };
            Event {
                tenant: TenantId::new(["acme", "globex", "initech"][i as usize % 3]),
                measurement: if i % 7 == 0 { "storage" } else { "api_calls" }.into(),
                tags,
                fields,
                timestamp: Timestamp(T0 + (i % 3) * 86_400_000_000_000 + i * 1_000_000),
                event_id,
            }
        })
        .collect()
}

#[test]
fn format_version_1_directory_still_reads_the_same() {
    if let Ok(target) = std::env::var("METERDB_WRITE_GOLDEN") {
        write_golden(Path::new(&target));
    }
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1");
    // Opening repairs (replays, trims), so work on a copy.
    let dir = crash_image(&golden);
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    assert!(
        engine
            .recovery_report()
            .iter()
            .all(|r| r.corruptions.is_empty())
    );
    assert!(
        engine.recovery_report()[0].wal_records_replayed > 0,
        "the WAL part was not replayed"
    );
    let mut expected = golden_events();
    common::sort_events(&mut expected);
    let got = all_events(&engine, &ScanRequest::default());
    assert_eq!(format!("{got:?}"), format!("{expected:?}"));
    assert!(engine.check().is_empty());
}

/// Writes the golden directory: the first half flushed to segments, the second half only in
/// the WAL.
fn write_golden(target: &Path) {
    let live = tempfile::tempdir().unwrap();
    let options = Options {
        shards: Some(1),
        sync: SyncPolicy::Always,
        // The golden events are dated: accept any age, whatever day this runs.
        raw_retention: std::time::Duration::MAX,
        ..Options::default()
    };
    let engine = Engine::open(live.path(), options).unwrap();
    let events = golden_events();
    let (flushed, buffered) = events.split_at(events.len() / 2);
    common::store(&engine, flushed);
    engine.flush().unwrap();
    common::store(&engine, buffered);
    let image = crash_image(live.path());
    let _ = std::fs::remove_dir_all(target);
    common::copy_dir(image.path(), target);
}
