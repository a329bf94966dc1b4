//! Faults chosen by the test, through the fault-injecting file layer (feature `failpoints`):
//! disk full and I/O errors fail writes cleanly and leave the store readable; a failed fsync
//! stops writes instead of pretending the data is durable; a crash at each step of the flush
//! and WAL-trim protocol leaves every acknowledged event present exactly once, and a crash at
//! each step of a compaction leaves the old segments or the new ones, never both or neither.

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use common::crash::{CHILD_DIR, check_store, child_writer, crash_options, run_child};
use common::{event, test_options};
use meterdb::fs::{FaultKind, FaultyFs, StdFs};
use meterdb::{Engine, Error, Options, ScanRequest, SyncPolicy};

const T0: i64 = 1_793_491_200_000_000_000;

fn faulty() -> (FaultyFs, Options) {
    let fs = FaultyFs::new(Arc::new(StdFs));
    let options = Options {
        shards: Some(1),
        sync: SyncPolicy::Always,
        fs: Arc::new(fs.clone()),
        ..test_options()
    };
    (fs, options)
}

fn write_one(engine: &Engine, i: i64) -> meterdb::Result<()> {
    let mut b = meterdb::WriteBatch::new();
    b.push(&event("acme", T0 + i, "/a", 1.0, Some(&format!("e{i}"))));
    let receipt = engine.write(b)?;
    assert!(receipt.rejected.is_empty());
    Ok(())
}

/// Once a fault is gone: the flusher retries on its own, and an explicit flush waits for it.
fn flush_within_5s(engine: &Engine) -> bool {
    for _ in 0..100 {
        if engine.flush().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn disk_full_on_the_wal_fails_the_write_and_the_next_write_succeeds_once_space_frees() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, options) = faulty();
    let engine = Engine::open(dir.path(), options.clone()).unwrap();
    write_one(&engine, 0).unwrap();
    fs.fail(FaultKind::Write, ".wal", 0, ErrorKind::StorageFull);
    let err = write_one(&engine, 1).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(
        engine.count(&ScanRequest::default()).unwrap(),
        1,
        "the store stays readable"
    );
    fs.clear();
    write_one(&engine, 2).unwrap();
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options).unwrap();
    let ids: BTreeSet<String> = common::all_events(&engine, &ScanRequest::default())
        .into_iter()
        .filter_map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["e0", "e2"].into_iter().map(String::from).collect());
    assert!(engine.recovery_report()[0].corruptions.is_empty());
}

#[test]
fn a_failed_fsync_stops_writes_until_restart_and_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, options) = faulty();
    let engine = Engine::open(dir.path(), options.clone()).unwrap();
    write_one(&engine, 0).unwrap();
    fs.fail(FaultKind::Sync, ".wal", 0, ErrorKind::Other);
    assert!(write_one(&engine, 1).is_err());
    fs.clear();
    // The shard does not retry the fsync as if the data were safe.
    let err = write_one(&engine, 2).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert_eq!(
        engine.count(&ScanRequest::default()).unwrap(),
        1,
        "reads still work"
    );
    drop(engine);
    let engine = Engine::open(dir.path(), options).unwrap();
    write_one(&engine, 3).unwrap();
    let ids: Vec<String> = common::all_events(&engine, &ScanRequest::default())
        .into_iter()
        .filter_map(|e| e.event_id)
        .collect();
    assert!(
        ids.contains(&"e0".to_owned()) && ids.contains(&"e3".to_owned()),
        "{ids:?}"
    );
    assert!(!ids.contains(&"e2".to_owned()));
}

#[test]
fn a_failing_flush_keeps_the_data_readable_and_succeeds_once_space_frees() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, options) = faulty();
    let engine = Engine::open(dir.path(), options.clone()).unwrap();
    for i in 0..10 {
        write_one(&engine, i).unwrap();
    }
    fs.fail(FaultKind::Write, ".seg", 0, ErrorKind::StorageFull);
    let err = engine.flush().unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 10);
    write_one(&engine, 10).unwrap();
    fs.clear();
    assert!(flush_within_5s(&engine));
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 11);
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options).unwrap();
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 11);
    assert_eq!(
        engine.stats()[0].buffered_events,
        0,
        "everything is in segments"
    );
}

#[test]
fn a_full_buffer_whose_flush_fails_refuses_writes_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, options) = faulty();
    let options = Options {
        max_buffer_bytes: 4 << 10,
        ..options
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    fs.fail(FaultKind::Create, ".seg", 0, ErrorKind::StorageFull);
    let mut refused = None;
    for i in 0..2000 {
        if let Err(e) = write_one(&engine, i) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, err) = refused.expect("writes were never refused");
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), i as u64);
    fs.clear();
}

#[test]
fn an_io_error_at_any_step_of_a_flush_fails_it_cleanly_and_a_retry_stores_everything_once() {
    // Every file operation of a flush, failing with EIO (a failed fsync of a segment, rollup
    // file or directory included: the flush writes its files afresh from the buffer it still
    // holds, rather than trusting pages the kernel may have dropped).
    let steps = [
        (FaultKind::Create, ".seg"),
        (FaultKind::Write, ".seg"),
        (FaultKind::Sync, ".seg"),
        (FaultKind::Rename, ".seg"),
        (FaultKind::SyncDir, "segments"),
        (FaultKind::Create, ".rollup"),
        (FaultKind::Write, ".rollup"),
        (FaultKind::Sync, ".rollup"),
        (FaultKind::Rename, ".rollup"),
        (FaultKind::SyncDir, "rollups"),
        (FaultKind::Write, "MANIFEST"),
        (FaultKind::Sync, "MANIFEST"),
        (FaultKind::Rename, "MANIFEST"),
    ];
    for (kind, part) in steps {
        let dir = tempfile::tempdir().unwrap();
        let (fs, options) = faulty();
        let engine = Engine::open(dir.path(), options.clone()).unwrap();
        for i in 0..10 {
            write_one(&engine, i).unwrap();
        }
        fs.fail(kind, part, 0, ErrorKind::Other);
        let err = engine.flush().unwrap_err();
        assert!(
            matches!(err, Error::Io { .. }) && err.to_string().contains(part),
            "{kind:?} {part}: flush answered {err}"
        );
        assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 10);
        write_one(&engine, 10).unwrap();
        fs.clear();
        assert!(
            flush_within_5s(&engine),
            "{kind:?} {part}: the flush never succeeded after the fault"
        );
        assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 11);
        engine.close().unwrap();
        let engine = Engine::open(dir.path(), options).unwrap();
        assert_eq!(
            engine.count(&ScanRequest::default()).unwrap(),
            11,
            "{kind:?} {part}: after a reopen"
        );
        let report = engine.recovery_report();
        assert!(
            report.iter().all(|r| r.corruptions.is_empty()),
            "{kind:?} {part}: {report:?}"
        );
        engine.close().unwrap();
    }
}

// Crash points: the child aborts at the chosen file operation, as a kill -9 there would.

fn crash_child(kind: FaultKind, part: &str, skip: u64) {
    if std::env::var(CHILD_DIR).is_err() {
        return;
    }
    let fs = FaultyFs::new(Arc::new(StdFs));
    let options = Options {
        fs: Arc::new(fs.clone()),
        ..crash_options()
    };
    child_writer(options, || fs.crash(kind, part, skip));
}

#[test]
fn child_crash_at_segment_rename() {
    crash_child(FaultKind::Rename, ".seg", 3);
}
#[test]
fn child_crash_at_segment_dir_sync() {
    crash_child(FaultKind::SyncDir, "segments", 2);
}
#[test]
fn child_crash_at_manifest_rename() {
    crash_child(FaultKind::Rename, "MANIFEST", 2);
}
#[test]
fn child_crash_at_wal_removal() {
    crash_child(FaultKind::Remove, ".wal", 1);
}
#[test]
fn child_crash_at_wal_roll() {
    crash_child(FaultKind::Create, ".wal", 4);
}
#[test]
fn child_crash_at_rollup_rename() {
    crash_child(FaultKind::Rename, ".rollup", 2);
}
#[test]
fn child_crash_at_rollup_dir_sync() {
    crash_child(FaultKind::SyncDir, "rollups", 1);
}

#[test]
fn a_crash_at_each_step_of_flush_and_trim_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut next = 0;
    for child in [
        "child_crash_at_segment_rename",
        "child_crash_at_segment_dir_sync",
        "child_crash_at_manifest_rename",
        "child_crash_at_wal_removal",
        "child_crash_at_wal_roll",
        "child_crash_at_rollup_rename",
        "child_crash_at_rollup_dir_sync",
    ] {
        let new = run_child(child, dir.path(), next, Duration::from_secs(20));
        assert!(
            !new.is_empty(),
            "{child} acknowledged nothing before its crash point"
        );
        next = new.last().map_or(next, |b| b + 1) + 100;
        acked.extend(new);
        check_store(dir.path(), crash_options(), &acked);
    }
}

/// A write that fails must not mark its event ids as stored: a peer's bug counted such events
/// zero times, because the retry was answered as a duplicate of a write that never happened.
#[test]
fn a_write_that_fails_on_disk_full_claims_no_event_id_and_its_retry_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, options) = faulty();
    let engine = Engine::open(dir.path(), options).unwrap();
    let batch = || {
        let mut b = meterdb::WriteBatch::new();
        b.push(&event("acme", T0, "/a", 1.0, Some("r1")));
        b.push(&event("acme", T0 + 1, "/a", 1.0, Some("r2")));
        b
    };
    fs.fail(FaultKind::Write, ".wal", 0, ErrorKind::StorageFull);
    assert!(engine.write(batch()).unwrap_err().is_disk_full());
    fs.clear();
    let receipt = engine.write(batch()).unwrap();
    assert_eq!((receipt.written, receipt.duplicates), (2, 0));
    let again = engine.write(batch()).unwrap();
    assert_eq!((again.written, again.duplicates), (0, 2));
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 2);
}

/// After a failed fsync the record may or may not have reached the disk; either way, the
/// retry after the restart leaves the event stored exactly once.
#[test]
fn a_write_whose_fsync_fails_is_stored_exactly_once_by_its_retry_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, options) = faulty();
    let engine = Engine::open(dir.path(), options.clone()).unwrap();
    fs.fail(FaultKind::Sync, ".wal", 0, ErrorKind::Other);
    assert!(write_one(&engine, 1).is_err());
    fs.clear();
    drop(engine);
    let engine = Engine::open(dir.path(), options.clone()).unwrap();
    write_one(&engine, 1).unwrap();
    write_one(&engine, 1).unwrap();
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options).unwrap();
    let ids: Vec<String> = common::all_events(&engine, &ScanRequest::default())
        .into_iter()
        .filter_map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["e1"]);
}

/// A child that writes 300 batches (flushed into many small segments over two past days),
/// then arms a crash at the `skip`-th `kind` operation on a path containing `part` and runs a
/// compaction pass, which dies there.
fn compaction_crash_child(kind: FaultKind, part: &str, skip: u64) {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let start: u64 = std::env::var(common::crash::CHILD_START)
        .unwrap()
        .parse()
        .unwrap();
    let fs = FaultyFs::new(Arc::new(StdFs));
    let options = Options {
        fs: Arc::new(fs.clone()),
        compaction_pace: 0.0,
        ..crash_options()
    };
    let engine = Engine::open(&dir, options).unwrap();
    // The test harness has printed the test's name without a line break.
    println!();
    for b in start..start + 300 {
        let receipt = engine.write(common::crash::numbered_batch(b)).unwrap();
        assert!(receipt.rejected.is_empty());
        println!("ack {b}");
    }
    engine.flush().unwrap();
    fs.crash(kind, part, skip);
    let report = engine.compact();
    // Tells the parent that the crash point was never reached.
    std::fs::write(
        std::path::Path::new(&dir).join("SURVIVED"),
        format!("{report:?}"),
    )
    .unwrap();
}

#[test]
fn child_compaction_crash_at_output_create() {
    compaction_crash_child(FaultKind::Create, ".seg", 0);
}
#[test]
fn child_compaction_crash_at_output_rename() {
    compaction_crash_child(FaultKind::Rename, ".seg", 0);
}
#[test]
fn child_compaction_crash_at_output_dir_sync() {
    compaction_crash_child(FaultKind::SyncDir, "segments", 0);
}
#[test]
fn child_compaction_crash_at_rollup_rewrite() {
    compaction_crash_child(FaultKind::Rename, ".rollup", 0);
}
#[test]
fn child_compaction_crash_at_manifest_rename() {
    compaction_crash_child(FaultKind::Rename, "MANIFEST", 0);
}
#[test]
fn child_compaction_crash_at_source_removal() {
    compaction_crash_child(FaultKind::Remove, ".seg", 0);
}
#[test]
fn child_compaction_crash_at_old_rollup_removal() {
    compaction_crash_child(FaultKind::Remove, ".rollup", 0);
}
#[test]
fn child_compaction_crash_at_second_commit() {
    compaction_crash_child(FaultKind::Rename, "MANIFEST", 1);
}

#[test]
fn a_crash_at_each_step_of_a_compaction_leaves_the_old_segments_or_the_new_never_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut next = 0;
    for child in [
        "child_compaction_crash_at_output_create",
        "child_compaction_crash_at_output_rename",
        "child_compaction_crash_at_output_dir_sync",
        "child_compaction_crash_at_rollup_rewrite",
        "child_compaction_crash_at_manifest_rename",
        "child_compaction_crash_at_source_removal",
        "child_compaction_crash_at_old_rollup_removal",
        "child_compaction_crash_at_second_commit",
    ] {
        let segments_before = segment_files(dir.path());
        let new = run_child(child, dir.path(), next, Duration::from_secs(30));
        assert_eq!(new.len(), 300, "{child} did not write its batches");
        let survived = std::fs::read_to_string(dir.path().join("SURVIVED"));
        assert!(
            survived.is_err(),
            "{child} never reached its crash point: {survived:?}"
        );
        next = new.last().map_or(next, |b| b + 1) + 100;
        acked.extend(new);
        // Every acknowledged event once, no partial batch, rollups equal to the rows: a
        // mix of old and new segments would double events, neither would lose them.
        check_store(dir.path(), crash_options(), &acked);
        assert!(segments_before <= segment_files(dir.path()) + 300);
    }
    // A pass after all that finishes the job and keeps everything.
    let engine = Engine::open(dir.path(), crash_options()).unwrap();
    let report = engine.compact().unwrap();
    assert!(report.rewrites > 0, "{report:?}");
    engine.close().unwrap();
    check_store(dir.path(), crash_options(), &acked);
}

fn segment_files(dir: &std::path::Path) -> usize {
    (0..2)
        .map(|s| {
            std::fs::read_dir(dir.join(format!("shard-{s:03}/segments"))).map_or(0, |d| d.count())
        })
        .sum()
}
