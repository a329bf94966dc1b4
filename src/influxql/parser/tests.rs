use super::*;

#[test]
fn smoke() {
    for q in [
        "SELECT COUNT(response_time_ms) FROM api_calls WHERE tenant='t1' AND time >= '2026-10-25T00:00:00Z' AND time < '2026-11-01T00:00:00Z' GROUP BY time(1h)",
        "SELECT TOP(c, endpoint, 10) FROM (SELECT COUNT(response_time_ms) AS c FROM api_calls WHERE tenant='t' GROUP BY endpoint) WHERE time >= 'a' AND time < 'b'",
        "SELECT mean(\"response_time_ms\") FROM \"api_calls\" WHERE time >= 1700000000000ms and time <= 1700003600000ms GROUP BY time(1m), \"endpoint\" fill(null)",
        "SHOW TAG VALUES FROM \"api_calls\" WITH KEY = \"endpoint\" WHERE \"tenant\" = 'acme'",
        "SHOW MEASUREMENTS WITH MEASUREMENT =~ /api/ LIMIT 100",
        "select -x, +y, - 5, count(distinct(\"user\")), distinct z from \"db\"..m, a.b.c, /x\\/y/ where a =~ /re/ + 1 and time > now() - 7d group by time(1h, -15m), * fill(-1) order by time desc limit 1 offset 2 slimit 3 soffset 4 tz('Europe/Paris')",
    ] {
        match parse_query(q) {
            Ok(st) => {
                let printed = st[0].to_string();
                eprintln!("{q}\n  -> {printed}");
                assert_eq!(parse_query(&printed), Ok(st));
            }
            Err(e) => panic!("{q}: {e}"),
        }
    }
}
