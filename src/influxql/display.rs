//! Canonical InfluxQL text for the syntax tree: `parse_query(&statement.to_string())` gives
//! back the same statement.
//!
//! Identifiers are quoted only when they must be (keywords, characters outside
//! `[A-Za-z0-9_]`, a leading digit); strings and identifiers escape `\`, their quote and the
//! newline the scanner refuses raw. Binary operations print as written, without added
//! parentheses: the tree keeps explicit [`Expr::Paren`] nodes, so a tree built by hand must
//! carry them where precedence requires, as every tree the parser builds does. Defaults are
//! left out (`fill(null)`, `LIMIT 0`, an ascending order, a zero `GROUP BY time` offset), and
//! the `ON db` of SHOW statements other than `SHOW RETENTION POLICIES` is not kept in the tree.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::{
    BinaryOp, Dimension, Expr, Field, Fill, Literal, MeasurementName, Page, SelectStatement,
    Source, Statement, TagKeyFilter,
};
use super::lexer::Keyword;

/// `name` as InfluxQL source: bare when it can be, else double-quoted with escapes.
pub fn quote_ident(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && Keyword::lookup(name).is_none();
    if bare {
        name.to_owned()
    } else {
        quote(name, '"')
    }
}

/// `text` as an InfluxQL string literal.
pub fn quote_string(text: &str) -> String {
    quote(text, '\'')
}

fn quote(text: &str, quote_char: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote_char);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c == quote_char => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote_char);
    out
}

/// A regex between slashes; only `/` needs escaping (the scanner keeps other backslashes).
fn write_regex(f: &mut Formatter<'_>, pattern: &str) -> fmt::Result {
    f.write_char('/')?;
    for c in pattern.chars() {
        if c == '/' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('/')
}

/// A duration in the largest unit that divides it exactly, as InfluxDB prints them.
fn write_duration(f: &mut Formatter<'_>, ns: i64) -> fmt::Result {
    const UNITS: [(u64, &str); 7] = [
        (604_800_000_000_000, "w"),
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "u"),
    ];
    if ns == 0 {
        return f.write_str("0s");
    }
    if ns < 0 {
        f.write_char('-')?;
    }
    let magnitude = ns.unsigned_abs();
    let (unit_ns, unit) = UNITS
        .iter()
        .find(|&&(unit_ns, _)| magnitude.is_multiple_of(unit_ns))
        .copied()
        .unwrap_or((1, "ns"));
    write!(f, "{}{unit}", magnitude / unit_ns)
}

fn write_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

fn write_page(f: &mut Formatter<'_>, page: Page, limit: &str, offset: &str) -> fmt::Result {
    if page.limit > 0 {
        write!(f, " {limit} {}", page.limit)?;
    }
    if page.offset > 0 {
        write!(f, " {offset} {}", page.offset)?;
    }
    Ok(())
}

fn write_condition(f: &mut Formatter<'_>, condition: Option<&Expr>) -> fmt::Result {
    match condition {
        Some(c) => write!(f, " WHERE {c}"),
        None => Ok(()),
    }
}

fn write_from(f: &mut Formatter<'_>, sources: &[MeasurementName]) -> fmt::Result {
    if sources.is_empty() {
        return Ok(());
    }
    f.write_str(" FROM ")?;
    write_list(f, sources)
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Select(select) => select.fmt(f),
            Statement::CreateDatabase { name } => {
                write!(f, "CREATE DATABASE {}", quote_ident(name))
            }
            Statement::ShowDatabases => f.write_str("SHOW DATABASES"),
            Statement::ShowRetentionPolicies { database } => {
                f.write_str("SHOW RETENTION POLICIES")?;
                match database {
                    Some(db) => write!(f, " ON {}", quote_ident(db)),
                    None => Ok(()),
                }
            }
            Statement::ShowMeasurements {
                source,
                condition,
                page,
            } => {
                f.write_str("SHOW MEASUREMENTS")?;
                match source {
                    Some(MeasurementName::Regex(pattern)) => {
                        f.write_str(" WITH MEASUREMENT =~ ")?;
                        write_regex(f, pattern)?;
                    }
                    Some(name) => write!(f, " WITH MEASUREMENT = {name}")?,
                    None => {}
                }
                write_condition(f, condition.as_ref())?;
                write_page(f, *page, "LIMIT", "OFFSET")
            }
            Statement::ShowTagKeys {
                sources,
                condition,
                page,
            } => {
                f.write_str("SHOW TAG KEYS")?;
                write_from(f, sources)?;
                write_condition(f, condition.as_ref())?;
                write_page(f, *page, "LIMIT", "OFFSET")
            }
            Statement::ShowTagValues {
                sources,
                keys,
                condition,
                page,
            } => {
                f.write_str("SHOW TAG VALUES")?;
                write_from(f, sources)?;
                write!(f, " WITH KEY {keys}")?;
                write_condition(f, condition.as_ref())?;
                write_page(f, *page, "LIMIT", "OFFSET")
            }
            Statement::ShowFieldKeys { sources, page } => {
                f.write_str("SHOW FIELD KEYS")?;
                write_from(f, sources)?;
                write_page(f, *page, "LIMIT", "OFFSET")
            }
        }
    }
}

impl Display for TagKeyFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TagKeyFilter::Eq(key) => write!(f, "= {}", quote_ident(key)),
            TagKeyFilter::NotEq(key) => write!(f, "!= {}", quote_ident(key)),
            TagKeyFilter::In(keys) => {
                let quoted: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
                write!(f, "IN ({})", quoted.join(", "))
            }
            TagKeyFilter::Regex(pattern) => {
                f.write_str("=~ ")?;
                write_regex(f, pattern)
            }
            TagKeyFilter::NotRegex(pattern) => {
                f.write_str("!~ ")?;
                write_regex(f, pattern)
            }
        }
    }
}

impl Display for SelectStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        write_list(f, &self.fields)?;
        f.write_str(" FROM ")?;
        write_list(f, &self.sources)?;
        write_condition(f, self.condition.as_ref())?;
        if !self.dimensions.is_empty() {
            f.write_str(" GROUP BY ")?;
            write_list(f, &self.dimensions)?;
        }
        match &self.fill {
            Fill::Null => {}
            Fill::None => f.write_str(" fill(none)")?,
            Fill::Number(n) => write!(f, " fill({n})")?,
            Fill::Previous => f.write_str(" fill(previous)")?,
            Fill::Linear => f.write_str(" fill(linear)")?,
        }
        if self.descending {
            f.write_str(" ORDER BY time DESC")?;
        }
        write_page(f, self.limit, "LIMIT", "OFFSET")?;
        write_page(f, self.slimit, "SLIMIT", "SOFFSET")?;
        match &self.timezone {
            Some(tz) => write!(f, " tz({})", quote_string(tz)),
            None => Ok(()),
        }
    }
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)?;
        match &self.alias {
            Some(alias) => write!(f, " AS {}", quote_ident(alias)),
            None => Ok(()),
        }
    }
}

impl Display for Source {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Source::Measurement(name) => name.fmt(f),
            Source::Subquery(select) => write!(f, "({select})"),
        }
    }
}

impl Display for MeasurementName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MeasurementName::Regex(pattern) => write_regex(f, pattern),
            MeasurementName::Name {
                database,
                retention_policy,
                name,
            } => {
                match (database, retention_policy) {
                    (Some(db), rp) => write!(
                        f,
                        "{}.{}.",
                        quote_ident(db),
                        rp.as_deref().map(quote_ident).unwrap_or_default()
                    )?,
                    (None, Some(rp)) => write!(f, "{}.", quote_ident(rp))?,
                    (None, None) => {}
                }
                f.write_str(&quote_ident(name))
            }
        }
    }
}

impl Display for Dimension {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Dimension::Time { interval, offset } => {
                f.write_str("time(")?;
                write_duration(f, *interval)?;
                if *offset != 0 {
                    f.write_str(", ")?;
                    write_duration(f, *offset)?;
                }
                f.write_char(')')
            }
            Dimension::Tag(tag) => f.write_str(&quote_ident(tag)),
            Dimension::Regex(pattern) => write_regex(f, pattern),
            Dimension::Wildcard => f.write_char('*'),
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::VarRef { name, cast } => {
                f.write_str(&quote_ident(name))?;
                write_cast(f, cast.as_deref())
            }
            Expr::Call { name, args } => {
                // `distinct` is a keyword that InfluxQL still reads as a call name.
                if name == "distinct" {
                    f.write_str(name)?;
                } else {
                    f.write_str(&quote_ident(name))?;
                }
                f.write_char('(')?;
                write_list(f, args)?;
                f.write_char(')')
            }
            Expr::Wildcard { cast } => {
                f.write_char('*')?;
                write_cast(f, cast.as_deref())
            }
            Expr::Literal(literal) => literal.fmt(f),
            Expr::Regex(pattern) => write_regex(f, pattern),
            Expr::Binary { op, lhs, rhs } => write!(f, "{lhs} {op} {rhs}"),
            Expr::Paren(inner) => write!(f, "({inner})"),
        }
    }
}

fn write_cast(f: &mut Formatter<'_>, cast: Option<&str>) -> fmt::Result {
    match cast {
        Some(cast) => write!(f, "::{cast}"),
        None => Ok(()),
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Integer(v) => write!(f, "{v}"),
            Literal::Unsigned(v) => write!(f, "{v}"),
            Literal::Float(v) => {
                // Rust prints floats without an exponent; a point keeps them floats on reading.
                let text = v.to_string();
                f.write_str(&text)?;
                if v.is_finite() && !text.contains('.') {
                    f.write_str(".0")?;
                }
                Ok(())
            }
            Literal::String(s) => f.write_str(&quote_string(s)),
            Literal::Boolean(b) => write!(f, "{b}"),
            Literal::Duration(ns) => write_duration(f, *ns),
        }
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::EqRegex => "=~",
            BinaryOp::NotEqRegex => "!~",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        })
    }
}
