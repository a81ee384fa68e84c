//! Incremental UTF-8 validation across chunk boundaries.

/// Validates a UTF-8 stream fed in arbitrary chunks. Keeps at most 3 bytes
/// of an incomplete code point between calls.
///
/// States: *clean* (`pending == 0`, every byte so far forms complete code
/// points) or *mid code point* (`pending` bytes of a valid prefix saved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    buf: [u8; 4],
    pending: u8,
}

fn width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

impl Utf8Validator {
    /// A validator in the clean state.
    pub const fn new() -> Self {
        Utf8Validator {
            buf: [0; 4],
            pending: 0,
        }
    }

    /// Back to the clean state.
    pub fn reset(&mut self) {
        self.pending = 0;
    }

    /// Whether the bytes so far end on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.pending == 0
    }

    /// Feeds the next chunk. `Err(())` as soon as the stream cannot be UTF-8
    /// whatever follows.
    #[allow(clippy::result_unit_err)]
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ()> {
        if self.pending > 0 {
            let have = self.pending as usize;
            let need = width(self.buf[0]).saturating_sub(have);
            let take = need.min(data.len());
            let (head, rest) = data.split_at(take);
            let end = have + take;
            let dst = self.buf.get_mut(have..end).ok_or(())?;
            dst.copy_from_slice(head);
            let cur = self.buf.get(..end).ok_or(())?;
            match core::str::from_utf8(cur) {
                Ok(_) => self.pending = 0,
                Err(e) if e.error_len().is_none() => {
                    self.pending = end as u8;
                    return Ok(());
                }
                Err(_) => return Err(()),
            }
            data = rest;
        }
        match core::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = data.get(e.valid_up_to()..).ok_or(())?;
                let dst = self.buf.get_mut(..tail.len()).ok_or(())?;
                dst.copy_from_slice(tail);
                self.pending = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(bytes: &[u8], valid: bool) {
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&bytes[..a]).is_ok()
                    && v.feed(&bytes[a..b]).is_ok()
                    && v.feed(&bytes[b..]).is_ok()
                    && v.is_complete();
                assert_eq!(ok, valid, "{bytes:?} split {a} {b}");
            }
        }
    }

    #[test]
    fn splits() {
        check_all_splits("héllo €𝄞 ok".as_bytes(), true);
        check_all_splits(
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            false,
        );
        check_all_splits(b"abc\xf4\x90\x80\x80", false);
        check_all_splits(b"abc\xe2\x82", false);
        check_all_splits(b"\xc0\xaf", false);
        check_all_splits(b"\xff", false);
    }

    #[test]
    fn fails_fast() {
        let mut v = Utf8Validator::new();
        // 0xED 0xA0 is a surrogate prefix: invalid before the 3rd byte.
        assert!(v.feed(b"\xed").is_ok());
        assert!(v.feed(b"\xa0").is_err());
    }
}
