//! A deliberately misbehaving HTTP server on loopback: answers every request with what a test
//! script says (any status, any body — huge ones streamed without being held in memory), and
//! keeps the requests it received (with their path, query and headers at hand).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a request looked like.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request line and headers.
    pub head: String,
    /// The body (a form for Prometheus queries).
    pub body: String,
}

impl Received {
    /// The request target (path and query).
    fn target(&self) -> &str {
        self.head.split_whitespace().nth(1).unwrap_or("")
    }

    /// The request's path.
    pub fn path(&self) -> &str {
        self.target().split('?').next().unwrap_or("")
    }

    /// The request's query, if any.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// A header's value (the name compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// An answer.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body start.
    pub body: Vec<u8>,
    /// `repeat` sent this many times after `body` (a streamed body without Content-Length).
    pub repeat: (Vec<u8>, usize),
    /// Wait this long before answering.
    pub delay: std::time::Duration,
    /// More response headers.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.into(),
            repeat: (Vec::new(), 0),
            delay: std::time::Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// A text/HTML answer.
    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            content_type,
            ..Self::json(status, body)
        }
    }
}

/// The server: its URL and what it received.
pub struct FakeHttp {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Requests so far.
    pub received: Arc<Mutex<Vec<Received>>>,
}

/// Starts a server answering each request with `answer(request)`.
pub async fn serve(answer: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> FakeHttp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (answer, log) = (answer.clone(), log.clone());
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while data.len() < head_end + length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let request = Received {
                    head,
                    body: String::from_utf8_lossy(&data[head_end..head_end + length]).to_string(),
                };
                let a = answer(&request);
                log.lock().unwrap().push(request);
                tokio::time::sleep(a.delay).await;
                let streamed = a.repeat.1 > 0;
                let mut out = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: {}\r\nconnection: close\r\n",
                    a.status, a.content_type
                );
                if !streamed {
                    out.push_str(&format!("content-length: {}\r\n", a.body.len()));
                }
                for (name, value) in &a.headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                if socket.write_all(out.as_bytes()).await.is_err()
                    || socket.write_all(&a.body).await.is_err()
                {
                    return;
                }
                for _ in 0..a.repeat.1 {
                    if socket.write_all(&a.repeat.0).await.is_err() {
                        return;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    FakeHttp { url, received }
}
