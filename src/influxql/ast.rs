//! The InfluxQL syntax tree: what the parser produces and the executor consumes. Only the
//! subset MeterDB answers; the parser rejects everything else with an error naming it.

/// One statement of a query (statements are separated by `;`).
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// `SELECT ...`
    Select(Box<SelectStatement>),
    /// `SHOW DATABASES`
    ShowDatabases,
    /// `CREATE DATABASE name`: answered with success and no effect, since MeterDB has one
    /// namespace; clients such as Telegraf send it when they start.
    CreateDatabase {
        /// The name given.
        name: String,
    },
    /// `SHOW RETENTION POLICIES [ON db]`
    ShowRetentionPolicies {
        /// The `ON` database, when given.
        database: Option<String>,
    },
    /// `SHOW MEASUREMENTS [ON db] [WITH MEASUREMENT =~ /re/ | = name] [WHERE ...] [LIMIT n]
    /// [OFFSET n]`
    ShowMeasurements {
        /// The `WITH MEASUREMENT` filter.
        source: Option<MeasurementName>,
        /// `WHERE` on tags.
        condition: Option<Expr>,
        /// `LIMIT` / `OFFSET`.
        page: Page,
    },
    /// `SHOW TAG KEYS [ON db] [FROM m] [WHERE ...] [LIMIT n] [OFFSET n]`
    ShowTagKeys {
        /// `FROM` measurements; empty means all.
        sources: Vec<MeasurementName>,
        /// `WHERE` on tags.
        condition: Option<Expr>,
        /// `LIMIT` / `OFFSET`.
        page: Page,
    },
    /// `SHOW TAG VALUES [ON db] [FROM m] WITH KEY (= k | IN (k, ...) | =~ /re/ | != k | !~ /re/)
    /// [WHERE ...] [LIMIT n] [OFFSET n]`
    ShowTagValues {
        /// `FROM` measurements; empty means all.
        sources: Vec<MeasurementName>,
        /// Which tag keys.
        keys: TagKeyFilter,
        /// `WHERE` on tags.
        condition: Option<Expr>,
        /// `LIMIT` / `OFFSET`.
        page: Page,
    },
    /// `SHOW FIELD KEYS [ON db] [FROM m] [LIMIT n] [OFFSET n]`
    ShowFieldKeys {
        /// `FROM` measurements; empty means all.
        sources: Vec<MeasurementName>,
        /// `LIMIT` / `OFFSET`.
        page: Page,
    },
}

/// `LIMIT` and `OFFSET` (0 = not given).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Maximum rows (or series for `SLIMIT`); 0 means unlimited.
    pub limit: u64,
    /// Rows (or series) to skip.
    pub offset: u64,
}

/// The tag keys of `SHOW TAG VALUES ... WITH KEY`.
#[derive(Clone, Debug, PartialEq)]
pub enum TagKeyFilter {
    /// `= "k"`
    Eq(String),
    /// `!= "k"`
    NotEq(String),
    /// `IN ("a", "b")`
    In(Vec<String>),
    /// `=~ /re/`
    Regex(String),
    /// `!~ /re/`
    NotRegex(String),
}

/// A `SELECT` statement.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectStatement {
    /// The projections, in order.
    pub fields: Vec<Field>,
    /// `FROM`: measurements, regexes or subqueries (InfluxQL allows a comma-separated list).
    pub sources: Vec<Source>,
    /// `WHERE`, untouched (the executor splits time bounds from tag conditions).
    pub condition: Option<Expr>,
    /// `GROUP BY`.
    pub dimensions: Vec<Dimension>,
    /// `fill(...)`; [`Fill::Null`] when not given.
    pub fill: Fill,
    /// `ORDER BY time DESC`.
    pub descending: bool,
    /// `LIMIT` / `OFFSET` (points per series).
    pub limit: Page,
    /// `SLIMIT` / `SOFFSET` (series).
    pub slimit: Page,
    /// `tz('Europe/Paris')`.
    pub timezone: Option<String>,
}

/// One projection: an expression and its `AS` alias.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The expression.
    pub expr: Expr,
    /// `AS name`.
    pub alias: Option<String>,
}

/// One `FROM` source.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A measurement by name or regex.
    Measurement(MeasurementName),
    /// `(SELECT ...)`
    Subquery(Box<SelectStatement>),
}

/// A measurement reference, optionally qualified as `"db"."rp"."m"` or `"db".."m"` (the
/// qualifiers are kept but MeterDB has one namespace).
#[derive(Clone, Debug, PartialEq)]
pub enum MeasurementName {
    /// A name.
    Name {
        /// Database qualifier.
        database: Option<String>,
        /// Retention policy qualifier.
        retention_policy: Option<String>,
        /// The measurement.
        name: String,
    },
    /// `/regex/` (pattern text without the slashes, escapes `\/` resolved).
    Regex(String),
}

/// One `GROUP BY` dimension.
#[derive(Clone, Debug, PartialEq)]
pub enum Dimension {
    /// `time(interval[, offset])`, both in ns; the offset may be negative.
    Time {
        /// Bucket width.
        interval: i64,
        /// Bucket offset.
        offset: i64,
    },
    /// A tag key.
    Tag(String),
    /// `/regex/` over tag keys.
    Regex(String),
    /// `*`: every tag key.
    Wildcard,
}

/// `fill(...)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Fill {
    /// `fill(null)` (the default): empty buckets appear with null values.
    #[default]
    Null,
    /// `fill(none)`: empty buckets are left out.
    None,
    /// `fill(<number>)`.
    Number(Literal),
    /// `fill(previous)`.
    Previous,
    /// `fill(linear)`.
    Linear,
}

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A field, tag or `time`, with an optional `::field` / `::tag` / `::integer`... cast.
    VarRef {
        /// The name (quotes removed).
        name: String,
        /// The cast, lower-cased (`field`, `tag`, `float`, `integer`, ...), when given.
        cast: Option<String>,
    },
    /// A function call; the name is lower-cased (`count`, `percentile`, `now`, `distinct`...).
    Call {
        /// Function name, lower-case.
        name: String,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `*`, optionally `*::field` / `*::tag`.
    Wildcard {
        /// The cast, lower-cased, when given.
        cast: Option<String>,
    },
    /// A literal.
    Literal(Literal),
    /// `/regex/` (pattern text without slashes).
    Regex(String),
    /// A binary operation.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `( expr )`, kept so that printing round-trips. A sign before anything but a number or
    /// duration reads as InfluxDB reads it, a product, here parenthesised: `-x` is
    /// `Paren(Binary { Mul, Literal(Integer(-1)), x })`; `-5` and `-15m` are plain literals.
    Paren(Box<Expr>),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `42`
    Integer(i64),
    /// An integer too large for i64.
    Unsigned(u64),
    /// `4.2`, `.5` (InfluxQL 1.x has no exponent notation: `1e3` is a malformed duration)
    Float(f64),
    /// `'text'` (quotes removed, escapes resolved). Time strings such as
    /// `'2026-10-25T00:00:00Z'` stay strings; the executor reads them as times where a time is
    /// compared.
    String(String),
    /// `true` / `false`
    Boolean(bool),
    /// `7d`, `1h30m`, `1700000000s`: in ns.
    Duration(i64),
}

/// Binary operators, loosest-binding first: `OR`; `AND`; comparisons; `+ -`; `* / %`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `OR`
    Or,
    /// `AND`
    And,
    /// `=`
    Eq,
    /// `!=` or `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `=~`
    EqRegex,
    /// `!~`
    NotEqRegex,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
}
