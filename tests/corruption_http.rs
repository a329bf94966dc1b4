//! Damage to a data directory, seen from outside: the real `meterdb serve` binary is given a
//! few tenants' events over HTTP and stopped (SIGTERM flushes them to segments, or SIGKILL
//! leaves them in the WAL), then one file is damaged, on a fresh directory per case, and the
//! tests check what an operator sees:
//!
//! - the server starts and serves everything still good (the other tenants' events exactly;
//!   usage from rollups equal to the raw recount wherever the raw events are there), or, for
//!   damage it cannot serve around (`METERS`, `LIMITS`, `RETENTION`), exits non-zero with an
//!   error naming the file, never a panic;
//! - `GET /health` lists the damage found at start-up and its log names the file;
//! - `meterdb check DIR` exits 1 naming the damaged file, and 0 on an undamaged directory.
//!
//! `tests/recovery.rs` checks the engine's side of several of these through the library.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{BIN, Served, ServerLog, serve, serve_logged, serve_refused};
use common::url_encode;
use serde_json::Value;
use tempfile::TempDir;

/// The tenants, each with its own number of events so that a mix-up shows; they hash to both
/// shards of a default data directory (checked by [`Written::new`]).
const TENANTS: [(&str, usize); 6] = [
    ("acme", 3),
    ("globex", 4),
    ("initech", 5),
    ("umbrella", 6),
    ("hooli", 7),
    ("stark", 8),
];

/// A tenant and its number of stored events.
type Count = (&'static str, usize);

/// Shards of a data directory created with the default settings.
const SHARDS: u64 = 2;

/// A data directory holding [`TENANTS`]' events, written over HTTP, and what it holds.
struct Written {
    dir: TempDir,
    /// Events stored per tenant, in [`TENANTS`] order.
    counts: Vec<usize>,
    /// The first event's time, in seconds (an hour ago, at the start of an hour).
    base_secs: i64,
}

impl Written {
    /// Writes every tenant's events, one request per tenant, and stops the server with
    /// SIGTERM, which flushes them to segments (one per shard) and rollup files.
    fn new() -> Written {
        let dir = tempfile::tempdir().unwrap();
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let base_secs = (now_secs - 3600) / 3600 * 3600;
        let mut written = Written {
            dir,
            counts: vec![0; TENANTS.len()],
            base_secs,
        };
        for shard in 0..SHARDS {
            assert!(
                TENANTS.iter().filter(|(t, _)| shard_of(t) == shard).count() >= 2,
                "pick tenants that hash to every shard"
            );
        }
        let server = serve(written.dir.path());
        written.write_round(&server, 0);
        assert!(server.terminate().success());
        written
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes each tenant's events again (new times, so nothing is a duplicate), one request
    /// per tenant, in [`TENANTS`] order.
    fn write_round(&mut self, server: &Served, round: i64) {
        for (i, (tenant, n)) in TENANTS.iter().enumerate() {
            let lines: String = (0..*n)
                .map(|k| {
                    format!(
                        "api_calls,tenant={tenant},user=u{} n={k}i {}\n",
                        k % 2,
                        self.base_secs + round * 60 + k as i64
                    )
                })
                .collect();
            let (status, body) = post(&format!("{}/write?precision=s", server.url), &lines);
            assert_eq!(status, 204, "{body}");
            self.counts[i] += n;
        }
    }

    /// The data directory of shard `shard`.
    fn shard_dir(&self, shard: u64) -> PathBuf {
        self.path().join(format!("shard-{shard:03}"))
    }

    /// The only file with extension `ext` in `sub` of shard `shard`.
    fn only_file(&self, shard: u64, sub: &str, ext: &str) -> PathBuf {
        let files = files(&self.shard_dir(shard).join(sub), ext);
        assert_eq!(files.len(), 1, "{files:?}");
        files.into_iter().next().unwrap()
    }

    /// Runs `meterdb check` on a copy of the directory (the check opens the engine, which
    /// repairs what it can, so the original stays as damaged for the server).
    fn check_copy(&self) -> (i32, String) {
        let copy = tempfile::tempdir().unwrap();
        common::copy_dir(self.path(), copy.path());
        check(copy.path())
    }

    /// Tenants of `shard` and the others, with their counts.
    fn split(&self, shard: u64) -> (Vec<Count>, Vec<Count>) {
        let all = TENANTS.iter().zip(&self.counts).map(|((t, _), n)| (*t, *n));
        all.partition(|(t, _)| shard_of(t) == shard)
    }

    /// Every tenant with its count.
    fn all(&self) -> Vec<Count> {
        let (mut all, rest) = self.split(0);
        all.extend(rest);
        all
    }

    /// The start and end (epoch ns) of the three whole UTC days around the events.
    fn usage_range(&self) -> (i64, i64) {
        let day = 86_400;
        let first_day = self.base_secs.div_euclid(day) - 1;
        (
            first_day * day * 1_000_000_000,
            (first_day + 3) * day * 1_000_000_000,
        )
    }

    /// A tenant's `api_calls` usage over the days around the events, from the usage API.
    fn usage(&self, url: &str, tenant: &str) -> f64 {
        let (start, end) = self.usage_range();
        let (status, body) = get(&format!(
            "{url}/api/v1/tenants/{tenant}/metrics?meter=api_calls&start={start}&end={end}&granularity=day"
        ));
        assert_eq!(status, 200, "{body}");
        let buckets: Value = serde_json::from_str(&body).unwrap();
        buckets
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["value"].as_f64().unwrap())
            .sum()
    }

    /// Asserts that every tenant in `tenants` reads back exactly, and that its usage equals
    /// that raw recount.
    fn assert_exact(&self, url: &str, tenants: &[Count]) {
        for (tenant, n) in tenants {
            assert_eq!(rows(url, tenant), Ok(*n), "raw events of {tenant}");
            assert_eq!(self.usage(url, tenant), *n as f64, "usage of {tenant}");
        }
    }
}

/// The shard of a tenant: FNV-1a-64 of its name modulo the shard count (storage-format.md,
/// "Directory layout").
fn shard_of(tenant: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % SHARDS
}

/// Files with extension `ext` in `dir`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// The path of `file` inside its data directory, as it appears in messages (the shard
/// directory and the file name), so that it can be looked for in those about a copy.
fn shown(file: &Path) -> String {
    let parts: Vec<_> = file.iter().rev().take(3).collect();
    let name = parts[0].to_string_lossy();
    let parent = parts[1].to_string_lossy();
    if parent.starts_with("shard-") {
        format!("{parent}/{name}")
    } else if parts[2].to_string_lossy().starts_with("shard-") {
        format!("{}/{parent}/{name}", parts[2].to_string_lossy())
    } else {
        name.into_owned()
    }
}

fn flip_bit(file: &Path, offset: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[offset] ^= 0x10;
    std::fs::write(file, bytes).unwrap();
}

fn get(url: &str) -> (u16, String) {
    let r = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.into_body().read_to_string().unwrap())
}

fn post(url: &str, body: &str) -> (u16, String) {
    let r = ureq::post(url)
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    (status, r.into_body().read_to_string().unwrap())
}

/// A tenant's stored `api_calls` rows, every column read (`SELECT *`), or the query's error.
fn rows(url: &str, tenant: &str) -> Result<usize, String> {
    let q = format!("SELECT * FROM api_calls WHERE tenant = '{tenant}'");
    let (status, body) = get(&format!("{url}/query?q={}", url_encode(&q)));
    assert!(status == 200 || status == 400, "{status} {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let result = &v["results"][0];
    if let Some(error) = result["error"].as_str() {
        return Err(error.to_owned());
    }
    Ok(result["series"].as_array().map_or(0, |s| {
        s.iter()
            .map(|s| s["values"].as_array().unwrap().len())
            .sum()
    }))
}

/// `GET /health`: the status and the damage it lists.
fn health(url: &str) -> (String, Vec<String>) {
    let (code, body) = get(&format!("{url}/health"));
    let v: Value = serde_json::from_str(&body).unwrap();
    let status = v["status"].as_str().unwrap().to_owned();
    assert_eq!(code, if status == "pass" { 200 } else { 503 }, "{body}");
    let damage = v["checks"]["damage_found_at_startup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    (status, damage)
}

/// `meterdb check DIR`: exit code and output.
fn check(dir: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["check", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().expect("check exits, not killed"), text)
}

/// `meterdb check` on a copy of `w` exits 1 and names `file` as damaged.
fn assert_check_names(w: &Written, file: &Path) {
    let (code, text) = w.check_copy();
    assert_eq!(code, 1, "{text}");
    let name = shown(file);
    assert!(
        text.lines()
            .any(|l| l.starts_with("damaged:") && l.contains(&name)),
        "{name} not named in:\n{text}"
    );
}

/// The server started on a damaged `w` lists damage naming `file` on `/health` (still
/// `pass`: every shard takes writes), and its log names it.
fn assert_reported(url: &str, log: &ServerLog, file: &Path) {
    let name = shown(file);
    let (status, damage) = health(url);
    assert_eq!(status, "pass");
    assert!(
        damage.iter().any(|d| d.contains(&name)),
        "{name} not in /health's {damage:?}"
    );
    assert!(log.text().contains(&name), "{name} not in the log");
}

#[test]
fn an_undamaged_directory_checks_clean_and_reports_no_damage() {
    let w = Written::new();
    let (code, text) = check(w.path());
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("damaged"), "{text}");
    let (server, log) = serve_logged(w.path());
    assert_eq!(health(&server.url), ("pass".to_owned(), vec![]));
    let all = w.all();
    w.assert_exact(&server.url, &all);
    assert!(server.terminate().success());
    assert!(!log.text().contains("ERROR"), "{}", log.text());
}

#[test]
fn a_flipped_bit_in_a_segment_block_fails_only_the_reads_of_that_block() {
    let w = Written::new();
    let segment = w.only_file(1, "segments", "seg");
    // The first chunk of the first tenant's rows, right after the 14-byte header.
    flip_bit(&segment, 20);
    assert_check_names(&w, &segment);

    let (server, log) = serve_logged(w.path());
    let (damaged_shard, other_shard) = w.split(1);
    w.assert_exact(&server.url, &other_shard);
    let mut failed = 0;
    for (tenant, n) in &damaged_shard {
        // Each read either fails naming the file or is exact: never a wrong answer.
        match rows(&server.url, tenant) {
            Ok(found) => assert_eq!(found, *n, "{tenant}"),
            Err(e) => {
                assert!(e.contains(&shown(&segment)), "{e}");
                failed += 1;
            }
        }
        // Usage comes from the rollup files, which are intact.
        assert_eq!(w.usage(&server.url, tenant), *n as f64, "usage of {tenant}");
    }
    assert_eq!(failed, 1, "exactly the tenant whose block is damaged fails");
    let (status, _) = health(&server.url);
    assert_eq!(status, "pass");
    assert!(server.terminate().success());
    assert!(log.text().contains(&shown(&segment)), "{}", log.text());
}

/// The rows of a segment that cannot be opened are unavailable; everything else, and every
/// tenant's usage (the rollup files count the acknowledged events), is served.
fn assert_segment_lost(w: &Written, segment: &Path) {
    assert_check_names(w, segment);
    let (server, log) = serve_logged(w.path());
    assert_reported(&server.url, &log, segment);
    let (lost, kept) = w.split(1);
    w.assert_exact(&server.url, &kept);
    for (tenant, n) in &lost {
        assert_eq!(rows(&server.url, tenant), Ok(0), "{tenant}");
        assert_eq!(w.usage(&server.url, tenant), *n as f64, "usage of {tenant}");
    }
    // New writes to the damaged shard are taken and read back.
    let (tenant, _) = lost[0];
    let (status, body) = post(
        &format!("{}/write?precision=s", server.url),
        &format!("api_calls,tenant={tenant} n=1i {}\n", w.base_secs + 3000),
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(rows(&server.url, tenant), Ok(1));
    assert!(server.terminate().success());
}

#[test]
fn a_truncated_segment_is_reported_and_the_rest_is_served() {
    let w = Written::new();
    let segment = w.only_file(1, "segments", "seg");
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_segment_lost(&w, &segment);
}

#[test]
fn a_deleted_segment_the_manifest_lists_is_reported_and_the_rest_is_served() {
    let w = Written::new();
    let segment = w.only_file(1, "segments", "seg");
    std::fs::remove_file(&segment).unwrap();
    assert_segment_lost(&w, &segment);
}

/// A damaged or missing rollup file is reported and its segments recounted: usage stays
/// equal to the raw recount for every tenant.
fn assert_rollups_recounted(w: &Written, rollup: &Path) {
    assert_check_names(w, rollup);
    let (server, log) = serve_logged(w.path());
    assert_reported(&server.url, &log, rollup);
    let all = w.all();
    w.assert_exact(&server.url, &all);
    assert!(server.terminate().success());
    assert!(log.text().contains("recounted"), "{}", log.text());
    // The recount was stored: the next start finds nothing to report.
    let (code, text) = w.check_copy();
    assert_eq!(code, 0, "{text}");
    let (server, _) = serve_logged(w.path());
    assert_eq!(health(&server.url), ("pass".to_owned(), vec![]));
    w.assert_exact(&server.url, &all);
}

#[test]
fn a_damaged_rollup_file_is_reported_and_recounted() {
    let w = Written::new();
    let rollup = w.only_file(0, "rollups", "rollup");
    let len = std::fs::metadata(&rollup).unwrap().len() as usize;
    flip_bit(&rollup, len / 2);
    assert_rollups_recounted(&w, &rollup);
}

#[test]
fn a_deleted_rollup_file_is_reported_and_recounted() {
    let w = Written::new();
    let rollup = w.only_file(1, "rollups", "rollup");
    std::fs::remove_file(&rollup).unwrap();
    assert_rollups_recounted(&w, &rollup);
}

#[test]
fn a_damaged_manifest_is_rebuilt_from_the_segments() {
    let w = Written::new();
    let manifest = w.shard_dir(0).join("MANIFEST");
    flip_bit(&manifest, 30);
    assert_check_names(&w, &manifest);
    let (server, log) = serve_logged(w.path());
    assert_reported(&server.url, &log, &manifest);
    let all = w.all();
    w.assert_exact(&server.url, &all);
    assert!(server.terminate().success());
    assert!(
        log.text().contains("rebuilt the manifest"),
        "{}",
        log.text()
    );
}

/// A written directory, restarted and written to again, then killed with SIGKILL: the second
/// round of events is only in the WAL (one record per request and shard).
fn killed_with_wal() -> Written {
    let mut w = Written::new();
    let server = serve(w.path());
    w.write_round(&server, 1);
    drop(server);
    w
}

/// The WAL file of `shard` that holds the records of the second round.
fn active_wal(w: &Written, shard: u64) -> PathBuf {
    let wals = files(&w.shard_dir(shard).join("wal"), "wal");
    wals.last().unwrap().clone()
}

/// Offsets and lengths of the frames of a WAL file (storage-format.md, "WAL files").
fn frames(wal: &[u8]) -> Vec<(usize, usize)> {
    const HEADER_LEN: usize = 14;
    const FRAME_HEADER_LEN: usize = 20;
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at + FRAME_HEADER_LEN <= wal.len() {
        assert_eq!(wal[at..at + 4], [0xf5, 0x57, 0x52, 0x0a]);
        let len = u32::from_le_bytes(wal[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push((at, FRAME_HEADER_LEN + len));
        at += FRAME_HEADER_LEN + len;
    }
    assert_eq!(at, wal.len());
    out
}

#[test]
fn garbage_appended_to_a_wal_is_cut_off_and_every_acknowledged_event_kept() {
    let w = killed_with_wal();
    let wal = active_wal(&w, 1);
    assert!(frames(&std::fs::read(&wal).unwrap()).len() >= 2);
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes.extend((0..100u8).map(|i| i.wrapping_mul(37) | 0x80));
    std::fs::write(&wal, bytes).unwrap();

    // A torn tail is the normal result of a crash: cut silently, not reported as damage.
    let (code, text) = w.check_copy();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 torn WAL tails cut"), "{text}");
    let (server, log) = serve_logged(w.path());
    assert_eq!(health(&server.url), ("pass".to_owned(), vec![]));
    let all = w.all();
    w.assert_exact(&server.url, &all);
    assert!(server.terminate().success());
    assert!(log.text().contains(&shown(&wal)), "{}", log.text());
}

#[test]
fn a_flipped_bit_in_the_middle_of_a_wal_loses_only_that_record() {
    let mut w = killed_with_wal();
    let wal = active_wal(&w, 1);
    let mut bytes = std::fs::read(&wal).unwrap();
    let frames = frames(&bytes);
    assert!(frames.len() >= 3, "{frames:?}");
    let (start, len) = frames[1];
    let record = &bytes[start..start + len];
    let (lost, _) = TENANTS
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (i, t))
        .find(|(_, t)| record.windows(t.len()).any(|win| win == t.as_bytes()))
        .expect("the record names its tenant");
    bytes[start + 20 + (len - 20) / 2] ^= 0x10;
    std::fs::write(&wal, bytes).unwrap();
    assert_check_names(&w, &wal);

    let (server, log) = serve_logged(w.path());
    assert_reported(&server.url, &log, &wal);
    // The damaged record held the lost tenant's second round; the records after it replay.
    w.counts[lost] -= TENANTS[lost].1;
    let all = w.all();
    w.assert_exact(&server.url, &all);
    assert!(server.terminate().success());
}

#[test]
fn a_damaged_meters_file_stops_the_start_naming_it() {
    let w = Written::new();
    let server = serve(w.path());
    let (status, body) = post(
        &format!("{}/api/v1/tenants/acme/meters", server.url),
        r#"{"name":"calls_u1","measurement":"api_calls","aggregation":"count","filter":{"user":"u1"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert!(server.terminate().success());
    let meters = w.path().join("METERS");
    let text = std::fs::read_to_string(&meters).unwrap();
    std::fs::write(&meters, &text[..text.len() / 2]).unwrap();
    assert_refused(&w, &meters);
}

#[test]
fn a_damaged_limits_file_stops_the_start_naming_it() {
    let w = Written::new();
    let server = serve(w.path());
    let (status, body) = post(
        &format!("{}/api/v1/tenants/acme/limits", server.url),
        r#"{"limit_name":"calls","limit_type":"hard_limit","resource_type":"api_calls","limit_value":100,"period_type":"day"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert!(server.terminate().success());
    let limits = w.path().join("LIMITS");
    let text = std::fs::read_to_string(&limits).unwrap();
    std::fs::write(&limits, text.replace("\"version\":1", "\"version\":7")).unwrap();
    assert_refused(&w, &limits);
}

#[test]
fn a_damaged_retention_file_stops_the_start_naming_it() {
    let w = Written::new();
    let server = serve(w.path());
    let r = ureq::put(format!("{}/api/v1/tenants/acme/retention", server.url))
        .config()
        .http_status_as_error(false)
        .build()
        .send(r#"{"events_days": 7}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(server.terminate().success());
    let retention = w.path().join("RETENTION");
    let text = std::fs::read_to_string(&retention).unwrap();
    std::fs::write(&retention, &text[..text.len() - 3]).unwrap();
    assert_refused(&w, &retention);
}

/// Damage to a file that cannot be recounted from the data (meter definitions, limits,
/// retention overrides):
/// starting without it would silently stop counting a meter or enforcing a limit, so the server
/// refuses to start, with an error naming the file, and `meterdb check` names it too.
fn assert_refused(w: &Written, file: &Path) {
    assert_check_names(w, file);
    let (status, stderr) = serve_refused(w.path());
    assert!(!status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("listening"),
        "announced before refusing: {stderr}"
    );
    let name = file.display().to_string();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("error") && l.contains(&name)),
        "{name} not named in:\n{stderr}"
    );
}
