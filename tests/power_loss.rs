//! Power loss (feature `failpoints`): the engine runs on an in-memory file system that, at a
//! power cut, forgets everything not made durable — bytes not fdatasync'ed, directory entries
//! whose directory was not fsynced. Writers stream numbered batches from several threads; the
//! power is cut at a pseudo-random moment (during writes, group commits, flushes, WAL rolls,
//! and the recovery of the previous cut); what a reboot finds must hold every acknowledged
//! batch exactly once, no partial batch, rollups that match the events, and no damage.
//!
//! `METERDB_POWER_CUT_CYCLES=N` runs N cycles instead of the default.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::crash::{check_store, crash_options, numbered_batch};
use meterdb::fs::PowerCutFs;
use meterdb::{Engine, Options};

const DIR: &str = "/power-cut/data";
const WRITERS: usize = 3;

fn options(fs: &PowerCutFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        ..crash_options()
    }
}

/// Opens the engine on `fs`, lets `WRITERS` threads write batches numbered from `next` on,
/// cuts the power after `delay`, and returns the file system the reboot finds and the batches
/// that were acknowledged.
fn run_until_power_cut(
    fs: &PowerCutFs,
    next: &AtomicU64,
    delay: Duration,
) -> (PowerCutFs, Vec<u64>) {
    let engine = Engine::open(DIR, options(fs)).expect("the engine opens after a cut");
    let acked = Mutex::new(Vec::new());
    let after = std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            scope.spawn(|| {
                // Each writer stops at its first error: the power is off.
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if engine.write(numbered_batch(b)).is_err() {
                        break;
                    }
                    acked.lock().unwrap().push(b);
                }
            });
        }
        std::thread::sleep(delay);
        fs.cut()
    });
    // The engine's threads only meet errors now; dropping it must not hang or panic.
    drop(engine);
    (after, acked.into_inner().unwrap())
}

#[test]
fn acknowledged_writes_survive_power_cuts_exactly_once() {
    let cycles: u64 = std::env::var("METERDB_POWER_CUT_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut fs = PowerCutFs::new();
    let next = AtomicU64::new(0);
    let mut acked = BTreeSet::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let started = Instant::now();
    for cycle in 0..cycles {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 60);
        let (after, new) = run_until_power_cut(&fs, &next, delay);
        acked.extend(new);
        let engine = Engine::open(DIR, options(&after)).expect("the engine opens after a cut");
        let damage: Vec<_> = engine
            .recovery_report()
            .iter()
            .flat_map(|r| r.corruptions.iter().map(ToString::to_string))
            .collect();
        assert!(
            damage.is_empty(),
            "cycle {cycle}: damage after a power cut: {damage:?}"
        );
        engine.close().unwrap();
        let present = check_store(Path::new(DIR), options(&after), &acked);
        eprintln!(
            "cycle {cycle}: power cut after {delay:?}; {} batches acknowledged so far, {present} present",
            acked.len()
        );
        fs = after;
    }
    assert!(
        acked.len() > 100,
        "only {} batches were acknowledged in {cycles} cycles",
        acked.len()
    );
    eprintln!(
        "{cycles} power cuts, {} batches acknowledged, none lost or doubled, in {:?}",
        acked.len(),
        started.elapsed()
    );
}
