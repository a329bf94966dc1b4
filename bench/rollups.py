#!/usr/bin/env python3
"""Q1 and Q2 answered from MeterDB's rollups (the usage API) instead of raw events.

usage: rollups.py --url http://127.0.0.1:8087 --oracle oracle.json --queries meterdb.query.json
                  [--runs 5] [--meter-bytes api_bytes] > rollups.json

R1: hourly count of the biggest tenant's api_calls over the 7 days, from the built-in meter
    `api_calls`; checked against the oracle's Q1.
R2: hourly sum of its api_calls' `bytes`, from a sum meter (`--meter-bytes`, defined before the
    load); checked against MeterDB's own InfluxQL answer to Q2 (raw events), given by --queries.
Each: one warm-up, then the median of --runs. Python 3.11 stdlib only.
"""
import argparse, json, pathlib, statistics, sys, urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "bench"))
from query import get  # the kit's timed GET, so both scripts time alike  # noqa: E402

START, END = "2026-10-25T00:00:00Z", "2026-11-01T00:00:00Z"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--oracle", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--meter-bytes", default="api_bytes")
    a = ap.parse_args()
    o = json.load(open(a.oracle))
    raw = json.load(open(a.queries))["queries"]
    # InfluxQL leaves an hour without events null; the rollups' buckets then hold 0.
    q2 = [v or 0 for v in raw.get("Q2", {}).get("answer") or []]
    expect = {"R1": ("api_calls", o["q1_hourly_counts"]), "R2": (a.meter_bytes, q2)}
    out = {"tenant": o["tenant"], "queries": {}}
    for name, (meter, exp) in expect.items():
        params = {"meter": meter, "start": START, "end": END, "granularity": "hour"}
        url = f"{a.url}/api/v1/tenants/{o['tenant']}/metrics?" + urllib.parse.urlencode(params)
        rec = {"meter": meter}
        try:
            get(url)                                            # warm-up
            times, d = [], None
            for _ in range(a.runs):
                dt, d = get(url)
                times.append(dt)
            ans = [b["value"] for b in d]
            rec.update(median_ms=round(statistics.median(times) * 1000, 2),
                       runs_ms=[round(x * 1000, 2) for x in times], answer=ans,
                       correct=len(ans) == len(exp) and all(x == y for x, y in zip(ans, exp)))
        except Exception as e:                                  # report, do not fake
            rec["error"] = str(e)[:500]
        out["queries"][name] = rec
    print(json.dumps(out))


if __name__ == "__main__":
    main()
