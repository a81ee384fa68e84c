//! The HTTP/1.1 underneath both handshakes, and nothing WebSocket-specific:
//! finding the end of a header block, splitting it into the start line and
//! [`Headers`], request and status lines, and a bounded writer for the
//! answers ([`Out`]).

use crate::Error;

/// The header lines of a parsed request or response (start line excluded).
///
/// Lines are `name: value`; names compare ASCII case-insensitively, values
/// are returned with surrounding spaces/tabs trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    block: &'a str,
}

impl<'a> Headers<'a> {
    /// All `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        crlf_lines(self.block).filter_map(|line| {
            let (n, v) = line.split_once(':')?;
            Some((n, v.trim_matches([' ', '\t'])))
        })
    }

    /// The value of the first header called `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Comma-separated tokens of every header called `name` (several lines
    /// allowed), trimmed, empty ones skipped.
    pub fn tokens(&self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim_matches([' ', '\t']))
            .filter(|t| !t.is_empty())
    }

    /// Whether some header called `name` has `token` (ASCII case-insensitive)
    /// in its comma list.
    pub fn has_token(&self, name: &'a str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }
}

/// `text` split around its first CRLF, as `text.split_once("\r\n")` does,
/// without core's two-way substring searcher (about 1 KiB of the firmware's
/// flash).
fn split_crlf(text: &str) -> Option<(&str, &str)> {
    let i = text.as_bytes().windows(2).position(|w| w == b"\r\n")?;
    Some((text.get(..i)?, text.get(i + 2..)?))
}

/// The lines of `block` between CRLFs, as `block.split("\r\n")` yields them.
fn crlf_lines(block: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(block);
    core::iter::from_fn(move || {
        let text = rest?;
        let (line, tail) = match split_crlf(text) {
            Some((line, tail)) => (line, Some(tail)),
            None => (text, None),
        };
        rest = tail;
        Some(line)
    })
}

/// Finds the end of the header block: `Ok(Some(n))` with `n` just past
/// `\r\n\r\n`, `Ok(None)` if more bytes are needed.
pub(crate) fn find_end(input: &[u8], max_len: usize) -> Result<Option<usize>, Error> {
    match input.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) if p + 4 <= max_len => Ok(Some(p + 4)),
        Some(_) => Err(Error::HeaderTooLarge),
        None if input.len() >= max_len => Err(Error::HeaderTooLarge),
        None => Ok(None),
    }
}

/// Splits a complete header block (ending in `\r\n\r\n`) into its start line
/// and checked header lines.
pub(crate) fn split_head(head: &[u8]) -> Result<(&str, Headers<'_>), Error> {
    let text = core::str::from_utf8(head).map_err(|_| Error::Malformed)?;
    let text = text.strip_suffix("\r\n\r\n").ok_or(Error::Malformed)?;
    let (start, block) = split_crlf(text).unwrap_or((text, ""));
    for line in crlf_lines(block) {
        if line.is_empty() && block.is_empty() {
            continue;
        }
        let (name, _) = line.split_once(':').ok_or(Error::Malformed)?;
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(Error::Malformed);
        }
    }
    Ok((start, Headers { block }))
}

/// Parses `GET /path HTTP/1.1` into the path.
pub(crate) fn parse_request_line(line: &str) -> Result<&str, Error> {
    let mut parts = line.split(' ');
    let method = parts.next().ok_or(Error::Malformed)?;
    let path = parts.next().ok_or(Error::Malformed)?;
    let version = parts.next().ok_or(Error::Malformed)?;
    if parts.next().is_some() || path.is_empty() {
        return Err(Error::Malformed);
    }
    if method != "GET" {
        return Err(Error::BadMethod);
    }
    check_version(version)?;
    Ok(path)
}

pub(crate) fn check_version(v: &str) -> Result<(), Error> {
    let v = v.strip_prefix("HTTP/").ok_or(Error::Malformed)?;
    let (maj, min) = v.split_once('.').ok_or(Error::Malformed)?;
    let maj = parse_u32(maj).ok_or(Error::Malformed)?;
    let min = parse_u32(min).ok_or(Error::Malformed)?;
    if maj > 1 || (maj == 1 && min >= 1) {
        Ok(())
    } else {
        Err(Error::BadHttpVersion)
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0, |acc, b| acc * 10 + u32::from(b - b'0')))
}

/// Parses `HTTP/1.1 101 Reason` into the status code.
pub(crate) fn parse_status_line(line: &str) -> Result<u16, Error> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().ok_or(Error::Malformed)?;
    let code = parts.next().ok_or(Error::Malformed)?;
    check_version(version)?;
    if code.len() != 3 {
        return Err(Error::Malformed);
    }
    parse_u32(code).map(|c| c as u16).ok_or(Error::Malformed)
}

/// Bounded writer into a caller buffer.
pub(crate) struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Out { buf, pos: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<&mut Self, Error> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(self)
    }

    pub(crate) fn s(&mut self, s: &str) -> Result<&mut Self, Error> {
        self.put(s.as_bytes())
    }

    /// Writes `name: value\r\n`.
    pub(crate) fn header(&mut self, name: &str, value: &[u8]) -> Result<&mut Self, Error> {
        self.s(name)?.s(": ")?.put(value)?.s("\r\n")
    }

    pub(crate) fn dec(&mut self, n: u32) -> Result<&mut Self, Error> {
        let mut digits = [0u8; 10];
        self.put(decimal(n, &mut digits))
    }

    pub(crate) fn len(&self) -> usize {
        self.pos
    }
}

/// The decimal digits of `n`, written at the end of `digits` (without
/// `core::fmt`, whose machinery costs kilobytes of flash on the board).
pub(crate) fn decimal(mut n: u32, digits: &mut [u8; 10]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[i..];
        }
    }
}

/// Checks a header value the caller asked us to send: no CR/LF injection.
pub(crate) fn check_value(v: &str) -> Result<&str, Error> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n') {
        Err(Error::InvalidState)
    } else {
        Ok(v)
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn crlf_splitting_is_str_splitting() {
        for text in [
            "",
            "a",
            "\r\n",
            "a\r\nb",
            "a\r\n\r\nb\r\n",
            "bare\nlf\rcr\r\n\r",
            "\u{e9}\r\n\u{20ac}",
        ] {
            assert_eq!(split_crlf(text), text.split_once("\r\n"), "{text:?}");
            let ours: Vec<&str> = crlf_lines(text).collect();
            let core: Vec<&str> = text.split("\r\n").collect();
            assert_eq!(ours, core, "{text:?}");
        }
    }

    #[test]
    fn headers_and_tokens() {
        let head = b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nX-A:  b \r\nconnection: foo\r\n\r\n";
        let (start, h) = split_head(head).unwrap();
        assert_eq!(start, "GET / HTTP/1.1");
        assert_eq!(h.get("x-a"), Some("b"));
        assert!(h.has_token("CONNECTION", "upgrade"));
        assert!(h.has_token("Connection", "FOO"));
        assert!(!h.has_token("Connection", "close"));
        assert_eq!(h.get("missing"), None);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            split_head(b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            split_head(b"GET / HTTP/1.1\r\n: v\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            split_head(b"GET / HTTP/1.1\r\nbad name: v\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            split_head(b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            parse_request_line("GET / HTTP/1.0"),
            Err(Error::BadHttpVersion)
        );
        assert_eq!(parse_request_line("POST / HTTP/1.1"), Err(Error::BadMethod));
        assert_eq!(parse_request_line("GET /  HTTP/1.1"), Err(Error::Malformed));
        assert_eq!(parse_request_line("GET / FTP/1.1"), Err(Error::Malformed));
        assert_eq!(parse_status_line("HTTP/1.1 1010 x"), Err(Error::Malformed));
        assert_eq!(parse_status_line("HTTP/1.1 101"), Ok(101));
    }

    #[test]
    fn limits() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n", 100), Ok(None));
        assert_eq!(
            find_end(b"GET / HTTP/1.1\r\n", 10),
            Err(Error::HeaderTooLarge)
        );
        assert_eq!(
            find_end(b"GET / HTTP/1.1\r\n\r\n", 17),
            Err(Error::HeaderTooLarge)
        );
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r\nxx", 18), Ok(Some(18)));
    }
}
