//! Shared by the server_* and bridge_* tests: an in-process server on an
//! ephemeral loopback port, the binary, a raw WebSocket client written here
//! (independent of the `websocket` crate), and the Python test clients.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use host_bridge::server::ServerConfig;
use host_bridge::testing::Server;

pub const BIN: &str = env!("CARGO_BIN_EXE_host-bridge");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

/// A server running in this process until dropped: the library's own test
/// server, on two worker threads so that the limits tests' stalled and flooding
/// clients cannot hold up the replies to the others.
pub struct TestServer {
    pub addr: SocketAddr,
    _server: Server,
}

impl TestServer {
    pub fn start(cfg: ServerConfig) -> TestServer {
        let server = Server::start_with_workers(cfg, 2).expect("start the test server");
        TestServer {
            addr: server.addr(),
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

/// A Python interpreter that has `websockets` ($PYTHON, then ci/setup.sh's venv,
/// then python3), or None.
pub fn python_with_websockets() -> Option<PathBuf> {
    let venv = repo_root().join("target/ci-venv/bin/python");
    let from_env = std::env::var_os("PYTHON").map(PathBuf::from);
    let candidates = from_env.into_iter().chain([venv, PathBuf::from("python3")]);
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import websockets"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

pub fn has_python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts `cmd` with its stderr (`from_stderr`) or else its stdout piped, and
/// hands each line of that to `ready` until it returns true; returns the child
/// and a thread that collects the lines after (so that the child never blocks
/// on a full pipe).
pub fn spawn_until_ready(
    mut cmd: Command,
    from_stderr: bool,
    mut ready: impl FnMut(&str) -> bool,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    if from_stderr {
        cmd.stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn host-bridge");
    let out: Box<dyn Read + Send> = if from_stderr {
        Box::new(child.stderr.take().expect("stderr"))
    } else {
        Box::new(child.stdout.take().expect("stdout"))
    };
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        if ready(&line.expect("a line of its output")) {
            break;
        }
    }
    let rest =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    (child, rest)
}

/// Runs `cmd` with a time limit (reading its output meanwhile); kills it when over.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let (o, e) = (
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default(),
            );
            panic!(
                "command timed out after {limit:?}\n--- stdout\n{}--- stderr\n{}",
                String::from_utf8_lossy(&o),
                String::from_utf8_lossy(&e)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

// ---- a raw RFC 6455 client, written out by hand for the tests -------------

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Sends `request` and reads the response head; returns (status, head text, leftover bytes).
pub fn http(s: &mut TcpStream, request: &str) -> (u16, String, Vec<u8>) {
    s.write_all(request.as_bytes()).expect("write request");
    read_head(s)
}

pub fn read_head(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p + 4]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            return (status, head, buf[p + 4..].to_vec());
        }
        match s.read(&mut chunk) {
            Ok(0) => return (0, String::from_utf8_lossy(&buf).into_owned(), Vec::new()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "reading the response: {e}; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
}

pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Opens an RFC 6455 connection; returns the stream and bytes already read past the head.
pub fn ws_connect(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let mut s = connect(addr);
    let (status, head, rest) = http(&mut s, &upgrade_request("/ws", ""));
    assert_eq!(status, 101, "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    (s, rest)
}

/// A masked client frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![0x80 | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one server frame: (opcode, payload). `pending` holds bytes read earlier.
pub fn read_frame(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    fn need(s: &mut TcpStream, pending: &mut Vec<u8>, n: usize) -> bool {
        let mut chunk = [0u8; 65536];
        while pending.len() < n {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(k) => pending.extend_from_slice(&chunk[..k]),
            }
        }
        true
    }
    if !need(s, pending, 2) {
        return None;
    }
    let op = pending[0] & 0x0f;
    assert_eq!(pending[1] & 0x80, 0, "server frames are not masked");
    let (len, hdr) = match pending[1] & 0x7f {
        126 => {
            if !need(s, pending, 4) {
                return None;
            }
            (u16::from_be_bytes([pending[2], pending[3]]) as usize, 4)
        }
        127 => {
            if !need(s, pending, 10) {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&pending[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if !need(s, pending, hdr + len) {
        return None;
    }
    let payload = pending[hdr..hdr + len].to_vec();
    pending.drain(..hdr + len);
    Some((op, payload))
}

/// The close code of a close frame's payload.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}
