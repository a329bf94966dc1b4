//! Aggregate and selector functions, column at a time. Rows arrive with the cell (series ×
//! bucket) they belong to, precomputed per batch; each function keeps one state per cell in a
//! flat vector and walks the typed value slice in a tight loop. Results follow InfluxDB 1.x's
//! definitions (percentile's nearest-rank index, median's midpoint, sample stddev, value types
//! kept where InfluxDB keeps them).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::super::{QueryError, Value};
use super::columns::Col;
use super::plan::AggKind;
use crate::scan::{FieldValues, NO_TAG, StrColumn};

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

    fn type_name(&self) -> &'static str {
        match self {
            Input::F64(_) => "float",
            Input::I64(_) => "integer",
            Input::U64(_) => "unsigned",
            Input::Bool(_) => "boolean",
            Input::Str(_) => "string",
            Input::Tag { .. } | Input::Const(_) => "tag",
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
            Input::Missing => None,
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
    int_input: bool,
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
    pub(super) fn new(kind: AggKind, field: &str) -> Aggregator {
        Aggregator {
            kind,
            field: field.to_owned(),
            acc: None,
            int_input: false,
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
        let acc = match &mut self.acc {
            Some(a) => a,
            None => {
                self.int_input = matches!(input, Input::I64(_) | Input::U64(_));
                self.acc.insert(make(&self.kind, &self.field, &input)?)
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

    /// True when the function's values are integers (so that `fill(<number>)` casts).
    pub(super) fn is_integer(&self) -> bool {
        self.kind.is_count()
            || (self.int_input
                && !matches!(self.kind, AggKind::Mean | AggKind::Median | AggKind::Stddev))
    }
}

fn make(kind: &AggKind, field: &str, input: &Input<'_>) -> Result<Box<dyn Acc>, QueryError> {
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
        AggKind::CountDistinct => Box::new(Distinct::new(input, true)),
        AggKind::Distinct => Box::new(Distinct::new(input, false)),
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

struct Count(Vec<u64>);

impl Acc for Count {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        grow(&mut self.0, n);
        let counts = &mut self.0;
        let mut bump = |c: u32| {
            if let Some(x) = counts.get_mut(c as usize) {
                *x += 1;
            }
        };
        fn present<T>(cells: &[u32], v: &[Option<T>], bump: &mut impl FnMut(u32)) {
            for (&c, v) in cells.iter().zip(v) {
                if c != NO_CELL && v.is_some() {
                    bump(c);
                }
            }
        }
        match input {
            Input::F64(v) => present(cells, v, &mut bump),
            Input::I64(v) => present(cells, v, &mut bump),
            Input::U64(v) => present(cells, v, &mut bump),
            Input::Bool(v) => present(cells, v, &mut bump),
            Input::Str(v) => {
                for (row, &c) in cells.iter().enumerate() {
                    if c != NO_CELL && v.get(row).is_some() {
                        bump(c);
                    }
                }
            }
            Input::Tag { .. } | Input::Const(_) | Input::Missing => {}
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(&n) = self.0.get(cell)
            && n > 0
        {
            out.push(Point::plain(Value::Integer(
                i64::try_from(n).unwrap_or(i64::MAX),
            )));
        }
    }
}

struct Sum<T>(Vec<Option<T>>);

impl<T: Num> Acc for Sum<T> {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.0, n);
        let sums = &mut self.0;
        each(cells, values, |c, _, v| {
            if let Some(s) = sums.get_mut(c) {
                *s = Some(s.map_or(v, |s| s.plus(v)));
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some(s)) = self.0.get(cell) {
            out.push(Point::plain(s.value()));
        }
    }
}

struct Mean<T>(Vec<(f64, u64)>, std::marker::PhantomData<T>);

impl<T: Num> Acc for Mean<T> {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.0, n);
        let acc = &mut self.0;
        each(cells, values, |c, _, v| {
            if let Some((s, k)) = acc.get_mut(c) {
                *s += v.to_f64();
                *k += 1;
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(&(s, k)) = self.0.get(cell)
            && k > 0
        {
            out.push(Point::plain(Value::Float(s / k as f64)));
        }
    }
}

struct MinMax<T> {
    max: bool,
    best: Vec<Option<(T, i64)>>,
}

impl<T: Num> Acc for MinMax<T> {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.best, n);
        let (best, max) = (&mut self.best, self.max);
        each(cells, values, |c, row, v| {
            let t = times.get(row).copied().unwrap_or(0);
            if let Some(b) = best.get_mut(c) {
                let better = match b {
                    None => true,
                    Some((cur, ct)) => {
                        let o = v.order(cur);
                        (if max {
                            o == Ordering::Greater
                        } else {
                            o == Ordering::Less
                        }) || (o == Ordering::Equal && t < *ct)
                    }
                };
                if better {
                    *b = Some((v, t));
                }
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some((v, t))) = self.best.get(cell) {
            out.push(Point::at(*t, v.value()));
        }
    }
}

struct Spread<T>(Vec<Option<(T, T)>>);

impl<T: Num> Acc for Spread<T> {
    fn add(
        &mut self,
        cells: &[u32],
        _: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.0, n);
        let mm = &mut self.0;
        each(cells, values, |c, _, v| {
            if let Some(m) = mm.get_mut(c) {
                *m = Some(match *m {
                    None => (v, v),
                    Some((lo, hi)) => (
                        if v.order(&lo) == Ordering::Less {
                            v
                        } else {
                            lo
                        },
                        if v.order(&hi) == Ordering::Greater {
                            v
                        } else {
                            hi
                        },
                    ),
                });
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some((lo, hi))) = self.0.get(cell) {
            out.push(Point::plain(hi.minus(*lo).value()));
        }
    }
}

struct FirstLast {
    first: bool,
    best: Vec<Option<(i64, Value)>>,
}

impl Acc for FirstLast {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        grow(&mut self.best, n);
        for (row, (&c, &t)) in cells.iter().zip(times).enumerate() {
            if c == NO_CELL {
                continue;
            }
            let Some(b) = self.best.get_mut(c as usize) else {
                continue;
            };
            let better = match b {
                None => true,
                Some((ct, _)) => {
                    if self.first {
                        t < *ct
                    } else {
                        t > *ct
                    }
                }
            };
            if better && let Some(v) = input.value(row) {
                *b = Some((t, v));
            }
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        if let Some(Some((t, v))) = self.best.get(cell) {
            out.push(Point::at(*t, v.clone()));
        }
    }
}

/// Functions that need every value of a cell: median, percentile, stddev, top, bottom.
struct Collect<T> {
    kind: AggKind,
    values: Vec<Vec<(T, i64)>>,
}

impl<T: Num> Acc for Collect<T> {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        grow(&mut self.values, n);
        let all = &mut self.values;
        each(cells, values, |c, row, v| {
            if let Some(cell) = all.get_mut(c) {
                cell.push((v, times.get(row).copied().unwrap_or(0)));
            }
        });
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        let Some(a) = self.values.get_mut(cell) else {
            return;
        };
        if a.is_empty() {
            return;
        }
        match &self.kind {
            AggKind::Median => {
                // Selection instead of a full sort: O(n) per cell.
                let (mid, even) = (a.len() / 2, a.len() % 2 == 0);
                let (lower, m, _) = a.select_nth_unstable_by(mid, |x, y| x.0.order(&y.0));
                let hi = m.0.to_f64();
                let v = if even {
                    match lower.iter().map(|p| p.0).max_by(|x, y| x.order(y)) {
                        Some(lo) => {
                            let lo = lo.to_f64();
                            lo + (hi - lo) / 2.0
                        }
                        None => return,
                    }
                } else {
                    hi
                };
                out.push(Point::plain(Value::Float(v)));
            }
            AggKind::Percentile(p) => {
                // InfluxDB's nearest rank: index floor(n * p / 100 + 0.5) - 1, none outside.
                let i = (a.len() as f64 * p / 100.0 + 0.5).floor() as i64 - 1;
                let Some(i) = usize::try_from(i).ok().filter(|&i| i < a.len()) else {
                    return;
                };
                let (_, (v, t), _) =
                    a.select_nth_unstable_by(i, |x, y| x.0.order(&y.0).then(x.1.cmp(&y.1)));
                out.push(Point::at(*t, v.value()));
            }
            AggKind::Stddev => {
                if a.len() < 2 {
                    out.push(Point::plain(Value::Null));
                    return;
                }
                // Go's two passes: a running mean, then the squared deviations.
                let mut mean = 0.0;
                for (k, (v, _)) in a.iter().enumerate() {
                    mean += (v.to_f64() - mean) / (k + 1) as f64;
                }
                let var: f64 = a.iter().map(|(v, _)| (v.to_f64() - mean).powi(2)).sum();
                out.push(Point::plain(Value::Float(
                    (var / (a.len() - 1) as f64).sqrt(),
                )));
            }
            AggKind::Top { n, .. } | AggKind::Bottom { n, .. } => {
                let top = matches!(self.kind, AggKind::Top { .. });
                a.sort_by(|x, y| rank(top, x, y));
                a.truncate(*n);
                a.sort_by_key(|p| p.1);
                out.extend(a.iter().map(|(v, t)| Point::at(*t, v.value())));
            }
            _ => {}
        }
    }
}

/// Order of `top` (largest first) or `bottom` (smallest first), earliest first on ties.
fn rank<T: Num>(top: bool, x: &(T, i64), y: &(T, i64)) -> Ordering {
    let o = x.0.order(&y.0);
    let o = if top { o.reverse() } else { o };
    o.then(x.1.cmp(&y.1))
}

/// `top(f, tag, n)` / `bottom(f, tag, n)`: the best point per tag value, then the best `n`.
struct TopByTag<T> {
    top: bool,
    n: usize,
    cells: Vec<HashMap<Option<String>, (T, i64)>>,
}

impl<T: Num> Acc for TopByTag<T> {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        aux: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let values = T::slice(input).ok_or_else(|| conflict(input))?;
        if self.cells.len() < n {
            self.cells.resize_with(n, HashMap::new);
        }
        // Reduce per (cell, dictionary id) first so that strings are touched once per batch.
        let mut local: HashMap<(u32, u32), (T, i64)> = HashMap::new();
        let top = self.top;
        each(cells, values, |c, row, v| {
            let id = match aux {
                Input::Tag { ids, .. } => ids.get(row).copied().unwrap_or(NO_TAG),
                Input::Const(_) => 0,
                _ => NO_TAG,
            };
            let t = times.get(row).copied().unwrap_or(0);
            let key = (c as u32, id);
            match local.get_mut(&key) {
                Some(cur) => {
                    if rank(top, &(v, t), cur) == Ordering::Less {
                        *cur = (v, t);
                    }
                }
                None => {
                    local.insert(key, (v, t));
                }
            }
        });
        for ((c, id), p) in local {
            let name = match aux {
                Input::Tag { dict, .. } if id != NO_TAG => dict.get(id as usize).cloned(),
                Input::Const(s) => Some((*s).to_owned()),
                _ => None,
            };
            if let Some(m) = self.cells.get_mut(c as usize) {
                match m.get_mut(&name) {
                    Some(cur) => {
                        if rank(top, &p, cur) == Ordering::Less {
                            *cur = p;
                        }
                    }
                    None => {
                        m.insert(name, p);
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        let Some(m) = self.cells.get(cell) else {
            return;
        };
        let mut pts: Vec<(&Option<String>, &(T, i64))> = m.iter().collect();
        pts.sort_by(|x, y| rank(self.top, x.1, y.1).then(x.0.cmp(y.0)));
        pts.truncate(self.n);
        pts.sort_by_key(|p| p.1.1);
        out.extend(pts.into_iter().map(|(tag, (v, t))| {
            Point {
                time: Some(*t),
                value: v.value(),
                aux: Some(
                    tag.as_ref()
                        .map_or(Value::Null, |s| Value::String(s.clone())),
                ),
            }
        }));
    }
}

/// `distinct(x)` and `count(distinct(x))`, over fields of any type and over tags. Each value
/// keeps the time it was first seen: InfluxDB lists distinct values in that order.
struct Distinct {
    count_only: bool,
    sets: Sets,
}

type FirstSeen<K> = Vec<HashMap<K, i64>>;

enum Sets {
    /// Numbers by bit pattern, with the type to decode them.
    Num(FirstSeen<u64>, u8),
    Bool(FirstSeen<bool>),
    Str(FirstSeen<String>),
}

const F: u8 = 0;
const I: u8 = 1;
const U: u8 = 2;

impl Distinct {
    fn new(input: &Input<'_>, count_only: bool) -> Distinct {
        let sets = match input {
            Input::F64(_) => Sets::Num(Vec::new(), F),
            Input::I64(_) => Sets::Num(Vec::new(), I),
            Input::U64(_) => Sets::Num(Vec::new(), U),
            Input::Bool(_) => Sets::Bool(Vec::new()),
            _ => Sets::Str(Vec::new()),
        };
        Distinct { count_only, sets }
    }
}

/// Records `key` as seen at `t` in `set`, keeping the earliest time.
fn see<K: std::hash::Hash + Eq>(set: &mut HashMap<K, i64>, key: K, t: i64) {
    set.entry(key).and_modify(|e| *e = (*e).min(t)).or_insert(t);
}

fn sized<K>(sets: &mut FirstSeen<K>, n: usize) {
    if sets.len() < n {
        sets.resize_with(n, HashMap::new);
    }
}

impl Acc for Distinct {
    fn add(
        &mut self,
        cells: &[u32],
        times: &[i64],
        input: &Input<'_>,
        _: &Input<'_>,
        n: usize,
    ) -> Result<(), QueryError> {
        let time = |row: usize| times.get(row).copied().unwrap_or(0);
        match (&mut self.sets, input) {
            (Sets::Num(sets, F), Input::F64(v)) => num_sets(sets, n, cells, times, v, f64::to_bits),
            (Sets::Num(sets, I), Input::I64(v)) => num_sets(sets, n, cells, times, v, |x| x as u64),
            (Sets::Num(sets, U), Input::U64(v)) => num_sets(sets, n, cells, times, v, |x| x),
            (Sets::Bool(sets), Input::Bool(v)) => {
                sized(sets, n);
                each(cells, v, |c, row, b| {
                    if let Some(s) = sets.get_mut(c) {
                        see(s, b, time(row));
                    }
                });
            }
            (Sets::Str(sets), Input::Str(v)) => {
                sized(sets, n);
                for (row, &c) in cells.iter().enumerate() {
                    if c == NO_CELL {
                        continue;
                    }
                    if let (Some(s), Some(set)) = (v.get(row), sets.get_mut(c as usize)) {
                        // Look up by &str first: a String is allocated only for a new value.
                        match set.get_mut(s) {
                            Some(e) => *e = (*e).min(time(row)),
                            None => {
                                set.insert(s.to_owned(), time(row));
                            }
                        }
                    }
                }
            }
            (Sets::Str(sets), Input::Tag { ids, dict }) => {
                sized(sets, n);
                // One string lookup per (cell, dictionary id) and batch.
                let mut local: HashMap<(u32, u32), i64> = HashMap::new();
                for (row, (&c, &id)) in cells.iter().zip(ids.iter()).enumerate() {
                    if c != NO_CELL && id != NO_TAG {
                        see(&mut local, (c, id), time(row));
                    }
                }
                for ((c, id), t) in local {
                    if let (Some(s), Some(set)) = (dict.get(id as usize), sets.get_mut(c as usize))
                    {
                        match set.get_mut(s.as_str()) {
                            Some(e) => *e = (*e).min(t),
                            None => {
                                set.insert(s.clone(), t);
                            }
                        }
                    }
                }
            }
            (Sets::Str(sets), Input::Const(s)) => {
                sized(sets, n);
                for (row, &c) in cells.iter().enumerate() {
                    if let Some(set) = sets.get_mut(c as usize) {
                        match set.get_mut(*s) {
                            Some(e) => *e = (*e).min(time(row)),
                            None => {
                                set.insert((*s).to_owned(), time(row));
                            }
                        }
                    }
                }
            }
            (_, other) => return Err(conflict(other)),
        }
        Ok(())
    }

    fn emit(&mut self, cell: usize, out: &mut Vec<Point>) {
        let values: Vec<Value> = match &self.sets {
            Sets::Num(sets, ty) => {
                let Some(s) = sets.get(cell) else { return };
                let decode = |b: u64| match *ty {
                    F => Value::Float(f64::from_bits(b)),
                    I => Value::Integer(b as i64),
                    _ => Value::Unsigned(b),
                };
                in_first_seen_order(s, |a, b| match *ty {
                    F => f64::from_bits(*a).total_cmp(&f64::from_bits(*b)),
                    I => (*a as i64).cmp(&(*b as i64)),
                    _ => a.cmp(b),
                })
                .into_iter()
                .map(|b| decode(*b))
                .collect()
            }
            Sets::Bool(sets) => {
                let Some(s) = sets.get(cell) else { return };
                in_first_seen_order(s, bool::cmp)
                    .into_iter()
                    .map(|b| Value::Bool(*b))
                    .collect()
            }
            Sets::Str(sets) => {
                let Some(s) = sets.get(cell) else { return };
                in_first_seen_order(s, String::cmp)
                    .into_iter()
                    .map(|s| Value::String(s.clone()))
                    .collect()
            }
        };
        if values.is_empty() {
            return;
        }
        if self.count_only {
            out.push(Point::plain(Value::Integer(
                i64::try_from(values.len()).unwrap_or(i64::MAX),
            )));
        } else {
            out.extend(values.into_iter().map(Point::plain));
        }
    }
}

/// The keys ordered by the time they were first seen, then by value.
fn in_first_seen_order<K>(set: &HashMap<K, i64>, cmp: impl Fn(&K, &K) -> Ordering) -> Vec<&K> {
    let mut v: Vec<(&K, i64)> = set.iter().map(|(k, t)| (k, *t)).collect();
    v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| cmp(a.0, b.0)));
    v.into_iter().map(|(k, _)| k).collect()
}

fn num_sets<T: Copy>(
    sets: &mut FirstSeen<u64>,
    n: usize,
    cells: &[u32],
    times: &[i64],
    v: &[Option<T>],
    bits: impl Fn(T) -> u64,
) {
    sized(sets, n);
    each(cells, v, |c, row, x| {
        if let Some(s) = sets.get_mut(c) {
            see(s, bits(x), times.get(row).copied().unwrap_or(0));
        }
    });
}
