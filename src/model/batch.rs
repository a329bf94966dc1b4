//! [`WriteBatch`]: a columnar batch of events, the unit of a write and of a WAL record.
//!
//! Every string of the batch lives in one arena; each attribute of the events is its own column
//! of arena spans or numbers. Building a batch costs one copy of each string and no allocation
//! per event; encoding it for the WAL is a handful of slice copies, and decoding it back checks
//! every length and span before use, so that bytes from disk never cause a panic.

use crate::error::{Corruption, CorruptionKind, InvalidEvent};
use crate::model::{Event, FieldType, FieldValue, TenantId, Timestamp, limits};

/// A borrowed field value, as stored in a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValueRef<'a> {
    /// 64-bit float.
    F64(f64),
    /// 64-bit signed integer.
    I64(i64),
    /// 64-bit unsigned integer.
    U64(u64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    Str(&'a str),
}

impl FieldValueRef<'_> {
    /// The value's type.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldValueRef::F64(_) => FieldType::Float,
            FieldValueRef::I64(_) => FieldType::Integer,
            FieldValueRef::U64(_) => FieldType::Unsigned,
            FieldValueRef::Bool(_) => FieldType::Boolean,
            FieldValueRef::Str(_) => FieldType::String,
        }
    }

    /// Copies the value out.
    pub fn to_owned(&self) -> FieldValue {
        match *self {
            FieldValueRef::F64(v) => FieldValue::F64(v),
            FieldValueRef::I64(v) => FieldValue::I64(v),
            FieldValueRef::U64(v) => FieldValue::U64(v),
            FieldValueRef::Bool(v) => FieldValue::Bool(v),
            FieldValueRef::Str(v) => FieldValue::Str(v.to_owned()),
        }
    }
}

/// A byte range of the arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// Marks an absent event id.
const NO_SPAN: Span = Span {
    start: u32::MAX,
    len: 0,
};

/// Format version of an encoded batch (the first byte of a WAL record payload).
const BATCH_VERSION: u8 = 1;

/// A columnar batch of events.
///
/// ```
/// use meterdb::{FieldValueRef, Timestamp, WriteBatch};
///
/// let mut batch = WriteBatch::new();
/// batch
///     .add("acme", "api_calls", Timestamp(1_700_000_000_000_000_000))
///     .tag("endpoint", "/api/users")
///     .field("response_time_ms", FieldValueRef::F64(12.5))
///     .event_id("7c9e6679-7425-40de-944b-e07fc1f90ae7");
/// assert_eq!(batch.len(), 1);
/// assert_eq!(batch.event(0).unwrap().tags().next(), Some(("endpoint", "/api/users")));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteBatch {
    arena: String,
    tenant: Vec<Span>,
    measurement: Vec<Span>,
    timestamp: Vec<i64>,
    event_id: Vec<Span>,
    tag_start: Vec<u32>,
    tag_key: Vec<Span>,
    tag_value: Vec<Span>,
    field_start: Vec<u32>,
    field_key: Vec<Span>,
    field_type: Vec<u8>,
    field_value: Vec<u64>,
    /// Set when the arena outgrew the u32 spans; such a batch is refused by the engine.
    overflowed: bool,
}

/// Adds tags, fields and an event id to the event just started with [`WriteBatch::add`].
pub struct EventBuilder<'b> {
    batch: &'b mut WriteBatch,
}

impl EventBuilder<'_> {
    /// Adds a tag.
    pub fn tag(&mut self, key: &str, value: &str) -> &mut Self {
        let b = &mut *self.batch;
        let key = b.intern_repeated(key, |b, i| {
            // The same position in the previous event usually holds the same key (`i` counts
            // the event being built).
            let prev_start = *b.tag_start.get(i.checked_sub(2)?)? as usize;
            let here = b.tag_key.len() - *b.tag_start.last()? as usize;
            b.tag_key.get(prev_start + here).copied()
        });
        let value = b.push_str(value);
        b.tag_key.push(key);
        b.tag_value.push(value);
        self
    }

    /// Adds a field.
    pub fn field(&mut self, key: &str, value: FieldValueRef<'_>) -> &mut Self {
        let b = &mut *self.batch;
        let key = b.intern_repeated(key, |b, i| {
            let prev_start = *b.field_start.get(i.checked_sub(2)?)? as usize;
            let here = b.field_key.len() - *b.field_start.last()? as usize;
            b.field_key.get(prev_start + here).copied()
        });
        let bits = match value {
            FieldValueRef::F64(v) => v.to_bits(),
            FieldValueRef::I64(v) => v as u64,
            FieldValueRef::U64(v) => v,
            FieldValueRef::Bool(v) => v as u64,
            FieldValueRef::Str(s) => {
                let span = b.push_str(s);
                (u64::from(span.start) << 32) | u64::from(span.len)
            }
        };
        b.field_key.push(key);
        b.field_type.push(value.field_type().code());
        b.field_value.push(bits);
        self
    }

    /// Sets the event's id.
    pub fn event_id(&mut self, id: &str) -> &mut Self {
        let span = self.batch.push_str(id);
        if let Some(last) = self.batch.event_id.last_mut() {
            *last = span;
        }
        self
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.timestamp.is_empty()
    }

    /// Approximate memory the batch holds, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.arena.len()
            + self.len() * (8 * 3 + 8 + 8)
            + self.tag_key.len() * 16
            + self.field_key.len() * 17
    }

    /// Starts a new event; add its tags, fields and id with the returned builder.
    pub fn add(
        &mut self,
        tenant: &str,
        measurement: &str,
        timestamp: Timestamp,
    ) -> EventBuilder<'_> {
        let tenant = self.intern_repeated(tenant, |b, i| b.tenant.get(i.checked_sub(1)?).copied());
        let measurement = self.intern_repeated(measurement, |b, i| {
            b.measurement.get(i.checked_sub(1)?).copied()
        });
        self.tenant.push(tenant);
        self.measurement.push(measurement);
        self.timestamp.push(timestamp.0);
        self.event_id.push(NO_SPAN);
        self.tag_start.push(self.tag_key.len() as u32);
        self.field_start.push(self.field_key.len() as u32);
        EventBuilder { batch: self }
    }

    /// Appends an owned event.
    pub fn push(&mut self, event: &Event) {
        let mut b = self.add(event.tenant.as_str(), &event.measurement, event.timestamp);
        for (k, v) in &event.tags {
            b.tag(k, v);
        }
        for (k, v) in &event.fields {
            b.field(k, v.as_ref());
        }
        if let Some(id) = &event.event_id {
            b.event_id(id);
        }
    }

    /// Appends a borrowed event (for example one of another batch).
    pub fn push_ref(&mut self, event: &EventRef<'_>) {
        let mut b = self.add(event.tenant, event.measurement, event.timestamp);
        for (k, v) in event.tags() {
            b.tag(k, v);
        }
        for (k, v) in event.fields() {
            b.field(k, v);
        }
        if let Some(id) = event.event_id {
            b.event_id(id);
        }
    }

    /// The event at `index`.
    pub fn event(&self, index: usize) -> Option<EventRef<'_>> {
        let tag_start = *self.tag_start.get(index)? as usize;
        let tag_end = self
            .tag_start
            .get(index + 1)
            .map_or(self.tag_key.len(), |&e| e as usize);
        let field_start = *self.field_start.get(index)? as usize;
        let field_end = self
            .field_start
            .get(index + 1)
            .map_or(self.field_key.len(), |&e| e as usize);
        let id = *self.event_id.get(index)?;
        Some(EventRef {
            batch: self,
            tenant: self.str(*self.tenant.get(index)?),
            measurement: self.str(*self.measurement.get(index)?),
            timestamp: Timestamp(*self.timestamp.get(index)?),
            event_id: (id != NO_SPAN).then(|| self.str(id)),
            tags: tag_start..tag_end,
            fields: field_start..field_end,
        })
    }

    /// Iterates over the events in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> + '_ {
        (0..self.len()).map(|i| self.event(i).unwrap_or_else(|| unreachable!("index < len")))
    }

    /// Copies the events out.
    pub fn to_events(&self) -> Vec<Event> {
        self.iter().map(|e| e.to_event()).collect()
    }

    /// Checks every event against the engine's structural rules (the schema is checked later,
    /// against stored data). Returns the first invalid event's index and reason.
    pub fn validate(&self) -> Result<(), (usize, InvalidEvent)> {
        if self.overflowed {
            return Err((
                self.len().saturating_sub(1),
                InvalidEvent::TooLong {
                    what: "write batch",
                    len: self.arena.len(),
                    max: u32::MAX as usize,
                },
            ));
        }
        self.iter()
            .enumerate()
            .try_for_each(|(i, e)| e.validate().map_err(|r| (i, r)))
    }

    /// A batch holding the events at `indices`, in that order.
    pub fn select(&self, indices: impl IntoIterator<Item = usize>) -> WriteBatch {
        let mut out = WriteBatch::new();
        for i in indices {
            if let Some(e) = self.event(i) {
                out.push_ref(&e);
            }
        }
        out
    }

    fn str(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.arena
            .get(start..start + span.len as usize)
            .unwrap_or("")
    }

    fn push_str(&mut self, s: &str) -> Span {
        let start = self.arena.len();
        if start + s.len() > u32::MAX as usize {
            self.overflowed = true;
            return Span::default();
        }
        self.arena.push_str(s);
        Span {
            start: start as u32,
            len: s.len() as u32,
        }
    }

    /// Stores `s`, reusing the span `previous` points at when it holds the same string: tenants,
    /// measurements and keys repeat from one event to the next.
    fn intern_repeated(
        &mut self,
        s: &str,
        previous: impl Fn(&Self, usize) -> Option<Span>,
    ) -> Span {
        if let Some(span) = previous(self, self.len())
            && self.str(span) == s
        {
            return span;
        }
        self.push_str(s)
    }

    /// Length in bytes of the encoded batch.
    pub fn encoded_len(&self) -> usize {
        17 + self.arena.len()
            + self.len() * 40
            + self.tag_key.len() * 16
            + self.field_key.len() * 17
    }

    /// Appends the encoded batch (the WAL record payload; see storage-format.md) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let n = self.len();
        out.reserve(
            17 + self.arena.len() + n * 36 + self.tag_key.len() * 16 + self.field_key.len() * 17,
        );
        out.push(BATCH_VERSION);
        for count in [
            n,
            self.tag_key.len(),
            self.field_key.len(),
            self.arena.len(),
        ] {
            out.extend_from_slice(&(count as u32).to_le_bytes());
        }
        out.extend_from_slice(self.arena.as_bytes());
        for spans in [&self.tenant, &self.measurement] {
            put_spans(out, spans);
        }
        for t in &self.timestamp {
            out.extend_from_slice(&t.to_le_bytes());
        }
        put_spans(out, &self.event_id);
        put_u32s(out, &self.tag_start);
        put_spans(out, &self.tag_key);
        put_spans(out, &self.tag_value);
        put_u32s(out, &self.field_start);
        put_spans(out, &self.field_key);
        out.extend_from_slice(&self.field_type);
        for v in &self.field_value {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Decodes a batch encoded by [`WriteBatch::encode_into`], checking every count, span and
    /// type code. `path` and `offset` only label the error.
    pub fn decode(
        bytes: &[u8],
        path: &std::path::Path,
        offset: u64,
    ) -> Result<WriteBatch, Corruption> {
        let bad = |kind| Corruption::new(path, offset, kind);
        let invalid = |why: &str| bad(CorruptionKind::Invalid(format!("write batch: {why}")));
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8().ok_or_else(|| bad(CorruptionKind::Truncated))?;
        if version != BATCH_VERSION {
            return Err(bad(CorruptionKind::UnknownVersion(u16::from(version))));
        }
        let mut counts = [0usize; 4];
        for c in &mut counts {
            *c = r.u32().ok_or_else(|| bad(CorruptionKind::Truncated))? as usize;
        }
        let [n, n_tags, n_fields, arena_len] = counts;
        // Check the announced sizes against the bytes present before allocating anything.
        let needed = arena_len as u128
            + n as u128 * (8 + 8 + 8 + 8 + 4 + 4)
            + n_tags as u128 * 16
            + n_fields as u128 * 17;
        if needed != r.remaining() as u128 {
            return Err(invalid(&format!(
                "announces {needed} bytes of columns, {} present",
                r.remaining()
            )));
        }
        let arena = r
            .take(arena_len)
            .ok_or_else(|| bad(CorruptionKind::Truncated))?;
        let arena = std::str::from_utf8(arena)
            .map_err(|e| invalid(&format!("arena is not UTF-8 at byte {}", e.valid_up_to())))?
            .to_owned();
        let mut b = WriteBatch {
            arena,
            ..WriteBatch::default()
        };
        let trunc = || bad(CorruptionKind::Truncated);
        b.tenant = r.spans(n).ok_or_else(trunc)?;
        b.measurement = r.spans(n).ok_or_else(trunc)?;
        b.timestamp = (0..n)
            .map(|_| r.u64().map(|v| v as i64))
            .collect::<Option<_>>()
            .ok_or_else(trunc)?;
        b.event_id = r.spans(n).ok_or_else(trunc)?;
        b.tag_start = r.u32s(n).ok_or_else(trunc)?;
        b.tag_key = r.spans(n_tags).ok_or_else(trunc)?;
        b.tag_value = r.spans(n_tags).ok_or_else(trunc)?;
        b.field_start = r.u32s(n).ok_or_else(trunc)?;
        b.field_key = r.spans(n_fields).ok_or_else(trunc)?;
        b.field_type = r.take(n_fields).ok_or_else(trunc)?.to_vec();
        b.field_value = (0..n_fields)
            .map(|_| r.u64())
            .collect::<Option<_>>()
            .ok_or_else(trunc)?;
        b.check_structure().map_err(|why| invalid(&why))?;
        Ok(b)
    }

    /// Checks that every span lies on character boundaries inside the arena and that the row
    /// starts are ordered, so that no accessor can go out of bounds.
    fn check_structure(&self) -> Result<(), String> {
        let arena = &self.arena;
        let span_ok = |s: &Span| {
            let (start, end) = (s.start as usize, s.start as usize + s.len as usize);
            end <= arena.len() && arena.is_char_boundary(start) && arena.is_char_boundary(end)
        };
        let all = [
            &self.tenant,
            &self.measurement,
            &self.tag_key,
            &self.tag_value,
            &self.field_key,
        ];
        if let Some(bad) = all.iter().flat_map(|v| v.iter()).find(|s| !span_ok(s)) {
            return Err(format!("span {bad:?} outside the arena"));
        }
        if self.event_id.iter().any(|s| *s != NO_SPAN && !span_ok(s)) {
            return Err("event id span outside the arena".into());
        }
        for (starts, total, what) in [
            (&self.tag_start, self.tag_key.len(), "tag"),
            (&self.field_start, self.field_key.len(), "field"),
        ] {
            let ordered = starts.windows(2).all(|w| w[0] <= w[1]);
            if !ordered
                || starts.first().is_some_and(|&s| s != 0)
                || starts.last().is_some_and(|&s| s as usize > total)
            {
                return Err(format!("{what} row starts are not ordered"));
            }
            if starts.is_empty() && total != 0 {
                return Err(format!("{what}s without events"));
            }
        }
        for (i, &code) in self.field_type.iter().enumerate() {
            let Some(ty) = FieldType::from_code(code) else {
                return Err(format!("field {i} has unknown type code {code}"));
            };
            if ty == FieldType::String {
                let bits = self.field_value.get(i).copied().unwrap_or(0);
                let span = Span {
                    start: (bits >> 32) as u32,
                    len: bits as u32,
                };
                if !span_ok(&span) {
                    return Err(format!("string field {i} outside the arena"));
                }
            }
        }
        Ok(())
    }
}

fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    for s in spans {
        out.extend_from_slice(&s.start.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
    }
}

/// A bounds-checked little-endian reader over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    fn u32s(&mut self, n: usize) -> Option<Vec<u32>> {
        (0..n).map(|_| self.u32()).collect()
    }

    fn spans(&mut self, n: usize) -> Option<Vec<Span>> {
        (0..n)
            .map(|_| {
                Some(Span {
                    start: self.u32()?,
                    len: self.u32()?,
                })
            })
            .collect()
    }
}

/// A borrowed event of a [`WriteBatch`].
#[derive(Clone, Debug)]
pub struct EventRef<'a> {
    batch: &'a WriteBatch,
    /// Tenant name.
    pub tenant: &'a str,
    /// Measurement name.
    pub measurement: &'a str,
    /// Timestamp.
    pub timestamp: Timestamp,
    /// Event id, if any.
    pub event_id: Option<&'a str>,
    tags: std::ops::Range<usize>,
    fields: std::ops::Range<usize>,
}

impl<'a> EventRef<'a> {
    /// The tags, in the order they were added.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        let b = self.batch;
        self.tags.clone().map(move |i| {
            let key = b.tag_key.get(i).map_or("", |s| b.str(*s));
            let value = b.tag_value.get(i).map_or("", |s| b.str(*s));
            (key, value)
        })
    }

    /// The fields, in the order they were added.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&'a str, FieldValueRef<'a>)> + 'a {
        let b = self.batch;
        self.fields.clone().map(move |i| {
            let key = b.field_key.get(i).map_or("", |s| b.str(*s));
            let bits = b.field_value.get(i).copied().unwrap_or(0);
            let ty = b.field_type.get(i).copied().and_then(FieldType::from_code);
            let value = match ty.unwrap_or(FieldType::Integer) {
                FieldType::Float => FieldValueRef::F64(f64::from_bits(bits)),
                FieldType::Integer => FieldValueRef::I64(bits as i64),
                FieldType::Unsigned => FieldValueRef::U64(bits),
                FieldType::Boolean => FieldValueRef::Bool(bits != 0),
                FieldType::String => FieldValueRef::Str(b.str(Span {
                    start: (bits >> 32) as u32,
                    len: bits as u32,
                })),
            };
            (key, value)
        })
    }

    /// Copies the event out.
    pub fn to_event(&self) -> Event {
        Event {
            tenant: TenantId::new(self.tenant),
            measurement: self.measurement.to_owned(),
            tags: self
                .tags()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            fields: self
                .fields()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            timestamp: self.timestamp,
            event_id: self.event_id.map(str::to_owned),
        }
    }

    /// Checks the event against the engine's structural rules.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        let too_long = |what, len: usize, max| {
            if len > max {
                Err(InvalidEvent::TooLong { what, len, max })
            } else {
                Ok(())
            }
        };
        if self.tenant.is_empty() {
            return Err(InvalidEvent::MissingTenant);
        }
        too_long("tenant", self.tenant.len(), limits::MAX_TENANT_LEN)?;
        if self.measurement.is_empty() {
            return Err(InvalidEvent::EmptyMeasurement);
        }
        too_long("measurement", self.measurement.len(), limits::MAX_NAME_LEN)?;
        if self.fields.is_empty() && self.event_id.is_none() {
            return Err(InvalidEvent::NoFields);
        }
        if self.timestamp < Timestamp::MIN || self.timestamp > Timestamp::MAX {
            return Err(InvalidEvent::TimestampOutOfRange(self.timestamp.0));
        }
        if let Some(id) = self.event_id {
            if id.is_empty() {
                return Err(InvalidEvent::EmptyKey("event id"));
            }
            too_long("event id", id.len(), limits::MAX_EVENT_ID_LEN)?;
        }
        // Quadratic duplicate checks over the batch's columns: events have a handful of keys,
        // and this runs for every event, so no allocation.
        for (i, (k, v)) in self.tags().enumerate() {
            check_key("tag", k)?;
            if k == "tenant" {
                return Err(reserved(
                    "tag",
                    k,
                    "the tenant is the event's own attribute",
                ));
            }
            too_long("tag value", v.len(), limits::MAX_TAG_VALUE_LEN)?;
            if self.tags().take(i).any(|(other, _)| other == k) {
                return Err(InvalidEvent::DuplicateTag(k.to_owned()));
            }
        }
        for (i, (k, v)) in self.fields().enumerate() {
            check_key("field", k)?;
            if k == "event_id" {
                return Err(reserved("field", k, "set the event id instead"));
            }
            if let FieldValueRef::Str(s) = v {
                too_long("string field", s.len(), limits::MAX_STRING_LEN)?;
            }
            if self.fields().take(i).any(|(other, _)| other == k) {
                return Err(InvalidEvent::DuplicateField(k.to_owned()));
            }
        }
        Ok(())
    }
}

fn reserved(kind: &'static str, key: &str, why: &'static str) -> InvalidEvent {
    InvalidEvent::ReservedKey {
        kind,
        key: key.to_owned(),
        why,
    }
}

fn check_key(kind: &'static str, key: &str) -> Result<(), InvalidEvent> {
    if key.is_empty() {
        return Err(InvalidEvent::EmptyKey(kind));
    }
    if key == "time" {
        return Err(reserved(kind, key, "time is the event's timestamp"));
    }
    if key.len() > limits::MAX_NAME_LEN {
        return Err(InvalidEvent::TooLong {
            what: if kind == "tag" {
                "tag key"
            } else {
                "field key"
            },
            len: key.len(),
            max: limits::MAX_NAME_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
