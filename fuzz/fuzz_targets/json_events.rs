//! Feeds arbitrary bytes to `meterdb::server::events::decode`, the function
//! `POST /api/v1/events` turns every request body into events with, and checks what it
//! promises: no panic or stack overflow (however deeply the JSON nests), either one
//! refusal of the whole body or one outcome per array element (an event, or a refusal naming
//! the element's 1-based position), every event it accepts passes the engine's rules, and
//! every event is in the part its tenant routes to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterdb::Timestamp;
use meterdb::server::events::decode;

#[global_allocator]
static ALLOCATOR: meterdb_fuzz::CappedAllocator = meterdb_fuzz::CappedAllocator;

fuzz_target!(|body: &[u8]| {
    let now = Timestamp(1_793_491_200_123_456_789);
    let route = |tenant: &str| tenant.len() % 3;
    for default_tenant in [None, Some("fuzz")] {
        let Ok((parts, numbers, rejected)) = decode(body, default_tenant, now, 2, route) else {
            continue;
        };
        assert_eq!(parts.len(), 2);
        for (i, part) in parts.iter().enumerate() {
            assert!(
                part.iter().all(|e| route(e.tenant).min(1) == i),
                "an event in another tenant's part"
            );
            assert!(
                part.validate().is_ok(),
                "an accepted event breaks the engine's rules"
            );
        }
        let elements = serde_json::from_slice::<Vec<serde_json::Value>>(body)
            .expect("a body decode accepts is a JSON array")
            .len();
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), numbers.len());
        assert_eq!(numbers.len() + rejected.len(), elements);
        let mut positions = numbers.clone();
        positions.extend(rejected.iter().map(|r| r.line));
        positions.sort_unstable();
        assert!(
            positions.iter().copied().eq(1..=elements),
            "positions {positions:?}"
        );
        if default_tenant.is_some() {
            assert!(
                rejected.iter().all(|r| !r.error.starts_with("no tenant")),
                "refused for want of a tenant despite the default"
            );
        }
    }
});
