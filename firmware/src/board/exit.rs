//! Ending the program: every exit goes through semihosting so a script can test the status.

use cortex_m_semihosting::syscall1;

/// Exit statuses a script can tell apart:
///
/// | code | meaning |
/// |------|---------|
/// | 0 | success: every echo matched and the close handshake completed |
/// | 1 | panic (`panic-semihosting`) |
/// | 2 | bad command line |
/// | 3 | HardFault or unexpected exception |
/// | 4 | network: no address, connection refused/reset after all retries, or a timeout |
/// | 5 | protocol: failed opening handshake (wrong accept / MD5 answer, status) or a protocol error |
/// | 6 | echo mismatch: a reply was not the reverse of the message (or came out of order) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    /// Bad command line (see `firmware::config::USAGE_EXIT_CODE`).
    Usage = firmware::config::USAGE_EXIT_CODE,
    /// A HardFault (or an unexpected exception) stopped the program.
    Fault = 3,
    /// The network failed us: no address, nobody listening, reset, or a timeout.
    Network = 4,
    /// The server broke the WebSocket protocol (handshake or framing).
    Protocol = 5,
    /// A reply was not the reverse of what was sent.
    Mismatch = 6,
}

/// `SYS_EXIT_EXTENDED`: like `SYS_EXIT` but carries an exit status, which QEMU
/// passes on as its own. (`SYS_EXIT` on 32-bit ARM can only say success or failure.)
const SYS_EXIT_EXTENDED: usize = 0x20;
/// `ADP_Stopped_ApplicationExit`: the reason for a normal program exit.
const ADP_STOPPED_APPLICATION_EXIT: usize = 0x20026;

/// Exits QEMU with `code`.
pub fn exit(code: u8) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, code as usize];
    // SAFETY: SYS_EXIT_EXTENDED reads the two-word parameter block at the address
    // passed, which lives on this stack frame for the whole call.
    unsafe {
        syscall1(SYS_EXIT_EXTENDED, block.as_ptr() as usize);
    }
    // Only reached without a debugger or emulator that implements semihosting.
    super::log::print("exit: semihosting did not stop the program\n");
    loop {
        cortex_m::asm::wfi();
    }
}
