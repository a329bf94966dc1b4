//! Field types per tenant, measurement and UTC day: the rule that a field keeps one type within
//! a tenant's measurement on a day (the scope of one table in one segment).
//!
//! Built at open from segment footers and WAL replay, then kept current by the shard's writer,
//! which is its only user.

use std::collections::HashMap;

use crate::error::InvalidEvent;
use crate::model::{Day, EventRef, FieldType, TenantId};

type Fields = Vec<(String, FieldType)>;
/// See the memtable's maps: fast hashing of network-supplied names.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Known field types.
#[derive(Clone, Debug, Default)]
pub struct SchemaMap {
    map: Map<Day, Map<TenantId, Map<String, Fields>>>,
}

/// A field type recorded by [`SchemaMap::check_and_record`], to undo if its write fails.
#[derive(Debug)]
pub struct Recorded {
    day: Day,
    tenant: TenantId,
    measurement: String,
    field: String,
}

impl SchemaMap {
    /// Records a stored field type (from a segment or a replayed record).
    pub fn record(
        &mut self,
        day: Day,
        tenant: &TenantId,
        measurement: &str,
        field: &str,
        ty: FieldType,
    ) {
        let fields = self
            .map
            .entry(day)
            .or_default()
            .entry(tenant.clone())
            .or_default()
            .entry(measurement.to_owned())
            .or_default();
        if !fields.iter().any(|(k, _)| k == field) {
            fields.push((field.to_owned(), ty));
        }
    }

    /// Checks the event's field types against the known ones, then records the new ones
    /// (appending them to `recorded`). A conflicting event records nothing.
    pub fn check_and_record(
        &mut self,
        event: &EventRef<'_>,
        recorded: &mut Vec<Recorded>,
    ) -> Result<(), InvalidEvent> {
        let day = event.timestamp.day();
        let known = self
            .map
            .get(&day)
            .and_then(|t| t.get(event.tenant))
            .and_then(|m| m.get(event.measurement));
        let new = new_fields(known.map_or(&[], Vec::as_slice), event)?;
        if new.is_empty() {
            return Ok(());
        }
        let tenant = TenantId::new(event.tenant);
        for (key, ty) in new {
            self.record(day, &tenant, event.measurement, key, ty);
            recorded.push(Recorded {
                day,
                tenant: tenant.clone(),
                measurement: event.measurement.to_owned(),
                field: key.to_owned(),
            });
        }
        Ok(())
    }

    /// Keeps the events of `run` whose field types agree with the known ones (and with those
    /// of the run's earlier events), recording the new types; `rejected` hears why each other
    /// event was removed. The events of a run are of one table (day, tenant, measurement), as
    /// [`super::Memtable::apply_batch`] hands them, so the table's types are looked up once:
    /// event by event, the three lookups were most of the replay's schema check.
    pub fn retain_valid(
        &mut self,
        run: &mut Vec<EventRef<'_>>,
        mut rejected: impl FnMut(InvalidEvent),
    ) {
        let Some(first) = run.first() else {
            return;
        };
        let (day, tenant, measurement) = (first.timestamp.day(), first.tenant, first.measurement);
        let tenants = self.map.entry(day).or_default();
        let measurements = match tenants.get_mut(tenant) {
            Some(m) => m,
            None => tenants.entry(TenantId::new(tenant)).or_default(),
        };
        let fields = match measurements.get_mut(measurement) {
            Some(f) => f,
            None => measurements.entry(measurement.to_owned()).or_default(),
        };
        run.retain(|event| {
            debug_assert!(
                event.timestamp.day() == day
                    && event.tenant == tenant
                    && event.measurement == measurement,
                "a run holds one table's events"
            );
            match new_fields(fields, event) {
                Ok(new) => {
                    fields.extend(new.into_iter().map(|(k, ty)| (k.to_owned(), ty)));
                    true
                }
                Err(reason) => {
                    rejected(reason);
                    false
                }
            }
        });
    }

    /// Adds the field types `other` knows (a map that started as a copy of this one).
    pub fn absorb(&mut self, other: SchemaMap) {
        for (day, tenants) in other.map {
            let mine = self.map.entry(day).or_default();
            for (tenant, measurements) in tenants {
                let mine = mine.entry(tenant).or_default();
                for (measurement, fields) in measurements {
                    let mine = mine.entry(measurement).or_default();
                    for (field, ty) in fields {
                        if !mine.iter().any(|(k, _)| *k == field) {
                            mine.push((field, ty));
                        }
                    }
                }
            }
        }
    }

    /// Forgets field types recorded for writes that then failed.
    pub fn undo(&mut self, recorded: Vec<Recorded>) {
        for r in recorded {
            if let Some(fields) = self
                .map
                .get_mut(&r.day)
                .and_then(|t| t.get_mut(&r.tenant))
                .and_then(|m| m.get_mut(&r.measurement))
            {
                fields.retain(|(k, _)| *k != r.field);
            }
        }
    }
}

/// The fields of `event` its table does not know yet (`known`), with their types, in one pass
/// over the event; or why the event cannot be stored beside them.
fn new_fields<'e>(
    known: &[(String, FieldType)],
    event: &EventRef<'e>,
) -> Result<Vec<(&'e str, FieldType)>, InvalidEvent> {
    let mut new: Vec<(&str, FieldType)> = Vec::new();
    for (key, value) in event.fields() {
        let got = value.field_type();
        match known.iter().find(|(k, _)| k == key) {
            Some(&(_, existing)) if existing != got => {
                return Err(InvalidEvent::FieldTypeConflict {
                    measurement: event.measurement.to_owned(),
                    field: key.to_owned(),
                    existing,
                    got,
                    day: event.timestamp.day().to_string(),
                });
            }
            Some(_) => {}
            None if new.iter().any(|(k, _)| *k == key) => {}
            None => new.push((key, got)),
        }
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FieldValueRef, Timestamp, WriteBatch};

    #[test]
    fn a_run_keeps_the_events_whose_types_agree_with_the_table_and_each_other() {
        let mut schema = SchemaMap::default();
        schema.record(
            Timestamp(0).day(),
            &TenantId::new("a"),
            "m",
            "n",
            FieldType::Integer,
        );
        let mut batch = WriteBatch::new();
        batch
            .add("a", "m", Timestamp(1))
            .field("n", FieldValueRef::I64(1));
        batch
            .add("a", "m", Timestamp(2))
            .field("n", FieldValueRef::F64(1.0));
        batch
            .add("a", "m", Timestamp(3))
            .field("x", FieldValueRef::Bool(true));
        batch
            .add("a", "m", Timestamp(4))
            .field("x", FieldValueRef::I64(1));
        let mut run: Vec<_> = batch.iter().collect();
        let mut rejected = Vec::new();
        schema.retain_valid(&mut run, |reason| rejected.push(reason.to_string()));
        let kept: Vec<i64> = run.iter().map(|e| e.timestamp.0).collect();
        assert_eq!(kept, [1, 3]);
        assert_eq!(rejected.len(), 2, "{rejected:?}");
        assert!(rejected[0].contains("\"n\" is float"), "{}", rejected[0]);
        // The run recorded `x` as a boolean: a later event is checked against it.
        let mut later = WriteBatch::new();
        later
            .add("a", "m", Timestamp(5))
            .field("x", FieldValueRef::F64(2.0));
        let event = later.iter().next().unwrap();
        assert!(schema.check_and_record(&event, &mut Vec::new()).is_err());
    }
}
