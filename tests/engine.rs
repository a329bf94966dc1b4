//! The engine's public API: round trips through the buffer, segments and a reopen; the lock;
//! validation and schema errors; scans with predicates against a brute-force filter; event ids
//! stored once however often they are sent.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use common::{all_events, event, sort_events, test_options};
use meterdb::clock::ManualClock;
use meterdb::{
    Engine, Error, Event, FieldValue, InvalidEvent, Options, ScanRequest, TagPredicate, TenantId,
    Timestamp, WriteBatch,
};
use proptest::prelude::*;

const DAY: i64 = 86_400_000_000_000;
const T0: i64 = 1_793_491_200_000_000_000; // 2026-11-01T00:00:00Z

/// Events whose field types follow from the field key, so that random batches never conflict.
fn event_strategy() -> impl Strategy<Value = Event> {
    let field = |key: &'static str| -> BoxedStrategy<(String, FieldValue)> {
        let v: BoxedStrategy<FieldValue> = match key {
            "f" => any::<f64>().prop_map(FieldValue::F64).boxed(),
            "i" => any::<i64>().prop_map(FieldValue::I64).boxed(),
            "u" => any::<u64>().prop_map(FieldValue::U64).boxed(),
            "b" => any::<bool>().prop_map(FieldValue::Bool).boxed(),
            _ => ".{0,10}".prop_map(FieldValue::Str).boxed(),
        };
        v.prop_map(move |v| (key.to_owned(), v)).boxed()
    };
    let fields = (
        prop::option::of(field("f")),
        prop::option::of(field("i")),
        prop::option::of(field("u")),
        prop::option::of(field("b")),
        prop::option::of(field("s")),
    )
        .prop_map(|(a, b, c, d, e)| [a, b, c, d, e].into_iter().flatten().collect::<Vec<_>>());
    (
        prop::sample::select(vec!["acme", "globex", "initech", "umbrella", "t0001"]),
        prop::sample::select(vec!["api_calls", "storage"]),
        prop::collection::btree_map("[a-d]{1,2}", "[a-z/]{0,6}", 0..4),
        fields,
        0..3 * DAY,
        prop::option::of("[0-9a-f]{32}|[a-z0-9-]{1,20}"),
    )
        .prop_filter("an event needs a field or an id", |(_, _, _, f, _, id)| {
            !f.is_empty() || id.is_some()
        })
        .prop_map(|(tenant, measurement, tags, fields, dt, event_id)| Event {
            tenant: TenantId::new(tenant),
            measurement: measurement.to_owned(),
            tags: tags.into_iter().collect(),
            fields,
            timestamp: Timestamp(T0 + dt),
            event_id,
        })
}

fn batch_of(events: &[Event]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for e in events {
        b.push(e);
    }
    b
}

/// Drops the events whose (tenant, event id) came earlier, so that a random stream holds no
/// retries (the tests that compare stored events with written ones need that).
fn without_repeated_ids(events: &[Event], seen: &mut HashSet<(TenantId, String)>) -> Vec<Event> {
    events
        .iter()
        .filter(|e| {
            e.event_id
                .as_ref()
                .is_none_or(|id| seen.insert((e.tenant.clone(), id.clone())))
        })
        .cloned()
        .collect()
}

fn same(a: &[Event], b: &[Event]) -> bool {
    // Debug output compares NaN as equal to itself.
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn written_batches_read_back_identical_before_and_after_flush_and_reopen(
        batches in prop::collection::vec(prop::collection::vec(event_strategy(), 1..40), 1..5)
    ) {
        let mut seen = HashSet::new();
        let batches: Vec<Vec<Event>> = batches
            .iter()
            .map(|b| without_repeated_ids(b, &mut seen))
            .filter(|b| !b.is_empty())
            .collect();
        prop_assume!(!batches.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let mut expected: Vec<Event> = batches.iter().flatten().cloned().collect();
        sort_events(&mut expected);
        let all = ScanRequest::default();
        {
            let engine = Engine::open(dir.path(), test_options()).unwrap();
            for b in &batches {
                let receipt = engine.write(batch_of(b)).unwrap();
                prop_assert!(receipt.rejected.is_empty());
            }
            prop_assert!(same(&all_events(&engine, &all), &expected), "before flush");
            engine.flush().unwrap();
            prop_assert!(same(&all_events(&engine, &all), &expected), "after flush");
            // Half in segments, half in the buffer.
            let more: Vec<Event> = batches[0]
                .iter()
                .filter(|e| !e.fields.is_empty())
                .map(|e| Event { event_id: None, ..e.clone() })
                .collect();
            common::store(&engine, &more);
            expected.extend(more);
            sort_events(&mut expected);
            prop_assert!(same(&all_events(&engine, &all), &expected), "segments + buffer");
            engine.close().unwrap();
        }
        let engine = Engine::open(dir.path(), test_options()).unwrap();
        prop_assert!(same(&all_events(&engine, &all), &expected), "after reopen");
    }

    #[test]
    fn scans_equal_a_brute_force_filter(
        events in prop::collection::vec(event_strategy(), 1..120),
        flush in any::<bool>(),
        tenant in prop::option::of(prop::sample::select(vec!["acme", "globex"])),
        measurement in prop::option::of(prop::sample::select(vec!["api_calls", "storage"])),
        time in prop::option::of((0..3 * DAY, 0..3 * DAY)),
        pred in prop::option::of((prop::sample::select(vec!["a", "b", "c"]), 0..5usize, "[a-z/]{0,2}")),
        columns in prop::option::of(prop::sample::subsequence(vec!["a", "b", "f", "i", "s", "event_id"], 0..4)),
    ) {
        let events = without_repeated_ids(&events, &mut HashSet::new());
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), test_options()).unwrap();
        common::store(&engine, &events);
        if flush {
            engine.flush().unwrap();
        }
        let predicate = pred.map(|(key, op, value)| match op {
            0 => TagPredicate::eq(key, &value),
            1 => TagPredicate::not_eq(key, &value),
            2 => TagPredicate::regex(key, &format!("^{value}")).unwrap(),
            3 => TagPredicate::one_of(key, &[&value, "x"]),
            _ => TagPredicate::eq(key, ""),
        });
        let req = ScanRequest {
            tenant: tenant.map(TenantId::new),
            measurement: measurement.map(str::to_owned),
            time: time.map(|(a, b)| T0 + a.min(b)..T0 + a.max(b)),
            predicates: predicate.iter().cloned().collect(),
            columns: columns.map(|c| c.into_iter().map(str::to_owned).collect()),
            presence_only: Vec::new(),
        };
        let mut expected: Vec<Event> = events
            .iter()
            .filter(|e| req.tenant.as_ref().is_none_or(|t| *t == e.tenant))
            .filter(|e| req.measurement.as_ref().is_none_or(|m| *m == e.measurement))
            .filter(|e| req.time_contains(e.timestamp.0))
            .filter(|e| {
                predicate.as_ref().is_none_or(|p| {
                    let value = e.tags.iter().find(|(k, _)| *k == p.key).map_or("", |(_, v)| v.as_str());
                    p.matches(value)
                })
            })
            .map(|e| Event {
                tags: e.tags.iter().filter(|(k, _)| req.wants(k)).cloned().collect(),
                fields: e.fields.iter().filter(|(k, _)| req.wants(k)).cloned().collect(),
                event_id: e.event_id.clone().filter(|_| req.wants("event_id")),
                ..e.clone()
            })
            .collect();
        sort_events(&mut expected);
        prop_assert!(same(&all_events(&engine, &req), &expected));
        prop_assert_eq!(engine.count(&req).unwrap(), expected.len() as u64);
    }
}

#[test]
fn second_open_of_a_directory_fails_with_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = Engine::open(dir.path(), test_options()).unwrap();
    let err = Engine::open(dir.path(), test_options()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
}

#[test]
fn lock_is_released_on_close() {
    let dir = tempfile::tempdir().unwrap();
    Engine::open(dir.path(), test_options())
        .unwrap()
        .close()
        .unwrap();
    Engine::open(dir.path(), test_options()).unwrap();
}

#[test]
fn invalid_event_fails_the_batch_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), test_options()).unwrap();
    common::store(&engine, &[event("acme", T0, "/a", 1.0, None)]);
    let mut bad = event("acme", T0 + 1, "/b", 2.0, None);
    bad.measurement = String::new();
    let err = engine
        .write(batch_of(&[event("acme", T0 + 2, "/c", 3.0, None), bad]))
        .unwrap_err();
    match err {
        Error::InvalidEvent { index, reason } => {
            assert_eq!(index, 1);
            assert_eq!(reason, InvalidEvent::EmptyMeasurement);
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 1);
}

#[test]
fn field_type_conflicts_are_rejected_per_event_and_the_rest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), test_options()).unwrap();
    common::store(&engine, &[event("acme", T0, "/a", 1.0, None)]);
    engine.flush().unwrap();
    let mut conflicting = event("acme", T0 + 5, "/b", 2.0, None);
    conflicting.fields[0].1 = FieldValue::Str("slow".into());
    let mut next_day = conflicting.clone();
    next_day.timestamp = Timestamp(T0 + DAY);
    let other_tenant = Event {
        tenant: TenantId::new("globex"),
        ..conflicting.clone()
    };
    let receipt = engine
        .write(batch_of(&[
            event("acme", T0 + 1, "/c", 3.0, None),
            conflicting,
            next_day,
            other_tenant,
        ]))
        .unwrap();
    assert_eq!(receipt.written, 3);
    assert_eq!(receipt.rejected.len(), 1);
    let (index, reason) = &receipt.rejected[0];
    assert_eq!(*index, 1);
    assert!(
        reason.to_string().contains("response_time_ms") && reason.to_string().contains("float"),
        "{reason}"
    );
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 4);
}

#[test]
fn shard_count_is_fixed_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    Engine::open(dir.path(), test_options())
        .unwrap()
        .close()
        .unwrap();
    let err = Engine::open(
        dir.path(),
        Options {
            shards: Some(3),
            ..test_options()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
    let engine = Engine::open(
        dir.path(),
        Options {
            shards: None,
            ..test_options()
        },
    )
    .unwrap();
    assert_eq!(engine.shard_count(), 2);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::open(
            dir.path(),
            Options {
                sync: meterdb::SyncPolicy::Always,
                ..test_options()
            },
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let id = format!("w{w}-{i}");
                    let e = event(&format!("tenant{w}"), T0 + i, "/x", 1.0, Some(&id));
                    common::store(&engine, &[e]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 200);
}

#[test]
fn writes_queued_together_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        shards: Some(1),
        sync: meterdb::SyncPolicy::Always,
        ..test_options()
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    // Poll each write once: that queues it without waiting, so all 100 are queued while the
    // writer handles the first; group commit must then carry them with a few fsyncs.
    let mut writes: Vec<_> = (0..100)
        .map(|i| Box::pin(engine.write_async(batch_of(&[event("acme", T0 + i, "/x", 1.0, None)]))))
        .collect();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for w in &mut writes {
        let _ = w.as_mut().poll(&mut cx);
    }
    for w in writes {
        assert_eq!(block_on(w).unwrap().written, 1);
    }
    let syncs: u64 = engine.stats().iter().map(|s| s.wal_syncs).sum();
    assert!(
        syncs <= 10,
        "{syncs} fsyncs for 100 queued writes: group commit is not sharing them"
    );
}

#[test]
fn write_async_completes_without_a_blocking_wait() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), test_options()).unwrap();
    let receipt =
        block_on(engine.write_async(batch_of(&[event("acme", T0, "/a", 1.0, None)]))).unwrap();
    assert_eq!(receipt.written, 1);
}

/// Runs a future on the current thread, parking between polls.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn tenants_are_isolated_in_scans() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), test_options()).unwrap();
    let events: Vec<Event> = (0..100)
        .map(|i| {
            event(
                if i % 3 == 0 { "acme" } else { "globex" },
                T0 + i,
                "/a",
                1.0,
                None,
            )
        })
        .collect();
    common::store(&engine, &events);
    engine.flush().unwrap();
    let req = ScanRequest {
        tenant: Some(TenantId::new("acme")),
        ..ScanRequest::default()
    };
    let got = all_events(&engine, &req);
    assert_eq!(got.len(), 34);
    assert!(got.iter().all(|e| e.tenant.as_str() == "acme"));
    let mut per_tenant = BTreeMap::new();
    for e in all_events(&engine, &ScanRequest::default()) {
        *per_tenant.entry(e.tenant.to_string()).or_insert(0) += 1;
    }
    assert_eq!(per_tenant["globex"], 66);
}

/// A field asked for its presence only comes back as which rows hold it: the rows a scan of
/// its values finds, from the buffer and from segments whose blocks hold it on every row, on
/// some rows or on none, with rows cut by time and by tag.
#[test]
fn a_field_asked_for_its_presence_only_reads_as_the_rows_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            shards: Some(1),
            ..test_options()
        },
    )
    .unwrap();
    let part = |from: i64, has: fn(i64) -> bool| -> Vec<Event> {
        (from..from + 200)
            .map(|i| {
                let mut e = event(
                    "acme",
                    T0 + i,
                    if i % 4 == 0 { "/a" } else { "/b" },
                    1.0,
                    None,
                );
                if has(i) {
                    e.fields.push(("extra".into(), FieldValue::I64(i)));
                }
                e
            })
            .collect()
    };
    common::store(&engine, &part(0, |_| true));
    engine.flush().unwrap();
    common::store(&engine, &part(1_000, |_| false));
    engine.flush().unwrap();
    common::store(&engine, &part(2_000, |i| i % 3 == 0));
    engine.flush().unwrap();
    common::store(&engine, &part(3_000, |i| i % 5 != 0));
    let rows = |req: &ScanRequest, presence_only: bool| -> Vec<(i64, bool)> {
        let req = ScanRequest {
            columns: Some(vec!["extra".into(), "endpoint".into()]),
            presence_only: if presence_only {
                vec!["extra".into()]
            } else {
                Vec::new()
            },
            ..req.clone()
        };
        let mut out: Vec<(i64, bool)> = engine
            .scan(&req)
            .unwrap()
            .iter()
            .flat_map(|b| {
                if presence_only {
                    assert!(b.field("extra").is_none(), "values were not asked for");
                }
                (0..b.len()).map(move |r| {
                    let present = match b.presence("extra") {
                        Some(p) => p.present[r],
                        None => b.field("extra").is_some_and(|f| f.value(r).is_some()),
                    };
                    (b.timestamps[r], present)
                })
            })
            .collect();
        out.sort();
        out
    };
    for req in [
        ScanRequest::default(),
        ScanRequest {
            time: Some(T0 + 150..T0 + 3_050),
            ..ScanRequest::default()
        },
        ScanRequest {
            predicates: vec![TagPredicate::eq("endpoint", "/a")],
            ..ScanRequest::default()
        },
    ] {
        let values = rows(&req, false);
        let presence = rows(&req, true);
        assert_eq!(presence, values, "{req:?}");
        assert!(presence.iter().any(|r| r.1) && presence.iter().any(|r| !r.1));
    }
    assert_eq!(
        rows(&ScanRequest::default(), true)
            .iter()
            .filter(|r| r.1)
            .count(),
        200 + 67 + 160
    );
}

// Event ids: stored once.

/// Options whose clock stands one day after `T0`, so that the dedup window covers the
/// tests' events whatever day the tests run.
fn dedup_options() -> Options {
    Options {
        clock: Arc::new(ManualClock::new(Timestamp(T0 + DAY))),
        ..test_options()
    }
}

fn write(engine: &Engine, events: &[Event]) -> meterdb::Receipt {
    let receipt = engine.write(batch_of(events)).unwrap();
    assert!(receipt.rejected.is_empty(), "{:?}", receipt.rejected);
    receipt
}

/// The stored event ids of `tenant`, sorted, with repeats.
fn stored_ids(engine: &Engine, tenant: &str) -> Vec<String> {
    let req = ScanRequest {
        tenant: Some(tenant.into()),
        ..ScanRequest::default()
    };
    let mut ids: Vec<String> = all_events(engine, &req)
        .into_iter()
        .filter_map(|e| e.event_id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn an_event_id_repeated_within_a_batch_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    let receipt = write(
        &engine,
        &[
            event("acme", T0, "/a", 1.0, Some("e1")),
            event("acme", T0 + 1, "/a", 2.0, Some("e1")),
            event("acme", T0 + 2, "/a", 3.0, Some("e2")),
        ],
    );
    assert_eq!((receipt.written, receipt.duplicates), (2, 1));
    assert_eq!(stored_ids(&engine, "acme"), ["e1", "e2"]);
    // The first copy is the one kept.
    let kept = all_events(&engine, &ScanRequest::default());
    assert_eq!(kept[0].timestamp, Timestamp(T0));
}

#[test]
fn a_resent_event_id_is_a_duplicate_in_the_buffer_after_a_flush_and_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let e1 = event("acme", T0, "/a", 1.0, Some("e1"));
    // The retry carries another timestamp (another day, even): the id alone decides.
    let retry = event("acme", T0 + DAY / 2 + 5, "/a", 1.0, Some("e1"));
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    assert_eq!(write(&engine, std::slice::from_ref(&e1)).written, 1);
    let again = write(&engine, std::slice::from_ref(&retry));
    assert_eq!((again.written, again.duplicates), (0, 1), "in the buffer");
    engine.flush().unwrap();
    let again = write(
        &engine,
        &[retry.clone(), event("acme", T0, "/a", 1.0, Some("e2"))],
    );
    assert_eq!((again.written, again.duplicates), (1, 1), "in a segment");
    assert_eq!(
        engine
            .stats()
            .iter()
            .map(|s| s.duplicate_events)
            .sum::<u64>(),
        2
    );
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    let e3 = event("acme", T0 + 3, "/a", 1.0, Some("e3"));
    let again = write(&engine, &[retry.clone(), e1.clone(), e3.clone()]);
    assert_eq!((again.written, again.duplicates), (1, 2), "after a reopen");
    // e3 is in the WAL only: a crash image (nothing flushed at close) replays it.
    let image = common::crash_image(dir.path());
    drop(engine);
    let engine = Engine::open(image.path(), dedup_options()).unwrap();
    let again = write(&engine, &[e3, retry]);
    assert_eq!((again.written, again.duplicates), (0, 2), "after a crash");
    assert_eq!(stored_ids(&engine, "acme"), ["e1", "e2", "e3"]);
}

#[test]
fn every_spelling_of_an_id_is_deduplicated_as_written_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let hex = "f70b62414b1a31d5e3501084b5965048";
    let uuid = "f70b6241-4b1a-31d5-e350-1084b5965048";
    let upper = "F70B62414B1A31D5E3501084B5965048";
    let hex2 = "00000000000000000000000000000001";
    let ev = |t: i64, id: &str| event("acme", T0 + t, "/a", 1.0, Some(id));
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    // A segment whose ids are all hex (stored as bytes), then one of mixed spellings (stored
    // as text).
    assert_eq!(write(&engine, &[ev(0, hex), ev(1, hex2)]).written, 2);
    engine.flush().unwrap();
    assert_eq!(
        write(&engine, &[ev(2, uuid), ev(3, upper), ev(4, "x")]).written,
        3
    );
    engine.flush().unwrap();
    let resent = [
        ev(5, hex),
        ev(6, uuid),
        ev(7, upper),
        ev(8, "x"),
        ev(9, hex2),
    ];
    let again = write(&engine, &resent);
    assert_eq!((again.written, again.duplicates), (0, 5), "in the segments");
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    let again = write(&engine, &resent);
    assert_eq!((again.written, again.duplicates), (0, 5), "after a reopen");
    // The same 16 bytes in another spelling are another id.
    let other_spellings = [
        "f70b62414b1a31d5e3501084b5965048 ",
        "f70b62414b1a31d5e3501084b5965049",
        "00000000-0000-0000-0000-000000000001",
        "F70B6241-4B1A-31D5-E350-1084B5965048",
    ];
    let fresh: Vec<_> = other_spellings
        .iter()
        .enumerate()
        .map(|(i, id)| ev(10 + i as i64, id))
        .collect();
    let again = write(&engine, &fresh);
    assert_eq!((again.written, again.duplicates), (4, 0));
}

#[test]
fn every_spelling_of_an_id_reads_back_from_the_buffer_as_written_and_is_found_there() {
    let dir = tempfile::tempdir().unwrap();
    let spellings = [
        "f70b62414b1a31d5e3501084b5965048",
        "f70b6241-4b1a-31d5-e350-1084b5965048",
        "F70B62414B1A31D5E3501084B5965048",
        "F70B6241-4B1A-31D5-E350-1084B5965048",
        "00000000000000000000000000000000",
        "x",
    ];
    let events: Vec<_> = spellings
        .iter()
        .enumerate()
        .map(|(i, id)| event("acme", T0 + i as i64, "/a", 1.0, Some(id)))
        .collect();
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    assert_eq!(write(&engine, &events).written, spellings.len());
    let mut expected: Vec<String> = spellings.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(
        stored_ids(&engine, "acme"),
        expected,
        "read from the buffer"
    );
    let again = write(&engine, &events);
    assert_eq!(
        (again.written, again.duplicates),
        (0, spellings.len()),
        "found in the buffer"
    );
    engine.flush().unwrap();
    assert_eq!(stored_ids(&engine, "acme"), expected, "read from a segment");
}

#[test]
fn the_same_event_id_in_two_tenants_is_stored_for_both() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    let both = [
        event("acme", T0, "/a", 1.0, Some("e1")),
        event("globex", T0, "/a", 1.0, Some("e1")),
    ];
    assert_eq!(write(&engine, &both).written, 2);
    engine.flush().unwrap();
    let again = write(&engine, &both);
    assert_eq!((again.written, again.duplicates), (0, 2));
    assert_eq!(stored_ids(&engine, "acme"), ["e1"]);
    assert_eq!(stored_ids(&engine, "globex"), ["e1"]);
}

#[test]
fn events_without_an_event_id_are_never_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), dedup_options()).unwrap();
    let e = event("acme", T0, "/a", 1.0, None);
    assert_eq!(write(&engine, &[e.clone(), e.clone()]).written, 2);
    engine.flush().unwrap();
    assert_eq!(write(&engine, &[e]).written, 1);
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 3);
}

#[test]
fn requests_of_one_group_commit_store_a_shared_event_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        shards: Some(1),
        sync: meterdb::SyncPolicy::Always,
        ..dedup_options()
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    // Queued without waiting (see `writes_queued_together_share_one_fsync`), so that most of
    // them share a group with the first copy, whose WAL write is not done when they are seen.
    let mut writes: Vec<_> = (0..50)
        .map(|i| {
            let e = event("acme", T0 + i, "/x", 1.0, Some("same"));
            Box::pin(engine.write_async(batch_of(&[e])))
        })
        .collect();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for w in &mut writes {
        let _ = w.as_mut().poll(&mut cx);
    }
    let (mut written, mut duplicates) = (0, 0);
    for w in writes {
        let r = block_on(w).unwrap();
        written += r.written;
        duplicates += r.duplicates;
    }
    assert_eq!((written, duplicates), (1, 49));
    assert_eq!(stored_ids(&engine, "acme"), ["same"]);
}

#[test]
fn an_event_id_is_forgotten_once_its_event_is_older_than_the_dedup_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(T0 + DAY)));
    let options = Options {
        clock: clock.clone(),
        dedup_window: std::time::Duration::from_secs(2 * 86_400),
        ..test_options()
    };
    let engine = Engine::open(dir.path(), options.clone()).unwrap();
    let e = event("acme", T0, "/a", 1.0, Some("old"));
    assert_eq!(write(&engine, std::slice::from_ref(&e)).written, 1);
    engine.flush().unwrap();
    assert_eq!(write(&engine, std::slice::from_ref(&e)).duplicates, 1);
    engine.close().unwrap();
    // Three days after the event: outside a two-day window.
    clock.advance(2 * DAY);
    let engine = Engine::open(dir.path(), options).unwrap();
    let again = write(&engine, std::slice::from_ref(&e));
    assert_eq!((again.written, again.duplicates), (1, 0));
}

/// One step of a random stream: a write of (tenant, id, day) triples (`None`: no id), a
/// flush, or a close and reopen.
#[derive(Debug, Clone)]
enum Step {
    Write(Vec<(usize, Option<u8>, i64)>),
    Flush,
    Reopen,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    // Ids come from a pool of 64 per tenant: over a stream of ~150 events about a third
    // repeat an earlier id; one event in five has no id.
    let item = (0..3usize, prop::option::weighted(0.8, 0..64u8), 0..3 * DAY);
    prop_oneof![
        6 => prop::collection::vec(item, 1..20).prop_map(Step::Write),
        1 => Just(Step::Flush),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_stream_with_resent_ids_stores_each_tenant_id_once(
        steps in prop::collection::vec(step_strategy(), 1..20)
    ) {
        const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Some(Engine::open(dir.path(), dedup_options()).unwrap());
        let mut distinct: HashSet<(usize, u8)> = HashSet::new();
        let mut without_id = 0u64;
        for step in &steps {
            let e = engine.as_ref().unwrap();
            match step {
                Step::Write(items) => {
                    let events: Vec<Event> = items
                        .iter()
                        .map(|&(t, id, dt)| {
                            let id = id.map(|i| format!("id-{i}"));
                            event(TENANTS[t], T0 + dt, "/x", 1.0, id.as_deref())
                        })
                        .collect();
                    let mut new = 0;
                    for &(t, id, _) in items {
                        match id {
                            Some(i) => new += usize::from(distinct.insert((t, i))),
                            None => {
                                new += 1;
                                without_id += 1;
                            }
                        }
                    }
                    let receipt = write(e, &events);
                    prop_assert_eq!(receipt.written, new);
                    prop_assert_eq!(receipt.duplicates, items.len() - new);
                }
                Step::Flush => e.flush().unwrap(),
                Step::Reopen => {
                    engine.take().unwrap().close().unwrap();
                    engine = Some(Engine::open(dir.path(), dedup_options()).unwrap());
                }
            }
        }
        let e = engine.take().unwrap();
        let expected = distinct.len() as u64 + without_id;
        prop_assert_eq!(e.count(&ScanRequest::default()).unwrap(), expected);
        e.close().unwrap();
        let e = Engine::open(dir.path(), dedup_options()).unwrap();
        prop_assert_eq!(e.count(&ScanRequest::default()).unwrap(), expected);
    }
}

// The ingest window: events dated before now minus the raw-event retention, or after now plus
// `max_future`, are refused one by one and never reach a shard. Both bounds are inclusive.

/// 2026-11-28T10:00:00Z, where the window tests' clock stands.
const NOW: i64 = 1_795_860_000_000_000_000;

/// Two shards, the default window (30 days back, 24 h ahead) around a clock fixed at `NOW`.
fn window_options() -> Options {
    Options {
        shards: Some(2),
        sync: meterdb::SyncPolicy::None,
        clock: Arc::new(ManualClock::new(Timestamp(NOW))),
        ..Options::default()
    }
}

fn too_old(ts: i64) -> InvalidEvent {
    InvalidEvent::TooOld {
        time: Timestamp(ts),
        oldest: Timestamp(NOW - 30 * DAY),
        retention: std::time::Duration::from_secs(30 * 86_400),
    }
}

fn too_far_ahead(ts: i64) -> InvalidEvent {
    InvalidEvent::TooFarAhead {
        time: Timestamp(ts),
        latest: Timestamp(NOW + DAY),
        max_future: std::time::Duration::from_secs(24 * 3600),
    }
}

#[test]
fn events_at_the_bounds_are_stored_and_one_nanosecond_beyond_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), window_options()).unwrap();
    let events = [
        event("acme", NOW - 30 * DAY, "/oldest", 1.0, None),
        event("acme", NOW - 30 * DAY - 1, "/too-old", 2.0, None),
        event("acme", NOW + DAY, "/latest", 3.0, None),
        event("acme", NOW + DAY + 1, "/too-far-ahead", 4.0, None),
    ];
    let receipt = engine.write(batch_of(&events)).unwrap();
    assert_eq!(receipt.written, 2);
    assert_eq!(
        receipt.rejected,
        vec![
            (1, too_old(NOW - 30 * DAY - 1)),
            (3, too_far_ahead(NOW + DAY + 1))
        ]
    );
    let mut expected = vec![events[0].clone(), events[2].clone()];
    sort_events(&mut expected);
    assert_eq!(all_events(&engine, &ScanRequest::default()), expected);
    // The reasons name the time, the bound and the setting.
    let old = receipt.rejected[0].1.to_string();
    assert!(
        old.contains("raw-event retention (30 days)")
            && old.contains("2026-10-29T09:59:59.999999999Z is before 2026-10-29T10:00:00Z")
            && old.contains("USAGE_TRACKING_EVENTS_RETENTION_DAYS"),
        "{old}"
    );
    let ahead = receipt.rejected[1].1.to_string();
    assert!(
        ahead.contains("more than 24h ahead of the server clock")
            && ahead.contains("2026-11-29T10:00:00.000000001Z is after 2026-11-29T10:00:00Z")
            && ahead.contains("METERDB_MAX_FUTURE"),
        "{ahead}"
    );
}

#[test]
fn the_window_moves_with_the_clock_and_follows_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOW)));
    let options = Options {
        clock: clock.clone(),
        raw_retention: std::time::Duration::from_secs(2 * 86_400),
        max_future: std::time::Duration::from_secs(60),
        ..window_options()
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    let e = event("acme", NOW - DAY, "/a", 1.0, None);
    let soon = event("acme", NOW + 120_000_000_000, "/b", 1.0, None);
    let r = engine.write(batch_of(&[e.clone(), soon.clone()])).unwrap();
    assert_eq!(r.written, 1);
    assert_eq!(r.rejected.len(), 1);
    assert!(matches!(
        r.rejected[0],
        (1, InvalidEvent::TooFarAhead { .. })
    ));
    clock.advance(2 * DAY);
    let r = engine.write(batch_of(&[e, soon])).unwrap();
    assert_eq!(r.written, 1, "two minutes later is now in the past");
    assert!(matches!(r.rejected[..], [(0, InvalidEvent::TooOld { .. })]));
}

#[test]
fn a_mixed_batch_over_two_shards_lists_refusals_by_the_callers_index_and_stores_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), window_options()).unwrap();
    let tenants = ["acme", "globex", "initech", "umbrella", "t0001"];
    let a = tenants.iter().find(|t| engine.shard_of(t) == 0).unwrap();
    let b = tenants.iter().find(|t| engine.shard_of(t) == 1).unwrap();
    // `b` stores `response_time_ms` as a float that day, so that a string is a conflict the
    // shard finds: its index must merge with the window's.
    let first = engine
        .write(batch_of(&[event(b, NOW - DAY, "/x", 1.0, None)]))
        .unwrap();
    assert_eq!((first.written, first.rejected.len()), (1, 0));
    let mut conflict = event(b, NOW - DAY + 5, "/conflict", 1.0, None);
    conflict.fields[0].1 = FieldValue::Str("slow".into());
    let events = [
        event(a, NOW - DAY, "/a0", 1.0, Some("a0")),
        event(b, NOW - 40 * DAY, "/b-old", 2.0, Some("b-old")),
        event(a, NOW + 2 * DAY, "/a-ahead", 3.0, Some("a-ahead")),
        event(b, NOW - DAY + 1, "/b1", 4.0, None),
        event(a, NOW - 31 * DAY, "/a-old", 5.0, None),
        conflict,
        event(b, NOW, "/b2", 6.0, Some("b2")),
        event(a, NOW + 1, "/a1", 7.0, None),
    ];
    let receipt = engine.write(batch_of(&events)).unwrap();
    let indices: Vec<usize> = receipt.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, [1, 2, 4, 5], "{:?}", receipt.rejected);
    assert_eq!(receipt.rejected[0].1, too_old(NOW - 40 * DAY));
    assert_eq!(receipt.rejected[1].1, too_far_ahead(NOW + 2 * DAY));
    assert_eq!(receipt.rejected[2].1, too_old(NOW - 31 * DAY));
    assert!(matches!(
        receipt.rejected[3].1,
        InvalidEvent::FieldTypeConflict { .. }
    ));
    assert_eq!(receipt.written, 4);
    let mut expected: Vec<Event> = [0, 3, 6, 7].iter().map(|&i| events[i].clone()).collect();
    expected.push(event(b, NOW - DAY, "/x", 1.0, None));
    sort_events(&mut expected);
    assert_eq!(all_events(&engine, &ScanRequest::default()), expected);
}

#[test]
fn a_batch_entirely_outside_the_window_stores_nothing_and_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), window_options()).unwrap();
    let receipt = engine
        .write(batch_of(&[
            event("acme", T0 - 400 * DAY, "/a", 1.0, Some("x")),
            event("globex", NOW + 3 * DAY, "/b", 1.0, Some("y")),
        ]))
        .unwrap();
    assert_eq!(receipt.written, 0);
    assert_eq!(receipt.duplicates, 0);
    assert_eq!(
        receipt.rejected,
        vec![
            (0, too_old(T0 - 400 * DAY)),
            (1, too_far_ahead(NOW + 3 * DAY))
        ]
    );
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 0);
}

#[test]
fn a_refused_events_id_is_not_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), window_options()).unwrap();
    let old = event("acme", NOW - 60 * DAY, "/a", 1.0, Some("late"));
    let r = engine.write(batch_of(std::slice::from_ref(&old))).unwrap();
    assert_eq!((r.written, r.rejected.len()), (0, 1));
    // Sent again with a timestamp inside the window: stored, not a duplicate.
    let fixed = event("acme", NOW - DAY, "/a", 1.0, Some("late"));
    let r = engine
        .write(batch_of(std::slice::from_ref(&fixed)))
        .unwrap();
    assert_eq!((r.written, r.duplicates, r.rejected.len()), (1, 0, 0));
    // Within one batch too: a refused copy does not make the valid one a duplicate.
    let r = engine
        .write(batch_of(&[
            event("acme", NOW + 5 * DAY, "/b", 1.0, Some("twice")),
            event("acme", NOW, "/b", 1.0, Some("twice")),
        ]))
        .unwrap();
    assert_eq!((r.written, r.duplicates), (1, 0));
    assert!(matches!(
        r.rejected[..],
        [(0, InvalidEvent::TooFarAhead { .. })]
    ));
    assert_eq!(stored_ids(&engine, "acme"), ["late", "twice"]);
}
