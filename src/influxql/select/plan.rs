//! What a `SELECT` asks for, read off the syntax tree once: raw columns or aggregate calls,
//! their output column names (InfluxDB's naming and de-duplication rules), and the `GROUP BY`
//! dimensions. Everything the executor does not answer is rejected here, by name.

use regex::Regex;

use super::super::QueryError;
use super::super::ast::{Dimension, Expr, Field, Literal, SelectStatement};

/// An aggregate or selector function.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum AggKind {
    /// `count(f)`
    Count,
    /// `count(distinct(f))`
    CountDistinct,
    /// `sum(f)`
    Sum,
    /// `mean(f)`
    Mean,
    /// `min(f)`
    Min,
    /// `max(f)`
    Max,
    /// `first(f)`
    First,
    /// `last(f)`
    Last,
    /// `median(f)`
    Median,
    /// `percentile(f, p)`
    Percentile(f64),
    /// `spread(f)`
    Spread,
    /// `stddev(f)`
    Stddev,
    /// `distinct(f)`
    Distinct,
    /// `top(f, [tag,] n)`
    Top {
        /// How many points.
        n: usize,
        /// One point per distinct value of this tag, when given.
        tag: Option<String>,
    },
    /// `bottom(f, [tag,] n)`
    Bottom {
        /// How many points.
        n: usize,
        /// One point per distinct value of this tag, when given.
        tag: Option<String>,
    },
}

impl AggKind {
    /// Selectors return the time of the point they pick when they are alone in a query
    /// without `GROUP BY time`.
    pub(super) fn is_selector(&self) -> bool {
        matches!(
            self,
            AggKind::Min | AggKind::Max | AggKind::First | AggKind::Last | AggKind::Percentile(_)
        )
    }

    /// Functions that return several rows per bucket; InfluxDB allows them only alone.
    pub(super) fn is_multi_row(&self) -> bool {
        matches!(
            self,
            AggKind::Distinct | AggKind::Top { .. } | AggKind::Bottom { .. }
        )
    }

    /// `count` and `count(distinct)`: empty buckets read as 0 under `fill(null)`.
    pub(super) fn is_count(&self) -> bool {
        matches!(self, AggKind::Count | AggKind::CountDistinct)
    }
}

/// One aggregate projection.
#[derive(Clone, Debug)]
pub(super) struct Call {
    /// The function.
    pub kind: AggKind,
    /// The field (or, for `distinct`, tag) it reads.
    pub field: String,
    /// The `::tag` / `::field` cast of the argument.
    pub cast: Option<String>,
    /// Output column name.
    pub column: String,
    /// `f(*)` (`Some(None)`) or `f(/re/)`: one call per matching field of the data read,
    /// named `<column>_<field>`.
    pub expand: Option<Option<Regex>>,
}

/// One raw projection.
#[derive(Clone, Debug)]
pub(super) enum RawColumn {
    /// A field or tag by name.
    Named {
        /// The name read.
        name: String,
        /// Its cast.
        cast: Option<String>,
        /// Output column name.
        column: String,
    },
    /// `*`, `*::field`, `*::tag`: expanded once the schema of the data read is known.
    Wildcard {
        /// Its cast.
        cast: Option<String>,
    },
}

/// The projections of a statement.
#[derive(Clone, Debug)]
pub(super) enum Projection {
    /// Raw rows.
    Raw(Vec<RawColumn>),
    /// Aggregates, one column each (a multi-row function is alone).
    Aggregate(Vec<Call>),
}

/// `GROUP BY` on tags.
#[derive(Clone, Debug, Default)]
pub(super) struct Dims {
    /// Tag keys named.
    pub tags: Vec<String>,
    /// `GROUP BY *`.
    pub all: bool,
    /// `GROUP BY /re/`.
    pub regexes: Vec<Regex>,
}

impl Dims {
    /// True when the keys depend on the data read (wildcard or regex).
    pub(super) fn is_dynamic(&self) -> bool {
        self.all || !self.regexes.is_empty()
    }

    /// Adds the dimensions of `other` (an outer statement's, for a subquery).
    pub(super) fn merge(&mut self, other: &Dims) {
        for t in &other.tags {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
        self.all |= other.all;
        self.regexes.extend(other.regexes.iter().cloned());
    }

    /// The sorted tag keys for the tag keys present in the data.
    pub(super) fn resolve<'a>(&self, present: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut keys = self.tags.clone();
        if self.is_dynamic() {
            for k in present {
                if self.all || self.regexes.iter().any(|r| r.is_match(k)) {
                    keys.push(k.to_owned());
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The statement, read.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// Raw columns or aggregates.
    pub projection: Projection,
    /// Tag dimensions.
    pub dims: Dims,
    /// `GROUP BY time(interval, offset)`.
    pub interval: Option<(i64, i64)>,
}

impl Plan {
    /// Reads the statement.
    pub(super) fn new(stmt: &SelectStatement) -> Result<Plan, QueryError> {
        let mut dims = Dims::default();
        let mut interval = None;
        for d in &stmt.dimensions {
            match d {
                Dimension::Time {
                    interval: i,
                    offset,
                } => {
                    if interval.is_some() {
                        return Err(QueryError::Invalid(
                            "multiple time dimensions not allowed".into(),
                        ));
                    }
                    if *i <= 0 {
                        return Err(QueryError::Invalid(
                            "GROUP BY time interval must be positive".into(),
                        ));
                    }
                    interval = Some((*i, offset.rem_euclid(*i)));
                }
                Dimension::Tag(t) => dims.tags.push(t.clone()),
                Dimension::Wildcard => dims.all = true,
                Dimension::Regex(r) => dims.regexes.push(compile(r)?),
            }
        }
        let fields: Vec<&Field> = stmt
            .fields
            .iter()
            .filter(|f| !matches!(&f.expr, Expr::VarRef { name, .. } if name == "time"))
            .collect();
        if fields.is_empty() {
            return Err(QueryError::Invalid(
                "at least 1 non-time field must be queried".into(),
            ));
        }
        let n_calls = fields
            .iter()
            .filter(|f| matches!(f.expr, Expr::Call { .. }))
            .count();
        let projection = if n_calls == 0 {
            if interval.is_some() {
                return Err(QueryError::Invalid(
                    "GROUP BY requires at least one aggregate function".into(),
                ));
            }
            Projection::Raw(raw_columns(&fields)?)
        } else if n_calls < fields.len() {
            return Err(QueryError::Unsupported(
                "mixing aggregate and non-aggregate columns".into(),
            ));
        } else {
            let calls = calls(&fields)?;
            if calls.len() > 1
                && let Some(c) = calls.iter().find(|c| c.kind.is_multi_row())
            {
                // InfluxDB's wording, so that clients matching on it keep working.
                return Err(QueryError::Invalid(match c.kind {
                    AggKind::Distinct => {
                        "aggregate function distinct() cannot be combined with other functions or fields".into()
                    }
                    AggKind::Top { .. } => {
                        "selector function top() cannot be combined with other functions".into()
                    }
                    _ => "selector function bottom() cannot be combined with other functions".into(),
                }));
            }
            for c in &calls {
                if let AggKind::Top { n, .. } | AggKind::Bottom { n, .. } = c.kind
                    && stmt.limit.limit > 0
                    && n as u64 > stmt.limit.limit
                {
                    let name = if matches!(c.kind, AggKind::Top { .. }) {
                        "top"
                    } else {
                        "bottom"
                    };
                    return Err(QueryError::Invalid(format!(
                        "limit ({n}) in {name} function can not be larger than the LIMIT ({}) \
                         in the select statement",
                        stmt.limit.limit
                    )));
                }
            }
            Projection::Aggregate(calls)
        };
        Ok(Plan {
            projection,
            dims,
            interval,
        })
    }
}

/// Compiles a regex from a query.
pub(super) fn compile(pattern: &str) -> Result<Regex, QueryError> {
    Regex::new(pattern).map_err(|e| QueryError::Invalid(format!("regex /{pattern}/: {e}")))
}

fn raw_columns(fields: &[&Field]) -> Result<Vec<RawColumn>, QueryError> {
    let mut names = Names::default();
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        match &f.expr {
            Expr::VarRef { name, cast } => out.push(RawColumn::Named {
                name: name.clone(),
                cast: cast.clone(),
                column: names.take(f.alias.as_deref().unwrap_or(name)),
            }),
            Expr::Wildcard { cast } => out.push(RawColumn::Wildcard { cast: cast.clone() }),
            Expr::Paren(_) | Expr::Binary { .. } => {
                return Err(QueryError::Unsupported(
                    "arithmetic in SELECT columns".into(),
                ));
            }
            other => {
                return Err(QueryError::Invalid(format!(
                    "cannot select {other:?} as a column"
                )));
            }
        }
    }
    Ok(out)
}

fn calls(fields: &[&Field]) -> Result<Vec<Call>, QueryError> {
    // Aliases are reserved first, then generated names resolve conflicts with `_N`, as
    // InfluxDB's `columnNames` does.
    let mut names = Names::default();
    for f in fields {
        if let Some(a) = &f.alias {
            names.reserve(a);
        }
    }
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let Expr::Call { name, args } = &f.expr else {
            return Err(QueryError::Unsupported("arithmetic on aggregates".into()));
        };
        let expand = match args.first() {
            Some(Expr::Wildcard { .. }) => Some(None),
            Some(Expr::Regex(r)) => Some(Some(compile(r)?)),
            _ => None,
        };
        let (kind, field, cast) = if expand.is_some() {
            // Read the other arguments as for a named field; the field comes from the data.
            let mut args = args.clone();
            if let Some(a) = args.first_mut() {
                *a = Expr::VarRef {
                    name: "*".into(),
                    cast: None,
                };
            }
            call(name, &args)?
        } else {
            call(name, args)?
        };
        let column = match &f.alias {
            Some(a) => a.clone(),
            None if expand.is_some() => name.clone(),
            None => names.take(name),
        };
        out.push(Call {
            kind,
            field,
            cast,
            column,
            expand,
        });
    }
    Ok(out)
}

/// Output column names: `time` is taken, a repeated name gets `_1`, `_2`...
struct Names(Vec<(String, usize)>);

impl Default for Names {
    fn default() -> Names {
        Names(vec![("time".to_owned(), 1)])
    }
}

impl Names {
    fn reserve(&mut self, name: &str) {
        if !self.0.iter().any(|(n, _)| n == name) {
            self.0.push((name.to_owned(), 1));
        }
    }

    fn take(&mut self, name: &str) -> String {
        let Some(i) = self.0.iter().position(|(n, _)| n == name) else {
            self.0.push((name.to_owned(), 1));
            return name.to_owned();
        };
        let mut count = self.0.get(i).map_or(1, |e| e.1);
        loop {
            let candidate = format!("{name}_{count}");
            if !self.0.iter().any(|(n, _)| *n == candidate) {
                if let Some(e) = self.0.get_mut(i) {
                    e.1 = count + 1;
                }
                self.0.push((candidate.clone(), 1));
                return candidate;
            }
            count += 1;
        }
    }
}

fn var_ref(name: &str, arg: Option<&Expr>) -> Result<(String, Option<String>), QueryError> {
    match arg {
        Some(Expr::VarRef { name: f, cast }) => Ok((f.clone(), cast.clone())),
        Some(Expr::Wildcard { .. }) | Some(Expr::Regex(_)) => Err(QueryError::Unsupported(
            format!("{name}() over a wildcard or regex"),
        )),
        Some(Expr::Call { name: inner, .. }) => {
            Err(QueryError::Unsupported(format!("{name}({inner}(...))")))
        }
        _ => Err(QueryError::Invalid(format!(
            "expected field argument in {name}()"
        ))),
    }
}

fn call(name: &str, args: &[Expr]) -> Result<(AggKind, String, Option<String>), QueryError> {
    let arity = |n: usize| -> Result<(), QueryError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(QueryError::Invalid(format!(
                "invalid number of arguments for {name}, expected {n}, got {}",
                args.len()
            )))
        }
    };
    let simple = |kind: AggKind| -> Result<(AggKind, String, Option<String>), QueryError> {
        arity(1)?;
        let (f, c) = var_ref(name, args.first())?;
        Ok((kind, f, c))
    };
    match name {
        "count" => {
            arity(1)?;
            if let Some(Expr::Call { name: inner, args }) = args.first()
                && inner == "distinct"
            {
                let (f, c) = var_ref("distinct", args.first())?;
                if args.len() != 1 {
                    return Err(QueryError::Invalid(
                        "distinct function requires exactly one argument".into(),
                    ));
                }
                return Ok((AggKind::CountDistinct, f, c));
            }
            simple(AggKind::Count)
        }
        "sum" => simple(AggKind::Sum),
        "mean" => simple(AggKind::Mean),
        "min" => simple(AggKind::Min),
        "max" => simple(AggKind::Max),
        "first" => simple(AggKind::First),
        "last" => simple(AggKind::Last),
        "median" => simple(AggKind::Median),
        "spread" => simple(AggKind::Spread),
        "stddev" => simple(AggKind::Stddev),
        "distinct" => simple(AggKind::Distinct),
        "percentile" => {
            arity(2)?;
            let (f, c) = var_ref(name, args.first())?;
            let p = match args.get(1) {
                Some(Expr::Literal(Literal::Integer(i))) => *i as f64,
                Some(Expr::Literal(Literal::Float(x))) => *x,
                _ => {
                    return Err(QueryError::Invalid(
                        "expected float argument in percentile()".into(),
                    ));
                }
            };
            Ok((AggKind::Percentile(p), f, c))
        }
        "top" | "bottom" => {
            if args.len() < 2 {
                return Err(QueryError::Invalid(format!(
                    "{name}() requires 2 or more arguments, got {}",
                    args.len()
                )));
            }
            let (f, c) = var_ref(name, args.first())?;
            let n = match args.last() {
                Some(Expr::Literal(Literal::Integer(n))) if *n > 0 => {
                    usize::try_from(*n).unwrap_or(usize::MAX)
                }
                _ => {
                    return Err(QueryError::Invalid(format!(
                        "expected positive integer as last argument in {name}()"
                    )));
                }
            };
            let tag = match args.len() {
                2 => None,
                3 => match args.get(1) {
                    Some(Expr::VarRef { name: t, .. }) => Some(t.clone()),
                    _ => {
                        return Err(QueryError::Invalid(format!(
                            "only fields or tags are allowed in {name}(), found {:?}",
                            args.get(1)
                        )));
                    }
                },
                _ => {
                    return Err(QueryError::Unsupported(format!(
                        "{name}() with more than one tag argument"
                    )));
                }
            };
            let kind = if name == "top" {
                AggKind::Top { n, tag }
            } else {
                AggKind::Bottom { n, tag }
            };
            Ok((kind, f, c))
        }
        other => Err(QueryError::Unsupported(format!("function {other}()"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_get_numbered_suffixes() {
        let mut n = Names::default();
        assert_eq!(n.take("count"), "count");
        assert_eq!(n.take("count"), "count_1");
        assert_eq!(n.take("count"), "count_2");
        assert_eq!(n.take("time"), "time_1");
    }
}
