//! Feeds arbitrary bytes to the segment reader: opening, scanning (with and without a tag
//! predicate and a time range), counting and verifying must return errors for damaged input,
//! never panic, hang or allocate without bound. Each input is tried twice: as is (the
//! checksums stop almost every mutation at the door) and resealed, with every checksum
//! recomputed, so that the mutations reach the footer and column decoders.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use meterdb::fs::FileBytes;
use meterdb::scan::{ScanRequest, TagPredicate};
use meterdb::segment::{Segment, reseal_for_fuzzing};

#[global_allocator]
static ALLOCATOR: meterdb_fuzz::CappedAllocator = meterdb_fuzz::CappedAllocator;

fuzz_target!(|data: &[u8]| {
    exercise(data.to_vec());
    exercise(reseal_for_fuzzing(data));
});

fn exercise(data: Vec<u8>) {
    let Ok(segment) = Segment::from_bytes(FileBytes::Owned(data), PathBuf::from("fuzz.seg")) else {
        return;
    };
    let _ = segment.verify();
    let _ = segment.scan(&ScanRequest::default());
    let _ = segment.count(&ScanRequest::default());
    let Some(table) = segment.tables().next() else {
        return;
    };
    let narrow = ScanRequest {
        tenant: Some(table.tenant.clone()),
        time: Some(
            table.min_time
                ..table
                    .min_time
                    .saturating_add(1 + table.max_time.saturating_sub(table.min_time) / 2),
        ),
        predicates: table
            .tag_keys
            .iter()
            .map(|k| TagPredicate::not_eq(k, "x"))
            .collect(),
        columns: Some(
            std::iter::once("event_id".to_owned())
                .chain(table.fields.iter().map(|(k, _)| k.clone()))
                .collect(),
        ),
        // The first field's presence only: the path a `count` takes through the blocks.
        presence_only: table
            .fields
            .iter()
            .take(1)
            .map(|(k, _)| k.clone())
            .collect(),
        ..ScanRequest::default()
    };
    let _ = segment.scan(&narrow);
    let _ = segment.count(&narrow);
}
