//! The usage layer: what turns stored events into per-tenant usage and limit decisions.
//!
//! This part is the pure core, with no I/O, no engine and no HTTP: everything here is a
//! function of its arguments (the clock is an argument too), so rollups, exactly-once counting,
//! the `UsageTracker` and the HTTP usage API can be built on it and tested with explicit times.
//!
//! - [`meter`]: [`Meter`] definitions (count, sum, min, max, avg, unique_count, latest over a
//!   measurement and a tag filter), their validation and JSON, the four built-in meters, and
//!   what one event contributes to a meter.
//! - [`limit`]: [`UsageLimit`], the spec's limit model with its JSON names, validated on the
//!   way in.
//! - [`period`]: calendar-aligned periods in a tenant time zone (minute to year, multiples on a
//!   fixed grid, DST-correct) and when usage resets.
//! - [`check`]: [`check_limit`], the allocation-free decision (ok, warning, exceeded, grace)
//!   and the grace state it carries from one check to the next.
//! - [`settings`]: [`UsageSettings`], the spec's environment variables with their defaults.
//!
//! **Architecture invariant:** nothing in this module reads files, the network, the process
//! environment (except [`UsageSettings::from_env`], on request) or the wall clock.

pub mod check;
pub mod limit;
pub mod meter;
pub mod period;
pub mod settings;

pub use check::{
    CheckError, CheckResult, CheckStatus, FirstExceeded, GraceState, LimitSettings, check_limit,
    check_limit_in,
};
pub use limit::{LimitError, LimitStatus, LimitType, UsageLimit};
pub use meter::{Aggregation, BUILTIN_NAMES, Contribution, Meter, MeterError};
pub use period::{Period, PeriodError, PeriodType, period_containing};
pub use settings::{SettingsError, UsageSettings};
