//! A minimal plain-HTTP client for the demo's own calls: components' `/metrics`, and the
//! emulator's `/moto-api/` (readiness, IAM enforcement).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Timeout of one request (all of them are local).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body read (a `/metrics` page is a few hundred KiB at most).
const MAX_BODY_BYTES: usize = 8 << 20;

/// A shared HTTP/1 client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl HttpClient {
    /// `GET url`: the status and the body as text.
    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, String)> {
        let request = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
        self.send(request).await
    }

    /// `POST url` with a text body.
    pub async fn post(&self, url: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let request = hyper::Request::post(url).body(Full::new(Bytes::from(body.to_owned())))?;
        self.send(request).await
    }

    async fn send(&self, request: hyper::Request<Full<Bytes>>) -> anyhow::Result<(u16, String)> {
        let uri = request.uri().to_string();
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .with_context(|| format!("{uri}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{uri}: request failed"))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("{uri}: reading the body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
