//! Millisecond clock from SysTick, for smoltcp's timers and every timeout.
//!
//! The core runs at 12.5 MHz out of reset (RCC 0x078E3AC0: 200 MHz PLL / 16, on
//! QEMU and, with the PLL bypassed, the 12.5 MHz that the firmware leaves in place),
//! so a reload of 12 499 makes SysTick fire once per millisecond. Its interrupt
//! also wakes the main loop from WFI, which bounds every sleep to 1 ms.
//!
//! On it: [`Deadline`]s for every bounded wait, and [`sleep`], the WFI that every
//! wait idles in.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// Core clock after reset, in Hz.
pub const CORE_HZ: u32 = 12_500_000;
/// SysTick reload value for a 1 ms period.
pub const RELOAD: u32 = CORE_HZ / 1000 - 1;

static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts the 1 ms tick.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Milliseconds since [`start`] (wraps after 49 days).
pub fn now_ms() -> u32 {
    MILLIS.load(Relaxed)
}

/// SysTick's current down-counter value: a jitter source for the PRNG seed.
pub fn sub_tick() -> u32 {
    SYST::get_current()
}

/// A wait ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout;

/// A deadline on the millisecond clock.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(u32);

impl Deadline {
    pub fn after_ms(ms: u32) -> Self {
        Deadline(now_ms().wrapping_add(ms))
    }

    pub fn passed(self) -> bool {
        now_ms().wrapping_sub(self.0) as i32 >= 0
    }

    /// The sooner of the two (the clock wraps: compared by their difference).
    pub fn earlier(self, other: Deadline) -> Deadline {
        if other.0.wrapping_sub(self.0) as i32 >= 0 {
            self
        } else {
            other
        }
    }
}

/// Sleeps in WFI unless `has_work` says something is pending. Interrupts are
/// masked around the check so that one arriving in between still ends the WFI
/// (a pending interrupt wakes the core even while PRIMASK holds it off; its
/// handler runs as soon as interrupts are unmasked). The SysTick interrupt ends
/// every sleep within 1 ms.
pub fn sleep(has_work: fn() -> bool) {
    cortex_m::interrupt::free(|_| {
        if !has_work() {
            cortex_m::asm::wfi();
        }
    });
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Relaxed);
}
