//! The RFC 6455 frame decoder (section 5): headers byte by byte, data payload
//! handed out in place, control payload collected (at most 125 bytes).

use super::{Common, Event};
use crate::frame::{MessageKind, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::{close_code, Error, Role};

/// What the next input bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Frame header bytes (`hdr[..hdr_len]` collected so far).
    Header,
    /// Payload of a data frame, [`Decoder::remaining`] bytes to go.
    Data,
    /// Payload of a control frame, collected into `ctrl`.
    Control { remaining: u8 },
    /// No input needed: emit [`Event::MessageEnd`] next.
    End,
}

/// What a completed frame header leads to.
enum Start {
    Nothing,
    Message(MessageKind, Option<u64>),
    EmptyControl,
}

/// RFC 6455 decoder state.
#[derive(Debug, Clone)]
pub(super) struct Decoder {
    role: Role,
    state: State,
    /// Payload bytes to go in [`State::Data`] (here rather than in the variant,
    /// where the `u64` would double the enum's size with padding).
    remaining: u64,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    /// Current frame: opcode, FIN, mask key and offset.
    opcode: u8,
    fin: bool,
    masked: bool,
    mask: [u8; 4],
    mask_off: u8,
    ctrl: [u8; MAX_CONTROL_PAYLOAD],
    ctrl_len: u8,
    /// Payload of the latest ping not yet answered (`pong_len` bytes).
    pong: [u8; MAX_CONTROL_PAYLOAD],
    pong_len: Option<u8>,
    /// Status code of the peer's close frame (valid once closed).
    pub(super) peer_code: Option<u16>,
    /// Text frames are read as binary (see
    /// [`Receiver::set_text_as_binary`](super::Receiver::set_text_as_binary)).
    pub(super) text_as_binary: bool,
    /// A text frame was read as binary since the option was last set.
    pub(super) read_text_as_binary: bool,
}

impl Decoder {
    pub(super) const fn new(role: Role) -> Self {
        Decoder {
            role,
            state: State::Header,
            remaining: 0,
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            opcode: 0,
            fin: false,
            masked: false,
            mask: [0; 4],
            mask_off: 0,
            ctrl: [0; MAX_CONTROL_PAYLOAD],
            ctrl_len: 0,
            pong: [0; MAX_CONTROL_PAYLOAD],
            pong_len: None,
            peer_code: None,
            text_as_binary: false,
            read_text_as_binary: false,
        }
    }

    pub(super) fn pending_pong(&self) -> Option<&[u8]> {
        self.pong.get(..self.pong_len? as usize)
    }

    pub(super) fn clear_pong(&mut self) {
        self.pong_len = None;
    }

    /// See [`Receiver::read`](super::Receiver::read); `c` is the state both
    /// protocols share.
    pub(super) fn read<'a>(
        &'a mut self,
        c: &'a mut Common,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let mut used = 0;
        loop {
            match self.state {
                State::End => {
                    self.state = State::Header;
                    c.end();
                    return Ok((used, Some(Event::MessageEnd)));
                }
                State::Header => {
                    let Some(&b) = input.get(used) else {
                        return Ok((used, None));
                    };
                    used += 1;
                    if let Some(slot) = self.hdr.get_mut(self.hdr_len as usize) {
                        *slot = b;
                    }
                    self.hdr_len += 1;
                    if self.hdr_len == 2 {
                        self.check_first_two(c)?;
                    }
                    if self.hdr_len >= 2 && self.hdr_len as usize == self.header_len() {
                        match self.start_payload(c)? {
                            Start::Nothing => {}
                            Start::Message(kind, len) => {
                                return Ok((used, Some(Event::MessageStart { kind, len })));
                            }
                            Start::EmptyControl => {
                                return Ok((used, Some(self.control_event(c)?)));
                            }
                        }
                    }
                }
                State::Data => {
                    let remaining = self.remaining;
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
                    if c.message == Some(MessageKind::Text) && c.utf8.feed(chunk).is_err() {
                        return Err(Error::InvalidUtf8);
                    }
                    let left = remaining - take as u64;
                    self.state = if left > 0 {
                        self.remaining = left;
                        State::Data
                    } else {
                        self.frame_done(c)?
                    };
                    return Ok((used + take, Some(Event::Data(chunk))));
                }
                State::Control { remaining } => {
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
                    self.state = State::Control { remaining: left };
                    if left == 0 {
                        let ev = self.control_event(c)?;
                        return Ok((used, Some(ev)));
                    }
                }
            }
        }
    }

    /// Checks byte 0 and 1 of a header as soon as they are in.
    fn check_first_two(&mut self, c: &Common) -> Result<(), Error> {
        let [b0, b1, ..] = self.hdr;
        if b0 & 0x70 != 0 {
            return Err(Error::ReservedBits);
        }
        let op = match b0 & 0x0F {
            0x1 if self.text_as_binary => {
                self.read_text_as_binary = true;
                0x2
            }
            op => op,
        };
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        match op {
            0x0 => {
                if c.message.is_none() {
                    return Err(Error::UnexpectedContinuation);
                }
            }
            0x1 | 0x2 => {
                if c.message.is_some() {
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
    fn start_payload(&mut self, c: &mut Common) -> Result<Start, Error> {
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
                self.state = State::Control { remaining: 0 };
                return Ok(Start::EmptyControl);
            }
            self.state = State::Control {
                remaining: len as u8,
            };
            return Ok(Start::Nothing);
        }
        c.add_len(len)?;
        let start = if self.opcode != 0 {
            let kind = if self.opcode == 1 {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            c.start(kind);
            Start::Message(kind, if self.fin { Some(len) } else { None })
        } else {
            Start::Nothing
        };
        self.state = if len > 0 {
            self.remaining = len;
            State::Data
        } else {
            self.frame_done(c)?
        };
        Ok(start)
    }

    /// A data frame's payload is complete: next state.
    fn frame_done(&mut self, c: &Common) -> Result<State, Error> {
        if !self.fin {
            return Ok(State::Header);
        }
        if c.message == Some(MessageKind::Text) && !c.utf8.is_complete() {
            return Err(Error::InvalidUtf8);
        }
        Ok(State::End)
    }

    /// A control frame's payload is complete in `ctrl`.
    fn control_event(&mut self, c: &mut Common) -> Result<Event<'_>, Error> {
        let payload = self.ctrl.get(..self.ctrl_len as usize).unwrap_or(&[]);
        self.state = State::Header;
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
                c.closed = true;
                self.peer_code = code;
                Event::Close { code, reason }
            }
        })
    }
}
