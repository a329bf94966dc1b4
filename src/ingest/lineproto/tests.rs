#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use proptest::prelude::*;

use super::*;
use crate::model::{Event, FieldValue, TenantId};

fn one(line: &str) -> Result<ParsedLine<'_>, LineErrorKind> {
    one_p(line, Precision::Nanoseconds)
}

fn one_p(line: &str, p: Precision) -> Result<ParsedLine<'_>, LineErrorKind> {
    let mut out = ParsedLine::default();
    parse_line(line, p, &mut out).map(|()| out)
}

fn field<'l>(l: &'l ParsedLine<'_>, key: &str) -> &'l LineValue<'l> {
    &l.fields.iter().find(|(k, _)| k == key).unwrap().1
}

fn value(v: &str) -> Result<LineValue<'static>, LineErrorKind> {
    let line = format!("m v={v}");
    one(&line).map(|l| match &l.fields[0].1 {
        LineValue::Str(s) => LineValue::Str(Cow::Owned(s.to_string())),
        LineValue::F64(x) => LineValue::F64(*x),
        LineValue::I64(x) => LineValue::I64(*x),
        LineValue::U64(x) => LineValue::U64(*x),
        LineValue::Bool(x) => LineValue::Bool(*x),
    })
}

#[test]
fn docs_example_with_escaped_tag_key() {
    let l = one(r"weather,location\ place=us-midwest temperature=82 1465839830100400200").unwrap();
    assert_eq!(l.measurement, "weather");
    assert_eq!(l.tags, vec![("location place".into(), "us-midwest".into())]);
    assert_eq!(l.fields, vec![("temperature".into(), LineValue::F64(82.0))]);
    assert_eq!(l.timestamp, Some(1465839830100400200));
}

#[test]
fn docs_example_with_every_escape() {
    let l = one(
        r#""measurement\ with\ quotes",tag\ key\ with\ spaces=tag\,value\,with"commas" field_key\\\\="string field value, only \" need be escaped""#,
    )
    .unwrap();
    assert_eq!(l.measurement, r#""measurement with quotes""#);
    assert_eq!(
        l.tags,
        vec![(
            "tag key with spaces".into(),
            r#"tag,value,with"commas""#.into()
        )]
    );
    assert_eq!(l.fields[0].0, r"field_key\\\\");
    assert_eq!(
        l.fields[0].1,
        LineValue::Str(r#"string field value, only " need be escaped"#.into())
    );
    assert_eq!(l.timestamp, None);
}

#[test]
fn escapes_per_element() {
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // line, measurement, tag key, tag value, field key
        (r"m\,x,k=v f=1", "m,x", "k", "v", "f"),
        (r"m\ x,k=v f=1", "m x", "k", "v", "f"),
        // `=` is not escaped in a measurement: the backslash stays.
        (r"m\=x,k=v f=1", r"m\=x", "k", "v", "f"),
        (r"m=x,k=v f=1", "m=x", "k", "v", "f"),
        (r"m,k\=1\,2\ 3=v f=1", "m", "k=1,2 3", "v", "f"),
        (r"m,k=v\=1\,2\ 3 f=1", "m", "k", "v=1,2 3", "f"),
        (r"m,k=v f\=1\,2\ 3=1", "m", "k", "v", "f=1,2 3"),
        // A backslash before anything else is literal.
        (r"m\x,k\y=v\z f\q=1", r"m\x", r"k\y", r"v\z", r"f\q"),
        (r"m,k=a\\b f=1", "m", "k", r"a\\b", "f"),
        (r"m,k=v\ f=1", "m", "k", r"v f=1", "f"),
        ("m,k=\u{e9}\\\u{e9} f=1", "m", "k", "\u{e9}\\\u{e9}", "f"),
    ];
    for &(line, m, tk, tv, fk) in cases {
        if line == r"m,k=v\ f=1" {
            // The escaped space swallows the separator, leaving `=` in the tag value.
            assert_eq!(
                one(line),
                Err(LineErrorKind::InvalidTagValue("k".into())),
                "{line}"
            );
            assert_eq!(one(r"m,k=v\ f"), Err(LineErrorKind::MissingFields));
            continue;
        }
        let l = one(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(l.measurement, m, "{line}");
        assert_eq!(l.tags, vec![(tk.into(), tv.into())], "{line}");
        assert_eq!(l.fields[0].0, fk, "{line}");
    }
}

#[test]
fn unescaped_tokens_are_borrowed() {
    let l = one("cpu,host=a,region=eu usage=1,name=\"x\" 1").unwrap();
    assert!(matches!(l.measurement, Cow::Borrowed(_)));
    assert!(
        l.tags
            .iter()
            .all(|(k, v)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_))))
    );
    assert!(matches!(
        l.fields[1],
        (Cow::Borrowed(_), LineValue::Str(Cow::Borrowed(_)))
    ));
    let l = one(r"c\ pu f=1").unwrap();
    assert!(matches!(l.measurement, Cow::Owned(_)));
}

#[test]
fn string_values() {
    let cases: &[(&str, &str)] = &[
        (r#""""#, ""),
        (r#""a b,c=d""#, "a b,c=d"),
        (r#""q\"q""#, r#"q"q"#),
        (r#""b\\s""#, r"b\s"),
        (r#""b\ns""#, r"b\ns"),
        (r#""tail\\""#, r"tail\"),
        (r#""\\\"""#, r#"\""#),
    ];
    for &(raw, want) in cases {
        assert_eq!(
            value(raw),
            Ok(LineValue::Str(want.to_owned().into())),
            "{raw}"
        );
    }
    assert_eq!(
        one(r#"m s="abc"#),
        Err(LineErrorKind::UnterminatedString("s".into()))
    );
    assert_eq!(
        one(r#"m s="abc\""#),
        Err(LineErrorKind::UnterminatedString("s".into()))
    );
    assert!(matches!(
        one(r#"m s="abc"x"#),
        Err(LineErrorKind::InvalidFieldValue { .. })
    ));
    let max = "x".repeat(limits::MAX_STRING_LEN);
    assert!(one(&format!("m s=\"{max}\"")).is_ok());
    assert_eq!(
        one(&format!("m s=\"{max}x\"")),
        Err(LineErrorKind::StringTooLong {
            field: "s".into(),
            len: limits::MAX_STRING_LEN + 1
        })
    );
}

#[test]
fn every_bool_spelling() {
    for t in ["t", "T", "true", "True", "TRUE"] {
        assert_eq!(value(t), Ok(LineValue::Bool(true)), "{t}");
    }
    for f in ["f", "F", "false", "False", "FALSE"] {
        assert_eq!(value(f), Ok(LineValue::Bool(false)), "{f}");
    }
    for bad in ["tRUE", "yes", "fals", "TRue", "1b"] {
        assert!(
            matches!(value(bad), Err(LineErrorKind::InvalidFieldValue { .. })),
            "{bad}"
        );
    }
}

#[test]
fn integer_bounds() {
    assert_eq!(value("0i"), Ok(LineValue::I64(0)));
    assert_eq!(value("-0i"), Ok(LineValue::I64(0)));
    assert_eq!(value("9223372036854775807i"), Ok(LineValue::I64(i64::MAX)));
    assert_eq!(value("-9223372036854775808i"), Ok(LineValue::I64(i64::MIN)));
    assert!(matches!(
        value("9223372036854775808i"),
        Err(LineErrorKind::OutOfRange { .. })
    ));
    assert!(matches!(
        value("-9223372036854775809i"),
        Err(LineErrorKind::OutOfRange { .. })
    ));
    assert_eq!(value("0u"), Ok(LineValue::U64(0)));
    assert_eq!(value("18446744073709551615u"), Ok(LineValue::U64(u64::MAX)));
    assert!(matches!(
        value("18446744073709551616u"),
        Err(LineErrorKind::OutOfRange { .. })
    ));
    for bad in [
        "-1u", "+1i", "+1u", "1.5i", "i", "u", "-i", "1e3i", "0x10i", "1 i",
    ] {
        let r = value(bad);
        assert!(
            matches!(
                r,
                Err(LineErrorKind::InvalidFieldValue { .. } | LineErrorKind::InvalidTimestamp(_))
            ),
            "{bad}: {r:?}"
        );
    }
}

#[test]
fn floats_and_exponents() {
    let cases: &[(&str, f64)] = &[
        ("1", 1.0),
        ("-1", -1.0),
        ("1.5", 1.5),
        ("-1.5e10", -1.5e10),
        ("1E-3", 1e-3),
        ("1e+3", 1e3),
        (".5", 0.5),
        ("1.", 1.0),
        ("0", 0.0),
        ("1.7976931348623157e308", f64::MAX),
    ];
    for &(raw, want) in cases {
        assert_eq!(value(raw), Ok(LineValue::F64(want)), "{raw}");
    }
    for bad in [
        "+1.0", "inf", "-inf", "nan", "NaN", "1.5.5", "1e", "e3", "-", ".", "1x", "12x",
    ] {
        assert!(
            matches!(value(bad), Err(LineErrorKind::InvalidFieldValue { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        value("1e400"),
        Err(LineErrorKind::OutOfRange { .. })
    ));
}

#[test]
fn timestamps_and_precisions() {
    assert_eq!(one("m f=1").unwrap().timestamp, None);
    assert_eq!(one("m f=1 ").unwrap().timestamp, None);
    assert_eq!(one("m f=1 -5").unwrap().timestamp, Some(-5));
    assert_eq!(one("m  f=1   7  ").unwrap().timestamp, Some(7));
    let cases = [
        ("ns", 1_i64),
        ("n", 1),
        ("us", 1_000),
        ("u", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
    ];
    for (name, mul) in cases {
        let p = Precision::parse(name).unwrap();
        assert_eq!(p.nanos(), mul);
        assert_eq!(
            one_p("m f=1 1700", p).unwrap().timestamp,
            Some(1700 * mul),
            "{name}"
        );
        assert_eq!(
            one_p("m f=1 -3", p).unwrap().timestamp,
            Some(-3 * mul),
            "{name}"
        );
    }
    assert_eq!(Precision::parse("h"), None);
    assert_eq!(
        one_p("m f=1 9223372036854775", Precision::Seconds),
        Err(LineErrorKind::TimestampOutOfRange {
            value: 9223372036854775,
            precision: Precision::Seconds
        })
    );
    assert!(one_p("m f=1 9223372036", Precision::Seconds).is_ok());
    assert!(matches!(
        one("m f=1 9223372036854775807"),
        Err(LineErrorKind::TimestampOutOfRange { .. })
    ));
    for bad in [
        "1.5",
        "12a",
        "+1",
        "-",
        "1 2",
        "0x1",
        "99999999999999999999",
    ] {
        assert_eq!(
            one(&format!("m f=1 {bad}")),
            Err(LineErrorKind::InvalidTimestamp(bad.into())),
            "{bad}"
        );
    }
}

#[test]
fn structural_errors() {
    let cases: &[(&str, LineErrorKind)] = &[
        (",k=v f=1", LineErrorKind::MissingMeasurement),
        (" f=1", LineErrorKind::MissingMeasurement),
        ("m", LineErrorKind::MissingFields),
        ("m,k=v", LineErrorKind::MissingFields),
        ("m ", LineErrorKind::MissingFields),
        ("m,=v f=1", LineErrorKind::MissingTagKey),
        ("m,k f=1", LineErrorKind::MissingTagValue("k".into())),
        ("m,k= f=1", LineErrorKind::MissingTagValue("k".into())),
        ("m,k=a=b f=1", LineErrorKind::InvalidTagValue("k".into())),
        ("m,k=v, f=1", LineErrorKind::MissingTagKey),
        ("m =1", LineErrorKind::MissingFieldKey),
        ("m f=1,", LineErrorKind::MissingFieldKey),
        ("m f", LineErrorKind::MissingFieldValue("f".into())),
        ("m f=", LineErrorKind::MissingFieldValue("f".into())),
        ("m f=,g=1", LineErrorKind::MissingFieldValue("f".into())),
        ("m,k=1,k=2 f=1", LineErrorKind::DuplicateTag("k".into())),
        ("m f=1,f=2i", LineErrorKind::DuplicateField("f".into())),
    ];
    for (line, want) in cases {
        assert_eq!(one(line).as_ref().err(), Some(want), "{line}");
    }
}

#[test]
fn lines_comments_blank_and_crlf() {
    let body = b"# header\r\n\r\n  \n\tm,k=v f=1 1\r\n   # indented comment\nn g=2i\n\n";
    let got: Vec<_> = parse_lines(body, Precision::Nanoseconds).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, 4);
    let l = got[0].1.as_ref().unwrap();
    assert_eq!((l.measurement.as_ref(), l.timestamp), ("m", Some(1)));
    assert_eq!(got[1].0, 6);
    assert_eq!(field(got[1].1.as_ref().unwrap(), "g"), &LineValue::I64(2));
    // The last line needs no newline; `\r` is only dropped at the end.
    let got: Vec<_> = parse_lines(b"m f=\"a\rb\"", Precision::Nanoseconds).collect();
    assert_eq!(
        got[0].1.as_ref().unwrap().fields[0].1,
        LineValue::Str("a\rb".into())
    );
    assert_eq!(parse_lines(b"", Precision::Nanoseconds).count(), 0);
}

#[test]
fn errors_name_the_line_and_quote_it() {
    let body = b"m bytes=1i\n\nm bytes=12x\nm f=1\n\xff\xfe f=1\n";
    let errors: Vec<LineError> = parse_lines(body, Precision::Nanoseconds)
        .filter_map(|(_, r)| r.err())
        .collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0].to_string(),
        r#"line 3: invalid field value "12x" for field "bytes" in "m bytes=12x""#
    );
    assert_eq!(errors[1].line, 5);
    assert_eq!(errors[1].kind, LineErrorKind::InvalidUtf8);
    let long = format!("m {}=1x", "f".repeat(100));
    let (_, r) = parse_lines(long.as_bytes(), Precision::Nanoseconds)
        .next()
        .unwrap();
    let e = r.unwrap_err();
    assert_eq!(e.quote, format!("{}...", &long[..QUOTE_LEN]));
}

fn opts(default_tenant: Option<&str>) -> LineOptions<'_> {
    LineOptions {
        precision: Precision::Milliseconds,
        default_tenant,
        now: Timestamp(42_000_123),
    }
}

#[test]
fn batch_mapping_of_tenant_event_id_and_now() {
    let body = b"api,tenant=acme,method=GET ms=1.5,event_id=\"e-1\" 1000\n\
                 api,method=PUT ms=2\n";
    let mut batch = WriteBatch::new();
    let errors = append_to_batch(body, &opts(Some("dflt")), &mut batch);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        batch.to_events(),
        vec![
            Event {
                tenant: TenantId::new("acme"),
                measurement: "api".into(),
                tags: vec![("method".into(), "GET".into())],
                fields: vec![("ms".into(), FieldValue::F64(1.5))],
                timestamp: Timestamp(1_000_000_000),
                event_id: Some("e-1".into()),
            },
            Event {
                tenant: TenantId::new("dflt"),
                measurement: "api".into(),
                tags: vec![("method".into(), "PUT".into())],
                fields: vec![("ms".into(), FieldValue::F64(2.0))],
                timestamp: Timestamp(42_000_000),
                event_id: None,
            },
        ]
    );
    assert!(batch.validate().is_ok());

    // Without a timestamp, the server's time truncated to the request's precision.
    let seconds = LineOptions {
        precision: Precision::Seconds,
        default_tenant: Some("dflt"),
        now: Timestamp(1_793_491_200_987_654_321),
    };
    let mut batch = WriteBatch::new();
    assert!(append_to_batch(b"api ms=1\n", &seconds, &mut batch).is_empty());
    assert_eq!(
        batch.to_events()[0].timestamp,
        Timestamp(1_793_491_200_000_000_000)
    );
}

#[test]
fn batch_rejects_lines_without_appending_them() {
    let body = b"a f=1\n\
                 b,tenant=t f=1\n\
                 c,tenant=t event_id=1i\n\
                 d,tenant=t time=1\n\
                 e,tenant=t f=x\n\
                 f,tenant=t event_id=\"only-id\"\n";
    let mut batch = WriteBatch::new();
    let errors = append_to_batch(body, &opts(None), &mut batch);
    let got: Vec<(usize, String)> = errors
        .iter()
        .map(|e| (e.line, e.kind.to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "no tenant: add a tenant tag or ?tenant=".to_owned()),
            (
                3,
                "field \"event_id\" must be a string (it is the event's id)".to_owned()
            ),
            (
                4,
                "field key \"time\" is reserved (time is the event's timestamp)".to_owned()
            ),
            (5, "invalid field value \"x\" for field \"f\"".to_owned()),
        ]
    );
    assert_eq!(
        errors[0].to_string(),
        r#"line 1: no tenant: add a tenant tag or ?tenant= in "a f=1""#
    );
    let ms: Vec<String> = batch
        .to_events()
        .into_iter()
        .map(|e| e.measurement)
        .collect();
    assert_eq!(ms, ["b", "f"]);
    assert!(batch.validate().is_ok());
}

#[test]
fn batch_keeps_events_already_in_it() {
    let mut batch = WriteBatch::new();
    batch
        .add("t", "old", Timestamp(1))
        .field("f", FieldValueRef::I64(1));
    let errors = append_to_batch(b"x time=1\ny f=1", &opts(Some("t")), &mut batch);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 1);
    let ms: Vec<String> = batch
        .to_events()
        .into_iter()
        .map(|e| e.measurement)
        .collect();
    assert_eq!(ms, ["old", "y"]);
}

#[test]
fn routed_lines_go_to_their_tenants_parts_with_their_numbers() {
    let body = b"m,tenant=a f=1\n\
                 m,tenant=b f=2\n\
                 m,tenant=a,k=1,k=2 f=3\n\
                 m,tenant=b f=4\n\
                 m f=5\n\
                 m,tenant=z f=6\n";
    let mut parts = vec![WriteBatch::new(); 2];
    let mut numbers = vec![Vec::new(); 2];
    // "z" is routed past the last part, which takes it.
    let route = |t: &str| match t {
        "a" => 0,
        "z" => 7,
        _ => 1,
    };
    let errors = append_routed(body, &opts(Some("c")), &mut parts, &mut numbers, route);
    let got: Vec<(usize, String)> = errors
        .iter()
        .map(|e| (e.line, e.kind.to_string()))
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 3);
    let values = |b: &WriteBatch| -> Vec<(String, FieldValue)> {
        b.to_events()
            .into_iter()
            .map(|e| (e.tenant.as_str().to_owned(), e.fields[0].1.clone()))
            .collect()
    };
    assert_eq!(values(&parts[0]), [("a".to_owned(), FieldValue::F64(1.0))]);
    assert_eq!(
        values(&parts[1]),
        [
            ("b".to_owned(), FieldValue::F64(2.0)),
            ("b".to_owned(), FieldValue::F64(4.0)),
            ("c".to_owned(), FieldValue::F64(5.0)),
            ("z".to_owned(), FieldValue::F64(6.0)),
        ]
    );
    assert_eq!(numbers, [vec![1], vec![2, 4, 5, 6]]);
    assert!(parts.iter().all(|p| p.validate().is_ok()));
}

/// Names a client can write unambiguously: line protocol cannot express a backslash right
/// before an escapable character or at the end of a token (InfluxDB has the same gap), nor a
/// newline, nor a measurement starting with `#` (a comment).
fn name() -> impl Strategy<Value = String> {
    "[a-z ,=\\\\\"#\u{e9}\u{1F600}_0-9]{1,12}".prop_filter("ambiguous backslash", |s| {
        let b = s.as_bytes();
        b.last() != Some(&b'\\')
            && !b
                .windows(2)
                .any(|w| w[0] == b'\\' && matches!(w[1], b',' | b'=' | b' ' | b'\\'))
    })
}

fn line_value() -> impl Strategy<Value = LineValue<'static>> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(LineValue::F64),
        any::<i64>().prop_map(LineValue::I64),
        any::<u64>().prop_map(LineValue::U64),
        any::<bool>().prop_map(LineValue::Bool),
        "[a-z \\\\\",=\u{e9}]{0,20}".prop_map(|s| LineValue::Str(s.into())),
    ]
}

fn parsed_line() -> impl Strategy<Value = ParsedLine<'static>> {
    (
        name().prop_filter("comment", |m| {
            !m.trim_start().starts_with('#') && !m.starts_with(' ')
        }),
        proptest::collection::btree_map(name(), name(), 0..4),
        proptest::collection::btree_map(name(), line_value(), 1..4),
        proptest::option::of(Timestamp::MIN.0..=Timestamp::MAX.0),
    )
        .prop_map(|(m, tags, fields, ts)| ParsedLine {
            measurement: m.into(),
            tags: tags
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            timestamp: ts,
        })
}

proptest! {
    #[test]
    fn serialize_then_parse_is_identity(l in parsed_line()) {
        let text = l.to_string();
        let got = one(&text);
        prop_assert_eq!(got.as_ref(), Ok(&l), "{}", text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        for (_, r) in parse_lines(&body, Precision::Seconds) {
            let _ = r.map_err(|e| e.to_string());
        }
        let mut batch = WriteBatch::new();
        let _ = append_to_batch(&body, &opts(Some("t")), &mut batch);
    }

    #[test]
    fn line_like_bytes_never_panic(body in "[a-z,= \"\\\\#0-9.\\-ieu\r\n\u{e9}]{0,80}") {
        let mut batch = WriteBatch::new();
        let errors = append_to_batch(body.as_bytes(), &opts(None), &mut batch);
        prop_assert!(batch.validate().is_ok());
        prop_assert!(errors.iter().all(|e| e.line >= 1));
    }
}
