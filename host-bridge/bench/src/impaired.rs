//! The impaired row: the firmware's reverse-echo run through `host-bridge run` on the
//! tap bridge while the relay loses a share of the frames each way (seeded), before
//! and after issue 17's loss recovery, and the time a lost frame costs, read from each
//! run's capture (`--pcap`).
//!
//! * `before`: an image built with RFC 6298's 1 s floor (`SMOLTCP_RTTE_MIN_RTO=1000`,
//!   smoltcp's own default, in a target directory of its own) and the host's route to
//!   the board at Linux's defaults (`--rto-min-ms 0 --quickack off`);
//! * `after`: the project's image (20 ms floor) and `host-bridge run`'s defaults (the
//!   route's `rto_min 20ms`, and `quickack 1` when the wire is impaired).
//!
//! Echoes/s, from the capture: the N messages over the time from the first message's
//! request crossing the relay to the last echo's crossing (boot and the handshake left
//! out; microsecond stamps, where the firmware's own log counts whole milliseconds).
//!
//! The cost of a lost frame, from the capture (the relay writes a frame when it leaves
//! for its destination, so lost frames are not in it): every message is one TCP segment
//! each way, so the segments that carry new data are the board's requests and the
//! server's replies, in pairs. A reply that crosses long after its request means a lost
//! frame on the host's side (Linux resent it); a request that crosses long after the
//! reply before it, one on the board's side (smoltcp resent it). Gaps above [`STALL_MS`] are counted as such recoveries, and
//! their lengths are what those losses cost. A clean gap is about a millisecond.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The guest's address on `host-bridge run`'s bridge.
const GUEST_IP: [u8; 4] = [192, 168, 76, 2];
/// A gap between a request and its reply (or a reply and the next request) above
/// this is a loss being recovered, not a round trip.
pub const STALL_MS: f64 = 10.0;
/// The minimum RTO of the `before` image: RFC 6298's, smoltcp 0.13+'s default.
const BEFORE_MIN_RTO: &str = "1000";

pub struct ImpairedConfig {
    /// Loss probabilities in percent, each direction.
    pub losses: Vec<f64>,
    pub seeds: Vec<u64>,
    pub count: u32,
    /// The `before` image; built if `None`.
    pub before_image: Option<PathBuf>,
    pub build: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ImpairedRun {
    pub variant: String,
    pub loss_pct: f64,
    pub seed: u64,
    /// `host-bridge run`'s exit status (the firmware's).
    pub status: Option<i32>,
    pub echoes: u32,
    pub echoes_per_s: Option<f64>,
    /// `host-bridge run`, start to exit (boot and handshake included).
    pub wall_s: f64,
    /// Recoveries on the board's side (its request lost), ms each.
    pub board_stalls_ms: Vec<f64>,
    /// Recoveries on the host's side (its reply lost), ms each.
    pub host_stalls_ms: Vec<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ImpairedData {
    pub started_utc: String,
    pub host: String,
    pub count: u32,
    pub message: String,
    pub variants: Vec<(String, String)>,
    pub runs: Vec<ImpairedRun>,
}

/// The `before` image: `ci/cargo-firmware build` with smoltcp's 1 s floor, in
/// `target/rto-floor-1000` so that the project's own image is left alone. Built
/// always (`ci/bench.sh` builds only the project's image; cargo makes it a no-op when
/// it is up to date).
fn before_image(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/rto-floor-1000");
    let fw = root.join("ci/cargo-firmware");
    let cmd = |sub: &str| {
        let mut c = Command::new(&fw);
        c.arg(sub)
            .current_dir(root)
            .env("SMOLTCP_RTTE_MIN_RTO", BEFORE_MIN_RTO)
            .env("CARGO_TARGET_DIR", &dir);
        c
    };
    eprintln!("bench: building the `before` image (SMOLTCP_RTTE_MIN_RTO={BEFORE_MIN_RTO})");
    let st = cmd("build").arg("-q").status()?;
    if !st.success() {
        bail!("ci/cargo-firmware build (SMOLTCP_RTTE_MIN_RTO={BEFORE_MIN_RTO}) failed ({st})");
    }
    let out = cmd("path").output()?;
    let image = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !image.is_file() {
        bail!("no `before` image at {}", image.display());
    }
    Ok(image)
}

pub fn run(root: &Path, cfg: &ImpairedConfig, log_dir: &Path) -> Result<ImpairedData> {
    std::fs::create_dir_all(log_dir)?;
    let after = crate::footprint::firmware_image(root, cfg.build)?;
    let before = match &cfg.before_image {
        Some(p) => p.clone(),
        None => before_image(root)?,
    };
    let hb = crate::servers::bin_dir()?.join("host-bridge");
    if !hb.is_file() {
        bail!("{} not built", hb.display());
    }
    let variants: [(&str, &Path, &[&str]); 2] = [
        (
            "before",
            &before,
            &["--rto-min-ms", "0", "--quickack", "off"],
        ),
        ("after", &after, &[]),
    ];
    let mut data = ImpairedData {
        started_utc: crate::utc_now(),
        host: crate::host_summary(),
        count: cfg.count,
        message: crate::e2e::MESSAGE.into(),
        variants: vec![
            (
                "before".into(),
                format!(
                    "smoltcp minimum RTO {BEFORE_MIN_RTO} ms; host route at Linux's defaults \
                     (rto_min 200 ms, delayed ACKs)"
                ),
            ),
            (
                "after".into(),
                "smoltcp minimum RTO 20 ms; host route rto_min 20 ms, quickack when lossy (not at 0%)"
                    .into(),
            ),
        ],
        runs: Vec::new(),
    };
    // Seed by seed, cell by cell, the two variants side by side (order alternating).
    let mut k = 0usize;
    for &seed in &cfg.seeds {
        for &loss in &cfg.losses {
            for j in 0..2 {
                let (name, image, flags) = variants[(j + k) % 2];
                let pcap = log_dir.join(format!("impaired-{name}-{loss}-{seed}.pcap"));
                eprintln!(
                    "bench: impaired {name}, loss {loss}% each way, seed {seed}, {} echoes",
                    cfg.count
                );
                let r =
                    one_run(&hb, image, flags, loss, seed, cfg.count, &pcap).unwrap_or_else(|e| {
                        ImpairedRun {
                            error: Some(format!("{e:#}")),
                            ..Default::default()
                        }
                    });
                let _ = std::fs::remove_file(&pcap);
                eprintln!(
                    "bench:   status {:?}, {} echoes/s, {:.1} s; board stalls {:?} ms; host stalls {:?} ms{}",
                    r.status,
                    r.echoes_per_s.map(|x| format!("{x:.1}")).unwrap_or("-".into()),
                    r.wall_s,
                    r.board_stalls_ms.iter().map(|x| x.round()).collect::<Vec<_>>(),
                    r.host_stalls_ms.iter().map(|x| x.round()).collect::<Vec<_>>(),
                    r.error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
                );
                data.runs.push(ImpairedRun {
                    variant: name.into(),
                    loss_pct: loss,
                    seed,
                    ..r
                });
            }
            k += 1;
        }
    }
    Ok(data)
}

fn one_run(
    hb: &Path,
    image: &Path,
    flags: &[&str],
    loss: f64,
    seed: u64,
    count: u32,
    pcap: &Path,
) -> Result<ImpairedRun> {
    let started = Instant::now();
    let out = Command::new(hb)
        .args(["--quiet", "run", "--image"])
        .arg(image)
        .args(["--impair", &format!("loss={loss}%")])
        .args(["--seed", &seed.to_string(), "--pcap"])
        .arg(pcap)
        .args(flags)
        .args(["--", "--count", &count.to_string(), "--message"])
        .arg(crate::e2e::MESSAGE)
        // Long enough for the `before` image's back-off after several losses in a row.
        .args(["--timeout-ms", "60000"])
        .output()
        .context("run host-bridge")?;
    let wall_s = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let echoes = echo_times_ms(&stdout).len();
    let cap = match std::fs::read(pcap) {
        Ok(bytes) => analyse(&bytes)?,
        Err(e) => bail!("read {}: {e}", pcap.display()),
    };
    Ok(ImpairedRun {
        status: out.status.code(),
        echoes: echoes as u32,
        echoes_per_s: (echoes == count as usize)
            .then(|| cap.echoes_per_s(count as usize))
            .flatten(),
        wall_s,
        board_stalls_ms: cap.board_stalls_ms,
        host_stalls_ms: cap.host_stalls_ms,
        error: (out.status.code() != Some(0)).then(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        }),
        ..Default::default()
    })
}

/// The round trips the firmware logged: `received N after X ms`, in order.
pub fn echo_times_ms(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.split("received ").nth(1)?;
            let after = rest.split(" after ").nth(1)?;
            after.split(" ms").next()?.trim().parse().ok()
        })
        .collect()
}

/// What one run's capture says.
#[derive(Debug, Default)]
pub struct Capture {
    /// When each segment of new data from the board crossed, s: the opening
    /// handshake's request, then one per message (64 B fit one segment), then the close.
    pub requests: Vec<f64>,
    /// The same from the host: the 101, one echo per message, the close.
    pub replies: Vec<f64>,
    /// Gaps above [`STALL_MS`] before a request (the board resent it), ms.
    pub board_stalls_ms: Vec<f64>,
    /// Gaps above [`STALL_MS`] before a reply (the host resent it), ms.
    pub host_stalls_ms: Vec<f64>,
}

impl Capture {
    /// `n` messages over the time from the first message's request (after the
    /// handshake's) to the `n`th reply after the handshake's.
    pub fn echoes_per_s(&self, n: usize) -> Option<f64> {
        let first = *self.requests.get(1)?;
        let last = *self.replies.get(n)?;
        (last > first).then(|| n as f64 / (last - first))
    }
}

/// The requests, replies and stalls in a capture. Request i and reply i are paired
/// by their index, not by their order in the file: the relay stamps a frame after
/// sending it, so a reply and the request it caused can be written the wrong way
/// round (by a fraction of a millisecond).
pub fn analyse(pcap: &[u8]) -> Result<Capture> {
    let mut cap = Capture::default();
    let mut max_end: [Option<u32>; 2] = [None, None];
    for (t, frame) in pcap_frames(pcap)? {
        let Some(seg) = tcp_segment(frame) else {
            continue;
        };
        if seg.payload_len == 0 {
            continue;
        }
        let from_guest = seg.src == GUEST_IP;
        let end = seg.seq.wrapping_add(seg.payload_len);
        let slot = &mut max_end[usize::from(from_guest)];
        // New data: its end is past everything that crossed this way before (a
        // segment seen again is a duplicate or a needless resend, not progress).
        if slot.is_some_and(|m| (end.wrapping_sub(m) as i32) <= 0) {
            continue;
        }
        *slot = Some(end);
        if from_guest {
            cap.requests.push(t);
        } else {
            cap.replies.push(t);
        }
    }
    for (i, &reply) in cap.replies.iter().enumerate() {
        if let Some(&request) = cap.requests.get(i) {
            let gap_ms = (reply - request) * 1000.0;
            if gap_ms > STALL_MS {
                cap.host_stalls_ms.push(gap_ms);
            }
        }
        if let Some(&next) = cap.requests.get(i + 1) {
            let gap_ms = (next - reply) * 1000.0;
            if gap_ms > STALL_MS {
                cap.board_stalls_ms.push(gap_ms);
            }
        }
    }
    Ok(cap)
}

struct Segment {
    src: [u8; 4],
    seq: u32,
    payload_len: u32,
}

/// An Ethernet/IPv4/TCP frame's source, sequence number and payload length.
fn tcp_segment(f: &[u8]) -> Option<Segment> {
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = f.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 6 || ihl < 20 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let tcp = ip.get(ihl..total)?;
    let doff = usize::from(tcp.get(12)? >> 4) * 4;
    let payload_len = tcp.len().checked_sub(doff)? as u32;
    Some(Segment {
        src: ip.get(12..16)?.try_into().ok()?,
        seq: u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?),
        payload_len,
    })
}

/// The frames of a classic pcap file (either byte order, µs or ns stamps), with
/// their times in seconds.
fn pcap_frames(b: &[u8]) -> Result<Vec<(f64, &[u8])>> {
    let Some(magic) = b.get(0..4) else {
        bail!("pcap shorter than its header");
    };
    let (le, scale) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, 1e-6),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, 1e-6),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, 1e-9),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, 1e-9),
        _ => bail!("not a pcap file"),
    };
    let u32_at = |i: usize| -> Option<u32> {
        let w: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        })
    };
    let mut frames = Vec::new();
    let mut i = 24;
    while let (Some(sec), Some(frac), Some(len)) = (u32_at(i), u32_at(i + 4), u32_at(i + 8)) {
        let start = i + 16;
        let Some(frame) = b.get(start..start + len as usize) else {
            break; // a truncated last record
        };
        frames.push((f64::from(sec) + f64::from(frac) * scale, frame));
        i = start + len as usize;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_times_are_read_from_the_firmware_log() {
        let log = "sent 1: text 3 bytes \"abc\"\nreceived 1 after 2 ms: reversed ok (uptime 90 ms)\n\
                   sent 2: text 3 bytes \"abc\"\nreceived 2 after 31 ms: reversed ok\nMISMATCH 3 after 1 ms\n";
        assert_eq!(echo_times_ms(log), vec![2, 31]);
    }

    /// One frame: Ethernet, IPv4 from `src`, TCP with `seq` and `len` bytes of payload.
    fn frame(src: [u8; 4], seq: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00]);
        let total = (20 + 20 + len) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend(src);
        ip.extend([192, 168, 76, 1]);
        f.extend(ip);
        let mut tcp = vec![0u8; 20];
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[12] = 5 << 4;
        f.extend(tcp);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    fn pcap(frames: &[(f64, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1];
        b.extend([0u8; 20]);
        for (t, f) in frames {
            let sec = *t as u32;
            let usec = ((t - f64::from(sec)) * 1e6).round() as u32;
            for w in [sec, usec, f.len() as u32, f.len() as u32] {
                b.extend(w.to_le_bytes());
            }
            b.extend(f);
        }
        b
    }

    #[test]
    fn stalls_are_attributed_to_the_side_that_resent() {
        let host_ip = [192, 168, 76, 1];
        let g = GUEST_IP;
        let frames = vec![
            (1.000, frame(g, 100, 10)),       // request 1
            (1.001, frame(host_ip, 500, 10)), // its reply
            (1.002, frame(g, 110, 0)),        // an ACK: no data, ignored
            (1.030, frame(g, 110, 10)), // request 2, 29 ms after the reply: resent by the board
            (1.031, frame(g, 110, 10)), // the same again: a duplicate, ignored
            (1.250, frame(host_ip, 510, 10)), // reply 2, 220 ms late: resent by the host
            (1.252, frame(host_ip, 520, 10)), // reply 3, written first
            (1.251, frame(g, 120, 10)), // request 3 (stamps follow sending)
        ];
        let cap = analyse(&pcap(&frames)).expect("parse");
        let (board, host) = (&cap.board_stalls_ms, &cap.host_stalls_ms);
        assert_eq!(board.len(), 1, "{board:?}");
        assert!((board[0] - 29.0).abs() < 0.01, "{board:?}");
        assert_eq!(host.len(), 1, "{host:?}");
        assert!((host[0] - 220.0).abs() < 0.01, "{host:?}");
        assert_eq!((cap.requests.len(), cap.replies.len()), (3, 3));
        // Request 1 is the handshake's: 2 messages from 1.030 to 1.252 s.
        let eps = cap.echoes_per_s(2).expect("rate");
        assert!((eps - 2.0 / 0.222).abs() < 0.01, "{eps}");
    }
}
