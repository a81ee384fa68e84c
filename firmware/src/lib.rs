//! Hardware-independent parts of the firmware, kept in a library so they can be
//! unit-tested on the host (`cargo test -p firmware --lib`). Everything that
//! touches the board lives in the binary (`main.rs` and its modules).
#![cfg_attr(not(test), no_std)]

pub mod cmdline;
pub mod config;
pub mod messages;
pub mod prng;
pub mod text;
pub mod tolerate;
