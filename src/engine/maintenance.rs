//! Keeping the data directory small and lawful: compaction passes (merging small segments,
//! dropping raw events past retention, purging deleted rows), rollup retention, deletions
//! with their audit log, and the thread that runs passes in the background.

use std::ops::ControlFlow;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Engine;
use crate::RollupsOnDelete;
use crate::audit::{AuditEntry, user_digest};
use crate::error::{Error, Result};
use crate::model::{NANOS_PER_DAY, TenantId};
use crate::rollup::file::RollupFile;
use crate::scan::{ScanRequest, TagPredicate};
use crate::segment::SegmentId;
use crate::shard::compact::PlanContext;
use crate::tombstone::USER_TAG;

/// What a compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// Rewrites committed.
    pub rewrites: usize,
    /// Segments they replaced.
    pub segments_replaced: usize,
    /// Segments they wrote.
    pub segments_written: usize,
    /// Rows read from the replaced segments.
    pub rows_read: u64,
    /// Rows written (the difference was past retention or deleted).
    pub rows_written: u64,
    /// Bytes of the replaced segments.
    pub bytes_read: u64,
    /// Bytes of the new segments.
    pub bytes_written: u64,
    /// Rewrites abandoned because a deletion arrived meanwhile (redone by the next pass).
    pub stale: usize,
    /// Deletions whose rows are now physically gone.
    pub purged: usize,
    /// Rollup files rewritten (retention, deletions).
    pub rollup_files_rewritten: usize,
    /// Small rollup files merged into larger ones.
    pub rollup_files_merged: usize,
    /// The pass stopped early because its caller asked (the next pass does the rest).
    pub stopped: bool,
}

/// Where a pass is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct CompactionProgress {
    /// Rewrites done.
    pub done: usize,
    /// Rewrites planned.
    pub total: usize,
    /// Rows read so far.
    pub rows_read: u64,
}

/// A deletion's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Its number (in the audit log).
    pub id: u64,
    /// Events it hides.
    pub events: u64,
}

impl Engine {
    /// Runs one compaction pass over every shard, as fast as it can (see
    /// [`Engine::compact_with`]).
    pub fn compact(&self) -> Result<CompactionReport> {
        self.compact_with(0.0, &mut |_| ControlFlow::Continue(()))
    }

    /// Runs one compaction pass: merges small segments, drops raw events past their
    /// tenant's retention (whole segments where it can, else by rewriting), purges the rows
    /// of deletions (and then their user ids from the rollup files), and drops rollup
    /// buckets past their tenant's metrics retention. After each rewrite it sleeps `pace`
    /// times as long as the rewrite took. `progress` is called after each rewrite; when it
    /// breaks, the pass ends there (each rewrite is committed on its own, so a stopped pass
    /// loses nothing, and the next pass does the rest): a server shutting down does not wait
    /// for a whole pass, which took minutes at 100M events.
    pub fn compact_with(
        &self,
        pace: f64,
        progress: &mut dyn FnMut(&CompactionProgress) -> ControlFlow<()>,
    ) -> Result<CompactionReport> {
        let _one_at_a_time = self
            .maintenance
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.settle_deductions()?;
        let now = self.clock.now().0;
        let generation = self.tombstones.generation();
        let tombstones = self.tombstones.all();
        let retention = |t: &str| self.retention_of(t).0;
        let contexts: Vec<PlanContext<'_>> = (0..self.shards.len())
            .map(|shard| PlanContext {
                shard,
                now,
                retention: &retention,
                tombstones: &tombstones,
                policy: self.compaction,
            })
            .collect();
        let mut plans = Vec::new();
        for (shard, ctx) in self.shards.iter().zip(&contexts) {
            plans.push(shard.plan_compaction(ctx)?);
        }
        let total = plans.iter().map(Vec::len).sum();
        let mut report = CompactionReport::default();
        let mut done = 0;
        'shards: for ((shard, ctx), tasks) in self.shards.iter().zip(&contexts).zip(plans) {
            for task in tasks {
                let started = Instant::now();
                let tombs = self.tombstones.clone();
                let valid = Box::new(move || tombs.generation() == generation);
                match shard.compact(&task, ctx, valid) {
                    Ok(r) => {
                        report.rewrites += 1;
                        report.segments_replaced += r.sources.len();
                        report.segments_written += usize::from(r.output.is_some());
                        report.rows_read += r.rows_read;
                        report.rows_written += r.rows_written;
                        report.bytes_read += r.bytes_read;
                        report.bytes_written += r.output.map_or(0, |e| e.file_len);
                    }
                    Err(Error::Stale) => {
                        report.stale += 1;
                        break 'shards;
                    }
                    Err(e) => return Err(e),
                }
                done += 1;
                let asked = progress(&CompactionProgress {
                    done,
                    total,
                    rows_read: report.rows_read,
                });
                if asked.is_break() {
                    report.stopped = true;
                    return Ok(report);
                }
                if pace > 0.0 {
                    std::thread::sleep(started.elapsed().mul_f64(pace));
                }
            }
        }
        report.rollup_files_rewritten += self.expire_rollups(now)?;
        let (purged, rewritten) = self.finish_purges()?;
        report.purged = purged;
        report.rollup_files_rewritten += rewritten;
        for shard in &self.shards {
            report.rollup_files_merged += shard.consolidate_rollups()?;
        }
        Ok(report)
    }

    /// A tenant's raw-event and rollup retention.
    pub(super) fn retention_of(&self, tenant: &str) -> (Duration, Duration) {
        let r = self.retention.get(tenant);
        (r.events, r.metrics)
    }

    /// Drops rollup buckets older than their tenant's metrics retention (whole days), in
    /// memory and in the files.
    fn expire_rollups(&self, now: i64) -> Result<usize> {
        let cutoff = {
            let tenants: Vec<String> = self.rollups.tenants();
            let cutoffs: std::collections::HashMap<String, i64> = tenants
                .into_iter()
                .map(|t| {
                    let keep =
                        i64::try_from(self.retention_of(&t).1.as_nanos()).unwrap_or(i64::MAX);
                    let c = now.saturating_sub(keep).div_euclid(NANOS_PER_DAY) * NANOS_PER_DAY;
                    (t, c)
                })
                .collect();
            Arc::new(cutoffs)
        };
        // Cutoffs are whole days, and writes never bring buckets older than them (the ingest
        // window is within the raw retention): the files need reading again only when a
        // cutoff moves (once a day), a retention changes or a tenant appears.
        let mut applied = self
            .maintenance
            .rollup_cutoffs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if applied.as_ref() == Some(&cutoff) || cutoff.values().all(|&c| c <= i64::MIN / 2) {
            return Ok(0);
        }
        self.rollups
            .drop_before(&|t| cutoff.get(t).copied().unwrap_or(i64::MIN));
        let mut rewritten = 0;
        for shard in &self.shards {
            let cutoff = cutoff.clone();
            rewritten += shard.rewrite_rollups(move |f: &mut RollupFile| {
                let mut changed = false;
                for t in &mut f.tenants {
                    let c = cutoff.get(&t.tenant).copied().unwrap_or(i64::MIN);
                    let before = t.cells.len();
                    t.cells.retain(|(_, _, start, _)| *start >= c);
                    changed |= t.cells.len() != before;
                }
                f.tenants.retain(|t| !t.cells.is_empty());
                changed
            })?;
        }
        *applied = Some(cutoff);
        Ok(rewritten)
    }

    /// Takes the contributions of the deletions made with [`RollupsOnDelete::Subtract`] out
    /// of the rollups, once each (a crash between recording a deletion and its deduction
    /// leaves it to the next pass, before any rewrite purges the rows it counts).
    fn settle_deductions(&self) -> Result<()> {
        // A deletion and a compaction pass may both settle: one at a time, so that each
        // tombstone is deducted once.
        let _one_at_a_time = self
            .maintenance
            .settling
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let all = self.tombstones.all();
        for t in &all {
            if t.rollups != RollupsOnDelete::Subtract.to_string() || t.deducted {
                continue;
            }
            let shard = &self.shards[t.shard];
            match &t.user {
                Some(user) => {
                    let meters = self.meters.snapshot().meters_for(&t.tenant);
                    let earlier: Vec<_> = all
                        .iter()
                        .filter(|e| e.id < t.id && e.tenant == t.tenant)
                        .cloned()
                        .collect();
                    shard.deduct_user(&t.tenant, user, &meters, SegmentId(t.before), &earlier)?;
                }
                None => {
                    let tenant = t.tenant.clone();
                    shard.rewrite_rollups(move |f: &mut RollupFile| {
                        let before = f.tenants.len();
                        f.tenants.retain(|b| b.tenant != tenant);
                        f.tenants.len() != before
                    })?;
                    if let Some(r) = self.rollups.get(&t.tenant) {
                        r.meters().clear();
                    }
                }
            }
            self.tombstones.mark_deducted(t.id)?;
        }
        Ok(())
    }

    /// Forgets the deletions whose rows no live segment holds any more, once their user ids
    /// are replaced by digests in the rollup files (the counts stay: billing history).
    fn finish_purges(&self) -> Result<(usize, usize)> {
        let mut finished = Vec::new();
        let mut rewritten = 0;
        for t in self.tombstones.all() {
            let view = self.shards[t.shard].view();
            let req = rows_of(&t.tenant, t.user.as_deref());
            let mut left = false;
            for seg in view
                .segments
                .iter()
                .filter(|s| t.covers(t.shard, s.info().id))
            {
                if seg.count(&req)? > 0 {
                    left = true;
                    break;
                }
            }
            if left {
                continue;
            }
            let (tenant, user) = (t.tenant.clone(), t.user.clone());
            rewritten += self.shards[t.shard].rewrite_rollups(move |f: &mut RollupFile| {
                let mut changed = false;
                for b in f.tenants.iter_mut().filter(|b| b.tenant == tenant) {
                    for v in &mut b.values {
                        let hit = match &user {
                            Some(u) => v == u,
                            None => !v.starts_with(DELETED_PREFIX),
                        };
                        if hit {
                            *v = format!("{DELETED_PREFIX}{}", user_digest(v));
                            changed = true;
                        }
                    }
                }
                changed
            })?;
            self.audit.record(&AuditEntry {
                time: crate::influxql::response::rfc3339(self.clock.now().0, None),
                action: "purged",
                tenant: t.tenant.clone(),
                user_sha256: t.user.as_deref().map(user_digest),
                tombstone: t.id,
                events: None,
                rollups: t.rollups.clone(),
            })?;
            finished.push(t.id);
        }
        self.tombstones.remove(&finished)?;
        Ok((finished.len(), rewritten))
    }

    /// Deletes every stored event of `user` (tag `user`) of `tenant`: from the moment this
    /// returns no scan, query or export shows them; the next compaction pass removes them
    /// from the data files. With [`RollupsOnDelete::Keep`] rollups keep their counts
    /// (billing history); with [`RollupsOnDelete::Subtract`] the events' contributions are
    /// taken out before this returns. Either way the user's id is replaced by its digest in
    /// the rollup files once the rows are purged. Recorded in the audit log.
    pub fn delete_user(&self, tenant: &str, user: &str) -> Result<Deletion> {
        if user.is_empty() {
            return Err(Error::InvalidOptions("the user to delete is empty".into()));
        }
        self.delete(tenant, Some(user))
    }

    /// [`Engine::delete_user`] for every event of `tenant`.
    pub fn delete_tenant(&self, tenant: &str) -> Result<Deletion> {
        self.delete(tenant, None)
    }

    fn delete(&self, tenant: &str, user: Option<&str>) -> Result<Deletion> {
        if tenant.is_empty() {
            return Err(Error::InvalidOptions(
                "the tenant to delete is empty".into(),
            ));
        }
        let shard_no = self.shard_of(tenant);
        let shard = &self.shards[shard_no];
        // A compaction that read its segments before this deletion must not commit them.
        self.tombstones.invalidate();
        shard.request_flush().recv().unwrap_or(Err(Error::Closed))?;
        let before = shard.boundary()?;
        let events = self.count(&rows_of(tenant, user))?;
        let mode = if events > 0 {
            self.rollups_on_delete
        } else {
            // Nothing visible to take out (a retry of a deletion): never deduct twice.
            RollupsOnDelete::Keep
        };
        let t = self
            .tombstones
            .add(tenant, user, shard_no, before, self.clock.now().0, mode)?;
        self.audit.record(&AuditEntry {
            time: crate::influxql::response::rfc3339(t.at, None),
            action: if user.is_some() {
                "delete_user"
            } else {
                "delete_tenant"
            },
            tenant: tenant.to_owned(),
            user_sha256: user.map(user_digest),
            tombstone: t.id,
            events: Some(events),
            rollups: mode.to_string(),
        })?;
        self.settle_deductions()?;
        self.maintenance.wake();
        Ok(Deletion { id: t.id, events })
    }
}

/// How a purged user's id reads in the rollup files: this prefix and its digest.
pub const DELETED_PREFIX: &str = "deleted-sha256:";

/// The rows of `user` of `tenant` (every row of the tenant for `None`), as a scan.
fn rows_of(tenant: &str, user: Option<&str>) -> ScanRequest {
    ScanRequest {
        tenant: Some(TenantId::new(tenant)),
        predicates: user.iter().map(|u| TagPredicate::eq(USER_TAG, u)).collect(),
        columns: Some(Vec::new()),
        ..ScanRequest::default()
    }
}

/// The engine's side of background compaction: a pass at a time, and a way to wake the
/// thread early (a deletion wants its purge soon).
#[derive(Debug, Default)]
pub(super) struct Maintenance {
    running: Mutex<()>,
    settling: Mutex<()>,
    /// The rollup retention cutoffs (by tenant) the last pass applied.
    rollup_cutoffs: Mutex<Option<Arc<std::collections::HashMap<String, i64>>>>,
    wake: Arc<(Mutex<bool>, Condvar)>,
}

impl Maintenance {
    fn wake(&self) {
        let (flag, cv) = &*self.wake;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
}

/// A thread running compaction passes every `interval` (and soon after a deletion) until
/// dropped. It holds the engine only while a pass runs.
#[derive(Debug)]
pub struct Compactor {
    stop: Arc<(Mutex<bool>, Condvar)>,
    wake: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread for `engine`.
    pub fn spawn(engine: &Arc<Engine>, interval: Duration) -> Result<Compactor> {
        let weak: Weak<Engine> = Arc::downgrade(engine);
        let wake = engine.maintenance.wake.clone();
        let stop: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let (stop2, wake2) = (stop.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name("compactor".into())
            .spawn(move || {
                loop {
                    {
                        let (flag, cv) = &*wake2;
                        let woken = flag.lock().unwrap_or_else(|e| e.into_inner());
                        let (mut woken, _) = cv
                            .wait_timeout_while(woken, interval, |w| !*w)
                            .unwrap_or_else(|e| e.into_inner());
                        *woken = false;
                    }
                    if *stop2.0.lock().unwrap_or_else(|e| e.into_inner()) {
                        return;
                    }
                    let Some(engine) = weak.upgrade() else { return };
                    let pace = engine.compaction_pace;
                    let started = Instant::now();
                    // Dropping the compactor (a shutdown) ends the pass after the rewrite in
                    // progress, or after the next one when it comes during a pause.
                    let mut until_stopped = |_: &CompactionProgress| {
                        if *stop2.0.lock().unwrap_or_else(|e| e.into_inner()) {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    };
                    match engine.compact_with(pace, &mut until_stopped) {
                        Ok(r) if r.rewrites > 0 || r.purged > 0 || r.rollup_files_rewritten > 0 => {
                            tracing::info!(rewrites = r.rewrites, replaced = r.segments_replaced, rows_written = r.rows_written, purged = r.purged, took = ?started.elapsed(), "compaction pass");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "compaction pass failed; retried at the next one"),
                    }
                }
            })
            .map_err(|e| Error::io("spawn thread", std::path::PathBuf::new(), e))?;
        Ok(Compactor {
            stop,
            wake,
            thread: Some(thread),
        })
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        let (flag, cv) = &*self.wake;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
