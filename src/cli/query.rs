//! `meterdb query 'InfluxQL'`: against a data directory or a running server; a table or the
//! `/query` JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use meterdb::clock::{Clock, SystemClock};
use meterdb::influxql::{self, QueryOptions, QueryResponse};
use meterdb::ingest::lineproto::Precision;
use meterdb::{Engine, Options};
use serde_json::Value;

#[derive(Args)]
pub struct QueryArgs {
    /// The InfluxQL query (several statements separated by `;`).
    query: String,
    /// Query this data directory (the server must not be running on it).
    #[arg(long, env = "METERDB_DATA_DIR", conflicts_with = "url")]
    data_dir: Option<PathBuf>,
    /// Query a running server instead, e.g. http://127.0.0.1:8086.
    #[arg(long)]
    url: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Times as epoch integers in this unit (ns, us, ms, s) instead of RFC 3339.
    #[arg(long)]
    epoch: Option<String>,
    /// Token for a server that requires one.
    #[arg(long, env = "METERDB_AUTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Aligned columns, one block per series.
    Table,
    /// The `/query` JSON answer.
    Json,
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let epoch = match &args.epoch {
        None => None,
        Some(e) => Some(
            Precision::parse(e)
                .ok_or_else(|| anyhow::anyhow!("invalid epoch {e:?}: use ns, us, ms or s"))?,
        ),
    };
    let json = match &args.url {
        Some(url) => remote(url, &args)?,
        None => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./data"));
            if !dir.is_dir() {
                anyhow::bail!("{} is not a data directory", dir.display());
            }
            let engine = Engine::open(&dir, Options::default())?;
            let response = match influxql::parse_query(&args.query) {
                Ok(statements) => {
                    let options = QueryOptions {
                        now: SystemClock.now().0,
                        ..QueryOptions::default()
                    };
                    influxql::execute_all(&engine, &statements, &options)
                }
                Err(e) => QueryResponse::error(format!("error parsing query: {e}")),
            };
            engine.close()?;
            response.to_json(epoch)
        }
    };
    let v: Value = serde_json::from_str(&json)?;
    match args.format {
        Format::Json => println!("{json}"),
        Format::Table => print!("{}", render_tables(&v)),
    }
    let failed = v.get("error").is_some()
        || v["results"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r.get("error").is_some()));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn remote(url: &str, args: &QueryArgs) -> anyhow::Result<String> {
    let mut req = ureq::Agent::new_with_defaults()
        .post(format!("{}/query", url.trim_end_matches('/')))
        .config()
        .http_status_as_error(false)
        .build();
    if let Some(t) = &args.token {
        req = req.header("Authorization", &format!("Token {t}"));
    }
    let mut form = vec![("q", args.query.as_str())];
    if let Some(e) = &args.epoch {
        form.push(("epoch", e.as_str()));
    }
    let resp = req
        .send_form(form)
        .map_err(|e| anyhow::anyhow!("POST {url}/query: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().read_to_string()?;
    if status != 200 && status != 400 {
        anyhow::bail!("HTTP {status}: {body}");
    }
    Ok(body)
}

/// One aligned table per series, InfluxDB CLI style.
fn render_tables(v: &Value) -> String {
    let mut out = String::new();
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        out.push_str(&format!("ERR: {e}\n"));
        return out;
    }
    for r in v["results"].as_array().into_iter().flatten() {
        if let Some(e) = r.get("error").and_then(Value::as_str) {
            out.push_str(&format!("ERR: {e}\n"));
        }
        for s in r["series"].as_array().into_iter().flatten() {
            out.push_str(&format!("name: {}\n", s["name"].as_str().unwrap_or("")));
            if let Some(tags) = s.get("tags").and_then(Value::as_object) {
                let t: Vec<String> = tags
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                out.push_str(&format!("tags: {}\n", t.join(", ")));
            }
            let header: Vec<String> = s["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap_or("").to_owned())
                .collect();
            let rows: Vec<Vec<String>> = s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| {
                    row.as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| match c {
                            Value::Null => String::new(),
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    rows.iter()
                        .filter_map(|r| r.get(i))
                        .map(|c| c.chars().count())
                        .chain([header.get(i).map_or(0, |h| h.chars().count())])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| -> String {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                format!("{}\n", padded.join(" ").trim_end())
            };
            out.push_str(&line(&header));
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&line(&rule));
            for r in &rows {
                out.push_str(&line(r));
            }
            out.push('\n');
        }
    }
    out
}
