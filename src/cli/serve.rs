//! `meterdb serve`: settings from flags > `METERDB_*` environment > TOML file > defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use meterdb::Engine;
use meterdb::clock::SystemClock;
use meterdb::server::config::{Layer, Settings, apply_ingest_window};
use meterdb::server::{AppState, serve, shutdown_signal};
use meterdb::usage::UsageSettings;

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (snake_case keys, e.g. `http_addr`).
    #[arg(long, env = "METERDB_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long, env = "METERDB_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8086].
    #[arg(long, env = "METERDB_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// WAL sync policy: always (durable acks), interval:<ms>, none [default: always].
    #[arg(long, env = "METERDB_SYNC")]
    sync: Option<String>,
    /// Shards of a new data directory [default: cores, at most 16].
    #[arg(long, env = "METERDB_SHARDS")]
    shards: Option<usize>,
    /// Flush a shard's buffer at this many bytes [default: 33554432].
    #[arg(long, env = "METERDB_MAX_BUFFER_BYTES")]
    max_buffer_bytes: Option<usize>,
    /// Flush a shard's buffer when its oldest event is this many seconds old [default: 600].
    #[arg(long, env = "METERDB_MAX_BUFFER_AGE_SECS")]
    max_buffer_age_secs: Option<u64>,
    /// Largest request body after gzip decoding, bytes [default: 33554432].
    #[arg(long, env = "METERDB_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Write bytes in flight before answering 429 [default: 268435456].
    #[arg(long, env = "METERDB_MAX_IN_FLIGHT_WRITE_BYTES")]
    max_in_flight_write_bytes: Option<usize>,
    /// Request timeout, seconds [default: 60].
    #[arg(long, env = "METERDB_REQUEST_TIMEOUT_SECS")]
    request_timeout_secs: Option<u64>,
    /// How long requests in flight may take to finish on shutdown, seconds [default: 10].
    #[arg(long, env = "METERDB_SHUTDOWN_GRACE_SECS")]
    shutdown_grace_secs: Option<u64>,
    /// Token every request must present [default: none, no authentication].
    #[arg(long, env = "METERDB_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Log filter, e.g. `info` or `meterdb=debug,warn` [default: info].
    #[arg(long, env = "METERDB_LOG")]
    log: Option<String>,
    /// Close a connection that has not sent a complete request head this many seconds after
    /// it opened or after its previous request [default: 10].
    #[arg(long, env = "METERDB_HEADER_TIMEOUT_SECS")]
    header_timeout_secs: Option<u64>,
    /// Connections open at once; beyond it a new connection is answered 503 [default: 1024].
    #[arg(long, env = "METERDB_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Time budget of a query, seconds: it stops and answers an error beyond it [default: 30].
    #[arg(long, env = "METERDB_QUERY_TIMEOUT_SECS")]
    query_timeout_secs: Option<u64>,
    /// Rows one query statement may return [default: 2000000].
    #[arg(long, env = "METERDB_QUERY_MAX_ROWS")]
    query_max_rows: Option<usize>,
    /// Series x time buckets one aggregate statement may hold [default: 5000000].
    #[arg(long, env = "METERDB_QUERY_MAX_CELLS")]
    query_max_cells: Option<usize>,
    /// Stored rows one query statement may read into memory [default: 20000000].
    #[arg(long, env = "METERDB_QUERY_MAX_SCAN_ROWS")]
    query_max_scan_rows: Option<usize>,
    /// Seconds between background compaction passes (merges, retention, purging deleted
    /// data); 0 turns them off [default: 300].
    #[arg(long, env = "METERDB_COMPACTION_INTERVAL_SECS")]
    compaction_interval_secs: Option<u64>,
    /// Background compaction sleeps this many times as long as each rewrite took, leaving
    /// the cores to ingestion [default: 1.0].
    #[arg(long, env = "METERDB_COMPACTION_PACE")]
    compaction_pace: Option<f64>,
    /// What deleting a user or a tenant does to the rollups that counted its events: keep
    /// (billing history) or subtract [default: keep].
    #[arg(long, env = "METERDB_ROLLUPS_ON_DELETE")]
    rollups_on_delete: Option<String>,
}

impl ServeArgs {
    fn layer(self) -> (Option<PathBuf>, Layer) {
        let layer = Layer {
            data_dir: self.data_dir,
            http_addr: self.http_addr,
            sync: self.sync,
            shards: self.shards,
            max_buffer_bytes: self.max_buffer_bytes,
            max_buffer_age_secs: self.max_buffer_age_secs,
            max_body_bytes: self.max_body_bytes,
            max_in_flight_write_bytes: self.max_in_flight_write_bytes,
            request_timeout_secs: self.request_timeout_secs,
            shutdown_grace_secs: self.shutdown_grace_secs,
            auth_token: self.auth_token,
            log: self.log,
            header_timeout_secs: self.header_timeout_secs,
            max_connections: self.max_connections,
            query_timeout_secs: self.query_timeout_secs,
            query_max_rows: self.query_max_rows,
            query_max_cells: self.query_max_cells,
            query_max_scan_rows: self.query_max_scan_rows,
            compaction_interval_secs: self.compaction_interval_secs,
            compaction_pace: self.compaction_pace,
            rollups_on_delete: self.rollups_on_delete,
        };
        (self.config, layer)
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    keep_freed_memory_for_reuse();
    let (config_file, layer) = args.layer();
    let layer = match config_file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            layer.over(Layer::from_toml(&text, &path)?)
        }
        None => layer,
    };
    let mut settings = Settings::resolve(layer)?;
    apply_ingest_window(&mut settings.engine, &UsageSettings::from_env()?);
    super::init_logging(&settings.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("meterdb-http")
        .build()?;
    runtime.block_on(serve_until_signal(settings))?;
    Ok(ExitCode::SUCCESS)
}

/// Lets glibc's allocator keep the memory a query frees for the next one, unless the operator
/// set its thresholds (`GLIBC_TUNABLES`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`).
/// By default a block over 128 KiB (a threshold glibc raises up to 32 MiB as such blocks are
/// freed) is a mapping of its own, unmapped when freed, and the top of an arena is handed
/// back once 256 KiB of it is free: each query faulted in and zeroed its columns' pages
/// anew, a sixth of the CPU of a percentile over 1.4M rows. Blocks of up to 64 MiB now come
/// from the arenas, which keep up to 128 MiB free at their top; each flush still hands the
/// free memory back (`malloc_trim`), so the peak of a load stays where it was
/// (PERFORMANCE.md, seventh round).
fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let set_by_operator = tunables.contains("malloc.mmap_threshold")
            || tunables.contains("malloc.trim_threshold")
            || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
            || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some();
        if !set_by_operator {
            // SAFETY: `mallopt` takes no pointer; it runs before the server starts a thread.
            #[allow(unsafe_code)]
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
            }
        }
    }
}

async fn serve_until_signal(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| anyhow::anyhow!("data directory {}: {e}", settings.data_dir.display()))?;
    let opened = std::time::Instant::now();
    let dir = settings.data_dir.clone();
    let options = settings.engine.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::open(&dir, options)).await??;
    let damage: usize = engine
        .recovery_report()
        .iter()
        .map(|r| r.corruptions.len())
        .sum();
    tracing::info!(
        dir = %settings.data_dir.display(),
        shards = engine.shard_count(),
        damage,
        took_ms = opened.elapsed().as_millis() as u64,
        raw_retention_days = settings.engine.raw_retention.as_secs() / 86_400,
        rollup_retention_days = engine.retention().defaults().metrics.as_secs() / 86_400,
        retention_overrides = engine.retention().overrides().len(),
        max_future_secs = settings.engine.max_future.as_secs(),
        "data directory open"
    );
    if engine.retention().defaults().metrics > settings.engine.rollup_retention {
        // Not a warning: keeping raw events longer (imports of old data) is a documented use.
        tracing::info!(
            "USAGE_TRACKING_METRICS_RETENTION_DAYS is shorter than \
             USAGE_TRACKING_EVENTS_RETENTION_DAYS: rollups are kept as long as raw events"
        );
    }
    let engine = Arc::new(engine);
    let compactor = match settings.compaction_interval {
        Some(every) => Some(meterdb::engine::Compactor::spawn(&engine, every)?),
        None => None,
    };
    // The spec's USAGE_TRACKING_* and LIMITS_* variables; the tracker loads the limits file.
    // Before listening: a damaged LIMITS file stops the start, and a server that announced its
    // address must be able to answer.
    let usage_settings = meterdb::usage::UsageSettings::from_env()?;
    let tracker =
        meterdb::tracker::UsageTracker::new(engine.clone(), usage_settings, Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("listen on {}: {e}", settings.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, sync = %settings.engine.sync, "MeterDB listening");
    let grace = settings.server.shutdown_grace;
    let state = Arc::new(AppState::new(
        engine.clone(),
        settings.server,
        Arc::new(SystemClock),
        Arc::new(tracker),
    ));
    serve(listener, state, shutdown_signal(), grace).await?;
    // A pass in progress finishes its rewrite first (a kill instead is safe too).
    tokio::task::spawn_blocking(move || drop(compactor)).await?;
    tracing::info!("flushing buffers to segments");
    let closed = tokio::task::spawn_blocking(move || match Arc::try_unwrap(engine) {
        Ok(engine) => engine.close(),
        // A request still holds the engine after the grace period: make the data durable
        // in segments anyway; the WAL already holds every acknowledged write.
        Err(shared) => shared.flush(),
    })
    .await?;
    closed?;
    tracing::info!("stopped");
    Ok(())
}
