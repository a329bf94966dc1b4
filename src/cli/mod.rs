//! Subcommands of the `meterdb` binary, one module each.

mod check;
mod compact;
mod import;
mod query;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meterdb",
    version,
    about = "MeterDB: exact usage tracking for SaaS platforms",
    long_about = "MeterDB stores every API call, storage operation and database query of a SaaS \
                  platform's tenants, and answers InfluxQL queries and usage questions over them. \
                  Start a server with `meterdb serve`."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (InfluxDB-compatible writes and queries, JSON events, /metrics).
    Serve(Box<serve::ServeArgs>),
    /// Load line protocol from a file (or `-` for standard input) into a data directory or a
    /// running server, with a progress bar and a final summary.
    Import(import::ImportArgs),
    /// Run an InfluxQL query against a data directory or a running server.
    Query(query::QueryArgs),
    /// Open a data directory (recovering it as the server would: replaying the WAL and
    /// cutting a torn WAL tail), verify the checksum of every block of every live segment,
    /// and report all damage found. Exits with status 1 when there is any.
    Check {
        /// The data directory.
        #[arg(default_value = "./data", env = "METERDB_DATA_DIR")]
        dir: PathBuf,
    },
    /// Print each shard's storage figures.
    Stats {
        /// The data directory.
        #[arg(default_value = "./data", env = "METERDB_DATA_DIR")]
        dir: PathBuf,
    },
    /// Run one compaction pass now, with a progress bar: merge small segments, drop raw
    /// events and rollups past retention (USAGE_TRACKING_EVENTS_RETENTION_DAYS and
    /// USAGE_TRACKING_METRICS_RETENTION_DAYS), and purge deleted users and tenants from the
    /// files. The server must not have the directory open.
    Compact {
        /// The data directory.
        #[arg(default_value = "./data", env = "METERDB_DATA_DIR")]
        dir: PathBuf,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Import(args) => {
            init_logging("warn")?;
            import::run(args)
        }
        Command::Query(args) => {
            init_logging("warn")?;
            query::run(args)
        }
        Command::Check { dir } => {
            init_logging("info")?;
            check::check(&dir)
        }
        Command::Stats { dir } => {
            init_logging("warn")?;
            check::stats(&dir)
        }
        Command::Compact { dir } => {
            init_logging("warn")?;
            compact::run(&dir)
        }
    }
}

/// Logs to standard error, filtered by `filter` (`info`, `meterdb=debug,warn`, ...).
fn init_logging(filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let targets = tracing_subscriber::filter::Targets::from_str(filter)
        .map_err(|e| anyhow::anyhow!("log filter {filter:?}: {e}"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .with(targets)
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging: {e}"))
}
