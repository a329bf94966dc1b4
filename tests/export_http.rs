//! `GET /api/v1/tenants/{tenant}/users/{user}/export` end to end, over loopback: exactly the
//! user's events of the tenant, all of them, in time order, with typed fields and meter
//! contributions, as JSON lines and as CSV (read back by a small RFC 4180 parser here); time
//! ranges; errors; empty exports; CSV quoting; and a large export cut into many scan windows.

mod common;

use common::server::{Response, TestServer};
use common::url_encode;
use meterdb::server::ServerConfig;
use meterdb::{FieldValueRef, WriteBatch};
use serde_json::{Value, json};

/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200_000_000_000;
const DAY: i64 = 86_400_000_000_000;

fn write_lines(s: &TestServer, lines: &str) {
    let r = s
        .request("POST", "/write?db=usage&precision=ns")
        .send(lines);
    assert_eq!(r.status, 204, "{}", r.body);
}

fn post_events(s: &TestServer, body: &Value) {
    let r = s
        .request("POST", "/api/v1/events")
        .header("content-type", "application/json")
        .send(body.to_string());
    assert_eq!(r.status, 204, "{}", r.body);
}

fn export(s: &TestServer, tenant: &str, user: &str, query: &str) -> Response {
    let path = format!("/api/v1/tenants/{tenant}/users/{user}/export{query}");
    s.request("GET", &path).call()
}

fn json_lines(r: &Response) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    r.body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// An RFC 4180 reader: records of cells, quoted cells may hold commas, line breaks and
/// doubled quotes. Panics on malformed input (a quote inside an unquoted cell, an
/// unterminated quote).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_cell_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => {
                    quoted = false;
                    assert!(
                        matches!(chars.peek(), None | Some(',' | '\r' | '\n')),
                        "text after a closing quote"
                    );
                }
                c => cell.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(at_cell_start, "a quote inside an unquoted cell");
                quoted = true;
                at_cell_start = false;
            }
            ',' => {
                record.push(std::mem::take(&mut cell));
                at_cell_start = true;
            }
            '\r' => assert_eq!(chars.next(), Some('\n'), "a bare CR"),
            '\n' => panic!("a record ended by LF alone, not CRLF"),
            c => {
                cell.push(c);
                at_cell_start = false;
            }
        }
        if c == '\r' {
            record.push(std::mem::take(&mut cell));
            records.push(std::mem::take(&mut record));
            at_cell_start = true;
        }
    }
    assert!(!quoted, "unterminated quoted cell");
    assert!(
        record.is_empty() && cell.is_empty(),
        "the last record lacks its CRLF"
    );
    records
}

fn csv(r: &Response) -> Vec<Vec<String>> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let records = parse_csv(&r.body);
    let width = records[0].len();
    for rec in &records {
        assert_eq!(rec.len(), width, "ragged record {rec:?}");
    }
    records
}

/// acme's alice has six events over two days, some flushed to segments and some buffered,
/// some written as line protocol and one through the JSON events endpoint; bob, a line
/// without a user, and globex's alice must stay out of her export.
fn setup() -> TestServer {
    let s = TestServer::start();
    let meter = json!({"name": "latency_sum", "measurement": "api_calls",
                       "aggregation": "sum", "field": "response_time_ms"});
    let r = s
        .request("POST", "/api/v1/tenants/acme/meters")
        .header("content-type", "application/json")
        .send(meter.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let never = json!({"name": "exports", "measurement": "exports", "aggregation": "count"});
    let r = s
        .request("POST", "/api/v1/tenants/acme/meters")
        .header("content-type", "application/json")
        .send(never.to_string());
    assert_eq!(r.status, 201, "{}", r.body);

    write_lines(
        &s,
        &format!(
            "api_calls,tenant=acme,user=alice,endpoint=/old,method=GET response_time_ms=1.5 {}\n\
             api_calls,tenant=acme,user=bob,endpoint=/a,method=GET response_time_ms=99.0 {}\n\
             storage,tenant=acme,user=alice,operation=write size_bytes=1024i {}\n",
            T0 - 2 * DAY,
            T0 + 1000,
            T0 + 1000,
        ),
    );
    s.engine.flush().unwrap();
    write_lines(
        &s,
        &format!(
            "db_queries,tenant=acme,user=alice duration_ms=3.5,rows=7u {}\n\
             api_calls,tenant=acme,user=alice,endpoint=/a,method=POST response_time_ms=12.5,status=200i,ok=true,note=\"hello, \\\"world\\\"\" {}\n\
             storage,tenant=acme,user=alice,operation=read size_bytes=4096i {}\n\
             api_calls,tenant=globex,user=alice,endpoint=/a response_time_ms=5.0 {}\n\
             api_calls,tenant=acme,endpoint=/anon response_time_ms=5.0 {}\n",
            T0 + 2000,
            T0 + 3000,
            T0 + 5000,
            T0 + 1500,
            T0 + 2500,
        ),
    );
    post_events(
        &s,
        &json!([
            {"tenant_id": "acme", "event_type": "api_call", "user_id": "alice",
             "event_id": "ev-1", "timestamp": T0 + 4000,
             "metadata": {"endpoint": "/json", "response_time_ms": 20}},
            {"tenant_id": "acme", "event_type": "api_call", "user_id": "bob",
             "timestamp": T0 + 4500, "metadata": {"endpoint": "/json", "response_time_ms": 2}}
        ]),
    );
    s
}

const ALICE_TIMES: [i64; 6] = [
    T0 - 2 * DAY,
    T0 + 1000,
    T0 + 2000,
    T0 + 3000,
    T0 + 4000,
    T0 + 5000,
];

#[test]
fn json_lines_hold_exactly_the_users_events_in_time_order() {
    let s = setup();
    let r = export(&s, "acme", "alice", "");
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"acme-alice-export.jsonl\"")
    );
    let events = json_lines(&r);
    let times: Vec<i64> = events
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(times, ALICE_TIMES);
    let measurements: Vec<&str> = events
        .iter()
        .map(|e| e["measurement"].as_str().unwrap())
        .collect();
    assert_eq!(
        measurements,
        [
            "api_calls",
            "storage",
            "db_queries",
            "api_calls",
            "api_calls",
            "storage"
        ]
    );
    for e in &events {
        assert_eq!(e["tags"]["user"], "alice", "{e}");
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 7, "{e}");
    }
    assert_eq!(events[0]["time"], "2026-10-30T00:00:00.000000000Z");
    assert_eq!(events[3]["time"], "2026-11-01T00:00:00.000003000Z");

    // Field types survive: float, integer, unsigned, boolean, string.
    let call = &events[3];
    assert_eq!(
        call["tags"],
        json!({"endpoint": "/a", "method": "POST", "user": "alice"})
    );
    assert!(call["fields"]["response_time_ms"].is_f64());
    assert_eq!(call["fields"]["response_time_ms"], 12.5);
    assert!(call["fields"]["status"].is_i64());
    assert_eq!(call["fields"]["status"], 200);
    assert_eq!(call["fields"]["ok"], true);
    assert_eq!(call["fields"]["note"], "hello, \"world\"");
    assert_eq!(call["event_id"], Value::Null);
    assert!(events[2]["fields"]["rows"].is_u64());
    assert_eq!(events[2]["fields"]["rows"], 7);
    // A whole number stays a float when the column is one (`20`, sent as JSON, stored as 20.0).
    let posted = &events[4];
    assert_eq!(posted["event_id"], "ev-1");
    assert!(posted["fields"]["response_time_ms"].is_f64(), "{posted}");
    assert_eq!(posted["fields"]["response_time_ms"].as_f64(), Some(20.0));

    // Meters: what each event adds; meters that do not count it are absent.
    let meters: Vec<&Value> = events.iter().map(|e| &e["meters"]).collect();
    assert_eq!(
        *meters[0],
        json!({"api_calls": 1, "active_users": "alice", "latency_sum": 1.5})
    );
    assert_eq!(
        *meters[1],
        json!({"storage_bytes": 1024.0, "active_users": "alice"})
    );
    assert_eq!(
        *meters[2],
        json!({"db_queries": 1, "active_users": "alice"})
    );
    assert_eq!(
        *meters[3],
        json!({"api_calls": 1, "active_users": "alice", "latency_sum": 12.5})
    );
    assert_eq!(
        *meters[4],
        json!({"api_calls": 1, "active_users": "alice", "latency_sum": 20.0})
    );
    // A read adds nothing to storage_bytes (it counts writes only).
    assert_eq!(*meters[5], json!({"active_users": "alice"}));

    // The explicit format gives the same.
    assert_eq!(export(&s, "acme", "alice", "?format=jsonl").body, r.body);
    // Another tenant's user of the same name sees only her own.
    let other = json_lines(&export(&s, "globex", "alice", ""));
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["timestamp"], T0 + 1500);
    let bob = json_lines(&export(&s, "acme", "bob", ""));
    assert_eq!(bob.len(), 2);
    assert!(bob.iter().all(|e| e["tags"]["user"] == "bob"));
}

/// The CSV cell a JSON value becomes.
fn cell_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

#[test]
fn csv_holds_the_same_events_with_the_union_of_columns() {
    let s = setup();
    let r = export(&s, "acme", "alice", "?format=csv");
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"acme-alice-export.csv\"")
    );
    let records = csv(&r);
    let events = json_lines(&export(&s, "acme", "alice", ""));
    let header = &records[0];
    assert_eq!(
        header,
        &[
            "time",
            "timestamp",
            "measurement",
            "event_id",
            "tag:endpoint",
            "tag:method",
            "tag:operation",
            "tag:user",
            "field:duration_ms",
            "field:note",
            "field:ok",
            "field:response_time_ms",
            "field:rows",
            "field:size_bytes",
            "field:status",
            "meter:api_calls",
            "meter:storage_bytes",
            "meter:db_queries",
            "meter:active_users",
            "meter:latency_sum",
        ]
    );
    assert_eq!(records.len(), 1 + events.len());
    for (rec, e) in records[1..].iter().zip(&events) {
        for (name, cell) in header.iter().zip(rec) {
            let expected = match name.split_once(':') {
                Some(("tag", k)) => cell_of(e["tags"].get(k)),
                Some(("field", k)) => cell_of(e["fields"].get(k)),
                Some(("meter", k)) => cell_of(e["meters"].get(k)),
                _ => cell_of(e.get(name.as_str())),
            };
            // Numbers may be written differently (`1024.0`, `1024`): compare their values.
            match (cell.parse::<f64>(), expected.parse::<f64>()) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{name}: {cell} vs {expected}"),
                _ => assert_eq!(cell, &expected, "{name}"),
            }
        }
    }
    assert_eq!(records[4][9], "hello, \"world\"");
}

#[test]
fn strings_with_commas_quotes_and_line_breaks_survive_csv_quoting() {
    let s = TestServer::start();
    let nasty = [
        "a,b",
        "say \"hi\"",
        "first line\nsecond line",
        "crlf\r\nend",
        "\"",
        ",\"\n",
        "plain",
        "",
    ];
    let mut batch = WriteBatch::new();
    for (i, text) in nasty.iter().enumerate() {
        batch
            .add("acme", "notes", meterdb::Timestamp(T0 + i as i64))
            .tag("user", "carol")
            .tag("label", text)
            .field("text", FieldValueRef::Str(text))
            .event_id(&format!("id,{i}\"\n"));
    }
    let receipt = s.engine.write(batch).unwrap();
    assert_eq!(receipt.written, nasty.len(), "{:?}", receipt.rejected);

    let records = csv(&export(&s, "acme", "carol", "?format=csv"));
    assert_eq!(
        records[0][4..],
        ["tag:label", "tag:user", "field:text", "meter:active_users"]
    );
    assert_eq!(records.len(), 1 + nasty.len());
    for (i, (rec, text)) in records[1..].iter().zip(nasty).enumerate() {
        assert_eq!(rec[3], format!("id,{i}\"\n"));
        assert_eq!(rec[4], text, "tag of {text:?}");
        assert_eq!(rec[6], text, "field of {text:?}");
        assert_eq!(rec[7], "carol");
    }
    let events = json_lines(&export(&s, "acme", "carol", ""));
    let texts: Vec<&str> = events
        .iter()
        .map(|e| e["fields"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, nasty);
}

#[test]
fn start_and_end_restrict_the_time_range() {
    let s = setup();
    let times = |query: &str| -> Vec<i64> {
        json_lines(&export(&s, "acme", "alice", query))
            .iter()
            .map(|e| e["timestamp"].as_i64().unwrap())
            .collect()
    };
    // `end` is exclusive.
    let q = format!("?start={}&end={}", T0 + 1500, T0 + 4000);
    assert_eq!(times(&q), [T0 + 2000, T0 + 3000]);
    let q = format!(
        "?start={}&end={}",
        url_encode("2026-11-01T00:00:00.000002Z"),
        url_encode("2026-11-01T00:00:00.000003001+00:00")
    );
    assert_eq!(times(&q), [T0 + 2000, T0 + 3000]);
    assert_eq!(
        times(&format!("?start={}", T0 + 4000)),
        [T0 + 4000, T0 + 5000]
    );
    assert_eq!(times(&format!("?end={}", T0)), [T0 - 2 * DAY]);
    let csv_rows = csv(&export(
        &s,
        "acme",
        "alice",
        &format!("?format=csv&start={}", T0 + 4000),
    ));
    assert_eq!(csv_rows.len(), 3);
}

fn assert_bad_request(r: &Response, needle: &str) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[test]
fn bad_parameters_are_400s_naming_them() {
    let s = setup();
    assert_bad_request(&export(&s, "acme", "alice", "?format=xml"), "\"format\"");
    assert_bad_request(&export(&s, "acme", "alice", "?format=JSON"), "\"format\"");
    assert_bad_request(
        &export(&s, "acme", "alice", "?start=yesterday"),
        "\"start\"",
    );
    assert_bad_request(&export(&s, "acme", "alice", "?end=1e9"), "\"end\"");
    assert_bad_request(
        &export(&s, "acme", "alice", &format!("?start={T0}&end={T0}")),
        "before",
    );
}

#[test]
fn unknown_users_and_tenants_export_nothing() {
    let s = setup();
    for (tenant, user) in [("acme", "nobody"), ("initech", "alice")] {
        let r = export(&s, tenant, user, "");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, "");
        let r = export(&s, tenant, user, "?format=csv");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, "time,timestamp,measurement,event_id\r\n");
    }
    // A time range without alice's events.
    let r = export(&s, "acme", "alice", &format!("?start={}", T0 + DAY));
    assert_eq!((r.status, r.body.as_str()), (200, ""));
}

#[test]
fn file_names_are_sanitized() {
    let s = setup();
    let r = export(&s, "acme", &url_encode("a\"b/c é"), "?format=csv");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"acme-a_b_c__-export.csv\"")
    );
}

/// Writes `n` events of `user` (and as many of another user, interleaved in time), over two
/// measurements and several flushes, in an order other than time order.
fn write_many(s: &TestServer, user: &str, n: i64) {
    let per_batch = 10_000;
    for part in 0..(n + per_batch - 1) / per_batch {
        let mut batch = WriteBatch::new();
        for i in (part * per_batch..((part + 1) * per_batch).min(n)).rev() {
            // Event i of the user at T0 + 10 i (+ days for the later parts), the other user's
            // in between.
            let t = T0 + (i % 7) * DAY + 10 * i;
            let measurement = if i % 3 == 0 { "storage" } else { "api_calls" };
            batch
                .add("acme", measurement, meterdb::Timestamp(t))
                .tag("user", user)
                .field("seq", FieldValueRef::I64(i));
            batch
                .add("acme", measurement, meterdb::Timestamp(t + 5))
                .tag("user", "other")
                .field("seq", FieldValueRef::I64(-i));
        }
        let receipt = s.engine.write(batch).unwrap();
        assert!(receipt.rejected.is_empty(), "{:?}", receipt.rejected);
        if part % 2 == 0 {
            s.engine.flush().unwrap();
        }
    }
}

fn assert_all_in_order(events: &[Value], n: i64) {
    assert_eq!(events.len() as i64, n);
    let mut seqs: Vec<i64> = Vec::with_capacity(events.len());
    for pair in events.windows(2) {
        assert!(
            pair[0]["timestamp"].as_i64() < pair[1]["timestamp"].as_i64(),
            "{} then {}",
            pair[0],
            pair[1]
        );
    }
    for e in events {
        seqs.push(e["fields"]["seq"].as_i64().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
}

#[test]
fn a_large_export_streams_every_event_in_order() {
    let s = TestServer::start();
    let n = 50_000;
    write_many(&s, "heavy", n);
    let r = export(&s, "acme", "heavy", "");
    assert_eq!(
        r.header("content-length"),
        None,
        "the body is streamed, not sized up front"
    );
    assert_all_in_order(&json_lines(&r), n);
    let records = csv(&export(&s, "acme", "heavy", "?format=csv"));
    assert_eq!(records.len() as i64, 1 + n);
}

#[test]
fn small_scan_windows_still_export_everything_once() {
    // Windows of at most 7 events: thousands of windows, and one nanosecond holding more
    // events than a window.
    let config = ServerConfig {
        query_max_scan_rows: 7,
        ..ServerConfig::default()
    };
    let s = TestServer::with_config(config);
    let n = 3_000;
    write_many(&s, "heavy", n);
    let mut batch = WriteBatch::new();
    for i in 0..20 {
        batch
            .add("acme", "bursts", meterdb::Timestamp(T0 - DAY))
            .tag("user", "burst")
            .field("seq", FieldValueRef::I64(i));
    }
    batch
        .add("acme", "bursts", meterdb::Timestamp(T0 - DAY + 1))
        .tag("user", "burst")
        .field("seq", FieldValueRef::I64(20));
    let receipt = s.engine.write(batch).unwrap();
    assert_eq!(receipt.written, 21);

    assert_all_in_order(&json_lines(&export(&s, "acme", "heavy", "")), n);
    let records = csv(&export(&s, "acme", "heavy", "?format=csv"));
    assert_eq!(records.len() as i64, 1 + n);
    let burst = json_lines(&export(&s, "acme", "burst", ""));
    let mut seqs: Vec<i64> = burst
        .iter()
        .map(|e| e["fields"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.pop(), Some(20), "the later event comes last");
    seqs.sort_unstable();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
}
