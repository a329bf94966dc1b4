use std::collections::HashMap;

use super::*;

const NO_VARS: [(&str, &str); 0] = [];

fn err(vars: &[(&str, &str)]) -> String {
    UsageSettings::from_vars(vars.iter().copied())
        .unwrap_err()
        .to_string()
}

#[test]
fn defaults_are_the_specs() {
    let s = UsageSettings::from_vars(NO_VARS).unwrap();
    assert_eq!(s, UsageSettings::default());
    assert_eq!(s.events_retention_days, 30);
    assert_eq!(s.metrics_retention_days, 90);
    assert!(s.limits.enforcement_enabled);
    assert_eq!(s.limits.grace_period, Duration::from_secs(300));
    assert!(s.notification_enabled);
    assert_eq!(s.max_future, Duration::from_secs(86_400));
    assert_eq!(s.analytics_cache_ttl, None);
}

#[test]
fn every_variable_is_read() {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("USAGE_TRACKING_EVENTS_RETENTION_DAYS", "7"),
        ("USAGE_TRACKING_METRICS_RETENTION_DAYS", "365"),
        ("LIMITS_ENFORCEMENT_ENABLED", "false"),
        ("LIMITS_GRACE_PERIOD_MINUTES", "0"),
        ("LIMITS_NOTIFICATION_ENABLED", "Off"),
        ("METERDB_MAX_FUTURE", "1h30m"),
        ("ANALYTICS_CACHE_TTL", "300"),
        ("ANALYTICS_FORECAST_MODEL", "linear_regression"),
        ("ANALYTICS_ANOMALY_DETECTION_THRESHOLD", " 2.0 "),
        ("USAGE_TRACKING_REDIS_URL", "redis://localhost:6379"),
    ]);
    let s = UsageSettings::from_vars(vars).unwrap();
    assert_eq!(
        s,
        UsageSettings {
            events_retention_days: 7,
            metrics_retention_days: 365,
            limits: LimitSettings {
                enforcement_enabled: false,
                grace_period: Duration::ZERO,
            },
            notification_enabled: false,
            max_future: Duration::from_secs(5400),
            analytics_cache_ttl: Some("300".to_owned()),
            analytics_forecast_model: Some("linear_regression".to_owned()),
            analytics_anomaly_detection_threshold: Some("2.0".to_owned()),
        }
    );
}

#[test]
fn booleans_accept_common_spellings() {
    for (value, want) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ] {
        let s = UsageSettings::from_vars([("LIMITS_ENFORCEMENT_ENABLED", value)]).unwrap();
        assert_eq!(s.limits.enforcement_enabled, want, "{value}");
    }
}

#[test]
fn blank_values_count_as_unset() {
    let s = UsageSettings::from_vars([
        ("LIMITS_ENFORCEMENT_ENABLED", ""),
        ("LIMITS_GRACE_PERIOD_MINUTES", "  "),
        ("ANALYTICS_FORECAST_MODEL", ""),
    ])
    .unwrap();
    assert_eq!(s, UsageSettings::default());
}

#[test]
fn bad_values_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("USAGE_TRACKING_EVENTS_RETENTION_DAYS", "thirty")],
            "environment variable USAGE_TRACKING_EVENTS_RETENTION_DAYS=\"thirty\" is invalid: a whole number of days from 1 to 36500",
        ),
        (
            &[("USAGE_TRACKING_EVENTS_RETENTION_DAYS", "0")],
            "=\"0\" is invalid",
        ),
        (
            &[("USAGE_TRACKING_METRICS_RETENTION_DAYS", "-1")],
            "METRICS_RETENTION_DAYS=\"-1\"",
        ),
        (
            &[("USAGE_TRACKING_METRICS_RETENTION_DAYS", "99999")],
            "from 1 to 36500",
        ),
        (
            &[("LIMITS_ENFORCEMENT_ENABLED", "maybe")],
            "environment variable LIMITS_ENFORCEMENT_ENABLED=\"maybe\" is invalid: true or false",
        ),
        (
            &[("LIMITS_NOTIFICATION_ENABLED", "2")],
            "LIMITS_NOTIFICATION_ENABLED=\"2\"",
        ),
        (
            &[("LIMITS_GRACE_PERIOD_MINUTES", "5m")],
            "LIMITS_GRACE_PERIOD_MINUTES=\"5m\" is invalid: a whole number of minutes from 0 to 527040",
        ),
        (
            &[("LIMITS_GRACE_PERIOD_MINUTES", "-5")],
            "GRACE_PERIOD_MINUTES=\"-5\"",
        ),
        (
            &[("LIMITS_GRACE_PERIOD_MINUTES", "1000000")],
            "from 0 to 527040",
        ),
        (
            &[("METERDB_MAX_FUTURE", "24")],
            "METERDB_MAX_FUTURE=\"24\" is invalid: a duration such as 24h",
        ),
        (&[("METERDB_MAX_FUTURE", "1y")], "METERDB_MAX_FUTURE=\"1y\""),
        (
            &[("METERDB_MAX_FUTURE", "-1h")],
            "METERDB_MAX_FUTURE=\"-1h\"",
        ),
        (
            &[("METERDB_MAX_FUTURE", "999999999w")],
            "a duration below 292 years",
        ),
    ];
    for (vars, want) in cases {
        let got = err(vars);
        assert!(got.contains(want), "{vars:?}: got {got:?}, want {want:?}");
    }
    let long = "x".repeat(10_000);
    assert!(err(&[("LIMITS_ENFORCEMENT_ENABLED", &long)]).len() < 300);
}

#[test]
fn durations_parse() {
    for (text, secs) in [
        ("24h", 86_400),
        ("90m", 5400),
        ("1h30m", 5400),
        ("7d", 604_800),
        ("2w", 1_209_600),
        ("45s", 45),
        ("0s", 0),
    ] {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(secs)),
            "{text}"
        );
    }
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("3us"), Ok(Duration::from_micros(3)));
    assert_eq!(parse_duration("3µs"), Ok(Duration::from_micros(3)));
    assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
    for bad in ["", "h", "1", "1.5h", "1 h", "1hh", "h1", "1H", "+1h"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn lookup_sees_only_known_names() {
    let mut asked = Vec::new();
    UsageSettings::from_lookup(|name| {
        asked.push(name);
        None
    })
    .unwrap();
    assert_eq!(asked, VARIABLES);
}
