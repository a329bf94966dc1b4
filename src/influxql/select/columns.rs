//! Name resolution inside one [`ColumnBatch`], with InfluxQL's view of MeterDB's data model:
//! the batch's tenant reads as a tag named `tenant`, the event id as a string field named
//! `event_id`. Every other operator asks this module what a name means in a batch, so the
//! mapping lives in one place.

use crate::scan::{ColumnBatch, FieldValues, NO_TAG, StrColumn, TagColumn};

use super::super::Value;

/// The tag key under which InfluxQL sees a batch's tenant.
pub(super) const TENANT: &str = crate::catalog::TENANT_TAG;
/// The field key under which InfluxQL sees an event's id.
pub(super) const EVENT_ID: &str = crate::catalog::EVENT_ID_FIELD;

/// What a name refers to in one batch.
#[derive(Clone, Copy, Debug)]
pub(super) enum Col<'a> {
    /// The batch's tenant: a tag with the same value on every row.
    Tenant(&'a str),
    /// A tag column.
    Tag(&'a TagColumn),
    /// A field column.
    Field(&'a FieldValues),
    /// The event ids (a string field).
    EventId(&'a StrColumn),
    /// Not in this batch: a tag reads as `""`, a field as null.
    Missing,
}

/// Which kinds of column a `::tag` / `::field` cast allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Tags and fields.
    Any,
    /// Tags only.
    Tag,
    /// Fields only.
    Field,
}

impl Kind {
    /// The kind a cast names; value casts (`::integer`...) refer to fields.
    pub(super) fn of_cast(cast: Option<&str>) -> Kind {
        match cast {
            None => Kind::Any,
            Some("tag") => Kind::Tag,
            Some(_) => Kind::Field,
        }
    }
}

/// True when the batch has a tenant, which then reads as the tag `tenant`. Batches built from
/// a subquery's output carry an empty tenant unless the subquery grouped by it.
pub(super) fn has_tenant(batch: &ColumnBatch) -> bool {
    !batch.tenant.as_str().is_empty()
}

/// Resolves `name` in `batch`. Fields win over tags of the same name, as in InfluxDB, unless
/// the cast says otherwise.
pub(super) fn resolve<'a>(batch: &'a ColumnBatch, name: &str, kind: Kind) -> Col<'a> {
    if kind != Kind::Tag {
        if let Some(f) = batch.field(name) {
            return Col::Field(&f.values);
        }
        if name == EVENT_ID
            && let Some(ids) = &batch.event_ids
        {
            return Col::EventId(ids);
        }
    }
    if kind != Kind::Field {
        if let Some(t) = batch.tag(name) {
            return Col::Tag(t);
        }
        if name == TENANT && has_tenant(batch) {
            return Col::Tenant(batch.tenant.as_str());
        }
    }
    Col::Missing
}

impl<'a> Col<'a> {
    /// True for fields (including the event id).
    pub(super) fn is_field(&self) -> bool {
        matches!(self, Col::Field(_) | Col::EventId(_))
    }

    /// The value at `row` as a response cell: tags as strings (null when missing), fields by
    /// type.
    pub(super) fn value(&self, row: usize) -> Value {
        match self {
            Col::Tenant(t) => Value::String((*t).to_owned()),
            Col::Tag(t) => match t.ids.get(row) {
                Some(&id) if id != NO_TAG => t
                    .dict
                    .get(id as usize)
                    .map_or(Value::Null, |s| Value::String(s.clone())),
                _ => Value::Null,
            },
            Col::Field(values) => field_value(values, row),
            Col::EventId(ids) => ids
                .get(row)
                .map_or(Value::Null, |s| Value::String(s.to_owned())),
            Col::Missing => Value::Null,
        }
    }

    /// True when the row has a value in this column.
    pub(super) fn is_present(&self, row: usize) -> bool {
        match self {
            Col::Tenant(_) => true,
            Col::Tag(t) => t.ids.get(row).is_some_and(|&id| id != NO_TAG),
            Col::Field(values) => match values {
                FieldValues::F64(v) => v.get(row).is_some_and(Option::is_some),
                FieldValues::I64(v) => v.get(row).is_some_and(Option::is_some),
                FieldValues::U64(v) => v.get(row).is_some_and(Option::is_some),
                FieldValues::Bool(v) => v.get(row).is_some_and(Option::is_some),
                FieldValues::Str(v) => v.get(row).is_some(),
            },
            Col::EventId(ids) => ids.get(row).is_some(),
            Col::Missing => false,
        }
    }
}

/// One field value as a response cell.
pub(super) fn field_value(values: &FieldValues, row: usize) -> Value {
    let v = match values {
        FieldValues::F64(v) => v.get(row).copied().flatten().map(Value::Float),
        FieldValues::I64(v) => v.get(row).copied().flatten().map(Value::Integer),
        FieldValues::U64(v) => v.get(row).copied().flatten().map(Value::Unsigned),
        FieldValues::Bool(v) => v.get(row).copied().flatten().map(Value::Bool),
        FieldValues::Str(v) => v.get(row).map(|s| Value::String(s.to_owned())),
    };
    v.unwrap_or(Value::Null)
}

/// The value of a tag at `row`, `""` when the row lacks it (InfluxQL's rule for tags).
pub(super) fn tag_str<'a>(col: &Col<'a>, row: usize) -> &'a str {
    match col {
        Col::Tenant(t) => t,
        Col::Tag(t) => t.value(row).unwrap_or(""),
        _ => "",
    }
}
