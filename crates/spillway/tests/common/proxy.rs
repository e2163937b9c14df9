//! A fault-injecting HTTP proxy for the S3 tests: it forwards each request to the server on a
//! connection of its own (`Connection: close` both ways, so that no response needs parsing) and,
//! on command, answers the next requests with a 500 or cuts a request off in the middle of its
//! body, as a network or a server failure would.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

/// What the proxy does to the requests it is given.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer this many of the next requests with `500 Internal Server Error`.
    pub fail_next: AtomicU64,
    /// Cut every `PUT` off after this many bytes of its body (0: never).
    pub cut_puts_after: AtomicU64,
    /// Requests seen.
    pub requests: AtomicU64,
    /// Requests answered with a 500 or cut off.
    pub injected: AtomicU64,
    stop: AtomicBool,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.faults.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

impl Proxy {
    /// A proxy on 127.0.0.1 in front of `upstream` (`host:port`).
    pub fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let faults = Arc::new(Faults::default());
        let f = Arc::clone(&faults);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if f.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let f = Arc::clone(&f);
                let upstream = upstream.clone();
                thread::spawn(move || {
                    let _ = serve(conn, &upstream, &f);
                });
            }
        });
        Proxy { addr, faults }
    }

    /// The endpoint to give the client, `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one request head (through the blank line).
fn read_head(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

fn serve(mut client: TcpStream, upstream: &str, f: &Faults) -> std::io::Result<()> {
    let head = read_head(&mut client)?;
    f.requests.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&head).to_string();
    let is_put = text.starts_with("PUT ");
    let content_length: u64 = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    if f.fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        f.injected.fetch_add(1, Ordering::SeqCst);
        let mut body = vec![0u8; content_length as usize];
        let _ = client.read_exact(&mut body);
        client.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return client.shutdown(Shutdown::Both);
    }
    // Forward the head with the connection closed after this request.
    let mut head_out = String::new();
    for line in text.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") || line.is_empty() {
            continue;
        }
        head_out.push_str(line);
        head_out.push_str("\r\n");
    }
    head_out.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(head_out.as_bytes())?;
    let cut = f.cut_puts_after.load(Ordering::SeqCst);
    let mut left = content_length;
    let mut sent = 0u64;
    let mut buf = [0u8; 8192];
    while left > 0 {
        let n = client.read(&mut buf[..(left.min(8192) as usize)])?;
        if n == 0 {
            break;
        }
        if is_put && cut > 0 && sent + n as u64 > cut {
            // The connection breaks in the middle of the upload.
            f.injected.fetch_add(1, Ordering::SeqCst);
            let _ = server.shutdown(Shutdown::Both);
            return client.shutdown(Shutdown::Both);
        }
        server.write_all(&buf[..n])?;
        sent += n as u64;
        left -= n as u64;
    }
    // The response, whatever its framing, until the server closes.
    let mut out = server.try_clone()?;
    std::io::copy(&mut out, &mut client)?;
    client.shutdown(Shutdown::Both)
}
