//! The tutorial app's shared behaviour: the reply to a message is its
//! reverse, like Python's `message[::-1]` (text by Unicode code point,
//! binary by byte). The firmware's client checks replies with
//! [`ReplyChecker`]; host-bridge's server, the bench and the fuzz targets
//! reverse with [`reverse`].
//!
//! App behaviour, not protocol: it lives beside the `websocket` crate, not in
//! it. `no_std`, no allocation, no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub use websocket::MessageKind;

fn is_cont(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Reverses UTF-8 text in place by code point: reverses the bytes, then
/// puts each multi-byte sequence back in order. (Invalid UTF-8 is reversed
/// by byte where no lead byte can be found; it never panics.)
pub fn reverse_text(buf: &mut [u8]) {
    buf.reverse();
    let n = buf.len();
    let mut i = 0;
    while i < n {
        // ASCII fast path: 8 bytes without a high bit hold no multi-byte sequence.
        if let Some(chunk) = buf.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
            if u64::from_ne_bytes(chunk) & 0x8080_8080_8080_8080 == 0 {
                i += 8;
                continue;
            }
        }
        // After the reversal a sequence reads: continuation bytes, then lead.
        let mut j = i;
        while buf.get(j).is_some_and(|&b| is_cont(b)) {
            j += 1;
        }
        if j > i && j < n {
            if let Some(seq) = buf.get_mut(i..=j) {
                seq.reverse();
            }
        }
        i = j + 1;
    }
}

/// Reverses binary data in place by byte.
pub fn reverse_binary(buf: &mut [u8]) {
    buf.reverse();
}

/// Reverses a message of `kind` in place.
pub fn reverse(kind: MessageKind, buf: &mut [u8]) {
    match kind {
        MessageKind::Text => reverse_text(buf),
        MessageKind::Binary => reverse_binary(buf),
    }
}

/// Checks, chunk by chunk and without buffering, that a reply is exactly
/// the reverse of the message sent.
///
/// ```
/// use reverse_echo::{MessageKind, ReplyChecker};
/// let mut c = ReplyChecker::new(MessageKind::Text, "añb".as_bytes());
/// c.feed(b"b\xc3");
/// c.feed(b"\xb1a");
/// assert!(c.is_match());
/// ```
#[derive(Debug, Clone)]
pub struct ReplyChecker<'m> {
    sent: &'m [u8],
    kind: MessageKind,
    /// Start and end (in `sent`) of the code point (text) being matched;
    /// `pos` is the next byte of `sent` expected.
    start: usize,
    end: usize,
    pos: usize,
    ok: bool,
}

impl<'m> ReplyChecker<'m> {
    /// A checker for the reply to `sent`.
    pub fn new(kind: MessageKind, sent: &'m [u8]) -> Self {
        let mut c = ReplyChecker {
            sent,
            kind,
            start: sent.len(),
            end: sent.len(),
            pos: sent.len(),
            ok: true,
        };
        c.next_unit();
        c
    }

    /// Moves to the unit (code point or byte) before `start`.
    fn next_unit(&mut self) {
        self.end = self.start;
        let mut s = self.end;
        if s > 0 {
            s -= 1;
            if self.kind == MessageKind::Text {
                let mut back = 0;
                while s > 0 && back < 3 && self.sent.get(s).is_some_and(|&b| is_cont(b)) {
                    s -= 1;
                    back += 1;
                }
            }
        }
        self.start = s;
        self.pos = s;
    }

    /// Feeds the next reply chunk; returns whether the reply still matches.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        for &b in chunk {
            if !self.ok {
                break;
            }
            if self.pos >= self.end || self.sent.get(self.pos) != Some(&b) {
                self.ok = false;
                break;
            }
            self.pos += 1;
            if self.pos == self.end {
                self.next_unit();
            }
        }
        self.ok
    }

    /// Whether the reply so far matches and is complete.
    pub fn is_match(&self) -> bool {
        self.ok && self.end == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn py_reverse(s: &str) -> String {
        s.chars().rev().collect()
    }

    const SAMPLES: &[&str] = &[
        "",
        "a",
        "hello",
        "héllo wörld",
        "€uro",
        "a𝄞b",
        "日本語テキスト",
        "ж",
        "🙂🙃x",
    ];

    #[test]
    fn text_by_code_point() {
        for s in SAMPLES {
            let mut b = s.as_bytes().to_vec();
            reverse_text(&mut b);
            assert_eq!(String::from_utf8(b).unwrap(), py_reverse(s));
        }
    }

    #[test]
    fn binary_by_byte() {
        let mut b = [1u8, 2, 0xC3, 0xA9];
        reverse(MessageKind::Binary, &mut b);
        assert_eq!(b, [0xA9, 0xC3, 2, 1]);
        let mut junk = [0x80u8, 0x80, 0xff, 0xc3];
        reverse_text(&mut junk); // must not panic
    }

    #[test]
    fn checker() {
        for s in SAMPLES {
            let r = py_reverse(s);
            for split in 0..=r.len() {
                let mut c = ReplyChecker::new(MessageKind::Text, s.as_bytes());
                assert!(c.feed(&r.as_bytes()[..split]));
                assert_eq!(c.is_match(), split == r.len(), "{s} {split}");
                assert!(c.feed(&r.as_bytes()[split..]));
                assert!(c.is_match());
                assert!(!c.feed(b"x"));
                assert!(!c.is_match());
            }
            if !s.is_empty() {
                let mut c = ReplyChecker::new(MessageKind::Text, s.as_bytes());
                assert!(!c.feed(s.as_bytes()) || py_reverse(s) == *s);
                // Byte-reversed (not code-point-reversed) text must not match.
                let bytes: Vec<u8> = s.bytes().rev().collect();
                let mut c = ReplyChecker::new(MessageKind::Text, s.as_bytes());
                assert_eq!(
                    c.feed(&bytes) && c.is_match(),
                    s.is_ascii() || s.chars().count() == 0
                );
            }
        }
        let mut c = ReplyChecker::new(MessageKind::Binary, &[0xC3, 0xA9, 1]);
        assert!(c.feed(&[1, 0xA9]) && c.feed(&[0xC3]) && c.is_match());
        let mut c = ReplyChecker::new(MessageKind::Binary, &[1, 2]);
        assert!(!c.feed(&[1, 2]));
    }
}
