//! `--url`: the tutorial's client. Sends `--count` messages (`--message`, or the
//! generated set) and checks that each reply is the message reversed.

use ::reverse_echo::ReplyChecker;
use websocket::{MessageKind, Protocol};

use firmware::config::{Config, MAX_WINDOW};
use firmware::messages;
use firmware::text::Line;

use super::session::{self, Ev, Failure, Retry, Session};
use super::{origin, outcome};
use crate::board::clock;
use crate::board::exit::ExitCode;
use crate::board::log::log;
use crate::net::{Net, TCP_RX};

/// Buffer for one outgoing message (`--message` or a generated one).
static mut MESSAGE: [u8; messages::MAX_LEN] = [0; messages::MAX_LEN];

/// The tutorial's client: sends `--count` messages, checks each reply is the
/// reverse, then closes cleanly.
///
/// With `--reconnect`, a lost connection (closed, reset, timed out, or given
/// up by `--keepalive-ms`) is an outage, not the end: the client reconnects
/// (as [`Retry`] paces it, `--retry` attempts per outage, 0 for no limit) and
/// carries on from the first message whose echo has not come, so that every
/// message is echoed once, in order, across connections. Each outage is
/// logged when noticed (`outage: CAUSE`) and when over (duration, attempts).
pub fn reverse_echo(net: &mut Net, config: &Config) -> ExitCode {
    let Some(url) = config.url else {
        return ExitCode::Usage;
    };
    let mut origin_buf = [0u8; 24];
    let origin = origin(config, net, &mut origin_buf);
    // SAFETY: the only reference to MESSAGE, taken once: reverse_echo runs at
    // most once per boot (main calls one mode and exits).
    let buf: &mut [u8; messages::MAX_LEN] = unsafe { &mut *core::ptr::addr_of_mut!(MESSAGE) };
    let reconnect = config.reconnect;
    let mut retry = Retry::new(match config.retries {
        0 if reconnect => u32::MAX,
        n => n,
    });
    // The first message whose echo has not come yet.
    let mut next = 0;
    // When the current outage began (uptime ms), if one is on.
    let mut lost: Option<u32> = None;
    loop {
        let result = session::open_with(
            net,
            config,
            &url,
            url.path,
            origin,
            config.subprotocol,
            &mut retry,
        )
        .and_then(|mut s| {
            s.keep_alive(config.keepalive_ms);
            let failed = retry.succeeded();
            if let Some(since) = lost.take() {
                log(Line::new()
                    .s("outage over: back after ")
                    .u(clock::now_ms().wrapping_sub(since))
                    .s(" ms, ")
                    .u(failed)
                    .s(" attempts; resuming at message ")
                    .u(next + 1));
            }
            send_all(&mut s, config, buf, &mut next)
        });
        match result {
            Err(f) if reconnect && f.is_outage() => {
                let mut line = Line::new();
                f.describe(line.s("outage: "), config.timeout_ms);
                if lost.is_none() {
                    lost = Some(clock::now_ms());
                }
                if !retry.again(net, &mut line) {
                    return outcome(Err(f), config.timeout_ms);
                }
            }
            result => return outcome(result, config.timeout_ms),
        }
    }
}

/// Header bytes of one server frame around a message of up to
/// [`messages::MAX_LEN`] bytes (RFC 6455: 4; hixie-76: 2).
const ECHO_FRAME_OVERHEAD: usize = 4;

/// Sends messages `*next..--count` on `s` and checks their echoes in order
/// (advancing `*next` as they come), then closes. Up to `--window` messages go
/// out before the oldest one's echo is awaited, so that a retransmission on a
/// lossy wire delays the messages behind it instead of stopping them; and never
/// more than the board's TCP receive buffer holds of their echoes, so that a
/// server which stops reading while its answers wait cannot wedge the
/// connection. A message is generated again (or copied again from `--message`)
/// when its echo is checked: only its send time and length are kept meanwhile.
fn send_all(
    s: &mut Session,
    config: &Config,
    buf: &mut [u8; messages::MAX_LEN],
    next: &mut u32,
) -> Result<(), Failure> {
    let binary_ok = s.protocol() == Protocol::Rfc6455;
    // Send time (uptime ms) and echo bytes of each message in flight, by number.
    let mut flight = [(0u32, 0usize); MAX_WINDOW as usize];
    let slot = |i: u32| i as usize % MAX_WINDOW as usize;
    // The first message not yet sent on this connection.
    let mut sent = *next;
    let mut echo_bytes = 0;
    while *next < config.count {
        while sent < config.count && sent - *next < config.window {
            let (kind, len) = message(config, sent, binary_ok, buf);
            let bytes = len + ECHO_FRAME_OVERHEAD;
            if sent > *next && echo_bytes + bytes > TCP_RX {
                break;
            }
            let message = &buf[..len];
            s.send_message(kind, message)?;
            flight[slot(sent)] = (clock::now_ms(), bytes);
            echo_bytes += bytes;
            sent += 1;
            log(Line::new()
                .s("sent ")
                .u(sent)
                .s(": ")
                .s(kind_name(kind))
                .s(" ")
                .u(len as u32)
                .s(" bytes \"")
                .escaped(message, 40)
                .s("\""));
        }
        let i = *next;
        let (kind, len) = message(config, i, binary_ok, buf);
        let ok = receive_reply(s, kind, &buf[..len])?;
        let (start, bytes) = flight[slot(i)];
        echo_bytes -= bytes;
        let mut line = Line::new();
        line.s(if ok { "received " } else { "MISMATCH " })
            .u(i + 1)
            .s(" after ")
            .u(clock::now_ms().wrapping_sub(start))
            .s(" ms");
        if ok {
            line.s(": reversed ok");
        }
        if i == 0 {
            // Boot to first echo, on the board's own clock (from SysTick start).
            line.s(" (uptime ").u(clock::now_ms()).s(" ms)");
        }
        log(&mut line);
        if !ok {
            return Err(Failure::Mismatch);
        }
        *next = i + 1;
    }
    log(Line::new().s("all ").u(config.count).s(" echoes matched"));
    s.close(true)
}

/// Writes message number `i` (`--message`, or the generated set's) into `buf`.
fn message(
    config: &Config,
    i: u32,
    binary_ok: bool,
    buf: &mut [u8; messages::MAX_LEN],
) -> (MessageKind, usize) {
    match config.message {
        Some(text) => {
            let n = text.len().min(buf.len());
            buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            (MessageKind::Text, n)
        }
        None => messages::generate(i, binary_ok, buf),
    }
}

fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "text",
        MessageKind::Binary => "binary",
    }
}

/// Receives one message and checks it is the reverse of `sent`: same kind, and the
/// bytes of the code points (text) or bytes (binary) in reverse order.
fn receive_reply(s: &mut Session, kind: MessageKind, sent: &[u8]) -> Result<bool, Failure> {
    // A server may echo a binary message in a text frame (tornado's
    // `write_message(bytes)` defaults to text): read it as binary, as sent.
    let tolerate = kind == MessageKind::Binary;
    s.conn.rx.set_text_as_binary(tolerate);
    let mut checker = ReplyChecker::new(kind, sent);
    let mut got_kind = None;
    let mut received = 0usize;
    // The start of the reply, for the log when it does not match.
    let mut head = [0u8; 40];
    let mut wrong_length = false;
    loop {
        // A reply announced or grown longer than what was sent cannot match: say so
        // now rather than read (or wait for) the rest of it.
        match s.next_event("waiting for the echo")? {
            Ev::Start(k, len) => {
                got_kind = Some(k);
                if let Some(len) = len.filter(|&len| len != sent.len() as u64) {
                    log(Line::new()
                        .s("reply announces ")
                        .u(len.min(u32::MAX as u64) as u32)
                        .s(" bytes"));
                    wrong_length = true;
                    break;
                }
            }
            Ev::Data(n) => {
                let data = &s.chunk[..n];
                let at = received.min(head.len());
                let take = (head.len() - at).min(n);
                head[at..at + take].copy_from_slice(&data[..take]);
                received += n;
                checker.feed(data);
                if received > sent.len() {
                    wrong_length = true;
                    break;
                }
            }
            Ev::End => break,
            Ev::Ping | Ev::Pong | Ev::Nothing => {}
            Ev::Close(_) => return Err(Failure::Closed),
        }
    }
    let retyped = s.conn.rx.read_text_as_binary();
    s.conn.rx.set_text_as_binary(false);
    if retyped {
        log(Line::new().s("tolerated: the binary reply came in a text frame"));
    }
    let ok = !wrong_length && got_kind == Some(kind) && checker.is_match();
    if !ok {
        log(Line::new()
            .s("reply: ")
            .s(got_kind.map(kind_name).unwrap_or("?"))
            .s(" ")
            .u(received as u32)
            .s(" bytes \"")
            .escaped(&head[..received.min(head.len())], 40)
            .s("\" is not the reverse of the ")
            .u(sent.len() as u32)
            .s(" bytes sent"));
    }
    Ok(ok)
}
