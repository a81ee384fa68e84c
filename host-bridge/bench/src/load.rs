//! The load generator: C tokio-tungstenite client connections, each sending text
//! messages of S bytes one at a time (closed loop) and checking that every reply is
//! the message reversed; messages/s, round-trip percentiles, and the server's CPU
//! time and peak RSS over the measured phase.
//!
//! Each load thread runs tokio's current-thread runtime. With one thread the load
//! side takes one core and the server has the other of a 2-core machine; with two,
//! the load can saturate the server (the three then share the two cores).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::procfs;
use crate::stats::nearest_rank;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `ws://127.0.0.1:PORT/PATH`
    pub url: String,
    /// Connections (C).
    pub conns: usize,
    /// Message size in bytes (S).
    pub size: usize,
    /// Length of the measured phase.
    pub duration: Duration,
    /// Per-connection cap on messages (M); `None`: as many as fit in `duration`.
    pub max_msgs: Option<u64>,
    /// The server's process, for its CPU time and peak RSS.
    pub server_pid: Option<u32>,
    /// Load generator threads, each a current-thread runtime with its share of
    /// the connections. One leaves the server the other core of a 2-core machine
    /// (and bounds messages/s by the client); two can saturate the server.
    pub client_threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub conns: usize,
    pub size: usize,
    /// Load generator threads (older results: 1).
    #[serde(default = "one")]
    pub client_threads: usize,
    /// Round trips completed (reply checked) within the measured phase.
    pub messages: u64,
    /// Length of the measured phase, seconds.
    pub secs: f64,
    pub msgs_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Server CPU seconds (utime + stime) over the measured phase.
    pub server_cpu_s: Option<f64>,
    /// messages / server CPU second: the figure that the client's speed does not bound.
    pub msgs_per_cpu_s: Option<f64>,
    /// Server's VmHWM after the run, KiB.
    pub server_peak_rss_kib: Option<u64>,
    /// The load generator's own CPU seconds over the measured phase, all its
    /// threads together (1.0 per second and thread = saturated).
    pub client_cpu_s: f64,
}

fn one() -> usize {
    1
}

type Ws = WebSocketStream<TcpStream>;

async fn connect(url: &str) -> Result<Ws> {
    let addr = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .with_context(|| format!("not a ws:// URL: {url}"))?;
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(ws)
}

/// Connects one client, sends `text`, and checks that the reply is `text` reversed by
/// character: a check of the server's UTF-8 handling before any load.
pub fn probe(url: &str, text: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut ws = connect(url).await?;
        ws.send(Message::text(text)).await?;
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .context("no reply within 5 s")?
            .context("closed without a reply")??;
        let want: String = text.chars().rev().collect();
        match reply {
            Message::Text(t) if t.as_str() == want => {}
            other => bail!("sent {text:?}, expected {want:?}, got {other:?}"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        Ok(())
    })
}

/// Printable ASCII filler, different per connection (xorshift).
fn payload(conn: usize, size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (conn as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 94) as u8
        })
        .collect()
}

/// Writes `seq` as hex into the front of `buf` so that every message differs and a
/// stale or misrouted reply fails the check.
fn stamp(buf: &mut [u8], seq: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = buf.len().min(16);
    for (i, b) in buf[..n].iter_mut().enumerate() {
        *b = HEX[((seq >> (4 * (i % 16))) & 0xf) as usize];
    }
}

/// Tells the CPU sampler when the last connection has had its last reply, so that
/// the phase ends then (not after the closing handshakes) when every connection
/// sent its M messages before the time limit.
#[derive(Clone)]
struct PhaseEnd {
    remaining: Arc<AtomicUsize>,
    tx: mpsc::Sender<Instant>,
}

impl PhaseEnd {
    fn one_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.tx.send(Instant::now());
        }
    }
}

async fn drive(
    mut ws: Ws,
    conn: usize,
    size: usize,
    t0: Instant,
    deadline_after: Duration,
    max_msgs: Option<u64>,
    finished: PhaseEnd,
) -> Result<Vec<u32>> {
    let deadline = t0 + deadline_after;
    let mut buf = payload(conn, size);
    let mut latencies_us = Vec::with_capacity(4096);
    let mut seq = 0u64;
    loop {
        if Instant::now() >= deadline || max_msgs.is_some_and(|m| seq >= m) {
            break;
        }
        stamp(&mut buf, seq ^ ((conn as u64) << 40));
        let text = String::from_utf8(buf.clone()).expect("ASCII payload");
        let sent_at = Instant::now();
        ws.send(Message::text(text)).await?;
        let reply = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break t,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => bail!("connection {conn}: unexpected {other:?}"),
                Some(Err(e)) => return Err(e).context(format!("connection {conn}")),
                None => bail!("connection {conn}: closed by the server"),
            }
        };
        let done = Instant::now();
        let r = reply.as_bytes();
        if r.len() != buf.len() || !r.iter().rev().eq(buf.iter()) {
            bail!("connection {conn}: reply {seq} is not the message reversed");
        }
        if done <= deadline {
            let us = (done - sent_at).as_micros().min(u32::MAX as u128) as u32;
            latencies_us.push(us);
        }
        seq += 1;
    }
    finished.one_done();
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    Ok(latencies_us)
}

/// The two moments every client thread waits for: all connected (the coordinator
/// then reads the server's CPU time and the start time), and go.
struct StartLine {
    connected: Barrier,
    go: Barrier,
    t0: OnceLock<Instant>,
}

/// What one client thread measured.
struct ThreadOutcome {
    latencies_us: Vec<u32>,
    cpu_s: f64,
}

/// One client thread: its own current-thread runtime and its share of the
/// connections (`ids`). It always reaches both barriers, even when connecting
/// failed, so that the others are never left waiting.
fn client_thread(
    cfg: LoadConfig,
    ids: Vec<usize>,
    handshakes_at_once: usize,
    start: Arc<StartLine>,
    finished: PhaseEnd,
) -> Result<ThreadOutcome> {
    let connected = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let sockets = rt.block_on(connect_all(&cfg.url, ids.len(), handshakes_at_once))?;
            Ok((rt, sockets))
        });
    start.connected.wait();
    start.go.wait();
    let (rt, sockets) = match connected {
        Ok(c) => c,
        Err(e) => {
            // Its connections will send nothing: the phase must not wait for them.
            ids.iter().for_each(|_| finished.one_done());
            return Err(e);
        }
    };
    let t0 = *start.t0.get().context("start time not set")?;
    let cpu0 = procfs::thread_cpu_seconds();
    let outcome = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (&id, ws) in ids.iter().zip(sockets) {
            set.spawn(drive(
                ws,
                id,
                cfg.size,
                t0,
                cfg.duration,
                cfg.max_msgs,
                finished.clone(),
            ));
        }
        drop(finished);
        let mut all = Vec::new();
        let mut first_err = None;
        while let Some(r) = set.join_next().await {
            match r? {
                Ok(l) => all.extend(l),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(all),
        }
    })?;
    Ok(ThreadOutcome {
        latencies_us: outcome,
        cpu_s: procfs::thread_cpu_seconds() - cpu0,
    })
}

/// Opens `n` connections, `at_once` handshakes at a time (tornado's listen
/// backlog is 128).
async fn connect_all(url: &str, n: usize, at_once: usize) -> Result<Vec<Ws>> {
    let mut sockets = Vec::with_capacity(n);
    for chunk_start in (0..n).step_by(at_once.max(1)) {
        let k = (n - chunk_start).min(at_once.max(1));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..k {
            let url = url.to_string();
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(30), connect(&url))
                    .await
                    .context("connect and handshake took over 30 s")?
            });
        }
        while let Some(r) = set.join_next().await {
            sockets.push(r??);
        }
    }
    Ok(sockets)
}

/// Runs one load: `cfg.client_threads` threads, each a current-thread runtime with
/// every n-th connection; they connect first, then start the measured phase
/// together.
pub fn run(cfg: &LoadConfig) -> Result<LoadResult> {
    if cfg.conns == 0 {
        bail!("a load needs at least one connection (-c/--conns)");
    }
    let threads = cfg.client_threads.clamp(1, cfg.conns.max(1));
    let start = Arc::new(StartLine {
        connected: Barrier::new(threads + 1),
        go: Barrier::new(threads + 1),
        t0: OnceLock::new(),
    });
    let (end_tx, end_rx) = mpsc::channel();
    let finished = PhaseEnd {
        remaining: Arc::new(AtomicUsize::new(cfg.conns)),
        tx: end_tx,
    };
    let workers: Vec<_> = (0..threads)
        .map(|k| {
            let ids: Vec<usize> = (k..cfg.conns).step_by(threads).collect();
            let (cfg, start, finished) = (cfg.clone(), start.clone(), finished.clone());
            std::thread::spawn(move || client_thread(cfg, ids, 64 / threads, start, finished))
        })
        .collect();
    drop(finished);

    // The measured phase runs from "go" to the last reply (or the time limit); this
    // thread is idle meanwhile, so it samples the server's CPU time on time.
    start.connected.wait();
    let pid = cfg.server_pid;
    let cpu0 = pid.map(procfs::cpu_seconds).transpose();
    let t0 = Instant::now();
    let _ = start.t0.set(t0);
    start.go.wait();
    let end = end_rx
        .recv_timeout(cfg.duration)
        .unwrap_or(t0 + cfg.duration);
    let cpu1 = pid.map(procfs::cpu_seconds).transpose();

    let mut all = Vec::new();
    let mut client_cpu_s = 0.0;
    let mut first_err = None;
    for w in workers {
        match w.join() {
            Ok(Ok(o)) => {
                all.extend(o.latencies_us);
                client_cpu_s += o.cpu_s;
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(anyhow::anyhow!("a client thread panicked"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let (cpu0, cpu1) = (cpu0?, cpu1?);
    // With a per-connection cap (M) the phase can end before `duration`.
    let secs = end.saturating_duration_since(t0).as_secs_f64().max(1e-6);
    all.sort_unstable();
    let messages = all.len() as u64;
    let server_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(LoadResult {
        conns: cfg.conns,
        size: cfg.size,
        client_threads: threads,
        messages,
        secs,
        msgs_per_s: messages as f64 / secs,
        p50_us: nearest_rank(&all, 50.0).map_or(f64::NAN, f64::from),
        p99_us: nearest_rank(&all, 99.0).map_or(f64::NAN, f64::from),
        server_cpu_s,
        msgs_per_cpu_s: server_cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| messages as f64 / c),
        server_peak_rss_kib: pid.map(procfs::peak_rss_kib).transpose()?,
        client_cpu_s,
    })
}
