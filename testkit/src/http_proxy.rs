//! The plumbing every test proxy in front of the emulator shares: a loopback listener that serves
//! each connection with a request handler, the forward of a request to its upstream with the body
//! streamed and the signed `Host` kept, the AWS service a request was signed for, and plain-text
//! answers. The fault proxy ([`crate::fault_proxy`]) and the demo's counting proxy are built on it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Body of proxied and answered responses.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A proxy listening on 127.0.0.1; stops accepting when dropped.
#[derive(Debug)]
pub struct Listening {
    addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl Listening {
    /// Binds a free loopback port and serves every connection with `handler`. A handler error
    /// makes hyper close the connection without an answer (a reset, as the client sees it).
    pub async fn start<H, F, E>(handler: H) -> std::io::Result<Self>
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<ProxyBody>, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let accept_task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(%err, "test proxy accept failed");
                        continue;
                    }
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    // Errors here are deliberate resets or clients going away.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(handler))
                        .await;
                });
            }
        });
        Ok(Self { addr, accept_task })
    }

    /// The proxy's base URL, to use as the SDK endpoint (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The upstream base and the request's path do not make a URI.
    #[error("bad path: {0}")]
    BadPath(#[from] hyper::http::uri::InvalidUri),
    /// The upstream was unreachable, or closed the connection without answering.
    #[error("upstream failed: {0}")]
    Upstream(#[from] hyper_util::client::legacy::Error),
}

impl ForwardError {
    /// Whether the upstream accepted the connection and closed it without an answer (as
    /// opposed to being unreachable or the path being bad).
    pub fn upstream_hung_up(&self) -> bool {
        matches!(self, Self::Upstream(error) if !error.is_connect())
    }
}

/// An HTTP/1.1 client for forwarding requests with bodies of type `B`.
pub fn client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends the request to `upstream` (`http://host:port`, no trailing slash) with its path and
/// query, its body streamed; the `Host` header stays as the client signed it (SigV4 covers it).
pub async fn forward<B>(
    client: &Client<HttpConnector, B>,
    upstream: &str,
    request: Request<B>,
) -> Result<Response<Incoming>, ForwardError>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = format!("{upstream}{path}").parse::<Uri>()?;
    Ok(client.request(Request::from_parts(parts, body)).await?)
}

/// The service of a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/<service>/aws4_request, ...`.
pub fn signing_service(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let mut parts = scope.rsplit('/');
    (parts.next()? == "aws4_request").then_some(())?;
    parts.next()
}

/// The service a request was signed for, from its `Authorization` header.
pub fn signing_service_of(headers: &HeaderMap) -> Option<&str> {
    signing_service(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

/// A response with a fixed body.
pub fn full_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A plain-text response.
pub fn text_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    full_response(status, "text/plain", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/logs/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(signing_service(auth), Some("logs"));
        let mut headers = HeaderMap::new();
        assert_eq!(signing_service_of(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static(auth));
        assert_eq!(signing_service_of(&headers), Some("logs"));
        assert_eq!(
            signing_service("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/logs/other"),
            None
        );
    }

    #[tokio::test]
    async fn a_request_is_forwarded_with_its_path_and_an_unreachable_upstream_is_no_hang_up() {
        let upstream = Listening::start(|request: Request<Incoming>| async move {
            let path = request.uri().path_and_query().map(ToString::to_string);
            Ok::<_, Infallible>(text_response(StatusCode::OK, path.unwrap_or_default()))
        })
        .await
        .expect("upstream");
        let first = client::<ProxyBody>();
        let request = |uri: &str| {
            Request::get(uri)
                .body(BodyExt::boxed(
                    Full::new(Bytes::new()).map_err(|never: Infallible| match never {}),
                ))
                .expect("request")
        };
        let response = forward(&first, &upstream.url(), request("http://x/a/b?c=d"))
            .await
            .expect("forwarded");
        let body = response.into_body().collect().await.expect("body");
        assert_eq!(body.to_bytes(), Bytes::from_static(b"/a/b?c=d"));

        let gone = upstream.url();
        drop(upstream);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // A new client: the first one's pooled connection outlives the listener.
        let error = forward(&client::<ProxyBody>(), &gone, request("http://x/"))
            .await
            .expect_err("nothing listens");
        assert!(!error.upstream_hung_up(), "{error}");
    }
}
