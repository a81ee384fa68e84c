//! draft-hixie-thewebsocketprotocol-76 opening handshake, client and server.
//!
//! Client (used through [`super::Client`]): [`ClientKeys::new`] generates
//! `Sec-WebSocket-Key1/Key2` (section 4.1: random number times 1-12 spaces,
//! random non-digits and the spaces inserted) and the 8 key3 bytes; the request
//! carries them, and the answer must end in the 16-byte MD5 challenge.
//!
//! Server: [`parse_request`] validates the request (including key3),
//! [`write_accept`] writes the answer with the challenge response.

use super::http::{check_value, decimal, Headers, Out};
use super::{
    parse_upgrade_request, parse_upgrade_response, ClientRequest, Parse, Response, UpgradeRequest,
};
use crate::{Error, Rng};
use md5::{Digest, Md5};

/// Maximum generated key length: 10 digits, 12 spaces, 12 other characters.
const KEY_MAX: usize = 34;

/// The number a key encodes: its digits, divided by its spaces count.
///
/// Errors: [`Error::BadHixieKey`] (no digits, or over `u32::MAX`),
/// [`Error::HixieKeyNoSpaces`], [`Error::HixieKeyNotDivisible`].
pub fn key_number(key: &str) -> Result<u32, Error> {
    let mut n: u64 = 0;
    let mut digits = 0usize;
    let mut spaces = 0u64;
    for b in key.bytes() {
        if b.is_ascii_digit() {
            n = n * 10 + u64::from(b - b'0');
            digits += 1;
            if n > u64::from(u32::MAX) {
                return Err(Error::BadHixieKey);
            }
        } else if b == b' ' {
            spaces += 1;
        }
    }
    if digits == 0 {
        return Err(Error::BadHixieKey);
    }
    if spaces == 0 {
        return Err(Error::HixieKeyNoSpaces);
    }
    if !n.is_multiple_of(spaces) {
        return Err(Error::HixieKeyNotDivisible);
    }
    Ok((n / spaces) as u32)
}

/// The 16-byte challenge response: MD5(big-endian number1 ++ number2 ++ key3).
pub fn challenge_response(key1: &str, key2: &str, key3: &[u8; 8]) -> Result<[u8; 16], Error> {
    Ok(answer(key_number(key1)?, key_number(key2)?, key3))
}

fn answer(n1: u32, n2: u32, key3: &[u8; 8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(n1.to_be_bytes());
    h.update(n2.to_be_bytes());
    h.update(key3);
    h.finalize().into()
}

fn rand_u32<R: Rng + ?Sized>(rng: &mut R) -> u32 {
    let mut b = [0u8; 4];
    rng.fill(&mut b);
    u32::from_le_bytes(b)
}

/// Random in `lo..=hi`.
fn rand_range<R: Rng + ?Sized>(rng: &mut R, lo: u32, hi: u32) -> u32 {
    let span = hi - lo + 1;
    lo + rand_u32(rng) % span
}

/// Inserts `c` at `pos` in `key[..*len]`.
fn insert(key: &mut [u8; KEY_MAX], len: &mut usize, pos: usize, c: u8) {
    if *len < KEY_MAX && pos <= *len {
        key.copy_within(pos..*len, pos + 1);
        key[pos] = c;
        *len += 1;
    }
}

/// Generates one key per section 4.1 steps 17-20; returns its number.
fn gen_key<R: Rng + ?Sized>(rng: &mut R, key: &mut [u8; KEY_MAX], len: &mut usize) -> u32 {
    let spaces = rand_range(rng, 1, 12);
    let max = u32::MAX / spaces;
    let number = if max == u32::MAX {
        rand_u32(rng)
    } else {
        rand_range(rng, 0, max)
    };
    let mut digits = [0u8; 10];
    *len = 0;
    for &d in decimal(number * spaces, &mut digits) {
        insert(key, len, *len, d);
    }
    // 1..=12 random characters from U+0021-U+002F and U+003A-U+007E.
    for _ in 0..rand_range(rng, 1, 12) {
        let r = rand_range(rng, 0, 15 + 69 - 1) as u8;
        let c = if r < 15 { 0x21 + r } else { 0x3A + (r - 15) };
        let pos = rand_range(rng, 0, *len as u32) as usize;
        insert(key, len, pos, c);
    }
    // The spaces, never first or last.
    for _ in 0..spaces {
        let pos = rand_range(rng, 1, *len as u32 - 1) as usize;
        insert(key, len, pos, b' ');
    }
    number
}

/// ClientKeys side of the hixie-76 handshake: keys and the expected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeys {
    key1: [u8; KEY_MAX],
    key1_len: u8,
    key2: [u8; KEY_MAX],
    key2_len: u8,
    key3: [u8; 8],
    expected: [u8; 16],
}

impl ClientKeys {
    /// Generates Key1, Key2 and key3 from `rng`.
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut key1 = [0u8; KEY_MAX];
        let mut key2 = [0u8; KEY_MAX];
        let (mut l1, mut l2) = (0, 0);
        let n1 = gen_key(rng, &mut key1, &mut l1);
        let n2 = gen_key(rng, &mut key2, &mut l2);
        let mut key3 = [0u8; 8];
        rng.fill(&mut key3);
        ClientKeys {
            key1,
            key1_len: l1 as u8,
            key2,
            key2_len: l2 as u8,
            key3,
            expected: answer(n1, n2, &key3),
        }
    }

    /// Builds a client from known keys (e.g. the draft's test vector);
    /// fails like [`key_number`] on bad keys or keys over 34 bytes.
    pub fn from_keys(key1: &str, key2: &str, key3: [u8; 8]) -> Result<Self, Error> {
        let expected = challenge_response(key1, key2, &key3)?;
        let mut c = ClientKeys {
            key1: [0; KEY_MAX],
            key1_len: key1.len() as u8,
            key2: [0; KEY_MAX],
            key2_len: key2.len() as u8,
            key3,
            expected,
        };
        c.key1
            .get_mut(..key1.len())
            .ok_or(Error::BadHixieKey)?
            .copy_from_slice(key1.as_bytes());
        c.key2
            .get_mut(..key2.len())
            .ok_or(Error::BadHixieKey)?
            .copy_from_slice(key2.as_bytes());
        Ok(c)
    }

    /// `Sec-WebSocket-Key1` as generated.
    pub fn key1(&self) -> &[u8] {
        self.key1.get(..self.key1_len as usize).unwrap_or(&[])
    }

    /// `Sec-WebSocket-Key2` as generated.
    pub fn key2(&self) -> &[u8] {
        self.key2.get(..self.key2_len as usize).unwrap_or(&[])
    }

    /// The 8 key3 bytes sent after the header block.
    pub fn key3(&self) -> &[u8; 8] {
        &self.key3
    }

    /// The 16 bytes the server must answer with.
    pub fn expected_response(&self) -> &[u8; 16] {
        &self.expected
    }

    /// Writes the request (header block and the 8 key3 bytes) into `out`,
    /// returns its length. Sends `Origin: null` when `req.origin` is `None`,
    /// and only the first of `req.protocols`.
    pub(super) fn write_request(
        &self,
        req: &ClientRequest<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let mut o = Out::new(out);
        o.s("GET ")?
            .s(check_value(req.path)?)?
            .s(" HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n")?
            .header("Host", check_value(req.host)?.as_bytes())?
            .header(
                "Origin",
                check_value(req.origin.unwrap_or("null"))?.as_bytes(),
            )?;
        if let Some(p) = req.protocols.first() {
            o.header("Sec-WebSocket-Protocol", check_value(p)?.as_bytes())?;
        }
        o.header("Sec-WebSocket-Key1", self.key1())?
            .header("Sec-WebSocket-Key2", self.key2())?
            .s("\r\n")?
            .put(&self.key3)?;
        Ok(o.len())
    }

    /// Parses and checks the response: `HTTP/1.1 101` status line, `Upgrade:
    /// WebSocket`, `Connection: Upgrade`, `Sec-WebSocket-Origin` equal to
    /// the Origin sent, `Sec-WebSocket-Location` equal to `ws://host/path`,
    /// `Sec-WebSocket-Protocol` equal to the one sent (if one was sent; without
    /// one, any answered protocol is accepted and returned), and the 16
    /// challenge bytes after the header block.
    pub(super) fn parse_response<'a>(
        &self,
        req: &ClientRequest<'_>,
        input: &'a [u8],
        max_len: usize,
    ) -> Result<Parse<Response<'a>>, Error> {
        let Some((end, headers)) = parse_upgrade_response(input, max_len)? else {
            return Ok(Parse::Incomplete);
        };
        if headers.get("Sec-WebSocket-Origin") != Some(req.origin.unwrap_or("null")) {
            return Err(Error::BadOrigin);
        }
        let loc = headers
            .get("Sec-WebSocket-Location")
            .ok_or(Error::BadLocation)?;
        let ok = loc
            .strip_prefix("ws://")
            .and_then(|l| l.strip_prefix(req.host))
            .is_some_and(|l| l == req.path);
        if !ok {
            return Err(Error::BadLocation);
        }
        // A protocol we asked for must come back unchanged. One we did not ask
        // for is tolerated: real servers (eventlet) answer `default` to every
        // request, and the draft gives the client nothing to do with it.
        let protocol = headers.get("Sec-WebSocket-Protocol");
        if let Some(offered) = req.protocols.first() {
            if protocol != Some(*offered) {
                return Err(Error::BadProtocol);
            }
        }
        let Some(challenge) = input.get(end..end + 16) else {
            return Ok(Parse::Incomplete);
        };
        if challenge != self.expected {
            return Err(Error::BadChallenge);
        }
        Ok(Parse::Done {
            value: Response { protocol, headers },
            consumed: end + 16,
        })
    }
}

/// A validated hixie-76 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Request target, e.g. `/`.
    pub path: &'a str,
    /// `Host` header value.
    pub host: &'a str,
    /// `Origin` header value, if sent.
    pub origin: Option<&'a str>,
    /// `Sec-WebSocket-Protocol` value, if sent (hixie-76 offers one).
    pub protocol: Option<&'a str>,
    /// The computed 16-byte challenge response.
    pub response: [u8; 16],
    /// All request headers.
    pub headers: Headers<'a>,
}

/// Parses and validates a hixie-76 request: `GET`, HTTP/1.1, `Upgrade:
/// WebSocket`, `Connection: Upgrade`, `Host`, both keys (see
/// [`key_number`]), and the 8 key3 bytes after the header block (counted in
/// `consumed`).
pub fn parse_request(input: &[u8], max_len: usize) -> Result<Parse<Request<'_>>, Error> {
    // The draft's server wants the one value `WebSocket`, in any case.
    let upgrade_ok = |h: &Headers<'_>| {
        h.get("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    };
    let Some(UpgradeRequest {
        end,
        path,
        host,
        headers,
    }) = parse_upgrade_request(input, max_len, upgrade_ok)?
    else {
        return Ok(Parse::Incomplete);
    };
    let n1 = key_number(
        headers
            .get("Sec-WebSocket-Key1")
            .ok_or(Error::BadHixieKey)?,
    )?;
    let n2 = key_number(
        headers
            .get("Sec-WebSocket-Key2")
            .ok_or(Error::BadHixieKey)?,
    )?;
    let Some(key3) = input.get(end..end + 8) else {
        return Ok(Parse::Incomplete);
    };
    let mut k3 = [0u8; 8];
    k3.copy_from_slice(key3);
    Ok(Parse::Done {
        value: Request {
            path,
            host,
            origin: headers.get("Origin"),
            protocol: headers.get("Sec-WebSocket-Protocol"),
            response: answer(n1, n2, &k3),
            headers,
        },
        consumed: end + 8,
    })
}

/// Writes the `101 WebSocket Protocol Handshake` answer to `req`, echoing
/// its Origin (`null` if none) and `protocol` if `Some`, with
/// `Sec-WebSocket-Location: ws://host/path`, then the 16 challenge bytes.
pub fn write_accept(
    req: &Request<'_>,
    protocol: Option<&str>,
    out: &mut [u8],
) -> Result<usize, Error> {
    let mut o = Out::new(out);
    o.s("HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n")?
        .header("Sec-WebSocket-Origin", req.origin.unwrap_or("null").as_bytes())?
        .s("Sec-WebSocket-Location: ws://")?
        .s(req.host)?
        .s(req.path)?
        .s("\r\n")?;
    if let Some(p) = protocol {
        o.header("Sec-WebSocket-Protocol", check_value(p)?.as_bytes())?;
    }
    o.s("\r\n")?.put(&req.response)?;
    Ok(o.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Lcg;

    #[test]
    fn draft_vector() {
        let r =
            challenge_response("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", b"^n:ds[4U").unwrap();
        assert_eq!(&r, b"8jKS'y:G*Co,Wxa-");
    }

    #[test]
    fn key_errors() {
        assert_eq!(key_number("12345"), Err(Error::HixieKeyNoSpaces));
        assert_eq!(key_number("1 2 3"), Err(Error::HixieKeyNotDivisible)); // 123 / 2
        assert_eq!(key_number("  "), Err(Error::BadHixieKey));
        assert_eq!(key_number("9999999999 "), Err(Error::BadHixieKey));
        assert_eq!(key_number("1 2 4"), Ok(62));
    }

    const REQ: ClientRequest<'static> = ClientRequest {
        host: "example.com",
        path: "/demo",
        origin: Some("http://example.com"),
        protocols: &["sample"],
    };

    #[test]
    fn generated_keys_are_valid() {
        let mut rng = Lcg(1);
        for _ in 0..500 {
            let c = ClientKeys::new(&mut rng);
            for k in [c.key1(), c.key2()] {
                let s = core::str::from_utf8(k).unwrap();
                assert!(!s.starts_with(' ') && !s.ends_with(' '), "{s:?}");
                assert!(s.bytes().any(|b| !b.is_ascii_digit() && b != b' '));
                key_number(s).unwrap();
            }
            let ans = challenge_response(
                core::str::from_utf8(c.key1()).unwrap(),
                core::str::from_utf8(c.key2()).unwrap(),
                c.key3(),
            )
            .unwrap();
            assert_eq!(&ans, c.expected_response());
        }
    }

    fn done<T>(p: Parse<T>) -> (T, usize) {
        match p {
            Parse::Done { value, consumed } => (value, consumed),
            Parse::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn round_trip_incremental() {
        let client = ClientKeys::new(&mut Lcg(9));
        let mut buf = [0u8; 512];
        let n = client.write_request(&REQ, &mut buf).unwrap();
        for i in 0..n {
            assert_eq!(parse_request(&buf[..i], 512), Ok(Parse::Incomplete), "{i}");
        }
        let (req, used) = done(parse_request(&buf[..n + 5], 512).unwrap());
        assert_eq!(used, n);
        assert_eq!(req.path, "/demo");
        assert_eq!(req.protocol, Some("sample"));
        assert_eq!(&req.response, client.expected_response());
        let mut resp = [0u8; 512];
        let m = write_accept(&req, req.protocol, &mut resp).unwrap();
        for i in 0..m {
            assert_eq!(
                client.parse_response(&REQ, &resp[..i], 512),
                Ok(Parse::Incomplete)
            );
        }
        let (r, used) = done(client.parse_response(&REQ, &resp[..m + 3], 512).unwrap());
        assert_eq!(used, m);
        assert_eq!(r.protocol, Some("sample"));
    }

    /// The client of the draft's example exchange (its keys)...
    fn draft_client() -> ClientKeys {
        ClientKeys::from_keys("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", *b"^n:ds[4U").unwrap()
    }

    /// ...and the server's answer to it.
    const DRAFT_RESPONSE: &str = "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Origin: http://example.com\r\n\
Sec-WebSocket-Location: ws://example.com/demo\r\nSec-WebSocket-Protocol: sample\r\n\r\n8jKS'y:G*Co,Wxa-";

    #[test]
    fn draft_example_exchange() {
        let client = draft_client();
        let mut buf = [0u8; 512];
        let n = client.write_request(&REQ, &mut buf).unwrap();
        let (req, _) = done(parse_request(&buf[..n], 512).unwrap());
        assert_eq!(&req.response, b"8jKS'y:G*Co,Wxa-");
        let resp = DRAFT_RESPONSE.as_bytes();
        assert_eq!(
            done(client.parse_response(&REQ, resp, 512).unwrap()).1,
            resp.len()
        );
    }

    fn response_err(from: &str, to: &str) -> Error {
        let client = draft_client();
        let s = DRAFT_RESPONSE.replacen(from, to, 1);
        client.parse_response(&REQ, s.as_bytes(), 512).unwrap_err()
    }

    #[test]
    fn response_errors() {
        assert_eq!(response_err("101", "200"), Error::BadStatus);
        assert_eq!(
            response_err("Upgrade: WebSocket", "Upgrade: x"),
            Error::BadUpgrade
        );
        assert_eq!(
            response_err("Connection: Upgrade", "Connection: close"),
            Error::BadConnection
        );
        assert_eq!(
            response_err("Origin: http://example.com", "Origin: http://evil"),
            Error::BadOrigin
        );
        assert_eq!(
            response_err("ws://example.com/demo", "ws://example.com/other"),
            Error::BadLocation
        );
        assert_eq!(
            response_err("ws://example.com/demo", "wss://example.com/demo"),
            Error::BadLocation
        );
        assert_eq!(
            response_err("Protocol: sample", "Protocol: other"),
            Error::BadProtocol
        );
        assert_eq!(
            response_err("8jKS'y:G*Co,Wxa-", "8jKS'y:G*Co,Wxa_"),
            Error::BadChallenge
        );
        assert_eq!(
            response_err("HTTP/1.1 101", "HTTP/1.0 101"),
            Error::BadHttpVersion
        );
    }

    #[test]
    fn connection_and_upgrade_are_matched_as_tokens() {
        let client = draft_client();
        let resp = DRAFT_RESPONSE
            .replacen("Upgrade: WebSocket", "Upgrade: websocket", 1)
            .replacen("Connection: Upgrade", "Connection: keep-alive, Upgrade", 1);
        assert!(matches!(
            client.parse_response(&REQ, resp.as_bytes(), 512),
            Ok(Parse::Done { consumed, .. }) if consumed == resp.len()
        ));
    }

    #[test]
    fn unrequested_protocol_is_tolerated_requested_one_is_required() {
        let client = draft_client();
        let resp = DRAFT_RESPONSE.replacen("Protocol: sample", "Protocol: default", 1);
        // eventlet answers `default` though nothing was asked for: accepted.
        let no_protocol = ClientRequest {
            protocols: &[],
            ..REQ
        };
        match client.parse_response(&no_protocol, resp.as_bytes(), 512) {
            Ok(Parse::Done { value, .. }) => assert_eq!(value.protocol, Some("default")),
            other => panic!("{other:?}"),
        }
        // Asked for `sample`, got something else or nothing: refused.
        assert_eq!(
            client
                .parse_response(&REQ, resp.as_bytes(), 512)
                .unwrap_err(),
            Error::BadProtocol
        );
        let none = resp.replace("Sec-WebSocket-Protocol: default\r\n", "");
        assert_eq!(
            client
                .parse_response(&REQ, none.as_bytes(), 512)
                .unwrap_err(),
            Error::BadProtocol
        );
    }

    fn request_err(from: &str, to: &str) -> Error {
        let req = "GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\nUpgrade: WebSocket\r\n\
Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nOrigin: http://example.com\r\n\r\n^n:ds[4U";
        let s = req.replacen(from, to, 1);
        parse_request(s.as_bytes(), 512).unwrap_err()
    }

    #[test]
    fn request_errors() {
        assert_eq!(request_err("GET", "POST"), Error::BadMethod);
        assert_eq!(request_err("Host: example.com\r\n", ""), Error::MissingHost);
        assert_eq!(
            request_err("Upgrade: WebSocket", "Upgrade: websocketx"),
            Error::BadUpgrade
        );
        assert_eq!(
            request_err("Connection: Upgrade", "Connection: x"),
            Error::BadConnection
        );
        assert_eq!(
            request_err("Key1: 4 @1  46546xW%0l 1 5", "Key1: 4@146546xW%0l15"),
            Error::HixieKeyNoSpaces
        );
        assert_eq!(
            request_err("Key2: 12998 5 Y3 1  .P00", "Key2: 12998 5 Y3 1  .P01"),
            Error::HixieKeyNotDivisible
        );
        assert_eq!(request_err("Sec-WebSocket-Key1", "X"), Error::BadHixieKey);
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n";
        assert_eq!(parse_request(req, 10), Err(Error::HeaderTooLarge));
    }
}
