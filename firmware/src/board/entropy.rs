//! Seeding the PRNG ([`firmware::prng::SplitMix64`]) from the entropy the board has.
//!
//! Sources, none of them secret: the semihosting host's clocks (SYS_TIME: seconds
//! since 1970; SYS_CLOCK: centiseconds since start; SYS_ELAPSED: a 64-bit tick
//! count), the SysTick down-counter sampled after each semihosting call (each call
//! is a trip to the host, whose duration jitters by whole microseconds), the MAC
//! address, and later the arrival time of network events ([`Rng::stir_time`]). The
//! board's ADC is not used: QEMU's model returns a fixed pseudo-random sequence.
//! Good enough for RFC 6455 masks, keys and TCP sequence numbers; not for secrets.

use cortex_m_semihosting::{nr, syscall1};

use firmware::prng::SplitMix64;

use super::clock;

/// SYS_ELAPSED: ticks since execution started, written as two words.
const SYS_ELAPSED: usize = 0x30;

pub struct Rng(SplitMix64);

impl Rng {
    /// Collects the boot-time entropy.
    pub fn seed(mac: [u8; 6]) -> Self {
        let mut g = SplitMix64::new(0);
        let mut mac8 = [0u8; 8];
        mac8[..6].copy_from_slice(&mac);
        g.stir(u64::from_le_bytes(mac8));
        for _ in 0..4 {
            // SAFETY: SYS_TIME and SYS_CLOCK take no parameter block and only
            // return a value.
            let (time, centis) = unsafe { (syscall1(nr::TIME, 0), syscall1(nr::CLOCK, 0)) };
            g.stir(((time as u64) << 32) | centis as u64);
            let mut ticks = [0u32; 2];
            // SAFETY: SYS_ELAPSED writes two words to the block passed, a local
            // array that outlives the call.
            let status = unsafe { syscall1(SYS_ELAPSED, ticks.as_mut_ptr() as usize) };
            g.stir((((ticks[1] as u64) << 32) | ticks[0] as u64) ^ status as u64);
            g.stir(clock::sub_tick() as u64);
        }
        Rng(g)
    }

    /// Stirs in the current time, down to the SysTick count: call on events whose
    /// timing comes from outside (network replies).
    pub fn stir_time(&mut self) {
        self.0
            .stir(((clock::now_ms() as u64) << 32) | clock::sub_tick() as u64);
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

impl websocket::Rng for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf)
    }
}
