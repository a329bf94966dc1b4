//! What events add to rollups, minute by minute: from a write's events (the shard writer and
//! WAL replay) or from rows read back column by column (backfilling a new meter, recounting).

use std::collections::HashMap;
use std::sync::Arc;

use super::store::Dict;
use super::{Acc, Granularity, MeterId, RollupStore, TenantRollups};
use crate::meters::{IdMeter, MeterSet};
use crate::model::{EventRef, FieldValueRef};
use crate::scan::{ColumnBatch, FieldValues};
use crate::usage::Contribution;

/// One tenant's minute buckets, by meter and minute start.
pub type Cells = HashMap<(MeterId, i64), Acc>;

/// Minute buckets by tenant.
#[derive(Debug, Default)]
pub struct Delta {
    tenants: HashMap<Box<str>, Cells>,
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
            self.tenants.insert(tenant.into(), Cells::new());
        }
        self.tenants.get_mut(tenant).expect("inserted above")
    }

    /// Folds `other` in.
    pub fn merge(&mut self, other: &Delta) {
        for (tenant, cells) in other.tenants() {
            merge_cells(self.cells_mut(tenant), cells);
        }
    }

    /// Merges every bucket into the store's levels, taking each tenant's bucket lock once.
    pub fn apply_to(&self, store: &RollupStore) {
        for (tenant, cells) in self.tenants() {
            let t = store.tenant(tenant);
            let mut meters = t.meters();
            for (&(meter, minute), acc) in cells {
                meters.entry(meter).or_default().add_minute(minute, acc);
            }
        }
    }

    /// Adds what `events` contribute to the meters of their tenants in `meters`; distinct
    /// values are interned in the store's tenant dictionaries.
    pub fn add_events<'a>(
        &mut self,
        events: impl Iterator<Item = EventRef<'a>>,
        meters: &MeterSet,
        store: &RollupStore,
    ) {
        let mut tenants: HashMap<&'a str, (Arc<[IdMeter]>, Arc<TenantRollups>)> = HashMap::new();
        for event in events {
            let (tenant_meters, rollups) = tenants
                .entry(event.tenant)
                .or_insert_with(|| (meters.meters_for(event.tenant), store.tenant(event.tenant)));
            let minute = Granularity::Minute.floor(event.timestamp.0);
            let cells = self.cells_mut(event.tenant);
            for (id, meter) in tenant_meters.iter() {
                let c = meter.contribution(&event);
                if matches!(c, Contribution::NoMatch | Contribution::Missing) {
                    continue;
                }
                let distinct = match c {
                    Contribution::Distinct(v) => rollups.dict().intern(v),
                    _ => 0,
                };
                cells
                    .entry((*id, minute))
                    .or_default()
                    .add(&c, event.timestamp.0, distinct);
            }
        }
    }
}

/// Folds `from` into `into`.
pub fn merge_cells(into: &mut Cells, from: &Cells) {
    for (key, acc) in from {
        into.entry(*key).or_default().merge(acc);
    }
}

/// Adds what the rows of `batch` contribute to `meters` into `cells`, interning distinct
/// values in `dict`.
pub fn add_batch(cells: &mut Cells, batch: &ColumnBatch, meters: &[IdMeter], dict: &mut Dict) {
    for row in 0..batch.len() {
        let t = batch.timestamps[row];
        let tag = |key: &str| batch.tag(key).and_then(|c| c.value(row));
        let field = |key: &str| batch.field(key).and_then(|c| field_at(&c.values, row));
        for (id, meter) in meters {
            let c = meter.contribution_of(&batch.measurement, tag, field);
            if matches!(c, Contribution::NoMatch | Contribution::Missing) {
                continue;
            }
            let distinct = match c {
                Contribution::Distinct(v) => dict.intern(v),
                _ => 0,
            };
            cells
                .entry((*id, Granularity::Minute.floor(t)))
                .or_default()
                .add(&c, t, distinct);
        }
    }
}

/// The aggregate of every row of `batches` for one meter: a brute-force recount, the
/// reference rollups are checked against and the source of sub-minute range edges.
pub fn recount(batches: &[ColumnBatch], meter: &IdMeter, dict: &mut Dict) -> Acc {
    let mut cells = Cells::new();
    for batch in batches {
        add_batch(&mut cells, batch, std::slice::from_ref(meter), dict);
    }
    let mut total = Acc::default();
    for acc in cells.values() {
        total.merge(acc);
    }
    total
}

fn field_at(values: &FieldValues, row: usize) -> Option<FieldValueRef<'_>> {
    match values {
        FieldValues::F64(v) => v.get(row).copied().flatten().map(FieldValueRef::F64),
        FieldValues::I64(v) => v.get(row).copied().flatten().map(FieldValueRef::I64),
        FieldValues::U64(v) => v.get(row).copied().flatten().map(FieldValueRef::U64),
        FieldValues::Bool(v) => v.get(row).copied().flatten().map(FieldValueRef::Bool),
        FieldValues::Str(v) => v.get(row).map(FieldValueRef::Str),
    }
}
