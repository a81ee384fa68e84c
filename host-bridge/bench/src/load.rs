//! The load generator: C tokio-tungstenite client connections, each sending text
//! messages of S bytes one at a time (closed loop) and checking that every reply is
//! the message reversed; messages/s, round-trip percentiles, and the server's CPU
//! time and peak RSS over the measured phase.
//!
//! It runs on tokio's current-thread runtime: one core for the load side, so that on
//! a 2-core machine the server has the other.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::procfs;

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub conns: usize,
    pub size: usize,
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
    /// The load generator's own CPU seconds over the measured phase (1.0 per second = saturated).
    pub client_cpu_s: f64,
}

/// Runs one load on a fresh current-thread runtime.
pub fn run(cfg: &LoadConfig) -> Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(cfg))
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
    remaining: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tx: std::sync::mpsc::Sender<Instant>,
}

impl PhaseEnd {
    fn one_done(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            let _ = self.tx.send(Instant::now());
        }
    }
}

struct ConnOutcome {
    latencies_us: Vec<u32>,
}

async fn drive(
    mut ws: Ws,
    conn: usize,
    size: usize,
    start: tokio::sync::watch::Receiver<Option<Instant>>,
    deadline_after: Duration,
    max_msgs: Option<u64>,
    finished: PhaseEnd,
) -> Result<ConnOutcome> {
    let mut start = start;
    let t0 = loop {
        if let Some(t) = *start.borrow() {
            break t;
        }
        start.changed().await?;
    };
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
    Ok(ConnOutcome { latencies_us })
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

async fn run_async(cfg: &LoadConfig) -> Result<LoadResult> {
    // Connect everyone first (64 handshakes at a time: tornado's listen backlog is 128).
    let mut sockets = Vec::with_capacity(cfg.conns);
    for chunk_start in (0..cfg.conns).step_by(64) {
        let n = (cfg.conns - chunk_start).min(64);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let url = cfg.url.clone();
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

    let (start_tx, start_rx) = tokio::sync::watch::channel(None);
    let (end_tx, end_rx) = std::sync::mpsc::channel();
    let finished = PhaseEnd {
        remaining: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(sockets.len())),
        tx: end_tx,
    };
    let mut set = tokio::task::JoinSet::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        set.spawn(drive(
            ws,
            i,
            cfg.size,
            start_rx.clone(),
            cfg.duration,
            cfg.max_msgs,
            finished.clone(),
        ));
    }

    drop(finished);
    // The measured phase starts now; a plain thread samples the server's CPU time at
    // its end (the last reply, or the time limit), on time even while this
    // runtime's only thread is busy.
    let pid = cfg.server_pid;
    let cpu0 = pid.map(procfs::cpu_seconds).transpose()?;
    let client0 = procfs::thread_cpu_seconds();
    let t0 = Instant::now();
    let duration = cfg.duration;
    let sampler = std::thread::spawn(move || {
        let end = end_rx.recv_timeout(duration).unwrap_or(t0 + duration);
        (end, pid.map(procfs::cpu_seconds))
    });
    start_tx.send(Some(t0))?;

    let mut all = Vec::new();
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r? {
            Ok(o) => all.extend(o.latencies_us),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let client_cpu_s = procfs::thread_cpu_seconds() - client0;
    let (end, cpu1) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    let cpu1 = cpu1.transpose()?;
    // With a per-connection cap (M) the phase can end before `duration`.
    let secs = end.saturating_duration_since(t0).as_secs_f64().max(1e-6);
    if let Some(e) = first_err {
        return Err(e);
    }
    all.sort_unstable();
    let messages = all.len() as u64;
    let server_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(LoadResult {
        conns: cfg.conns,
        size: cfg.size,
        messages,
        secs,
        msgs_per_s: messages as f64 / secs,
        p50_us: percentile(&all, 50.0),
        p99_us: percentile(&all, 99.0),
        server_cpu_s,
        msgs_per_cpu_s: server_cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| messages as f64 / c),
        server_peak_rss_kib: pid.map(procfs::peak_rss_kib).transpose()?,
        client_cpu_s,
    })
}
