//! The firmware's portable half: everything that does not touch the board, kept
//! in a library so that it is unit-tested on the host (`cargo test -p firmware
//! --lib`). The binary (`main.rs` and the `board`, `ethernet`, `net` and `app`
//! folders beside this one) uses it; it uses nothing of the binary.
//!
//! - [`backoff`]: the pacing of connection attempts (backoff, jitter, limit).
//! - [`cmdline`]: splitting the semihosting command line into arguments.
//! - [`config`]: the options and the `ws://` URL parsed from them.
//! - [`messages`]: the generated message set of the reverse-echo mode.
//! - [`text`]: [`text::Line`], log lines without `core::fmt`.
//! - [`prng`]: SplitMix64, the PRNG that `board::entropy` seeds.
#![cfg_attr(not(test), no_std)]

pub mod backoff;
pub mod cmdline;
pub mod config;
pub mod messages;
pub mod prng;
pub mod text;
