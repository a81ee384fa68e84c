//! The peer a Rust user would pick instead of host-bridge: a reverse-echo WebSocket
//! server written the idiomatic way on tokio-tungstenite. Same behaviour as
//! `host-bridge serve` and the tutorial's tornado server: path /ws (any other path is
//! refused with 404), any Origin, every text message sent back reversed by character
//! and every binary message by byte.
//!
//! ```text
//! tt-reverse-server --listen 127.0.0.1:8000 [--path /ws] [--threads N] [--quiet]
//! (prints `listening on ADDR` first; port 0 picks a free port)
//!                   [--arrivals FILE]
//! ```
//!
//! `--threads 1` (the default) runs tokio's current-thread runtime, to match
//! `host-bridge serve --threads 1` and tornado's single thread. `--arrivals FILE`
//! appends, when each connection closes, one line `SECONDS_SINCE_UNIX_EPOCH` per text
//! message received (used by `bench e2e` to time the firmware's round trips).

use std::io::Write;
mod peer;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "tokio-tungstenite reverse-echo WebSocket server (benchmark peer)")]
struct Args {
    #[command(flatten)]
    peer: peer::Options,
    /// Append each text message's arrival time (Unix seconds) to this file.
    #[arg(long)]
    arrivals: Option<PathBuf>,
}

fn main() -> Result<()> {
    peer::run(
        "tt-reverse-server",
        |a: &Args| &a.peer,
        |stream, args| async move { connection(stream, &args).await },
    )
}

// The handshake callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, args: &Args) -> Result<()> {
    stream.set_nodelay(true)?;
    let path = args.peer.path.clone();
    let check_path = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() == path {
            Ok(resp)
        } else {
            let mut err = ErrorResponse::new(Some("not found".into()));
            *err.status_mut() = StatusCode::NOT_FOUND;
            Err(err)
        }
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, check_path).await?;
    if !args.peer.quiet {
        println!("new connection");
    }
    let mut arrivals = Vec::new();
    let result = async {
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Text(text) => {
                    if args.arrivals.is_some() {
                        arrivals.push(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64());
                    }
                    let reversed: String = text.as_str().chars().rev().collect();
                    ws.send(Message::text(reversed)).await?;
                }
                // Binary by byte, like the tutorial's `message[::-1]` on bytes.
                Message::Binary(data) => {
                    if args.arrivals.is_some() {
                        arrivals.push(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64());
                    }
                    let reversed: Vec<u8> = data.iter().rev().copied().collect();
                    ws.send(Message::binary(reversed)).await?;
                }
                // tungstenite queues the close reply; the next poll sends it and
                // then ends the stream.
                Message::Close(_) => {}
                // Pings are answered by tungstenite itself.
                _ => {}
            }
        }
        anyhow::Ok(())
    }
    .await;
    if let Some(file) = &args.arrivals {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?;
        for t in &arrivals {
            writeln!(out, "{t:.6}")?;
        }
    }
    if !args.peer.quiet {
        println!("connection closed");
    }
    result
}
