//! The cable: whether the emulated Ethernet link is up. Two things take it down:
//! outages scheduled with the impairment (`down=2s@1s`: down for 2 s, starting
//! 1 s after the relay started) and a manual switch (`host-bridge bridge` and
//! `run` flip it on SIGUSR1). While the link is down the relay drops every frame,
//! as a pulled cable would, and counts them (`link_down`); nothing is queued, so
//! what the guest sees after it comes back is only what its peers retransmit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::time::Instant;

/// Most scheduled outages one direction takes (`down=` terms in one spec).
pub const MAX_OUTAGES: usize = 4;

/// The link is down from `start` (after the relay started) for `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub start: Duration,
    pub len: Duration,
}

impl Outage {
    /// Whether the link is down at `t` after the relay started.
    pub fn covers(&self, t: Duration) -> bool {
        t >= self.start && t - self.start < self.len
    }
}

/// As the spec writes it (`2s`, `1500ms`, `250us`), so that it parses back.
struct SpecDuration(Duration);

impl std::fmt::Display for SpecDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}us", d.as_micros())
        }
    }
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "down={}@{}",
            SpecDuration(self.len),
            SpecDuration(self.start)
        )
    }
}

/// The scheduled outages of one direction: a fixed array, so that
/// [`crate::impair::Impairment`] stays `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outages([Option<Outage>; MAX_OUTAGES]);

impl Outages {
    /// Adds one; more than [`MAX_OUTAGES`] is an error.
    pub fn push(&mut self, outage: Outage) -> Result<()> {
        match self.0.iter_mut().find(|o| o.is_none()) {
            Some(free) => {
                *free = Some(outage);
                Ok(())
            }
            None => bail!("at most {MAX_OUTAGES} down= terms"),
        }
    }

    /// The outages, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Outage> {
        self.0.iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Whether one of them covers `t` after the relay started.
    pub fn covers(&self, t: Duration) -> bool {
        self.iter().any(|o| o.covers(t))
    }
}

/// One relay's link: when it started (the origin of the schedule) and the
/// manual switch, shared by both directions.
#[derive(Debug)]
pub struct Link {
    start: Instant,
    cut: AtomicBool,
}

impl Link {
    /// A link that is up, its schedule counted from `start`.
    pub fn new(start: Instant) -> Link {
        Link {
            start,
            cut: AtomicBool::new(false),
        }
    }

    /// Whether a frame of a direction with `outages` passes at `now`.
    pub fn is_up(&self, now: Instant, outages: &Outages) -> bool {
        !self.cut.load(Ordering::Relaxed)
            && !outages.covers(now.saturating_duration_since(self.start))
    }

    /// Whether the manual switch is on (scheduled outages aside).
    pub fn switched_on(&self) -> bool {
        !self.cut.load(Ordering::Relaxed)
    }

    /// Sets the manual switch.
    pub fn set(&self, up: bool) {
        self.cut.store(!up, Ordering::Relaxed);
    }

    /// Flips the manual switch; returns whether it is now on.
    pub fn toggle(&self) -> bool {
        // fetch_xor returns the old `cut`: it was cut, so now it is up.
        self.cut.fetch_xor(true, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_outage_covers_its_window_only() {
        let o = Outage {
            start: ms(1000),
            len: ms(2000),
        };
        assert!(!o.covers(ms(999)));
        assert!(o.covers(ms(1000)));
        assert!(o.covers(ms(2999)));
        assert!(!o.covers(ms(3000)));
    }

    #[test]
    fn at_most_max_outages() {
        let mut all = Outages::default();
        assert!(all.is_empty());
        for i in 0..MAX_OUTAGES as u64 {
            all.push(Outage {
                start: ms(i * 100),
                len: ms(10),
            })
            .expect("room");
        }
        assert_eq!(all.iter().count(), MAX_OUTAGES);
        assert!(all.covers(ms(305)) && !all.covers(ms(315)));
        assert!(all
            .push(Outage {
                start: ms(0),
                len: ms(1)
            })
            .is_err());
    }

    #[test]
    fn the_switch_and_the_schedule_both_cut() {
        let t0 = Instant::now();
        let link = Link::new(t0);
        let mut sched = Outages::default();
        sched
            .push(Outage {
                start: ms(100),
                len: ms(100),
            })
            .expect("room");
        assert!(link.is_up(t0, &sched));
        assert!(!link.is_up(t0 + ms(150), &sched));
        assert!(link.is_up(t0 + ms(200), &sched));
        assert!(!link.toggle(), "toggled off");
        assert!(!link.is_up(t0, &Outages::default()));
        assert!(link.toggle(), "toggled on again");
        assert!(link.is_up(t0, &Outages::default()));
        link.set(false);
        assert!(!link.switched_on());
    }
}
