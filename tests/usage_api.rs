//! The usage API under `/api/v1/tenants/{tenant}/` end to end, over loopback: meters (with
//! backfill), current usage, metrics, limits CRUD, limit checks, errors, authentication.
//!
//! Events are dated relative to the real clock (the server's), a few hours back at most, so
//! that retention rules relative to the server clock never drop them; ranges asked about are
//! explicit, so that answers do not depend on when the test runs.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::server::{Response, TestServer};
use meterdb::server::ServerConfig;
use meterdb::usage::UsageSettings;
use serde_json::{Value, json};

const HOUR_NS: i64 = 3_600_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn get(s: &TestServer, path: &str) -> Response {
    s.request("GET", path).call()
}

fn send(s: &TestServer, method: &str, path: &str, body: &Value) -> Response {
    s.request(method, path)
        .header("content-type", "application/json")
        .send(body.to_string())
}

/// Posts JSON events; they must all be stored.
fn events(s: &TestServer, body: &Value) {
    let r = send(s, "POST", "/api/v1/events", body);
    assert_eq!(r.status, 204, "{}", r.body);
}

/// Asserts a JSON error answer with `status` whose message contains `needle`.
fn assert_error(r: &Response, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let body = r.json();
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    assert!(body["code"].is_string(), "{body}");
}

#[test]
fn a_custom_meter_counts_events_stored_before_it_existed() {
    let s = TestServer::start();
    let t0 = HOUR_NS * (now_ns() / HOUR_NS) - 3 * HOUR_NS;
    events(
        &s,
        &json!([
            {"tenant_id": "acme", "event_type": "api_call", "timestamp": t0 + 60_000_000_000,
             "metadata": {"endpoint": "/a", "response_time_ms": 10}},
            {"tenant_id": "acme", "event_type": "api_call", "timestamp": t0 + 120_000_000_000,
             "metadata": {"endpoint": "/b", "response_time_ms": 30}},
            {"tenant_id": "acme", "event_type": "api_call", "timestamp": t0 + HOUR_NS + 5,
             "metadata": {"endpoint": "/a", "response_time_ms": 5.5}},
            {"tenant_id": "globex", "event_type": "api_call", "timestamp": t0 + 60_000_000_000,
             "metadata": {"endpoint": "/a", "response_time_ms": 1000}}
        ]),
    );
    let names: Vec<String> = get(&s, "/api/v1/tenants/acme/meters")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["api_calls", "storage_bytes", "db_queries", "active_users"]
    );

    let meter = json!({"name": "latency_ms", "measurement": "api_calls",
                       "aggregation": "sum", "field": "response_time_ms"});
    let r = send(&s, "POST", "/api/v1/tenants/acme/meters", &meter);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["name"], "latency_ms");
    let again = send(&s, "POST", "/api/v1/tenants/acme/meters", &meter);
    assert_error(&again, 409, "already has a meter named \"latency_ms\"");
    let r = get(&s, "/api/v1/tenants/acme/meters/latency_ms");
    assert_eq!(
        (r.status, r.json()["aggregation"].clone()),
        (200, json!("sum"))
    );

    // Hour buckets over three hours: two events in the first, one in the second.
    let r = get(
        &s,
        &format!(
            "/api/v1/tenants/acme/metrics?meter=latency_ms&start={t0}&end={}&granularity=hour",
            t0 + 3 * HOUR_NS
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let buckets = r.json();
    let buckets = buckets.as_array().unwrap();
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    assert_eq!(buckets[0]["value"], 40.0);
    assert_eq!(buckets[0]["count"], 2);
    assert_eq!(
        (&buckets[0]["min"], &buckets[0]["max"], &buckets[0]["avg"]),
        (&json!(10.0), &json!(30.0), &json!(20.0))
    );
    assert_eq!(buckets[1]["value"], 5.5);
    assert_eq!(
        (&buckets[2]["value"], &buckets[2]["count"]),
        (&json!(0.0), &json!(0))
    );
    let start = buckets[0]["period_start"].as_str().unwrap();
    let end = buckets[0]["period_end"].as_str().unwrap();
    assert!(
        start.ends_with(":00:00Z") && end.ends_with(":00:00Z"),
        "{start} {end}"
    );
    // The same range as RFC 3339, in minutes, through a built-in count meter.
    let r = get(
        &s,
        &format!(
            "/api/v1/tenants/acme/metrics?meter=api_calls&start={start}&end={end}&granularity=minute"
        ),
    );
    let minutes = r.json();
    let minutes = minutes.as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let total: f64 = minutes.iter().map(|b| b["value"].as_f64().unwrap()).sum();
    assert_eq!(total, 2.0);
    assert!(minutes[1].get("min").is_none(), "a count has no min");

    // Other tenants do not see the meter.
    assert_error(
        &get(&s, "/api/v1/tenants/globex/meters/latency_ms"),
        404,
        "no meter named \"latency_ms\"",
    );
    let r = s
        .request("DELETE", "/api/v1/tenants/acme/meters/latency_ms")
        .call();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(
        &s.request("DELETE", "/api/v1/tenants/acme/meters/latency_ms")
            .call(),
        404,
        "latency_ms",
    );
    assert_error(
        &s.request("DELETE", "/api/v1/tenants/acme/meters/api_calls")
            .call(),
        400,
        "built in",
    );
}

#[test]
fn meter_and_metrics_requests_are_checked() {
    let s = TestServer::start();
    let bad = send(
        &s,
        "POST",
        "/api/v1/tenants/acme/meters",
        &json!({"name": "x", "aggregation": "sum"}),
    );
    assert_error(&bad, 400, "needs a \"field\"");
    let typo = send(
        &s,
        "POST",
        "/api/v1/tenants/acme/meters",
        &json!({"name": "x", "aggregation": "count", "measurment": "api_calls"}),
    );
    assert_error(&typo, 400, "measurment");
    let p = "/api/v1/tenants/acme/metrics";
    assert_error(&get(&s, &format!("{p}?start=0")), 400, "\"meter\"");
    assert_error(&get(&s, &format!("{p}?meter=api_calls")), 400, "\"start\"");
    assert_error(
        &get(&s, &format!("{p}?meter=api_calls&start=yesterday")),
        400,
        "\"start\"",
    );
    assert_error(
        &get(&s, &format!("{p}?meter=api_calls&start=10&end=5")),
        400,
        "before end",
    );
    assert_error(
        &get(
            &s,
            &format!("{p}?meter=api_calls&start=0&end=10&granularity=week"),
        ),
        400,
        "granularity",
    );
    assert_error(
        &get(
            &s,
            &format!("{p}?meter=api_calls&start=0&granularity=minute"),
        ),
        400,
        "buckets",
    );
    assert_error(
        &get(&s, &format!("{p}?meter=nope&start=0&end=10")),
        404,
        "nope",
    );
}

#[test]
fn current_usage_of_a_tenant_without_events_is_zero() {
    let s = TestServer::start();
    let r = get(&s, "/api/v1/tenants/newcomer/usage?meter=api_calls");
    assert_eq!(r.status, 200, "{}", r.body);
    let u = r.json();
    assert_eq!(
        (&u["tenant"], &u["meter"], &u["value"]),
        (&json!("newcomer"), &json!("api_calls"), &json!(0.0))
    );
    // The default period is the calendar month, in UTC.
    let start = u["period_start"].as_str().unwrap();
    assert!(start.ends_with("-01T00:00:00Z"), "{start}");
    let r = get(
        &s,
        "/api/v1/tenants/newcomer/usage?meter=api_calls&period=day&timezone=Asia/Kolkata",
    );
    assert!(
        r.json()["period_start"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00+05:30"),
        "{}",
        r.body
    );
    let p = "/api/v1/tenants/acme/usage";
    assert_error(&get(&s, p), 400, "missing required parameter \"meter\"");
    assert_error(
        &get(&s, &format!("{p}?meter=api_calls&period=fortnight")),
        400,
        "fortnight",
    );
    assert_error(
        &get(&s, &format!("{p}?meter=api_calls&timezone=europe/paris")),
        400,
        "did you mean \"Europe/Paris\"",
    );
    assert_error(
        &get(&s, &format!("{p}?meter=nope")),
        404,
        "no meter named \"nope\"",
    );
}

#[test]
fn current_usage_counts_the_period_so_far() {
    let s = TestServer::start();
    // No timestamp: stored at the server's now, inside the current year.
    events(
        &s,
        &json!([
            {"tenant_id": "acme", "event_type": "storage", "metadata": {"operation": "write", "size_bytes": 100}},
            {"tenant_id": "acme", "event_type": "storage", "metadata": {"operation": "write", "size_bytes": 23}},
            {"tenant_id": "acme", "event_type": "storage", "metadata": {"operation": "read", "size_bytes": 999}}
        ]),
    );
    let u = get(
        &s,
        "/api/v1/tenants/acme/usage?meter=storage_bytes&period=year",
    )
    .json();
    assert_eq!(u["value"], 123.0);
    assert!(
        u["period_start"]
            .as_str()
            .unwrap()
            .ends_with("-01-01T00:00:00Z")
    );
}

#[test]
fn limits_crud() {
    let s = TestServer::start();
    let base = "/api/v1/tenants/acme/limits";
    let limit = json!({
        "limit_name": "API Calls Monthly Limit", "limit_type": "hard_limit",
        "resource_type": "api_calls", "limit_value": 10000, "unit": "calls",
        "period_type": "month", "warning_threshold": 0.8,
        "warning_message": "Approaching API call limit", "timezone": "Europe/Paris"
    });
    let r = send(&s, "POST", base, &limit);
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(created["timezone"], "Europe/Paris");
    assert_eq!(created["status"], "active");
    let second = send(
        &s,
        "POST",
        base,
        &json!({"limit_name": "daily", "limit_type": "soft_limit",
        "resource_type": "api_calls", "limit_value": 500, "period_type": "day"}),
    );
    assert_eq!(second.status, 201, "{}", second.body);
    assert_ne!(second.json()["id"], created["id"]);

    let list = get(&s, base).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0], created);
    assert_eq!(get(&s, &format!("{base}/{id}")).json(), created);
    assert_eq!(get(&s, "/api/v1/tenants/globex/limits").json(), json!([]));

    let mut changed = limit.clone();
    changed["limit_value"] = json!(20000);
    let r = send(&s, "PUT", &format!("{base}/{id}"), &changed);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.json()["limit_value"], &r.json()["id"]),
        (&json!(20000.0), &json!(id))
    );
    assert_eq!(
        get(&s, &format!("{base}/{id}")).json()["limit_value"],
        20000.0
    );

    assert_error(
        &get(&s, &format!("{base}/nope")),
        404,
        "no limit with id \"nope\"",
    );
    assert_error(
        &get(&s, &format!("/api/v1/tenants/globex/limits/{id}")),
        404,
        "globex",
    );
    assert_error(
        &send(&s, "PUT", &format!("{base}/nope"), &limit),
        404,
        "nope",
    );
    let r = s.request("DELETE", &format!("{base}/{id}")).call();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(
        &s.request("DELETE", &format!("{base}/{id}")).call(),
        404,
        &id,
    );
    assert_eq!(get(&s, base).json().as_array().unwrap().len(), 1);
}

#[test]
fn bad_limits_get_clear_400s_and_unknown_meters_404s() {
    let s = TestServer::with_config(ServerConfig {
        max_body_bytes: 2000,
        ..ServerConfig::default()
    });
    let base = "/api/v1/tenants/acme/limits";
    let ok = json!({"limit_name": "x", "limit_type": "hard_limit", "resource_type": "api_calls",
                    "limit_value": 5, "period_type": "day"});
    let with = |key: &str, value: Value| {
        let mut l = ok.clone();
        l[key] = value;
        send(&s, "POST", base, &l)
    };
    assert_error(
        &with("limit_value", json!(0)),
        400,
        "invalid limit_value: must be above 0",
    );
    assert_error(
        &with("limit_type", json!("hard")),
        400,
        "unknown variant `hard`",
    );
    assert_error(
        &with("limit_type", json!("burst_limit")),
        400,
        "not supported yet",
    );
    assert_error(
        &with("warning_treshold", json!(0.5)),
        400,
        "warning_treshold",
    );
    assert_error(
        &with("timezone", json!("Mars/Olympus")),
        400,
        "Mars/Olympus",
    );
    assert_error(&with("id", json!("mine")), 400, "assigned by the server");
    assert_error(
        &with("resource_type", json!("uploads")),
        404,
        "no meter named \"uploads\"",
    );
    assert_error(
        &s.request("POST", base).send("{not json"),
        400,
        "body is not a valid limit",
    );
    let big = with("warning_message", json!("x".repeat(3000)));
    assert_eq!(big.status, 413, "{}", big.body);
    // A tenant without events can be given limits.
    assert_eq!(send(&s, "POST", base, &ok).status, 201);
}

#[test]
fn limit_checks_answer_the_most_restrictive_limit() {
    let s = TestServer::start();
    let check = "/api/v1/tenants/acme/limits/check?meter=api_calls";
    // No limit: allowed, with nothing to compare.
    let c = get(&s, check).json();
    assert_eq!(
        (&c["allowed"], &c["status"], &c["limit"]),
        (&json!(true), &json!("ok"), &Value::Null)
    );
    assert_error(
        &get(&s, "/api/v1/tenants/acme/limits/check"),
        400,
        "\"meter\"",
    );
    assert_error(
        &get(&s, "/api/v1/tenants/acme/limits/check?meter=nope"),
        404,
        "nope",
    );

    let hard = send(
        &s,
        "POST",
        "/api/v1/tenants/acme/limits",
        &json!({
        "limit_name": "yearly", "limit_type": "hard_limit", "resource_type": "api_calls",
        "limit_value": 3, "period_type": "year", "enforce_immediately": true,
        "warning_threshold": 0.5}),
    );
    assert_eq!(hard.status, 201, "{}", hard.body);
    let hard_id = hard.json()["id"].clone();
    let call = json!([{"tenant_id": "acme", "event_type": "api_call", "metadata": {"endpoint": "/a", "status_code": 200}}]);
    events(&s, &call);
    let c = get(&s, check).json();
    assert_eq!(
        (&c["allowed"], &c["status"], &c["usage"]),
        (&json!(true), &json!("ok"), &json!(1.0))
    );
    assert_eq!(
        (&c["limit"], &c["remaining"], &c["limit_id"]),
        (&json!(3.0), &json!(2.0), &hard_id)
    );
    events(&s, &call);
    assert_eq!(get(&s, check).json()["status"], "warning");
    events(&s, &call);
    let c = get(&s, check).json();
    assert_eq!(
        (&c["allowed"], &c["status"], &c["remaining"]),
        (&json!(false), &json!("exceeded"), &json!(0.0))
    );
    for key in ["period_start", "period_end", "resets_at"] {
        assert!(c[key].is_string(), "{key}: {c}");
    }
    assert!(
        c["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("-01-01T00:00:00Z"),
        "{c}"
    );
    // Another tenant is not limited by acme's limits.
    assert_eq!(
        get(&s, "/api/v1/tenants/globex/limits/check?meter=api_calls").json()["allowed"],
        true
    );
}

#[test]
fn with_enforcement_disabled_checks_report_but_allow() {
    let mut usage = UsageSettings::default();
    usage.limits.enforcement_enabled = false;
    let s = TestServer::with_usage_settings(ServerConfig::default(), usage);
    let r = send(
        &s,
        "POST",
        "/api/v1/tenants/acme/limits",
        &json!({
        "limit_name": "tiny", "limit_type": "rate_limit", "resource_type": "db_queries",
        "limit_value": 1, "period_type": "year"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    events(
        &s,
        &json!([{"tenant_id": "acme", "event_type": "database_query", "quantity": 1},
                       {"tenant_id": "acme", "event_type": "database_query", "quantity": 1}]),
    );
    let c = get(&s, "/api/v1/tenants/acme/limits/check?meter=db_queries").json();
    assert_eq!(
        (&c["allowed"], &c["status"], &c["usage"]),
        (&json!(true), &json!("exceeded"), &json!(2.0))
    );
}

#[test]
fn the_usage_api_is_behind_authentication() {
    let s = TestServer::with_config(ServerConfig {
        auth_token: Some("s3cret".into()),
        ..ServerConfig::default()
    });
    for path in [
        "/api/v1/tenants/acme/usage?meter=api_calls",
        "/api/v1/tenants/acme/limits",
        "/api/v1/tenants/acme/limits/check?meter=api_calls",
        "/api/v1/tenants/acme/meters",
    ] {
        assert_error(&get(&s, path), 401, "authorization failed");
        let r = s
            .request("GET", path)
            .header("authorization", "Token s3cret")
            .call();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let limit = json!({"limit_name": "x", "limit_type": "soft_limit", "resource_type": "api_calls",
                       "limit_value": 5, "period_type": "day"});
    assert_eq!(
        send(&s, "POST", "/api/v1/tenants/acme/limits", &limit).status,
        401
    );
    assert_eq!(
        get(&s, "/api/v1/tenants/acme/limits?p=s3cret").json(),
        json!([])
    );
}
