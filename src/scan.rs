//! The scan API's types: what a reader asks for ([`ScanRequest`]) and what it gets back
//! ([`ColumnBatch`]). Shared by the in-memory buffers, the segment reader and the engine; no
//! I/O here.

use std::fmt;
use std::ops::Range;

use regex::Regex;

mod rows;

use crate::model::{FieldType, FieldValueRef, TenantId};

/// A scan: which rows and which columns.
#[derive(Clone, Debug, Default)]
pub struct ScanRequest {
    /// One tenant, or every tenant when `None`.
    pub tenant: Option<TenantId>,
    /// One measurement, or every measurement when `None`.
    pub measurement: Option<String>,
    /// Time range, `[start, end)` in ns; `None` means all time.
    pub time: Option<Range<i64>>,
    /// Tag predicates, all of which a row must satisfy.
    pub predicates: Vec<TagPredicate>,
    /// Columns to return; `None` means every tag, field and the event id.
    pub columns: Option<Vec<String>>,
    /// Fields of which only which rows hold a value is wanted (what a `COUNT` reads): they
    /// come back in [`ColumnBatch::presence`] instead of [`ColumnBatch::fields`], and a
    /// segment answers from its footer and presence bitmaps without decoding the values.
    pub presence_only: Vec<String>,
}

impl ScanRequest {
    /// True when `ts` falls in the requested time range.
    pub fn time_contains(&self, ts: i64) -> bool {
        self.time.as_ref().is_none_or(|r| r.contains(&ts))
    }

    /// True when the column `name` is requested. The event id's column is named `event_id`.
    pub fn wants(&self, name: &str) -> bool {
        self.columns
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n == name))
    }

    /// True when the field `name` is requested for its presence only.
    pub fn wants_presence_only(&self, name: &str) -> bool {
        self.presence_only.iter().any(|n| n == name)
    }
}

/// A condition on one tag. A row without the tag has the empty string as its value, as in
/// InfluxQL: `key = ''` matches it and `key != 'x'` matches it.
#[derive(Clone, Debug)]
pub struct TagPredicate {
    /// Tag key.
    pub key: String,
    /// The test.
    pub op: TagOp,
}

impl TagPredicate {
    /// `key = value`.
    pub fn eq(key: &str, value: &str) -> TagPredicate {
        TagPredicate {
            key: key.to_owned(),
            op: TagOp::Eq(value.to_owned()),
        }
    }

    /// `key != value`.
    pub fn not_eq(key: &str, value: &str) -> TagPredicate {
        TagPredicate {
            key: key.to_owned(),
            op: TagOp::NotEq(value.to_owned()),
        }
    }

    /// `key =~ /pattern/`, or the error of a pattern that does not compile.
    pub fn regex(key: &str, pattern: &str) -> crate::Result<TagPredicate> {
        let re = Regex::new(pattern)
            .map_err(|e| crate::Error::InvalidScan(format!("regex {pattern:?}: {e}")))?;
        Ok(TagPredicate {
            key: key.to_owned(),
            op: TagOp::Regex(re),
        })
    }

    /// `key` is one of `values`.
    pub fn one_of(key: &str, values: &[&str]) -> TagPredicate {
        TagPredicate {
            key: key.to_owned(),
            op: TagOp::In(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    /// Whether a tag value (`""` for a missing tag) satisfies the predicate.
    pub fn matches(&self, value: &str) -> bool {
        self.op.matches(value)
    }
}

/// The test a [`TagPredicate`] applies.
#[derive(Clone, Debug)]
pub enum TagOp {
    /// Equal to.
    Eq(String),
    /// Not equal to.
    NotEq(String),
    /// Matches the regex (unanchored, as InfluxQL's `=~`).
    Regex(Regex),
    /// Does not match the regex.
    NotRegex(Regex),
    /// Equal to one of.
    In(Vec<String>),
}

impl TagOp {
    /// Whether `value` passes the test.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TagOp::Eq(v) => value == v,
            TagOp::NotEq(v) => value != v,
            TagOp::Regex(re) => re.is_match(value),
            TagOp::NotRegex(re) => !re.is_match(value),
            TagOp::In(vs) => vs.iter().any(|v| v == value),
        }
    }
}

/// The id of a row without a given tag in [`TagColumn::ids`].
pub const NO_TAG: u32 = u32::MAX;

/// Rows of one tenant and measurement, column by column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColumnBatch {
    /// The tenant.
    pub tenant: TenantId,
    /// The measurement.
    pub measurement: String,
    /// One timestamp per row (ns).
    pub timestamps: Vec<i64>,
    /// Requested tag columns.
    pub tags: Vec<TagColumn>,
    /// Requested field columns.
    pub fields: Vec<FieldColumn>,
    /// Event ids, when requested.
    pub event_ids: Option<StrColumn>,
    /// The fields requested for their presence only ([`ScanRequest::presence_only`]).
    pub presence: Vec<PresenceColumn>,
}

/// Which rows of a batch hold a value of one field.
#[derive(Clone, Debug, PartialEq)]
pub struct PresenceColumn {
    /// Field key.
    pub key: String,
    /// The field's type.
    pub ty: FieldType,
    /// One flag per row.
    pub present: Vec<bool>,
}

impl ColumnBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The tag column `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&TagColumn> {
        self.columns().tag(key)
    }

    /// The field column `key`, if present.
    pub fn field(&self, key: &str) -> Option<&FieldColumn> {
        self.columns().field(key)
    }

    /// Which rows hold the field `key`, when it was requested for its presence only and the
    /// batch's table has it.
    pub fn presence(&self, key: &str) -> Option<&PresenceColumn> {
        self.presence.iter().find(|p| p.key == key)
    }

    /// The batch's columns, borrowed.
    pub fn columns(&self) -> Columns<'_> {
        Columns {
            measurement: &self.measurement,
            timestamps: &self.timestamps,
            tags: &self.tags,
            fields: &self.fields,
        }
    }
}

/// One table's rows, column by column, borrowed: what counting rows into rollups reads, from a
/// scan's [`ColumnBatch`] or straight from a write buffer (without copying the buffer).
#[derive(Clone, Copy, Debug)]
pub struct Columns<'a> {
    /// The measurement.
    pub measurement: &'a str,
    /// One timestamp per row (ns).
    pub timestamps: &'a [i64],
    /// Tag columns.
    pub tags: &'a [TagColumn],
    /// Field columns.
    pub fields: &'a [FieldColumn],
}

impl<'a> Columns<'a> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The tag column `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&'a TagColumn> {
        self.tags.iter().find(|t| t.key == key)
    }

    /// The field column `key`, if present.
    pub fn field(&self, key: &str) -> Option<&'a FieldColumn> {
        self.fields.iter().find(|f| f.key == key)
    }
}

/// A dictionary-encoded tag column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TagColumn {
    /// Tag key.
    pub key: String,
    /// Distinct values; `ids` index into it.
    pub dict: Vec<String>,
    /// One dictionary index per row, or [`NO_TAG`].
    pub ids: Vec<u32>,
}

impl TagColumn {
    /// The tag value of row `row`, `None` when the row has no such tag.
    pub fn value(&self, row: usize) -> Option<&str> {
        let id = *self.ids.get(row)?;
        self.dict.get(id as usize).map(String::as_str)
    }
}

/// A field column.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldColumn {
    /// Field key.
    pub key: String,
    /// Values, `None` where a row has no such field.
    pub values: FieldValues,
}

impl FieldColumn {
    /// The value of row `row`, `None` when the row has no such field.
    pub fn value(&self, row: usize) -> Option<FieldValueRef<'_>> {
        match &self.values {
            FieldValues::F64(v) => v.get(row).copied().flatten().map(FieldValueRef::F64),
            FieldValues::I64(v) => v.get(row).copied().flatten().map(FieldValueRef::I64),
            FieldValues::U64(v) => v.get(row).copied().flatten().map(FieldValueRef::U64),
            FieldValues::Bool(v) => v.get(row).copied().flatten().map(FieldValueRef::Bool),
            FieldValues::Str(v) => v.get(row).map(FieldValueRef::Str),
        }
    }
}

/// The values of a field column, by type.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValues {
    /// Floats.
    F64(Vec<Option<f64>>),
    /// Signed integers.
    I64(Vec<Option<i64>>),
    /// Unsigned integers.
    U64(Vec<Option<u64>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
    /// Strings.
    Str(StrColumn),
}

impl FieldValues {
    /// An empty column of the given type.
    pub fn new(ty: FieldType) -> FieldValues {
        FieldValues::with_capacity(ty, 0)
    }

    /// An empty column of the given type with room for `rows` values (string bytes grow as
    /// they come).
    pub fn with_capacity(ty: FieldType, rows: usize) -> FieldValues {
        match ty {
            FieldType::Float => FieldValues::F64(Vec::with_capacity(rows)),
            FieldType::Integer => FieldValues::I64(Vec::with_capacity(rows)),
            FieldType::Unsigned => FieldValues::U64(Vec::with_capacity(rows)),
            FieldType::Boolean => FieldValues::Bool(Vec::with_capacity(rows)),
            FieldType::String => FieldValues::Str(StrColumn::default()),
        }
    }

    /// The column's type.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldValues::F64(_) => FieldType::Float,
            FieldValues::I64(_) => FieldType::Integer,
            FieldValues::U64(_) => FieldType::Unsigned,
            FieldValues::Bool(_) => FieldType::Boolean,
            FieldValues::Str(_) => FieldType::String,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            FieldValues::F64(v) => v.len(),
            FieldValues::I64(v) => v.len(),
            FieldValues::U64(v) => v.len(),
            FieldValues::Bool(v) => v.len(),
            FieldValues::Str(v) => v.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A column of optional strings in one byte buffer.
#[derive(Clone, Default, PartialEq)]
pub struct StrColumn {
    data: String,
    ends: Vec<u32>,
    present: Vec<bool>,
}

impl StrColumn {
    /// An empty column.
    pub const fn new() -> StrColumn {
        StrColumn {
            data: String::new(),
            ends: Vec::new(),
            present: Vec::new(),
        }
    }

    /// Appends a value.
    pub fn push(&mut self, value: Option<&str>) {
        self.data.push_str(value.unwrap_or(""));
        self.ends
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
        self.present.push(value.is_some());
    }

    /// Replaces the value of the last row (appends one when the column is empty).
    pub fn replace_last(&mut self, value: Option<&str>) {
        if self.ends.pop().is_some() {
            self.present.pop();
            let start = self.ends.last().map_or(0, |&e| e as usize);
            self.data.truncate(start);
        }
        self.push(value);
    }

    /// The value of row `row`.
    pub fn get(&self, row: usize) -> Option<&str> {
        if !*self.present.get(row)? {
            return None;
        }
        let start = if row == 0 {
            0
        } else {
            *self.ends.get(row - 1)? as usize
        };
        self.data.get(start..*self.ends.get(row)? as usize)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Gives back the spare capacity of its buffers.
    pub fn shrink_to_fit(&mut self) {
        self.data.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.present.shrink_to_fit();
    }

    /// Iterates over the values.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<&str>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl fmt::Debug for StrColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<Option<&'a str>> for StrColumn {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(iter: I) -> StrColumn {
        let mut c = StrColumn::default();
        for v in iter {
            c.push(v);
        }
        c
    }
}
