//! Feeds arbitrary bytes to the manifest reader, as a shard's open does with its whole
//! `MANIFEST` file: decoding must return an error for damaged input, never panic, hang or
//! allocate from a length field without the bytes to back it (run with `-malloc_limit_mb`).
//! Each input is tried twice: as is (the checksum stops almost every mutation at the door)
//! and resealed with a valid checksum, as a version-2 and a version-1 file, so that the
//! mutations reach the entry decoder. What decodes must encode (as version 2) and decode to
//! the same manifest.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meterdb::codec::crc32c;
use meterdb::manifest::Manifest;

#[global_allocator]
static ALLOCATOR: meterdb_fuzz::CappedAllocator = meterdb_fuzz::CappedAllocator;

fuzz_target!(|data: &[u8]| {
    check(data);
    for version in [2u16, 1] {
        // magic, version, then the fuzzer's bytes, then their checksum.
        let mut file = b"MTRMANIF".to_vec();
        file.extend_from_slice(&version.to_le_bytes());
        file.extend_from_slice(data);
        let crc = crc32c(&file);
        file.extend_from_slice(&crc.to_le_bytes());
        check(&file);
    }
});

fn check(bytes: &[u8]) {
    let Ok(manifest) = Manifest::decode(bytes, Path::new("MANIFEST")) else {
        return;
    };
    assert!(manifest.segments.windows(2).all(|w| w[0].id < w[1].id));
    assert!(manifest.rollups.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        manifest
            .segments
            .iter()
            .all(|e| e.id.0 < manifest.next_segment_id)
    );
    assert!(
        manifest
            .rollups
            .iter()
            .all(|e| e.id < manifest.next_segment_id)
    );
    let encoded = manifest.encode();
    let again =
        Manifest::decode(&encoded, Path::new("again")).expect("an encoded manifest decodes");
    assert_eq!(again, manifest);
}
