//! The shard's side of rollups: reading its rollup files into the store when it opens,
//! writing the file of a flush or a backfill, and backfilling what the files lack.
//!
//! The rule it keeps (see `rollup`): every live segment's rows are counted, for every meter,
//! by exactly one live rollup file. A file records which segments and which meters it
//! covers; recovery checks the pairs and backfills any that is missing (a crash while a
//! meter was being defined, a damaged rollup file), so the store never lacks a segment.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::{RecoveryReport, ShardPaths};
use crate::config::Options;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::write_atomic;
use crate::manifest::{Manifest, RollupEntry};
use crate::meters::{IdMeter, MeterSet};
use crate::model::TenantId;
use crate::rollup::delta::{Cells, add_batch};
use crate::rollup::file::{self, RollupFile, TenantBuckets};
use crate::rollup::{Delta, Granularity, MeterId, RollupStore};
use crate::scan::ScanRequest;
use crate::segment::{Segment, SegmentId};

/// What the live rollup files hold.
#[derive(Debug, Default)]
pub(super) struct Coverage {
    /// The `(segment, meter)` pairs they count.
    pub pairs: HashSet<(SegmentId, MeterId)>,
    /// Files listed in the manifest that could not be read; their segments are recounted
    /// and they are dropped from the manifest.
    pub unreadable: Vec<u64>,
}

/// Reads the manifest's rollup files into `store`, keeping the buckets of the meters in
/// `meters` (a deleted meter's buckets are skipped). A file that cannot be read is reported;
/// the segments it covered are then missing from the coverage and get backfilled.
pub(super) fn load(
    paths: &ShardPaths,
    opts: &Options,
    manifest: &Manifest,
    meters: &MeterSet,
    store: &RollupStore,
    report: &mut RecoveryReport,
) -> Coverage {
    let mut coverage = Coverage::default();
    let mut deductions = Vec::new();
    for entry in &manifest.rollups {
        let path = file::path_in(&paths.rollups, entry.id);
        let decoded = match opts.fs.read(&path) {
            Ok(bytes) if bytes.len() as u64 != entry.file_len => Err(Corruption::new(
                &path,
                0,
                CorruptionKind::Invalid(format!(
                    "the manifest lists {} bytes, the file has {}",
                    entry.file_len,
                    bytes.len()
                )),
            )),
            Ok(bytes) => RollupFile::decode(&bytes, &path),
            Err(e) => Err(Corruption::new(
                &path,
                0,
                CorruptionKind::Invalid(format!("listed in the manifest but unreadable: {e}")),
            )),
        };
        match decoded {
            // Deductions come after every file they take from, whatever their ids.
            Ok(f) if f.deducts => deductions.push(f),
            Ok(f) => {
                for s in &f.segments {
                    coverage.pairs.extend(f.meters.iter().map(|m| (*s, *m)));
                }
                apply_file(&f, meters, store);
            }
            Err(c) => {
                tracing::error!(error = %c, "a rollup file cannot be read; its segments are recounted");
                report.corruptions.push(c);
                coverage.unreadable.push(entry.id);
            }
        }
    }
    for f in &deductions {
        apply_file(f, meters, store);
    }
    coverage
}

/// Merges a file's buckets into the store, renumbering its distinct values into the store's
/// tenant dictionaries.
pub(super) fn apply_file(f: &RollupFile, meters: &MeterSet, store: &RollupStore) {
    for t in &f.tenants {
        let known = meters.meters_for(&t.tenant);
        let rollups = store.tenant(&t.tenant);
        let ids: Vec<u32> = {
            let mut dict = rollups.dict();
            t.values.iter().map(|v| dict.intern(v)).collect()
        };
        let horizon = store.minute_horizon();
        let mut levels = rollups.meters();
        for (meter, unit, start, acc) in &t.cells {
            if !known.iter().any(|(id, _)| id == meter) {
                continue;
            }
            let mut acc = acc.clone();
            if !acc.unique.is_empty() {
                acc.unique = acc
                    .unique
                    .iter()
                    .filter_map(|i| ids.get(i as usize).copied())
                    .collect();
            }
            if *unit != Granularity::Minute && start + unit.nanos() > horizon {
                // Minutes after the horizon are inside this hour bucket only.
                store.raise_horizon(start + unit.nanos());
            }
            let levels = levels.entry(*meter).or_default();
            if f.deducts {
                levels.deduct(*unit, *start, &acc, store.minute_horizon());
            } else {
                levels.add(*unit, *start, &acc, store.minute_horizon());
            }
        }
    }
}

/// The file that persists `delta` for `segments` and `meters`.
pub(super) fn file_of(
    delta: &Delta,
    store: &RollupStore,
    segments: Vec<SegmentId>,
    meters: Vec<MeterId>,
) -> RollupFile {
    let mut tenants: Vec<TenantBuckets> = delta
        .tenants()
        .filter(|(_, cells)| !cells.is_empty())
        .map(|(tenant, cells)| {
            let rollups = store.tenant(tenant);
            let dict = rollups.dict();
            TenantBuckets::from_cells(tenant, cells, &dict)
        })
        .collect();
    tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    RollupFile {
        segments,
        meters,
        tenants,
        deducts: false,
    }
}

/// Writes `f` as rollup file `id` (temporary file, fsync, rename, directory fsync) and
/// returns its manifest entry.
pub(super) fn write_file(
    paths: &ShardPaths,
    opts: &Options,
    id: u64,
    f: &RollupFile,
) -> Result<RollupEntry> {
    let bytes = f.encode();
    write_atomic(&*opts.fs, &file::path_in(&paths.rollups, id), &bytes)?;
    Ok(RollupEntry {
        id,
        file_len: bytes.len() as u64,
    })
}

/// What `tenant`'s rows in `segments` add to `meters`, with distinct values interned in the
/// store's dictionary (not merged into the store).
pub(super) fn count_segments(
    tenant: &str,
    meters: &[IdMeter],
    segments: &[Arc<Segment>],
    store: &RollupStore,
) -> Result<Cells> {
    count_matching(tenant, Vec::new(), &[], meters, segments, store)
}

/// [`count_segments`] for the rows that also satisfy `predicates` and that none of `hidden`
/// hides.
pub(super) fn count_matching(
    tenant: &str,
    predicates: Vec<crate::scan::TagPredicate>,
    hidden: &[crate::tombstone::Tombstone],
    meters: &[IdMeter],
    segments: &[Arc<Segment>],
    store: &RollupStore,
) -> Result<Cells> {
    let req = ScanRequest {
        tenant: Some(TenantId::new(tenant)),
        predicates,
        ..ScanRequest::default()
    };
    let rollups = store.tenant(tenant);
    let mut cells = Cells::default();
    for segment in segments {
        if !segment.tables().any(|t| t.tenant.as_str() == tenant) {
            continue;
        }
        let id = segment.info().id;
        let hide: Vec<_> = hidden.iter().filter(|t| id.0 < t.before).cloned().collect();
        let batches = segment.scan(&req)?;
        let mut dict = rollups.dict();
        for batch in &batches {
            let visible = crate::tombstone::visible(&hide, batch);
            let batch = visible.as_ref().unwrap_or(batch);
            add_batch(
                store.minute_horizon(),
                &mut cells,
                batch.columns(),
                meters,
                &mut dict,
            );
        }
    }
    Ok(cells)
}

/// Backfills every `(segment, meter)` pair the rollup files lack: counts those segments'
/// rows, writes one rollup file per set of missing meters, merges the buckets into the store
/// and stores the manifest that lists the new files instead of the unreadable ones. Returns
/// how many segments were recounted.
pub(super) fn backfill_missing(
    paths: &ShardPaths,
    opts: &Options,
    manifest: &mut Manifest,
    segments: &[Arc<Segment>],
    coverage: &Coverage,
    meters: &MeterSet,
    store: &RollupStore,
) -> Result<usize> {
    // Missing meters of each segment, grouped so that segments missing the same meters share
    // one file.
    let mut groups: BTreeMap<Vec<MeterId>, Vec<Arc<Segment>>> = BTreeMap::new();
    for segment in segments {
        let id = segment.info().id;
        let mut missing: Vec<MeterId> = Vec::new();
        for table in segment.tables() {
            for (m, _) in meters.meters_for(table.tenant.as_str()).iter() {
                if !coverage.pairs.contains(&(id, *m)) && !missing.contains(m) {
                    missing.push(*m);
                }
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            groups.entry(missing).or_default().push(segment.clone());
        }
    }
    if groups.is_empty() && coverage.unreadable.is_empty() {
        return Ok(0);
    }
    let mut next = manifest.clone();
    next.rollups
        .retain(|e| !coverage.unreadable.contains(&e.id));
    for (missing, group) in &groups {
        let tenants: HashSet<&str> = group
            .iter()
            .flat_map(|s| s.tables().map(|t| t.tenant.as_str()))
            .collect();
        let mut delta = Delta::default();
        for tenant in tenants {
            let wanted: Vec<IdMeter> = meters
                .meters_for(tenant)
                .iter()
                .filter(|(id, _)| missing.contains(id))
                .cloned()
                .collect();
            let cells = count_segments(tenant, &wanted, group, store)?;
            *delta.cells_mut(tenant) = cells;
        }
        let ids = group.iter().map(|s| s.info().id).collect();
        let f = file_of(&delta, store, ids, missing.clone());
        let id = next.next_segment_id;
        next.next_segment_id += 1;
        next.rollups.push(write_file(paths, opts, id, &f)?);
        delta.apply_to(store);
        tracing::warn!(
            shard = %paths.dir.display(),
            segments = group.len(),
            meters = ?missing,
            "recounted rollups the rollup files lacked"
        );
    }
    next.commit += 1;
    next.store(&*opts.fs, &paths.manifest)?;
    *manifest = next;
    Ok(groups.values().map(Vec::len).sum())
}

/// Rollup files the manifest does not list (from a flush or backfill that did not commit)
/// are removed.
pub(super) fn remove_orphans(
    paths: &ShardPaths,
    opts: &Options,
    manifest: &Manifest,
) -> Result<usize> {
    let fs = &*opts.fs;
    let live: HashSet<u64> = manifest.rollups.iter().map(|e| e.id).collect();
    let mut removed = 0;
    for name in fs
        .list(&paths.rollups)
        .map_err(|e| Error::io("list", &paths.rollups, e))?
    {
        if let Some(id) = file::parse_name(&name)
            && !live.contains(&id)
        {
            let path = paths.rollups.join(&name);
            fs.remove_file(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Rewrites every live rollup file whose segment list passes `lists` and for which
/// `change` returns true (having changed it) as a new file, listed in `next` instead of the old one; returns the old files' ids, to
/// remove once `next` is stored. A file that cannot be read is left as it is (recovery
/// reports it and recounts its segments).
pub(super) fn rewrite_files(
    paths: &ShardPaths,
    opts: &Options,
    next: &mut Manifest,
    lists: impl Fn(&[SegmentId]) -> bool,
    mut change: impl FnMut(&mut RollupFile) -> bool,
) -> Result<Vec<u64>> {
    let mut replaced = Vec::new();
    for entry in next.rollups.clone() {
        let path = file::path_in(&paths.rollups, entry.id);
        let Ok(bytes) = opts.fs.read(&path) else {
            continue;
        };
        // Most files are not concerned: skip them without decompressing.
        if RollupFile::header(&bytes).is_some_and(|h| !lists(&h.segments)) {
            continue;
        }
        let Ok(mut f) = RollupFile::decode(&bytes, &path) else {
            continue;
        };
        if !change(&mut f) {
            continue;
        }
        let id = next.next_segment_id;
        next.next_segment_id += 1;
        let written = write_file(paths, opts, id, &f)?;
        next.rollups.retain(|e| e.id != entry.id);
        next.rollups.push(written);
        replaced.push(entry.id);
    }
    next.rollups.sort_by_key(|e| e.id);
    Ok(replaced)
}

/// Rollup files smaller than this are merged once there are [`MERGE_FILES`] of them with
/// the same meters: flushes write one small file each, and recovery reads them all.
pub(super) const SMALL_FILE: u64 = 4 << 20;
/// See [`SMALL_FILE`].
pub(super) const MERGE_FILES: usize = 8;

/// Merges the small live rollup files (see [`SMALL_FILE`]) that count the same meters into
/// one file each, listed in `next` instead; returns the merged files' ids, to remove once
/// `next` is stored. Segments no longer live are dropped from the merged file's list.
pub(super) fn consolidate(
    paths: &ShardPaths,
    opts: &Options,
    next: &mut Manifest,
    minute_horizon: i64,
) -> Result<Vec<u64>> {
    // Files merge with those that deduct alike and count the same meters.
    // Grouped by their headers first: only a group big enough to merge is decompressed.
    type Kind = (bool, Vec<MeterId>);
    let mut groups: BTreeMap<Kind, Vec<u64>> = BTreeMap::new();
    for entry in next.rollups.iter().filter(|e| e.file_len < SMALL_FILE) {
        let path = file::path_in(&paths.rollups, entry.id);
        let Some(h) = opts
            .fs
            .read(&path)
            .ok()
            .and_then(|b| RollupFile::header(&b))
        else {
            continue;
        };
        groups
            .entry((h.deducts, h.meters))
            .or_default()
            .push(entry.id);
    }
    let live: HashSet<SegmentId> = next.segments.iter().map(|e| e.id).collect();
    let mut merged_ids = Vec::new();
    for (_, group) in groups {
        if group.len() < MERGE_FILES {
            continue;
        }
        let mut ids = Vec::new();
        let mut files = Vec::new();
        for id in group {
            let path = file::path_in(&paths.rollups, id);
            let decoded = opts
                .fs
                .read(&path)
                .ok()
                .and_then(|b| RollupFile::decode(&b, &path).ok());
            if let Some(f) = decoded {
                ids.push(id);
                files.push(f);
            }
        }
        if files.len() < MERGE_FILES {
            continue;
        }
        let mut merged = RollupFile::merge(&files, minute_horizon);
        merged.segments.retain(|s| live.contains(s));
        let id = next.next_segment_id;
        next.next_segment_id += 1;
        let written = write_file(paths, opts, id, &merged)?;
        next.rollups.retain(|e| !ids.contains(&e.id));
        next.rollups.push(written);
        merged_ids.extend(ids);
    }
    next.rollups.sort_by_key(|e| e.id);
    Ok(merged_ids)
}
