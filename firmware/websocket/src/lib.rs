//! Sans-IO WebSocket protocol (hixie-76 and RFC 6455), shared by the
//! firmware's client and host-bridge's server.
//!
//! `no_std`, no allocation, no `unsafe`, no sockets, clocks or global RNG:
//! the caller feeds received bytes in, gets [`Event`]s and bytes to send
//! out, owns every buffer, and passes an [`Rng`] where randomness is needed
//! (RFC 6455 keys and client masks, hixie-76 keys).
//!
//! * [`handshake`]: opening handshakes, parsed incrementally
//!   ([`handshake::Parse`]): one [`handshake::Client`] for both protocols; the
//!   server side in [`handshake::rfc6455`] / [`handshake::hixie76`].
//! * [`Receiver`]: frame decoder emitting [`Event`]s, one decoder per
//!   protocol; message payload comes out in chunks as it arrives, so messages
//!   need not fit in RAM.
//! * [`Sender`]: frame encoder into caller buffers; whole messages or a
//!   header for a known length followed by payload chunks.
//! * [`Connection`]: both, plus the automatic pong and close answer.
//! * [`Keepalive`]: when to ping a quiet peer and when to declare it dead
//!   (the caller passes the time).
//! * [`Error`]: every failure, with [`Error::close_code`] (1002/1007/1009)
//!   and [`Error::http_status`] (400/426/431).
//!
//! # Client byte loop
//!
//! ```
//! use websocket::handshake::{rfc6455, Client, ClientRequest, Parse};
//! use websocket::{Connection, Event, MessageKind, Protocol, Role, Rng};
//! # struct MyRng(u8);
//! # impl Rng for MyRng { fn fill(&mut self, b: &mut [u8]) { for x in b { self.0 = self.0.wrapping_mul(31).wrapping_add(7); *x = self.0; } } }
//! # struct Net { to_server: Vec<u8> }
//! # impl Net { fn send(&mut self, b: &[u8]) { self.to_server.extend_from_slice(b) } }
//! # let mut net = Net { to_server: Vec::new() };
//! let mut rng = MyRng(1);
//! let req = ClientRequest { host: "10.0.2.2:8080", path: "/", origin: None, protocols: &[] };
//! let hs = Client::new(Protocol::Rfc6455, &mut rng);
//! let mut out = [0u8; 512];
//! let n = hs.write_request(&req, &mut out).unwrap();
//! net.send(&out[..n]);
//!
//! // Pretend the server answered (normally: append socket reads to `inbuf`).
//! let mut inbuf = [0u8; 1024];
//! let mut have = {
//!     let sreq = match rfc6455::parse_request(&net.to_server, 1024).unwrap() {
//!         Parse::Done { value, .. } => value,
//!         Parse::Incomplete => unreachable!(),
//!     };
//!     let n = rfc6455::write_accept(&sreq, None, &mut inbuf).unwrap();
//!     inbuf[n..n + 7].copy_from_slice(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
//!     n + 7
//! };
//! let used = match hs.parse_response(&req, &inbuf[..have], inbuf.len()).unwrap() {
//!     Parse::Done { consumed, .. } => consumed,
//!     Parse::Incomplete => unreachable!("read more and call again"),
//! };
//! let mut conn = Connection::new(Protocol::Rfc6455, Role::Client, 64 * 1024);
//! let n = conn.send(MessageKind::Text, b"hi", &mut out, &mut rng).unwrap();
//! net.send(&out[..n]);
//!
//! // Frame loop: everything after the handshake goes to `read`.
//! let mut pos = used;
//! loop {
//!     let (n, ev) = conn.read(&mut inbuf[pos..have]).unwrap(); // Err: close with e.close_code()
//!     pos += n;
//!     match ev {
//!         None => break, // all consumed: read more from the socket
//!         Some(Event::MessageStart { kind, len }) => {}
//!         Some(Event::Data(chunk)) => assert_eq!(chunk, b"Hello"),
//!         Some(Event::MessageEnd) => {}
//!         Some(Event::Ping(_)) | Some(Event::Pong(_)) => {}
//!         Some(Event::Close { code, reason }) => {}
//!     }
//! }
//! let n = conn.poll_write(&mut out, &mut rng).unwrap(); // pong / close answer
//! net.send(&out[..n]);
//! ```
//!
//! # Server byte loop
//!
//! ```
//! use websocket::handshake::{self, rfc6455, Parse};
//! use websocket::{Connection, Event, MessageKind, Protocol, Role, Rng};
//! # struct NoRng; impl Rng for NoRng { fn fill(&mut self, _: &mut [u8]) {} }
//! let mut inbuf = *b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
//! \x81\x82\x01\x02\x03\x04\x69\x6b";
//! let have = inbuf.len();
//! let mut out = [0u8; 512];
//! let used = match rfc6455::parse_request(&inbuf[..have], 4096) {
//!     Ok(Parse::Incomplete) => unreachable!("read more and call again"),
//!     Err(e) => {
//!         let n = handshake::write_reject(e, &mut out).unwrap(); // 400 / 426
//!         return; // send out[..n] and close
//!     }
//!     Ok(Parse::Done { value: req, consumed }) => {
//!         if req.path != "/ws" {
//!             let n = handshake::write_error_response(404, &mut out).unwrap();
//!             return;
//!         }
//!         let proto = req.protocols().find(|p| *p == "chat");
//!         let n = rfc6455::write_accept(&req, proto, &mut out).unwrap();
//!         // send out[..n]
//!         consumed
//!     }
//! };
//! let mut conn = Connection::new(Protocol::Rfc6455, Role::Server, 64 * 1024);
//! let mut pos = used;
//! let mut kind = MessageKind::Text;
//! loop {
//!     let (n, ev) = match conn.read(&mut inbuf[pos..have]) {
//!         Ok(r) => r,
//!         Err(e) => {
//!             // Fail the connection: close frame with 1002/1007/1009.
//!             return;
//!         }
//!     };
//!     pos += n;
//!     match ev {
//!         None => break,
//!         Some(Event::MessageStart { kind: k, .. }) => kind = k,
//!         Some(Event::Data(chunk)) => assert_eq!(chunk, b"hi"), // unmasked
//!         Some(Event::MessageEnd) => {}
//!         _ => {}
//!     }
//! }
//! let n = conn.send(kind, b"ih", &mut out, &mut NoRng).unwrap();
//! assert_eq!(&out[..n], b"\x81\x02ih");
//! ```
//!
//! # Streaming
//!
//! A message need not fit in RAM (e.g. echoing 64 KiB through a 512-byte
//! buffer, as `tests/interop.rs` does): read with `conn.rx.read(..)` (it
//! borrows only the receiver, so the sender stays usable while a chunk is
//! held), and on [`Event::MessageStart`] with `len: Some(total)` call
//! `conn.tx.begin_message(kind, total, out, rng)`, then
//! `conn.tx.payload(chunk, out)` for every [`Event::Data`] chunk, then
//! `conn.tx.end_message(out)` on [`Event::MessageEnd`]. For `len: None`
//! (a fragmented message) send each chunk as a frame with
//! [`Sender::begin_frame`] (`Text`/`Binary` then `Continuation`, FIN clear)
//! and finish with an empty FIN frame.
//!
//! # Handshake routing (server)
//!
//! [`handshake::parse_head`] parses any request head and
//! [`handshake::RequestHead::protocol`] says which handshake it is, so a
//! server can answer plain HTTP, 404 or 403 before calling the protocol's
//! `parse_request`.
//!
//! # Memory
//!
//! [`Receiver`]: about 310 bytes (partial header, one control payload, the
//! pending pong payload, UTF-8 state); [`Sender`]: 32 bytes at most;
//! handshake state: 24 bytes (RFC 6455) or 100 bytes (hixie-76). Frame headers need at
//! most [`frame::MAX_HEADER_LEN`] bytes of output.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod base64;
pub mod connection;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod keepalive;
pub mod receiver;
pub mod utf8;

#[cfg(test)]
mod test_rng;

pub use connection::{CloseState, Connection};
pub use error::{close_code, Error};
pub use frame::{MessageKind, Opcode, Sender};
pub use keepalive::{Due, Keepalive};
pub use receiver::{Event, Receiver};

/// Randomness supplied by the caller (RFC 6455 keys and masks, hixie-76
/// keys). Masks should be unpredictable (RFC 6455 section 10.3).
pub trait Rng {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RFC 6455 (version 13).
    Rfc6455,
    /// draft-hixie-thewebsocketprotocol-76.
    Hixie76,
}

impl Protocol {
    /// Its short name, as the firmware's `--proto` option and the logs spell it:
    /// `rfc6455` or `hixie76`.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Rfc6455 => "rfc6455",
            Protocol::Hixie76 => "hixie76",
        }
    }
}

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends masked frames, reads unmasked ones.
    Client,
    /// Sends unmasked frames, requires masked ones.
    Server,
}
