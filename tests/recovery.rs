//! Crash recovery, from outside the process: a child writes in a loop and is killed with
//! SIGKILL at random moments (during writes, flushes, WAL rolls and its own recovery); after
//! every kill the directory must hold every acknowledged event exactly once and no partial
//! batch. Also: damage to WAL files, segments and the manifest is detected and reported, and
//! the good data stays readable.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::crash::{
    check_store, child_writer, crash_options, crash_options_fixed_clock, run_child,
};
use common::{all_events, event, sort_events, store, test_options};
use meterdb::{CorruptionKind, Engine, ScanRequest};

/// Not a test on its own: the child process of `acknowledged_writes_survive_sigkill`.
#[test]
fn child_writer_for_sigkill() {
    child_writer(crash_options(), || ());
}

#[test]
fn acknowledged_writes_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut next = 0;
    // A fixed pseudo-random sequence of kill delays, 20-400 ms: reproducible, and covering
    // kills during start-up recovery as well as during writes and flushes.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let cycles = 20;
    for _ in 0..cycles {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(20 + (seed >> 33) % 380);
        let new = run_child("child_writer_for_sigkill", dir.path(), next, delay);
        next = new.last().map_or(next, |b| b + 1) + 100;
        acked.extend(new);
        let present = check_store(dir.path(), crash_options(), &acked);
        eprintln!(
            "killed after {delay:?}: {} batches acknowledged so far, {present} present",
            acked.len()
        );
    }
    assert!(
        acked.len() > 50,
        "only {} batches were acknowledged in {cycles} cycles",
        acked.len()
    );
}

/// Not a test on its own: the child process of `resent_batches_are_stored_once_across_sigkills`.
#[test]
fn child_writer_for_sigkill_with_a_fixed_clock() {
    child_writer(crash_options_fixed_clock(), || ());
}

/// Every child starts over from batch 0, so it re-sends every batch the previous children
/// wrote, acknowledged or cut short by the kill; `check_store` fails if an event id is
/// stored twice.
#[test]
fn resent_batches_are_stored_once_across_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let cycles = 8;
    for _ in 0..cycles {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(100 + (seed >> 33) % 400);
        acked.extend(run_child(
            "child_writer_for_sigkill_with_a_fixed_clock",
            dir.path(),
            0,
            delay,
        ));
        check_store(dir.path(), crash_options_fixed_clock(), &acked);
    }
    let present = check_store(dir.path(), crash_options_fixed_clock(), &acked);
    assert!(present > 20, "only {present} batches were stored");
}

const T0: i64 = 1_793_491_200_000_000_000;

/// A directory with events in segments (flushed) and events only in the WAL, then copied as
/// a crash would leave it (the engine still running, nothing flushed at close).
fn crashed_dir() -> (tempfile::TempDir, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), one_shard()).unwrap();
    let flushed: Vec<_> = (0..200)
        .map(|i| {
            event(
                if i % 2 == 0 { "acme" } else { "globex" },
                T0 + i,
                "/a",
                1.0,
                None,
            )
        })
        .collect();
    store(&engine, &flushed);
    engine.flush().unwrap();
    let buffered: Vec<_> = (0..50)
        .map(|i| event("acme", T0 + 1000 + i, "/b", 2.0, None))
        .collect();
    for e in &buffered {
        store(&engine, std::slice::from_ref(e));
    }
    let image = common::crash_image(dir.path());
    drop(engine);
    (image, flushed.len(), buffered.len())
}

fn only_file(dir: &std::path::Path, sub: &str, ext: &str) -> std::path::PathBuf {
    let d = dir.join("shard-000").join(sub);
    let mut files: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files.pop().unwrap()
}

#[test]
fn recovery_replays_the_wal_of_a_crashed_engine() {
    let (dir, flushed, buffered) = crashed_dir();
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    assert_eq!(
        engine.count(&ScanRequest::default()).unwrap(),
        (flushed + buffered) as u64
    );
    assert!(engine.recovery_report()[0].wal_records_replayed >= buffered as u64);
}

/// A WAL of many tenants and days comes back whole: two threads replay it (each applies the
/// events of half the tenants), and with a small buffer it is flushed to segments while
/// replaying.
#[test]
fn a_wal_of_many_tenants_replays_whole_with_and_without_flushes_on_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), one_shard()).unwrap();
    const DAY: i64 = 86_400_000_000_000;
    let mut written: Vec<_> = (0..3_000i64)
        .map(|i| {
            let id = format!("{i:032x}");
            let id = (i % 4 != 0).then_some(id.as_str());
            let endpoint = format!("/e{}", i % 7);
            let tenant = format!("tenant{}", i % 23);
            let mut e = event(&tenant, T0 + (i % 3) * DAY + i, &endpoint, i as f64, id);
            if i % 5 == 0 {
                e.tags.push(("user".into(), format!("u{}", i % 11)));
            }
            e
        })
        .collect();
    for chunk in written.chunks(150) {
        store(&engine, chunk);
    }
    let image = common::crash_image(dir.path());
    drop(engine);
    sort_events(&mut written);
    for max_buffer_bytes in [64 << 10, 1 << 30] {
        let copy = tempfile::tempdir().unwrap();
        common::copy_dir(image.path(), copy.path());
        let engine = Engine::open(
            copy.path(),
            meterdb::Options {
                max_buffer_bytes,
                ..reopen()
            },
        )
        .unwrap();
        let report = &engine.recovery_report()[0];
        assert_eq!(report.wal_records_replayed, 20);
        assert!(report.corruptions.is_empty());
        let segments = std::fs::read_dir(copy.path().join("shard-000").join("segments"))
            .unwrap()
            .count();
        assert_eq!(
            segments > 0,
            max_buffer_bytes < 1 << 20,
            "{segments} segment files"
        );
        assert_eq!(all_events(&engine, &ScanRequest::default()), written);
        common::crash::check_rollups(&engine);
    }
}

#[test]
fn recovery_cuts_a_torn_wal_tail_and_keeps_the_records_before_it() {
    let (dir, flushed, buffered) = crashed_dir();
    let wal = only_file(dir.path(), "wal", "wal");
    let len = std::fs::metadata(&wal).unwrap().len();
    // Cut into the last record.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    let report = &engine.recovery_report()[0];
    assert_eq!(report.wal_truncated.len(), 1, "{report:?}");
    assert_eq!(
        engine.count(&ScanRequest::default()).unwrap(),
        (flushed + buffered - 1) as u64
    );
}

#[test]
fn recovery_reports_a_damaged_wal_record_and_recovers_the_ones_after_it() {
    let (dir, flushed, buffered) = crashed_dir();
    let wal = only_file(dir.path(), "wal", "wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    let report = &engine.recovery_report()[0];
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    assert_eq!(report.corruptions[0].path, wal);
    let n = engine.count(&ScanRequest::default()).unwrap();
    // Exactly the one damaged record (one event) is lost.
    assert_eq!(n, (flushed + buffered - 1) as u64);
}

#[test]
fn garbage_appended_to_the_wal_is_cut_off() {
    let (dir, flushed, buffered) = crashed_dir();
    let wal = only_file(dir.path(), "wal", "wal");
    let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 1000]).unwrap();
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    assert_eq!(
        engine.count(&ScanRequest::default()).unwrap(),
        (flushed + buffered) as u64
    );
    assert_eq!(engine.recovery_report()[0].wal_truncated.len(), 1);
}

#[test]
fn a_flipped_bit_in_a_segment_block_is_reported_and_other_tenants_still_read() {
    let (dir, _, _) = crashed_dir();
    let seg = only_file(dir.path(), "segments", "seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    // The first tenant's (acme) blocks follow the header.
    bytes[40] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    let damage = engine.check();
    assert!(!damage.is_empty(), "check found nothing");
    assert_eq!(damage[0].path, seg);
    let globex = ScanRequest {
        tenant: Some("globex".into()),
        ..ScanRequest::default()
    };
    assert_eq!(
        engine.count(&globex).unwrap(),
        100,
        "the other tenant's rows must still read"
    );
    let acme = ScanRequest {
        tenant: Some("acme".into()),
        ..ScanRequest::default()
    };
    match engine.scan(&acme) {
        Err(meterdb::Error::Corruption(c)) => assert_eq!(c.path, seg),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn a_truncated_segment_is_reported_and_the_engine_still_opens() {
    let (dir, _, buffered) = crashed_dir();
    let seg = only_file(dir.path(), "segments", "seg");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    let report = &engine.recovery_report()[0];
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    assert_eq!(report.corruptions[0].path, seg);
    // The WAL's events are still there.
    assert_eq!(
        engine.count(&ScanRequest::default()).unwrap(),
        buffered as u64
    );
}

#[test]
fn a_damaged_manifest_is_reported_and_rebuilt_from_the_segments() {
    let (dir, flushed, buffered) = crashed_dir();
    let manifest = dir.path().join("shard-000").join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[12] ^= 0x10;
    std::fs::write(&manifest, &bytes).unwrap();
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    let report = &engine.recovery_report()[0];
    assert!(report.manifest_rebuilt);
    assert!(
        matches!(
            report.corruptions[0].kind,
            CorruptionKind::ChecksumMismatch { .. }
        ),
        "{report:?}"
    );
    assert_eq!(
        engine.count(&ScanRequest::default()).unwrap(),
        (flushed + buffered) as u64
    );
    drop(engine);
    // The rebuilt manifest was stored: the next open is clean.
    let engine = Engine::open(dir.path(), reopen()).unwrap();
    assert!(engine.recovery_report()[0].corruptions.is_empty());
}

/// Options for a new directory of one shard (whose files the tests find by name).
fn one_shard() -> meterdb::Options {
    meterdb::Options {
        shards: Some(1),
        ..test_options()
    }
}

/// Options for reopening a crash image: the shard count stored in the directory.
fn reopen() -> meterdb::Options {
    meterdb::Options {
        shards: None,
        ..test_options()
    }
}
