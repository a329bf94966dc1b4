//! [`UsageEvent`]: the spec's usage event, and the one mapping from it onto MeterDB's model
//! (tenant, measurement, tags, fields), shared by [`super::UsageTracker`] and the JSON events
//! endpoint (`POST /api/v1/events`), so that an event means the same through either door.
//!
//! # Mapping
//!
//! - `tenant_id` is the tenant.
//! - `event_type` picks the measurement ([`measurement_of`]): `api_call` → `api_calls`,
//!   `storage`/`storage_operation`/`storage_usage` → `storage`, `database_query`/`db_query` →
//!   `db_queries`; anything else is used as written (a custom event type).
//! - `user_id` becomes the tag `user`, `event_name` the tag `event_name`, `resource_consumed`
//!   the tag `resource`; `quantity` is a float field.
//! - `metadata`: strings are tags, numbers fields, booleans boolean fields. In JSON, a number
//!   written without a fraction or exponent is an integer field, any other a float field;
//!   the fields in [`FLOAT_FIELDS`] are always floats, so that `150` and `150.5` land in one
//!   column.
//! - `timestamp` is RFC 3339 or epoch nanoseconds; missing means now. `event_id` is the event's
//!   id (counted once however often it is sent).

use serde_json::Value as Json;

use crate::model::{FieldValueRef, Timestamp, WriteBatch};

/// Fields that are floats even when a client writes a whole number.
pub const FLOAT_FIELDS: &[&str] = &["quantity", "response_time_ms", "duration_ms"];

/// One metadata value of an event.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// A tag.
    Str(String),
    /// An integer field.
    Int(i64),
    /// A float field.
    Float(f64),
    /// A boolean field.
    Bool(bool),
}

/// A usage event, as the spec models it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageEvent {
    /// The tenant.
    pub tenant_id: String,
    /// The event type, which picks the measurement ([`measurement_of`]).
    pub event_type: String,
    /// The user who caused it (tag `user`).
    pub user_id: Option<String>,
    /// A name for the event (tag `event_name`).
    pub event_name: Option<String>,
    /// The resource consumed (tag `resource`).
    pub resource_consumed: Option<String>,
    /// How much was consumed (float field `quantity`).
    pub quantity: Option<f64>,
    /// Further tags and fields, in order.
    pub metadata: Vec<(String, MetaValue)>,
    /// When it happened; `None` is the tracker's (or server's) now.
    pub timestamp: Option<Timestamp>,
    /// The event's id: an event sent again with the same id counts once.
    pub event_id: Option<String>,
}

/// The measurement an event type is stored under.
pub fn measurement_of(event_type: &str) -> &str {
    match event_type {
        "api_call" | "api_calls" => "api_calls",
        "storage" | "storage_operation" | "storage_usage" => "storage",
        "database_query" | "db_query" | "db_queries" => "db_queries",
        other => other,
    }
}

impl UsageEvent {
    /// An event of `event_type` for `tenant`, with nothing else set.
    pub fn new(tenant: &str, event_type: &str) -> UsageEvent {
        UsageEvent {
            tenant_id: tenant.to_owned(),
            event_type: event_type.to_owned(),
            ..UsageEvent::default()
        }
    }

    /// Adds a metadata entry.
    pub fn meta(mut self, key: &str, value: MetaValue) -> UsageEvent {
        self.metadata.push((key.to_owned(), value));
        self
    }

    /// Appends the event to `batch` (timestamp `now` when it has none). The event is not
    /// validated here; the engine does that on write.
    pub fn add_to(&self, batch: &mut WriteBatch, now: Timestamp) {
        let ts = self.timestamp.unwrap_or(now);
        let mut e = batch.add(&self.tenant_id, measurement_of(&self.event_type), ts);
        for (value, tag) in [
            (&self.user_id, "user"),
            (&self.event_name, "event_name"),
            (&self.resource_consumed, "resource"),
        ] {
            if let Some(v) = value {
                e.tag(tag, v);
            }
        }
        if let Some(q) = self.quantity {
            e.field("quantity", FieldValueRef::F64(q));
        }
        for (k, v) in &self.metadata {
            match v {
                MetaValue::Str(s) => e.tag(k, s),
                MetaValue::Int(i) if FLOAT_FIELDS.contains(&k.as_str()) => {
                    e.field(k, FieldValueRef::F64(*i as f64))
                }
                MetaValue::Int(i) => e.field(k, FieldValueRef::I64(*i)),
                MetaValue::Float(f) => e.field(k, FieldValueRef::F64(*f)),
                MetaValue::Bool(b) => e.field(k, FieldValueRef::Bool(*b)),
            };
        }
        if let Some(id) = &self.event_id {
            e.event_id(id);
        }
    }

    /// Reads one element of the events endpoint's JSON array; `default_tenant` is used when
    /// the object has no `tenant_id`. The error says which key is wrong.
    pub fn from_json(item: Json, default_tenant: Option<&str>) -> Result<UsageEvent, String> {
        let Json::Object(mut obj) = item else {
            return Err("an event must be a JSON object".into());
        };
        let mut text = |key: &str| -> Result<Option<String>, String> {
            match obj.remove(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s)),
                Some(_) => Err(format!("{key} must be a string")),
            }
        };
        let tenant_id = match text("tenant_id")? {
            Some(t) => t,
            None => default_tenant
                .ok_or("no tenant: set tenant_id or ?tenant=")?
                .to_owned(),
        };
        let event_type = text("event_type")?.ok_or("event_type is missing")?;
        let user_id = text("user_id")?;
        let event_name = text("event_name")?;
        let resource_consumed = text("resource_consumed")?;
        let event_id = text("event_id")?;
        let timestamp = match obj.remove("timestamp") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(
                chrono::DateTime::parse_from_rfc3339(&s)
                    .ok()
                    .and_then(|t| t.timestamp_nanos_opt())
                    .map(Timestamp)
                    .ok_or_else(|| format!("timestamp {s:?} is not RFC 3339"))?,
            ),
            Some(Json::Number(n)) => Some(
                n.as_i64()
                    .map(Timestamp)
                    .ok_or_else(|| format!("timestamp {n} is not integer nanoseconds"))?,
            ),
            Some(_) => {
                return Err("timestamp must be an RFC 3339 string or epoch nanoseconds".into());
            }
        };
        let quantity = match obj.remove("quantity") {
            None | Some(Json::Null) => None,
            Some(Json::Number(n)) => Some(n.as_f64().unwrap_or(0.0)),
            Some(_) => return Err("quantity must be a number".into()),
        };
        let mut metadata = Vec::new();
        match obj.remove("metadata") {
            None | Some(Json::Null) => {}
            Some(Json::Object(meta)) => {
                metadata.reserve(meta.len());
                for (k, v) in meta {
                    let value = match v {
                        Json::Null => continue,
                        Json::String(s) => MetaValue::Str(s),
                        Json::Bool(b) => MetaValue::Bool(b),
                        Json::Number(n) => match (n.as_i64(), FLOAT_FIELDS.contains(&k.as_str())) {
                            (Some(i), false) => MetaValue::Int(i),
                            _ => MetaValue::Float(
                                n.as_f64()
                                    .ok_or_else(|| format!("metadata.{k}: {n} is out of range"))?,
                            ),
                        },
                        Json::Array(_) | Json::Object(_) => {
                            return Err(format!(
                                "metadata.{k}: nested arrays and objects are not supported"
                            ));
                        }
                    };
                    metadata.push((k, value));
                }
            }
            Some(_) => return Err("metadata must be an object".into()),
        }
        Ok(UsageEvent {
            tenant_id,
            event_type,
            user_id,
            event_name,
            resource_consumed,
            quantity,
            metadata,
            timestamp,
            event_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_rust_events_map_to_the_same_stored_event() {
        let json: Json = serde_json::from_str(
            r#"{"tenant_id":"acme","event_type":"api_call","user_id":"u1",
                "timestamp":"2026-11-01T00:00:00Z","event_id":"e1",
                "metadata":{"endpoint":"/a","status_code":200,"response_time_ms":150,"ok":true}}"#,
        )
        .unwrap();
        let from_json = UsageEvent::from_json(json, None).unwrap();
        let built = UsageEvent {
            user_id: Some("u1".into()),
            timestamp: Some(Timestamp(1_793_491_200_000_000_000)),
            event_id: Some("e1".into()),
            ..UsageEvent::new("acme", "api_call")
        }
        .meta("endpoint", MetaValue::Str("/a".into()))
        .meta("status_code", MetaValue::Int(200))
        .meta("response_time_ms", MetaValue::Int(150))
        .meta("ok", MetaValue::Bool(true));
        let (mut a, mut b) = (WriteBatch::new(), WriteBatch::new());
        from_json.add_to(&mut a, Timestamp(0));
        built.add_to(&mut b, Timestamp(0));
        let (ea, eb) = (a.event(0).unwrap(), b.event(0).unwrap());
        assert_eq!(ea.measurement, "api_calls");
        // JSON objects come in key order: compare sorted.
        let (mut ta, mut tb) = (ea.tags().collect::<Vec<_>>(), eb.tags().collect::<Vec<_>>());
        ta.sort_by_key(|t| t.0);
        tb.sort_by_key(|t| t.0);
        assert_eq!(ta, tb);
        let (mut fa, mut fb) = (
            ea.fields().collect::<Vec<_>>(),
            eb.fields().collect::<Vec<_>>(),
        );
        fa.sort_by_key(|f| f.0);
        fb.sort_by_key(|f| f.0);
        assert_eq!(fa, fb);
        assert!(
            ea.fields()
                .any(|f| f == ("response_time_ms", FieldValueRef::F64(150.0)))
        );
        assert!(
            ea.fields()
                .any(|f| f == ("status_code", FieldValueRef::I64(200)))
        );
    }

    #[test]
    fn bad_json_events_name_the_key() {
        let bad = |s: &str| UsageEvent::from_json(serde_json::from_str(s).unwrap(), Some("t"));
        assert_eq!(
            bad(r#"{"event_type": 3}"#).unwrap_err(),
            "event_type must be a string"
        );
        assert_eq!(bad(r#"{}"#).unwrap_err(), "event_type is missing");
        assert!(
            bad(r#"{"event_type":"x","metadata":{"a":[1]}}"#)
                .unwrap_err()
                .starts_with("metadata.a:")
        );
        assert_eq!(
            UsageEvent::from_json(serde_json::from_str(r#"{"event_type":"x"}"#).unwrap(), None)
                .unwrap_err(),
            "no tenant: set tenant_id or ?tenant="
        );
    }
}
