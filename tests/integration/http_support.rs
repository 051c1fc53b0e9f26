//! Helpers for the HTTP tests (serve-provider, observe), written independently of the crate's
//! own HTTP code: a `sim serve-provider` child killed on drop, a minimal blocking HTTP/1.1
//! client on `std::net` (chunked bodies, arrival times of the bytes) and a minimal SSE parser.
//! Everything is on 127.0.0.1, with a timeout on every socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every socket read or write gives up after this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A `sim serve-provider` process; killed (and reaped) when dropped.
pub struct ServeProcess {
    child: Child,
    /// Deployment name → address, from the JSON lines on stdout.
    pub addrs: Vec<(String, SocketAddr)>,
    /// When the process was spawned: the provider's clock starts after it.
    pub spawned_at: Instant,
}

impl ServeProcess {
    /// Starts `sim serve-provider SCENARIO --deployment NAME=127.0.0.1:0 … ARGS` in `dir`
    /// and reads one address line per deployment (at most 20 s).
    pub fn start(dir: &std::path::Path, scenario: &str, deployments: &[&str], args: &[&str]) -> ServeProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sim"));
        command.current_dir(dir).arg("serve-provider").arg(scenario);
        for d in deployments {
            command.arg("--deployment").arg(format!("{d}=127.0.0.1:0"));
        }
        // A safety net: the server ends by itself even if a test leaks it.
        command.args(["--duration", "120s"]).args(args);
        let spawned_at = Instant::now();
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("sim starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let n = deployments.len();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for _ in 0..n {
                match lines.next() {
                    Some(Ok(line)) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
        let mut addrs = Vec::new();
        let mut process = ServeProcess { child, addrs: Vec::new(), spawned_at };
        for _ in 0..n {
            let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
                let mut stderr = String::new();
                let _ = process.child.kill();
                if let Some(mut e) = process.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                panic!("serve-provider printed no address line; stderr: {stderr}")
            });
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
            assert_eq!(v["url"].as_str(), Some(format!("http://{addr}").as_str()));
            addrs.push((v["deployment"].as_str().unwrap().to_string(), addr));
        }
        process.addrs = addrs;
        process
    }

    pub fn addr(&self, deployment: &str) -> SocketAddr {
        self.addrs.iter().find(|(d, _)| d == deployment).map(|(_, a)| *a).expect("served")
    }

    pub fn url(&self, deployment: &str) -> String {
        format!("http://{}", self.addr(deployment))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read to its end, with when its parts arrived.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// From the request's send to the read that completed the headers.
    pub headers_after: Duration,
    /// From the send to the first read whose bytes (so far) contain `marker`, if given.
    pub marker_after: Option<Duration>,
    /// From the send to the end of the body.
    pub done_after: Duration,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// POSTs `body` to `addr` + `path` with `headers` (`Connection: close`), reads the whole
/// answer, and times the first appearance of `marker` in the raw bytes.
pub fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
    marker: Option<&str>,
) -> RawResponse {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = stream.set_nodelay(true);
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let sent = Instant::now();
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let mut headers_after = None;
    let mut marker_after = None;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // A connection the server cut (a broken stream): the bytes so far are the answer.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        };
        raw.extend_from_slice(&buf[..n]);
        if headers_after.is_none() && find(&raw, b"\r\n\r\n").is_some() {
            headers_after = Some(sent.elapsed());
        }
        if let (None, Some(m)) = (marker_after, marker) {
            if find(&raw, m.as_bytes()).is_some() {
                marker_after = Some(sent.elapsed());
            }
        }
    }
    let done_after = sent.elapsed();
    let head_end = find(&raw, b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8(raw[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    RawResponse {
        status,
        headers,
        body,
        headers_after: headers_after.unwrap_or(done_after),
        marker_after,
        done_after,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body (as far as it goes: a cut stream keeps its complete chunks).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if size == 0 || raw.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[(line_end + 4 + size).min(raw.len())..];
    }
    out
}

/// One SSE event: its `event:` name (if any) and its data.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// A minimal SSE parser: events end at a blank line; `event:` and `data:` fields.
pub fn sse_events(body: &[u8]) -> Vec<Event> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = Event { name: None, data: String::new() };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event.name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    event.data.push_str(v.trim_start());
                }
            }
            event
        })
        .collect()
}

/// A scenario's deployment table with constant latency and `extra` TOML lines.
pub fn deployment_toml(name: &str, ttft_ms: u64, tokens_per_s: u64, extra: &str) -> String {
    deployment_toml_with(name, ttft_ms, tokens_per_s, "", extra)
}

/// [`deployment_toml`] with more fields of the inline latency table (`, key = value…`).
pub fn deployment_toml_with(
    name: &str,
    ttft_ms: u64,
    tokens_per_s: u64,
    latency_extra: &str,
    extra: &str,
) -> String {
    format!(
        "[deployments.{name:?}]\nprovider = \"test\"\nmodel = \"m\"\nprices = {{ input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }}\n\
         latency = {{ ttft_ms = {{ dist = \"constant\", value = {ttft_ms} }}, output_tokens_per_s = {{ dist = \"constant\", value = {tokens_per_s} }}, error_response_ms = {{ dist = \"constant\", value = 20 }}, rate_limit_response = \"20ms\"{latency_extra} }}\n{extra}\n"
    )
}

/// An Anthropic Messages body.
pub fn messages_body(stream: bool, max_tokens: u64) -> String {
    serde_json::json!({
        "model": "m", "max_tokens": max_tokens, "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string()
}

/// The x-routesim token headers.
pub fn token_headers(input: u64, cached: u64, output: u64) -> Vec<(&'static str, String)> {
    vec![
        ("x-routesim-input-tokens", input.to_string()),
        ("x-routesim-cached-input-tokens", cached.to_string()),
        ("x-routesim-output-tokens", output.to_string()),
    ]
}
