//! The reverse-echo WebSocket server: the tutorial's tornado server, on tokio,
//! speaking RFC 6455 and hixie-76 (chosen per connection from the request's
//! headers) through the shared sans-IO `websocket` crate.
//!
//! Every text message comes back reversed by Unicode code point, every binary
//! message by byte (Python's `message[::-1]`), in the same kind of frame; with
//! `echo` unchanged. `GET /` serves a page that talks to the server.
//!
//! Three steps, three pages: this one accepts connections within the limits
//! (`max_connections`, else 503) and shuts down; `route.rs` reads the request
//! and routes it (page, refusals, the upgrade); `connection.rs` runs an upgraded
//! connection.

mod connection;
mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use websocket::handshake;
use websocket::Rng;

/// The page served at `GET /` (`__WS_PATH__` becomes the WebSocket path).
pub const PAGE: &str = include_str!("../../static/index.html");

/// Server settings; [`Default`] matches the CLI's defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// WebSocket endpoint path.
    pub path: String,
    /// Send messages back unchanged instead of reversed (for Autobahn).
    pub echo: bool,
    /// Origins allowed to connect; empty: any.
    pub allow_origins: Vec<String>,
    /// Largest message accepted (bigger: close 1009).
    pub max_message: u64,
    /// Largest request header block (bigger: 431).
    pub max_header: usize,
    /// Time a client has to complete its opening handshake.
    pub handshake_timeout: Duration,
    /// Ping a quiet client after this long (RFC 6455 only).
    pub ping_interval: Duration,
    /// Close a connection on which nothing arrived (not even a pong) for this long;
    /// also the limit for one write to a client that doesn't read.
    pub idle_timeout: Duration,
    /// Time to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
    /// Open connections at most (more: 503).
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            path: "/ws".into(),
            echo: false,
            allow_origins: Vec::new(),
            max_message: 1 << 20,
            max_header: 8 * 1024,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(2),
            max_connections: 1024,
        }
    }
}

/// Read buffer per connection (frames stream through it in chunks).
const READ_BUF: usize = 16 * 1024;
/// Largest read: a big message's announced payload is read this much at a time,
/// so a header announcing 1 MiB does not make every connection allocate 1 MiB.
const MAX_READ: usize = 256 * 1024;
/// Replies collected before one write; larger messages are written directly.
const OUT_BATCH: usize = 64 * 1024;
/// Connections being refused with 503 at once, at most (beyond: dropped).
const MAX_REJECTING: usize = 64;

struct NoRng;
impl Rng for NoRng {
    // A server never masks; nothing asks it for randomness.
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

struct Shared {
    cfg: ServerConfig,
    page: Vec<u8>,
    slots: Arc<Semaphore>,
    rejecting: Arc<Semaphore>,
    shutdown: CancellationToken,
}

/// Serves on `listener` until `shutdown` is cancelled, then closes every open
/// connection with 1001 (waiting up to `close_timeout` for the peers) and returns.
pub async fn serve(
    listener: TcpListener,
    cfg: ServerConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    let body = PAGE.replace("__WS_PATH__", &cfg.path);
    let page = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let shared = Arc::new(Shared {
        slots: Arc::new(Semaphore::new(cfg.max_connections)),
        rejecting: Arc::new(Semaphore::new(MAX_REJECTING)),
        cfg,
        page,
        shutdown: shutdown.clone(),
    });
    let tracker = TaskTracker::new();
    if let Ok(addr) = listener.local_addr() {
        info!(
            "*** Websocket Server Started at {addr} (path {}) ***",
            shared.cfg.path
        );
    }
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        admit(stream, peer, &shared, &tracker);
    }
    drop(listener);
    tracker.close();
    // Connections close themselves with 1001; cap the wait in case one hangs.
    let cap = shared.cfg.close_timeout + Duration::from_secs(3);
    if timeout(cap, tracker.wait()).await.is_err() {
        warn!("some connections did not finish closing in {cap:?}");
    }
    Ok(())
}

/// Hands a new connection to its own task, within the limit of open connections;
/// beyond it, answers 503 (a few at a time; beyond those, drops it).
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, tracker: &TaskTracker) {
    let _ = stream.set_nodelay(true);
    if let Ok(permit) = shared.slots.clone().try_acquire_owned() {
        let shared = shared.clone();
        tracker.spawn(async move {
            route::handle(stream, peer, &shared).await;
            drop(permit);
        });
    } else if let Ok(permit) = shared.rejecting.clone().try_acquire_owned() {
        let shared = shared.clone();
        tracker.spawn(async move {
            debug!(
                "{peer}: refused, {} connections open",
                shared.cfg.max_connections
            );
            refuse(stream, 503, &shared.cfg).await;
            drop(permit);
        });
    }
}

/// Reads the request head (briefly) so the client sees the answer, then sends a
/// bodiless error response and closes.
async fn refuse(mut stream: TcpStream, status: u16, cfg: &ServerConfig) {
    let mut buf = vec![0u8; 4096];
    let _ = timeout(
        Duration::from_millis(500).min(cfg.handshake_timeout),
        async {
            let mut have = 0;
            while have < buf.len() {
                match stream.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => have += n,
                }
                if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        },
    )
    .await;
    send_status(&mut stream, status).await;
}

/// Sends a bodiless error response, then closes gracefully: FIN first, and the
/// client's unread bytes drained for a moment, so that closing with data still
/// unread (which sends a RST) doesn't destroy the response before it is read.
async fn send_status(stream: &mut TcpStream, status: u16) {
    let mut out = [0u8; 256];
    if let Ok(n) = handshake::write_error_response(status, &mut out) {
        let _ = timeout(Duration::from_secs(2), async {
            let _ = stream.write_all(&out[..n]).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }
    let _ = timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(k) => left = left.saturating_sub(k),
            }
        }
    })
    .await;
}
