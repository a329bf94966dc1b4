//! The manifest: the durable list of a shard's live segments and rollup files, and how far
//! the WAL has been flushed into them. Replaced atomically (temporary file, fsync, rename, directory fsync), so
//! a crash leaves either the old list or the new one.
//!
//! Knows segment ids and days, not segment contents. Byte layout: storage-format.md,
//! "Manifest".

use std::path::Path;

use crate::codec::{ByteReader, PutLe, crc32c};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::fs::{FileSystem, write_atomic};
use crate::model::{Day, SeqNo};
use crate::segment::SegmentId;

/// File name of a shard's manifest.
pub const FILE_NAME: &str = "MANIFEST";

const MAGIC: [u8; 8] = *b"MTRMANIF";
const VERSION: u16 = 2;
/// Version 1 had no rollup files; it is still read.
const VERSION_1: u16 = 1;
/// Bytes of one rollup file entry: id, file length.
const ROLLUP_ENTRY_LEN: usize = 8 + 8;
/// Bytes of one segment entry: id, day, file length.
const ENTRY_LEN: usize = 8 + 8 + 8;
/// Magic + version + commit + flushed_seq + next_segment_id + entry count.
const HEADER_LEN: usize = MAGIC.len() + 2 + 8 + 8 + 8 + 4;
const CRC_LEN: usize = 4;

/// One live segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Segment id (its file name).
    pub id: SegmentId,
    /// UTC day of its rows.
    pub day: Day,
    /// File size in bytes, checked when the segment is opened.
    pub file_len: u64,
}

/// A shard's manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Version of this manifest; each replacement increments it.
    pub commit: u64,
    /// Every WAL record up to this sequence number is held by the live segments.
    pub flushed_seq: SeqNo,
    /// The id the next segment will get.
    pub next_segment_id: u64,
    /// Live segments, ascending id.
    pub segments: Vec<ManifestEntry>,
    /// Live rollup files (ids share the segments' counter), ascending id.
    pub rollups: Vec<RollupEntry>,
}

/// One live rollup file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollupEntry {
    /// Its id (its file name).
    pub id: u64,
    /// File size in bytes, checked when it is read.
    pub file_len: u64,
}

impl Manifest {
    /// Encodes the manifest (storage-format.md, "Manifest").
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.segments.len() * ENTRY_LEN + CRC_LEN);
        out.extend_from_slice(&MAGIC);
        out.put_u16(VERSION);
        out.put_u64(self.commit);
        out.put_u64(self.flushed_seq.0);
        out.put_u64(self.next_segment_id);
        out.put_u32(u32::try_from(self.segments.len()).unwrap_or(u32::MAX));
        for e in &self.segments {
            out.put_u64(e.id.0);
            out.put_i64(e.day.0);
            out.put_u64(e.file_len);
        }
        out.put_u32(u32::try_from(self.rollups.len()).unwrap_or(u32::MAX));
        for e in &self.rollups {
            out.put_u64(e.id);
            out.put_u64(e.file_len);
        }
        let crc = crc32c(&out);
        out.put_u32(crc);
        out
    }

    /// Decodes a manifest, checking magic, version, checksum and every count.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Manifest, Corruption> {
        let bad = |offset: usize, kind| Corruption::new(path, offset as u64, kind);
        let body_len = bytes
            .len()
            .checked_sub(CRC_LEN)
            .filter(|&n| n >= HEADER_LEN)
            .ok_or_else(|| bad(0, CorruptionKind::Truncated))?;
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(bad(0, CorruptionKind::BadMagic));
        }
        let (body, crc_bytes) = bytes.split_at(body_len);
        let mut r = ByteReader::new(crc_bytes);
        let expected = r.u32().map_err(|k| bad(body_len, k))?;
        let actual = crc32c(body);
        if expected != actual {
            return Err(bad(
                body_len,
                CorruptionKind::ChecksumMismatch { expected, actual },
            ));
        }
        let mut r = ByteReader::new(body);
        let at = |r: &ByteReader<'_>, k| bad(r.position(), k);
        r.take(MAGIC.len()).map_err(|k| at(&r, k))?;
        let version = r.u16().map_err(|k| at(&r, k))?;
        if version != VERSION && version != VERSION_1 {
            return Err(bad(MAGIC.len(), CorruptionKind::UnknownVersion(version)));
        }
        let commit = r.u64().map_err(|k| at(&r, k))?;
        let flushed_seq = SeqNo(r.u64().map_err(|k| at(&r, k))?);
        let next_segment_id = r.u64().map_err(|k| at(&r, k))?;
        let n = r.count(ENTRY_LEN).map_err(|k| at(&r, k))?;
        let mut segments = Vec::with_capacity(n);
        for _ in 0..n {
            let pos = r.position();
            let id = SegmentId(r.u64().map_err(|k| at(&r, k))?);
            let day = Day(r.i64().map_err(|k| at(&r, k))?);
            let file_len = r.u64().map_err(|k| at(&r, k))?;
            if id.0 >= next_segment_id
                || segments.last().is_some_and(|e: &ManifestEntry| e.id >= id)
            {
                return Err(bad(
                    pos,
                    CorruptionKind::Invalid(format!("segment id {} out of order", id.0)),
                ));
            }
            segments.push(ManifestEntry { id, day, file_len });
        }
        let mut rollups = Vec::new();
        if version != VERSION_1 {
            let n = r.count(ROLLUP_ENTRY_LEN).map_err(|k| at(&r, k))?;
            for _ in 0..n {
                let pos = r.position();
                let id = r.u64().map_err(|k| at(&r, k))?;
                let file_len = r.u64().map_err(|k| at(&r, k))?;
                if id >= next_segment_id || rollups.last().is_some_and(|e: &RollupEntry| e.id >= id)
                {
                    return Err(bad(
                        pos,
                        CorruptionKind::Invalid(format!("rollup file id {id} out of order")),
                    ));
                }
                rollups.push(RollupEntry { id, file_len });
            }
        }
        if !r.is_empty() {
            return Err(at(
                &r,
                CorruptionKind::Invalid("bytes after the last entry".into()),
            ));
        }
        Ok(Manifest {
            commit,
            flushed_seq,
            next_segment_id,
            segments,
            rollups,
        })
    }

    /// Total bytes of the live rollup files.
    pub fn rollup_bytes(&self) -> u64 {
        self.rollups.iter().map(|e| e.file_len).sum()
    }

    /// Reads the manifest at `path`; `Ok(None)` when there is none yet.
    pub fn load(fs: &dyn FileSystem, path: &Path) -> Result<Option<Manifest>> {
        match fs.read(path) {
            Ok(bytes) => Ok(Some(Manifest::decode(&bytes, path)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Replaces the manifest at `path` atomically.
    pub fn store(&self, fs: &dyn FileSystem, path: &Path) -> Result<()> {
        write_atomic(fs, path, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            commit: 7,
            flushed_seq: SeqNo(1234),
            next_segment_id: 10,
            segments: vec![
                ManifestEntry {
                    id: SegmentId(3),
                    day: Day(20_000),
                    file_len: 999,
                },
                ManifestEntry {
                    id: SegmentId(9),
                    day: Day(-1),
                    file_len: 1,
                },
            ],
            rollups: vec![RollupEntry {
                id: 8,
                file_len: 77,
            }],
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode(), Path::new("M")).unwrap(), m);
    }

    #[test]
    fn every_flipped_bit_and_cut_is_detected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                Manifest::decode(&b, Path::new("M")).is_err(),
                "flip of bit {i} undetected"
            );
        }
        for len in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..len], Path::new("M")).is_err());
        }
    }
}
