//! [`Engine`]: the embedded API. Opens a data directory (taking its lock), routes each
//! tenant's events to its shard, and answers scans over every shard's buffers and segments.
//!
//! Knows no byte encodings: those belong to `wal`, `segment` and `manifest`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::audit::AuditLog;
use crate::catalog::{Catalog, CatalogRequest};
use crate::codec::stable_hash;
use crate::config::{Options, default_shards};
use crate::error::{Corruption, Error, InvalidEvent, Result};
use crate::fs::{FileSystem, LockGuard, write_atomic};
use crate::meters::MeterRegistry;
use crate::model::WriteBatch;
use crate::retention::{Retention, RetentionPolicies};
use crate::rollup::RollupStore;
use crate::scan::{ColumnBatch, ScanRequest};
use crate::shard::{RecoveryReport, RollupContext, Shard, ShardReceipt, View};
use crate::tombstone::Tombstones;
use crate::window::IngestWindow;

mod maintenance;
mod tracker_support;
pub mod usage;

pub use maintenance::{CompactionProgress, CompactionReport, Compactor, DELETED_PREFIX, Deletion};

/// Name of the file that fixes a data directory's format version and shard count.
const META_FILE: &str = "META";
/// Format version of the data directory as a whole.
const DIR_FORMAT: u32 = 1;

/// What happened to a write.
#[derive(Debug, Default, PartialEq)]
#[must_use = "a write can reject events (field type conflicts); check `rejected`"]
pub struct Receipt {
    /// Events stored.
    pub written: usize,
    /// Events refused one by one, by index in the caller's batch, in index order: those dated
    /// outside the ingest window ([`InvalidEvent::TooOld`], [`InvalidEvent::TooFarAhead`];
    /// see [`crate::window`]) and those with a field whose type conflicts with the stored
    /// schema. They are not stored and their event ids are not remembered; the other events
    /// of the batch are stored, as InfluxDB does.
    pub rejected: Vec<(usize, InvalidEvent)>,
    /// Events not stored because an event of the same tenant with the same event id is
    /// stored already (a retry, or a repeat within the batch). They are not errors: the event
    /// counts once, as the first copy.
    pub duplicates: usize,
}

/// Most segments one scan reads at once. A query checks its memory budget between groups, so
/// a group may overshoot it by this many segments' rows.
const MAX_SCAN_THREADS: usize = 8;

/// The storage engine.
///
/// `Send + Sync`: share it with an `Arc`. Writes block the calling thread until they are
/// durable; from async code use [`Engine::write_async`], which does not block the runtime.
#[derive(Debug)]
pub struct Engine {
    dir: PathBuf,
    shards: Vec<Shard>,
    recovery: Vec<RecoveryReport>,
    meters: Arc<MeterRegistry>,
    rollups: Arc<RollupStore>,
    /// Serialises meter definitions and deletions (each takes a backfill).
    meter_admin: std::sync::Mutex<()>,
    window: IngestWindow,
    retention: RetentionPolicies,
    /// The file layer, for files kept next to the engine's (the usage tracker's limits).
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn crate::clock::Clock>,
    /// Deletions whose rows the segments still hold; reads hide them.
    tombstones: Arc<Tombstones>,
    audit: AuditLog,
    maintenance: maintenance::Maintenance,
    compaction: crate::shard::compact::CompactionPolicy,
    compaction_pace: f64,
    rollups_on_delete: crate::RollupsOnDelete,
    /// Segments a scan reads at once: the cores this process may use, at most
    /// [`MAX_SCAN_THREADS`].
    scan_threads: usize,
    _lock: LockGuard,
}

impl Engine {
    /// Opens the data directory `dir`, creating it if needed, and recovers every shard.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process (or another `Engine`) has it open;
    /// [`Error::InvalidOptions`] when `options.shards` disagrees with the directory;
    /// I/O errors. Damage found in the files does not fail the open: it is logged and
    /// listed in [`Engine::recovery_report`].
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        let dir = dir.as_ref().to_owned();
        let fs = &*options.fs;
        fs.create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = fs
            .lock(&lock_path)
            .map_err(|e| Error::io("lock", &lock_path, e))?
            .ok_or_else(|| Error::Locked { path: dir.clone() })?;
        let n_shards = shard_count(fs, &dir, options.shards)?;
        let tombstones = Arc::new(Tombstones::open(options.fs.clone(), &dir)?);
        let audit = AuditLog::new(options.fs.clone(), &dir);
        let defaults = Retention {
            events: options.raw_retention,
            metrics: options.rollup_retention,
        };
        let retention = RetentionPolicies::open(options.fs.clone(), &dir, defaults)?;
        let context = RollupContext {
            registry: Arc::new(MeterRegistry::open(options.fs.clone(), &dir)?),
            store: Arc::new(RollupStore::new(
                options.rollup_minute_window,
                options.clock.now(),
            )),
        };
        // Shards recover independently (their own WAL, segments and rollup files), so they
        // open in parallel: a restart takes as long as the slowest shard, not their sum.
        let opened: Vec<Result<_>> = std::thread::scope(|scope| {
            let opening: Vec<_> = (0..n_shards)
                .map(|id| {
                    let (dir, options, context) = (&dir, &options, &context);
                    scope.spawn(move || {
                        Shard::open(id, dir.join(format!("shard-{id:03}")), options, context)
                    })
                })
                .collect();
            opening
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut shards = Vec::with_capacity(n_shards);
        let mut recovery = Vec::with_capacity(n_shards);
        for result in opened {
            let (shard, report) = result?;
            shards.push(shard);
            recovery.push(report);
        }
        Ok(Engine {
            dir,
            shards,
            recovery,
            meters: context.registry,
            rollups: context.store,
            meter_admin: std::sync::Mutex::new(()),
            window: IngestWindow::new(&options),
            retention,
            fs: options.fs.clone(),
            clock: options.clock.clone(),
            tombstones,
            audit,
            maintenance: Default::default(),
            compaction: options.compaction,
            compaction_pace: options.compaction_pace,
            rollups_on_delete: options.rollups_on_delete,
            scan_threads: std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .min(MAX_SCAN_THREADS),
            _lock: lock,
        })
    }

    /// What deleting a user or a tenant does to its rollups.
    pub fn rollups_on_delete(&self) -> crate::RollupsOnDelete {
        self.rollups_on_delete
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The default retention and the tenants' overrides.
    pub fn retention(&self) -> &RetentionPolicies {
        &self.retention
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard a tenant's events go to.
    pub fn shard_of(&self, tenant: &str) -> usize {
        (stable_hash(tenant.as_bytes()) % self.shards.len() as u64) as usize
    }

    /// What each shard's recovery found when the engine opened.
    pub fn recovery_report(&self) -> &[RecoveryReport] {
        &self.recovery
    }

    /// Stores a batch and returns once it is durable (per the sync policy) and visible.
    ///
    /// Structurally invalid events (no tenant, empty measurement, timestamp out of range, ...)
    /// fail the whole batch with [`Error::InvalidEvent`] before anything is stored. Events
    /// dated before now minus [`Options::raw_retention`] or after now plus
    /// [`Options::max_future`], and events whose field types conflict with stored data, are
    /// refused one by one and listed in [`Receipt::rejected`]; the rest is stored. An event
    /// whose event id the tenant's shard already stores (dated within
    /// [`Options::dedup_window`]), or that repeats an id earlier in the batch, is not stored
    /// again and is counted in [`Receipt::duplicates`]; events without an id are never
    /// deduplicated.
    ///
    /// The events of one shard are committed atomically (one WAL record). A batch whose
    /// tenants live in different shards is committed shard by shard: if one shard fails, the
    /// error is returned although other shards may have stored their part (a retry stores
    /// it again, except the events with an event id, which are counted once). A failed
    /// write never marks its event ids as stored.
    pub fn write(&self, batch: WriteBatch) -> Result<Receipt> {
        let (refused, pending) = self.submit(vec![batch])?;
        collect(
            refused,
            pending
                .into_iter()
                .map(|(idx, rx)| (idx, rx.recv().unwrap_or(Err(Error::Closed)))),
        )
    }

    /// [`Engine::write`] for async callers: awaits the commit without blocking the runtime's
    /// threads.
    pub async fn write_async(&self, batch: WriteBatch) -> Result<Receipt> {
        self.write_parts_async(vec![batch]).await
    }

    /// [`Engine::write_async`] for a batch given in parts: writes the events of all parts
    /// (validated together, before any is stored); the receipt's indices count through the
    /// parts in order. A part whose events all belong to one shard ([`Engine::shard_of`]) goes
    /// to it as it is; any other part is split, as `write_async` splits a batch.
    pub async fn write_parts_async(&self, parts: Vec<WriteBatch>) -> Result<Receipt> {
        let (refused, pending) = self.submit(parts)?;
        let mut results = Vec::with_capacity(pending.len());
        for (idx, rx) in pending {
            results.push((idx, rx.await.unwrap_or(Err(Error::Closed))));
        }
        collect(refused, results.into_iter())
    }

    /// Validates the parts of a batch and [routes](Engine::route) each. Returns the refused
    /// events and, per shard part, the indices (counted through the parts) of the events sent
    /// (`None`: all of them, in order) with the shard's answer to come.
    #[allow(clippy::type_complexity)]
    fn submit(
        &self,
        parts: Vec<WriteBatch>,
    ) -> Result<(
        Vec<(usize, InvalidEvent)>,
        Vec<(Option<Vec<usize>>, oneshot::Receiver<Result<ShardReceipt>>)>,
    )> {
        let mut offset = 0;
        for part in &parts {
            if let Err((index, reason)) = part.validate() {
                return Err(Error::InvalidEvent {
                    index: offset + index,
                    reason,
                });
            }
            offset += part.len();
        }
        let max = crate::wal::MAX_RECORD_LEN;
        let bytes: usize = parts.iter().map(WriteBatch::encoded_len).sum();
        if bytes > max {
            return Err(Error::BatchTooLarge { bytes, max });
        }
        let mut refused = Vec::new();
        let mut pending = Vec::new();
        let mut offset = 0;
        for part in parts {
            let n = part.len();
            let (part_refused, part_pending) = self.route(part);
            refused.extend(part_refused.into_iter().map(|(i, r)| (offset + i, r)));
            pending.extend(part_pending.into_iter().map(|(indices, rx)| {
                let indices = match indices {
                    Some(ix) => Some(ix.into_iter().map(|i| offset + i).collect()),
                    None if offset == 0 => None,
                    None => Some((offset..offset + n).collect()),
                };
                (indices, rx)
            }));
            offset += n;
        }
        Ok((refused, pending))
    }

    /// Refuses the events of a valid batch outside the ingest window, splits the rest by
    /// shard and queues it. Returns the refused events and, per shard, the indices in `batch`
    /// of the events sent (`None`: all of them, in order) with the shard's answer to come.
    #[allow(clippy::type_complexity)]
    fn route(
        &self,
        batch: WriteBatch,
    ) -> (
        Vec<(usize, InvalidEvent)>,
        Vec<(Option<Vec<usize>>, oneshot::Receiver<Result<ShardReceipt>>)>,
    ) {
        if batch.is_empty() {
            return (Vec::new(), Vec::new());
        }
        // Refused here, before any shard sees them, so that they are neither stored nor
        // their event ids remembered.
        let window = self.window.now();
        let mut refused = Vec::new();
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); self.shards.len()];
        for (i, e) in batch.iter().enumerate() {
            match window.check(e.timestamp) {
                Ok(()) => by_shard[self.shard_of(e.tenant)].push(i),
                Err(reason) => refused.push((i, reason)),
            }
        }
        let used: Vec<usize> = (0..by_shard.len())
            .filter(|&s| !by_shard[s].is_empty())
            .collect();
        if let ([only], []) = (&used[..], &refused[..]) {
            return (refused, vec![(None, self.shards[*only].submit(batch))]);
        }
        let pending = used
            .into_iter()
            .map(|s| {
                let indices = std::mem::take(&mut by_shard[s]);
                let part = batch.select(indices.iter().copied());
                (Some(indices), self.shards[s].submit(part))
            })
            .collect();
        (refused, pending)
    }

    /// Rows matching `req` from every shard's buffers and segments, one batch per table and
    /// source (rows within a batch in time order; batches in no particular order).
    pub fn scan(&self, req: &ScanRequest) -> Result<Vec<ColumnBatch>> {
        self.scan_checked(req, |_| Ok::<(), Error>(()))
    }

    /// [`Engine::scan`], asking `proceed` before reading each buffer and each group of segments
    /// read in parallel, and at the end, with the batches read so far: an error from it stops
    /// the scan and is returned. A query uses it to stop at its deadline or memory budget
    /// instead of reading on.
    pub fn scan_checked<E: From<Error>>(
        &self,
        req: &ScanRequest,
        mut proceed: impl FnMut(&[ColumnBatch]) -> std::result::Result<(), E>,
    ) -> std::result::Result<Vec<ColumnBatch>, E> {
        let mut out = Vec::new();
        for (shard, view) in self.views(req) {
            for mt in std::iter::once(&view.active).chain(view.frozen.as_ref()) {
                proceed(&out)?;
                mt.read()
                    .unwrap_or_else(|e| e.into_inner())
                    .scan(req, &mut out);
            }
            proceed(&out)?;
            self.scan_segments(shard, &view.segments, req, &mut out, &mut proceed)?;
        }
        proceed(&out)?;
        Ok(out)
    }

    /// Number of rows matching `req`.
    pub fn count(&self, req: &ScanRequest) -> Result<u64> {
        let mut n = 0;
        for (shard, view) in self.views(req) {
            for mt in std::iter::once(&view.active).chain(view.frozen.as_ref()) {
                n += mt.read().unwrap_or_else(|e| e.into_inner()).count(req);
            }
            for seg in &view.segments {
                let hidden = self.tombstones.covering(shard, seg.info().id);
                if hidden.is_empty() {
                    n += seg.count(req)?;
                } else {
                    n += self
                        .scan_segment(shard, seg, req)?
                        .iter()
                        .map(|b| b.len() as u64)
                        .sum::<u64>();
                }
            }
        }
        Ok(n)
    }

    /// The measurements, tag keys, tag values and field keys of the data `req` selects,
    /// from the buffers' tables and the segments' footers and tag dictionaries (no row is
    /// read). The tenant shows as the tag `tenant`, the event id as the string field
    /// `event_id` (see [`crate::catalog`]).
    pub fn catalog(&self, req: &CatalogRequest) -> Result<Catalog> {
        let mut catalog = Catalog::default();
        let shards = ScanRequest {
            tenant: req.tenant.clone(),
            ..ScanRequest::default()
        };
        for (shard, view) in self.views(&shards) {
            for mt in std::iter::once(&view.active).chain(view.frozen.as_ref()) {
                mt.read()
                    .unwrap_or_else(|e| e.into_inner())
                    .catalog(req, &mut catalog);
            }
            for seg in &view.segments {
                if self.tombstones.covering(shard, seg.info().id).is_empty() {
                    seg.catalog(req, &mut catalog)?;
                } else {
                    // The dictionaries still hold deleted values: list what is visible.
                    for batch in self.scan_segment(shard, seg, &shards)? {
                        catalog.add_batch(req, &batch);
                    }
                }
            }
        }
        Ok(catalog)
    }

    /// Snapshots of the shards a request touches, with their numbers.
    fn views(&self, req: &ScanRequest) -> Vec<(usize, Arc<View>)> {
        match &req.tenant {
            Some(t) => {
                let shard = self.shard_of(t.as_str());
                vec![(shard, self.shards[shard].view())]
            }
            None => self.shards.iter().map(|s| s.view()).enumerate().collect(),
        }
    }

    /// Appends the batches of `segments` to `out`, in the segments' order, asking `proceed`
    /// after each segment. Read by one thread per core, each taking the next segment no
    /// thread has taken: segments differ in size (a day's first and last hold a few hours),
    /// and threads that read them in fixed pairs waited for the bigger of each pair.
    fn scan_segments<E: From<Error>>(
        &self,
        shard: usize,
        segments: &[Arc<crate::segment::Segment>],
        req: &ScanRequest,
        out: &mut Vec<ColumnBatch>,
        proceed: &mut impl FnMut(&[ColumnBatch]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let threads = self.scan_threads.min(segments.len());
        if threads <= 1 {
            for seg in segments {
                out.extend(self.scan_segment(shard, seg, req)?);
                proceed(out)?;
            }
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (done, finished) = crossbeam_channel::unbounded();
        let base = out.len();
        // The segment of each batch appended, to put them in segment order at the end.
        let mut origin = Vec::new();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let done = done.clone();
                let (next, stop) = (&next, &stop);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(seg) = segments.get(i) else { break };
                        if done.send((i, self.scan_segment(shard, seg, req))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done);
            let mut outcome = Ok(());
            for (i, batches) in finished {
                let read = batches.map_err(E::from).and_then(|batches| {
                    origin.resize(origin.len() + batches.len(), i);
                    out.extend(batches);
                    proceed(out)
                });
                if let Err(e) = read {
                    // The threads stop at their next segment; the scope waits for them.
                    stop.store(true, Ordering::Relaxed);
                    outcome = Err(e);
                    break;
                }
            }
            outcome
        })?;
        let mut appended: Vec<(usize, ColumnBatch)> =
            origin.into_iter().zip(out.drain(base..)).collect();
        appended.sort_by_key(|(i, _)| *i);
        out.extend(appended.into_iter().map(|(_, b)| b));
        Ok(())
    }

    /// [`Engine::scan_visible`], logging damage it meets: the reader gets the error, and the
    /// operator needs to hear of it too.
    fn scan_segment(
        &self,
        shard: usize,
        seg: &crate::segment::Segment,
        req: &ScanRequest,
    ) -> Result<Vec<ColumnBatch>> {
        self.scan_visible(shard, seg, req).inspect_err(|e| {
            if matches!(e, Error::Corruption(_)) {
                tracing::error!(error = %e, "a scan met a damaged segment block; its rows are unavailable");
            }
        })
    }

    /// [`Segment::scan`] without the rows pending deletions hide.
    fn scan_visible(
        &self,
        shard: usize,
        seg: &crate::segment::Segment,
        req: &ScanRequest,
    ) -> Result<Vec<ColumnBatch>> {
        let hidden = self.tombstones.covering(shard, seg.info().id);
        if hidden.is_empty() {
            return seg.scan(req);
        }
        let user = crate::tombstone::USER_TAG;
        let mut with_user = req.clone();
        let add_user = !req.wants(user);
        if let Some(columns) = with_user.columns.as_mut().filter(|_| add_user) {
            columns.push(user.to_owned());
        }
        let mut out = Vec::new();
        for batch in seg.scan(&with_user)? {
            let mut batch = crate::tombstone::visible(&hidden, &batch).unwrap_or(batch);
            if add_user {
                batch.tags.retain(|t| t.key != user);
            }
            if !batch.is_empty() {
                out.push(batch);
            }
        }
        Ok(out)
    }

    /// Flushes every shard's buffer to segments and returns when they are durable.
    pub fn flush(&self) -> Result<()> {
        let pending: Vec<_> = self.shards.iter().map(|s| s.request_flush()).collect();
        let mut first_err = None;
        for rx in pending {
            if let Err(e) = rx.recv().unwrap_or(Err(Error::Closed)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Flushes, stops the shards' threads and releases the directory lock.
    pub fn close(self) -> Result<()> {
        let mut first_err = None;
        for s in &self.shards {
            if let Err(e) = s.close() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Storage figures: segments, their bytes and the buffered events, per shard.
    pub fn stats(&self) -> Vec<ShardStatus> {
        self.shards
            .iter()
            .map(|s| {
                let view = s.view();
                let buffered = |m: &std::sync::RwLock<crate::shard::Memtable>| {
                    let m = m.read().unwrap_or_else(|e| e.into_inner());
                    (m.len(), m.bytes())
                };
                let (active_events, active_bytes) = buffered(&view.active);
                let (frozen_events, frozen_bytes) = view.frozen.as_deref().map_or((0, 0), buffered);
                let st = s.stats();
                let load =
                    |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                ShardStatus {
                    segments: view.segments.len(),
                    segment_bytes: crate::shard::segment_bytes(&view),
                    buffered_events: active_events + frozen_events,
                    buffered_bytes: active_bytes + frozen_bytes,
                    events_written: load(&st.events_written),
                    wal_syncs: load(&st.wal_syncs),
                    wal_bytes: load(&st.wal_bytes),
                    flushes: load(&st.flushes),
                    flushed_bytes: load(&st.flushed_bytes),
                    compactions: load(&st.compactions),
                    compacted_bytes_read: load(&st.compacted_bytes_read),
                    compacted_bytes_written: load(&st.compacted_bytes_written),
                    write_stalls: load(&st.write_stalls),
                    duplicate_events: load(&st.duplicate_events),
                    dedup_index_bytes: load(&st.dedup_index_bytes),
                    rollup_file_bytes: load(&st.rollup_file_bytes),
                    poisoned: s.poisoned().map(|e| e.to_string()),
                }
            })
            .collect()
    }

    /// Verifies every checksum of every live segment; returns the damage found (empty when
    /// all is well), plus what recovery found when the engine opened.
    pub fn check(&self) -> Vec<Corruption> {
        let mut found: Vec<Corruption> = self
            .recovery
            .iter()
            .flat_map(|r| r.corruptions.iter().cloned())
            .collect();
        for s in &self.shards {
            for seg in &s.view().segments {
                found.extend(seg.verify());
            }
        }
        found
    }
}

/// One shard's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardStatus {
    /// Live segments.
    pub segments: usize,
    /// Their bytes on disk.
    pub segment_bytes: u64,
    /// Bytes of the live rollup files on disk.
    pub rollup_file_bytes: u64,
    /// Events in memory, not yet in a segment.
    pub buffered_events: usize,
    /// Approximate bytes of those.
    pub buffered_bytes: usize,
    /// Events written since open.
    pub events_written: u64,
    /// WAL fsyncs since open.
    pub wal_syncs: u64,
    /// WAL bytes written since open.
    pub wal_bytes: u64,
    /// Flushes since open.
    pub flushes: u64,
    /// Segment bytes written by flushes since open.
    pub flushed_bytes: u64,
    /// Segment rewrites committed by compaction since open.
    pub compactions: u64,
    /// Bytes of the segments compaction replaced since open.
    pub compacted_bytes_read: u64,
    /// Segment bytes compaction wrote since open (with `flushed_bytes`, the write
    /// amplification: (flushed + compacted) / flushed).
    pub compacted_bytes_written: u64,
    /// Writes that waited for a flush.
    pub write_stalls: u64,
    /// Events not stored since open because their event id was stored already.
    pub duplicate_events: u64,
    /// Approximate bytes of memory of the shard's event-id index.
    pub dedup_index_bytes: u64,
    /// Why the shard refuses writes, if it does.
    pub poisoned: Option<String>,
}

/// Merges the events refused before the shards (`refused`, by index in the caller's batch)
/// and the shards' receipts, mapping their indices back to the caller's batch.
fn collect(
    refused: Vec<(usize, InvalidEvent)>,
    results: impl Iterator<Item = (Option<Vec<usize>>, Result<ShardReceipt>)>,
) -> Result<Receipt> {
    let mut receipt = Receipt {
        rejected: refused,
        ..Receipt::default()
    };
    let mut first_err = None;
    for (indices, result) in results {
        match result {
            Ok(r) => {
                receipt.written += r.written;
                receipt.duplicates += r.duplicates;
                receipt
                    .rejected
                    .extend(r.rejected.into_iter().map(|(i, reason)| {
                        let i = indices
                            .as_ref()
                            .and_then(|ix| ix.get(i).copied())
                            .unwrap_or(i);
                        (i, reason)
                    }));
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    receipt.rejected.sort_by_key(|(i, _)| *i);
    Ok(receipt)
}

/// Reads the directory's shard count, or fixes it for a new directory.
fn shard_count(fs: &dyn FileSystem, dir: &Path, wanted: Option<usize>) -> Result<usize> {
    let path = dir.join(META_FILE);
    let stored = match fs.read(&path) {
        Ok(bytes) => Some(parse_meta(&bytes).map_err(|why| {
            Corruption::new(&path, 0, crate::error::CorruptionKind::Invalid(why))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    match (stored, wanted) {
        (Some(n), Some(w)) if n != w => Err(Error::InvalidOptions(format!(
            "{} was created with {n} shards, the options ask for {w}; the shard count cannot change",
            dir.display()
        ))),
        (Some(n), _) => Ok(n),
        (None, wanted) => {
            let n = wanted.unwrap_or_else(default_shards);
            if !(1..=256).contains(&n) {
                return Err(Error::InvalidOptions(format!(
                    "shards must be 1..=256, not {n}"
                )));
            }
            let meta = format!("meterdb data directory\nformat {DIR_FORMAT}\nshards {n}\n");
            write_atomic(fs, &path, meta.as_bytes())?;
            Ok(n)
        }
    }
}

/// Parses the META file: three lines, `meterdb data directory`, `format N`, `shards N`.
fn parse_meta(bytes: &[u8]) -> std::result::Result<usize, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "META is not UTF-8".to_owned())?;
    let mut lines = text.lines();
    if lines.next() != Some("meterdb data directory") {
        return Err("META does not start with `meterdb data directory`".into());
    }
    let value = |line: Option<&str>, key: &str| {
        line.and_then(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| format!("META lacks a `{key}` line"))
    };
    let format = value(lines.next(), "format ")?;
    if format != DIR_FORMAT as usize {
        return Err(format!(
            "data directory format {format} is not supported (this build reads {DIR_FORMAT})"
        ));
    }
    let shards = value(lines.next(), "shards ")?;
    if !(1..=256).contains(&shards) {
        return Err(format!("META names {shards} shards"));
    }
    Ok(shards)
}
