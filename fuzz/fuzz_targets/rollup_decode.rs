//! Feeds arbitrary bytes to the rollup file reader: decoding must return an error for damaged
//! input, never panic, hang or allocate without bound. Each input is tried twice: as a whole
//! file (the checksum stops almost every mutation at the door) and as the raw body of a file
//! with a valid header, compression and checksum, so that the mutations reach the bucket
//! decoder.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meterdb::rollup::file::{RollupFile, seal_body_for_fuzzing};

#[global_allocator]
static ALLOCATOR: meterdb_fuzz::CappedAllocator = meterdb_fuzz::CappedAllocator;

fuzz_target!(|data: &[u8]| {
    let _ = RollupFile::decode(data, Path::new("fuzz.rollup"));
    if let Ok(file) = RollupFile::decode(&seal_body_for_fuzzing(data), Path::new("fuzz.rollup")) {
        // What decodes must encode and decode to the same thing (compared as bytes, since a
        // float bucket may hold a NaN).
        let bytes = file.encode();
        let again =
            RollupFile::decode(&bytes, Path::new("again.rollup")).expect("re-encoded file decodes");
        assert_eq!(again.encode(), bytes);
    }
});
