//! The `WHERE` of a `SHOW` statement: tag comparisons joined by `AND` / `OR`, and time bounds.
//!
//! As InfluxDB 1.x does, time comparisons are taken out of the condition (wherever they sit,
//! even under an `OR`) and become one time range; what is left must compare tags with `=`,
//! `!=`, `=~` or `!~`. A tag a row lacks reads as `""`.

use std::ops::Range;

use super::super::QueryError;
use super::super::ast::{BinaryOp, Expr, Literal};
use super::super::select::condition::time_value;
use super::regex;
use crate::catalog::MeasurementInfo;
use crate::scan::{TagOp, TagPredicate};

/// A tag condition.
#[derive(Clone, Debug)]
pub(super) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Tag { key: String, op: TagOp },
}

/// A `WHERE` split into its tag condition and its time range.
#[derive(Debug, Default)]
pub(super) struct Where {
    pub cond: Option<Cond>,
    /// `[start, end)` in ns; `None` when the condition has no time bound.
    pub time: Option<Range<i64>>,
}

impl Where {
    /// Splits `expr`; `now` is `now()` in ns, `statement` names the statement in errors.
    pub fn parse(expr: Option<&Expr>, now: i64, statement: &str) -> Result<Where, QueryError> {
        let mut w = Where::default();
        if let Some(e) = expr {
            w.cond = w.split(e, now, statement)?;
        }
        Ok(w)
    }

    fn split(&mut self, e: &Expr, now: i64, statement: &str) -> Result<Option<Cond>, QueryError> {
        match e {
            Expr::Paren(inner) => self.split(inner, now, statement),
            Expr::Binary {
                op: op @ (BinaryOp::And | BinaryOp::Or),
                lhs,
                rhs,
            } => {
                let l = self.split(lhs, now, statement)?;
                let r = self.split(rhs, now, statement)?;
                Ok(match (l, r) {
                    (Some(l), Some(r)) if *op == BinaryOp::And => {
                        Some(Cond::And(Box::new(l), Box::new(r)))
                    }
                    (Some(l), Some(r)) => Some(Cond::Or(Box::new(l), Box::new(r))),
                    (l, r) => l.or(r),
                })
            }
            Expr::Binary { op, lhs, rhs } => {
                if is_time(lhs) || is_time(rhs) {
                    self.time_bound(*op, lhs, rhs, now)?;
                    return Ok(None);
                }
                tag_comparison(*op, lhs, rhs, statement).map(Some)
            }
            other => Err(QueryError::Unsupported(format!(
                "{statement} WHERE {other}: only tag comparisons joined by AND/OR and time \
                 bounds are answered"
            ))),
        }
    }

    fn time_bound(
        &mut self,
        op: BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        now: i64,
    ) -> Result<(), QueryError> {
        // `t < time` reads as `time > t`.
        let (op, value) = if is_time(lhs) {
            (op, rhs)
        } else {
            let flipped = match op {
                BinaryOp::Lt => BinaryOp::Gt,
                BinaryOp::LtEq => BinaryOp::GtEq,
                BinaryOp::Gt => BinaryOp::Lt,
                BinaryOp::GtEq => BinaryOp::LtEq,
                other => other,
            };
            (flipped, lhs)
        };
        let t = time_value(value, now, None)?;
        let bound = match op {
            BinaryOp::Gt => t.saturating_add(1)..i64::MAX,
            BinaryOp::GtEq => t..i64::MAX,
            BinaryOp::Lt => i64::MIN..t,
            BinaryOp::LtEq => i64::MIN..t.saturating_add(1),
            BinaryOp::Eq => t..t.saturating_add(1),
            other => {
                return Err(QueryError::Invalid(format!(
                    "invalid operator {other} on time"
                )));
            }
        };
        let r = self.time.take().unwrap_or(i64::MIN..i64::MAX);
        self.time = Some(r.start.max(bound.start)..r.end.min(bound.end));
        Ok(())
    }
}

fn is_time(e: &Expr) -> bool {
    matches!(e, Expr::VarRef { name, .. } if name.eq_ignore_ascii_case("time"))
}

fn tag_comparison(
    op: BinaryOp,
    lhs: &Expr,
    rhs: &Expr,
    statement: &str,
) -> Result<Cond, QueryError> {
    let Expr::VarRef { name: key, .. } = lhs else {
        return Err(QueryError::Invalid(format!(
            "left side of '{op}' must be a tag key"
        )));
    };
    let op = match (op, rhs) {
        (BinaryOp::Eq, Expr::Literal(Literal::String(v))) => TagOp::Eq(v.clone()),
        (BinaryOp::NotEq, Expr::Literal(Literal::String(v))) => TagOp::NotEq(v.clone()),
        (BinaryOp::EqRegex, Expr::Regex(re)) => TagOp::Regex(regex(re)?),
        (BinaryOp::NotEqRegex, Expr::Regex(re)) => TagOp::NotRegex(regex(re)?),
        (op, rhs) => {
            return Err(QueryError::Unsupported(format!(
                "{statement} WHERE {key} {op} {rhs}: tags compare with =, != (to a string) \
                 and =~, !~ (to a regex) only"
            )));
        }
    };
    Ok(Cond::Tag {
        key: key.clone(),
        op,
    })
}

impl Cond {
    /// Whether a row passes; `value(key)` is the row's value of `key` (`""` when absent).
    pub fn eval<'a>(&self, value: &impl Fn(&str) -> &'a str) -> bool {
        match self {
            Cond::And(l, r) => l.eval(value) && r.eval(value),
            Cond::Or(l, r) => l.eval(value) || r.eval(value),
            Cond::Tag { key, op } => op.matches(value(key)),
        }
    }

    /// Whether a measurement passes, the way InfluxDB 1.x's in-memory index answers `SHOW
    /// MEASUREMENTS WHERE`: a measurement without the key never passes; with it, `=` and
    /// `=~` pass when some value matches, `!=` and `!~` when none does (a missing tag is not
    /// a value here, unlike for rows).
    pub fn eval_measurement(&self, info: &MeasurementInfo) -> bool {
        match self {
            Cond::And(l, r) => l.eval_measurement(info) && r.eval_measurement(info),
            Cond::Or(l, r) => l.eval_measurement(info) || r.eval_measurement(info),
            Cond::Tag { key, op } => {
                let Some(values) = info.tags.get(key) else {
                    return false;
                };
                let (positive, test) = match op {
                    TagOp::Eq(v) | TagOp::NotEq(v) => {
                        (matches!(op, TagOp::Eq(_)), TagOp::Eq(v.clone()))
                    }
                    TagOp::Regex(re) | TagOp::NotRegex(re) => {
                        (matches!(op, TagOp::Regex(_)), TagOp::Regex(re.clone()))
                    }
                    TagOp::In(_) => (true, op.clone()),
                };
                values.iter().any(|v| test.matches(v)) == positive
            }
        }
    }

    /// Every tag key the condition reads.
    pub fn keys(&self, out: &mut Vec<String>) {
        match self {
            Cond::And(l, r) | Cond::Or(l, r) => {
                l.keys(out);
                r.keys(out);
            }
            Cond::Tag { key, .. } => {
                if !out.contains(key) {
                    out.push(key.clone());
                }
            }
        }
    }

    /// The comparisons every row must pass (the top-level `AND` chain), for a scan to prune.
    pub fn required(&self, out: &mut Vec<TagPredicate>) {
        match self {
            Cond::And(l, r) => {
                l.required(out);
                r.required(out);
            }
            Cond::Or(..) => {}
            Cond::Tag { key, op } => out.push(TagPredicate {
                key: key.clone(),
                op: op.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str) -> Box<Expr> {
        Box::new(Expr::VarRef {
            name: name.into(),
            cast: None,
        })
    }

    fn bin(op: BinaryOp, lhs: Box<Expr>, rhs: Box<Expr>) -> Expr {
        Expr::Binary { op, lhs, rhs }
    }

    fn lit(l: Literal) -> Box<Expr> {
        Box::new(Expr::Literal(l))
    }

    #[test]
    fn time_bounds_leave_the_condition_and_intersect() {
        let now = 10_000_000_000;
        let start = bin(
            BinaryOp::GtEq,
            var("time"),
            lit(Literal::String("1970-01-01T00:00:01Z".into())),
        );
        // `now() - 2s > time`, operands reversed.
        let end = bin(
            BinaryOp::Gt,
            Box::new(bin(
                BinaryOp::Sub,
                Box::new(Expr::Call {
                    name: "now".into(),
                    args: Vec::new(),
                }),
                lit(Literal::Duration(2_000_000_000)),
            )),
            var("time"),
        );
        let tag = bin(BinaryOp::Eq, var("host"), lit(Literal::String("a".into())));
        // Even under an OR, a time bound is taken out (as InfluxDB does).
        let e = bin(
            BinaryOp::And,
            Box::new(start),
            Box::new(bin(BinaryOp::Or, Box::new(end), Box::new(tag))),
        );
        let w = Where::parse(Some(&e), now, "SHOW TAG KEYS").unwrap();
        assert_eq!(w.time, Some(1_000_000_000..8_000_000_000));
        let cond = w.cond.unwrap();
        assert!(cond.eval(&|_| "a"));
        assert!(!cond.eval(&|_| "b"));

        let ns = bin(BinaryOp::LtEq, var("time"), lit(Literal::Integer(5)));
        let w = Where::parse(Some(&ns), now, "x").unwrap();
        assert_eq!(w.time, Some(i64::MIN..6));
        assert!(w.cond.is_none());
    }

    #[test]
    fn only_tag_comparisons_are_answered() {
        let field = bin(BinaryOp::Gt, var("rt"), lit(Literal::Integer(3)));
        assert!(matches!(
            Where::parse(Some(&field), 0, "SHOW TAG KEYS"),
            Err(QueryError::Unsupported(_))
        ));
        let bad_time = bin(
            BinaryOp::Gt,
            var("time"),
            lit(Literal::String("yesterday".into())),
        );
        assert!(matches!(
            Where::parse(Some(&bad_time), 0, "SHOW TAG KEYS"),
            Err(QueryError::Invalid(_))
        ));
        let bad_regex = bin(
            BinaryOp::EqRegex,
            var("k"),
            Box::new(Expr::Regex("(".into())),
        );
        assert!(Where::parse(Some(&bad_regex), 0, "SHOW TAG KEYS").is_err());
    }
}
