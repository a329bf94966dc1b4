//! The release `meterdb serve` (or `$METERDB_BIN`) on a fresh data directory and a free
//! loopback port, for the benches that measure it over HTTP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with `args` after the data directory and address, and returns once it
    /// answers `/ping`.
    pub fn start(args: &[&str]) -> Server {
        let bin =
            std::env::var("METERDB_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_meterdb").into());
        let dir = tempfile::tempdir().unwrap();
        // A free port: bind, read it, release it for the server.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--http-addr", &format!("127.0.0.1:{port}"), "--log", "warn"])
            .args(args)
            // The benches' events may be dated before the default 30-day retention.
            .env("USAGE_TRACKING_EVENTS_RETENTION_DAYS", "36500")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let agent = ureq::Agent::new_with_defaults();
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(format!("{}/ping", server.url)).call().is_err() {
            assert!(Instant::now() < deadline, "server did not answer /ping");
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("server {bin} (pid {}) on {}", server.pid(), server.url);
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
