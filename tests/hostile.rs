//! Hostile and broken clients: each gets a clear error (or its connection closed), nothing
//! stored before is lost, and the server goes on answering the next normal request.
//!
//! - Slow clients: a silent connection and a slowloris trickling header bytes are closed by
//!   the header-read timeout; a slow body is answered 408 by the request timeout; connections
//!   beyond the cap are answered 503.
//! - Query budget: `GROUP BY time(1ns)` over years and a query past its time budget are
//!   answered with errors naming the limit.
//! - Hostile bodies: deeply nested JSON, an enormous JSON array, huge headers and URLs, a
//!   10 MB line, invalid UTF-8. (The gzip bomb is in `tests/server.rs`.)
//! - A write flood against a tiny in-flight budget: 429 with `Retry-After`, and every
//!   acknowledged event stored exactly once.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cli::serve_with;
use common::server::{Response, TestServer, request_at};
use common::url_encode;
use meterdb::server::ServerConfig;

/// 2026-11-01T00:00:00Z in ns: inside the tests' long retention.
const T0: i64 = 1_793_491_200_000_000_000;

fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Sends `request` as raw bytes and reads until the server closes the connection (or 30 s
/// pass). Write errors are ignored: a server refusing the request may close before reading
/// all of it, and its answer is still readable.
fn raw_exchange(url: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(host(url)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True once the peer has closed `stream` (end of stream or reset); false if it is still
/// open after `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Ok(0) => true,
        // An answer (none is expected before the head is complete) counts as still open.
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// The server still serves: a ping and a normal write succeed.
fn assert_serving(base: &str) {
    assert_eq!(request_at(base, "GET", "/ping").call().status, 204);
    let line = format!("alive,tenant=ops ok=1i {T0}\n");
    let r = request_at(base, "POST", "/write").send(line);
    assert_eq!(r.status, 204, "{}", r.body);
}

fn assert_json_error(r: &Response, status: u16, words: &[&str]) {
    assert_eq!(r.status, status, "{}", r.body);
    let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
    for w in words {
        assert!(message.contains(w), "{w:?} not in {message:?}");
    }
}

#[test]
fn slow_and_silent_clients_are_cut_off_by_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--sync",
            "none",
            "--header-timeout-secs",
            "1",
        ],
        &[],
    );
    let mut silent = TcpStream::connect(host(&served.url)).unwrap();
    let mut slow = TcpStream::connect(host(&served.url)).unwrap();
    slow.write_all(b"POST /write HTTP/1.1\r\nHost: meterdb\r\nX-Slow: ")
        .unwrap();
    // The slow client sends a byte every 200 ms, so a timeout that restarted with every byte
    // would never fire; the header timeout counts from the start of the head. 20 s is far
    // beyond the 1 s timeout.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut silent_closed, mut slow_closed) = (false, false);
    while !(silent_closed && slow_closed) && Instant::now() < deadline {
        if !slow_closed {
            slow_closed = slow.write_all(b"a").is_err()
                || closed_within(&mut slow, Duration::from_millis(100));
        }
        if !silent_closed {
            silent_closed = closed_within(&mut silent, Duration::from_millis(100));
        }
    }
    assert!(
        silent_closed,
        "a connection that sent nothing is still open"
    );
    assert!(slow_closed, "a slowloris connection is still open");
    assert_serving(&served.url);
}

#[test]
fn a_slow_body_is_answered_408_by_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--sync",
            "none",
            "--request-timeout-secs",
            "1",
        ],
        &[],
    );
    let mut stream = TcpStream::connect(host(&served.url)).unwrap();
    stream
        .write_all(b"POST /write HTTP/1.1\r\nHost: meterdb\r\nContent-Length: 100000\r\n\r\nslow")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !answer.ends_with(b"}") {
        let _ = stream.write_all(b",");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_serving(&served.url);
    // Nothing of the slow body was stored.
    let q = url_encode("SELECT count(*) FROM slow");
    let r = request_at(&served.url, "GET", &format!("/query?q={q}")).call();
    assert!(!r.body.contains("\"values\""), "{}", r.body);
}

#[test]
fn connections_beyond_the_cap_are_answered_503() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--sync",
            "none",
            "--max-connections",
            "4",
            "--header-timeout-secs",
            "60",
        ],
        &[],
    );
    // Four idle connections hold every slot (the server accepts in order).
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(host(&served.url)).unwrap())
        .collect();
    let answer = raw_exchange(&served.url, b"");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("retry-after: 1"), "{answer:?}");
    assert!(answer.contains("max_connections = 4"), "{answer:?}");
    // Closing them frees the slots.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = raw_exchange(
            &served.url,
            b"GET /ping HTTP/1.1\r\nHost: meterdb\r\nConnection: close\r\n\r\n",
        );
        if answer.starts_with("HTTP/1.1 204") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answer:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_serving(&served.url);
}

/// `n` lines of `api_calls` over `minutes` minutes of tenant `acme`.
fn api_lines(n: usize, minutes: i64) -> String {
    let mut body = String::new();
    for i in 0..n {
        let ts = T0 + (i as i64 % minutes) * 60_000_000_000 + i as i64;
        body.push_str(&format!(
            "api_calls,tenant=acme,endpoint=/e{} response_time_ms={} {ts}\n",
            i % 50,
            i % 997
        ));
    }
    body
}

#[test]
fn queries_beyond_their_budget_get_errors_naming_it_and_the_server_stays_responsive() {
    let s = TestServer::with_config(ServerConfig {
        query_timeout: Duration::from_millis(1),
        ..ServerConfig::default()
    });
    for _ in 0..5 {
        let r = s.request("POST", "/write").send(api_lines(40_000, 1440));
        assert_eq!(r.status, 204, "{}", r.body);
    }
    s.engine.flush().unwrap();
    let q = url_encode(
        "SELECT count(response_time_ms), mean(response_time_ms) FROM api_calls \
         WHERE time >= '2026-11-01T00:00:00Z' AND time < '2026-11-02T00:00:00Z' \
         GROUP BY time(1m), endpoint",
    );
    let r = s.request("GET", &format!("/query?q={q}")).call();
    assert_eq!(r.status, 200, "{}", r.body);
    let error = r.json()["results"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("query timeout") && error.contains("query_timeout_secs"),
        "{}",
        r.body
    );
    // One bucket per nanosecond over six years: refused before anything is allocated.
    let q = url_encode(
        "SELECT count(response_time_ms) FROM api_calls WHERE time >= '2020-01-01T00:00:00Z' \
         AND time < '2026-01-01T00:00:00Z' GROUP BY time(1ns)",
    );
    let r = s.request("GET", &format!("/query?q={q}")).call();
    let error = r.json()["results"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("buckets") && error.contains("larger interval"),
        "{}",
        r.body
    );
    assert_serving(&s.url);
}

#[test]
fn the_query_memory_budget_is_configurable() {
    let s = TestServer::with_config(ServerConfig {
        query_max_rows: 10,
        query_max_cells: 100,
        ..ServerConfig::default()
    });
    let r = s.request("POST", "/write").send(api_lines(1000, 60));
    assert_eq!(r.status, 204, "{}", r.body);
    for (q, setting) in [
        ("SELECT * FROM api_calls", "query_max_rows"),
        (
            "SELECT count(response_time_ms) FROM api_calls WHERE time >= '2026-11-01T00:00:00Z' \
             AND time < '2026-11-01T01:00:00Z' GROUP BY time(1m), endpoint",
            "query_max_cells",
        ),
    ] {
        let r = s
            .request("GET", &format!("/query?q={}", url_encode(q)))
            .call();
        let error = r.json()["results"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(setting), "{q}: {}", r.body);
    }
    let q = url_encode("SELECT * FROM api_calls LIMIT 10");
    let r = s.request("GET", &format!("/query?q={q}")).call();
    assert_eq!(
        r.json()["results"][0]["series"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let s = TestServer::start();
    let arrays = "[".repeat(100_000);
    let r = s.request("POST", "/api/v1/events").send(&arrays);
    assert_json_error(&r, 400, &["recursion limit"]);
    let depth = 50_000;
    let nested = format!(
        "[{{\"tenant_id\":\"acme\",\"event_type\":\"api_call\",\"metadata\":{}1{}}}]",
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    );
    let r = s.request("POST", "/api/v1/events").send(&nested);
    assert_json_error(&r, 400, &["recursion limit"]);
    let limit = format!(
        "{{\"limit_name\":{}\"x\"{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let r = s
        .request("POST", "/api/v1/tenants/acme/limits")
        .send(&limit);
    assert_json_error(&r, 400, &["limit"]);
    let meter = format!(
        "{{\"name\":\"m\",\"measurement\":\"api_calls\",\"aggregation\":\"count\",\"filter\":{}1{}}}",
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    );
    let r = s
        .request("POST", "/api/v1/tenants/acme/meters")
        .send(&meter);
    assert_json_error(&r, 400, &["meter"]);
    assert_serving(&s.url);
}

#[test]
fn an_enormous_json_array_is_answered_413() {
    let s = TestServer::with_config(ServerConfig {
        max_body_bytes: 1 << 20,
        max_in_flight_write_bytes: 8 << 20,
        ..ServerConfig::default()
    });
    let one = "{\"tenant_id\":\"acme\",\"event_type\":\"api_call\",\"quantity\":1},";
    let mut array = String::from("[");
    while array.len() <= 2 << 20 {
        array.push_str(one);
    }
    array.pop();
    array.push(']');
    // The server answers from the Content-Length and closes without reading the body, so the
    // client may fail to send it all: the answer is read after the failed write.
    let request = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: meterdb\r\nContent-Length: {}\r\n\r\n{array}",
        array.len()
    );
    let answer = raw_exchange(&s.url, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(answer.contains("limit of 1048576 bytes"), "{answer:.400}");
    // Without a Content-Length (chunked), the limit holds as the body arrives.
    let mut head = String::from(
        "POST /api/v1/events HTTP/1.1\r\nHost: meterdb\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
    );
    for chunk in array.as_bytes().chunks(64 << 10) {
        head.push_str(&format!("{:x}\r\n", chunk.len()));
        head.push_str(std::str::from_utf8(chunk).unwrap());
        head.push_str("\r\n");
    }
    head.push_str("0\r\n\r\n");
    let answer = raw_exchange(&s.url, head.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert_serving(&s.url);
}

#[test]
fn huge_headers_and_urls_are_refused_before_routing() {
    let s = TestServer::start();
    let header = format!(
        "GET /ping HTTP/1.1\r\nHost: meterdb\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(200 << 10)
    );
    let answer = raw_exchange(&s.url, header.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    let many = format!(
        "GET /ping HTTP/1.1\r\nHost: meterdb\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let answer = raw_exchange(&s.url, many.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    let url = format!(
        "GET /query?q={} HTTP/1.1\r\nHost: meterdb\r\n\r\n",
        "x".repeat(200 << 10)
    );
    let answer = raw_exchange(&s.url, url.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 414"),
        "{answer:?}"
    );
    assert_serving(&s.url);
}

#[test]
fn a_ten_megabyte_line_is_refused_with_a_short_quote() {
    let s = TestServer::start();
    let huge_string = format!(
        "big,tenant=acme s=\"{}\" {T0}\nbig,tenant=acme s=\"ok\" {}\n",
        "x".repeat(10 << 20),
        T0 + 1
    );
    let r = s.request("POST", "/write").send(&huge_string);
    assert_eq!(r.status, 400, "{:.300}", r.body);
    assert!(
        r.body.len() < 4096,
        "the answer quotes too much: {} bytes",
        r.body.len()
    );
    let answer = r.json();
    assert_eq!(answer["accepted"], 1, "{}", r.body);
    assert_eq!(answer["rejected"][0]["line"], 1, "{}", r.body);
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("the limit is 65536"),
        "{}",
        r.body
    );
    let garbage = "y".repeat(10 << 20);
    let r = s.request("POST", "/write").send(&garbage);
    assert_eq!(r.status, 400, "{:.300}", r.body);
    assert!(
        r.body.len() < 4096,
        "the answer quotes too much: {} bytes",
        r.body.len()
    );
    assert_eq!(r.json()["rejected"][0]["line"], 1, "{}", r.body);
    assert_serving(&s.url);
}

#[test]
fn invalid_utf8_is_refused_by_line_and_in_json_and_queries() {
    let s = TestServer::start();
    let mut body = b"bad,tenant=acme,endpoint=\xff\xfe v=1 ".to_vec();
    body.extend_from_slice(format!("{T0}\ngood,tenant=acme v=2 {T0}\n").as_bytes());
    let r = s.request("POST", "/write").send(&body);
    assert_eq!(r.status, 400, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["accepted"], 1, "{}", r.body);
    assert_eq!(answer["rejected"][0]["line"], 1, "{}", r.body);
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("invalid utf-8"),
        "{}",
        r.body
    );
    let r = s
        .request("POST", "/api/v1/events")
        .send(b"[{\"tenant_id\":\"acme\",\"event_type\":\"\xff\"}]");
    assert_json_error(&r, 400, &["not a JSON array of events"]);
    let r = s
        .request("POST", "/api/v1/tenants/acme/limits")
        .send(b"{\"limit_name\":\"\xff\"}");
    assert_json_error(&r, 400, &["limit"]);
    let r = s
        .request("GET", "/query?q=SELECT%20%FF%FE%20FROM%20x")
        .call();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().is_some(), "{}", r.body);
    assert_serving(&s.url);
}

#[test]
fn a_write_flood_gets_429_with_retry_after_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--sync",
            "always",
            "--max-body-bytes",
            "65536",
            "--max-in-flight-write-bytes",
            "65536",
        ],
        &[],
    );
    const THREADS: usize = 8;
    const BATCHES: usize = 25;
    const LINES: usize = 300;
    let url = served.url.clone();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let (mut busy, mut retry_after_ok) = (0usize, true);
                for b in 0..BATCHES {
                    let mut body = String::new();
                    for l in 0..LINES {
                        let ts = T0 + ((t * BATCHES + b) * LINES + l) as i64;
                        body.push_str(&format!(
                            "flood,tenant=t{t},batch=b{b} n={l}i,pad=\"{:032}\" {ts}\n",
                            l
                        ));
                    }
                    // Retries at once on 429: the flood respects nothing.
                    loop {
                        let r = request_at(&url, "POST", "/write").send(&body);
                        match r.status {
                            204 => break,
                            429 => {
                                busy += 1;
                                retry_after_ok &= r.header("retry-after") == Some("1");
                            }
                            other => panic!("unexpected {other}: {}", r.body),
                        }
                    }
                }
                (busy, retry_after_ok)
            })
        })
        .collect();
    let (mut busy, mut retry_after_ok) = (0, true);
    for w in workers {
        let (b, ok) = w.join().unwrap();
        busy += b;
        retry_after_ok &= ok;
    }
    assert!(busy > 0, "no write was refused: the budget did not bite");
    assert!(retry_after_ok, "a 429 came without Retry-After: 1");
    // Every acknowledged line exactly once: none lost, none stored by a refused attempt.
    let q = url_encode("SELECT count(n) FROM flood");
    let r = request_at(&served.url, "GET", &format!("/query?q={q}")).call();
    let count = r.json()["results"][0]["series"][0]["values"][0][1].as_u64();
    assert_eq!(
        count,
        Some((THREADS * BATCHES * LINES) as u64),
        "{}",
        r.body
    );
    assert_serving(&served.url);
}
