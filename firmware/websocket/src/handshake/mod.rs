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
//!
//! This page is the handshake API: [`Client`] over both protocols, request
//! routing ([`parse_head`]), the checks both protocols share, and refusals.
//! The protocols' own rules are in [`rfc6455`] and [`hixie76`]; the HTTP/1.1
//! they are written in is in `http.rs`.

use crate::{Error, Protocol, Rng};

pub mod hixie76;
mod http;
pub mod rfc6455;

pub use http::Headers;
use http::{
    check_version, find_end, parse_request_line, parse_status_line, reason, split_head, Out,
};

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

/// A checked 101 response (either protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// The subprotocol the server selected, if any. RFC 6455: one the client
    /// offered (else [`Error::BadProtocol`]). Hixie-76: the one requested, or,
    /// if none was, whatever the server named (real servers such as eventlet
    /// answer `default` to every request; the draft gives the client nothing
    /// to do with it).
    pub protocol: Option<&'a str>,
    /// All response headers.
    pub headers: Headers<'a>,
}

/// The client side of the opening handshake in either protocol: the key (or
/// keys) drawn for the request, kept until the response is checked.
///
/// [`Client::new`] draws them, [`Client::write_request`] writes the request,
/// [`Client::parse_response`] checks the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// RFC 6455: the `Sec-WebSocket-Key` nonce.
    Rfc6455(rfc6455::ClientKey),
    /// Hixie-76: Key1, Key2, key3 and the expected challenge answer.
    Hixie76(hixie76::ClientKeys),
}

impl Client {
    /// Draws fresh keys for `protocol` from `rng`.
    pub fn new<R: Rng + ?Sized>(protocol: Protocol, rng: &mut R) -> Self {
        match protocol {
            Protocol::Rfc6455 => Client::Rfc6455(rfc6455::ClientKey::new(rng)),
            Protocol::Hixie76 => Client::Hixie76(hixie76::ClientKeys::new(rng)),
        }
    }

    /// The protocol this client speaks.
    pub fn protocol(&self) -> Protocol {
        match self {
            Client::Rfc6455(_) => Protocol::Rfc6455,
            Client::Hixie76(_) => Protocol::Hixie76,
        }
    }

    /// Writes the opening request into `out`, returns its length.
    ///
    /// RFC 6455: `GET` with `Host`, `Upgrade: websocket`, `Connection:
    /// Upgrade`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, `Origin` if
    /// given, `Sec-WebSocket-Protocol` if any are offered. Hixie-76: the header
    /// block (with `Origin: null` when `req.origin` is `None`, and only the
    /// first of `req.protocols`) and the 8 key3 bytes.
    pub fn write_request(&self, req: &ClientRequest<'_>, out: &mut [u8]) -> Result<usize, Error> {
        match self {
            Client::Rfc6455(key) => key.write_request(req, out),
            Client::Hixie76(keys) => keys.write_request(req, out),
        }
    }

    /// Parses and checks the server's answer to [`Client::write_request`]
    /// (`input`: all bytes received so far; `max_len` caps the header block,
    /// [`Error::HeaderTooLarge`]). Both protocols: status 101, `Upgrade:
    /// websocket` and `Connection: upgrade`. RFC 6455: the
    /// `Sec-WebSocket-Accept` for our key. Hixie-76: `Sec-WebSocket-Origin` and
    /// `Sec-WebSocket-Location` matching the request, and the 16 challenge
    /// bytes after the header block.
    pub fn parse_response<'a>(
        &self,
        req: &ClientRequest<'_>,
        input: &'a [u8],
        max_len: usize,
    ) -> Result<Parse<Response<'a>>, Error> {
        match self {
            Client::Rfc6455(key) => key.parse_response(req, input, max_len),
            Client::Hixie76(keys) => keys.parse_response(req, input, max_len),
        }
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
