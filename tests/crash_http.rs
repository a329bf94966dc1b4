//! Black-box crash harness: the real `meterdb serve` binary, killed again and again while
//! clients stream writes into it over HTTP, then restarted on the same data directory and
//! checked over HTTP only.
//!
//! Several client threads send batches of `api_calls` events, each event with a unique
//! `event_id` and each batch of a single tenant (so of a single shard, whose writes are atomic):
//! half of them as line protocol to `/write`, half as JSON to `/api/v1/events`. A batch that is
//! not acknowledged (connection error, 408, 429, 5xx) is sent again until it is, across
//! restarts: the engine deduplicates by event id, so a retry whose first attempt was stored
//! after all must not count twice. The server runs with `--sync always` and a tiny
//! `--max-buffer-bytes`, so that flushes to segments are constant and kills land in them.
//!
//! Each cycle kills the server at a random moment (a seeded PRNG picks the moments, so a run
//! is reproducible up to thread scheduling): a plain SIGKILL while writes stream in; a SIGKILL
//! as soon as the data directory shows a flush at work (a `.tmp` file, or a segment written but
//! most likely not yet in the manifest); SIGTERM then SIGKILL in the middle of the graceful
//! shutdown and its flush; or a SIGKILL followed by a second one during the next start-up's
//! recovery. Then the server is started again, must
//! answer `/health` and `/ping` within 5 s, and the clients are paused for the checks:
//!
//! - every acknowledged event is stored exactly once (event ids are read back per tenant with
//!   InfluxQL, so a lost or duplicated id is named);
//! - a batch whose acknowledgement was lost in the kill is stored entirely or not at all;
//! - nothing is stored that no client sent;
//! - InfluxQL's `count()` per tenant agrees with the events checked;
//! - usage rollups (`/api/v1/tenants/{t}/metrics` and `/usage`) equal a recount of the raw
//!   events.
//!
//! A check reads back the ids of the batches it has not yet found acknowledged and stored, and
//! counts the older ones (`count()` per tenant must equal them plus the ids read back); every
//! 10th cycle, at the end, and whenever a count disagrees, it reads back every id. So a long
//! run's checks do not grow with the data, and a loss or duplicate is still named.
//!
//! At the end the clients deliver their last batches, the server is stopped gracefully and
//! started once more, and everything is checked again (now read from segments).
//!
//! `METERDB_CRASH_CYCLES=N` (default 20) sets the number of cycles, `METERDB_CRASH_SEED` (decimal
//! or `0x` hex) the seed; a summary is printed at the end. For a long run:
//! `METERDB_CRASH_CYCLES=300 cargo test --release --test crash_http -- --nocapture`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cli::{self, Spawned};

/// Cycles of a default (CI) run.
const DEFAULT_CYCLES: u64 = 20;
/// Seed of a default run; any other is given with `METERDB_CRASH_SEED`.
const DEFAULT_SEED: u64 = 0x00C0_FFEE_D00D_5EED;
/// The promise checked: a restarted server answers within this time.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// Tenants the batches are spread over (two shards, so several tenants per shard).
const TENANTS: usize = 8;
/// Clients of each protocol.
const CLIENTS_PER_PROTOCOL: usize = 2;
/// Events per batch: 1 to this.
const MAX_BATCH_EVENTS: u64 = 20;
/// A flush every few hundred events, so that kills often land during one.
const MAX_BUFFER_BYTES: &str = "16384";
/// How long a kill aimed at a flush waits for one to show.
const FLUSH_WAIT: Duration = Duration::from_secs(1);
/// Every this many cycles the check reads back every event id, not only the recent ones
/// (a default run does it twice, and again at the end).
const FULL_CHECK_EVERY: u64 = 10;
/// A progress line every this many cycles.
const PROGRESS_EVERY: u64 = 25;
/// Kills land this long after the cycle starts, in milliseconds.
const KILL_DELAY_MS: (u64, u64) = (50, 600);

// ---------------------------------------------------------------------------------------------
// Randomness

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014):
/// tiny, and good enough to pick kill moments and batch shapes reproducibly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (the modulo bias is irrelevant at these ranges).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Run settings

struct Settings {
    cycles: u64,
    seed: u64,
}

impl Settings {
    fn from_env() -> Settings {
        let cycles = std::env::var("METERDB_CRASH_CYCLES")
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("METERDB_CRASH_CYCLES={v}: not a number"))
            })
            .unwrap_or(DEFAULT_CYCLES);
        let seed = std::env::var("METERDB_CRASH_SEED")
            .map(|v| parse_seed(&v).unwrap_or_else(|| panic!("METERDB_CRASH_SEED={v}: not a u64")))
            .unwrap_or(DEFAULT_SEED);
        Settings { cycles, seed }
    }
}

fn parse_seed(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// What the clients sent: the ledger the checks compare the store with

/// One batch as a client sent it.
#[derive(Clone)]
struct Batch {
    tenant: String,
    /// The first event's timestamp; the batch's events follow 1 µs apart, and no other
    /// batch's events fall between them.
    first_ts: i64,
    ids: Vec<String>,
    /// Sent at least once.
    sent: bool,
    /// A 2xx answer came back.
    acked: bool,
    /// Answered with an unexpected 4xx: reported as a problem, not checked further.
    refused: bool,
}

/// The clients' record of what they sent; the checks read it while the clients are paused.
#[derive(Default)]
struct Ledger {
    batches: Vec<Batch>,
    /// Sends beyond the first of a batch.
    retries: u64,
    /// Why sends were not acknowledged: an HTTP status, or 0 for a connection error or
    /// timeout (the server killed or down).
    not_acked: BTreeMap<u16, u64>,
}

/// Pauses the clients between requests, so that the checks see no write in flight.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    /// Requests in flight.
    busy: usize,
    /// Closed for good: clients give up their batch and exit.
    shut: bool,
}

/// A request in flight; the gate waits for it to end before the checks.
struct Permit<'a>(&'a Gate);

impl Gate {
    /// Waits until the gate is open; `None` once it is shut.
    fn enter(&self) -> Option<Permit<'_>> {
        let mut state = self.state.lock().unwrap();
        while !state.open && !state.shut {
            state = self.changed.wait(state).unwrap();
        }
        if state.shut {
            return None;
        }
        state.busy += 1;
        Some(Permit(self))
    }

    /// Closes the gate and waits for the requests in flight to end.
    fn pause(&self) {
        let mut state = self.state.lock().unwrap();
        state.open = false;
        while state.busy > 0 {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn resume(&self) {
        self.state.lock().unwrap().open = true;
        self.changed.notify_all();
    }

    fn shut(&self) {
        self.state.lock().unwrap().shut = true;
        self.changed.notify_all();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().busy -= 1;
        self.0.changed.notify_all();
    }
}

/// State shared by the coordinator and the clients.
struct Shared {
    /// The live server's URL; `None` while it is down or starting.
    url: RwLock<Option<String>>,
    gate: Gate,
    ledger: Mutex<Ledger>,
    /// Clients deliver their current batch, then exit.
    draining: AtomicBool,
    /// Unique event timestamps: the run's start plus 1 µs per event, close to the server's
    /// clock (its time window refuses events far from now).
    next_timestamp: AtomicI64,
    /// Unexpected answers (4xx other than 408/429): each fails the run.
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap()
    }

    fn set_url(&self, url: Option<String>) {
        *self.url.write().unwrap() = url;
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Clone, Copy)]
enum Protocol {
    LineProtocol,
    Json,
}

impl Protocol {
    fn path(self) -> &'static str {
        match self {
            Protocol::LineProtocol => "/write?db=crash",
            Protocol::Json => "/api/v1/events",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Protocol::LineProtocol => "text/plain; charset=utf-8",
            Protocol::Json => "application/json",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Protocol::LineProtocol => "lp",
            Protocol::Json => "js",
        }
    }

    /// The body of one batch: `events` are (event id, timestamp in ns).
    fn body(self, tenant: &str, client: &str, events: &[(String, i64)]) -> String {
        match self {
            Protocol::LineProtocol => events
                .iter()
                .map(|(id, ts)| {
                    format!(
                        "api_calls,tenant={tenant},endpoint=/crash/{client} \
                         response_time_ms={}.5,event_id=\"{id}\" {ts}\n",
                        ts % 100
                    )
                })
                .collect(),
            Protocol::Json => {
                let events: Vec<serde_json::Value> = events
                    .iter()
                    .map(|(id, ts)| {
                        serde_json::json!({
                            "tenant_id": tenant,
                            "event_type": "api_call",
                            "event_id": id,
                            "timestamp": ts,
                            "metadata": {
                                "endpoint": format!("/crash/{client}"),
                                "response_time_ms": (ts % 100) as f64 + 0.5,
                            },
                        })
                    })
                    .collect();
                serde_json::Value::Array(events).to_string()
            }
        }
    }
}

fn tenant_name(tenant_idx: usize) -> String {
    format!("crash-t{tenant_idx}")
}

/// An HTTP agent that reports statuses as answers, not errors.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// How a write request ended.
enum Answer {
    Acked,
    /// Not acknowledged: send again. The status, or 0 when there was no answer.
    Retry(u16),
    /// A 4xx that no retry can fix.
    Refused(String),
}

fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: &str) -> Answer {
    let response = match agent
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
    {
        Ok(response) => response,
        // Connection refused or reset, timeout: the server is down or was killed mid-request.
        Err(_) => return Answer::Retry(0),
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => Answer::Acked,
        408 | 429 | 500..=599 => Answer::Retry(status),
        _ => {
            let text = response.into_body().read_to_string().unwrap_or_default();
            Answer::Refused(format!("{status} {text}"))
        }
    }
}

/// One client thread: sends batches of its protocol until told to drain.
struct Client {
    shared: Arc<Shared>,
    protocol: Protocol,
    name: String,
    rng: SplitMix64,
    agent: ureq::Agent,
}

impl Client {
    fn spawn(
        shared: Arc<Shared>,
        protocol: Protocol,
        client_idx: usize,
        seed: u64,
    ) -> JoinHandle<()> {
        let name = format!("{}{client_idx}", protocol.prefix());
        let mut client = Client {
            shared,
            protocol,
            rng: SplitMix64(seed),
            agent: agent(Duration::from_secs(10)),
            name,
        };
        std::thread::spawn(move || client.run())
    }

    fn run(&mut self) {
        for batch_no in 0.. {
            if self.shared.draining.load(Ordering::SeqCst) {
                return;
            }
            let (batch_idx, body) = self.new_batch(batch_no);
            if !self.deliver(batch_idx, &body) {
                return;
            }
        }
    }

    /// Makes batch `batch_no` and enters it in the ledger, not yet acknowledged.
    fn new_batch(&mut self, batch_no: u64) -> (usize, String) {
        let tenant = tenant_name(self.rng.between(0, TENANTS as u64 - 1) as usize);
        let n_events = self.rng.between(1, MAX_BATCH_EVENTS);
        // One range of timestamps per batch, so that a time bound never cuts a batch.
        let first_ts = self
            .shared
            .next_timestamp
            .fetch_add(n_events as i64 * 1000, Ordering::Relaxed);
        let events: Vec<(String, i64)> = (0..n_events)
            .map(|event_idx| {
                let id = format!("{}-{batch_no}-{event_idx}", self.name);
                (id, first_ts + event_idx as i64 * 1000)
            })
            .collect();
        let body = self.protocol.body(&tenant, &self.name, &events);
        let mut ledger = self.shared.ledger();
        ledger.batches.push(Batch {
            tenant,
            first_ts,
            ids: events.into_iter().map(|(id, _)| id).collect(),
            sent: false,
            acked: false,
            refused: false,
        });
        (ledger.batches.len() - 1, body)
    }

    /// Sends the batch until it is acknowledged; false if the gate was shut first.
    fn deliver(&mut self, batch_idx: usize, body: &str) -> bool {
        let mut sends = 0;
        loop {
            let Some(permit) = self.shared.gate.enter() else {
                return false;
            };
            let url = self.shared.url.read().unwrap().clone();
            if let Some(url) = url {
                sends += 1;
                let mut ledger = self.shared.ledger();
                ledger.batches[batch_idx].sent = true;
                ledger.retries += u64::from(sends > 1);
                drop(ledger);
                let url = format!("{url}{}", self.protocol.path());
                match post(&self.agent, &url, self.protocol.content_type(), body) {
                    // Recorded before the permit is released, so that a check never sees an
                    // acknowledged batch as unacknowledged.
                    Answer::Acked => {
                        self.shared.ledger().batches[batch_idx].acked = true;
                        return true;
                    }
                    Answer::Refused(why) => {
                        self.shared.ledger().batches[batch_idx].refused = true;
                        let problem = format!("{} batch {batch_idx} refused: {why}", self.name);
                        self.shared.problems.lock().unwrap().push(problem);
                        return true;
                    }
                    Answer::Retry(status) => {
                        *self.shared.ledger().not_acked.entry(status).or_insert(0) += 1;
                    }
                }
            }
            drop(permit);
            std::thread::sleep(Duration::from_millis(self.rng.between(2, 20)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks over HTTP

/// What a check found; any problem fails the run.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    /// `count()` disagrees with the events expected: a full check names the events.
    count_mismatch: bool,
    lost: u64,
    duplicated: u64,
    partial: u64,
    rollup_mismatches: u64,
    /// Unacknowledged batches found stored entirely (their ack was lost in a kill) or absent.
    unacked_stored: u64,
    unacked_absent: u64,
}

/// Reads the stores over HTTP and compares them with the ledger.
struct Checker {
    url: String,
    agent: ureq::Agent,
    /// Time range covering every event of the run.
    range: (i64, i64),
}

impl Checker {
    fn new(url: &str, range: (i64, i64)) -> Checker {
        Checker {
            url: url.to_owned(),
            agent: agent(Duration::from_secs(60)),
            range,
        }
    }

    fn get_json(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let url = format!("{}{path}", self.url);
        let mut request = self.agent.get(&url);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let response = request
            .call()
            .unwrap_or_else(|e| panic!("GET {url} {query:?}: {e}"));
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        assert_eq!(status, 200, "GET {url} {query:?}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
    }

    /// The series of a one-statement InfluxQL query (none when nothing matched).
    fn influxql(&self, q: &str) -> Vec<serde_json::Value> {
        let answer = self.get_json("/query", &[("q", q), ("epoch", "ns")]);
        let result = &answer["results"][0];
        assert!(result["error"].is_null(), "{q}: {}", result["error"]);
        result["series"].as_array().cloned().unwrap_or_default()
    }

    /// How often each event id dated from `lo` is stored for `tenant`.
    fn stored_ids(&self, tenant: &str, lo: i64) -> HashMap<String, u32> {
        let hi = self.range.1;
        let q = format!(
            "SELECT event_id FROM api_calls WHERE tenant = '{tenant}' AND time >= {lo} AND time < {hi}"
        );
        let mut ids = HashMap::new();
        for series in self.influxql(&q) {
            for row in series["values"].as_array().unwrap() {
                let id = row[1].as_str().unwrap_or_else(|| panic!("{q}: row {row}"));
                *ids.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
        ids
    }

    /// `count(event_id)` per tenant over the run's range.
    fn counts_per_tenant(&self) -> BTreeMap<String, u64> {
        let (lo, hi) = self.range;
        let q = format!(
            "SELECT count(event_id) FROM api_calls WHERE time >= {lo} AND time < {hi} GROUP BY tenant"
        );
        self.influxql(&q)
            .iter()
            .map(|s| {
                let tenant = s["tags"]["tenant"].as_str().unwrap().to_owned();
                (tenant, s["values"][0][1].as_u64().unwrap())
            })
            .collect()
    }

    /// `count(event_id)` of `tenant` in `[start, end)` (RFC 3339 times).
    fn count_between(&self, tenant: &str, start: &str, end: &str) -> u64 {
        let q = format!(
            "SELECT count(event_id) FROM api_calls WHERE tenant = '{tenant}' \
             AND time >= '{start}' AND time < '{end}'"
        );
        self.influxql(&q)
            .first()
            .map_or(0, |s| s["values"][0][1].as_u64().unwrap())
    }

    /// Every check, against the ledger as it stands (the clients are paused): event by event
    /// for the batches of `window`, by count for the others.
    fn check(&self, batches: &[Batch], window: &Window) -> Findings {
        let mut findings = Findings::default();
        let in_window: Vec<(usize, &Batch)> = batches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.first_ts >= window.start)
            .collect();
        let stored: BTreeMap<String, HashMap<String, u32>> = (0..TENANTS)
            .map(tenant_name)
            .map(|t| {
                let ids = self.stored_ids(&t, window.start);
                (t, ids)
            })
            .collect();
        check_batches(&in_window, &stored, &mut findings);
        check_nothing_unsent(&in_window, &stored, &mut findings);
        let counts = self.counts_per_tenant();
        check_counts(&counts, &stored, &window.before, &mut findings);
        self.check_rollups(&counts, &mut findings);
        findings
    }

    /// Usage from rollups equals a recount of the raw events: the day buckets of
    /// `/metrics` over the run's range, and `/usage` over the current day.
    fn check_rollups(&self, counts: &BTreeMap<String, u64>, f: &mut Findings) {
        let (lo, hi) = (self.range.0.to_string(), self.range.1.to_string());
        for tenant in (0..TENANTS).map(tenant_name) {
            let raw = counts.get(&tenant).copied().unwrap_or(0);
            let path = format!("/api/v1/tenants/{tenant}/metrics");
            let buckets = self.get_json(
                &path,
                &[
                    ("meter", "api_calls"),
                    ("start", &lo),
                    ("end", &hi),
                    ("granularity", "day"),
                ],
            );
            let rolled_up: f64 = buckets
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["value"].as_f64().unwrap())
                .sum();
            if rolled_up != raw as f64 {
                f.rollup_mismatches += 1;
                f.problems.push(format!(
                    "{tenant}: /metrics counts {rolled_up} api_calls, the raw events are {raw}"
                ));
            }
            let path = format!("/api/v1/tenants/{tenant}/usage");
            let usage = self.get_json(&path, &[("meter", "api_calls"), ("period", "day")]);
            let start = usage["period_start"].as_str().unwrap();
            let end = usage["period_end"].as_str().unwrap();
            let recount = self.count_between(&tenant, start, end);
            let value = usage["value"].as_f64().unwrap();
            if value != recount as f64 {
                f.rollup_mismatches += 1;
                f.problems.push(format!(
                    "{tenant}: /usage counts {value} api_calls in [{start}, {end}), \
                     the raw events are {recount}"
                ));
            }
        }
    }
}

/// The batches a check reads back event by event: those dated from `start`. The batches
/// before were acknowledged and found stored exactly once by an earlier check; they are
/// counted (an event of theirs lost or stored again since would change `count()`).
struct Window {
    start: i64,
    /// Events per tenant of the batches before `start`.
    before: BTreeMap<String, u64>,
}

/// Each tenant's `count()` over the run is the events before the window plus the rows read
/// back in it.
fn check_counts(
    counts: &BTreeMap<String, u64>,
    stored: &BTreeMap<String, HashMap<String, u32>>,
    before: &BTreeMap<String, u64>,
    f: &mut Findings,
) {
    for (tenant, ids) in stored {
        let in_window: u64 = ids.values().map(|&c| u64::from(c)).sum();
        let expected = before.get(tenant).copied().unwrap_or(0) + in_window;
        let counted = counts.get(tenant).copied().unwrap_or(0);
        if counted != expected {
            f.count_mismatch = true;
            f.problems.push(format!(
                "{tenant}: count(event_id) = {counted}, expected {expected} (events checked \
                 before, and {in_window} rows read back since)"
            ));
        }
    }
}

/// Each batch is stored exactly once if acknowledged, entirely or not at all otherwise.
fn check_batches(
    batches: &[(usize, &Batch)],
    stored: &BTreeMap<String, HashMap<String, u32>>,
    f: &mut Findings,
) {
    for &(batch_idx, batch) in batches.iter().filter(|(_, b)| !b.refused) {
        let ids = &stored[&batch.tenant];
        let copies: Vec<u32> = batch
            .ids
            .iter()
            .map(|id| ids.get(id).copied().unwrap_or(0))
            .collect();
        for (id, &n) in batch.ids.iter().zip(&copies).filter(|(_, n)| **n > 1) {
            f.duplicated += 1;
            f.problems
                .push(format!("{}: event {id} is stored {n} times", batch.tenant));
        }
        let present = copies.iter().filter(|&&n| n > 0).count();
        if batch.acked {
            for (id, _) in batch.ids.iter().zip(&copies).filter(|(_, n)| **n == 0) {
                f.lost += 1;
                f.problems.push(format!(
                    "{}: acknowledged event {id} (batch {batch_idx}) is lost",
                    batch.tenant
                ));
            }
        } else if present == 0 {
            f.unacked_absent += u64::from(batch.sent);
        } else if present == batch.ids.len() {
            f.unacked_stored += 1;
        } else {
            f.partial += 1;
            f.problems.push(format!(
                "{}: unacknowledged batch {batch_idx} is partial: {present} of {} events \
                 stored ({:?} ...)",
                batch.tenant,
                batch.ids.len(),
                &batch.ids[..batch.ids.len().min(3)]
            ));
        }
    }
}

/// Every stored id was sent by a client, to that tenant.
fn check_nothing_unsent(
    batches: &[(usize, &Batch)],
    stored: &BTreeMap<String, HashMap<String, u32>>,
    f: &mut Findings,
) {
    let sent: BTreeSet<(&str, &str)> = batches
        .iter()
        .map(|(_, b)| b)
        .flat_map(|b| b.ids.iter().map(|id| (b.tenant.as_str(), id.as_str())))
        .collect();
    for (tenant, ids) in stored {
        for id in ids.keys() {
            if !sent.contains(&(tenant.as_str(), id.as_str())) {
                f.problems
                    .push(format!("{tenant}: event {id} is stored but was never sent"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server's life: start, readiness, kills, what the data directory shows after a kill

/// Starts the server on `dir` with the harness's settings.
fn spawn_server(dir: &Path) -> Spawned {
    let dir = dir.to_str().unwrap();
    cli::spawn(
        &[
            "--data-dir",
            dir,
            "--http-addr",
            "127.0.0.1:0",
            "--sync",
            "always",
            "--shards",
            "2",
            "--max-buffer-bytes",
            MAX_BUFFER_BYTES,
            "--shutdown-grace-secs",
            "2",
            // Compaction runs all the time, so that kills also land inside its rewrites
            // and commits.
            "--compaction-interval-secs",
            "1",
            "--compaction-pace",
            "0",
        ],
        &[],
        false,
    )
}

/// Waits until the server answers `/health` with 200 (and no damage found at start-up) and
/// `/ping` with 204; returns its URL and the time since it was started.
fn wait_ready(server: &Spawned) -> (String, Duration) {
    let agent = agent(Duration::from_secs(1));
    let url = server
        .wait_url(READY_WITHIN * 2)
        .unwrap_or_else(|| panic!("the server did not listen: {:#?}", server.log()));
    loop {
        let health = agent.get(format!("{url}/health")).call();
        let ping = agent.get(format!("{url}/ping")).call();
        if let (Ok(health), Ok(ping)) = (health, ping)
            && health.status() == 200
            && ping.status() == 204
        {
            let took = server.started.elapsed();
            let body = health.into_body().read_to_string().unwrap();
            let health: serde_json::Value = serde_json::from_str(&body).unwrap();
            let damage = &health["checks"]["damage_found_at_startup"];
            assert_eq!(
                damage,
                &serde_json::json!([]),
                "damage after a kill: {body}"
            );
            return (url, took);
        }
        assert!(
            server.started.elapsed() < READY_WITHIN * 2,
            "the server is not ready after {:?}",
            server.started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `took_ms` of the server's "data directory open" line: its recovery at open.
fn open_took_ms(log: &[String]) -> Option<u64> {
    let line = log.iter().find(|l| l.contains("data directory open"))?;
    line.split(" took_ms=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How a cycle's kill is delivered.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// SIGKILL while writes stream in.
    Sigkill,
    /// SIGTERM, then SIGKILL `after_ms` later: lands in the graceful shutdown (requests
    /// finishing, the shutdown flush) or just after it.
    SigtermThenSigkill { after_ms: u64 },
    /// SIGKILL, then a restart killed again `after_ms` after it started: lands in the
    /// start-up recovery when that takes longer.
    TwiceInStartup { after_ms: u64 },
    /// SIGKILL as soon as the data directory shows a flush at work: a `.tmp` file (a segment,
    /// rollup file or manifest being written) or, with `new_file`, a new segment or rollup
    /// file (written and renamed, the manifest that lists it most likely not yet).
    InFlush { new_file: bool },
}

/// Files of interest in the data directory, to tell whether a kill landed in a flush.
#[derive(Default)]
struct DiskState {
    /// `*.tmp`: a segment, rollup file or manifest being written.
    tmp_files: Vec<PathBuf>,
    /// Segment and rollup files; those a restart deletes were orphans of a flush whose
    /// manifest was not replaced yet.
    data_files: BTreeSet<PathBuf>,
}

fn disk_state(dir: &Path) -> DiskState {
    let mut state = DiskState::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            } else if name.ends_with(".tmp") {
                state.tmp_files.push(path);
            } else if name.ends_with(".seg") || name.ends_with(".rollup") {
                state.data_files.insert(path);
            }
        }
    }
    state
}

/// Polls the data directory until a flush shows (see [`Kill::InFlush`]), at most `timeout`;
/// returns whether it showed.
fn wait_for_flush(dir: &Path, new_file: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let known = disk_state(dir).data_files;
    while Instant::now() < deadline {
        let now = disk_state(dir);
        let shows = if new_file {
            now.data_files.difference(&known).next().is_some()
        } else {
            !now.tmp_files.is_empty()
        };
        if shows {
            return true;
        }
        // Short next to a flush (a segment's write and fsync), long enough to leave the
        // server the CPU.
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    cycles: u64,
    sigkills: u64,
    sigterm_kills: u64,
    /// SIGTERM kills that landed after "flushing buffers to segments" and before "stopped".
    in_shutdown_flush: u64,
    /// SIGTERM kills that came after the server had stopped by itself.
    clean_exits: u64,
    startup_kills: u64,
    /// Kills aimed at a flush, and how many saw one before the kill.
    flush_kills: u64,
    flush_watch_hits: u64,
    /// Start-up kills that landed before the server listened (in recovery or earlier).
    startup_kills_before_listening: u64,
    /// Kills that left `.tmp` files (a segment, rollup file or manifest half-written).
    kills_with_tmp_files: u64,
    /// Kills whose restart deleted orphan segment or rollup files (a flush that had written
    /// its files but not its manifest).
    kills_with_orphans: u64,
    /// Over the checks after kills: unacknowledged batches found stored entirely (the kill
    /// took their acknowledgement) or not at all.
    unacked_stored: u64,
    unacked_absent: u64,
    /// Over all checks (any fails the run).
    lost: u64,
    duplicated: u64,
    partial: u64,
    rollup_mismatches: u64,
    /// Checks that read back every event id, and those that read back the window only.
    full_checks: u64,
    window_checks: u64,
    worst_ready: Duration,
    total_ready: Duration,
    starts: u64,
    worst_open_ms: u64,
    segments: u64,
}

impl Tally {
    fn note_ready(&mut self, took: Duration, log: &[String]) {
        self.worst_ready = self.worst_ready.max(took);
        self.total_ready += took;
        self.starts += 1;
        self.worst_open_ms = self.worst_open_ms.max(open_took_ms(log).unwrap_or(0));
    }
}

// ---------------------------------------------------------------------------------------------
// The harness

struct Harness {
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<()>>,
    rng: SplitMix64,
    settings: Settings,
    range: (i64, i64),
    tally: Tally,
    /// Per batch of the ledger: acknowledged and found stored exactly once by a check.
    settled: Vec<bool>,
    started: Instant,
    /// Spawn to listening, of the last start: start-up kills aim below it.
    last_listen: Duration,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let minute = 60_000_000_000;
        let day = 86_400_000_000_000;
        let first = now - now % minute;
        let shared = Arc::new(Shared {
            url: RwLock::new(None),
            gate: Gate::default(),
            ledger: Mutex::new(Ledger::default()),
            draining: AtomicBool::new(false),
            next_timestamp: AtomicI64::new(now),
            problems: Mutex::new(Vec::new()),
        });
        let seed = settings.seed;
        let clients = (0..CLIENTS_PER_PROTOCOL)
            .flat_map(|i| [(Protocol::LineProtocol, i), (Protocol::Json, i)])
            .enumerate()
            .map(|(n, (protocol, i))| {
                let client_seed = seed ^ (n as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
                Client::spawn(shared.clone(), protocol, i, client_seed)
            })
            .collect();
        Harness {
            dir: tempfile::tempdir().unwrap(),
            shared,
            clients,
            rng: SplitMix64(seed),
            settings,
            range: (first, first + 2 * day),
            tally: Tally::default(),
            settled: Vec::new(),
            started: Instant::now(),
            last_listen: Duration::ZERO,
        }
    }

    /// Starts the server and waits until it is ready; publishes its URL to the clients.
    fn start(&mut self) -> Spawned {
        let server = spawn_server(self.dir.path());
        let (url, took) = wait_ready(&server);
        self.shared.set_url(Some(url));
        self.last_listen = took;
        self.tally.note_ready(took, &server.log());
        self.fail_if(
            took > READY_WITHIN,
            &format!("the server was ready {took:?} after it started"),
        );
        server
    }

    fn pick_kill(&mut self) -> Kill {
        match self.rng.between(0, 9) {
            0..=3 => Kill::Sigkill,
            4 | 5 => Kill::InFlush {
                new_file: self.rng.between(0, 1) == 1,
            },
            6 | 7 => Kill::SigtermThenSigkill {
                after_ms: self.rng.between(0, 40),
            },
            _ => Kill::TwiceInStartup {
                after_ms: self.rng.between(0, self.last_listen.as_millis() as u64 + 5),
            },
        }
    }

    /// One cycle: writes for a random time, a kill, a restart, the checks. Returns the
    /// restarted server, which the next cycle kills.
    fn cycle(&mut self, server: Spawned) -> Spawned {
        let kill = self.pick_kill();
        let delay = Duration::from_millis(self.rng.between(KILL_DELAY_MS.0, KILL_DELAY_MS.1));
        self.shared.gate.resume();
        std::thread::sleep(delay);
        let before = self.kill(server, kill);
        if let Kill::TwiceInStartup { after_ms } = kill {
            self.kill_in_startup(Duration::from_millis(after_ms));
        }
        let server = self.start();
        self.note_orphans(&before);
        self.shared.gate.pause();
        self.tally.cycles += 1;
        self.check(&server, self.tally.cycles.is_multiple_of(FULL_CHECK_EVERY));
        if self.tally.cycles.is_multiple_of(PROGRESS_EVERY) {
            self.print_progress();
        }
        server
    }

    /// Kills the server as `kill` says; returns the data directory as the kill left it.
    fn kill(&mut self, server: Spawned, kill: Kill) -> DiskState {
        match kill {
            Kill::SigtermThenSigkill { after_ms } => {
                server.sigterm();
                std::thread::sleep(Duration::from_millis(after_ms));
            }
            Kill::InFlush { new_file } => {
                let seen = wait_for_flush(self.dir.path(), new_file, FLUSH_WAIT);
                self.tally.flush_watch_hits += u64::from(seen);
            }
            Kill::Sigkill | Kill::TwiceInStartup { .. } => {}
        }
        let (_, log) = server.kill();
        self.shared.set_url(None);
        match kill {
            Kill::Sigkill | Kill::TwiceInStartup { .. } => self.tally.sigkills += 1,
            Kill::InFlush { .. } => self.tally.flush_kills += 1,
            Kill::SigtermThenSigkill { .. } => {
                self.tally.sigterm_kills += 1;
                let flushing = log.iter().any(|l| l.contains("flushing buffers"));
                let stopped = log.iter().any(|l| l.contains("INFO stopped"));
                self.tally.in_shutdown_flush += u64::from(flushing && !stopped);
                self.tally.clean_exits += u64::from(stopped);
            }
        }
        let state = disk_state(self.dir.path());
        self.tally.kills_with_tmp_files += u64::from(!state.tmp_files.is_empty());
        state
    }

    /// Starts the server and SIGKILLs it `after` its start, listening or not; the clients
    /// write to it if it listens in time.
    fn kill_in_startup(&mut self, after: Duration) {
        let server = spawn_server(self.dir.path());
        let deadline = server.started + after;
        let mut listening = false;
        while Instant::now() < deadline {
            if !listening && let Some(url) = server.url() {
                self.shared.set_url(Some(url));
                listening = true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        listening |= server.url().is_some();
        let (_, log) = server.kill();
        self.shared.set_url(None);
        self.tally.startup_kills += 1;
        self.tally.startup_kills_before_listening += u64::from(!listening);
        if let Some(open_ms) = open_took_ms(&log) {
            self.tally.worst_open_ms = self.tally.worst_open_ms.max(open_ms);
        }
    }

    /// Counts the kill as landing in a flush if the restart deleted orphans it left.
    fn note_orphans(&mut self, before: &DiskState) {
        let after = disk_state(self.dir.path());
        let orphans = before.data_files.difference(&after.data_files).count();
        self.tally.kills_with_orphans += u64::from(orphans > 0);
    }

    /// Runs every check with the clients paused, reading back every event id if `full`, else
    /// those of the batches not yet found acknowledged and stored (and again with every id
    /// if the counts disagree, to name the events); fails the run on any problem.
    fn check(&mut self, server: &Spawned, full: bool) {
        let batches = self.shared.ledger().batches.clone();
        let checker = Checker::new(&server.url().unwrap(), self.range);
        let mut findings = checker.check(&batches, &self.window(&batches, full));
        if !full && findings.count_mismatch {
            let mut full_findings = checker.check(&batches, &self.window(&batches, true));
            full_findings.problems.append(&mut findings.problems);
            findings = full_findings;
        }
        self.tally.full_checks += u64::from(full || findings.count_mismatch);
        self.tally.window_checks += u64::from(!full);
        let t = &mut self.tally;
        t.unacked_stored += findings.unacked_stored;
        t.unacked_absent += findings.unacked_absent;
        t.lost += findings.lost;
        t.duplicated += findings.duplicated;
        t.partial += findings.partial;
        t.rollup_mismatches += findings.rollup_mismatches;
        t.segments = segments(&checker.url);
        let mut problems = findings.problems;
        problems.extend(self.shared.problems.lock().unwrap().iter().cloned());
        if !problems.is_empty() {
            self.fail(server, &problems);
        }
        self.settle(&batches);
    }

    /// The batches a check reads back: all if `full`, else from the first one not settled.
    fn window(&self, batches: &[Batch], full: bool) -> Window {
        let unsettled = batches
            .iter()
            .enumerate()
            .filter(|&(idx, _)| !self.settled.get(idx).copied().unwrap_or(false))
            .map(|(_, b)| b.first_ts)
            .min();
        let start = match (full, unsettled) {
            (true, _) => self.range.0,
            (false, Some(ts)) => ts,
            (false, None) => self.range.1,
        };
        let mut before = BTreeMap::new();
        for b in batches.iter().filter(|b| b.first_ts < start) {
            *before.entry(b.tenant.clone()).or_insert(0) += b.ids.len() as u64;
        }
        Window { start, before }
    }

    /// After a check without problems: the acknowledged batches are stored exactly once.
    fn settle(&mut self, batches: &[Batch]) {
        self.settled.resize(batches.len(), false);
        for (settled, batch) in self.settled.iter_mut().zip(batches) {
            *settled |= batch.acked;
        }
    }

    /// Events and batches acknowledged so far.
    fn acknowledged(&self) -> (u64, u64) {
        let ledger = self.shared.ledger();
        let acked = ledger.batches.iter().filter(|b| b.acked);
        acked.fold((0, 0), |(events, batches), b| {
            (events + b.ids.len() as u64, batches + 1)
        })
    }

    fn fail_if(&mut self, failed: bool, problem: &str) {
        if failed {
            self.print_summary();
            panic!("{problem}");
        }
    }

    /// Prints the summary and the server's log, keeps the data directory, and panics.
    fn fail(&mut self, server: &Spawned, problems: &[String]) -> ! {
        self.print_summary();
        eprintln!("server log:\n{}", server.log().join("\n"));
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
        panic!(
            "cycle {}: {} problems (data directory kept at {}); the first ones:\n{}",
            self.tally.cycles + 1,
            problems.len(),
            dir.display(),
            problems[..problems.len().min(30)].join("\n")
        );
    }

    /// The clients deliver their last batches (all acknowledged then) and exit.
    fn drain_clients(&mut self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        self.shared.gate.resume();
        for client in self.clients.drain(..) {
            client.join().unwrap();
        }
        self.shared.gate.pause();
    }

    /// One line, for long runs.
    fn print_progress(&self) {
        eprintln!(
            "crash_http: cycle {}/{}, {} events acknowledged, {} segments, worst recovery {:?}, \
             {:.0?}",
            self.tally.cycles,
            self.settings.cycles,
            self.acknowledged().0,
            self.tally.segments,
            self.tally.worst_ready,
            self.started.elapsed()
        );
    }

    fn print_summary(&self) {
        let t = &self.tally;
        let (acked_events, acked_batches) = self.acknowledged();
        let (retries, not_acked) = {
            let ledger = self.shared.ledger();
            (ledger.retries, format!("{:?}", ledger.not_acked))
        };
        let mean_ready = t
            .total_ready
            .checked_div(t.starts as u32)
            .unwrap_or_default();
        eprintln!(
            "crash_http summary (seed {:#x}, {} clients, --max-buffer-bytes {MAX_BUFFER_BYTES})\n\
             \x20 cycles:               {} of {} (sigkill {}, sigkill aimed at a flush {} ({} saw one), \
             sigterm then sigkill {}; \
             {} followed by a kill in the next start-up, {} of them before it listened)\n\
             \x20 events acknowledged:  {} in {} batches ({} resends; \
             sends not acknowledged by status, 0 = no answer: {})\n\
             \x20 unacknowledged:       {} batches found stored entirely after a kill (ack lost), \
             {} absent, {} partial\n\
             \x20 lost:                 {}\n\
             \x20 duplicated:           {}\n\
             \x20 rollup mismatches:    {}\n\
             \x20 kills in a flush:     {} left .tmp files, {} left orphan segment/rollup files, \
             {} in the shutdown flush ({} clean exits before the SIGKILL)\n\
             \x20 recovery:             worst {:?} to /health and /ping (mean {:?} over {} \
             starts), data directory open worst {} ms\n\
             \x20 checks:               {} reading back every event id, {} the ids since the \
             last check (and every count)\n\
             \x20 segments at the end:  {}\n\
             \x20 wall time:            {:.1?}",
            self.settings.seed,
            CLIENTS_PER_PROTOCOL * 2,
            t.cycles,
            self.settings.cycles,
            t.sigkills,
            t.flush_kills,
            t.flush_watch_hits,
            t.sigterm_kills,
            t.startup_kills,
            t.startup_kills_before_listening,
            acked_events,
            acked_batches,
            retries,
            not_acked,
            t.unacked_stored,
            t.unacked_absent,
            t.partial,
            t.lost,
            t.duplicated,
            t.rollup_mismatches,
            t.kills_with_tmp_files,
            t.kills_with_orphans,
            t.in_shutdown_flush,
            t.clean_exits,
            t.worst_ready,
            mean_ready,
            t.starts,
            t.worst_open_ms,
            t.full_checks,
            t.window_checks,
            t.segments,
            self.started.elapsed(),
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // On a failure the clients would otherwise wait at the gate forever.
        self.shared.gate.shut();
    }
}

/// The server's segment count, from `/health`.
fn segments(url: &str) -> u64 {
    let body = agent(Duration::from_secs(10))
        .get(format!("{url}/health"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    health["checks"]["segments"].as_u64().unwrap_or(0)
}

#[test]
fn acknowledged_http_writes_survive_kills_exactly_once() {
    let mut harness = Harness::new(Settings::from_env());
    let mut server = harness.start();
    for _ in 0..harness.settings.cycles {
        server = harness.cycle(server);
    }

    // The last batches, then a graceful stop (its flush) and a start from segments alone.
    harness.drain_clients();
    harness.check(&server, true);
    let unacked = harness
        .shared
        .ledger()
        .batches
        .iter()
        .filter(|b| !b.acked)
        .count();
    harness.fail_if(
        unacked > 0,
        &format!("{unacked} batches never acknowledged"),
    );
    let (status, log) = server.stop();
    assert!(
        log.iter().any(|l| l.contains("INFO stopped")),
        "SIGTERM did not stop the server cleanly ({status}): {log:#?}"
    );
    let server = harness.start();
    harness.check(&server, true);
    harness.print_summary();
    let t = &harness.tally;
    assert_eq!((t.lost, t.duplicated, t.partial), (0, 0, 0));
    assert!(harness.acknowledged().0 > 0, "no write was acknowledged");
}
