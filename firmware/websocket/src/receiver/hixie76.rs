//! The hixie-76 frame decoder (draft-hixie-thewebsocketprotocol-76, section
//! 4.2): `0x00` text `0xFF` frames, length-prefixed frames skipped, and the
//! `0xFF 0x00` close.

use super::{Common, Event};
use crate::frame::MessageKind;
use crate::Error;

/// What the next input bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A frame type byte.
    Idle,
    /// Text frame bytes up to the `0xFF` sentinel.
    Text,
    /// Bytes of a sentinel frame of an unknown type, discarded up to `0xFF`.
    SkipSentinel,
    /// Length bytes of a length-prefixed frame of type `ty`.
    Length { ty: u8, len: u64 },
    /// `remaining` bytes of a length-prefixed frame, discarded.
    Skip { remaining: u64 },
}

/// Hixie-76 decoder state.
#[derive(Debug, Clone)]
pub(super) struct Decoder {
    state: State,
}

impl Decoder {
    pub(super) const fn new() -> Self {
        Decoder { state: State::Idle }
    }

    /// See [`Receiver::read`](super::Receiver::read); `c` is the state both
    /// protocols share.
    pub(super) fn read<'a>(
        &'a mut self,
        c: &'a mut Common,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let mut used = 0;
        loop {
            match self.state {
                State::Idle => {
                    let Some(&ty) = input.get(used) else {
                        return Ok((used, None));
                    };
                    used += 1;
                    if ty == 0x00 {
                        self.state = State::Text;
                        c.end();
                        c.start(MessageKind::Text);
                        return Ok((
                            used,
                            Some(Event::MessageStart {
                                kind: MessageKind::Text,
                                len: None,
                            }),
                        ));
                    } else if ty & 0x80 == 0 {
                        self.state = State::SkipSentinel;
                    } else {
                        self.state = State::Length { ty, len: 0 };
                    }
                }
                State::SkipSentinel => {
                    let rest = input.get(used..).unwrap_or(&[]);
                    match rest.iter().position(|&b| b == 0xFF) {
                        Some(p) => {
                            used += p + 1;
                            self.state = State::Idle;
                        }
                        None => return Ok((input.len(), None)),
                    }
                }
                State::Length { ty, len } => {
                    let Some(&b) = input.get(used) else {
                        return Ok((used, None));
                    };
                    used += 1;
                    let len = len
                        .checked_mul(128)
                        .and_then(|l| l.checked_add(u64::from(b & 0x7F)))
                        .ok_or(Error::BadLength)?;
                    if b & 0x80 != 0 {
                        self.state = State::Length { ty, len };
                    } else if ty == 0xFF && len == 0 {
                        self.state = State::Idle;
                        c.closed = true;
                        return Ok((
                            used,
                            Some(Event::Close {
                                code: None,
                                reason: "",
                            }),
                        ));
                    } else {
                        self.state = State::Skip { remaining: len };
                    }
                }
                State::Skip { remaining } => {
                    if remaining == 0 {
                        self.state = State::Idle;
                        continue;
                    }
                    let avail = input.len().saturating_sub(used);
                    if avail == 0 {
                        return Ok((used, None));
                    }
                    let take = (avail as u64).min(remaining);
                    used += take as usize;
                    self.state = State::Skip {
                        remaining: remaining - take,
                    };
                }
                State::Text => {
                    let rest = input.get_mut(used..).unwrap_or(&mut []);
                    if rest.is_empty() {
                        return Ok((used, None));
                    }
                    let end = rest.iter().position(|&b| b == 0xFF);
                    if end == Some(0) {
                        if !c.utf8.is_complete() {
                            return Err(Error::InvalidUtf8);
                        }
                        self.state = State::Idle;
                        c.message = None;
                        return Ok((used + 1, Some(Event::MessageEnd)));
                    }
                    // Hand out at most up to the limit, so the error for a
                    // given byte stream does not depend on its chunking.
                    let room = c.max_message.saturating_sub(c.message_len);
                    if room == 0 {
                        return Err(Error::MessageTooBig);
                    }
                    let take = (end.unwrap_or(rest.len()) as u64).min(room) as usize;
                    let chunk = rest.get(..take).unwrap_or(&[]);
                    c.message_len += take as u64;
                    if c.utf8.feed(chunk).is_err() {
                        return Err(Error::InvalidUtf8);
                    }
                    return Ok((used + take, Some(Event::Data(chunk))));
                }
            }
        }
    }
}
