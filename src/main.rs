//! The `meterdb` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meterdb::{Engine, Options};

#[derive(Parser)]
#[command(
    name = "meterdb",
    version,
    about = "MeterDB: exact usage tracking for SaaS platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { dir } => {
            if !dir.is_dir() {
                anyhow::bail!("{} is not a directory", dir.display());
            }
            let engine = Engine::open(&dir, Options::default())?;
            let segments: usize = engine.stats().iter().map(|s| s.segments).sum();
            let damage = engine.check();
            for c in &damage {
                println!("damaged: {c}");
            }
            let truncated: usize = engine
                .recovery_report()
                .iter()
                .map(|r| r.wal_truncated.len())
                .sum();
            println!(
                "checked {} shards, {segments} segments: {} problems, {truncated} torn WAL tails cut",
                engine.shard_count(),
                damage.len()
            );
            engine.close()?;
            Ok(if damage.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Stats { dir } => {
            let engine = Engine::open(&dir, Options::default())?;
            println!("shard  segments  segment_bytes  buffered_events");
            for (i, s) in engine.stats().iter().enumerate() {
                println!(
                    "{i:>5}  {:>8}  {:>13}  {:>15}",
                    s.segments, s.segment_bytes, s.buffered_events
                );
            }
            engine.close()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
