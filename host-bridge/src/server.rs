//! The reverse-echo WebSocket server: the tutorial's tornado server, on tokio,
//! speaking RFC 6455 and hixie-76 (chosen per connection from the request's
//! headers) through the shared sans-IO `websocket` crate.
//!
//! Every text message comes back reversed by Unicode code point, every binary
//! message by byte (Python's `message[::-1]`), in the same kind of frame; with
//! `echo` unchanged. `GET /` serves a page that talks to the server.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Level};
use websocket::handshake::{self, hixie76, rfc6455, Parse};
use websocket::{close_code, CloseState, Connection, Event, MessageKind, Protocol, Rng, Role};

/// The page served at `GET /` (`__WS_PATH__` becomes the WebSocket path).
pub const PAGE: &str = include_str!("../static/index.html");

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
        let _ = stream.set_nodelay(true);
        match shared.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                tracker.spawn(async move {
                    handle(stream, peer, &shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                if let Ok(permit) = shared.rejecting.clone().try_acquire_owned() {
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
        }
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

fn origin_allowed(cfg: &ServerConfig, origin: Option<&str>) -> bool {
    cfg.allow_origins.is_empty()
        || origin.is_some_and(|o| cfg.allow_origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
}

enum Routed {
    Upgrade {
        protocol: Protocol,
        consumed: usize,
    },
    Refused(u16),
    Page,
    /// The client went away while we answered.
    Gone,
}

async fn handle(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let cfg = &shared.cfg;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let deadline = Instant::now() + cfg.handshake_timeout;
    let routed = loop {
        if let Some(r) = route(&buf, shared, &mut stream, peer).await {
            break r;
        }
        if buf.len() >= cfg.max_header + 8 {
            break Routed::Refused(431);
        }
        if buf.capacity() == buf.len() {
            buf.reserve(READ_BUF);
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = sleep_until(deadline) => {
                debug!("{peer}: handshake timed out");
                send_status(&mut stream, 408).await;
                return;
            }
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
    };
    match routed {
        Routed::Refused(status) => {
            debug!("{peer}: refused with {status}");
            send_status(&mut stream, status).await;
        }
        Routed::Gone => {}
        Routed::Page => {
            let _ = timeout(cfg.idle_timeout, async {
                let _ = stream.write_all(&shared.page).await;
                let _ = stream.shutdown().await;
            })
            .await;
        }
        Routed::Upgrade { protocol, consumed } => {
            buf.drain(..consumed);
            info!("new connection from {peer} ({})", protocol.name());
            let code = run_connection(&mut stream, peer, protocol, buf, shared).await;
            match code {
                Some(c) => info!("connection closed: {peer} ({c})"),
                None => info!("connection closed: {peer}"),
            }
        }
    }
}

/// Decides what to do with the bytes received so far; None: need more. Writes
/// the 101 answer itself (it borrows from `buf`).
async fn route(
    buf: &[u8],
    shared: &Shared,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Option<Routed> {
    let cfg = &shared.cfg;
    let head = match handshake::parse_head(buf, cfg.max_header) {
        Ok(Parse::Incomplete) => return None,
        Err(e) => return Some(Routed::Refused(e.http_status().unwrap_or(400))),
        Ok(Parse::Done { value, .. }) => value,
    };
    if head.path() != cfg.path {
        return Some(match (head.method, head.path()) {
            ("GET", "/" | "/index.html") => Routed::Page,
            ("GET", _) => Routed::Refused(404),
            _ => Routed::Refused(405),
        });
    }
    let protocol = head.protocol().unwrap_or(Protocol::Rfc6455);
    // Each protocol's parser gives the request's Origin and our answer to it,
    // written into `out` (sent only if the Origin is allowed).
    let mut out = [0u8; 1024];
    let parsed = match protocol {
        Protocol::Hixie76 => hixie76::parse_request(buf, cfg.max_header).map(|p| {
            done(p).map(|(req, consumed)| {
                let answer = hixie76::write_accept(&req, req.protocol, &mut out);
                (req.origin, consumed, answer)
            })
        }),
        Protocol::Rfc6455 => rfc6455::parse_request(buf, cfg.max_header).map(|p| {
            done(p).map(|(req, consumed)| {
                // No subprotocols of our own: select none.
                let answer = rfc6455::write_accept(&req, None, &mut out);
                (req.origin, consumed, answer)
            })
        }),
    };
    let (origin, consumed, answer) = match parsed {
        Ok(None) => return None,
        Ok(Some(request)) => request,
        Err(e) => {
            debug!("{peer}: bad {} handshake: {e}", protocol.name());
            return Some(Routed::Refused(e.http_status().unwrap_or(400)));
        }
    };
    if !origin_allowed(cfg, origin) {
        debug!("{peer}: origin {origin:?} refused");
        return Some(Routed::Refused(403));
    }
    let Ok(n) = answer else {
        return Some(Routed::Refused(400));
    };
    match timeout(cfg.handshake_timeout, stream.write_all(&out[..n])).await {
        Ok(Ok(())) => Some(Routed::Upgrade { protocol, consumed }),
        _ => Some(Routed::Gone),
    }
}

/// A complete parse as (value, bytes consumed); `None` while incomplete.
fn done<T>(parse: Parse<T>) -> Option<(T, usize)> {
    match parse {
        Parse::Incomplete => None,
        Parse::Done { value, consumed } => Some((value, consumed)),
    }
}

/// A short, lossy view of a message for the log.
fn preview(kind: MessageKind, data: &[u8]) -> String {
    const MAX: usize = 200;
    match kind {
        MessageKind::Text => {
            let s = String::from_utf8_lossy(&data[..data.len().min(MAX)]);
            if data.len() > MAX {
                format!("{s}... ({} bytes)", data.len())
            } else {
                s.into_owned()
            }
        }
        MessageKind::Binary => format!("<{} bytes binary>", data.len()),
    }
}

/// Appends our close frame; returns whether one was sent.
fn queue_close(conn: &mut Connection, code: u16, reason: &str, out: &mut Vec<u8>) -> bool {
    let mut frame = [0u8; 128];
    match conn.close(Some(code), reason, &mut frame, &mut NoRng) {
        Ok(n) => {
            out.extend_from_slice(&frame[..n]);
            true
        }
        Err(_) => false,
    }
}

/// Runs one upgraded connection; returns the close code that ended it, if any.
async fn run_connection(
    stream: &mut TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    mut buf: Vec<u8>,
    shared: &Shared,
) -> Option<u16> {
    let cfg = &shared.cfg;
    let mut conn = Connection::new(protocol, Role::Server, cfg.max_message);
    let mut msg: Vec<u8> = Vec::new();
    // Payload bytes of the current message announced by its header and not read
    // yet: the next read asks for all of them at once.
    let mut awaited: usize = 0;
    let mut kind = MessageKind::Text;
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut last_rx = Instant::now();
    let mut pinged = false;
    let mut close_deadline: Option<Instant> = None;
    let mut ended_with: Option<u16> = None;
    let log_messages = tracing::enabled!(Level::INFO);
    let timer = tokio::time::sleep_until(next_wake(last_rx, false, None, protocol, cfg));
    tokio::pin!(timer);
    // Registered once per connection, not once per read.
    let cancelled = shared.shutdown.cancelled();
    tokio::pin!(cancelled);
    buf.reserve(READ_BUF.saturating_sub(buf.len()));

    loop {
        // 1. Decode everything buffered.
        let mut pos = 0;
        let mut failed = false;
        // Call until it reports None, even with no input left: an event (such as
        // MessageEnd after the last payload byte) may still be pending.
        loop {
            let input = buf.get_mut(pos..).unwrap_or_default();
            let (n, ev) = match conn.read(input) {
                Ok(r) => r,
                Err(e) => {
                    debug!("{peer}: {e}");
                    if let Some(code) = e.close_code() {
                        queue_close(&mut conn, code, e.as_str(), &mut out);
                        ended_with = Some(code);
                    }
                    failed = true;
                    break;
                }
            };
            pos += n;
            let mut complete = false;
            let mut pinged_by_peer = false;
            match ev {
                None => break,
                Some(Event::MessageStart { kind: k, len }) => {
                    kind = k;
                    msg.clear();
                    if let Some(len) = len {
                        awaited = len.min(cfg.max_message) as usize;
                        msg.reserve(awaited);
                    }
                }
                Some(Event::Data(chunk)) => {
                    awaited = awaited.saturating_sub(chunk.len());
                    msg.extend_from_slice(chunk);
                }
                Some(Event::MessageEnd) => {
                    awaited = 0;
                    complete = true;
                }
                Some(Event::Close { code, .. }) => {
                    ended_with = ended_with.or(code).or(Some(close_code::NORMAL));
                }
                Some(Event::Ping(_)) => pinged_by_peer = true,
                Some(Event::Pong(_)) => {}
            }
            if pinged_by_peer {
                // Answer at once, in order with the replies around it.
                let mut ctl = [0u8; 300];
                if let Ok(n) = conn.poll_write(&mut ctl, &mut NoRng) {
                    out.extend_from_slice(&ctl[..n]);
                }
            }
            if complete && conn.close_state() == CloseState::Open {
                if log_messages {
                    info!("message received from {peer}: {}", preview(kind, &msg));
                }
                if !cfg.echo {
                    reverse_echo::reverse(kind, &mut msg);
                }
                if log_messages {
                    info!("sending back message to {peer}: {}", preview(kind, &msg));
                }
                if let Err(e) =
                    queue_message(&mut conn, kind, &mut msg, &mut out, stream, cfg).await
                {
                    debug!("{peer}: {e}");
                    if matches!(e, SendError::Io) {
                        return ended_with;
                    }
                }
                if msg.capacity() > 4 * OUT_BATCH {
                    // Don't hold a big message's memory for the rest of the connection.
                    msg = Vec::new();
                }
            }
        }
        if buf.capacity() > MAX_READ {
            // Don't hold a big message's read buffer for the rest of the connection.
            buf = Vec::new();
        }
        buf.clear();

        // 2. Automatic replies (pong, close answer).
        if !failed {
            let mut ctl = [0u8; 300];
            match conn.poll_write(&mut ctl, &mut NoRng) {
                Ok(n) => out.extend_from_slice(&ctl[..n]),
                Err(e) => debug!("{peer}: {e}"),
            }
        }
        if !out.is_empty() {
            if !matches!(
                timeout(cfg.idle_timeout, stream.write_all(&out)).await,
                Ok(Ok(()))
            ) {
                return ended_with;
            }
            out.clear();
        }
        if failed || conn.close_state() == CloseState::Done {
            // The server closes TCP first (RFC 6455 section 7.1.1).
            let _ = timeout(cfg.close_timeout, stream.shutdown()).await;
            return ended_with;
        }

        // 3. Wait for input, a timer, or shutdown. The timer is moved only when
        // it must fire earlier; a late one just re-arms when it fires, so a busy
        // connection doesn't touch the timer wheel on every read.
        let wake = next_wake(last_rx, pinged, close_deadline, protocol, cfg);
        if wake < timer.deadline() {
            timer.as_mut().reset(wake);
        }
        let want = READ_BUF.max((awaited + websocket::frame::MAX_HEADER_LEN).min(MAX_READ));
        if buf.capacity() < want {
            buf.reserve(want);
        }
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return ended_with,
                Ok(_) => {
                    last_rx = Instant::now();
                    pinged = false;
                }
            },
            _ = &mut timer => {
                let now = Instant::now();
                if close_deadline.is_some_and(|d| now >= d) {
                    return ended_with;
                }
                if close_deadline.is_none() && now >= last_rx + cfg.idle_timeout {
                    debug!("{peer}: idle for {:?}", cfg.idle_timeout);
                    if queue_close(&mut conn, close_code::GOING_AWAY, "idle timeout", &mut out) {
                        ended_with = Some(close_code::GOING_AWAY);
                    }
                    close_deadline = Some(now + cfg.close_timeout);
                } else if protocol == Protocol::Rfc6455 && !pinged && now >= last_rx + cfg.ping_interval {
                    let mut ping = [0u8; 16];
                    if let Ok(n) = conn.tx.ping(b"", &mut ping, &mut NoRng) {
                        out.extend_from_slice(&ping[..n]);
                    }
                    pinged = true;
                }
                let wake = next_wake(last_rx, pinged, close_deadline, protocol, cfg);
                timer.as_mut().reset(wake.max(now + Duration::from_millis(1)));
            }
            _ = &mut cancelled, if close_deadline.is_none() => {
                if queue_close(&mut conn, close_code::GOING_AWAY, "server shutting down", &mut out) {
                    ended_with = Some(close_code::GOING_AWAY);
                }
                close_deadline = Some(Instant::now() + cfg.close_timeout);
            }
        }
    }
}

/// When the connection's timer must next look: the close deadline, else the
/// ping (RFC 6455, once per quiet spell) or idle time.
fn next_wake(
    last_rx: Instant,
    pinged: bool,
    close_deadline: Option<Instant>,
    protocol: Protocol,
    cfg: &ServerConfig,
) -> Instant {
    let idle_at = last_rx + cfg.idle_timeout;
    match close_deadline {
        Some(d) => d,
        None if protocol == Protocol::Rfc6455 && !pinged => {
            (last_rx + cfg.ping_interval).min(idle_at)
        }
        None => idle_at,
    }
}

enum SendError {
    Protocol(websocket::Error),
    Io,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Protocol(e) => write!(f, "reply not sent: {e}"),
            SendError::Io => f.write_str("write failed"),
        }
    }
}

/// Frames `msg` as one message of `kind`: small ones are appended to `out` (one
/// write for a batch), large ones written straight from `msg` (no copy).
async fn queue_message(
    conn: &mut Connection,
    kind: MessageKind,
    msg: &mut [u8],
    out: &mut Vec<u8>,
    stream: &mut TcpStream,
    cfg: &ServerConfig,
) -> Result<(), SendError> {
    let mut head = [0u8; websocket::frame::MAX_HEADER_LEN];
    let mut tail = [0u8; 1];
    let h = conn
        .tx
        .begin_message(kind, msg.len() as u64, &mut head, &mut NoRng)
        .map_err(SendError::Protocol)?;
    if let Err(e) = conn.tx.payload_in_place(msg) {
        return Err(SendError::Protocol(e));
    }
    let t = conn
        .tx
        .end_message(&mut tail)
        .map_err(SendError::Protocol)?;
    if msg.len() < OUT_BATCH {
        out.extend_from_slice(&head[..h]);
        out.extend_from_slice(msg);
        out.extend_from_slice(&tail[..t]);
        if out.len() >= OUT_BATCH {
            write_out(stream, out, cfg).await?;
        }
        return Ok(());
    }
    // What is queued, then the frame, without copying the message: one `writev`
    // when the socket takes it all.
    let parts = [&out[..], &head[..h], msg, &tail[..t]];
    match timeout(cfg.idle_timeout, write_all_vectored(stream, parts)).await {
        Ok(Ok(())) => {
            out.clear();
            Ok(())
        }
        _ => Err(SendError::Io),
    }
}

/// Writes all of `parts`, in order, with as few system calls as the socket allows.
async fn write_all_vectored(stream: &mut TcpStream, parts: [&[u8]; 4]) -> std::io::Result<()> {
    let mut slices = parts.map(IoSlice::new);
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = stream.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

async fn write_out(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    cfg: &ServerConfig,
) -> Result<(), SendError> {
    if out.is_empty() {
        return Ok(());
    }
    match timeout(cfg.idle_timeout, stream.write_all(out)).await {
        Ok(Ok(())) => {
            out.clear();
            Ok(())
        }
        _ => Err(SendError::Io),
    }
}
