//! A MeterDB server on an ephemeral loopback port, in this process, and a small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meterdb::server::{AppState, ServerConfig, serve};
use meterdb::tracker::UsageTracker;
use meterdb::usage::UsageSettings;
use meterdb::{Engine, Options};

/// A running server; stops (and closes the engine) when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The engine behind it, for checks that bypass HTTP.
    pub engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server with default settings over a fresh data directory.
    pub fn start() -> TestServer {
        TestServer::with_config(ServerConfig::default())
    }

    /// A server with `config`.
    pub fn with_config(config: ServerConfig) -> TestServer {
        TestServer::with_usage_settings(config, UsageSettings::default())
    }

    /// A server with `config` whose usage tracker has `usage` settings (grace period,
    /// enforcement).
    pub fn with_usage_settings(config: ServerConfig, usage: UsageSettings) -> TestServer {
        TestServer::with_options_and_usage(config, super::test_options(), usage)
    }

    /// A server with `config` over an engine with `options`; the server and its usage tracker
    /// read the engine's clock (for events without a timestamp, and for limit periods).
    pub fn with_options(config: ServerConfig, options: Options) -> TestServer {
        TestServer::with_options_and_usage(config, options, UsageSettings::default())
    }

    /// A server with `config`, engine `options` and usage-tracker settings `usage`.
    pub fn with_options_and_usage(
        config: ServerConfig,
        options: Options,
        usage: UsageSettings,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let clock = options.clock.clone();
        let engine = Arc::new(Engine::open(dir.path(), options).unwrap());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let tracker = UsageTracker::new(engine.clone(), usage, clock.clone()).unwrap();
        let state = Arc::new(AppState::new(
            engine.clone(),
            config,
            clock,
            Arc::new(tracker),
        ));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                serve(listener, state, shutdown, Duration::from_secs(5))
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            url: format!("http://{addr}"),
            engine,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// A request to `path` (with its query string).
    pub fn request(&self, method: &str, path: &str) -> Request {
        Request {
            method: method.to_owned(),
            url: format!("{}{path}", self.url),
            headers: Vec::new(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request being built.
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

/// What came back.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Request {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends with `body`.
    pub fn send(self, body: impl AsRef<[u8]>) -> Response {
        let agent = ureq::Agent::new_with_defaults();
        let uri: ureq::http::Uri = self.url.parse().unwrap();
        let mut builder = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(uri);
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let req = builder.body(body.as_ref().to_vec()).unwrap();
        let resp = agent
            .configure_request(req)
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .build();
        let resp = agent.run(resp).unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = resp
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        Response {
            status,
            headers,
            body,
        }
    }

    /// Sends without a body.
    pub fn call(self) -> Response {
        self.send([])
    }
}

/// A request to `path` of the server at `base` (`http://host:port`), such as a
/// `meterdb serve` child of [`super::cli::serve_with`].
pub fn request_at(base: &str, method: &str, path: &str) -> Request {
    Request {
        method: method.to_owned(),
        url: format!("{base}{path}"),
        headers: Vec::new(),
    }
}
