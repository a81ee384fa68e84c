//! The project's one PRNG, SplitMix64 (Steele, Lea and Flood 2014): behind the
//! firmware's WebSocket masking keys, hixie-76 keys and smoltcp's seed (fed with
//! whatever entropy the board offers, see the binary's `board::entropy` module),
//! and behind host-bridge's reproducible impairments (the same sequence for the
//! same seed everywhere: [`SplitMix64::chance`], [`SplitMix64::below`]). Fast,
//! tiny and well distributed, but NOT cryptographic: its output reveals its state.

/// A SplitMix64 generator that entropy can be stirred into at any time.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// Mixes `value` into the state (order matters; every bit of `value` counts).
    pub fn stir(&mut self, value: u64) {
        self.state = finalize(self.state ^ finalize(value.wrapping_add(GAMMA)));
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        finalize(self.state)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (draws nothing when `p` is 0, so adding an
    /// impairment does not change which frames another one hits... as long as
    /// the zero ones stay zero).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// Uniform in [0, n) (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // SplitMix64 seeded with 0 (values from the reference implementation).
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn stirring_changes_the_stream() {
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        b.stir(1);
        assert_ne!(a.next_u64(), b.next_u64());
        let mut buf = [0u8; 13];
        a.fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }
}
