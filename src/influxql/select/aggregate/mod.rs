//! Aggregate and selector functions, column at a time. Rows arrive with the cell (series ×
//! bucket) they belong to, precomputed per batch; each function keeps one state per cell in a
//! flat vector and walks the typed value slice in a tight loop. Results follow InfluxDB 1.x's
//! definitions (percentile's nearest-rank index, median's midpoint, sample stddev, value types
//! kept where InfluxDB keeps them).

use std::cmp::Ordering;

use super::super::{QueryError, Value};
use super::columns::Col;
use super::plan::AggKind;
use crate::model::FieldType;
use crate::scan::{FieldValues, NO_TAG, StrColumn};

mod collect;
mod distinct;
mod simple;

use collect::{Collect, TopByTag};
use distinct::Distinct;
use simple::{Count, FirstLast, Mean, MinMax, Spread, Sum};

/// The cell of a row that does not take part (filtered out).
pub(super) const NO_CELL: u32 = u32::MAX;

/// The values a function reads in one batch.
#[derive(Clone, Copy)]
pub(super) enum Input<'a> {
    /// Floats.
    F64(&'a [Option<f64>]),
    /// Integers.
    I64(&'a [Option<i64>]),
    /// Unsigned integers.
    U64(&'a [Option<u64>]),
    /// Booleans.
    Bool(&'a [Option<bool>]),
    /// Strings.
    Str(&'a StrColumn),
    /// A tag (MeterDB extension for `distinct`): dictionary ids.
    Tag {
        /// Per-row ids.
        ids: &'a [u32],
        /// Dictionary.
        dict: &'a [String],
    },
    /// The same string on every row (the tenant).
    Const(&'a str),
    /// Which rows hold a value of a field of this type, its values unread (what `count`
    /// needs; the scan was asked for the field's presence only).
    Present(&'a [bool], FieldType),
    /// Not in this batch.
    Missing,
}

impl<'a> Input<'a> {
    /// The input a column provides.
    pub(super) fn of(col: Col<'a>) -> Input<'a> {
        match col {
            Col::Tenant(t) => Input::Const(t),
            Col::Tag(t) => Input::Tag {
                ids: &t.ids,
                dict: &t.dict,
            },
            Col::Field(FieldValues::F64(v)) => Input::F64(v),
            Col::Field(FieldValues::I64(v)) => Input::I64(v),
            Col::Field(FieldValues::U64(v)) => Input::U64(v),
            Col::Field(FieldValues::Bool(v)) => Input::Bool(v),
            Col::Field(FieldValues::Str(v)) | Col::EventId(v) => Input::Str(v),
            Col::Missing => Input::Missing,
        }
    }

    fn field_type(&self) -> FieldType {
        match self {
            Input::F64(_) => FieldType::Float,
            Input::I64(_) => FieldType::Integer,
            Input::U64(_) => FieldType::Unsigned,
            Input::Bool(_) => FieldType::Boolean,
            Input::Present(_, ty) => *ty,
            _ => FieldType::String,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Input::F64(_) => "float",
            Input::I64(_) => "integer",
            Input::U64(_) => "unsigned",
            Input::Bool(_) => "boolean",
            Input::Str(_) => "string",
            Input::Tag { .. } | Input::Const(_) => "tag",
            Input::Present(_, ty) => ty.name(),
            Input::Missing => "missing",
        }
    }

    fn is_tag(&self) -> bool {
        matches!(self, Input::Tag { .. } | Input::Const(_))
    }

    /// The value at `row` as a response cell, `None` when absent.
    fn value(&self, row: usize) -> Option<Value> {
        match self {
            Input::F64(v) => v.get(row).copied().flatten().map(Value::Float),
            Input::I64(v) => v.get(row).copied().flatten().map(Value::Integer),
            Input::U64(v) => v.get(row).copied().flatten().map(Value::Unsigned),
            Input::Bool(v) => v.get(row).copied().flatten().map(Value::Bool),
            Input::Str(v) => v.get(row).map(|s| Value::String(s.to_owned())),
            Input::Tag { ids, dict } => tag_at(ids, dict, row).map(|s| Value::String(s.to_owned())),
            Input::Const(s) => Some(Value::String((*s).to_owned())),
            // Values unread: only `count` is fed such an input (see `Aggregator::add`).
            Input::Present(..) | Input::Missing => None,
        }
    }
}

fn tag_at<'a>(ids: &[u32], dict: &'a [String], row: usize) -> Option<&'a str> {
    let id = *ids.get(row)?;
    if id == NO_TAG {
        return None;
    }
    dict.get(id as usize).map(String::as_str)
}

/// One output point of a function for one cell.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Point {
    /// The time of the selected point, for selectors.
    pub time: Option<i64>,
    /// The value.
    pub value: Value,
    /// The tag value that came with a `top`/`bottom` point.
    pub aux: Option<Value>,
}

impl Point {
    fn plain(value: Value) -> Point {
        Point {
            time: None,
            value,
            aux: None,
        }
    }

    fn at(time: i64, value: Value) -> Point {
        Point {
            time: Some(time),
            value,
            aux: None,
        }
    }
}

/// One function's states over all cells. Its typed machinery is chosen by the first batch
/// that has the field; a batch of another type afterwards is a type conflict.
pub(super) struct Aggregator {
    kind: AggKind,
    field: String,
    acc: Option<Box<dyn Acc>>,
    /// The type of the first values read.
    input_type: Option<FieldType>,
    /// `ORDER BY time DESC` (distinct lists values in the order it reads them).
    descending: bool,
}

trait Acc {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        aux: &Input<'_>,
        n_cells: usize,
    ) -> Result<(), QueryError>;
    fn emit(&mut self, cell: usize, out: &mut Vec<Point>);
}

impl Aggregator {
    /// A function over `field`.
    pub(super) fn new(kind: AggKind, field: &str, descending: bool) -> Aggregator {
        Aggregator {
            kind,
            field: field.to_owned(),
            acc: None,
            input_type: None,
            descending,
        }
    }

    /// Feeds one batch: `cells[row]` is the row's cell or [`NO_CELL`]; `aux` is the tag of
    /// `top`/`bottom` with a tag argument.
    pub(super) fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: Input<'_>,
        aux: Input<'_>,
        n_cells: usize,
    ) -> Result<(), QueryError> {
        if matches!(input, Input::Missing) {
            return Ok(());
        }
        if matches!(input, Input::Present(..)) && !matches!(self.kind, AggKind::Count) {
            // The planner asks for a field's presence only when nothing but `count` reads it.
            return Err(QueryError::Invalid(format!(
                "internal error: {}() was given the presence of {:?} without its values",
                fn_name(&self.kind),
                self.field
            )));
        }
        let acc = match &mut self.acc {
            Some(a) => a,
            None => {
                self.input_type = Some(input.field_type());
                self.acc
                    .insert(make(&self.kind, &self.field, &input, self.descending)?)
            }
        };
        acc.add(cells, times, &input, &aux, n_cells)
    }

    /// The points of `cell` (none when the cell saw no value).
    pub(super) fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(a) = &mut self.acc {
            a.emit(cell, out);
        }
    }

    /// The type of the function's values, once known (`fill(<number>)` casts to it).
    pub(super) fn output_type(&self) -> Option<FieldType> {
        match self.kind {
            AggKind::Count | AggKind::CountDistinct => Some(FieldType::Integer),
            AggKind::Mean | AggKind::Median | AggKind::Stddev => Some(FieldType::Float),
            _ => self.input_type,
        }
    }
}

fn make(
    kind: &AggKind,
    field: &str,
    input: &Input<'_>,
    descending: bool,
) -> Result<Box<dyn Acc>, QueryError> {
    let numeric = |b: &dyn Fn() -> Option<Box<dyn Acc>>| {
        b().ok_or_else(|| {
            QueryError::Invalid(format!(
                "unsupported {} iterator type: {} (field {field:?})",
                fn_name(kind),
                input.type_name()
            ))
        })
    };
    if input.is_tag() && !matches!(kind, AggKind::Distinct | AggKind::CountDistinct) {
        return Err(QueryError::Unsupported(format!(
            "{}() over the tag {field:?} (only distinct() reads tags)",
            fn_name(kind)
        )));
    }
    Ok(match kind {
        AggKind::Count => Box::new(Count(Vec::new())),
        AggKind::CountDistinct => Box::new(Distinct::new(input, true, descending)),
        AggKind::Distinct => Box::new(Distinct::new(input, false, descending)),
        AggKind::First => Box::new(FirstLast {
            first: true,
            best: Vec::new(),
        }),
        AggKind::Last => Box::new(FirstLast {
            first: false,
            best: Vec::new(),
        }),
        other => numeric(&|| by_type(other, input))?,
    })
}

fn fn_name(kind: &AggKind) -> &'static str {
    match kind {
        AggKind::Count | AggKind::CountDistinct => "count",
        AggKind::Sum => "sum",
        AggKind::Mean => "mean",
        AggKind::Min => "min",
        AggKind::Max => "max",
        AggKind::First => "first",
        AggKind::Last => "last",
        AggKind::Median => "median",
        AggKind::Percentile(_) => "percentile",
        AggKind::Spread => "spread",
        AggKind::Stddev => "stddev",
        AggKind::Distinct => "distinct",
        AggKind::Top { .. } => "top",
        AggKind::Bottom { .. } => "bottom",
    }
}

fn by_type(kind: &AggKind, input: &Input<'_>) -> Option<Box<dyn Acc>> {
    match input {
        Input::F64(_) => Some(numeric::<f64>(kind)),
        Input::I64(_) => Some(numeric::<i64>(kind)),
        Input::U64(_) => Some(numeric::<u64>(kind)),
        _ => None,
    }
}

fn numeric<T: Num>(kind: &AggKind) -> Box<dyn Acc> {
    match kind {
        AggKind::Sum => Box::new(Sum::<T>(Vec::new())),
        AggKind::Mean => Box::new(Mean::<T>(Vec::new(), std::marker::PhantomData)),
        AggKind::Min => Box::new(MinMax::<T> {
            max: false,
            best: Vec::new(),
        }),
        AggKind::Max => Box::new(MinMax::<T> {
            max: true,
            best: Vec::new(),
        }),
        AggKind::Spread => Box::new(Spread::<T>(Vec::new())),
        AggKind::Top { n, tag: Some(_) } => Box::new(TopByTag::<T> {
            top: true,
            n: *n,
            cells: Vec::new(),
        }),
        AggKind::Bottom { n, tag: Some(_) } => Box::new(TopByTag::<T> {
            top: false,
            n: *n,
            cells: Vec::new(),
        }),
        other => Box::new(Collect::<T> {
            kind: other.clone(),
            values: Vec::new(),
        }),
    }
}

/// The numeric field types.
trait Num: Copy + PartialOrd + Default + std::fmt::Debug + 'static {
    fn slice<'a>(input: &Input<'a>) -> Option<&'a [Option<Self>]>;
    fn value(self) -> Value;
    fn to_f64(self) -> f64;
    /// Wrapping for integers, as Go's arithmetic.
    fn plus(self, o: Self) -> Self;
    fn minus(self, o: Self) -> Self;
    fn order(&self, o: &Self) -> Ordering;
}

macro_rules! int_num {
    ($t:ty, $variant:ident, $value:ident) => {
        impl Num for $t {
            fn slice<'a>(input: &Input<'a>) -> Option<&'a [Option<$t>]> {
                match input {
                    Input::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn value(self) -> Value {
                Value::$value(self)
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn plus(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn minus(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn order(&self, o: &Self) -> Ordering {
                self.cmp(o)
            }
        }
    };
}
int_num!(i64, I64, Integer);
int_num!(u64, U64, Unsigned);

impl Num for f64 {
    fn slice<'a>(input: &Input<'a>) -> Option<&'a [Option<f64>]> {
        match input {
            Input::F64(v) => Some(v),
            _ => None,
        }
    }
    fn value(self) -> Value {
        Value::Float(self)
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn plus(self, o: Self) -> Self {
        self + o
    }
    fn minus(self, o: Self) -> Self {
        self - o
    }
    fn order(&self, o: &Self) -> Ordering {
        self.total_cmp(o)
    }
}

fn conflict(input: &Input<'_>) -> QueryError {
    QueryError::Invalid(format!(
        "field type conflict: a batch holds {} values where another held a different type",
        input.type_name()
    ))
}

/// Calls `f(cell, row, value)` for every row that takes part and has a value.
fn each<T: Copy>(cells: &[u32], values: &[Option<T>], mut f: impl FnMut(usize, usize, T)) {
    for (row, (&c, v)) in cells.iter().zip(values).enumerate() {
        if c != NO_CELL
            && let Some(v) = v
        {
            f(c as usize, row, *v);
        }
    }
}

fn grow<S: Default + Clone>(v: &mut Vec<S>, n: usize) {
    if v.len() < n {
        v.resize(n, S::default());
    }
}
