//! The app's one TCP connection, in plain terms: connect, state, bytes in and
//! out, close and abort. smoltcp's socket stays behind this page, so the app
//! (and a new contributor reading it) needs no smoltcp.

use smoltcp::socket::tcp::{Socket, State};
use smoltcp::wire::IpAddress;

use super::{ip4, Net};

/// The connection's state, as far as the app cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// The SYN is out; no answer yet.
    Opening,
    /// Established: bytes flow both ways.
    Open,
    /// One side has closed; the other has not yet.
    Closing,
    /// Closed (refused, reset, aborted, or both sides done: TIME-WAIT counts
    /// as closed, the board never reuses the port).
    Closed,
}

/// What the receive side holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Received bytes wait to be read.
    Bytes,
    /// Nothing yet; more may come.
    Waiting,
    /// Nothing, and nothing more will come (the peer closed, or no connection).
    Ended,
}

/// Sending is over: the connection is not open for sending any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSending;

/// No route to the address, or no address of our own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoute;

impl Net {
    fn socket(&mut self) -> &mut Socket<'static> {
        self.sockets.get_mut::<Socket>(self.tcp)
    }

    /// Starts a TCP connection to `ip:port` from a fresh ephemeral port (the
    /// previous connection, if any, is aborted). Wait for [`TcpState::Open`].
    pub fn connect(&mut self, ip: [u8; 4], port: u16) -> Result<(), NoRoute> {
        self.next_port = if self.next_port >= 65000 {
            49152
        } else {
            self.next_port + 1
        };
        let local = self.next_port;
        let cx = self.iface.context();
        let socket = self.sockets.get_mut::<Socket>(self.tcp);
        socket.abort();
        // No Nagle: a message whose last segment is short would otherwise wait
        // for the ACK of the one before, which Linux delays up to 40 ms.
        socket.set_nagle_enabled(false);
        socket
            .connect(cx, (IpAddress::Ipv4(ip4(ip)), port), local)
            .map_err(|_| NoRoute)
    }

    /// Where the connection stands.
    pub fn state(&mut self) -> TcpState {
        match self.socket().state() {
            State::Established => TcpState::Open,
            State::Closed | State::TimeWait => TcpState::Closed,
            State::Listen | State::SynSent | State::SynReceived => TcpState::Opening,
            _ => TcpState::Closing,
        }
    }

    /// Queues as many of `bytes` as fit in the send buffer; returns how many.
    /// They leave at the next [`Net::poll`].
    pub fn send(&mut self, bytes: &[u8]) -> Result<usize, NotSending> {
        let socket = self.socket();
        if !socket.may_send() {
            return Err(NotSending);
        }
        Ok(socket.send_slice(bytes).unwrap_or(0))
    }

    /// Whether [`Net::send`] would make progress now: room in the send buffer,
    /// or sending is over (then `send` says so).
    pub fn send_ready(&mut self) -> bool {
        let socket = self.socket();
        socket.can_send() || !socket.may_send()
    }

    /// What the receive side holds.
    pub fn input(&mut self) -> Input {
        let socket = self.socket();
        if socket.can_recv() {
            Input::Bytes
        } else if socket.may_recv() {
            Input::Waiting
        } else {
            Input::Ended
        }
    }

    /// Moves received bytes into `buf`; returns how many (0: none waiting).
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.socket().recv_slice(buf).unwrap_or(0)
    }

    /// Lends the received bytes in place (the longest contiguous run) to `f`,
    /// which returns how many it used and a value; `None` when there is no
    /// connection to read from. Saves a copy for a decoder that reads in place.
    pub fn recv_with<R>(&mut self, f: impl FnOnce(&mut [u8]) -> (usize, R)) -> Option<R> {
        self.socket().recv(f).ok()
    }

    /// Closes our sending side (FIN after the queued bytes).
    pub fn close(&mut self) {
        self.socket().close();
    }

    /// Drops the connection at once (RST).
    pub fn abort(&mut self) {
        self.socket().abort();
    }
}
