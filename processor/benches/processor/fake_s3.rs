//! An in-memory S3 GetObject endpoint (path-style `GET /bucket/key`) for the "core path"
//! measurement: the processor's S3 client reads the object from here instead of from the emulator,
//! so the figure shows the core's own decode → batch → put path without moto's GetObject.
//! Children reach it through `AWS_ENDPOINT_URL_S3` (which overrides the shared endpoint for S3).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Objects served, by `bucket/key`.
struct Objects {
    by_path: HashMap<String, Bytes>,
    gets: AtomicU64,
}

/// A running in-memory S3 endpoint; stops when dropped.
pub struct FakeS3 {
    url: String,
    objects: Arc<Objects>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeS3 {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeS3 {
    /// Serves `objects` (`(bucket, key, body)`) on a free loopback port.
    pub async fn start(objects: Vec<(String, String, Bytes)>) -> std::io::Result<Self> {
        let objects = Arc::new(Objects {
            by_path: objects
                .into_iter()
                .map(|(bucket, key, body)| (format!("{bucket}/{key}"), body))
                .collect(),
            gets: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new()
            .fallback(get_object)
            .with_state(objects.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            objects,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// GetObject requests answered so far.
    pub fn gets(&self) -> u64 {
        self.objects.gets.load(Ordering::Relaxed)
    }
}

async fn get_object(State(objects): State<Arc<Objects>>, uri: Uri) -> Response {
    let path = percent_encoding::percent_decode_str(uri.path().trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let Some(body) = objects.by_path.get(&path) else {
        return (StatusCode::NOT_FOUND, "NoSuchKey").into_response();
    };
    objects.gets.fetch_add(1, Ordering::Relaxed);
    let mut response = Response::new(Body::from(body.clone()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-gzip"),
    );
    headers.insert(
        header::ETAG,
        header::HeaderValue::from_static("\"0123456789abcdef0123456789abcdef\""),
    );
    headers.insert(
        header::LAST_MODIFIED,
        header::HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"),
    );
    response
}
