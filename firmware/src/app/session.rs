//! One WebSocket client connection over the network's TCP socket: connect with
//! retries, the opening handshake, streaming frames out, and received frames as
//! owned events, every wait bounded by the `--timeout-ms` deadline.

use websocket::handshake::{Client, ClientRequest, Parse};
use websocket::{CloseState, Connection, Due, Event, Keepalive, MessageKind, Protocol, Role};

use firmware::backoff::Backoff;
use firmware::config::{self, WsUrl};
use firmware::text::Line;

use crate::board::clock;
use crate::board::exit::ExitCode;
use crate::board::log::log;
use crate::net::tcp::{Input, TcpState};
use crate::net::{Deadline, Net};

/// Handshake buffer: the request, then the response; after the handshake, the
/// frame bytes that came with the response.
const HS_BUF: usize = 1024;
/// Largest payload chunk handed out in one [`Ev::Data`].
pub const CHUNK: usize = 256;
/// Outgoing frame bytes staged before they go to the TCP socket.
const OUT_BUF: usize = CHUNK + 280;
/// Largest message accepted from the server (Autobahn sends up to 16 MiB; the
/// client streams, so this only guards against absurd lengths).
const MAX_MESSAGE: u64 = 1 << 26;

/// Why a session ended badly; [`Failure::code`] gives the exit status.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// TCP-level trouble (refused, reset, closed early) — exit 4.
    Network(&'static str),
    /// A wait ran out of time; says what for — exit 4.
    Timeout(&'static str),
    /// The opening handshake failed — exit 5.
    Handshake(websocket::Error),
    /// The server broke the framing rules — exit 5.
    Protocol(websocket::Error),
    /// The server said something the client did not expect — exit 5.
    Unexpected(&'static str),
    /// A reply was not the expected one (already logged) — exit 6.
    Mismatch,
    /// A data message came when none was due (a duplicate echo) — exit 6.
    Extra,
    /// The server's close frame came before every echo — exit 5.
    Closed,
}

impl Failure {
    pub fn code(self) -> ExitCode {
        match self {
            Failure::Network(_) | Failure::Timeout(_) => ExitCode::Network,
            Failure::Handshake(_)
            | Failure::Protocol(_)
            | Failure::Unexpected(_)
            | Failure::Closed => ExitCode::Protocol,
            Failure::Mismatch | Failure::Extra => ExitCode::Mismatch,
        }
    }

    /// Whether the connection was lost (closed, reset, timed out, or given up
    /// by the keepalive), rather than broken by the server's words: the
    /// failures that `--reconnect` rides out.
    pub fn is_outage(self) -> bool {
        matches!(
            self,
            Failure::Network(_) | Failure::Timeout(_) | Failure::Closed
        )
    }

    /// Prints the failure as one `error: ...` line.
    pub fn report(self, timeout_ms: u32) {
        let mut line = Line::new();
        line.s("error: ");
        log(self.describe(&mut line, timeout_ms));
    }

    /// Appends what went wrong to `line`.
    pub fn describe(self, line: &mut Line, timeout_ms: u32) -> &mut Line {
        match self {
            Failure::Network(what) => line.s(what),
            Failure::Timeout(what) => line.s("timeout: ").s(what).s(" (").u(timeout_ms).s(" ms)"),
            Failure::Handshake(e) => line.s("handshake failed: ").s(e.as_str()),
            Failure::Protocol(e) => line.s("protocol error: ").s(e.as_str()),
            Failure::Unexpected(what) => line.s(what),
            Failure::Mismatch => line.s("echo mismatch"),
            Failure::Extra => line.s("echo mismatch: a message arrived after the last echo"),
            Failure::Closed => line.s("server closed the WebSocket before echoing every message"),
        }
    }
}

/// A received frame event, owned (payload copied to [`Session::chunk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ev {
    /// No complete event in what has arrived so far.
    Nothing,
    Start(MessageKind, Option<u64>),
    /// `chunk[..n]` holds the next payload bytes.
    Data(usize),
    End,
    Ping,
    Pong,
    Close(Option<u16>),
}

/// Connection attempts paced by [`Backoff`], each failure logged with the wait.
pub struct Retry(Backoff);

impl Retry {
    /// Allows `limit` failed attempts in a row (`u32::MAX`: no limit).
    pub fn new(limit: u32) -> Self {
        Retry(Backoff::new(limit))
    }

    /// An attempt worked: returns how many failed before it, and starts over.
    pub fn succeeded(&mut self) -> u32 {
        self.0.succeeded()
    }

    /// Counts a failed attempt, described in `line`: logs it with the wait and
    /// waits before the next attempt; false (nothing logged) when none is left.
    pub fn again(&mut self, net: &mut Net, line: &mut Line) -> bool {
        let Some(wait) = self.0.failure(net.rng.next_u64() as u32) else {
            return false;
        };
        line.s("; retry ").u(self.0.failed());
        if self.0.limit() != u32::MAX {
            line.s("/").u(self.0.limit());
        }
        log(line.s(" in ").u(wait).s(" ms"));
        let _ = net.wait(Deadline::after_ms(wait), |_| None::<()>);
        true
    }
}

/// Opens the TCP connection, retrying as `retry` allows while the server
/// refuses or does not answer (or, while the link is down, the board has no
/// address or route).
fn connect(net: &mut Net, url: &WsUrl, retry: &mut Retry, timeout_ms: u32) -> Result<(), Failure> {
    loop {
        let why = if net.connect(url.ip, url.port).is_err() {
            "no address or route"
        } else {
            match net.wait(Deadline::after_ms(timeout_ms), |net| match net.state() {
                TcpState::Open => Some(true),
                TcpState::Closed => Some(false),
                _ => None,
            }) {
                Ok(true) => {
                    net.rng.stir_time();
                    return Ok(());
                }
                Ok(false) => "connection refused",
                Err(_) => "no answer to TCP connect",
            }
        };
        net.abort();
        if !retry.again(net, Line::new().s("connect: ").s(why)) {
            return Err(Failure::Network(why));
        }
    }
}

/// Opens a WebSocket to `url` at `path`: the TCP connection (retried as
/// `--retry` says), then the opening handshake in `config`'s protocol.
pub fn open<'n>(
    net: &'n mut Net,
    config: &config::Config,
    url: &WsUrl,
    path: &str,
    origin: &str,
    subprotocol: Option<&str>,
) -> Result<Session<'n>, Failure> {
    open_with(
        net,
        config,
        url,
        path,
        origin,
        subprotocol,
        &mut Retry::new(config.retries),
    )
}

/// [`open`], with the connect attempts counted in `retry`.
pub fn open_with<'n>(
    net: &'n mut Net,
    config: &config::Config,
    url: &WsUrl,
    path: &str,
    origin: &str,
    subprotocol: Option<&str>,
    retry: &mut Retry,
) -> Result<Session<'n>, Failure> {
    connect(net, url, retry, config.timeout_ms)?;
    let mut s = Session::new(net, config.protocol, config.timeout_ms);
    s.handshake(url, path, origin, subprotocol)?;
    Ok(s)
}

pub struct Session<'n> {
    pub net: &'n mut Net,
    pub conn: Connection,
    protocol: Protocol,
    hs: [u8; HS_BUF],
    /// Unread frame bytes in `hs` (start, end) after the handshake.
    left: (usize, usize),
    out: [u8; OUT_BUF],
    out_len: usize,
    /// Payload of the last [`Ev::Data`].
    pub chunk: [u8; CHUNK],
    pub timeout_ms: u32,
    /// `--keepalive-ms`: pings a quiet server and gives up a silent one.
    keepalive: Option<Keepalive>,
}

impl<'n> Session<'n> {
    fn new(net: &'n mut Net, protocol: Protocol, timeout_ms: u32) -> Self {
        Session {
            net,
            conn: Connection::new(protocol, Role::Client, MAX_MESSAGE),
            protocol,
            hs: [0; HS_BUF],
            left: (0, 0),
            out: [0; OUT_BUF],
            out_len: 0,
            chunk: [0; CHUNK],
            timeout_ms,
            keepalive: None,
        }
    }

    /// Watches the connection from now on: a ping after `interval_ms` of
    /// silence, given up after twice that (0: no keepalive).
    pub fn keep_alive(&mut self, interval_ms: u32) {
        self.keepalive =
            (interval_ms > 0).then(|| Keepalive::new(self.protocol, interval_ms, clock::now_ms()));
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn deadline(&self) -> Deadline {
        Deadline::after_ms(self.timeout_ms)
    }

    /// Queues `bytes` whole in the TCP send buffer, waiting for room (while it
    /// waits, the stack sends what is queued).
    fn queue_all(&mut self, mut bytes: &[u8]) -> Result<(), Failure> {
        while !bytes.is_empty() {
            let Ok(n) = self.net.send(bytes) else {
                return Err(Failure::Network("connection closed by the server"));
            };
            bytes = &bytes[n..];
            if !bytes.is_empty() {
                self.net
                    .wait(self.deadline(), |net| net.send_ready().then_some(()))
                    .map_err(|_| Failure::Timeout("sending"))?;
            }
        }
        Ok(())
    }

    /// Sends `bytes` whole: queues them and has the stack send them now.
    fn send_all(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.queue_all(bytes)?;
        self.net.poll();
        Ok(())
    }

    /// Queues the staged frame bytes without sending them yet, so that a
    /// message's pieces leave in as few segments as possible.
    fn queue_staged(&mut self) -> Result<(), Failure> {
        let out = self.out;
        let n = core::mem::take(&mut self.out_len);
        self.queue_all(&out[..n])
    }

    /// Sends the staged frame bytes.
    fn flush(&mut self) -> Result<(), Failure> {
        self.queue_staged()?;
        self.net.poll();
        Ok(())
    }

    /// Stages what the connection answers by itself (pong, close echo) and sends.
    fn flush_auto(&mut self) -> Result<(), Failure> {
        let n = self
            .conn
            .poll_write(&mut self.out[self.out_len..], &mut self.net.rng)
            .map_err(Failure::Protocol)?;
        self.out_len += n;
        self.flush()
    }

    /// Waits until bytes arrive (true) or the server ends the stream (false).
    /// Meanwhile the keepalive, if on, pings a quiet server and fails the wait
    /// when the server stays silent.
    fn wait_input(&mut self, what: &'static str) -> Result<bool, Failure> {
        let deadline = self.deadline();
        loop {
            let mut until = deadline;
            if let Some(k) = self.keepalive.as_mut() {
                match k.poll(clock::now_ms()) {
                    Due::Dead => {
                        return Err(Failure::Network(
                            "keepalive: the server answered nothing for two intervals",
                        ))
                    }
                    Due::Ping => {
                        // Refused mid-frame or after our close: the silence
                        // still counts, only the ping is skipped.
                        if let Ok(n) =
                            self.conn
                                .tx
                                .ping(&[], &mut self.out[self.out_len..], &mut self.net.rng)
                        {
                            self.out_len += n;
                            self.flush()?;
                        }
                        continue;
                    }
                    Due::Wait(ms) => until = deadline.earlier(Deadline::after_ms(ms)),
                }
            }
            let input = self.net.wait(until, |net| match net.input() {
                Input::Bytes => Some(true),
                Input::Ended => Some(false),
                Input::Waiting => None,
            });
            match input {
                Ok(more) => {
                    if let Some(k) = self.keepalive.as_mut() {
                        k.heard(clock::now_ms());
                    }
                    return Ok(more);
                }
                Err(_) if deadline.passed() => return Err(Failure::Timeout(what)),
                Err(_) => {}
            }
        }
    }

    /// The opening handshake for `url`'s host and `path`; logs the server's answer.
    fn handshake(
        &mut self,
        url: &WsUrl,
        path: &str,
        origin: &str,
        subprotocol: Option<&str>,
    ) -> Result<(), Failure> {
        let protocols_buf = [subprotocol.unwrap_or("")];
        let req = ClientRequest {
            host: url.authority,
            path,
            origin: Some(origin),
            protocols: if subprotocol.is_some() {
                &protocols_buf[..]
            } else {
                &[]
            },
        };
        let client = Client::new(self.protocol, &mut self.net.rng);
        let n = client
            .write_request(&req, &mut self.hs)
            .map_err(Failure::Handshake)?;
        let request = self.hs;
        self.send_all(&request[..n])?;
        let mut have = 0;
        loop {
            if !self.wait_input("waiting for the handshake response")? {
                return Err(Failure::Network(
                    "server closed the connection during the handshake",
                ));
            }
            have += self.net.recv(&mut self.hs[have..]);
            match client.parse_response(&req, &self.hs[..have], HS_BUF) {
                Err(e) => {
                    let head = &self.hs[..have];
                    let first = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
                    log(Line::new().s("server answered: ").escaped(first, 80));
                    return Err(Failure::Handshake(e));
                }
                Ok(Parse::Incomplete) => continue,
                Ok(Parse::Done { value, consumed }) => {
                    let mut line = Line::new();
                    line.s("connected to ws://").s(url.authority).s(path);
                    if let Some(p) = value.protocol {
                        line.s(" (subprotocol ").s(p).s(")");
                    }
                    log(&mut line);
                    self.left = (consumed, have);
                    return Ok(());
                }
            }
        }
    }

    /// Sends one whole message, streamed through the staging buffer.
    pub fn send_message(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), Failure> {
        let n = self
            .conn
            .tx
            .begin_message(kind, payload.len() as u64, &mut self.out, &mut self.net.rng)
            .map_err(Failure::Protocol)?;
        self.out_len = n;
        for chunk in payload.chunks(CHUNK) {
            let n = self
                .conn
                .tx
                .payload(chunk, &mut self.out[self.out_len..])
                .map_err(Failure::Protocol)?;
            self.out_len += n;
            self.queue_staged()?;
        }
        self.end()
    }

    /// Stages and sends the start of a frame (echo mode).
    pub fn begin(&mut self, kind: MessageKind, len: u64) -> Result<(), Failure> {
        let n = self
            .conn
            .tx
            .begin_message(kind, len, &mut self.out, &mut self.net.rng)
            .map_err(Failure::Protocol)?;
        self.out_len = n;
        self.flush()
    }

    /// Sends one fragment (RFC 6455 frame with FIN as given) of a message whose
    /// length was not known up front (echo mode).
    pub fn fragment(
        &mut self,
        opcode: websocket::Opcode,
        fin: bool,
        payload_len: usize,
    ) -> Result<(), Failure> {
        let n = self
            .conn
            .tx
            .begin_frame(
                opcode,
                fin,
                payload_len as u64,
                &mut self.out,
                &mut self.net.rng,
            )
            .map_err(Failure::Protocol)?;
        self.out_len = n;
        self.payload(payload_len)
    }

    /// Sends `chunk[..n]` as payload of the frame in progress (echo mode).
    pub fn payload(&mut self, n: usize) -> Result<(), Failure> {
        let chunk = self.chunk;
        let w = self
            .conn
            .tx
            .payload(&chunk[..n], &mut self.out[self.out_len..])
            .map_err(Failure::Protocol)?;
        self.out_len += w;
        self.flush()
    }

    /// Ends the message in progress (hixie-76's 0xFF; nothing in RFC 6455).
    pub fn end(&mut self) -> Result<(), Failure> {
        let n = self
            .conn
            .tx
            .end_message(&mut self.out[self.out_len..])
            .map_err(Failure::Protocol)?;
        self.out_len += n;
        self.flush()
    }

    /// Decodes the next event from what has arrived, without waiting.
    fn poll_event(&mut self) -> Result<Ev, websocket::Error> {
        let Session {
            conn,
            chunk,
            hs,
            left,
            net,
            ..
        } = self;
        if left.0 < left.1 {
            let (n, ev) = read_one(conn, &mut hs[left.0..left.1], chunk)?;
            left.0 += n;
            if ev != Ev::Nothing {
                return Ok(ev);
            }
        }
        loop {
            let r = net.recv_with(|buf| match read_one(conn, buf, chunk) {
                Ok((n, ev)) => (n, Ok(ev)),
                Err(e) => (0, Err(e)),
            });
            match r {
                Some(Ok(Ev::Nothing)) if net.input() == Input::Bytes => continue,
                Some(result) => return result,
                None => return Ok(Ev::Nothing),
            }
        }
    }

    /// The next event, waiting for input up to the timeout. The connection's own
    /// answers (pong, close echo) are sent before returning.
    pub fn next_event(&mut self, what: &'static str) -> Result<Ev, Failure> {
        loop {
            let ev = self.poll_event().map_err(Failure::Protocol)?;
            if matches!(ev, Ev::Ping | Ev::Close(_)) {
                self.flush_auto()?;
            }
            if ev != Ev::Nothing {
                return Ok(ev);
            }
            if !self.wait_input(what)? {
                return Err(Failure::Network("server closed the connection"));
            }
        }
    }

    /// Fails the connection after a protocol error: sends a close frame with the
    /// error's status code (RFC 6455) and drops TCP.
    pub fn fail_connection(&mut self, error: websocket::Error) {
        if let Ok(n) = self
            .conn
            .close(error.close_code(), "", &mut self.out, &mut self.net.rng)
        {
            self.out_len = n;
            let _ = self.flush();
        }
        self.net.close();
        let _ = self.net.wait(Deadline::after_ms(200), |_| None::<()>);
        self.net.abort();
    }

    /// The closing handshake: our close frame, the server's answer (RFC 6455; a
    /// hixie-76 server may simply close TCP), then TCP closed by the server first
    /// and by us after. A data message arriving now was not asked for (every echo
    /// came already): with `strict`, that fails the run.
    pub fn close(&mut self, strict: bool) -> Result<(), Failure> {
        let n = self
            .conn
            .close(Some(1000), "", &mut self.out, &mut self.net.rng)
            .map_err(Failure::Protocol)?;
        self.out_len = n;
        self.flush()?;
        while self.conn.close_state() != CloseState::Done {
            match self.poll_event().map_err(Failure::Protocol)? {
                Ev::Nothing if !self.wait_input("waiting for the server's close frame")? => {
                    if self.protocol == Protocol::Hixie76 {
                        break;
                    }
                    return Err(Failure::Unexpected(
                        "server closed TCP without answering the close frame",
                    ));
                }
                Ev::Start(..) if strict => return Err(Failure::Extra),
                _ => {}
            }
        }
        // The server closes TCP first (RFC 6455 7.1.1); then we close our side.
        let _ = self.net.wait(self.deadline(), |net| {
            (net.input() == Input::Ended).then_some(())
        });
        self.net.close();
        let _ = self.net.wait(self.deadline(), |net| {
            (net.state() == TcpState::Closed).then_some(())
        });
        log(Line::new().s("closed"));
        Ok(())
    }
}

/// Reads at most one event from `input` (payload limited to [`CHUNK`] bytes, copied
/// to `chunk`); returns the bytes consumed.
fn read_one(
    conn: &mut Connection,
    input: &mut [u8],
    chunk: &mut [u8; CHUNK],
) -> Result<(usize, Ev), websocket::Error> {
    let lim = input.len().min(CHUNK);
    let (n, ev) = conn.read(&mut input[..lim])?;
    let ev = match ev {
        None => Ev::Nothing,
        Some(Event::MessageStart { kind, len }) => Ev::Start(kind, len),
        Some(Event::Data(data)) => {
            chunk[..data.len()].copy_from_slice(data);
            Ev::Data(data.len())
        }
        Some(Event::MessageEnd) => Ev::End,
        Some(Event::Ping(_)) => Ev::Ping,
        Some(Event::Pong(_)) => Ev::Pong,
        Some(Event::Close { code, .. }) => Ev::Close(code),
    };
    Ok((n, ev))
}
