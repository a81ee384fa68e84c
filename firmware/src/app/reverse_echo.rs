//! `--url`: the tutorial's client. Sends `--count` messages (`--message`, or the
//! generated set) and checks that each reply is the message reversed.

use ::reverse_echo::ReplyChecker;
use websocket::{MessageKind, Protocol};

use firmware::config::Config;
use firmware::messages;
use firmware::text::Line;

use super::session::{self, Ev, Failure, Retry, Session};
use super::{origin, outcome};
use crate::board::clock;
use crate::board::exit::ExitCode;
use crate::board::log::log;
use crate::net::Net;

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

/// Sends messages `*next..--count` on `s`, each after the previous one's echo
/// (advancing `*next` as echoes come), then closes.
fn send_all(
    s: &mut Session,
    config: &Config,
    buf: &mut [u8; messages::MAX_LEN],
    next: &mut u32,
) -> Result<(), Failure> {
    let binary_ok = s.protocol() == Protocol::Rfc6455;
    while *next < config.count {
        let i = *next;
        let (kind, len) = match config.message {
            Some(text) => {
                let n = text.len().min(buf.len());
                buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                (MessageKind::Text, n)
            }
            None => messages::generate(i, binary_ok, buf),
        };
        let message = &buf[..len];
        s.send_message(kind, message)?;
        let start = clock::now_ms();
        log(Line::new()
            .s("sent ")
            .u(i + 1)
            .s(": ")
            .s(kind_name(kind))
            .s(" ")
            .u(len as u32)
            .s(" bytes \"")
            .escaped(message, 40)
            .s("\""));
        let ok = receive_reply(s, kind, message)?;
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
