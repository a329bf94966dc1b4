use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::model::{Event, FieldValue, TenantId, Timestamp};

fn event_strategy() -> impl Strategy<Value = Event> {
    let field = prop_oneof![
        any::<f64>().prop_map(FieldValue::F64),
        any::<i64>().prop_map(FieldValue::I64),
        any::<u64>().prop_map(FieldValue::U64),
        any::<bool>().prop_map(FieldValue::Bool),
        ".{0,12}".prop_map(FieldValue::Str),
    ];
    (
        "[a-c]{1,3}",
        "[xyz]{1,4}",
        prop::collection::vec(("[a-e]{1,3}", ".{0,8}"), 0..4),
        prop::collection::vec(("[f-j]{1,3}", field), 0..4),
        any::<i64>(),
        prop::option::of("[0-9a-f]{1,32}"),
    )
        .prop_map(|(tenant, measurement, tags, fields, ts, event_id)| Event {
            tenant: TenantId::new(&tenant),
            measurement,
            tags,
            fields,
            timestamp: Timestamp(ts),
            event_id,
        })
}

/// Compares events treating NaN as equal to itself (the bits are kept exactly).
fn same(a: &[Event], b: &[Event]) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #[test]
    fn encode_decode_round_trips(events in prop::collection::vec(event_strategy(), 0..20)) {
        let mut batch = WriteBatch::new();
        for e in &events {
            batch.push(e);
        }
        prop_assert!(same(&batch.to_events(), &events));
        let mut bytes = Vec::new();
        batch.encode_into(&mut bytes);
        prop_assert_eq!(bytes.len(), batch.encoded_len());
        let decoded = WriteBatch::decode(&bytes, Path::new("x"), 0).unwrap();
        prop_assert!(same(&decoded.to_events(), &events));
    }

    #[test]
    fn decode_never_panics_on_damaged_bytes(
        events in prop::collection::vec(event_strategy(), 1..5),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut batch = WriteBatch::new();
        for e in &events {
            batch.push(e);
        }
        let mut bytes = Vec::new();
        batch.encode_into(&mut bytes);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(b) = WriteBatch::decode(&bytes, Path::new("x"), 0) {
            let _ = b.to_events();
            let _ = b.validate();
        }
        let end = cut.index(bytes.len());
        let _ = WriteBatch::decode(&bytes[..end], Path::new("x"), 0);
    }
}

fn one(f: impl FnOnce(&mut WriteBatch)) -> Result<(), InvalidEvent> {
    let mut b = WriteBatch::new();
    f(&mut b);
    b.validate().map_err(|(_, r)| r)
}

#[test]
fn validation_names_the_problem() {
    let ts = Timestamp(0);
    assert_eq!(
        one(|b| {
            b.add("", "m", ts).field("v", FieldValueRef::I64(1));
        }),
        Err(InvalidEvent::MissingTenant)
    );
    assert_eq!(
        one(|b| {
            b.add("t", "", ts).field("v", FieldValueRef::I64(1));
        }),
        Err(InvalidEvent::EmptyMeasurement)
    );
    assert_eq!(
        one(|b| {
            b.add("t", "m", ts);
        }),
        Err(InvalidEvent::NoFields)
    );
    assert_eq!(
        one(|b| {
            b.add("t", "m", Timestamp(i64::MIN))
                .field("v", FieldValueRef::I64(1));
        }),
        Err(InvalidEvent::TimestampOutOfRange(i64::MIN))
    );
    assert_eq!(
        one(|b| {
            b.add("t", "m", ts)
                .tag("a", "1")
                .tag("a", "2")
                .field("v", FieldValueRef::I64(1));
        }),
        Err(InvalidEvent::DuplicateTag("a".into()))
    );
    assert!(matches!(
        one(|b| {
            b.add("t", "m", ts)
                .tag("tenant", "x")
                .field("v", FieldValueRef::I64(1));
        }),
        Err(InvalidEvent::ReservedKey { .. })
    ));
    assert_eq!(
        one(|b| {
            b.add("t", "m", ts).event_id("abc");
        }),
        Ok(())
    );
}

#[test]
fn repeated_names_share_arena_bytes() {
    let mut b = WriteBatch::new();
    for i in 0..100 {
        b.add("tenant-a", "api_calls", Timestamp(i))
            .tag("endpoint", "/x")
            .field("response_time_ms", FieldValueRef::F64(1.0));
    }
    // tenant, measurement and keys are stored once; tag values once per event.
    assert!(b.arena.len() < "tenant-a".len() + "api_calls".len() + 30 + 100 * 2);
    assert_eq!(b.event(99).unwrap().tags().next(), Some(("endpoint", "/x")));
}
