//! The answer to a query, shaped and serialized exactly as InfluxDB 1.x's `/query` answers:
//! `{"results":[{"statement_id":0,"series":[{"name","tags","columns","values"}]}]}`.

use std::fmt::Write as _;

use crate::ingest::lineproto::Precision;

/// One cell of a result row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// A point's time in ns since the epoch: RFC 3339 (in the statement's time zone) or an
    /// integer in the requested `epoch` unit.
    Time(i64),
    /// A float.
    Float(f64),
    /// A signed integer.
    Integer(i64),
    /// An unsigned integer.
    Unsigned(u64),
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
}

/// One series of a statement's result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Measurement name (or `measurements`, `tagKeys`... for SHOW statements).
    pub name: String,
    /// `GROUP BY` tag values, sorted by key; omitted from the JSON when empty.
    pub tags: Vec<(String, String)>,
    /// Column names; the first is `time` for SELECT.
    pub columns: Vec<String>,
    /// Rows.
    pub values: Vec<Vec<Value>>,
}

/// The result of one statement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatementResult {
    /// Position of the statement in the query, from 0.
    pub statement_id: usize,
    /// The series; omitted from the JSON when empty.
    pub series: Vec<Series>,
    /// Why the statement failed.
    pub error: Option<String>,
    /// The `tz('...')` of the statement: times are written in this zone's offset.
    pub timezone: Option<chrono_tz::Tz>,
}

/// The answer to a whole query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryResponse {
    /// One result per statement.
    pub results: Vec<StatementResult>,
    /// A query-level error (the query did not parse); `results` is then empty.
    pub error: Option<String>,
}

impl QueryResponse {
    /// A response holding only a query-level error.
    pub fn error(message: impl Into<String>) -> QueryResponse {
        QueryResponse {
            results: Vec::new(),
            error: Some(message.into()),
        }
    }

    /// The JSON body, times in RFC 3339 unless `epoch` is given.
    pub fn to_json(&self, epoch: Option<Precision>) -> String {
        let mut out = String::with_capacity(256);
        if let Some(e) = &self.error {
            out.push_str("{\"error\":");
            write_str(&mut out, e);
            out.push('}');
            return out;
        }
        out.push_str("{\"results\":[");
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"statement_id\":{}", r.statement_id);
            if !r.series.is_empty() {
                out.push_str(",\"series\":[");
                for (j, s) in r.series.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_series(&mut out, s, epoch, r.timezone);
                }
                out.push(']');
            }
            if let Some(e) = &r.error {
                out.push_str(",\"error\":");
                write_str(&mut out, e);
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

fn write_series(out: &mut String, s: &Series, epoch: Option<Precision>, tz: Option<chrono_tz::Tz>) {
    // InfluxDB omits an empty name (SHOW RETENTION POLICIES has none); `columns` always
    // comes, so the members before it end with a comma.
    out.push('{');
    if !s.name.is_empty() {
        out.push_str("\"name\":");
        write_str(out, &s.name);
        out.push(',');
    }
    if !s.tags.is_empty() {
        out.push_str("\"tags\":{");
        for (i, (k, v)) in s.tags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, k);
            out.push(':');
            write_str(out, v);
        }
        out.push_str("},");
    }
    out.push_str("\"columns\":[");
    for (i, c) in s.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, c);
    }
    out.push_str("],\"values\":[");
    for (i, row) in s.values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_value(out, v, epoch, tz);
        }
        out.push(']');
    }
    out.push_str("]}");
}

fn write_value(out: &mut String, v: &Value, epoch: Option<Precision>, tz: Option<chrono_tz::Tz>) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Time(ns) => match epoch {
            Some(p) => {
                let _ = write!(out, "{}", ns / p.nanos());
            }
            None => {
                out.push('"');
                out.push_str(&rfc3339(*ns, tz));
                out.push('"');
            }
        },
        Value::Float(f) => write_float(out, *f),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Unsigned(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => write_str(out, s),
    }
}

/// A float as Go's `encoding/json` writes it (InfluxDB's encoder): shortest round-trip digits,
/// no `.0` on whole numbers, exponent form below 1e-6 and from 1e21. JSON has no NaN or
/// infinity: those become `null`.
fn write_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str("null");
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&s),
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// A JSON string literal.
fn write_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

/// Go's RFC3339Nano: trailing zeros of the fraction trimmed, `Z` for UTC, else `+hh:mm`.
pub fn rfc3339(ns: i64, tz: Option<chrono_tz::Tz>) -> String {
    use chrono::{DateTime, SecondsFormat, Utc};
    let t = DateTime::<Utc>::from_timestamp_nanos(ns);
    let s = match tz {
        Some(z) if t.with_timezone(&z).offset().to_string() != "UTC" => t
            .with_timezone(&z)
            .to_rfc3339_opts(SecondsFormat::Nanos, false),
        _ => t.to_rfc3339_opts(SecondsFormat::Nanos, true),
    };
    // The fraction is the nine digits after the seconds' dot (at byte 19).
    let (head, tail) = s.split_at(19);
    let (fraction, zone) = tail.split_at(10);
    let digits = fraction.trim_end_matches('0');
    if digits == "." {
        format!("{head}{zone}")
    } else {
        format!("{head}{digits}{zone}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_writes_them() {
        let cases = [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (123456.789, "123456.789"),
            (0.0, "0"),
            (f64::NAN, "null"),
        ];
        for (f, want) in cases {
            let mut s = String::new();
            write_float(&mut s, f);
            assert_eq!(s, want, "{f}");
        }
    }

    #[test]
    fn times_as_rfc3339_nano() {
        assert_eq!(
            rfc3339(1_793_491_200_000_000_000, None),
            "2026-11-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(1_793_491_200_120_000_000, None),
            "2026-11-01T00:00:00.12Z"
        );
        assert_eq!(
            rfc3339(1_793_491_200_000_000_000, Some(chrono_tz::Europe::Paris)),
            "2026-11-01T01:00:00+01:00"
        );
    }

    #[test]
    fn response_shape() {
        let r = QueryResponse {
            results: vec![StatementResult {
                statement_id: 0,
                series: vec![Series {
                    name: "api_calls".into(),
                    tags: vec![("endpoint".into(), "/a".into())],
                    columns: vec!["time".into(), "count".into()],
                    values: vec![vec![Value::Time(1_000_000_000), Value::Integer(3)]],
                }],
                ..StatementResult::default()
            }],
            error: None,
        };
        assert_eq!(
            r.to_json(Some(Precision::Seconds)),
            r#"{"results":[{"statement_id":0,"series":[{"name":"api_calls","tags":{"endpoint":"/a"},"columns":["time","count"],"values":[[1,3]]}]}]}"#
        );
        let unnamed = QueryResponse {
            results: vec![StatementResult {
                series: vec![Series {
                    columns: vec!["name".into()],
                    values: vec![vec![Value::String("autogen".into())]],
                    ..Series::default()
                }],
                ..StatementResult::default()
            }],
            error: None,
        };
        assert_eq!(
            unnamed.to_json(None),
            r#"{"results":[{"statement_id":0,"series":[{"columns":["name"],"values":[["autogen"]]}]}]}"#
        );
        assert_eq!(
            QueryResponse::error("error parsing query: x").to_json(None),
            r#"{"error":"error parsing query: x"}"#
        );
    }
}
