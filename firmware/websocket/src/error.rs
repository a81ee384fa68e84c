//! The one error type of the crate.

/// Everything that can go wrong in a handshake, in the frame stream, or when
/// the caller asks the encoder for something impossible.
///
/// Errors are small `Copy` values: no allocation, no formatting.
/// [`Error::as_str`] gives a short English description, [`Error::close_code`]
/// the RFC 6455 close status to send (where there is one), and
/// [`Error::http_status`] the HTTP status a server answers a bad handshake with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    // ---- handshake: HTTP syntax ----
    /// The header block did not end (`\r\n\r\n`) within the caller's limit.
    HeaderTooLarge,
    /// The header block is not valid HTTP/1.1 (bad request/status line, a
    /// header line without `:`, non-UTF-8 bytes, ...).
    Malformed,
    /// Request method is not `GET`.
    BadMethod,
    /// HTTP version is not 1.1 (or later).
    BadHttpVersion,
    /// Response status is not `101`.
    BadStatus,
    /// Request has no `Host` header.
    MissingHost,
    /// `Upgrade` header missing or without the `websocket` token.
    BadUpgrade,
    /// `Connection` header missing or without the `upgrade` token.
    BadConnection,
    /// RFC 6455: `Sec-WebSocket-Version` missing or not `13` (server answers 426).
    BadVersion,
    /// RFC 6455: `Sec-WebSocket-Key` missing or not base64 of 16 bytes.
    BadKey,
    /// RFC 6455: `Sec-WebSocket-Accept` missing or wrong.
    BadAccept,
    /// The server selected a subprotocol the client did not offer (or, for
    /// hixie-76, not the one the client asked for).
    BadProtocol,
    /// Hixie-76: `Sec-WebSocket-Origin` missing or not the client's Origin.
    BadOrigin,
    /// Hixie-76: `Sec-WebSocket-Location` missing or not `ws://host/path`.
    BadLocation,
    /// Hixie-76: the 16 challenge bytes do not match the MD5 answer.
    BadChallenge,
    /// Hixie-76: `Sec-WebSocket-Key1`/`Key2` missing, containing no digits,
    /// or its number does not fit in 32 bits.
    BadHixieKey,
    /// Hixie-76: a key contains no spaces.
    HixieKeyNoSpaces,
    /// Hixie-76: a key's number is not an exact multiple of its spaces count.
    HixieKeyNotDivisible,

    // ---- frame stream (RFC 6455 close 1002 unless noted) ----
    /// RSV1..3 bit set (no extension negotiated).
    ReservedBits,
    /// Reserved opcode (0x3..=0x7, 0xB..=0xF).
    ReservedOpcode,
    /// Control frame with FIN clear.
    FragmentedControl,
    /// Control frame payload longer than 125 bytes.
    ControlTooLong,
    /// Server received an unmasked frame from a client.
    UnmaskedFrame,
    /// Client received a masked frame from a server.
    MaskedFrame,
    /// Continuation frame with no message in progress.
    UnexpectedContinuation,
    /// New Text/Binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// 64-bit payload length with the most significant bit set, or a hixie-76
    /// length prefix that overflows 64 bits.
    BadLength,
    /// Close frame with a 1-byte payload or a status code that may not be sent.
    BadCloseCode,
    /// Text payload or close reason is not valid UTF-8 (close 1007).
    InvalidUtf8,
    /// Message larger than the caller's limit (close 1009).
    MessageTooBig,

    // ---- caller-side / encoder ----
    /// The caller's output buffer is too small.
    BufferTooSmall,
    /// Not possible in this protocol/role (e.g. binary or ping on hixie-76,
    /// a close reason longer than 123 bytes).
    Unsupported,
    /// Call out of sequence (payload beyond the announced frame length,
    /// starting a frame before the previous one is complete, ...).
    InvalidState,
    /// Text to send contains a `0xFF` byte or is not UTF-8 (hixie-76 only).
    InvalidText,
}

impl Error {
    /// Short description, for logs on targets without `core::fmt`.
    pub fn as_str(&self) -> &'static str {
        use Error::*;
        match self {
            HeaderTooLarge => "handshake header too large",
            Malformed => "malformed HTTP header",
            BadMethod => "method is not GET",
            BadHttpVersion => "HTTP version is not 1.1",
            BadStatus => "status is not 101",
            MissingHost => "missing Host header",
            BadUpgrade => "missing or bad Upgrade header",
            BadConnection => "missing or bad Connection header",
            BadVersion => "unsupported Sec-WebSocket-Version",
            BadKey => "missing or bad Sec-WebSocket-Key",
            BadAccept => "missing or wrong Sec-WebSocket-Accept",
            BadProtocol => "subprotocol not offered",
            BadOrigin => "missing or wrong Sec-WebSocket-Origin",
            BadLocation => "missing or wrong Sec-WebSocket-Location",
            BadChallenge => "wrong hixie-76 challenge response",
            BadHixieKey => "missing or bad Sec-WebSocket-Key1/2",
            HixieKeyNoSpaces => "hixie-76 key has no spaces",
            HixieKeyNotDivisible => "hixie-76 key not divisible by its spaces",
            ReservedBits => "reserved bits set",
            ReservedOpcode => "reserved opcode",
            FragmentedControl => "fragmented control frame",
            ControlTooLong => "control frame payload over 125 bytes",
            UnmaskedFrame => "unmasked client frame",
            MaskedFrame => "masked server frame",
            UnexpectedContinuation => "continuation without a message",
            ExpectedContinuation => "new message inside a fragmented one",
            BadLength => "bad payload length",
            BadCloseCode => "bad close frame status",
            InvalidUtf8 => "invalid UTF-8",
            MessageTooBig => "message too big",
            BufferTooSmall => "output buffer too small",
            Unsupported => "not supported by this protocol",
            InvalidState => "call out of sequence",
            InvalidText => "text not sendable",
        }
    }

    /// The RFC 6455 close status code that this error calls for, if it is a
    /// frame-stream error: 1002 (protocol error), 1007 (invalid payload data)
    /// or 1009 (message too big). `None` for handshake and caller errors.
    pub fn close_code(&self) -> Option<u16> {
        use Error::*;
        match self {
            ReservedBits
            | ReservedOpcode
            | FragmentedControl
            | ControlTooLong
            | UnmaskedFrame
            | MaskedFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | BadLength
            | BadCloseCode => Some(close_code::PROTOCOL_ERROR),
            InvalidUtf8 => Some(close_code::INVALID_PAYLOAD),
            MessageTooBig => Some(close_code::MESSAGE_TOO_BIG),
            _ => None,
        }
    }

    /// The HTTP status a server answers a request that failed with this error:
    /// 426 for [`Error::BadVersion`], 431 for [`Error::HeaderTooLarge`], 400
    /// for every other request error. `None` for non-handshake errors.
    pub fn http_status(&self) -> Option<u16> {
        use Error::*;
        match self {
            BadVersion => Some(426),
            HeaderTooLarge => Some(431),
            Malformed | BadMethod | BadHttpVersion | MissingHost | BadUpgrade | BadConnection
            | BadKey | BadHixieKey | HixieKeyNoSpaces | HixieKeyNotDivisible => Some(400),
            _ => None,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Error {}

/// RFC 6455 section 7.4.1 status codes used by this crate.
pub mod close_code {
    /// 1000 normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001 going away.
    pub const GOING_AWAY: u16 = 1001;
    /// 1002 protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003 unsupported data.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// 1007 invalid frame payload data (bad UTF-8).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1008 policy violation.
    pub const POLICY: u16 = 1008;
    /// 1009 message too big.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// 1011 internal error.
    pub const INTERNAL: u16 = 1011;

    /// Whether `code` may appear in a Close frame on the wire (RFC 6455
    /// section 7.4: 1000-1003, 1007-1014 and 3000-4999; never 1004-1006, 1015).
    pub fn is_valid(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn descriptions_and_codes() {
        use Error::*;
        let all = [
            HeaderTooLarge,
            Malformed,
            BadMethod,
            BadHttpVersion,
            BadStatus,
            MissingHost,
            BadUpgrade,
            BadConnection,
            BadVersion,
            BadKey,
            BadAccept,
            BadProtocol,
            BadOrigin,
            BadLocation,
            BadChallenge,
            BadHixieKey,
            HixieKeyNoSpaces,
            HixieKeyNotDivisible,
            ReservedBits,
            ReservedOpcode,
            FragmentedControl,
            ControlTooLong,
            UnmaskedFrame,
            MaskedFrame,
            UnexpectedContinuation,
            ExpectedContinuation,
            BadLength,
            BadCloseCode,
            InvalidUtf8,
            MessageTooBig,
            BufferTooSmall,
            Unsupported,
            InvalidState,
            InvalidText,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.as_str().is_empty());
            assert_eq!(a.to_string(), a.as_str());
            for b in &all[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
            // Frame errors have a close code, handshake errors an HTTP
            // status (server side) or neither (client side), never both.
            assert!(!(a.close_code().is_some() && a.http_status().is_some()));
        }
        assert_eq!(HeaderTooLarge.http_status(), Some(431));
        assert_eq!(BadVersion.http_status(), Some(426));
        assert_eq!(HixieKeyNotDivisible.http_status(), Some(400));
        assert_eq!(BadChallenge.http_status(), None);
        assert!(close_code::is_valid(1000) && close_code::is_valid(4999));
        assert!(!close_code::is_valid(1005) && !close_code::is_valid(2000));
    }
}
