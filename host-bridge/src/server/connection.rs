//! One upgraded connection: decode what arrived, answer each complete message
//! (reversed, or unchanged with `echo`), send the automatic replies (pong, close
//! answer), then wait for more input, the ping/idle/close timer, or shutdown.
//! [`run_connection`] is that loop; [`Link`] holds the connection's state and
//! has one method per step.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tracing::{debug, info, warn, Level};
use websocket::{close_code, CloseState, Connection, Event, MessageKind, Protocol, Role};

use super::{NoRng, ServerConfig, Shared, MAX_READ, OUT_BATCH, READ_BUF};

/// Runs one upgraded connection; `buf` holds what came after the handshake.
/// Returns the close code that ended it, if any.
pub(super) async fn run_connection(
    stream: &mut TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    mut buf: Vec<u8>,
    shared: &Shared,
) -> Option<u16> {
    let cfg = &shared.cfg;
    let mut link = Link::new(stream, peer, protocol, cfg);
    let timer = tokio::time::sleep_until(link.next_wake());
    tokio::pin!(timer);
    // Registered once per connection, not once per read.
    let cancelled = shared.shutdown.cancelled();
    tokio::pin!(cancelled);
    buf.reserve(READ_BUF.saturating_sub(buf.len()));

    loop {
        // 1. Decode everything buffered, answering each complete message.
        let Ok(failed) = link.decode(&mut buf).await else {
            return link.ended_with;
        };
        if buf.capacity() > MAX_READ {
            // Don't hold a big message's read buffer for the rest of the connection.
            buf = Vec::new();
        }
        buf.clear();

        // 2. Automatic replies (pong, close answer), then everything queued.
        if !failed {
            link.queue_automatic();
        }
        if !link.flush().await {
            return link.ended_with;
        }
        if failed || link.conn.close_state() == CloseState::Done {
            // The server closes TCP first (RFC 6455 section 7.1.1).
            let _ = timeout(cfg.close_timeout, link.stream.shutdown()).await;
            return link.ended_with;
        }

        // 3. Wait for input, a timer, or shutdown. The timer is moved only when
        // it must fire earlier; a late one just re-arms when it fires, so a busy
        // connection doesn't touch the timer wheel on every read.
        let wake = link.next_wake();
        if wake < timer.deadline() {
            timer.as_mut().reset(wake);
        }
        let want = READ_BUF.max((link.awaited + websocket::frame::MAX_HEADER_LEN).min(MAX_READ));
        if buf.capacity() < want {
            buf.reserve(want);
        }
        tokio::select! {
            r = link.stream.read_buf(&mut buf) => match r {
                Ok(0) => return link.ended_with,
                Err(e) => {
                    info!("{peer}: connection lost: {e}");
                    return link.ended_with;
                }
                Ok(_) => {
                    link.last_rx = Instant::now();
                    link.pinged = false;
                }
            },
            _ = &mut timer => {
                let now = Instant::now();
                if !link.on_timer(now) {
                    return link.ended_with;
                }
                timer.as_mut().reset(link.next_wake().max(now + Duration::from_millis(1)));
            }
            _ = &mut cancelled, if link.close_deadline.is_none() => {
                link.start_close(close_code::GOING_AWAY, "server shutting down", Instant::now());
            }
        }
    }
}

/// The notice that a write to the client failed: the connection is over.
struct Gone;

/// One upgraded connection's state between reads.
struct Link<'a> {
    stream: &'a mut TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    cfg: &'a ServerConfig,
    conn: Connection,
    /// The message being received, and its kind.
    msg: Vec<u8>,
    kind: MessageKind,
    /// Payload bytes of the current message announced by its header and not
    /// read yet: the next read asks for all of them at once.
    awaited: usize,
    /// Frames to send, collected for one write.
    out: Vec<u8>,
    /// When the client last sent anything, and whether it was pinged since.
    last_rx: Instant,
    pinged: bool,
    /// Set once our close frame is out: when to stop waiting for the answer.
    close_deadline: Option<Instant>,
    /// The close code that ends the connection (ours or the client's).
    ended_with: Option<u16>,
    log_messages: bool,
}

impl<'a> Link<'a> {
    fn new(
        stream: &'a mut TcpStream,
        peer: SocketAddr,
        protocol: Protocol,
        cfg: &'a ServerConfig,
    ) -> Self {
        Link {
            stream,
            peer,
            protocol,
            cfg,
            conn: Connection::new(protocol, Role::Server, cfg.max_message),
            msg: Vec::new(),
            kind: MessageKind::Text,
            awaited: 0,
            out: Vec::with_capacity(4096),
            last_rx: Instant::now(),
            pinged: false,
            close_deadline: None,
            ended_with: None,
            log_messages: tracing::enabled!(Level::INFO),
        }
    }

    /// Decodes all of `buf`, answering complete messages (small answers are
    /// queued, large ones written at once). Returns whether the client broke
    /// the protocol (our close frame is then queued), or [`Gone`].
    async fn decode(&mut self, buf: &mut [u8]) -> Result<bool, Gone> {
        let mut pos = 0;
        // Call until it reports None, even with no input left: an event (such as
        // MessageEnd after the last payload byte) may still be pending.
        loop {
            let input = buf.get_mut(pos..).unwrap_or_default();
            let (n, ev) = match self.conn.read(input) {
                Ok(r) => r,
                Err(e) => {
                    debug!("{}: {e}", self.peer);
                    if let Some(code) = e.close_code() {
                        self.queue_close(code, e.as_str());
                        self.ended_with = Some(code);
                    }
                    return Ok(true);
                }
            };
            pos += n;
            let mut complete = false;
            let mut pinged_by_peer = false;
            match ev {
                None => return Ok(false),
                Some(Event::MessageStart { kind, len }) => {
                    self.kind = kind;
                    self.msg.clear();
                    if let Some(len) = len {
                        self.awaited = len.min(self.cfg.max_message) as usize;
                        self.msg.reserve(self.awaited);
                    }
                }
                Some(Event::Data(chunk)) => {
                    self.awaited = self.awaited.saturating_sub(chunk.len());
                    self.msg.extend_from_slice(chunk);
                }
                Some(Event::MessageEnd) => {
                    self.awaited = 0;
                    complete = true;
                }
                Some(Event::Close { code, .. }) => {
                    self.ended_with = self.ended_with.or(code).or(Some(close_code::NORMAL));
                }
                Some(Event::Ping(_)) => pinged_by_peer = true,
                Some(Event::Pong(_)) => {}
            }
            if pinged_by_peer {
                // Answer at once, in order with the replies around it.
                self.queue_automatic();
            }
            if complete && self.conn.close_state() == CloseState::Open {
                self.answer().await?;
            }
        }
    }

    /// Sends the complete message back, reversed (or unchanged with `echo`).
    async fn answer(&mut self) -> Result<(), Gone> {
        let peer = self.peer;
        if self.log_messages {
            info!(
                "message received from {peer}: {}",
                preview(self.kind, &self.msg)
            );
        }
        if !self.cfg.echo {
            reverse_echo::reverse(self.kind, &mut self.msg);
        }
        if self.log_messages {
            info!(
                "sending back message to {peer}: {}",
                preview(self.kind, &self.msg)
            );
        }
        let sent = queue_message(
            &mut self.conn,
            self.kind,
            &mut self.msg,
            &mut self.out,
            self.stream,
            self.cfg,
        )
        .await;
        match sent {
            Ok(()) => {}
            Err(SendError::Protocol(e)) => debug!("{peer}: reply not sent: {e}"),
            Err(SendError::Io(why)) => {
                warn!("{peer}: connection dropped: sending the reply failed: {why}");
                return Err(Gone);
            }
        }
        if self.msg.capacity() > 4 * OUT_BATCH {
            // Don't hold a big message's memory for the rest of the connection.
            self.msg = Vec::new();
        }
        Ok(())
    }

    /// Queues what the protocol answers by itself: the pong to the latest ping,
    /// the close answer.
    fn queue_automatic(&mut self) {
        let mut ctl = [0u8; 300];
        match self.conn.poll_write(&mut ctl, &mut NoRng) {
            Ok(n) => self.out.extend_from_slice(&ctl[..n]),
            Err(e) => debug!("{}: {e}", self.peer),
        }
    }

    /// Appends our close frame; returns whether one was queued.
    fn queue_close(&mut self, code: u16, reason: &str) -> bool {
        let mut frame = [0u8; 128];
        match self.conn.close(Some(code), reason, &mut frame, &mut NoRng) {
            Ok(n) => {
                self.out.extend_from_slice(&frame[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// Starts the closing handshake with `code` and gives the client
    /// `close_timeout` to answer.
    fn start_close(&mut self, code: u16, reason: &str, now: Instant) {
        if self.queue_close(code, reason) {
            self.ended_with = Some(code);
        }
        self.close_deadline = Some(now + self.cfg.close_timeout);
    }

    /// Writes everything queued; false if the client is gone (or does not read
    /// within the idle timeout).
    async fn flush(&mut self) -> bool {
        match write_out(self.stream, &mut self.out, self.cfg).await {
            Ok(()) => true,
            Err(why) => {
                warn!("{}: connection dropped: sending failed: {why}", self.peer);
                false
            }
        }
    }

    /// The timer fired at `now`: give up on a close that got no answer, close an
    /// idle connection, or ping a quiet one (RFC 6455). False: the connection is over.
    fn on_timer(&mut self, now: Instant) -> bool {
        let cfg = self.cfg;
        if self.close_deadline.is_some_and(|d| now >= d) {
            warn!(
                "{}: connection dropped: no answer to our close frame within {:?}",
                self.peer, cfg.close_timeout
            );
            return false;
        }
        if self.close_deadline.is_none() && now >= self.last_rx + cfg.idle_timeout {
            debug!("{}: idle for {:?}", self.peer, cfg.idle_timeout);
            self.start_close(close_code::GOING_AWAY, "idle timeout", now);
        } else if self.protocol == Protocol::Rfc6455
            && !self.pinged
            && now >= self.last_rx + cfg.ping_interval
        {
            let mut ping = [0u8; 16];
            if let Ok(n) = self.conn.tx.ping(b"", &mut ping, &mut NoRng) {
                self.out.extend_from_slice(&ping[..n]);
            }
            self.pinged = true;
        }
        true
    }

    /// When the timer must next look: the close deadline, else the ping
    /// (RFC 6455, once per quiet spell) or idle time.
    fn next_wake(&self) -> Instant {
        let idle_at = self.last_rx + self.cfg.idle_timeout;
        match self.close_deadline {
            Some(d) => d,
            None if self.protocol == Protocol::Rfc6455 && !self.pinged => {
                (self.last_rx + self.cfg.ping_interval).min(idle_at)
            }
            None => idle_at,
        }
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

enum SendError {
    Protocol(websocket::Error),
    /// The client is gone, or read nothing for the idle timeout: why.
    Io(WriteFailed),
}

/// Why a write to the client failed.
enum WriteFailed {
    Error(std::io::Error),
    Stalled(Duration),
}

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteFailed::Error(e) => write!(f, "{e}"),
            WriteFailed::Stalled(t) => write!(f, "the client read nothing for {t:?}"),
        }
    }
}

/// A write bounded by the idle timeout, its failure said.
async fn bounded_write(
    cfg: &ServerConfig,
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<(), WriteFailed> {
    match timeout(cfg.idle_timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WriteFailed::Error(e)),
        Err(_) => Err(WriteFailed::Stalled(cfg.idle_timeout)),
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
            write_out(stream, out, cfg).await.map_err(SendError::Io)?;
        }
        return Ok(());
    }
    // What is queued, then the frame, without copying the message: one `writev`
    // when the socket takes it all.
    let parts = [&out[..], &head[..h], msg, &tail[..t]];
    bounded_write(cfg, write_all_vectored(stream, parts))
        .await
        .map_err(SendError::Io)?;
    out.clear();
    Ok(())
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
) -> Result<(), WriteFailed> {
    if out.is_empty() {
        return Ok(());
    }
    bounded_write(cfg, stream.write_all(out)).await?;
    out.clear();
    Ok(())
}
