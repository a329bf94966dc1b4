use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::usage::period::PeriodType;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
/// 2026-11-01T10:00:00Z.
const T0: Timestamp = Timestamp(1_793_527_200 * SEC);
/// 2026-11-01T00:00:00Z and the next midnight.
const DAY_START: Timestamp = Timestamp(1_793_491_200 * SEC);
const DAY_END: Timestamp = Timestamp(1_793_577_600 * SEC);

fn hard(limit_value: f64) -> UsageLimit {
    UsageLimit::new(
        "calls",
        LimitType::HardLimit,
        "api_calls",
        limit_value,
        PeriodType::Day,
    )
}

fn at(offset_nanos: i64) -> Timestamp {
    Timestamp(T0.0 + offset_nanos)
}

/// Runs one check and returns (status, allowed, new state).
fn check(
    limit: &UsageLimit,
    usage: f64,
    now: Timestamp,
    state: GraceState,
    settings: &LimitSettings,
) -> (CheckStatus, bool, GraceState) {
    let (r, s) = check_limit(limit, usage, now, state, settings).unwrap();
    (r.status, r.allowed, s)
}

#[test]
fn status_table_from_a_fresh_state() {
    use CheckStatus::*;
    let on = LimitSettings::default();
    let off = LimitSettings {
        enforcement_enabled: false,
        ..on
    };
    let immediate = UsageLimit {
        enforce_immediately: true,
        ..hard(100.0)
    };
    let soft = UsageLimit {
        limit_type: LimitType::SoftLimit,
        ..hard(100.0)
    };
    let rate = UsageLimit {
        limit_type: LimitType::RateLimit,
        ..hard(100.0)
    };
    let inactive = UsageLimit {
        status: LimitStatus::Inactive,
        enforce_immediately: true,
        ..hard(100.0)
    };
    let no_warning = UsageLimit {
        warning_threshold: 1.0,
        ..hard(100.0)
    };
    #[rustfmt::skip]
    let cases: &[(&str, &UsageLimit, f64, &LimitSettings, CheckStatus, bool)] = &[
        ("hard, nothing used", &hard(100.0), 0.0, &on, Ok, true),
        ("hard, below threshold", &hard(100.0), 79.9, &on, Ok, true),
        ("hard, at threshold", &hard(100.0), 80.0, &on, Warning, true),
        ("hard, just below limit", &hard(100.0), 99.99, &on, Warning, true),
        ("hard, reached", &hard(100.0), 100.0, &on, Grace, true),
        ("hard, over", &hard(100.0), 150.0, &on, Grace, true),
        ("hard, immediate", &immediate, 100.0, &on, Exceeded, false),
        ("hard, immediate, warning", &immediate, 85.0, &on, Warning, true),
        ("soft, reached", &soft, 100.0, &on, Exceeded, true),
        ("soft, warning", &soft, 80.0, &on, Warning, true),
        ("rate, reached", &rate, 100.0, &on, Exceeded, false),
        ("rate, below", &rate, 50.0, &on, Ok, true),
        ("inactive, far over", &inactive, 1000.0, &on, Ok, true),
        ("threshold 1, just below", &no_warning, 99.9, &on, Ok, true),
        ("threshold 1, reached", &no_warning, 100.0, &on, Grace, true),
        ("enforcement off, immediate", &immediate, 1000.0, &off, Exceeded, true),
        ("enforcement off, rate", &rate, 100.0, &off, Exceeded, true),
        ("enforcement off, hard", &hard(100.0), 100.0, &off, Grace, true),
        ("negative usage", &hard(100.0), -5.0, &on, Ok, true),
        ("infinite usage", &hard(100.0), f64::INFINITY, &on, Grace, true),
    ];
    for (name, limit, usage, settings, status, allowed) in cases {
        let (s, a, _) = check(limit, *usage, T0, GraceState::default(), settings);
        assert_eq!((s, a), (*status, *allowed), "{name}");
    }
}

#[test]
fn warning_starts_exactly_at_the_decimal_threshold() {
    let settings = LimitSettings::default();
    for percent in 1..100u32 {
        for limit_value in [
            3u32, 7, 10, 50, 100, 300, 700, 1000, 7000, 10_000, 100_000, 1_000_000,
        ] {
            let level = u64::from(percent) * u64::from(limit_value);
            if level % 100 != 0 {
                continue;
            }
            let limit = UsageLimit {
                warning_threshold: f64::from(percent) / 100.0,
                ..hard(f64::from(limit_value))
            };
            let usage = (level / 100) as f64;
            let (s, _, _) = check(&limit, usage, T0, GraceState::default(), &settings);
            let want = if usage >= f64::from(limit_value) {
                CheckStatus::Grace
            } else {
                CheckStatus::Warning
            };
            assert_eq!(s, want, "{percent}% of {limit_value} at usage {usage}");
            let (s, _, _) = check(&limit, usage - 0.5, T0, GraceState::default(), &settings);
            assert_eq!(
                s,
                CheckStatus::Ok,
                "{percent}% of {limit_value} at usage {usage} - 0.5"
            );
        }
    }
}

#[test]
fn hard_limit_goes_through_grace_to_exceeded_until_the_period_resets() {
    use CheckStatus::*;
    let limit = hard(100.0);
    let settings = LimitSettings::default();
    let fresh = GraceState::default();

    let (s, a, state) = check(&limit, 90.0, T0, fresh, &settings);
    assert_eq!((s, a, state), (Warning, true, fresh));

    // First reached one minute later: grace starts now and lasts five minutes.
    let reached_at = at(MIN);
    let (s, a, state) = check(&limit, 100.0, reached_at, state, &settings);
    assert_eq!((s, a), (Grace, true));
    let first = FirstExceeded {
        period_start: DAY_START,
        at: reached_at,
    };
    assert_eq!(state.first_exceeded, Some(first));

    let (s, a, state) = check(&limit, 120.0, at(MIN + 5 * MIN - 1), state, &settings);
    assert_eq!((s, a), (Grace, true), "last nanosecond of grace");
    assert_eq!(
        state.first_exceeded,
        Some(first),
        "grace start does not move"
    );

    let (s, a, state) = check(&limit, 120.0, at(MIN + 5 * MIN), state, &settings);
    assert_eq!((s, a), (Exceeded, false), "grace is over");

    // Usage can fall back under the limit (a gauge-like meter): allowed again ...
    let (s, a, state) = check(&limit, 50.0, at(20 * MIN), state, &settings);
    assert_eq!((s, a), (Ok, true));
    assert_eq!(state.first_exceeded, Some(first), "kept for the period");
    // ... but reaching it again in the same period gets no second grace.
    let (s, a, state) = check(&limit, 100.0, at(21 * MIN), state, &settings);
    assert_eq!((s, a), (Exceeded, false));

    // Denied until the last nanosecond of the day; the next day starts afresh.
    let (s, a, state) = check(&limit, 100.0, Timestamp(DAY_END.0 - 1), state, &settings);
    assert_eq!((s, a), (Exceeded, false));
    let (s, a, next_day) = check(&limit, 0.0, DAY_END, state, &settings);
    assert_eq!((s, a, next_day), (Ok, true, GraceState::default()));
    let (s, a, next_state) = check(&limit, 100.0, Timestamp(DAY_END.0 + MIN), state, &settings);
    assert_eq!((s, a), (Grace, true), "old state ignored in the new period");
    assert_eq!(
        next_state.first_exceeded,
        Some(FirstExceeded {
            period_start: DAY_END,
            at: Timestamp(DAY_END.0 + MIN),
        })
    );
}

#[test]
fn grace_length_comes_from_the_settings() {
    use CheckStatus::*;
    let limit = hard(10.0);
    let none = LimitSettings {
        grace_period: Duration::ZERO,
        ..LimitSettings::default()
    };
    let (s, a, _) = check(&limit, 10.0, T0, GraceState::default(), &none);
    assert_eq!((s, a), (Exceeded, false));

    let hour = LimitSettings {
        grace_period: Duration::from_secs(3600),
        ..LimitSettings::default()
    };
    let (_, _, state) = check(&limit, 10.0, T0, GraceState::default(), &hour);
    assert_eq!(check(&limit, 10.0, at(59 * MIN), state, &hour).0, Grace);
    assert_eq!(check(&limit, 10.0, at(60 * MIN), state, &hour).0, Exceeded);
    let period = limit.period_at(T0).unwrap();
    assert_eq!(
        state.grace_ends_at(&period, hour.grace_period),
        Some(at(60 * MIN))
    );
    assert_eq!(
        GraceState::default().grace_ends_at(&period, hour.grace_period),
        None
    );
}

#[test]
fn enforcement_disabled_reports_every_status_but_allows() {
    use CheckStatus::*;
    let limit = hard(10.0);
    let off = LimitSettings {
        enforcement_enabled: false,
        ..LimitSettings::default()
    };
    let (s, a, state) = check(&limit, 10.0, T0, GraceState::default(), &off);
    assert_eq!((s, a), (Grace, true));
    let (s, a, _) = check(&limit, 10.0, at(6 * MIN), state, &off);
    assert_eq!((s, a), (Exceeded, true));
}

#[test]
fn a_clock_going_back_stays_in_grace() {
    let limit = hard(10.0);
    let settings = LimitSettings::default();
    let (_, _, state) = check(&limit, 10.0, T0, GraceState::default(), &settings);
    let (s, a, _) = check(&limit, 10.0, at(-SEC), state, &settings);
    assert_eq!((s, a), (CheckStatus::Grace, true));
}

#[test]
fn result_reports_usage_remaining_and_period() {
    let limit = hard(100.0);
    let (r, _) = check_limit(
        &limit,
        30.0,
        T0,
        GraceState::default(),
        &LimitSettings::default(),
    )
    .unwrap();
    assert_eq!(r.usage, 30.0);
    assert_eq!(r.limit, 100.0);
    assert_eq!(r.remaining, 70.0);
    assert_eq!(
        (r.period_start, r.period_end, r.resets_at),
        (DAY_START, DAY_END, DAY_END)
    );
    let (r, _) = check_limit(
        &limit,
        150.0,
        T0,
        GraceState::default(),
        &LimitSettings::default(),
    )
    .unwrap();
    assert_eq!(r.remaining, 0.0);
}

#[test]
fn result_json_has_the_spec_names_and_rfc3339_times() {
    let limit = UsageLimit {
        timezone: Some(chrono_tz::Europe::Paris),
        period_type: PeriodType::Month,
        ..hard(10000.0)
    };
    let (r, _) = check_limit(
        &limit,
        8500.0,
        T0,
        GraceState::default(),
        &LimitSettings::default(),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(r).unwrap(),
        json!({
            "allowed": true,
            "status": "warning",
            "usage": 8500.0,
            "limit": 10000.0,
            "remaining": 1500.0,
            "period_start": "2026-11-01T00:00:00+01:00",
            "period_end": "2026-12-01T00:00:00+01:00",
            "resets_at": "2026-12-01T00:00:00+01:00"
        })
    );
    let (r, _) = check_limit(
        &hard(1.0),
        1.0,
        T0,
        GraceState::default(),
        &LimitSettings::default(),
    )
    .unwrap();
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["status"], "grace");
    assert_eq!(json["period_start"], "2026-11-01T00:00:00Z");
    for status in [CheckStatus::Ok, CheckStatus::Exceeded] {
        let name = serde_json::to_value(status).unwrap();
        assert_eq!(serde_json::from_value::<CheckStatus>(name).unwrap(), status);
    }
}

#[test]
fn unusable_inputs_are_errors() {
    let settings = LimitSettings::default();
    let fresh = GraceState::default();
    let burst = UsageLimit {
        limit_type: LimitType::BurstLimit,
        ..hard(10.0)
    };
    assert_eq!(
        check_limit(&burst, 1.0, T0, fresh, &settings).unwrap_err(),
        CheckError::Unsupported(LimitType::BurstLimit)
    );
    assert_eq!(
        check_limit(&hard(0.0), 1.0, T0, fresh, &settings).unwrap_err(),
        CheckError::InvalidLimit("limit_value must be above 0")
    );
    assert_eq!(
        check_limit(&hard(f64::NAN), 1.0, T0, fresh, &settings).unwrap_err(),
        CheckError::InvalidLimit("limit_value must be above 0")
    );
    assert_eq!(
        check_limit(&hard(10.0), f64::NAN, T0, fresh, &settings).unwrap_err(),
        CheckError::InvalidUsage
    );
    let yesterday = hard(10.0).period_at(at(-86_400 * SEC)).unwrap();
    assert_eq!(
        check_limit_in(&hard(10.0), yesterday, 1.0, T0, fresh, &settings).unwrap_err(),
        CheckError::PeriodMismatch
    );
    let bad_value = UsageLimit {
        period_value: 0,
        ..hard(10.0)
    };
    let err = check_limit(&bad_value, 1.0, T0, fresh, &settings).unwrap_err();
    assert!(
        matches!(err, CheckError::Period(PeriodError::InvalidValue { .. })),
        "{err}"
    );
}

#[test]
fn check_limit_in_equals_check_limit() {
    let limit = hard(100.0);
    let settings = LimitSettings::default();
    let period = limit.period_at(T0).unwrap();
    for usage in [0.0, 85.0, 100.0] {
        assert_eq!(
            check_limit_in(&limit, period, usage, T0, GraceState::default(), &settings),
            check_limit(&limit, usage, T0, GraceState::default(), &settings)
        );
    }
}

fn any_limit() -> impl Strategy<Value = UsageLimit> {
    (
        prop_oneof![
            Just(LimitType::HardLimit),
            Just(LimitType::SoftLimit),
            Just(LimitType::RateLimit)
        ],
        1.0..1e6f64,
        any::<bool>(),
        any::<bool>(),
        0.01..=1.0f64,
    )
        .prop_map(
            |(limit_type, value, active, immediate, threshold)| UsageLimit {
                limit_type,
                status: if active {
                    LimitStatus::Active
                } else {
                    LimitStatus::Inactive
                },
                enforce_immediately: immediate,
                warning_threshold: threshold,
                ..hard(value)
            },
        )
}

proptest! {
    #[test]
    fn check_invariants_hold_for_any_input(
        limit in any_limit(),
        usage in -1e6..2e6f64,
        since_first in proptest::option::of(-10 * MIN..10 * MIN),
        enforcement_enabled in any::<bool>(),
        grace_minutes in 0..10u64,
    ) {
        let settings = LimitSettings {
            enforcement_enabled,
            grace_period: Duration::from_secs(grace_minutes * 60),
        };
        let state = GraceState {
            first_exceeded: since_first.map(|d| FirstExceeded {
                period_start: DAY_START,
                at: Timestamp(T0.0 - d),
            }),
        };
        let (r, next) = check_limit(&limit, usage, T0, state, &settings).unwrap();
        prop_assert!(r.remaining >= 0.0);
        prop_assert!(r.period_start <= T0 && T0 < r.period_end);
        prop_assert_eq!(r.resets_at, r.period_end);
        if !enforcement_enabled || usage < limit.limit_value || limit.status == LimitStatus::Inactive {
            prop_assert!(r.allowed, "{r:?}");
        }
        if !r.allowed {
            prop_assert_eq!(r.status, CheckStatus::Exceeded);
            prop_assert!(limit.limit_type != LimitType::SoftLimit);
        }
        if r.status == CheckStatus::Grace {
            prop_assert!(limit.limit_type == LimitType::HardLimit && !limit.enforce_immediately);
        }
        // The state only ever records the first time, and only for reached hard limits.
        match (state.first_exceeded, next.first_exceeded) {
            (Some(before), after) => prop_assert_eq!(after, Some(before)),
            (None, Some(after)) => {
                prop_assert_eq!(after.at, T0);
                prop_assert!(limit.limit_type == LimitType::HardLimit && usage >= limit.limit_value);
            }
            (None, None) => {}
        }
    }
}
