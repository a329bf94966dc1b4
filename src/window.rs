//! The ingest time window: which event timestamps a write accepts, relative to the clock.
//!
//! An event older than the raw-event retention would be dropped as soon as it was stored, and
//! one far ahead of the clock is most likely a client with a wrong clock or precision; both are
//! refused one by one (never silently dropped) with a reason naming the event's time, the
//! bound and the setting. [`crate::Engine`] applies the window to every batch before it
//! reaches a shard, so every ingest path (library, line protocol, JSON events) gets it.
//!
//! Bounds are inclusive: with the clock at `now`, a timestamp `t` is accepted when
//! `now - retention <= t <= now + max_future`. A duration that takes its bound beyond the
//! range of timestamps (such as [`Duration::MAX`]) leaves that side unbounded.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Options;
use crate::error::InvalidEvent;
use crate::model::Timestamp;

/// The window's settings and the clock it moves with.
#[derive(Clone, Debug)]
pub struct IngestWindow {
    clock: Arc<dyn Clock>,
    retention: Duration,
    max_future: Duration,
}

impl IngestWindow {
    /// The window of [`Options::raw_retention`] and [`Options::max_future`] around
    /// [`Options::clock`].
    pub fn new(options: &Options) -> IngestWindow {
        IngestWindow {
            clock: options.clock.clone(),
            retention: options.raw_retention,
            max_future: options.max_future,
        }
    }

    /// The window at this instant (one reading of the clock, so that a batch is judged
    /// against one bound).
    pub fn now(&self) -> TimeWindow {
        TimeWindow::at(self.clock.now(), self.retention, self.max_future)
    }
}

/// The accepted timestamps at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    oldest: Timestamp,
    latest: Timestamp,
    retention: Duration,
    max_future: Duration,
}

impl TimeWindow {
    /// The window with the clock at `now`.
    pub fn at(now: Timestamp, retention: Duration, max_future: Duration) -> TimeWindow {
        // In i128, where any `Duration` fits (in nanoseconds) and a bound beyond the i64 range
        // clamps to it, so that a long duration opens that side whatever `now` is.
        let nanos = |d: Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
        let clamp = |ns: i128| Timestamp(ns.clamp(i64::MIN.into(), i64::MAX.into()) as i64);
        TimeWindow {
            oldest: clamp(i128::from(now.0).saturating_sub(nanos(retention))),
            latest: clamp(i128::from(now.0).saturating_add(nanos(max_future))),
            retention,
            max_future,
        }
    }

    /// Whether `time` is inside the window, and why not.
    pub fn check(&self, time: Timestamp) -> Result<(), InvalidEvent> {
        if time < self.oldest {
            return Err(InvalidEvent::TooOld {
                time,
                oldest: self.oldest,
                retention: self.retention,
            });
        }
        if time > self.latest {
            return Err(InvalidEvent::TooFarAhead {
                time,
                latest: self.latest,
                max_future: self.max_future,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_860_000_000_000_000; // 2026-11-28T10:00:00Z
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn bounds_are_inclusive() {
        let w = TimeWindow::at(Timestamp(NOW), 30 * DAY, DAY);
        let day = DAY.as_nanos() as i64;
        assert_eq!(w.check(Timestamp(NOW - 30 * day)), Ok(()));
        assert_eq!(w.check(Timestamp(NOW + day)), Ok(()));
        assert!(matches!(
            w.check(Timestamp(NOW - 30 * day - 1)),
            Err(InvalidEvent::TooOld { .. })
        ));
        assert!(matches!(
            w.check(Timestamp(NOW + day + 1)),
            Err(InvalidEvent::TooFarAhead { .. })
        ));
    }

    #[test]
    fn reasons_name_the_time_the_bound_and_the_setting() {
        let w = TimeWindow::at(Timestamp(NOW), 30 * DAY, DAY);
        let old = w.check(Timestamp(1_790_812_800_000_000_000)).unwrap_err();
        assert_eq!(
            old.to_string(),
            "timestamp older than the raw-event retention (30 days): 2026-10-01T00:00:00Z is \
             before 2026-10-29T10:00:00Z (USAGE_TRACKING_EVENTS_RETENTION_DAYS sets the retention)"
        );
        let ahead = w
            .check(Timestamp(NOW + 2 * DAY.as_nanos() as i64 + 5))
            .unwrap_err();
        assert_eq!(
            ahead.to_string(),
            "timestamp more than 24h ahead of the server clock: 2026-11-30T10:00:00.000000005Z \
             is after 2026-11-29T10:00:00Z (METERDB_MAX_FUTURE sets the limit)"
        );
    }

    #[test]
    fn durations_beyond_the_range_leave_the_side_open() {
        for now in [
            Timestamp(NOW),
            Timestamp(-NOW),
            Timestamp::MIN,
            Timestamp::MAX,
        ] {
            let w = TimeWindow::at(now, Duration::MAX, Duration::MAX);
            assert_eq!(w.check(Timestamp::MIN), Ok(()));
            assert_eq!(w.check(Timestamp::MAX), Ok(()));
        }
        let far = TimeWindow::at(Timestamp::MAX, DAY, DAY);
        assert_eq!(far.check(Timestamp::MAX), Ok(()));
    }
}
