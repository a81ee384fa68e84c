//! A fixed-size line buffer with the few formatters the firmware's log needs, so
//! that logging costs one small function per kind of value instead of a
//! `core::fmt` expansion per call site.

/// Capacity of a [`Line`]; longer text is cut (and ends in `...`).
pub const LINE_CAPACITY: usize = 200;

/// One log line being built. Methods chain: `Line::new().s("rtt ").u(3).s(" ms")`.
pub struct Line {
    buf: [u8; LINE_CAPACITY],
    len: usize,
    cut: bool,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Line {
    /// An empty line. Not inlined: the firmware builds lines at some 30 places, and
    /// a call is smaller than clearing the buffer in place.
    #[inline(never)]
    pub fn new() -> Self {
        Line {
            buf: [0; LINE_CAPACITY],
            len: 0,
            cut: false,
        }
    }

    /// Appends raw bytes (kept whole only if they fit).
    pub fn b(&mut self, bytes: &[u8]) -> &mut Self {
        let room = LINE_CAPACITY - 4 - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self.cut |= n < bytes.len();
        self
    }

    /// Appends text.
    pub fn s(&mut self, text: &str) -> &mut Self {
        self.b(text.as_bytes())
    }

    /// Appends a number in decimal.
    pub fn u(&mut self, mut value: u32) -> &mut Self {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.b(&digits[i..])
    }

    /// Appends a dotted-quad IPv4 address.
    pub fn ip(&mut self, ip: [u8; 4]) -> &mut Self {
        for (i, byte) in ip.iter().enumerate() {
            if i > 0 {
                self.s(".");
            }
            self.u(*byte as u32);
        }
        self
    }

    /// Appends `value` as `digits` lowercase hexadecimal digits (no prefix).
    pub fn hex(&mut self, value: u32, digits: u32) -> &mut Self {
        for i in (0..digits).rev() {
            let nibble = (value >> (4 * i)) & 15;
            self.b(&[b"0123456789abcdef"[nibble as usize]]);
        }
        self
    }

    /// Appends `text` double-quoted, with `"`, `\` and control characters escaped
    /// as Rust's `{:?}` does (other characters as they are).
    pub fn quoted(&mut self, text: &str) -> &mut Self {
        // Byte by byte (UTF-8 beyond ASCII passes through whole), without core's
        // char decoding and Unicode tables: the control characters are C0, DEL and
        // C1 (U+0080..U+009F, encoded C2 80..C2 9F).
        self.s("\"");
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            i += 1;
            let control = match b {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                b'\n' => Some("\\n"),
                b'\r' => Some("\\r"),
                b'\t' => Some("\\t"),
                0 => Some("\\0"),
                _ => None,
            };
            if let Some(escape) = control {
                self.s(escape);
            } else if b < 0x20 || b == 0x7f {
                self.s("\\u{")
                    .hex(b as u32, if b < 0x10 { 1 } else { 2 })
                    .s("}");
            } else if let (0xc2, Some(&c @ 0x80..=0x9f)) = (b, bytes.get(i)) {
                i += 1;
                self.s("\\u{").hex(c as u32, 2).s("}");
            } else {
                self.b(&[b]);
            }
        }
        self.s("\"")
    }

    /// Appends bytes shown safely: valid UTF-8 as text, and as `\xNN` each
    /// byte that is not valid UTF-8 (binary data, a character cut at `max`),
    /// each control character (C0, DEL, C1: one escape per byte) and `\` (so
    /// that an escape in the output always stands for a byte). At most `max`
    /// input bytes, followed by `...` when longer.
    pub fn escaped(&mut self, bytes: &[u8], max: usize) -> &mut Self {
        let mut rest = &bytes[..bytes.len().min(max)];
        while !rest.is_empty() {
            // core's validator (linked anyway) finds the next invalid bytes.
            let (valid, bad) = match core::str::from_utf8(rest) {
                Ok(_) => (rest.len(), 0),
                Err(e) => (
                    e.valid_up_to(),
                    e.error_len().unwrap_or(rest.len() - e.valid_up_to()),
                ),
            };
            // A C1 control is C2 80..C2 9F: both bytes are escaped.
            let mut in_c1 = false;
            for (i, &b) in rest[..valid].iter().enumerate() {
                let starts_c1 = b == 0xc2 && matches!(rest.get(i + 1), Some(0x80..=0x9f));
                let control = b < 0x20 || b == 0x7f || b == b'\\' || starts_c1 || in_c1;
                in_c1 = starts_c1;
                if control {
                    self.hex_byte(b);
                } else {
                    self.b(&[b]);
                }
            }
            for &b in &rest[valid..valid + bad] {
                self.hex_byte(b);
            }
            rest = &rest[valid + bad..];
        }
        if bytes.len() > max {
            self.s("...");
        }
        self
    }

    /// Appends `\xNN`.
    fn hex_byte(&mut self, b: u8) {
        self.s("\\x").hex(b as u32, 2);
    }

    /// The text so far, without the newline [`Line::finish`] adds.
    pub fn text(&mut self) -> &str {
        let line = self.finish();
        line.strip_suffix('\n').unwrap_or(line)
    }

    /// The text so far, with a newline (and `...` if something was cut).
    pub fn finish(&mut self) -> &str {
        if self.cut {
            self.buf[self.len..self.len + 3].copy_from_slice(b"...");
            self.len += 3;
            self.cut = false;
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
        // Every append is whole ASCII or a prefix of the caller's UTF-8, which
        // the lossy fallback covers.
        if let Err(e) = core::str::from_utf8(&self.buf[..self.len]) {
            let valid = e.valid_up_to();
            self.buf[valid] = b'\n';
            self.len = valid + 1;
        }
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_lines() {
        let mut l = Line::new();
        l.s("ip ")
            .ip([10, 0, 2, 15])
            .s("/")
            .u(24)
            .s(" n=")
            .u(0)
            .s(" max=")
            .u(u32::MAX);
        assert_eq!(l.finish(), "ip 10.0.2.15/24 n=0 max=4294967295\n");
        let mut l = Line::new();
        l.hex(0x0a0b, 4).s(" ").hex(0xdeadbeef, 8);
        assert_eq!(l.finish(), "0a0b deadbeef\n");
        let mut l = Line::new();
        l.escaped(b"abcdef", 3);
        assert_eq!(l.finish(), "abc...\n");
    }

    fn escaped(bytes: &[u8], max: usize) -> String {
        let mut l = Line::new();
        l.escaped(bytes, max);
        l.text().to_string()
    }

    #[test]
    fn escaped_shows_utf8_as_text() {
        // The issue's example: "a\u{e9}\u{20ac}" is text, not \xc3\xa9...
        assert_eq!(escaped("a\u{e9}\u{20ac}".as_bytes(), 40), "a\u{e9}\u{20ac}");
        let all = "a \u{e9} \u{20ac} \u{1d11e} \u{65e5}\u{672c} \u{1f642} z";
        assert_eq!(escaped(all.as_bytes(), 100), all);
        // Controls (C0, DEL, C1) and the backslash: one escape per byte.
        assert_eq!(
            escaped(b"a\\b\n\t\x00\x7f", 40),
            "a\\x5cb\\x0a\\x09\\x00\\x7f"
        );
        assert_eq!(
            escaped("x\u{85}y\u{9f}\u{a0}".as_bytes(), 40),
            "x\\xc2\\x85y\\xc2\\x9f\u{a0}"
        );
        // Invalid UTF-8 byte by byte, the text around it kept.
        assert_eq!(
            escaped(b"ok\xff\xfe \xc3\xa9 \xc3( \xed\xa0\x80 \xf8", 40),
            "ok\\xff\\xfe \u{e9} \\xc3( \\xed\\xa0\\x80 \\xf8"
        );
        // Overlong encodings are not text.
        assert_eq!(escaped(b"\xc0\xaf", 40), "\\xc0\\xaf");
        // A character cut by `max` shows as the bytes that were kept.
        assert_eq!(
            escaped("\u{20ac}\u{20ac}".as_bytes(), 4),
            "\u{20ac}\\xe2..."
        );
        // Binary data (the message set's) stays readable and bounded.
        let bin: Vec<u8> = (0..=255u8).collect();
        let shown = escaped(&bin, 256);
        assert!(shown.starts_with("\\x00\\x01"), "{shown}");
    }

    #[test]
    fn quotes_like_debug() {
        for text in [
            "plain",
            "two words, \"quoted\" \\ here",
            "tab\tnl\n\u{1}",
            "h\u{e9}llo \u{1F642}",
            "c1 \u{80}\u{9f} del \u{7f} esc \u{1b}",
            "",
        ] {
            let mut l = Line::new();
            l.quoted(text);
            assert_eq!(l.finish(), format!("{text:?}\n"));
        }
    }

    #[test]
    fn cuts_long_lines() {
        let mut l = Line::new();
        for _ in 0..100 {
            l.s("0123456789");
        }
        let s = l.finish();
        assert!(s.len() <= LINE_CAPACITY && s.ends_with("...\n"), "{s}");
        // A multi-byte character cut in half is dropped, never split.
        let mut l = Line::new();
        l.s(&"x".repeat(LINE_CAPACITY - 5)).s("\u{e9}");
        assert!(core::str::from_utf8(l.finish().as_bytes()).is_ok());
    }
}
