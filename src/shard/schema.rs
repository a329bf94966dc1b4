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
#[derive(Debug, Default)]
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
        let mut new = Vec::new();
        for (key, value) in event.fields() {
            let got = value.field_type();
            match known.and_then(|fields| fields.iter().find(|(k, _)| k == key)) {
                Some(&(_, existing)) if existing != got => {
                    return Err(InvalidEvent::FieldTypeConflict {
                        measurement: event.measurement.to_owned(),
                        field: key.to_owned(),
                        existing,
                        got,
                        day: day.to_string(),
                    });
                }
                Some(_) => {}
                None => new.push((key, got)),
            }
        }
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
