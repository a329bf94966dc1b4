//! The shard's writer thread: group commit. It takes every request waiting in its queue,
//! drops events whose event id is already stored (or comes earlier in the group), checks the
//! rest against the schema, frames one WAL record per request, writes them with one `write`
//! and makes them durable with one fsync, applies them to the active buffer and their ids to
//! the event-id index, and only then answers. It also decides when the buffer is frozen and
//! handed to the flusher.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use std::collections::{HashMap, HashSet};

use super::dedup::{self, DedupIndex, IdSet, Probe};
use super::flush::Job;
use super::recovery::WalTail;
use super::schema::SchemaMap;
use super::{Memtable, Request, ShardReceipt, Shared, View, bump};
use crate::config::SyncPolicy;
use crate::error::{Error, Result};
use crate::meters::{IdMeter, MeterSet};
use crate::model::{SeqNo, TenantId, WriteBatch};
use crate::rollup::Delta;
use crate::rollup::delta::{add_batch, count_events};
use crate::scan::ScanRequest;
use crate::segment::{IdKey, Segment};
use crate::wal::{self, WalWriter};

/// Largest WAL bytes one group carries; the rest of the queue waits for the next group.
const MAX_GROUP_BYTES: usize = 64 << 20;

type WriteReply = oneshot::Sender<Result<ShardReceipt>>;

/// The `(tenant, event id)` pairs a group stores, to drop a repeat within the group. Hashed
/// with foldhash, seeded per set: the ids come from the network.
type ClaimedIds<'a> = HashSet<(&'a str, &'a str), foldhash::fast::RandomState>;

/// What the event-id index says about one event's id.
struct IdCheck {
    hash: u64,
    /// The shard stores the key already (in a buffer or a segment).
    stored: bool,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    wal: Option<WalWriter>,
    next_wal_file: u64,
    schema: SchemaMap,
    next_seq: SeqNo,
    dedup: DedupIndex,
    /// The meters this shard maintains: changed only by `StartMeter` and `StopMeter`, so
    /// that a buffer's rollups count exactly the meters recorded when it is frozen.
    meters: MeterSet,
    flush_tx: Sender<Job>,
    frames: Vec<u8>,
    payload: Vec<u8>,
    last_sync: Instant,
    unsynced: bool,
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        wal: WalTail,
        schema: SchemaMap,
        next_seq: SeqNo,
        dedup: DedupIndex,
        meters: MeterSet,
        flush_tx: Sender<Job>,
    ) -> Writer {
        shared
            .stats
            .dedup_index_bytes
            .store(dedup.memory_bytes() as u64, Ordering::Relaxed);
        Writer {
            next_wal_file: wal.next_file,
            shared,
            wal: wal.open,
            schema,
            next_seq,
            dedup,
            meters,
            flush_tx,
            frames: Vec::new(),
            payload: Vec::new(),
            last_sync: Instant::now(),
            unsynced: false,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let tick = match self.shared.opts.sync {
            SyncPolicy::Interval(d) => d.min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    self.housekeeping();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut writes = Vec::new();
            let mut flushes = Vec::new();
            let mut close = false;
            let mut group_bytes = 0;
            let mut next = Some(first);
            while let Some(request) = next {
                match request {
                    Request::Write { batch, reply } => {
                        group_bytes += batch.size_bytes();
                        writes.push((*batch, reply));
                    }
                    Request::Flush { reply } => flushes.push(reply),
                    Request::StartMeter {
                        tenant,
                        meter,
                        reply,
                    } => {
                        // Writes queued before it are committed first, so they count.
                        self.write_group(std::mem::take(&mut writes));
                        let _ = reply.send(self.start_meter(&tenant, meter));
                    }
                    Request::StopMeter { tenant, id, reply } => {
                        self.write_group(std::mem::take(&mut writes));
                        self.meters.remove(&tenant, id);
                        self.shared.store.remove_meter(&tenant, id);
                        let _ = reply.send(());
                    }
                    Request::Close => close = true,
                }
                next = if group_bytes < MAX_GROUP_BYTES {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !writes.is_empty() {
                self.write_group(writes);
            }
            if !flushes.is_empty() {
                self.freeze(flushes);
            }
            self.housekeeping();
            if close {
                if let Err(e) = self.sync() {
                    tracing::error!(shard = self.shared.id, error = %e, "final WAL sync failed");
                }
                self.shared.stopping.store(true, Ordering::SeqCst);
                let _ = self.flush_tx.send(Job::Stop);
                break;
            }
        }
    }

    /// Work that is due by time or size: an interval fsync, freezing a full or old buffer,
    /// dropping minute rollup buckets past the window.
    fn housekeeping(&mut self) {
        self.shared
            .store
            .evict_minutes(self.shared.opts.clock.now());
        if let SyncPolicy::Interval(d) = self.shared.opts.sync
            && self.unsynced
            && self.last_sync.elapsed() >= d
            && let Err(e) = self.sync()
        {
            tracing::error!(shard = self.shared.id, error = %e, "interval WAL sync failed");
        }
        let (bytes, first_write) = {
            let view = self.shared.view();
            let mt = view.active.read().unwrap_or_else(|e| e.into_inner());
            (mt.bytes(), mt.first_write())
        };
        let full = bytes >= self.shared.opts.max_buffer_bytes;
        let old = first_write.is_some_and(|t| t.elapsed() >= self.shared.opts.max_buffer_age);
        if (full || old) && !self.shared.flush_state().in_progress {
            self.freeze(Vec::new());
        }
        self.dedup
            .maintain(&self.shared.view(), self.shared.opts.clock.now());
        self.shared
            .stats
            .dedup_index_bytes
            .store(self.dedup.memory_bytes() as u64, Ordering::Relaxed);
    }

    /// For every event of the group, in order: `None` without an event id, else its index
    /// key and filter hash and whether the shard stores that key already. Buffers are read
    /// only for keys whose hash is a buffered key's, segments only for keys the filter cannot
    /// rule out that the buffers do not hold, once per tenant for the whole group.
    fn check_ids(&mut self, writes: &[(WriteBatch, WriteReply)]) -> Vec<Vec<Option<IdCheck>>> {
        let mut buffered: HashMap<&str, IdSet<'_>> = HashMap::new();
        let mut maybe: HashMap<&str, IdSet<'_>> = HashMap::new();
        // The group's hashes first, then its probes in a loop of their own: a probe misses
        // the cache (the filter of 100M ids is 300-600 MB), and only a loop of nothing but
        // probes lets the processor wait for many of them at once.
        let hashes: Vec<u64> = writes
            .iter()
            .flat_map(|(batch, _)| batch.iter())
            .filter_map(|event| Some(dedup::hash(event.tenant, IdKey::of(event.event_id?))))
            .collect();
        let probes: Vec<Probe> = hashes.iter().map(|&h| self.dedup.probe(h)).collect();
        let mut probed = hashes.into_iter().zip(probes);
        let mut checks: Vec<Vec<Option<IdCheck>>> = writes
            .iter()
            .map(|(batch, _)| {
                batch
                    .iter()
                    .map(|event| {
                        let id = event.event_id?;
                        let (hash, probe) = probed.next()?;
                        let to_confirm = match probe {
                            Probe::Buffered => Some(&mut buffered),
                            Probe::Maybe => Some(&mut maybe),
                            Probe::Absent => None,
                        };
                        if let Some(ids) = to_confirm {
                            ids.entry(event.tenant).or_default().insert(id);
                        }
                        Some(IdCheck {
                            hash,
                            stored: false,
                        })
                    })
                    .collect()
            })
            .collect();
        if buffered.is_empty() && maybe.is_empty() {
            return checks;
        }
        // One view for both reads: a buffer being flushed is in it or in its segments.
        let view = self.shared.view();
        let mut found: HashMap<&str, IdSet<'_>> = HashMap::new();
        for (tenant, ids) in buffered {
            let held = dedup::confirm_in_buffers(&view, tenant, &ids);
            // The others only share a buffered key's hash, which the filter holds too: they go
            // on to the segments.
            let others = ids.iter().filter(|id| !held.contains(*id)).copied();
            maybe.entry(tenant).or_default().extend(others);
            found.insert(tenant, held);
        }
        for (tenant, ids) in &maybe {
            let held = self.dedup.confirm_in_segments(&view.segments, tenant, ids);
            found.entry(tenant).or_default().extend(held);
        }
        for ((batch, _), checks) in writes.iter().zip(&mut checks) {
            for (event, check) in batch.iter().zip(checks.iter_mut()) {
                if let (Some(check), Some(id)) = (check, event.event_id)
                    && found.get(event.tenant).is_some_and(|ids| ids.contains(id))
                {
                    check.stored = true;
                }
            }
        }
        checks
    }

    fn write_group(&mut self, writes: Vec<(WriteBatch, WriteReply)>) {
        if writes.is_empty() {
            return;
        }
        // The horizon decides whether the group's events make minute or hour buckets.
        self.shared
            .store
            .evict_minutes(self.shared.opts.clock.now());
        if let Some(err) = self.shared.poisoned() {
            return reply_all(writes.into_iter().map(|(_, r)| r), &err);
        }
        if let Err(err) = self.make_room() {
            return reply_all(writes.into_iter().map(|(_, r)| r), &err);
        }
        self.frames.clear();
        let checks = self.check_ids(&writes);
        let mut recorded = Vec::new();
        // Ids of the group's stored events: they enter the index only once the group's WAL
        // write has succeeded, so that a failed write leaves its retry free to store them.
        // Borrowed from the requests rather than copied into a key of their own: that cost an
        // allocation and a free per event.
        let mut claimed = ClaimedIds::default();
        let mut claimed_hashes = Vec::new();
        let mut verdicts = Vec::with_capacity(writes.len());
        for ((batch, _), checks) in writes.iter().zip(checks) {
            let mut rejected = Vec::new();
            let mut dropped = Vec::new();
            let mut duplicates = 0;
            for ((i, event), check) in batch.iter().enumerate().zip(checks) {
                let key = event.event_id.map(|id| (event.tenant, id));
                if check
                    .as_ref()
                    .is_some_and(|c| c.stored || key.is_some_and(|k| claimed.contains(&k)))
                {
                    duplicates += 1;
                    dropped.push(i);
                } else if let Err(reason) = self.schema.check_and_record(&event, &mut recorded) {
                    dropped.push(i);
                    rejected.push((i, reason));
                } else if let (Some(check), Some(key)) = (check, key) {
                    claimed_hashes.push(check.hash);
                    claimed.insert(key);
                }
            }
            verdicts.push((dropped, rejected, duplicates));
        }
        drop(claimed);
        let mut pending = Vec::with_capacity(writes.len());
        for ((batch, reply), (dropped, rejected, duplicates)) in writes.into_iter().zip(verdicts) {
            let stored = if dropped.is_empty() {
                batch
            } else {
                let mut drop = dropped.iter().copied().peekable();
                batch.select((0..batch.len()).filter(|i| drop.next_if_eq(i).is_none()))
            };
            // A request whose events all repeat earlier ones waits for the group too: the
            // events it repeats may belong to this group's WAL write, which can still fail.
            let seq = (!stored.is_empty()).then(|| {
                let seq = self.next_seq;
                self.next_seq = SeqNo(seq.0 + 1);
                self.payload.clear();
                stored.encode_into(&mut self.payload);
                wal::encode_frame(&mut self.frames, seq, &self.payload);
                seq
            });
            pending.push((seq, stored, rejected, duplicates, reply));
        }
        if !self.frames.is_empty()
            && let Err(err) = self.append_frames()
        {
            self.schema.undo(recorded);
            return reply_all(pending.into_iter().map(|p| p.4), &err);
        }
        let must_sync = match self.shared.opts.sync {
            SyncPolicy::Always => true,
            SyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            SyncPolicy::None => false,
        };
        if must_sync && let Err(err) = self.sync() {
            return reply_all(pending.into_iter().map(|p| p.4), &err);
        }
        self.dedup.insert(&claimed_hashes);
        count_events(
            pending.iter().flat_map(|p| p.1.iter()),
            &self.meters,
            &self.shared.store,
        );
        let view = self.shared.view();
        let mut written = 0;
        let mut duplicates = 0;
        {
            let mut mt = view.active.write().unwrap_or_else(|e| e.into_inner());
            for (seq, stored, _, dups, _) in &pending {
                mt.apply_batch(stored, |_| {});
                if let Some(seq) = seq {
                    mt.note_seq(*seq);
                }
                written += stored.len();
                duplicates += dups;
            }
        }
        bump(&self.shared.stats.events_written, written as u64);
        bump(&self.shared.stats.duplicate_events, duplicates as u64);
        for (_, stored, rejected, duplicates, reply) in pending {
            let _ = reply.send(Ok(ShardReceipt {
                written: stored.len(),
                rejected,
                duplicates,
            }));
        }
        if self
            .wal
            .as_ref()
            .is_some_and(|w| w.len() >= self.shared.opts.max_wal_file_bytes)
            && let Err(e) = self.roll_wal()
        {
            tracing::warn!(shard = self.shared.id, error = %e, "could not roll the WAL file");
        }
    }

    /// Writes the framed group to the WAL; opens a new file first if the last write left the
    /// current one unusable.
    fn append_frames(&mut self) -> Result<()> {
        if self.wal.is_none() {
            self.roll_wal()?;
        }
        let Some(wal) = self.wal.as_mut() else {
            return Err(Error::Closed);
        };
        match wal.write(&self.frames) {
            Ok(()) => {
                self.unsynced = true;
                bump(&self.shared.stats.wal_bytes, self.frames.len() as u64);
                Ok(())
            }
            Err(e) => {
                // The writer cut the file back when it could; either way, continue in a fresh
                // file so that a half-written frame never precedes later records.
                self.wal = None;
                Err(e)
            }
        }
    }

    /// fsyncs the WAL. A failure poisons the shard: after a failed fsync the kernel may have
    /// dropped the dirty pages, so nothing written since the last good fsync can be called
    /// durable, and retrying the fsync would falsely succeed.
    fn sync(&mut self) -> Result<()> {
        if let Some(err) = self.shared.poisoned() {
            return Err(err);
        }
        if !self.unsynced {
            return Ok(());
        }
        let Some(wal) = self.wal.as_mut() else {
            return Ok(());
        };
        match wal.sync() {
            Ok(()) => {
                self.unsynced = false;
                self.last_sync = Instant::now();
                bump(&self.shared.stats.wal_syncs, 1);
                Ok(())
            }
            Err(e) => {
                tracing::error!(shard = self.shared.id, error = %e, "WAL fsync failed; the shard is read-only until restart");
                *self
                    .shared
                    .poisoned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                Err(self.shared.poisoned().unwrap_or(e))
            }
        }
    }

    fn roll_wal(&mut self) -> Result<()> {
        if self.wal.is_some() {
            self.sync()?;
        }
        let wal = WalWriter::create(
            &*self.shared.opts.fs,
            &self.shared.paths.wal,
            self.next_wal_file,
        )?;
        self.next_wal_file += 1;
        self.wal = Some(wal);
        Ok(())
    }

    /// Starts counting a newly defined meter: waits for a running flush (so that no frozen
    /// buffer exists whose rollup file would claim the meter without counting it), counts the
    /// active buffer's events, and returns the segments the caller backfills.
    fn start_meter(&mut self, tenant: &str, meter: IdMeter) -> Result<Vec<Arc<Segment>>> {
        self.wait_for_flush()?;
        let view = self.shared.view();
        let store = &self.shared.store;
        let rollups = store.tenant(tenant);
        let req = ScanRequest {
            tenant: Some(TenantId::new(tenant)),
            ..ScanRequest::default()
        };
        let mt = view.active.read().unwrap_or_else(|e| e.into_inner());
        let mut batches = Vec::new();
        mt.scan(&req, &mut batches);
        let mut delta = Delta::default();
        {
            let cells = delta.cells_mut(tenant);
            let mut dict = rollups.dict();
            for batch in &batches {
                add_batch(
                    store.minute_horizon(),
                    cells,
                    batch.columns(),
                    std::slice::from_ref(&meter),
                    &mut dict,
                );
            }
        }
        delta.apply_to(store);
        self.meters.insert(tenant, meter);
        Ok(view.segments.clone())
    }

    /// Before writing into a full buffer: wait for a running flush (a stall), then freeze.
    /// Fails when the flush keeps failing (disk full), so that writes are refused instead of
    /// growing memory without bound.
    fn make_room(&mut self) -> Result<()> {
        let full = {
            let view = self.shared.view();
            let mt = view.active.read().unwrap_or_else(|e| e.into_inner());
            mt.bytes() >= self.shared.opts.max_buffer_bytes
        };
        if !full {
            return Ok(());
        }
        self.wait_for_flush()?;
        self.freeze(Vec::new());
        Ok(())
    }

    /// Waits until no flush is running; fails if the running one has failed.
    fn wait_for_flush(&self) -> Result<()> {
        let shared = &*self.shared;
        let mut state = shared.flush_state();
        if state.in_progress {
            bump(&shared.stats.write_stalls, 1);
        }
        while state.in_progress {
            if let Some((kind, msg)) = &state.last_error {
                return Err(Error::io(
                    "flush",
                    &shared.paths.dir,
                    io::Error::new(
                        *kind,
                        format!("the write buffer is full and flushing it fails: {msg}"),
                    ),
                ));
            }
            state = shared
                .flush_done
                .wait_timeout(state, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// Freezes the active buffer and hands it to the flusher, which answers `replies` when its
    /// segments are durable. An empty buffer is not flushed; the replies then wait only for a
    /// flush already running.
    fn freeze(&mut self, replies: Vec<oneshot::Sender<Result<()>>>) {
        let empty = self
            .shared
            .view()
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if empty {
            for reply in replies {
                let _ = self.flush_tx.send(Job::Notify(reply));
            }
            return;
        }
        if let Err(err) = self.wait_for_flush() {
            return reply_all(replies.into_iter(), &err);
        }
        // The frozen buffer's records end in the current WAL file; the next ones start a new
        // file, so that every file below it can be removed once the flush is durable.
        if let Err(err) = self.roll_wal() {
            return reply_all(replies.into_iter(), &err);
        }
        let wal_boundary = self.next_wal_file - 1;
        let mut frozen = None;
        self.shared.update_view(|v| {
            frozen = Some(v.active.clone());
            View {
                active: Arc::new(RwLock::new(Memtable::new())),
                frozen: Some(v.active.clone()),
                segments: v.segments.clone(),
            }
        });
        let Some(memtable) = frozen else { return };
        memtable
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_rollup_meters(self.meters.clone());
        self.dedup.freeze();
        self.shared.flush_state().in_progress = true;
        let job = Job::Flush {
            memtable,
            wal_boundary,
            replies,
        };
        if let Err(crossbeam_channel::SendError(Job::Flush { replies, .. })) =
            self.flush_tx.send(job)
        {
            reply_all(replies.into_iter(), &Error::Closed);
        }
    }
}

fn reply_all<T>(replies: impl Iterator<Item = oneshot::Sender<Result<T>>>, err: &Error) {
    for r in replies {
        let _ = r.send(Err(err.duplicate()));
    }
}
