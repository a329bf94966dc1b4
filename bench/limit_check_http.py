#!/usr/bin/env python3
"""Limit checks over HTTP on loopback against the real server binary (Python 3.11 stdlib only).

Starts `meterdb serve` (default: target/release/meterdb, build it with `cargo build --release`)
on a temporary data directory, gives 1,000 tenants a monthly hard limit and a daily soft limit on
`api_calls`, writes --events API calls (default 1,000,000) dated in the last 3 hours, spread
Zipf-like (weight 1/rank) over the tenants, with `POST /write`, then issues --checks (default
200,000) `GET /api/v1/tenants/{tenant}/limits/check?meter=api_calls` for uniformly random tenants
from 1, 4 and 16 threads, each with its own keep-alive http.client connection. Each request is
timed on the client; the server's own figure is the difference of its
`meterdb_usage_request_duration_seconds` histogram (`/metrics`) before and after each level.

The client's figures include Python's own cost (http.client parses each answer in Python, and the
threads share the GIL): they bound the server from above. `cargo bench --bench limit_check_http`
(benches/limit_check_http.rs) is the same load from a Rust client, the figure to quote.

    python3 bench/limit_check_http.py [--bin target/release/meterdb] [--checks N] [--clients 1,4,16]
"""

import argparse
import bisect
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

TENANTS = 1000
BATCH = 5000
WARMUP = 2000
HIST = "meterdb_usage_request_duration_seconds_bucket{le=\""


def tenant(i):
    return f"t{i:04d}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn, method, path, body=None, content_type=None):
    headers = {"Content-Type": content_type} if content_type else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        sys.exit(f"{method} {path}: {resp.status} {data[:200]!r}")
    return data


def start_server(binary, data_dir, port):
    env = dict(os.environ, USAGE_TRACKING_EVENTS_RETENTION_DAYS="36500")
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--http-addr", f"127.0.0.1:{port}", "--log", "warn"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            request(conn, "GET", "/ping")
            conn.close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                sys.exit("the server did not answer /ping")
            time.sleep(0.05)


def create_limits(port):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    monthly = json.dumps({"limit_name": "monthly", "limit_type": "hard_limit", "resource_type": "api_calls",
                          "limit_value": 1000000, "unit": "calls", "period_type": "month"})
    daily = json.dumps({"limit_name": "daily", "limit_type": "soft_limit", "resource_type": "api_calls",
                        "limit_value": 20000, "unit": "calls", "period_type": "day"})
    for i in range(TENANTS):
        path = f"/api/v1/tenants/{tenant(i)}/limits"
        request(conn, "POST", path, monthly, "application/json")
        request(conn, "POST", path, daily, "application/json")
    conn.close()


def write_events(port, events):
    weights = [1.0 / k for k in range(1, TENANTS + 1)]
    total = sum(weights)
    cdf, acc = [], 0.0
    for w in weights:
        acc += w / total
        cdf.append(acc)
    rng = random.Random(42)
    now = time.time_ns()
    span = 3 * 3600 * 10**9
    step = span // max(events, 1)
    start = now - span
    endpoints = [("/api/users", "GET"), ("/api/orders", "GET"), ("/api/search", "GET"), ("/api/login", "POST")]
    counts = [0] * TENANTS
    conn = http.client.HTTPConnection("127.0.0.1", port)
    lines = []
    started = time.perf_counter()
    for i in range(events):
        t = min(bisect.bisect_left(cdf, rng.random()), TENANTS - 1)
        counts[t] += 1
        endpoint, method = endpoints[rng.randrange(4)]
        rt = 5 + rng.randrange(20000) / 100
        lines.append(f"api_calls,tenant={tenant(t)},endpoint={endpoint},method={method} "
                     f"response_time_ms={rt} {start + i * step}")
        if len(lines) == BATCH or i + 1 == events:
            request(conn, "POST", "/write", "\n".join(lines).encode(), "text/plain")
            lines.clear()
    took = time.perf_counter() - started
    conn.close()
    print(f"wrote {events} events in {took:.1f} s ({events / took:.0f} events/s, generation included); "
          f"busiest tenant {max(counts)} events, quietest {min(counts)}", file=sys.stderr)
    return max(counts)


def server_histogram(port):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    text = request(conn, "GET", "/metrics").decode()
    conn.close()
    buckets = []
    for line in text.splitlines():
        if line.startswith(HIST):
            le, count = line[len(HIST):].split("\"} ")
            buckets.append((float("inf") if le == "+Inf" else float(le), int(count)))
    return buckets


def bucket_quantile(before, after, q):
    diff = [(a[0], a[1] - b[1]) for b, a in zip(before, after)]
    total = diff[-1][1] if diff else 0
    rank = -(-q * total // 1)
    return next((le for le, c in diff if c >= rank), float("inf"))


def percentile(sorted_ns, q):
    i = min(max(int(-(-q * len(sorted_ns) // 1)), 1), len(sorted_ns)) - 1
    return sorted_ns[i] / 1000


def run_level(port, clients, checks):
    per_client = checks // clients
    barrier = threading.Barrier(clients + 1)
    results = [None] * clients

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        paths = [f"/api/v1/tenants/{tenant(i)}/limits/check?meter=api_calls" for i in range(TENANTS)]
        rng = random.Random(1000 + c)
        for _ in range(WARMUP // clients):
            request(conn, "GET", paths[rng.randrange(TENANTS)])
        times = []
        clock = time.perf_counter_ns
        barrier.wait()  # warmed up; the histogram is read
        barrier.wait()
        for _ in range(per_client):
            path = paths[rng.randrange(TENANTS)]
            t0 = clock()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            times.append(clock() - t0)
            if resp.status != 200:
                sys.exit(f"GET {path}: {resp.status}")
        conn.close()
        results[c] = times

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    before = server_histogram(port)
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    after = server_histogram(port)
    times = sorted(x for r in results for x in r)
    n = len(times)
    print(f"limit check over HTTP (Python client), {clients:>2} client(s), {n} checks: {n / wall:.0f} checks/s; "
          f"client p50 {percentile(times, 0.5):.1f} µs, p90 {percentile(times, 0.9):.1f} µs, "
          f"p99 {percentile(times, 0.99):.1f} µs, p99.9 {percentile(times, 0.999):.1f} µs, "
          f"max {times[-1] / 1000:.1f} µs")
    served = after[-1][1] - before[-1][1]
    us = [bucket_quantile(before, after, q) * 1e6 for q in (0.5, 0.9, 0.99, 0.999)]
    print(f"    server handler ({served} requests, histogram bucket upper bounds): p50 <= {us[0]:.1f} µs, "
          f"p90 <= {us[1]:.1f} µs, p99 <= {us[2]:.1f} µs, p99.9 <= {us[3]:.1f} µs")
    sys.stdout.flush()


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(repo, "target", "release", "meterdb"))
    ap.add_argument("--checks", type=int, default=200000)
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--clients", default="1,4,16")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        proc = start_server(args.bin, data_dir, port)
        try:
            started = time.perf_counter()
            create_limits(port)
            print(f"created {2 * TENANTS} limits in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            busiest = write_events(port, args.events)
            conn = http.client.HTTPConnection("127.0.0.1", port)
            body = request(conn, "GET", f"/api/v1/tenants/{tenant(0)}/limits/check?meter=api_calls")
            conn.close()
            print(f"check of {tenant(0)} ({busiest} events): {body.decode()}", file=sys.stderr)
            if json.loads(body).get("usage") != busiest:
                print("warning: the check's usage is not the number of events written", file=sys.stderr)
            for clients in levels:
                run_level(port, clients, args.checks)
            with open(f"/proc/{proc.pid}/status") as f:
                hwm = next((l.split(None, 1)[1].strip() for l in f if l.startswith("VmHWM")), "?")
            print(f"server VmHWM {hwm}", file=sys.stderr)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
