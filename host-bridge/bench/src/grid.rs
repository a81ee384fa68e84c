//! The server grid: every server under the same loads, C connections x S bytes,
//! repeated, with the servers' order rotated from cell to cell so that each
//! comparison is between runs made close together (paired), not hours apart.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::load::{self, LoadConfig, LoadResult};
use crate::servers::{self, ServerSpec, SERVERS};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridRun {
    pub server: String,
    pub rep: usize,
    pub conns: usize,
    pub size: usize,
    pub result: Option<LoadResult>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct GridData {
    pub started_utc: String,
    pub host: String,
    /// Time limit of a run's measured phase.
    pub secs: f64,
    /// Messages per run, by size (all connections together; 0 = time-limited only).
    #[serde(default)]
    pub messages: Vec<(usize, u64)>,
    pub reps: usize,
    pub threads: usize,
    /// Load generator threads (older results: 1).
    #[serde(default = "one")]
    pub client_threads: usize,
    pub conns: Vec<usize>,
    pub sizes: Vec<usize>,
    /// Servers measured, in the report's order.
    pub servers: Vec<String>,
    /// Servers that could not run, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Servers whose reply to a UTF-8 probe was wrong or missing.
    pub probe: Vec<(String, String)>,
    pub runs: Vec<GridRun>,
}

fn one() -> usize {
    1
}

pub struct GridConfig {
    pub conns: Vec<usize>,
    pub sizes: Vec<usize>,
    /// Messages per run (all connections); `None`: [`default_messages`].
    pub messages: Option<u64>,
    pub secs: f64,
    pub reps: usize,
    /// Worker threads of the Rust servers.
    pub threads: usize,
    /// Load generator threads.
    pub client_threads: usize,
    /// The servers to measure (of host-bridge, tokio-tungstenite, tornado).
    pub servers: Vec<&'static str>,
}

/// Messages per run for size `s`: 60000 (the fastest server then runs ~1 s, 100
/// ticks of /proc's 10 ms CPU clock), or fewer for big messages (200 MB a run).
pub fn default_messages(s: usize) -> u64 {
    (200_000_000 / s.max(1) as u64).clamp(1000, 60_000)
}

/// A message with 1-, 2-, 3- and 4-byte UTF-8 characters: reversed by character,
/// not by byte, or the reply is not valid UTF-8.
pub const PROBE_TEXT: &str = "héllo, wörld — ∑ 😀 end";

pub fn run(root: &Path, cfg: &GridConfig, log_dir: &Path) -> Result<GridData> {
    let bin_dir = servers::bin_dir()?;
    let mut specs: Vec<ServerSpec> = Vec::new();
    let mut data = GridData {
        started_utc: crate::utc_now(),
        host: crate::host_summary(),
        secs: cfg.secs,
        messages: cfg
            .sizes
            .iter()
            .map(|&s| (s, cfg.messages.unwrap_or_else(|| default_messages(s))))
            .collect(),
        reps: cfg.reps,
        threads: cfg.threads,
        client_threads: cfg.client_threads,
        conns: cfg.conns.clone(),
        sizes: cfg.sizes.clone(),
        ..Default::default()
    };
    let names = SERVERS;
    for (name, spec) in names
        .iter()
        .zip(servers::grid_servers(root, &bin_dir, cfg.threads))
        .filter(|(name, _)| cfg.servers.contains(name))
    {
        match spec {
            Ok(s) => specs.push(s),
            Err(e) => {
                eprintln!("bench: skipping {name}: {e:#}");
                data.skipped.push((name.to_string(), format!("{e:#}")));
            }
        }
    }
    std::fs::create_dir_all(log_dir)?;

    // Correctness first: a UTF-8 message must come back reversed by character.
    for spec in &specs {
        let log = log_dir.join(format!("{}.log", spec.name));
        let outcome = servers::start(spec, &log)
            .and_then(|srv| {
                let r = load::probe(&srv.url(), PROBE_TEXT);
                srv.stop()?;
                r
            })
            .map(|()| "ok".to_string())
            .unwrap_or_else(|e| format!("FAILED: {e:#}"));
        eprintln!("bench: probe {}: {outcome}", spec.name);
        data.probe.push((spec.name.clone(), outcome));
    }
    data.servers = specs.iter().map(|s| s.name.clone()).collect();

    let cells: Vec<(usize, usize)> = cfg
        .conns
        .iter()
        .flat_map(|&c| cfg.sizes.iter().map(move |&s| (c, s)))
        .collect();
    let total = cfg.reps * cells.len() * specs.len();
    let mut done = 0;
    for rep in 0..cfg.reps {
        for (i, &(conns, size)) in cells.iter().enumerate() {
            // Rotate the order so no server always runs first (or last) in a pair.
            let n = specs.len();
            for k in 0..n {
                let spec = &specs[(k + rep + i) % n];
                done += 1;
                let log = log_dir.join(format!("{}.log", spec.name));
                let budget = cfg.messages.unwrap_or_else(|| default_messages(size));
                let per_conn = (budget > 0).then(|| budget.div_ceil(conns as u64));
                let outcome = measure(spec, &log, (conns, size), cfg, per_conn);
                match &outcome {
                    Ok(r) => eprintln!(
                        "bench: [{done}/{total}] rep {rep} C={conns} S={size} load x{} {:<17} {:>9.0} msg/s {:>9.0} msg/CPU-s p50 {:>7.0} us p99 {:>7.0} us rss {:>6} KiB client CPU {:.2}",
                        cfg.client_threads,
                        spec.name,
                        r.msgs_per_s,
                        r.msgs_per_cpu_s.unwrap_or(f64::NAN),
                        r.p50_us,
                        r.p99_us,
                        r.server_peak_rss_kib.unwrap_or(0),
                        r.client_cpu_s / r.secs,
                    ),
                    Err(e) => eprintln!("bench: [{done}/{total}] rep {rep} C={conns} S={size} {}: FAILED: {e:#}", spec.name),
                }
                data.runs.push(GridRun {
                    server: spec.name.clone(),
                    rep,
                    conns,
                    size,
                    error: outcome.as_ref().err().map(|e| format!("{e:#}")),
                    result: outcome.ok(),
                });
            }
        }
    }
    Ok(data)
}

fn measure(
    spec: &ServerSpec,
    log: &Path,
    (conns, size): (usize, usize),
    grid: &GridConfig,
    per_conn: Option<u64>,
) -> Result<LoadResult> {
    let srv = servers::start(spec, log)?;
    let cfg = LoadConfig {
        url: srv.url(),
        conns,
        size,
        duration: Duration::from_secs_f64(grid.secs),
        max_msgs: per_conn,
        server_pid: Some(srv.pid()),
        client_threads: grid.client_threads,
    };
    let r = load::run(&cfg);
    srv.stop()?;
    r
}
