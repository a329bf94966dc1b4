//! Rollups against a brute-force recount of the events written: random events (late, out of
//! order, repeated event ids), random flushes and reopens, meters defined before and after
//! the data, every aggregation, every granularity, ranges on and off minute boundaries.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use meterdb::clock::ManualClock;
use meterdb::rollup::{Granularity, Usage};
use meterdb::usage::{Aggregation, Meter};
use meterdb::{Engine, Event, FieldValue, Options, SyncPolicy, TenantId, Timestamp, WriteBatch};
use proptest::prelude::*;

const T0: i64 = 1_793_491_200_000_000_000; // 2026-11-01T00:00:00Z
const MINUTE: i64 = 60_000_000_000;
const DAY: i64 = 1440 * MINUTE;

fn options() -> Options {
    Options {
        shards: Some(2),
        sync: SyncPolicy::None,
        max_buffer_bytes: 16 << 10,
        clock: Arc::new(ManualClock::new(Timestamp(T0 + 4 * DAY))),
        ..Options::default()
    }
}

/// [`options`] keeping minute buckets in memory for `hours` before the clock (the events lie
/// 1 to 4 days before it): older minutes are answered from raw events.
fn options_with_minutes(hours: u64) -> Options {
    Options {
        rollup_minute_window: std::time::Duration::from_secs(hours * 3600),
        ..options()
    }
}

/// Meters of every aggregation over the test's events; `None` measurement counts all.
fn defined_meters() -> Vec<Meter> {
    let m = |name: &str,
             measurement: Option<&str>,
             aggregation,
             field: Option<&str>,
             tag: Option<&str>| Meter {
        name: name.into(),
        measurement: measurement.map(Into::into),
        aggregation,
        field: field.map(Into::into),
        tag: tag.map(Into::into),
        filter: Vec::new(),
    };
    let mut gets = m(
        "get_calls",
        Some("api_calls"),
        Aggregation::Count,
        None,
        None,
    );
    gets.filter = vec![("method".into(), "GET".into())];
    vec![
        gets,
        m("value_sum", None, Aggregation::Sum, Some("v"), None),
        m(
            "value_min",
            Some("storage"),
            Aggregation::Min,
            Some("v"),
            None,
        ),
        m(
            "value_max",
            Some("api_calls"),
            Aggregation::Max,
            Some("v"),
            None,
        ),
        m("value_avg", None, Aggregation::Avg, Some("v"), None),
        m(
            "value_latest",
            Some("db_queries"),
            Aggregation::Latest,
            Some("v"),
            None,
        ),
        m(
            "endpoints",
            None,
            Aggregation::UniqueCount,
            None,
            Some("endpoint"),
        ),
    ]
}

#[derive(Clone, Debug)]
struct Spec {
    tenant: u8,
    measurement: u8,
    user: Option<u8>,
    endpoint: u8,
    get: bool,
    value: i64,
    at: i64,
    id: Option<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..3,
        0u8..3,
        proptest::option::of(0u8..6),
        0u8..5,
        any::<bool>(),
        -50i64..1000,
        0..3 * DAY,
        proptest::option::weighted(0.5, 0u8..40),
    )
        .prop_map(
            |(tenant, measurement, user, endpoint, get, value, at, id)| Spec {
                tenant,
                measurement,
                user,
                endpoint,
                get,
                value,
                // Half the events on whole seconds, some on exact minute boundaries.
                at: if at % 3 == 0 { at - at % MINUTE } else { at },
                id,
            },
        )
}

fn to_event(s: &Spec) -> Event {
    let measurement = ["api_calls", "storage", "db_queries"][s.measurement as usize];
    let mut tags = vec![
        ("endpoint".to_owned(), format!("/e{}", s.endpoint)),
        (
            "method".to_owned(),
            if s.get { "GET" } else { "POST" }.to_owned(),
        ),
    ];
    if let Some(u) = s.user {
        tags.push(("user".to_owned(), format!("u{u}")));
    }
    if s.measurement == 1 {
        tags.push((
            "operation".to_owned(),
            if s.value % 2 == 0 { "write" } else { "read" }.to_owned(),
        ));
    }
    let field = if s.measurement == 1 {
        "size_bytes"
    } else {
        "v"
    };
    let mut fields = vec![(field.to_owned(), FieldValue::I64(s.value))];
    if s.measurement == 1 {
        fields.push(("v".to_owned(), FieldValue::I64(s.value * 3)));
    }
    Event {
        tenant: TenantId::new(&format!("t{}", s.tenant)),
        measurement: measurement.into(),
        tags,
        fields,
        timestamp: Timestamp(T0 + s.at),
        event_id: s.id.map(|i| format!("id-{i}")),
    }
}

/// The usage a meter should report for `[start, end)`, recounted from the events the engine
/// should have kept (the first of each tenant's repeated event ids).
fn expected(events: &[Event], tenant: &str, meter: &Meter, start: i64, end: i64) -> Usage {
    let mut u = Usage::default();
    let mut distinct = HashSet::new();
    let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
    for e in events
        .iter()
        .filter(|e| e.tenant.as_str() == tenant && (start..end).contains(&e.timestamp.0))
    {
        if meter
            .measurement
            .as_ref()
            .is_some_and(|m| *m != e.measurement)
        {
            continue;
        }
        let tag = |k: &str| {
            e.tags
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if !meter.filter.iter().all(|(k, v)| tag(k) == Some(v.as_str())) {
            continue;
        }
        match meter.aggregation {
            Aggregation::Count => u.count += 1,
            Aggregation::UniqueCount => {
                if let Some(v) = tag(meter.tag.as_deref().unwrap()) {
                    u.count += 1;
                    distinct.insert(v.to_owned());
                }
            }
            _ => {
                let field = meter.field.as_deref().unwrap();
                let Some(FieldValue::I64(v)) = e
                    .fields
                    .iter()
                    .find(|(k, _)| k == field)
                    .map(|(_, v)| v.clone())
                else {
                    continue;
                };
                let v = v as f64;
                u.count += 1;
                sum += v;
                min = min.min(v);
                max = max.max(v);
                let t = e.timestamp.0;
                if u.latest
                    .is_none_or(|(lt, lv)| t > lt || (t == lt && v > lv))
                {
                    u.latest = Some((t, v));
                }
            }
        }
    }
    u.sum = sum;
    u.min = (u.count > 0 && min.is_finite()).then_some(min);
    u.max = (u.count > 0 && max.is_finite()).then_some(max);
    u.unique = distinct.len() as u64;
    u
}

/// What a meter's aggregation makes of a usage: the parts a caller can read.
fn figure(meter: &Meter, u: &Usage) -> (u64, Option<f64>) {
    (u.count, u.value(meter.aggregation))
}

fn write(engine: &Engine, events: &[Event]) {
    let mut batch = WriteBatch::new();
    for e in events {
        batch.push(e);
    }
    let _ = engine.write(batch).unwrap();
}

/// The events the engine keeps: the first copy of each tenant's event id.
fn kept(events: &[Event]) -> Vec<Event> {
    let mut seen = HashSet::new();
    events
        .iter()
        .filter(|e| match &e.event_id {
            Some(id) => seen.insert((e.tenant.as_str().to_owned(), id.clone())),
            None => true,
        })
        .cloned()
        .collect()
}

fn check(engine: &Engine, events: &[Event], meters: &[Meter], ranges: &[(i64, i64)]) {
    for t in 0..3 {
        let tenant = format!("t{t}");
        for meter in meters {
            for &(start, end) in ranges {
                let (start, end) = (T0 + start, T0 + end);
                let got = engine.usage(&tenant, &meter.name, start..end).unwrap();
                let want = expected(events, &tenant, meter, start, end);
                assert_eq!(
                    figure(meter, &got),
                    figure(meter, &want),
                    "{tenant} {} over [{start}, {end})",
                    meter.name
                );
            }
            for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
                let series = engine
                    .usage_series(&tenant, &meter.name, T0..T0 + 3 * DAY, g)
                    .unwrap();
                assert_eq!(series.len() as i64, 3 * DAY / g.nanos());
                let mut nonzero = BTreeMap::new();
                for (start, u) in &series {
                    let want = expected(events, &tenant, meter, *start, start + g.nanos());
                    assert_eq!(
                        figure(meter, u),
                        figure(meter, &want),
                        "{tenant} {} {g} bucket {start}",
                        meter.name
                    );
                    if u.count > 0 {
                        nonzero.insert(*start, u.count);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn rollups_equal_a_recount_of_the_events(
        specs in proptest::collection::vec(spec(), 1..300),
        cuts in proptest::collection::vec(0usize..300, 0..6),
        define_at in 0usize..300,
        reopen_at in 0usize..300,
        ranges in proptest::collection::vec((0..3 * DAY, 0..3 * DAY), 4),
        minute_hours in proptest::sample::select(vec![1u64, 60, 2400]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = specs.iter().map(to_event).collect();
        let options = || options_with_minutes(minute_hours);
        let mut engine = Engine::open(dir.path(), options()).unwrap();
        let defined = defined_meters();
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().chain([&define_at, &reopen_at]).map(|&c| c.min(events.len())).collect();
        points.push(events.len());
        points.sort_unstable();
        for p in points {
            write(&engine, &events[at..p]);
            at = p;
            if p == define_at.min(events.len()) {
                for m in &defined {
                    if engine.meter("t0", &m.name).is_none() {
                        for t in 0..3 {
                            engine.define_meter(&format!("t{t}"), m.clone()).unwrap();
                        }
                    }
                }
            }
            if p == reopen_at.min(events.len()) {
                engine.close().unwrap();
                engine = Engine::open(dir.path(), options()).unwrap();
            } else if cuts.contains(&p) {
                engine.flush().unwrap();
            }
        }
        let kept = kept(&events);
        let mut meters: Vec<Meter> = Meter::builtins().into();
        meters.extend(defined);
        let mut ranges: Vec<(i64, i64)> = ranges.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect();
        ranges.push((0, 3 * DAY));
        check(&engine, &kept, &meters, &ranges);
        engine.close().unwrap();
        let engine = Engine::open(dir.path(), options()).unwrap();
        check(&engine, &kept, &meters, &ranges[ranges.len() - 1..]);
        engine.close().unwrap();
    }
}

fn calls(tenant: &str, n: usize, start: i64, step: i64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = common::event(tenant, start + i as i64 * step, "/a", 1.0, None);
            e.event_id = Some(format!("{tenant}-{start}-{i}"));
            e.tags.push(("user".into(), format!("u{}", i % 7)));
            e
        })
        .collect()
}

fn slow_calls() -> Meter {
    Meter {
        name: "bytes_total".into(),
        measurement: Some("api_calls".into()),
        aggregation: Aggregation::Sum,
        field: Some("bytes".into()),
        tag: None,
        filter: Vec::new(),
    }
}

fn bytes_of(events: &[Event]) -> f64 {
    events
        .iter()
        .map(|e| match e.fields.iter().find(|(k, _)| k == "bytes") {
            Some((_, FieldValue::I64(v))) => *v as f64,
            _ => 0.0,
        })
        .sum()
}

/// A crash (the directory as a kill would leave it, nothing flushed at close) after a meter
/// was defined over flushed and unflushed events: the reopened engine has every bucket.
#[test]
fn rollups_survive_a_crash_image_with_a_defined_meter() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let flushed = calls("acme", 500, T0, 7 * MINUTE + 13);
    write(&engine, &flushed);
    engine.flush().unwrap();
    let buffered = calls("acme", 300, T0 + DAY, 3 * MINUTE + 1);
    write(&engine, &buffered);
    engine.define_meter("acme", slow_calls()).unwrap();
    let later = calls("acme", 200, T0 + 2 * DAY, MINUTE / 2);
    write(&engine, &later);
    let image = common::crash_image(dir.path());
    drop(engine);

    let engine = Engine::open(image.path(), options()).unwrap();
    let all = [flushed, buffered, later].concat();
    let range = T0..T0 + 3 * DAY;
    assert_eq!(
        engine
            .usage("acme", "api_calls", range.clone())
            .unwrap()
            .count,
        1000
    );
    assert_eq!(
        engine
            .usage("acme", "active_users", range.clone())
            .unwrap()
            .unique,
        7
    );
    assert_eq!(
        engine
            .usage("acme", "bytes_total", range.clone())
            .unwrap()
            .sum,
        bytes_of(&all)
    );
    engine.close().unwrap();
}

/// A rollup file that is damaged or gone is reported, and the segments it held are recounted
/// from their rows, so usage stays exact.
#[test]
fn a_lost_rollup_file_is_recounted_from_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    engine.define_meter("acme", slow_calls()).unwrap();
    let events = calls("acme", 400, T0, 11 * MINUTE);
    write(&engine, &events);
    engine.close().unwrap();

    let mut damaged = 0;
    for shard in std::fs::read_dir(dir.path()).unwrap() {
        let rollups = shard.unwrap().path().join("rollups");
        for f in std::fs::read_dir(&rollups).into_iter().flatten() {
            let path = f.unwrap().path();
            if damaged == 0 {
                let mut bytes = std::fs::read(&path).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
                std::fs::write(&path, bytes).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no rollup file was written");

    let engine = Engine::open(dir.path(), options()).unwrap();
    let reported: usize = engine
        .recovery_report()
        .iter()
        .map(|r| r.corruptions.len())
        .sum();
    assert_eq!(reported, damaged, "{:?}", engine.recovery_report());
    let range = T0..T0 + 4 * DAY;
    assert_eq!(
        engine
            .usage("acme", "api_calls", range.clone())
            .unwrap()
            .count,
        400
    );
    assert_eq!(
        engine
            .usage("acme", "bytes_total", range.clone())
            .unwrap()
            .sum,
        bytes_of(&events)
    );
    engine.close().unwrap();
    // The recount was persisted: the next open finds nothing missing.
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert!(
        engine
            .recovery_report()
            .iter()
            .all(|r| r.corruptions.is_empty())
    );
    assert_eq!(engine.usage("acme", "api_calls", range).unwrap().count, 400);
    engine.close().unwrap();
}

/// A meter deleted and defined again under the same name starts from its new definition:
/// the old one's buckets, in memory or in files, are not inherited.
#[test]
fn a_redefined_meter_does_not_inherit_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let events = calls("acme", 50, T0, MINUTE);
    write(&engine, &events);
    engine.define_meter("acme", slow_calls()).unwrap();
    engine.flush().unwrap();
    assert!(matches!(
        engine.define_meter("acme", slow_calls()),
        Err(meterdb::Error::MeterExists { .. })
    ));
    engine.delete_meter("acme", "bytes_total").unwrap();
    assert!(matches!(
        engine.usage("acme", "bytes_total", T0..T0 + DAY),
        Err(meterdb::Error::UnknownMeter { .. })
    ));
    let mut storage = slow_calls();
    storage.measurement = Some("storage".into());
    engine.define_meter("acme", storage).unwrap();
    let range = T0..T0 + DAY;
    assert_eq!(
        engine
            .usage("acme", "bytes_total", range.clone())
            .unwrap()
            .count,
        0
    );
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(
        engine
            .usage("acme", "bytes_total", range.clone())
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        engine.meter("other", "bytes_total"),
        None,
        "meters are per tenant"
    );
    assert!(matches!(
        engine.delete_meter("acme", "api_calls"),
        Err(meterdb::Error::InvalidMeter(_))
    ));
    engine.close().unwrap();
}

/// Minute buckets older than the window leave memory as the clock moves on; minute-precise
/// usage over them is then recounted from raw events, and stays exact.
#[test]
fn minute_buckets_past_the_window_leave_memory_and_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(T0 + DAY)));
    let options = Options {
        clock: clock.clone(),
        rollup_minute_window: std::time::Duration::from_secs(6 * 3600),
        ..options()
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    // 300 calls over the 5 hours before the clock, 7 users.
    let events = calls("acme", 300, T0 + DAY - 5 * 60 * MINUTE, MINUTE + 7);
    write(&engine, &events);
    let (before, _) = engine.rollup_memory();
    let series = |engine: &Engine| {
        engine
            .usage_series(
                "acme",
                "api_calls",
                T0 + DAY - 6 * 60 * MINUTE..T0 + DAY,
                Granularity::Minute,
            )
            .unwrap()
            .into_iter()
            .map(|(t, u)| (t, u.count))
            .collect::<Vec<_>>()
    };
    let minutes_before = series(&engine);
    assert_eq!(minutes_before.iter().map(|(_, n)| n).sum::<u64>(), 300);

    clock.set(Timestamp(T0 + 3 * DAY));
    // Any write runs the writer's housekeeping, which moves the horizon.
    write(&engine, &calls("acme", 1, T0 + 3 * DAY - MINUTE, 1));
    let (after, _) = engine.rollup_memory();
    assert!(
        after < before,
        "minute buckets were not dropped: {before} buckets before, {after} after"
    );
    assert_eq!(series(&engine), minutes_before);
    let odd_range = T0 + DAY - 5 * 60 * MINUTE + 17..T0 + DAY - 2 * 60 * MINUTE - 3 * MINUTE;
    let want = events
        .iter()
        .filter(|e| odd_range.contains(&e.timestamp.0))
        .count() as u64;
    assert_eq!(
        engine.usage("acme", "api_calls", odd_range).unwrap().count,
        want
    );
    assert_eq!(
        engine
            .usage("acme", "active_users", T0..T0 + 4 * DAY)
            .unwrap()
            .unique,
        7
    );
    engine.close().unwrap();
}
