use super::*;
use crate::model::{Timestamp, WriteBatch};

fn parse(json: &str) -> Result<Meter, String> {
    serde_json::from_str::<Meter>(json).map_err(|e| e.to_string())
}

fn sum(name: &str, measurement: &str, field: &str) -> Meter {
    Meter {
        name: name.to_owned(),
        measurement: Some(measurement.to_owned()),
        aggregation: Aggregation::Sum,
        field: Some(field.to_owned()),
        tag: None,
        filter: Vec::new(),
    }
}

#[test]
fn builtins_are_valid_and_as_designed() {
    let names: Vec<_> = Meter::builtins().into_iter().map(|m| m.name).collect();
    assert_eq!(names, BUILTIN_NAMES);
    for m in Meter::builtins() {
        m.validate().unwrap();
        assert!(Meter::is_builtin_name(&m.name));
        assert_eq!(Meter::builtin(&m.name), Some(m.clone()));
    }
    let users = Meter::builtin("active_users").unwrap();
    assert_eq!(users.measurement, None);
    assert_eq!(users.aggregation, Aggregation::UniqueCount);
    assert_eq!(users.tag.as_deref(), Some("user"));
    assert_eq!(Meter::builtin("nope"), None);
    assert!(!Meter::is_builtin_name("nope"));
}

#[test]
fn json_round_trips_with_snake_case_names() {
    for m in Meter::builtins() {
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(parse(&json).unwrap(), m, "{json}");
    }
    let json = serde_json::to_value(Meter::builtin("storage_bytes").unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "storage_bytes",
            "measurement": "storage",
            "aggregation": "sum",
            "field": "size_bytes",
            "tag": null,
            "filter": {"operation": "write"}
        })
    );
    let json = serde_json::to_value(Meter::builtin("active_users").unwrap()).unwrap();
    assert_eq!(json["aggregation"], "unique_count");
    assert_eq!(json["filter"], serde_json::json!({}));
}

#[test]
fn json_accepts_defaults_nulls_and_openmeter_upper_case() {
    let m = parse(r#"{"name":"calls","aggregation":"COUNT"}"#).unwrap();
    assert_eq!(m.aggregation, Aggregation::Count);
    assert_eq!(m.measurement, None);
    assert!(m.filter.is_empty());
    let m =
        parse(r#"{"name":"u","aggregation":"UNIQUE_COUNT","tag":"user","filter":null}"#).unwrap();
    assert_eq!(m.aggregation, Aggregation::UniqueCount);
}

#[test]
fn invalid_meters_are_rejected_with_a_reason() {
    let cases = [
        (
            r#"{"name":"bytes","measurement":"storage","aggregation":"sum"}"#,
            "meter bytes: aggregation sum needs a \"field\"",
        ),
        (
            r#"{"name":"users","aggregation":"unique_count"}"#,
            "meter users: aggregation unique_count needs a \"tag\"",
        ),
        (
            r#"{"name":"calls","aggregation":"count","field":"x"}"#,
            "aggregation count takes no \"field\"",
        ),
        (
            r#"{"name":"calls","aggregation":"max","field":"x","tag":"user"}"#,
            "aggregation max takes no \"tag\"",
        ),
        (
            r#"{"name":"u","aggregation":"unique_count","tag":"user","field":"x"}"#,
            "aggregation unique_count takes no \"field\"",
        ),
        (
            r#"{"name":"Calls","aggregation":"count"}"#,
            "meter name \"Calls\" is invalid",
        ),
        (
            r#"{"name":"","aggregation":"count"}"#,
            "meter name \"\" is invalid",
        ),
        (r#"{"name":"9a","aggregation":"count"}"#, "is invalid"),
        (r#"{"name":"a-b","aggregation":"count"}"#, "is invalid"),
        (
            r#"{"name":"calls","measurement":"","aggregation":"count"}"#,
            "meter calls: measurement \"\" is invalid: it is empty",
        ),
        (
            r#"{"name":"s","aggregation":"sum","field":"a\u0001"}"#,
            "field \"a\\u{1}\" is invalid: it contains a control character",
        ),
        (
            r#"{"name":"c","aggregation":"count","filter":{"op":"w","op":"r"}}"#,
            "meter c: filter names tag \"op\" more than once",
        ),
        (
            r#"{"name":"c","aggregation":"count","filter":{"":"w"}}"#,
            "filter key \"\" is invalid",
        ),
        (
            r#"{"name":"c","aggregation":"count","filter":[["a","b"]]}"#,
            "an object of tag equalities",
        ),
        (
            r#"{"name":"c","aggregation":"total"}"#,
            "unknown variant `total`",
        ),
        (
            r#"{"name":"c","aggregation":"count","feild":"x"}"#,
            "unknown field `feild`",
        ),
        (r#"{"aggregation":"count"}"#, "missing field `name`"),
    ];
    for (json, want) in cases {
        let err = parse(json).unwrap_err();
        assert!(err.contains(want), "{json}: got {err:?}, want {want:?}");
    }
    let long = format!(r#"{{"name":"{}","aggregation":"count"}}"#, "a".repeat(64));
    assert!(parse(&long).unwrap_err().contains("is invalid"));
    let ok = format!(r#"{{"name":"{}","aggregation":"count"}}"#, "a".repeat(63));
    parse(&ok).unwrap();
}

#[test]
fn too_many_filters_are_rejected_without_keeping_them_all() {
    let filter: Vec<String> = (0..10_000).map(|i| format!(r#""k{i}":"v""#)).collect();
    let json = format!(
        r#"{{"name":"c","aggregation":"count","filter":{{{}}}}}"#,
        filter.join(",")
    );
    let err = parse(&json).unwrap_err();
    assert!(err.contains("more than the 16 filters allowed"), "{err}");
    let sixteen: Vec<String> = (0..16).map(|i| format!(r#""k{i}":"v""#)).collect();
    let json = format!(
        r#"{{"name":"c","aggregation":"count","filter":{{{}}}}}"#,
        sixteen.join(",")
    );
    assert_eq!(parse(&json).unwrap().filter.len(), 16);
}

#[test]
fn long_names_are_clipped_in_errors() {
    let json = format!(
        r#"{{"name":"{}","aggregation":"count"}}"#,
        "é".repeat(10_000)
    );
    let err = parse(&json).unwrap_err();
    assert!(err.len() < 400, "{err}");
}

#[test]
fn matches_checks_measurement_and_every_filter_tag() {
    let storage = Meter::builtin("storage_bytes").unwrap();
    let tags = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    };
    assert!(storage.matches("storage", tags(&[("operation", "write")])));
    assert!(storage.matches("storage", tags(&[("user", "u"), ("operation", "write")])));
    assert!(!storage.matches("storage", tags(&[("operation", "read")])));
    assert!(!storage.matches("storage", tags(&[])));
    assert!(!storage.matches("api_calls", tags(&[("operation", "write")])));
    let users = Meter::builtin("active_users").unwrap();
    assert!(users.matches("anything", tags(&[])));
}

fn batch() -> WriteBatch {
    let mut b = WriteBatch::new();
    let t = Timestamp(1_793_491_200_000_000_000);
    b.add("acme", "storage", t)
        .tag("operation", "write")
        .tag("user", "alice")
        .field("size_bytes", FieldValueRef::I64(1024));
    b.add("acme", "storage", t)
        .tag("operation", "read")
        .tag("user", "bob")
        .field("size_bytes", FieldValueRef::I64(99));
    b.add("acme", "storage", t)
        .tag("operation", "write")
        .field("size_bytes", FieldValueRef::Str("big"));
    b.add("acme", "api_calls", t)
        .tag("endpoint", "/a")
        .field("response_time_ms", FieldValueRef::F64(f64::NAN));
    b.add("acme", "api_calls", t)
        .tag("user", "carol")
        .field("response_time_ms", FieldValueRef::U64(7));
    b.add("acme", "storage", t)
        .tag("operation", "write")
        .field("other", FieldValueRef::F64(1.0));
    b
}

#[test]
fn contribution_of_each_builtin_and_custom_meter() {
    let b = batch();
    let events: Vec<_> = b.iter().collect();
    let of =
        |m: &Meter| -> Vec<Contribution<'_>> { events.iter().map(|e| m.contribution(e)).collect() };
    use Contribution::*;
    assert_eq!(
        of(&Meter::builtin("storage_bytes").unwrap()),
        [Value(1024.0), NoMatch, Missing, NoMatch, NoMatch, Missing]
    );
    assert_eq!(
        of(&Meter::builtin("api_calls").unwrap()),
        [NoMatch, NoMatch, NoMatch, One, One, NoMatch]
    );
    assert_eq!(
        of(&Meter::builtin("active_users").unwrap()),
        [
            Distinct("alice"),
            Distinct("bob"),
            Missing,
            Missing,
            Distinct("carol"),
            Missing
        ]
    );
    // NaN must not poison an average; an unsigned field counts.
    let latency = Meter {
        aggregation: Aggregation::Avg,
        ..sum("latency", "api_calls", "response_time_ms")
    };
    assert_eq!(
        of(&latency),
        [NoMatch, NoMatch, NoMatch, Missing, Value(7.0), NoMatch]
    );
}

#[test]
fn aggregation_names_match_json() {
    for a in [
        Aggregation::Count,
        Aggregation::Sum,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Avg,
        Aggregation::UniqueCount,
        Aggregation::Latest,
    ] {
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<Aggregation>(&json).unwrap(), a);
        assert_eq!(
            a.needs_field(),
            !matches!(a, Aggregation::Count | Aggregation::UniqueCount)
        );
    }
}

fn any_meter() -> impl proptest::strategy::Strategy<Value = Meter> {
    use proptest::prelude::*;
    let name = prop_oneof!["[a-z][a-z0-9_]{0,10}", ".{0,4}"];
    let key = prop_oneof![4 => "[a-z_]{1,8}", 1 => ".{0,3}"];
    let aggregation = proptest::sample::select(vec![
        Aggregation::Count,
        Aggregation::Sum,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Avg,
        Aggregation::UniqueCount,
        Aggregation::Latest,
    ]);
    (
        name,
        proptest::option::of(key.clone()),
        aggregation,
        proptest::option::of(key.clone()),
        proptest::option::of(key.clone()),
        proptest::collection::vec((key, ".{0,5}"), 0..4),
    )
        .prop_map(
            |(name, measurement, aggregation, field, tag, filter)| Meter {
                name,
                measurement,
                aggregation,
                field,
                tag,
                filter,
            },
        )
}

proptest::proptest! {
    /// Deserializing accepts exactly the meters `validate` accepts, and gives them back
    /// unchanged.
    #[test]
    fn json_accepts_exactly_the_valid_meters(meter in any_meter()) {
        let json = serde_json::to_string(&meter).unwrap();
        match (meter.validate(), serde_json::from_str::<Meter>(&json)) {
            (Ok(()), Ok(parsed)) => proptest::prop_assert_eq!(parsed, meter),
            (Err(e), Err(parse_err)) => {
                proptest::prop_assert!(parse_err.to_string().starts_with(&e.to_string()), "{parse_err} vs {e}")
            }
            (valid, parsed) => proptest::prop_assert!(false, "{json}: validate {valid:?}, parse {parsed:?}"),
        }
    }
}
