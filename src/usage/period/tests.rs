use proptest::prelude::*;

use super::*;

const HOUR: i64 = 3600 * NANOS_PER_SEC;

fn ts(rfc3339: &str) -> Timestamp {
    let t = DateTime::parse_from_rfc3339(rfc3339).unwrap();
    Timestamp(t.timestamp_nanos_opt().unwrap())
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

/// The period as local RFC 3339 strings, so that failures read like the table.
fn period(at: &str, zone: &str, unit: PeriodType, n: u32) -> (String, String) {
    let zone = tz(zone);
    let p = period_containing(ts(at), unit, n, zone).unwrap();
    assert!(p.contains(ts(at)));
    (to_rfc3339(p.start, zone), to_rfc3339(p.end, zone))
}

#[test]
fn calendar_periods_table() {
    use PeriodType::*;
    #[rustfmt::skip]
    let cases: &[(&str, &str, PeriodType, u32, &str, &str)] = &[
        // Month and year rollover.
        ("2026-01-31T23:59:59.999999999Z", "UTC", Month, 1, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        ("2026-02-01T00:00:00Z", "UTC", Month, 1, "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("2026-12-15T10:00:00Z", "UTC", Month, 1, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("2026-12-31T23:59:59Z", "UTC", Year, 1, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        // Multiples on the 1970 grid: quarters, halves, decades.
        ("2026-11-28T08:00:00Z", "UTC", Month, 3, "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("2026-02-10T08:00:00Z", "UTC", Month, 3, "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        ("2026-06-30T23:00:00Z", "UTC", Month, 6, "2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z"),
        ("2026-07-01T00:00:00Z", "UTC", Month, 12, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("2026-07-01T00:00:00Z", "UTC", Year, 10, "2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("1969-12-31T23:59:59Z", "UTC", Year, 1, "1969-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
        ("1969-12-31T23:59:59Z", "UTC", Month, 3, "1969-10-01T00:00:00Z", "1970-01-01T00:00:00Z"),
        // Leap years: February 2024 has 29 days, 2100 is not a leap year.
        ("2024-02-29T12:00:00Z", "UTC", Day, 1, "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"),
        ("2024-02-29T12:00:00Z", "UTC", Month, 1, "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        ("2100-02-28T12:00:00Z", "UTC", Month, 1, "2100-02-01T00:00:00Z", "2100-03-01T00:00:00Z"),
        ("2024-12-31T12:00:00Z", "UTC", Year, 1, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        // ISO weeks start on Monday, across the year end; fortnights on the 1969-12-29 grid.
        ("2026-11-28T08:00:00Z", "UTC", Week, 1, "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"),
        ("2026-11-30T00:00:00Z", "UTC", Week, 1, "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z"),
        ("2027-01-01T08:00:00Z", "UTC", Week, 1, "2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z"),
        ("2026-11-28T08:00:00Z", "UTC", Week, 2, "2026-11-16T00:00:00Z", "2026-11-30T00:00:00Z"),
        // Days counted from 1970-01-01 (a Thursday): seven days are not a week.
        ("2026-11-28T08:00:00Z", "UTC", Day, 7, "2026-11-26T00:00:00Z", "2026-12-03T00:00:00Z"),
        // A tenant time zone moves the boundaries to local midnight.
        ("2026-11-30T23:30:00Z", "Europe/Paris", Month, 1, "2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00"),
        ("2026-12-31T23:30:00Z", "Europe/Paris", Year, 1, "2027-01-01T00:00:00+01:00", "2028-01-01T00:00:00+01:00"),
        ("2026-11-28T03:00:00Z", "America/New_York", Day, 1, "2026-11-27T00:00:00-05:00", "2026-11-28T00:00:00-05:00"),
        // DST: March in Paris is one hour short, its last Sunday lasts 23 hours.
        ("2026-03-15T12:00:00Z", "Europe/Paris", Month, 1, "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"),
        ("2026-03-29T12:00:00Z", "Europe/Paris", Day, 1, "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        ("2026-10-25T12:00:00Z", "Europe/Paris", Day, 1, "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
        ("2026-03-08T12:00:00Z", "America/New_York", Day, 1, "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"),
        ("2026-11-01T12:00:00Z", "America/New_York", Day, 1, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
        ("2026-11-01T12:00:00Z", "America/New_York", Week, 1, "2026-10-26T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
        // Havana skips midnight in March: the day starts when the clock lands at 01:00.
        ("2026-03-08T12:00:00Z", "America/Havana", Day, 1, "2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00"),
        ("2026-03-08T04:59:59Z", "America/Havana", Day, 1, "2026-03-07T00:00:00-05:00", "2026-03-08T01:00:00-04:00"),
        ("2026-03-20T12:00:00Z", "America/Havana", Month, 1, "2026-03-01T00:00:00-05:00", "2026-04-01T00:00:00-04:00"),
        // ... and repeats the hour after midnight in November: the first midnight opens the
        // day, which lasts 25 hours, whichever pass of the repeated hour is asked about.
        ("2026-11-01T04:30:00Z", "America/Havana", Day, 1, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
        ("2026-11-01T05:30:00Z", "America/Havana", Day, 1, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
        ("2026-11-01T03:59:59Z", "America/Havana", Day, 1, "2026-10-31T00:00:00-04:00", "2026-11-01T00:00:00-04:00"),
        // Samoa skipped 2011-12-30 entirely: the 29th ends when the 31st starts.
        ("2011-12-30T09:59:59Z", "Pacific/Apia", Day, 1, "2011-12-29T00:00:00-10:00", "2011-12-31T00:00:00+14:00"),
        ("2011-12-30T10:00:00Z", "Pacific/Apia", Day, 1, "2011-12-31T00:00:00+14:00", "2012-01-01T00:00:00+14:00"),
    ];
    for (at, zone, unit, n, start, end) in cases {
        assert_eq!(
            period(at, zone, *unit, *n),
            (start.to_string(), end.to_string()),
            "{n} {unit} at {at} in {zone}"
        );
    }
}

#[test]
fn elapsed_periods_table() {
    use PeriodType::*;
    #[rustfmt::skip]
    let cases: &[(&str, &str, PeriodType, u32, &str, &str)] = &[
        ("2026-11-28T08:37:12Z", "UTC", Minute, 1, "2026-11-28T08:37:00Z", "2026-11-28T08:38:00Z"),
        ("2026-11-28T08:37:12Z", "UTC", Minute, 15, "2026-11-28T08:30:00Z", "2026-11-28T08:45:00Z"),
        ("2026-12-31T23:59:59Z", "UTC", Hour, 1, "2026-12-31T23:00:00Z", "2027-01-01T00:00:00Z"),
        ("2026-11-28T08:10:00Z", "Europe/Paris", Hour, 6, "2026-11-28T06:00:00+01:00", "2026-11-28T12:00:00+01:00"),
        // Half-hour offsets: local hours start at :30 UTC.
        ("2026-11-28T08:10:00Z", "Asia/Kolkata", Hour, 1, "2026-11-28T13:00:00+05:30", "2026-11-28T14:00:00+05:30"),
        ("2026-11-28T08:10:00Z", "Asia/Kathmandu", Hour, 1, "2026-11-28T13:00:00+05:45", "2026-11-28T14:00:00+05:45"),
        // Paris falls back at 01:00 UTC: the repeated 02:00 local hour is two periods.
        ("2026-10-25T00:30:00Z", "Europe/Paris", Hour, 1, "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"),
        ("2026-10-25T01:30:00Z", "Europe/Paris", Hour, 1, "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"),
        // ... and springs forward at 01:00 UTC: 02:00 local never happens.
        ("2026-03-29T00:59:59Z", "Europe/Paris", Hour, 1, "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"),
        ("2026-03-29T01:00:00Z", "Europe/Paris", Hour, 1, "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"),
        // A 24-hour period is elapsed time too: New York's spring change cuts it in two (a
        // local day is PeriodType::Day).
        ("2026-03-08T06:00:00Z", "America/New_York", Hour, 24, "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00"),
        ("2026-03-08T07:10:00Z", "America/New_York", Hour, 24, "2026-03-08T03:00:00-04:00", "2026-03-09T00:00:00-04:00"),
        ("2026-03-08T07:10:00Z", "America/New_York", Hour, 1, "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"),
        // Lord Howe Island shifts by 30 minutes: the hour that straddles the change is cut.
        ("2026-04-04T14:50:00Z", "Australia/Lord_Howe", Hour, 1, "2026-04-05T01:00:00+11:00", "2026-04-05T01:30:00+10:30"),
        ("2026-04-04T15:10:00Z", "Australia/Lord_Howe", Hour, 1, "2026-04-05T01:30:00+10:30", "2026-04-05T02:00:00+10:30"),
        ("2026-04-04T15:40:00Z", "Australia/Lord_Howe", Hour, 1, "2026-04-05T02:00:00+10:30", "2026-04-05T03:00:00+10:30"),
    ];
    for (at, zone, unit, n, start, end) in cases {
        assert_eq!(
            period(at, zone, *unit, *n),
            (start.to_string(), end.to_string()),
            "{n} {unit} at {at} in {zone}"
        );
    }
}

#[test]
fn dst_days_last_23_and_25_hours() {
    for (zone, spring, autumn) in [
        (
            "Europe/Paris",
            "2026-03-29T12:00:00Z",
            "2026-10-25T12:00:00Z",
        ),
        (
            "America/New_York",
            "2026-03-08T17:00:00Z",
            "2026-11-01T17:00:00Z",
        ),
    ] {
        let zone = tz(zone);
        let day = |at| period_containing(ts(at), PeriodType::Day, 1, zone).unwrap();
        assert_eq!(day(spring).len_nanos(), 23 * HOUR, "{zone}");
        assert_eq!(day(autumn).len_nanos(), 25 * HOUR, "{zone}");
        assert_eq!(day(spring).resets_at(), day(spring).end);
    }
}

#[test]
fn period_value_out_of_range_is_an_error() {
    for unit in PeriodType::ALL {
        let t = ts("2026-11-28T00:00:00Z");
        let err = period_containing(t, unit, 0, Tz::UTC).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "period_value 0 is out of range for {unit} periods: use 1 to {}",
                unit.max_value()
            )
        );
        let too_many = unit.max_value() + 1;
        assert!(period_containing(t, unit, too_many, Tz::UTC).is_err());
        period_containing(t, unit, unit.max_value(), Tz::UTC).unwrap();
    }
}

#[test]
fn periods_beyond_the_representable_range_are_errors() {
    // Year 2262 ends after the last nanosecond timestamp; 1677 starts before the first.
    let err = period_containing(Timestamp::MAX, PeriodType::Year, 1, Tz::UTC).unwrap_err();
    assert!(matches!(err, PeriodError::OutOfRange { .. }), "{err}");
    assert!(err.to_string().contains("does not fit"), "{err}");
    let err = period_containing(Timestamp::MIN, PeriodType::Minute, 1, Tz::UTC).unwrap_err();
    assert!(matches!(err, PeriodError::OutOfRange { .. }), "{err}");
}

#[test]
fn period_types_parse_and_print() {
    for unit in PeriodType::ALL {
        assert_eq!(unit.to_string().parse::<PeriodType>(), Ok(unit));
        let json = serde_json::to_string(&unit).unwrap();
        assert_eq!(json, format!("\"{unit}\""));
    }
    let err = "monthly".parse::<PeriodType>().unwrap_err();
    assert_eq!(
        err,
        "period type \"monthly\" is not one of minute, hour, day, week, month, year"
    );
}

#[test]
fn rfc3339_shows_fractions_only_when_present() {
    assert_eq!(to_rfc3339(Timestamp(0), Tz::UTC), "1970-01-01T00:00:00Z");
    assert_eq!(
        to_rfc3339(Timestamp(1_500_000), tz("Europe/Paris")),
        "1970-01-01T01:00:00.001500+01:00"
    );
}

/// Zones with every kind of irregularity: DST in both hemispheres, half-hour and 45-minute
/// offsets, a 30-minute DST shift, midnight transitions, a skipped day, and historical changes.
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Santiago",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Pacific/Chatham",
    "Europe/London",
    "Africa/Casablanca",
];

/// Walks consecutive periods from `from` to `to`, checking that each starts where the previous
/// ended and holds its own last instant; returns the periods.
fn walk(from: Timestamp, to: Timestamp, unit: PeriodType, n: u32, zone: Tz) -> Vec<Period> {
    let mut p = period_containing(from, unit, n, zone).unwrap();
    let mut out = vec![p];
    while p.end < to {
        let next = period_containing(p.end, unit, n, zone).unwrap();
        assert_eq!(next.start, p.end, "{n} {unit} in {zone} after {p:?}");
        assert!(next.start < next.end, "{n} {unit} in {zone}: {next:?}");
        let last = period_containing(Timestamp(next.end.0 - 1), unit, n, zone).unwrap();
        assert_eq!(last, next, "{n} {unit} in {zone}");
        out.push(next);
        p = next;
    }
    out
}

#[test]
fn periods_tile_across_every_transition_from_2010_to_2030() {
    let from = ts("2010-01-01T00:00:00Z");
    let to = ts("2030-01-01T00:00:00Z");
    for zone in ZONES.iter().map(|z| tz(z)) {
        let days = walk(from, to, PeriodType::Day, 1, zone);
        let mut irregular = 0;
        for day in days.iter().filter(|d| d.len_nanos() != 24 * HOUR) {
            irregular += 1;
            // Around each change of offset, sub-day periods must tile too.
            let (a, b) = (
                Timestamp(day.start.0 - 24 * HOUR),
                Timestamp(day.end.0 + 24 * HOUR),
            );
            for (unit, n) in [
                (PeriodType::Hour, 1),
                (PeriodType::Hour, 5),
                (PeriodType::Minute, 45),
            ] {
                let periods = walk(a, b, unit, n, zone);
                let full = i64::from(n)
                    * if unit == PeriodType::Hour {
                        HOUR
                    } else {
                        60 * NANOS_PER_SEC
                    };
                assert!(periods.iter().all(|p| p.len_nanos() <= full), "{zone}");
            }
        }
        if zone != Tz::UTC && zone != tz("Asia/Kolkata") && zone != tz("Asia/Kathmandu") {
            assert!(irregular > 0, "{zone} has no DST day from 2010 to 2030?");
        }
        for (unit, n) in [
            (PeriodType::Week, 1),
            (PeriodType::Month, 1),
            (PeriodType::Month, 3),
            (PeriodType::Year, 1),
        ] {
            walk(from, to, unit, n, zone);
        }
    }
}

fn any_zone() -> impl Strategy<Value = Tz> {
    proptest::sample::select(ZONES).prop_map(tz)
}

fn any_unit() -> impl Strategy<Value = (PeriodType, u32)> {
    proptest::sample::select(PeriodType::ALL.to_vec()).prop_flat_map(|unit| {
        // Mostly small multiples, the common ones, and sometimes the largest.
        let n = prop_oneof![4 => 1..=3u32, 1 => 1..=unit.max_value()];
        (Just(unit), n)
    })
}

/// Instants from 1900 to 2100, where time zone rules are known and even a century-long period
/// and its neighbours fit in the representable range.
fn any_instant() -> impl Strategy<Value = Timestamp> {
    (-2_208_988_800i64..4_102_444_800i64, 0..NANOS_PER_SEC)
        .prop_map(|(s, ns)| Timestamp(s * NANOS_PER_SEC + ns))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_instant_lies_in_its_period_and_periods_tile(
        t in any_instant(),
        (unit, n) in any_unit(),
        zone in any_zone(),
        frac in 0.0..1.0f64,
    ) {
        let p = period_containing(t, unit, n, zone).unwrap();
        prop_assert!(p.start < p.end, "{p:?}");
        prop_assert!(p.contains(t), "{t:?} not in {p:?}");
        // The period is the same from any instant inside it ...
        prop_assert_eq!(period_containing(p.start, unit, n, zone).unwrap(), p);
        prop_assert_eq!(period_containing(Timestamp(p.end.0 - 1), unit, n, zone).unwrap(), p);
        let inside = p.start.0 + ((p.len_nanos() as f64 * frac) as i64).min(p.len_nanos() - 1);
        prop_assert_eq!(period_containing(Timestamp(inside), unit, n, zone).unwrap(), p);
        // ... and the next one starts where it ends, the previous one ends where it starts
        // (unless a long multiple of years takes it past 2262).
        match period_containing(p.end, unit, n, zone) {
            Ok(next) => prop_assert_eq!(next.start, p.end),
            Err(e) => prop_assert!(unit == PeriodType::Year && n > 1, "{e}"),
        }
        let previous = period_containing(Timestamp(p.start.0 - 1), unit, n, zone).unwrap();
        prop_assert_eq!(previous.end, p.start);
    }

    #[test]
    fn utc_calendar_periods_start_at_midnight_on_the_grid(
        t in any_instant(),
        (unit, n) in any_unit(),
    ) {
        use chrono::{Datelike, Timelike, Weekday};
        let p = period_containing(t, unit, n, Tz::UTC).unwrap();
        let start = DateTime::from_timestamp_nanos(p.start.0);
        let end = DateTime::from_timestamp_nanos(p.end.0);
        let months = |d: DateTime<chrono::Utc>| (i64::from(d.year()) - 1970) * 12 + i64::from(d.month0());
        match unit {
            PeriodType::Minute | PeriodType::Hour => {
                let unit_ns = if unit == PeriodType::Minute { 60 } else { 3600 } * NANOS_PER_SEC;
                prop_assert_eq!(p.len_nanos(), unit_ns * i64::from(n));
                prop_assert_eq!(p.start.0.rem_euclid(unit_ns * i64::from(n)), 0);
            }
            _ => {
                prop_assert_eq!(start.num_seconds_from_midnight(), 0);
                prop_assert_eq!(start.nanosecond(), 0);
            }
        }
        match unit {
            PeriodType::Day => prop_assert_eq!(p.len_nanos(), 24 * HOUR * i64::from(n)),
            PeriodType::Week => {
                prop_assert_eq!(start.weekday(), Weekday::Mon);
                prop_assert_eq!(p.len_nanos(), 7 * 24 * HOUR * i64::from(n));
            }
            PeriodType::Month => {
                prop_assert_eq!(start.day(), 1);
                prop_assert_eq!(end.day(), 1);
                prop_assert_eq!(months(start).rem_euclid(i64::from(n)), 0);
                prop_assert_eq!(months(end) - months(start), i64::from(n));
            }
            PeriodType::Year => {
                prop_assert_eq!((start.month(), start.day()), (1, 1));
                prop_assert_eq!(i64::from(start.year() - 1970).rem_euclid(i64::from(n)), 0);
                prop_assert_eq!(end.year() - start.year(), n as i32);
            }
            PeriodType::Minute | PeriodType::Hour => {}
        }
    }

    #[test]
    fn any_instant_gives_a_period_or_an_error_never_a_panic(
        t in any::<i64>(),
        (unit, n) in any_unit(),
        zone in any_zone(),
    ) {
        match period_containing(Timestamp(t), unit, n, zone) {
            Ok(p) => prop_assert!(p.contains(Timestamp(t))),
            Err(e) => prop_assert!(matches!(e, PeriodError::OutOfRange { .. }), "{e}"),
        }
    }
}
