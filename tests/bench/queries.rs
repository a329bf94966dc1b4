//! The six benchmark queries of the usage-data kit (its `query.py`, `influx_queries`), shared
//! by `tests/bench_queries.rs` and `benches/select.rs`.

/// Q1..Q6 for tenant `t`, exactly as the kit's query script builds them.
pub fn queries(t: &str) -> Vec<(&'static str, String)> {
    let (s, e, e1) = (
        "'2026-10-25T00:00:00Z'",
        "'2026-11-01T00:00:00Z'",
        "'2026-10-31T00:00:00Z'",
    );
    let w = format!("tenant='{t}' AND time >= {s} AND time < {e}");
    vec![
        (
            "Q1",
            format!("SELECT COUNT(response_time_ms) FROM api_calls WHERE {w} GROUP BY time(1h)"),
        ),
        (
            "Q2",
            format!("SELECT SUM(bytes) FROM api_calls WHERE {w} GROUP BY time(1h)"),
        ),
        (
            "Q3",
            format!(
                "SELECT TOP(c, endpoint, 10) FROM (SELECT COUNT(response_time_ms) AS c FROM api_calls \
                 WHERE {w} GROUP BY endpoint) WHERE time >= {s} AND time < {e}"
            ),
        ),
        (
            "Q4",
            format!(
                "SELECT PERCENTILE(response_time_ms, 95) FROM api_calls WHERE {w} GROUP BY time(1d)"
            ),
        ),
        (
            "Q5",
            format!(
                "SELECT COUNT(c) FROM (SELECT COUNT(response_time_ms) AS c FROM api_calls WHERE {w} \
                 GROUP BY time(1d), \"user\") WHERE time >= {s} AND time < {e} GROUP BY time(1d)"
            ),
        ),
        (
            "Q6",
            format!(
                "SELECT COUNT(response_time_ms) FROM api_calls WHERE time >= {e1} AND time < {e}"
            ),
        ),
    ]
}
