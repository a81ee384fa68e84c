//! The request before the upgrade: read the head (within the handshake timeout
//! and the header limit), then route it: the page at `GET /`, 404/405 for other
//! paths, 403 for a refused Origin, 400/426 for a bad handshake, and the 101
//! answer for a good one, after which the connection loop takes over.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info};
use websocket::handshake::{self, hixie76, rfc6455, Parse};
use websocket::Protocol;

use super::connection::run_connection;
use super::{send_status, ServerConfig, Shared, READ_BUF};

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

pub(super) async fn handle(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
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
