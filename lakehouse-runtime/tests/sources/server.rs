//! A tiny HTTP/1.1 server on 127.0.0.1 for the source tests: each connection gets the reply a
//! handler chooses — any status, headers and body, a delay before answering, a body trickled
//! piece by piece, or a body cut short (a `Content-Length` larger than what is sent, then the connection closed).
//!
//! It is hand-written rather than wiremock because wiremock turns on hyper's server features,
//! which would rebuild DataFusion and Delta for the test profile, and because a truncated body
//! needs raw control of the socket anyway.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lakehouse_runtime::sources::{Url, snapshot_path};

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Its number, from 0, in arrival order.
    pub index: usize,
    /// Path and query as sent (`/api/…/records?limit=20&offset=0`).
    pub target: String,
    /// The path alone.
    pub path: String,
    /// The decoded query pairs.
    pub query: Vec<(String, String)>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// The method (`GET`, `POST`).
    pub method: String,
    /// The body, as long as its `Content-Length` said.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of query key `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    cut_after: Option<usize>,
    announce_length: bool,
    trickle: Option<(usize, Duration)>,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.into(),
            delay: Duration::ZERO,
            cut_after: None,
            announce_length: true,
            trickle: None,
        }
    }

    /// `status` with the contents of `file` (JSON, or HTML for `.html`).
    pub fn file(status: u16, file: &Path) -> Reply {
        let body = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut reply = Reply::json(status, body);
        if file.extension().is_some_and(|e| e == "html") {
            reply.headers = vec![("Content-Type".into(), "text/html".into())];
        }
        reply
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits `delay` before answering.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Sends no `Content-Length`: the body ends when the connection closes.
    pub fn without_length(mut self) -> Reply {
        self.announce_length = false;
        self
    }

    /// Sends the body `bytes` at a time, waiting `every` before each piece (a server that
    /// trickles: every piece in time, the whole body never).
    pub fn trickle(mut self, bytes: usize, every: Duration) -> Reply {
        self.trickle = Some((bytes.max(1), every));
        self
    }

    /// Announces the whole body but sends only its first `bytes`, then closes the connection.
    pub fn cut_after(mut self, bytes: usize) -> Reply {
        self.cut_after = Some(bytes);
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running server; stopped when dropped.
pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Starts a server answering every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let counter = Arc::new(AtomicUsize::new(0));
        {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (handler, requests, counter) =
                        (handler.clone(), requests.clone(), counter.clone());
                    std::thread::spawn(move || serve(stream, &*handler, &requests, &counter));
                }
            });
        }
        TestServer {
            addr,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers one connection.
fn serve(mut stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>, n: &AtomicUsize) {
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let url = Url::parse(&format!("http://test{}", head.target)).expect("request target");
    let request = Request {
        index: n.fetch_add(1, Ordering::SeqCst),
        path: url.path().to_owned(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        target: head.target,
        authorization: head.authorization,
        method: head.method,
        body: head.body,
    };
    log.lock().expect("requests").push(request.clone());
    let reply = handler(&request);
    if !reply.delay.is_zero() {
        // The server is slow on purpose (a timeout test); the client gives up first.
        std::thread::sleep(reply.delay);
    }
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
    );
    if reply.announce_length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let body = match reply.cut_after {
        Some(n) => &reply.body[..n.min(reply.body.len())],
        None => &reply.body[..],
    };
    let _ = stream.write_all(head.as_bytes());
    match reply.trickle {
        Some((bytes, every)) => {
            for piece in body.chunks(bytes) {
                let _ = stream.flush();
                std::thread::sleep(every);
                // The client gave up: nothing more to send.
                if stream.write_all(piece).is_err() {
                    return;
                }
            }
        }
        None => {
            let _ = stream.write_all(body);
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// What [`read_head`] read of a request.
struct Head {
    method: String,
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// The request line, the `Authorization` header and the body (`Content-Length` bytes).
fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || data.len() > 64 * 1024 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&data[..end]).into_owned();
    let header = |wanted: &str| {
        text.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut body = data[end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let mut line = text.lines().next()?.split_whitespace();
    Some(Head {
        method: line.next()?.to_owned(),
        target: line.next()?.to_owned(),
        authorization: header("authorization"),
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A handler that serves the snapshot `dir` as if it were `host`: each request is answered
/// with the file [`snapshot_path`] names, or a 404.
pub fn replay(dir: PathBuf, host: &'static str) -> impl Fn(&Request) -> Reply + Send + Sync {
    move |request| {
        let url = Url::parse(&format!("https://{host}{}", request.target)).expect("URL");
        let file = snapshot_path(&dir, &url).expect("snapshot path");
        if file.is_file() {
            Reply::file(200, &file)
        } else {
            Reply::json(
                404,
                r#"{"error_code": "NotFound", "message": "no such dataset or feed"}"#,
            )
        }
    }
}
