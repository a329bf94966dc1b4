//! `meterdb import FILE|-`: line protocol into a data directory, or to a running server.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use meterdb::clock::{Clock, SystemClock};
use meterdb::ingest::lineproto::{LineOptions, Precision, append_numbered};
use meterdb::server::config::apply_ingest_window;
use meterdb::usage::UsageSettings;
use meterdb::{Engine, Options, WriteBatch};

#[derive(Args)]
pub struct ImportArgs {
    /// Line protocol file, or `-` for standard input.
    file: PathBuf,
    /// Write to this data directory (the server must not be running on it).
    #[arg(long, env = "METERDB_DATA_DIR", conflicts_with = "url")]
    data_dir: Option<PathBuf>,
    /// Send to a running server instead, e.g. http://127.0.0.1:8086.
    #[arg(long)]
    url: Option<String>,
    /// Timestamp unit of the file: ns, us, ms or s.
    #[arg(long, default_value = "ns")]
    precision: String,
    /// Tenant of lines without a `tenant` tag.
    #[arg(long)]
    tenant: Option<String>,
    /// Lines per write.
    #[arg(long, default_value_t = 10_000)]
    batch_lines: usize,
    /// Token for a server that requires one.
    #[arg(long, env = "METERDB_AUTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Where the batches go.
enum Sink {
    Engine(Box<Engine>),
    Server {
        agent: ureq::Agent,
        url: String,
        token: Option<String>,
    },
}

#[derive(Default)]
struct Totals {
    lines: usize,
    imported: usize,
    rejected: usize,
    shown: usize,
}

/// At most this many rejected lines are printed; the rest are only counted.
const SHOW_REJECTED: usize = 20;

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let precision = Precision::parse(&args.precision).ok_or_else(|| {
        anyhow::anyhow!(
            "invalid precision {:?}: use ns, us, ms or s",
            args.precision
        )
    })?;
    let (input, size): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f =
            File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let mut sink = match &args.url {
        Some(url) => Sink::Server {
            agent: ureq::Agent::new_with_defaults(),
            url: format!(
                "{}/write?precision={}{}",
                url.trim_end_matches('/'),
                args.precision,
                args.tenant
                    .as_deref()
                    .map(|t| format!("&tenant={t}"))
                    .unwrap_or_default()
            ),
            token: args.token.clone(),
        },
        None => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./data"));
            std::fs::create_dir_all(&dir)?;
            // The same window as `meterdb serve` on this directory would apply.
            let mut options = Options::default();
            apply_ingest_window(&mut options, &UsageSettings::from_env()?);
            Sink::Engine(Box::new(Engine::open(&dir, options)?))
        }
    };
    let bar = match size {
        Some(n) => ProgressBar::new(n).with_style(ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )?),
        None => ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
            "{spinner} {bytes} {bytes_per_sec} {msg}",
        )?),
    };
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut chunk = Vec::with_capacity(4 << 20);
    let mut first_line = 1;
    loop {
        chunk.clear();
        let mut lines = 0;
        while lines < args.batch_lines {
            let n = reader.read_until(b'\n', &mut chunk)?;
            if n == 0 {
                break;
            }
            lines += 1;
        }
        if lines == 0 {
            break;
        }
        bar.inc(chunk.len() as u64);
        send(
            &mut sink,
            &chunk,
            first_line,
            precision,
            args.tenant.as_deref(),
            &mut totals,
            &bar,
        )?;
        first_line += lines;
        totals.lines += lines;
        bar.set_message(format!("{} events", totals.imported));
    }
    bar.finish_and_clear();
    if let Sink::Engine(engine) = sink {
        engine.close()?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} events from {} lines in {secs:.1} s ({:.0} events/s); {} lines rejected",
        totals.imported,
        totals.lines,
        totals.imported as f64 / secs.max(1e-9),
        totals.rejected
    );
    Ok(if totals.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn send(
    sink: &mut Sink,
    chunk: &[u8],
    first_line: usize,
    precision: Precision,
    tenant: Option<&str>,
    totals: &mut Totals,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut report = |line: usize, error: &str| {
        totals.rejected += 1;
        if totals.shown < SHOW_REJECTED {
            totals.shown += 1;
            bar.suspend(|| eprintln!("line {line}: {error}"));
        }
    };
    match sink {
        Sink::Engine(engine) => {
            let opts = LineOptions {
                precision,
                default_tenant: tenant,
                now: SystemClock.now(),
            };
            let mut batch = WriteBatch::new();
            let mut numbers = Vec::new();
            for e in append_numbered(chunk, &opts, &mut batch, &mut numbers) {
                report(first_line + e.line - 1, &format!("{}: {}", e.kind, e.quote));
            }
            let receipt = engine.write(batch)?;
            for (i, why) in &receipt.rejected {
                let line = numbers.get(*i).map_or(0, |n| first_line + n - 1);
                report(line, &why.to_string());
            }
            totals.imported += receipt.written;
        }
        Sink::Server { agent, url, token } => {
            let mut req = agent.post(url.as_str());
            if let Some(t) = token {
                req = req.header("Authorization", &format!("Token {t}"));
            }
            let resp = req
                .config()
                .http_status_as_error(false)
                .build()
                .send(chunk)
                .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp.into_body().read_to_string().unwrap_or_default();
            match status {
                204 => {
                    totals.imported += chunk.split(|&c| c == b'\n').filter(|l| is_data(l)).count()
                }
                400 => {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    totals.imported += v["accepted"].as_u64().unwrap_or(0) as usize;
                    for r in v["rejected"].as_array().into_iter().flatten() {
                        let line = r["line"].as_u64().unwrap_or(0) as usize;
                        report(
                            first_line + line.saturating_sub(1),
                            r["error"].as_str().unwrap_or("?"),
                        );
                    }
                    // Lines refused beyond the listed ones are counted, not shown.
                    let listed = v["rejected"].as_array().map_or(0, Vec::len);
                    let total = v["rejected_total"].as_u64().map_or(listed, |n| n as usize);
                    totals.rejected += total.saturating_sub(listed);
                }
                _ => anyhow::bail!("POST {url}: HTTP {status}: {body}"),
            }
        }
    }
    Ok(())
}

/// Whether a line carries data (not blank, not a comment): what the server counts.
fn is_data(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    !t.is_empty() && !t.starts_with(b"#")
}
