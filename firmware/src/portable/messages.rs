//! The messages the reverse-echo client sends when no `--message` is given: a set
//! that walks the framing edge cases (empty, 1 byte, the 125/126/127 boundaries of
//! RFC 6455's 7-bit and 16-bit lengths, larger), multi-byte UTF-8 (2-, 3- and
//! 4-byte code points, whose reverse differs from the byte reverse) and, in
//! RFC 6455, binary data that is not UTF-8 (and holds 0x00 and 0xFF).

use websocket::MessageKind;

/// Longest generated message.
pub const MAX_LEN: usize = 1500;

/// How many distinct messages the set has; message `i` is case `i % CASES`.
pub const CASES: usize = 9;

/// Writes message number `index` into `buf` (at least [`MAX_LEN`] bytes) and
/// returns its kind and length. `binary_ok` is false for hixie-76, which has no
/// binary frames: binary cases become text.
pub fn generate(index: u32, binary_ok: bool, buf: &mut [u8]) -> (MessageKind, usize) {
    const TEXT: MessageKind = MessageKind::Text;
    match index as usize % CASES {
        0 => (TEXT, 0),
        1 => (TEXT, ascii(buf, 1)),
        2 => (TEXT, ascii(buf, 125)),
        3 => (TEXT, ascii(buf, 126)),
        4 => (TEXT, ascii(buf, 127)),
        5 => (TEXT, utf8(buf, 300)),
        6 if binary_ok => (MessageKind::Binary, binary(buf, 300)),
        6 => (TEXT, utf8(buf, 301)),
        7 => (TEXT, utf8(buf, MAX_LEN)),
        _ if binary_ok => (MessageKind::Binary, binary(buf, 1000)),
        _ => (TEXT, ascii(buf, 1000)),
    }
}

/// `len` bytes of printable ASCII, starting with a recognisable marker.
fn ascii(buf: &mut [u8], len: usize) -> usize {
    for (i, b) in buf[..len].iter_mut().enumerate() {
        *b = b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36];
    }
    len
}

/// At most `len` bytes of mixed 1- to 4-byte UTF-8, cut at a code point boundary.
fn utf8(buf: &mut [u8], len: usize) -> usize {
    const PIECES: &[&str] = &[
        "a",
        "\u{e9}",
        "\u{20ac}",
        "\u{1d11e}",
        " ",
        "\u{65e5}\u{672c}",
        "\u{1f642}",
        "z",
    ];
    let mut n = 0;
    for piece in PIECES.iter().cycle() {
        let bytes = piece.as_bytes();
        if n + bytes.len() > len {
            break;
        }
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    }
    n
}

/// `len` bytes of every value, not valid UTF-8.
fn binary(buf: &mut [u8], len: usize) -> usize {
    for (i, b) in buf[..len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(73) ^ 0xA5;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_covers_the_edges() {
        let mut buf = [0u8; MAX_LEN];
        let mut lens = Vec::new();
        for i in 0..CASES as u32 {
            let (kind, len) = generate(i, true, &mut buf);
            assert!(len <= MAX_LEN);
            if kind == MessageKind::Text {
                let text = core::str::from_utf8(&buf[..len]).expect("text is UTF-8");
                if i == 5 {
                    assert!(text.chars().any(|c| c.len_utf8() == 4));
                    assert!(text.chars().any(|c| c.len_utf8() == 3));
                    assert!(text.chars().any(|c| c.len_utf8() == 2));
                }
            } else {
                assert!(core::str::from_utf8(&buf[..len]).is_err());
                assert!(buf[..len].contains(&0xFF) && buf[..len].contains(&0));
            }
            lens.push(len);
        }
        for want in [0, 1, 125, 126, 127] {
            assert!(lens.contains(&want), "{want} in {lens:?}");
        }
        assert!(lens.iter().any(|&l| l > 1000));
    }

    #[test]
    fn hixie_gets_text_only() {
        let mut buf = [0u8; MAX_LEN];
        for i in 0..2 * CASES as u32 {
            let (kind, len) = generate(i, false, &mut buf);
            assert_eq!(kind, MessageKind::Text);
            assert!(core::str::from_utf8(&buf[..len]).is_ok());
            assert!(!buf[..len].contains(&0xFF));
        }
    }
}
