//! Which `WHERE` tag conditions the scan itself can apply ([`ScanRequest::predicates`], where
//! segments skip rows through their tag postings). A conjunct `key op 'literal'` or
//! `key =~ /re/` is pushed only when `key` is no field of any measurement the statement reads
//! (the catalog says so without reading rows): the scan reads a name that is not a tag as a
//! missing tag, which would wrongly drop rows where it is a field. The tenant is never pushed
//! here; `tenant = '...'` routes the scan already ([`super::condition`]).
//!
//! [`ScanRequest::predicates`]: crate::ScanRequest::predicates

use regex::Regex;

use super::super::QueryError;
use super::super::ast::{BinaryOp, Expr, Literal, MeasurementName, SelectStatement, Source};
use super::columns::{EVENT_ID, TENANT};
use super::plan::compile;
use crate::Engine;
use crate::catalog::CatalogRequest;
use crate::model::TenantId;
use crate::scan::{TagOp, TagPredicate};

/// What the scan takes and what is left.
#[derive(Debug, Default)]
pub(super) struct Split {
    /// Conditions the scan applies.
    pub predicates: Vec<TagPredicate>,
    /// Conditions left for each row.
    pub residual: Option<Expr>,
    /// Field keys of the measurements read, when the catalog was asked.
    pub fields: Vec<String>,
}

/// Moves the pushable conjuncts of `residual` into predicates.
pub(super) fn split(
    engine: &Engine,
    stmt: &SelectStatement,
    tenant: Option<&str>,
    residual: Option<Expr>,
) -> Result<Split, QueryError> {
    let Some(residual) = residual else {
        return Ok(Split::default());
    };
    let mut conjuncts = Vec::new();
    flatten_and(residual, &mut conjuncts);
    let any_candidate = conjuncts.iter().any(|c| candidate(c).is_some());
    // Subquery rows never pass through a scan: their conditions stay per row.
    let stored_only = stmt
        .sources
        .iter()
        .all(|s| matches!(s, Source::Measurement(_)));
    if !any_candidate || !stored_only {
        return Ok(Split {
            residual: rebuild(conjuncts),
            ..Split::default()
        });
    }
    let fields = field_keys(engine, stmt, tenant)?;
    let mut predicates = Vec::new();
    let mut rest = Vec::new();
    for c in conjuncts {
        let pushed = match candidate(&c) {
            Some((key, op)) if !fields.iter().any(|f| f == key) => Some(TagPredicate {
                key: key.to_owned(),
                op: tag_op(op)?,
            }),
            _ => None,
        };
        match pushed {
            Some(p) => predicates.push(p),
            None => rest.push(c),
        }
    }
    Ok(Split {
        predicates,
        residual: rebuild(rest),
        fields,
    })
}

fn flatten_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Paren(inner) => flatten_and(*inner, out),
        Expr::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            flatten_and(*lhs, out);
            flatten_and(*rhs, out);
        }
        other => out.push(other),
    }
}

fn rebuild(conjuncts: Vec<Expr>) -> Option<Expr> {
    conjuncts.into_iter().reduce(|a, b| Expr::Binary {
        op: BinaryOp::And,
        lhs: Box::new(a),
        rhs: Box::new(b),
    })
}

/// The comparison a scan predicate can express.
enum Test<'a> {
    Eq(&'a str),
    NotEq(&'a str),
    Regex(&'a str),
    NotRegex(&'a str),
}

/// `key` and its test when `c` is `tag op 'literal'` or `tag (=~|!~) /re/`, either side.
fn candidate(c: &Expr) -> Option<(&str, Test<'_>)> {
    let Expr::Binary { op, lhs, rhs } = c else {
        return None;
    };
    let (key, cast, other) = match (lhs.as_ref(), rhs.as_ref()) {
        (Expr::VarRef { name, cast }, o) => (name, cast, o),
        (o, Expr::VarRef { name, cast }) => (name, cast, o),
        _ => return None,
    };
    if key == TENANT || key == EVENT_ID || cast.as_deref().is_some_and(|c| c != "tag") {
        return None;
    }
    let test = match (op, other) {
        (BinaryOp::Eq, Expr::Literal(Literal::String(s))) => Test::Eq(s),
        (BinaryOp::NotEq, Expr::Literal(Literal::String(s))) => Test::NotEq(s),
        (BinaryOp::EqRegex, Expr::Regex(r)) => Test::Regex(r),
        (BinaryOp::NotEqRegex, Expr::Regex(r)) => Test::NotRegex(r),
        _ => return None,
    };
    Some((key, test))
}

fn tag_op(test: Test<'_>) -> Result<TagOp, QueryError> {
    let re = |p: &str| -> Result<Regex, QueryError> { compile(p) };
    Ok(match test {
        Test::Eq(s) => TagOp::Eq(s.to_owned()),
        Test::NotEq(s) => TagOp::NotEq(s.to_owned()),
        Test::Regex(p) => TagOp::Regex(re(p)?),
        Test::NotRegex(p) => TagOp::NotRegex(re(p)?),
    })
}

/// Every field key of the measurements the statement reads, from the catalog.
fn field_keys(
    engine: &Engine,
    stmt: &SelectStatement,
    tenant: Option<&str>,
) -> Result<Vec<String>, QueryError> {
    let mut names: Vec<&str> = Vec::new();
    let mut regexes: Vec<Regex> = Vec::new();
    for s in &stmt.sources {
        match s {
            Source::Measurement(MeasurementName::Name { name, .. }) => names.push(name),
            Source::Measurement(MeasurementName::Regex(r)) => regexes.push(compile(r)?),
            Source::Subquery(_) => {}
        }
    }
    let measurement = match (names.as_slice(), regexes.is_empty()) {
        ([one], true) => Some(TagOp::Eq((*one).to_owned())),
        _ => None,
    };
    let catalog = engine.catalog(&CatalogRequest {
        tenant: tenant.map(TenantId::new),
        measurement,
        tag_values: None,
    })?;
    Ok(catalog
        .measurements
        .iter()
        .filter(|(m, _)| names.contains(&m.as_str()) || regexes.iter().any(|r| r.is_match(m)))
        .flat_map(|(_, info)| info.fields.keys().cloned())
        .collect())
}
