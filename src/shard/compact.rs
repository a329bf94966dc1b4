//! Compaction: rewriting a shard's segments so that they stay few and large, and so that
//! expired and deleted rows leave the disk (storage-format.md, "Compaction").
//!
//! The policy works per time partition (a segment holds one UTC day of one shard):
//! - a past day's small segments (under half of `max_rows` rows each) are merged into one
//!   (or a few, each at most `max_rows` rows);
//! - the current day's small segments are merged once there are `min_segments` of them, so
//!   a row is rewritten about log_{min_segments}(flushes per day) times while its day is
//!   open, and once more when it closes;
//! - a segment holding a tenant past its raw-event retention, or rows a deletion hides, is
//!   rewritten without them (or dropped when nothing is left), even if it is alone.
//!
//! The rewrite (reading, merging, writing the new file) runs on the caller's thread, not
//! the flusher's, so flushes and reads go on; only the commit, one manifest replacement,
//! goes through the flusher, which owns the manifest.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::ShardPaths;
use crate::config::Options;
use crate::error::{Error, Result};
use crate::manifest::ManifestEntry;
use crate::model::{Day, SeqNo, TenantId};
use crate::scan::{ColumnBatch, ScanRequest};
use crate::segment::{self, Segment, SegmentId, SegmentInfo, SegmentWriter};
use crate::tombstone::{self, Tombstone};

/// How eagerly segments are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// The open day's small segments are merged once there are this many. Default 4.
    pub min_segments: usize,
    /// Most rows in a merged segment (a merge holds them in memory). Default 2,000,000.
    pub max_rows: u64,
}

impl Default for CompactionPolicy {
    fn default() -> CompactionPolicy {
        CompactionPolicy {
            min_segments: 4,
            max_rows: 2_000_000,
        }
    }
}

/// What the planner needs to know besides the segments.
pub struct PlanContext<'a> {
    /// The shard.
    pub shard: usize,
    /// Now, ns since the epoch.
    pub now: i64,
    /// A tenant's raw-event retention.
    pub retention: &'a dyn Fn(&str) -> Duration,
    /// The pending deletions.
    pub tombstones: &'a [Tombstone],
    /// The merge policy.
    pub policy: CompactionPolicy,
}

impl PlanContext<'_> {
    /// Whether every row `tenant` has on `day` is past its retention.
    pub fn expired(&self, tenant: &str, day: Day) -> bool {
        let keep = i64::try_from((self.retention)(tenant).as_nanos()).unwrap_or(i64::MAX);
        day.end() <= self.now.saturating_sub(keep)
    }

    fn hiding(&self, segment: &Segment) -> Vec<Tombstone> {
        self.tombstones
            .iter()
            .filter(|t| t.covers(self.shard, segment.info().id))
            .cloned()
            .collect()
    }

    /// Whether `segment` holds rows that must go: a tenant past retention, or rows a
    /// deletion hides.
    fn must_rewrite(&self, segment: &Segment) -> Result<bool> {
        let day = segment.info().day;
        if segment
            .tables()
            .any(|t| self.expired(t.tenant.as_str(), day))
        {
            return Ok(true);
        }
        for t in self.hiding(segment) {
            let mut req = ScanRequest {
                tenant: Some(TenantId::new(&t.tenant)),
                ..ScanRequest::default()
            };
            if let Some(user) = &t.user {
                req.predicates
                    .push(crate::scan::TagPredicate::eq(tombstone::USER_TAG, user));
            }
            if segment.count(&req)? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// One rewrite: `sources` (one day of one shard) become at most one segment.
#[derive(Debug, Clone)]
pub struct Task {
    /// The day.
    pub day: Day,
    /// The segments rewritten, ascending id.
    pub sources: Vec<Arc<Segment>>,
}

/// The rewrites `segments` (a shard's live segments) need now, oldest day first.
pub fn plan(segments: &[Arc<Segment>], ctx: &PlanContext<'_>) -> Result<Vec<Task>> {
    let today = Day(ctx.now.div_euclid(crate::model::NANOS_PER_DAY));
    let mut days: std::collections::BTreeMap<Day, Vec<&Arc<Segment>>> = Default::default();
    for s in segments {
        days.entry(s.info().day).or_default().push(s);
    }
    let rows = |s: &Segment| s.tables().map(|t| t.n_rows).sum::<u64>();
    let small = |s: &Segment| rows(s) < ctx.policy.max_rows / 2;
    let mut tasks = Vec::new();
    for (day, mut group) in days {
        group.sort_by_key(|s| s.info().id);
        let candidates: Vec<&Arc<Segment>> = group.iter().copied().filter(|s| small(s)).collect();
        let merge = if day < today {
            candidates.len() >= 2
        } else {
            candidates.len() >= ctx.policy.min_segments.max(2)
        };
        let mut merged: HashSet<SegmentId> = HashSet::new();
        if merge {
            let mut chunk: Vec<Arc<Segment>> = Vec::new();
            let mut chunk_rows = 0;
            for s in candidates {
                if !chunk.is_empty() && chunk_rows + rows(s) > ctx.policy.max_rows {
                    if chunk.len() >= 2 {
                        merged.extend(chunk.iter().map(|s| s.info().id));
                        tasks.push(Task {
                            day,
                            sources: std::mem::take(&mut chunk),
                        });
                    }
                    chunk.clear();
                    chunk_rows = 0;
                }
                chunk_rows += rows(s);
                chunk.push(s.clone());
            }
            if chunk.len() >= 2 {
                merged.extend(chunk.iter().map(|s| s.info().id));
                tasks.push(Task {
                    day,
                    sources: chunk,
                });
            }
        }
        for s in group {
            if !merged.contains(&s.info().id) && ctx.must_rewrite(s)? {
                tasks.push(Task {
                    day,
                    sources: vec![s.clone()],
                });
            }
        }
    }
    Ok(tasks)
}

/// A rewritten segment, written and durable but not yet live.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The segments it replaces.
    pub sources: Vec<SegmentId>,
    /// The new segment's file, when rows are left.
    pub output: Option<ManifestEntry>,
    /// Rows read from the sources.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Bytes of the sources.
    pub bytes_read: u64,
}

/// Rewrites `task` as segment `id` (with manifest version `commit`): the sources' rows,
/// minus those of tenants past retention and those `ctx`'s tombstones hide, merged per
/// tenant and measurement in time order. Writes and fsyncs the file (and the directory);
/// makes nothing live.
pub fn rewrite(
    task: &Task,
    ctx: &PlanContext<'_>,
    id: SegmentId,
    commit: u64,
    paths: &ShardPaths,
    opts: &Options,
) -> Result<Rewritten> {
    let sources = &task.sources;
    let mut keys: BTreeSet<(TenantId, String)> = BTreeSet::new();
    for s in sources {
        for t in s.tables() {
            if !ctx.expired(t.tenant.as_str(), task.day) {
                keys.insert((t.tenant.clone(), t.measurement.to_string()));
            }
        }
    }
    let hiding: Vec<Vec<Tombstone>> = sources.iter().map(|s| ctx.hiding(s)).collect();
    let mut writer = SegmentWriter::new(SegmentInfo {
        id,
        shard: ctx.shard as u32,
        day: task.day,
        seq_min: sources
            .iter()
            .map(|s| s.info().seq_min)
            .min()
            .unwrap_or(SeqNo(0)),
        seq_max: sources
            .iter()
            .map(|s| s.info().seq_max)
            .max()
            .unwrap_or(SeqNo(0)),
        commit,
        commit_parts: 1,
        replaces: sources.iter().map(|s| s.info().id).collect(),
    });
    let mut rows_written = 0;
    for (tenant, measurement) in keys {
        let req = ScanRequest {
            tenant: Some(tenant.clone()),
            measurement: Some(measurement.clone()),
            ..ScanRequest::default()
        };
        let mut merged = ColumnBatch {
            tenant,
            measurement,
            ..ColumnBatch::default()
        };
        for (s, hide) in sources.iter().zip(&hiding) {
            for batch in s.scan(&req)? {
                let batch = tombstone::visible(hide, &batch).unwrap_or(batch);
                merged.append(&batch).map_err(|why| {
                    Error::InvalidOptions(format!(
                        "compacting segment {} of shard {}: {why}",
                        s.info().id.0,
                        ctx.shard
                    ))
                })?;
            }
        }
        if merged.is_empty() {
            continue;
        }
        let merged = merged.sorted_by_time();
        rows_written += merged.len() as u64;
        writer.add_table(&merged)?;
    }
    let rows_read = sources
        .iter()
        .flat_map(|s| s.tables().map(|t| t.n_rows))
        .sum();
    let bytes_read = sources.iter().map(|s| s.file_len()).sum();
    let output = if rows_written == 0 {
        None
    } else {
        let path = segment::path_in(&paths.segments, id);
        let file_len = writer.finish(&*opts.fs, &path)?;
        let synced = opts
            .fs
            .sync_dir(&paths.segments)
            .map_err(|e| Error::io("fsync directory", &paths.segments, e));
        if let Err(e) = synced {
            let _ = opts.fs.remove_file(&path);
            return Err(e);
        }
        Some(ManifestEntry {
            id,
            day: task.day,
            file_len,
        })
    };
    Ok(Rewritten {
        sources: sources.iter().map(|s| s.info().id).collect(),
        output,
        rows_read,
        rows_written,
        bytes_read,
    })
}

/// Makes a rewrite live (on the flusher's thread): one manifest replacement drops the
/// sources and lists the new segment, and the rollup files that name a source name the new
/// segment instead (rewritten as new files in the same replacement), so that every live
/// segment stays counted by exactly one set of rollup files. Then the sources' files go.
/// A crash before the manifest's rename leaves the old state (the new file is an orphan,
/// removed at the next open); after it, the new one (the sources are orphans).
pub(super) fn commit(
    shared: &super::Shared,
    manifest: &mut crate::manifest::Manifest,
    r: &Rewritten,
) -> Result<Option<Arc<Segment>>> {
    let fs = &*shared.opts.fs;
    let paths = &shared.paths;
    let listed: HashSet<SegmentId> = manifest.segments.iter().map(|e| e.id).collect();
    if let Some(gone) = r.sources.iter().find(|s| !listed.contains(s)) {
        return Err(Error::InvalidOptions(format!(
            "compaction of shard {}: segment {} is no longer live",
            shared.id, gone.0
        )));
    }
    let mut next = manifest.clone();
    next.commit += 1;
    next.segments.retain(|e| !r.sources.contains(&e.id));
    next.segments.extend(r.output);
    next.segments.sort_by_key(|e| e.id);
    let mut old_rollups = Vec::new();
    if let Some(out) = r.output {
        let rename = |ids: &mut Vec<SegmentId>| {
            if !ids.iter().any(|s| r.sources.contains(s)) {
                return false;
            }
            ids.retain(|s| !r.sources.contains(s));
            ids.push(out.id);
            ids.sort_unstable();
            true
        };
        let lists_a_source = |ids: &[SegmentId]| ids.iter().any(|s| r.sources.contains(s));
        old_rollups =
            super::rollups::rewrite_files(paths, &shared.opts, &mut next, lists_a_source, |f| {
                rename(&mut f.segments)
            })?;
    }
    next.store(fs, &paths.manifest)?;
    *manifest = next;
    let opened = match r.output {
        Some(out) => {
            let path = segment::path_in(&paths.segments, out.id);
            match Segment::open(fs, &path) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(shard = shared.id, error = %e, "a compacted segment could not be opened");
                    None
                }
            }
        }
        None => None,
    };
    shared.update_view(|v| {
        let mut segments: Vec<Arc<Segment>> = v
            .segments
            .iter()
            .filter(|s| !r.sources.contains(&s.info().id))
            .cloned()
            .chain(opened.clone())
            .collect();
        segments.sort_by_key(|s| s.info().id);
        super::View {
            active: v.active.clone(),
            frozen: v.frozen.clone(),
            segments,
        }
    });
    let doomed = r
        .sources
        .iter()
        .map(|id| segment::path_in(&paths.segments, *id))
        .chain(
            old_rollups
                .iter()
                .map(|id| crate::rollup::file::path_in(&paths.rollups, *id)),
        );
    for path in doomed {
        // Harmless if it fails: an unlisted file is removed at the next open.
        if let Err(e) = fs.remove_file(&path) {
            tracing::warn!(shard = shared.id, file = %path.display(), error = %e, "could not remove a compacted file");
        }
    }
    Ok(opened)
}
