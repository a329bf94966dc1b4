//! InfluxQL tokens: the scanner the parser pulls from, one token at a time.
//!
//! Follows InfluxDB 1.x's scanner: keywords are case-insensitive and cannot be bare
//! identifiers; identifiers are `[A-Za-z_][A-Za-z0-9_]*` or double-quoted; strings are
//! single-quoted; both take the escapes `\n`, `\\`, `\'` and `\"` and nothing else. Numbers have
//! no exponent (InfluxDB 1.x reads `1e3` as a malformed duration); digits followed by letters
//! form one duration token (`1h30m`), validated by [`parse_duration`].
//!
//! A `/` is division here: the lexer cannot know whether a regex is expected, so the parser asks
//! for one with [`Lexer::scan_regex`] where the grammar allows it, after rewinding to the `/`.
//! Whitespace and comments (`-- ...` to the end of the line, `/* ... */`) are skipped; each token
//! records whether any were, because InfluxQL is sensitive to it in a few places (`f(` is a call,
//! `f (` is not).
//!
//! Every loop advances by at least one character and nothing is re-scanned except the single `/`
//! before a regex, so scanning is linear in the input.

use super::parser::{ParseError, clip};

/// A position in the query text, both 1-based; `char` counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: u32,
    pub(crate) char: u32,
}

/// Where the scanner stands: a byte offset and the position it corresponds to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    offset: usize,
    pos: Pos,
}

/// Keywords, as InfluxDB 1.x reserves them: none of them is usable as a bare identifier, even
/// those MeterDB does not otherwise know, so that queries MeterDB accepts mean the same in
/// InfluxDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyword {
    All,
    Alter,
    Analyze,
    And,
    Any,
    As,
    Asc,
    Begin,
    By,
    Cardinality,
    Continuous,
    Create,
    Database,
    Databases,
    Default,
    Delete,
    Desc,
    Destinations,
    Diagnostics,
    Distinct,
    Drop,
    Duration,
    End,
    Every,
    Exact,
    Explain,
    False,
    Field,
    For,
    From,
    Grant,
    Grants,
    Group,
    Groups,
    In,
    Inf,
    Insert,
    Into,
    Key,
    Keys,
    Kill,
    Limit,
    Measurement,
    Measurements,
    Name,
    Offset,
    On,
    Or,
    Order,
    Password,
    Policies,
    Policy,
    Privileges,
    Queries,
    Query,
    Read,
    Replication,
    Resample,
    Retention,
    Revoke,
    Select,
    Series,
    Set,
    Shard,
    Shards,
    Show,
    Slimit,
    Soffset,
    Stats,
    Subscription,
    Subscriptions,
    Tag,
    To,
    True,
    User,
    Users,
    Values,
    Where,
    With,
    Write,
}

/// Every keyword with its spelling, in one table so that lookup and printing agree.
const KEYWORDS: &[(&str, Keyword)] = &[
    ("ALL", Keyword::All),
    ("ALTER", Keyword::Alter),
    ("ANALYZE", Keyword::Analyze),
    ("AND", Keyword::And),
    ("ANY", Keyword::Any),
    ("AS", Keyword::As),
    ("ASC", Keyword::Asc),
    ("BEGIN", Keyword::Begin),
    ("BY", Keyword::By),
    ("CARDINALITY", Keyword::Cardinality),
    ("CONTINUOUS", Keyword::Continuous),
    ("CREATE", Keyword::Create),
    ("DATABASE", Keyword::Database),
    ("DATABASES", Keyword::Databases),
    ("DEFAULT", Keyword::Default),
    ("DELETE", Keyword::Delete),
    ("DESC", Keyword::Desc),
    ("DESTINATIONS", Keyword::Destinations),
    ("DIAGNOSTICS", Keyword::Diagnostics),
    ("DISTINCT", Keyword::Distinct),
    ("DROP", Keyword::Drop),
    ("DURATION", Keyword::Duration),
    ("END", Keyword::End),
    ("EVERY", Keyword::Every),
    ("EXACT", Keyword::Exact),
    ("EXPLAIN", Keyword::Explain),
    ("FALSE", Keyword::False),
    ("FIELD", Keyword::Field),
    ("FOR", Keyword::For),
    ("FROM", Keyword::From),
    ("GRANT", Keyword::Grant),
    ("GRANTS", Keyword::Grants),
    ("GROUP", Keyword::Group),
    ("GROUPS", Keyword::Groups),
    ("IN", Keyword::In),
    ("INF", Keyword::Inf),
    ("INSERT", Keyword::Insert),
    ("INTO", Keyword::Into),
    ("KEY", Keyword::Key),
    ("KEYS", Keyword::Keys),
    ("KILL", Keyword::Kill),
    ("LIMIT", Keyword::Limit),
    ("MEASUREMENT", Keyword::Measurement),
    ("MEASUREMENTS", Keyword::Measurements),
    ("NAME", Keyword::Name),
    ("OFFSET", Keyword::Offset),
    ("ON", Keyword::On),
    ("OR", Keyword::Or),
    ("ORDER", Keyword::Order),
    ("PASSWORD", Keyword::Password),
    ("POLICIES", Keyword::Policies),
    ("POLICY", Keyword::Policy),
    ("PRIVILEGES", Keyword::Privileges),
    ("QUERIES", Keyword::Queries),
    ("QUERY", Keyword::Query),
    ("READ", Keyword::Read),
    ("REPLICATION", Keyword::Replication),
    ("RESAMPLE", Keyword::Resample),
    ("RETENTION", Keyword::Retention),
    ("REVOKE", Keyword::Revoke),
    ("SELECT", Keyword::Select),
    ("SERIES", Keyword::Series),
    ("SET", Keyword::Set),
    ("SHARD", Keyword::Shard),
    ("SHARDS", Keyword::Shards),
    ("SHOW", Keyword::Show),
    ("SLIMIT", Keyword::Slimit),
    ("SOFFSET", Keyword::Soffset),
    ("STATS", Keyword::Stats),
    ("SUBSCRIPTION", Keyword::Subscription),
    ("SUBSCRIPTIONS", Keyword::Subscriptions),
    ("TAG", Keyword::Tag),
    ("TO", Keyword::To),
    ("TRUE", Keyword::True),
    ("USER", Keyword::User),
    ("USERS", Keyword::Users),
    ("VALUES", Keyword::Values),
    ("WHERE", Keyword::Where),
    ("WITH", Keyword::With),
    ("WRITE", Keyword::Write),
];

impl Keyword {
    /// The keyword spelled `word` (any case), if it is one.
    pub(crate) fn lookup(word: &str) -> Option<Keyword> {
        KEYWORDS
            .iter()
            .find(|(spelling, _)| spelling.eq_ignore_ascii_case(word))
            .map(|&(_, kw)| kw)
    }

    /// The upper-case spelling, as errors and printed queries show it.
    pub(crate) fn as_str(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|&&(_, kw)| kw == self)
            .map_or("?", |&(spelling, _)| spelling)
    }
}

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A bare identifier that is not a keyword.
    Ident(String),
    /// A double-quoted identifier, escapes resolved.
    QuotedIdent(String),
    Keyword(Keyword),
    /// A single-quoted string, escapes resolved.
    Str(String),
    /// Digits only.
    Integer(String),
    /// Digits with a decimal point.
    Number(String),
    /// Digits followed by letters, not yet validated.
    Duration(String),
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    EqRegex,
    NotEqRegex,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    /// `&`, `|`, `^`: InfluxQL's bitwise operators, which MeterDB does not evaluate.
    Bitwise(char),
    LParen,
    RParen,
    Comma,
    Semicolon,
    Dot,
    DoubleColon,
    /// A character that starts no token.
    Illegal(char),
    Eof,
}

impl Tok {
    /// How InfluxDB names a token in `found X, expected Y`.
    pub(crate) fn describe(&self) -> String {
        let s = match self {
            Tok::Ident(s) | Tok::QuotedIdent(s) | Tok::Str(s) => s.as_str(),
            Tok::Integer(s) | Tok::Number(s) | Tok::Duration(s) => s.as_str(),
            Tok::Keyword(kw) => kw.as_str(),
            Tok::Eq => "=",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::LtEq => "<=",
            Tok::Gt => ">",
            Tok::GtEq => ">=",
            Tok::EqRegex => "=~",
            Tok::NotEqRegex => "!~",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Semicolon => ";",
            Tok::Dot => ".",
            Tok::DoubleColon => "::",
            Tok::Eof => "EOF",
            Tok::Bitwise(c) | Tok::Illegal(c) => return c.to_string(),
        };
        s.to_owned()
    }
}

/// A token with where it starts.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: Pos,
    /// Whether whitespace or a comment came right before it.
    pub(crate) spaced: bool,
    /// The scanner state at its first character, to rescan a `/` as a regex.
    pub(crate) start: Cursor,
}

/// The scanner.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    at: Cursor,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Lexer<'a> {
        Lexer {
            text,
            at: Cursor {
                offset: 0,
                pos: Pos { line: 1, char: 1 },
            },
        }
    }

    /// Goes back to `cursor` (taken from a token this lexer produced).
    pub(crate) fn rewind(&mut self, cursor: Cursor) {
        self.at = cursor;
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.at.offset..).unwrap_or("")
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.at.offset += c.len_utf8();
        if c == '\n' {
            self.at.pos.line = self.at.pos.line.saturating_add(1);
            self.at.pos.char = 1;
        } else {
            self.at.pos.char = self.at.pos.char.saturating_add(1);
        }
        Some(c)
    }

    fn bump_if(&mut self, expected: char) -> bool {
        let hit = self.peek_char() == Some(expected);
        if hit {
            self.bump();
        }
        hit
    }

    /// Skips whitespace and comments; says whether there were any.
    fn skip_blanks(&mut self) -> Result<bool, ParseError> {
        let start = self.at.offset;
        loop {
            match (self.peek_char(), self.peek_second()) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('-'), Some('-')) => {
                    while self.peek_char().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let pos = self.at.pos;
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('*') if self.bump_if('/') => break,
                            Some(_) => {}
                            None => return Err(ParseError::new("unterminated comment", pos)),
                        }
                    }
                }
                _ => return Ok(self.at.offset != start),
            }
        }
    }

    /// The next token (never a regex; see [`Lexer::scan_regex`]).
    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        let spaced = self.skip_blanks()?;
        let start = self.at;
        let pos = start.pos;
        let token = |tok| Token {
            tok,
            pos,
            spaced,
            start,
        };
        let Some(c) = self.bump() else {
            return Ok(token(Tok::Eof));
        };
        let tok = match c {
            'a'..='z' | 'A'..='Z' | '_' => {
                let word = self.take_while(start.offset, |c| c.is_ascii_alphanumeric() || c == '_');
                match Keyword::lookup(word) {
                    Some(kw) => Tok::Keyword(kw),
                    None => Tok::Ident(word.to_owned()),
                }
            }
            '0'..='9' => self.scan_number(start.offset),
            '.' if self.peek_char().is_some_and(|c| c.is_ascii_digit()) => {
                self.scan_number(start.offset)
            }
            '"' => Tok::QuotedIdent(self.scan_quoted('"', pos)?),
            '\'' => Tok::Str(self.scan_quoted('\'', pos)?),
            '=' if self.bump_if('~') => Tok::EqRegex,
            '=' => Tok::Eq,
            '!' if self.bump_if('=') => Tok::NotEq,
            '!' if self.bump_if('~') => Tok::NotEqRegex,
            '<' if self.bump_if('=') => Tok::LtEq,
            '<' if self.bump_if('>') => Tok::NotEq,
            '<' => Tok::Lt,
            '>' if self.bump_if('=') => Tok::GtEq,
            '>' => Tok::Gt,
            ':' if self.bump_if(':') => Tok::DoubleColon,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '&' | '|' | '^' => Tok::Bitwise(c),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            ';' => Tok::Semicolon,
            '.' => Tok::Dot,
            other => Tok::Illegal(other),
        };
        Ok(token(tok))
    }

    /// Consumes characters matching `keep` and returns the text from `from` to here.
    fn take_while(&mut self, from: usize, keep: impl Fn(char) -> bool) -> &'a str {
        while self.peek_char().is_some_and(&keep) {
            self.bump();
        }
        self.text.get(from..self.at.offset).unwrap_or("")
    }

    /// The first character (a digit, or `.` before a digit) is already consumed.
    fn scan_number(&mut self, from: usize) -> Tok {
        let started_with_dot = self.text.get(from..).is_some_and(|t| t.starts_with('.'));
        self.take_while(from, |c| c.is_ascii_digit());
        if started_with_dot || self.bump_if('.') {
            let text = self.take_while(from, |c| c.is_ascii_digit());
            return Tok::Number(text.to_owned());
        }
        let is_unit = |c: char| c.is_ascii_alphabetic() || c == 'µ';
        if self.peek_char().is_some_and(is_unit) {
            let text = self.take_while(from, |c| is_unit(c) || c.is_ascii_digit());
            return Tok::Duration(text.to_owned());
        }
        let text = self.text.get(from..self.at.offset).unwrap_or("");
        Tok::Integer(text.to_owned())
    }

    /// Reads a quoted string or identifier; the opening quote is already consumed.
    fn scan_quoted(&mut self, quote: char, start: Pos) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            let escape_pos = self.at.pos;
            match self.bump() {
                Some(c) if c == quote => return Ok(out),
                None | Some('\n') => {
                    let what = if quote == '"' {
                        "unterminated quoted identifier"
                    } else {
                        "unterminated string"
                    };
                    return Err(ParseError::new(what, start));
                }
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                    other => {
                        let shown = other.map(String::from).unwrap_or_default();
                        return Err(ParseError::new(
                            format!("bad escape: \\{shown}"),
                            escape_pos,
                        ));
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// Reads `/pattern/` at the current position (which must be the opening `/`), resolving
    /// `\/`; any other backslash is kept for the regex engine, as InfluxDB does.
    pub(crate) fn scan_regex(&mut self) -> Result<(String, Pos), ParseError> {
        let start = self.at.pos;
        if !self.bump_if('/') {
            return Err(ParseError::new("expected regex", start));
        }
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('/') => return Ok((out, start)),
                Some('\\') if self.bump_if('/') => out.push('/'),
                Some(c) => out.push(c),
                None => return Err(ParseError::new("unterminated regex", start)),
            }
        }
    }
}

/// Reads a duration literal (`10m`, `1h30m`, `1500ms`, `-15m`) into ns, as InfluxDB's
/// `ParseDuration` does: number-unit pairs with units ns, u or µ, ms, s, m, h, d, w.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || "invalid duration".to_owned();
    let overflow = || {
        format!(
            "overflowed duration {}: choose a smaller duration",
            clip(text)
        )
    };
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(invalid());
        }
        let amount: i64 = digits.parse().map_err(|_| invalid())?;
        let (unit_ns, after) = [
            ("ns", 1),
            ("ms", 1_000_000),
            ("u", 1_000),
            ("µ", 1_000),
            ("s", 1_000_000_000),
            ("m", 60_000_000_000),
            ("h", 3_600_000_000_000),
            ("d", 86_400_000_000_000),
            ("w", 604_800_000_000_000),
        ]
        .iter()
        .find_map(|&(unit, ns)| after.strip_prefix(unit).map(|a| (ns, a)))
        .ok_or_else(invalid)?;
        total = amount
            .checked_mul(unit_ns)
            .and_then(|ns| total.checked_add(ns))
            .ok_or_else(overflow)?;
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            match lexer.next_token() {
                Ok(t) if t.tok == Tok::Eof => return out,
                Ok(t) => out.push(t.tok),
                Err(e) => panic!("{text}: {e}"),
            }
        }
    }

    #[test]
    fn numbers_durations_and_operators() {
        assert_eq!(
            kinds("1 1.5 .5 5. 1h30m 10µs <> != =~ !~ :: -- c\n/* x */ %"),
            vec![
                Tok::Integer("1".into()),
                Tok::Number("1.5".into()),
                Tok::Number(".5".into()),
                Tok::Number("5.".into()),
                Tok::Duration("1h30m".into()),
                Tok::Duration("10µs".into()),
                Tok::NotEq,
                Tok::NotEq,
                Tok::EqRegex,
                Tok::NotEqRegex,
                Tok::DoubleColon,
                Tok::Percent,
            ]
        );
    }

    #[test]
    fn quoted_tokens_resolve_escapes() {
        assert_eq!(
            kinds(r#"'it\'s\n' "a \"b\" \\" SeLeCt sel"#),
            vec![
                Tok::Str("it's\n".into()),
                Tok::QuotedIdent("a \"b\" \\".into()),
                Tok::Keyword(Keyword::Select),
                Tok::Ident("sel".into()),
            ]
        );
    }

    #[test]
    fn bad_quoted_tokens_are_errors() {
        for (text, message) in [
            ("'abc", "unterminated string at line 1, char 1"),
            ("\"abc", "unterminated quoted identifier at line 1, char 1"),
            ("x 'a\\q'", "bad escape: \\q at line 1, char 5"),
            ("/* open", "unterminated comment at line 1, char 1"),
        ] {
            let mut lexer = Lexer::new(text);
            let err = std::iter::from_fn(|| Some(lexer.next_token()))
                .find_map(Result::err)
                .map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some(message), "{text}");
        }
    }

    #[test]
    fn regex_resolves_only_escaped_slash() {
        // `\\/` is a kept backslash and then an escaped slash, as in InfluxDB.
        let mut lexer = Lexer::new(r"/a\/b\d\\// rest");
        let (pattern, _) = lexer.scan_regex().map_err(|e| e.to_string()).unwrap();
        assert_eq!(pattern, r"a/b\d\/");
    }

    #[test]
    fn durations_follow_influxdb() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1500ms"), Ok(1_500_000_000));
        assert_eq!(parse_duration("3u"), Ok(3_000));
        assert_eq!(parse_duration("3µ"), Ok(3_000));
        assert_eq!(parse_duration("2ns"), Ok(2));
        assert_eq!(parse_duration("1w1d"), Ok(8 * 86_400_000_000_000));
        assert_eq!(parse_duration("-15m"), Ok(-900_000_000_000));
        for bad in ["", "1", "1x", "10m30", "1e3", "h", "1n"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("99999999999w").is_err());
    }
}
