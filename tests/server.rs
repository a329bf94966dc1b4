//! The HTTP server end to end, over loopback: writes, partial writes, gzip, limits, the JSON
//! events endpoint, queries, the operational endpoints, authentication, errors.

mod common;

use std::io::Write;
use std::sync::Arc;

use common::server::TestServer;
use common::url_encode;
use meterdb::ScanRequest;
use meterdb::server::ServerConfig;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// The line numbers a 400 answer lists as rejected.
fn rejected_lines(answer: &serde_json::Value) -> Vec<u64> {
    answer["rejected"]
        .as_array()
        .expect("a rejected list")
        .iter()
        .map(|r| r["line"].as_u64().expect("a line number"))
        .collect()
}

fn count(server: &TestServer, tenant: Option<&str>) -> u64 {
    server
        .engine
        .count(&ScanRequest {
            tenant: tenant.map(Into::into),
            ..ScanRequest::default()
        })
        .unwrap()
}

const LINES: &str = "api_calls,tenant=acme,endpoint=/a,method=GET response_time_ms=12.5,bytes=100i,event_id=\"e1\" 1793491200000000000\n\
api_calls,tenant=acme,endpoint=/b,method=POST response_time_ms=40,bytes=2000i,event_id=\"e2\" 1793491260000000000\n\
api_calls,tenant=globex,endpoint=/a,method=GET response_time_ms=7.25,bytes=10i 1793491320000000000\n";

#[test]
fn write_stores_every_line_and_answers_204() {
    let s = TestServer::start();
    let r = s.request("POST", "/write?db=usage").send(LINES);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(count(&s, Some("acme")), 2);
    assert_eq!(count(&s, Some("globex")), 1);
    let r = s
        .request("POST", "/api/v2/write?bucket=usage&org=me&precision=s")
        .send("storage,tenant=acme,operation=write size_bytes=5i 1793491200\n");
    assert_eq!(r.status, 204, "{}", r.body);
    let stored = s
        .engine
        .scan(&ScanRequest {
            measurement: Some("storage".into()),
            ..ScanRequest::default()
        })
        .unwrap();
    assert_eq!(stored[0].timestamps, vec![1_793_491_200_000_000_000]);
}

#[test]
fn a_resent_body_answers_204_and_stores_nothing_new() {
    let s = TestServer::start();
    let body = "api_calls,tenant=acme,endpoint=/a response_time_ms=1.5,event_id=\"r1\" 1793491200000000000\n\
                api_calls,tenant=globex,endpoint=/a response_time_ms=2.5,event_id=\"r1\" 1793491200000000000\n";
    assert_eq!(s.request("POST", "/write").send(body).status, 204);
    let json = r#"[{"tenant_id": "acme", "event_type": "api_call", "event_id": "r1",
                    "timestamp": 1793491200000000000, "metadata": {"response_time_ms": 1.5}}]"#;
    for _ in 0..2 {
        let r = s.request("POST", "/api/v2/write?bucket=b&org=o").send(body);
        assert_eq!(r.status, 204, "{}", r.body);
        // The same event through the other ingestion path.
        let r = s.request("POST", "/api/v1/events").send(json);
        assert_eq!(r.status, 204, "{}", r.body);
    }
    assert_eq!(count(&s, None), 2);
    let m = s.request("GET", "/metrics").call();
    assert!(
        m.body.contains("meterdb_duplicate_events_total 6"),
        "{}",
        m.body
    );
}

#[test]
fn partial_write_stores_the_valid_lines_and_lists_the_rest() {
    let s = TestServer::start();
    assert_eq!(s.request("POST", "/write").send(LINES).status, 204);
    let body = "api_calls,tenant=acme,endpoint=/c response_time_ms=1.5 1793491400000000000\n\
                this is not line protocol\n\
                api_calls,tenant=acme,endpoint=/d response_time_ms=\"slow\" 1793491400000000001\n\
                api_calls,endpoint=/e response_time_ms=3.5 1793491400000000002\n\
                api_calls,tenant=acme,endpoint=/f response_time_ms=4.5 1793491400000000003\n";
    let r = s.request("POST", "/write").send(body);
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["code"], "invalid");
    assert_eq!(v["accepted"], 2);
    let lines = rejected_lines(&v);
    assert_eq!(lines, vec![2, 3, 4], "{v}");
    let errors = v["rejected"].to_string();
    assert!(errors.contains("tenant"), "{errors}");
    assert!(
        errors.contains("response_time_ms"),
        "a type conflict names the field: {errors}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("3 lines rejected"),
        "{v}"
    );
    assert_eq!(count(&s, Some("acme")), 4);
}

/// 2026-11-28T10:00:00Z: the clock of [`window_server`].
const NOW: i64 = 1_795_860_000_000_000_000;

/// A server whose engine has the default ingest window (30 days back, 24 h ahead) around a
/// clock fixed at [`NOW`].
fn window_server() -> TestServer {
    TestServer::with_options(
        ServerConfig::default(),
        meterdb::Options {
            shards: Some(2),
            sync: meterdb::SyncPolicy::None,
            clock: Arc::new(meterdb::clock::ManualClock::new(meterdb::Timestamp(NOW))),
            ..meterdb::Options::default()
        },
    )
}

/// The error texts of a 400 answer's rejected list, by line number.
fn rejected_errors(answer: &serde_json::Value) -> Vec<(u64, String)> {
    answer["rejected"]
        .as_array()
        .expect("a rejected list")
        .iter()
        .map(|r| {
            let line = r["line"].as_u64().expect("a line number");
            (line, r["error"].as_str().expect("an error").to_owned())
        })
        .collect()
}

#[test]
fn lines_outside_the_time_window_are_refused_by_line_with_the_reason() {
    let s = window_server();
    let day = 86_400_000_000_000i64;
    let body = format!(
        "api_calls,tenant=acme,endpoint=/old response_time_ms=1 {}\n\
         api_calls,tenant=globex,endpoint=/ok response_time_ms=2,event_id=\"w1\" {}\n\
         api_calls,tenant=acme,endpoint=/ahead response_time_ms=3,event_id=\"w2\" {}\n",
        NOW - 58 * day - 36_000_000_000_000, // 2026-10-01T00:00:00Z
        NOW - day,
        NOW + 2 * day,
    );
    // The second endpoint gets a retry: its valid line is a duplicate, not stored again.
    for (path, accepted) in [("/write", 1), ("/api/v2/write?bucket=b&org=o", 0)] {
        let r = s.request("POST", path).send(&body);
        assert_eq!(r.status, 400, "{}", r.body);
        let v = r.json();
        assert_eq!(v["code"], "invalid");
        assert_eq!(v["accepted"], accepted, "{v}");
        assert_eq!(v["rejected_total"], 2, "{v}");
        let errors = rejected_errors(&v);
        assert_eq!(
            errors.iter().map(|e| e.0).collect::<Vec<_>>(),
            [1, 3],
            "{v}"
        );
        assert_eq!(
            errors[0].1,
            "timestamp older than the raw-event retention (30 days): 2026-10-01T00:00:00Z is \
             before 2026-10-29T10:00:00Z (USAGE_TRACKING_EVENTS_RETENTION_DAYS sets the retention)"
        );
        assert_eq!(
            errors[1].1,
            "timestamp more than 24h ahead of the server clock: 2026-11-30T10:00:00Z is after \
             2026-11-29T10:00:00Z (METERDB_MAX_FUTURE sets the limit)"
        );
    }
    // The valid line is stored once; the others not.
    assert_eq!(count(&s, Some("globex")), 1);
    assert_eq!(count(&s, Some("acme")), 0);
}

#[test]
fn json_events_outside_the_time_window_are_refused_by_position_with_the_reason() {
    let s = window_server();
    let body = r#"[
      {"tenant_id": "acme", "event_type": "api_call", "event_id": "j-old",
       "timestamp": "2026-10-01T00:00:00Z", "metadata": {"response_time_ms": 1}},
      {"tenant_id": "acme", "event_type": "api_call", "event_id": "j-ok",
       "timestamp": "2026-11-27T00:00:00Z", "metadata": {"response_time_ms": 2}},
      {"event_type": "api_call"},
      {"tenant_id": "globex", "event_type": "api_call", "event_id": "j-ahead",
       "timestamp": "2026-11-30T10:00:00Z", "metadata": {"response_time_ms": 3}},
      {"tenant_id": "globex", "event_type": "api_call", "metadata": {"response_time_ms": 4}}
    ]"#;
    let r = s.request("POST", "/api/v1/events").send(body);
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["accepted"], 2, "{v}");
    let errors = rejected_errors(&v);
    assert_eq!(
        errors.iter().map(|e| e.0).collect::<Vec<_>>(),
        [1, 3, 4],
        "{v}"
    );
    assert!(
        errors[0].1.starts_with(
            "timestamp older than the raw-event retention (30 days): 2026-10-01T00:00:00Z"
        ),
        "{v}"
    );
    assert!(
        errors[2]
            .1
            .starts_with("timestamp more than 24h ahead of the server clock: 2026-11-30T10:00:00Z"),
        "{v}"
    );
    // The valid event and the one without a timestamp (dated now) are stored.
    assert_eq!(count(&s, Some("acme")), 1);
    assert_eq!(count(&s, Some("globex")), 1);
    let globex = s
        .engine
        .scan(&ScanRequest {
            tenant: Some("globex".into()),
            ..ScanRequest::default()
        })
        .unwrap();
    assert_eq!(globex[0].timestamps, vec![NOW]);
    // The refused ids were not claimed: sent again inside the window, they are stored.
    let retry = r#"[{"tenant_id": "acme", "event_type": "api_call", "event_id": "j-old",
                     "timestamp": "2026-11-28T00:00:00Z", "metadata": {"response_time_ms": 1}}]"#;
    let r = s.request("POST", "/api/v1/events").send(retry);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(count(&s, Some("acme")), 2);
}

#[test]
fn default_tenant_and_precision_parameters() {
    let s = TestServer::start();
    let r = s
        .request("POST", "/write?tenant=initech&precision=ms")
        .send("api_calls,endpoint=/a response_time_ms=1 1793491200000\n");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(count(&s, Some("initech")), 1);
    let r = s
        .request("POST", "/write?precision=fortnights")
        .send("api_calls,tenant=a x=1 1\n");
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("fortnights"));
}

#[test]
fn gzip_bodies_are_decoded_and_bombs_are_refused() {
    let s = TestServer::with_config(ServerConfig {
        max_body_bytes: 1 << 20,
        ..ServerConfig::default()
    });
    let r = s
        .request("POST", "/write")
        .header("Content-Encoding", "gzip")
        .send(gzip(LINES.as_bytes()));
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(count(&s, None), 3);

    let bomb = gzip(&vec![b'#'; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let r = s
        .request("POST", "/write")
        .header("Content-Encoding", "gzip")
        .send(&bomb);
    assert_eq!(r.status, 413, "{}", r.body);

    let r = s
        .request("POST", "/write")
        .header("Content-Encoding", "gzip")
        .send("not gzip at all");
    assert_eq!(r.status, 400);
    let r = s
        .request("POST", "/write")
        .header("Content-Encoding", "br")
        .send("x");
    assert_eq!(r.status, 415);
    assert_eq!(count(&s, None), 3, "refused bodies store nothing");
}

#[test]
fn bodies_over_the_limit_get_413() {
    let s = TestServer::with_config(ServerConfig {
        max_body_bytes: 1000,
        ..ServerConfig::default()
    });
    let big = LINES.repeat(20);
    let r = s.request("POST", "/write").send(&big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("1000"));
    assert_eq!(count(&s, None), 0);
}

#[test]
fn json_events_endpoint() {
    let s = TestServer::start();
    let body = r#"[
      {"tenant_id": "acme", "user_id": "u1", "event_type": "api_call", "event_name": "GET /a",
       "resource_consumed": "api", "quantity": 1, "event_id": "j1",
       "timestamp": "2026-11-01T00:00:00Z",
       "metadata": {"endpoint": "/a", "method": "GET", "response_time_ms": 150, "status_code": 200}},
      {"tenant_id": "acme", "event_type": "storage", "quantity": 2.5,
       "timestamp": 1793491200000000001, "metadata": {"operation": "write", "size_bytes": 1024}},
      {"event_type": "api_call"},
      {"tenant_id": "acme", "event_type": "api_call", "metadata": {"nested": {"no": 1}}},
      "not an object"
    ]"#;
    let r = s.request("POST", "/api/v1/events").send(body);
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["accepted"], 2);
    let lines = rejected_lines(&v);
    assert_eq!(lines, vec![3, 4, 5]);
    let api = s
        .engine
        .scan(&ScanRequest {
            measurement: Some("api_calls".into()),
            ..ScanRequest::default()
        })
        .unwrap();
    assert_eq!(api.len(), 1);
    let b = &api[0];
    assert_eq!(b.timestamps, vec![1_793_491_200_000_000_000]);
    assert_eq!(b.tag("user").unwrap().value(0), Some("u1"));
    assert_eq!(b.tag("endpoint").unwrap().value(0), Some("/a"));
    assert_eq!(b.event_ids.as_ref().unwrap().get(0), Some("j1"));
    assert_eq!(
        b.field("response_time_ms").unwrap().values,
        meterdb::FieldValues::F64(vec![Some(150.0)])
    );
    assert_eq!(
        b.field("status_code").unwrap().values,
        meterdb::FieldValues::I64(vec![Some(200)])
    );
    let r = s.request("POST", "/api/v1/events").send("{not json");
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("JSON"));
}

#[test]
fn ping_health_metrics() {
    let s = TestServer::start();
    let r = s.request("GET", "/ping").call();
    assert_eq!(r.status, 204);
    assert!(r.header("x-influxdb-version").unwrap().starts_with("1."));
    let r = s.request("GET", "/health").call();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "pass");
    assert_eq!(s.request("POST", "/write").send(LINES).status, 204);
    let _ = s.request("POST", "/write").send("garbage\n");
    let check = "/api/v1/tenants/acme/limits/check?meter=api_calls";
    assert_eq!(s.request("GET", check).call().status, 200);
    let m = s.request("GET", "/metrics").call();
    assert_eq!(m.status, 200);
    let metric = |name: &str| -> f64 {
        m.body
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{}", m.body))
    };
    assert_eq!(metric("meterdb_ingested_events_total"), 3.0);
    assert_eq!(metric("meterdb_rejected_lines_total"), 1.0);
    assert_eq!(metric("meterdb_write_duration_seconds_count"), 2.0);
    assert_eq!(metric("meterdb_usage_request_duration_seconds_count"), 1.0);
    // Engine figures are read at scrape time: present even before any flush.
    for name in [
        "meterdb_wal_syncs_total",
        "meterdb_segments",
        "meterdb_flushes_total",
    ] {
        metric(name);
    }
    assert!(
        m.body.contains("meterdb_buffered_events{shard=\"0\"}"),
        "{}",
        m.body
    );
}

#[test]
fn unknown_paths_and_methods() {
    let s = TestServer::start();
    let r = s.request("GET", "/nope").call();
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].as_str().unwrap().contains("/nope"));
    assert_eq!(s.request("GET", "/write").call().status, 405);
    assert_eq!(s.request("DELETE", "/query").call().status, 405);
}

#[test]
fn a_configured_token_is_required() {
    let s = TestServer::with_config(ServerConfig {
        auth_token: Some("s3cret".into()),
        ..ServerConfig::default()
    });
    assert_eq!(s.request("POST", "/write").send(LINES).status, 401);
    assert_eq!(
        s.request("POST", "/write")
            .header("Authorization", "Token wrong")
            .send(LINES)
            .status,
        401
    );
    assert_eq!(count(&s, None), 0);
    let ok = s
        .request("POST", "/write")
        .header("Authorization", "Token s3cret")
        .send(LINES);
    assert_eq!(ok.status, 204);
    let basic = s
        .request("GET", "/query?q=SHOW+DATABASES")
        .header("Authorization", "Basic dXNlcjpzM2NyZXQ=")
        .call();
    assert_eq!(basic.status, 200, "{}", basic.body);
    assert_eq!(
        s.request("GET", "/query?q=SHOW+DATABASES&u=x&p=s3cret")
            .call()
            .status,
        200
    );
    assert_eq!(
        s.request("GET", "/ping").call().status,
        204,
        "/ping stays open"
    );
}

/// Writes `n` api_calls of tenant acme, one a minute from 2026-11-01T00:00Z, endpoint `/e{i%3}`,
/// response time `i`.
fn write_minutes(s: &TestServer, n: i64) {
    let body: String = (0..n)
        .map(|i| {
            format!(
                "api_calls,tenant=acme,endpoint=/e{} response_time_ms={i},bytes={}i {}\n",
                i % 3,
                i * 10,
                1_793_491_200_000_000_000 + i * 60_000_000_000
            )
        })
        .collect();
    assert_eq!(s.request("POST", "/write").send(body).status, 204);
}

#[test]
fn queries_by_get_and_post_with_epoch_and_several_statements() {
    let s = TestServer::start();
    write_minutes(&s, 90);
    let q = "SELECT count(response_time_ms) FROM api_calls WHERE tenant = 'acme' AND \
             time >= '2026-11-01T00:00:00Z' AND time < '2026-11-01T02:00:00Z' GROUP BY time(1h); \
             SELECT sum(bytes) FROM api_calls WHERE time >= '2026-11-01T00:00:00Z' AND \
             time < '2026-11-01T02:00:00Z'";
    let r = s
        .request(
            "GET",
            &format!("/query?db=usage&epoch=s&q={}", url_encode(q)),
        )
        .call();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let first = &v["results"][0];
    assert_eq!(first["statement_id"], 0);
    assert_eq!(first["series"][0]["name"], "api_calls");
    assert_eq!(
        first["series"][0]["columns"],
        serde_json::json!(["time", "count"])
    );
    assert_eq!(
        first["series"][0]["values"],
        serde_json::json!([[1_793_491_200, 60], [1_793_494_800, 30]])
    );
    let second = &v["results"][1];
    assert_eq!(second["statement_id"], 1);
    let sum: i64 = (0..90).map(|i| i * 10).sum();
    assert_eq!(second["series"][0]["values"][0][1], sum);

    // POST with a form body; RFC 3339 times without `epoch`.
    let r = s
        .request("POST", "/query")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!(
            "db=usage&q={}",
            url_encode("SELECT max(response_time_ms) FROM api_calls WHERE time >= '2026-11-01T00:00:00Z' AND time < '2026-11-01T01:00:00Z'")
        ));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    // A lone selector answers with its point's time, as InfluxDB 1.6 does; Go writes the
    // float 59.0 as 59.
    assert_eq!(
        v["results"][0]["series"][0]["values"],
        serde_json::json!([["2026-11-01T00:59:00Z", 59]])
    );
}

#[test]
fn what_grafana_sends() {
    let s = TestServer::start();
    write_minutes(&s, 30);
    let get = |q: &str| {
        let r = s
            .request(
                "GET",
                &format!("/query?db=usage&epoch=ms&q={}", url_encode(q)),
            )
            .call();
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        let v = r.json();
        assert!(v["results"][0].get("error").is_none(), "{q}: {v}");
        v
    };
    let v = get("SHOW measurements");
    assert_eq!(
        v["results"][0]["series"][0]["values"],
        serde_json::json!([["api_calls"]])
    );
    get("SHOW RETENTION POLICIES on \"usage\"");
    let v = get("SHOW TAG KEYS FROM \"api_calls\"");
    let keys = v["results"][0]["series"][0]["values"].to_string();
    assert!(
        keys.contains("endpoint") && keys.contains("tenant"),
        "{keys}"
    );
    let v =
        get("SHOW TAG VALUES FROM \"api_calls\" WITH KEY = \"endpoint\" WHERE \"tenant\" = 'acme'");
    assert_eq!(
        v["results"][0]["series"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let v = get("SHOW FIELD KEYS FROM \"api_calls\"");
    assert!(
        v["results"][0]["series"][0]["values"]
            .to_string()
            .contains("response_time_ms")
    );
    let v = get(
        "SELECT mean(\"response_time_ms\") FROM \"api_calls\" WHERE time >= 1793491200000ms and \
         time <= 1793493000000ms GROUP BY time(10m), \"endpoint\" fill(null)",
    );
    let series = v["results"][0]["series"].as_array().unwrap();
    assert_eq!(series.len(), 3, "{v}");
    assert_eq!(series[0]["tags"]["endpoint"], "/e0");
    // Minutes 0, 3, 6, 9 are /e0 in the first 10 minutes: mean 4.5.
    assert_eq!(
        series[0]["values"][0],
        serde_json::json!([1_793_491_200_000i64, 4.5])
    );
}

#[test]
fn query_errors() {
    let s = TestServer::start();
    let r = s.request("GET", "/query").call();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("q"));
    let r = s
        .request(
            "GET",
            &format!("/query?q={}", url_encode("SELEKT * FROM x")),
        )
        .call();
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("error parsing query")
    );
    let r = s
        .request(
            "GET",
            &format!("/query?q={}", url_encode("DROP MEASUREMENT api_calls")),
        )
        .call();
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("unsupported"),
        "{}",
        r.body
    );
    // Telegraf creates its database at start: accepted, no effect.
    let r = s
        .request("POST", "/query")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("q={}", url_encode("CREATE DATABASE \"telegraf\"")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"results": [{"statement_id": 0}]})
    );
    let r = s
        .request(
            "GET",
            &format!("/query?epoch=fortnight&q={}", url_encode("SHOW DATABASES")),
        )
        .call();
    assert_eq!(r.status, 400);
}
