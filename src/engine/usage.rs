//! The engine's usage API: meters (built-in and defined per tenant) and usage read from
//! rollups, exact to the nanosecond at range edges.

use std::ops::Range;

use super::Engine;
use crate::error::{Error, Result};
use crate::meters::IdMeter;
use crate::model::{TenantId, limits};
use crate::rollup::delta::{Cells, add_batch, recount};
use crate::rollup::store::{Dict, decompose};
use crate::rollup::{Acc, Granularity, Usage};
use crate::scan::{ColumnBatch, ScanRequest};
use crate::usage::Meter;

/// Most buckets one [`Engine::usage_series`] answers.
pub const MAX_SERIES_BUCKETS: i64 = 100_000;

impl Engine {
    /// The meters of `tenant`: the built-in ones, then its defined ones in creation order.
    /// Tenants exist implicitly: one that never wrote has the built-in meters.
    pub fn meters(&self, tenant: &str) -> Vec<Meter> {
        self.meters
            .meters_for(tenant)
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The meter `name` of `tenant`.
    pub fn meter(&self, tenant: &str, name: &str) -> Option<Meter> {
        self.meters.get(tenant, name).map(|(_, m)| m)
    }

    /// Defines a meter for `tenant` and backfills its rollups from the events already stored;
    /// returns once usage of the meter is exact. Events written meanwhile count once.
    ///
    /// # Errors
    /// [`Error::InvalidMeter`] for a definition that does not validate or an invalid tenant,
    /// [`Error::MeterExists`] for a name the tenant already uses, I/O errors. After an I/O
    /// error while persisting the backfill the meter is not defined; defining it again is
    /// safe.
    pub fn define_meter(&self, tenant: &str, meter: Meter) -> Result<()> {
        check_tenant(tenant)?;
        let _admin = self.meter_admin.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.meters.reserve(tenant, &meter)?;
        let shard = &self.shards[self.shard_of(tenant)];
        let id_meter: IdMeter = (id, meter.clone());
        let segments = shard.start_meter(tenant, id_meter.clone())?;
        let started = std::time::Instant::now();
        if let Err(e) = shard
            .backfill(tenant, id_meter, &segments)
            .and_then(|()| self.meters.define(tenant, id, meter.clone()))
        {
            // Not defined: stop counting it, so that a failed definition leaves nothing behind.
            let _ = shard.stop_meter(tenant, id);
            return Err(e);
        }
        tracing::info!(tenant, meter = %meter.name, segments = segments.len(), took = ?started.elapsed(), "defined a meter");
        Ok(())
    }

    /// Deletes `tenant`'s defined meter `name` and its rollups.
    ///
    /// # Errors
    /// [`Error::UnknownMeter`] when there is none, [`Error::InvalidMeter`] for a built-in
    /// meter, I/O errors.
    pub fn delete_meter(&self, tenant: &str, name: &str) -> Result<()> {
        let _admin = self.meter_admin.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.meters.remove(tenant, name)?;
        self.shards[self.shard_of(tenant)].stop_meter(tenant, id)
    }

    /// Usage of `tenant`'s meter over `[start, end)` (ns). Whole minutes come from rollups;
    /// the parts of a range that do not fall on minute boundaries are counted from raw events,
    /// so any range is exact.
    ///
    /// # Errors
    /// [`Error::UnknownMeter`]; errors reading raw events.
    pub fn usage(&self, tenant: &str, meter: &str, range: Range<i64>) -> Result<Usage> {
        let id_meter = self.known_meter(tenant, meter)?;
        Ok(self.usage_acc(tenant, &id_meter, range)?.usage())
    }

    /// Usage of `tenant`'s meter per bucket of `granularity`: one entry (bucket start,
    /// usage) per bucket overlapping `[start, end)`, empty buckets included; buckets are whole
    /// (the first may start before `start`, the last end after `end`).
    ///
    /// # Errors
    /// [`Error::UnknownMeter`]; [`Error::InvalidScan`] for more than
    /// [`MAX_SERIES_BUCKETS`] buckets or an empty range.
    pub fn usage_series(
        &self,
        tenant: &str,
        meter: &str,
        range: Range<i64>,
        granularity: Granularity,
    ) -> Result<Vec<(i64, Usage)>> {
        let id_meter = self.known_meter(tenant, meter)?;
        let id = id_meter.0;
        let (first, end) = (granularity.floor(range.start), granularity.ceil(range.end));
        if range.start >= range.end {
            return Err(Error::InvalidScan(format!(
                "empty time range: start {} is not before end {}",
                range.start, range.end
            )));
        }
        let n = (end - first) / granularity.nanos();
        if n > MAX_SERIES_BUCKETS {
            return Err(Error::InvalidScan(format!(
                "{n} {granularity} buckets is more than the {MAX_SERIES_BUCKETS} one answer may hold; use a coarser granularity or a shorter range"
            )));
        }
        let mut out: Vec<(i64, Usage)> = (0..n)
            .map(|i| (first + i * granularity.nanos(), Usage::default()))
            .collect();
        let rollups = self.rollups.get(tenant);
        if let Some(t) = &rollups
            && let Some(levels) = t.meters().get(&id)
        {
            for (start, acc) in levels.buckets(granularity, first..end) {
                let i = ((start - first) / granularity.nanos()) as usize;
                if let Some(slot) = out.get_mut(i) {
                    slot.1 = acc.usage();
                }
            }
        }
        // Minute buckets older than the horizon are no longer in memory: recount them.
        let horizon = self.rollups.minute_horizon();
        if granularity == Granularity::Minute && first < horizon {
            let batches = self.raw_rows(tenant, &id_meter.1, first..end.min(horizon))?;
            let mut cells = Cells::default();
            match &rollups {
                Some(t) => add_all(&mut cells, &batches, &id_meter, &mut t.dict()),
                None => add_all(&mut cells, &batches, &id_meter, &mut Dict::default()),
            }
            for ((_, _, minute), acc) in cells {
                let i = ((minute - first) / granularity.nanos()) as usize;
                if let Some(slot) = out.get_mut(i) {
                    slot.1 = acc.usage();
                }
            }
        }
        Ok(out)
    }

    /// Rollup buckets held in memory and their approximate bytes.
    pub fn rollup_memory(&self) -> (usize, usize) {
        self.rollups.footprint()
    }

    fn known_meter(&self, tenant: &str, meter: &str) -> Result<IdMeter> {
        self.meters
            .get(tenant, meter)
            .ok_or_else(|| Error::UnknownMeter {
                tenant: tenant.to_owned(),
                meter: meter.to_owned(),
            })
    }

    fn usage_acc(&self, tenant: &str, meter: &IdMeter, range: Range<i64>) -> Result<Acc> {
        let mut acc = Acc::default();
        if range.start >= range.end {
            return Ok(acc);
        }
        // Whole buckets from rollups; raw events for what they cannot answer exactly: the
        // parts of the range off minute boundaries, and minutes older than the minute horizon
        // that are not inside a whole hour.
        let minute = Granularity::Minute;
        let (a, b) = (minute.ceil(range.start), minute.floor(range.end));
        let mut raw = Vec::new();
        let mut pieces = Vec::new();
        if a < b {
            raw.extend([range.start..a, b..range.end]);
            let horizon = self.rollups.minute_horizon();
            for (g, piece) in decompose(a, b) {
                if g == Granularity::Minute && piece.start < horizon {
                    raw.push(piece.start..piece.end.min(horizon));
                    if piece.end > horizon {
                        pieces.push((g, horizon..piece.end));
                    }
                } else {
                    pieces.push((g, piece));
                }
            }
        } else {
            raw.push(range);
        }
        let rollups = self.rollups.get(tenant);
        if let Some(t) = &rollups
            && let Some(levels) = t.meters().get(&meter.0)
        {
            levels.sum_pieces(&pieces, &mut acc);
        }
        for piece in raw.into_iter().filter(|r| r.start < r.end) {
            let batches = self.raw_rows(tenant, &meter.1, piece)?;
            if batches.is_empty() {
                continue;
            }
            // Distinct values must be numbered like the rollups' to be merged with them.
            let part = match &rollups {
                Some(t) => recount(&batches, meter, &mut t.dict()),
                None => recount(&batches, meter, &mut Dict::default()),
            };
            acc.merge(&part);
        }
        Ok(acc)
    }

    /// The tenant's rows a meter may count in `range`.
    fn raw_rows(&self, tenant: &str, meter: &Meter, range: Range<i64>) -> Result<Vec<ColumnBatch>> {
        self.scan(&ScanRequest {
            tenant: Some(TenantId::new(tenant)),
            measurement: meter.measurement.clone(),
            time: Some(range),
            ..ScanRequest::default()
        })
    }
}

fn add_all(cells: &mut Cells, batches: &[ColumnBatch], meter: &IdMeter, dict: &mut Dict) {
    for batch in batches {
        add_batch(
            i64::MIN,
            cells,
            batch.columns(),
            std::slice::from_ref(meter),
            dict,
        );
    }
}

fn check_tenant(tenant: &str) -> Result<()> {
    if tenant.is_empty() || tenant.len() > limits::MAX_TENANT_LEN {
        return Err(Error::InvalidMeter(
            crate::usage::MeterError::InvalidTenant {
                tenant: crate::usage::meter::clip(tenant),
            },
        ));
    }
    Ok(())
}
