//! Harmless things real servers send that the drafts did not foresee, and how the
//! client lets them through (each is logged when it happens):
//!
//! - A hixie-76 server that names a subprotocol the client never asked for
//!   (eventlet answers `Sec-WebSocket-Protocol: default`): the websocket crate's
//!   hixie-76 client ignores it. (RFC 6455 servers doing the same still fail the
//!   handshake, as that RFC requires.)
//! - A server that echoes a binary message in a *text* frame (the tutorial's
//!   tornado server: `write_message(message[::-1])` with bytes defaults to text):
//!   while the reply to a binary message is awaited, a text opcode at the start of
//!   a frame is read as binary, so the bytes are compared by byte, as sent.

/// Given the first byte of an RFC 6455 frame header, the byte to read instead
/// while a binary reply is awaited: text frames (opcode 1, FIN or not) become
/// binary frames (opcode 2); anything else is left alone. Returns `None` when
/// nothing changes.
pub fn text_frame_as_binary(first_byte: u8) -> Option<u8> {
    (first_byte & 0x0F == 0x01).then_some((first_byte & 0xF0) | 0x02)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_opcodes_become_binary() {
        assert_eq!(text_frame_as_binary(0x81), Some(0x82));
        assert_eq!(text_frame_as_binary(0x01), Some(0x02));
        assert_eq!(text_frame_as_binary(0x82), None);
        assert_eq!(text_frame_as_binary(0x89), None);
        assert_eq!(text_frame_as_binary(0x80), None);
    }
}
