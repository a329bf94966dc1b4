//! The InfluxDB 1.x line protocol: `measurement[,tag=value...] field=value[,field=value...] [timestamp]`.
//!
//! Owns parsing a request body into borrowed [`ParsedLine`]s and mapping them onto a
//! [`WriteBatch`] the way MeterDB reads them (the `tenant` tag picks the tenant, a string field
//! `event_id` is the event id). It knows nothing of storage: the batch it fills is checked
//! against stored data by the engine.
//!
//! Rules, as InfluxDB 1.x applies them
//! (<https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>):
//!
//! - The measurement escapes `\,` and `\ `; tag keys, tag values and field keys escape `\,`,
//!   `\=` and `\ `. A backslash before any other character is kept literally, but it still
//!   protects that character from being read as a delimiter (as InfluxDB's scanner does).
//! - String field values are double-quoted and escape `\"` and `\\`; they may be at most
//!   64 KiB long (the spec's limit, [`limits::MAX_STRING_LEN`]).
//! - A number without suffix is a float (`inf` and `nan` are rejected), `i` marks a signed and
//!   `u` an unsigned integer, both range-checked; booleans are `t T true True TRUE f F false
//!   False FALSE`.
//! - The timestamp is an optional integer in the request's [`Precision`], converted to
//!   nanoseconds with overflow checked.
//! - Lines end with `\n`, a trailing `\r` is dropped; blank lines and lines whose first
//!   non-blank character is `#` are skipped. A newline inside a quoted string ends the line
//!   (InfluxDB 1.x would continue the string; MeterDB's clients never send one).
//!
//! Unescaped names and values are borrowed from the body; only a token that contains an
//! escape is copied.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::fmt;

use crate::error::InvalidEvent;
use crate::model::{FieldValueRef, Timestamp, WriteBatch, limits};

/// The unit of the timestamps of a request (InfluxDB's `precision` parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds (`ns`, `n`), the default.
    #[default]
    Nanoseconds,
    /// Microseconds (`us`, `u`).
    Microseconds,
    /// Milliseconds (`ms`).
    Milliseconds,
    /// Seconds (`s`).
    Seconds,
}

impl Precision {
    /// The precision for a query parameter value, if it is one InfluxDB 1.x accepts.
    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            _ => return None,
        })
    }

    /// Nanoseconds in one unit.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Nanoseconds => "ns",
            Precision::Microseconds => "us",
            Precision::Milliseconds => "ms",
            Precision::Seconds => "s",
        })
    }
}

/// A parsed field value; a string is borrowed from the body unless it had escapes.
#[derive(Clone, Debug, PartialEq)]
pub enum LineValue<'a> {
    /// 64-bit float (a number without suffix).
    F64(f64),
    /// 64-bit signed integer (suffix `i`).
    I64(i64),
    /// 64-bit unsigned integer (suffix `u`).
    U64(u64),
    /// Boolean.
    Bool(bool),
    /// String (double-quoted).
    Str(Cow<'a, str>),
}

impl LineValue<'_> {
    /// The value as the batch stores it.
    pub fn as_ref(&self) -> FieldValueRef<'_> {
        match self {
            LineValue::F64(v) => FieldValueRef::F64(*v),
            LineValue::I64(v) => FieldValueRef::I64(*v),
            LineValue::U64(v) => FieldValueRef::U64(*v),
            LineValue::Bool(v) => FieldValueRef::Bool(*v),
            LineValue::Str(v) => FieldValueRef::Str(v),
        }
    }
}

/// One parsed line, borrowing from the body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedLine<'a> {
    /// Measurement name, unescaped.
    pub measurement: Cow<'a, str>,
    /// Tags in line order, unescaped; keys are unique.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in line order, key unescaped; at least one, keys unique.
    pub fields: Vec<(Cow<'a, str>, LineValue<'a>)>,
    /// Timestamp in nanoseconds (after the precision), when the line has one.
    pub timestamp: Option<i64>,
}

/// The line in line protocol, escaped as a client library writes it, timestamp in
/// nanoseconds: parsed back at [`Precision::Nanoseconds`] it gives the same line (for names
/// the protocol can express: not a backslash before an escapable character or at the end of
/// a token, not a newline).
impl fmt::Display for ParsedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn escaped(f: &mut fmt::Formatter<'_>, s: &str, escapes: &[char]) -> fmt::Result {
            for c in s.chars() {
                if escapes.contains(&c) {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            Ok(())
        }
        const NAME: &[char] = &[',', '=', ' '];
        escaped(f, &self.measurement, &[',', ' '])?;
        for (k, v) in &self.tags {
            f.write_str(",")?;
            escaped(f, k, NAME)?;
            f.write_str("=")?;
            escaped(f, v, NAME)?;
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "," })?;
            escaped(f, k, NAME)?;
            match v {
                LineValue::F64(x) => write!(f, "={x:?}")?,
                LineValue::I64(x) => write!(f, "={x}i")?,
                LineValue::U64(x) => write!(f, "={x}u")?,
                LineValue::Bool(x) => write!(f, "={x}")?,
                LineValue::Str(s) => {
                    f.write_str("=\"")?;
                    escaped(f, s, &['"', '\\'])?;
                    f.write_str("\"")?;
                }
            }
        }
        if let Some(ts) = self.timestamp {
            write!(f, " {ts}")?;
        }
        Ok(())
    }
}

/// A rejected line: its 1-based number, a short quote of it, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {kind} in {quote:?}")]
pub struct LineError {
    /// Line number in the body, from 1.
    pub line: usize,
    /// The start of the line, at most [`QUOTE_LEN`] characters (then `...`).
    pub quote: String,
    /// What is wrong.
    pub kind: LineErrorKind,
}

/// How much of a rejected line its error quotes, in characters: enough to find it, short
/// enough for a response listing many errors (as `influxdb3_core`'s `maybe_truncate_context`).
pub const QUOTE_LEN: usize = 64;

impl LineError {
    fn new(line: usize, text: &[u8], kind: LineErrorKind) -> LineError {
        let text = String::from_utf8_lossy(text);
        let mut quote: String = text.chars().take(QUOTE_LEN).collect();
        if text.chars().nth(QUOTE_LEN).is_some() {
            quote.push_str("...");
        }
        LineError { line, quote, kind }
    }
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LineErrorKind {
    /// The line is not UTF-8.
    #[error("invalid utf-8")]
    InvalidUtf8,
    /// The line starts with a delimiter.
    #[error("missing measurement")]
    MissingMeasurement,
    /// A tag has an empty key.
    #[error("missing tag key")]
    MissingTagKey,
    /// A tag has no `=value` or an empty value.
    #[error("missing value for tag {0:?}")]
    MissingTagValue(String),
    /// A tag value contains an unescaped `=`.
    #[error("unescaped '=' in value of tag {0:?}")]
    InvalidTagValue(String),
    /// The line has no field set.
    #[error("missing fields")]
    MissingFields,
    /// A field has an empty key.
    #[error("missing field key")]
    MissingFieldKey,
    /// A field has no `=value` or an empty value.
    #[error("missing value for field {0:?}")]
    MissingFieldValue(String),
    /// A field value is no number, boolean or string.
    #[error("invalid field value {value:?} for field {field:?}")]
    InvalidFieldValue {
        /// Field key.
        field: String,
        /// The value as written.
        value: String,
    },
    /// An `i` or `u` integer does not fit in 64 bits, or a float is infinite.
    #[error("value {value:?} of field {field:?} is out of range")]
    OutOfRange {
        /// Field key.
        field: String,
        /// The value as written.
        value: String,
    },
    /// A string value has no closing quote.
    #[error("unterminated string value of field {0:?}")]
    UnterminatedString(String),
    /// A string value is longer than the protocol allows.
    #[error("string value of field {field:?} is {len} bytes long, the limit is {max}", max = limits::MAX_STRING_LEN)]
    StringTooLong {
        /// Field key.
        field: String,
        /// Its length in bytes, unescaped.
        len: usize,
    },
    /// A tag key appears twice.
    #[error("duplicate tag {0:?}")]
    DuplicateTag(String),
    /// A field key appears twice.
    #[error("duplicate field {0:?}")]
    DuplicateField(String),
    /// The timestamp is not an integer (or something follows it).
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    /// The timestamp in nanoseconds is outside what the engine stores.
    #[error("timestamp {value} in {precision} is out of range")]
    TimestampOutOfRange {
        /// The timestamp as written.
        value: i64,
        /// Its precision.
        precision: Precision,
    },
    /// Neither a `tenant` tag nor a default tenant.
    #[error("no tenant: add a tenant tag or ?tenant=")]
    NoTenant,
    /// The `event_id` field is not a string.
    #[error("field \"event_id\" must be a string (it is the event's id)")]
    EventIdNotString,
    /// The event breaks one of the engine's rules (a limit, a reserved key).
    #[error("{0}")]
    Invalid(#[from] InvalidEvent),
}

/// Parses every line of `body`, skipping blank and comment lines; yields each line's 1-based
/// number with its parse or its error.
pub fn parse_lines(
    body: &[u8],
    precision: Precision,
) -> impl Iterator<Item = (usize, Result<ParsedLine<'_>, LineError>)> + '_ {
    lines(body).map(move |(no, raw)| {
        let mut parsed = ParsedLine::default();
        let result = parse_raw(raw, precision, &mut parsed)
            .map(|()| parsed)
            .map_err(|kind| LineError::new(no, raw, kind));
        (no, result)
    })
}

/// Parses one line (without its `\n`) into `out`, reusing its vectors. Does not skip
/// comments: `#` would be read as a measurement name.
pub fn parse_line<'a>(
    line: &'a str,
    precision: Precision,
    out: &mut ParsedLine<'a>,
) -> Result<(), LineErrorKind> {
    out.tags.clear();
    out.fields.clear();
    out.timestamp = None;
    Parser {
        s: line,
        b: line.as_bytes(),
        precision,
    }
    .parse(out)
}

/// How [`append_to_batch`] maps lines onto events.
#[derive(Clone, Copy, Debug)]
pub struct LineOptions<'o> {
    /// Unit of the timestamps.
    pub precision: Precision,
    /// Tenant of lines without a `tenant` tag (the request's `?tenant=`).
    pub default_tenant: Option<&'o str>,
    /// The server's time of the request: lines without a timestamp get it, truncated to
    /// `precision`.
    pub now: Timestamp,
}

/// Parses `body` and appends one event per accepted line to `batch`; returns the rejected
/// lines, in order.
///
/// The tenant is the `tenant` tag (removed from the tags), else `opts.default_tenant`; a
/// string field `event_id` becomes the event's id. Accepted events also pass
/// [`crate::model::EventRef::validate`], so the batch is never refused for a line's sake.
pub fn append_to_batch(
    body: &[u8],
    opts: &LineOptions<'_>,
    batch: &mut WriteBatch,
) -> Vec<LineError> {
    append_numbered(body, opts, batch, &mut Vec::new())
}

/// [`append_to_batch`], also pushing onto `numbers` the line number of each event it appends
/// (in batch order), so that a later per-event refusal can name its line.
pub fn append_numbered(
    body: &[u8],
    opts: &LineOptions<'_>,
    batch: &mut WriteBatch,
    numbers: &mut Vec<usize>,
) -> Vec<LineError> {
    append_routed(
        body,
        opts,
        std::slice::from_mut(batch),
        std::slice::from_mut(numbers),
        |_| 0,
    )
}

/// [`append_numbered`] into several batches: each event goes to `parts[route(tenant)]` and its
/// line number onto `numbers[route(tenant)]`. The server routes by shard, so that each part
/// reaches its shard as parsed: splitting one parsed batch copied every event a second time.
/// `parts` and `numbers` have one entry per part; an index `route` gives past the last part
/// counts as the last.
pub fn append_routed(
    body: &[u8],
    opts: &LineOptions<'_>,
    parts: &mut [WriteBatch],
    numbers: &mut [Vec<usize>],
    route: impl Fn(&str) -> usize,
) -> Vec<LineError> {
    let mut errors = Vec::new();
    let last = parts.len().min(numbers.len()).saturating_sub(1);
    // Per part, the index its next appended event has (parts may hold events already).
    let mut next: Vec<usize> = parts.iter().map(WriteBatch::len).collect();
    // Part, line number and text of each appended event (in order within a part), to report
    // engine-rule failures.
    let mut appended: Vec<(usize, usize, &[u8])> = Vec::new();
    // One parse buffer for the whole body: no per-line vector allocation.
    let mut parsed = ParsedLine::default();
    for (no, raw) in lines(body) {
        let appended_to = parse_raw(raw, opts.precision, &mut parsed).and_then(|()| {
            let tenant = tenant_of(&parsed, opts)?;
            let part = route(tenant).min(last);
            let batch = parts.get_mut(part).ok_or(LineErrorKind::NoTenant)?;
            append(&parsed, tenant, opts, batch).map(|()| part)
        });
        match appended_to {
            Ok(part) => appended.push((part, no, raw)),
            Err(kind) => errors.push(LineError::new(no, raw, kind)),
        }
    }
    // Checking after the fact keeps the common, all-valid case free of copies; a part with a
    // bad event is rebuilt without it.
    let mut invalid: Vec<Vec<usize>> = vec![Vec::new(); parts.len()];
    let mut kept = Vec::with_capacity(appended.len());
    for &(part, no, raw) in &appended {
        let (Some(batch), Some(index)) = (parts.get(part), next.get_mut(part)) else {
            continue;
        };
        let i = *index;
        *index += 1;
        match batch.event(i).map(|e| e.validate()) {
            Some(Err(reason)) => {
                if let Some(invalid) = invalid.get_mut(part) {
                    invalid.push(i);
                }
                errors.push(LineError::new(no, raw, reason.into()));
            }
            _ => kept.push((part, no)),
        }
    }
    for (batch, invalid) in parts.iter_mut().zip(&invalid) {
        if !invalid.is_empty() {
            *batch = batch.select((0..batch.len()).filter(|i| invalid.binary_search(i).is_err()));
        }
    }
    errors.sort_by_key(|e| e.line);
    for (part, no) in kept {
        if let Some(numbers) = numbers.get_mut(part) {
            numbers.push(no);
        }
    }
    errors
}

/// The tenant of a parsed line: its `tenant` tag, else the request's.
fn tenant_of<'l>(
    line: &'l ParsedLine<'_>,
    opts: &LineOptions<'l>,
) -> Result<&'l str, LineErrorKind> {
    line.tags
        .iter()
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v.as_ref())
        .or(opts.default_tenant)
        .ok_or(LineErrorKind::NoTenant)
}

fn append(
    line: &ParsedLine<'_>,
    tenant: &str,
    opts: &LineOptions<'_>,
    batch: &mut WriteBatch,
) -> Result<(), LineErrorKind> {
    let event_id = match line.fields.iter().find(|(k, _)| k == "event_id") {
        Some((_, LineValue::Str(id))) => Some(id.as_ref()),
        Some(_) => return Err(LineErrorKind::EventIdNotString),
        None => None,
    };
    // As InfluxDB: a line without a timestamp gets the server's time truncated to the
    // request's precision.
    let now = opts.now.0 - opts.now.0.rem_euclid(opts.precision.nanos());
    let ts = line.timestamp.map_or(Timestamp(now), Timestamp);
    let mut e = batch.add(tenant, &line.measurement, ts);
    for (k, v) in line.tags.iter().filter(|(k, _)| k != "tenant") {
        e.tag(k, v);
    }
    for (k, v) in line.fields.iter().filter(|(k, _)| k != "event_id") {
        e.field(k, v.as_ref());
    }
    if let Some(id) = event_id {
        e.event_id(id);
    }
    Ok(())
}

/// The non-blank, non-comment lines of `body` with their 1-based numbers, `\r\n` and leading
/// whitespace removed.
fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&c| c == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let start = line
                .iter()
                .position(|&c| c != b' ' && c != b'\t')
                .unwrap_or(line.len());
            let line = line.get(start..).unwrap_or_default();
            (!line.is_empty() && !line.starts_with(b"#")).then_some((i + 1, line))
        })
}

fn parse_raw<'a>(
    raw: &'a [u8],
    precision: Precision,
    out: &mut ParsedLine<'a>,
) -> Result<(), LineErrorKind> {
    let line = std::str::from_utf8(raw).map_err(|_| LineErrorKind::InvalidUtf8)?;
    parse_line(line, precision, out)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    precision: Precision,
}

/// What the measurement may escape.
const MEASUREMENT_ESCAPES: &[u8] = b", ";
/// What tag keys, tag values and field keys may escape.
const KEY_ESCAPES: &[u8] = b",= ";

impl<'a> Parser<'a> {
    fn parse(&self, out: &mut ParsedLine<'a>) -> Result<(), LineErrorKind> {
        let end = self.find(0, b", ");
        if end == 0 {
            return Err(LineErrorKind::MissingMeasurement);
        }
        out.measurement = unescape(self.sub(0, end), MEASUREMENT_ESCAPES);
        let mut pos = end;

        while self.at(pos) == Some(b',') {
            let start = pos + 1;
            let key_end = self.find(start, b"=, ");
            if key_end == start {
                return Err(LineErrorKind::MissingTagKey);
            }
            let key = unescape(self.sub(start, key_end), KEY_ESCAPES);
            if self.at(key_end) != Some(b'=') {
                return Err(LineErrorKind::MissingTagValue(key.into_owned()));
            }
            let value_start = key_end + 1;
            let value_end = self.find(value_start, b"=, ");
            if self.at(value_end) == Some(b'=') {
                return Err(LineErrorKind::InvalidTagValue(key.into_owned()));
            }
            if value_end == value_start {
                return Err(LineErrorKind::MissingTagValue(key.into_owned()));
            }
            if out.tags.iter().any(|(k, _)| *k == key) {
                return Err(LineErrorKind::DuplicateTag(key.into_owned()));
            }
            let value = unescape(self.sub(value_start, value_end), KEY_ESCAPES);
            out.tags.push((key, value));
            pos = value_end;
        }

        pos = self.skip_spaces(pos);
        if pos >= self.b.len() {
            return Err(LineErrorKind::MissingFields);
        }
        loop {
            let key_end = self.find(pos, b"=, ");
            if key_end == pos {
                return Err(LineErrorKind::MissingFieldKey);
            }
            let key = unescape(self.sub(pos, key_end), KEY_ESCAPES);
            if self.at(key_end) != Some(b'=') {
                return Err(LineErrorKind::MissingFieldValue(key.into_owned()));
            }
            let (value, end) = self.field_value(key_end + 1, &key)?;
            if out.fields.iter().any(|(k, _)| *k == key) {
                return Err(LineErrorKind::DuplicateField(key.into_owned()));
            }
            out.fields.push((key, value));
            pos = end;
            if self.at(pos) == Some(b',') {
                pos += 1;
            } else {
                break;
            }
        }

        pos = self.skip_spaces(pos);
        if pos < self.b.len() {
            out.timestamp =
                Some(self.timestamp(self.sub(pos, self.b.len()).trim_end_matches([' ', '\t']))?);
        }
        Ok(())
    }

    /// Parses the field value starting at `start`; returns it and the position after it, which
    /// is a `,`, a space or the end of the line.
    fn field_value(
        &self,
        start: usize,
        key: &str,
    ) -> Result<(LineValue<'a>, usize), LineErrorKind> {
        if self.at(start) == Some(b'"') {
            let mut i = start + 1;
            let close = loop {
                match self.at(i) {
                    Some(b'\\') => i += 2,
                    Some(b'"') => break i,
                    Some(_) => i += 1,
                    None => return Err(LineErrorKind::UnterminatedString(key.to_owned())),
                }
            };
            let raw = self.sub(start + 1, close);
            let value = unescape(raw, b"\"\\");
            if value.len() > limits::MAX_STRING_LEN {
                return Err(LineErrorKind::StringTooLong {
                    field: key.to_owned(),
                    len: value.len(),
                });
            }
            let end = close + 1;
            return match self.at(end) {
                None | Some(b',' | b' ') => Ok((LineValue::Str(value), end)),
                Some(_) => Err(LineErrorKind::InvalidFieldValue {
                    field: key.to_owned(),
                    value: self.sub(start, self.find(end, b", ")).to_owned(),
                }),
            };
        }
        let end = self.find(start, b", ");
        let text = self.sub(start, end);
        if text.is_empty() {
            return Err(LineErrorKind::MissingFieldValue(key.to_owned()));
        }
        Ok((scalar(text, key)?, end))
    }

    fn timestamp(&self, text: &str) -> Result<i64, LineErrorKind> {
        let invalid = || LineErrorKind::InvalidTimestamp(text.to_owned());
        let digits = text.strip_prefix('-').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        let value: i64 = text.parse().map_err(|_| invalid())?;
        let out_of_range = LineErrorKind::TimestampOutOfRange {
            value,
            precision: self.precision,
        };
        match value.checked_mul(self.precision.nanos()) {
            Some(ns) if (Timestamp::MIN.0..=Timestamp::MAX.0).contains(&ns) => Ok(ns),
            _ => Err(out_of_range),
        }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    /// `s[a..b]`; the positions come from [`Parser::find`] and are ASCII delimiters or the end,
    /// so always on a character boundary.
    fn sub(&self, a: usize, b: usize) -> &'a str {
        self.s.get(a..b).unwrap_or_default()
    }

    fn skip_spaces(&self, mut i: usize) -> usize {
        while self.at(i) == Some(b' ') {
            i += 1;
        }
        i
    }

    /// The position of the first byte in `stops` from `from` that no backslash protects, or
    /// the end of the line.
    fn find(&self, from: usize, stops: &[u8]) -> usize {
        let mut i = from;
        while let Some(c) = self.at(i) {
            if c == b'\\' {
                i += 2;
            } else if stops.contains(&c) {
                return i;
            } else {
                i += 1;
            }
        }
        self.b.len()
    }
}

/// Parses an unquoted field value: a float, an `i`/`u` integer or a boolean.
fn scalar<'a>(text: &str, key: &str) -> Result<LineValue<'a>, LineErrorKind> {
    let invalid = || LineErrorKind::InvalidFieldValue {
        field: key.to_owned(),
        value: text.to_owned(),
    };
    let out_of_range = || LineErrorKind::OutOfRange {
        field: key.to_owned(),
        value: text.to_owned(),
    };
    match text {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(LineValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(LineValue::Bool(false)),
        _ => {}
    }
    if let Some(digits) = text.strip_suffix('i') {
        let unsigned = digits.strip_prefix('-').unwrap_or(digits);
        if unsigned.is_empty() || !unsigned.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        return digits
            .parse()
            .map(LineValue::I64)
            .map_err(|_| out_of_range());
    }
    if let Some(digits) = text.strip_suffix('u') {
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        return digits
            .parse()
            .map(LineValue::U64)
            .map_err(|_| out_of_range());
    }
    // Rust's float syntax is wider than InfluxDB's (a leading `+`, `inf`, `nan`): only digits,
    // a point, an exponent and signs get through, and the first character is a digit, `-` or
    // `.` as in InfluxDB's `scanNumber`.
    let first_ok = matches!(text.bytes().next(), Some(b'0'..=b'9' | b'-' | b'.'));
    if !first_ok
        || !text
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err(invalid());
    }
    let v: f64 = text.parse().map_err(|_| invalid())?;
    if !v.is_finite() {
        return Err(out_of_range());
    }
    Ok(LineValue::F64(v))
}

/// Removes the backslash of each `\x` with `x` in `escapes`; other backslashes stay, and so
/// does the character after them. Borrows when there is no backslash.
fn unescape<'a>(s: &'a str, escapes: &[u8]) -> Cow<'a, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(n) if n.is_ascii() && escapes.contains(&(n as u8)) => out.push(n),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
