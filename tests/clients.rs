//! Real InfluxDB client libraries (Python's `influxdb` 1.x and `influxdb-client` 2.x) write to
//! and read from a running `meterdb serve`.
//!
//! The Python interpreter is `$METERDB_PYTHON` (CI's `.ci/run` makes a virtualenv with both
//! libraries); without it this test makes that virtualenv itself under `target/`, installing
//! the libraries from PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("METERDB_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-clients");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import influxdb, influxdb_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "influxdb==5.3.2",
                "influxdb-client==1.50.0",
            ])
            .status()
            .expect("pip runs");
        assert!(
            installed.success(),
            "pip install of the client libraries failed"
        );
    }
    python
}

#[test]
fn python_influxdb_clients_write_and_read_back() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let served = common::cli::serve(dir.path());
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/influx_clients.py"))
        .arg(&served.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all client checks passed"), "{stdout}");
    assert!(served.terminate().success());
}
