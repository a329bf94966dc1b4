//! `meterdb compact`: one compaction pass by hand, with a progress bar — merging small
//! segments, dropping what is past retention and purging deleted users and tenants.

use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use meterdb::server::config::apply_ingest_window;
use meterdb::usage::UsageSettings;
use meterdb::{Engine, Options};

pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let mut options = Options::default();
    apply_ingest_window(&mut options, &UsageSettings::from_env()?);
    let started = Instant::now();
    let engine = Engine::open(dir, options)?;
    let before = totals(&engine);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rewrites, {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = engine.compact_with(0.0, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} rows read", p.rows_read));
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    let after = totals(&engine);
    engine.close()?;
    println!(
        "{} rewrites: {} segments replaced by {}, {} rows read, {} written; {} deletions purged; {} rollup files rewritten",
        report.rewrites,
        report.segments_replaced,
        report.segments_written,
        report.rows_read,
        report.rows_written,
        report.purged,
        report.rollup_files_rewritten,
    );
    println!(
        "segments {} -> {}, segment bytes {} -> {}, in {:.1} s",
        before.0,
        after.0,
        before.1,
        after.1,
        started.elapsed().as_secs_f64()
    );
    if report.stale > 0 {
        println!("a deletion arrived meanwhile; run it again to finish");
    }
    Ok(ExitCode::SUCCESS)
}

fn totals(engine: &Engine) -> (usize, u64) {
    let stats = engine.stats();
    (
        stats.iter().map(|s| s.segments).sum(),
        stats.iter().map(|s| s.segment_bytes).sum(),
    )
}
