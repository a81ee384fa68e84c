//! Minimal standard-alphabet base64 (RFC 4648, with `=` padding), enough for
//! `Sec-WebSocket-Key` / `Sec-WebSocket-Accept`. No allocation.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Length of the base64 encoding of `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Encodes `input` into `out`, returns the number of bytes written, or `None`
/// if `out` is shorter than [`encoded_len`]`(input.len())`.
pub fn encode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let need = encoded_len(input.len());
    let out = out.get_mut(..need)?;
    for (chunk, dst) in input.chunks(3).zip(out.chunks_mut(4)) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sym = [
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            if chunk.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63]
            } else {
                b'='
            },
            if chunk.len() > 2 {
                ALPHABET[n as usize & 63]
            } else {
                b'='
            },
        ];
        dst.copy_from_slice(&sym);
    }
    Some(need)
}

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes padded base64 `input` into `out`; returns the decoded length, or
/// `None` on a bad character, bad padding, bad length or a too-small `out`.
pub fn decode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let mut w = 0;
    let groups = input.len() / 4;
    for (i, g) in input.chunks(4).enumerate() {
        let last = i + 1 == groups;
        let pad = g.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &g[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let len = 3 - pad;
        // Reject non-canonical encodings (bits set in the padding).
        if bytes
            .get(len..)
            .is_some_and(|rest| rest.iter().any(|&b| b != 0))
        {
            return None;
        }
        out.get_mut(w..w + len)?.copy_from_slice(bytes.get(..len)?);
        w += len;
    }
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_vectors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"the sample nonce", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        for (raw, enc) in cases {
            let mut buf = [0u8; 32];
            let n = encode(raw, &mut buf).unwrap();
            assert_eq!(&buf[..n], enc.as_bytes());
            let mut dec = [0u8; 32];
            let m = decode(enc.as_bytes(), &mut dec).unwrap();
            assert_eq!(&dec[..m], *raw);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let mut out = [0u8; 32];
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zh==", "Zm9*", "Zm=v"] {
            assert_eq!(decode(bad.as_bytes(), &mut out), None, "{bad}");
        }
        assert_eq!(decode(b"Zm9vYg==", &mut out[..3]), None);
        assert_eq!(encode(b"foo", &mut out[..3]), None);
    }
}
