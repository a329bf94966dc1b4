//! Meters: named usage quantities computed from events, as in OpenMeter.
//!
//! A [`Meter`] says which events count (a measurement, or all of them, narrowed by a tag
//! equality filter) and how they add up (an [`Aggregation`] over a field or a tag). This module
//! owns the definition, its validation, its JSON form, the built-in meters of `DESIGN.md`, and
//! the per-event rule [`Meter::contribution`]; it does not know how contributions are stored
//! (rollups) or how events are deduplicated.
//!
//! **Invariant:** a meter that passed [`Meter::validate`] (every deserialized one did) has a
//! field exactly when its aggregation reads one, a tag exactly when it is `unique_count`, and
//! no filter key twice.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::limits::{MAX_NAME_LEN, MAX_TAG_VALUE_LEN};
use crate::model::{EventRef, FieldValueRef};

/// Longest meter name, in bytes (OpenMeter's slug limit).
pub const MAX_METER_NAME_LEN: usize = 63;

/// The names of the built-in meters, which cannot be redefined.
pub const BUILTIN_NAMES: [&str; 4] = ["api_calls", "storage_bytes", "db_queries", "active_users"];

// Error texts below quote these limits.
const _: () = assert!(MAX_NAME_LEN == 256 && MAX_TAG_VALUE_LEN == 4096);

/// Most tag filters on one meter: each event is matched against every one of them at ingest.
pub const MAX_FILTERS: usize = 16;

/// How a meter adds up the events that match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Number of matching events.
    #[serde(alias = "COUNT")]
    Count,
    /// Sum of a numeric field.
    #[serde(alias = "SUM")]
    Sum,
    /// Smallest value of a numeric field.
    #[serde(alias = "MIN")]
    Min,
    /// Largest value of a numeric field.
    #[serde(alias = "MAX")]
    Max,
    /// Mean of a numeric field.
    #[serde(alias = "AVG")]
    Avg,
    /// Number of distinct values of a tag (exact, not an estimate).
    #[serde(alias = "UNIQUE_COUNT")]
    UniqueCount,
    /// Value of a numeric field in the matching event with the latest timestamp.
    #[serde(alias = "LATEST")]
    Latest,
}

impl Aggregation {
    /// True when the aggregation reads a numeric field (sum, min, max, avg, latest).
    pub fn needs_field(self) -> bool {
        matches!(
            self,
            Aggregation::Sum
                | Aggregation::Min
                | Aggregation::Max
                | Aggregation::Avg
                | Aggregation::Latest
        )
    }

    /// True when the aggregation reads a tag (unique_count).
    pub fn needs_tag(self) -> bool {
        self == Aggregation::UniqueCount
    }

    /// The JSON name (`unique_count`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Count => "count",
            Aggregation::Sum => "sum",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Avg => "avg",
            Aggregation::UniqueCount => "unique_count",
            Aggregation::Latest => "latest",
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named usage quantity computed from events.
///
/// JSON: `{"name","measurement","aggregation","field","tag","filter"}` where `measurement`,
/// `field` and `tag` may be absent or null and `filter` is an object of tag equalities, e.g.
/// `{"operation":"write"}`. Unknown keys are rejected so that a misspelt key does not silently
/// give a different meter.
///
/// ```
/// use meterdb::usage::meter::{Aggregation, Meter};
///
/// let meter: Meter = serde_json::from_str(
///     r#"{"name":"storage_bytes","measurement":"storage","aggregation":"sum",
///         "field":"size_bytes","filter":{"operation":"write"}}"#,
/// )
/// .unwrap();
/// assert_eq!(meter, Meter::builtin("storage_bytes").unwrap());
/// assert_eq!(meter.aggregation, Aggregation::Sum);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MeterJson")]
pub struct Meter {
    /// The meter's name, which limits, alerts and reports use (the spec's `resource_type`):
    /// 1 to 63 bytes of `a-z`, `0-9` and `_`, starting with a letter.
    pub name: String,
    /// The measurement whose events count; `None` counts events of every measurement.
    pub measurement: Option<String>,
    /// How matching events add up.
    pub aggregation: Aggregation,
    /// The numeric field read by sum, min, max, avg and latest.
    pub field: Option<String>,
    /// The tag whose distinct values unique_count counts.
    pub tag: Option<String>,
    /// Tag equalities an event must all satisfy to count (`operation = write`).
    #[serde(serialize_with = "serialize_filter")]
    pub filter: Vec<(String, String)>,
}

/// The wire form of a meter, checked by [`Meter::validate`] on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeterJson {
    name: String,
    #[serde(default)]
    measurement: Option<String>,
    aggregation: Aggregation,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    filter: Filter,
}

impl TryFrom<MeterJson> for Meter {
    type Error = MeterError;

    fn try_from(json: MeterJson) -> Result<Meter, MeterError> {
        let meter = Meter {
            name: json.name,
            measurement: json.measurement,
            aggregation: json.aggregation,
            field: json.field,
            tag: json.tag,
            filter: json.filter.0,
        };
        meter.validate()?;
        Ok(meter)
    }
}

/// Why a meter definition is not acceptable. The text names the meter and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// The name is empty, too long, or uses characters other than `a-z`, `0-9`, `_`.
    #[error(
        "meter name {name:?} is invalid: use 1 to {MAX_METER_NAME_LEN} characters of a-z, 0-9 and _, starting with a letter"
    )]
    InvalidName {
        /// The rejected name (clipped).
        name: String,
    },
    /// A measurement, field, tag or filter key is empty or too long.
    #[error("meter {meter}: {what} {value:?} is invalid: {reason}")]
    InvalidKey {
        /// The meter.
        meter: String,
        /// Which part (`measurement`, `field`, `tag`, `filter key`, `filter value`).
        what: &'static str,
        /// The rejected value (clipped).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The aggregation reads a field but none is given.
    #[error(
        "meter {meter}: aggregation {aggregation} needs a \"field\" naming the numeric field to aggregate"
    )]
    MissingField {
        /// The meter.
        meter: String,
        /// Its aggregation.
        aggregation: Aggregation,
    },
    /// unique_count without a tag.
    #[error(
        "meter {meter}: aggregation unique_count needs a \"tag\" whose distinct values are counted"
    )]
    MissingTag {
        /// The meter.
        meter: String,
    },
    /// A field given to an aggregation that reads none.
    #[error("meter {meter}: aggregation {aggregation} takes no \"field\" (got {field:?})")]
    UnexpectedField {
        /// The meter.
        meter: String,
        /// Its aggregation.
        aggregation: Aggregation,
        /// The field given.
        field: String,
    },
    /// A tag given to an aggregation other than unique_count.
    #[error(
        "meter {meter}: aggregation {aggregation} takes no \"tag\" (got {tag:?}); only unique_count counts a tag"
    )]
    UnexpectedTag {
        /// The meter.
        meter: String,
        /// Its aggregation.
        aggregation: Aggregation,
        /// The tag given.
        tag: String,
    },
    /// The same tag key twice in the filter.
    #[error("meter {meter}: filter names tag {key:?} more than once")]
    DuplicateFilter {
        /// The meter.
        meter: String,
        /// The repeated key.
        key: String,
    },
    /// More filters than [`MAX_FILTERS`].
    #[error("meter {meter}: more than the {MAX_FILTERS} filters allowed")]
    TooManyFilters {
        /// The meter.
        meter: String,
    },
    /// The tenant a meter is defined for is empty or longer than 256 bytes.
    #[error("tenant {tenant:?} is invalid: use 1 to 256 bytes")]
    InvalidTenant {
        /// The tenant (clipped).
        tenant: String,
    },
    /// A built-in meter cannot be removed or redefined.
    #[error("meter {name} is built in and cannot be removed or redefined")]
    Builtin {
        /// The meter.
        name: String,
    },
}

/// What one event adds to a meter: the rule rollups apply at ingest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Contribution<'a> {
    /// The event is not counted by this meter (other measurement, or a filter tag differs).
    NoMatch,
    /// One more event (count).
    One,
    /// A finite numeric value (sum, min, max, avg, latest).
    Value(f64),
    /// A tag value, one of the distinct values unique_count counts.
    Distinct(&'a str),
    /// The event matches but lacks the field or tag, or the field is not numeric or not finite:
    /// it adds nothing (a sum of bytes must not be poisoned by a NaN or a string).
    Missing,
}

impl Meter {
    /// A count of the events of `measurement`.
    pub fn count(name: &str, measurement: &str) -> Meter {
        Meter {
            name: name.to_owned(),
            measurement: Some(measurement.to_owned()),
            aggregation: Aggregation::Count,
            field: None,
            tag: None,
            filter: Vec::new(),
        }
    }

    /// The four built-in meters of `DESIGN.md`: `api_calls`, `storage_bytes`, `db_queries`,
    /// `active_users`.
    pub fn builtins() -> [Meter; 4] {
        [
            Meter::count("api_calls", "api_calls"),
            Meter {
                name: "storage_bytes".to_owned(),
                measurement: Some("storage".to_owned()),
                aggregation: Aggregation::Sum,
                field: Some("size_bytes".to_owned()),
                tag: None,
                filter: vec![("operation".to_owned(), "write".to_owned())],
            },
            Meter::count("db_queries", "db_queries"),
            Meter {
                name: "active_users".to_owned(),
                measurement: None,
                aggregation: Aggregation::UniqueCount,
                field: None,
                tag: Some("user".to_owned()),
                filter: Vec::new(),
            },
        ]
    }

    /// The built-in meter called `name`, if there is one.
    pub fn builtin(name: &str) -> Option<Meter> {
        Meter::builtins().into_iter().find(|m| m.name == name)
    }

    /// True when `name` is one of the built-in meters (which cannot be redefined).
    pub fn is_builtin_name(name: &str) -> bool {
        BUILTIN_NAMES.contains(&name)
    }

    /// Checks the definition; the error names the meter and what is wrong.
    pub fn validate(&self) -> Result<(), MeterError> {
        validate_meter_name(&self.name)?;
        let meter = || clip(&self.name);
        let key = |what: &'static str, value: &str| -> Result<(), MeterError> {
            let reason = if value.is_empty() {
                "it is empty"
            } else if value.len() > MAX_NAME_LEN {
                "it is longer than 256 bytes"
            } else if value.chars().any(char::is_control) {
                "it contains a control character"
            } else {
                return Ok(());
            };
            Err(MeterError::InvalidKey {
                meter: meter(),
                what,
                value: clip(value),
                reason,
            })
        };
        if let Some(m) = &self.measurement {
            key("measurement", m)?;
        }
        match (&self.field, self.aggregation.needs_field()) {
            (Some(f), true) => key("field", f)?,
            (None, true) => {
                return Err(MeterError::MissingField {
                    meter: meter(),
                    aggregation: self.aggregation,
                });
            }
            (Some(f), false) => {
                return Err(MeterError::UnexpectedField {
                    meter: meter(),
                    aggregation: self.aggregation,
                    field: clip(f),
                });
            }
            (None, false) => {}
        }
        match (&self.tag, self.aggregation.needs_tag()) {
            (Some(t), true) => key("tag", t)?,
            (None, true) => return Err(MeterError::MissingTag { meter: meter() }),
            (Some(t), false) => {
                return Err(MeterError::UnexpectedTag {
                    meter: meter(),
                    aggregation: self.aggregation,
                    tag: clip(t),
                });
            }
            (None, false) => {}
        }
        if self.filter.len() > MAX_FILTERS {
            return Err(MeterError::TooManyFilters { meter: meter() });
        }
        for (i, (k, v)) in self.filter.iter().enumerate() {
            key("filter key", k)?;
            if v.len() > MAX_TAG_VALUE_LEN {
                return Err(MeterError::InvalidKey {
                    meter: meter(),
                    what: "filter value",
                    value: clip(v),
                    reason: "it is longer than 4096 bytes",
                });
            }
            if self.filter[..i].iter().any(|(earlier, _)| earlier == k) {
                return Err(MeterError::DuplicateFilter {
                    meter: meter(),
                    key: clip(k),
                });
            }
        }
        Ok(())
    }

    /// True when an event of `measurement` whose tags are looked up by `tag` counts for this
    /// meter (right measurement, every filter tag equal). `tag` returns a tag's value.
    pub fn matches<'t>(&self, measurement: &str, tag: impl Fn(&str) -> Option<&'t str>) -> bool {
        if self
            .measurement
            .as_deref()
            .is_some_and(|m| m != measurement)
        {
            return false;
        }
        self.filter
            .iter()
            .all(|(k, v)| tag(k).is_some_and(|actual| actual == v))
    }

    /// What `event` adds to this meter.
    ///
    /// Integer fields are converted to f64, exact up to 2^53 (9 PB as a byte count). Boolean
    /// and string fields, and NaN or infinite floats, are [`Contribution::Missing`].
    pub fn contribution<'a>(&self, event: &EventRef<'a>) -> Contribution<'a> {
        // Events carry a handful of tags, so a linear lookup beats building a map.
        self.contribution_of(
            event.measurement,
            |key| event.tags().find(|(k, _)| *k == key).map(|(_, v)| v),
            |key| event.fields().find(|(k, _)| *k == key).map(|(_, v)| v),
        )
    }

    /// What an event of `measurement` adds to this meter, its tags and fields looked up by
    /// `tag` and `field` (for rows read back column by column).
    pub fn contribution_of<'a>(
        &self,
        measurement: &str,
        tag: impl Fn(&str) -> Option<&'a str>,
        field: impl Fn(&str) -> Option<FieldValueRef<'a>>,
    ) -> Contribution<'a> {
        if !self.matches(measurement, &tag) {
            return Contribution::NoMatch;
        }
        match self.aggregation {
            Aggregation::Count => Contribution::One,
            Aggregation::UniqueCount => self
                .tag
                .as_deref()
                .and_then(tag)
                .map_or(Contribution::Missing, Contribution::Distinct),
            Aggregation::Sum
            | Aggregation::Min
            | Aggregation::Max
            | Aggregation::Avg
            | Aggregation::Latest => self
                .field
                .as_deref()
                .and_then(field)
                .and_then(numeric)
                .map_or(Contribution::Missing, Contribution::Value),
        }
    }
}

/// Checks a meter name (also used for a limit's `resource_type`).
pub fn validate_meter_name(name: &str) -> Result<(), MeterError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_METER_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(MeterError::InvalidName { name: clip(name) })
    }
}

pub(crate) fn numeric(value: FieldValueRef<'_>) -> Option<f64> {
    let v = match value {
        FieldValueRef::F64(v) => v,
        FieldValueRef::I64(v) => v as f64,
        FieldValueRef::U64(v) => v as f64,
        FieldValueRef::Bool(_) | FieldValueRef::Str(_) => return None,
    };
    v.is_finite().then_some(v)
}

/// Clips user input quoted in an error, so that a megabyte name gives a readable message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn serialize_filter<S: Serializer>(filter: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(filter.len()))?;
    for (k, v) in filter {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// A filter read from a JSON object, keeping the order and every key (so that a duplicate key
/// is reported by validation rather than silently dropped, as a map would).
#[derive(Default)]
struct Filter(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        struct FilterVisitor;
        impl<'de> Visitor<'de> for FilterVisitor {
            type Value = Filter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of tag equalities such as {\"operation\":\"write\"}")
            }

            fn visit_unit<E>(self) -> Result<Filter, E> {
                Ok(Filter::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Filter, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    // Bounded so that a hostile body cannot grow the list without limit;
                    // validation reports the count.
                    if out.len() <= MAX_FILTERS {
                        out.push((k, v));
                    }
                }
                Ok(Filter(out))
            }
        }
        d.deserialize_any(FilterVisitor)
    }
}

#[cfg(test)]
mod tests;
