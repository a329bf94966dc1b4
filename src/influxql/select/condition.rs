//! Splits a `WHERE` clause into what the scan can do and what is left per row: the time range
//! (InfluxDB's inclusive/exclusive rules, RFC 3339 strings, integers, epoch durations,
//! `now() - 7d`), the tenant (`tenant = 'x'` routes the scan to one shard), and the residual
//! condition, evaluated by [`super::filter`].

use chrono::{NaiveDate, NaiveDateTime, TimeZone};

use super::super::QueryError;
use super::super::ast::{BinaryOp, Expr, Literal};
use super::columns::TENANT;

/// A closed time range `[min, max]` in ns, as InfluxDB keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TimeRange {
    /// First included time.
    pub min: i64,
    /// Last included time.
    pub max: i64,
}

impl TimeRange {
    /// Every representable time.
    pub(super) const ALL: TimeRange = TimeRange {
        min: i64::MIN,
        max: i64::MAX,
    };

    /// True when a lower bound was given.
    pub(super) fn has_min(&self) -> bool {
        self.min != i64::MIN
    }

    /// True when an upper bound was given.
    pub(super) fn has_max(&self) -> bool {
        self.max != i64::MAX
    }

    /// The intersection.
    pub(super) fn intersect(&self, other: &TimeRange) -> TimeRange {
        TimeRange {
            min: self.min.max(other.min),
            max: self.max.min(other.max),
        }
    }

    /// True when no time can match.
    pub(super) fn is_empty(&self) -> bool {
        self.min > self.max
    }

    /// The scan's half-open range.
    pub(super) fn to_scan(self) -> Option<std::ops::Range<i64>> {
        if !self.has_min() && !self.has_max() {
            return None;
        }
        Some(self.min..self.max.saturating_add(1).max(self.min))
    }

    /// True when `t` is inside.
    pub(super) fn contains(&self, t: i64) -> bool {
        self.min <= t && t <= self.max
    }
}

/// A `WHERE` clause, split.
#[derive(Clone, Debug)]
pub(super) struct Where {
    /// Time bounds.
    pub time: TimeRange,
    /// `tenant = '...'` conjuncts (all must hold: several distinct ones match nothing).
    pub tenant: Option<String>,
    /// True when the conjuncts contradict each other (two different tenants).
    pub contradiction: bool,
    /// Everything else, AND-ed, for per-row evaluation.
    pub residual: Option<Expr>,
}

/// Splits `cond`. `now` is the query's `now()`; `tz` reads zone-less time strings.
pub(super) fn split(
    cond: Option<&Expr>,
    now: i64,
    tz: Option<chrono_tz::Tz>,
) -> Result<Where, QueryError> {
    let mut out = Where {
        time: TimeRange::ALL,
        tenant: None,
        contradiction: false,
        residual: None,
    };
    let stripped = match cond {
        Some(c) => strip_time(c, now, tz, &mut out.time)?,
        None => None,
    };
    let mut conjuncts = Vec::new();
    if let Some(c) = &stripped {
        flatten_and(c, &mut conjuncts);
    }
    let mut rest: Vec<Expr> = Vec::new();
    for c in conjuncts {
        if let Some(t) = tenant_equals(c) {
            match &out.tenant {
                Some(prev) if prev != t => out.contradiction = true,
                _ => out.tenant = Some(t.to_owned()),
            }
        } else {
            rest.push(c.clone());
        }
    }
    out.residual = rest.into_iter().reduce(|a, b| Expr::Binary {
        op: BinaryOp::And,
        lhs: Box::new(a),
        rhs: Box::new(b),
    });
    Ok(out)
}

/// Removes every time comparison from `e` and intersects it into `range`, under `OR` too:
/// InfluxDB's `ConditionExpr` does so ("there is no such thing as using OR with a time
/// range"), so `a OR b AND time > x` reads as `(a OR b) AND time > x`.
fn strip_time(
    e: &Expr,
    now: i64,
    tz: Option<chrono_tz::Tz>,
    range: &mut TimeRange,
) -> Result<Option<Expr>, QueryError> {
    match e {
        Expr::Paren(inner) => {
            Ok(strip_time(inner, now, tz, range)?.map(|x| Expr::Paren(Box::new(x))))
        }
        Expr::Binary {
            op: op @ (BinaryOp::And | BinaryOp::Or),
            lhs,
            rhs,
        } => {
            let l = strip_time(lhs, now, tz, range)?;
            let r = strip_time(rhs, now, tz, range)?;
            Ok(match (l, r) {
                (Some(l), Some(r)) => Some(Expr::Binary {
                    op: *op,
                    lhs: Box::new(l),
                    rhs: Box::new(r),
                }),
                (one, None) | (None, one) => one,
            })
        }
        other if mentions_time(other) => {
            apply_time_bound(other, now, tz, range)?;
            Ok(None)
        }
        other => Ok(Some(other.clone())),
    }
}

fn flatten_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Paren(inner) => flatten_and(inner, out),
        Expr::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            flatten_and(lhs, out);
            flatten_and(rhs, out);
        }
        other => out.push(other),
    }
}

fn is_time_ref(e: &Expr) -> bool {
    matches!(e, Expr::VarRef { name, .. } if name.eq_ignore_ascii_case("time"))
}

fn mentions_time(e: &Expr) -> bool {
    match e {
        Expr::VarRef { .. } => is_time_ref(e),
        Expr::Paren(inner) => mentions_time(inner),
        Expr::Binary { lhs, rhs, .. } => mentions_time(lhs) || mentions_time(rhs),
        Expr::Call { args, .. } => args.iter().any(mentions_time),
        _ => false,
    }
}

/// `tenant = 'x'` (either side), the one tag condition the scan routes on.
fn tenant_equals(e: &Expr) -> Option<&str> {
    let Expr::Binary {
        op: BinaryOp::Eq,
        lhs,
        rhs,
    } = e
    else {
        return None;
    };
    let is_tenant = |e: &Expr| matches!(e, Expr::VarRef { name, cast } if name == TENANT && cast.as_deref().is_none_or(|c| c == "tag"));
    match (lhs.as_ref(), rhs.as_ref()) {
        (l, Expr::Literal(Literal::String(s))) if is_tenant(l) => Some(s),
        (Expr::Literal(Literal::String(s)), r) if is_tenant(r) => Some(s),
        _ => None,
    }
}

fn apply_time_bound(
    e: &Expr,
    now: i64,
    tz: Option<chrono_tz::Tz>,
    range: &mut TimeRange,
) -> Result<(), QueryError> {
    let unsupported = || {
        QueryError::Unsupported(format!(
            "time condition {e:?}: only `time <op> <time>` AND-ed at the top of WHERE"
        ))
    };
    let Expr::Binary { op, lhs, rhs } = e else {
        return Err(unsupported());
    };
    let (op, value) = if is_time_ref(lhs) && !mentions_time(rhs) {
        (*op, time_value(rhs, now, tz)?)
    } else if is_time_ref(rhs) && !mentions_time(lhs) {
        let flipped = match op {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            other => *other,
        };
        (flipped, time_value(lhs, now, tz)?)
    } else {
        return Err(unsupported());
    };
    match op {
        BinaryOp::Gt => range.min = range.min.max(value.saturating_add(1)),
        BinaryOp::GtEq => range.min = range.min.max(value),
        BinaryOp::Lt => range.max = range.max.min(value.saturating_sub(1)),
        BinaryOp::LtEq => range.max = range.max.min(value),
        BinaryOp::Eq => {
            range.min = range.min.max(value);
            range.max = range.max.min(value);
        }
        _ => return Err(unsupported()),
    }
    Ok(())
}

/// The ns value of the right-hand side of a time comparison.
pub(in crate::influxql) fn time_value(
    e: &Expr,
    now: i64,
    tz: Option<chrono_tz::Tz>,
) -> Result<i64, QueryError> {
    match e {
        Expr::Paren(inner) => time_value(inner, now, tz),
        Expr::Literal(Literal::Integer(i)) => Ok(*i),
        Expr::Literal(Literal::Duration(d)) => Ok(*d),
        Expr::Literal(Literal::Float(f)) if f.is_finite() => Ok(*f as i64),
        Expr::Literal(Literal::String(s)) => parse_time(s, tz),
        Expr::Call { name, args } if name == "now" && args.is_empty() => Ok(now),
        Expr::Binary {
            op: op @ (BinaryOp::Add | BinaryOp::Sub),
            lhs,
            rhs,
        } => {
            let l = time_value(lhs, now, tz)?;
            let r = time_value(rhs, now, tz)?;
            let v = if *op == BinaryOp::Add {
                l.checked_add(r)
            } else {
                l.checked_sub(r)
            };
            v.ok_or_else(|| QueryError::Invalid("time out of range".into()))
        }
        other => Err(QueryError::Invalid(format!(
            "invalid time value in condition: {other:?}"
        ))),
    }
}

/// A time string: RFC 3339, or `YYYY-MM-DD[ HH:MM:SS[.f]]` read in the query's zone (UTC
/// without `tz()`), the forms InfluxDB accepts.
pub(super) fn parse_time(s: &str, tz: Option<chrono_tz::Tz>) -> Result<i64, QueryError> {
    let invalid = || QueryError::Invalid(format!("invalid time string {s:?}"));
    let ns = |dt: chrono::DateTime<chrono::Utc>| dt.timestamp_nanos_opt().ok_or_else(invalid);
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return ns(dt.to_utc());
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| invalid())?;
    match tz {
        Some(z) => match z.from_local_datetime(&naive).earliest() {
            Some(dt) => ns(dt.to_utc()),
            None => Err(invalid()),
        },
        None => ns(naive.and_utc()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time_cmp(op: BinaryOp, rhs: Expr) -> Expr {
        Expr::Binary {
            op,
            lhs: Box::new(Expr::VarRef {
                name: "time".into(),
                cast: None,
            }),
            rhs: Box::new(rhs),
        }
    }

    fn and(a: Expr, b: Expr) -> Expr {
        Expr::Binary {
            op: BinaryOp::And,
            lhs: Box::new(a),
            rhs: Box::new(b),
        }
    }

    #[test]
    fn bounds_follow_influxdb_inclusive_rules() {
        let c = and(
            time_cmp(BinaryOp::Gt, Expr::Literal(Literal::Integer(10))),
            time_cmp(BinaryOp::Lt, Expr::Literal(Literal::Duration(20))),
        );
        let w = split(Some(&c), 0, None).unwrap();
        assert_eq!(w.time, TimeRange { min: 11, max: 19 });
        assert!(w.residual.is_none());
    }

    #[test]
    fn now_minus_duration_and_rfc3339() {
        let now_minus = Expr::Binary {
            op: BinaryOp::Sub,
            lhs: Box::new(Expr::Call {
                name: "now".into(),
                args: vec![],
            }),
            rhs: Box::new(Expr::Literal(Literal::Duration(5))),
        };
        let c = and(
            time_cmp(BinaryOp::GtEq, now_minus),
            time_cmp(
                BinaryOp::LtEq,
                Expr::Literal(Literal::String("1970-01-01T00:00:01Z".into())),
            ),
        );
        let w = split(Some(&c), 100, None).unwrap();
        assert_eq!(
            w.time,
            TimeRange {
                min: 95,
                max: 1_000_000_000
            }
        );
    }

    #[test]
    fn tenant_equality_routes_and_contradicts() {
        let t = |v: &str| Expr::Binary {
            op: BinaryOp::Eq,
            lhs: Box::new(Expr::VarRef {
                name: "tenant".into(),
                cast: None,
            }),
            rhs: Box::new(Expr::Literal(Literal::String(v.into()))),
        };
        let w = split(Some(&t("a")), 0, None).unwrap();
        assert_eq!(w.tenant.as_deref(), Some("a"));
        assert!(!w.contradiction);
        let w = split(Some(&and(t("a"), t("b"))), 0, None).unwrap();
        assert!(w.contradiction);
    }

    #[test]
    fn time_under_or_is_intersected_as_influxdb_does() {
        let host = Expr::Binary {
            op: BinaryOp::Eq,
            lhs: Box::new(Expr::VarRef {
                name: "host".into(),
                cast: None,
            }),
            rhs: Box::new(Expr::Literal(Literal::String("a".into()))),
        };
        let c = Expr::Binary {
            op: BinaryOp::Or,
            lhs: Box::new(host.clone()),
            rhs: Box::new(and(
                host.clone(),
                time_cmp(BinaryOp::Gt, Expr::Literal(Literal::Integer(1))),
            )),
        };
        let w = split(Some(&c), 0, None).unwrap();
        assert_eq!(w.time.min, 2);
        assert_eq!(
            w.residual,
            Some(Expr::Binary {
                op: BinaryOp::Or,
                lhs: Box::new(host.clone()),
                rhs: Box::new(host),
            })
        );
    }

    #[test]
    fn zone_less_strings_read_in_the_query_zone() {
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(parse_time("1970-01-01 01:00:00", Some(paris)).unwrap(), 0);
        assert_eq!(parse_time("1970-01-02", None).unwrap(), 86_400_000_000_000);
    }
}
