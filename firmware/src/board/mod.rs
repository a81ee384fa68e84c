//! The board layer: what the LM3S6965 under QEMU offers every layer above it,
//! and nothing network-related.
//!
//! - [`clock`]: the 1 ms SysTick clock, [`clock::Deadline`]s and [`clock::sleep`]
//!   (WFI until an interrupt).
//! - [`host`], [`log`], [`exit`]: the semihosting calls: the command line, log
//!   lines on the host's stdout, and the exit status.
//! - [`fault`]: HardFault handler (a message and exit 3, never a hang).
//! - [`stack`]: stack painting and the high-water mark.
//! - [`mem`]: the small `mem*` routines the compiler calls.
//! - [`entropy`]: seeds the PRNG ([`firmware::prng`]) from what the board has.
//!
//! Imports nothing from the layers above (`ethernet`, `net`, `app`): see
//! `ci/check-layers.sh`.

pub mod clock;
pub mod entropy;
pub mod exit;
pub mod fault;
pub mod host;
pub mod log;
pub mod mem;
pub mod stack;
