//! The engine's public API: round trips through the buffer, segments and a reopen; the lock;
//! validation and schema errors; scans with predicates against a brute-force filter.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use common::{all_events, event, sort_events, test_options};
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
