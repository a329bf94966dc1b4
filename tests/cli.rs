//! The `meterdb` binary: `serve` with its settings layers and graceful shutdown, `import`,
//! `query`, `--help`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use common::cli::{BIN, LONG_RETENTION, serve_with};
use meterdb::{Engine, Options, ScanRequest};

const LINES: &str = "api_calls,tenant=acme,endpoint=/a response_time_ms=12.5,event_id=\"c1\" 1793491200000000000\n\
api_calls,tenant=acme,endpoint=/b response_time_ms=40 1793491260000000000\n\
api_calls,tenant=globex,endpoint=/a response_time_ms=7.25 1793491320000000000\n";

fn post(url: &str, body: &str) -> u16 {
    ureq::post(url)
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .unwrap()
        .status()
        .as_u16()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("METERDB_DATA_DIR")
        .env_remove("METERDB_MAX_FUTURE")
        .env(LONG_RETENTION.0, LONG_RETENTION.1)
        .output()
        .unwrap()
}

fn stored(dir: &Path) -> (u64, usize) {
    let engine = Engine::open(dir, Options::default()).unwrap();
    let n = engine.count(&ScanRequest::default()).unwrap();
    let segments = engine.stats().iter().map(|s| s.segments).sum();
    engine.close().unwrap();
    (n, segments)
}

#[test]
fn sigterm_finishes_flushes_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = serve_with(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(post(&format!("{}/write", s.url), LINES), 204);
    let status = s.terminate();
    assert!(status.success(), "exit status {status}");
    let (n, segments) = stored(&data);
    assert_eq!(n, 3);
    assert!(segments > 0, "shutdown flushes the buffers to segments");
}

#[test]
fn flags_override_environment_override_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_dir = dir.path().join("from-file");
    let env_dir = dir.path().join("from-env");
    let config = dir.path().join("meterdb.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nhttp_addr = \"127.0.0.1:0\"\nmax_body_bytes = 100\n",
            file_dir.to_str().unwrap()
        ),
    )
    .unwrap();
    // The file sets the data dir and a tiny body limit; the environment moves the data dir.
    let s = serve_with(
        &["--config", config.to_str().unwrap()],
        &[("METERDB_DATA_DIR", env_dir.to_str().unwrap())],
    );
    assert_eq!(
        post(&format!("{}/write", s.url), LINES),
        413,
        "limit from the file"
    );
    assert!(s.terminate().success());
    assert!(
        env_dir.join("META").exists(),
        "the environment beats the file"
    );
    assert!(!file_dir.exists());
    // A flag beats both.
    let flag_dir = dir.path().join("from-flag");
    let s = serve_with(
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            flag_dir.to_str().unwrap(),
            "--max-body-bytes",
            "100000",
        ],
        &[("METERDB_DATA_DIR", env_dir.to_str().unwrap())],
    );
    assert_eq!(post(&format!("{}/write", s.url), LINES), 204);
    assert!(s.terminate().success());
    assert_eq!(stored(&flag_dir).0, 3);

    std::fs::write(&config, "colour = \"blue\"\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));
}

#[test]
fn import_into_a_directory_and_into_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("usage.lp");
    let mut f = std::fs::File::create(&file).unwrap();
    for i in 0..2500 {
        writeln!(
            f,
            "api_calls,tenant=t{},endpoint=/e{} response_time_ms={}.5 {}",
            i % 7,
            i % 13,
            i % 100,
            1_793_491_200_000_000_000i64 + i * 1_000_000
        )
        .unwrap();
    }
    writeln!(f, "broken line").unwrap();
    drop(f);

    let data = dir.path().join("data");
    let out = run(&[
        "import",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--batch-lines",
        "1000",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected line makes the exit status 1"
    );
    assert!(
        stdout.contains("imported 2500 events from 2501 lines"),
        "{stdout}"
    );
    assert!(stdout.contains("1 lines rejected"), "{stdout}");
    assert!(stderr.contains("line 2501"), "{stderr}");
    assert_eq!(stored(&data).0, 2500);

    let served = dir.path().join("served");
    let s = serve_with(
        &[
            "--data-dir",
            served.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
        ],
        &[],
    );
    let out = run(&[
        "import",
        file.to_str().unwrap(),
        "--url",
        &s.url,
        "--batch-lines",
        "700",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("imported 2500 events from 2501 lines"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2501"));
    assert!(s.terminate().success());
    assert_eq!(stored(&served).0, 2500);
}

#[test]
fn import_refuses_lines_older_than_the_retention_unless_the_setting_lets_them_in() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.lp");
    // 2000-01-01T00:00:00Z: older than the default 30 days, inside 36500 until 2099.
    std::fs::write(
        &file,
        "api_calls,tenant=acme,endpoint=/a response_time_ms=1 946684800000000000\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let import = |retention: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["import", file.to_str().unwrap(), "--data-dir"])
            .arg(&data)
            .env_remove("METERDB_DATA_DIR")
            .env_remove("METERDB_MAX_FUTURE")
            .env_remove(LONG_RETENTION.0);
        if let Some(days) = retention {
            cmd.env(LONG_RETENTION.0, days);
        }
        cmd.output().unwrap()
    };
    let out = import(None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused line fails the import"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "line 1: timestamp older than the raw-event retention (30 days): 2000-01-01T00:00:00Z"
        ),
        "{stderr}"
    );
    assert_eq!(stored(&data).0, 0);
    let out = import(Some("36500"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&data).0, 1);
    let out = import(Some("forever"));
    assert_eq!(out.status.code(), Some(2), "an invalid setting is an error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("USAGE_TRACKING_EVENTS_RETENTION_DAYS"),
        "a bad value is named"
    );
}

#[test]
fn serve_takes_its_time_window_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = serve_with(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
        ],
        &[(LONG_RETENTION.0, "2"), ("METERDB_MAX_FUTURE", "1h")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let day = 86_400_000_000_000i64;
    let body = format!(
        "api_calls,tenant=acme response_time_ms=1 {}\n\
         api_calls,tenant=acme response_time_ms=2 {}\n\
         api_calls,tenant=acme response_time_ms=3 {}\n",
        now - 3 * day,
        now - day,
        now + 3 * 3_600_000_000_000,
    );
    let r = ureq::post(format!("{}/write", s.url))
        .config()
        .http_status_as_error(false)
        .build()
        .send(&body)
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let answer = r.into_body().read_to_string().unwrap();
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["accepted"], 1, "{answer}");
    assert_eq!(v["rejected"][0]["line"], 1, "{answer}");
    assert!(
        v["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("raw-event retention (2 days)"),
        "{answer}"
    );
    assert_eq!(v["rejected"][1]["line"], 3, "{answer}");
    assert!(
        v["rejected"][1]["error"]
            .as_str()
            .unwrap()
            .contains("more than 1h ahead of the server clock"),
        "{answer}"
    );
    assert!(s.terminate().success());
    assert_eq!(stored(&data).0, 1);
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["import", "--help"],
        vec!["query", "--help"],
        vec!["check", "--help"],
        vec!["stats", "--help"],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(!out.stdout.is_empty());
    }
    let out = run(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--data-dir", "--http-addr", "--config", "METERDB_HTTP_ADDR"] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
}
