//! Opening a shard after a clean shutdown or a crash (storage-format.md, "Recovery"):
//! remove temporary files, read (or rebuild) the manifest, remove orphan segments, open the
//! live segments, replay the WAL past the flushed sequence number, start a new WAL file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::flush::write_segments;
use super::schema::SchemaMap;
use super::{Memtable, RecoveryReport, ShardPaths, rollups};
use crate::config::Options;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::TEMP_SUFFIX;
use crate::manifest::{Manifest, ManifestEntry};
use crate::meters::MeterSet;
use crate::model::{SeqNo, WriteBatch};
use crate::rollup::{Delta, RollupStore};
use crate::segment::{self, Segment};
use crate::wal::{self, WalWriter};

/// A shard's state after recovery.
pub(super) struct Recovered {
    pub memtable: Memtable,
    pub segments: Vec<Arc<Segment>>,
    pub manifest: Manifest,
    pub wal: WalTail,
    pub schema: SchemaMap,
    pub next_seq: SeqNo,
    pub report: RecoveryReport,
}

/// Where the shard appends after recovery.
pub(super) struct WalTail {
    /// The new WAL file; `None` when the disk had no room to create it.
    pub open: Option<WalWriter>,
    /// The number of the next file to create (the writer creates it at its first write when
    /// `open` is `None`).
    pub next_file: u64,
}

pub(super) fn recover(
    shard: usize,
    paths: &ShardPaths,
    opts: &Options,
    meters: &MeterSet,
    store: &RollupStore,
) -> Result<Recovered> {
    let fs = &*opts.fs;
    for dir in [&paths.dir, &paths.wal, &paths.segments, &paths.rollups] {
        fs.create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
        for name in fs.list(dir).map_err(|e| Error::io("list", dir, e))? {
            if name.ends_with(TEMP_SUFFIX) {
                let path = dir.join(&name);
                fs.remove_file(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
            }
        }
    }
    let mut report = RecoveryReport::default();
    let segment_files = list_segment_files(paths, opts)?;
    let mut manifest = match Manifest::load(fs, &paths.manifest) {
        Ok(Some(m)) => m,
        Ok(None) if segment_files.is_empty() => Manifest {
            next_segment_id: 1,
            ..Manifest::default()
        },
        Ok(None) => rebuild_manifest(shard, paths, opts, &segment_files, &mut report)?,
        Err(Error::Corruption(c)) => {
            tracing::error!(shard, error = %c, "the manifest is damaged; rebuilding it from the segment files");
            report.corruptions.push(c);
            rebuild_manifest(shard, paths, opts, &segment_files, &mut report)?
        }
        Err(e) => return Err(e),
    };

    // Segment files the manifest does not list come from a flush that did not commit; their
    // rows are still in the WAL.
    let live: HashSet<_> = manifest.segments.iter().map(|e| e.id).collect();
    for (id, path) in &segment_files {
        // A file that failed to open while rebuilding is kept for inspection.
        let damaged = report.corruptions.iter().any(|c| c.path == *path);
        if !live.contains(id) && !damaged {
            fs.remove_file(path)
                .map_err(|e| Error::io("remove", path, e))?;
            report.orphans_removed += 1;
        }
    }

    report.orphans_removed += rollups::remove_orphans(paths, opts, &manifest)?;
    let mut coverage = rollups::load(paths, opts, &manifest, meters, store, &mut report);

    let mut segments = Vec::with_capacity(manifest.segments.len());
    for entry in &manifest.segments {
        match open_listed(paths, opts, entry) {
            Ok(s) => segments.push(s),
            Err(c) => {
                tracing::error!(shard, error = %c, "a live segment cannot be read; its rows are unavailable");
                report.corruptions.push(c);
            }
        }
    }
    let mut schema = SchemaMap::default();
    for s in &segments {
        for t in s.tables() {
            for (field, ty) in t.fields.iter() {
                schema.record(s.info().day, &t.tenant, &t.measurement, field, *ty);
            }
        }
    }

    // Replay the WAL past what the segments hold.
    let new_memtable = || {
        let mut m = Memtable::new();
        m.set_rollup_meters(meters.clone());
        m
    };
    let mut memtable = new_memtable();
    let mut last_seq = manifest.flushed_seq;
    let mut file_max_seq: HashMap<PathBuf, SeqNo> = HashMap::new();
    let mut flushed_during_replay = Vec::new();
    let mut disk_full = false;
    let started = std::time::Instant::now();
    // Two threads apply the records: this one the events of one half of the tenants, a
    // helper those of the other half into a buffer (and field types) of its own, merged at
    // the end. Shards replay side by side, but one often holds more than the others; split,
    // every shard's work spreads over the cores.
    // The helper runs up to `HELPER_LAG` records behind; this thread waits for it only to
    // flush and at the end.
    let helper = Mutex::new((new_memtable(), schema.clone()));
    let helper_bytes = AtomicUsize::new(0);
    let lock = || helper.lock().unwrap_or_else(|e| e.into_inner());
    let helper_bytes = &helper_bytes;
    let replay = std::thread::scope(|scope| {
        let (to_helper, batches) = crossbeam_channel::bounded::<Arc<WriteBatch>>(HELPER_LAG);
        let (applied, helper_done) = crossbeam_channel::unbounded::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("shard{shard}-replay"))
            .spawn_scoped(scope, move || {
                for batch in batches {
                    let mut guard = lock();
                    let (memtable, schema) = &mut *guard;
                    memtable.apply_batch_of(&batch, helpers_half, |events| {
                        schema.retain_valid(events, |reason| {
                            tracing::error!(shard, %reason, "skipping a replayed event");
                        });
                    });
                    helper_bytes.store(memtable.bytes(), Ordering::Relaxed);
                    drop(guard);
                    if applied.send(()).is_err() {
                        break;
                    }
                }
            });
        let mut in_flight = 0usize;
        // Waits until the helper applied every record sent to it (false if it panicked).
        let catch_up = |in_flight: &mut usize| {
            while *in_flight > 0 {
                if helper_done.recv().is_err() {
                    return false;
                }
                *in_flight -= 1;
            }
            true
        };
        // Without a helper (the thread did not start) this thread applies every event.
        let split = spawned.is_ok();
        let result = wal::replay(fs, &paths.wal, &mut |seq, payload, path, offset| {
            let max = file_max_seq.entry(path.to_owned()).or_insert(seq);
            *max = (*max).max(seq);
            if seq <= manifest.flushed_seq {
                return Ok(());
            }
            last_seq = last_seq.max(seq);
            let batch = match WriteBatch::decode(payload, path, offset) {
                Ok(b) => Arc::new(b),
                Err(c) => {
                    tracing::error!(shard, error = %c, "skipping a WAL record whose checksum matches but whose content does not decode");
                    report.corruptions.push(c);
                    return Ok(());
                }
            };
            if split && to_helper.send(batch.clone()).is_err() {
                // The helper panicked; its panic is raised once it is joined below.
                return Err(Error::Closed);
            }
            // Records were checked when written; a conflict here means a damaged directory.
            memtable.apply_batch_of(
                &batch,
                |t| !split || !helpers_half(t),
                |events| {
                    schema.retain_valid(events, |reason| {
                        tracing::error!(shard, %reason, "skipping a replayed event");
                    });
                },
            );
            if split {
                in_flight += 1;
            }
            memtable.note_seq(seq);
            report.wal_records_replayed += 1;
            // A WAL larger than the buffer is flushed while replaying, so that memory stays
            // bounded; on a full disk the rest stays in memory instead, so that the shard
            // still serves it (its writer flushes once there is room).
            let bytes = memtable.bytes() + helper_bytes.load(Ordering::Relaxed);
            if bytes >= opts.max_buffer_bytes && !disk_full {
                if !catch_up(&mut in_flight) {
                    return Err(Error::Closed);
                }
                memtable.absorb(std::mem::replace(&mut lock().0, new_memtable()));
                helper_bytes.store(0, Ordering::Relaxed);
                match write_segments(shard, paths, opts, &mut manifest, &memtable, store) {
                    Ok((flushed, delta)) => {
                        flushed_during_replay.extend(flushed);
                        delta.apply_to(store);
                        memtable = new_memtable();
                    }
                    Err(e) if e.is_disk_full() => {
                        tracing::warn!(shard, error = %e, "no room to flush while replaying the WAL; keeping the rest in memory");
                        disk_full = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        drop(to_helper);
        if let Ok(handle) = spawned
            && let Err(panic) = handle.join()
        {
            std::panic::resume_unwind(panic);
        }
        result
    })?;
    let (helpers, helper_schema) = helper.into_inner().unwrap_or_else(|e| e.into_inner());
    memtable.absorb(helpers);
    schema.absorb(helper_schema);
    for s in &flushed_during_replay {
        coverage
            .pairs
            .extend(meters.ids().into_iter().map(|m| (s.info().id, m)));
    }
    segments.extend(flushed_during_replay);
    tracing::debug!(shard, took = ?started.elapsed(), "read the WAL");
    report.segments_recounted = rollups::backfill_missing(
        paths,
        opts,
        &mut manifest,
        &segments,
        &coverage,
        meters,
        store,
    )?;
    report.wal_truncated = replay.truncated;
    report.corruptions.extend(replay.corruptions);

    // WAL files whose every record is in a segment are not needed any more.
    for (no, path) in wal::list_files(fs, &paths.wal)? {
        let covered = file_max_seq
            .get(&path)
            .is_none_or(|&max| max <= manifest.flushed_seq);
        if covered {
            fs.remove_file(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            tracing::debug!(shard, file = no, "removed a flushed WAL file");
        }
    }
    let next_file = wal::list_files(fs, &paths.wal)?
        .last()
        .map_or(1, |(no, _)| no + 1);
    // A full disk must not keep the shard from serving what it holds: writes are refused
    // with a disk-full error until the file can be created.
    let open = match WalWriter::create(fs, &paths.wal, next_file) {
        Ok(wal) => Some(wal),
        Err(e) if e.is_disk_full() => {
            tracing::warn!(shard, error = %e, "no room for a new WAL file; writes wait for space");
            None
        }
        Err(e) => return Err(e),
    };
    if report.wal_records_replayed > 0 || !report.wal_truncated.is_empty() {
        tracing::info!(
            shard,
            records = report.wal_records_replayed,
            truncated = report.wal_truncated.len(),
            "replayed the WAL"
        );
    }
    Ok(Recovered {
        memtable,
        segments,
        manifest,
        wal: WalTail {
            next_file: if open.is_some() {
                next_file + 1
            } else {
                next_file
            },
            open,
        },
        schema,
        next_seq: SeqNo(last_seq.0 + 1),
        report,
    })
}

/// Counts the events of the replayed buffer `memtable` into the rollups in memory (its flush
/// persists them). The caller runs it once [`recover`] returned, beside building the event-id
/// index: both only read the buffer.
pub(super) fn count_buffer(
    shard: usize,
    memtable: &Memtable,
    meters: &MeterSet,
    store: &RollupStore,
) {
    if memtable.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let mut buffered = Delta::default();
    // Read in place: a copy of a big replayed buffer is hundreds of megabytes.
    memtable.for_each_table(|tenant, columns| {
        buffered.add_columns(tenant.as_str(), columns, meters, store);
    });
    buffered.apply_to(store);
    tracing::debug!(shard, took = ?started.elapsed(), "counted the replayed buffer into the rollups");
}

/// Whether the events of `tenant` are the replay helper's to apply: a hash of its own (the
/// shard routing's would put all of a shard's tenants in one half).
fn helpers_half(tenant: &str) -> bool {
    foldhash::quality::FixedState::with_seed(HALF_SEED).hash_one(tenant) & 1 == 1
}

/// How many records the replay helper may be behind.
const HELPER_LAG: usize = 16;

/// Any fixed seed: the halves only have to stay the same during one replay.
const HALF_SEED: u64 = 0x6861_6c76_6573;

fn list_segment_files(
    paths: &ShardPaths,
    opts: &Options,
) -> Result<Vec<(segment::SegmentId, PathBuf)>> {
    let names = opts
        .fs
        .list(&paths.segments)
        .map_err(|e| Error::io("list", &paths.segments, e))?;
    Ok(names
        .iter()
        .filter_map(|n| Some((segment::parse_file_name(n)?, paths.segments.join(n))))
        .collect())
}

fn open_listed(
    paths: &ShardPaths,
    opts: &Options,
    entry: &ManifestEntry,
) -> Result<Arc<Segment>, Corruption> {
    let path = segment::path_in(&paths.segments, entry.id);
    let invalid = |why: String| Corruption::new(&path, 0, CorruptionKind::Invalid(why));
    let segment = match Segment::open(&*opts.fs, &path) {
        Ok(s) => s,
        Err(Error::Corruption(c)) => return Err(c),
        Err(e) => {
            return Err(invalid(format!(
                "listed in the manifest but unreadable: {e}"
            )));
        }
    };
    if segment.file_len() != entry.file_len || segment.info().id != entry.id {
        return Err(invalid(format!(
            "the manifest lists segment {} with {} bytes, the file holds segment {} with {} bytes",
            entry.id.0,
            entry.file_len,
            segment.info().id.0,
            segment.file_len()
        )));
    }
    Ok(segment)
}

/// Rebuilds a lost or damaged manifest from the segment files, which describe themselves: a
/// flush's segments count only if all of them are present (a crash can leave part of an
/// uncommitted flush behind), and a segment replaced by another (compaction) does not count.
/// Rows of dropped segments are still in the WAL, since the flushed sequence number is taken
/// from the segments kept.
fn rebuild_manifest(
    shard: usize,
    paths: &ShardPaths,
    opts: &Options,
    files: &[(segment::SegmentId, PathBuf)],
    report: &mut RecoveryReport,
) -> Result<Manifest> {
    let mut opened = Vec::new();
    for (_, path) in files {
        match Segment::open(&*opts.fs, path) {
            Ok(s) if s.info().shard as usize == shard => opened.push(s),
            Ok(_) => report.corruptions.push(Corruption::new(
                path,
                0,
                CorruptionKind::Invalid("segment of another shard".into()),
            )),
            Err(Error::Corruption(c)) => report.corruptions.push(c),
            Err(e) => return Err(e),
        }
    }
    let mut by_commit: BTreeMap<u64, Vec<&Arc<Segment>>> = BTreeMap::new();
    for s in &opened {
        by_commit.entry(s.info().commit).or_default().push(s);
    }
    let replaced: HashSet<_> = opened
        .iter()
        .flat_map(|s| s.info().replaces.iter().copied())
        .collect();
    let mut manifest = Manifest {
        next_segment_id: files.iter().map(|(id, _)| id.0 + 1).max().unwrap_or(1),
        ..Manifest::default()
    };
    for (commit, group) in by_commit {
        let complete = group
            .iter()
            .all(|s| s.info().commit_parts as usize == group.len());
        manifest.commit = manifest.commit.max(commit);
        if !complete {
            continue;
        }
        for s in group {
            if replaced.contains(&s.info().id) {
                continue;
            }
            manifest.flushed_seq = manifest.flushed_seq.max(s.info().seq_max);
            manifest.segments.push(ManifestEntry {
                id: s.info().id,
                day: s.info().day,
                file_len: s.file_len(),
            });
        }
    }
    manifest.segments.sort_by_key(|e| e.id);
    manifest.store(&*opts.fs, &paths.manifest)?;
    report.manifest_rebuilt = true;
    tracing::warn!(
        shard,
        segments = manifest.segments.len(),
        flushed_seq = manifest.flushed_seq.0,
        "rebuilt the manifest from the segment files"
    );
    Ok(manifest)
}
