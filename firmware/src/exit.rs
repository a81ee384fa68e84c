//! Ending the program: every exit goes through semihosting so a script can test the status.

use cortex_m_semihosting::{hprintln, syscall1};

/// Exit statuses a script can tell apart. 1 is left to `panic-semihosting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    /// Bad command line (see `firmware::config::USAGE_EXIT_CODE`).
    Usage = firmware::config::USAGE_EXIT_CODE,
    /// A HardFault (or an unexpected exception) stopped the program.
    Fault = 3,
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
    hprintln!("exit: semihosting did not stop the program");
    loop {
        cortex_m::asm::wfi();
    }
}
