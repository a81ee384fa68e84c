//! RFC 6455 opening handshake (section 4), client and server.
//!
//! Client (used through [`super::Client`]): [`ClientKey::new`] draws the
//! 16-byte nonce; the request is a GET with it, and the 101 answer must carry
//! its `Sec-WebSocket-Accept`.
//!
//! Server: [`parse_request`] validates the GET and exposes what the server
//! decides on (path, Origin, offered subprotocols); then [`write_accept`], or
//! [`write_reject`](super::write_reject) / [`write_error_response`](super::write_error_response).

use super::http::{check_value, Headers, Out};
use super::{
    parse_upgrade_request, parse_upgrade_response, ClientRequest, Parse, Response, UpgradeRequest,
};
use crate::{base64, Error, Rng};
use sha1::{Digest, Sha1};

/// The GUID appended to the key (RFC 6455 section 1.3).
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (the key's base64 text,
/// as sent): base64(SHA-1(key ++ GUID)), always 28 bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    let digest = h.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28.
    let _ = base64::encode(&digest, &mut out);
    out
}

/// Client side of the handshake: holds the nonce between request and response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKey {
    key: [u8; 24],
}

impl ClientKey {
    /// Draws a fresh random 16-byte key.
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut nonce = [0u8; 16];
        rng.fill(&mut nonce);
        let mut key = [0u8; 24];
        let _ = base64::encode(&nonce, &mut key);
        ClientKey { key }
    }

    /// The `Sec-WebSocket-Key` value (base64, 24 bytes).
    pub fn key(&self) -> &[u8; 24] {
        &self.key
    }

    /// Writes the GET request into `out`, returns its length.
    ///
    /// `Host`, `Upgrade: websocket`, `Connection: Upgrade`,
    /// `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, `Origin` if given,
    /// `Sec-WebSocket-Protocol` if any are offered.
    pub(super) fn write_request(
        &self,
        req: &ClientRequest<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let mut o = Out::new(out);
        o.s("GET ")?
            .s(check_value(req.path)?)?
            .s(" HTTP/1.1\r\n")?
            .header("Host", check_value(req.host)?.as_bytes())?
            .s("Upgrade: websocket\r\nConnection: Upgrade\r\n")?
            .header("Sec-WebSocket-Key", &self.key)?
            .s("Sec-WebSocket-Version: 13\r\n")?;
        if let Some(origin) = req.origin {
            o.header("Origin", check_value(origin)?.as_bytes())?;
        }
        if !req.protocols.is_empty() {
            o.s("Sec-WebSocket-Protocol: ")?;
            for (i, p) in req.protocols.iter().enumerate() {
                if i > 0 {
                    o.s(", ")?;
                }
                o.s(check_value(p)?)?;
            }
            o.s("\r\n")?;
        }
        o.s("\r\n")?;
        Ok(o.len())
    }

    /// Parses and checks the server's response: status 101, `Upgrade:
    /// websocket`, `Connection: upgrade`, the `Sec-WebSocket-Accept` for our
    /// key, and a selected subprotocol (if any) among `req.protocols`.
    ///
    /// `max_len` caps the header block ([`Error::HeaderTooLarge`]).
    pub(super) fn parse_response<'a>(
        &self,
        req: &ClientRequest<'_>,
        input: &'a [u8],
        max_len: usize,
    ) -> Result<Parse<Response<'a>>, Error> {
        let Some((end, headers)) = parse_upgrade_response(input, max_len)? else {
            return Ok(Parse::Incomplete);
        };
        let accept = headers
            .get("Sec-WebSocket-Accept")
            .ok_or(Error::BadAccept)?;
        if accept.as_bytes() != accept_key(&self.key) {
            return Err(Error::BadAccept);
        }
        let protocol = match headers.get("Sec-WebSocket-Protocol") {
            None => None,
            Some(p) if req.protocols.contains(&p) => Some(p),
            Some(_) => return Err(Error::BadProtocol),
        };
        Ok(Parse::Done {
            value: Response { protocol, headers },
            consumed: end,
        })
    }
}

/// A validated client request; the server decides on it, then answers with
/// [`write_accept`] or an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Request target, e.g. `/` (a 404 is the server's call).
    pub path: &'a str,
    /// `Host` header value.
    pub host: &'a str,
    /// `Origin` header value, if sent (a 403 is the server's call).
    pub origin: Option<&'a str>,
    /// `Sec-WebSocket-Key` value (checked: base64 of 16 bytes).
    pub key: &'a str,
    /// All request headers.
    pub headers: Headers<'a>,
}

impl<'a> Request<'a> {
    /// The subprotocols the client offered, in its order.
    pub fn protocols(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.tokens("Sec-WebSocket-Protocol")
    }

    /// The `Sec-WebSocket-Accept` value to answer with.
    pub fn accept_key(&self) -> [u8; 28] {
        accept_key(self.key.as_bytes())
    }
}

/// Parses and validates a client's opening request: `GET`, HTTP/1.1,
/// `Host`, `Upgrade` with the `websocket` token and `Connection` with the
/// `upgrade` token (any case, in comma lists), `Sec-WebSocket-Version: 13`
/// ([`Error::BadVersion`]: answer 426), `Sec-WebSocket-Key` of 16 bytes.
///
/// On error, answer with [`write_reject`](super::write_reject).
pub fn parse_request(input: &[u8], max_len: usize) -> Result<Parse<Request<'_>>, Error> {
    // RFC 6455 section 4.2.1: `websocket` among the header's tokens, any case.
    let upgrade_ok = |h: &Headers<'_>| h.has_token("Upgrade", "websocket");
    let Some(UpgradeRequest {
        end,
        path,
        host,
        headers,
    }) = parse_upgrade_request(input, max_len, upgrade_ok)?
    else {
        return Ok(Parse::Incomplete);
    };
    if headers.get("Sec-WebSocket-Version") != Some("13") {
        return Err(Error::BadVersion);
    }
    let key = headers.get("Sec-WebSocket-Key").ok_or(Error::BadKey)?;
    let mut raw = [0u8; 18];
    if base64::decode(key.as_bytes(), &mut raw) != Some(16) {
        return Err(Error::BadKey);
    }
    Ok(Parse::Done {
        value: Request {
            path,
            host,
            origin: headers.get("Origin"),
            key,
            headers,
        },
        consumed: end,
    })
}

/// Writes the `101 Switching Protocols` answer to `req`, selecting
/// `protocol` (which should be one of [`Request::protocols`]). Returns its
/// length.
pub fn write_accept(
    req: &Request<'_>,
    protocol: Option<&str>,
    out: &mut [u8],
) -> Result<usize, Error> {
    let mut o = Out::new(out);
    o.s("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")?
        .header("Sec-WebSocket-Accept", &req.accept_key())?;
    if let Some(p) = protocol {
        o.header("Sec-WebSocket-Protocol", check_value(p)?.as_bytes())?;
    }
    o.s("\r\n")?;
    Ok(o.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::write_reject;

    struct Fixed(u8);
    impl Rng for Fixed {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    const REQ: ClientRequest<'static> = ClientRequest {
        host: "server.example.com",
        path: "/chat",
        origin: Some("http://example.com"),
        protocols: &["chat", "superchat"],
    };

    #[test]
    fn rfc_vector() {
        // RFC 6455 section 1.3. (Issue 3 quotes "s3pPLMBiT99KP2DQKK04QQ+lFk0=", which
        // is not what the RFC or SHA-1 give; checked against tungstenite too.)
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn done<T>(p: Parse<T>) -> (T, usize) {
        match p {
            Parse::Done { value, consumed } => (value, consumed),
            Parse::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn round_trip() {
        let client = ClientKey::new(&mut Fixed(0));
        let mut buf = [0u8; 512];
        let n = client.write_request(&REQ, &mut buf).unwrap();
        for i in 0..n {
            assert_eq!(parse_request(&buf[..i], 512), Ok(Parse::Incomplete));
        }
        buf[n..n + 3].copy_from_slice(b"xyz");
        let (req, used) = done(parse_request(&buf[..n + 3], 512).unwrap());
        assert_eq!(used, n);
        assert_eq!(req.path, "/chat");
        assert_eq!(req.host, "server.example.com");
        assert_eq!(req.origin, Some("http://example.com"));
        assert!(req.protocols().eq(["chat", "superchat"]));
        let mut resp = [0u8; 512];
        let m = write_accept(&req, Some("superchat"), &mut resp).unwrap();
        for i in 0..m {
            assert_eq!(
                client.parse_response(&REQ, &resp[..i], 512),
                Ok(Parse::Incomplete)
            );
        }
        let (r, used) = done(client.parse_response(&REQ, &resp[..m], 512).unwrap());
        assert_eq!(used, m);
        assert_eq!(r.protocol, Some("superchat"));
    }

    #[test]
    fn rfc_example_request() {
        let req = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nupgrade: WebSocket\r\n\
Connection: keep-alive, UPGRADE\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
        let (r, _) = done(parse_request(req, 1024).unwrap());
        assert!(r.protocols().eq(["chat", "superchat"]));
        let mut out = [0u8; 256];
        let n = write_accept(&r, Some("chat"), &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"[..]
        );
    }

    fn req_with(replace: (&str, &str)) -> [u8; 512] {
        let base = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut buf = [b' '; 512];
        let mut w = 0;
        let mut rest = base;
        if let Some(p) = base.find(replace.0) {
            for part in [&base[..p], replace.1] {
                buf[w..w + part.len()].copy_from_slice(part.as_bytes());
                w += part.len();
            }
            rest = &base[p + replace.0.len()..];
        }
        buf[w..w + rest.len()].copy_from_slice(rest.as_bytes());
        buf
    }

    fn parse_err(replace: (&str, &str)) -> Error {
        let buf = req_with(replace);
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        parse_request(&buf[..end], 512).unwrap_err()
    }

    #[test]
    fn request_errors() {
        // (text of a good request, what replaces it) -> the error.
        let cases = [
            (("GET", "PUT"), Error::BadMethod),
            (("HTTP/1.1", "HTTP/1.0"), Error::BadHttpVersion),
            (("Host: h\r\n", ""), Error::MissingHost),
            (("Upgrade: websocket", "Upgrade: h2c"), Error::BadUpgrade),
            (
                ("Connection: Upgrade", "Connection: close"),
                Error::BadConnection,
            ),
            (("Version: 13", "Version: 8"), Error::BadVersion),
            (("Sec-WebSocket-Version: 13\r\n", ""), Error::BadVersion),
            (
                ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
                Error::BadKey,
            ),
            (("dGhlIHNhbXBsZSBub25jZQ==", "!!!"), Error::BadKey),
            (("Host: h", "Host h"), Error::Malformed),
        ];
        for (edit, want) in cases {
            assert_eq!(parse_err(edit), want, "{edit:?}");
        }
        let buf = req_with(("", ""));
        assert_eq!(parse_request(&buf[..40], 40), Err(Error::HeaderTooLarge));
        let mut out = [0u8; 128];
        let n = write_reject(parse_err(("Version: 13", "Version: 8")), &mut out).unwrap();
        assert!(out[..n].starts_with(b"HTTP/1.1 426 "));
        let n = write_reject(parse_err(("GET", "PUT")), &mut out).unwrap();
        assert!(out[..n].starts_with(b"HTTP/1.1 400 "));
    }

    #[test]
    fn response_errors() {
        let client = ClientKey::new(&mut Fixed(7));
        let accept = accept_key(client.key());
        let accept = core::str::from_utf8(&accept).unwrap();
        let check = |status: &str, up: &str, conn: &str, acc: &str, proto: &str| {
            let mut buf = [0u8; 512];
            let mut o = Out::new(&mut buf);
            for s in [status, "\r\n", up, conn, acc, proto, "\r\n"] {
                o.s(s).unwrap();
            }
            let n = o.len();
            client
                .parse_response(&REQ, &buf[..n], 512)
                .map(|p| done(p).0.protocol.is_some())
        };
        let acc = std::format!("Sec-WebSocket-Accept: {accept}\r\n");
        let up = "Upgrade: WebSocket\r\n";
        let conn = "Connection: upgrade\r\n";
        let ok = "HTTP/1.1 101 OK";
        let chat = "Sec-WebSocket-Protocol: chat\r\n";
        let other = "Sec-WebSocket-Protocol: other\r\n";
        let wrong_acc = "Sec-WebSocket-Accept: s3pPLMBiT99KP2DQKK04QQ+lFk0=\r\n";
        // (status line, Upgrade, Connection, Accept, Protocol) -> the outcome
        // (Ok: whether a protocol was agreed).
        let cases = [
            ((ok, up, conn, acc.as_str(), ""), Ok(false)),
            ((ok, up, conn, &acc, chat), Ok(true)),
            ((ok, up, conn, &acc, other), Err(Error::BadProtocol)),
            (
                ("HTTP/1.1 200 OK", up, conn, &acc, ""),
                Err(Error::BadStatus),
            ),
            ((ok, "", conn, &acc, ""), Err(Error::BadUpgrade)),
            ((ok, up, "", &acc, ""), Err(Error::BadConnection)),
            ((ok, up, conn, "", ""), Err(Error::BadAccept)),
            ((ok, up, conn, wrong_acc, ""), Err(Error::BadAccept)),
            (
                ("HTTP/1.0 101 OK", up, conn, &acc, ""),
                Err(Error::BadHttpVersion),
            ),
            (("garbage", up, conn, &acc, ""), Err(Error::Malformed)),
        ];
        for ((status, up, conn, acc, proto), want) in cases {
            assert_eq!(
                check(status, up, conn, acc, proto),
                want,
                "{status} {up}{conn}{acc}{proto}"
            );
        }
    }

    #[test]
    fn write_errors() {
        let client = ClientKey::new(&mut Fixed(0));
        let mut buf = [0u8; 64];
        assert_eq!(
            client.write_request(&REQ, &mut buf),
            Err(Error::BufferTooSmall)
        );
        let bad = ClientRequest {
            host: "a\r\nX: y",
            ..REQ
        };
        let mut buf = [0u8; 512];
        assert_eq!(
            client.write_request(&bad, &mut buf),
            Err(Error::InvalidState)
        );
    }
}
