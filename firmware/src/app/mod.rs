//! The app layer: the client modes, each on its own page: [`reverse_echo`]
//! (the tutorial's), [`echo`] and [`autobahn`]; [`session`] is the WebSocket
//! connection they share. The app speaks WebSocket through the `websocket`
//! crate and TCP through [`Net`]; it never sees smoltcp.

mod autobahn;
mod echo;
mod reverse_echo;
mod session;

pub use self::autobahn::autobahn;
pub use self::echo::echo;
pub use self::reverse_echo::reverse_echo;

use firmware::config::Config;
use firmware::text::Line;

use crate::board::exit::ExitCode;
use crate::net::Net;
use session::{Failure, Session};

/// The Origin sent: `--origin`, else `http://<own address>`.
fn origin<'a>(config: &Config<'a>, net: &Net, buf: &'a mut [u8; 24]) -> &'a str {
    if let Some(origin) = config.origin {
        return origin;
    }
    let ip = net.address().unwrap_or([0; 4]);
    let mut line = Line::new();
    line.s("http://").ip(ip);
    let text = line.text();
    let n = text.len().min(buf.len());
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    core::str::from_utf8(&buf[..n]).unwrap_or("null")
}

/// Ends a mode: logs the failure, if any, and turns it into the exit status.
fn outcome(result: Result<(), Failure>, timeout_ms: u32) -> ExitCode {
    match result {
        Ok(()) => ExitCode::Success,
        Err(f) => {
            f.report(timeout_ms);
            f.code()
        }
    }
}

/// Runs a mode that needs one WebSocket to `--url`: opens it (TCP, retried as
/// `--retry` says, then the handshake in `--proto`), runs `mode` on it, and turns
/// the result into the exit status.
fn with_session(
    net: &mut Net,
    config: &Config,
    mode: impl FnOnce(&mut Session) -> Result<(), Failure>,
) -> ExitCode {
    let Some(url) = config.url else {
        return ExitCode::Usage;
    };
    let mut origin_buf = [0u8; 24];
    let origin = origin(config, net, &mut origin_buf);
    let result = session::open(net, config, &url, url.path, origin, config.subprotocol)
        .and_then(|mut s| mode(&mut s));
    outcome(result, config.timeout_ms)
}
