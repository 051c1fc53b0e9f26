//! `sim serve-provider`: the modelled provider served over HTTP in real time (optionally
//! time-scaled), speaking the Anthropic Messages API and the OpenAI Chat Completions API, one
//! listener per deployment, with the scenario's limits, latency, errors and incidents.
//!
//! Owns the server's life ([`Server`]: bind, serve, shut down), the listener specs
//! (`NAME=ADDR`, [`parse_listen_spec`]) and, in submodules: the scaled clock ([`clock`]), a
//! deployment served ([`deployment`]: the provider model's state at virtual instants, the 529
//! rule), the one mapping from the model's plan to an answer ([`reply`]), what every protocol
//! encoding provides ([`protocol`]), the encodings ([`anthropic`], [`openai`]) and the HTTP
//! layer ([`http`]). It must not know about routing, policies or `sim observe`: any HTTP client
//! (a gateway under test, LiteLLM, an SDK) is its client. The provider model is used only
//! through [`crate::provider::DeploymentState`], as the simulator uses it.

pub mod anthropic;
pub mod clock;
pub mod deployment;
pub mod http;
pub mod openai;
pub mod protocol;
pub mod reply;

use crate::provider::Deployment;
use deployment::{ServedDeployment, ServedFleet};
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest `--time-scale`: beyond it a millisecond of wall time is minutes of provider time
/// and the scheduling jitter of the machine swamps the model.
pub const MAX_TIME_SCALE: f64 = 10_000.0;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A bad option (exit code 2 at the CLI).
    #[error("{0}")]
    Input(String),
    #[error("deployment {deployment:?}: cannot listen on {addr}: {source}")]
    Bind { deployment: String, addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the server runtime: {0}")]
    Runtime(std::io::Error),
}

impl ServeError {
    pub fn is_input_error(&self) -> bool {
        matches!(self, ServeError::Input(_))
    }
}

/// A `--deployment NAME=ADDR` the server cannot listen with; `Display` names the spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{spec:?}: {problem}")]
pub struct ListenSpecError {
    pub spec: String,
    pub problem: ListenSpecProblem,
}

/// What is wrong with a listener spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListenSpecProblem {
    #[error("expected NAME=ADDRESS:PORT, e.g. anthropic/sonnet=127.0.0.1:8080")]
    NoEquals,
    #[error("the deployment name is empty")]
    EmptyName,
    #[error("{addr:?} is not an IP address and port (e.g. 127.0.0.1:0)")]
    NotASocketAddress { addr: String },
}

/// `NAME=ADDR` (e.g. `anthropic/sonnet=127.0.0.1:8080`; port 0 picks a free port). The name
/// is everything before the last `=` (addresses hold none).
pub fn parse_listen_spec(spec: &str) -> Result<(String, SocketAddr), ListenSpecError> {
    let fail = |problem| ListenSpecError { spec: spec.to_string(), problem };
    let Some((name, addr)) = spec.rsplit_once('=') else {
        return Err(fail(ListenSpecProblem::NoEquals));
    };
    if name.is_empty() {
        return Err(fail(ListenSpecProblem::EmptyName));
    }
    let addr: SocketAddr =
        addr.parse().map_err(|_| fail(ListenSpecProblem::NotASocketAddress { addr: addr.to_string() }))?;
    Ok((name.to_string(), addr))
}

/// A `--time-scale` out of range; `Display` is the message after the flag's name.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("must be a number > 0 and <= {max}, got {scale}", max = MAX_TIME_SCALE)]
pub struct TimeScaleError {
    pub scale: f64,
}

/// Checks a time scale: finite, > 0, at most [`MAX_TIME_SCALE`].
pub fn check_time_scale(scale: f64) -> Result<f64, TimeScaleError> {
    if crate::validate::is_positive(scale) && scale <= MAX_TIME_SCALE {
        Ok(scale)
    } else {
        Err(TimeScaleError { scale })
    }
}

/// A listener bound for a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    pub deployment: String,
    pub addr: SocketAddr,
}

impl Bound {
    /// The line `sim serve-provider` prints on stdout for it: one JSON object, so a script
    /// (or a test on port 0) reads the address without parsing prose.
    pub fn to_json_line(&self) -> String {
        serde_json::json!({
            "deployment": self.deployment,
            "addr": self.addr.to_string(),
            "url": format!("http://{}", self.addr),
        })
        .to_string()
    }
}

/// A running server: its runtime, listeners and the deployments it serves.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    bound: Vec<Bound>,
    served: Vec<Arc<ServedDeployment>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// How long an idle or slow client may take to send its request headers.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Server {
    /// Binds one listener per `(deployment, address)` and starts serving. The provider's
    /// virtual clock starts when every listener is bound (time zero of its incident windows).
    pub fn start(
        listeners: Vec<(Deployment, SocketAddr)>,
        seed: u64,
        time_scale: f64,
    ) -> Result<Server, ServeError> {
        let time_scale =
            check_time_scale(time_scale).map_err(|m| ServeError::Input(format!("--time-scale: {m}")))?;
        if listeners.is_empty() {
            return Err(ServeError::Input("give at least one --deployment NAME=ADDRESS".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("serve-provider")
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let mut sockets = Vec::with_capacity(listeners.len());
        for (deployment, addr) in listeners {
            let bind = || -> std::io::Result<std::net::TcpListener> {
                let socket = std::net::TcpListener::bind(addr)?;
                socket.set_nonblocking(true)?;
                Ok(socket)
            };
            let socket = bind().map_err(|source| ServeError::Bind {
                deployment: deployment.name.clone(),
                addr,
                source,
            })?;
            let local = socket.local_addr().map_err(|source| ServeError::Bind {
                deployment: deployment.name.clone(),
                addr,
                source,
            })?;
            sockets.push((deployment, socket, local));
        }
        let clock = clock::ScaledClock::start(time_scale);
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let mut bound = Vec::new();
        let mut served = Vec::new();
        // One model state for all listeners: pools are shared between deployments.
        let fleet = ServedFleet::new(sockets.iter().map(|(d, _, _)| d.clone()).collect(), seed, clock)
            .map_err(|e| ServeError::Input(e.to_string()))?;
        for (index, (deployment, socket, local)) in sockets.into_iter().enumerate() {
            let name = deployment.name.clone();
            let deployment = fleet.deployment(index);
            let listener = {
                let _entered = runtime.enter();
                tokio::net::TcpListener::from_std(socket).map_err(|source| ServeError::Bind {
                    deployment: name.clone(),
                    addr: local,
                    source,
                })?
            };
            let app = Arc::new(http::App { served: Arc::clone(&deployment) });
            runtime.spawn(accept_loop(listener, app, shutdown.subscribe()));
            bound.push(Bound { deployment: name, addr: local });
            served.push(deployment);
        }
        Ok(Server { runtime, bound, served, shutdown })
    }

    pub fn bound(&self) -> &[Bound] {
        &self.bound
    }

    /// Attempts admitted and not yet settled, per deployment in [`Server::bound`] order.
    pub fn in_flight(&self) -> Vec<u32> {
        self.served.iter().map(|s| s.in_flight()).collect()
    }

    /// Serves for `duration` of wall time (forever with `None`), then shuts down.
    pub fn run_for(self, duration: Option<std::time::Duration>) {
        match duration {
            Some(d) => std::thread::sleep(d),
            None => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
        }
        self.shutdown();
    }

    /// Stops accepting, drops every connection and waits (at most a second) for the tasks.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Arc<http::App>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _peer)) = accepted else {
            // Out of file descriptors or a connection reset before accept: try the next.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| http::handle(Arc::clone(&app), request));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            // A connection error (the client hung up, a malformed request) ends that
            // connection only.
            let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn deployment(extra: &str) -> Deployment {
        let text = format!(
            "provider = \"p\"\nmodel = \"m\"\nprices = {{ input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }}\n\
             latency = {{ ttft_ms = {{ dist = \"constant\", value = 10 }}, output_tokens_per_s = {{ dist = \"constant\", value = 20 }} }}\n{extra}"
        );
        Deployment::from_config("p/m", &toml::from_str(&text).unwrap()).unwrap()
    }

    #[test]
    fn listen_specs_split_at_the_last_equals_sign() {
        let (name, addr) = parse_listen_spec("a=b/c=127.0.0.1:0").unwrap();
        assert_eq!((name.as_str(), addr.port()), ("a=b/c", 0));
        let e = parse_listen_spec("a=b").unwrap_err();
        assert_eq!(e.problem, ListenSpecProblem::NotASocketAddress { addr: "b".into() });
        assert_eq!(e.to_string(), "\"a=b\": \"b\" is not an IP address and port (e.g. 127.0.0.1:0)");
        assert_eq!(parse_listen_spec("=127.0.0.1:0").unwrap_err().problem, ListenSpecProblem::EmptyName);
        assert_eq!(
            parse_listen_spec("x").unwrap_err().to_string(),
            "\"x\": expected NAME=ADDRESS:PORT, e.g. anthropic/sonnet=127.0.0.1:8080"
        );
        assert_eq!(
            check_time_scale(0.0).unwrap_err().to_string(),
            "must be a number > 0 and <= 10000, got 0"
        );
        assert!(check_time_scale(f64::NAN).is_err() && check_time_scale(1e9).is_err());
    }

    #[test]
    fn a_client_hanging_up_mid_stream_releases_its_admission() {
        // 1,000 tokens at 20 tokens/s: a 50 s answer; the client reads its first events and
        // hangs up. The concurrency slot and output reservation are settled at once.
        let server = Server::start(vec![(deployment(""), "127.0.0.1:0".parse().unwrap())], 1, 1.0).unwrap();
        let addr = server.bound()[0].addr;
        let body =
            r#"{"model":"m","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let request = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nx-routesim-output-tokens: 1000\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("content_block_delta") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the stream ended early");
            seen.extend_from_slice(&buf[..n]);
        }
        assert_eq!(server.in_flight(), vec![1]);
        drop(stream);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while server.in_flight() != vec![0] {
            assert!(std::time::Instant::now() < deadline, "the attempt was never settled");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        server.shutdown();
    }
}
