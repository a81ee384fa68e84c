//! [`Connection`]: a [`Receiver`] and a [`Sender`] with the protocol's
//! automatic replies (pong to ping, close echo) queued for the caller.

use crate::frame::{MessageKind, Sender, MAX_CONTROL_PAYLOAD};
use crate::receiver::{Event, Receiver};
use crate::{Error, Protocol, Rng, Role};

/// Close handshake progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Neither side has sent a close frame.
    Open,
    /// We sent a close frame; waiting for the peer's.
    Sent,
    /// The peer's close frame arrived; our answer is queued for
    /// [`Connection::poll_write`].
    Received,
    /// Both close frames exchanged: close the transport (a server closes
    /// TCP first, RFC 6455 section 7.1.1).
    Done,
}

/// One WebSocket connection after the handshake: decode with
/// [`Connection::read`], send with [`Connection::send`] (or the public
/// [`Connection::tx`] for streaming), and after every read loop call
/// [`Connection::poll_write`] to send the automatic replies.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The decoder (public for streaming use and state queries).
    pub rx: Receiver,
    /// The encoder (public for streaming: `begin_message`/`payload`/...).
    pub tx: Sender,
    pong: [u8; MAX_CONTROL_PAYLOAD],
    pong_len: Option<u8>,
    close: CloseState,
    close_code: Option<u16>,
}

impl Connection {
    /// A connection for `role` speaking `protocol`, refusing messages over
    /// `max_message` bytes.
    pub const fn new(protocol: Protocol, role: Role, max_message: u64) -> Self {
        Connection {
            rx: Receiver::new(protocol, role, max_message),
            tx: Sender::new(protocol, role),
            pong: [0; MAX_CONTROL_PAYLOAD],
            pong_len: None,
            close: CloseState::Open,
            close_code: None,
        }
    }

    /// Close handshake state.
    pub fn close_state(&self) -> CloseState {
        self.close
    }

    /// Like [`Receiver::read`]; also queues a pong for every ping (only
    /// the latest one is kept) and a close answer for the peer's close.
    pub fn read<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let (n, ev) = self.rx.read(input)?;
        match ev {
            Some(Event::Ping(p)) => {
                if let Some(dst) = self.pong.get_mut(..p.len()) {
                    dst.copy_from_slice(p);
                    self.pong_len = Some(p.len() as u8);
                }
            }
            Some(Event::Close { code, .. }) => {
                self.close = match self.close {
                    CloseState::Open => {
                        self.close_code = code;
                        CloseState::Received
                    }
                    _ => CloseState::Done,
                };
            }
            _ => {}
        }
        Ok((n, ev))
    }

    /// Writes the queued automatic replies (pong, close answer) into `out`
    /// and returns their length (0 if none). Does nothing while the sender
    /// is in the middle of a frame. Needs up to 262 bytes of `out`.
    pub fn poll_write<R: Rng + ?Sized>(
        &mut self,
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        if !self.tx.is_idle() {
            return Ok(0);
        }
        let mut w = 0;
        if let Some(n) = self.pong_len {
            if self.close == CloseState::Open {
                let payload = self.pong.get(..n as usize).unwrap_or(&[]);
                let dst = out.get_mut(w..).ok_or(Error::BufferTooSmall)?;
                w += match self.tx.pong(payload, dst, rng) {
                    Err(Error::Unsupported) => 0,
                    r => r?,
                };
            }
            self.pong_len = None;
        }
        if self.close == CloseState::Received {
            let dst = out.get_mut(w..).ok_or(Error::BufferTooSmall)?;
            w += self.tx.close(self.close_code, "", dst, rng)?;
            self.close = CloseState::Done;
        }
        Ok(w)
    }

    /// Sends a complete message (see [`Sender::message`]).
    pub fn send<R: Rng + ?Sized>(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        if self.close != CloseState::Open {
            return Err(Error::InvalidState);
        }
        self.tx.message(kind, payload, out, rng)
    }

    /// Starts the close handshake (or fails the connection after an error:
    /// pass [`Error::close_code`]). RFC 6455: `code`/`reason` as in
    /// [`Sender::close`].
    pub fn close<R: Rng + ?Sized>(
        &mut self,
        code: Option<u16>,
        reason: &str,
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        if self.close != CloseState::Open {
            return Err(Error::InvalidState);
        }
        let n = self.tx.close(code, reason, out, rng)?;
        self.close = CloseState::Sent;
        Ok(n)
    }
}
