//! The pacing of connection attempts: exponential backoff with jitter and a
//! limit on failed attempts in a row. Pure arithmetic: the caller supplies
//! the random numbers and does the waiting (the binary's `app::session`).

/// First wait, in ms.
pub const FIRST_MS: u32 = 100;
/// Longest wait, in ms.
pub const MAX_MS: u32 = 2000;

/// Waits of 100 ms doubling up to 2 s, each drawn from the upper half of that
/// range (jitter, so that boards restarted together do not retry in step), at
/// most `limit` failed attempts in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    limit: u32,
    failed: u32,
    backoff: u32,
}

impl Backoff {
    /// Allows `limit` failed attempts in a row (`u32::MAX`: no limit).
    pub const fn new(limit: u32) -> Self {
        Backoff {
            limit,
            failed: 0,
            backoff: FIRST_MS,
        }
    }

    /// The limit given to [`Backoff::new`].
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Failed attempts so far in this row.
    pub fn failed(&self) -> u32 {
        self.failed
    }

    /// An attempt worked: returns how many failed before it, and starts over.
    pub fn succeeded(&mut self) -> u32 {
        self.backoff = FIRST_MS;
        core::mem::take(&mut self.failed)
    }

    /// Counts a failed attempt and returns the wait before the next one, from
    /// `random` (any value, uniformly drawn); None when no attempt is left.
    pub fn failure(&mut self, random: u32) -> Option<u32> {
        if self.failed >= self.limit {
            return None;
        }
        self.failed += 1;
        let half = self.backoff / 2;
        self.backoff = (self.backoff * 2).min(MAX_MS);
        Some(half + random % (half + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_two_seconds_within_the_upper_half() {
        let ranges = [
            (50, 100),
            (100, 200),
            (200, 400),
            (400, 800),
            (800, 1600),
            (1000, 2000),
            (1000, 2000),
        ];
        for random in [0, 1, 77, 12345, u32::MAX] {
            let mut b = Backoff::new(u32::MAX);
            for (k, &(lo, hi)) in ranges.iter().enumerate() {
                let wait = b.failure(random).unwrap();
                assert!((lo..=hi).contains(&wait), "{k}: {wait}");
                assert_eq!(b.failed(), k as u32 + 1);
            }
        }
        // Both ends are reached.
        let mut b = Backoff::new(2);
        assert_eq!(b.failure(0), Some(50));
        assert_eq!(b.failure(100), Some(200));
    }

    #[test]
    fn limit_and_success() {
        let mut b = Backoff::new(3);
        assert!(b.failure(0).is_some() && b.failure(0).is_some() && b.failure(0).is_some());
        assert_eq!(b.failure(0), None);
        assert_eq!(b.failed(), 3);
        // Success starts over: the count and the first wait.
        assert_eq!(b.succeeded(), 3);
        assert_eq!((b.failed(), b.failure(0)), (0, Some(50)));
        // No attempt at all with a limit of 0.
        assert_eq!(Backoff::new(0).failure(0), None);
    }
}
