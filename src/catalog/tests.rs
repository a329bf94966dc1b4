//! The catalog over buffers, segments, both, and after a reopen: the same answer every time.

use super::*;
use crate::ingest::lineproto::{LineOptions, Precision, append_to_batch};
use crate::model::{Timestamp, WriteBatch};
use crate::{Engine, Options};

const DAY: i64 = 86_400_000_000_000;
const T0: i64 = 1_793_491_200_000_000_000;

/// Two tenants, two measurements, two days; `region` missing on one line, `event_id` on
/// api_calls only.
fn lines(day: i64) -> String {
    let t = T0 + day * DAY;
    format!(
        "api_calls,tenant=acme,endpoint=/a,region=eu response_time_ms=1.5,status=200i,event_id=\"e{day}1\" {t}\n\
         api_calls,tenant=globex,endpoint=/b ok=true {}\n\
         storage,tenant=acme,operation=write size_bytes=10u,note=\"x\" {}\n",
        t + 1,
        t + 2
    )
}

fn write(engine: &Engine, body: &str) {
    let mut batch = WriteBatch::new();
    let opts = LineOptions {
        precision: Precision::Nanoseconds,
        default_tenant: None,
        now: Timestamp(0),
    };
    let errors = append_to_batch(body.as_bytes(), &opts, &mut batch);
    assert!(errors.is_empty(), "{errors:?}");
    let receipt = engine.write(batch).unwrap();
    assert!(receipt.rejected.is_empty());
}

fn all_values() -> CatalogRequest {
    CatalogRequest {
        tag_values: Some(TagOp::Regex(regex::Regex::new("").unwrap())),
        ..CatalogRequest::default()
    }
}

fn values(c: &Catalog, m: &str, key: &str) -> Vec<String> {
    c.measurements[m].tags[key].iter().cloned().collect()
}

fn check_full(c: &Catalog) {
    assert_eq!(
        c.measurements.keys().collect::<Vec<_>>(),
        ["api_calls", "storage"]
    );
    let api = &c.measurements["api_calls"];
    assert_eq!(
        api.tags.keys().collect::<Vec<_>>(),
        ["endpoint", "region", "tenant"]
    );
    assert_eq!(values(c, "api_calls", "tenant"), ["acme", "globex"]);
    assert_eq!(values(c, "api_calls", "endpoint"), ["/a", "/b"]);
    assert_eq!(values(c, "api_calls", "region"), ["eu"]);
    let fields: Vec<_> = api
        .fields
        .iter()
        .map(|(k, t)| (k.as_str(), t.clone()))
        .collect();
    assert_eq!(
        fields,
        [
            ("event_id", vec![FieldType::String]),
            ("ok", vec![FieldType::Boolean]),
            ("response_time_ms", vec![FieldType::Float]),
            ("status", vec![FieldType::Integer]),
        ]
    );
    let storage = &c.measurements["storage"];
    assert_eq!(values(c, "storage", "tenant"), ["acme"]);
    assert!(!storage.fields.contains_key(EVENT_ID_FIELD));
    assert_eq!(storage.fields["size_bytes"], [FieldType::Unsigned]);
    assert_eq!(storage.fields["note"], [FieldType::String]);
}

fn check_filters(engine: &Engine) {
    let acme = engine
        .catalog(&CatalogRequest {
            tenant: Some(TenantId::new("acme")),
            ..all_values()
        })
        .unwrap();
    assert_eq!(values(&acme, "api_calls", "tenant"), ["acme"]);
    assert_eq!(values(&acme, "api_calls", "endpoint"), ["/a"]);
    assert!(!acme.measurements["api_calls"].fields.contains_key("ok"));

    let globex = engine
        .catalog(&CatalogRequest {
            tenant: Some(TenantId::new("globex")),
            ..CatalogRequest::default()
        })
        .unwrap();
    assert_eq!(
        globex.measurements.keys().collect::<Vec<_>>(),
        ["api_calls"]
    );
    assert!(globex.measurements["api_calls"].tags["endpoint"].is_empty());

    let only_storage = engine
        .catalog(&CatalogRequest {
            measurement: Some(TagOp::Eq("storage".into())),
            tag_values: Some(TagOp::Eq("operation".into())),
            ..CatalogRequest::default()
        })
        .unwrap();
    assert_eq!(
        only_storage.measurements.keys().collect::<Vec<_>>(),
        ["storage"]
    );
    assert_eq!(values(&only_storage, "storage", "operation"), ["write"]);
    assert!(only_storage.measurements["storage"].tags["tenant"].is_empty());
}

#[test]
fn catalog_from_buffer_segments_both_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::any_time()).unwrap();
    assert!(
        engine
            .catalog(&all_values())
            .unwrap()
            .measurements
            .is_empty()
    );

    // Buffer only.
    write(&engine, &lines(0));
    write(&engine, &lines(1));
    let buffered = engine.catalog(&all_values()).unwrap();
    check_full(&buffered);
    check_filters(&engine);

    // Segments only.
    engine.flush().unwrap();
    assert!(engine.stats().iter().all(|s| s.buffered_events == 0));
    assert_eq!(engine.catalog(&all_values()).unwrap(), buffered);
    check_filters(&engine);

    // Both: a new day in the buffer adds nothing new but must not duplicate.
    write(&engine, &lines(2));
    assert_eq!(engine.catalog(&all_values()).unwrap(), buffered);
    check_filters(&engine);
    engine.close().unwrap();

    // After reopen (everything in segments again).
    let engine = Engine::open(dir.path(), Options::any_time()).unwrap();
    assert_eq!(engine.catalog(&all_values()).unwrap(), buffered);
    check_filters(&engine);
}

#[test]
fn a_field_with_two_types_lists_both() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::any_time()).unwrap();
    // One type per tenant and day: another tenant may store another type.
    write(
        &engine,
        &format!("m,tenant=a v=1i {T0}\nm,tenant=b v=1.5 {T0}\n"),
    );
    engine.flush().unwrap();
    let c = engine.catalog(&CatalogRequest::default()).unwrap();
    let mut types = c.measurements["m"].fields["v"].clone();
    types.sort_by_key(|t| t.code());
    assert_eq!(types, [FieldType::Float, FieldType::Integer]);
}
