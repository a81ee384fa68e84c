//! The fleet row: `host-bridge fleet --boards N -- --count C` for N in {1, 16, 64,
//! 256}, the sizes interleaved round by round, and what one board costs as N grows
//! (wall time, boards/s, peak memory per board, the boards' and host-bridge's CPU).
//! Reads the summary `host-bridge fleet` prints (its own format, parsed here).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::servers;
use crate::stats::median;

/// What to run.
pub struct FleetConfig {
    /// Fleet sizes.
    pub boards: Vec<u32>,
    /// Rounds (every size once per round); medians are of these.
    pub reps: usize,
    /// Echoes per board.
    pub count: u32,
    /// Boards at once (`host-bridge fleet --wave`).
    pub wave: usize,
    /// Build the firmware image first.
    pub build: bool,
}

/// One fleet run, as its summary says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FleetRun {
    pub boards: u32,
    pub passed: u32,
    pub failed: u32,
    pub wall_s: f64,
    pub boards_per_s: f64,
    pub first_echo_p50_ms: Option<f64>,
    pub first_echo_p99_ms: Option<f64>,
    pub mem_p50_mib: Option<f64>,
    pub mem_max_mib: Option<f64>,
    /// All boards' QEMUs together.
    pub boards_cpu_s: f64,
    /// host-bridge's process: the server, the relays (bridge) and the DHCP-less rest.
    pub host_cpu_s: f64,
}

/// Everything `bench fleet` measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetData {
    pub boards: Vec<u32>,
    pub count: u32,
    pub wave: usize,
    /// `bridge` or `user network`.
    pub network: String,
    pub runs: Vec<FleetRun>,
    /// Why nothing was measured, if so.
    pub error: Option<String>,
}

pub fn run(root: &Path, cfg: &FleetConfig) -> Result<FleetData> {
    let mut data = FleetData {
        boards: cfg.boards.clone(),
        count: cfg.count,
        wave: cfg.wave,
        ..Default::default()
    };
    let image = match crate::footprint::firmware_image(root, cfg.build) {
        Ok(i) => i,
        Err(e) => {
            data.error = Some(format!("{e:#}"));
            return Ok(data);
        }
    };
    let hb = servers::bin_dir()?.join("host-bridge");
    for rep in 0..cfg.reps.max(1) {
        // Rotate the order each round, so no size always runs on a fresh machine.
        let n_sizes = cfg.boards.len();
        for k in 0..n_sizes {
            let n = cfg.boards[(k + rep) % n_sizes];
            eprintln!(
                "bench: fleet round {} of {}: {n} boards x {} echoes",
                rep + 1,
                cfg.reps.max(1),
                cfg.count
            );
            let out = Command::new(&hb)
                .args(["--quiet", "fleet", "--image"])
                .arg(&image)
                .args(["--boards", &n.to_string(), "--wave", &cfg.wave.to_string()])
                .args(["--", "--count", &cfg.count.to_string()])
                .output()
                .with_context(|| format!("run {} fleet", hb.display()))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let (network, r) = parse_summary(&text).with_context(|| {
                format!(
                    "fleet of {n}: no summary (status {}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .rev()
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(" | ")
                )
            })?;
            eprintln!(
                "bench: fleet of {n}: {} passed, wall {:.1} s, {:.1} boards/s",
                r.passed, r.wall_s, r.boards_per_s
            );
            if r.failed > 0 {
                // The failing boards' logs (host-bridge fleet prints them on stderr).
                let log =
                    std::env::temp_dir().join(format!("bench-fleet-{n}-round{}.log", rep + 1));
                if std::fs::write(&log, &out.stderr).is_ok() {
                    eprintln!(
                        "bench: fleet of {n}: {} failed, their logs in {}",
                        r.failed,
                        log.display()
                    );
                }
            }
            data.network = network;
            data.runs.push(r);
        }
    }
    Ok(data)
}

/// The number that ends `s` (after trimming `unit`), if any.
fn number_before(s: &str, unit: &str) -> Option<f64> {
    s.trim().strip_suffix(unit)?.trim().parse().ok()
}

/// `(network, run)` from `host-bridge fleet`'s summary.
pub fn parse_summary(text: &str) -> Result<(String, FleetRun)> {
    let mut r = FleetRun::default();
    let mut network = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("fleet: ") {
            // "64 boards on the bridge"
            let (n, net) = rest.split_once(" boards on the ").context("fleet: line")?;
            r.boards = n.parse()?;
            network = Some(net.to_string());
        } else if let Some(rest) = line.strip_prefix("booted ") {
            // "64, passed 64, failed 0"
            for part in rest.split(", ") {
                if let Some(v) = part.strip_prefix("passed ") {
                    r.passed = v.parse()?;
                } else if let Some(v) = part.strip_prefix("failed ") {
                    r.failed = v.parse()?;
                }
            }
        } else if let Some(rest) = line.strip_prefix("time to first echo: ") {
            // "p50 735 ms, p99 1190 ms"
            let (a, b) = rest.split_once(", ").context("first echo line")?;
            r.first_echo_p50_ms = a.strip_prefix("p50 ").and_then(|v| number_before(v, "ms"));
            r.first_echo_p99_ms = b.strip_prefix("p99 ").and_then(|v| number_before(v, "ms"));
        } else if let Some(rest) = line.strip_prefix("peak memory per board: ") {
            // "p50 38.2 MiB, max 38.6 MiB"
            let (a, b) = rest.split_once(", ").context("memory line")?;
            r.mem_p50_mib = a.strip_prefix("p50 ").and_then(|v| number_before(v, "MiB"));
            r.mem_max_mib = b.strip_prefix("max ").and_then(|v| number_before(v, "MiB"));
        } else if let Some(rest) = line.strip_prefix("CPU: boards ") {
            // "7.5 s (0.12 s per board), host-bridge 0.72 s; wall 5.4 s (11.9 boards/s)"
            let (cpu, wall) = rest.split_once("; wall ").context("CPU line")?;
            r.boards_cpu_s = cpu.split(" s ").next().context("boards CPU")?.parse()?;
            r.host_cpu_s = cpu
                .split_once("host-bridge ")
                .and_then(|(_, v)| number_before(v, "s"))
                .context("host-bridge CPU")?;
            let (w, rate) = wall.split_once(" s (").context("wall")?;
            r.wall_s = w.parse()?;
            r.boards_per_s = number_before(rate, "boards/s)").context("boards/s")?;
        }
    }
    match network {
        Some(n) if r.wall_s > 0.0 => Ok((n, r)),
        _ => bail!("incomplete summary"),
    }
}

/// One fleet size over all its rounds.
pub struct FleetRow {
    pub boards: u32,
    pub runs: usize,
    /// Boards that passed and boards run, over all rounds.
    pub passed: u32,
    pub total: u32,
    /// The runs' figures, each the median over the runs that have it (the
    /// counts are `passed` and `total` above; `mem_max_mib` is not kept).
    pub median: FleetRun,
}

impl FleetRow {
    /// Seconds for the whole fleet as milliseconds per board. Every run of a
    /// row has the same N, so this of the median is the median of this.
    fn per_board_ms(&self, secs: f64) -> f64 {
        1000.0 * secs / f64::from(self.boards.max(1))
    }

    /// Wall time per board, ms.
    pub fn wall_per_board_ms(&self) -> f64 {
        self.per_board_ms(self.median.wall_s)
    }

    /// QEMU CPU per board, ms.
    pub fn qemu_cpu_per_board_ms(&self) -> f64 {
        self.per_board_ms(self.median.boards_cpu_s)
    }

    /// host-bridge CPU (server and relays) per board, ms.
    pub fn host_cpu_per_board_ms(&self) -> f64 {
        self.per_board_ms(self.median.host_cpu_s)
    }
}

/// One row per fleet size, medians over its runs.
pub fn rows(d: &FleetData) -> Vec<FleetRow> {
    let mut rows = Vec::new();
    for &n in &d.boards {
        let runs: Vec<&FleetRun> = d.runs.iter().filter(|r| r.boards == n).collect();
        if runs.is_empty() {
            continue;
        }
        let med = |f: &dyn Fn(&FleetRun) -> Option<f64>| {
            let v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
            median(&v)
        };
        let always = |f: fn(&FleetRun) -> f64| med(&|r| Some(f(r))).unwrap_or(0.0);
        rows.push(FleetRow {
            boards: n,
            runs: runs.len(),
            passed: runs.iter().map(|r| r.passed).sum(),
            total: runs.iter().map(|r| r.boards).sum(),
            median: FleetRun {
                boards: n,
                wall_s: always(|r| r.wall_s),
                boards_per_s: always(|r| r.boards_per_s),
                boards_cpu_s: always(|r| r.boards_cpu_s),
                host_cpu_s: always(|r| r.host_cpu_s),
                mem_p50_mib: med(&|r| r.mem_p50_mib),
                first_echo_p50_ms: med(&|r| r.first_echo_p50_ms),
                first_echo_p99_ms: med(&|r| r.first_echo_p99_ms),
                ..FleetRun::default()
            },
        });
    }
    rows
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The report's fleet section: the table and `fleet.png`.
pub fn section(md: &mut String, d: &FleetData, out: &Path) -> Result<()> {
    use std::fmt::Write as _;
    if let Some(e) = &d.error {
        writeln!(md, "Not measured: {e}\n")?;
        return Ok(());
    }
    writeln!(
        md,
        "`host-bridge fleet --boards N --wave {} -- --count {}` on the {} (each board its own \
         QEMU, MAC and DHCP lease; at most {} boards at once), N interleaved round by round; \
         medians of the rounds. Reproduce: `sudo target/release/bench fleet` \
         (`--fleet-boards 1,16,64,256 --fleet-reps 3`).\n",
        d.wave, d.count, d.network, d.wave
    )?;
    writeln!(
        md,
        "| N | runs | boards passed (all rounds) | wall | boards/s | wall per board | QEMU CPU per board | \
         host-bridge CPU per board (server + relays) | peak memory per board (p50) | \
         first echo p50 / p99 |"
    )?;
    writeln!(
        md,
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    let rows = rows(d);
    for r in &rows {
        writeln!(
            md,
            "| {} | {} | {}{} / {}{} | {:.1} s | {:.1} | {:.0} ms | {:.0} ms | {:.1} ms | {} MiB | {} / {} ms |",
            r.boards,
            r.runs,
            if r.passed < r.total { "**" } else { "" },
            r.passed,
            r.total,
            if r.passed < r.total { "**" } else { "" },
            r.median.wall_s,
            r.median.boards_per_s,
            r.wall_per_board_ms(),
            r.qemu_cpu_per_board_ms(),
            r.host_cpu_per_board_ms(),
            opt(r.median.mem_p50_mib, 1),
            opt(r.median.first_echo_p50_ms, 0),
            opt(r.median.first_echo_p99_ms, 0),
        )?;
    }
    writeln!(md)?;
    if let Some(big) = rows.last() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        writeln!(
            md,
            "Where the curve bends: up to N = {wave} (the wave) every board boots at once, so \
             the boards share {cores} cores and the time to first echo grows with N; wall time \
             per board falls as the fixed cost (the namespace, dnsmasq, the server) is shared \
             out. QEMU CPU per board grows with N ({:.0} ms at N = {} to {:.0} ms at N = {}): \
             emulators contend for the cores and caches, and on one segment every board also \
             hears the other live boards' DHCP and ARP broadcasts. Past N = {wave} the waves are full \
             and the fleet is bound by the cores: boards/s settles near cores / QEMU CPU per \
             board ({cores} / {:.0} ms = {:.1} boards/s at N = {}, {:.1} measured: less where other work shares the cores), wall per \
             board flattens, and the time to first echo falls back (boards start staggered, \
             as others end). host-bridge's own CPU per board (server and relays) stays a few \
             ms: the cost of a fleet is the emulation, not the server. Memory per board does \
             not depend on N; with at most {wave} boards at once the fleet's peak is about \
             {wave} x {} MiB whatever N. Boards that fail at large N time out waiting for an \
             echo (the firmware's 5 s) when the machine is overloaded (shared with other \
             work): `--wave` lower, or `--timeout-ms` in the firmware arguments, trades \
             wall time for margin.\n",
            rows[0].qemu_cpu_per_board_ms(),
            rows[0].boards,
            big.qemu_cpu_per_board_ms(),
            big.boards,
            big.qemu_cpu_per_board_ms(),
            cores as f64 * 1000.0 / big.qemu_cpu_per_board_ms().max(1e-9),
            big.boards,
            big.median.boards_per_s,
            opt(big.median.mem_p50_mib, 0),
            wave = d.wave,
        )?;
    }
    match chart(&rows, &out.join("fleet.png")) {
        Ok(()) => writeln!(
            md,
            "![cost per board against the fleet size N](fleet.png)\n"
        )?,
        Err(e) => writeln!(md, "(chart failed: {e:#})\n")?,
    }
    Ok(())
}

use crate::chart::err as chart_err;

type Series = (
    &'static str,
    plotters::style::RGBColor,
    fn(&FleetRow) -> Option<f64>,
);

/// Two panels against N (evenly spaced: 1, 16, 64, 256): the cost per board
/// (wall time, QEMU CPU, host-bridge CPU) and the time to first echo (p50, p99).
fn chart(rows: &[FleetRow], path: &Path) -> Result<()> {
    use plotters::prelude::*;
    if rows.is_empty() {
        bail!("no rows");
    }
    let cost: Vec<Series> = vec![
        ("wall time per board", RGBColor(0xd9, 0x5f, 0x02), |r| {
            Some(r.wall_per_board_ms())
        }),
        ("QEMU CPU per board", RGBColor(0x1b, 0x9e, 0x77), |r| {
            Some(r.qemu_cpu_per_board_ms())
        }),
        (
            "host-bridge CPU per board",
            RGBColor(0x75, 0x70, 0xb3),
            |r| Some(r.host_cpu_per_board_ms()),
        ),
    ];
    let echo: Vec<Series> = vec![
        ("p50", RGBColor(0x66, 0x66, 0x66), |r| {
            r.median.first_echo_p50_ms
        }),
        ("p99", RGBColor(0xe7, 0x29, 0x8a), |r| {
            r.median.first_echo_p99_ms
        }),
    ];
    let root = BitMapBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let (left, right) = root.split_horizontally(580);
    panel(&left, rows, "cost per board (ms) against N", &cost)?;
    panel(&right, rows, "time to first echo (ms) against N", &echo)?;
    root.present().map_err(chart_err)?;
    Ok(())
}

fn panel<DB: plotters::prelude::DrawingBackend>(
    area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    rows: &[FleetRow],
    title: &str,
    series: &[Series],
) -> Result<()> {
    use plotters::prelude::*;
    let hi = rows
        .iter()
        .flat_map(|r| series.iter().filter_map(move |s| (s.2)(r)))
        .fold(0.0f64, f64::max)
        * 1.2;
    let n = rows.len();
    let labels: Vec<u32> = rows.iter().map(|r| r.boards).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3f64..(n as f64 - 0.7), 0.0..hi.max(1.0))
        .map_err(chart_err)?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| crate::chart::category(*x, "N=", &labels))
        .y_desc("ms")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(chart_err)?;
    for &(name, color, f) in series {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| f(r).map(|v| (i as f64, v)))
            .collect();
        crate::chart::line(&mut chart, pts, color, name, true)?;
    }
    crate::chart::legend(&mut chart, 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_host_bridge_fleet_prints() {
        let text = "fleet: 64 boards on the bridge\n\
                    booted 64, passed 63, failed 1\n\
                    time to first echo: p50 735 ms, p99 1190 ms\n\
                    peak memory per board: p50 38.2 MiB, max 38.6 MiB\n\
                    CPU: boards 7.50 s (0.117 s per board), host-bridge 0.720 s; wall 5.40 s (11.85 boards/s)\n";
        let (net, r) = parse_summary(text).unwrap();
        assert_eq!(net, "bridge");
        assert_eq!(
            r,
            FleetRun {
                boards: 64,
                passed: 63,
                failed: 1,
                wall_s: 5.4,
                boards_per_s: 11.85,
                first_echo_p50_ms: Some(735.0),
                first_echo_p99_ms: Some(1190.0),
                mem_p50_mib: Some(38.2),
                mem_max_mib: Some(38.6),
                boards_cpu_s: 7.5,
                host_cpu_s: 0.72,
            }
        );
        assert!(parse_summary("fleet: 3 boards on the bridge\n").is_err());
    }
}
