//! A fake Lambda Runtime API for running a Lambda function locally with its real runtime client
//! (`lambda_runtime`): a small HTTP server on a free loopback port serving
//! `GET /2018-06-01/runtime/invocation/next` (long-poll), `POST …/invocation/{id}/response`,
//! `POST …/invocation/{id}/error` and `POST /2018-06-01/runtime/init/error`, as documented in
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.
//!
//! A test starts it, runs the function as a child process with [`LambdaRuntimeApi::runtime_env`],
//! and calls [`LambdaRuntimeApi::invoke`] with an event; the call returns what the function posted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

/// The API version prefix of every path.
const API_PREFIX: &str = "/2018-06-01/runtime";
/// Largest response or error body accepted: the synchronous invocation payload limit (6 MB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Function timeout announced in `Lambda-Runtime-Deadline-Ms` (Lambda's maximum, 15 minutes).
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Function name announced to the runtime.
pub const FUNCTION_NAME: &str = "logrelay-processor";
/// ARN announced in `Lambda-Runtime-Invoked-Function-Arn`.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:logrelay-processor";

/// What the function posted for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationResult {
    /// `POST …/{id}/response`: the function's result (JSON; a non-JSON body becomes a string).
    Response(Value),
    /// `POST …/{id}/error`: the function's error document (`errorType`, `errorMessage`).
    Error(Value),
    /// `POST /runtime/init/error`: the runtime failed to initialize; no invocation will run.
    InitError(Value),
}

/// One queued invocation.
struct Invocation {
    request_id: String,
    payload: Value,
    /// The function timeout announced for this invocation.
    timeout: Duration,
}

/// State shared by the server's connections and the test's handle.
struct State {
    /// Invocations not yet handed to the runtime.
    queue_tx: mpsc::UnboundedSender<Invocation>,
    queue_rx: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    /// Invocations handed out (or queued) and not yet answered, by request id.
    waiting: Mutex<HashMap<String, oneshot::Sender<InvocationResult>>>,
    /// The init error, once the runtime posted one.
    init_error: Mutex<Option<Value>>,
    /// How many `/next` requests arrived (the first one means "initialized").
    next_requests: AtomicU64,
    /// Wakes [`LambdaRuntimeApi::wait_for_runtime`] on the first `/next`.
    first_next: tokio::sync::Notify,
    /// Request id counter.
    counter: AtomicU64,
}

/// The fake Runtime API server; stops when dropped.
pub struct LambdaRuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for LambdaRuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LambdaRuntimeApi {
    /// Starts the server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            queue_tx,
            queue_rx: Mutex::new(queue_rx),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            next_requests: AtomicU64::new(0),
            first_next: tokio::sync::Notify::new(),
            counter: AtomicU64::new(0),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The environment a Lambda runtime needs to run against this server (the `lambda_runtime`
    /// crate panics without the function name, memory size and version).
    pub fn runtime_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{FUNCTION_NAME}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ]
    }

    /// Queues `payload` as an invocation and waits for what the function posts for it. Returns
    /// [`InvocationResult::InitError`] if the runtime reported an init error (before or while
    /// waiting). Wrap in `tokio::time::timeout` to bound the wait.
    pub async fn invoke(&self, payload: Value) -> InvocationResult {
        self.invoke_with_timeout(payload, FUNCTION_TIMEOUT).await
    }

    /// As [`LambdaRuntimeApi::invoke`], announcing a deadline `timeout` from when the runtime
    /// receives the invocation.
    pub async fn invoke_with_timeout(&self, payload: Value, timeout: Duration) -> InvocationResult {
        if let Some(error) = self.init_error().await {
            return InvocationResult::InitError(error);
        }
        let n = self.state.counter.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("00000000-0000-4000-8000-{n:012x}");
        let (tx, rx) = oneshot::channel();
        self.state
            .waiting
            .lock()
            .await
            .insert(request_id.clone(), tx);
        // The receiver lives in `state` as long as `self`, so sending cannot fail here.
        let _ = self.state.queue_tx.send(Invocation {
            request_id,
            payload,
            timeout,
        });
        match rx.await {
            Ok(result) => result,
            // The sender is only dropped when an init error drained the waiting list.
            Err(_) => InvocationResult::InitError(self.init_error().await.unwrap_or(Value::Null)),
        }
    }

    /// The init error the runtime posted, if any.
    pub async fn init_error(&self) -> Option<Value> {
        self.state.init_error.lock().await.clone()
    }

    /// How many `GET …/invocation/next` requests arrived so far.
    pub fn next_requests(&self) -> u64 {
        self.state.next_requests.load(Ordering::Relaxed)
    }

    /// Waits until the runtime asks for its first invocation (it has initialized); false on timeout.
    pub async fn wait_for_runtime(&self, timeout: Duration) -> bool {
        let notified = self.state.first_next.notified();
        if self.next_requests() > 0 {
            return true;
        }
        tokio::time::timeout(timeout, notified).await.is_ok() || self.next_requests() > 0
    }
}

/// Accepts connections until the task is aborted.
async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| route(request, state.clone()));
            // A runtime that goes away mid-request is not an error of the emulator.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Dispatches one request.
async fn route(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    let method = request.method().clone();
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let response = match (method, segments.as_slice()) {
        (Method::GET, ["invocation", "next"]) => next_invocation(&state).await,
        (Method::POST, ["invocation", id, "response"]) => {
            let id = (*id).to_owned();
            match read_json(request).await {
                Ok(body) => complete(&state, &id, InvocationResult::Response(body)).await,
                Err(response) => response,
            }
        }
        (Method::POST, ["invocation", id, "error"]) => {
            let id = (*id).to_owned();
            match read_json(request).await {
                Ok(body) => complete(&state, &id, InvocationResult::Error(body)).await,
                Err(response) => response,
            }
        }
        (Method::POST, ["init", "error"]) => match read_json(request).await {
            Ok(body) => {
                *state.init_error.lock().await = Some(body);
                // Fail every waiting invocation: none will ever run.
                state.waiting.lock().await.clear();
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            Err(response) => response,
        },
        _ => reply(StatusCode::NOT_FOUND, "unknown path"),
    };
    Ok(response)
}

/// Long-polls for the next invocation and hands it out with the runtime headers.
async fn next_invocation(state: &State) -> Response<Full<Bytes>> {
    if state.next_requests.fetch_add(1, Ordering::Relaxed) == 0 {
        state.first_next.notify_waiters();
    }
    let invocation = {
        let mut queue = state.queue_rx.lock().await;
        queue.recv().await
    };
    let Some(invocation) = invocation else {
        return reply(StatusCode::INTERNAL_SERVER_ERROR, "emulator shutting down");
    };
    let deadline = SystemTime::now()
        .checked_add(invocation.timeout)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let trace_id = format!(
        "Root=1-00000000-{};Parent=0000000000000000;Sampled=0",
        invocation.request_id.get(24..).unwrap_or_default()
    );
    let mut response = Response::new(Full::new(Bytes::from(invocation.payload.to_string())));
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", "application/json".to_owned()),
        ("lambda-runtime-aws-request-id", invocation.request_id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            FUNCTION_ARN.to_owned(),
        ),
        ("lambda-runtime-trace-id", trace_id),
    ] {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    response
}

/// Delivers a result to the waiting [`LambdaRuntimeApi::invoke`].
async fn complete(
    state: &State,
    request_id: &str,
    result: InvocationResult,
) -> Response<Full<Bytes>> {
    match state.waiting.lock().await.remove(request_id) {
        Some(waiter) => {
            // The test may have stopped waiting (timeout); that is its business.
            let _ = waiter.send(result);
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        None => reply(
            StatusCode::BAD_REQUEST,
            r#"{"errorType":"InvalidRequestID"}"#,
        ),
    }
}

/// Reads a bounded body as JSON (a body that is not JSON becomes a JSON string).
async fn read_json(request: Request<Incoming>) -> Result<Value, Response<Full<Bytes>>> {
    let body = Limited::new(request.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|_| {
            reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"errorType":"RequestTooLarge"}"#,
            )
        })?
        .to_bytes();
    Ok(serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())))
}

/// A response with a fixed body.
fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use serde_json::json;

    type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

    fn client() -> HttpClient {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn send(client: &HttpClient, method: Method, url: String, body: &str) -> Response<Bytes> {
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("valid request");
        let response = client.request(request).await.expect("request succeeds");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        Response::from_parts(parts, bytes)
    }

    #[tokio::test]
    async fn invocation_is_handed_out_with_headers_and_answered() {
        let api = LambdaRuntimeApi::start().await.expect("starts");
        let base = format!("http://{}{API_PREFIX}", api.address());
        let client = client();
        let runtime = {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let next = send(&client, Method::GET, format!("{base}/invocation/next"), "").await;
                let id = next.headers()["lambda-runtime-aws-request-id"]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                assert!(next.headers().contains_key("lambda-runtime-deadline-ms"));
                assert_eq!(
                    next.headers()["lambda-runtime-invoked-function-arn"],
                    FUNCTION_ARN
                );
                assert!(next.headers().contains_key("lambda-runtime-trace-id"));
                let event: Value = serde_json::from_slice(next.body()).expect("json");
                let answer = json!({"echo": event});
                let posted = send(
                    &client,
                    Method::POST,
                    format!("{base}/invocation/{id}/response"),
                    &answer.to_string(),
                )
                .await;
                assert_eq!(posted.status(), StatusCode::ACCEPTED);
            })
        };
        let result = tokio::time::timeout(Duration::from_secs(10), api.invoke(json!({"n": 1})))
            .await
            .expect("answered in time");
        assert_eq!(
            result,
            InvocationResult::Response(json!({"echo": {"n": 1}}))
        );
        runtime.await.expect("runtime task");
        assert!(api.wait_for_runtime(Duration::from_millis(1)).await);
        assert_eq!(api.next_requests(), 1);
    }

    #[tokio::test]
    async fn errors_and_unknown_ids_are_reported() {
        let api = LambdaRuntimeApi::start().await.expect("starts");
        let base = format!("http://{}{API_PREFIX}", api.address());
        let client = client();
        let unknown = send(
            &client,
            Method::POST,
            format!("{base}/invocation/nope/response"),
            "{}",
        )
        .await;
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
        let runtime = {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let next = send(&client, Method::GET, format!("{base}/invocation/next"), "").await;
                let id = next.headers()["lambda-runtime-aws-request-id"]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                let error = r#"{"errorType":"Boom","errorMessage":"failed"}"#;
                send(
                    &client,
                    Method::POST,
                    format!("{base}/invocation/{id}/error"),
                    error,
                )
                .await;
            })
        };
        let result = api.invoke(json!({})).await;
        assert_eq!(
            result,
            InvocationResult::Error(json!({"errorType": "Boom", "errorMessage": "failed"}))
        );
        runtime.await.expect("runtime task");
    }

    #[tokio::test]
    async fn init_error_fails_waiting_and_later_invocations() {
        let api = Arc::new(LambdaRuntimeApi::start().await.expect("starts"));
        let waiting = {
            let api = api.clone();
            tokio::spawn(async move { api.invoke(json!({})).await })
        };
        // Let the invocation register before the init error arrives.
        while api.state.waiting.lock().await.is_empty() {
            tokio::task::yield_now().await;
        }
        let base = format!("http://{}{API_PREFIX}", api.address());
        let posted = send(
            &client(),
            Method::POST,
            format!("{base}/init/error"),
            r#"{"errorType":"Init"}"#,
        )
        .await;
        assert_eq!(posted.status(), StatusCode::ACCEPTED);
        let expected = InvocationResult::InitError(json!({"errorType": "Init"}));
        assert_eq!(waiting.await.expect("task"), expected);
        assert_eq!(api.invoke(json!({})).await, expected);
    }
}
