//! `--echo`: an echo client for servers that send first (and for Autobahn's
//! cases): every message goes back unchanged, streamed chunk by chunk.

use websocket::{MessageKind, Opcode, Protocol};

use firmware::config::Config;
use firmware::text::Line;

use super::session::{Ev, Failure, Session};
use super::with_session;
use crate::board::exit::ExitCode;
use crate::board::log::log;
use crate::net::tcp::TcpState;
use crate::net::{Deadline, Net};

/// `--echo`: sends every message back unchanged, streamed chunk by chunk, until
/// the server closes.
pub fn echo(net: &mut Net, config: &Config) -> ExitCode {
    with_session(net, config, |s| match echo_loop(s) {
        Ok(n) => {
            log(Line::new().s("echoed ").u(n).s(" messages; closed"));
            Ok(())
        }
        Err(Failure::Protocol(e)) => {
            s.fail_connection(e);
            Err(Failure::Protocol(e))
        }
        Err(f) => Err(f),
    })
}

/// Echoes messages until the server's close frame; returns how many.
pub(super) fn echo_loop(s: &mut Session) -> Result<u32, Failure> {
    let mut count = 0;
    // RFC 6455 messages of unknown length (fragmented) go back as fragments.
    let mut fragmented: Option<MessageKind> = None;
    let mut first = true;
    loop {
        match s.next_event("waiting for a message to echo")? {
            Ev::Start(kind, Some(len)) => {
                fragmented = None;
                s.begin(kind, len)?;
            }
            Ev::Start(kind, None) if s.protocol() == Protocol::Hixie76 => {
                fragmented = None;
                s.begin(kind, 0)?;
            }
            Ev::Start(kind, None) => {
                fragmented = Some(kind);
                first = true;
            }
            Ev::Data(n) => match fragmented {
                Some(kind) => {
                    let op = fragment_opcode(first, kind);
                    first = false;
                    s.fragment(op, false, n)?;
                }
                None => s.payload(n)?,
            },
            Ev::End => {
                match fragmented.take() {
                    Some(kind) => {
                        let op = fragment_opcode(first, kind);
                        s.fragment(op, true, 0)?;
                    }
                    None => s.end()?,
                }
                count += 1;
            }
            Ev::Ping | Ev::Pong | Ev::Nothing => {}
            Ev::Close(_) => {
                // Our answer went out with the event; the server closes TCP.
                s.net.close();
                let _ = s.net.wait(Deadline::after_ms(s.timeout_ms), |net| {
                    (net.state() == TcpState::Closed).then_some(())
                });
                return Ok(count);
            }
        }
    }
}

/// The opcode of a fragment echoed from a message of `kind` whose length was not
/// known up front: the message's own opcode first, then continuations.
fn fragment_opcode(first: bool, kind: MessageKind) -> Opcode {
    match (first, kind) {
        (false, _) => Opcode::Continuation,
        (true, MessageKind::Text) => Opcode::Text,
        (true, MessageKind::Binary) => Opcode::Binary,
    }
}
