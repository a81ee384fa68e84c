//! The fastest well-known Rust peer: a reverse-echo WebSocket server on
//! fastwebsockets (Deno's). Same behaviour as `host-bridge serve` and
//! `tt-reverse-server`: path /ws (any other path: 404), any Origin, every text
//! message sent back reversed by character and every binary message by byte.
//!
//! ```text
//! fws-reverse-server --listen 127.0.0.1:8000 [--path /ws] [--threads N] [--quiet]
//! (prints `listening on ADDR` first; port 0 picks a free port)
//! ```
//!
//! fastwebsockets leaves the HTTP upgrade to hyper (its `upgrade` feature); here
//! the opening handshake is read by hand (one request, no body), so that the peer
//! carries no HTTP stack that the other servers lack. Fragmented messages are
//! reassembled by fastwebsockets' `FragmentCollector`, which also checks UTF-8.

mod peer;

use anyhow::{bail, Context, Result};
use clap::Parser;
use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, Role, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "fastwebsockets reverse-echo WebSocket server (benchmark peer)")]
struct Args {
    #[command(flatten)]
    peer: peer::Options,
}

/// Largest request header block read.
const MAX_HEADER: usize = 8192;

fn main() -> Result<()> {
    peer::run(
        "fws-reverse-server",
        |a: &Args| &a.peer,
        |stream, args| async move { connection(stream, &args).await },
    )
}

/// Reads the opening handshake and answers it: 101 with the accept key, or 404
/// for another path, or 400 without a key.
async fn handshake(stream: &mut TcpStream, path: &str) -> Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEADER {
            bail!("request header block too large");
        }
    };
    let head = std::str::from_utf8(&buf[..end]).context("request is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let target = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("");
    let key = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim())
    });
    let reply = match key {
        _ if target.split('?').next() != Some(path) => {
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
        }
        None => {
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
        }
        Some(key) => {
            let accept = websocket::handshake::rfc6455::accept_key(key.as_bytes());
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
                std::str::from_utf8(&accept).unwrap_or("")
            )
        }
    };
    stream.write_all(reply.as_bytes()).await?;
    if !reply.starts_with("HTTP/1.1 101") {
        bail!("refused: {}", reply.lines().next().unwrap_or(""));
    }
    Ok(())
}

async fn connection(mut stream: TcpStream, args: &Args) -> Result<()> {
    stream.set_nodelay(true)?;
    handshake(&mut stream, &args.peer.path).await?;
    if !args.peer.quiet {
        println!("new connection");
    }
    let mut ws = FragmentCollector::new(WebSocket::after_handshake(stream, Role::Server));
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // Valid UTF-8: FragmentCollector checked it.
            OpCode::Text => {
                let text = std::str::from_utf8(&frame.payload)?;
                let reversed: String = text.chars().rev().collect();
                ws.write_frame(Frame::text(Payload::Owned(reversed.into_bytes())))
                    .await?;
            }
            OpCode::Binary => {
                let reversed: Vec<u8> = frame.payload.iter().rev().copied().collect();
                ws.write_frame(Frame::binary(Payload::Owned(reversed)))
                    .await?;
            }
            // fastwebsockets answers the close itself (auto_close).
            OpCode::Close => break,
            // Pings are answered by fastwebsockets itself (auto_pong).
            _ => {}
        }
    }
    if !args.peer.quiet {
        println!("connection closed");
    }
    Ok(())
}
