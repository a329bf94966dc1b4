//! The residual `WHERE` condition (what is left after [`super::condition`] took the time range
//! and the tenant), evaluated per batch into a row mask. Tag comparisons are decided once per
//! dictionary entry and then looked up by id; everything else is evaluated row by row. As in
//! InfluxQL, a missing tag reads as `""` and a comparison with a missing field is false.

use std::cmp::Ordering;
use std::collections::HashSet;

use regex::Regex;

use super::super::QueryError;
use super::super::ast::{BinaryOp, Expr, Literal};
use super::columns::{Col, Kind, resolve};
use super::plan::compile;
use crate::scan::{ColumnBatch, FieldValues, NO_TAG};

/// A compiled condition.
#[derive(Debug)]
pub(super) enum Cond {
    /// Both hold.
    And(Box<Cond>, Box<Cond>),
    /// Either holds.
    Or(Box<Cond>, Box<Cond>),
    /// A comparison.
    Cmp(Operand, BinaryOp, Operand),
}

/// One side of a comparison.
#[derive(Debug)]
pub(super) enum Operand {
    /// A tag or field.
    Ref(String, Kind),
    /// A literal.
    Lit(Scalar<'static>),
    /// `/re/`
    Regex(Regex),
    /// Arithmetic.
    Arith(Box<Operand>, BinaryOp, Box<Operand>),
}

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Scalar<'a> {
    /// Missing field.
    Null,
    /// Float.
    F(f64),
    /// Integer.
    I(i64),
    /// Unsigned.
    U(u64),
    /// Boolean.
    B(bool),
    /// String, tag value.
    S(std::borrow::Cow<'a, str>),
}

impl Cond {
    /// Compiles a residual condition.
    pub(super) fn new(e: &Expr) -> Result<Cond, QueryError> {
        match e {
            Expr::Paren(inner) => Cond::new(inner),
            Expr::Binary { op, lhs, rhs } => match op {
                BinaryOp::And => Ok(Cond::And(
                    Box::new(Cond::new(lhs)?),
                    Box::new(Cond::new(rhs)?),
                )),
                BinaryOp::Or => Ok(Cond::Or(
                    Box::new(Cond::new(lhs)?),
                    Box::new(Cond::new(rhs)?),
                )),
                BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
                | BinaryOp::EqRegex
                | BinaryOp::NotEqRegex => Ok(Cond::Cmp(operand(lhs)?, *op, operand(rhs)?)),
                _ => Err(QueryError::Invalid(format!(
                    "invalid condition: {e:?} is not a comparison"
                ))),
            },
            other => Err(QueryError::Unsupported(format!("condition {other:?}"))),
        }
    }

    /// Clears `mask[row]` for rows that fail the condition. `fields` are the names known to
    /// be fields: absent from a batch, they read as null (no match) rather than as an empty
    /// tag.
    pub(super) fn apply(&self, batch: &ColumnBatch, fields: &HashSet<String>, mask: &mut [bool]) {
        let keep = self.eval(batch, fields);
        for (m, k) in mask.iter_mut().zip(keep) {
            *m &= k;
        }
    }

    fn eval(&self, batch: &ColumnBatch, fields: &HashSet<String>) -> Vec<bool> {
        let n = batch.len();
        match self {
            Cond::And(a, b) => {
                let mut l = a.eval(batch, fields);
                for (x, y) in l.iter_mut().zip(b.eval(batch, fields)) {
                    *x &= y;
                }
                l
            }
            Cond::Or(a, b) => {
                let mut l = a.eval(batch, fields);
                for (x, y) in l.iter_mut().zip(b.eval(batch, fields)) {
                    *x |= y;
                }
                l
            }
            Cond::Cmp(l, op, r) => {
                if let Some(v) = tag_fast_path(batch, fields, l, *op, r) {
                    return v;
                }
                let l = l.bind(batch, fields);
                let r = r.bind(batch, fields);
                (0..n)
                    .map(|row| compare(&l.at(row), *op, &r.at(row)))
                    .collect()
            }
        }
    }
}

fn operand(e: &Expr) -> Result<Operand, QueryError> {
    match e {
        Expr::Paren(inner) => operand(inner),
        Expr::VarRef { name, cast } => {
            Ok(Operand::Ref(name.clone(), Kind::of_cast(cast.as_deref())))
        }
        Expr::Regex(p) => Ok(Operand::Regex(compile(p)?)),
        Expr::Literal(l) => Ok(Operand::Lit(match l {
            Literal::Integer(i) => Scalar::I(*i),
            Literal::Unsigned(u) => Scalar::U(*u),
            Literal::Float(f) => Scalar::F(*f),
            Literal::String(s) => Scalar::S(s.clone().into()),
            Literal::Boolean(b) => Scalar::B(*b),
            Literal::Duration(d) => Scalar::I(*d),
        })),
        Expr::Binary {
            op: op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod),
            lhs,
            rhs,
        } => Ok(Operand::Arith(
            Box::new(operand(lhs)?),
            *op,
            Box::new(operand(rhs)?),
        )),
        other => Err(QueryError::Unsupported(format!("{other:?} in WHERE"))),
    }
}

/// `tag op 'literal'` and `tag op /re/` (either side): decided per dictionary entry.
fn tag_fast_path(
    batch: &ColumnBatch,
    fields: &HashSet<String>,
    l: &Operand,
    op: BinaryOp,
    r: &Operand,
) -> Option<Vec<bool>> {
    let (name, kind, other, op) = match (l, r) {
        (Operand::Ref(n, k), o @ (Operand::Lit(Scalar::S(_)) | Operand::Regex(_))) => {
            (n, *k, o, op)
        }
        (o @ (Operand::Lit(Scalar::S(_)) | Operand::Regex(_)), Operand::Ref(n, k)) => {
            (n, *k, o, flip(op))
        }
        _ => return None,
    };
    let test = |v: &str| compare_str(v, op, other);
    match resolve(batch, name, kind) {
        Col::Tenant(t) => Some(vec![test(t); batch.len()]),
        Col::Missing if fields.contains(name.as_str()) => Some(vec![false; batch.len()]),
        Col::Missing => Some(vec![test(""); batch.len()]),
        Col::Tag(t) => {
            let by_id: Vec<bool> = t.dict.iter().map(|v| test(v)).collect();
            let missing = test("");
            Some(
                t.ids
                    .iter()
                    .map(|&id| {
                        if id == NO_TAG {
                            missing
                        } else {
                            by_id.get(id as usize).copied().unwrap_or(missing)
                        }
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::LtEq => BinaryOp::GtEq,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::GtEq => BinaryOp::LtEq,
        other => other,
    }
}

fn compare_str(v: &str, op: BinaryOp, other: &Operand) -> bool {
    match (op, other) {
        (BinaryOp::EqRegex, Operand::Regex(re)) => re.is_match(v),
        (BinaryOp::NotEqRegex, Operand::Regex(re)) => !re.is_match(v),
        (_, Operand::Lit(Scalar::S(s))) => ordered(op, v.cmp(s.as_ref())),
        _ => false,
    }
}

fn ordered(op: BinaryOp, o: Ordering) -> bool {
    match op {
        BinaryOp::Eq => o == Ordering::Equal,
        BinaryOp::NotEq => o != Ordering::Equal,
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::LtEq => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        BinaryOp::GtEq => o != Ordering::Less,
        _ => false,
    }
}

/// An operand bound to one batch's columns.
enum Bound<'a> {
    Col(Col<'a>),
    /// A field absent from the batch.
    Null,
    Lit(&'a Scalar<'static>),
    Regex(&'a Regex),
    Arith(Box<Bound<'a>>, BinaryOp, Box<Bound<'a>>),
}

impl Operand {
    fn bind<'a>(&'a self, batch: &'a ColumnBatch, fields: &HashSet<String>) -> Bound<'a> {
        match self {
            Operand::Ref(n, k) => match resolve(batch, n, *k) {
                Col::Missing if fields.contains(n.as_str()) => Bound::Null,
                c => Bound::Col(c),
            },
            Operand::Lit(s) => Bound::Lit(s),
            Operand::Regex(r) => Bound::Regex(r),
            Operand::Arith(a, op, b) => Bound::Arith(
                Box::new(a.bind(batch, fields)),
                *op,
                Box::new(b.bind(batch, fields)),
            ),
        }
    }
}

/// What a bound operand is at one row.
enum At<'a> {
    V(Scalar<'a>),
    Re(&'a Regex),
}

impl<'a> Bound<'a> {
    fn at(&self, row: usize) -> At<'a> {
        match self {
            Bound::Regex(r) => At::Re(r),
            Bound::Null => At::V(Scalar::Null),
            Bound::Lit(s) => At::V((*s).clone()),
            Bound::Col(c) => At::V(scalar(c, row)),
            Bound::Arith(a, op, b) => match (a.at(row), b.at(row)) {
                (At::V(x), At::V(y)) => At::V(arith(&x, *op, &y)),
                _ => At::V(Scalar::Null),
            },
        }
    }
}

fn scalar<'a>(c: &Col<'a>, row: usize) -> Scalar<'a> {
    match c {
        Col::Tenant(t) => Scalar::S((*t).into()),
        Col::Tag(t) => Scalar::S(t.value(row).unwrap_or("").into()),
        Col::Missing => Scalar::S("".into()),
        Col::EventId(ids) => ids.get(row).map_or(Scalar::Null, |s| Scalar::S(s.into())),
        Col::Field(values) => {
            let v = match values {
                FieldValues::F64(v) => v.get(row).copied().flatten().map(Scalar::F),
                FieldValues::I64(v) => v.get(row).copied().flatten().map(Scalar::I),
                FieldValues::U64(v) => v.get(row).copied().flatten().map(Scalar::U),
                FieldValues::Bool(v) => v.get(row).copied().flatten().map(Scalar::B),
                FieldValues::Str(v) => v.get(row).map(|s| Scalar::S(s.into())),
            };
            v.unwrap_or(Scalar::Null)
        }
    }
}

fn as_f64(s: &Scalar<'_>) -> Option<f64> {
    match s {
        Scalar::F(f) => Some(*f),
        Scalar::I(i) => Some(*i as f64),
        Scalar::U(u) => Some(*u as f64),
        _ => None,
    }
}

fn arith<'a>(x: &Scalar<'a>, op: BinaryOp, y: &Scalar<'a>) -> Scalar<'a> {
    if let (Scalar::I(a), Scalar::I(b)) = (x, y) {
        return match op {
            BinaryOp::Add => Scalar::I(a.wrapping_add(*b)),
            BinaryOp::Sub => Scalar::I(a.wrapping_sub(*b)),
            BinaryOp::Mul => Scalar::I(a.wrapping_mul(*b)),
            BinaryOp::Div => a.checked_div(*b).map_or(Scalar::Null, Scalar::I),
            BinaryOp::Mod => a.checked_rem(*b).map_or(Scalar::Null, Scalar::I),
            _ => Scalar::Null,
        };
    }
    match (as_f64(x), as_f64(y)) {
        (Some(a), Some(b)) => match op {
            BinaryOp::Add => Scalar::F(a + b),
            BinaryOp::Sub => Scalar::F(a - b),
            BinaryOp::Mul => Scalar::F(a * b),
            BinaryOp::Div => Scalar::F(a / b),
            BinaryOp::Mod => Scalar::F(a % b),
            _ => Scalar::Null,
        },
        _ => Scalar::Null,
    }
}

fn compare(l: &At<'_>, op: BinaryOp, r: &At<'_>) -> bool {
    match (l, r) {
        (At::V(Scalar::S(s)), At::Re(re)) | (At::Re(re), At::V(Scalar::S(s))) => match op {
            BinaryOp::EqRegex => re.is_match(s),
            BinaryOp::NotEqRegex => !re.is_match(s),
            _ => false,
        },
        (At::V(a), At::V(b)) => {
            let o = match (a, b) {
                (Scalar::S(x), Scalar::S(y)) => Some(x.cmp(y)),
                (Scalar::B(x), Scalar::B(y)) if matches!(op, BinaryOp::Eq | BinaryOp::NotEq) => {
                    Some(x.cmp(y))
                }
                (Scalar::I(x), Scalar::I(y)) => Some(x.cmp(y)),
                (Scalar::U(x), Scalar::U(y)) => Some(x.cmp(y)),
                _ => match (as_f64(a), as_f64(b)) {
                    (Some(x), Some(y)) => x.partial_cmp(&y),
                    _ => None,
                },
            };
            o.is_some_and(|o| ordered(op, o))
        }
        _ => false,
    }
}
