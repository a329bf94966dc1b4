#!/usr/bin/env bash
# Records InfluxDB 1.x's answers to queries.txt over data.lp into expected.json, the reference of
# the differential test tests/influxql_compat.rs. Re-runnable by anyone with `influxd` (1.6.x) on
# the PATH; needs curl and python3 (standard library only).
#
# usage: tests/data/influxql/record.sh
#
# Starts its own influxd on 127.0.0.1:38086 (bind address 127.0.0.1:38088) with a temporary data
# directory, creates the database `meterdb` (the one name MeterDB's SHOW DATABASES answers), loads
# data.lp at precision=ns, then runs every query of queries.txt with epoch=ns, and the queries
# marked `[rfc3339]` also without epoch (RFC 3339 times). Stops only the influxd it started.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HTTP=127.0.0.1:38086
URL=http://$HTTP
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meterdb-influxql-record.XXXXXX")
SRV=""
cleanup() {
  if [ -n "$SRV" ]; then kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

cat > "$TMP/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:38088"
[meta]
  dir = "$TMP/meta"
[data]
  dir = "$TMP/data"
  wal-dir = "$TMP/wal"
  max-series-per-database = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "$HTTP"
  log-enabled = false
CONF

influxd run -config "$TMP/influxdb.conf" > "$TMP/influxd.log" 2>&1 &
SRV=$!
for _ in $(seq 300); do curl -sf -o /dev/null "$URL/ping" && break; sleep 0.1; done
curl -sf -o /dev/null "$URL/ping" || { cat "$TMP/influxd.log" >&2; exit 1; }
influxd version >&2 || true

curl -sf -XPOST "$URL/query" --data-urlencode 'q=CREATE DATABASE meterdb' > /dev/null
curl -sf -XPOST "$URL/write?db=meterdb&precision=ns" --data-binary @"$HERE/data.lp"

python3 - "$URL" "$HERE/queries.txt" "$HERE/expected.json" <<'PY'
import json, sys, urllib.parse, urllib.request

url, queries_path, out_path = sys.argv[1:4]
RFC = "[rfc3339]"

def ask(query, epoch):
    params = {"db": "meterdb", "q": query}
    if epoch:
        params["epoch"] = epoch
    req = urllib.request.Request(url + "/query", data=urllib.parse.urlencode(params).encode(),
                                 method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:  # a query that does not parse answers 400 + JSON
        return json.loads(e.read())

cases = []
with open(queries_path) as f:
    for line in f:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rfc = line.startswith(RFC)
        query = line[len(RFC):].strip() if rfc else line
        cases.append({"query": query, "epoch": "ns", "response": ask(query, "ns")})
        if rfc:
            cases.append({"query": query, "epoch": None, "response": ask(query, None)})

with open(out_path, "w") as f:
    json.dump(cases, f, indent=1, sort_keys=True)
    f.write("\n")
print("recorded %d answers into %s" % (len(cases), out_path), file=sys.stderr)
PY
