//! Loopback servers the checks and services talk to, and port probes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::workspace;

/// Python's http.server with the routes of tests/fixtures/http_server.py.
pub struct HttpServer {
    child: Child,
    pub port: u16,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/fixtures/http_server.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 http server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .expect("PORT line");
        HttpServer { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn grant(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server on loopback answering `+PONG\r\n` to anything containing
/// PING, and staying silent otherwise.
pub struct PongServer {
    pub port: u16,
}

impl PongServer {
    pub fn start() -> PongServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 {
                            break;
                        }
                        if buffer[..n].windows(4).any(|w| w == b"PING") {
                            let _ = stream.write_all(b"+PONG\r\n");
                        }
                    }
                });
            }
        });
        PongServer { port }
    }
}

/// A port with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// True when something accepts TCP connections on loopback `port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// A loopback HTTP server answering 200 to everything and recording when
/// each request arrived, stamped like the journal (RFC 3339, UTC,
/// milliseconds), so that requests can be placed between journal events.
pub struct RequestLog {
    pub port: u16,
    arrivals: Arc<Mutex<Vec<String>>>,
}

impl RequestLog {
    pub fn start() -> RequestLog {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let log = arrivals.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let stamp = vigil::journal::timestamp(std::time::SystemTime::now());
                    log.lock().expect("log").push(stamp);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        RequestLog { port, arrivals }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn grant(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Arrival stamps so far, oldest first.
    pub fn arrivals(&self) -> Vec<String> {
        self.arrivals.lock().expect("log").clone()
    }
}
