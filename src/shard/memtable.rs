//! A shard's in-memory columnar buffer: the events acknowledged since the last flush, grouped
//! by day, tenant and measurement, each table stored column by column with dictionary-encoded
//! tags. Read by scans, turned into segments by a flush.
//!
//! **Invariant:** holds only events whose WAL record is written (and synced, when the sync
//! policy says so); the writer applies a group only after its WAL write succeeded.

use std::collections::{BTreeMap, HashMap};

/// Hash maps keyed by names from the network: foldhash is several times faster than the
/// default SipHash on short keys and still seeds randomly per map.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::time::Instant;

use compact_str::CompactString;

use super::event_ids::IdColumn;
use crate::catalog::{Catalog, CatalogRequest};
use crate::meters::MeterSet;
use crate::model::{Day, EventRef, FieldValueRef, SeqNo, TenantId, WriteBatch};
use crate::scan::{
    ColumnBatch, Columns, FieldColumn, FieldValues, NO_TAG, PresenceColumn, ScanRequest, StrColumn,
    TagColumn, TagOp,
};
use crate::segment::{ID_TEXT_MAX, IdKey};

/// Events of one shard not yet in a segment.
#[derive(Debug, Default)]
pub struct Memtable {
    days: BTreeMap<Day, Map<TenantId, Map<String, TableBuf>>>,
    bytes: usize,
    n_events: usize,
    seq_min: Option<SeqNo>,
    seq_max: Option<SeqNo>,
    first_write: Option<Instant>,
    /// The meters the flush's rollup file counts: those the writer maintained when it froze
    /// the buffer.
    rollup_meters: MeterSet,
}

/// One tenant's rows of one measurement on one day, in arrival order. The tag and field
/// columns have the shape of a scan's, so that counting the buffer into rollups reads them in
/// place ([`Memtable::for_each_table`]).
#[derive(Debug, Default)]
struct TableBuf {
    timestamps: Vec<i64>,
    tags: Vec<TagColumn>,
    /// Per tag column, its values to their index in its dictionary. Values of up to 24 bytes
    /// (user ids, endpoints, status codes) are stored in the table itself: a lookup that had
    /// to follow a pointer to each candidate's bytes was the largest single cost of applying
    /// events.
    lookups: Vec<Map<CompactString, u32>>,
    fields: Vec<FieldColumn>,
    event_ids: IdColumn,
    /// Whether some row has an event id (answers the catalog without reading the column).
    has_event_ids: bool,
}

impl Memtable {
    /// An empty buffer.
    pub fn new() -> Memtable {
        Memtable::default()
    }

    /// Calls `f(tenant, event_id)` for every event id in the buffer (of one tenant, if given).
    pub(crate) fn for_each_event_id(&self, only: Option<&str>, mut f: impl FnMut(&str, IdKey<'_>)) {
        for tenants in self.days.values() {
            for (tenant, tables) in tenants {
                if only.is_some_and(|t| t != tenant.as_str()) {
                    continue;
                }
                for table in tables.values().filter(|t| t.has_event_ids) {
                    for id in table.event_ids.iter().flatten() {
                        f(tenant.as_str(), id);
                    }
                }
            }
        }
    }

    /// The meters the flush of this buffer counts into its rollup file.
    pub fn rollup_meters(&self) -> &MeterSet {
        &self.rollup_meters
    }

    /// Records which meters the flush of this buffer counts.
    pub fn set_rollup_meters(&mut self, meters: MeterSet) {
        self.rollup_meters = meters;
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.n_events
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.n_events == 0
    }

    /// WAL sequence numbers of the records applied: (lowest, highest).
    pub fn seq_range(&self) -> Option<(SeqNo, SeqNo)> {
        Some((self.seq_min?, self.seq_max?))
    }

    /// When the first event was applied.
    pub fn first_write(&self) -> Option<Instant> {
        self.first_write
    }

    /// Notes that the record `seq` was applied (its events through [`Memtable::apply`]).
    pub fn note_seq(&mut self, seq: SeqNo) {
        self.seq_min = Some(self.seq_min.map_or(seq, |s| s.min(seq)));
        self.seq_max = Some(self.seq_max.map_or(seq, |s| s.max(seq)));
        self.first_write.get_or_insert_with(Instant::now);
    }

    /// Adds the events of `batch`, one table (day, tenant, measurement) after the other, each
    /// table's events in their order in the batch. `admit` sees each table's run of events
    /// first and may remove some (the replay's schema check, whose scope is the table, looks
    /// the table up once per run). Their field types must agree with the buffer's (the writer
    /// checks the schema first); a value of another type is dropped and logged rather than
    /// panicking.
    ///
    /// Table by table because a batch mixes hundreds of tables: event by event, each event
    /// looked its table up again and found the table's columns and dictionaries cold.
    pub fn apply_batch<'b>(
        &mut self,
        batch: &'b WriteBatch,
        admit: impl FnMut(&mut Vec<EventRef<'b>>),
    ) {
        self.apply_batch_of(batch, |_| true, admit);
    }

    /// [`Memtable::apply_batch`] for the events of the tenants `tenants` accepts only.
    pub fn apply_batch_of<'b>(
        &mut self,
        batch: &'b WriteBatch,
        tenants: impl Fn(&str) -> bool,
        mut admit: impl FnMut(&mut Vec<EventRef<'b>>),
    ) {
        let (order, starts) = by_table(batch, tenants);
        let mut events = Vec::new();
        for rows in starts.windows(2) {
            events.clear();
            events.extend(
                order[rows[0]..rows[1]]
                    .iter()
                    .filter_map(|&i| batch.event(i as usize)),
            );
            admit(&mut events);
            let Some(first) = events.first() else {
                continue;
            };
            let tenants = self.days.entry(first.timestamp.day()).or_default();
            let tables = match tenants.get_mut(first.tenant) {
                Some(t) => t,
                None => tenants.entry(TenantId::new(first.tenant)).or_default(),
            };
            let table = match tables.get_mut(first.measurement) {
                Some(t) => t,
                None => {
                    self.bytes += first.measurement.len() + 64;
                    tables.entry(first.measurement.to_owned()).or_default()
                }
            };
            for event in &events {
                self.bytes += table.push(event);
                self.n_events += 1;
            }
        }
    }

    /// Moves the events of `other` (a buffer filled beside this one, with the same meters)
    /// into this one: the tables of tenants this buffer lacks move whole; a table both hold
    /// gets `other`'s rows appended.
    pub fn absorb(&mut self, other: Memtable) {
        self.n_events += other.n_events;
        self.bytes += other.bytes;
        for seq in [other.seq_min, other.seq_max].into_iter().flatten() {
            self.note_seq(seq);
        }
        self.first_write = match (self.first_write, other.first_write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (day, tenants) in other.days {
            let mine = self.days.entry(day).or_default();
            for (tenant, tables) in tenants {
                let Some(my_tables) = mine.get_mut(&tenant) else {
                    mine.insert(tenant, tables);
                    continue;
                };
                for (measurement, table) in tables {
                    match my_tables.get_mut(&measurement) {
                        Some(t) => t.append(table),
                        None => {
                            my_tables.insert(measurement, table);
                        }
                    }
                }
            }
        }
    }

    /// Appends the rows matching `req`, one batch per table, rows in time order.
    pub fn scan(&self, req: &ScanRequest, out: &mut Vec<ColumnBatch>) {
        self.for_each_match(req, |tenant, measurement, table, rows| {
            out.push(table.select(tenant, measurement, rows, Some(req)));
        });
    }

    /// Counts the rows matching `req`.
    pub fn count(&self, req: &ScanRequest) -> u64 {
        let mut n = 0;
        self.for_each_match(req, |_, _, _, rows| n += rows.len() as u64);
        n
    }

    fn for_each_match(
        &self,
        req: &ScanRequest,
        mut f: impl FnMut(&TenantId, &str, &TableBuf, Vec<u32>),
    ) {
        for (day, tenants) in &self.days {
            if let Some(range) = &req.time
                && (day.end() <= range.start || day.start() >= range.end)
            {
                continue;
            }
            let tenant_iter: Box<dyn Iterator<Item = (&TenantId, &Map<String, TableBuf>)>> =
                match &req.tenant {
                    Some(t) => Box::new(tenants.get_key_value(t.as_str()).into_iter()),
                    None => Box::new(tenants.iter()),
                };
            for (tenant, tables) in tenant_iter {
                let table_iter: Box<dyn Iterator<Item = (&String, &TableBuf)>> =
                    match &req.measurement {
                        Some(m) => Box::new(tables.get_key_value(m.as_str()).into_iter()),
                        None => Box::new(tables.iter()),
                    };
                for (measurement, table) in table_iter {
                    let rows = table.matching_rows(req);
                    if !rows.is_empty() {
                        f(tenant, measurement, table, rows);
                    }
                }
            }
        }
    }

    /// Adds what the buffer holds to `catalog`: tables, tag keys (and the requested values
    /// from the tables' dictionaries), fields and event ids. Reads no rows.
    pub fn catalog(&self, req: &CatalogRequest, catalog: &mut Catalog) {
        for tenants in self.days.values() {
            for (tenant, tables) in tenants {
                for (measurement, table) in tables {
                    let Some(info) = catalog.table(req, tenant, measurement) else {
                        continue;
                    };
                    for tag in &table.tags {
                        let values = req.wants_values(&tag.key).then_some(&tag.dict);
                        info.add_tag(&tag.key, values.into_iter().flatten().map(String::as_str));
                    }
                    for field in &table.fields {
                        info.add_field(&field.key, field.values.field_type());
                    }
                    if table.has_event_ids {
                        info.add_event_ids();
                    }
                }
            }
        }
    }

    /// The days with events, ascending.
    pub fn days(&self) -> impl Iterator<Item = crate::model::Day> + '_ {
        self.days.keys().copied()
    }

    /// Every table of every day: days ascending, tenants ascending, measurements ascending,
    /// rows in time order. Each table is copied out of the buffer only when the iterator
    /// reaches it: a flush encodes one table at a time instead of holding a copy of a day.
    pub fn tables_of_each_day(
        &self,
    ) -> impl Iterator<Item = (Day, impl Iterator<Item = ColumnBatch> + '_)> + '_ {
        self.days.iter().map(|(day, tenants)| {
            let mut tables: Vec<_> = tenants
                .iter()
                .flat_map(|(tenant, tables)| tables.iter().map(move |(m, t)| (tenant, m, t)))
                .collect();
            tables.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            let batches = tables.into_iter().map(|(tenant, measurement, table)| {
                table.select(tenant, measurement, table.time_order(), None)
            });
            (*day, batches)
        })
    }

    /// Calls `f` with every table's tenant and columns (not its event ids), in no particular
    /// order, rows in arrival order: what counting the buffer into the rollups reads, in place.
    pub fn for_each_table(&self, mut f: impl FnMut(&TenantId, Columns<'_>)) {
        for tenants in self.days.values() {
            for (tenant, tables) in tenants {
                for (measurement, t) in tables {
                    f(
                        tenant,
                        Columns {
                            measurement,
                            timestamps: &t.timestamps,
                            tags: &t.tags,
                            fields: &t.fields,
                        },
                    );
                }
            }
        }
    }
}

impl TableBuf {
    /// Appends one event; returns the approximate bytes it added.
    fn push(&mut self, event: &EventRef<'_>) -> usize {
        let row = self.timestamps.len();
        self.timestamps.push(event.timestamp.0);
        let mut bytes = 8 + 4 * self.tags.len();
        for tag in &mut self.tags {
            tag.ids.push(NO_TAG);
        }
        for (position, (key, value)) in event.tags().enumerate() {
            let idx = match find_column(&self.tags, position, key, |t| &t.key) {
                Some(i) => i,
                None => {
                    bytes += key.len() + 64 + 4 * row;
                    self.tags.push(TagColumn {
                        key: key.to_owned(),
                        dict: Vec::new(),
                        ids: vec![NO_TAG; row + 1],
                    });
                    self.lookups.push(Map::default());
                    self.tags.len() - 1
                }
            };
            let (Some(tag), Some(lookup)) = (self.tags.get_mut(idx), self.lookups.get_mut(idx))
            else {
                continue;
            };
            let id = match lookup.get(value) {
                Some(&id) => id,
                None => {
                    let id = tag.dict.len() as u32;
                    tag.dict.push(value.to_owned());
                    lookup.insert(CompactString::from(value), id);
                    bytes += 2 * value.len() + 64;
                    id
                }
            };
            if let Some(slot) = tag.ids.get_mut(row) {
                *slot = id;
            }
        }
        for field in &mut self.fields {
            push_none(&mut field.values);
        }
        for (position, (key, value)) in event.fields().enumerate() {
            let idx = match find_column(&self.fields, position, key, |f| &f.key) {
                Some(i) => i,
                None => {
                    let mut values = FieldValues::new(value.field_type());
                    for _ in 0..=row {
                        push_none(&mut values);
                    }
                    bytes += key.len() + 64 + 16 * row;
                    self.fields.push(FieldColumn {
                        key: key.to_owned(),
                        values,
                    });
                    self.fields.len() - 1
                }
            };
            bytes += set_last(&mut self.fields[idx], value);
        }
        bytes += 16 * self.fields.len();
        self.has_event_ids |= event.event_id.is_some();
        bytes + self.event_ids.push(event.event_id.map(IdKey::of))
    }

    /// Appends the rows of `other` (byte accounting is the caller's).
    fn append(&mut self, other: TableBuf) {
        let base = self.timestamps.len();
        let rows = base + other.timestamps.len();
        self.timestamps.extend(other.timestamps);
        for tag in &mut self.tags {
            tag.ids.resize(rows, NO_TAG);
        }
        for theirs in other.tags {
            let idx = match self.tags.iter().position(|t| t.key == theirs.key) {
                Some(i) => i,
                None => {
                    self.tags.push(TagColumn {
                        key: theirs.key.clone(),
                        dict: Vec::new(),
                        ids: vec![NO_TAG; rows],
                    });
                    self.lookups.push(Map::default());
                    self.tags.len() - 1
                }
            };
            let (Some(tag), Some(lookup)) = (self.tags.get_mut(idx), self.lookups.get_mut(idx))
            else {
                continue;
            };
            let ids: Vec<u32> = theirs
                .dict
                .into_iter()
                .map(|value| match lookup.get(value.as_str()) {
                    Some(&id) => id,
                    None => {
                        let id = tag.dict.len() as u32;
                        lookup.insert(CompactString::from(value.as_str()), id);
                        tag.dict.push(value);
                        id
                    }
                })
                .collect();
            for (slot, id) in tag.ids[base..].iter_mut().zip(theirs.ids) {
                if let Some(&mine) = ids.get(id as usize) {
                    *slot = mine;
                }
            }
        }
        let mut theirs = other.fields;
        for field in &mut self.fields {
            if let Some(i) = theirs.iter().position(|f| f.key == field.key)
                && field
                    .values
                    .append_at(&theirs.swap_remove(i).values, base)
                    .is_err()
            {
                tracing::error!(field = %field.key, "dropped values whose type differs from their column's");
            }
            field.values.pad_to(rows);
        }
        for field in theirs {
            let mut values = FieldValues::new(field.values.field_type());
            // Of one type: cannot fail.
            let _ = values.append_at(&field.values, base);
            self.fields.push(FieldColumn {
                key: field.key,
                values,
            });
        }
        for id in other.event_ids.iter() {
            self.event_ids.push(id);
        }
        self.has_event_ids |= other.has_event_ids;
    }

    /// Rows satisfying the request's time range and tag predicates, in time order.
    fn matching_rows(&self, req: &ScanRequest) -> Vec<u32> {
        // For each predicate: which dictionary values match, and whether a missing tag does.
        let mut tests = Vec::with_capacity(req.predicates.len());
        for p in &req.predicates {
            let absent = p.matches("");
            match self.tags.iter().find(|t| t.key == p.key) {
                Some(tag) => {
                    let values: Vec<bool> = match &p.op {
                        TagOp::Eq(v) => tag.dict.iter().map(|d| d == v).collect(),
                        _ => tag.dict.iter().map(|d| p.matches(d)).collect(),
                    };
                    tests.push((&tag.ids, values, absent));
                }
                None if absent => {}
                None => return Vec::new(),
            }
        }
        let mut rows: Vec<u32> = (0..self.timestamps.len() as u32)
            .filter(|&r| {
                let r = r as usize;
                req.time_contains(self.timestamps[r])
                    && tests.iter().all(|(ids, values, absent)| match ids.get(r) {
                        Some(&NO_TAG) | None => *absent,
                        Some(&id) => values.get(id as usize).copied().unwrap_or(false),
                    })
            })
            .collect();
        self.sort_by_time(&mut rows);
        rows
    }

    /// Every row, in time order (arrival order among equal timestamps).
    fn time_order(&self) -> Vec<u32> {
        let mut rows: Vec<u32> = (0..self.timestamps.len() as u32).collect();
        self.sort_by_time(&mut rows);
        rows
    }

    fn sort_by_time(&self, rows: &mut [u32]) {
        let ts = |r: u32| self.timestamps[r as usize];
        if !rows.windows(2).all(|w| ts(w[0]) <= ts(w[1])) {
            // Stable: events with equal timestamps keep their arrival order.
            rows.sort_by_key(|&r| ts(r));
        }
    }

    /// The given rows (in that order) as a batch, with the requested columns (all without a
    /// request).
    fn select(
        &self,
        tenant: &TenantId,
        measurement: &str,
        rows: Vec<u32>,
        req: Option<&ScanRequest>,
    ) -> ColumnBatch {
        let wants = |name: &str| req.is_none_or(|r| r.wants(name));
        let presence_only = |name: &str| req.is_some_and(|r| r.wants_presence_only(name));
        let pick = |r: &u32| *r as usize;
        ColumnBatch {
            tenant: tenant.clone(),
            measurement: measurement.to_owned(),
            timestamps: rows.iter().map(|r| self.timestamps[pick(r)]).collect(),
            tags: self
                .tags
                .iter()
                .filter(|t| wants(&t.key))
                .map(|t| TagColumn {
                    key: t.key.clone(),
                    dict: t.dict.clone(),
                    ids: rows.iter().map(|r| t.ids[pick(r)]).collect(),
                })
                .collect(),
            fields: self
                .fields
                .iter()
                .filter(|f| wants(&f.key) && !presence_only(&f.key))
                .map(|f| FieldColumn {
                    key: f.key.clone(),
                    values: gather(&f.values, &rows),
                })
                .collect(),
            event_ids: (wants("event_id") && self.has_event_ids).then(|| {
                let mut ids = StrColumn::new();
                let mut buf = [0; ID_TEXT_MAX];
                for r in rows.iter() {
                    ids.push(self.event_ids.get(pick(r)).map(|id| id.text(&mut buf)));
                }
                ids
            }),
            presence: self
                .fields
                .iter()
                .filter(|f| wants(&f.key) && presence_only(&f.key))
                .map(|f| PresenceColumn {
                    key: f.key.clone(),
                    ty: f.values.field_type(),
                    present: rows.iter().map(|r| f.value(pick(r)).is_some()).collect(),
                })
                .collect(),
        }
    }
}

/// The indexes of the batch's events grouped by table, each table's in their order, and where
/// each table's run starts (with the end last): a counting sort over the tables in the order
/// they first appear.
fn by_table(batch: &WriteBatch, tenants: impl Fn(&str) -> bool) -> (Vec<u32>, Vec<usize>) {
    let mut tables: Map<(Day, &str, &str), u32> = Map::default();
    let mut sizes: Vec<usize> = Vec::new();
    let table_of: Vec<u32> = batch
        .iter()
        .map(|e| {
            if !tenants(e.tenant) {
                return SKIPPED;
            }
            let next = sizes.len() as u32;
            let t = *tables
                .entry((e.timestamp.day(), e.tenant, e.measurement))
                .or_insert(next);
            if t == next {
                sizes.push(0);
            }
            sizes[t as usize] += 1;
            t
        })
        .collect();
    let mut starts = Vec::with_capacity(sizes.len() + 1);
    let mut at = 0;
    for size in &sizes {
        starts.push(at);
        at += size;
    }
    starts.push(at);
    let mut next = starts.clone();
    let mut order = vec![0; at];
    for (i, &t) in table_of.iter().enumerate() {
        if t != SKIPPED {
            order[next[t as usize]] = i as u32;
            next[t as usize] += 1;
        }
    }
    (order, starts)
}

/// The table of an event [`by_table`] leaves out.
const SKIPPED: u32 = u32::MAX;

/// The index of the column named `key`. Events of a table usually list their keys in the
/// same order, so the column at the key's position in the event is tried first.
fn find_column<T>(
    columns: &[T],
    position: usize,
    key: &str,
    name: impl Fn(&T) -> &str,
) -> Option<usize> {
    if columns.get(position).is_some_and(|c| name(c) == key) {
        return Some(position);
    }
    columns.iter().position(|c| name(c) == key)
}

fn push_none(values: &mut FieldValues) {
    match values {
        FieldValues::F64(v) => v.push(None),
        FieldValues::I64(v) => v.push(None),
        FieldValues::U64(v) => v.push(None),
        FieldValues::Bool(v) => v.push(None),
        FieldValues::Str(v) => v.push(None),
    }
}

/// Sets the value of the last row; returns the extra bytes a string took.
fn set_last(field: &mut FieldColumn, value: FieldValueRef<'_>) -> usize {
    let ok = match (&mut field.values, value) {
        (FieldValues::F64(v), FieldValueRef::F64(x)) => {
            v.last_mut().map(|s| *s = Some(x)).is_some()
        }
        (FieldValues::I64(v), FieldValueRef::I64(x)) => {
            v.last_mut().map(|s| *s = Some(x)).is_some()
        }
        (FieldValues::U64(v), FieldValueRef::U64(x)) => {
            v.last_mut().map(|s| *s = Some(x)).is_some()
        }
        (FieldValues::Bool(v), FieldValueRef::Bool(x)) => {
            v.last_mut().map(|s| *s = Some(x)).is_some()
        }
        (FieldValues::Str(v), FieldValueRef::Str(x)) => {
            v.replace_last(Some(x));
            return x.len();
        }
        _ => false,
    };
    if !ok {
        tracing::error!(field = %field.key, "dropped a value whose type differs from its column's");
    }
    0
}

fn gather(values: &FieldValues, rows: &[u32]) -> FieldValues {
    fn pick<T: Copy>(v: &[Option<T>], rows: &[u32]) -> Vec<Option<T>> {
        rows.iter()
            .map(|&r| v.get(r as usize).copied().flatten())
            .collect()
    }
    match values {
        FieldValues::F64(v) => FieldValues::F64(pick(v, rows)),
        FieldValues::I64(v) => FieldValues::I64(pick(v, rows)),
        FieldValues::U64(v) => FieldValues::U64(pick(v, rows)),
        FieldValues::Bool(v) => FieldValues::Bool(pick(v, rows)),
        FieldValues::Str(v) => FieldValues::Str(rows.iter().map(|&r| v.get(r as usize)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    #[test]
    fn a_batch_is_applied_table_by_table_in_each_tables_order() {
        let mut batch = WriteBatch::new();
        for (tenant, t) in [("a", 3), ("b", 1), ("a", 1), ("b", 2), ("a", 2), ("b", 0)] {
            batch
                .add(tenant, "api_calls", Timestamp(t))
                .field("n", FieldValueRef::I64(t));
        }
        let mut memtable = Memtable::new();
        let mut seen = Vec::new();
        let mut runs = 0;
        memtable.apply_batch(&batch, |events| {
            runs += 1;
            seen.extend(events.iter().map(|e| (e.tenant.to_owned(), e.timestamp.0)));
            events.retain(|e| e.timestamp.0 != 0);
        });
        assert_eq!(runs, 2, "one run per table");
        let order = |v: &[(&str, i64)]| {
            v.iter()
                .map(|&(t, ts)| (t.to_owned(), ts))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seen,
            order(&[("a", 3), ("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 0)])
        );
        assert_eq!(memtable.len(), 5, "the refused event is not stored");
        let mut tables: Vec<(String, Vec<i64>)> = Vec::new();
        memtable.for_each_table(|tenant, columns| {
            tables.push((tenant.to_string(), columns.timestamps.to_vec()));
        });
        tables.sort();
        assert_eq!(
            tables,
            [
                ("a".to_owned(), vec![3, 1, 2]),
                ("b".to_owned(), vec![1, 2])
            ],
            "rows in arrival order"
        );
    }

    #[test]
    fn absorbing_a_buffer_appends_the_rows_of_tables_both_hold() {
        let rows = |batch: &WriteBatch| {
            let mut m = Memtable::new();
            m.apply_batch(batch, |_| {});
            m
        };
        let mut first = WriteBatch::new();
        first
            .add("a", "m", Timestamp(1))
            .tag("user", "u1")
            .field("n", FieldValueRef::I64(1));
        first
            .add("b", "m", Timestamp(2))
            .field("n", FieldValueRef::I64(2));
        let mut second = WriteBatch::new();
        second
            .add("a", "m", Timestamp(3))
            .tag("user", "u2")
            .tag("os", "linux")
            .field("s", FieldValueRef::Str("x"));
        second
            .add("a", "m", Timestamp(4))
            .tag("user", "u1")
            .field("n", FieldValueRef::F64(4.0));
        second
            .add("c", "m", Timestamp(5))
            .field("n", FieldValueRef::I64(5));
        let mut memtable = rows(&first);
        memtable.absorb(rows(&second));
        assert_eq!(memtable.len(), 5);
        let mut out = Vec::new();
        memtable.scan(&ScanRequest::default(), &mut out);
        out.sort_by(|x, y| x.tenant.cmp(&y.tenant));
        let a = &out[0];
        assert_eq!(a.timestamps, [1, 3, 4]);
        let user = a.tag("user").unwrap();
        let users: Vec<_> = (0..3).map(|r| user.value(r)).collect();
        assert_eq!(users, [Some("u1"), Some("u2"), Some("u1")]);
        assert_eq!(user.dict.len(), 2, "one dictionary entry per value");
        let os: Vec<_> = (0..3).map(|r| a.tag("os").unwrap().value(r)).collect();
        assert_eq!(os, [None, Some("linux"), None]);
        assert_eq!(
            a.field("n").unwrap().values,
            FieldValues::I64(vec![Some(1), None, None]),
            "a value of another type is dropped"
        );
        let s: Vec<_> = (0..3).map(|r| a.field("s").unwrap().value(r)).collect();
        assert_eq!(s, [None, Some(FieldValueRef::Str("x")), None]);
        let tenants: Vec<_> = out.iter().map(|b| (b.tenant.as_str(), b.len())).collect();
        assert_eq!(tenants, [("a", 3), ("b", 1), ("c", 1)]);
    }
}
