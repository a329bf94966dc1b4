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
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body_bytes: 32 << 20,
            max_in_flight_write_bytes: 256 << 20,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            auth_token: None,
        }
    }
}

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
    /// Buffer size that triggers a flush, bytes. Default 64 MiB.
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
        };
        Ok(Settings {
            data_dir: layer.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
            http_addr: layer
                .http_addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8086))),
            engine,
            server,
            log: layer.log.unwrap_or_else(|| "info".to_owned()),
        })
    }
}

/// Sets the engine's ingest window from the spec's settings, for `meterdb serve` and
/// `meterdb import`: events older than `USAGE_TRACKING_EVENTS_RETENTION_DAYS` or more than
/// `METERDB_MAX_FUTURE` ahead of the clock are refused. Event ids are remembered as long as
/// raw events are kept, so that a retry of any stored event is recognised.
pub fn apply_ingest_window(engine: &mut Options, usage: &UsageSettings) {
    let retention = Duration::from_secs(u64::from(usage.events_retention_days) * 86_400);
    engine.raw_retention = retention;
    engine.dedup_window = retention;
    engine.max_future = usage.max_future;
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
    }

    #[test]
    fn the_ingest_window_follows_the_usage_settings() {
        let mut engine = Options::default();
        let usage = UsageSettings::from_vars([
            ("USAGE_TRACKING_EVENTS_RETENTION_DAYS", "3650"),
            ("METERDB_MAX_FUTURE", "90m"),
        ])
        .unwrap();
        apply_ingest_window(&mut engine, &usage);
        assert_eq!(engine.raw_retention, Duration::from_secs(3650 * 86_400));
        assert_eq!(engine.dedup_window, engine.raw_retention);
        assert_eq!(engine.max_future, Duration::from_secs(90 * 60));
        let mut defaults = Options::default();
        apply_ingest_window(&mut defaults, &UsageSettings::default());
        assert_eq!(defaults.raw_retention, Options::default().raw_retention);
        assert_eq!(defaults.dedup_window, Options::default().dedup_window);
        assert_eq!(defaults.max_future, Options::default().max_future);
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
