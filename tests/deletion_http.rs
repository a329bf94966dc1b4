//! The right to erasure over HTTP against the real `meterdb serve`: `DELETE` of a user and
//! of a tenant hides their events from queries and exports at once, the background
//! compaction then removes them from every file of the data directory, the audit log
//! records it without the user's id, and `meterdb compact` finishes the job offline.

mod common;

use std::time::{Duration, Instant};

use common::cli::{self, BIN};
use common::server::request_at;
use common::{occurs_in, url_encode};
use serde_json::Value;

const SECRET: &str = "bob-4f1d2c7a-93e8-4b61-a0c5-7d2e9f3b1a64";

fn query_count(url: &str, q: &str) -> u64 {
    let r = request_at(url, "GET", &format!("/query?q={}", url_encode(q))).call();
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn deleting_a_user_and_a_tenant_hides_them_at_once_and_purges_them_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = cli::serve_with(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--compaction-interval-secs",
            "1",
            "--compaction-pace",
            "0",
        ],
        &[],
    );
    let url = server.url.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut lines = String::new();
    for i in 0..300i64 {
        let user = if i % 3 == 0 { SECRET } else { "alice" };
        let tenant = if i % 10 == 0 { "initech" } else { "acme" };
        lines.push_str(&format!(
            "api_calls,tenant={tenant},user={user},endpoint=/v1/x response_time_ms={i} {}\n",
            now - 1_000_000 * (300 - i)
        ));
    }
    let w = request_at(&url, "POST", "/write?precision=ns").send(&lines);
    assert_eq!(w.status, 204, "{}", w.body);
    // Part of the data in segments, part in the buffer.
    let w = request_at(&url, "POST", "/write?precision=ns").send(format!(
        "api_calls,tenant=acme,user={SECRET} response_time_ms=1 {now}\n"
    ));
    assert_eq!(w.status, 204, "{}", w.body);

    let bob = format!(
        "SELECT count(response_time_ms) FROM api_calls WHERE tenant = 'acme' AND \"user\" = '{SECRET}'"
    );
    let alice = "SELECT count(response_time_ms) FROM api_calls WHERE tenant = 'acme' AND \"user\" = 'alice'";
    let bob_before = query_count(&url, &bob);
    let alice_before = query_count(&url, alice);
    assert!(bob_before > 0 && alice_before > 0);

    let r = request_at(
        &url,
        "DELETE",
        &format!("/api/v1/tenants/acme/users/{SECRET}"),
    )
    .call();
    assert_eq!(r.status, 200, "{}", r.body);
    let answer: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        answer["events_deleted"].as_u64(),
        Some(bob_before),
        "{answer}"
    );
    assert_eq!(answer["rollups"], "keep");
    assert_eq!(query_count(&url, &bob), 0);
    assert_eq!(query_count(&url, alice), alice_before);
    let export = request_at(
        &url,
        "GET",
        &format!("/api/v1/tenants/acme/users/{SECRET}/export"),
    )
    .call();
    assert_eq!((export.status, export.body.as_str()), (200, ""));

    let initech = "SELECT count(response_time_ms) FROM api_calls WHERE tenant = 'initech'";
    assert!(query_count(&url, initech) > 0);
    let r = request_at(&url, "DELETE", "/api/v1/tenants/initech").call();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(query_count(&url, initech), 0);
    assert_eq!(query_count(&url, alice), alice_before);

    // The background compaction purges the files (the WAL was flushed by the deletion).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hits = occurs_in(&data, SECRET.as_bytes());
        if hits.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still in {hits:?}: {:#?}",
            server.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let audit = std::fs::read_to_string(data.join("AUDIT.log")).unwrap();
    assert!(
        audit.contains("\"delete_user\"") && audit.contains("\"delete_tenant\""),
        "{audit}"
    );
    assert!(!audit.contains(SECRET));
    assert_eq!(query_count(&url, alice), alice_before);
    server.terminate();

    let out = std::process::Command::new(BIN)
        .args(["compact", data.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rewrites") && stdout.contains("segments"),
        "{stdout}"
    );
    assert!(occurs_in(&data, SECRET.as_bytes()).is_empty());
}
