//! `meterdb serve` as a child process on an ephemeral loopback port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_meterdb");

/// The longest raw-event retention `meterdb` accepts, in days (100 years): the tests' events
/// are dated (2026) and must stay writable whatever day the tests run.
pub const LONG_RETENTION: (&str, &str) = ("USAGE_TRACKING_EVENTS_RETENTION_DAYS", "36500");

/// A `meterdb serve` child and the address it announced.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// `meterdb serve` on `dir`, any free port.
pub fn serve(dir: &Path) -> Served {
    serve_with(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
        ],
        &[],
    )
}

/// `meterdb serve ARGS` with extra environment (by default [`LONG_RETENTION`]); returns once
/// it listens.
pub fn serve_with(args: &[&str], envs: &[(&str, &str)]) -> Served {
    serve_wrapped(&[], args, envs)
}

/// [`serve_with`], run through `wrapper` (a program and its arguments that end by executing
/// the command after them, such as `nsenter -t PID -m --`).
pub fn serve_wrapped(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(BIN);
            cmd
        }
        None => Command::new(BIN),
    };
    cmd.arg("serve")
        .args(args)
        .env_remove("METERDB_HTTP_ADDR")
        .env_remove("METERDB_DATA_DIR")
        .env_remove("METERDB_MAX_FUTURE")
        .env(LONG_RETENTION.0, LONG_RETENTION.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[serve] {line}");
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server announces its address");
    Served {
        child,
        url: format!("http://{addr}"),
    }
}

impl Served {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a `meterdb serve` child has written to stderr so far (its log), shared with the
/// thread that reads it.
#[derive(Clone, Default)]
pub struct ServerLog(std::sync::Arc<std::sync::Mutex<String>>);

impl ServerLog {
    /// The log so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// [`serve`], also keeping the server's log (still echoed to the test's stderr).
pub fn serve_logged(dir: &Path) -> (Served, ServerLog) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(["--data-dir", dir.to_str().unwrap()])
        .args(["--http-addr", "127.0.0.1:0"])
        .env_remove("METERDB_HTTP_ADDR")
        .env_remove("METERDB_DATA_DIR")
        .env_remove("METERDB_MAX_FUTURE")
        .env(LONG_RETENTION.0, LONG_RETENTION.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = ServerLog::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[serve] {line}");
            kept.0.lock().unwrap().push_str(&line);
            kept.0.lock().unwrap().push('\n');
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the server announces its address; its log:\n{}", log.text()));
    let served = Served {
        child,
        url: format!("http://{addr}"),
    };
    (served, log)
}

/// Runs `meterdb serve` on `dir`, expecting it to refuse to start: returns its exit status and
/// its stderr. Fails the test if it is still running after 30 s.
pub fn serve_refused(dir: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--data-dir", dir.to_str().unwrap()])
        .args(["--http-addr", "127.0.0.1:0"])
        .env_remove("METERDB_HTTP_ADDR")
        .env_remove("METERDB_DATA_DIR")
        .env(LONG_RETENTION.0, LONG_RETENTION.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text).unwrap();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server started instead of refusing: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}
