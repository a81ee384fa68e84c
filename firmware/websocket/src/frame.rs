//! Frame encoding: [`Sender`] writes frames into caller buffers.
//!
//! Whole messages: [`Sender::message`]. Streaming (payload does not fit in
//! RAM): [`Sender::begin_message`] (or [`Sender::begin_frame`] for
//! fragments) writes the header for a known length, then
//! [`Sender::payload`] / [`Sender::payload_in_place`] copy and mask chunks
//! (the mask key offset carries over between chunks), then
//! [`Sender::end_message`] (writes hixie-76's `0xFF` trailer; nothing for
//! RFC 6455).
//!
//! Client frames (RFC 6455) are masked with a fresh key from the caller's
//! [`Rng`] for every frame.

use crate::{Error, Protocol, Rng, Role};

/// RFC 6455 opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// 0x0: continuation of a fragmented message.
    Continuation = 0x0,
    /// 0x1: first frame of a text message.
    Text = 0x1,
    /// 0x2: first frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl Opcode {
    /// Whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }

    /// The opcode for a 4-bit value, `None` if reserved.
    pub fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }
}

/// Data message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Binary (RFC 6455 only).
    Binary,
}

/// Largest RFC 6455 frame header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;

/// Largest control frame payload.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Length of an RFC 6455 frame header for a payload of `len` bytes.
pub const fn header_len(len: u64, masked: bool) -> usize {
    let ext = if len < 126 {
        0
    } else if len <= 0xFFFF {
        2
    } else {
        8
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// XORs `buf` with `key`, starting at key position `offset` (0..4).
/// Returns the new offset.
pub fn apply_mask(key: [u8; 4], offset: usize, buf: &mut [u8]) -> usize {
    // The key rotated to `offset`, then 8 bytes per XOR (LLVM vectorizes this).
    let k = [
        key[offset & 3],
        key[(offset + 1) & 3],
        key[(offset + 2) & 3],
        key[(offset + 3) & 3],
    ];
    let m = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        if let Ok(a) = <[u8; 8]>::try_from(&*c) {
            c.copy_from_slice(&(u64::from_ne_bytes(a) ^ m).to_ne_bytes());
        }
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
    (offset + buf.len()) & 3
}

/// Sender state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// Between frames: any frame may start.
    Idle,
    /// Inside an RFC 6455 frame's payload: `remaining` bytes still to come.
    Frame { remaining: u64 },
    /// Inside a hixie-76 text frame (after `0x00`, before `0xFF`).
    HixieText,
}

/// Frame encoder for one side of one connection.
///
/// States: *idle* (between frames) or *in a frame* (header written, payload
/// pending). Control frames and new messages may only start when idle
/// ([`Error::InvalidState`] otherwise); between the *frames* of a
/// fragmented RFC 6455 message the sender is idle, so pings/pongs may go out
/// there.
#[derive(Debug, Clone)]
pub struct Sender {
    protocol: Protocol,
    role: Role,
    state: TxState,
    mask: [u8; 4],
    offset: u8,
    /// A fragmented RFC 6455 message is in progress (its last frame had FIN clear).
    fragmented: bool,
    /// A close frame was written: nothing may follow it.
    close_sent: bool,
}

impl Sender {
    /// An idle sender for `role` speaking `protocol`.
    pub const fn new(protocol: Protocol, role: Role) -> Self {
        Sender {
            protocol,
            role,
            state: TxState::Idle,
            mask: [0; 4],
            offset: 0,
            fragmented: false,
            close_sent: false,
        }
    }

    /// Whether a close frame has been written (then every further frame is
    /// refused with [`Error::InvalidState`]).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether no frame is being written (a control frame or a new message
    /// may start).
    pub fn is_idle(&self) -> bool {
        self.state == TxState::Idle
    }

    /// Whether an RFC 6455 fragmented message is in progress (the next data
    /// frame must be a [`Opcode::Continuation`]).
    pub fn in_fragmented_message(&self) -> bool {
        self.fragmented
    }

    /// Writes a complete message (one frame) and returns its length.
    ///
    /// Needs `out` of at least [`header_len`]`(len, client) + len` bytes
    /// (RFC 6455) or `len + 2` (hixie-76, text only: [`Error::Unsupported`]
    /// for binary, [`Error::InvalidText`] if `payload` contains `0xFF`).
    pub fn message<R: Rng + ?Sized>(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        let h = self.begin_message(kind, payload.len() as u64, out, rng)?;
        let rest = out.get_mut(h..).ok_or(Error::BufferTooSmall)?;
        let p = match self.payload(payload, rest) {
            Ok(p) => p,
            Err(e) => {
                self.state = TxState::Idle;
                return Err(e);
            }
        };
        let rest = out.get_mut(h + p..).ok_or(Error::BufferTooSmall)?;
        let t = self.end_message(rest)?;
        Ok(h + p + t)
    }

    /// Starts a single-frame message of `len` payload bytes: writes the
    /// frame header (RFC 6455, FIN set) or `0x00` (hixie-76, text only; `len`
    /// is not sent). Follow with [`Sender::payload`] calls adding up to
    /// exactly `len` bytes, then [`Sender::end_message`].
    pub fn begin_message<R: Rng + ?Sized>(
        &mut self,
        kind: MessageKind,
        len: u64,
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        match self.protocol {
            Protocol::Rfc6455 => {
                let op = match kind {
                    MessageKind::Text => Opcode::Text,
                    MessageKind::Binary => Opcode::Binary,
                };
                self.begin_frame(op, true, len, out, rng)
            }
            Protocol::Hixie76 => {
                if kind != MessageKind::Text {
                    return Err(Error::Unsupported);
                }
                if self.state != TxState::Idle || self.close_sent {
                    return Err(Error::InvalidState);
                }
                *out.first_mut().ok_or(Error::BufferTooSmall)? = 0x00;
                self.state = TxState::HixieText;
                Ok(1)
            }
        }
    }

    /// RFC 6455 only: writes the header of any frame with a `len`-byte
    /// payload (fragmented messages: `Text`/`Binary` with `fin == false`,
    /// then `Continuation` frames, the last with `fin == true`). Draws a new
    /// mask key from `rng` for a client. Returns the header length.
    pub fn begin_frame<R: Rng + ?Sized>(
        &mut self,
        opcode: Opcode,
        fin: bool,
        len: u64,
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        if self.protocol != Protocol::Rfc6455 {
            return Err(Error::Unsupported);
        }
        if self.state != TxState::Idle || self.close_sent {
            return Err(Error::InvalidState);
        }
        if opcode.is_control() {
            if !fin || len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(Error::Unsupported);
            }
        } else if (opcode == Opcode::Continuation) != self.fragmented {
            return Err(Error::InvalidState);
        }
        if len > i64::MAX as u64 {
            return Err(Error::Unsupported);
        }
        let masked = self.role == Role::Client;
        let n = header_len(len, masked);
        let hdr = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
        let mut tmp = [0u8; MAX_HEADER_LEN];
        tmp[0] = (if fin { 0x80 } else { 0 }) | opcode as u8;
        let mb = if masked { 0x80 } else { 0 };
        let mut p = 2;
        if len < 126 {
            tmp[1] = mb | len as u8;
        } else if len <= 0xFFFF {
            tmp[1] = mb | 126;
            tmp[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            p = 4;
        } else {
            tmp[1] = mb | 127;
            tmp[2..10].copy_from_slice(&len.to_be_bytes());
            p = 10;
        }
        if masked {
            let mut key = [0u8; 4];
            rng.fill(&mut key);
            tmp[p..p + 4].copy_from_slice(&key);
            self.mask = key;
        }
        hdr.copy_from_slice(&tmp[..n]);
        self.offset = 0;
        if !opcode.is_control() {
            self.fragmented = !fin;
        }
        self.state = if len == 0 {
            TxState::Idle
        } else {
            TxState::Frame { remaining: len }
        };
        Ok(n)
    }

    /// Copies the next payload chunk into `out`, masking it for a client.
    /// Returns `src.len()`. [`Error::InvalidState`] if it goes past the
    /// announced length or no frame is open.
    pub fn payload(&mut self, src: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let dst = out.get_mut(..src.len()).ok_or(Error::BufferTooSmall)?;
        self.check_chunk(src)?;
        dst.copy_from_slice(src);
        self.mask_chunk(dst);
        Ok(src.len())
    }

    /// Like [`Sender::payload`] but masks `buf` where it is (no copy).
    pub fn payload_in_place(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.check_chunk(buf)?;
        self.mask_chunk(buf);
        Ok(())
    }

    fn check_chunk(&self, src: &[u8]) -> Result<(), Error> {
        match self.state {
            TxState::Frame { remaining } if src.len() as u64 <= remaining => Ok(()),
            TxState::Idle if src.is_empty() => Ok(()),
            TxState::HixieText if src.contains(&0xFF) => Err(Error::InvalidText),
            TxState::HixieText => Ok(()),
            _ => Err(Error::InvalidState),
        }
    }

    fn mask_chunk(&mut self, buf: &mut [u8]) {
        if let TxState::Frame { remaining } = self.state {
            if self.role == Role::Client {
                self.offset = apply_mask(self.mask, self.offset as usize, buf) as u8;
            }
            let left = remaining - buf.len() as u64;
            self.state = if left == 0 {
                TxState::Idle
            } else {
                TxState::Frame { remaining: left }
            };
        }
    }

    /// Ends the current frame: writes hixie-76's `0xFF` (returns 1); for RFC
    /// 6455 checks that the whole announced payload was written (returns 0,
    /// [`Error::InvalidState`] otherwise).
    pub fn end_message(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        match self.state {
            TxState::Idle if self.protocol == Protocol::Rfc6455 => Ok(0),
            TxState::HixieText => {
                *out.first_mut().ok_or(Error::BufferTooSmall)? = 0xFF;
                self.state = TxState::Idle;
                Ok(1)
            }
            _ => Err(Error::InvalidState),
        }
    }

    fn control<R: Rng + ?Sized>(
        &mut self,
        op: Opcode,
        parts: [&[u8]; 2],
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        let len = parts[0].len() + parts[1].len();
        if len > MAX_CONTROL_PAYLOAD {
            return Err(Error::Unsupported);
        }
        let h = self.begin_frame(op, true, len as u64, out, rng)?;
        let mut w = h;
        for part in parts {
            let dst = out.get_mut(w..).ok_or(Error::BufferTooSmall)?;
            w += self.payload(part, dst)?;
        }
        Ok(w)
    }

    /// Writes a ping (RFC 6455 only; payload at most 125 bytes).
    pub fn ping<R: Rng + ?Sized>(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        self.control(Opcode::Ping, [payload, &[]], out, rng)
    }

    /// Writes a pong (RFC 6455 only; payload at most 125 bytes).
    pub fn pong<R: Rng + ?Sized>(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        self.control(Opcode::Pong, [payload, &[]], out, rng)
    }

    /// Writes a close frame: RFC 6455 with `code` (then `reason`, at most
    /// 123 bytes; no payload if `code` is `None`); hixie-76 `0xFF 0x00`
    /// (code and reason not sent).
    pub fn close<R: Rng + ?Sized>(
        &mut self,
        code: Option<u16>,
        reason: &str,
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        match self.protocol {
            Protocol::Hixie76 => {
                if self.state != TxState::Idle || self.close_sent {
                    return Err(Error::InvalidState);
                }
                out.get_mut(..2)
                    .ok_or(Error::BufferTooSmall)?
                    .copy_from_slice(&[0xFF, 0x00]);
                self.close_sent = true;
                Ok(2)
            }
            Protocol::Rfc6455 => {
                let n = match code {
                    None => self.control(Opcode::Close, [&[], &[]], out, rng)?,
                    Some(c) => self.control(
                        Opcode::Close,
                        [&c.to_be_bytes(), reason.as_bytes()],
                        out,
                        rng,
                    )?,
                };
                self.close_sent = true;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always returns the RFC 6455 section 5.7 mask key 37 fa 21 3d.
    struct Key;
    impl Rng for Key {
        fn fill(&mut self, buf: &mut [u8]) {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = [0x37, 0xfa, 0x21, 0x3d][i % 4];
            }
        }
    }

    #[test]
    fn rfc_5_7_examples() {
        let mut out = [0u8; 80000];
        let mut s = Sender::new(Protocol::Rfc6455, Role::Server);
        let n = s
            .message(MessageKind::Text, b"Hello", &mut out, &mut Key)
            .unwrap();
        assert_eq!(&out[..n], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);

        let mut c = Sender::new(Protocol::Rfc6455, Role::Client);
        let n = c
            .message(MessageKind::Text, b"Hello", &mut out, &mut Key)
            .unwrap();
        assert_eq!(
            &out[..n],
            &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );

        // Fragmented unmasked text "Hel" + "lo".
        let n = s
            .begin_frame(Opcode::Text, false, 3, &mut out, &mut Key)
            .unwrap();
        let n = n + s.payload(b"Hel", &mut out[n..]).unwrap();
        assert_eq!(&out[..n], &[0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert!(s.in_fragmented_message());
        // Ping between fragments.
        let m = s.ping(b"Hello", &mut out, &mut Key).unwrap();
        assert_eq!(&out[..m], &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(
            s.begin_frame(Opcode::Text, true, 2, &mut out, &mut Key),
            Err(Error::InvalidState)
        );
        let n = s
            .begin_frame(Opcode::Continuation, true, 2, &mut out, &mut Key)
            .unwrap();
        let n = n + s.payload(b"lo", &mut out[n..]).unwrap();
        assert_eq!(&out[..n], &[0x80, 0x02, 0x6c, 0x6f]);

        // Masked pong.
        let n = c.pong(b"Hello", &mut out, &mut Key).unwrap();
        assert_eq!(
            &out[..n],
            &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );

        // 256 bytes binary, 16-bit length; 64 KiB binary, 64-bit length.
        let n = s
            .begin_message(MessageKind::Binary, 256, &mut out, &mut Key)
            .unwrap();
        assert_eq!(&out[..n], &[0x82, 0x7E, 0x01, 0x00]);
        s.payload_in_place(&mut [0u8; 256]).unwrap();
        let n = s
            .begin_message(MessageKind::Binary, 65536, &mut out, &mut Key)
            .unwrap();
        assert_eq!(&out[..n], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn streaming_mask_offsets() {
        let msg: [u8; 11] = *b"hello world";
        let mut whole = [0u8; 32];
        let mut c = Sender::new(Protocol::Rfc6455, Role::Client);
        let n = c
            .message(MessageKind::Binary, &msg, &mut whole, &mut Key)
            .unwrap();
        let mut parts = [0u8; 32];
        let mut w = c
            .begin_message(MessageKind::Binary, 11, &mut parts, &mut Key)
            .unwrap();
        for chunk in msg.chunks(3) {
            w += c.payload(chunk, &mut parts[w..]).unwrap();
        }
        w += c.end_message(&mut parts[w..]).unwrap();
        assert_eq!(&whole[..n], &parts[..w]);
    }

    #[test]
    fn errors() {
        let mut out = [0u8; 300];
        let mut s = Sender::new(Protocol::Rfc6455, Role::Server);
        assert_eq!(
            s.ping(&[0; 126], &mut out, &mut Key),
            Err(Error::Unsupported)
        );
        assert_eq!(
            s.close(Some(1000), &"x".repeat(124), &mut out, &mut Key),
            Err(Error::Unsupported)
        );
        assert_eq!(
            s.message(MessageKind::Text, b"hello", &mut out[..3], &mut Key),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            s.begin_frame(Opcode::Continuation, true, 1, &mut out, &mut Key),
            Err(Error::InvalidState)
        );
        s.begin_message(MessageKind::Text, 2, &mut out, &mut Key)
            .unwrap();
        assert_eq!(s.payload(b"abc", &mut out), Err(Error::InvalidState));
        assert_eq!(s.end_message(&mut out), Err(Error::InvalidState));
        assert_eq!(s.ping(b"", &mut out, &mut Key), Err(Error::InvalidState));
        assert_eq!(
            s.begin_frame(Opcode::Ping, false, 0, &mut out, &mut Key),
            Err(Error::InvalidState)
        );

        let mut h = Sender::new(Protocol::Hixie76, Role::Client);
        assert_eq!(
            h.message(MessageKind::Binary, b"x", &mut out, &mut Key),
            Err(Error::Unsupported)
        );
        assert_eq!(h.ping(b"x", &mut out, &mut Key), Err(Error::Unsupported));
        assert_eq!(
            h.message(MessageKind::Text, b"a\xffb", &mut out, &mut Key),
            Err(Error::InvalidText)
        );
        assert!(h.is_idle());
        let n = h
            .message(MessageKind::Text, "héllo".as_bytes(), &mut out, &mut Key)
            .unwrap();
        assert_eq!(&out[..n], b"\x00h\xc3\xa9llo\xff");
        let n = h.close(Some(1000), "bye", &mut out, &mut Key).unwrap();
        assert_eq!(&out[..n], b"\xff\x00");
    }
}
