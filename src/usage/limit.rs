//! [`UsageLimit`]: the spec's limit model, with its JSON names, checked on the way in.
//!
//! A limit caps one meter (`resource_type`) of one tenant over a calendar-aligned period. This
//! module owns the definition and its validation; the decision it leads to is
//! [`super::check`], the periods are [`super::period`]. It does not know which tenant a limit
//! belongs to (the store of limits does) nor assign ids (the server does, on creation).
//!
//! **Invariant:** a limit that passed [`UsageLimit::validate`] (every deserialized one did) has
//! a finite `limit_value` above 0, a `period_value` within [`PeriodType::max_value`], a
//! `warning_threshold` in (0, 1], a meter name as `resource_type`, and a supported type.

use std::fmt;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize, Serializer};

use super::meter::{clip, validate_meter_name};
use super::period::{Period, PeriodError, PeriodType, period_containing};
use crate::model::Timestamp;

/// Longest `id`, `limit_name` or `unit`, in bytes.
pub const MAX_LIMIT_TEXT_LEN: usize = 256;
/// Longest `warning_message`, in bytes.
pub const MAX_WARNING_MESSAGE_LEN: usize = 4096;

/// What happens when a limit is reached. See [`super::check`] for the exact rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitType {
    /// Denied once reached, after a grace period (none with `enforce_immediately`).
    HardLimit,
    /// Reported as exceeded, never denied.
    SoftLimit,
    /// A fixed-window rate limit: at most `limit_value` per period, denied as soon as reached
    /// (never a grace period), allowed again when the window resets.
    RateLimit,
    /// Not supported yet: a burst allowance needs a bucket capacity and a refill rate that the
    /// limit model does not carry. Rejected by validation.
    BurstLimit,
}

impl LimitType {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitType::HardLimit => "hard_limit",
            LimitType::SoftLimit => "soft_limit",
            LimitType::RateLimit => "rate_limit",
            LimitType::BurstLimit => "burst_limit",
        }
    }
}

impl fmt::Display for LimitType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a limit is enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStatus {
    /// Checked and enforced.
    #[default]
    Active,
    /// Kept but not enforced: checks answer ok.
    Inactive,
}

/// A usage limit (quota) on one meter of one tenant.
///
/// JSON, as in the spec: `{"id","limit_name","limit_type","resource_type","limit_value","unit",
/// "period_type","period_value","status","enforce_immediately","warning_threshold",
/// "warning_message","timezone"}`. Required: `limit_name`, `limit_type`, `resource_type`,
/// `limit_value`, `period_type`. Defaults: no `id` (the server assigns one), `unit` empty,
/// `period_value` 1, `status` active, `enforce_immediately` false, `warning_threshold` 0.8,
/// no `warning_message`, `timezone` UTC. Unknown keys are rejected, so that a misspelt
/// `warning_treshold` is an error rather than a silent default.
///
/// ```
/// use meterdb::usage::{LimitType, UsageLimit};
///
/// let limit: UsageLimit = serde_json::from_str(r#"{
///     "limit_name": "API Calls Monthly Limit", "limit_type": "hard_limit",
///     "resource_type": "api_calls", "limit_value": 10000, "unit": "calls",
///     "period_type": "month", "period_value": 1, "status": "active",
///     "enforce_immediately": true, "warning_threshold": 0.8,
///     "warning_message": "Approaching API call limit", "timezone": "Europe/Paris"
/// }"#).unwrap();
/// assert_eq!(limit.limit_type, LimitType::HardLimit);
/// assert_eq!(limit.tz(), chrono_tz::Europe::Paris);
///
/// let err = serde_json::from_str::<UsageLimit>(r#"{"limit_name": "x",
///     "limit_type": "soft_limit", "resource_type": "api_calls", "limit_value": 0,
///     "period_type": "day"}"#).unwrap_err();
/// assert!(err.to_string().starts_with("invalid limit_value: must be above 0, got 0"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LimitJson")]
pub struct UsageLimit {
    /// The limit's id, assigned by the server on creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A name for people ("API Calls Monthly Limit").
    pub limit_name: String,
    /// What happens when the limit is reached.
    pub limit_type: LimitType,
    /// The meter the limit caps (`api_calls`, `storage_bytes`, or a custom meter's name).
    pub resource_type: String,
    /// The cap, in the meter's unit; above 0.
    pub limit_value: f64,
    /// The unit, for people ("calls", "bytes").
    pub unit: String,
    /// The unit of the period usage is counted over.
    pub period_type: PeriodType,
    /// How many `period_type`s one period lasts, aligned on a fixed grid (see
    /// [`super::period`]).
    pub period_value: u32,
    /// Whether the limit is enforced.
    pub status: LimitStatus,
    /// For a hard limit: deny as soon as it is reached, without a grace period.
    pub enforce_immediately: bool,
    /// Fraction of `limit_value` at which checks answer `warning`; in (0, 1].
    pub warning_threshold: f64,
    /// Message for people when the warning threshold is reached.
    pub warning_message: Option<String>,
    /// The IANA time zone that calendar periods follow; `None` is UTC.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_tz"
    )]
    pub timezone: Option<Tz>,
}

/// The wire form of a limit, checked by [`UsageLimit::validate`] on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitJson {
    #[serde(default)]
    id: Option<String>,
    limit_name: String,
    limit_type: LimitType,
    resource_type: String,
    limit_value: f64,
    #[serde(default)]
    unit: String,
    period_type: PeriodType,
    #[serde(default = "one")]
    period_value: u32,
    #[serde(default)]
    status: LimitStatus,
    #[serde(default)]
    enforce_immediately: bool,
    #[serde(default = "default_warning_threshold")]
    warning_threshold: f64,
    #[serde(default)]
    warning_message: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

fn one() -> u32 {
    1
}

fn default_warning_threshold() -> f64 {
    UsageLimit::DEFAULT_WARNING_THRESHOLD
}

fn serialize_tz<S: Serializer>(tz: &Option<Tz>, s: S) -> Result<S::Ok, S::Error> {
    match tz {
        Some(tz) => s.serialize_str(tz.name()),
        None => s.serialize_none(),
    }
}

impl TryFrom<LimitJson> for UsageLimit {
    type Error = LimitError;

    fn try_from(json: LimitJson) -> Result<UsageLimit, LimitError> {
        let timezone = json.timezone.as_deref().map(parse_time_zone).transpose()?;
        let limit = UsageLimit {
            id: json.id,
            limit_name: json.limit_name,
            limit_type: json.limit_type,
            resource_type: json.resource_type,
            limit_value: json.limit_value,
            unit: json.unit,
            period_type: json.period_type,
            period_value: json.period_value,
            status: json.status,
            enforce_immediately: json.enforce_immediately,
            warning_threshold: json.warning_threshold,
            warning_message: json.warning_message,
            timezone,
        };
        limit.validate()?;
        Ok(limit)
    }
}

/// Why a limit is not acceptable. The text names the JSON key and the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A value is out of range or malformed.
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// The JSON key.
        key: &'static str,
        /// What is wrong, quoting the value.
        reason: String,
    },
    /// `timezone` is not an IANA time zone name.
    #[error("invalid timezone: {name:?} is not an IANA time zone name such as \"Europe/Paris\" or \"UTC\"{}", .suggestion.map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownTimeZone {
        /// The rejected name (clipped).
        name: String,
        /// The zone whose name differs only in letter case, if any.
        suggestion: Option<&'static str>,
    },
    /// A limit type that is part of the spec but not implemented.
    #[error(
        "limit_type {limit_type} is not supported yet: a burst allowance needs a bucket capacity and refill rate that a limit does not carry; use rate_limit for a fixed-window cap"
    )]
    Unsupported {
        /// The type.
        limit_type: LimitType,
    },
}

impl UsageLimit {
    /// `warning_threshold` when none is given (the spec's example value).
    pub const DEFAULT_WARNING_THRESHOLD: f64 = 0.8;

    /// A limit with the defaults of the JSON form: active, one `period_type` long, no id, UTC.
    pub fn new(
        limit_name: &str,
        limit_type: LimitType,
        resource_type: &str,
        limit_value: f64,
        period_type: PeriodType,
    ) -> UsageLimit {
        UsageLimit {
            id: None,
            limit_name: limit_name.to_owned(),
            limit_type,
            resource_type: resource_type.to_owned(),
            limit_value,
            unit: String::new(),
            period_type,
            period_value: 1,
            status: LimitStatus::Active,
            enforce_immediately: false,
            warning_threshold: UsageLimit::DEFAULT_WARNING_THRESHOLD,
            warning_message: None,
            timezone: None,
        }
    }

    /// The time zone calendar periods follow (UTC unless set).
    pub fn tz(&self) -> Tz {
        self.timezone.unwrap_or(Tz::UTC)
    }

    /// The period containing `t`, over which usage is compared with the limit.
    pub fn period_at(&self, t: Timestamp) -> Result<Period, PeriodError> {
        period_containing(t, self.period_type, self.period_value, self.tz())
    }

    /// Checks every value; the error names the JSON key and what is wrong.
    pub fn validate(&self) -> Result<(), LimitError> {
        let invalid = |key: &'static str, reason: String| Err(LimitError::Invalid { key, reason });
        if let Some(id) = &self.id {
            text("id", id, MAX_LIMIT_TEXT_LEN, false)?;
        }
        text("limit_name", &self.limit_name, MAX_LIMIT_TEXT_LEN, false)?;
        if self.limit_type == LimitType::BurstLimit {
            return Err(LimitError::Unsupported {
                limit_type: self.limit_type,
            });
        }
        if let Err(e) = validate_meter_name(&self.resource_type) {
            return invalid(
                "resource_type",
                format!(
                    "{:?} is not a meter name (1 to 63 characters of a-z, 0-9 and _, starting with a letter): {e}",
                    clip(&self.resource_type)
                ),
            );
        }
        if !(self.limit_value.is_finite() && self.limit_value > 0.0) {
            return invalid(
                "limit_value",
                format!("must be above 0, got {}", self.limit_value),
            );
        }
        text("unit", &self.unit, MAX_LIMIT_TEXT_LEN, true)?;
        let max = self.period_type.max_value();
        if self.period_value == 0 || self.period_value > max {
            return invalid(
                "period_value",
                format!(
                    "must be 1 to {max} for {} periods, got {}",
                    self.period_type, self.period_value
                ),
            );
        }
        let threshold = self.warning_threshold;
        if !(threshold > 0.0 && threshold <= 1.0) {
            return invalid(
                "warning_threshold",
                format!("must be a fraction of the limit in (0, 1], got {threshold}"),
            );
        }
        if let Some(message) = &self.warning_message {
            text("warning_message", message, MAX_WARNING_MESSAGE_LEN, true)?;
        }
        Ok(())
    }
}

/// Checks a text value: its length, no control characters, and non-blank unless `may_be_empty`.
fn text(key: &'static str, value: &str, max: usize, may_be_empty: bool) -> Result<(), LimitError> {
    let reason = if !may_be_empty && value.trim().is_empty() {
        "must not be empty".to_owned()
    } else if value.len() > max {
        format!("is {} bytes long, more than the {max} allowed", value.len())
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        format!("{:?} contains a control character", clip(value))
    } else {
        return Ok(());
    };
    Err(LimitError::Invalid { key, reason })
}

/// Parses an IANA time zone name, suggesting the right spelling when only the case differs.
pub fn parse_time_zone(name: &str) -> Result<Tz, LimitError> {
    name.parse::<Tz>().map_err(|_| LimitError::UnknownTimeZone {
        name: clip(name),
        suggestion: chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| tz.name())
            .find(|known| known.eq_ignore_ascii_case(name)),
    })
}

#[cfg(test)]
mod tests;
