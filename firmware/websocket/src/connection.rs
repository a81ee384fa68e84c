//! [`Connection`]: a [`Receiver`] and a [`Sender`] with the protocol's
//! automatic replies (pong to ping, close answer) written by
//! [`Connection::poll_write`].

use crate::frame::{MessageKind, Sender};
use crate::receiver::{Event, Receiver};
use crate::{Error, Protocol, Rng, Role};

/// Close handshake progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Neither side has sent a close frame.
    Open,
    /// We sent a close frame; waiting for the peer's.
    Sent,
    /// The peer's close frame arrived; our answer is due from
    /// [`Connection::poll_write`].
    Received,
    /// Both close frames exchanged: close the transport (a server closes
    /// TCP first, RFC 6455 section 7.1.1).
    Done,
}

/// One WebSocket connection after the handshake.
///
/// Decode with [`Connection::read`] (or `conn.rx.read(..)`, which borrows
/// only the receiver, so that `conn.tx` can stream a reply while an
/// [`Event::Data`] chunk is held), send with [`Connection::send`] or the
/// streaming methods of `conn.tx`, and after every read loop call
/// [`Connection::poll_write`] to send the automatic replies (the receiver
/// records them either way).
#[derive(Debug, Clone)]
pub struct Connection {
    /// The decoder.
    pub rx: Receiver,
    /// The encoder.
    pub tx: Sender,
}

impl Connection {
    /// A connection for `role` speaking `protocol`, refusing messages over
    /// `max_message` bytes.
    pub const fn new(protocol: Protocol, role: Role, max_message: u64) -> Self {
        Connection {
            rx: Receiver::new(protocol, role, max_message),
            tx: Sender::new(protocol, role),
        }
    }

    /// Close handshake state.
    pub fn close_state(&self) -> CloseState {
        match (self.tx.close_sent(), self.rx.is_closed()) {
            (false, false) => CloseState::Open,
            (true, false) => CloseState::Sent,
            (false, true) => CloseState::Received,
            (true, true) => CloseState::Done,
        }
    }

    /// Same as [`Receiver::read`] on `self.rx`.
    pub fn read<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        self.rx.read(input)
    }

    /// Writes the due automatic replies into `out` and returns their length
    /// (0 if none): a pong for the latest ping (RFC 6455, unless we already
    /// sent a close), and the close answer once the peer's close arrived
    /// (echoing its status code). Does nothing while the sender is in the
    /// middle of a frame. Needs at most 262 bytes of `out`.
    pub fn poll_write<R: Rng + ?Sized>(
        &mut self,
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        if !self.tx.is_idle() {
            return Ok(0);
        }
        let mut w = 0;
        if let Some(p) = self.rx.pending_pong() {
            if !self.tx.close_sent() {
                let dst = out.get_mut(w..).ok_or(Error::BufferTooSmall)?;
                w += self.tx.pong(p, dst, rng)?;
            }
            self.rx.clear_pong();
        }
        if self.rx.is_closed() && !self.tx.close_sent() {
            let dst = out.get_mut(w..).ok_or(Error::BufferTooSmall)?;
            w += self.tx.close(self.rx.peer_close_code(), "", dst, rng)?;
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
        self.tx.message(kind, payload, out, rng)
    }

    /// Starts the close handshake, or fails the connection after a read
    /// error (pass [`Error::close_code`]). See [`Sender::close`].
    pub fn close<R: Rng + ?Sized>(
        &mut self,
        code: Option<u16>,
        reason: &str,
        out: &mut [u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        self.tx.close(code, reason, out, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Zero;
    impl Rng for Zero {
        fn fill(&mut self, buf: &mut [u8]) {
            buf.fill(0);
        }
    }

    fn feed(c: &mut Connection, bytes: &[u8]) {
        let mut b = bytes.to_vec();
        let mut pos = 0;
        while let (n, Some(_)) = c.read(&mut b[pos..]).unwrap() {
            pos += n;
        }
    }

    #[test]
    fn automatic_pong_and_close_echo() {
        let mut c = Connection::new(Protocol::Rfc6455, Role::Client, 100);
        let mut out = [0u8; 300];
        feed(&mut c, b"\x89\x01a\x89\x02bc");
        let n = c.poll_write(&mut out, &mut Zero).unwrap();
        // Only the latest ping is answered, masked (client).
        assert_eq!(&out[..n], b"\x8a\x82\0\0\0\0bc");
        assert_eq!(c.poll_write(&mut out, &mut Zero), Ok(0));
        feed(&mut c, b"\x88\x02\x03\xe9");
        assert_eq!(c.close_state(), CloseState::Received);
        let n = c.poll_write(&mut out, &mut Zero).unwrap();
        assert_eq!(&out[..n], b"\x88\x82\0\0\0\0\x03\xe9");
        assert_eq!(c.close_state(), CloseState::Done);
        assert_eq!(
            c.send(MessageKind::Text, b"x", &mut out, &mut Zero),
            Err(Error::InvalidState)
        );
    }

    #[test]
    fn we_close_first() {
        let mut c = Connection::new(Protocol::Rfc6455, Role::Server, 100);
        let mut out = [0u8; 300];
        let n = c.close(Some(1000), "bye", &mut out, &mut Zero).unwrap();
        assert_eq!(&out[..n], b"\x88\x05\x03\xe8bye");
        assert_eq!(c.close_state(), CloseState::Sent);
        // A ping after our close gets no pong.
        feed(&mut c, b"\x89\x80\0\0\0\0\x88\x80\0\0\0\0");
        assert_eq!(c.poll_write(&mut out, &mut Zero), Ok(0));
        assert_eq!(c.close_state(), CloseState::Done);
    }

    #[test]
    fn hixie_close() {
        let mut c = Connection::new(Protocol::Hixie76, Role::Server, 100);
        let mut out = [0u8; 300];
        feed(&mut c, b"\x00hi\xff\xff\x00");
        let n = c.poll_write(&mut out, &mut Zero).unwrap();
        assert_eq!(&out[..n], b"\xff\x00");
        assert_eq!(c.close_state(), CloseState::Done);
    }

    #[test]
    fn no_pong_mid_frame() {
        let mut c = Connection::new(Protocol::Rfc6455, Role::Server, 100);
        let mut out = [0u8; 300];
        c.tx.begin_message(MessageKind::Binary, 3, &mut out, &mut Zero)
            .unwrap();
        feed(&mut c, b"\x89\x80\0\0\0\0");
        assert_eq!(c.poll_write(&mut out, &mut Zero), Ok(0));
        c.tx.payload(b"abc", &mut out).unwrap();
        assert_eq!(c.poll_write(&mut out, &mut Zero), Ok(2));
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn sizes_stay_small() {
        use core::mem::size_of;
        assert!(
            size_of::<crate::Receiver>() <= 320,
            "{}",
            size_of::<crate::Receiver>()
        );
        assert!(
            size_of::<crate::Sender>() <= 32,
            "{}",
            size_of::<crate::Sender>()
        );
        assert!(
            size_of::<crate::Connection>() <= 352,
            "{}",
            size_of::<crate::Connection>()
        );
        assert!(size_of::<crate::handshake::hixie76::ClientKeys>() <= 100);
        assert!(size_of::<crate::handshake::Client>() <= 104);
    }
}
