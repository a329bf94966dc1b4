//! One shard: the write path of the tenants hashed to it (WAL with group commit → in-memory
//! buffer → segments) and the read snapshot of its data.
//!
//! Threads: a writer (owns the WAL, the schema map and the sequence numbers; applies groups to
//! the active buffer) and a flusher (owns the manifest; turns a frozen buffer into segments).
//! Readers take a [`View`]: the buffers and segments at one moment, reference-counted, so a
//! flush that finishes during a scan neither hides nor doubles rows.
//!
//! Knows nothing of HTTP or of other shards.

pub mod compact;
mod dedup;
mod event_ids;
mod flush;
mod memtable;
mod recovery;
mod rollups;
mod schema;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::config::Options;
use crate::error::{Corruption, Error, InvalidEvent, Result};
use crate::meters::{IdMeter, MeterRegistry};
use crate::model::WriteBatch;
use crate::rollup::{MeterId, RollupStore};
use crate::segment::Segment;

pub use memtable::Memtable;

/// What a shard did with a write.
#[derive(Debug, Default)]
pub struct ShardReceipt {
    /// Events stored.
    pub written: usize,
    /// Events refused, by index in the batch the shard received.
    pub rejected: Vec<(usize, InvalidEvent)>,
    /// Events not stored because the shard already stores an event of the same tenant with
    /// the same event id (a retry); they count as written once, earlier.
    pub duplicates: usize,
}

/// A shard's data at one moment.
#[derive(Debug, Clone)]
pub struct View {
    /// The buffer receiving writes.
    pub active: Arc<RwLock<Memtable>>,
    /// A buffer being flushed, if any.
    pub frozen: Option<Arc<RwLock<Memtable>>>,
    /// Live segments that opened cleanly, ascending id.
    pub segments: Vec<Arc<Segment>>,
}

/// What opening a shard found and repaired; none of it stops the shard from opening.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// WAL records replayed into the buffer.
    pub wal_records_replayed: u64,
    /// Torn WAL tails cut off: file, offset, bytes removed.
    pub wal_truncated: Vec<(PathBuf, u64, u64)>,
    /// Damage found in WAL files, manifests and segments.
    pub corruptions: Vec<Corruption>,
    /// Set when the manifest was unreadable and was rebuilt from the segment files.
    pub manifest_rebuilt: bool,
    /// Segment files that were not live (left over from an interrupted flush) and were removed.
    pub orphans_removed: usize,
    /// Live segments whose rows no rollup file counted for some meter, recounted.
    pub segments_recounted: usize,
}

/// Counters, read by `/metrics`.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Events written.
    pub events_written: AtomicU64,
    /// WAL fsyncs.
    pub wal_syncs: AtomicU64,
    /// WAL bytes written.
    pub wal_bytes: AtomicU64,
    /// Flushes completed.
    pub flushes: AtomicU64,
    /// Writes that waited for a flush because the buffer was full.
    pub write_stalls: AtomicU64,
    /// Events not stored because their event id was already stored.
    pub duplicate_events: AtomicU64,
    /// Approximate bytes of memory of the event-id index (set by the writer).
    pub dedup_index_bytes: AtomicU64,
    /// Bytes of the live rollup files (set by the flusher).
    pub rollup_file_bytes: AtomicU64,
    /// Compactions committed (merges, expiries and purges).
    pub compactions: AtomicU64,
    /// Bytes of the segments compactions replaced.
    pub compacted_bytes_read: AtomicU64,
    /// Bytes of the segments compactions wrote.
    pub compacted_bytes_written: AtomicU64,
    /// Bytes of the segments flushes wrote.
    pub flushed_bytes: AtomicU64,
}

/// Where a shard's files live.
#[derive(Debug, Clone)]
pub struct ShardPaths {
    /// The shard's directory.
    pub dir: PathBuf,
    /// Its WAL files.
    pub wal: PathBuf,
    /// Its segment files.
    pub segments: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// Its rollup files.
    pub rollups: PathBuf,
}

/// What the shards of an engine share for rollups.
#[derive(Clone, Debug)]
pub struct RollupContext {
    /// The meters as persisted: recovery counts replayed events with them.
    pub registry: Arc<MeterRegistry>,
    /// The in-memory buckets.
    pub store: Arc<RollupStore>,
}

impl ShardPaths {
    fn new(dir: PathBuf) -> ShardPaths {
        ShardPaths {
            wal: dir.join("wal"),
            segments: dir.join("segments"),
            manifest: dir.join(crate::manifest::FILE_NAME),
            rollups: dir.join("rollups"),
            dir,
        }
    }
}

/// Whether a flush is running and how the last one ended.
#[derive(Debug, Default)]
struct FlushState {
    in_progress: bool,
    /// The error of the last failed attempt, cleared by a success.
    last_error: Option<(std::io::ErrorKind, String)>,
}

/// State shared by the shard's threads and its readers.
#[derive(Debug)]
struct Shared {
    id: usize,
    paths: ShardPaths,
    opts: Options,
    store: Arc<RollupStore>,
    view: RwLock<Arc<View>>,
    flush: Mutex<FlushState>,
    flush_done: Condvar,
    poisoned: Mutex<Option<String>>,
    /// Set when the shard is closing: a failing flush stops retrying (its data is in the WAL).
    stopping: std::sync::atomic::AtomicBool,
    stats: ShardStats,
}

impl Shared {
    fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update_view(&self, f: impl FnOnce(&View) -> View) {
        let mut guard = self.view.write().unwrap_or_else(|e| e.into_inner());
        let next = f(&guard);
        *guard = Arc::new(next);
    }

    fn poisoned(&self) -> Option<Error> {
        let p = self.poisoned.lock().unwrap_or_else(|e| e.into_inner());
        p.as_ref().map(|reason| Error::Poisoned {
            shard: self.id,
            reason: reason.clone(),
        })
    }

    fn flush_state(&self) -> std::sync::MutexGuard<'_, FlushState> {
        self.flush.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request to the writer thread.
enum Request {
    Write {
        batch: Box<WriteBatch>,
        reply: oneshot::Sender<Result<ShardReceipt>>,
    },
    Flush {
        reply: oneshot::Sender<Result<()>>,
    },
    /// Start maintaining a newly defined meter; answers with the segments whose rows the
    /// caller must backfill.
    StartMeter {
        tenant: String,
        meter: IdMeter,
        reply: oneshot::Sender<Result<Vec<Arc<Segment>>>>,
    },
    /// Stop maintaining a deleted meter and drop its buckets.
    StopMeter {
        tenant: String,
        id: MeterId,
        reply: oneshot::Sender<()>,
    },
    Close,
}

/// One shard.
#[derive(Debug)]
pub struct Shard {
    shared: Arc<Shared>,
    tx: Sender<Request>,
    flush_tx: Sender<flush::Job>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Write { .. } => "Write",
            Request::Flush { .. } => "Flush",
            Request::StartMeter { .. } => "StartMeter",
            Request::StopMeter { .. } => "StopMeter",
            Request::Close => "Close",
        })
    }
}

impl Shard {
    /// Opens (or creates) shard `id` in `dir`: recovers its state from the manifest, the
    /// segments and the WAL, then starts its writer and flusher threads.
    pub fn open(
        id: usize,
        dir: PathBuf,
        opts: &Options,
        rollups: &RollupContext,
    ) -> Result<(Shard, RecoveryReport)> {
        let paths = ShardPaths::new(dir);
        let meters = rollups.registry.snapshot();
        let recovered = recovery::recover(id, &paths, opts, &meters, &rollups.store)?;
        // Counting the replayed buffer into the rollups and indexing its event ids only read
        // the buffer: side by side, a shard that finished replaying before the others uses the
        // idle core (a thread that cannot start leaves the counting to this one).
        let count = || recovery::count_buffer(id, &recovered.memtable, &meters, &rollups.store);
        let dedup = std::thread::scope(|scope| {
            let counting = std::thread::Builder::new()
                .name(format!("shard{id}-open"))
                .spawn_scoped(scope, count);
            let started = std::time::Instant::now();
            let dedup = dedup::DedupIndex::build(
                opts.dedup_window,
                opts.clock.now(),
                &recovered.segments,
                &recovered.memtable,
            );
            tracing::debug!(shard = id, took = ?started.elapsed(), "built the event-id index");
            match counting {
                Ok(handle) => {
                    if let Err(panic) = handle.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                Err(_) => count(),
            }
            dedup
        });
        let shared = Arc::new(Shared {
            id,
            paths,
            opts: opts.clone(),
            store: rollups.store.clone(),
            view: RwLock::new(Arc::new(View {
                active: Arc::new(RwLock::new(recovered.memtable)),
                frozen: None,
                segments: recovered.segments,
            })),
            flush: Mutex::default(),
            flush_done: Condvar::new(),
            poisoned: Mutex::default(),
            stopping: Default::default(),
            stats: ShardStats::default(),
        });
        shared
            .stats
            .rollup_file_bytes
            .store(recovered.manifest.rollup_bytes(), Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (flush_tx, flush_rx) = crossbeam_channel::unbounded();
        let flusher = flush::Flusher::new(shared.clone(), recovered.manifest);
        let writer = writer::Writer::new(
            shared.clone(),
            recovered.wal,
            recovered.schema,
            recovered.next_seq,
            dedup,
            meters,
            flush_tx.clone(),
        );
        let name = |what| format!("shard{id}-{what}");
        let spawn_err = |e| Error::io("spawn thread", PathBuf::new(), e);
        let threads = vec![
            std::thread::Builder::new()
                .name(name("flush"))
                .spawn(move || flusher.run(flush_rx))
                .map_err(spawn_err)?,
            std::thread::Builder::new()
                .name(name("write"))
                .spawn(move || writer.run(rx))
                .map_err(spawn_err)?,
        ];
        Ok((
            Shard {
                shared,
                tx,
                flush_tx,
                threads: Mutex::new(threads),
            },
            recovered.report,
        ))
    }

    /// Starts maintaining `tenant`'s newly defined meter: from now on its writes count for
    /// it, the events in the buffers are counted now, and the answer lists the segments whose
    /// rows the caller backfills (with [`Shard::backfill`]).
    pub fn start_meter(&self, tenant: &str, meter: IdMeter) -> Result<Vec<Arc<Segment>>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::StartMeter {
                tenant: tenant.to_owned(),
                meter,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Stops maintaining `tenant`'s meter `id` and drops its buckets from memory (its
    /// persisted buckets are skipped from now on, since the registry no longer has it).
    pub fn stop_meter(&self, tenant: &str, id: MeterId) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::StopMeter {
                tenant: tenant.to_owned(),
                id,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)
    }

    /// Backfills `meter` of `tenant` over `segments` (as [`Shard::start_meter`] listed
    /// them): counts their rows, persists the buckets in a rollup file, then merges them
    /// into the store. If persisting fails the buckets are still merged (the answer is
    /// right) and the error is returned; the next open recounts what no file holds.
    pub fn backfill(&self, tenant: &str, meter: IdMeter, segments: &[Arc<Segment>]) -> Result<()> {
        let store = &self.shared.store;
        let id = meter.0;
        let cells = rollups::count_segments(tenant, &[meter], segments, store)?;
        let mut delta = crate::rollup::Delta::default();
        *delta.cells_mut(tenant) = cells;
        let file = rollups::file_of(
            &delta,
            store,
            segments.iter().map(|s| s.info().id).collect(),
            vec![id],
        );
        let (reply, rx) = oneshot::channel();
        let persisted = self
            .flush_tx
            .send(flush::Job::AddRollups { file, reply })
            .map_err(|_| Error::Closed)
            .and_then(|()| rx.recv().unwrap_or(Err(Error::Closed)));
        delta.apply_to(store);
        persisted
    }

    /// The rewrites this shard's segments need now (see [`compact`]).
    pub fn plan_compaction(&self, ctx: &compact::PlanContext<'_>) -> Result<Vec<compact::Task>> {
        compact::plan(&self.view().segments, ctx)
    }

    /// Runs one rewrite: writes the new segment on this thread, then has the flusher make it
    /// live unless `valid()` is false by then ([`Error::Stale`]). Returns what it did.
    pub fn compact(
        &self,
        task: &compact::Task,
        ctx: &compact::PlanContext<'_>,
        valid: Box<dyn FnOnce() -> bool + Send>,
    ) -> Result<compact::Rewritten> {
        let ask = |job: flush::Job| self.flush_tx.send(job).map_err(|_| Error::Closed);
        let (reply, rx) = oneshot::channel();
        ask(flush::Job::Reserve(reply))?;
        let (id, commit) = rx.recv().map_err(|_| Error::Closed)?;
        let rewritten =
            compact::rewrite(task, ctx, id, commit, &self.shared.paths, &self.shared.opts)?;
        let summary = rewritten.clone();
        let (reply, rx) = oneshot::channel();
        ask(flush::Job::Compact {
            rewritten: Box::new(rewritten),
            valid,
            reply,
        })?;
        rx.recv().unwrap_or(Err(Error::Closed))?;
        self.shared
            .stats
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        bump(&self.shared.stats.compacted_bytes_read, summary.bytes_read);
        bump(
            &self.shared.stats.compacted_bytes_written,
            summary.output.map_or(0, |e| e.file_len),
        );
        Ok(summary)
    }

    /// The id the next segment will get: every segment live now, or being written by a
    /// compaction, has a lower one.
    pub fn boundary(&self) -> Result<crate::segment::SegmentId> {
        let (reply, rx) = oneshot::channel();
        self.flush_tx
            .send(flush::Job::Boundary(reply))
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)
    }

    /// Takes the contributions of `user`'s rows of `tenant` in the segments numbered below
    /// `before`, except those `earlier` deletions hide (they were dealt with then), out of
    /// the rollups: persists them as a deduction file, then subtracts them in memory.
    /// Distinct values are taken out only for meters counting the tag `user` (another
    /// tag's values may be other users' too).
    pub fn deduct_user(
        &self,
        tenant: &str,
        user: &str,
        meters: &[IdMeter],
        before: crate::segment::SegmentId,
        earlier: &[crate::tombstone::Tombstone],
    ) -> Result<()> {
        let store = &self.shared.store;
        let segments: Vec<Arc<Segment>> = self
            .view()
            .segments
            .iter()
            .filter(|s| s.info().id < before)
            .cloned()
            .collect();
        let user_tag = crate::tombstone::USER_TAG;
        let mut cells = rollups::count_matching(
            tenant,
            vec![crate::scan::TagPredicate::eq(user_tag, user)],
            earlier,
            meters,
            &segments,
            store,
        )?;
        for ((meter, _, _), acc) in cells.iter_mut() {
            let by_user = meters
                .iter()
                .any(|(id, m)| id == meter && m.tag.as_deref() == Some(user_tag));
            if !by_user {
                acc.unique.clear();
            }
        }
        let mut delta = crate::rollup::Delta::default();
        *delta.cells_mut(tenant) = cells;
        let mut file = rollups::file_of(&delta, store, Vec::new(), Vec::new());
        file.deducts = true;
        let (reply, rx) = oneshot::channel();
        self.flush_tx
            .send(flush::Job::AddRollups { file, reply })
            .map_err(|_| Error::Closed)?;
        rx.recv().unwrap_or(Err(Error::Closed))?;
        delta.deduct_from(store);
        Ok(())
    }

    /// Merges the shard's small rollup files (flushes write one each) into fewer, with
    /// minute buckets past the minute window as hours; returns how many files were merged.
    pub fn consolidate_rollups(&self) -> Result<usize> {
        let (reply, rx) = oneshot::channel();
        self.flush_tx
            .send(flush::Job::ConsolidateRollups(reply))
            .map_err(|_| Error::Closed)?;
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Rewrites the live rollup files for which `change` returns true (having changed
    /// them), in one manifest replacement; returns how many.
    pub fn rewrite_rollups(
        &self,
        change: impl FnMut(&mut crate::rollup::file::RollupFile) -> bool + Send + 'static,
    ) -> Result<usize> {
        let (reply, rx) = oneshot::channel();
        self.flush_tx
            .send(flush::Job::RewriteRollups {
                change: Box::new(change),
                reply,
            })
            .map_err(|_| Error::Closed)?;
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Queues a write; the receiver answers once it is durable (per the sync policy) and
    /// visible, or failed.
    pub fn submit(&self, batch: WriteBatch) -> oneshot::Receiver<Result<ShardReceipt>> {
        let (reply, rx) = oneshot::channel();
        if let Err(crossbeam_channel::SendError(Request::Write { reply, .. })) =
            self.tx.send(Request::Write {
                batch: Box::new(batch),
                reply,
            })
        {
            let _ = reply.send(Err(Error::Closed));
        }
        rx
    }

    /// Asks for the buffer to be flushed; the receiver answers when the segments are durable
    /// and listed in the manifest.
    pub fn request_flush(&self) -> oneshot::Receiver<Result<()>> {
        let (reply, rx) = oneshot::channel();
        if let Err(crossbeam_channel::SendError(Request::Flush { reply })) =
            self.tx.send(Request::Flush { reply })
        {
            let _ = reply.send(Err(Error::Closed));
        }
        rx
    }

    /// The shard's data now.
    pub fn view(&self) -> Arc<View> {
        self.shared.view()
    }

    /// Counters.
    pub fn stats(&self) -> &ShardStats {
        &self.shared.stats
    }

    /// The shard's files.
    pub fn paths(&self) -> &ShardPaths {
        &self.shared.paths
    }

    /// The error that stopped writes, if one did.
    pub fn poisoned(&self) -> Option<Error> {
        self.shared.poisoned()
    }

    /// Flushes the buffer, stops the threads and waits for them.
    pub fn close(&self) -> Result<()> {
        let flushed = self.request_flush().recv().unwrap_or(Err(Error::Closed));
        let _ = self.tx.send(Request::Close);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        match flushed {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        if !self.threads.get_mut().map(|t| t.is_empty()).unwrap_or(true)
            && let Err(e) = self.close()
        {
            tracing::error!(shard = self.shared.id, error = %e, "closing the shard failed");
        }
    }
}

/// Counts live and written bytes of a view's segments.
pub fn segment_bytes(view: &View) -> u64 {
    view.segments.iter().map(|s| s.file_len()).sum()
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
