//! The HTTP side of `sim serve-provider`: one hyper (HTTP/1.1) listener per deployment, the
//! routes (`POST /v1/messages` → [`Anthropic`], `POST /v1/chat/completions` → [`OpenAi`]),
//! reading the request and the `x-routesim-*` headers into an [`Ask`], and sending the
//! [`Answer`] the model decided at its wall-clock instants: an error after its delay, or a
//! stream whose events leave at the instants of their tokens. A client that hangs up cancels
//! its attempt (the [`Pending`] admission is dropped and settled).
//!
//! It must not know the provider model's insides (that is [`ServedDeployment`]) nor a
//! protocol's wire format (that is an [`Encoding`]). Request headers are never logged, so an
//! `authorization` or `x-api-key` a client sends goes nowhere.

use super::anthropic::Anthropic;
use super::deployment::{Pending, ServedDeployment};
use super::openai::OpenAi;
use super::protocol::{estimate_tokens, AnswerInfo, ApiError, Encoding, FieldProblem, RequestError};
use super::reply::{token_at, tokens_text, Answer, Ask, ErrorAnswer};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Largest request body read (Anthropic's documented request size limit); larger is a 413.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The answer's length when the client sends neither `x-routesim-output-tokens` nor a
/// `max_tokens` (OpenAI's is optional).
pub const DEFAULT_MAX_TOKENS: u64 = 1_024;

/// Largest answer served (beyond any model's output limit): a client cannot make the server
/// build an unbounded body.
pub const MAX_OUTPUT_TOKENS: u64 = 1_000_000;

/// Events of a stream leave at most this often: tokens due in between go together.
const MIN_EVENT_GAP: std::time::Duration = std::time::Duration::from_millis(5);

/// The header fixing the answer's length (real providers ignore it).
pub const OUTPUT_TOKENS_HEADER: &str = "x-routesim-output-tokens";
/// The header giving the prompt's token count the model charges.
pub const INPUT_TOKENS_HEADER: &str = "x-routesim-input-tokens";
/// The header giving the prompt's cache reads.
pub const CACHED_INPUT_TOKENS_HEADER: &str = "x-routesim-cached-input-tokens";

/// A stream the server broke on purpose (the model's mid-stream error): hyper ends the
/// connection without the chunked body's terminator, as a dropped connection does.
#[derive(Debug)]
pub struct BrokenStream;

impl std::fmt::Display for BrokenStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stream broken by the modelled provider")
    }
}

impl std::error::Error for BrokenStream {}

/// A response body: whole, or fed by the streaming task through a channel.
pub enum ServeBody {
    Whole(Option<Bytes>),
    Channel(tokio::sync::mpsc::Receiver<Result<Bytes, BrokenStream>>),
}

impl Body for ServeBody {
    type Data = Bytes;
    type Error = BrokenStream;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BrokenStream>>> {
        match self.get_mut() {
            ServeBody::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ServeBody::Channel(rx) => rx.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data))),
        }
    }
}

/// One listener's application: the deployment it serves.
pub struct App {
    pub served: Arc<ServedDeployment>,
}

type Headers = Vec<(String, String)>;

fn response(status: u16, headers: Headers, body: ServeBody) -> Response<ServeBody> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    // Every name is a static ASCII token and every value is printed from numbers, dates and
    // fixed words, so the builder cannot fail; a 500 without headers is the safe fallback.
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(ServeBody::Whole(None));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

fn json_response(status: u16, mut headers: Headers, body: String) -> Response<ServeBody> {
    headers.push(("content-type".into(), "application/json".into()));
    response(status, headers, ServeBody::Whole(Some(Bytes::from(body))))
}

fn api_error(
    encoding: &dyn Encoding,
    error: ApiError,
    message: &str,
    headers: Headers,
) -> Response<ServeBody> {
    let (status, body) = encoding.error(error, message);
    json_response(status, headers, body)
}

/// A header as a non-negative integer, if present.
fn header_u64(request: &Request<Incoming>, name: &'static str) -> Result<Option<u64>, RequestError> {
    let Some(value) = request.headers().get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or(RequestError::field(name, FieldProblem::NonNegativeInteger))
}

/// Seconds as a header value: whole seconds when they are whole, else up to milliseconds
/// (a time-scaled server's waits are fractions of a wall second).
fn seconds_value(wall: std::time::Duration) -> String {
    let ms = wall.as_micros().div_ceil(1_000);
    if ms.is_multiple_of(1_000) {
        (ms / 1_000).to_string()
    } else {
        format!("{}", ms as f64 / 1_000.0)
    }
}

/// Serves one request.
pub async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<ServeBody>, std::convert::Infallible> {
    let path = request.uri().path().trim_end_matches('/');
    let encoding: &'static dyn Encoding = match path {
        "/v1/messages" => &Anthropic,
        "/v1/chat/completions" => &OpenAi,
        _ => {
            return Ok(api_error(
                &Anthropic,
                ApiError::NotFound,
                "not found: routesim serves POST /v1/messages and POST /v1/chat/completions",
                Vec::new(),
            ))
        }
    };
    if request.method() != hyper::Method::POST {
        return Ok(api_error(encoding, ApiError::MethodNotAllowed, "use POST", Vec::new()));
    }
    let headers = (
        header_u64(&request, INPUT_TOKENS_HEADER),
        header_u64(&request, CACHED_INPUT_TOKENS_HEADER),
        header_u64(&request, OUTPUT_TOKENS_HEADER),
    );
    let (input_header, cached_header, output_header) = match headers {
        (Ok(i), Ok(c), Ok(o)) => (i, c, o),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return Ok(api_error(encoding, ApiError::InvalidRequest, &e.to_string(), Vec::new()))
        }
    };
    let body = match http_body_util::Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            let message = format!("request body larger than {MAX_BODY_BYTES} bytes");
            return Ok(api_error(encoding, ApiError::RequestTooLarge, &message, Vec::new()));
        }
        Err(_) => {
            return Ok(api_error(
                encoding,
                ApiError::InvalidRequest,
                "the request body could not be read",
                Vec::new(),
            ))
        }
    };
    let parsed = match encoding.parse(&body) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(api_error(encoding, ApiError::InvalidRequest, &e.to_string(), Vec::new())),
    };
    let input_tokens = input_header.unwrap_or_else(|| estimate_tokens(parsed.prompt_chars));
    let cached_input_tokens = cached_header.unwrap_or(0);
    if cached_input_tokens > input_tokens {
        let message = format!(
            "{CACHED_INPUT_TOKENS_HEADER}: {cached_input_tokens} exceeds the prompt's {input_tokens} input tokens"
        );
        return Ok(api_error(encoding, ApiError::InvalidRequest, &message, Vec::new()));
    }
    let max_tokens = parsed.max_tokens.or(output_header).unwrap_or(DEFAULT_MAX_TOKENS).max(1);
    if max_tokens > MAX_OUTPUT_TOKENS {
        let message =
            format!("max_tokens: {max_tokens} is above the {MAX_OUTPUT_TOKENS} this server answers");
        return Ok(api_error(encoding, ApiError::InvalidRequest, &message, Vec::new()));
    }
    let ask = Ask {
        input_tokens,
        cached_input_tokens,
        output_tokens: output_header.unwrap_or(max_tokens).min(max_tokens),
        max_tokens,
    };
    // Without the header the answer runs to its budget, as a model cut off at max_tokens.
    let truncated = output_header.is_none_or(|n| n > max_tokens);

    let started = app.served.start(ask);
    let clock = *app.served.clock();
    let info = AnswerInfo {
        id: format!("routesim{:012}", started.request.id),
        model: parsed.model.clone(),
        input_tokens,
        cached_input_tokens,
        output_tokens: 0,
        truncated: false,
        created_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        include_usage: parsed.include_usage,
    };
    let mut headers = encoding.rate_limit_headers(&started.rate_limits, &clock);
    headers.push(("request-id".into(), format!("req_{}", info.id)));
    match started.answer {
        Answer::Error { at, error } => {
            tokio::time::sleep_until(tokio::time::Instant::from_std(clock.wall_at(at))).await;
            started.pending.finish();
            let (api, message) = match error {
                ErrorAnswer::RateLimited { retry_after, axis, never, quota } => {
                    if let Some(after) = retry_after {
                        let wall = clock.wall_duration(after);
                        headers.push(("retry-after".into(), seconds_value(wall)));
                        headers.push(("retry-after-ms".into(), wall.as_micros().div_ceil(1_000).to_string()));
                    }
                    let axis_name = axis.map_or_else(|| "rate".to_string(), |a| a.to_string());
                    let message = if never {
                        format!("this request exceeds the {axis_name} limit's capacity and can never pass")
                    } else if quota {
                        format!("{axis_name} quota exhausted until the end of its period")
                    } else {
                        format!("{axis_name} limit exceeded")
                    };
                    (ApiError::RateLimited { axis }, message)
                }
                ErrorAnswer::Overloaded => (ApiError::Overloaded, "Overloaded".to_string()),
                ErrorAnswer::ServerError => (ApiError::Server, "Internal server error".to_string()),
            };
            Ok(api_error(encoding, api, &message, headers))
        }
        Answer::Stream { first_token_at, ends_at, output_tokens, broken } => {
            let info = AnswerInfo { output_tokens, truncated, ..info };
            let times = StreamTimes { first_token_at, ends_at, output_tokens, broken };
            if parsed.stream {
                headers.push(("content-type".into(), "text/event-stream".into()));
                headers.push(("cache-control".into(), "no-cache".into()));
                let (tx, rx) = tokio::sync::mpsc::channel(16);
                tokio::spawn(stream(tx, encoding, info, times, clock, started.pending));
                Ok(response(200, headers, ServeBody::Channel(rx)))
            } else {
                tokio::time::sleep_until(tokio::time::Instant::from_std(clock.wall_at(ends_at))).await;
                started.pending.finish();
                if broken {
                    // A non-streaming client gets nothing of a broken answer: a 500.
                    Ok(api_error(encoding, ApiError::Server, "Internal server error", headers))
                } else {
                    let text = tokens_text(0, output_tokens);
                    Ok(json_response(200, headers, encoding.message(&info, &text)))
                }
            }
        }
    }
}

/// The instants of a streamed answer.
#[derive(Clone, Copy, Debug)]
struct StreamTimes {
    first_token_at: crate::time::Instant,
    ends_at: crate::time::Instant,
    output_tokens: u64,
    broken: bool,
}

/// Feeds one streamed answer into `tx` at its instants; returns (dropping `pending`, which
/// cancels the attempt) as soon as the client is gone.
async fn stream(
    tx: tokio::sync::mpsc::Sender<Result<Bytes, BrokenStream>>,
    encoding: &'static dyn Encoding,
    info: AnswerInfo,
    times: StreamTimes,
    clock: super::clock::ScaledClock,
    pending: Pending,
) {
    let send = |chunk: String| {
        let tx = tx.clone();
        async move { tx.send(Ok(Bytes::from(chunk))).await.is_ok() }
    };
    // Waits until `at` (wall); false if the client hung up meanwhile.
    let wait_until = |at: std::time::Instant| {
        let tx = tx.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => true,
                () = tx.closed() => false,
            }
        }
    };
    if !send(encoding.stream_start(&info)).await {
        return;
    }
    let n = times.output_tokens;
    let mut sent = 0u64;
    let mut last_event = std::time::Instant::now();
    if n == 0 {
        // An empty answer still has a first (empty) delta when its first token would be.
        if !wait_until(clock.wall_at(times.first_token_at)).await
            || !send(encoding.stream_delta(&info, "")).await
        {
            return;
        }
    }
    while sent < n {
        let due = clock.wall_at(token_at(sent, n, times.first_token_at, times.ends_at));
        if !wait_until(due.max(last_event + MIN_EVENT_GAP)).await {
            return;
        }
        let now = clock.now();
        let mut upto = sent + 1;
        while upto < n && token_at(upto, n, times.first_token_at, times.ends_at) <= now {
            upto += 1;
        }
        last_event = std::time::Instant::now();
        if !send(encoding.stream_delta(&info, &tokens_text(sent, upto))).await {
            return;
        }
        sent = upto;
    }
    if !wait_until(clock.wall_at(times.ends_at)).await {
        return;
    }
    if times.broken {
        pending.finish();
        match encoding.stream_broken(&info) {
            // The protocol says so in an event, then the stream ends.
            Some(last_words) => {
                let _ = send(last_words).await;
            }
            // The protocol has no such event: the connection is cut.
            None => {
                let _ = tx.send(Err(BrokenStream)).await;
            }
        }
    } else {
        let delivered = send(encoding.stream_end(&info)).await;
        if delivered {
            pending.finish();
        }
    }
}
