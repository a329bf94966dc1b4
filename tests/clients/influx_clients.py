"""Real InfluxDB client libraries against a running MeterDB: the 2.x client writes through
/api/v2/write, the 1.x client writes through /write and reads back through /query.

usage: influx_clients.py http://127.0.0.1:PORT   (exits non-zero on the first mismatch)
"""
import sys
from urllib.parse import urlparse

from influxdb import InfluxDBClient
from influxdb_client import InfluxDBClient as InfluxDB2Client, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

url = sys.argv[1]
u = urlparse(url)
T0 = 1793491200  # 2026-11-01T00:00:00Z


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")
    print(f"ok: {what}")


# 2.x client: points with tags and typed fields, through /api/v2/write.
with InfluxDB2Client(url=url, token="unused", org="acme-org") as c2:
    w = c2.write_api(write_options=SYNCHRONOUS)
    points = [
        Point("api_calls").tag("tenant", "acme").tag("endpoint", f"/e{i % 3}")
        .field("response_time_ms", 10.0 + i).field("bytes", i * 100)
        .field("event_id", f"v2-{i}").time(T0 + i * 60, WritePrecision.S)
        for i in range(30)
    ]
    w.write(bucket="usage", record=points, write_precision=WritePrecision.S)

# 1.x client: JSON points (converted to line protocol by the client), through /write.
c1 = InfluxDBClient(host=u.hostname, port=u.port, database="usage")
check("ping answers a 1.x version", c1.ping().startswith("1."), True)
ok = c1.write_points(
    [
        {
            "measurement": "api_calls",
            "tags": {"tenant": "globex", "endpoint": "/e0"},
            "time": (T0 + i * 60) * 10**9,
            "fields": {"response_time_ms": 5.0 + i, "bytes": i},
        }
        for i in range(12)
    ],
    time_precision="n",
)
check("1.x write_points", ok, True)

# Reads through the 1.x client's /query.
rs = c1.query(
    "SELECT count(response_time_ms) FROM api_calls WHERE tenant = 'acme' "
    "AND time >= '2026-11-01T00:00:00Z' AND time < '2026-11-02T00:00:00Z'"
)
check("count of acme's calls", [p["count"] for p in rs.get_points()], [30])
rs = c1.query(
    "SELECT sum(bytes) FROM api_calls WHERE time >= '2026-11-01T00:00:00Z' "
    "AND time < '2026-11-02T00:00:00Z' GROUP BY tenant"
)
sums = {k[1]["tenant"]: [p["sum"] for p in v] for k, v in rs.items()}
check("sum of bytes per tenant", sums, {"acme": [sum(i * 100 for i in range(30))], "globex": [sum(range(12))]})
rs = c1.query(
    "SELECT max(response_time_ms) FROM api_calls WHERE tenant = 'acme' AND "
    "time >= '2026-11-01T00:00:00Z' AND time < '2026-11-01T00:30:00Z' GROUP BY time(10m)",
    epoch="s",
)
check("max per 10 minutes", [(p["time"], p["max"]) for p in rs.get_points()],
      [(T0, 19.0), (T0 + 600, 29.0), (T0 + 1200, 39.0)])
check("SHOW MEASUREMENTS", sorted(m["name"] for m in c1.get_list_measurements()), ["api_calls"])
rs = c1.query('SHOW TAG VALUES FROM "api_calls" WITH KEY = "endpoint"')
check("SHOW TAG VALUES", sorted(p["value"] for p in rs.get_points()), ["/e0", "/e1", "/e2"])
print("all client checks passed")
