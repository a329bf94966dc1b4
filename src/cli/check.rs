//! `meterdb check` and `meterdb stats`.

use std::path::Path;
use std::process::ExitCode;

use meterdb::tracker::LimitStore;
use meterdb::{Engine, Error, Options};

/// Verifies every checksum; exit status 1 when anything is damaged.
pub fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let engine = match Engine::open(dir, Options::default()) {
        Ok(engine) => engine,
        // Damage the engine cannot open around (META, METERS, RETENTION) is what `check` is
        // for: name it like any other damage, not as a failure of the command.
        Err(Error::Corruption(c)) => {
            println!("damaged: {c}");
            println!("the data directory cannot be opened until this file is repaired");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let segments: usize = engine.stats().iter().map(|s| s.segments).sum();
    let mut damage = engine.check();
    // The limits are the usage tracker's, which `serve` refuses to start without.
    match LimitStore::open(engine.file_system(), dir) {
        Ok(_) => {}
        Err(Error::Corruption(c)) => damage.push(c),
        Err(e) => return Err(e.into()),
    }
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

/// Prints each shard's figures.
pub fn stats(dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(dir, Options::default())?;
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
