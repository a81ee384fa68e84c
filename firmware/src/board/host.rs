//! The semihosting services the firmware uses besides printing: its command line.

use cortex_m_semihosting::{nr, syscall1};

/// Longest command line accepted (QEMU refuses to copy a longer one).
pub const CMDLINE_CAPACITY: usize = 1024;

/// Reads the command line (SYS_GET_CMDLINE) into `buf` and returns its length,
/// or `None` when the host has none or it does not fit.
pub fn read_cmdline(buf: &mut [u8; CMDLINE_CAPACITY]) -> Option<usize> {
    // The parameter block: buffer address in, buffer length in / text length out.
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: the host writes at most `block[1]` bytes to `buf`, which is exclusively
    // borrowed for the call, and updates `block[1]`, which lives on this frame.
    // (A raw pointer, not `&block`: the host writes through it.)
    let status = unsafe { syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    (status == 0 && block[1] <= buf.len()).then_some(block[1])
}
