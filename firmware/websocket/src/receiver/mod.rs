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
//!
//! One decoder per protocol ([`rfc6455`], [`hixie76`]), each with only its own
//! states; this page holds what both share: the current message, its length
//! limit and UTF-8 check, and whether the peer has closed.

mod hixie76;
mod rfc6455;

use crate::frame::MessageKind;
use crate::utf8::Utf8Validator;
use crate::{Error, Protocol, Role};

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

/// What both decoders track: the data message in progress and the close.
#[derive(Debug, Clone)]
struct Common {
    max_message: u64,
    /// Current data message (None between messages) and its length so far.
    message: Option<MessageKind>,
    message_len: u64,
    utf8: Utf8Validator,
    /// The peer's close frame was received: input is ignored.
    closed: bool,
}

impl Common {
    /// Counts `n` more bytes of the current message against the limit.
    fn add_len(&mut self, n: u64) -> Result<(), Error> {
        self.message_len = self.message_len.saturating_add(n);
        if self.message_len > self.max_message {
            Err(Error::MessageTooBig)
        } else {
            Ok(())
        }
    }

    /// A data message of `kind` starts.
    fn start(&mut self, kind: MessageKind) {
        self.message = Some(kind);
        self.utf8.reset();
    }

    /// The data message is complete.
    fn end(&mut self) {
        self.message = None;
        self.message_len = 0;
    }
}

/// The protocol's own decoder state. Not boxed although RFC 6455's is the
/// larger (no allocation here; a receiver is one per connection either way).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum Decoder {
    Rfc6455(rfc6455::Decoder),
    Hixie76(hixie76::Decoder),
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
    common: Common,
    decoder: Decoder,
}

impl Receiver {
    /// A receiver for `role` (the side that *owns* it: a client reads server
    /// frames) with a maximum message size of `max_message` bytes
    /// ([`Error::MessageTooBig`] beyond; with streaming this is a policy,
    /// not a buffer size).
    pub const fn new(protocol: Protocol, role: Role, max_message: u64) -> Self {
        Receiver {
            common: Common {
                max_message,
                message: None,
                message_len: 0,
                utf8: Utf8Validator::new(),
                closed: false,
            },
            decoder: match protocol {
                Protocol::Rfc6455 => Decoder::Rfc6455(rfc6455::Decoder::new(role)),
                Protocol::Hixie76 => Decoder::Hixie76(hixie76::Decoder::new()),
            },
        }
    }

    /// The payload of the latest ping that still needs a pong (the
    /// automatic reply; [`Connection::poll_write`](crate::Connection::poll_write)
    /// sends it and calls [`Receiver::clear_pong`]). Never for hixie-76,
    /// which has no ping.
    pub fn pending_pong(&self) -> Option<&[u8]> {
        match &self.decoder {
            Decoder::Rfc6455(d) => d.pending_pong(),
            Decoder::Hixie76(_) => None,
        }
    }

    /// Marks the pending pong as sent.
    pub fn clear_pong(&mut self) {
        if let Decoder::Rfc6455(d) = &mut self.decoder {
            d.clear_pong();
        }
    }

    /// The status code of the peer's close frame, once
    /// [`Receiver::is_closed`] (`None` if it had none, and for hixie-76).
    pub fn peer_close_code(&self) -> Option<u16> {
        match &self.decoder {
            Decoder::Rfc6455(d) => d.peer_code,
            Decoder::Hixie76(_) => None,
        }
    }

    /// Whether the peer's close frame has been received.
    pub fn is_closed(&self) -> bool {
        self.common.closed
    }

    /// Whether a data message is in progress.
    pub fn in_message(&self) -> bool {
        self.common.message.is_some()
    }

    /// A tolerance for servers that echo a binary message in a *text* frame
    /// (e.g. tornado's `write_message(bytes)` defaults to text): while on,
    /// a frame with the text opcode (FIN or not) is read as binary, so its
    /// bytes are neither UTF-8 checked nor reported as text. Turning it on or
    /// off clears [`Receiver::read_text_as_binary`]. RFC 6455 only: hixie-76
    /// has no binary frames, and there the option does nothing.
    pub fn set_text_as_binary(&mut self, on: bool) {
        if let Decoder::Rfc6455(d) = &mut self.decoder {
            d.text_as_binary = on;
            d.read_text_as_binary = false;
        }
    }

    /// Whether a text frame was read as binary since
    /// [`Receiver::set_text_as_binary`] was last called.
    pub fn read_text_as_binary(&self) -> bool {
        match &self.decoder {
            Decoder::Rfc6455(d) => d.read_text_as_binary,
            Decoder::Hixie76(_) => false,
        }
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
        if self.common.closed {
            return Ok((input.len(), None));
        }
        match &mut self.decoder {
            Decoder::Rfc6455(d) => d.read(&mut self.common, input),
            Decoder::Hixie76(d) => d.read(&mut self.common, input),
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

    #[test]
    fn text_as_binary_option() {
        let mut rx = Receiver::new(Protocol::Rfc6455, Role::Client, 100);
        rx.set_text_as_binary(true);
        assert!(!rx.read_text_as_binary());
        // Binary frames and pings are left alone: nothing was retyped yet.
        let r = run(&mut rx, b"\x82\x01\xff\x89\x00", 1);
        assert_eq!(
            r,
            Ok(vec![
                Ev::Start(MessageKind::Binary, Some(1)),
                Ev::Msg(vec![0xff]),
                Ev::Ping(vec![])
            ])
        );
        assert!(!rx.read_text_as_binary());
        // A text frame (FIN or not) is read as binary: no UTF-8 check.
        let r = run(&mut rx, b"\x81\x01\xc3\x01\x01\xff\x80\x01b", 1);
        assert_eq!(
            r,
            Ok(vec![
                Ev::Start(MessageKind::Binary, Some(1)),
                Ev::Msg(vec![0xc3]),
                Ev::Start(MessageKind::Binary, None),
                Ev::Msg(vec![0xff, b'b'])
            ])
        );
        assert!(rx.read_text_as_binary());
        // Off again: text is text, and the record is cleared.
        rx.set_text_as_binary(false);
        assert!(!rx.read_text_as_binary());
        let r = run(&mut rx, b"\x81\x01a", 1);
        assert_eq!(
            r,
            Ok(vec![
                Ev::Start(MessageKind::Text, Some(1)),
                Ev::Msg(b"a".to_vec())
            ])
        );
        assert_eq!(run(&mut rx, b"\x81\x01\xc3", 1), Err(Error::InvalidUtf8));
        // hixie-76 has no binary frames: the option does nothing.
        let mut rx = Receiver::new(Protocol::Hixie76, Role::Client, 100);
        rx.set_text_as_binary(true);
        let r = run(&mut rx, b"\x00a\xff", 1);
        assert_eq!(
            r,
            Ok(vec![
                Ev::Start(MessageKind::Text, None),
                Ev::Msg(b"a".to_vec())
            ])
        );
        assert!(!rx.read_text_as_binary());
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
