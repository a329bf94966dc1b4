//! `GET /api/v1/tenants/{tenant}/limits/check?meter=api_calls` over HTTP on loopback, against
//! the real server binary: starts `meterdb serve` (the release build cargo makes for benches)
//! on a temporary data directory, gives 1,000 tenants a monthly hard limit and a daily soft
//! limit on `api_calls`, writes 1,000,000 events spread Zipf-like over the tenants (dated in the
//! last 3 hours) with `POST /write`, then times checks of uniformly random tenants from 1, 4
//! and 16 clients, each on its own keep-alive connection. Each request is timed on the client
//! (send, read the whole answer); the server's own figure is read from the difference of its
//! `meterdb_usage_request_duration_seconds` histogram (`/metrics`) before and after each level.
//! Target: client p99 <= 300 µs.
//!
//! `cargo bench --bench limit_check_http`; `METERDB_BENCH_CHECKS` (default 200000) checks per
//! level, `METERDB_BENCH_EVENTS` (default 1000000) events, `METERDB_BENCH_CLIENTS` (default
//! `1,4,16`) the levels, `METERDB_BIN` another server binary.

#[path = "support/rng.rs"]
mod rng;
#[path = "support/server.rs"]
mod server;
use server::Server;

use rng::Rng;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Barrier};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const TENANTS: usize = 1_000;
const BATCH: usize = 5_000;
const WARMUP: usize = 2_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn tenant(i: usize) -> String {
    format!("t{i:04}")
}

/// The server process; killed when dropped.
fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: &str) {
    let resp = agent
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(resp.status().is_success(), "POST {url}: {}", resp.status());
}

fn create_limits(url: &str) {
    let agent = ureq::Agent::new_with_defaults();
    for i in 0..TENANTS {
        let limits = format!("{url}/api/v1/tenants/{}/limits", tenant(i));
        post(
            &agent,
            &limits,
            "application/json",
            r#"{"limit_name":"monthly","limit_type":"hard_limit","resource_type":"api_calls","limit_value":1000000,"unit":"calls","period_type":"month"}"#,
        );
        post(
            &agent,
            &limits,
            "application/json",
            r#"{"limit_name":"daily","limit_type":"soft_limit","resource_type":"api_calls","limit_value":20000,"unit":"calls","period_type":"day"}"#,
        );
    }
}

/// Writes `events` API calls dated in the last 3 hours (distinct timestamps), tenant rank k
/// drawn with weight 1/k (Zipf, s = 1). Returns the most frequent tenant's count.
fn write_events(url: &str, events: usize) -> usize {
    let weights: Vec<f64> = (1..=TENANTS).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(TENANTS);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let span: i64 = 3 * 3_600_000_000_000;
    let step = span / events.max(1) as i64;
    let start = now - span;
    let endpoints = ["/api/users", "/api/orders", "/api/search", "/api/login"];
    let methods = ["GET", "GET", "GET", "POST"];
    let mut rng = Rng(42);
    let mut counts = vec![0usize; TENANTS];
    let agent = ureq::Agent::new_with_defaults();
    let write = format!("{url}/write");
    let mut body = String::with_capacity(BATCH * 100);
    let started = Instant::now();
    for i in 0..events {
        let u = rng.unit();
        let t = cdf.partition_point(|&c| c < u).min(TENANTS - 1);
        counts[t] += 1;
        let e = rng.below(endpoints.len());
        let rt = 5.0 + rng.below(20_000) as f64 / 100.0;
        use std::fmt::Write;
        writeln!(
            body,
            "api_calls,tenant={},endpoint={},method={} response_time_ms={rt} {}",
            tenant(t),
            endpoints[e],
            methods[e],
            start + i as i64 * step
        )
        .unwrap();
        if (i + 1) % BATCH == 0 || i + 1 == events {
            post(&agent, &write, "text/plain", &body);
            body.clear();
        }
    }
    let took = started.elapsed();
    eprintln!(
        "wrote {events} events in {took:.1?} ({:.0} events/s); busiest tenant {} events, quietest {}",
        events as f64 / took.as_secs_f64(),
        counts.iter().max().unwrap(),
        counts.iter().min().unwrap()
    );
    *counts.iter().max().unwrap()
}

/// The cumulative buckets `(le, count)` of `meterdb_usage_request_duration_seconds`.
fn server_histogram(url: &str) -> Vec<(f64, u64)> {
    let text = ureq::get(format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let mut buckets = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("meterdb_usage_request_duration_seconds_bucket{le=\"")
        else {
            continue;
        };
        let (le, count) = rest.split_once("\"} ").unwrap();
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        buckets.push((le, count.trim().parse().unwrap()));
    }
    buckets
}

/// The upper bound of the bucket holding quantile `q` of `after - before`.
fn bucket_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let diff: Vec<(f64, u64)> = before
        .iter()
        .zip(after)
        .map(|(b, a)| (a.0, a.1 - b.1))
        .collect();
    let total = diff.last().map_or(0, |d| d.1);
    let rank = (q * total as f64).ceil() as u64;
    diff.iter()
        .find(|d| d.1 >= rank)
        .map_or(f64::INFINITY, |d| d.0)
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn run_level(url: &str, clients: usize, checks: usize) {
    let per_client = checks / clients;
    // Clients warm up, wait while the histogram is read, then start together.
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let barrier = barrier.clone();
            let url = url.to_owned();
            std::thread::spawn(move || {
                // One agent per client: one keep-alive connection, reused.
                let agent = ureq::Agent::new_with_defaults();
                let urls: Vec<String> = (0..TENANTS)
                    .map(|i| {
                        format!(
                            "{url}/api/v1/tenants/{}/limits/check?meter=api_calls",
                            tenant(i)
                        )
                    })
                    .collect();
                let mut rng = Rng(1000 + c as u64);
                let check = |rng: &mut Rng| {
                    let mut resp = agent.get(&urls[rng.below(TENANTS)]).call().unwrap();
                    let body = resp.body_mut().read_to_string().unwrap();
                    debug_assert!(body.contains("\"allowed\""));
                    body.len()
                };
                for _ in 0..WARMUP / clients {
                    check(&mut rng);
                }
                let mut times = Vec::with_capacity(per_client);
                barrier.wait();
                barrier.wait();
                for _ in 0..per_client {
                    let started = Instant::now();
                    std::hint::black_box(check(&mut rng));
                    times.push(started.elapsed().as_nanos() as u32);
                }
                times
            })
        })
        .collect();
    barrier.wait();
    let before = server_histogram(url);
    barrier.wait();
    let started = Instant::now();
    let mut times: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let wall = started.elapsed();
    let after = server_histogram(url);
    times.sort_unstable();
    let n = times.len();
    println!(
        "limit check over HTTP, {clients:>2} client(s), {n} checks: {:.0} checks/s; client p50 {:.1} µs, \
         p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        n as f64 / wall.as_secs_f64(),
        percentile(&times, 0.50),
        percentile(&times, 0.90),
        percentile(&times, 0.99),
        percentile(&times, 0.999),
        *times.last().unwrap() as f64 / 1000.0,
    );
    let served = after.last().map_or(0, |a| a.1) - before.last().map_or(0, |b| b.1);
    let us = |q| bucket_quantile(&before, &after, q) * 1e6;
    println!(
        "    server handler ({served} requests, histogram bucket upper bounds): p50 <= {:.1} µs, \
         p90 <= {:.1} µs, p99 <= {:.1} µs, p99.9 <= {:.1} µs",
        us(0.50),
        us(0.90),
        us(0.99),
        us(0.999),
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let checks: usize = env_or("METERDB_BENCH_CHECKS", 200_000);
    let events: usize = env_or("METERDB_BENCH_EVENTS", 1_000_000);
    let levels: Vec<usize> = std::env::var("METERDB_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,4,16".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("METERDB_BENCH_CLIENTS: a list like 1,4,16")
        })
        .collect();
    let server = Server::start(&[]);
    let started = Instant::now();
    create_limits(&server.url);
    eprintln!(
        "created {} limits in {:.1?}",
        2 * TENANTS,
        started.elapsed()
    );
    let busiest = write_events(&server.url, events);
    // The busiest tenant's check: its usage must show the events just written.
    let body = ureq::get(format!(
        "{}/api/v1/tenants/{}/limits/check?meter=api_calls",
        server.url,
        tenant(0)
    ))
    .call()
    .unwrap()
    .into_body()
    .read_to_string()
    .unwrap();
    eprintln!("check of {} ({busiest} events): {body}", tenant(0));
    let usage = serde_json::from_str::<serde_json::Value>(&body).unwrap()["usage"].as_f64();
    // Equal unless the 3 hours of events straddle the deciding limit's period start.
    if usage != Some(busiest as f64) {
        eprintln!("warning: the check's usage {usage:?} is not the {busiest} events written");
    }
    for clients in levels {
        run_level(&server.url, clients, checks);
    }
    let rss = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .ok()
        .and_then(|s| {
            BufReader::new(s.as_bytes())
                .lines()
                .map_while(Result::ok)
                .find(|l| l.starts_with("VmHWM"))
        });
    if let Some(rss) = rss {
        eprintln!(
            "server {}",
            rss.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
}
