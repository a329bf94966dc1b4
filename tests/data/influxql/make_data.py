#!/usr/bin/env python3
"""Writes data.lp, the dataset of the InfluxQL differential test (tests/influxql_compat.rs).

Deterministic (fixed seed, standard library only): run `python3 make_data.py > data.lp`.

What it holds, and why:
- four tenants; every line has a `tenant` tag (MeterDB reads it as the tenant, InfluxDB as a tag);
- measurements api_calls, storage and db_queries with float, integer, string and boolean fields,
  each field keeping one type everywhere;
- an `event_id` string field on most lines (MeterDB's event id, InfluxDB's string field);
- some tags missing on some lines (`region`, `user`, `cache`), for `tag = ''` and GROUP BY;
- irregular times over five days (2026-10-23 to 2026-10-27, across the Europe/Paris DST change
  of 2026-10-25), with empty hours and a whole tenant-day missing, for fill();
- equal timestamps in different series; never two lines of one series at one time (InfluxDB
  would merge them into one point, MeterDB keeps both).
"""
import random

rng = random.Random(20261025)

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9
START = 1_792_713_600 * 10**9  # 2026-10-23T00:00:00Z
DAYS = 5

TENANTS = ["acme", "globex", "initech", "umbrella"]
ENDPOINTS = ["/api/users", "/api/orders", "/api/search", "/api/login", "/api/export"]
METHODS = ["GET", "POST", "DELETE"]
REGIONS = ["eu-west", "us-east", "ap-south"]
USERS = ["u1", "u2", "u3", "u4", "u5", "u6"]
OPERATIONS = ["read", "write", "delete"]
BUCKETS = ["media", "backups", "logs"]
DBS = ["main", "analytics"]
QUERY_TYPES = ["select", "insert", "update"]

used = set()
lines = []
event_no = 0


def event_id():
    global event_no
    event_no += 1
    return "ev-%06d" % event_no


def esc(v):
    return v.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=")


def emit(measurement, tags, fields, ts):
    tags = sorted((k, v) for k, v in tags.items() if v is not None)
    key = (measurement, tuple(tags), ts)
    if key in used:
        return False
    used.add(key)
    tag_s = "".join(",%s=%s" % (k, esc(v)) for k, v in tags)
    field_s = ",".join("%s=%s" % (k, v) for k, v in fields)
    lines.append("%s%s %s %d" % (measurement, tag_s, field_s, ts))
    return True


def times(n, day):
    """n irregular times in a day, hours 5-6 (UTC) left empty, on whole milliseconds."""
    out = []
    while len(out) < n:
        hour = rng.randrange(24)
        if hour in (5, 6):
            continue
        t = START + day * DAY + hour * HOUR + rng.randrange(3600 * 1000) * 10**6
        out.append(t)
    return out


def api_call(tenant, ts):
    tags = {
        "tenant": tenant,
        "endpoint": rng.choice(ENDPOINTS),
        "method": rng.choice(METHODS),
        "region": rng.choice(REGIONS) if rng.random() < 0.8 else None,
        "user": rng.choice(USERS) if rng.random() < 0.9 else None,
    }
    status = rng.choice([200, 200, 200, 201, 204, 400, 404, 500])
    fields = [
        ("response_time_ms", "%.3f" % rng.uniform(1, 900)),
        ("status", "%di" % status),
        ("bytes", "%di" % rng.randrange(0, 50_000)),
        ("cached", "true" if rng.random() < 0.3 else "false"),
    ]
    if status >= 400:
        fields.append(("error", '"%s"' % rng.choice(["bad request", "not found", "boom"])))
    if rng.random() < 0.95:
        fields.append(("event_id", '"%s"' % event_id()))
    return emit("api_calls", tags, fields, ts)


def storage(tenant, ts):
    tags = {
        "tenant": tenant,
        "operation": rng.choice(OPERATIONS),
        "bucket": rng.choice(BUCKETS),
        "cache": rng.choice(["hit", "miss"]) if rng.random() < 0.5 else None,
    }
    fields = [
        ("size_bytes", "%di" % rng.randrange(1, 10_000_000)),
        ("duration_ms", "%.2f" % rng.uniform(0.1, 250)),
        ("event_id", '"%s"' % event_id()),
    ]
    return emit("storage", tags, fields, ts)


def db_query(tenant, ts):
    tags = {
        "tenant": tenant,
        "db": rng.choice(DBS),
        "query_type": rng.choice(QUERY_TYPES),
    }
    fields = [
        ("rows", "%di" % rng.randrange(0, 5000)),
        ("duration_ms", "%.2f" % rng.expovariate(1 / 40)),
        ("slow", "true" if rng.random() < 0.1 else "false"),
    ]
    if rng.random() < 0.5:
        fields.append(("event_id", '"%s"' % event_id()))
    return emit("db_queries", tags, fields, ts)


for day in range(DAYS):
    for t_idx, tenant in enumerate(TENANTS):
        if tenant == "umbrella" and day == 2:
            continue  # a whole tenant-day without data
        volume = 1 + t_idx % 3
        for ts in times(90 * volume, day):
            api_call(tenant, ts)
        for ts in times(25 * volume, day):
            storage(tenant, ts)
        for ts in times(30, day):
            db_query(tenant, ts)
    # Equal timestamps in different series: the same instant for every tenant.
    shared = times(8, day)
    for ts in shared:
        for tenant in TENANTS:
            api_call(tenant, ts)
            db_query(tenant, ts)

rng.shuffle(lines)
print("\n".join(lines))
