//! [`Keepalive`]: when to ping a quiet peer and when to give it up for dead,
//! sans-IO: the caller passes the time (milliseconds on any clock that wraps
//! at `u32::MAX`), says when something arrived, and sends the ping itself
//! ([`crate::Sender::ping`]).
//!
//! The rule: after `interval` ms with nothing received, ping (RFC 6455); if
//! another `interval` ms passes with still nothing (no pong, no data), the
//! peer is dead. hixie-76 has no ping frame, so there the second interval
//! simply follows the first: silence for two intervals is death. That is
//! only sound while the caller is owed an answer (a request-reply client
//! waiting for its echo), which is how the firmware uses it.

use crate::Protocol;

/// What the keepalive asks of the caller now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing for `ms` more milliseconds (unless something arrives).
    Wait(u32),
    /// Send a ping now (RFC 6455 only; asked once per quiet spell).
    Ping,
    /// Two intervals of silence: the peer is gone.
    Dead,
}

/// Keepalive bookkeeping for one connection. See the module page.
#[derive(Debug, Clone)]
pub struct Keepalive {
    interval: u32,
    /// When something last arrived (or the connection started).
    heard: u32,
    /// The ping for this quiet spell was asked for (or is impossible).
    pinged: bool,
    can_ping: bool,
}

impl Keepalive {
    /// Starts at `now` (counts as something heard) with `interval` ms (at
    /// least 1) for `protocol`.
    pub const fn new(protocol: Protocol, interval: u32, now: u32) -> Self {
        Keepalive {
            interval: if interval == 0 { 1 } else { interval },
            heard: now,
            pinged: false,
            can_ping: matches!(protocol, Protocol::Rfc6455),
        }
    }

    /// Something arrived at `now` (data, a pong, any frame byte): the peer lives.
    pub fn heard(&mut self, now: u32) {
        self.heard = now;
        self.pinged = false;
    }

    /// What is due at `now`.
    pub fn poll(&mut self, now: u32) -> Due {
        let quiet = now.wrapping_sub(self.heard);
        let dead_at = self.interval.saturating_mul(2);
        if quiet >= dead_at {
            return Due::Dead;
        }
        if quiet < self.interval {
            return Due::Wait(self.interval - quiet);
        }
        if self.can_ping && !self.pinged {
            self.pinged = true;
            return Due::Ping;
        }
        Due::Wait(dead_at - quiet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_once_then_declares_death() {
        let mut k = Keepalive::new(Protocol::Rfc6455, 500, 1000);
        assert_eq!(k.poll(1000), Due::Wait(500));
        assert_eq!(k.poll(1499), Due::Wait(1));
        assert_eq!(k.poll(1500), Due::Ping);
        // Asked once: then it waits out the second interval.
        assert_eq!(k.poll(1501), Due::Wait(499));
        assert_eq!(k.poll(1999), Due::Wait(1));
        assert_eq!(k.poll(2000), Due::Dead);
        assert_eq!(k.poll(9000), Due::Dead);
    }

    #[test]
    fn anything_heard_starts_over() {
        let mut k = Keepalive::new(Protocol::Rfc6455, 500, 0);
        assert_eq!(k.poll(600), Due::Ping);
        // The pong (or data) comes: a fresh interval, and a fresh ping after it.
        k.heard(700);
        assert_eq!(k.poll(1100), Due::Wait(100));
        assert_eq!(k.poll(1200), Due::Ping);
        k.heard(1650);
        assert_eq!(k.poll(2100), Due::Wait(50));
        assert_eq!(k.poll(2150), Due::Ping);
        assert_eq!(k.poll(2650), Due::Dead);
    }

    #[test]
    fn hixie76_never_pings_and_dies_after_two_intervals() {
        let mut k = Keepalive::new(Protocol::Hixie76, 500, 0);
        assert_eq!(k.poll(499), Due::Wait(1));
        assert_eq!(k.poll(500), Due::Wait(500));
        assert_eq!(k.poll(999), Due::Wait(1));
        assert_eq!(k.poll(1000), Due::Dead);
        k.heard(1000);
        assert_eq!(k.poll(1200), Due::Wait(300));
    }

    #[test]
    fn clock_wraps() {
        let start = u32::MAX - 100;
        let mut k = Keepalive::new(Protocol::Rfc6455, 500, start);
        assert_eq!(k.poll(start.wrapping_add(400)), Due::Wait(100));
        assert_eq!(k.poll(start.wrapping_add(500)), Due::Ping);
        assert_eq!(k.poll(start.wrapping_add(1000)), Due::Dead);
    }

    #[test]
    fn zero_interval_is_one_ms() {
        let mut k = Keepalive::new(Protocol::Rfc6455, 0, 0);
        assert_eq!(k.poll(0), Due::Wait(1));
        assert_eq!(k.poll(1), Due::Ping);
        assert_eq!(k.poll(2), Due::Dead);
    }
}
