//! `/api/v1/tenants/{tenant}/retention` end to end, against the real `meterdb serve` binary:
//! the defaults from `USAGE_TRACKING_EVENTS_RETENTION_DAYS` and
//! `USAGE_TRACKING_METRICS_RETENTION_DAYS`, overrides that survive a restart, removal, and
//! refused values with the field named.

mod common;

use std::path::Path;

use common::cli::{Served, serve_with};
use common::server::{Response, request_at};
use serde_json::{Value, json};

/// `meterdb serve` on `dir` with the retention settings `events` and `metrics` (days; empty:
/// unset, so the default applies).
fn serve_retention(dir: &Path, events: &str, metrics: &str) -> Served {
    serve_with(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
        ],
        &[
            ("USAGE_TRACKING_EVENTS_RETENTION_DAYS", events),
            ("USAGE_TRACKING_METRICS_RETENTION_DAYS", metrics),
        ],
    )
}

fn path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/retention")
}

fn get(s: &Served, tenant: &str) -> Value {
    let r = request_at(&s.url, "GET", &path(tenant)).call();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn put(s: &Served, tenant: &str, body: &str) -> Response {
    request_at(&s.url, "PUT", &path(tenant))
        .header("content-type", "application/json")
        .send(body)
}

/// The answer every route gives for `tenant` with effective `events`/`metrics` days and the
/// override's values.
fn answer(tenant: &str, effective: (u32, u32), set: (Option<u32>, Option<u32>)) -> Value {
    json!({
        "tenant": tenant,
        "events_days": effective.0,
        "metrics_days": effective.1,
        "override": {"events_days": set.0, "metrics_days": set.1},
    })
}

#[test]
fn overrides_persist_across_restarts_and_delete_restores_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_retention(dir.path(), "30", "");
    assert_eq!(get(&s, "acme"), answer("acme", (30, 90), (None, None)));

    let r = put(&s, "acme", r#"{"events_days": 7}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), answer("acme", (7, 90), (Some(7), None)));
    let r = put(&s, "globex", r#"{"events_days": 60, "metrics_days": 365}"#);
    assert_eq!(r.json(), answer("globex", (60, 365), (Some(60), Some(365))));
    assert_eq!(get(&s, "acme"), answer("acme", (7, 90), (Some(7), None)));
    assert_eq!(
        get(&s, "initech"),
        answer("initech", (30, 90), (None, None)),
        "other tenants keep the defaults"
    );
    assert!(s.terminate().success());

    let s = serve_retention(dir.path(), "30", "");
    assert_eq!(get(&s, "acme"), answer("acme", (7, 90), (Some(7), None)));
    assert_eq!(
        get(&s, "globex"),
        answer("globex", (60, 365), (Some(60), Some(365)))
    );
    // A PUT replaces the whole override: a field left out goes back to the default.
    let r = put(&s, "globex", r#"{"metrics_days": 400}"#);
    assert_eq!(r.json(), answer("globex", (30, 400), (None, Some(400))));
    let r = put(
        &s,
        "globex",
        r#"{"events_days": null, "metrics_days": null}"#,
    );
    assert_eq!(r.json(), answer("globex", (30, 90), (None, None)));

    let r = request_at(&s.url, "DELETE", &path("acme")).call();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), answer("acme", (30, 90), (None, None)));
    let again = request_at(&s.url, "DELETE", &path("acme")).call();
    assert_eq!(
        again.status, 200,
        "a repeated delete succeeds: {}",
        again.body
    );
    assert!(s.terminate().success());

    let s = serve_retention(dir.path(), "30", "");
    assert_eq!(get(&s, "acme"), answer("acme", (30, 90), (None, None)));
    assert_eq!(get(&s, "globex"), answer("globex", (30, 90), (None, None)));
}

#[test]
fn invalid_values_are_refused_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_retention(dir.path(), "30", "90");
    assert_eq!(put(&s, "acme", r#"{"events_days": 14}"#).status, 200);
    for (body, needle) in [
        (
            r#"{"events_days": 0}"#,
            "invalid events_days: 0 is not a whole number of days from 1 to 36500",
        ),
        (
            r#"{"metrics_days": 36501}"#,
            "invalid metrics_days: 36501 is not",
        ),
        (r#"{"events_days": -3}"#, "invalid events_days: -3 is not"),
        (
            r#"{"metrics_days": "90"}"#,
            "invalid metrics_days: \"90\" is not",
        ),
        (r#"{"events_days": 7.5}"#, "invalid events_days: 7.5 is not"),
        (
            r#"{"events_days": 60, "metrics_days": 30}"#,
            "invalid metrics_days: the metrics retention (30 days) must be at least the events \
             retention (60 days): rollups must outlive the raw events",
        ),
        (
            r#"{"events_days": 120}"#,
            "invalid events_days: the metrics retention (90 days, the default) must be at least \
             the events retention (120 days)",
        ),
        (
            r#"{"metrics_days": 10}"#,
            "the metrics retention (10 days) must be at least the events retention (30 days, \
             the default)",
        ),
        (r#"{"event_days": 7}"#, "unknown field \"event_days\""),
        (r#"{"events_days": 7"#, "body is not valid JSON"),
        ("[7, 90]", "body must be a JSON object"),
    ] {
        let r = put(&s, "acme", body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let json = r.json();
        let message = json["message"].as_str().expect("a message");
        assert!(
            message.contains(needle),
            "{body}: {message:?} lacks {needle:?}"
        );
    }
    assert_eq!(
        get(&s, "acme"),
        answer("acme", (14, 90), (Some(14), None)),
        "refused changes leave the override as it was"
    );
}

#[test]
fn the_retention_settings_set_the_defaults_shown() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_retention(dir.path(), "30", "400");
    assert_eq!(get(&s, "acme"), answer("acme", (30, 400), (None, None)));
    // Valid against this default, refused against the usual 90 days.
    assert_eq!(put(&s, "acme", r#"{"events_days": 200}"#).status, 200);
    assert!(s.terminate().success());

    let s = serve_retention(dir.path(), "30", "500");
    assert_eq!(get(&s, "other"), answer("other", (30, 500), (None, None)));
    assert_eq!(
        get(&s, "acme"),
        answer("acme", (200, 500), (Some(200), None))
    );
    assert!(s.terminate().success());

    // Rollups never expire before the raw events they count: a metrics retention shorter
    // than the events one is raised to it.
    let s = serve_retention(dir.path(), "365", "");
    assert_eq!(get(&s, "other"), answer("other", (365, 365), (None, None)));
}

#[test]
fn the_retention_routes_require_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--auth-token",
            "s3cret",
        ],
        &[],
    );
    for method in ["GET", "PUT", "DELETE"] {
        let r = request_at(&s.url, method, &path("acme")).send(r#"{"events_days": 7}"#);
        assert_eq!(r.status, 401, "{method}: {}", r.body);
    }
    let r = request_at(&s.url, "PUT", &path("acme"))
        .header("authorization", "Token s3cret")
        .send(r#"{"events_days": 7}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["override"]["events_days"], 7);
}
