//! Server settings and how they are resolved: command-line flags override `METERDB_*`
//! environment variables (both read by the CLI into a [`Layer`]), which override the TOML file,
//! which overrides the defaults. Every setting has a default that works on a laptop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::usage::UsageSettings;
use crate::{Options, SyncPolicy};

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body, after gzip decoding. Default 32 MiB.
    pub max_body_bytes: usize,
    /// Decoded write bodies held at once; beyond it writes get 429. Default 256 MiB.
    pub max_in_flight_write_bytes: usize,
    /// A request taking longer is answered 408. Default 60 s.
    pub request_timeout: Duration,
    /// On shutdown, how long requests in flight may take to finish. Default 10 s.
    pub shutdown_grace: Duration,
    /// When set, every request must present this token (see [`super::auth`]).
    pub auth_token: Option<String>,
    /// A connection that has not sent a complete request head (request line and headers)
    /// this long after it opened, or after its previous request, is closed. Default 10 s.
    pub header_timeout: Duration,
    /// Connections open at once; a connection beyond it is answered 503 and closed.
    /// Default 1024.
    pub max_connections: usize,
    /// Time budget of one `/query` request: its statements stop where they are and answer
    /// an error naming the budget. Default 30 s (never more than `request_timeout`).
    pub query_timeout: Duration,
    /// Memory budget of one statement: at most this many rows returned. Default 2,000,000.
    pub query_max_rows: usize,
    /// Memory budget of one aggregate statement: at most this many series × time buckets
    /// held. Default 5,000,000.
    pub query_max_cells: usize,
    /// Memory budget of one statement's scan: at most this many stored rows read. Default
    /// 20,000,000.
    pub query_max_scan_rows: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body_bytes: 32 << 20,
            max_in_flight_write_bytes: 256 << 20,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            auth_token: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            query_timeout: Duration::from_secs(30),
            query_max_rows: crate::influxql::QueryBudget::DEFAULT_MAX_ROWS,
            query_max_cells: crate::influxql::QueryBudget::DEFAULT_MAX_CELLS,
            query_max_scan_rows: crate::influxql::QueryBudget::DEFAULT_MAX_SCAN_ROWS,
        }
    }
}

/// Time between background compaction passes by default.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// The largest body limit accepted: a decoded body must fit one WAL record with room to spare.
pub const MAX_BODY_LIMIT: usize = 128 << 20;

/// One layer of settings (the TOML file, or flags and environment): each one may be absent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Data directory. Default `./data`.
    pub data_dir: Option<PathBuf>,
    /// Listen address. Default `127.0.0.1:8086`.
    pub http_addr: Option<SocketAddr>,
    /// WAL sync policy: `always`, `interval:<ms>` or `none`. Default `always`.
    pub sync: Option<String>,
    /// Shards of a new data directory. Default: the number of cores, at most 16.
    pub shards: Option<usize>,
    /// Buffer size that triggers a flush, bytes. Default 32 MiB.
    pub max_buffer_bytes: Option<usize>,
    /// Buffer age that triggers a flush, seconds. Default 600.
    pub max_buffer_age_secs: Option<u64>,
    /// Largest decoded request body, bytes. Default 32 MiB.
    pub max_body_bytes: Option<usize>,
    /// Decoded write bytes in flight before 429. Default 256 MiB.
    pub max_in_flight_write_bytes: Option<usize>,
    /// Request timeout, seconds. Default 60.
    pub request_timeout_secs: Option<u64>,
    /// Shutdown grace period, seconds. Default 10.
    pub shutdown_grace_secs: Option<u64>,
    /// Token every request must present. Default: none (no authentication).
    pub auth_token: Option<String>,
    /// Log filter, e.g. `info` or `meterdb=debug,info`. Default `info`.
    pub log: Option<String>,
    /// Header-read timeout, seconds. Default 10.
    pub header_timeout_secs: Option<u64>,
    /// Connections open at once. Default 1024.
    pub max_connections: Option<usize>,
    /// Time budget of a query, seconds. Default 30.
    pub query_timeout_secs: Option<u64>,
    /// Rows one statement may return. Default 2,000,000.
    pub query_max_rows: Option<usize>,
    /// Series × time buckets one aggregate statement may hold. Default 5,000,000.
    pub query_max_cells: Option<usize>,
    /// Stored rows one statement's scan may read. Default 20,000,000.
    pub query_max_scan_rows: Option<usize>,
    /// Seconds between background compaction passes; 0 turns them off. Default 300.
    pub compaction_interval_secs: Option<u64>,
    /// Compaction sleeps this many times as long as each rewrite took. Default 1.0.
    pub compaction_pace: Option<f64>,
    /// What deleting a user or tenant does to its rollups: `keep` or `subtract`. Default
    /// `keep`.
    pub rollups_on_delete: Option<String>,
}

impl Layer {
    /// Parses the text of the TOML file at `path` (named in errors).
    pub fn from_toml(text: &str, path: &Path) -> anyhow::Result<Layer> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    /// Each setting from `self`, else from `lower`.
    pub fn over(self, lower: Layer) -> Layer {
        Layer {
            data_dir: self.data_dir.or(lower.data_dir),
            http_addr: self.http_addr.or(lower.http_addr),
            sync: self.sync.or(lower.sync),
            shards: self.shards.or(lower.shards),
            max_buffer_bytes: self.max_buffer_bytes.or(lower.max_buffer_bytes),
            max_buffer_age_secs: self.max_buffer_age_secs.or(lower.max_buffer_age_secs),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            max_in_flight_write_bytes: self
                .max_in_flight_write_bytes
                .or(lower.max_in_flight_write_bytes),
            request_timeout_secs: self.request_timeout_secs.or(lower.request_timeout_secs),
            shutdown_grace_secs: self.shutdown_grace_secs.or(lower.shutdown_grace_secs),
            auth_token: self.auth_token.or(lower.auth_token),
            log: self.log.or(lower.log),
            header_timeout_secs: self.header_timeout_secs.or(lower.header_timeout_secs),
            max_connections: self.max_connections.or(lower.max_connections),
            query_timeout_secs: self.query_timeout_secs.or(lower.query_timeout_secs),
            query_max_rows: self.query_max_rows.or(lower.query_max_rows),
            query_max_cells: self.query_max_cells.or(lower.query_max_cells),
            query_max_scan_rows: self.query_max_scan_rows.or(lower.query_max_scan_rows),
            compaction_interval_secs: self
                .compaction_interval_secs
                .or(lower.compaction_interval_secs),
            compaction_pace: self.compaction_pace.or(lower.compaction_pace),
            rollups_on_delete: self.rollups_on_delete.or(lower.rollups_on_delete),
        }
    }
}

/// Fully resolved settings of `meterdb serve`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub http_addr: SocketAddr,
    /// Engine options.
    pub engine: Options,
    /// HTTP settings.
    pub server: ServerConfig,
    /// Log filter.
    pub log: String,
    /// Time between background compaction passes; `None`: no background compaction.
    pub compaction_interval: Option<Duration>,
}

impl Settings {
    /// Fills every absent setting of `layer` with its default and checks the values.
    pub fn resolve(layer: Layer) -> anyhow::Result<Settings> {
        let defaults = ServerConfig::default();
        let mut engine = Options::default();
        if let Some(s) = &layer.sync {
            engine.sync = s.parse::<SyncPolicy>().map_err(anyhow::Error::msg)?;
        }
        engine.shards = layer.shards;
        if let Some(b) = layer.max_buffer_bytes {
            engine.max_buffer_bytes = b;
        }
        if let Some(s) = layer.max_buffer_age_secs {
            engine.max_buffer_age = Duration::from_secs(s);
        }
        if let Some(r) = &layer.rollups_on_delete {
            engine.rollups_on_delete = r.parse().map_err(anyhow::Error::msg)?;
        }
        if let Some(p) = layer.compaction_pace {
            if !(0.0..=1000.0).contains(&p) {
                anyhow::bail!("compaction_pace {p} must be between 0 and 1000");
            }
            engine.compaction_pace = p;
        }
        let max_body_bytes = layer.max_body_bytes.unwrap_or(defaults.max_body_bytes);
        if !(1..=MAX_BODY_LIMIT).contains(&max_body_bytes) {
            anyhow::bail!("max_body_bytes {max_body_bytes} must be between 1 and {MAX_BODY_LIMIT}");
        }
        let server = ServerConfig {
            max_body_bytes,
            max_in_flight_write_bytes: layer
                .max_in_flight_write_bytes
                .unwrap_or(defaults.max_in_flight_write_bytes)
                .max(max_body_bytes),
            request_timeout: layer
                .request_timeout_secs
                .map_or(defaults.request_timeout, Duration::from_secs),
            shutdown_grace: layer
                .shutdown_grace_secs
                .map_or(defaults.shutdown_grace, Duration::from_secs),
            auth_token: layer.auth_token.filter(|t| !t.is_empty()),
            header_timeout: positive_secs(
                "header_timeout_secs",
                layer.header_timeout_secs,
                defaults.header_timeout,
            )?,
            max_connections: positive(
                "max_connections",
                layer.max_connections,
                defaults.max_connections,
            )?,
            query_timeout: positive_secs(
                "query_timeout_secs",
                layer.query_timeout_secs,
                defaults.query_timeout,
            )?,
            query_max_rows: positive(
                "query_max_rows",
                layer.query_max_rows,
                defaults.query_max_rows,
            )?,
            query_max_cells: positive(
                "query_max_cells",
                layer.query_max_cells,
                defaults.query_max_cells,
            )?,
            query_max_scan_rows: positive(
                "query_max_scan_rows",
                layer.query_max_scan_rows,
                defaults.query_max_scan_rows,
            )?,
        };
        Ok(Settings {
            data_dir: layer.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
            http_addr: layer
                .http_addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8086))),
            engine,
            server,
            log: layer.log.unwrap_or_else(|| "info".to_owned()),
            compaction_interval: match layer.compaction_interval_secs {
                Some(0) => None,
                Some(s) => Some(Duration::from_secs(s)),
                None => Some(DEFAULT_COMPACTION_INTERVAL),
            },
        })
    }
}

/// `value`, else `default`; 0 is refused (it would refuse every connection or query).
fn positive(name: &str, value: Option<usize>, default: usize) -> anyhow::Result<usize> {
    match value {
        Some(0) => anyhow::bail!("{name} must be at least 1"),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// `value` seconds, else `default`; 0 is refused.
fn positive_secs(name: &str, value: Option<u64>, default: Duration) -> anyhow::Result<Duration> {
    match value {
        Some(0) => anyhow::bail!("{name} must be at least 1"),
        Some(v) => Ok(Duration::from_secs(v)),
        None => Ok(default),
    }
}

/// Sets the engine's ingest window and default retention from the spec's settings, for
/// `meterdb serve` and `meterdb import`: events older than
/// `USAGE_TRACKING_EVENTS_RETENTION_DAYS` or more than `METERDB_MAX_FUTURE` ahead of the clock
/// are refused, and rollups are kept `USAGE_TRACKING_METRICS_RETENTION_DAYS` (see
/// [`crate::RetentionPolicies`] for tenants' overrides). Event ids are remembered as long as
/// raw events are kept, so that a retry of any stored event is recognised.
pub fn apply_ingest_window(engine: &mut Options, usage: &UsageSettings) {
    let retention = Duration::from_secs(u64::from(usage.events_retention_days) * 86_400);
    engine.raw_retention = retention;
    engine.dedup_window = retention;
    engine.max_future = usage.max_future;
    engine.rollup_retention = Duration::from_secs(u64::from(usage.metrics_retention_days) * 86_400);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_layers_win_and_defaults_fill_the_rest() {
        let file: Layer = toml::from_str(
            "data_dir = \"/srv/meterdb\"\nhttp_addr = \"0.0.0.0:9000\"\nsync = \"interval:50\"\n",
        )
        .unwrap();
        let flags = Layer {
            http_addr: Some("127.0.0.1:1234".parse().unwrap()),
            ..Layer::default()
        };
        let s = Settings::resolve(flags.over(file)).unwrap();
        assert_eq!(s.http_addr, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("/srv/meterdb"));
        assert_eq!(
            s.engine.sync,
            SyncPolicy::Interval(Duration::from_millis(50))
        );
        assert_eq!(s.server.max_body_bytes, 32 << 20);
        assert_eq!(s.server.header_timeout, Duration::from_secs(10));
        assert_eq!(s.server.max_connections, 1024);
        assert_eq!(s.server.query_timeout, Duration::from_secs(30));
        assert_eq!(s.server.query_max_rows, 2_000_000);
        assert_eq!(s.server.query_max_cells, 5_000_000);
        assert_eq!(s.server.query_max_scan_rows, 20_000_000);
    }

    #[test]
    fn overload_settings_come_from_the_file_and_zero_is_refused() {
        let file: Layer = toml::from_str(
            "header_timeout_secs = 3\nmax_connections = 50\nquery_timeout_secs = 5\n\
             query_max_rows = 1000\nquery_max_cells = 2000\nquery_max_scan_rows = 3000\n",
        )
        .unwrap();
        let s = Settings::resolve(file).unwrap();
        assert_eq!(s.server.header_timeout, Duration::from_secs(3));
        assert_eq!(s.server.max_connections, 50);
        assert_eq!(s.server.query_timeout, Duration::from_secs(5));
        assert_eq!(s.server.query_max_rows, 1000);
        assert_eq!(s.server.query_max_cells, 2000);
        assert_eq!(s.server.query_max_scan_rows, 3000);
        for zero in [
            "header_timeout_secs = 0",
            "max_connections = 0",
            "query_timeout_secs = 0",
            "query_max_rows = 0",
            "query_max_cells = 0",
            "query_max_scan_rows = 0",
        ] {
            let layer: Layer = toml::from_str(zero).unwrap();
            let err = Settings::resolve(layer).unwrap_err().to_string();
            let name = zero.split(' ').next().unwrap();
            assert!(err.contains(name), "{zero}: {err}");
        }
    }

    #[test]
    fn compaction_settings_come_from_the_file_and_bad_values_are_refused() {
        let s = Settings::resolve(Layer::default()).unwrap();
        assert_eq!(s.compaction_interval, Some(DEFAULT_COMPACTION_INTERVAL));
        assert_eq!(s.engine.rollups_on_delete, crate::RollupsOnDelete::Keep);
        let file: Layer = toml::from_str(
            "compaction_interval_secs = 0
compaction_pace = 0.5
rollups_on_delete = \"subtract\"\n",
        )
        .unwrap();
        let s = Settings::resolve(file).unwrap();
        assert_eq!(s.compaction_interval, None);
        assert_eq!(s.engine.compaction_pace, 0.5);
        assert_eq!(s.engine.rollups_on_delete, crate::RollupsOnDelete::Subtract);
        for (bad, name) in [
            ("rollups_on_delete = \"forget\"", "rollups_on_delete"),
            ("compaction_pace = -1.0", "compaction_pace"),
        ] {
            let layer: Layer = toml::from_str(bad).unwrap();
            let err = Settings::resolve(layer).unwrap_err().to_string();
            assert!(err.contains(name), "{bad}: {err}");
        }
    }

    #[test]
    fn the_ingest_window_follows_the_usage_settings() {
        let mut engine = Options::default();
        let usage = UsageSettings::from_vars([
            ("USAGE_TRACKING_EVENTS_RETENTION_DAYS", "3650"),
            ("METERDB_MAX_FUTURE", "90m"),
            ("USAGE_TRACKING_METRICS_RETENTION_DAYS", "7300"),
        ])
        .unwrap();
        apply_ingest_window(&mut engine, &usage);
        assert_eq!(engine.raw_retention, Duration::from_secs(3650 * 86_400));
        assert_eq!(engine.rollup_retention, Duration::from_secs(7300 * 86_400));
        assert_eq!(engine.dedup_window, engine.raw_retention);
        assert_eq!(engine.max_future, Duration::from_secs(90 * 60));
        let mut defaults = Options::default();
        apply_ingest_window(&mut defaults, &UsageSettings::default());
        assert_eq!(defaults.raw_retention, Options::default().raw_retention);
        assert_eq!(defaults.dedup_window, Options::default().dedup_window);
        assert_eq!(defaults.max_future, Options::default().max_future);
        assert_eq!(
            defaults.rollup_retention,
            Options::default().rollup_retention
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = toml::from_str::<Layer>("colour = 1").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let bad = Layer {
            sync: Some("sometimes".into()),
            ..Layer::default()
        };
        assert!(
            Settings::resolve(bad)
                .unwrap_err()
                .to_string()
                .contains("sometimes")
        );
        let huge = Layer {
            max_body_bytes: Some(1 << 40),
            ..Layer::default()
        };
        assert!(
            Settings::resolve(huge)
                .unwrap_err()
                .to_string()
                .contains("max_body_bytes")
        );
    }
}
