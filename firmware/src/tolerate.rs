//! Harmless things real servers send that the drafts did not foresee, and how the
//! client lets them through (each is logged when it happens):
//!
//! - A hixie-76 server that names a subprotocol the client never asked for
//!   (eventlet answers `Sec-WebSocket-Protocol: default`): when the client offered
//!   none, the header is renamed in place before the handshake is checked, so it
//!   is ignored. (RFC 6455 servers doing the same still fail the handshake, as
//!   that RFC requires.)
//! - A server that echoes a binary message in a *text* frame (the tutorial's
//!   tornado server: `write_message(message[::-1])` with bytes defaults to text):
//!   while the reply to a binary message is awaited, a text opcode at the start of
//!   a frame is read as binary, so the bytes are compared by byte, as sent.

/// Header whose value the client ignores when it asked for no subprotocol.
const PROTOCOL_HEADER: &[u8] = b"sec-websocket-protocol:";
/// Same length as `Sec-WebSocket-Protocol`, a valid and meaningless header name.
const RENAMED: &[u8] = b"X-Unrequested-Protocol";

/// Renames every `Sec-WebSocket-Protocol` header line in the header block at the
/// start of `response` (up to the blank line, or all of it if that has not
/// arrived yet) to a header nobody reads; returns whether it found one. Lengths do
/// not change, so offsets into the response stay valid.
pub fn hide_unrequested_protocol(response: &mut [u8]) -> bool {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let mut found = false;
    let mut i = 0;
    while i + 2 + PROTOCOL_HEADER.len() <= end {
        if &response[i..i + 2] == b"\r\n"
            && response[i + 2..i + 2 + PROTOCOL_HEADER.len()].eq_ignore_ascii_case(PROTOCOL_HEADER)
        {
            response[i + 2..i + 2 + RENAMED.len()].copy_from_slice(RENAMED);
            found = true;
        }
        i += 1;
    }
    found
}

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
    fn hides_the_protocol_header_only() {
        let mut r = b"HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n\
sec-websocket-PROTOCOL: default\r\nSec-WebSocket-Location: ws://h/p\r\n\r\n\
Sec-WebSocket-Protocol: not a header, challenge bytes"
            .to_vec();
        let len = r.len();
        assert!(hide_unrequested_protocol(&mut r));
        let text = String::from_utf8(r).unwrap();
        assert_eq!(text.len(), len);
        assert!(text.contains("\r\nX-Unrequested-Protocol: default\r\n"));
        assert!(text.ends_with("\r\n\r\nSec-WebSocket-Protocol: not a header, challenge bytes"));
        let mut none = b"HTTP/1.1 101 x\r\nUpgrade: WebSocket\r\n\r\n".to_vec();
        assert!(!hide_unrequested_protocol(&mut none));
    }

    #[test]
    fn text_opcodes_become_binary() {
        assert_eq!(text_frame_as_binary(0x81), Some(0x82));
        assert_eq!(text_frame_as_binary(0x01), Some(0x02));
        assert_eq!(text_frame_as_binary(0x82), None);
        assert_eq!(text_frame_as_binary(0x89), None);
        assert_eq!(text_frame_as_binary(0x80), None);
    }
}
