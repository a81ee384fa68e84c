//! What happens when the CPU faults: a clear message and a non-zero exit, never a
//! hang. (A panic: `panic-semihosting` prints it and exits with status 1.)

use cortex_m_rt::{exception, ExceptionFrame};
use firmware::text::Line;

use super::log::log;

use super::exit::{exit, ExitCode};

/// System Control Block fault status registers (ARMv7-M ARM, B3.2.15-B3.2.18).
const CFSR: *const u32 = 0xE000_ED28 as *const u32;
const HFSR: *const u32 = 0xE000_ED2C as *const u32;
const MMFAR: *const u32 = 0xE000_ED34 as *const u32;
const BFAR: *const u32 = 0xE000_ED38 as *const u32;

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // SAFETY: the SCB fault registers are always present and reading them has no side effects.
    let (cfsr, hfsr, mmfar, bfar) = unsafe {
        (
            CFSR.read_volatile(),
            HFSR.read_volatile(),
            MMFAR.read_volatile(),
            BFAR.read_volatile(),
        )
    };
    let mut line = Line::new();
    line.s("HARD FAULT: ");
    for (name, value) in [
        ("pc", frame.pc()),
        (" lr", frame.lr()),
        (" CFSR", cfsr),
        (" HFSR", hfsr),
        (" MMFAR", mmfar),
        (" BFAR", bfar),
    ] {
        line.s(name).s("=0x").hex(value, 8);
    }
    log(&mut line);
    exit(ExitCode::Fault as u8)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    let mut line = Line::new();
    line.s("FAULT: unexpected exception or interrupt ");
    if irqn < 0 {
        line.s("-");
    }
    log(line.u(irqn.unsigned_abs() as u32));
    exit(ExitCode::Fault as u8)
}

/// Executes a permanently undefined instruction: a UsageFault, escalated to
/// HardFault because configurable faults are left disabled. Used by `--crash hardfault`.
pub fn trigger_hardfault() -> ! {
    cortex_m::asm::udf()
}
