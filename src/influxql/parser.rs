//! InfluxQL text → [`Statement`]s: a recursive-descent parser following InfluxDB 1.x's grammar
//! and error messages (`found X, expected Y at line L, char C`) for the subset in [`super::ast`].
//!
//! Statements MeterDB does not answer (`CREATE`, `DROP`, `DELETE`, `SHOW SERIES`, `EXPLAIN`,
//! `SELECT ... INTO`, ...) are rejected with `unsupported: <what>` rather than a syntax error,
//! so that users learn the query is valid but not served.
//!
//! Queries come from the network, so the parser never panics and bounds its work: nesting of
//! parentheses, calls and subqueries is capped at [`MAX_NESTING`] (the parser's recursion), and
//! an expression tree deeper than [`MAX_EXPR_DEPTH`] (long operator chains build deep trees,
//! which every later tree walk would recurse through) is refused. Statements are parsed here, SHOW
//! statements in `parser/show.rs`, expressions in `parser/expr.rs`.

mod expr;
mod show;
#[cfg(test)]
mod tests;

use std::fmt;

use super::ast::{
    Dimension, Expr, Fill, Literal, MeasurementName, Page, SelectStatement, Source, Statement,
};
use super::lexer::{Keyword, Lexer, Pos, Tok, Token};

/// Deepest nesting of parentheses, function calls and subqueries.
pub const MAX_NESTING: u32 = 64;

/// Deepest expression tree (each operator, call and parenthesis is one level).
pub const MAX_EXPR_DEPTH: u32 = 500;

/// Why a query could not be parsed, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    message: String,
    line: u32,
    char: u32,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, pos: Pos) -> ParseError {
        ParseError {
            message: message.into(),
            line: pos.line,
            char: pos.char,
        }
    }

    fn expected(found: &Token, expected: &[&str]) -> ParseError {
        ParseError::new(
            format!(
                "found {}, expected {}",
                clip(&found.tok.describe()),
                expected.join(", ")
            ),
            found.pos,
        )
    }

    fn unsupported(what: impl fmt::Display, pos: Pos) -> ParseError {
        ParseError::new(format!("unsupported: {what}"), pos)
    }

    /// What went wrong, without the position (`found FROM, expected identifier`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The 1-based line of the offending token.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The 1-based character (not byte) of the offending token within its line.
    pub fn char(&self) -> u32 {
        self.char
    }
}

/// Longest piece of the query quoted in an error, in characters.
const MAX_QUOTED_CHARS: usize = 64;

/// `text`, cut to [`MAX_QUOTED_CHARS`] with `...` when longer: an error echoes the query, and
/// a megabyte-long identifier should not come back as a megabyte-long message.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or("")),
        None => text.to_owned(),
    }
}

/// InfluxDB's wording: the message, then `at line L, char C`.
impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, char {}",
            self.message, self.line, self.char
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a query: statements separated by `;` (empty statements and a trailing `;` are
/// allowed; an empty query yields no statements).
///
/// ```
/// use meterdb::influxql::{ast::Statement, parse_query};
///
/// let statements = parse_query(
///     "SELECT count(response_time_ms) FROM api_calls WHERE time > now() - 7d GROUP BY time(1d); \
///      SHOW DATABASES",
/// )?;
/// assert_eq!(statements.len(), 2);
/// assert_eq!(statements[1], Statement::ShowDatabases);
/// // Printing gives canonical InfluxQL, which parses back to the same statement.
/// assert_eq!(
///     statements[0].to_string(),
///     "SELECT count(response_time_ms) FROM api_calls WHERE time > now() - 1w GROUP BY time(1d)"
/// );
///
/// let error = parse_query("SELECT FROM api_calls").unwrap_err();
/// assert_eq!(error.to_string(), "found FROM, expected identifier, string, number, bool at line 1, char 8");
/// # Ok::<(), meterdb::influxql::ParseError>(())
/// ```
///
/// # Errors
///
/// The first syntax error, or the first statement or clause MeterDB does not support.
pub fn parse_query(text: &str) -> Result<Vec<Statement>, ParseError> {
    let mut parser = Parser::new(text);
    let mut statements = Vec::new();
    let mut separated = true;
    loop {
        let token = parser.peek()?;
        match token.tok {
            Tok::Eof => return Ok(statements),
            Tok::Semicolon => {
                parser.next()?;
                separated = true;
            }
            _ if !separated => return Err(ParseError::expected(token, &[";"])),
            _ => {
                statements.push(parser.statement()?);
                separated = false;
            }
        }
    }
}

/// The words that can follow `CREATE`, `DROP`, `SHOW`... in a statement MeterDB does not
/// support, collected to name it in the error.
const STATEMENT_WORDS: &[Keyword] = &[
    Keyword::All,
    Keyword::Analyze,
    Keyword::Cardinality,
    Keyword::Continuous,
    Keyword::Database,
    Keyword::Databases,
    Keyword::Diagnostics,
    Keyword::Exact,
    Keyword::Field,
    Keyword::Grants,
    Keyword::Groups,
    Keyword::Key,
    Keyword::Keys,
    Keyword::Measurement,
    Keyword::Measurements,
    Keyword::Policies,
    Keyword::Policy,
    Keyword::Privileges,
    Keyword::Queries,
    Keyword::Query,
    Keyword::Retention,
    Keyword::Series,
    Keyword::Shard,
    Keyword::Shards,
    Keyword::Stats,
    Keyword::Subscription,
    Keyword::Subscriptions,
    Keyword::Tag,
    Keyword::User,
    Keyword::Users,
    Keyword::Values,
];

pub(crate) struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    /// Current nesting of parentheses, calls and subqueries.
    nesting: u32,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            lexer: Lexer::new(text),
            peeked: None,
            nesting: 0,
        }
    }

    // ---- token plumbing -------------------------------------------------------------------

    fn peek(&mut self) -> Result<&Token, ParseError> {
        let token = match self.peeked.take() {
            Some(t) => t,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    /// Consumes the next token if it is `tok`.
    fn eat(&mut self, tok: &Tok) -> Result<bool, ParseError> {
        let hit = self.peek()?.tok == *tok;
        if hit {
            self.next()?;
        }
        Ok(hit)
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> Result<bool, ParseError> {
        self.eat(&Tok::Keyword(keyword))
    }

    fn expect(&mut self, tok: &Tok) -> Result<Token, ParseError> {
        let token = self.next()?;
        if token.tok == *tok {
            Ok(token)
        } else {
            Err(ParseError::expected(&token, &[&tok.describe()]))
        }
    }

    fn expect_keyword(&mut self, keyword: Keyword) -> Result<Token, ParseError> {
        self.expect(&Tok::Keyword(keyword))
    }

    /// Whether a `.` joined to the previous token (no space before it) comes next: the
    /// separator of qualified names such as `db.rp.m`.
    fn joined_dot_ahead(&mut self) -> Result<bool, ParseError> {
        let token = self.peek()?;
        Ok(token.tok == Tok::Dot && !token.spaced)
    }

    /// Consumes a joined `.` (see [`Parser::joined_dot_ahead`]) if one comes next.
    fn eat_joined_dot(&mut self) -> Result<bool, ParseError> {
        let hit = self.joined_dot_ahead()?;
        if hit {
            self.next()?;
        }
        Ok(hit)
    }

    /// Whether the next token is the identifier `word` (any case), as InfluxQL's
    /// non-reserved words (`fill`, `tz`) are.
    fn peek_word(&mut self, word: &str) -> Result<bool, ParseError> {
        Ok(matches!(&self.peek()?.tok, Tok::Ident(w) if w.eq_ignore_ascii_case(word)))
    }

    /// A regex, if the next token starts one (a `/` where the grammar allows a regex).
    fn regex_ahead(&mut self) -> Result<Option<(String, Pos)>, ParseError> {
        let token = self.peek()?;
        if token.tok != Tok::Slash {
            return Ok(None);
        }
        let start = token.start;
        self.peeked = None;
        self.lexer.rewind(start);
        let (pattern, pos) = self.lexer.scan_regex()?;
        validate_regex(&pattern, pos)?;
        Ok(Some((pattern, pos)))
    }

    fn regex_required(&mut self) -> Result<String, ParseError> {
        match self.regex_ahead()? {
            Some((pattern, _)) => Ok(pattern),
            None => Err(ParseError::expected(self.peek()?, &["regex"])),
        }
    }

    /// Enters one level of nesting at `pos`; pair with [`Parser::leave`].
    fn enter(&mut self, pos: Pos) -> Result<(), ParseError> {
        if self.nesting >= MAX_NESTING {
            return Err(ParseError::new(
                format!("query nested too deeply (more than {MAX_NESTING} levels)"),
                pos,
            ));
        }
        self.nesting += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    /// An identifier, bare or quoted.
    fn ident(&mut self) -> Result<String, ParseError> {
        let token = self.next()?;
        match token.tok {
            Tok::Ident(s) | Tok::QuotedIdent(s) => Ok(s),
            _ => Err(ParseError::expected(&token, &["identifier"])),
        }
    }

    fn ident_list(&mut self) -> Result<Vec<String>, ParseError> {
        let mut idents = vec![self.ident()?];
        while self.eat(&Tok::Comma)? {
            idents.push(self.ident()?);
        }
        Ok(idents)
    }

    /// `<keyword> <n>` when present; 0 when not. Values past i64 saturate, as in InfluxDB.
    fn optional_count(&mut self, keyword: Keyword) -> Result<u64, ParseError> {
        if !self.eat_keyword(keyword)? {
            return Ok(0);
        }
        let token = self.next()?;
        match &token.tok {
            Tok::Integer(digits) => Ok(digits
                .parse::<u64>()
                .map_or(i64::MAX.unsigned_abs(), |n| n.min(i64::MAX.unsigned_abs()))),
            _ => Err(ParseError::expected(&token, &["integer"])),
        }
    }

    fn page(&mut self, limit: Keyword, offset: Keyword) -> Result<Page, ParseError> {
        Ok(Page {
            limit: self.optional_count(limit)?,
            offset: self.optional_count(offset)?,
        })
    }

    fn optional_condition(&mut self) -> Result<Option<Expr>, ParseError> {
        if self.eat_keyword(Keyword::Where)? {
            Ok(Some(self.expr()?))
        } else {
            Ok(None)
        }
    }

    /// Fails with `unsupported: <what>` if the next token is `keyword`.
    fn reject_clause(&mut self, keyword: Keyword, what: &str) -> Result<(), ParseError> {
        let token = self.peek()?;
        if token.tok == Tok::Keyword(keyword) {
            return Err(ParseError::unsupported(what, token.pos));
        }
        Ok(())
    }

    /// Names an unsupported statement by its leading keywords (`DROP MEASUREMENT`).
    fn unsupported_statement(&mut self, mut words: Vec<&'static str>, pos: Pos) -> ParseError {
        while words.len() < 4 {
            match self.peek() {
                Ok(Token {
                    tok: Tok::Keyword(kw),
                    ..
                }) if STATEMENT_WORDS.contains(kw) => {
                    words.push(kw.as_str());
                    self.peeked = None;
                }
                _ => break,
            }
        }
        ParseError::unsupported(words.join(" "), pos)
    }

    // ---- statements -----------------------------------------------------------------------

    fn statement(&mut self) -> Result<Statement, ParseError> {
        let token = self.next()?;
        let Tok::Keyword(keyword) = token.tok else {
            return Err(statement_expected(&token));
        };
        match keyword {
            Keyword::Select => Ok(Statement::Select(Box::new(self.select()?))),
            Keyword::Show => self.show(token.pos),
            Keyword::Create if self.peek()?.tok == Tok::Keyword(Keyword::Database) => {
                self.next()?;
                let name = self.ident()?;
                if self.peek()?.tok == Tok::Keyword(Keyword::With) {
                    return Err(ParseError::unsupported(
                        "CREATE DATABASE ... WITH",
                        token.pos,
                    ));
                }
                Ok(Statement::CreateDatabase { name })
            }
            Keyword::Alter
            | Keyword::Create
            | Keyword::Delete
            | Keyword::Drop
            | Keyword::Explain
            | Keyword::Grant
            | Keyword::Kill
            | Keyword::Revoke
            | Keyword::Set => Err(self.unsupported_statement(vec![keyword.as_str()], token.pos)),
            _ => Err(statement_expected(&token)),
        }
    }

    /// After `SELECT`.
    fn select(&mut self) -> Result<SelectStatement, ParseError> {
        let fields = self.fields()?;
        self.reject_clause(Keyword::Into, "SELECT ... INTO")?;
        self.expect_keyword(Keyword::From)?;
        let sources = self.sources(true)?;
        let condition = self.optional_condition()?;
        let dimensions = if self.eat_keyword(Keyword::Group)? {
            self.expect_keyword(Keyword::By)?;
            self.dimensions()?
        } else {
            Vec::new()
        };
        let fill = self.fill()?;
        let descending = self.order_by()?;
        let limit = self.page(Keyword::Limit, Keyword::Offset)?;
        let slimit = self.page(Keyword::Slimit, Keyword::Soffset)?;
        let timezone = self.timezone()?;
        Ok(SelectStatement {
            fields,
            sources,
            condition,
            dimensions,
            fill,
            descending,
            limit,
            slimit,
            timezone,
        })
    }

    fn sources(&mut self, subqueries: bool) -> Result<Vec<Source>, ParseError> {
        let mut sources = vec![self.source(subqueries)?];
        while self.eat(&Tok::Comma)? {
            sources.push(self.source(subqueries)?);
        }
        Ok(sources)
    }

    fn source(&mut self, subqueries: bool) -> Result<Source, ParseError> {
        if let Some((pattern, _)) = self.regex_ahead()? {
            return Ok(Source::Measurement(MeasurementName::Regex(pattern)));
        }
        let token = self.peek()?;
        if subqueries && token.tok == Tok::LParen {
            let pos = token.pos;
            self.next()?;
            self.enter(pos)?;
            self.expect_keyword(Keyword::Select)?;
            let statement = self.select()?;
            self.expect(&Tok::RParen)?;
            self.leave();
            return Ok(Source::Subquery(Box::new(statement)));
        }
        self.measurement_name().map(Source::Measurement)
    }

    /// `m`, `rp.m`, `db.rp.m`, `db..m`, or a regex after the qualifiers (`db.rp./re/`, whose
    /// qualifiers are dropped: MeterDB has one namespace).
    fn measurement_name(&mut self) -> Result<MeasurementName, ParseError> {
        let first_pos = self.peek()?.pos;
        let mut segments = vec![self.ident()?];
        loop {
            if !self.eat_joined_dot()? {
                break;
            }
            if self.joined_dot_ahead()? {
                segments.push(String::new());
            } else if let Some((pattern, _)) = self.regex_ahead()? {
                if segments.len() > 2 {
                    return Err(too_many_segments(&segments, first_pos));
                }
                return Ok(MeasurementName::Regex(pattern));
            } else {
                segments.push(self.ident()?);
            }
        }
        if segments.len() > 3 {
            return Err(too_many_segments(&segments, first_pos));
        }
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let name = segments.pop().unwrap_or_default();
        let retention_policy = segments.pop().and_then(non_empty);
        let database = segments.pop().and_then(non_empty);
        Ok(MeasurementName::Name {
            database,
            retention_policy,
            name,
        })
    }

    fn dimensions(&mut self) -> Result<Vec<Dimension>, ParseError> {
        let mut dimensions: Vec<Dimension> = Vec::new();
        loop {
            let pos = self.peek()?.pos;
            let dimension = match self.regex_ahead()? {
                Some((pattern, _)) => Dimension::Regex(pattern),
                None => {
                    let expr = self.expr()?;
                    dimension_of(expr, pos)?
                }
            };
            if matches!(dimension, Dimension::Time { .. })
                && dimensions
                    .iter()
                    .any(|d| matches!(d, Dimension::Time { .. }))
            {
                return Err(ParseError::new("multiple time dimensions not allowed", pos));
            }
            dimensions.push(dimension);
            if !self.eat(&Tok::Comma)? {
                return Ok(dimensions);
            }
        }
    }

    fn fill(&mut self) -> Result<Fill, ParseError> {
        if !self.peek_word("fill")? {
            return Ok(Fill::Null);
        }
        let pos = self.peek()?.pos;
        let Expr::Call { args, .. } = self.unary()?.expr else {
            return Err(ParseError::new("fill must be a function call", pos));
        };
        let [arg] = args.as_slice() else {
            return Err(ParseError::new(
                "fill requires an argument, e.g.: 0, null, none, previous, linear",
                pos,
            ));
        };
        match arg {
            Expr::VarRef { name, cast: None } => match name.as_str() {
                "null" => Ok(Fill::Null),
                "none" => Ok(Fill::None),
                "previous" => Ok(Fill::Previous),
                "linear" => Ok(Fill::Linear),
                _ => Err(ParseError::new("expected number argument in fill()", pos)),
            },
            Expr::Literal(n @ (Literal::Integer(_) | Literal::Float(_))) => {
                Ok(Fill::Number(n.clone()))
            }
            _ => Err(ParseError::new("expected number argument in fill()", pos)),
        }
    }

    /// `ORDER BY time [ASC|DESC]` or `ORDER BY ASC|DESC`; true when descending.
    fn order_by(&mut self) -> Result<bool, ParseError> {
        if !self.eat_keyword(Keyword::Order)? {
            return Ok(false);
        }
        self.expect_keyword(Keyword::By)?;
        let token = self.next()?;
        let only_time = ParseError::new("only ORDER BY time supported at this time", token.pos);
        let descending = match &token.tok {
            Tok::Keyword(Keyword::Asc) => false,
            Tok::Keyword(Keyword::Desc) => true,
            Tok::Ident(name) | Tok::QuotedIdent(name) if name == "time" => {
                if self.eat_keyword(Keyword::Desc)? {
                    true
                } else {
                    self.eat_keyword(Keyword::Asc)?;
                    false
                }
            }
            Tok::Ident(_) | Tok::QuotedIdent(_) => return Err(only_time),
            _ => return Err(ParseError::expected(&token, &["identifier", "ASC", "DESC"])),
        };
        if self.peek()?.tok == Tok::Comma {
            return Err(only_time);
        }
        Ok(descending)
    }

    /// `tz('Europe/Paris')`, checked against the time zone database as InfluxDB does.
    fn timezone(&mut self) -> Result<Option<String>, ParseError> {
        if !self.peek_word("tz")? {
            return Ok(None);
        }
        let pos = self.peek()?.pos;
        let Expr::Call { args, .. } = self.unary()?.expr else {
            return Err(ParseError::new("tz must be a function call", pos));
        };
        let [arg] = args.as_slice() else {
            return Err(ParseError::new("tz requires exactly one argument", pos));
        };
        let Expr::Literal(Literal::String(name)) = arg else {
            return Err(ParseError::new("expected string argument in tz()", pos));
        };
        if name.parse::<chrono_tz::Tz>().is_err() {
            return Err(ParseError::new(
                format!("unable to find time zone {}", clip(name)),
                pos,
            ));
        }
        Ok(Some(name.clone()))
    }
}

fn statement_expected(found: &Token) -> ParseError {
    ParseError::expected(
        found,
        &[
            "SELECT", "DELETE", "SHOW", "CREATE", "DROP", "EXPLAIN", "GRANT", "REVOKE", "ALTER",
            "SET", "KILL",
        ],
    )
}

fn too_many_segments(segments: &[String], pos: Pos) -> ParseError {
    let quoted: Vec<String> = segments
        .iter()
        .map(|s| super::display::quote_ident(s))
        .collect();
    ParseError::new(
        format!("too many segments in {}", clip(&quoted.join("."))),
        pos,
    )
}

/// Checks a regex where InfluxDB does, at parse time, so that a bad one fails the query with
/// its position instead of at execution.
fn validate_regex(pattern: &str, pos: Pos) -> Result<(), ParseError> {
    match regex::Regex::new(pattern) {
        Ok(_) => Ok(()),
        Err(e) => {
            // The syntax error's last line is the reason; the lines above draw the pattern.
            let text = e.to_string();
            let reason = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            Err(ParseError::new(
                format!("bad regex /{}/: {reason}", clip(pattern)),
                pos,
            ))
        }
    }
}

/// A `GROUP BY` expression as a dimension: `time(interval[, offset])`, a tag, or `*`.
fn dimension_of(expr: Expr, pos: Pos) -> Result<Dimension, ParseError> {
    let invalid = |message: &str| ParseError::new(message, pos);
    match expr {
        Expr::VarRef { name, .. } => Ok(Dimension::Tag(name)),
        Expr::Wildcard { cast: None } => Ok(Dimension::Wildcard),
        Expr::Call { name, args } if name == "time" => {
            let (interval, offset) = match args.as_slice() {
                [interval] => (interval, None),
                [interval, offset] => (interval, Some(offset)),
                _ => return Err(invalid("time dimension expected 1 or 2 arguments")),
            };
            let Expr::Literal(Literal::Duration(interval)) = *interval else {
                return Err(invalid("time dimension must have duration argument"));
            };
            if interval <= 0 {
                return Err(invalid("time dimension must have a positive duration"));
            }
            let offset = match offset {
                None => 0,
                Some(Expr::Literal(Literal::Duration(offset))) => *offset,
                Some(Expr::Call { name, args }) if name == "now" && args.is_empty() => {
                    return Err(ParseError::unsupported("time dimension offset now()", pos));
                }
                Some(_) => return Err(invalid("time dimension offset must be duration or now()")),
            };
            Ok(Dimension::Time { interval, offset })
        }
        _ => Err(invalid("only time and tag dimensions allowed")),
    }
}
