//! `bench`: host-bridge's server measured side by side with the servers a user would
//! pick instead, the firmware end to end through QEMU, and the firmware's footprint;
//! results as JSON, a Markdown report and PNG charts. `bash ci/bench.sh` runs it all.
//!
//! ```text
//! bench all      [--out DIR] [--secs S] [--reps N] [--conns 1,64,512] [--sizes 16,1024,65536]
//! bench grid     ...                 the server grid only (DIR/grid.json)
//! bench e2e      [--out DIR]         the firmware through QEMU (DIR/e2e.json)
//! bench impaired [--out DIR]         the firmware on a lossy bridge, before/after (DIR/impaired.json)
//! bench fastpath [--out DIR] [--count N] [--rounds R]
//!                                    host-bridge run (fast path, --relay) vs QEMU's own tap
//!                                    (DIR/fastpath.json, a section of REPORT.md)
//! bench footprint [--out DIR]        flash/RAM by part (DIR/footprint.json, footprint.csv)
//! bench fleet    [--out DIR] [--fleet-boards 1,16,64,256] [--fleet-reps 3] [--fleet-count 20]
//!                                    the fleet row: `host-bridge fleet` by N (DIR/fleet.json)
//! bench report   [--out DIR]         REPORT.md and PNGs from the JSON files in DIR
//! bench load     --url ws://127.0.0.1:PORT/ws -c C -s S [--secs T] [--msgs M] [--pid PID]
//! ```

mod chart;
mod e2e;
mod fastpath;
mod fleet;
mod footprint;
mod grid;
mod impaired;
mod load;
mod micro;
mod procfs;
mod report;
mod servers;
mod stats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks: servers side by side, the firmware end to end, footprint, report")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Where the JSON results, REPORT.md, the charts and footprint.csv go.
    #[arg(long, default_value = "host-bridge/bench/report")]
    out: PathBuf,
    /// The repository's root (for ci/ scripts and the venv).
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

#[derive(Args, Clone)]
struct GridArgs {
    /// Connections per cell.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 64, 512])]
    conns: Vec<usize>,
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 1024, 65536])]
    sizes: Vec<usize>,
    /// Messages per run, all connections together (each sends total/C); 0: as many
    /// as fit in --secs. Default: min(60000, 200 MB / S), so that the slowest server
    /// takes a few seconds per run.
    #[arg(long)]
    messages: Option<u64>,
    /// Time limit of each run's measured phase, seconds (the phase also ends when
    /// every connection has sent its messages).
    #[arg(long, default_value_t = 12.0)]
    secs: f64,
    /// Runs of each (server, cell); medians are of these.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Worker threads of the Rust servers (1 = a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Servers of the grid (of host-bridge, tokio-tungstenite, fastwebsockets,
    /// tornado); `bench grid --servers host-bridge,fastwebsockets,tokio-tungstenite
    /// --heavy-load-threads 0` is the Rust peers' grid alone.
    #[arg(long, value_delimiter = ',', default_values_t = servers::SERVERS.map(String::from))]
    servers: Vec<String>,
    /// Load generator threads of the second grid (grid-heavy.json), which
    /// measures host-bridge and tokio-tungstenite under a load that competes with
    /// the server for the cores; 0 skips it. The first grid uses one load thread.
    #[arg(long, default_value_t = 2)]
    heavy_load_threads: usize,
}

#[derive(Args, Clone)]
struct E2eArgs {
    /// Messages per end-to-end run.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Runs per network, alternating; figures are medians.
    #[arg(long = "e2e-reps", default_value_t = 5)]
    e2e_reps: usize,
    /// Messages of the instruction-count runs (two runs, N and 2N: the difference
    /// cancels boot and handshake).
    #[arg(long, default_value_t = 50)]
    icount_msgs: u32,
    /// Do not build the firmware image first.
    #[arg(long)]
    no_build: bool,
}

#[derive(Args, Clone)]
struct ImpairedArgs {
    /// Loss in percent, each way, of the impaired row's cells.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 1.0, 5.0, 10.0])]
    losses: Vec<f64>,
    /// Seeds of the impairment; figures are medians over them.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3])]
    seeds: Vec<u64>,
    /// Messages per impaired run.
    #[arg(long = "impaired-count", default_value_t = 200)]
    impaired_count: u32,
    /// The `before` image (default: built with SMOLTCP_RTTE_MIN_RTO=1000 in
    /// target/rto-floor-1000).
    #[arg(long)]
    before_image: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct FleetArgs {
    /// Fleet sizes N (boards).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64, 256])]
    fleet_boards: Vec<u32>,
    /// Rounds, every size once per round (order rotated); figures are medians.
    #[arg(long, default_value_t = 3)]
    fleet_reps: usize,
    /// Echoes per board.
    #[arg(long, default_value_t = 20)]
    fleet_count: u32,
    /// Boards at once (`host-bridge fleet --wave`).
    #[arg(long, default_value_t = 16)]
    fleet_wave: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything, then the report.
    All {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        grid: GridArgs,
        #[command(flatten)]
        e2e: E2eArgs,
        #[command(flatten)]
        impaired: ImpairedArgs,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// The server grid.
    Grid {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        grid: GridArgs,
    },
    /// The firmware end to end through QEMU.
    E2e {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        e2e: E2eArgs,
    },
    /// The fleet row: `host-bridge fleet` for each N (root: on the bridge).
    Fleet {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Do not build the firmware image first.
        #[arg(long)]
        no_build: bool,
    },
    /// The firmware on the tap bridge losing frames each way, before and after the
    /// loss-recovery work (issue 17), and what a lost frame costs (from captures).
    Impaired {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        impaired: ImpairedArgs,
        /// Do not build the firmware images first.
        #[arg(long)]
        no_build: bool,
    },
    /// Flash and RAM by part; appends to footprint.csv.
    Footprint {
        #[command(flatten)]
        common: Common,
        /// Do not build the firmware image first.
        #[arg(long)]
        no_build: bool,
    },
    /// `host-bridge run`'s default (fast path) and `--relay` against QEMU's own tap,
    /// per round trip: just these rows (root).
    Fastpath {
        #[command(flatten)]
        common: Common,
        /// Echoes per run.
        #[arg(long, default_value_t = 1000)]
        count: u32,
        /// Rounds (each runs the three rows, order rotating).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
    },
    /// REPORT.md and charts from the JSON files.
    Report {
        #[command(flatten)]
        common: Common,
    },
    /// Microbenchmarks of the library's per-byte loops against byte-at-a-time ones.
    Micro {
        #[command(flatten)]
        common: Common,
    },
    /// One load against a running server.
    Load {
        #[arg(long)]
        url: String,
        #[arg(short = 'c', long, default_value_t = 64)]
        conns: usize,
        #[arg(short = 's', long, default_value_t = 16)]
        size: usize,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Per-connection message cap (default: as many as fit in --secs).
        #[arg(long)]
        msgs: Option<u64>,
        /// The server's pid, for its CPU time and peak RSS.
        #[arg(long)]
        pid: Option<u32>,
        /// Load generator threads (the connections are shared out among them).
        #[arg(long, default_value_t = 1)]
        client_threads: usize,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::All {
            common,
            grid,
            e2e,
            impaired,
            fleet,
        } => {
            let out = prepare(&common)?;
            let t0 = std::time::Instant::now();
            let started = utc_now();
            run_footprint(&common, &out, e2e.no_build)?;
            run_e2e(&common, &out, &e2e, true)?;
            run_impaired(&common, &out, &impaired, !e2e.no_build)?;
            run_fleet(&common, &out, &fleet, true)?;
            run_grid(&common, &out, &grid)?;
            run_micro(&out)?;
            let args: Vec<String> = std::env::args().skip(1).collect();
            write_json(
                &out.join("run.json"),
                &serde_json::json!({
                    "started_utc": started,
                    "elapsed_s": t0.elapsed().as_secs_f64(),
                    "args": args.join(" "),
                }),
            )?;
            report::write(&out)
        }
        Cmd::Fleet {
            common,
            fleet,
            no_build,
        } => {
            let out = prepare(&common)?;
            run_fleet(&common, &out, &fleet, no_build)?;
            report::write(&out)
        }
        Cmd::Micro { common } => {
            let out = prepare(&common)?;
            run_micro(&out)?;
            report::write(&out)
        }
        Cmd::Grid { common, grid } => {
            let out = prepare(&common)?;
            run_grid(&common, &out, &grid)?;
            report::write(&out)
        }
        Cmd::E2e { common, e2e } => {
            let out = prepare(&common)?;
            run_e2e(&common, &out, &e2e, e2e.no_build)?;
            report::write(&out)
        }
        Cmd::Impaired {
            common,
            impaired,
            no_build,
        } => {
            let out = prepare(&common)?;
            run_impaired(&common, &out, &impaired, !no_build)?;
            report::write(&out)
        }
        Cmd::Footprint { common, no_build } => {
            let out = prepare(&common)?;
            run_footprint(&common, &out, no_build)?;
            report::write(&out)
        }
        Cmd::Report { common } => report::write(&prepare(&common)?),
        Cmd::Fastpath {
            common,
            count,
            rounds,
        } => {
            let out = prepare(&common)?;
            let image = host_bridge::qemu::default_image(&common.root.canonicalize()?)?;
            let mut data = fastpath::run(&common.root, &image, count, rounds)?;
            data.started_utc = utc_now();
            eprint!("{}", fastpath::markdown(&data));
            write_json(&out.join("fastpath.json"), &data)?;
            report::write(&out)
        }
        Cmd::Load {
            url,
            conns,
            size,
            secs,
            msgs,
            pid,
            client_threads,
        } => {
            let r = load::run(&load::LoadConfig {
                url,
                conns,
                size,
                duration: Duration::from_secs_f64(secs),
                max_msgs: msgs,
                server_pid: pid,
                client_threads,
            })?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
    }
}

fn prepare(common: &Common) -> Result<PathBuf> {
    std::fs::create_dir_all(&common.out)
        .with_context(|| format!("create {}", common.out.display()))?;
    Ok(common.out.clone())
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("write {}", path.display()))
}

fn log_dir() -> PathBuf {
    std::env::temp_dir().join(format!("bench-logs-{}", std::process::id()))
}

fn run_grid(common: &Common, out: &Path, g: &GridArgs) -> Result<()> {
    let mut cfg = grid::GridConfig {
        conns: g.conns.clone(),
        sizes: g.sizes.clone(),
        messages: g.messages,
        secs: g.secs,
        reps: g.reps,
        threads: g.threads,
        client_threads: 1,
        servers: servers::SERVERS
            .into_iter()
            .filter(|n| g.servers.iter().any(|w| w == n))
            .collect(),
    };
    if let Some(unknown) = g
        .servers
        .iter()
        .find(|w| !servers::SERVERS.contains(&w.as_str()))
    {
        anyhow::bail!(
            "--servers: unknown server {unknown} (known: {:?})",
            servers::SERVERS
        );
    }
    let data = grid::run(&common.root, &cfg, &log_dir())?;
    write_json(&out.join("grid.json"), &data)?;
    let heavy = out.join("grid-heavy.json");
    if g.heavy_load_threads == 0 {
        let _ = std::fs::remove_file(&heavy);
        return Ok(());
    }
    // tornado is left out: one thread of Python is the bottleneck with any load.
    // (fastwebsockets stays, when asked for.)
    cfg.client_threads = g.heavy_load_threads;
    cfg.servers.retain(|n| *n != "tornado");
    let data = grid::run(&common.root, &cfg, &log_dir())?;
    write_json(&heavy, &data)
}

fn run_e2e(common: &Common, out: &Path, e: &E2eArgs, no_build: bool) -> Result<()> {
    let cfg = e2e::E2eConfig {
        count: e.count,
        reps: e.e2e_reps,
        icount_msgs: e.icount_msgs,
        build: !no_build,
    };
    let data = e2e::run(&common.root, &cfg, &log_dir())?;
    // Compact: it holds every round trip (tens of thousands of numbers).
    let path = out.join("e2e.json");
    std::fs::write(&path, serde_json::to_string(&data)? + "\n")
        .with_context(|| format!("write {}", path.display()))
}

fn run_impaired(common: &Common, out: &Path, a: &ImpairedArgs, build: bool) -> Result<()> {
    let cfg = impaired::ImpairedConfig {
        losses: a.losses.clone(),
        seeds: a.seeds.clone(),
        count: a.impaired_count,
        before_image: a.before_image.clone(),
        build,
    };
    let data = impaired::run(&common.root, &cfg, &log_dir())?;
    write_json(&out.join("impaired.json"), &data)
}

fn run_fleet(common: &Common, out: &Path, f: &FleetArgs, no_build: bool) -> Result<()> {
    let cfg = fleet::FleetConfig {
        boards: f.fleet_boards.clone(),
        reps: f.fleet_reps,
        count: f.fleet_count,
        wave: f.fleet_wave,
        build: !no_build,
    };
    let data = fleet::run(&common.root, &cfg)?;
    write_json(&out.join("fleet.json"), &data)
}

fn run_micro(out: &Path) -> Result<()> {
    eprintln!("bench: microbenchmarks of the per-byte loops");
    let m = micro::run(&[16, 1024, 65536])?;
    for r in &m {
        eprintln!(
            "bench: {} {} B: {:.0} ns, byte-at-a-time {}",
            r.what,
            r.size,
            r.library_ns,
            r.bytewise_ns
                .map(|p| format!("{p:.0} ns"))
                .unwrap_or("-".into())
        );
    }
    write_json(&out.join("micro.json"), &m)
}

fn run_footprint(common: &Common, out: &Path, no_build: bool) -> Result<()> {
    match footprint::build_and_measure(&common.root, !no_build) {
        Ok(fp) => {
            eprintln!(
                "bench: footprint {}{}: flash {} B, RAM {} B",
                fp.commit,
                if fp.dirty { " (dirty)" } else { "" },
                fp.flash_total,
                fp.ram_total
            );
            footprint::update_csv(&out.join("footprint.csv"), &fp)?;
            write_json(&out.join("footprint.json"), &fp)
        }
        Err(e) => {
            eprintln!("bench: footprint not measured: {e:#}");
            write_json(
                &out.join("footprint.json"),
                &serde_json::json!({ "error": format!("{e:#}") }),
            )
        }
    }
}

/// Now, as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// CPU model, core count and load average, for the report's header.
pub fn host_summary() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpu}, {cores} cores, load average {} at start",
        load.join(" ")
    )
}
