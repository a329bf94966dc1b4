//! The spec's usage-tracking environment variables, read into [`UsageSettings`].
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `USAGE_TRACKING_EVENTS_RETENTION_DAYS` | 30 | raw events are kept this many days; writes refuse older ones |
//! | `USAGE_TRACKING_METRICS_RETENTION_DAYS` | 90 | rollups are kept this many days |
//! | `LIMITS_ENFORCEMENT_ENABLED` | true | false: limit checks report but never deny |
//! | `LIMITS_GRACE_PERIOD_MINUTES` | 5 | a reached hard limit still allows requests this long (0: none) |
//! | `LIMITS_NOTIFICATION_ENABLED` | true | notify when a limit warns or is exceeded |
//! | `METERDB_MAX_FUTURE` | 24h | events further ahead of the server clock are rejected |
//! | `ANALYTICS_CACHE_TTL`, `ANALYTICS_FORECAST_MODEL`, `ANALYTICS_ANOMALY_DETECTION_THRESHOLD` | none | kept as given, for the analytics layer to interpret |
//!
//! Booleans are `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case); durations
//! are number-unit pairs such as `24h`, `90m`, `1h30m`, `7d` (units `ns`, `us`, `ms`, `s`,
//! `m`, `h`, `d`, `w`). A variable set to an empty or blank value counts as unset, as
//! container tools often write unset variables that way. The spec's
//! `USAGE_TRACKING_STORAGE_BACKEND` and `USAGE_TRACKING_REDIS_URL` do not apply: MeterDB is
//! the storage.
//!
//! Values are read through a lookup function, so tests pass a map and never touch the process
//! environment; [`UsageSettings::from_env`] reads the real one.

use std::time::Duration;

use super::check::LimitSettings;
use super::meter::clip;

/// Usage-tracking settings, with the spec's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageSettings {
    /// `USAGE_TRACKING_EVENTS_RETENTION_DAYS`: raw events older than this are dropped, and
    /// writes refuse them (`crate::server::config::apply_ingest_window`). Default 30 days.
    pub events_retention_days: u32,
    /// `USAGE_TRACKING_METRICS_RETENTION_DAYS`: rollups older than this are dropped, for
    /// tenants without an override (`crate::server::config::apply_ingest_window` sets
    /// `Options::rollup_retention` from it). Default 90 days.
    pub metrics_retention_days: u32,
    /// `LIMITS_ENFORCEMENT_ENABLED` and `LIMITS_GRACE_PERIOD_MINUTES`.
    pub limits: LimitSettings,
    /// `LIMITS_NOTIFICATION_ENABLED`: whether limit warnings and breaches are notified.
    /// Default true.
    pub notification_enabled: bool,
    /// `METERDB_MAX_FUTURE`: events further ahead of the server clock are rejected.
    /// Default 24 hours.
    pub max_future: Duration,
    /// `ANALYTICS_CACHE_TTL`, unparsed.
    pub analytics_cache_ttl: Option<String>,
    /// `ANALYTICS_FORECAST_MODEL`, unparsed.
    pub analytics_forecast_model: Option<String>,
    /// `ANALYTICS_ANOMALY_DETECTION_THRESHOLD`, unparsed.
    pub analytics_anomaly_detection_threshold: Option<String>,
}

impl Default for UsageSettings {
    fn default() -> UsageSettings {
        UsageSettings {
            events_retention_days: 30,
            metrics_retention_days: 90,
            limits: LimitSettings::default(),
            notification_enabled: true,
            max_future: Duration::from_secs(24 * 3600),
            analytics_cache_ttl: None,
            analytics_forecast_model: None,
            analytics_anomaly_detection_threshold: None,
        }
    }
}

/// A variable with a value that cannot be used. The text names the variable, quotes the value
/// and says what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable}={value:?} is invalid: {expected}")]
pub struct SettingsError {
    /// The variable.
    pub variable: &'static str,
    /// Its value (clipped).
    pub value: String,
    /// What it should be.
    pub expected: String,
}

/// Every variable read, in the order of the table in the module docs.
pub const VARIABLES: [&str; 9] = [
    "USAGE_TRACKING_EVENTS_RETENTION_DAYS",
    "USAGE_TRACKING_METRICS_RETENTION_DAYS",
    "LIMITS_ENFORCEMENT_ENABLED",
    "LIMITS_GRACE_PERIOD_MINUTES",
    "LIMITS_NOTIFICATION_ENABLED",
    "METERDB_MAX_FUTURE",
    "ANALYTICS_CACHE_TTL",
    "ANALYTICS_FORECAST_MODEL",
    "ANALYTICS_ANOMALY_DETECTION_THRESHOLD",
];

/// Longest retention accepted, in days (100 years): longer is surely a typo.
const MAX_RETENTION_DAYS: u32 = 36_500;
/// Longest grace period accepted, in minutes (one year).
const MAX_GRACE_MINUTES: u64 = 366 * 24 * 60;

impl UsageSettings {
    /// Reads the settings from `(name, value)` pairs, such as a map or a list in a test;
    /// names not listed in [`VARIABLES`] are ignored.
    ///
    /// ```
    /// use std::time::Duration;
    /// use meterdb::usage::UsageSettings;
    ///
    /// let s = UsageSettings::from_vars([("LIMITS_GRACE_PERIOD_MINUTES", "10"), ("PATH", "/bin")])?;
    /// assert_eq!(s.limits.grace_period, Duration::from_secs(600));
    /// assert_eq!(s.events_retention_days, 30);
    /// let err = UsageSettings::from_vars([("LIMITS_ENFORCEMENT_ENABLED", "maybe")]).unwrap_err();
    /// assert!(err.to_string().starts_with("environment variable LIMITS_ENFORCEMENT_ENABLED=\"maybe\""));
    /// # Ok::<(), meterdb::usage::SettingsError>(())
    /// ```
    pub fn from_vars<I, K, V>(vars: I) -> Result<UsageSettings, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut found: [Option<String>; VARIABLES.len()] = Default::default();
        for (name, value) in vars {
            if let Some(idx) = VARIABLES.iter().position(|v| *v == name.as_ref()) {
                found[idx] = Some(value.as_ref().to_owned());
            }
        }
        UsageSettings::from_lookup(|name| {
            VARIABLES
                .iter()
                .position(|v| *v == name)
                .and_then(|idx| found[idx].clone())
        })
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<UsageSettings, SettingsError> {
        let mut not_unicode = None;
        let settings = UsageSettings::from_lookup(|name| {
            let value = std::env::var_os(name)?;
            match value.into_string() {
                Ok(s) => Some(s),
                Err(raw) => {
                    not_unicode.get_or_insert((name, raw.to_string_lossy().into_owned()));
                    None
                }
            }
        });
        if let Some((name, value)) = not_unicode {
            let variable = VARIABLES
                .iter()
                .copied()
                .find(|v| *v == name)
                .unwrap_or("?");
            return Err(SettingsError {
                variable,
                value: clip(&value),
                expected: "a UTF-8 value".to_owned(),
            });
        }
        settings
    }

    /// Reads the settings through `lookup`, which returns a variable's value if it is set.
    pub fn from_lookup(
        mut lookup: impl FnMut(&'static str) -> Option<String>,
    ) -> Result<UsageSettings, SettingsError> {
        let mut get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        };
        let mut s = UsageSettings::default();
        if let Some(var) = get("USAGE_TRACKING_EVENTS_RETENTION_DAYS") {
            s.events_retention_days = days(var)?;
        }
        if let Some(var) = get("USAGE_TRACKING_METRICS_RETENTION_DAYS") {
            s.metrics_retention_days = days(var)?;
        }
        if let Some(var) = get("LIMITS_ENFORCEMENT_ENABLED") {
            s.limits.enforcement_enabled = boolean(var)?;
        }
        if let Some((name, value)) = get("LIMITS_GRACE_PERIOD_MINUTES") {
            let minutes = value
                .parse::<u64>()
                .ok()
                .filter(|m| *m <= MAX_GRACE_MINUTES)
                .ok_or_else(|| {
                    invalid(
                        name,
                        &value,
                        format!("a whole number of minutes from 0 to {MAX_GRACE_MINUTES}"),
                    )
                })?;
            s.limits.grace_period = Duration::from_secs(minutes * 60);
        }
        if let Some(var) = get("LIMITS_NOTIFICATION_ENABLED") {
            s.notification_enabled = boolean(var)?;
        }
        if let Some((name, value)) = get("METERDB_MAX_FUTURE") {
            s.max_future = parse_duration(&value).map_err(|e| invalid(name, &value, e))?;
        }
        s.analytics_cache_ttl = get("ANALYTICS_CACHE_TTL").map(|(_, v)| v);
        s.analytics_forecast_model = get("ANALYTICS_FORECAST_MODEL").map(|(_, v)| v);
        s.analytics_anomaly_detection_threshold =
            get("ANALYTICS_ANOMALY_DETECTION_THRESHOLD").map(|(_, v)| v);
        Ok(s)
    }
}

fn invalid(variable: &'static str, value: &str, expected: impl Into<String>) -> SettingsError {
    SettingsError {
        variable,
        value: clip(value),
        expected: expected.into(),
    }
}

fn days((name, value): (&'static str, String)) -> Result<u32, SettingsError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
        .ok_or_else(|| {
            invalid(
                name,
                &value,
                format!("a whole number of days from 1 to {MAX_RETENTION_DAYS}"),
            )
        })
}

fn boolean((name, value): (&'static str, String)) -> Result<bool, SettingsError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, &value, "true or false")),
    }
}

/// Parses a duration such as `24h`, `1h30m` or `500ms`: number-unit pairs, no sign.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected =
        || "a duration such as 24h, 90m or 1h30m (units ns, us, ms, s, m, h, d, w)".to_owned();
    let mut rest = text;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(expected());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ns: u64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => return Err(expected()),
        };
        rest = &rest[unit_len..];
        total = amount
            .checked_mul(unit_ns)
            .and_then(|ns| total.checked_add(ns))
            .filter(|ns| i64::try_from(*ns).is_ok())
            .ok_or_else(|| "a duration below 292 years".to_owned())?;
    }
    Ok(Duration::from_nanos(total))
}

#[cfg(test)]
mod tests;
