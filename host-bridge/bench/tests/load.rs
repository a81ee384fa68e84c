//! The load generator against the tokio-tungstenite peer server over loopback: with
//! a per-connection cap, every connection's every message must be counted once,
//! whether one load thread or several share the connections out.

use std::process::{Child, Command, Stdio};

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer_server() -> Server {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tt-reverse-server"))
        .args(["--listen", "127.0.0.1:0", "--quiet"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tt-reverse-server");
    // Its first line says where it listens (port 0: a free port of its choosing).
    let mut first = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read the server's first line");
    let port = first
        .trim()
        .strip_prefix("listening on ")
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the peer server said {first:?}, not `listening on ADDR`"));
    Server(child, port)
}

/// Runs `bench load` and returns its JSON result.
fn load(server: &Server, conns: usize, msgs: u64, threads: usize) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["load", "--url", &format!("ws://127.0.0.1:{}/ws", server.1)])
        .args(["-c", &conns.to_string(), "-s", "100", "--secs", "20"])
        .args(["--msgs", &msgs.to_string()])
        .args(["--pid", &server.0.id().to_string()])
        .args(["--client-threads", &threads.to_string()])
        .output()
        .expect("run bench load");
    assert!(
        out.status.success(),
        "bench load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bench load prints JSON")
}

/// Runs `bench load` against a fresh peer server and fails unless it counted
/// `messages` round trips on `client_threads` threads; returns its JSON result.
#[track_caller]
fn load_counts(
    (conns, msgs, threads): (usize, u64, usize),
    messages: u64,
    client_threads: usize,
) -> serde_json::Value {
    let server = start_peer_server();
    let r = load(&server, conns, msgs, threads);
    assert_eq!(r["messages"], messages);
    assert_eq!(r["client_threads"], client_threads);
    r
}

#[test]
fn every_message_of_every_connection_is_counted_with_one_load_thread() {
    let r = load_counts((5, 40, 1), 200, 1);
    // The server's CPU time is sampled (--pid), but /proc counts it in 10 ms ticks:
    // a run this short may read 0, and then there is no per-CPU-second figure.
    let server_cpu = r["server_cpu_s"].as_f64();
    assert!(server_cpu.is_some_and(|s| s >= 0.0), "{r}");
    assert!(
        r["server_peak_rss_kib"].as_u64().is_some_and(|k| k > 0),
        "{r}"
    );
    match r["msgs_per_cpu_s"].as_f64() {
        Some(per_cpu_s) => assert!(per_cpu_s > 0.0, "{r}"),
        None => assert_eq!(server_cpu, Some(0.0), "{r}"),
    }
}

#[test]
fn two_load_threads_share_the_connections_and_count_them_all() {
    // 5 connections over 2 threads: 3 and 2.
    load_counts((5, 40, 2), 200, 2);
}

#[test]
fn more_load_threads_than_connections_uses_one_thread_per_connection() {
    load_counts((1, 30, 4), 30, 1);
}

#[test]
fn a_dead_server_is_a_clear_error() {
    // A port that is bound but never listened on: every connection is refused, and
    // no parallel test can take it meanwhile (as it could a released one).
    let dead = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    dead.bind(([127, 0, 0, 1], 0).into())
        .expect("bind 127.0.0.1:0");
    let port = dead.local_addr().expect("bound address").port();
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["load", "--url", &format!("ws://127.0.0.1:{port}/ws")])
        .args(["-c", "4", "--msgs", "5", "--client-threads", "2"])
        .output()
        .expect("run bench load");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connect to 127.0.0.1"), "{err}");
}
