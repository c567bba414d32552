//! A tiny HTTP/1.1 server for unit tests of what the processor sends to AWS: it records every
//! request (headers and body) and answers with whatever the test's function says. Keep-alive is
//! supported, so SDK clients can reuse their connection.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON (JSON protocol services).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The body's form fields (query protocol services such as STS), decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(&text.replace('+', " "))
                .decode_utf8_lossy()
                .to_string()
        };
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (decode(key), decode(value)))
            .collect()
    }
}

/// A running fake server.
pub struct FakeHttp {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Every request so far, in arrival order.
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeHttp {
    /// A copy of the requests so far.
    pub fn seen(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Starts a server answering each request with `respond(request) = (status, body)`.
pub async fn serve<F>(respond: F) -> FakeHttp
where
    F: Fn(&Request) -> (u16, String) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake server");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
    let respond = Arc::new(respond);
    let log = requests.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(connection(socket, log.clone(), respond.clone()));
        }
    });
    FakeHttp { url, requests }
}

async fn connection<F>(mut socket: TcpStream, log: Arc<Mutex<Vec<Request>>>, respond: Arc<F>)
where
    F: Fn(&Request) -> (u16, String) + Send + Sync + 'static,
{
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut socket, &mut buffer).await {
        let (status, body) = respond(&request);
        if let Ok(mut log) = log.lock() {
            log.push(request);
        }
        let response = format!(
            "HTTP/1.1 {status} Fake\r\ncontent-type: application/octet-stream\r\n\
             x-amzn-requestid: fake-{}\r\ncontent-length: {}\r\n\r\n{body}",
            log.lock().map_or(0, |log| log.len()),
            body.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(key, _)| key == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[header_end..header_end + length].to_vec();
    buffer.drain(..header_end + length);
    Some(Request { headers, body })
}
