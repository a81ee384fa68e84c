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

    /// Appends text shown safely: printable ASCII as is, anything else (control
    /// bytes, UTF-8 beyond ASCII, binary) as `\xNN`, at most `max` input bytes
    /// followed by `...` when longer.
    pub fn escaped(&mut self, bytes: &[u8], max: usize) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for &byte in bytes.iter().take(max) {
            if (b' '..=b'~').contains(&byte) && byte != b'\\' {
                self.b(&[byte]);
            } else {
                self.b(&[
                    b'\\',
                    b'x',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 15) as usize],
                ]);
            }
        }
        if bytes.len() > max {
            self.s("...");
        }
        self
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
        l.escaped("a\\b\n\u{e9}".as_bytes(), 10);
        assert_eq!(l.finish(), "a\\x5cb\\x0a\\xc3\\xa9\n");
        let mut l = Line::new();
        l.escaped(b"abcdef", 3);
        assert_eq!(l.finish(), "abc...\n");
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
