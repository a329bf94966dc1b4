//! What events add to rollups, minute by minute: from a write's events (the shard writer:
//! one event at a time, since the store must be current when the write is acknowledged) or
//! from rows read back column by column (a flush's rollup file, replayed WAL records,
//! backfilling a new meter, recounting).

use std::collections::HashMap;
use std::sync::Arc;

use super::store::Dict;
use super::{Acc, Granularity, MeterId, RollupStore, TenantRollups};
use crate::meters::{IdMeter, MeterSet};
use crate::model::EventRef;
use crate::scan::{ColumnBatch, Columns, NO_TAG, TagColumn};
use crate::usage::meter::numeric;
use crate::usage::{Aggregation, Contribution, Meter};

/// Hash maps keyed by names and times from the network: foldhash is several times faster
/// than the default hasher and randomly seeded.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One tenant's buckets by meter, size and start: minute buckets, or hour buckets for
/// events older than the store's minute horizon (which only hour and day buckets keep).
pub type Cells = Map<(MeterId, Granularity, i64), Acc>;

/// Minute buckets by tenant.
#[derive(Debug, Default)]
pub struct Delta {
    tenants: Map<Box<str>, Cells>,
}

impl Delta {
    /// True when no event contributed.
    pub fn is_empty(&self) -> bool {
        self.tenants.values().all(HashMap::is_empty)
    }

    /// The buckets of every tenant.
    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Cells)> {
        self.tenants.iter().map(|(t, c)| (&**t, c))
    }

    /// The buckets of `tenant`, created empty if needed.
    pub fn cells_mut(&mut self, tenant: &str) -> &mut Cells {
        if !self.tenants.contains_key(tenant) {
            self.tenants.insert(tenant.into(), Cells::default());
        }
        self.tenants.get_mut(tenant).expect("inserted above")
    }

    /// Merges every bucket into the store's levels, taking each tenant's bucket lock once.
    pub fn apply_to(&self, store: &RollupStore) {
        for (tenant, cells) in self.tenants() {
            let t = store.tenant(tenant);
            let horizon = store.minute_horizon();
            let mut meters = t.meters();
            for (&(meter, unit, start), acc) in cells {
                meters
                    .entry(meter)
                    .or_default()
                    .add(unit, start, acc, horizon);
            }
        }
    }

    /// Takes every bucket back out of the store's levels (see [`crate::rollup::store::Shape::deduct`]).
    pub fn deduct_from(&self, store: &RollupStore) {
        for (tenant, cells) in self.tenants() {
            let t = store.tenant(tenant);
            let horizon = store.minute_horizon();
            let mut meters = t.meters();
            for (&(meter, unit, start), acc) in cells {
                if let Some(levels) = meters.get_mut(&meter) {
                    levels.deduct(unit, start, acc, horizon);
                }
            }
        }
    }

    /// Adds what the rows of `batches` contribute to the meters each batch's tenant has in
    /// `meters`; distinct values are interned in the store's tenant dictionaries.
    pub fn add_batches(&mut self, batches: &[ColumnBatch], meters: &MeterSet, store: &RollupStore) {
        for batch in batches {
            self.add_columns(batch.tenant.as_str(), batch.columns(), meters, store);
        }
    }

    /// Adds what the rows of one table of `tenant` contribute to its meters in `meters`.
    pub fn add_columns(
        &mut self,
        tenant: &str,
        columns: Columns<'_>,
        meters: &MeterSet,
        store: &RollupStore,
    ) {
        let rollups = store.tenant(tenant);
        let mut dict = rollups.dict();
        add_batch(
            store.minute_horizon(),
            self.cells_mut(tenant),
            columns,
            &meters.meters_for(tenant),
            &mut dict,
        );
    }
}

/// Counts what `events` contribute to the meters of their tenants in `meters` straight into
/// the store: the shard writer's path, so that usage is current when a write is acknowledged.
/// Events are first summed per tenant, meter and minute (a batch holds several events per
/// minute), then each tenant's bucket lock is taken once.
pub fn count_events<'a>(
    events: impl Iterator<Item = EventRef<'a>>,
    meters: &MeterSet,
    store: &RollupStore,
) {
    struct Tenant {
        meters: Arc<[IdMeter]>,
        rollups: Arc<TenantRollups>,
        cells: Cells,
    }
    let mut tenants: Map<&'a str, Tenant> = Map::default();
    // Events older than the minute horizon only reach hour and day buckets: summing them per
    // hour rather than per minute makes far fewer buckets to merge (a backlog or a replayed
    // file is mostly such events).
    let horizon = store.minute_horizon();
    for event in events {
        let t = tenants.entry(event.tenant).or_insert_with(|| Tenant {
            meters: meters.meters_for(event.tenant),
            rollups: store.tenant(event.tenant),
            cells: Cells::default(),
        });
        for (id, meter) in t.meters.iter() {
            let c = meter.contribution(&event);
            if matches!(c, Contribution::NoMatch | Contribution::Missing) {
                continue;
            }
            let distinct = match c {
                Contribution::Distinct(v) => t.rollups.dict().intern(v),
                _ => 0,
            };
            let t_ns = event.timestamp.0;
            t.cells
                .entry(cell_key(*id, t_ns, horizon))
                .or_default()
                .add(&c, t_ns, distinct);
        }
    }
    for t in tenants.into_values() {
        let mut levels = t.rollups.meters();
        for ((meter, unit, start), acc) in &t.cells {
            levels
                .entry(*meter)
                .or_default()
                .add(*unit, *start, acc, horizon);
        }
    }
}

/// Adds what the rows of `batch` contribute to `meters` into `cells`, interning distinct
/// values in `dict`. Column by column: each meter's measurement, filter values and columns are
/// resolved once per batch, so a row costs a few integer comparisons. Counts exactly what
/// [`Meter::contribution`] counts event by event.
///
/// Rows at or after `horizon` go to minute buckets, older ones to hour buckets (`i64::MIN`:
/// all minutes; `i64::MAX`: all hours).
pub fn add_batch(
    horizon: i64,
    cells: &mut Cells,
    batch: Columns<'_>,
    meters: &[IdMeter],
    dict: &mut Dict,
) {
    for (id, meter) in meters {
        if meter
            .measurement
            .as_ref()
            .is_some_and(|m| *m != batch.measurement)
        {
            continue;
        }
        let Some(filters) = resolve_filters(meter, batch) else {
            continue;
        };
        let rows =
            (0..batch.len()).filter(|&row| filters.iter().all(|(col, want)| col.ids[row] == *want));
        let ts = &batch.timestamps;
        match meter.aggregation {
            Aggregation::Count => {
                for row in rows {
                    bucket(cells, *id, ts[row], horizon).count += 1;
                }
            }
            Aggregation::UniqueCount => {
                let Some(col) = meter.tag.as_deref().and_then(|k| batch.tag(k)) else {
                    continue;
                };
                let ids: Vec<u32> = col.dict.iter().map(|v| dict.intern(v)).collect();
                for row in rows {
                    if let Some(&value) = ids.get(col.ids[row] as usize) {
                        bucket(cells, *id, ts[row], horizon).add_distinct(value);
                    }
                }
            }
            Aggregation::Sum
            | Aggregation::Min
            | Aggregation::Max
            | Aggregation::Avg
            | Aggregation::Latest => {
                let Some(col) = meter.field.as_deref().and_then(|k| batch.field(k)) else {
                    continue;
                };
                for row in rows {
                    if let Some(v) = col.value(row).and_then(numeric) {
                        bucket(cells, *id, ts[row], horizon).add_value(ts[row], v);
                    }
                }
            }
        }
    }
}

fn bucket(cells: &mut Cells, meter: MeterId, t: i64, horizon: i64) -> &mut Acc {
    cells.entry(cell_key(meter, t, horizon)).or_default()
}

/// The bucket of an event at `t`: its minute, or its hour when older than `horizon`.
fn cell_key(meter: MeterId, t: i64, horizon: i64) -> (MeterId, Granularity, i64) {
    let unit = if t >= horizon {
        Granularity::Minute
    } else {
        Granularity::Hour
    };
    (meter, unit, unit.floor(t))
}

/// Each filter as (tag column, dictionary index of the wanted value); `None` when no row of
/// the batch can match (a filter tag or value the batch does not have).
fn resolve_filters<'b>(meter: &Meter, batch: Columns<'b>) -> Option<Vec<(&'b TagColumn, u32)>> {
    meter
        .filter
        .iter()
        .map(|(key, value)| {
            let col = batch.tag(key)?;
            let index = col.dict.iter().position(|v| v == value)?;
            let index = u32::try_from(index).ok().filter(|&i| i != NO_TAG)?;
            Some((col, index))
        })
        .collect()
}

/// The aggregate of every row of `batches` for one meter: a brute-force recount, the
/// reference rollups are checked against and the source of sub-minute range edges.
pub fn recount(batches: &[ColumnBatch], meter: &IdMeter, dict: &mut Dict) -> Acc {
    let mut cells = Cells::default();
    for batch in batches {
        add_batch(
            i64::MAX,
            &mut cells,
            batch.columns(),
            std::slice::from_ref(meter),
            dict,
        );
    }
    let mut total = Acc::default();
    for acc in cells.values() {
        total.merge(acc);
    }
    total
}
