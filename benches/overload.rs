//! Overload: the release `meterdb serve` (`--sync always`) under about four times the write
//! load it sustains, from clients that respect nothing, with slow readers and idle sockets
//! on the side. Reports what was offered and accepted, the answers, the server's peak memory
//! against the bound its settings give, and checks that every acknowledged event is stored
//! exactly once.
//!
//! 1. Ramp: 1, 2, 4 and 8 writers, each sending batches of [`BATCH`] lines back to back for
//!    [`RAMP_SECS`] s; the best accepted rate is what the server sustains.
//! 2. Overload, `METERDB_BENCH_OVERLOAD_SECS` (default 60) s: [`WRITERS`] writers schedule new
//!    batches of [`BIG_BATCH`] lines at four times that rate in all and resend a refused batch
//!    (429/503) at once; 4 slow readers read query answers of about 2 MB at about 40 KB/s;
//!    100 idle connections send nothing (the header timeout closes them; they reconnect).
//! 3. Checks: `SELECT count(n) ... GROUP BY batch` must give every acknowledged batch all of
//!    its lines, exactly once; a batch never acknowledged (a transport error) may be stored
//!    whole or not at all.
//!
//! RSS is sampled from `/proc/<pid>/status` (VmRSS every 100 ms, VmHWM at the end).
//!
//! `cargo bench --bench overload` (cargo builds the release binary for benches; or set
//! `METERDB_BIN` to another build).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "support/server.rs"]
mod server;
use server::Server;

/// Lines per write during the ramp.
const BATCH: usize = 5_000;
/// Lines per write during the overload: big batches, so that the writers' bodies in flight
/// (48 × about 1.8 MB) exceed the server's in-flight budget.
const BIG_BATCH: usize = 20_000;
/// Seconds per ramp level.
const RAMP_SECS: u64 = 4;
/// Writers during the overload.
const WRITERS: usize = 48;
/// Slow readers during the overload.
const SLOW_READERS: usize = 4;
/// Idle connections during the overload.
const IDLE: usize = 100;
/// Tenants the batches are spread over (one tenant per batch).
const TENANTS: usize = 64;

/// The server's settings: the bound on its memory is computed from these.
const SHARDS: usize = 2;
const MAX_BUFFER_BYTES: usize = 32 << 20;
const MAX_IN_FLIGHT_WRITE_BYTES: usize = 64 << 20;
const MAX_CONNECTIONS: usize = 256;
const MAX_HEAD_BYTES: usize = 64 << 10;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The server process; killed when dropped.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A batch of `lines` lines of one tenant, tagged with its id.
fn batch_body(measurement: &str, id: &str, seq: u64, lines: usize) -> String {
    let tenant = seq as usize % TENANTS;
    let base = now_ns() - 3_600_000_000_000;
    let mut body = String::with_capacity(lines * 90);
    for i in 0..lines {
        body.push_str(&format!(
            "{measurement},tenant=t{tenant},batch={id},endpoint=/e{} n={i}i,ms={}.5 {}\n",
            i % 20,
            i % 997,
            base + i as i64
        ));
    }
    body
}

/// Answers counted by status.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    busy: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn add(&self, status: Option<u16>) {
        let counter = match status {
            Some(204) => &self.ok,
            Some(429) => &self.busy,
            Some(503) => &self.unavailable,
            Some(_) => &self.other,
            None => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Option<u16> {
    match agent.post(format!("{url}/write")).send(body) {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let _ = r.body_mut().read_to_string();
            Some(status)
        }
        Err(_) => None,
    }
}

/// Writers sending back to back for `secs`; accepted events per second.
fn ramp_level(url: &str, writers: usize, secs: u64) -> f64 {
    let stop = Instant::now() + Duration::from_secs(secs);
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (url, accepted) = (url.to_owned(), accepted.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut seq = 0u64;
                while Instant::now() < stop {
                    let body = batch_body("ramp", &format!("r{writers}_{w}_{seq}"), seq, BATCH);
                    seq += 1;
                    match post(&agent, &url, &body) {
                        Some(204) => {
                            accepted.fetch_add(BATCH as u64, Ordering::Relaxed);
                        }
                        Some(429 | 503) => std::thread::sleep(Duration::from_millis(10)),
                        other => panic!("ramp write answered {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    accepted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sends a query (about 2 MB of answer) and reads its answer at about 40 KB/s, over and over
/// until `stop`.
fn slow_reader(url: &str, stop: &AtomicBool, bytes_read: &AtomicU64) {
    let host = url.trim_start_matches("http://").to_owned();
    let q = "SELECT%20*%20FROM%20ramp%20WHERE%20tenant%20%3D%20%27t1%27%20LIMIT%2020000";
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(&host) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let req = format!("GET /query?q={q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// Holds a connection open without sending anything; counts the closes the server makes.
fn idle_socket(url: &str, stop: &AtomicBool, closed: &AtomicU64) {
    let host = url.trim_start_matches("http://").to_owned();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(&host) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(_) => {
                    closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Per-batch line counts of `measurement`.
fn stored_batches(url: &str, measurement: &str) -> HashMap<String, u64> {
    let q = format!("SELECT count(n) FROM {measurement} GROUP BY batch");
    let q: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut r = agent()
        .get(format!("{url}/query?q={q}"))
        .call()
        .expect("count query");
    let text = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(e) = json["results"][0]["error"].as_str() {
        panic!("count query failed: {e}");
    }
    let mut out = HashMap::new();
    for s in json["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let batch = s["tags"]["batch"].as_str().unwrap_or_default().to_owned();
        let n = s["values"][0][1].as_u64().unwrap_or(0);
        out.insert(batch, n);
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let overload_secs: u64 = env_or("METERDB_BENCH_OVERLOAD_SECS", 60);
    let server = Server::start(&[
        "--sync",
        "always",
        "--shards",
        &SHARDS.to_string(),
        "--max-buffer-bytes",
        &MAX_BUFFER_BYTES.to_string(),
        "--max-in-flight-write-bytes",
        &MAX_IN_FLIGHT_WRITE_BYTES.to_string(),
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
    ]);
    let pid = server.pid();
    let url = server.url.clone();

    // 1. Ramp.
    let mut sustained = 0f64;
    for writers in [1, 2, 4, 8] {
        let rate = ramp_level(&url, writers, RAMP_SECS);
        println!("ramp: {writers} writers: {rate:.0} events/s accepted");
        sustained = sustained.max(rate);
    }
    let target = 4.0 * sustained;
    println!(
        "sustained: {sustained:.0} events/s; overload target: {target:.0} events/s of new batches"
    );

    // 2. Overload.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let attempts = Arc::new(AtomicU64::new(0));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let unknown: Arc<Mutex<Vec<String>>> = Arc::default();
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak_rss.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = status_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let slow_bytes = Arc::new(AtomicU64::new(0));
    let idle_closed = Arc::new(AtomicU64::new(0));
    let mut side = Vec::new();
    for _ in 0..SLOW_READERS {
        let (url, stop, bytes) = (url.clone(), stop.clone(), slow_bytes.clone());
        side.push(std::thread::spawn(move || slow_reader(&url, &stop, &bytes)));
    }
    for _ in 0..IDLE {
        let (url, stop, closed) = (url.clone(), stop.clone(), idle_closed.clone());
        side.push(std::thread::spawn(move || {
            idle_socket(&url, &stop, &closed)
        }));
    }
    let started = Instant::now();
    let end = started + Duration::from_secs(overload_secs);
    // Each writer schedules a new batch every `period`; a refused one is resent at once.
    let period = Duration::from_secs_f64(WRITERS as f64 * BIG_BATCH as f64 / target.max(1.0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = url.clone();
            let (tally, attempts) = (tally.clone(), attempts.clone());
            let (acked, unknown) = (acked.clone(), unknown.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut next = Instant::now() + period.mul_f64(w as f64 / WRITERS as f64);
                let mut seq = 0u64;
                while Instant::now() < end {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    next += period;
                    let id = format!("w{w}_{seq}");
                    let body = batch_body("overload", &id, seq, BIG_BATCH);
                    seq += 1;
                    loop {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let status = post(&agent, &url, &body);
                        tally.add(status);
                        match status {
                            Some(204) => {
                                acked.lock().unwrap().push(id);
                                break;
                            }
                            Some(429 | 503) if Instant::now() < end => {}
                            // Refused at the end of the run: never stored.
                            Some(429 | 503) => break,
                            _ => {
                                unknown.lock().unwrap().push(id);
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in side {
        t.join().unwrap();
    }
    sampler.join().unwrap();
    let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
    let peak = peak_rss.load(Ordering::Relaxed);

    // 3. Report and check.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let unknown = std::mem::take(&mut *unknown.lock().unwrap());
    let offered = attempts.load(Ordering::Relaxed) as f64 * BIG_BATCH as f64 / elapsed;
    let accepted = acked.len() as f64 * BIG_BATCH as f64 / elapsed;
    let bound = MAX_IN_FLIGHT_WRITE_BYTES
        + SHARDS * 2 * MAX_BUFFER_BYTES
        + MAX_CONNECTIONS * MAX_HEAD_BYTES;
    println!("overload: {elapsed:.1} s, {WRITERS} writers, {BIG_BATCH} lines per batch");
    println!(
        "offered: {offered:.0} events/s ({} attempts); accepted: {accepted:.0} events/s ({} batches)",
        attempts.load(Ordering::Relaxed),
        acked.len()
    );
    println!(
        "answers: 204 {}, 429 {}, 503 {}, other {}, transport errors {}",
        tally.ok.load(Ordering::Relaxed),
        tally.busy.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed)
    );
    println!(
        "slow readers: {} bytes read; idle connections closed by the server: {}",
        slow_bytes.load(Ordering::Relaxed),
        idle_closed.load(Ordering::Relaxed)
    );
    println!(
        "server RSS: peak sampled {} kB ({:.1} MiB), VmHWM {} kB ({:.1} MiB)",
        peak,
        peak as f64 / 1024.0,
        hwm,
        hwm as f64 / 1024.0
    );
    println!(
        "bound from settings: in-flight writes {} MiB + {SHARDS} shards x 2 buffers x {} MiB + \
         {MAX_CONNECTIONS} connections x {} KiB = {:.1} MiB (before parsed batches, rollups, \
         the event-id index and queries)",
        MAX_IN_FLIGHT_WRITE_BYTES >> 20,
        MAX_BUFFER_BYTES >> 20,
        MAX_HEAD_BYTES >> 10,
        bound as f64 / (1 << 20) as f64
    );
    let stored = stored_batches(&url, "overload");
    let mut wrong = Vec::new();
    for id in &acked {
        let n = stored.get(id).copied().unwrap_or(0);
        if n != BIG_BATCH as u64 {
            wrong.push(format!("{id}: {n} lines"));
        }
    }
    let acked_set: std::collections::HashSet<&String> = acked.iter().collect();
    let unknown_set: std::collections::HashSet<&String> = unknown.iter().collect();
    let mut unexpected = Vec::new();
    let mut unknown_stored = 0usize;
    for (id, n) in &stored {
        if acked_set.contains(id) {
            continue;
        }
        if unknown_set.contains(id) && *n == BIG_BATCH as u64 {
            unknown_stored += 1;
        } else {
            unexpected.push(format!("{id}: {n} lines, never acknowledged"));
        }
    }
    println!(
        "check: {} acknowledged batches ({} events) each stored exactly once: {}; \
         {} batches without an answer ({} of them stored whole); unexpected: {}",
        acked.len(),
        acked.len() * BIG_BATCH,
        if wrong.is_empty() { "yes" } else { "NO" },
        unknown.len(),
        unknown_stored,
        unexpected.len()
    );
    assert!(
        wrong.is_empty(),
        "acknowledged batches not stored once: {wrong:?}"
    );
    assert!(unexpected.is_empty(), "{unexpected:?}");
}
