//! The catalog: which measurements exist, with which tag keys, tag values and field keys
//! (with types), per tenant or over all tenants, read from the in-memory buffers' tables and
//! the segment footers and tag dictionaries: no row is read.
//!
//! The catalog shows the data the way InfluxQL sees it: the tenant, stored apart from the
//! tags, is a tag named [`TENANT_TAG`] whose values are the tenant ids; the event id, stored
//! apart from the fields, is a string field named [`EVENT_ID_FIELD`] of every measurement
//! where some row has one.
//!
//! Every source (a buffer's table, a segment's table) goes through `Catalog::table` and the
//! [`MeasurementInfo`] methods, so that merging, filtering and the mapping above live here
//! alone.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{FieldType, TenantId};
use crate::scan::TagOp;

/// The tag key under which the tenant appears.
pub const TENANT_TAG: &str = "tenant";

/// The field key under which the event id appears.
pub const EVENT_ID_FIELD: &str = "event_id";

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct CatalogRequest {
    /// One tenant, or every tenant when `None`.
    pub tenant: Option<TenantId>,
    /// Measurements whose name passes this test; every measurement when `None`.
    pub measurement: Option<TagOp>,
    /// Collect the values of the tag keys passing this test (values cost a read of each
    /// table's tag dictionaries in segments); no values when `None`.
    pub tag_values: Option<TagOp>,
}

impl CatalogRequest {
    /// Whether a measurement named `name` is wanted.
    pub fn wants_measurement(&self, name: &str) -> bool {
        self.measurement.as_ref().is_none_or(|op| op.matches(name))
    }

    /// Whether the values of tag key `key` are wanted.
    pub fn wants_values(&self, key: &str) -> bool {
        self.tag_values.as_ref().is_some_and(|op| op.matches(key))
    }
}

/// Measurements, ascending by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    /// Measurement name → what it holds.
    pub measurements: BTreeMap<String, MeasurementInfo>,
}

/// One measurement's tag keys, tag values and fields, over the tenants asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeasurementInfo {
    /// Tag key → its values (empty unless [`CatalogRequest::tag_values`] selects the key).
    /// Includes [`TENANT_TAG`].
    pub tags: BTreeMap<String, BTreeSet<String>>,
    /// Field key → its types, in the order first seen (a field keeps one type per tenant,
    /// measurement and day, so different tenants or days may disagree). Includes
    /// [`EVENT_ID_FIELD`] when some row has an event id.
    pub fields: BTreeMap<String, Vec<FieldType>>,
}

impl Catalog {
    /// The entry of a table of `tenant` and `measurement` about to be added, or `None` when
    /// the request filters it out. Records the tenant as a value of [`TENANT_TAG`].
    pub(crate) fn table(
        &mut self,
        req: &CatalogRequest,
        tenant: &TenantId,
        measurement: &str,
    ) -> Option<&mut MeasurementInfo> {
        if req.tenant.as_ref().is_some_and(|t| t != tenant) || !req.wants_measurement(measurement) {
            return None;
        }
        if !self.measurements.contains_key(measurement) {
            self.measurements
                .insert(measurement.to_owned(), MeasurementInfo::default());
        }
        let info = self.measurements.get_mut(measurement)?;
        let values = info.tags.entry(TENANT_TAG.to_owned()).or_default();
        if req.wants_values(TENANT_TAG) && !values.contains(tenant.as_str()) {
            values.insert(tenant.as_str().to_owned());
        }
        Some(info)
    }
}

impl Catalog {
    /// Adds what the rows of `batch` show (its tag dictionaries hold only values some row
    /// uses, as [`ColumnBatch::select_rows`] builds them).
    pub(crate) fn add_batch(&mut self, req: &CatalogRequest, batch: &crate::scan::ColumnBatch) {
        let Some(info) = self.table(req, &batch.tenant, &batch.measurement) else {
            return;
        };
        for tag in &batch.tags {
            let values = req.wants_values(&tag.key).then_some(&tag.dict);
            info.add_tag(&tag.key, values.into_iter().flatten().map(String::as_str));
        }
        for field in &batch.fields {
            info.add_field(&field.key, field.values.field_type());
        }
        if batch.event_ids.is_some() {
            info.add_event_ids();
        }
    }
}

impl MeasurementInfo {
    /// Adds a tag key and some of its values.
    pub(crate) fn add_tag<'v>(&mut self, key: &str, values: impl IntoIterator<Item = &'v str>) {
        let set = match self.tags.get_mut(key) {
            Some(set) => set,
            None => self.tags.entry(key.to_owned()).or_default(),
        };
        for v in values {
            if !set.contains(v) {
                set.insert(v.to_owned());
            }
        }
    }

    /// Adds a field key with its type.
    pub(crate) fn add_field(&mut self, key: &str, ty: FieldType) {
        let types = match self.fields.get_mut(key) {
            Some(types) => types,
            None => self.fields.entry(key.to_owned()).or_default(),
        };
        if !types.contains(&ty) {
            types.push(ty);
        }
    }

    /// Notes that the table has rows with event ids.
    pub(crate) fn add_event_ids(&mut self) {
        self.add_field(EVENT_ID_FIELD, FieldType::String);
    }
}

#[cfg(test)]
mod tests;
