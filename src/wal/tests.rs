//! Tests of the WAL: round trips, the byte layout, and replay of torn, damaged and foreign
//! files (every damaged case checks both the report and that the good records still read).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests index into buffers they built themselves"
)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::codec::crc32c;
use crate::error::CorruptionKind;
use crate::fs::StdFs;

type Visited = Vec<(SeqNo, Vec<u8>, PathBuf, u64)>;

/// A payload that differs per sequence number, empty for every 13th.
fn payload(seq: u64) -> Vec<u8> {
    let len = (seq % 13) as usize * 5;
    (0..len)
        .map(|i| (seq as u8).wrapping_add(i as u8))
        .collect()
}

/// Writes a WAL file holding `seqs`, in groups of three frames per write; returns each frame's
/// offset.
fn write_wal(dir: &Path, file_no: u64, seqs: Range<u64>) -> Vec<u64> {
    let mut writer = WalWriter::create(&StdFs, dir, file_no).unwrap();
    let mut offsets = Vec::new();
    let seqs: Vec<u64> = seqs.collect();
    for group in seqs.chunks(3) {
        let mut frames = Vec::new();
        for &seq in group {
            offsets.push(writer.len() + frames.len() as u64);
            encode_frame(&mut frames, SeqNo(seq), &payload(seq));
        }
        writer.write(&frames).unwrap();
        writer.sync().unwrap();
    }
    offsets
}

fn replay_all(dir: &Path) -> (Visited, ReplayReport) {
    let mut visited = Vec::new();
    let report = replay(&StdFs, dir, &mut |seq, payload, path, offset| {
        visited.push((seq, payload.to_vec(), path.to_path_buf(), offset));
        Ok(())
    })
    .unwrap();
    (visited, report)
}

fn seqs_of(visited: &Visited) -> Vec<u64> {
    visited.iter().map(|(seq, ..)| seq.0).collect()
}

fn read(path: &Path) -> Vec<u8> {
    StdFs.read(path).unwrap()
}

fn overwrite(path: &Path, bytes: &[u8]) {
    let mut file = StdFs.create(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_data().unwrap();
}

fn wal_bytes(seqs: Range<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_file_header(&mut bytes);
    for seq in seqs {
        encode_frame(&mut bytes, SeqNo(seq), &payload(seq));
    }
    bytes
}

fn replay_in_memory(bytes: &[u8]) -> (Vec<(u64, Vec<u8>, u64)>, FileReplay) {
    let mut visited = Vec::new();
    let file = replay_bytes(
        bytes,
        Path::new("mem.wal"),
        &mut |seq, payload, _, offset| {
            visited.push((seq.0, payload.to_vec(), offset));
            Ok(())
        },
    )
    .unwrap();
    (visited, file)
}

#[test]
fn file_names_round_trip_and_other_names_are_ignored() {
    assert_eq!(file_name(7), "000000000007.wal");
    for file_no in [0, 1, 999_999_999_999, 1_000_000_000_000, u64::MAX] {
        assert_eq!(parse_file_name(&file_name(file_no)), Some(file_no));
    }
    for name in [
        "1.wal",
        "0000000000001.wal",
        "000000000001.wal.tmp",
        "00000000000a.wal",
        "+00000000001.wal",
        "000000000001.log",
        ".wal",
    ] {
        assert_eq!(parse_file_name(name), None, "{name}");
    }

    let dir = tempfile::tempdir().unwrap();
    for name in ["000000000010.wal", "1.wal", "000000000002.wal", "notes.txt"] {
        overwrite(&dir.path().join(name), b"");
    }
    let numbers: Vec<u64> = list_files(&StdFs, dir.path())
        .unwrap()
        .into_iter()
        .map(|(file_no, _)| file_no)
        .collect();
    assert_eq!(numbers, [2, 10]);
}

#[test]
fn frame_and_header_bytes_match_the_documented_layout() {
    let mut header = Vec::new();
    encode_file_header(&mut header);
    let mut expected = b"METERWAL".to_vec();
    expected.extend_from_slice(&[0x01, 0x00]);
    let crc = crc32c(&expected);
    expected.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(header, expected);
    assert_eq!(HEADER_LEN, 14);

    let mut frame = Vec::new();
    encode_frame(&mut frame, SeqNo(0x0102_0304_0506_0708), b"hi");
    let covered = [2, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, b'h', b'i'];
    let mut expected = vec![0xF5, b'W', b'R', 0x0A];
    expected.extend_from_slice(&crc32c(&covered).to_le_bytes());
    expected.extend_from_slice(&covered);
    assert_eq!(frame, expected);
    assert_eq!(FRAME_HEADER_LEN, 20);
}

#[test]
fn oversized_payloads_are_refused_before_encoding() {
    assert_eq!(check_record_len(MAX_RECORD_LEN), Ok(()));
    assert_eq!(
        check_record_len(MAX_RECORD_LEN + 1),
        Err(RecordTooLarge {
            len: MAX_RECORD_LEN + 1
        })
    );
}

#[test]
fn replay_of_empty_or_missing_dir_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (visited, report) = replay_all(dir.path());
    assert!(visited.is_empty());
    assert_eq!(report.records, 0);
    assert_eq!(report.last_seq, None);

    let (visited, report) = replay_all(&dir.path().join("missing"));
    assert!(visited.is_empty());
    assert!(report.truncated.is_empty() && report.corruptions.is_empty());
    assert_eq!(
        remove_files_below(&StdFs, &dir.path().join("missing"), 9).unwrap(),
        0
    );
}

#[test]
fn replay_round_trips_many_records_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for file_no in 1..=4 {
        let seqs = (file_no - 1) * 100..file_no * 100;
        let offsets = write_wal(dir.path(), file_no, seqs.clone());
        let path = file_path(dir.path(), file_no);
        for (seq, offset) in seqs.zip(offsets) {
            expected.push((SeqNo(seq), payload(seq), path.clone(), offset));
        }
    }
    let (visited, report) = replay_all(dir.path());
    assert_eq!(visited, expected);
    assert_eq!(report.records, 400);
    assert_eq!(report.last_seq, Some(SeqNo(399)));
    assert!(report.truncated.is_empty() && report.corruptions.is_empty());
}

#[test]
fn replay_cuts_torn_tail_at_every_cut_length_and_appending_continues() {
    let last_len = (FRAME_HEADER_LEN + payload(2).len()) as u64;
    for kept in 1..last_len {
        let dir = tempfile::tempdir().unwrap();
        let offsets = write_wal(dir.path(), 1, 0..3);
        let path = file_path(dir.path(), 1);
        let mut file = StdFs.open_append(&path).unwrap();
        file.truncate(offsets[2] + kept).unwrap();
        drop(file);

        let (visited, report) = replay_all(dir.path());
        assert_eq!(seqs_of(&visited), [0, 1], "kept {kept} bytes");
        assert_eq!(report.truncated, [(path.clone(), offsets[2], kept)]);
        assert!(report.corruptions.is_empty());
        assert_eq!(StdFs.len(&path).unwrap(), offsets[2]);

        let mut writer = WalWriter::open_append(&StdFs, dir.path(), 1).unwrap();
        let mut frames = Vec::new();
        encode_frame(&mut frames, SeqNo(3), &payload(3));
        writer.write(&frames).unwrap();
        writer.sync().unwrap();
        let (visited, report) = replay_all(dir.path());
        assert_eq!(seqs_of(&visited), [0, 1, 3]);
        assert!(report.truncated.is_empty() && report.corruptions.is_empty());
    }
}

#[test]
fn replay_reports_flipped_bit_in_middle_record_and_recovers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_wal(dir.path(), 1, 0..3);
    let offsets = write_wal(dir.path(), 2, 3..8);
    let path = file_path(dir.path(), 2);
    let mut bytes = read(&path);
    let flipped = offsets[2] as usize + FRAME_HEADER_LEN + 1;
    bytes[flipped] ^= 0x10;
    overwrite(&path, &bytes);

    let (visited, report) = replay_all(dir.path());
    assert_eq!(seqs_of(&visited), [0, 1, 2, 3, 4, 6, 7]);
    assert_eq!(report.corruptions.len(), 1);
    let corruption = &report.corruptions[0];
    assert_eq!((&corruption.path, corruption.offset), (&path, offsets[2]));
    assert!(matches!(
        corruption.kind,
        CorruptionKind::ChecksumMismatch { .. }
    ));
    assert!(report.truncated.is_empty());
    assert_eq!(
        read(&path),
        bytes,
        "a damaged middle record is not repaired"
    );
}

#[test]
fn replay_recovers_after_damage_to_any_byte_of_a_middle_frame() {
    let bytes = wal_bytes(0..5);
    let (clean, _) = replay_in_memory(&bytes);
    let start = clean[2].2 as usize;
    let end = clean[3].2 as usize;
    for idx in start..end {
        let mut damaged = bytes.clone();
        damaged[idx] ^= 0x01;
        let (visited, file) = replay_in_memory(&damaged);
        let seqs: Vec<u64> = visited.iter().map(|(seq, ..)| *seq).collect();
        assert_eq!(seqs, [0, 1, 3, 4], "flipped byte {idx}");
        assert_eq!(file.corruptions.len(), 1, "flipped byte {idx}");
        assert_eq!(file.corruptions[0].offset, start as u64);
        assert!(matches!(
            file.corruptions[0].kind,
            CorruptionKind::ChecksumMismatch { .. } | CorruptionKind::Invalid(_)
        ));
        assert_eq!(file.torn_tail, None);
    }
}

#[test]
fn replay_cuts_garbage_appended_to_a_file() {
    let mut garbage_frame_start = FRAME_MAGIC.to_vec();
    garbage_frame_start.extend_from_slice(&[0xAB; 30]);
    for garbage in [b"not a frame".to_vec(), vec![0; 4096], garbage_frame_start] {
        let dir = tempfile::tempdir().unwrap();
        write_wal(dir.path(), 1, 0..4);
        let path = file_path(dir.path(), 1);
        let good_len = StdFs.len(&path).unwrap();
        let mut file = StdFs.open_append(&path).unwrap();
        file.write_all(&garbage).unwrap();
        drop(file);

        let (visited, report) = replay_all(dir.path());
        assert_eq!(seqs_of(&visited), [0, 1, 2, 3]);
        assert_eq!(
            report.truncated,
            [(path.clone(), good_len, garbage.len() as u64)]
        );
        assert!(report.corruptions.is_empty());
        assert_eq!(StdFs.len(&path).unwrap(), good_len);
    }
}

#[test]
fn replay_reports_and_skips_files_with_a_bad_header() {
    let dir = tempfile::tempdir().unwrap();
    write_wal(dir.path(), 1, 0..2);
    let valid = read(&file_path(dir.path(), 1));

    let mut bad_magic = valid.clone();
    bad_magic[0] = b'X';
    let mut unknown_version = record::header_bytes(FORMAT_VERSION + 1);
    unknown_version.extend_from_slice(&valid[HEADER_LEN..]);
    let mut bad_crc = valid.clone();
    bad_crc[HEADER_LEN - 1] ^= 0x80;
    let damaged = [
        (2, bad_magic),
        (3, unknown_version),
        (4, bad_crc),
        (5, b"hello".to_vec()),
    ];
    for (file_no, bytes) in &damaged {
        overwrite(&file_path(dir.path(), *file_no), bytes);
    }
    write_wal(dir.path(), 6, 2..4);

    let (visited, report) = replay_all(dir.path());
    assert_eq!(seqs_of(&visited), [0, 1, 2, 3]);
    assert!(report.truncated.is_empty());
    let found: Vec<(PathBuf, u64, CorruptionKind)> = report
        .corruptions
        .into_iter()
        .map(|c| (c.path, c.offset, c.kind))
        .collect();
    assert_eq!(found.len(), 4);
    let path = |file_no| file_path(dir.path(), file_no);
    assert_eq!(found[0], (path(2), 0, CorruptionKind::BadMagic));
    assert_eq!(
        found[1],
        (
            path(3),
            0,
            CorruptionKind::UnknownVersion(FORMAT_VERSION + 1)
        )
    );
    assert_eq!((&found[2].0, found[2].1), (&path(4), 0));
    assert!(matches!(
        found[2].2,
        CorruptionKind::ChecksumMismatch { .. }
    ));
    assert_eq!(found[3], (path(5), 0, CorruptionKind::BadMagic));
    for (file_no, bytes) in &damaged {
        assert_eq!(
            &read(&path(*file_no)),
            bytes,
            "a file with a bad header is left untouched"
        );
    }
}

#[test]
fn replay_treats_a_torn_header_as_a_file_without_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = Vec::new();
    encode_file_header(&mut header);
    overwrite(&file_path(dir.path(), 1), &header[..5]);
    overwrite(&file_path(dir.path(), 2), b"");
    write_wal(dir.path(), 3, 0..2);

    let (visited, report) = replay_all(dir.path());
    assert_eq!(seqs_of(&visited), [0, 1]);
    assert_eq!(report.truncated, [(file_path(dir.path(), 1), 0, 5)]);
    assert!(report.corruptions.is_empty());
    assert_eq!(StdFs.len(&file_path(dir.path(), 1)).unwrap(), 0);
    assert!(WalWriter::open_append(&StdFs, dir.path(), 2).is_err());
}

#[test]
fn replay_stops_at_the_first_visitor_error() {
    let dir = tempfile::tempdir().unwrap();
    write_wal(dir.path(), 1, 0..5);
    let mut n_visited = 0;
    let result = replay(&StdFs, dir.path(), &mut |seq, _, _, _| {
        n_visited += 1;
        if seq == SeqNo(1) {
            return Err(Error::Closed);
        }
        Ok(())
    });
    assert!(matches!(result, Err(Error::Closed)));
    assert_eq!(n_visited, 2);
}

#[test]
fn create_refuses_to_overwrite_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    write_wal(dir.path(), 1, 0..3);
    let err = WalWriter::create(&StdFs, dir.path(), 1).unwrap_err();
    assert!(matches!(err, Error::Io { op: "create", .. }), "{err}");
    assert_eq!(seqs_of(&replay_all(dir.path()).0), [0, 1, 2]);
}

#[test]
fn writer_reports_its_number_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = WalWriter::create(&StdFs, dir.path(), 42).unwrap();
    assert_eq!(writer.file_no(), 42);
    assert_eq!(writer.len(), HEADER_LEN as u64);
    assert!(writer.is_empty());
    let mut frames = Vec::new();
    encode_frame(&mut frames, SeqNo(1), b"abc");
    writer.write(&frames).unwrap();
    assert_eq!(writer.len(), (HEADER_LEN + FRAME_HEADER_LEN + 3) as u64);
    assert!(!writer.is_empty());
    assert_eq!(StdFs.len(writer.path()).unwrap(), writer.len());
}

#[test]
fn remove_files_below_keeps_the_newer_files() {
    let dir = tempfile::tempdir().unwrap();
    for file_no in 1..=4 {
        write_wal(dir.path(), file_no, file_no * 10..file_no * 10 + 2);
    }
    overwrite(&dir.path().join("other.txt"), b"keep me");
    assert_eq!(remove_files_below(&StdFs, dir.path(), 3).unwrap(), 2);
    let numbers: Vec<u64> = list_files(&StdFs, dir.path())
        .unwrap()
        .into_iter()
        .map(|(file_no, _)| file_no)
        .collect();
    assert_eq!(numbers, [3, 4]);
    assert_eq!(seqs_of(&replay_all(dir.path()).0), [30, 31, 40, 41]);
    assert_eq!(read(&dir.path().join("other.txt")), b"keep me");
    assert_eq!(remove_files_below(&StdFs, dir.path(), 3).unwrap(), 0);
}

#[cfg(feature = "failpoints")]
mod faults {
    use std::io;
    use std::sync::Arc;

    use super::*;
    use crate::fs::{FaultKind, FaultyFs};

    #[test]
    fn failed_write_leaves_no_partial_frame() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new(Arc::new(StdFs));
        let mut writer = WalWriter::create(&fs, dir.path(), 1).unwrap();
        let mut frames = Vec::new();
        encode_frame(&mut frames, SeqNo(0), &payload(5));
        writer.write(&frames).unwrap();
        let len_before = writer.len();

        fs.fail(FaultKind::Write, ".wal", 0, io::ErrorKind::StorageFull);
        let err = writer.write(&frames).unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        assert_eq!(writer.len(), len_before);
        assert_eq!(fs.len(writer.path()).unwrap(), len_before);

        fs.clear();
        let mut next = Vec::new();
        encode_frame(&mut next, SeqNo(1), &payload(6));
        writer.write(&next).unwrap();
        writer.sync().unwrap();
        let (visited, report) = replay_all(dir.path());
        assert_eq!(seqs_of(&visited), [0, 1]);
        assert!(report.truncated.is_empty() && report.corruptions.is_empty());
    }

    #[test]
    fn a_create_that_fails_on_a_full_disk_can_be_retried_once_space_frees() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new(Arc::new(StdFs));
        fs.fail(FaultKind::Write, ".wal", 0, io::ErrorKind::StorageFull);
        let err = WalWriter::create(&fs, dir.path(), 1).unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        fs.clear();
        let mut writer = WalWriter::create(&fs, dir.path(), 1).unwrap();
        let mut frames = Vec::new();
        encode_frame(&mut frames, SeqNo(0), &payload(5));
        writer.write(&frames).unwrap();
        writer.sync().unwrap();
        let (visited, report) = replay_all(dir.path());
        assert_eq!(seqs_of(&visited), [0]);
        assert!(report.truncated.is_empty() && report.corruptions.is_empty());
    }

    #[test]
    fn failed_sync_poisons_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new(Arc::new(StdFs));
        let mut writer = WalWriter::create(&fs, dir.path(), 1).unwrap();
        let mut frames = Vec::new();
        encode_frame(&mut frames, SeqNo(0), b"x");
        writer.write(&frames).unwrap();

        fs.fail(FaultKind::Sync, ".wal", 0, io::ErrorKind::Other);
        assert!(matches!(writer.sync(), Err(Error::Io { op: "fsync", .. })));
        fs.clear();
        assert!(matches!(writer.sync(), Err(Error::Io { op: "fsync", .. })));
        assert!(matches!(
            writer.write(&frames),
            Err(Error::Io { op: "write", .. })
        ));
    }
}

/// One way to damage a file.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, bit: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Append { bytes: Vec<u8> },
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        1 => any::<usize>().prop_map(|at| Damage::Truncate { at }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(|bytes| Damage::Append { bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    let len = bytes.len().max(1);
    match damage {
        Damage::Flip { at, bit } => {
            if let Some(byte) = bytes.get_mut(at % len) {
                *byte ^= 1 << bit;
            }
        }
        Damage::Truncate { at } => bytes.truncate(at % len),
        Damage::Insert {
            at,
            bytes: inserted,
        } => {
            let at = at % len.min(bytes.len() + 1);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Damage::Append { bytes: appended } => bytes.extend_from_slice(appended),
    }
}

proptest! {
    #[test]
    fn replay_of_a_damaged_file_never_yields_a_record_that_was_not_written(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20),
        damages in prop::collection::vec(damage_strategy(), 1..5),
    ) {
        let mut bytes = Vec::new();
        encode_file_header(&mut bytes);
        let mut written = BTreeMap::new();
        for (seq, payload) in payloads.iter().enumerate() {
            encode_frame(&mut bytes, SeqNo(seq as u64), payload);
            written.insert(seq as u64, payload.clone());
        }
        for damage in &damages {
            apply(&mut bytes, damage);
        }
        let (visited, file) = replay_in_memory(&bytes);
        for (seq, payload, offset) in &visited {
            prop_assert_eq!(written.get(seq), Some(payload));
            prop_assert!(*offset as usize + FRAME_HEADER_LEN + payload.len() <= bytes.len());
        }
        prop_assert_eq!(file.records, visited.len() as u64);
        if let Some(torn) = file.torn_tail {
            prop_assert_eq!(torn.offset + torn.len, bytes.len() as u64);
            // Cutting the torn tail leaves a file that replays the same records, cleanly.
            let (again, cut) = replay_in_memory(&bytes[..torn.offset as usize]);
            prop_assert_eq!(again, visited);
            prop_assert_eq!(cut.torn_tail, None);
        }
    }

    #[test]
    fn replay_of_a_truncated_file_yields_a_prefix_of_the_records(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20),
        cut in any::<usize>(),
    ) {
        let mut bytes = Vec::new();
        encode_file_header(&mut bytes);
        for (seq, payload) in payloads.iter().enumerate() {
            encode_frame(&mut bytes, SeqNo(seq as u64), payload);
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let (visited, file) = replay_in_memory(&bytes);
        for (idx, (seq, payload, _)) in visited.iter().enumerate() {
            prop_assert_eq!(*seq, idx as u64);
            prop_assert_eq!(payload, &payloads[idx]);
        }
        prop_assert!(file.corruptions.is_empty());
        let valid_end = visited
            .last()
            .map_or(HEADER_LEN, |(_, payload, offset)| {
                *offset as usize + FRAME_HEADER_LEN + payload.len()
            });
        let expected_torn = if bytes.is_empty() {
            None
        } else if bytes.len() < HEADER_LEN {
            Some(TornTail { offset: 0, len: bytes.len() as u64 })
        } else {
            (valid_end < bytes.len()).then(|| TornTail {
                offset: valid_end as u64,
                len: (bytes.len() - valid_end) as u64,
            })
        };
        prop_assert_eq!(file.torn_tail, expected_torn);
    }
}
