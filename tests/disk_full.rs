//! A full disk, from outside the process: `meterdb serve` runs on a small tmpfs of its own,
//! mounted in a private mount namespace (so the test leaves no mount behind on the host; it
//! needs the right to create one, as root has). Writes that cannot be stored are refused with
//! 507 and a message saying why, the server keeps serving what it has, nothing acknowledged is
//! lost (across a SIGKILL and a restart on the still-full disk too), and once space is freed
//! the refused batches are stored, each exactly once.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{Served, serve_wrapped};
use common::url_encode;

/// The buffer size of most servers here: a flush every few dozen batches.
const SMALL_BUFFER: &str = "262144";
/// Events per batch.
const BATCH: u64 = 100;
/// 2026-11-01T00:00:00Z in ns: the events' dates (the server runs with a long retention).
const T0: u64 = 1_793_491_200_000_000_000;

/// A tmpfs of `size` mounted on a temporary directory inside a mount namespace that a
/// sleeping holder process keeps alive, so that servers can be killed and restarted on it.
struct Tmpfs {
    holder: Child,
    mount_point: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let mount_point = tempfile::tempdir().unwrap();
        let script =
            "mount -t tmpfs -o size=$1 meterdb-test \"$0\" && echo mounted && exec sleep 100000";
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .arg(mount_point.path())
            .arg(size)
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "mounted",
            "could not mount a tmpfs in a private mount namespace: this test needs the \
             right to create mount namespaces (root, or CAP_SYS_ADMIN)"
        );
        Tmpfs {
            holder,
            mount_point,
        }
    }

    /// A path inside the tmpfs, as this process (outside the namespace) reaches it.
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(self.mount_point.path().strip_prefix("/").unwrap())
            .join(name)
    }

    /// `meterdb serve` on the tmpfs, inside the namespace, with durable acknowledgements and
    /// a buffer of `max_buffer_bytes` (small, so that flushes to segments are part of the
    /// test).
    fn serve(&self, max_buffer_bytes: &str) -> Served {
        let pid = self.holder.id().to_string();
        let data = self.mount_point.path().join("data");
        serve_wrapped(
            &["nsenter", "-t", &pid, "-m", "--"],
            &[
                "--data-dir",
                data.to_str().unwrap(),
                "--http-addr",
                "127.0.0.1:0",
                "--sync",
                "always",
                "--max-buffer-bytes",
                max_buffer_bytes,
            ],
            &[],
        )
    }

    /// Fills every free byte with a ballast file.
    fn fill(&self) {
        let mut ballast = std::fs::File::create(self.path("ballast")).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0u8; chunk];
            loop {
                match ballast.write_all(&buf) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(28) => break,
                    Err(e) if e.kind() == ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the tmpfs: {e}"),
                }
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.path("ballast")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // The namespace, and the tmpfs with it, goes away with its last process.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Batch `b`: `BATCH` events of three tenants, each with its own event id.
fn batch(b: u64) -> String {
    (0..BATCH)
        .map(|i| {
            format!(
                "api_calls,tenant=t{},endpoint=/e{} response_time_ms={i},event_id=\"b{b}-{i}\" {}\n",
                b % 3,
                i % 7,
                T0 + (b * BATCH + i) * 1_000_000_000
            )
        })
        .collect()
}

struct Answer {
    status: u16,
    body: String,
    retry_after: Option<String>,
}

fn request(method: &str, url: &str, body: &str) -> Answer {
    let agent = ureq::Agent::new_with_defaults();
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .body(body.as_bytes().to_vec())
        .unwrap();
    let resp = agent
        .configure_request(req)
        .http_status_as_error(false)
        .build();
    let resp = agent.run(resp).unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status,
        body: resp.into_body().read_to_string().unwrap(),
        retry_after,
    }
}

fn write(s: &Served, b: u64) -> Answer {
    request("POST", &format!("{}/write", s.url), &batch(b))
}

/// Checks that the server holds exactly the events of the `acked` batches, each once, and
/// that the usage rollups agree with the raw events.
fn check_stored(s: &Served, acked: &BTreeSet<u64>) {
    let q = "SELECT count(event_id), count(distinct(event_id)) FROM api_calls";
    let url = format!("{}/query?q={}", s.url, url_encode(q));
    let answer = request("GET", &url, "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let row = &json["results"][0]["series"][0]["values"][0];
    let expected = acked.len() as u64 * BATCH;
    assert_eq!(row[1].as_u64(), Some(expected), "events stored: {json}");
    assert_eq!(
        row[2].as_u64(),
        Some(expected),
        "distinct event ids: {json}"
    );
    for t in 0..3 {
        let want = acked.iter().filter(|b| *b % 3 == t).count() as u64 * BATCH;
        let url = format!(
            "{}/api/v1/tenants/t{t}/metrics?meter=api_calls&start={T0}&granularity=day",
            s.url
        );
        let answer = request("GET", &url, "");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let buckets: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        let used: f64 = buckets
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["value"].as_f64().unwrap())
            .sum();
        assert_eq!(used, want as f64, "api_calls usage of tenant t{t}");
    }
}

fn assert_refused_for_space(a: &Answer, b: u64) {
    assert_eq!(a.status, 507, "batch {b} on a full disk: {}", a.body);
    assert!(
        a.body.contains("disk full") && a.body.contains("space"),
        "the refusal says why: {}",
        a.body
    );
    assert!(a.retry_after.is_some(), "a 507 carries Retry-After");
}

#[test]
fn a_full_disk_refuses_writes_with_507_loses_nothing_and_recovers_when_space_frees() {
    let fs = Tmpfs::mount("24m");
    let s = fs.serve(SMALL_BUFFER);
    let mut acked = BTreeSet::new();
    for b in 0..30 {
        let a = write(&s, b);
        assert_eq!(a.status, 204, "batch {b}: {}", a.body);
        acked.insert(b);
    }

    fs.fill();
    // Writes until ten are refused: a few may still fit in space the WAL file already has.
    let mut refused = Vec::new();
    let mut b = 30;
    while refused.len() < 10 {
        assert!(b < 1_000, "the server never ran out of space");
        let a = write(&s, b);
        if a.status == 204 {
            acked.insert(b);
        } else {
            assert_refused_for_space(&a, b);
            refused.push(b);
        }
        b += 1;
    }
    check_stored(&s, &acked);
    let health = request("GET", &format!("{}/health", s.url), "");
    assert_eq!(
        health.status, 200,
        "a full disk is not a failed shard: {}",
        health.body
    );

    // A crash while the disk is full, and a restart on it: the server must come back and
    // serve every acknowledged event, though it cannot write.
    s.kill();
    let started = Instant::now();
    let s = fs.serve(SMALL_BUFFER);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "restart on a full disk took {:?}",
        started.elapsed()
    );
    check_stored(&s, &acked);
    let a = write(&s, refused[0]);
    if a.status == 204 {
        // Recovery may have freed WAL space by flushing to (smaller) segments.
        acked.insert(refused.remove(0));
    } else {
        assert_refused_for_space(&a, refused[0]);
    }

    fs.free();
    let deadline = Instant::now() + Duration::from_secs(30);
    for b in refused {
        loop {
            let a = write(&s, b);
            if a.status == 204 {
                break;
            }
            assert_refused_for_space(&a, b);
            assert!(
                Instant::now() < deadline,
                "writes still refused 30 s after space was freed: {}",
                a.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        acked.insert(b);
    }
    check_stored(&s, &acked);
    // A batch sent again after it was stored adds nothing.
    assert_eq!(write(&s, 0).status, 204);
    check_stored(&s, &acked);
    assert!(
        s.terminate().success(),
        "a clean shutdown flushes everything"
    );
}

#[test]
fn a_wal_larger_than_the_buffer_replays_into_memory_when_the_disk_is_full() {
    let fs = Tmpfs::mount("24m");
    // A large buffer: nothing is flushed, everything stays in the WAL.
    let s = fs.serve("67108864");
    let acked: BTreeSet<u64> = (0..40).collect();
    for &b in &acked {
        assert_eq!(write(&s, b).status, 204);
    }
    fs.fill();
    s.kill();
    // Restarted with a buffer smaller than the WAL, recovery would flush while replaying;
    // with no room for segments it keeps the events in memory and serves them.
    let s = fs.serve("8192");
    check_stored(&s, &acked);
    assert_refused_for_space(&write(&s, 40), 40);

    fs.free();
    let s = {
        let mut stored = false;
        for _ in 0..300 {
            let a = write(&s, 40);
            if a.status == 204 {
                stored = true;
                break;
            }
            assert_refused_for_space(&a, 40);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(stored, "writes still refused 30 s after space was freed");
        s
    };
    let acked: BTreeSet<u64> = (0..41).collect();
    check_stored(&s, &acked);
    assert!(
        s.terminate().success(),
        "a clean shutdown flushes everything"
    );
    let s = fs.serve(SMALL_BUFFER);
    check_stored(&s, &acked);
}
