//! Segment column codecs on 1M values: pco (what the segment writer uses for large blocks)
//! against two hand-written baselines, a delta-of-delta + zigzag + varint codec for ns
//! timestamps 1-100 ms apart and a Gorilla XOR codec for f64 response times with two
//! decimals. The baselines live here, not in the library: they are what pco has to beat.
//!
//! Prints bytes/value for each codec, then criterion measures encode and decode throughput.
//! Run: `cargo bench --bench segment_codec`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 1_000_000;

/// xorshift64*: deterministic data without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// ns timestamps, each 1-100 ms (at ns precision) after the previous one.
fn timestamps() -> Vec<i64> {
    let mut rng = Rng(42);
    let mut t = 1_793_491_200_000_000_000i64;
    (0..N)
        .map(|_| {
            t += 1_000_000 + (rng.next_u64() % 99_000_000) as i64;
            t
        })
        .collect()
}

/// Log-normal response times in ms, rounded to two decimals (as gen_usage.py writes them).
fn response_times() -> Vec<f64> {
    let mut rng = Rng(7);
    (0..N)
        .map(|_| {
            let median = 5.0 + (rng.next_u64() % 295) as f64;
            ((median * (0.6 * rng.gauss()).exp()) * 100.0).round() / 100.0
        })
        .collect()
}

// ---- baseline 1: delta-of-delta, zigzag, LEB128 varint ----

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn dod_encode(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4);
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for &v in values {
        let delta = v.wrapping_sub(prev);
        put_varint(&mut out, zigzag(delta.wrapping_sub(prev_delta)));
        prev = v;
        prev_delta = delta;
    }
    out
}

fn dod_decode(bytes: &[u8], n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    let (mut pos, mut prev, mut prev_delta) = (0, 0i64, 0i64);
    for _ in 0..n {
        let delta = prev_delta.wrapping_add(unzigzag(get_varint(bytes, &mut pos)));
        prev = prev.wrapping_add(delta);
        prev_delta = delta;
        out.push(prev);
    }
    out
}

// ---- baseline 2: Gorilla XOR (Pelkonen et al., VLDB 2015, section 4.1.2) ----

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn put(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if value >> i & 1 == 1 {
                let last = self.bytes.len() - 1;
                self.bytes[last] |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn get(&mut self, n: u32) -> u64 {
        let mut v = 0;
        for _ in 0..n {
            let b = self
                .bytes
                .get(self.bit / 8)
                .map_or(0, |b| b >> (7 - self.bit % 8) & 1);
            v = v << 1 | u64::from(b);
            self.bit += 1;
        }
        v
    }
}

fn gorilla_encode(values: &[f64]) -> Vec<u8> {
    let mut w = BitWriter::default();
    let mut prev = 0u64;
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for (i, v) in values.iter().enumerate() {
        let bits = v.to_bits();
        if i == 0 {
            w.put(bits, 64);
            prev = bits;
            continue;
        }
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.put(0, 1);
            continue;
        }
        let (l, t) = (x.leading_zeros().min(31), x.trailing_zeros());
        if lead != u32::MAX && l >= lead && t >= trail {
            w.put(0b10, 2);
            w.put(x >> trail, 64 - lead - trail);
        } else {
            lead = l;
            trail = t;
            let len = 64 - l - t;
            w.put(0b11, 2);
            w.put(u64::from(l), 5);
            w.put(u64::from(len - 1), 6);
            w.put(x >> t, len);
        }
    }
    w.bytes
}

fn gorilla_decode(bytes: &[u8], n: usize) -> Vec<f64> {
    let mut r = BitReader { bytes, bit: 0 };
    let mut out = Vec::with_capacity(n);
    let mut prev = 0u64;
    let (mut lead, mut trail) = (0u32, 0u32);
    for i in 0..n {
        if i == 0 {
            prev = r.get(64);
        } else if r.get(1) == 1 {
            if r.get(1) == 1 {
                lead = r.get(5) as u32;
                let len = r.get(6) as u32 + 1;
                trail = 64 - lead - len;
            }
            prev ^= r.get(64 - lead - trail) << trail;
        }
        out.push(f64::from_bits(prev));
    }
    out
}

// ---- pco, as the segment writer calls it ----

fn pco_encode<T: pco::data_types::Number>(values: &[T]) -> Vec<u8> {
    pco::standalone::simple_compress(values, &pco::ChunkConfig::default()).expect("pco compresses")
}

fn pco_decode<T: pco::data_types::Number>(bytes: &[u8]) -> Vec<T> {
    pco::standalone::simple_decompress(bytes).expect("pco decompresses")
}

fn report_sizes(ts: &[i64], rt: &[f64]) {
    let per = |b: usize| b as f64 / N as f64;
    let (ts_pco, ts_dod) = (pco_encode(ts), dod_encode(ts));
    let (rt_pco, rt_gorilla) = (pco_encode(rt), gorilla_encode(rt));
    assert_eq!(pco_decode::<i64>(&ts_pco), ts);
    assert_eq!(dod_decode(&ts_dod, N), ts);
    assert_eq!(pco_decode::<f64>(&rt_pco), rt);
    let back = gorilla_decode(&rt_gorilla, N);
    assert!(back.iter().zip(rt).all(|(a, b)| a.to_bits() == b.to_bits()));
    println!("bytes/value on {N} values:");
    println!(
        "  timestamps   pco {:.2}   delta-of-delta+zigzag+varint {:.2}",
        per(ts_pco.len()),
        per(ts_dod.len())
    );
    println!(
        "  f64 2 decimals   pco {:.2}   gorilla xor {:.2}",
        per(rt_pco.len()),
        per(rt_gorilla.len())
    );
}

fn codecs(c: &mut Criterion) {
    let (ts, rt) = (timestamps(), response_times());
    report_sizes(&ts, &rt);
    let (ts_pco, ts_dod) = (pco_encode(&ts), dod_encode(&ts));
    let (rt_pco, rt_gorilla) = (pco_encode(&rt), gorilla_encode(&rt));

    let mut g = c.benchmark_group("timestamps");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("pco/encode", |b| b.iter(|| pco_encode(black_box(&ts))));
    g.bench_function("pco/decode", |b| {
        b.iter(|| pco_decode::<i64>(black_box(&ts_pco)))
    });
    g.bench_function("dod_varint/encode", |b| {
        b.iter(|| dod_encode(black_box(&ts)))
    });
    g.bench_function("dod_varint/decode", |b| {
        b.iter(|| dod_decode(black_box(&ts_dod), N))
    });
    g.finish();

    let mut g = c.benchmark_group("response_times");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("pco/encode", |b| b.iter(|| pco_encode(black_box(&rt))));
    g.bench_function("pco/decode", |b| {
        b.iter(|| pco_decode::<f64>(black_box(&rt_pco)))
    });
    g.bench_function("gorilla/encode", |b| {
        b.iter(|| gorilla_encode(black_box(&rt)))
    });
    g.bench_function("gorilla/decode", |b| {
        b.iter(|| gorilla_decode(black_box(&rt_gorilla), N))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // 1M values per iteration: few samples are enough, and keep the run to a few minutes.
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = codecs
}
criterion_main!(benches);
