#!/usr/bin/env bash
# MeterDB against InfluxDB 1.6 and VictoriaMetrics 1.79 on the same generated usage data, one after
# the other on this machine, with the same load driver and query script.
#
# usage: bench/compare.sh [EVENTS]          (default 1000000)
#   PEERS="influx vm"   peers to run after MeterDB (PEERS="" runs MeterDB alone)
#   RUNS=5              query repetitions (median reported, after one warm-up)
#   WORK=dir            where data, data directories and results go (default ${TMPDIR:-/tmp}/meterdb-compare)
#   TABLE_ONLY=1        print the table of the last run again, without running anything
#   CHUNK_EVENTS=N      above this many events (default 10000000) the data is generated as files
#                       of N lines and loaded one file after the other (the load driver holds a
#                       whole file in memory); the peers are then skipped
#
# For each system: a fresh data directory, the file loaded over HTTP line protocol (5,000-line
# batches, 4 connections), peak RSS (VmHWM), disk bytes per event once flushed, then Q1..Q6 (median
# of RUNS, answers checked against the oracle). MeterDB runs with durable acks (sync=always); it is
# flushed by a SIGTERM (a clean shutdown) before its disk is measured, then compacted once with
# `meterdb compact` (the pass its server runs every 5 minutes; the peers likewise settle before
# their queries), and its restart time is measured when it starts again for the queries. Q1 and
# Q2 are also answered from MeterDB's rollups (bench/rollups.py: the usage API, a sum meter on
# `bytes` defined before the load). Prints one table with MeterDB's ratio to the best peer for
# each figure. The peers are installed from Debian packages by tests/bench/peers.sh.
set -euo pipefail
EVENTS=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=$ROOT/tests/bench
WORK=${WORK:-${TMPDIR:-/tmp}/meterdb-compare}
PEERS=${PEERS-"influx vm"}
RUNS=${RUNS:-5}
LP=$WORK/data/usage_$EVENTS.lp
ORACLE=$WORK/data/oracle_$EVENTS.json
RES=$WORK/results/$EVENTS
CHUNK_EVENTS=${CHUNK_EVENTS:-10000000}
mkdir -p "$WORK/data" "$RES"
log() { echo "[$(date -u +%T)] $* (loadavg $(cut -d' ' -f1-3 /proc/loadavg))" >&2; }

if [ ! -s "$LP" ] && [ "$EVENTS" -gt "$CHUNK_EVENTS" ]; then
  FILES=("$LP".[0-9][0-9][0-9])
  if [ ! -s "${FILES[0]}" ]; then
    log "generating $EVENTS events in files of $CHUNK_EVENTS"
    python3 "$KIT/gen_usage.py" --events "$EVENTS" --out /dev/stdout |
      split -l "$CHUNK_EVENTS" -d -a 3 - "$LP."
    FILES=("$LP".[0-9][0-9][0-9])
  fi
  [ -s "$ORACLE" ] || { log "oracle"; cat "${FILES[@]}" | python3 "$KIT/oracle.py" /dev/stdin > "$ORACLE"; }
  [ -z "$PEERS" ] || { log "$EVENTS events are loaded in parts: the peers are skipped"; PEERS=""; }
else
  FILES=("$LP")
  [ -s "$LP" ] || { log "generating $EVENTS events"; python3 "$KIT/gen_usage.py" --events "$EVENTS" --out "$LP"; }
  [ -s "$ORACLE" ] || { log "oracle"; python3 "$KIT/oracle.py" "$LP" > "$ORACLE"; }
fi
TENANT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tenant"])' "$ORACLE")

if [ -z "${TABLE_ONLY:-}" ]; then
  log "building MeterDB (release)"
  cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
fi
BIN=$ROOT/target/release/meterdb
DIR=$WORK/meterdb
ADDR=127.0.0.1:8087
URL=http://$ADDR
SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null || true' EXIT
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$SRV/status"; }
wait_ready() { for _ in $(seq 3000); do curl -sf -o /dev/null "$URL/ping" && return 0; sleep 0.01; done; return 1; }
# The kit's data lies 27-34 days before today: keep it from being refused (and compacted away)
# as too old.
export USAGE_TRACKING_EVENTS_RETENTION_DAYS=3650 USAGE_TRACKING_METRICS_RETENTION_DAYS=3650
start() {
  "$BIN" serve --data-dir "$DIR" --http-addr "$ADDR" --sync always --log warn \
    > "$RES/meterdb.log" 2>&1 & SRV=$!
}

if [ -z "${TABLE_ONLY:-}" ]; then
rm -rf "$DIR"
log "meterdb: start"; start; wait_ready
# Q2 from rollups needs a meter summing the biggest tenant's bytes, kept up at ingest.
curl -sf -o /dev/null -XPOST "$URL/api/v1/tenants/$TENANT/meters" -H 'content-type: application/json' \
  --data-binary '{"name":"api_bytes","measurement":"api_calls","aggregation":"sum","field":"bytes"}'
log "meterdb: load (${#FILES[@]} file(s))"
: > "$RES/meterdb.load.parts"
for f in "${FILES[@]}"; do
  python3 "$KIT/load.py" --url "$URL/write?db=bench&precision=ns" --file "$f" --batch 5000 --concurrency 4 \
    | tee -a "$RES/meterdb.load.parts" >&2
done
# One figure for the whole load: the events over the seconds spent sending them (the driver
# reads each file before its clock starts).
python3 - "$RES/meterdb.load.parts" > "$RES/meterdb.load.json" <<'PY'
import json, sys
parts = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ev, s = sum(p["events"] for p in parts), sum(p["seconds"] for p in parts)
print(json.dumps({"events": ev, "seconds": round(s, 3), "events_per_s": round(ev / s),
                  "errors": sum(p["errors"] for p in parts), "files": len(parts)}))
PY
HWM_LOAD=$(hwm_kb)
T0=$(date +%s.%N); kill -TERM "$SRV"; wait "$SRV" || true; SRV=""; T1=$(date +%s.%N)
DISK=$(du -sb "$DIR" | cut -f1)
log "meterdb: flushed and stopped in $(echo "$T1 - $T0" | bc) s, disk $DISK bytes; compact"
# The peers settle (InfluxDB compacts its cache) before their queries; MeterDB's equivalent is
# the compaction pass its server runs every 5 minutes, here run once by hand.
T0=$(date +%s.%N); "$BIN" compact "$DIR" > "$RES/meterdb.compact.log" 2>&1; T1=$(date +%s.%N)
COMPACT=$(printf '%.1f' "$(echo "$T1 - $T0" | bc)")
DISK_COMPACTED=$(du -sb "$DIR" | cut -f1)
log "meterdb: compacted in $COMPACT s, disk $DISK_COMPACTED bytes; restart"
T0=$(date +%s.%N); start; wait_ready; T1=$(date +%s.%N)
RESTART=$(printf '%.3f' "$(echo "$T1 - $T0" | bc)")
log "meterdb: queries"
python3 "$KIT/query.py" --peer influx --url "$URL" --oracle "$ORACLE" --runs "$RUNS" > "$RES/meterdb.query.json"
python3 "$ROOT/bench/rollups.py" --url "$URL" --oracle "$ORACLE" --queries "$RES/meterdb.query.json" \
  --runs "$RUNS" > "$RES/meterdb.rollups.json"
HWM_END=$(hwm_kb)
kill -TERM "$SRV"; wait "$SRV" || true; SRV=""
printf '{"hwm_kb_load":%s,"hwm_kb_end":%s,"disk_bytes":%s,"restart_s":%s,"compact_s":%s,"disk_bytes_compacted":%s,"version":"%s"}\n' \
  "$HWM_LOAD" "$HWM_END" "$DISK" "$RESTART" "$COMPACT" "$DISK_COMPACTED" "$("$BIN" --version | cut -d' ' -f2)" > "$RES/meterdb.server.json"

if [ -n "$PEERS" ]; then
  log "peers: $PEERS"
  PEERS="$PEERS" RUNS="$RUNS" RES="$RES" bash "$KIT/peers.sh" "$LP" "$ORACLE" > "$RES/peers.md"
fi
fi

python3 - "$RES" "$ORACLE" meterdb $PEERS <<'PY'
import json, sys
res, oracle, systems = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3:]
ev = oracle["events"]
rows = {}
for s in systems:
    load = json.load(open(f"{res}/{s}.load.json"))
    srv = json.load(open(f"{res}/{s}.server.json"))
    q = json.load(open(f"{res}/{s}.query.json"))["queries"]
    rows[s] = {
        "ingest": load["events_per_s"], "errors": load["errors"],
        "rss": max(srv["hwm_kb_load"], srv["hwm_kb_end"]) / 1024,
        "bpe": srv["disk_bytes"] / ev,
        "q": {k: (v.get("median_ms"), v.get("correct", "n/a") if "error" not in v else "error") for k, v in q.items()},
    }
peers = [s for s in systems if s != "meterdb"]
print(f"\n{ev:,} events, {oracle['series']:,} tag sets, biggest tenant {oracle['tenant']}\n")
head = ["figure"] + systems + (["MeterDB vs best peer"] if peers else [])
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
def line(name, key, fmt, higher_better):
    vals = [rows[s][key] for s in systems]
    cells = [fmt(v) for v in vals]
    if peers:
        best = (max if higher_better else min)(rows[p][key] for p in peers)
        m = rows["meterdb"][key]
        ratio = (m / best) if higher_better else (best / m if m else float("inf"))
        cells.append(f"{ratio:,.1f}x {'better' if ratio >= 1 else 'worse'}")
    print(f"| {name} | " + " | ".join(cells) + " |")
line("ingest events/s (HTTP, durable acks for MeterDB and InfluxDB)", "ingest", lambda v: f"{v:,.0f}", True)
line("peak RSS MiB", "rss", lambda v: f"{v:,.0f}", False)
line("disk bytes/event after flush", "bpe", lambda v: f"{v:.1f}", False)
for q in ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6"]:
    cells = []
    for s in systems:
        ms, ok = rows[s]["q"].get(q, (None, "error"))
        cells.append("error" if ms is None else f"{ms:,.1f} ms ({'exact' if ok is True else 'n/a' if ok == 'n/a' else 'wrong' if ok is False else ok})")
    if peers:
        ms = rows["meterdb"]["q"].get(q, (None, None))[0]
        best = min((rows[p]["q"].get(q, (None,))[0] for p in peers if rows[p]["q"].get(q, (None,))[0] is not None), default=None)
        cells.append(f"{best / ms:,.1f}x {'faster' if best >= ms else 'slower'}" if ms and best else "-")
    print(f"| {q} median | " + " | ".join(cells) + " |")
try:
    rollups = json.load(open(f"{res}/meterdb.rollups.json"))["queries"]
except FileNotFoundError:
    rollups = {}
for r, what in [("R1", "Q1"), ("R2", "Q2")]:
    if r in rollups:
        v = rollups[r]
        cell = "error" if "error" in v else f"{v['median_ms']:,.2f} ms ({'exact' if v['correct'] else 'wrong'})"
        print(f"| {what} from rollups median | " + " | ".join([cell] + ["-"] * len(peers)) + (" | - |" if peers else " |"))
if "influx" in systems:
    # InfluxDB 1.x is the reference for InfluxQL answers: compare every query's answer.
    mq = json.load(open(f"{res}/meterdb.query.json"))["queries"]
    iq = json.load(open(f"{res}/influx.query.json"))["queries"]
    def same(a, b):
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, float) or isinstance(b, float):
            return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))
        return a == b
    verdict = {q: same(mq[q].get("answer"), iq[q].get("answer")) for q in mq if q in iq}
    print("\nMeterDB's answers equal InfluxDB's: " + ", ".join(f"{q} {'yes' if ok else 'NO'}" for q, ok in verdict.items()))
srv = json.load(open(f"{res}/meterdb.server.json"))
if "compact_s" in srv:
    print(f"\nMeterDB's compaction pass after the load: {float(srv['compact_s']):.1f} s, disk then "
          f"{srv['disk_bytes_compacted'] / ev:.1f} bytes/event (the queries ran after it).")
print(f"\nMeterDB restart after the clean shutdown: {float(srv['restart_s']):.2f} s to answer /ping.")
PY
