//! Opening handshakes, incremental and allocation-free.
//!
//! Every parser takes *all bytes received so far* and a header size limit,
//! and returns [`Parse::Incomplete`] until the whole handshake is in (the
//! header block up to `\r\n\r\n`, plus the 8 key3 bytes of a hixie-76
//! request or the 16 challenge bytes of a hixie-76 response). Then it returns
//! [`Parse::Done`] with the parsed value, which borrows from the input, and
//! the number of bytes the handshake took: anything after that already
//! belongs to the frame stream and must be fed to a
//! [`Receiver`](crate::Receiver).
//!
//! Writers put a complete handshake into a caller buffer and return its
//! length, or [`Error::BufferTooSmall`].

use crate::{Error, Protocol};

pub mod hixie76;
pub mod rfc6455;

/// Result of an incremental parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<T> {
    /// Not all of it is in yet: call again with more bytes.
    Incomplete,
    /// Complete: the value and how many input bytes it took.
    Done {
        /// The parsed handshake.
        value: T,
        /// Bytes of input consumed; the rest belongs to the frame stream.
        consumed: usize,
    },
}

/// What a client puts in its opening handshake (both protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRequest<'a> {
    /// `Host` header value, e.g. `"10.0.2.2:8080"`.
    pub host: &'a str,
    /// Request target, e.g. `"/"`. Must start with `/`.
    pub path: &'a str,
    /// `Origin` header value (hixie-76 sends `null` when `None`).
    pub origin: Option<&'a str>,
    /// Subprotocols to offer, in preference order (hixie-76 sends at most
    /// one: only the first is used).
    pub protocols: &'a [&'a str],
}

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
        self.block.split("\r\n").filter_map(|line| {
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

/// Any HTTP/1.1 request head, parsed but not validated as a handshake:
/// for routing before choosing [`rfc6455::parse_request`] or
/// [`hixie76::parse_request`] (or answering a plain HTTP request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// Request method, e.g. `GET`.
    pub method: &'a str,
    /// Request target as sent (query included), e.g. `/echo?x=1`.
    pub target: &'a str,
    /// All request headers.
    pub headers: Headers<'a>,
}

impl<'a> RequestHead<'a> {
    /// The target without its `?query`.
    pub fn path(&self) -> &'a str {
        self.target.split('?').next().unwrap_or(self.target)
    }

    /// Which WebSocket handshake this looks like: hixie-76 if it has
    /// `Sec-WebSocket-Key1`, RFC 6455 if it has `Sec-WebSocket-Key` or an
    /// `Upgrade: websocket` token, `None` for a plain HTTP request.
    pub fn protocol(&self) -> Option<Protocol> {
        if self.headers.get("Sec-WebSocket-Key1").is_some() {
            Some(Protocol::Hixie76)
        } else if self.headers.get("Sec-WebSocket-Key").is_some()
            || self.headers.has_token("Upgrade", "websocket")
        {
            Some(Protocol::Rfc6455)
        } else {
            None
        }
    }
}

/// Parses the head of any HTTP/1.1 request (request line and headers, up to
/// `\r\n\r\n`; `consumed` does not include a hixie-76 key3). Errors:
/// [`Error::HeaderTooLarge`], [`Error::Malformed`],
/// [`Error::BadHttpVersion`]. The input can then be handed, from its start,
/// to the protocol's `parse_request`.
pub fn parse_head(input: &[u8], max_len: usize) -> Result<Parse<RequestHead<'_>>, Error> {
    let Some(end) = find_end(input, max_len)? else {
        return Ok(Parse::Incomplete);
    };
    let head = input.get(..end).ok_or(Error::Malformed)?;
    let (start, headers) = split_head(head)?;
    let mut parts = start.split(' ');
    let method = parts.next().ok_or(Error::Malformed)?;
    let target = parts.next().ok_or(Error::Malformed)?;
    let version = parts.next().ok_or(Error::Malformed)?;
    if parts.next().is_some() || method.is_empty() || target.is_empty() {
        return Err(Error::Malformed);
    }
    check_version(version)?;
    Ok(Parse::Done {
        value: RequestHead {
            method,
            target,
            headers,
        },
        consumed: end,
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

/// The part of checking a server's answer that both protocols share: a complete
/// header block (else `Ok(None)`), status 101, and `Upgrade: websocket` and
/// `Connection: upgrade` as tokens in any case (servers send comma lists such
/// as `keep-alive, Upgrade`). Returns the header block's length and its headers.
pub(crate) fn parse_upgrade_response(
    input: &[u8],
    max_len: usize,
) -> Result<Option<(usize, Headers<'_>)>, Error> {
    let Some(end) = find_end(input, max_len)? else {
        return Ok(None);
    };
    let head = input.get(..end).ok_or(Error::Malformed)?;
    let (start, headers) = split_head(head)?;
    if parse_status_line(start)? != 101 {
        return Err(Error::BadStatus);
    }
    if !headers.has_token("Upgrade", "websocket") {
        return Err(Error::BadUpgrade);
    }
    if !headers.has_token("Connection", "upgrade") {
        return Err(Error::BadConnection);
    }
    Ok(Some((end, headers)))
}

/// The start of a client's opening request as both protocols check it.
pub(crate) struct UpgradeRequest<'a> {
    /// Length of the header block.
    pub end: usize,
    pub path: &'a str,
    pub host: &'a str,
    pub headers: Headers<'a>,
}

/// The part of checking a client's request that both protocols share: a complete
/// header block (else `Ok(None)`), `GET <path> HTTP/1.1`, a `Host`, an `Upgrade`
/// header that `upgrade_ok` accepts (the protocols read it differently), and
/// `Connection: upgrade` as a token in any case.
pub(crate) fn parse_upgrade_request(
    input: &[u8],
    max_len: usize,
    upgrade_ok: fn(&Headers<'_>) -> bool,
) -> Result<Option<UpgradeRequest<'_>>, Error> {
    let Some(end) = find_end(input, max_len)? else {
        return Ok(None);
    };
    let head = input.get(..end).ok_or(Error::Malformed)?;
    let (start, headers) = split_head(head)?;
    let path = parse_request_line(start)?;
    let host = headers.get("Host").ok_or(Error::MissingHost)?;
    if !upgrade_ok(&headers) {
        return Err(Error::BadUpgrade);
    }
    if !headers.has_token("Connection", "upgrade") {
        return Err(Error::BadConnection);
    }
    Ok(Some(UpgradeRequest {
        end,
        path,
        host,
        headers,
    }))
}

/// Splits a complete header block (ending in `\r\n\r\n`) into its start line
/// and checked header lines.
pub(crate) fn split_head(head: &[u8]) -> Result<(&str, Headers<'_>), Error> {
    let text = core::str::from_utf8(head).map_err(|_| Error::Malformed)?;
    let text = text.strip_suffix("\r\n\r\n").ok_or(Error::Malformed)?;
    let (start, block) = text.split_once("\r\n").unwrap_or((text, ""));
    for line in block.split("\r\n") {
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

fn check_version(v: &str) -> Result<(), Error> {
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

    pub(crate) fn dec(&mut self, mut n: u32) -> Result<&mut Self, Error> {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&tmp[i..])
    }

    pub(crate) fn len(&self) -> usize {
        self.pos
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

fn reason(status: u16) -> &'static str {
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

/// Writes a complete non-upgrade HTTP/1.1 response for refusing a handshake
/// (e.g. 403 for a refused Origin, 404 for an unknown path): status line,
/// `Content-Length: 0`, `Connection: close`, plus `Sec-WebSocket-Version: 13`
/// for 400 and 426 (RFC 6455 section 4.4). Returns its length.
pub fn write_error_response(status: u16, out: &mut [u8]) -> Result<usize, Error> {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let mut o = Out::new(out);
    o.s("HTTP/1.1 ")?
        .dec(u32::from(status))?
        .s(" ")?
        .s(reason(status))?
        .s("\r\n")?;
    if status == 400 || status == 426 {
        o.header("Sec-WebSocket-Version", b"13")?;
    }
    o.s("Content-Length: 0\r\nConnection: close\r\n\r\n")?;
    Ok(o.len())
}

/// Writes the response that refuses a request that failed to parse with
/// `err`: its [`Error::http_status`] (400 when it has none). Returns its
/// length.
pub fn write_reject(err: Error, out: &mut [u8]) -> Result<usize, Error> {
    write_error_response(err.http_status().unwrap_or(400), out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn request_head() {
        let req = b"POST /a?b=c HTTP/1.1\r\nHost: x\r\n\r\nbody";
        let Ok(Parse::Done { value, consumed }) = parse_head(req, 100) else {
            panic!()
        };
        assert_eq!(
            (value.method, value.target, value.path()),
            ("POST", "/a?b=c", "/a")
        );
        assert_eq!(value.protocol(), None);
        assert_eq!(consumed, req.len() - 4);
        let h = b"GET / HTTP/1.1\r\nSec-WebSocket-Key1: 1 2\r\n\r\n";
        let Ok(Parse::Done { value, .. }) = parse_head(h, 100) else {
            panic!()
        };
        assert_eq!(value.protocol(), Some(Protocol::Hixie76));
        let r = b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n";
        let Ok(Parse::Done { value, .. }) = parse_head(r, 100) else {
            panic!()
        };
        assert_eq!(value.protocol(), Some(Protocol::Rfc6455));
        assert_eq!(parse_head(b"GET /\r\n\r\n", 100), Err(Error::Malformed));
        assert_eq!(
            parse_head(b"GET / HTTP/1.0\r\n\r\n", 100),
            Err(Error::BadHttpVersion)
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n", 100),
            Ok(Parse::Incomplete)
        );
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

    #[test]
    fn error_responses() {
        let mut buf = [0u8; 200];
        let n = write_error_response(404, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let n = write_reject(Error::BadVersion, &mut buf).unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n")
        );
        let n = write_reject(Error::BadKey, &mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\n"));
        assert_eq!(
            write_error_response(403, &mut buf[..10]),
            Err(Error::BufferTooSmall)
        );
    }
}
