//! A seeded linear congruential generator for the tests (the library's unit tests
//! and, through `#[path]`, the integration tests): the same masks and keys on
//! every run. Not compiled into the library.

use super::Rng;

/// A seeded linear congruential generator: the same masks and keys on every run.
pub struct Lcg(pub u64);

impl Rng for Lcg {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 33) as u8;
        }
    }
}
