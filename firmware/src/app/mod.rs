//! The client modes: reverse-echo (the tutorial's), echo and Autobahn.

mod session;

use websocket::reverse::ReplyChecker;
use websocket::{MessageKind, Opcode, Protocol};

use firmware::config::{Config, WsUrl};
use firmware::messages;
use firmware::text::Line;

use crate::clock;
use crate::exit::ExitCode;
use crate::log::log;
use crate::net::Net;
use session::{open, Ev, Failure, Session};

/// The Origin sent: `--origin`, else `http://<own address>`.
fn origin<'a>(config: &Config<'a>, net: &Net, buf: &'a mut [u8; 24]) -> &'a str {
    if let Some(origin) = config.origin {
        return origin;
    }
    let ip = net.address.map(|a| a.address().octets()).unwrap_or([0; 4]);
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

/// Buffer for one outgoing message (`--message` or a generated one).
static mut MESSAGE: [u8; messages::MAX_LEN] = [0; messages::MAX_LEN];

/// The tutorial's client: sends `--count` messages, checks each reply is the
/// reverse, then closes cleanly.
pub fn reverse_echo(net: &mut Net, config: &Config) -> ExitCode {
    let Some(url) = config.url else {
        return ExitCode::Usage;
    };
    let mut origin_buf = [0u8; 24];
    let origin = origin(config, net, &mut origin_buf);
    let result = open(net, config, &url, url.path, origin, config.subprotocol).and_then(|mut s| {
        // SAFETY: the only reference to MESSAGE, taken once: reverse_echo runs at
        // most once per boot (main calls one mode and exits).
        let buf: &mut [u8; messages::MAX_LEN] = unsafe { &mut *core::ptr::addr_of_mut!(MESSAGE) };
        let binary_ok = s.protocol() == Protocol::Rfc6455;
        for i in 0..config.count {
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
            let ok = receive_reply(&mut s, kind, message)?;
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
        }
        log(Line::new().s("all ").u(config.count).s(" echoes matched"));
        s.close(true)
    });
    outcome(result, config.timeout_ms)
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
    s.retype.armed = kind == MessageKind::Binary && s.protocol() == Protocol::Rfc6455;
    s.retype.happened = false;
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
            Ev::Close(_) => {
                return Err(Failure::Unexpected(
                    "server closed the WebSocket before echoing every message",
                ))
            }
        }
    }
    s.retype.armed = false;
    if s.retype.happened {
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

/// `--echo`: sends every message back unchanged, streamed chunk by chunk, until
/// the server closes.
pub fn echo(net: &mut Net, config: &Config) -> ExitCode {
    let Some(url) = config.url else {
        return ExitCode::Usage;
    };
    let mut origin_buf = [0u8; 24];
    let origin = origin(config, net, &mut origin_buf);
    let result = open(net, config, &url, url.path, origin, config.subprotocol).and_then(|mut s| {
        match echo_loop(&mut s) {
            Ok(n) => {
                log(Line::new().s("echoed ").u(n).s(" messages; closed"));
                Ok(())
            }
            Err(Failure::Protocol(e)) => {
                s.fail_connection(e);
                Err(Failure::Protocol(e))
            }
            Err(f) => Err(f),
        }
    });
    outcome(result, config.timeout_ms)
}

/// Echoes messages until the server's close frame; returns how many.
fn echo_loop(s: &mut Session) -> Result<u32, Failure> {
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
                    let op = match (first, kind) {
                        (false, _) => Opcode::Continuation,
                        (true, MessageKind::Text) => Opcode::Text,
                        (true, MessageKind::Binary) => Opcode::Binary,
                    };
                    first = false;
                    s.fragment(op, false, n)?;
                }
                None => s.payload(n)?,
            },
            Ev::End => {
                match fragmented.take() {
                    Some(kind) => {
                        let op = match (first, kind) {
                            (false, _) => Opcode::Continuation,
                            (true, MessageKind::Text) => Opcode::Text,
                            (true, MessageKind::Binary) => Opcode::Binary,
                        };
                        s.fragment(op, true, 0)?;
                    }
                    None => s.end()?,
                }
                count += 1;
            }
            Ev::Ping | Ev::Pong | Ev::Nothing => {}
            Ev::Close(_) => {
                // Our answer went out with the event; the server closes TCP.
                s.net.tcp().close();
                let _ = s
                    .net
                    .wait(crate::net::Deadline::after_ms(s.timeout_ms), |net| {
                        (!net.tcp().is_open()).then_some(())
                    });
                return Ok(count);
            }
        }
    }
}

/// `--autobahn ws://HOST:PORT`: asks the fuzzing server how many cases it has,
/// runs each in echo mode, then asks it to write its reports.
pub fn autobahn(net: &mut Net, config: &Config) -> ExitCode {
    let Some(url) = config.url else {
        return ExitCode::Usage;
    };
    let mut origin_buf = [0u8; 24];
    let origin = origin(config, net, &mut origin_buf);
    let result = (|| {
        let cases = autobahn_case_count(net, config, &url, origin)?;
        log(Line::new().s("autobahn: ").u(cases).s(" cases"));
        for case in 1..=cases {
            let mut path = Line::new();
            path.s("/runCase?case=").u(case).s("&agent=").s(AGENT);
            let path = path.text();
            let mut s = open(net, config, &url, path, origin, None)?;
            let r = echo_loop(&mut s);
            if let Err(Failure::Protocol(e)) = r {
                s.fail_connection(e);
            }
            let mut line = Line::new();
            line.s("case ").u(case).s(": ");
            match r {
                Ok(n) => line.s("echoed ").u(n),
                Err(Failure::Protocol(e)) => line.s("failed the connection: ").s(e.as_str()),
                Err(Failure::Network(what)) | Err(Failure::Timeout(what)) => line.s(what),
                Err(_) => line.s("ended"),
            };
            log(&mut line);
            s.net.tcp().abort();
        }
        let mut path = Line::new();
        path.s("/updateReports?agent=").s(AGENT);
        let path = path.text();
        let mut s = open(net, config, &url, path, origin, None)?;
        let _ = echo_loop(&mut s);
        log(Line::new().s("autobahn: reports updated"));
        Ok(())
    })();
    outcome(result, config.timeout_ms)
}

/// The `agent` name the firmware reports to the Autobahn server.
const AGENT: &str = "firmware";

/// `/getCaseCount`: the server sends the count as one text message, then closes.
fn autobahn_case_count(
    net: &mut Net,
    config: &Config,
    url: &WsUrl,
    origin: &str,
) -> Result<u32, Failure> {
    let mut s = open(net, config, url, "/getCaseCount", origin, None)?;
    let mut count: u32 = 0;
    loop {
        match s.next_event("waiting for the case count")? {
            Ev::Data(n) => {
                for &b in &s.chunk[..n] {
                    if b.is_ascii_digit() {
                        count = count.saturating_mul(10).saturating_add((b - b'0') as u32);
                    }
                }
            }
            Ev::End => break,
            Ev::Close(_) => return Err(Failure::Unexpected("no case count from the server")),
            _ => {}
        }
    }
    let _ = s.close(false);
    s.net.tcp().abort();
    Ok(count)
}
