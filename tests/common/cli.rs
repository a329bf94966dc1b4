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
    /// Its log so far.
    pub log: ServerLog,
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
    let mut child = serve_command(wrapper, args, envs).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = ServerLog::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[serve] {line}");
            {
                let mut text = kept.0.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the server announces its address; its log:\n{}", log.text()));
    Served {
        child,
        url: format!("http://{addr}"),
        log,
    }
}

/// `meterdb serve ARGS` (through `wrapper`, see [`serve_wrapped`]) with the tests'
/// environment: none of the caller's `METERDB_*` settings that would change where it listens,
/// what it stores or how it logs, a long retention (see [`LONG_RETENTION`]), then `envs`; its
/// log on a pipe.
fn serve_command(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Command {
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
        .env_remove("METERDB_LOG")
        .env(LONG_RETENTION.0, LONG_RETENTION.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
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
        sigterm(self.child.id());
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

/// [`serve`], and the server's log.
pub fn serve_logged(dir: &Path) -> (Served, ServerLog) {
    let served = serve(dir);
    let log = served.log.clone();
    (served, log)
}

/// Runs `meterdb serve` on `dir`, expecting it to refuse to start: returns its exit status and
/// its stderr. Fails the test if it is still running after 30 s.
pub fn serve_refused(dir: &Path) -> (ExitStatus, String) {
    let args = [
        "--data-dir",
        dir.to_str().unwrap(),
        "--http-addr",
        "127.0.0.1:0",
    ];
    let mut child = serve_command(&[], &args, &[]).spawn().unwrap();
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

/// A `meterdb serve` child that may be killed at any moment, start-up included: unlike
/// [`serve_with`], [`spawn`] returns at once, and the child's address and log lines arrive as
/// it prints them.
pub struct Spawned {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// When the process was started.
    pub started: Instant,
}

/// Starts `meterdb serve ARGS` with extra environment (by default [`LONG_RETENTION`]) without
/// waiting for it to listen. Log lines are kept (see [`Spawned::log`]), and echoed to stderr
/// when they report a problem (`WARN`, `ERROR`) or when `echo_all` is set.
pub fn spawn(args: &[&str], envs: &[(&str, &str)], echo_all: bool) -> Spawned {
    let started = Instant::now();
    let mut child = serve_command(&[], args, envs).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    let pid = child.id();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo_all || line.contains("WARN") || line.contains("ERROR") {
                eprintln!("[serve {pid}] {line}");
            }
            sink.lock().unwrap().push(line);
        }
    });
    Spawned {
        child,
        log,
        reader: Some(reader),
        started,
    }
}

impl Spawned {
    /// `http://ADDR` once the server has announced that it listens (its data directory is
    /// then open and recovered).
    pub fn url(&self) -> Option<String> {
        let log = self.log.lock().unwrap();
        log.iter().find_map(|line| {
            let rest = line.split(" addr=").nth(1)?;
            Some(format!("http://{}", rest.split_whitespace().next()?))
        })
    }

    /// Waits up to `timeout` for [`Spawned::url`].
    pub fn wait_url(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(url) = self.url() {
                return Some(url);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The log lines printed so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Whether a log line printed so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Sends SIGTERM (a graceful stop: finish requests, flush) without waiting.
    pub fn sigterm(&self) {
        sigterm(self.child.id());
    }

    /// Whether the process has exited (without reaping it twice).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, then waits (at most 30 s) for the exit; returns the status and the log.
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        self.sigterm();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.exited().is_none() {
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill()
    }

    /// SIGKILL (unless it has exited already) and waits for the exit; returns the status, and
    /// the log lines printed before the exit.
    pub fn kill(mut self) -> (ExitStatus, Vec<String>) {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        // The reader sees end-of-file once the process is gone: then every line is stored.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let log = self.log();
        (status, log)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to process `pid`.
fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}: {status}");
}
