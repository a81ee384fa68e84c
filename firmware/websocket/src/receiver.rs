//! Frame decoding: [`Receiver`] turns a byte stream into [`Event`]s.
//!
//! Feed it whatever arrived, in any chunking (one byte at a time works).
//! Each [`Receiver::read`] call consumes input until it has one event or
//! the input is used up, and returns how many bytes it consumed. Message
//! payload is handed out as [`Event::Data`] chunks that borrow from (and,
//! for masked frames, are unmasked in) the caller's input buffer, so a
//! message never has to fit in RAM. Partial frame headers and control frame
//! payloads (at most 125 bytes) are kept inside the receiver, so the caller
//! can always drop consumed bytes.

use crate::frame::{MessageKind, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::utf8::Utf8Validator;
use crate::{close_code, Error, Protocol, Role};

/// What the peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A data message starts. `len` is its total length when known up front
    /// (an unfragmented RFC 6455 frame), `None` otherwise.
    MessageStart {
        /// Text or binary.
        kind: MessageKind,
        /// Total payload length, if known.
        len: Option<u64>,
    },
    /// The next chunk of the current message's payload (unmasked; for text,
    /// UTF-8 validated so far, but a chunk may end inside a code point).
    Data(&'a [u8]),
    /// The current message is complete (text: fully valid UTF-8).
    MessageEnd,
    /// A ping with its payload (answer with a pong of the same payload;
    /// [`Connection`](crate::Connection) does so automatically).
    Ping(&'a [u8]),
    /// A pong with its payload.
    Pong(&'a [u8]),
    /// The peer's close frame (hixie-76: `0xFF 0x00`, no code). After this
    /// the receiver ignores all input.
    Close {
        /// Status code, `None` if the frame had no payload.
        code: Option<u16>,
        /// UTF-8 reason (may be empty).
        reason: &'a str,
    },
}

/// Decoder state; each variant says what the next input bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxState {
    /// RFC 6455: frame header bytes (`hdr[..hdr_len]` collected so far).
    Header,
    /// RFC 6455: payload of a data frame, `remaining` bytes to go.
    Data { remaining: u64 },
    /// RFC 6455: payload of a control frame, collected into `ctrl`.
    Control { remaining: u8 },
    /// No input needed: emit [`Event::MessageEnd`] next.
    End,
    /// Hixie-76: a frame type byte.
    HixieIdle,
    /// Hixie-76: text frame bytes up to the `0xFF` sentinel.
    HixieText,
    /// Hixie-76: bytes of a sentinel frame of an unknown type, discarded up
    /// to `0xFF`.
    HixieSkipSentinel,
    /// Hixie-76: length bytes of a length-prefixed frame of type `ty`.
    HixieLength { ty: u8, len: u64 },
    /// Hixie-76: `remaining` bytes of a length-prefixed frame, discarded.
    HixieSkip { remaining: u64 },
    /// The close frame was received: input is ignored.
    Closed,
}

/// What a completed frame header leads to.
enum Start {
    Nothing,
    Message(MessageKind, Option<u64>),
    EmptyControl,
}

/// Frame decoder for one side of one connection.
///
/// Enforces (RFC 6455): reserved bits and opcodes, masking direction for the
/// role, control frames unfragmented and at most 125 bytes, continuation
/// sequencing, close codes, UTF-8 of text and close reasons (incrementally),
/// and the caller's maximum message size. Hixie-76: `0x00`..`0xFF` text
/// frames (UTF-8 checked), length-prefixed frames skipped, `0xFF 0x00` close.
///
/// After an error the connection is broken; stop reading and (RFC 6455)
/// send a close with [`Error::close_code`].
#[derive(Debug, Clone)]
pub struct Receiver {
    protocol: Protocol,
    role: Role,
    max_message: u64,
    state: RxState,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    /// Current frame: opcode, FIN, mask key and offset.
    opcode: u8,
    fin: bool,
    masked: bool,
    mask: [u8; 4],
    mask_off: u8,
    /// Current data message (None between messages) and its length so far.
    message: Option<MessageKind>,
    message_len: u64,
    utf8: Utf8Validator,
    ctrl: [u8; MAX_CONTROL_PAYLOAD],
    ctrl_len: u8,
    /// Payload of the latest ping not yet answered (`pong_len` bytes).
    pong: [u8; MAX_CONTROL_PAYLOAD],
    pong_len: Option<u8>,
    /// Status code of the peer's close frame (valid once closed).
    peer_code: Option<u16>,
}

impl Receiver {
    /// A receiver for `role` (the side that *owns* it: a client reads server
    /// frames) with a maximum message size of `max_message` bytes
    /// ([`Error::MessageTooBig`] beyond; with streaming this is a policy,
    /// not a buffer size).
    pub const fn new(protocol: Protocol, role: Role, max_message: u64) -> Self {
        Receiver {
            protocol,
            role,
            max_message,
            state: match protocol {
                Protocol::Rfc6455 => RxState::Header,
                Protocol::Hixie76 => RxState::HixieIdle,
            },
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            opcode: 0,
            fin: false,
            masked: false,
            mask: [0; 4],
            mask_off: 0,
            message: None,
            message_len: 0,
            utf8: Utf8Validator::new(),
            ctrl: [0; MAX_CONTROL_PAYLOAD],
            ctrl_len: 0,
            pong: [0; MAX_CONTROL_PAYLOAD],
            pong_len: None,
            peer_code: None,
        }
    }

    /// The payload of the latest ping that still needs a pong (the
    /// automatic reply; [`Connection::poll_write`](crate::Connection::poll_write)
    /// sends it and calls [`Receiver::clear_pong`]).
    pub fn pending_pong(&self) -> Option<&[u8]> {
        self.pong.get(..self.pong_len? as usize)
    }

    /// Marks the pending pong as sent.
    pub fn clear_pong(&mut self) {
        self.pong_len = None;
    }

    /// The status code of the peer's close frame, once
    /// [`Receiver::is_closed`] (`None` if it had none, and for hixie-76).
    pub fn peer_close_code(&self) -> Option<u16> {
        self.peer_code
    }

    /// Whether the peer's close frame has been received.
    pub fn is_closed(&self) -> bool {
        self.state == RxState::Closed
    }

    /// Whether a data message is in progress.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Consumes bytes from `input` until one event is complete or `input` is
    /// used up. Returns the bytes consumed and the event, if any; with
    /// `None`, all of `input` was consumed and more is needed.
    ///
    /// Masked payload is unmasked in place in `input` (hence `&mut`).
    pub fn read<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        match self.protocol {
            Protocol::Rfc6455 => self.read_rfc(input),
            Protocol::Hixie76 => self.read_hixie(input),
        }
    }

    fn add_len(&mut self, n: u64) -> Result<(), Error> {
        self.message_len = self.message_len.saturating_add(n);
        if self.message_len > self.max_message {
            Err(Error::MessageTooBig)
        } else {
            Ok(())
        }
    }

    fn read_rfc<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let mut used = 0;
        loop {
            match self.state {
                RxState::Closed => return Ok((input.len(), None)),
                RxState::End => {
                    self.state = RxState::Header;
                    self.message = None;
                    self.message_len = 0;
                    return Ok((used, Some(Event::MessageEnd)));
                }
                RxState::Header => {
                    let Some(&b) = input.get(used) else {
                        return Ok((used, None));
                    };
                    used += 1;
                    if let Some(slot) = self.hdr.get_mut(self.hdr_len as usize) {
                        *slot = b;
                    }
                    self.hdr_len += 1;
                    if self.hdr_len == 2 {
                        self.check_first_two()?;
                    }
                    if self.hdr_len >= 2 && self.hdr_len as usize == self.header_len() {
                        match self.start_payload()? {
                            Start::Nothing => {}
                            Start::Message(kind, len) => {
                                return Ok((used, Some(Event::MessageStart { kind, len })));
                            }
                            Start::EmptyControl => {
                                return Ok((used, Some(self.control_event()?)));
                            }
                        }
                    }
                }
                RxState::Data { remaining } => {
                    let rest = input.get_mut(used..).unwrap_or(&mut []);
                    if rest.is_empty() {
                        return Ok((used, None));
                    }
                    let take = (rest.len() as u64).min(remaining) as usize;
                    let chunk = rest.get_mut(..take).unwrap_or(&mut []);
                    if self.masked {
                        self.mask_off =
                            crate::frame::apply_mask(self.mask, self.mask_off as usize, chunk)
                                as u8;
                    }
                    if self.message == Some(MessageKind::Text) && self.utf8.feed(chunk).is_err() {
                        return Err(Error::InvalidUtf8);
                    }
                    let left = remaining - take as u64;
                    self.state = if left > 0 {
                        RxState::Data { remaining: left }
                    } else {
                        self.frame_done()?
                    };
                    return Ok((used + take, Some(Event::Data(chunk))));
                }
                RxState::Control { remaining } => {
                    let rest = input.get_mut(used..).unwrap_or(&mut []);
                    if rest.is_empty() {
                        return Ok((used, None));
                    }
                    let take = rest.len().min(remaining as usize);
                    let start = self.ctrl_len as usize;
                    let dst = self
                        .ctrl
                        .get_mut(start..start + take)
                        .ok_or(Error::ControlTooLong)?;
                    dst.copy_from_slice(rest.get(..take).unwrap_or(&[]));
                    if self.masked {
                        self.mask_off =
                            crate::frame::apply_mask(self.mask, self.mask_off as usize, dst) as u8;
                    }
                    used += take;
                    self.ctrl_len += take as u8;
                    let left = remaining - take as u8;
                    self.state = RxState::Control { remaining: left };
                    if left == 0 {
                        let ev = self.control_event()?;
                        return Ok((used, Some(ev)));
                    }
                }
                _ => return Err(Error::InvalidState),
            }
        }
    }

    /// Checks byte 0 and 1 of a header as soon as they are in.
    fn check_first_two(&mut self) -> Result<(), Error> {
        let [b0, b1, ..] = self.hdr;
        if b0 & 0x70 != 0 {
            return Err(Error::ReservedBits);
        }
        let op = b0 & 0x0F;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        match op {
            0x0 => {
                if self.message.is_none() {
                    return Err(Error::UnexpectedContinuation);
                }
            }
            0x1 | 0x2 => {
                if self.message.is_some() {
                    return Err(Error::ExpectedContinuation);
                }
            }
            0x8..=0xA => {
                if !fin {
                    return Err(Error::FragmentedControl);
                }
                if len7 > 125 {
                    return Err(Error::ControlTooLong);
                }
            }
            _ => return Err(Error::ReservedOpcode),
        }
        match (self.role, masked) {
            (Role::Server, false) => return Err(Error::UnmaskedFrame),
            (Role::Client, true) => return Err(Error::MaskedFrame),
            _ => {}
        }
        self.opcode = op;
        self.fin = fin;
        self.masked = masked;
        Ok(())
    }

    /// Header length implied by the first two bytes.
    fn header_len(&self) -> usize {
        let ext = match self.hdr[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if self.masked { 4 } else { 0 }
    }

    /// The header is complete: set up the payload state. May return an
    /// event (message start, or an empty control frame / message end).
    fn start_payload(&mut self) -> Result<Start, Error> {
        let h = self.hdr;
        let (len, p) = match h[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        if len > i64::MAX as u64 {
            return Err(Error::BadLength);
        }
        if self.masked {
            self.mask.copy_from_slice(&h[p..p + 4]);
        }
        self.mask_off = 0;
        self.hdr_len = 0;
        if self.opcode & 0x8 != 0 {
            self.ctrl_len = 0;
            if len == 0 {
                self.state = RxState::Control { remaining: 0 };
                return Ok(Start::EmptyControl);
            }
            self.state = RxState::Control {
                remaining: len as u8,
            };
            return Ok(Start::Nothing);
        }
        self.add_len(len)?;
        let start = if self.opcode != 0 {
            let kind = if self.opcode == 1 {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            self.message = Some(kind);
            self.utf8.reset();
            Start::Message(kind, if self.fin { Some(len) } else { None })
        } else {
            Start::Nothing
        };
        self.state = if len > 0 {
            RxState::Data { remaining: len }
        } else {
            self.frame_done()?
        };
        Ok(start)
    }

    /// A data frame's payload is complete: next state.
    fn frame_done(&mut self) -> Result<RxState, Error> {
        if !self.fin {
            return Ok(RxState::Header);
        }
        if self.message == Some(MessageKind::Text) && !self.utf8.is_complete() {
            return Err(Error::InvalidUtf8);
        }
        Ok(RxState::End)
    }

    /// A control frame's payload is complete in `ctrl`.
    fn control_event(&mut self) -> Result<Event<'_>, Error> {
        let payload = self.ctrl.get(..self.ctrl_len as usize).unwrap_or(&[]);
        self.state = RxState::Header;
        Ok(match self.opcode {
            0x9 => {
                if let Some(dst) = self.pong.get_mut(..payload.len()) {
                    dst.copy_from_slice(payload);
                    self.pong_len = Some(payload.len() as u8);
                }
                Event::Ping(payload)
            }
            0xA => Event::Pong(payload),
            _ => {
                let (code, reason) = match payload {
                    [] => (None, ""),
                    [_] => return Err(Error::BadCloseCode),
                    [a, b, rest @ ..] => {
                        let code = u16::from_be_bytes([*a, *b]);
                        if !close_code::is_valid(code) {
                            return Err(Error::BadCloseCode);
                        }
                        let reason = core::str::from_utf8(rest).map_err(|_| Error::InvalidUtf8)?;
                        (Some(code), reason)
                    }
                };
                self.state = RxState::Closed;
                self.peer_code = code;
                Event::Close { code, reason }
            }
        })
    }

    fn read_hixie<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let mut used = 0;
        loop {
            match self.state {
                RxState::Closed => return Ok((input.len(), None)),
                RxState::HixieIdle => {
                    let Some(&ty) = input.get(used) else {
                        return Ok((used, None));
                    };
                    used += 1;
                    if ty == 0x00 {
                        self.state = RxState::HixieText;
                        self.message = Some(MessageKind::Text);
                        self.message_len = 0;
                        self.utf8.reset();
                        return Ok((
                            used,
                            Some(Event::MessageStart {
                                kind: MessageKind::Text,
                                len: None,
                            }),
                        ));
                    } else if ty & 0x80 == 0 {
                        self.state = RxState::HixieSkipSentinel;
                    } else {
                        self.state = RxState::HixieLength { ty, len: 0 };
                    }
                }
                RxState::HixieSkipSentinel => {
                    let rest = input.get(used..).unwrap_or(&[]);
                    match rest.iter().position(|&b| b == 0xFF) {
                        Some(p) => {
                            used += p + 1;
                            self.state = RxState::HixieIdle;
                        }
                        None => return Ok((input.len(), None)),
                    }
                }
                RxState::HixieLength { ty, len } => {
                    let Some(&b) = input.get(used) else {
                        return Ok((used, None));
                    };
                    used += 1;
                    let len = len
                        .checked_mul(128)
                        .and_then(|l| l.checked_add(u64::from(b & 0x7F)))
                        .ok_or(Error::BadLength)?;
                    if b & 0x80 != 0 {
                        self.state = RxState::HixieLength { ty, len };
                    } else if ty == 0xFF && len == 0 {
                        self.state = RxState::Closed;
                        return Ok((
                            used,
                            Some(Event::Close {
                                code: None,
                                reason: "",
                            }),
                        ));
                    } else {
                        self.state = RxState::HixieSkip { remaining: len };
                    }
                }
                RxState::HixieSkip { remaining } => {
                    if remaining == 0 {
                        self.state = RxState::HixieIdle;
                        continue;
                    }
                    let avail = input.len().saturating_sub(used);
                    if avail == 0 {
                        return Ok((used, None));
                    }
                    let take = (avail as u64).min(remaining);
                    used += take as usize;
                    self.state = RxState::HixieSkip {
                        remaining: remaining - take,
                    };
                }
                RxState::HixieText => {
                    let rest = input.get_mut(used..).unwrap_or(&mut []);
                    if rest.is_empty() {
                        return Ok((used, None));
                    }
                    let end = rest.iter().position(|&b| b == 0xFF);
                    if end == Some(0) {
                        if !self.utf8.is_complete() {
                            return Err(Error::InvalidUtf8);
                        }
                        self.state = RxState::HixieIdle;
                        self.message = None;
                        return Ok((used + 1, Some(Event::MessageEnd)));
                    }
                    // Hand out at most up to the limit, so the error for a
                    // given byte stream does not depend on its chunking.
                    let room = self.max_message.saturating_sub(self.message_len);
                    if room == 0 {
                        return Err(Error::MessageTooBig);
                    }
                    let take = (end.unwrap_or(rest.len()) as u64).min(room) as usize;
                    let chunk = rest.get(..take).unwrap_or(&[]);
                    self.message_len += take as u64;
                    if self.utf8.feed(chunk).is_err() {
                        return Err(Error::InvalidUtf8);
                    }
                    return Ok((used + take, Some(Event::Data(chunk))));
                }
                _ => return Err(Error::InvalidState),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Start(MessageKind, Option<u64>),
        Msg(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    /// Feeds `bytes` in chunks of `step`, joining Data chunks per message.
    fn run(rx: &mut Receiver, bytes: &[u8], step: usize) -> Result<Vec<Ev>, Error> {
        let mut out = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        let mut buf = bytes.to_vec();
        for chunk in buf.chunks_mut(step.max(1)) {
            let mut pos = 0;
            loop {
                let (n, ev) = rx.read(&mut chunk[pos..])?;
                pos += n;
                match ev {
                    None => break,
                    Some(Event::MessageStart { kind, len }) => {
                        out.push(Ev::Start(kind, len));
                        cur = Some(Vec::new());
                    }
                    Some(Event::Data(d)) => cur.as_mut().unwrap().extend_from_slice(d),
                    Some(Event::MessageEnd) => out.push(Ev::Msg(cur.take().unwrap())),
                    Some(Event::Ping(p)) => out.push(Ev::Ping(p.to_vec())),
                    Some(Event::Pong(p)) => out.push(Ev::Pong(p.to_vec())),
                    Some(Event::Close { code, reason }) => out.push(Ev::Close(code, reason.into())),
                }
            }
            assert_eq!(pos, chunk.len());
        }
        Ok(out)
    }

    fn all_steps(role: Role, bytes: &[u8]) -> Result<Vec<Ev>, Error> {
        let first = run(
            &mut Receiver::new(Protocol::Rfc6455, role, 1 << 20),
            bytes,
            bytes.len(),
        );
        for step in 1..8 {
            let r = run(
                &mut Receiver::new(Protocol::Rfc6455, role, 1 << 20),
                bytes,
                step,
            );
            assert_eq!(r, first, "step {step}");
        }
        first
    }

    fn hello() -> Vec<Ev> {
        vec![
            Ev::Start(MessageKind::Text, Some(5)),
            Ev::Msg(b"Hello".to_vec()),
        ]
    }

    #[test]
    fn rfc_5_7_examples() {
        let c = Role::Client;
        let s = Role::Server;
        assert_eq!(
            all_steps(c, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
            Ok(hello())
        );
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(all_steps(s, &masked), Ok(hello()));
        let frag = [
            0x01, 0x03, 0x48, 0x65, 0x6c, 0x89, 0x00, 0x80, 0x02, 0x6c, 0x6f,
        ];
        assert_eq!(
            all_steps(c, &frag),
            Ok(vec![
                Ev::Start(MessageKind::Text, None),
                Ev::Ping(vec![]),
                Ev::Msg(b"Hello".to_vec())
            ])
        );
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(all_steps(c, &ping), Ok(vec![Ev::Ping(b"Hello".to_vec())]));
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(all_steps(s, &pong), Ok(vec![Ev::Pong(b"Hello".to_vec())]));
        let mut b256 = vec![0x82, 0x7E, 0x01, 0x00];
        b256.extend((0..256).map(|i| i as u8));
        assert_eq!(
            all_steps(c, &b256),
            Ok(vec![
                Ev::Start(MessageKind::Binary, Some(256)),
                Ev::Msg((0..256).map(|i| i as u8).collect())
            ])
        );
        let mut b64k = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        b64k.extend(core::iter::repeat_n(7u8, 65536));
        let r = run(&mut Receiver::new(Protocol::Rfc6455, c, 65536), &b64k, 1000).unwrap();
        assert_eq!(
            r,
            vec![
                Ev::Start(MessageKind::Binary, Some(65536)),
                Ev::Msg(vec![7; 65536])
            ]
        );
    }

    #[test]
    fn close_frames() {
        let c = Role::Client;
        assert_eq!(
            all_steps(c, &[0x88, 0x00]),
            Ok(vec![Ev::Close(None, String::new())])
        );
        assert_eq!(
            all_steps(c, b"\x88\x05\x03\xe8bye\x81\x00"),
            Ok(vec![Ev::Close(Some(1000), "bye".into())])
        );
        let mut rx = Receiver::new(Protocol::Rfc6455, c, 100);
        run(&mut rx, &[0x88, 0x02, 0x0b, 0xb8], 100).unwrap();
        assert!(rx.is_closed());
        assert_eq!(run(&mut rx, &[0xff, 0xff], 1), Ok(vec![]));
    }

    fn err(role: Role, max: u64, bytes: &[u8]) -> Error {
        for step in 1..=bytes.len() {
            let e = run(
                &mut Receiver::new(Protocol::Rfc6455, role, max),
                bytes,
                step,
            )
            .unwrap_err();
            let e2 = run(
                &mut Receiver::new(Protocol::Rfc6455, role, max),
                bytes,
                bytes.len(),
            )
            .unwrap_err();
            assert_eq!(e, e2);
        }
        run(&mut Receiver::new(Protocol::Rfc6455, role, max), bytes, 1).unwrap_err()
    }

    #[test]
    fn rfc_errors() {
        let c = Role::Client;
        use Error::*;
        for rsv in [0x40, 0x20, 0x10] {
            assert_eq!(err(c, 100, &[0x81 | rsv, 0x00]), ReservedBits);
        }
        for op in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(err(c, 100, &[0x80 | op, 0x00]), ReservedOpcode);
        }
        assert_eq!(err(c, 100, &[0x09, 0x00]), FragmentedControl);
        assert_eq!(err(c, 1000, &[0x89, 0x7E, 0x00, 0x7E]), ControlTooLong);
        assert_eq!(err(Role::Server, 100, &[0x81, 0x00]), UnmaskedFrame);
        assert_eq!(err(c, 100, &[0x81, 0x80, 1, 2, 3, 4]), MaskedFrame);
        assert_eq!(err(c, 100, &[0x80, 0x00]), UnexpectedContinuation);
        assert_eq!(err(c, 100, &[0x01, 0x00, 0x81, 0x00]), ExpectedContinuation);
        assert_eq!(
            err(c, u64::MAX, &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            BadLength
        );
        assert_eq!(err(c, 100, &[0x88, 0x01, 0x03]), BadCloseCode);
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            let [a, b] = code.to_be_bytes();
            assert_eq!(err(c, 100, &[0x88, 0x02, a, b]), BadCloseCode, "{code}");
        }
        assert_eq!(err(c, 100, b"\x88\x04\x03\xe8\xc3\x28"), InvalidUtf8);
        assert_eq!(err(c, 100, b"\x81\x02\xc3\x28"), InvalidUtf8);
        // Incomplete code point at the end of a fragmented message.
        assert_eq!(err(c, 100, b"\x01\x01\xc3\x80\x00"), InvalidUtf8);
        assert_eq!(err(c, 100, b"\x01\x01a\x80\x01\xc3"), InvalidUtf8);
        assert_eq!(err(c, 4, b"\x82\x05hello"), MessageTooBig);
        assert_eq!(err(c, 4, b"\x02\x03hel\x80\x02lo"), MessageTooBig);
        assert_eq!(InvalidUtf8.close_code(), Some(1007));
        assert_eq!(MessageTooBig.close_code(), Some(1009));
        assert_eq!(MaskedFrame.close_code(), Some(1002));
        assert_eq!(BadKey.close_code(), None);
    }

    #[test]
    fn text_across_fragments_and_chunks() {
        // "é€" split inside code points across two fragments.
        let bytes = b"\x01\x03\xc3\xa9\xe2\x80\x02\x82\xac";
        assert_eq!(
            all_steps(Role::Client, bytes),
            Ok(vec![
                Ev::Start(MessageKind::Text, None),
                Ev::Msg("é€".as_bytes().to_vec())
            ])
        );
    }

    fn hixie(bytes: &[u8], max: u64) -> Result<Vec<Ev>, Error> {
        let first = run(
            &mut Receiver::new(Protocol::Hixie76, Role::Client, max),
            bytes,
            bytes.len(),
        );
        for step in 1..5 {
            let r = run(
                &mut Receiver::new(Protocol::Hixie76, Role::Server, max),
                bytes,
                step,
            );
            assert_eq!(r, first, "step {step}");
        }
        first
    }

    #[test]
    fn hixie_frames() {
        let start = Ev::Start(MessageKind::Text, None);
        assert_eq!(
            hixie(b"\x00h\xc3\xa9\xff\x00\xff", 100),
            Ok(vec![
                Ev::Start(MessageKind::Text, None),
                Ev::Msg("hé".as_bytes().to_vec()),
                start,
                Ev::Msg(vec![])
            ])
        );
        // Length-prefixed frames (0x80 type, 2-byte length 130) and unknown
        // sentinel frames are skipped.
        let mut b = vec![0x80, 0x81, 0x02];
        b.extend([9u8; 130]);
        b.extend(b"\x05junk\xff\x00ok\xff\xff\x00trailing");
        assert_eq!(
            hixie(&b, 100),
            Ok(vec![
                Ev::Start(MessageKind::Text, None),
                Ev::Msg(b"ok".to_vec()),
                Ev::Close(None, String::new())
            ])
        );
        assert_eq!(hixie(b"\x00hello\xff", 4), Err(Error::MessageTooBig));
        // Bad UTF-8 before the limit is reported as such however the
        // stream is chunked (found by fuzzing).
        assert_eq!(hixie(b"\x00ab\xc3\x28cdef\xff", 5), Err(Error::InvalidUtf8));
        assert_eq!(
            hixie(b"\x00abcdef\xc3\x28\xff", 5),
            Err(Error::MessageTooBig)
        );
        assert_eq!(hixie(b"\x00\xc3\x28\xff", 100), Err(Error::InvalidUtf8));
        assert_eq!(hixie(b"\x00\xc3\xff", 100), Err(Error::InvalidUtf8));
        let mut over = vec![0x80];
        over.extend([0xFF; 10]);
        over.push(0x7F);
        assert_eq!(hixie(&over, 100), Err(Error::BadLength));
    }
}
