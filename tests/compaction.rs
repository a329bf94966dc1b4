//! Compaction, retention and deletion through the engine's API: merges keep every event and
//! every rollup, retention drops whole days and usage survives on rollups, and a deleted
//! user is hidden at once and physically gone after the next pass.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{all_events, occurs_in, test_options};
use meterdb::catalog::CatalogRequest;
use meterdb::clock::ManualClock;
use meterdb::{
    Engine, Event, FieldValue, Options, ScanRequest, TagOp, TagPredicate, TenantId, Timestamp,
};

const DAY: i64 = 86_400_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
/// 2026-11-01T00:00:00Z.
const NOV_1: i64 = 20_393 * DAY;

fn api_call(tenant: &str, user: &str, ts: i64, id: &str) -> Event {
    Event {
        tenant: TenantId::new(tenant),
        measurement: "api_calls".into(),
        tags: vec![
            ("endpoint".into(), format!("/v1/items/{}", ts % 7)),
            ("user".into(), user.into()),
        ],
        fields: vec![("response_time_ms".into(), FieldValue::F64((ts % 97) as f64))],
        timestamp: Timestamp(ts),
        event_id: Some(id.to_owned()),
    }
}

fn options(clock: &Arc<ManualClock>, shards: usize) -> Options {
    Options {
        shards: Some(shards),
        clock: clock.clone(),
        compaction_pace: 0.0,
        ..test_options()
    }
}

/// For each `(day, flushes)`, that many flushes of `per_flush` of acme's calls an hour apart
/// from the day's start (five users, a distinct id each), so each flush makes one segment.
fn store_flushes(engine: &Engine, days: &[(i64, i64)], per_flush: i64) {
    let mut n = 0;
    for &(day, flushes) in days {
        for f in 0..flushes {
            let events: Vec<Event> = (0..per_flush)
                .map(|i| {
                    n += 1;
                    api_call(
                        "acme",
                        &format!("u{}", i % 5),
                        day + f * HOUR + i,
                        &format!("e{n}"),
                    )
                })
                .collect();
            common::store(engine, &events);
            engine.flush().unwrap();
        }
    }
}

fn segments(engine: &Engine) -> usize {
    engine.stats().iter().map(|s| s.segments).sum()
}

fn count(engine: &Engine, tenant: &str, user: Option<&str>) -> u64 {
    engine
        .count(&ScanRequest {
            tenant: Some(TenantId::new(tenant)),
            predicates: user
                .map(|u| TagPredicate::eq("user", u))
                .into_iter()
                .collect(),
            ..ScanRequest::default()
        })
        .unwrap()
}

#[test]
fn merging_keeps_every_event_and_every_rollup_and_settles() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1 + 12 * HOUR)));
    let engine = Engine::open(dir.path(), options(&clock, 1)).unwrap();
    // Six flushes of yesterday's events, five of today's.
    store_flushes(&engine, &[(NOV_1 - DAY, 6), (NOV_1, 5)], 50);
    assert_eq!(segments(&engine), 11);
    let all = ScanRequest::default();
    let before = all_events(&engine, &all);
    let range = NOV_1 - DAY..NOV_1 + DAY;
    let calls = engine.usage("acme", "api_calls", range.clone()).unwrap();
    let users = engine.usage("acme", "active_users", range.clone()).unwrap();
    assert_eq!(calls.count, 550);
    assert_eq!(users.unique, 5);

    let report = engine.compact().unwrap();
    assert_eq!(report.segments_replaced, 11, "{report:?}");
    assert_eq!(report.segments_written, 2, "{report:?}");
    assert_eq!(report.rows_written, 550);
    assert_eq!(segments(&engine), 2);
    assert_eq!(all_events(&engine, &all), before);
    assert_eq!(
        engine.usage("acme", "api_calls", range.clone()).unwrap(),
        calls
    );
    // A second pass has nothing to do: rows are rewritten a bounded number of times.
    assert_eq!(engine.compact().unwrap().rewrites, 0);

    // The rollup files name the merged segments: a restart neither recounts nor loses.
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options(&clock, 1)).unwrap();
    assert_eq!(all_events(&engine, &all), before);
    assert_eq!(
        engine.usage("acme", "api_calls", range.clone()).unwrap(),
        calls
    );
    assert_eq!(
        engine.usage("acme", "active_users", range.clone()).unwrap(),
        users
    );
    let recovered = &engine.recovery_report()[0];
    assert!(recovered.corruptions.is_empty(), "{recovered:?}");
    assert_eq!(
        recovered.segments_recounted, 0,
        "the rollup files name the merged segment"
    );
    let files = std::fs::read_dir(dir.path().join("shard-000/segments"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "replaced segment files are removed");
    // A retry of an event stored before the merge is still recognised.
    let receipt = engine
        .write({
            let mut b = meterdb::WriteBatch::new();
            b.push(&api_call("acme", "u1", NOV_1 + 1, "e1"));
            b
        })
        .unwrap();
    assert_eq!(receipt.duplicates, 1);
}

#[test]
fn a_pass_stopped_by_its_caller_keeps_what_it_did_and_the_next_pass_does_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1 + 12 * HOUR)));
    let engine = Engine::open(dir.path(), options(&clock, 1)).unwrap();
    // Three days of four flushes each: one merge per day, so three rewrites in a full pass.
    store_flushes(
        &engine,
        &[(NOV_1 - 2 * DAY, 4), (NOV_1 - DAY, 4), (NOV_1, 4)],
        20,
    );
    assert_eq!(segments(&engine), 12);
    let all = ScanRequest::default();
    let before = all_events(&engine, &all);

    let mut calls = 0;
    let report = engine
        .compact_with(0.0, &mut |p| {
            calls += 1;
            assert_eq!(p.done, 1, "no rewrite runs after the caller asked to stop");
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(calls, 1);
    assert!(report.stopped, "{report:?}");
    assert_eq!(
        (report.rewrites, report.segments_replaced),
        (1, 4),
        "{report:?}"
    );
    assert_eq!(segments(&engine), 9);
    assert_eq!(all_events(&engine, &all), before);

    let rest = engine.compact().unwrap();
    assert!(!rest.stopped);
    assert_eq!((rest.rewrites, rest.segments_replaced), (2, 8), "{rest:?}");
    assert_eq!(segments(&engine), 3);
    assert_eq!(all_events(&engine, &all), before);
}

#[test]
fn raw_events_expire_in_whole_days_while_usage_still_counts_them_from_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1)));
    let opts = Options {
        raw_retention: Duration::from_secs(30 * 86_400),
        dedup_window: Duration::from_secs(30 * 86_400),
        ..options(&clock, 2)
    };
    let engine = Engine::open(dir.path(), opts.clone()).unwrap();
    let mut sizes = Vec::new();
    for d in 0..60 {
        let noon = NOV_1 + d * DAY + 12 * HOUR;
        clock.set(Timestamp(noon));
        let events: Vec<Event> = (0..40)
            .map(|i| {
                api_call(
                    ["acme", "globex"][i as usize % 2],
                    "u",
                    noon + i,
                    &format!("{d}-{i}"),
                )
            })
            .collect();
        common::store(&engine, &events);
        engine.flush().unwrap();
        engine.compact().unwrap();
        sizes.push(engine.stats().iter().map(|s| s.segment_bytes).sum::<u64>());
    }
    // Day 0 ended 59.5 days ago: days 0..=28 are past 30 days of retention, 31 days remain.
    let raw = count(&engine, "acme", None);
    assert_eq!(raw, 31 * 20);
    let first_days = NOV_1..NOV_1 + 10 * DAY;
    assert_eq!(
        engine
            .count(&ScanRequest {
                time: Some(first_days.clone()),
                ..ScanRequest::default()
            })
            .unwrap(),
        0
    );
    assert_eq!(
        engine
            .usage("acme", "api_calls", first_days.clone())
            .unwrap()
            .count,
        200
    );
    // The disk stays flat once retention bites.
    let (at_35, at_59) = (sizes[35], sizes[59]);
    assert!(
        at_59 <= at_35 + at_35 / 5,
        "segment bytes grew from {at_35} to {at_59}"
    );
    // Rollups go after 90 days.
    clock.set(Timestamp(NOV_1 + 130 * DAY));
    engine.compact().unwrap();
    assert_eq!(
        engine
            .usage("acme", "api_calls", first_days.clone())
            .unwrap()
            .count,
        0
    );
    let recent = NOV_1 + 50 * DAY..NOV_1 + 60 * DAY;
    assert_eq!(
        engine
            .usage("acme", "api_calls", recent.clone())
            .unwrap()
            .count,
        200
    );
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), opts).unwrap();
    assert_eq!(
        engine.usage("acme", "api_calls", first_days).unwrap().count,
        0
    );
    assert_eq!(
        engine.usage("acme", "api_calls", recent).unwrap().count,
        200
    );
}

#[test]
fn a_deleted_user_is_hidden_at_once_and_physically_gone_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1 + 12 * HOUR)));
    let engine = Engine::open(dir.path(), options(&clock, 2)).unwrap();
    let secret = "bob-7f3c9e1d-0b5a-4c2e-9d44-3a1f6e2b8c90";
    let mut n = 0;
    let mut write = |engine: &Engine, rounds: i64| {
        for r in 0..rounds {
            let events: Vec<Event> = (0..30)
                .map(|i| {
                    n += 1;
                    let user = if i % 3 == 0 { secret } else { "alice" };
                    api_call(
                        ["acme", "globex"][(i % 2) as usize],
                        user,
                        NOV_1 + r * HOUR + i,
                        &format!("e{n}"),
                    )
                })
                .collect();
            common::store(engine, &events);
        }
    };
    write(&engine, 3);
    engine.flush().unwrap();
    write(&engine, 2);
    let alice_before = count(&engine, "acme", Some("alice"));
    let bob_before = count(&engine, "acme", Some(secret));
    let globex_bob = count(&engine, "globex", Some(secret));
    let range = NOV_1..NOV_1 + DAY;
    let calls = engine.usage("acme", "api_calls", range.clone()).unwrap();
    assert!(bob_before > 0 && globex_bob > 0);

    let deletion = engine.delete_user("acme", secret).unwrap();
    assert_eq!(deletion.events, bob_before);
    // Hidden at once, from scans, counts and the catalog; other users and tenants intact.
    assert_eq!(count(&engine, "acme", Some(secret)), 0);
    assert!(
        all_events(&engine, &ScanRequest::default())
            .iter()
            .all(|e| e.tenant.as_str() != "acme" || !e.tags.iter().any(|(_, v)| v == secret))
    );
    assert_eq!(count(&engine, "acme", Some("alice")), alice_before);
    assert_eq!(count(&engine, "globex", Some(secret)), globex_bob);
    let catalog = engine
        .catalog(&CatalogRequest {
            tenant: Some(TenantId::new("acme")),
            measurement: None,
            tag_values: Some(TagOp::Eq("user".into())),
        })
        .unwrap();
    let users = &catalog.measurements["api_calls"].tags["user"];
    assert!(!users.contains(secret), "{users:?}");
    // Rollups keep the counts (billing history).
    assert_eq!(
        engine.usage("acme", "api_calls", range.clone()).unwrap(),
        calls
    );
    // The files still hold the id until compaction purges it.
    assert!(!occurs_in(dir.path(), secret.as_bytes()).is_empty());
    let audit = std::fs::read_to_string(dir.path().join("AUDIT.log")).unwrap();
    assert!(
        audit.contains("\"delete_user\"") && !audit.contains(secret),
        "{audit}"
    );

    // An event of the same user written after the deletion is a new event: visible.
    common::store(
        &engine,
        &[api_call("acme", secret, NOV_1 + 20 * HOUR, "after")],
    );
    assert_eq!(count(&engine, "acme", Some(secret)), 1);

    let report = engine.compact().unwrap();
    assert_eq!(report.purged, 1, "{report:?}");
    engine.close().unwrap();
    // The one event written after the deletion is in the WAL; without it the id is gone.
    let engine = Engine::open(dir.path(), options(&clock, 2)).unwrap();
    engine.delete_user("acme", secret).unwrap();
    engine.delete_user("globex", secret).unwrap();
    engine.compact().unwrap();
    engine.close().unwrap();
    let hits = occurs_in(dir.path(), secret.as_bytes());
    assert!(hits.is_empty(), "the deleted id is still in {hits:?}");
    let engine = Engine::open(dir.path(), options(&clock, 2)).unwrap();
    assert_eq!(count(&engine, "acme", Some(secret)), 0);
    assert_eq!(count(&engine, "acme", Some("alice")), alice_before);
    let after = engine.usage("acme", "api_calls", range.clone()).unwrap();
    assert_eq!(
        after.count,
        calls.count + 1,
        "counts are kept, plus the later event"
    );
    let audit = std::fs::read_to_string(dir.path().join("AUDIT.log")).unwrap();
    assert_eq!(
        audit.lines().filter(|l| l.contains("\"purged\"")).count(),
        3,
        "{audit}"
    );
}

#[test]
fn a_deleted_tenant_is_hidden_and_purged_while_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1 + 12 * HOUR)));
    let engine = Engine::open(dir.path(), options(&clock, 1)).unwrap();
    let marker = "/only-initech-calls-this";
    for (i, tenant) in ["initech", "acme", "initech", "acme"].iter().enumerate() {
        let mut e = api_call(tenant, "u", NOV_1 + i as i64, &format!("id{i}"));
        if *tenant == "initech" {
            e.tags[0].1 = marker.into();
        }
        common::store(&engine, &[e]);
        engine.flush().unwrap();
    }
    assert_eq!(engine.delete_tenant("initech").unwrap().events, 2);
    assert_eq!(count(&engine, "initech", None), 0);
    assert_eq!(count(&engine, "acme", None), 2);
    assert_eq!(engine.count(&ScanRequest::default()).unwrap(), 2);
    assert!(!occurs_in(dir.path(), marker.as_bytes()).is_empty());
    assert_eq!(engine.compact().unwrap().purged, 1);
    assert!(occurs_in(dir.path(), marker.as_bytes()).is_empty());
    assert_eq!(count(&engine, "acme", None), 2);
    let text = std::fs::read_to_string(dir.path().join("TOMBSTONES")).unwrap();
    assert!(!text.contains("initech"), "{text}");
}

#[test]
fn a_tenants_own_retention_drops_its_rows_and_keeps_the_others_in_shared_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1)));
    let opts = Options {
        raw_retention: Duration::from_secs(30 * 86_400),
        dedup_window: Duration::from_secs(30 * 86_400),
        ..options(&clock, 1)
    };
    let engine = Engine::open(dir.path(), opts).unwrap();
    engine
        .retention()
        .set(
            "globex",
            meterdb::TenantRetention {
                events_days: Some(7),
                metrics_days: None,
            },
        )
        .unwrap();
    for d in 0..20 {
        let noon = NOV_1 + d * DAY + 12 * HOUR;
        clock.set(Timestamp(noon));
        let events: Vec<Event> = (0..10)
            .map(|i| {
                api_call(
                    ["acme", "globex"][i as usize % 2],
                    "u",
                    noon + i,
                    &format!("{d}-{i}"),
                )
            })
            .collect();
        common::store(&engine, &events);
        engine.flush().unwrap();
    }
    // Each day's segment holds both tenants: globex's old days are rewritten out of them.
    let report = engine.compact().unwrap();
    assert!(report.rewrites >= 12, "{report:?}");
    assert_eq!(count(&engine, "acme", None), 20 * 5);
    // Day 19 is today; days 12..=19 are within 7 days (day 12 ended 6.5 days ago).
    assert_eq!(count(&engine, "globex", None), 8 * 5);
    let all_days = NOV_1..NOV_1 + 20 * DAY;
    assert_eq!(
        engine.usage("globex", "api_calls", all_days).unwrap().count,
        100
    );
}

#[test]
fn with_subtract_a_deletion_takes_the_users_contributions_out_of_the_rollups_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1 + 12 * HOUR)));
    let opts = Options {
        rollups_on_delete: meterdb::RollupsOnDelete::Subtract,
        ..options(&clock, 2)
    };
    let engine = Engine::open(dir.path(), opts.clone()).unwrap();
    let secret = "carol-5b0e6a1c-2f47-4d88-b3a9-0c6e1d7f2a53";
    let mut n = 0;
    for round in 0..3 {
        let events: Vec<Event> = (0..40)
            .map(|i| {
                n += 1;
                let user = if i % 4 == 0 { secret } else { "dave" };
                api_call(
                    "acme",
                    user,
                    NOV_1 + round * HOUR + i * 60_000_000_000,
                    &format!("s{n}"),
                )
            })
            .collect();
        common::store(&engine, &events);
        if round < 2 {
            engine.flush().unwrap();
        }
    }
    let range = NOV_1..NOV_1 + DAY;
    let usage = |e: &Engine| {
        let calls = e.usage("acme", "api_calls", range.clone()).unwrap();
        let users = e.usage("acme", "active_users", range.clone()).unwrap();
        (calls.count, users.unique)
    };
    assert_eq!(usage(&engine), (120, 2));
    let d = engine.delete_user("acme", secret).unwrap();
    assert_eq!(d.events, 30);
    // Taken out before the deletion returns: rollups equal a recount of the visible rows.
    assert_eq!(usage(&engine), (90, 1));
    assert_eq!(count(&engine, "acme", None), 90);
    // A retried deletion finds nothing more to take out.
    assert_eq!(engine.delete_user("acme", secret).unwrap().events, 0);
    assert_eq!(usage(&engine), (90, 1));
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(usage(&engine), (90, 1));
    assert_eq!(engine.compact().unwrap().purged, 2);
    assert_eq!(usage(&engine), (90, 1));
    engine.close().unwrap();
    let hits = occurs_in(dir.path(), secret.as_bytes());
    assert!(hits.is_empty(), "{hits:?}");
    let engine = Engine::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(usage(&engine), (90, 1));
    // A tenant's deletion drops its rollups.
    engine.delete_tenant("acme").unwrap();
    assert_eq!(usage(&engine), (0, 0));
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), opts).unwrap();
    assert_eq!(usage(&engine), (0, 0));
}

#[test]
fn small_rollup_files_are_merged_and_still_count_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(NOV_1 + 12 * HOUR)));
    let engine = Engine::open(dir.path(), options(&clock, 1)).unwrap();
    for f in 0..20 {
        let events: Vec<Event> = (0..10)
            .map(|i| {
                api_call(
                    "acme",
                    &format!("u{}", i % 3),
                    NOV_1 - 3 * DAY + f * HOUR + i,
                    &format!("r{f}-{i}"),
                )
            })
            .collect();
        common::store(&engine, &events);
        engine.flush().unwrap();
    }
    let rollup_files = |dir: &Path| {
        std::fs::read_dir(dir.join("shard-000/rollups"))
            .unwrap()
            .count()
    };
    assert_eq!(rollup_files(dir.path()), 20);
    let range = NOV_1 - 3 * DAY..NOV_1;
    let calls = engine.usage("acme", "api_calls", range.clone()).unwrap();
    let users = engine.usage("acme", "active_users", range.clone()).unwrap();
    let report = engine.compact().unwrap();
    assert_eq!(report.rollup_files_merged, 20, "{report:?}");
    assert_eq!(rollup_files(dir.path()), 1);
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options(&clock, 1)).unwrap();
    assert!(engine.recovery_report()[0].corruptions.is_empty());
    assert_eq!(engine.recovery_report()[0].segments_recounted, 0);
    assert_eq!(
        engine.usage("acme", "api_calls", range.clone()).unwrap(),
        calls
    );
    assert_eq!(engine.usage("acme", "active_users", range).unwrap(), users);
    assert_eq!(calls.count, 200);
}
