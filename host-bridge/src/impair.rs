//! Seeded link impairment for one direction of the relay: loss, delay with
//! jitter, duplication, reordering, corruption and a bandwidth cap; the spec also
//! carries the link's scheduled outages (`down=`, applied by the relay through
//! [`crate::link`]). Sans-IO:
//! [`Impairer::push`] takes a frame and the time, [`Impairer::pop_due`] gives back
//! the frames whose time has come; the caller owns the clock and the sockets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use firmware::prng::SplitMix64;
use tokio::time::Instant;

use crate::link::{Outage, Outages};

/// What one direction does to frames. The default passes them untouched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Fixed delay added to every frame.
    pub delay: Duration,
    /// Each frame's delay varies uniformly by up to this much either way.
    pub jitter: Duration,
    /// Probability that a frame is sent twice.
    pub dup: f64,
    /// Probability that a frame is held back and sent after the next one (or
    /// after [`REORDER_HOLD_MAX`] if none comes).
    pub reorder: f64,
    /// Probability that one bit of the frame after its Ethernet header is flipped.
    pub corrupt: f64,
    /// Bandwidth cap in bits per second (frames queue behind each other).
    pub rate_bps: Option<u64>,
    /// Frames waiting beyond this are dropped (counted as overflow).
    pub queue_limit: usize,
    /// Scheduled link outages (`down=LEN@START`): every frame is dropped then.
    pub down: Outages,
}

/// Longest time a reordered frame waits for a successor.
pub const REORDER_HOLD_MAX: Duration = Duration::from_millis(50);

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            dup: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            rate_bps: None,
            queue_limit: 4096,
            down: Outages::default(),
        }
    }
}

impl Impairment {
    /// Whether frames pass untouched and at once, and the link never goes down.
    pub fn is_none(&self) -> bool {
        self.down.is_empty() && self.passes_untouched()
    }

    /// Whether frames that cross (the link being up) pass untouched and at once.
    pub fn passes_untouched(&self) -> bool {
        let d = Impairment {
            queue_limit: self.queue_limit,
            down: self.down,
            ..Impairment::default()
        };
        *self == d
    }
}

fn parse_prob(key: &str, v: &str) -> Result<f64> {
    let p = if let Some(pc) = v.strip_suffix('%') {
        pc.parse::<f64>().map(|x| x / 100.0)
    } else {
        v.parse::<f64>()
    }
    .with_context(|| format!("{key}={v}: not a number"))?;
    if !(0.0..=1.0).contains(&p) {
        bail!("{key}={v}: a probability is between 0 and 1 (or 0% and 100%)");
    }
    Ok(p)
}

fn parse_duration(key: &str, v: &str) -> Result<Duration> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1e-3)
    };
    let x: f64 = num
        .parse()
        .with_context(|| format!("{key}={v}: not a duration (e.g. 20ms)"))?;
    if !(0.0..=3600.0).contains(&(x * scale)) {
        bail!("{key}={v}: out of range");
    }
    Ok(Duration::from_secs_f64(x * scale))
}

/// `LEN@START`: the link goes down START after the relay started, for LEN.
fn parse_outage(key: &str, v: &str) -> Result<Outage> {
    let (len, start) = v
        .split_once('@')
        .with_context(|| format!("{key}={v}: expected LEN@START (e.g. {key}=2s@1s)"))?;
    let len = parse_duration(key, len)?;
    if len.is_zero() {
        bail!("{key}={v}: the outage's length must be more than 0");
    }
    let start = parse_duration(key, start)?;
    Ok(Outage { start, len })
}

fn parse_rate(key: &str, v: &str) -> Result<u64> {
    let lower = v.to_ascii_lowercase();
    let (num, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .iter()
        .find_map(|(suffix, scale)| lower.strip_suffix(suffix).map(|n| (n.to_owned(), *scale)))
        .unwrap_or((lower.clone(), 1.0));
    let x: f64 = num
        .parse()
        .with_context(|| format!("{key}={v}: not a rate (e.g. 1mbit)"))?;
    let bps = x * scale;
    if !(1.0..1e12).contains(&bps) {
        bail!("{key}={v}: out of range");
    }
    Ok(bps as u64)
}

impl FromStr for Impairment {
    type Err = anyhow::Error;

    /// `loss=0.05,delay=20ms,jitter=5ms,dup=0.01,reorder=0.02,corrupt=0.01,rate=1mbit,queue=4096,down=2s@1s`
    /// (every key optional; probabilities as 0.05 or 5%; `down` repeatable up to
    /// [`crate::link::MAX_OUTAGES`] times; `none` or empty for none).
    fn from_str(s: &str) -> Result<Self> {
        let mut imp = Impairment::default();
        if s.trim().is_empty() || s.trim() == "none" {
            return Ok(imp);
        }
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .with_context(|| format!("{item:?}: expected KEY=VALUE"))?;
            match k {
                "loss" => imp.loss = parse_prob(k, v)?,
                "delay" => imp.delay = parse_duration(k, v)?,
                "jitter" => imp.jitter = parse_duration(k, v)?,
                "dup" | "duplicate" => imp.dup = parse_prob(k, v)?,
                "reorder" => imp.reorder = parse_prob(k, v)?,
                "corrupt" => imp.corrupt = parse_prob(k, v)?,
                "rate" => imp.rate_bps = Some(parse_rate(k, v)?),
                "queue" => imp.queue_limit = v.parse().with_context(|| format!("queue={v}: not a count"))?,
                "down" => imp.down.push(parse_outage(k, v)?).map_err(|e| anyhow::anyhow!("{item}: {e}"))?,
                _ => bail!("unknown impairment {k:?} (loss, delay, jitter, dup, reorder, corrupt, rate, queue, down)"),
            }
        }
        Ok(imp)
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        let mut sep = "";
        if !self.passes_untouched() {
            write!(
                f,
                "loss={},delay={:?},jitter={:?},dup={},reorder={},corrupt={}",
                self.loss, self.delay, self.jitter, self.dup, self.reorder, self.corrupt
            )?;
            if let Some(r) = self.rate_bps {
                write!(f, ",rate={r}bit")?;
            }
            sep = ",";
        }
        for o in self.down.iter() {
            write!(f, "{sep}{o}")?;
            sep = ",";
        }
        Ok(())
    }
}

/// Frame counters of one direction (shared with the task that moves frames).
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames that came in.
    pub frames_in: AtomicU64,
    /// Bytes that came in.
    pub bytes_in: AtomicU64,
    /// Frames delivered (duplicates count twice).
    pub frames_out: AtomicU64,
    /// Bytes delivered.
    pub bytes_out: AtomicU64,
    /// Dropped by `loss`.
    pub lost: AtomicU64,
    /// Extra copies sent by `dup`.
    pub duplicated: AtomicU64,
    /// Held back by `reorder`.
    pub reordered: AtomicU64,
    /// Had a bit flipped by `corrupt`.
    pub corrupted: AtomicU64,
    /// Dropped because the queue was full.
    pub overflow: AtomicU64,
    /// Could not be delivered (e.g. QEMU not listening yet).
    pub undeliverable: AtomicU64,
    /// Still delayed when the relay stopped (never sent).
    pub pending_at_stop: AtomicU64,
    /// Dropped because the link was down (see [`crate::link`]).
    pub link_down: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub overflow: u64,
    pub undeliverable: u64,
    pub pending_at_stop: u64,
    pub link_down: u64,
}

impl Counters {
    /// Adds one to `c`.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            frames_in: g(&self.frames_in),
            bytes_in: g(&self.bytes_in),
            frames_out: g(&self.frames_out),
            bytes_out: g(&self.bytes_out),
            lost: g(&self.lost),
            duplicated: g(&self.duplicated),
            reordered: g(&self.reordered),
            corrupted: g(&self.corrupted),
            overflow: g(&self.overflow),
            undeliverable: g(&self.undeliverable),
            pending_at_stop: g(&self.pending_at_stop),
            link_down: g(&self.link_down),
        }
    }
}

impl fmt::Display for CountersSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames in ({} bytes), {} out ({} bytes); lost {}, duplicated {}, reordered {}, corrupted {}, overflow {}, undeliverable {}, pending at stop {}, link down {}",
            self.frames_in,
            self.bytes_in,
            self.frames_out,
            self.bytes_out,
            self.lost,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.overflow,
            self.undeliverable,
            self.pending_at_stop,
            self.link_down
        )
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    due: Instant,
    seq: u64,
    frame: Vec<u8>,
}

/// One direction's impairment state.
#[derive(Debug)]
pub struct Impairer {
    cfg: Impairment,
    rng: SplitMix64,
    queue: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    link_free: Option<Instant>,
    held: Option<(Vec<u8>, Instant)>,
}

impl Impairer {
    /// A direction impaired by `cfg`, its random choices drawn from `seed`.
    pub fn new(cfg: Impairment, seed: u64) -> Self {
        Impairer {
            cfg,
            rng: SplitMix64::new(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            link_free: None,
            held: None,
        }
    }

    /// Whether frames are passed on untouched and at once (the fast path; the
    /// link's outages are the relay's business, not this one's).
    pub fn is_transparent(&self) -> bool {
        self.cfg.passes_untouched()
    }

    fn schedule(&mut self, due: Instant, frame: Vec<u8>, c: &Counters) {
        if self.queue.len() >= self.cfg.queue_limit {
            Counters::bump(&c.overflow);
            return;
        }
        self.seq += 1;
        self.queue.push(Reverse(Pending {
            due,
            seq: self.seq,
            frame,
        }));
    }

    fn delay(&mut self) -> Duration {
        let base = self.cfg.delay.as_nanos() as i128;
        let j = self.cfg.jitter.as_nanos() as i128;
        let off = if j > 0 {
            (self.rng.below((2 * j + 1) as u64) as i128) - j
        } else {
            0
        };
        Duration::from_nanos((base + off).max(0) as u64)
    }

    /// Takes a frame that arrived at `now`.
    pub fn push(&mut self, now: Instant, mut frame: Vec<u8>, c: &Counters) {
        if self.rng.chance(self.cfg.loss) {
            Counters::bump(&c.lost);
            return;
        }
        if self.rng.chance(self.cfg.corrupt) && frame.len() > 14 {
            let i = 14 + self.rng.below(frame.len() as u64 - 14) as usize;
            let bit = self.rng.below(8) as u8;
            if let Some(b) = frame.get_mut(i) {
                *b ^= 1 << bit;
            }
            Counters::bump(&c.corrupted);
        }
        let copies = if self.rng.chance(self.cfg.dup) {
            Counters::bump(&c.duplicated);
            2
        } else {
            1
        };
        let hold = self.held.is_none() && self.rng.chance(self.cfg.reorder);
        for copy in 0..copies {
            let mut due = now + self.delay();
            if let Some(rate) = self.cfg.rate_bps {
                let start = self.link_free.map_or(due, |free| free.max(due));
                let tx = Duration::from_nanos(
                    (frame.len() as u64 * 8).saturating_mul(1_000_000_000) / rate,
                );
                due = start + tx;
                self.link_free = Some(due);
            }
            let f = if copy + 1 == copies {
                std::mem::take(&mut frame)
            } else {
                frame.clone()
            };
            if hold && copy == 0 {
                Counters::bump(&c.reordered);
                self.held = Some((f, due + REORDER_HOLD_MAX));
                continue;
            }
            self.schedule(due, f, c);
            if let Some((held, _)) = self.held.take() {
                // Right behind the frame that overtook it.
                self.schedule(due, held, c);
            }
        }
    }

    /// When the next frame is due (None: nothing waits).
    pub fn next_due(&self) -> Option<Instant> {
        let q = self.queue.peek().map(|Reverse(p)| p.due);
        let h = self.held.as_ref().map(|(_, t)| *t);
        match (q, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A frame whose time has come by `now`, if any (call until None).
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.held.as_ref().is_some_and(|(_, t)| *t <= now) {
            return self.held.take().map(|(f, _)| f);
        }
        if self.queue.peek().is_some_and(|Reverse(p)| p.due <= now) {
            return self.queue.pop().map(|Reverse(p)| p.frame);
        }
        None
    }

    /// Frames still waiting.
    pub fn pending(&self) -> usize {
        self.queue.len() + usize::from(self.held.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[20] = n;
        f
    }

    /// An impairer of `cfg` and `seed` that has been given `frames`, all at the
    /// returned instant, with its counters.
    fn fed(
        cfg: Impairment,
        seed: u64,
        frames: impl IntoIterator<Item = Vec<u8>>,
    ) -> (Impairer, Counters, Instant) {
        let c = Counters::default();
        let mut imp = Impairer::new(cfg, seed);
        let t = Instant::now();
        for f in frames {
            imp.push(t, f, &c);
        }
        (imp, c, t)
    }

    fn drain(imp: &mut Impairer, until: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = imp.pop_due(until) {
            out.push(f);
        }
        out
    }

    #[test]
    fn parses_specs() {
        let i: Impairment =
            "loss=5%,delay=20ms,jitter=1ms,dup=0.1,reorder=0.2,corrupt=0.01,rate=1mbit"
                .parse()
                .unwrap();
        assert_eq!(i.loss, 0.05);
        assert_eq!(i.delay, Duration::from_millis(20));
        assert_eq!(i.jitter, Duration::from_millis(1));
        assert_eq!(i.rate_bps, Some(1_000_000));
        assert!("none".parse::<Impairment>().unwrap().is_none());
        assert!("loss=2".parse::<Impairment>().is_err());
        assert!("bogus=1".parse::<Impairment>().is_err());
        assert!("rate=0".parse::<Impairment>().is_err());
    }

    #[test]
    fn parses_link_outages() {
        let i: Impairment = "down=2s@1s,loss=1%,down=500ms@10s".parse().unwrap();
        let down: Vec<_> = i.down.iter().copied().collect();
        let secs = Duration::from_secs;
        assert_eq!(
            down,
            vec![
                Outage {
                    start: secs(1),
                    len: secs(2)
                },
                Outage {
                    start: secs(10),
                    len: Duration::from_millis(500)
                }
            ]
        );
        assert!(!i.is_none() && !i.passes_untouched());
        // Outages alone: frames that cross are untouched (the relay's fast path).
        let only: Impairment = "down=1s@0s".parse().unwrap();
        assert!(!only.is_none() && only.passes_untouched());
        assert_eq!(only.to_string(), "down=1s@0s");
        let mixed: Impairment = "down=1500ms@2s,down=250us@1s".parse().unwrap();
        assert_eq!(mixed.to_string(), "down=1500ms@2s,down=250us@1s");
        assert_eq!(only, only.to_string().parse().unwrap());
    }

    #[test]
    fn bad_link_outages_say_what_is_wrong() {
        // Plain `{}`: what clap shows.
        let err = |s: &str| s.parse::<Impairment>().unwrap_err().to_string();
        assert!(
            err("down=2s").contains("expected LEN@START"),
            "{}",
            err("down=2s")
        );
        assert!(err("down=0s@1s").contains("more than 0"));
        assert!(err("down=xs@1s").contains("not a duration"));
        assert!(err("down=1s@later").contains("not a duration"));
        assert!(err("down=1s@-1s").contains("out of range"));
        let five = "down=1s@1s,down=1s@3s,down=1s@5s,down=1s@7s,down=1s@9s";
        assert!(err(five).contains("at most 4"), "{}", err(five));
    }

    #[test]
    fn transparent_keeps_order_and_time() {
        let (mut imp, _, t) = fed(Impairment::default(), 1, (0..10).map(frame));
        let out = drain(&mut imp, t);
        assert_eq!(
            out.iter().map(|f| f[20]).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn same_seed_same_choices() {
        let cfg: Impairment = "loss=0.3,dup=0.2,corrupt=0.2,jitter=3ms".parse().unwrap();
        let run = |seed| {
            let (mut imp, c, t) = fed(cfg, seed, (0..200u8).map(frame));
            (drain(&mut imp, t + Duration::from_secs(1)), c.snapshot())
        };
        let (a, ca) = run(7);
        let (b, cb) = run(7);
        assert_eq!(a, b);
        assert_eq!(ca, cb);
        assert!(ca.lost > 30 && ca.lost < 90, "{ca}");
        assert!(ca.duplicated > 10 && ca.corrupted > 10, "{ca}");
        assert_ne!(run(8).0, a);
    }

    #[test]
    fn reorder_swaps_neighbours() {
        let (mut imp, c, t) = fed("reorder=1".parse().unwrap(), 3, [frame(1), frame(2)]);
        let out = drain(&mut imp, t);
        assert_eq!(out.iter().map(|f| f[20]).collect::<Vec<_>>(), vec![2, 1]);
        // A held frame with no successor still goes out, late.
        imp.push(t, frame(3), &c);
        assert!(drain(&mut imp, t).is_empty());
        assert_eq!(drain(&mut imp, t + REORDER_HOLD_MAX).len(), 1);
    }

    #[test]
    fn rate_spaces_frames() {
        // 60-byte frames at 48 kbit/s: 10 ms each.
        let (mut imp, _, t) = fed("rate=48kbit".parse().unwrap(), 3, (0..5).map(frame));
        assert_eq!(drain(&mut imp, t + Duration::from_millis(25)).len(), 2);
        assert_eq!(drain(&mut imp, t + Duration::from_millis(50)).len(), 3);
    }

    #[test]
    fn corruption_spares_the_ethernet_header() {
        let headers = std::iter::repeat_n(vec![0u8; 20], 50);
        let (mut imp, _, t) = fed("corrupt=1".parse().unwrap(), 9, headers);
        for f in drain(&mut imp, t) {
            assert_eq!(&f[..14], &[0u8; 14]);
            assert_eq!(f.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        }
    }
}
