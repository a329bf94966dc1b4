//! Small byte-level helpers shared by every on-disk format: CRC32C, a stable string hash, and
//! bounds-checked little-endian reading and writing. No I/O.

use crate::error::CorruptionKind;

/// CRC32C (Castagnoli) of `bytes`: the checksum of every on-disk structure.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Continues a CRC32C over more bytes.
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, bytes)
}

/// 64-bit FNV-1a: a hash that is the same in every process and every build, used to route a
/// tenant to its shard (a random-keyed hasher would move tenants between runs).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Appends little-endian values to a buffer.
pub trait PutLe {
    /// Appends a u8.
    fn put_u8(&mut self, v: u8);
    /// Appends a little-endian u16.
    fn put_u16(&mut self, v: u16);
    /// Appends a little-endian u32.
    fn put_u32(&mut self, v: u32);
    /// Appends a little-endian u64.
    fn put_u64(&mut self, v: u64);
    /// Appends a little-endian i64.
    fn put_i64(&mut self, v: i64);
    /// Appends a u32 length followed by the bytes.
    fn put_bytes(&mut self, v: &[u8]);
    /// Appends an unsigned LEB128 varint.
    fn put_varint(&mut self, v: u64);
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_bytes(&mut self, v: &[u8]) {
        self.put_u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.extend_from_slice(v);
    }
    fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }
}

/// A bounds-checked little-endian reader. Every method returns
/// [`CorruptionKind::Truncated`] instead of reading past the end, and length-prefixed reads
/// check the length against the bytes left before allocating.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader { bytes, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptionKind> {
        let end = self.pos.checked_add(n).ok_or(CorruptionKind::Truncated)?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(CorruptionKind::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptionKind> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a u8.
    pub fn u8(&mut self) -> Result<u8, CorruptionKind> {
        Ok(self.array::<1>()?[0])
    }
    /// Reads a little-endian u16.
    pub fn u16(&mut self) -> Result<u16, CorruptionKind> {
        self.array().map(u16::from_le_bytes)
    }
    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32, CorruptionKind> {
        self.array().map(u32::from_le_bytes)
    }
    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Result<u64, CorruptionKind> {
        self.array().map(u64::from_le_bytes)
    }
    /// Reads a little-endian i64.
    pub fn i64(&mut self) -> Result<i64, CorruptionKind> {
        self.array().map(i64::from_le_bytes)
    }
    /// Reads a u32 length and that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], CorruptionKind> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Reads a u32 length and that many bytes of UTF-8.
    pub fn str(&mut self) -> Result<&'a str, CorruptionKind> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| CorruptionKind::Invalid("string is not UTF-8".into()))
    }
    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64, CorruptionKind> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CorruptionKind::Invalid(
            "varint longer than 10 bytes".into(),
        ))
    }
    /// Reads a count that announces `item_size`-byte items, checking that they can fit in
    /// the bytes left, so that a damaged count never causes a huge allocation.
    pub fn count(&mut self, item_size: usize) -> Result<usize, CorruptionKind> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_size.max(1)) > self.remaining() {
            return Err(CorruptionKind::Invalid(format!(
                "count {n} does not fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_round_trips_and_stops_at_the_end() {
        let mut buf = Vec::new();
        buf.put_u8(7);
        buf.put_u16(513);
        buf.put_u32(70_000);
        buf.put_u64(u64::MAX);
        buf.put_i64(-5);
        buf.put_bytes(b"abc");
        buf.put_varint(300);
        let mut r = ByteReader::new(&buf);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u16(), Ok(513));
        assert_eq!(r.u32(), Ok(70_000));
        assert_eq!(r.u64(), Ok(u64::MAX));
        assert_eq!(r.i64(), Ok(-5));
        assert_eq!(r.str(), Ok("abc"));
        assert_eq!(r.varint(), Ok(300));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(CorruptionKind::Truncated));
    }

    #[test]
    fn count_refuses_lengths_longer_than_the_input() {
        let mut buf = Vec::new();
        buf.put_u32(1_000_000);
        assert!(ByteReader::new(&buf).count(8).is_err());
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
