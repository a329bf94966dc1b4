use serde_json::{Value, json};

use super::*;

/// The spec's example limit, as JSON.
fn spec_example() -> Value {
    json!({
        "limit_name": "API Calls Monthly Limit",
        "limit_type": "hard_limit",
        "resource_type": "api_calls",
        "limit_value": 10000.0,
        "unit": "calls",
        "period_type": "month",
        "period_value": 1,
        "status": "active",
        "enforce_immediately": true,
        "warning_threshold": 0.8,
        "warning_message": "Approaching API call limit"
    })
}

fn parse(json: &Value) -> Result<UsageLimit, String> {
    serde_json::from_value::<UsageLimit>(json.clone()).map_err(|e| e.to_string())
}

fn with(key: &str, value: Value) -> Value {
    let mut json = spec_example();
    json[key] = value;
    json
}

#[test]
fn spec_example_parses_and_round_trips() {
    let limit = parse(&spec_example()).unwrap();
    assert_eq!(
        limit,
        UsageLimit {
            unit: "calls".to_owned(),
            enforce_immediately: true,
            warning_message: Some("Approaching API call limit".to_owned()),
            ..UsageLimit::new(
                "API Calls Monthly Limit",
                LimitType::HardLimit,
                "api_calls",
                10000.0,
                PeriodType::Month
            )
        }
    );
    // Without an id or time zone, the JSON is the spec's, key for key.
    assert_eq!(serde_json::to_value(&limit).unwrap(), spec_example());
    let full = UsageLimit {
        id: Some("lim_1".to_owned()),
        timezone: Some(chrono_tz::America::New_York),
        ..limit
    };
    let json = serde_json::to_value(&full).unwrap();
    assert_eq!(json["id"], "lim_1");
    assert_eq!(json["timezone"], "America/New_York");
    assert_eq!(parse(&json).unwrap(), full);
}

#[test]
fn defaults_apply_to_optional_keys() {
    let limit = parse(&json!({
        "limit_name": "storage",
        "limit_type": "soft_limit",
        "resource_type": "storage_bytes",
        "limit_value": 1e9,
        "period_type": "day"
    }))
    .unwrap();
    assert_eq!(limit.id, None);
    assert_eq!(limit.unit, "");
    assert_eq!(limit.period_value, 1);
    assert_eq!(limit.status, LimitStatus::Active);
    assert!(!limit.enforce_immediately);
    assert_eq!(limit.warning_threshold, 0.8);
    assert_eq!(limit.warning_message, None);
    assert_eq!(limit.timezone, None);
    assert_eq!(limit.tz(), Tz::UTC);
}

#[test]
fn enum_names_are_the_specs() {
    for (t, name) in [
        (LimitType::HardLimit, "hard_limit"),
        (LimitType::SoftLimit, "soft_limit"),
        (LimitType::RateLimit, "rate_limit"),
        (LimitType::BurstLimit, "burst_limit"),
    ] {
        assert_eq!(serde_json::to_value(t).unwrap(), name);
        assert_eq!(t.to_string(), name);
    }
    assert_eq!(
        serde_json::to_value(LimitStatus::Inactive).unwrap(),
        "inactive"
    );
    let limit = parse(&with("status", json!("inactive"))).unwrap();
    assert_eq!(limit.status, LimitStatus::Inactive);
    let limit = parse(&with("limit_type", json!("rate_limit"))).unwrap();
    assert_eq!(limit.limit_type, LimitType::RateLimit);
}

#[test]
fn invalid_limits_are_rejected_naming_the_key() {
    let cases = [
        (
            with("limit_value", json!(0)),
            "invalid limit_value: must be above 0, got 0",
        ),
        (
            with("limit_value", json!(-5.5)),
            "invalid limit_value: must be above 0, got -5.5",
        ),
        (
            with("limit_value", json!("lots")),
            "invalid type: string \"lots\", expected f64",
        ),
        (
            with("period_value", json!(0)),
            "invalid period_value: must be 1 to 120 for month periods, got 0",
        ),
        (
            with("period_value", json!(2000)),
            "invalid period_value: must be 1 to 120 for month periods, got 2000",
        ),
        (
            with("period_value", json!(-1)),
            "invalid value: integer `-1`, expected u32",
        ),
        (with("period_value", json!(1.5)), "expected u32"),
        (
            with("period_type", json!("fortnight")),
            "unknown variant `fortnight`",
        ),
        (
            with("warning_threshold", json!(0)),
            "invalid warning_threshold: must be a fraction of the limit in (0, 1], got 0",
        ),
        (with("warning_threshold", json!(1.2)), "got 1.2"),
        (with("warning_threshold", json!(80)), "got 80"),
        (
            with("limit_name", json!("  ")),
            "invalid limit_name: must not be empty",
        ),
        (
            with("limit_name", json!("x".repeat(300))),
            "invalid limit_name: is 300 bytes long, more than the 256 allowed",
        ),
        (
            with("limit_name", json!("a\u{0}b")),
            "contains a control character",
        ),
        (with("id", json!("")), "invalid id: must not be empty"),
        (
            with("resource_type", json!("API Calls")),
            "invalid resource_type: \"API Calls\" is not a meter name",
        ),
        (with("limit_type", json!("hard")), "unknown variant `hard`"),
        (
            with("limit_type", json!("burst_limit")),
            "limit_type burst_limit is not supported yet",
        ),
        (with("status", json!("paused")), "unknown variant `paused`"),
        (
            with("timezone", json!("Mars/Olympus")),
            "invalid timezone: \"Mars/Olympus\" is not an IANA time zone name",
        ),
        (
            with("timezone", json!("europe/paris")),
            "(did you mean \"Europe/Paris\"?)",
        ),
        (
            with("timezone", json!("+02:00")),
            "is not an IANA time zone name",
        ),
        (
            with("warning_treshold", json!(0.5)),
            "unknown field `warning_treshold`",
        ),
        (
            with("warning_message", json!("x".repeat(5000))),
            "invalid warning_message: is 5000 bytes long",
        ),
    ];
    for (json, want) in cases {
        let err = parse(&json).unwrap_err();
        assert!(err.contains(want), "got {err:?}, want {want:?}");
    }
    let mut missing = spec_example();
    missing.as_object_mut().unwrap().remove("limit_value");
    assert!(
        parse(&missing)
            .unwrap_err()
            .contains("missing field `limit_value`")
    );
}

#[test]
fn validate_checks_values_built_in_rust_too() {
    let mut limit = UsageLimit::new("x", LimitType::HardLimit, "api_calls", 1.0, PeriodType::Day);
    limit.validate().unwrap();
    limit.limit_value = f64::NAN;
    assert!(limit.validate().is_err());
    limit.limit_value = f64::INFINITY;
    assert!(limit.validate().is_err());
    limit.limit_value = 1.0;
    limit.warning_threshold = f64::NAN;
    assert!(limit.validate().is_err());
    limit.warning_threshold = 1.0;
    limit.validate().unwrap();
    limit.period_type = PeriodType::Hour;
    limit.period_value = 25;
    let err = limit.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid period_value: must be 1 to 24 for hour periods, got 25"
    );
}

#[test]
fn the_period_follows_the_limit_time_zone() {
    let mut limit = UsageLimit::new("x", LimitType::HardLimit, "api_calls", 1.0, PeriodType::Day);
    // 23:30 UTC on the 1st is already the 2nd in Paris.
    let t = Timestamp(1_793_575_800_000_000_000); // 2026-11-01T23:30:00Z
    let utc = limit.period_at(t).unwrap();
    assert_eq!(utc.start, Timestamp(1_793_491_200_000_000_000));
    limit.timezone = Some(chrono_tz::Europe::Paris);
    let paris = limit.period_at(t).unwrap();
    assert_eq!(paris.start, Timestamp(1_793_574_000_000_000_000)); // 2026-11-01T23:00:00Z
}
