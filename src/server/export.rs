//! `GET /api/v1/tenants/{tenant}/users/{user}/export`: every stored event of one user of one
//! tenant (the events whose tag `user` is `{user}`), in time order, for a data subject's right
//! of access. This file owns the export's two wire formats and the walk over the data that
//! keeps the export's memory bounded, whatever its size.
//!
//! | parameter | meaning |
//! |---|---|
//! | `format` | `jsonl` (default, `application/x-ndjson`) or `csv` (`text/csv`, RFC 4180, CRLF) |
//! | `start`, `end` | `[start, end)`, RFC 3339 or epoch ns; all time when absent |
//!
//! A JSON line is `{"time","timestamp","measurement","event_id","tags","fields","meters"}`:
//! `time` is RFC 3339 with nine fraction digits, `timestamp` epoch ns, fields keep their
//! types, and `meters` holds what the event adds to each of the tenant's meters that counts it
//! (count: 1, numeric aggregations: the value, unique_count: the distinct value). A CSV has
//! the columns `time,timestamp,measurement,event_id`, then `tag:<key>`, `field:<key>` and
//! `meter:<name>` for every tag key, field key and meter that some exported event has (tags
//! and fields by key, meters in the tenant's order); a cell the event lacks is empty.
//!
//! **Memory:** the scan runs on the blocking pool in time windows of at most
//! [`WINDOW_ROWS`] of the user's events (fewer when `query_max_scan_rows` is lower), sized
//! beforehand with [`Engine::count`]; a window's batches are merged by time into bounded
//! chunks and dropped before the next window is read, and at most [`QUEUED_CHUNKS`] chunks
//! wait for the connection. A CSV walks the windows twice, the first time to learn its
//! columns. The one window that can exceed the budget is a single nanosecond holding more
//! events than it.
//!
//! An unknown tenant or a user without events is a 200 with an empty body (a CSV: the
//! header). A failure before the first byte is an error status; a failure later cuts the
//! response off (no final chunk), so that a client never mistakes a partial export for a
//! whole one. A client that goes away stops the scan.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::AppState;
use super::error::ApiError;
use super::usage::{TenantAnd, parse_time, tenant_and};
use crate::model::{FieldValueRef, TenantId};
use crate::scan::NO_TAG;
use crate::usage::Meter;
use crate::usage::meter::Contribution;
use crate::{ColumnBatch, Engine, ScanRequest, TagPredicate};

/// The tag that names an event's user (the one the built-in meter `active_users` counts).
pub const USER_TAG: &str = "user";

/// Most of the user's events read by one scan: the export's memory budget.
pub const WINDOW_ROWS: usize = 65_536;

/// Output is handed to the connection in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 << 10;

/// Chunks waiting for the connection at most; a slow reader slows the scan down.
pub const QUEUED_CHUNKS: usize = 4;

/// Query parameters of the export.
#[derive(Debug, Default, Deserialize)]
struct ExportParams {
    format: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

/// The wire format asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    JsonLines,
    Csv,
}

impl Format {
    fn parse(s: Option<&str>) -> Result<Format, ApiError> {
        match s {
            None | Some("" | "jsonl") => Ok(Format::JsonLines),
            Some("csv") => Ok(Format::Csv),
            Some(other) => Err(ApiError::BadRequest(format!(
                "invalid parameter \"format\": {:?} is not jsonl or csv",
                crate::usage::meter::clip(other)
            ))),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::JsonLines => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// `GET /api/v1/tenants/{tenant}/users/{user}/export?format=&start=&end=`.
pub async fn export(
    State(state): State<Arc<AppState>>,
    path: TenantAnd,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (tenant, user) = tenant_and(path)?;
    let p: ExportParams = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let format = Format::parse(p.format.as_deref())?;
    let time = |value: Option<&str>, name: &str, default: i64| match value {
        None | Some("") => Ok(default),
        Some(s) => parse_time(s, name).map(|t| t.0),
    };
    let start = time(p.start.as_deref(), "start", i64::MIN)?;
    let end = time(p.end.as_deref(), "end", i64::MAX)?;
    if start >= end {
        return Err(ApiError::BadRequest(format!(
            "start ({start}) must be before end ({end})"
        )));
    }
    let disposition = format!(
        "attachment; filename=\"{}-{}-export.{}\"",
        file_name_part(&tenant),
        file_name_part(&user),
        format.extension()
    );
    let job = Export {
        engine: state.engine.clone(),
        req: ScanRequest {
            tenant: Some(TenantId::new(&tenant)),
            time: Some(start..end),
            predicates: vec![TagPredicate::eq(USER_TAG, &user)],
            ..ScanRequest::default()
        },
        meters: state.tracker.meters(&tenant),
        format,
        window_rows: WINDOW_ROWS.min(state.config.query_max_scan_rows).max(1) as u64,
    };
    let (tx, mut rx) = mpsc::channel(QUEUED_CHUNKS);
    tokio::task::spawn_blocking(move || job.run(tx));
    // The producer's first message says whether the export could start: a failure there
    // (a damaged segment, a closed engine) still gets a proper error status.
    let first = match rx.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(e)) => return Err(e.into()),
        None => {
            return Err(ApiError::Internal(
                "the export stopped before it started; see the server log".into(),
            ));
        }
    };
    let body = Body::from_stream(Chunks {
        first: Some(first).filter(|c| !c.is_empty()),
        rx,
    });
    let mut response = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A tenant or user id made safe for a file name in a quoted header parameter: ASCII letters,
/// digits, `.`, `-` and `_` are kept, anything else becomes `_`, at most 64 characters.
fn file_name_part(s: &str) -> String {
    let part: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A leading dot would make a hidden file of the download.
    match part.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => part,
    }
}

/// The response body: the chunks the producer sends, a producer error ending the body with
/// an error (hyper then closes the connection without the final chunk).
struct Chunks {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Result<Bytes, crate::Error>>,
}

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, crate::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(chunk) = self.first.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        self.rx.poll_recv(cx)
    }
}

/// Why the producer stopped early.
enum Stop {
    /// The engine failed.
    Failed(crate::Error),
    /// The response was dropped: the client went away or the server is shutting down.
    Gone,
}

impl From<crate::Error> for Stop {
    fn from(e: crate::Error) -> Stop {
        Stop::Failed(e)
    }
}

/// The output buffer and the channel to the connection.
struct Sink {
    tx: mpsc::Sender<Result<Bytes, crate::Error>>,
    buf: String,
}

impl Sink {
    /// Sends what is buffered (possibly nothing: the start signal).
    fn send(&mut self) -> Result<(), Stop> {
        let chunk = Bytes::from(std::mem::take(&mut self.buf).into_bytes());
        self.buf.reserve(CHUNK_BYTES + CHUNK_BYTES / 4);
        self.tx.blocking_send(Ok(chunk)).map_err(|_| Stop::Gone)
    }

    /// Sends the buffer once it holds a chunk.
    fn row_done(&mut self) -> Result<(), Stop> {
        if self.buf.len() >= CHUNK_BYTES {
            self.send()
        } else {
            Ok(())
        }
    }
}

/// One export, run on the blocking pool.
struct Export {
    engine: Arc<Engine>,
    /// The user's events over the asked range; windows narrow its time range.
    req: ScanRequest,
    meters: Vec<Meter>,
    format: Format,
    window_rows: u64,
}

impl Export {
    fn run(self, tx: mpsc::Sender<Result<Bytes, crate::Error>>) {
        let mut sink = Sink {
            tx,
            buf: String::new(),
        };
        match self.write(&mut sink) {
            Ok(()) => {
                if !sink.buf.is_empty() {
                    let _ = sink.send();
                }
            }
            Err(Stop::Gone) => {
                tracing::debug!("export abandoned: the response was dropped");
            }
            Err(Stop::Failed(e)) => {
                tracing::error!(error = %e, "export failed");
                let _ = sink.tx.blocking_send(Err(e));
            }
        }
    }

    fn write(&self, sink: &mut Sink) -> Result<(), Stop> {
        let mut windows = Windows::new(&self.engine, &self.req, self.window_rows);
        let first = windows.next_window()?;
        sink.send()?;
        match self.format {
            Format::JsonLines => {
                let mut window = first;
                while let Some(range) = window {
                    self.each_row(range, json_layout, |row| {
                        write_json(&mut sink.buf, &row, &self.meters);
                        sink.row_done()
                    })?;
                    window = windows.next_window()?;
                }
            }
            Format::Csv => {
                // First walk: the columns, and the windows, so that the second walk need not
                // count again.
                let mut columns = CsvColumns::new(self.meters.len());
                let mut ranges = Vec::new();
                let mut window = first;
                while let Some(range) = window {
                    let batches = self.scan(range.clone())?;
                    for batch in &batches {
                        columns.gather(batch, &self.meters);
                    }
                    ranges.push(range);
                    window = windows.next_window()?;
                }
                let tags: Vec<&str> = columns.tags.iter().map(String::as_str).collect();
                let fields: Vec<&str> = columns.fields.iter().map(String::as_str).collect();
                let meters: Vec<&Meter> = self
                    .meters
                    .iter()
                    .zip(&columns.meters)
                    .filter_map(|(m, &seen)| seen.then_some(m))
                    .collect();
                write_csv_header(&mut sink.buf, &tags, &fields, &meters);
                sink.row_done()?;
                for range in ranges {
                    self.each_row(
                        range,
                        |b| csv_layout(b, &tags, &fields),
                        |row| {
                            write_csv_row(&mut sink.buf, &row, &meters);
                            sink.row_done()
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The user's events in `range`.
    fn scan(&self, range: Range<i64>) -> crate::Result<Vec<ColumnBatch>> {
        let req = ScanRequest {
            time: Some(range),
            ..self.req.clone()
        };
        self.engine.scan(&req)
    }

    /// Calls `emit` for every event in `range`, in time order. The scan's batches (one per
    /// table and source) are each in time order; a heap merges them.
    fn each_row(
        &self,
        range: Range<i64>,
        layout: impl Fn(&ColumnBatch) -> Layout,
        mut emit: impl FnMut(Row<'_>) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        let batches = self.scan(range)?;
        let layouts: Vec<Layout> = batches.iter().map(layout).collect();
        let mut heap: BinaryHeap<Reverse<(i64, usize, usize)>> = batches
            .iter()
            .enumerate()
            .filter_map(|(b, batch)| Some(Reverse((*batch.timestamps.first()?, b, 0))))
            .collect();
        while let Some(Reverse((timestamp, b, row))) = heap.pop() {
            let batch = &batches[b];
            emit(Row {
                batch,
                layout: &layouts[b],
                row,
                timestamp,
            })?;
            if let Some(&next) = batch.timestamps.get(row + 1) {
                heap.push(Reverse((next, b, row + 1)));
            }
        }
        Ok(())
    }
}

/// The time windows of an export, each holding at most `rows` of the user's events (but a
/// single nanosecond holding more), found with counts, which read no row.
struct Windows<'e> {
    engine: &'e Engine,
    req: ScanRequest,
    next: i64,
    end: i64,
    rows: u64,
}

impl<'e> Windows<'e> {
    fn new(engine: &'e Engine, req: &ScanRequest, rows: u64) -> Windows<'e> {
        let range = req.time.clone().unwrap_or(i64::MIN..i64::MAX);
        Windows {
            engine,
            req: req.clone(),
            next: range.start,
            end: range.end,
            rows,
        }
    }

    fn count(&mut self, range: Range<i64>) -> crate::Result<u64> {
        self.req.time = Some(range);
        self.engine.count(&self.req)
    }

    /// The next window, `None` when no event is left.
    fn next_window(&mut self) -> crate::Result<Option<Range<i64>>> {
        let (start, end) = (self.next, self.end);
        let left = if start < end {
            self.count(start..end)?
        } else {
            0
        };
        if left == 0 {
            self.next = end;
            return Ok(None);
        }
        let mut stop = end;
        if left > self.rows {
            // The largest `lo` with at most `rows` events in [start, lo): at most 64 counts.
            let (mut lo, mut hi) = (start, end);
            while (hi as i128) - (lo as i128) > 1 {
                let mid = ((lo as i128 + hi as i128) / 2) as i64;
                if self.count(start..mid)? <= self.rows {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            stop = if lo == start { start + 1 } else { lo };
        }
        self.next = stop;
        Ok(Some(start..stop))
    }
}

/// Where an output's tag and field columns are in one batch: for JSON the batch's columns
/// ordered by key, for CSV the batch's column (if any) of each header column.
struct Layout {
    tags: Vec<Option<usize>>,
    fields: Vec<Option<usize>>,
}

fn json_layout(batch: &ColumnBatch) -> Layout {
    let mut tags: Vec<usize> = (0..batch.tags.len()).collect();
    tags.sort_by(|&a, &b| batch.tags[a].key.cmp(&batch.tags[b].key));
    let mut fields: Vec<usize> = (0..batch.fields.len()).collect();
    fields.sort_by(|&a, &b| batch.fields[a].key.cmp(&batch.fields[b].key));
    Layout {
        tags: tags.into_iter().map(Some).collect(),
        fields: fields.into_iter().map(Some).collect(),
    }
}

fn csv_layout(batch: &ColumnBatch, tags: &[&str], fields: &[&str]) -> Layout {
    Layout {
        tags: tags
            .iter()
            .map(|k| batch.tags.iter().position(|c| c.key == *k))
            .collect(),
        fields: fields
            .iter()
            .map(|k| batch.fields.iter().position(|c| c.key == *k))
            .collect(),
    }
}

/// One event of a batch.
struct Row<'b> {
    batch: &'b ColumnBatch,
    layout: &'b Layout,
    row: usize,
    timestamp: i64,
}

impl<'b> Row<'b> {
    fn event_id(&self) -> Option<&'b str> {
        self.batch.event_ids.as_ref()?.get(self.row)
    }

    /// The layout's tags, `None` where the event has none.
    fn tags(&self) -> impl Iterator<Item = Option<(&'b str, &'b str)>> + '_ {
        let batch = self.batch;
        self.layout.tags.iter().map(move |c| {
            let col = batch.tags.get((*c)?)?;
            Some((col.key.as_str(), col.value(self.row)?))
        })
    }

    /// The layout's fields, `None` where the event has none.
    fn fields(&self) -> impl Iterator<Item = Option<(&'b str, FieldValueRef<'b>)>> + '_ {
        let batch = self.batch;
        self.layout.fields.iter().map(move |c| {
            let col = batch.fields.get((*c)?)?;
            Some((col.key.as_str(), col.value(self.row)?))
        })
    }

    /// What the event adds to `meter`.
    fn contribution(&self, meter: &Meter) -> Contribution<'b> {
        contribution(self.batch, self.row, meter)
    }
}

fn contribution<'b>(batch: &'b ColumnBatch, row: usize, meter: &Meter) -> Contribution<'b> {
    meter.contribution_of(
        &batch.measurement,
        |key| batch.tag(key).and_then(|c| c.value(row)),
        |key| batch.field(key).and_then(|c| c.value(row)),
    )
}

/// Whether a contribution is shown: only what the meter counts (not `NoMatch` or `Missing`).
fn counted(c: Contribution<'_>) -> bool {
    matches!(
        c,
        Contribution::One | Contribution::Value(_) | Contribution::Distinct(_)
    )
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn write_json(out: &mut String, row: &Row<'_>, meters: &[Meter]) {
    use std::fmt::Write;
    out.push_str("{\"time\":\"");
    out.push_str(&rfc3339(row.timestamp));
    let _ = write!(out, "\",\"timestamp\":{},\"measurement\":", row.timestamp);
    json_str(out, &row.batch.measurement);
    out.push_str(",\"event_id\":");
    match row.event_id() {
        Some(id) => json_str(out, id),
        None => out.push_str("null"),
    }
    out.push_str(",\"tags\":{");
    for (i, (key, value)) in row.tags().flatten().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, key);
        out.push(':');
        json_str(out, value);
    }
    out.push_str("},\"fields\":{");
    for (i, (key, value)) in row.fields().flatten().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, key);
        out.push(':');
        match value {
            FieldValueRef::F64(f) => json_float(out, f),
            FieldValueRef::I64(v) => {
                let _ = write!(out, "{v}");
            }
            FieldValueRef::U64(v) => {
                let _ = write!(out, "{v}");
            }
            FieldValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            FieldValueRef::Str(s) => json_str(out, s),
        }
    }
    out.push_str("},\"meters\":{");
    let mut first = true;
    for meter in meters {
        let c = row.contribution(meter);
        if !counted(c) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        json_str(out, &meter.name);
        out.push(':');
        match c {
            Contribution::One => out.push('1'),
            Contribution::Value(v) => json_float(out, v),
            Contribution::Distinct(s) => json_str(out, s),
            Contribution::NoMatch | Contribution::Missing => out.push_str("null"),
        }
    }
    out.push_str("}}\n");
}

/// A float that reads back as a float (`12.0`, not `12`: the field's type shows) with the
/// shortest digits that round-trip. JSON has no NaN or infinity: those become `null`.
fn json_float(out: &mut String, f: f64) {
    use std::fmt::Write;
    if f.is_finite() {
        let _ = write!(out, "{f:?}");
    } else {
        out.push_str("null");
    }
}

/// A JSON string literal (RFC 8259: quote, backslash and control characters escaped).
fn json_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The CSV's columns, gathered over the exported events: tag and field keys holding a value
/// for some event, and which meters count some event.
struct CsvColumns {
    tags: BTreeSet<String>,
    fields: BTreeSet<String>,
    meters: Vec<bool>,
}

impl CsvColumns {
    fn new(meters: usize) -> CsvColumns {
        CsvColumns {
            tags: BTreeSet::new(),
            fields: BTreeSet::new(),
            meters: vec![false; meters],
        }
    }

    /// Adds the columns `batch` has values in (a batch's column can be empty for the
    /// exported rows: other users' events of the table had that tag or field).
    fn gather(&mut self, batch: &ColumnBatch, meters: &[Meter]) {
        for col in &batch.tags {
            if !self.tags.contains(&col.key) && col.ids.iter().any(|&id| id != NO_TAG) {
                self.tags.insert(col.key.clone());
            }
        }
        for col in &batch.fields {
            if !self.fields.contains(&col.key) && col.values.has_value() {
                self.fields.insert(col.key.clone());
            }
        }
        for (meter, seen) in meters.iter().zip(self.meters.iter_mut()) {
            if !*seen {
                *seen = (0..batch.len()).any(|row| counted(contribution(batch, row, meter)));
            }
        }
    }
}

fn write_csv_header(out: &mut String, tags: &[&str], fields: &[&str], meters: &[&Meter]) {
    out.push_str("time,timestamp,measurement,event_id");
    let named = |prefix: &str, name: &str| format!("{prefix}{name}");
    let columns = (tags.iter().map(|k| named("tag:", k)))
        .chain(fields.iter().map(|k| named("field:", k)))
        .chain(meters.iter().map(|m| named("meter:", &m.name)));
    for column in columns {
        out.push(',');
        csv_cell(out, &column);
    }
    out.push_str("\r\n");
}

fn write_csv_row(out: &mut String, row: &Row<'_>, meters: &[&Meter]) {
    use std::fmt::Write;
    out.push_str(&rfc3339(row.timestamp));
    let _ = write!(out, ",{},", row.timestamp);
    csv_cell(out, &row.batch.measurement);
    out.push(',');
    csv_cell(out, row.event_id().unwrap_or(""));
    for tag in row.tags() {
        out.push(',');
        if let Some((_, value)) = tag {
            csv_cell(out, value);
        }
    }
    for field in row.fields() {
        out.push(',');
        match field.map(|(_, v)| v) {
            None => {}
            Some(FieldValueRef::F64(f)) => {
                let _ = write!(out, "{f:?}");
            }
            Some(FieldValueRef::I64(v)) => {
                let _ = write!(out, "{v}");
            }
            Some(FieldValueRef::U64(v)) => {
                let _ = write!(out, "{v}");
            }
            Some(FieldValueRef::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
            Some(FieldValueRef::Str(s)) => csv_cell(out, s),
        }
    }
    for meter in meters {
        out.push(',');
        match row.contribution(meter) {
            Contribution::One => out.push('1'),
            Contribution::Value(v) => {
                let _ = write!(out, "{v:?}");
            }
            Contribution::Distinct(s) => csv_cell(out, s),
            Contribution::NoMatch | Contribution::Missing => {}
        }
    }
    out.push_str("\r\n");
}

/// One CSV cell, quoted as RFC 4180 asks when it holds a comma, a quote or a line break
/// (quotes doubled inside).
fn csv_cell(out: &mut String, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        let mut out = String::new();
        for s in ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\r", ""] {
            csv_cell(&mut out, s);
            out.push('|');
        }
        assert_eq!(
            out,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|\"cr\r\"||"
        );
    }

    #[test]
    fn json_strings_and_floats_read_back() {
        let mut out = String::new();
        json_str(&mut out, "q\"b\\n\n\t\u{1}é");
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "q\"b\\n\n\t\u{1}é");
        for f in [12.0, 0.1, -1e300, 1e-7, 5e-324] {
            let mut out = String::new();
            json_float(&mut out, f);
            let back: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(back.is_f64(), "{out}");
            assert_eq!(back.as_f64(), Some(f), "{out}");
        }
        let mut out = String::new();
        json_float(&mut out, f64::NAN);
        assert_eq!(out, "null");
    }

    #[test]
    fn file_names_keep_safe_characters_only() {
        assert_eq!(file_name_part("acme-1_b.c"), "acme-1_b.c");
        assert_eq!(file_name_part("a\"b/c\\d é\r\n"), "a_b_c_d____");
        assert_eq!(file_name_part("..hidden"), "_.hidden");
        assert_eq!(file_name_part(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn formats() {
        assert_eq!(Format::parse(None).unwrap(), Format::JsonLines);
        assert_eq!(Format::parse(Some("csv")).unwrap(), Format::Csv);
        assert_eq!(Format::parse(Some("jsonl")).unwrap(), Format::JsonLines);
        let err = Format::parse(Some("xml")).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
