//! `bench fastpath`: what `host-bridge run` costs per round trip over QEMU's own
//! tap, on its default path (QEMU gets the tap itself) and on the relay path
//! (`--relay`). Three rows, in interleaved rounds (the order rotating), the same
//! firmware run in each (`--count N --message` 64 B, static address):
//!
//! * `qemu-tap`: `ip netns exec NS ci/qemu-run` with `-nic tap,ifname=tap0` into a
//!   namespace of ours, `host-bridge serve` inside it (QEMU's own tap, the reference);
//! * `run-default`: `host-bridge run` (its fast path);
//! * `run-relay`: `host-bridge run --relay` (the relay between QEMU's dgram socket
//!   and the tap).
//!
//! Timed the same way in all three, from outside: the firmware's console read line
//! by line, each line stamped on arrival; one echo's time is (arrival of `all N
//! echoes matched` - arrival of `received 1 `) / (N-1). The firmware sends message
//! n+1 only after it has checked echo n, so that is a full round trip (with the
//! firmware's logging of two lines per echo, the same in every row). The ratio to
//! QEMU's own tap is taken round by round (paired), then the median.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use host_bridge::netns::{self, Netns};

use crate::stats::median;

const MAC: &str = "52:54:00:12:34:56";
const HOST_IP: &str = "192.168.76.1";
const GUEST_IP: &str = "192.168.76.2";
const NETNS_PREFIX: &str = "bench-fp";
/// 64 bytes of ASCII (as in `bench e2e`).
const MESSAGE: &str = crate::e2e::MESSAGE;
pub const ROWS: [&str; 3] = ["qemu-tap", "run-default", "run-relay"];

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Row {
    pub name: String,
    pub how: String,
    /// Median over rounds of µs per echo.
    pub us_per_echo: Option<f64>,
    /// Median over rounds of this row's µs per echo / QEMU's own tap's, same round.
    pub over_qemu_tap: Option<f64>,
    /// The same two on the board's own clock (the uptime it prints; 1 ms ticks):
    /// the round trip without the console's way to the host.
    #[serde(default)]
    pub board_us_per_echo: Option<f64>,
    #[serde(default)]
    pub board_over_qemu_tap: Option<f64>,
    /// Every round's µs per echo, in order.
    pub rounds_us: Vec<f64>,
    /// Failures, if any round failed.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FastPathData {
    pub started_utc: String,
    pub count: u32,
    pub rounds: usize,
    pub command: String,
    /// /proc/loadavg before and after (how busy the shared machine was).
    #[serde(default)]
    pub load_before: String,
    #[serde(default)]
    pub load_after: String,
    pub rows: Vec<Row>,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One run's µs per echo: host-stamped console lines, and the board's clock.
#[derive(Debug, Clone, Copy)]
struct Echo {
    host_us: f64,
    board_us: Option<f64>,
}

/// Console lines, each with the moment it arrived.
type Stamped = Vec<(Instant, String)>;

/// Runs `cmd`, stamping each stdout line on arrival; returns the exit status and
/// the stamped lines.
fn stamped(mut cmd: Command) -> Result<(Option<i32>, Stamped)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start the run")?;
    let out = child.stdout.take().context("stdout")?;
    let lines: Vec<(Instant, String)> = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .map(|l| (Instant::now(), l))
        .collect();
    let status = child.wait()?.code();
    Ok((status, lines))
}

/// The number after `key` in `line` (`uptime 38 ms` -> 38).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = line.split(key).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// µs per echo from the firmware's console (host arrival stamps; and the board's
/// own clock, 1 ms ticks: the uptime printed with echo 1 and at the exit), or why not.
fn per_echo_us(count: u32, status: Option<i32>, lines: &[(Instant, String)]) -> Result<Echo> {
    let first = lines.iter().find(|(_, l)| l.contains("received 1 after"));
    let done = format!("all {count} echoes matched");
    let last = lines.iter().find(|(_, l)| l.contains(&done));
    let exit = lines.iter().find(|(_, l)| l.contains("; exit "));
    match (status, first, last) {
        (Some(0), Some((t0, l0)), Some((t1, _))) if count > 1 => {
            let n = f64::from(count - 1);
            let board = match (number_after(l0, "(uptime "), exit) {
                (Some(u0), Some((_, l))) => {
                    number_after(l, "; uptime ").map(|u1| (u1 - u0) * 1e3 / n)
                }
                _ => None,
            };
            Ok(Echo {
                host_us: t1.duration_since(*t0).as_secs_f64() * 1e6 / n,
                board_us: board,
            })
        }
        _ => {
            let tail: Vec<&str> = lines
                .iter()
                .rev()
                .take(3)
                .map(|(_, l)| l.as_str())
                .collect();
            bail!("status {status:?}, last lines: {}", tail.join(" / "))
        }
    }
}

fn firmware_args(count: u32) -> Vec<String> {
    ["--count", &count.to_string(), "--message", MESSAGE]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// QEMU's own tap: a namespace with a persistent tap0, `host-bridge serve` and
/// QEMU inside it.
fn qemu_tap(root: &Path, hb: &Path, image: &Path, count: u32) -> Result<Echo> {
    netns::reap_stale(NETNS_PREFIX);
    let ns = Netns::create(NETNS_PREFIX)?;
    ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"])?;
    ns.ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", "tap0"])?;
    ns.ip(&["link", "set", "tap0", "up"])?;
    let mut server = ns
        .command(&hb.display().to_string())
        .args(["--quiet", "serve", "--listen", &format!("{HOST_IP}:0")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start host-bridge serve")?;
    let port = {
        let out = server.stdout.take().context("serve stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        line.trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .with_context(|| format!("no port in {line:?}"))
    };
    let result = port.and_then(|port| {
        let mut cmd = ns.command(&root.join("ci/qemu-run").display().to_string());
        cmd.arg(image)
            .args(["--url", &format!("ws://{HOST_IP}:{port}/ws")])
            .args(["--ip", &format!("{GUEST_IP}/24"), "--gateway", HOST_IP])
            .args(firmware_args(count))
            .env(
                "FIRMWARE_NET",
                format!("-nic tap,ifname=tap0,script=no,downscript=no,model=stellaris,mac={MAC}"),
            )
            .env("FIRMWARE_TIMEOUT", "180");
        let (status, lines) = stamped(cmd)?;
        per_echo_us(count, status, &lines)
    });
    let _ = server.kill();
    let _ = server.wait();
    drop(ns);
    result
}

/// `host-bridge run` with `extra` options.
fn host_bridge_run(hb: &Path, image: &Path, count: u32, extra: &[&str]) -> Result<Echo> {
    let mut cmd = Command::new(hb);
    cmd.args(["--quiet", "run", "--timeout", "180", "--image"])
        .arg(image)
        .args(extra)
        .arg("--")
        .args(firmware_args(count));
    let (status, lines) = stamped(cmd)?;
    per_echo_us(count, status, &lines)
}

pub fn run(root: &Path, image: &Path, count: u32, rounds: usize) -> Result<FastPathData> {
    anyhow::ensure!(
        netns::is_root(),
        "bench fastpath needs root (namespaces, taps)"
    );
    let hb = crate::servers::bin_dir()?.join("host-bridge");
    anyhow::ensure!(hb.is_file(), "{} not built", hb.display());
    let how = [
        "ci/qemu-run with QEMU's own -nic tap into a namespace of ours; host-bridge serve inside",
        "host-bridge run (default: QEMU gets the tap itself, -netdev tap,fd=N)",
        "host-bridge run --relay (QEMU's dgram socket <-> relay <-> tap)",
    ];
    let load_before = loadavg();
    let mut per_round: Vec<[Option<Echo>; 3]> = Vec::new();
    let mut failures: [Vec<String>; 3] = Default::default();
    for round in 0..rounds {
        let mut got = [None; 3];
        // Rotate the order, so that no row always runs first (or after the same one).
        for k in 0..3 {
            let i = (round + k) % 3;
            let r = match i {
                0 => qemu_tap(root, &hb, image, count),
                1 => host_bridge_run(&hb, image, count, &[]),
                _ => host_bridge_run(&hb, image, count, &["--relay"]),
            };
            match r {
                Ok(e) => {
                    eprintln!(
                        "bench: fastpath round {}/{rounds} {}: {:.0} µs/echo (board clock {:.0})",
                        round + 1,
                        ROWS[i],
                        e.host_us,
                        e.board_us.unwrap_or(f64::NAN)
                    );
                    got[i] = Some(e);
                }
                Err(e) => {
                    eprintln!("bench: fastpath {} failed: {e:#}", ROWS[i]);
                    failures[i].push(format!("{e:#}"));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        per_round.push(got);
    }
    let rows = (0..3)
        .map(|i| {
            let rounds_us: Vec<f64> = per_round
                .iter()
                .filter_map(|r| Some(r[i]?.host_us))
                .collect();
            let ratios: Vec<f64> = per_round
                .iter()
                .filter_map(|r| Some(r[i]?.host_us / r[0]?.host_us))
                .collect();
            let board: Vec<f64> = per_round.iter().filter_map(|r| r[i]?.board_us).collect();
            let board_ratios: Vec<f64> = per_round
                .iter()
                .filter_map(|r| Some(r[i]?.board_us? / r[0]?.board_us?))
                .collect();
            Row {
                name: ROWS[i].into(),
                how: how[i].into(),
                us_per_echo: median(&rounds_us),
                over_qemu_tap: median(&ratios),
                board_us_per_echo: median(&board),
                board_over_qemu_tap: median(&board_ratios),
                rounds_us,
                failures: std::mem::take(&mut failures[i]),
            }
        })
        .collect();
    Ok(FastPathData {
        started_utc: String::new(),
        count,
        rounds,
        command: format!("bash ci/bench.sh fastpath --count {count} --rounds {rounds}"),
        load_before,
        load_after: loadavg(),
        rows,
    })
}

/// The rows as a Markdown table for REPORT.md.
pub fn markdown(d: &FastPathData) -> String {
    let mut s = format!(
        "Per round trip, `host-bridge run` against QEMU's own tap ({} rounds, interleaved, \
         order rotating; {} echoes of 64 B each; medians; ratio paired round by round). \
         Reproduce: `{}`. Load average (1, 5, 15 min) before: {}; after: {} (CPUs: {}).\n\n\
         Console: the firmware's lines stamped as they reach the bench (what a user of `run` \
         sees, through its console pipe); board clock: the uptime the firmware prints (1 ms \
         ticks), the round trip without the console's way out.\n\n\
         | row | how | µs per echo (console) | vs QEMU's own tap | µs per echo (board clock) | vs QEMU's own tap |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
        d.rounds,
        d.count,
        d.command,
        d.load_before,
        d.load_after,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > cpus)
    };
    for r in &d.rows {
        let f = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
        s += &format!(
            "| {} | {} | {} | {}x | {} | {}x |\n",
            r.name,
            r.how,
            f(r.us_per_echo, 0),
            f(r.over_qemu_tap, 3),
            f(r.board_us_per_echo, 0),
            f(r.board_over_qemu_tap, 3)
        );
    }
    if busy(&d.load_before) || busy(&d.load_after) {
        s += "\n**The machine was overloaded** (load above its CPU count): single rounds \
              varied several-fold (every round is in fastpath.json), so only differences far \
              larger than 5% would show; a ratio below 1 is noise, not a path faster than \
              QEMU's own. Re-run on a quiet machine to test the 1.05x goal.\n\n";
    }
    s
}
