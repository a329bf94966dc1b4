//! Replays arbitrary bytes as one WAL file through `meterdb::wal::replay_bytes`, the function
//! file-based recovery runs for every file, and checks what it promises: no panic, every
//! visited record is exactly the bytes of a well-formed frame at the reported offset, a torn
//! tail runs to the end of the input, and replaying the input cut at the torn tail yields the
//! same records with no tail left.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meterdb::wal::{encode_frame, replay_bytes};

#[global_allocator]
static ALLOCATOR: meterdb_fuzz::CappedAllocator = meterdb_fuzz::CappedAllocator;

/// A record as replay hands it over: sequence number, payload, frame offset.
type Record = (u64, Vec<u8>, u64);

fn replay(bytes: &[u8]) -> (Vec<Record>, meterdb::wal::FileReplay) {
    let mut records = Vec::new();
    let file = replay_bytes(
        bytes,
        Path::new("fuzz.wal"),
        &mut |seq, payload, _, offset| {
            records.push((seq.0, payload.to_vec(), offset));
            Ok(())
        },
    )
    .expect("the visitor never fails");
    (records, file)
}

fuzz_target!(|bytes: &[u8]| {
    let (records, file) = replay(bytes);
    assert_eq!(file.records, records.len() as u64);

    let mut previous_end = 0;
    for (seq, payload, offset) in &records {
        let mut frame = Vec::new();
        encode_frame(&mut frame, meterdb::SeqNo(*seq), payload);
        let start = usize::try_from(*offset).expect("offset fits in usize");
        assert!(start >= previous_end, "records overlap or go backwards");
        let end = start + frame.len();
        assert_eq!(
            bytes.get(start..end),
            Some(frame.as_slice()),
            "visited a record not in the input"
        );
        previous_end = end;
    }

    if let Some(torn) = file.torn_tail {
        assert_eq!(torn.offset + torn.len, bytes.len() as u64);
        let cut = usize::try_from(torn.offset).expect("offset fits in usize");
        let (again, repaired) = replay(&bytes[..cut]);
        assert_eq!(again, records);
        assert_eq!(repaired.torn_tail, None);
    }
});
