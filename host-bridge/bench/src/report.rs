//! REPORT.md and its PNG charts, from grid.json, e2e.json, impaired.json, footprint.json
//! and footprint.csv in the output directory (each may be missing: its section then
//! says so).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::e2e::E2eData;
use crate::footprint::{self, Footprint, PARTS};
use crate::grid::GridData;
use crate::impaired::{ImpairedData, ImpairedRun, STALL_MS};
use crate::load::LoadResult;
use crate::stats::median;

/// One figure of a run.
type Metric = fn(&LoadResult) -> Option<f64>;

const HB: &str = "host-bridge";
const TT: &str = "tokio-tungstenite";
const TORNADO: &str = "tornado";
const FWS: &str = "fastwebsockets";

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn size_label(s: usize) -> String {
    if s >= 1024 && s.is_multiple_of(1024) {
        format!("{} KiB", s / 1024)
    } else {
        format!("{s} B")
    }
}

fn fmt_num(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(v) if v >= 100.0 => {
            let s = format!("{:.0}", v);
            // thousands separators
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn fmt_ratio(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "–".into())
}

/// Results of one server in one cell, all repetitions.
fn cell<'a>(g: &'a GridData, server: &str, c: usize, s: usize) -> Vec<&'a LoadResult> {
    g.runs
        .iter()
        .filter(|r| r.server == server && r.conns == c && r.size == s)
        .filter_map(|r| r.result.as_ref())
        .collect()
}

fn cell_median(
    g: &GridData,
    server: &str,
    c: usize,
    s: usize,
    f: impl Fn(&LoadResult) -> Option<f64>,
) -> Option<f64> {
    let v: Vec<f64> = cell(g, server, c, s).into_iter().filter_map(f).collect();
    median(&v)
}

/// Every repetition's `a / b` in one cell, each ratio from runs made side by
/// side (their median is the paired ratio the report gives).
fn pair_ratios(
    g: &GridData,
    a: &str,
    b: &str,
    c: usize,
    s: usize,
    f: impl Fn(&LoadResult) -> Option<f64>,
) -> Vec<f64> {
    let mut ratios = Vec::new();
    for rep in 0..g.reps {
        let get = |name: &str| {
            g.runs
                .iter()
                .find(|r| r.server == name && r.rep == rep && r.conns == c && r.size == s)
                .and_then(|r| r.result.as_ref())
                .and_then(&f)
        };
        if let (Some(x), Some(y)) = (get(a), get(b)) {
            if y > 0.0 {
                ratios.push(x / y);
            }
        }
    }
    ratios
}

fn rate(r: &LoadResult) -> Option<f64> {
    Some(r.msgs_per_s)
}

fn per_cpu(r: &LoadResult) -> Option<f64> {
    r.msgs_per_cpu_s
}

fn yes_no(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

pub fn write(out: &Path) -> Result<()> {
    let grid: Option<GridData> = read(&out.join("grid.json"));
    let heavy: Option<GridData> = read(&out.join("grid-heavy.json"));
    let e2e: Option<E2eData> = read(&out.join("e2e.json"));
    let fp: Option<Footprint> = read(&out.join("footprint.json"));
    let impaired: Option<ImpairedData> = read(&out.join("impaired.json"));
    let fp_error: Option<String> = read::<serde_json::Value>(&out.join("footprint.json"))
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from));

    let _ =
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());

    let mut md = String::new();
    writeln!(
        md,
        "# Benchmarks: host-bridge beside its peers, end to end, footprint\n"
    )?;
    writeln!(
        md,
        "Written by `bash ci/bench.sh` (the `bench` crate, `host-bridge/bench/`). Every figure \
         below is a median of paired runs made in one session on one machine; ratios are the \
         median of per-pair ratios (runs of the servers alternate, cell by cell). This machine \
         is shared and noisy: trust the ratios more than the absolute numbers.\n"
    )?;

    if let Some(run) = read::<serde_json::Value>(&out.join("run.json")) {
        writeln!(
            md,
            "Last full run: started {}, {:.1} min of measuring (builds before it not counted), \
             `bench {}`.\n",
            run["started_utc"].as_str().unwrap_or("?"),
            run["elapsed_s"].as_f64().unwrap_or(0.0) / 60.0,
            run["args"].as_str().unwrap_or("")
        )?;
    }

    // ---- goals ------------------------------------------------------------------
    let mut goals = String::new();
    writeln!(goals, "| goal | measured | |\n| --- | --- | --- |")?;
    if let Some(g) = &grid {
        let has = |n: &str| g.servers.iter().any(|s| s == n);
        // (the other server, the factor to beat, the goal's wording, and shorter
        // when not measured)
        let ratio_goals = [
            (
                TT,
                1.35,
                "host-bridge ≥ 1.35x tokio-tungstenite in messages per server CPU-second, C=64, S=16 B, one worker",
                "host-bridge ≥ 1.35x tokio-tungstenite per CPU-second, C=64, S=16 B",
            ),
            (
                TORNADO,
                10.0,
                "host-bridge ≥ 10x tornado per server CPU-second, C=64, S=16 B",
                "host-bridge ≥ 10x tornado per CPU-second, C=64, S=16 B",
            ),
        ];
        for (other, factor, goal, short) in ratio_goals {
            if has(HB) && has(other) && g.conns.contains(&64) && g.sizes.contains(&16) {
                let r = median(&pair_ratios(g, HB, other, 64, 16, per_cpu));
                writeln!(
                    goals,
                    "| {goal} | {} | {} |",
                    fmt_ratio(r),
                    yes_no(r.map(|r| r >= factor))
                )?;
            } else {
                writeln!(
                    goals,
                    "| {short} | – | not measured: {} |",
                    missing(g, &[HB, other])
                )?;
            }
        }
        if has(HB) && has(TT) {
            never_below_row(&mut goals, g, "messages per server CPU-second", per_cpu)?;
            never_below_row(&mut goals, g, "messages/s, one-thread load generator", rate)?;
        }
        match &heavy {
            Some(sg)
                if sg.servers.iter().any(|s| s == HB) && sg.servers.iter().any(|s| s == TT) =>
            {
                never_below_row(
                    &mut goals,
                    sg,
                    &format!(
                        "messages/s, a {}-thread load generator competing with the server for the cores",
                        sg.client_threads
                    ),
                    rate,
                )?;
            }
            _ => {}
        }
    } else {
        writeln!(goals, "| server goals | – | not measured: no grid.json |")?;
    }
    if let Some(e) = &e2e {
        let get = |n: &str| {
            e.runs
                .iter()
                .find(|r| r.network == n && r.not_measured.is_none())
        };
        match (get("tap-bridge"), get("tap-direct")) {
            (Some(b), Some(d)) => {
                let r = e
                    .direct_over_bridge
                    .or_else(|| d.echoes_per_s.zip(b.echoes_per_s).map(|(d, b)| d / b));
                writeln!(
                    goals,
                    "| tap bridge within 10% of QEMU's own tap (echoes/s, direct / bridge) | {} | {} |",
                    fmt_ratio(r),
                    yes_no(r.map(|r| r <= 1.10))
                )?;
            }
            _ => writeln!(
                goals,
                "| tap bridge within 10% of QEMU's own tap | – | not measured: {} |",
                e.runs
                    .iter()
                    .filter(|r| r.network.starts_with("tap"))
                    .filter_map(|r| r
                        .not_measured
                        .as_ref()
                        .map(|w| format!("{}: {w}", r.network)))
                    .collect::<Vec<_>>()
                    .join("; ")
            )?,
        }
        let boots: Vec<f64> = e
            .runs
            .iter()
            .filter_map(|r| r.boot_to_first_echo_s)
            .collect();
        let best = boots
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
        let user = get("user").and_then(|r| r.boot_to_first_echo_s);
        let shown = user.or(best);
        writeln!(
            goals,
            "| boot to first echo under 1 s after QEMU starts | {} | {} |",
            shown.map(|s| format!("{s:.2} s")).unwrap_or("–".into()),
            yes_no(shown.map(|s| s < 1.0))
        )?;
    } else {
        writeln!(
            goals,
            "| end-to-end goals | – | not measured: no e2e.json |"
        )?;
    }
    if let Some(f) = &fp {
        for (goal, total, budget) in [
            ("flash under 64 KiB", f.flash_total, footprint::FLASH_BUDGET),
            (
                "static RAM under 32 KiB",
                f.ram_total,
                footprint::RAM_BUDGET,
            ),
        ] {
            writeln!(
                goals,
                "| {goal} | {} B ({:.1} KiB) | {} |",
                total,
                total as f64 / 1024.0,
                yes_no(Some(total < budget))
            )?;
        }
    } else {
        writeln!(
            goals,
            "| flash < 64 KiB, RAM < 32 KiB | – | not measured: {} |",
            fp_error.clone().unwrap_or("no footprint.json".into())
        )?;
    }
    writeln!(md, "## Goals\n\n{goals}")?;

    // ---- server grid ------------------------------------------------------------
    writeln!(md, "## Servers: throughput and latency on loopback\n")?;
    match &grid {
        None => writeln!(md, "Not measured: no grid.json (run `bash ci/bench.sh`).\n")?,
        Some(g) => {
            grid_section(&mut md, g)?;
            match throughput_chart(g, &out.join("throughput.png")) {
                Ok(()) => writeln!(
                    md,
                    "![messages/s and messages per server CPU-second by connections, one panel per message size](throughput.png)\n"
                )?,
                Err(e) => writeln!(md, "(chart failed: {e:#})\n")?,
            }
        }
    }
    if let Some(sg) = &heavy {
        heavy_load_section(&mut md, sg)?;
    }

    // ---- microbenchmarks -------------------------------------------------------------
    if let Some(m) = read::<Vec<crate::micro::Micro>>(&out.join("micro.json")) {
        writeln!(md, "### The shared library's per-byte loops\n")?;
        writeln!(
            md,
            "With large messages host-bridge's server profile was dominated by two loops of \
             `firmware/websocket` (see [PROFILE.md](PROFILE.md)): the UTF-8-aware reversal and \
             the unmasking. Both now work a word at a time; timed here against the \
             byte-at-a-time definitions they replaced (`host-bridge/bench/src/micro.rs`: \
             same results, checked first):\n"
        )?;
        writeln!(
            md,
            "| loop | size | library ns | byte-at-a-time ns | speed-up |"
        )?;
        writeln!(md, "| --- | --: | --: | --: | --: |")?;
        for r in &m {
            writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                r.what,
                size_label(r.size),
                fmt_num(Some(r.library_ns)),
                fmt_num(r.bytewise_ns),
                r.bytewise_ns
                    .map(|b| format!("{:.1}x", b / r.library_ns))
                    .unwrap_or("–".into())
            )?;
        }
        writeln!(md)?;
    }

    // ---- end to end ---------------------------------------------------------------
    writeln!(md, "## End to end through QEMU\n")?;
    match &e2e {
        None => writeln!(md, "Not measured: no e2e.json (run `bash ci/bench.sh`).\n")?,
        Some(e) => {
            e2e_section(&mut md, e)?;
            if e.runs.iter().any(|r| !r.rtts_ms.is_empty()) {
                match rtt_chart(e, &out.join("rtt.png")) {
                    Ok(()) => {
                        writeln!(md, "![round-trip time distribution per network](rtt.png)\n")?
                    }
                    Err(e) => writeln!(md, "(chart failed: {e:#})\n")?,
                }
            }
        }
    }

    // ---- host-bridge run vs QEMU's own tap (bench fastpath) ---------------------------
    if let Some(fp) = read::<crate::fastpath::FastPathData>(&out.join("fastpath.json")) {
        writeln!(
            md,
            "### host-bridge run: fast path and relay vs QEMU's own tap\n"
        )?;
        writeln!(md, "{}", crate::fastpath::markdown(&fp))?;
    }

    // ---- impaired -------------------------------------------------------------------
    writeln!(md, "## Lost frames: the tap bridge with loss each way\n")?;
    match &impaired {
        None => writeln!(
            md,
            "Not measured: no impaired.json (run `bash ci/bench.sh impaired`).\n"
        )?,
        Some(d) => impaired_section(&mut md, d)?,
    }

    // ---- fleet ----------------------------------------------------------------------
    writeln!(md, "## A fleet: many boards against one server\n")?;
    match read::<crate::fleet::FleetData>(&out.join("fleet.json")) {
        None => writeln!(
            md,
            "Not measured: no fleet.json (run `bench fleet` or `bash ci/bench.sh`).\n"
        )?,
        Some(f) => crate::fleet::section(&mut md, &f, out)?,
    }

    // ---- footprint ------------------------------------------------------------------
    writeln!(md, "## Footprint of the firmware image\n")?;
    match &fp {
        None => writeln!(
            md,
            "Not measured: {}\n",
            fp_error.unwrap_or("no footprint.json".into())
        )?,
        Some(f) => footprint_section(&mut md, f, &out.join("footprint.csv"))?,
    }

    writeln!(md, "## Method\n")?;
    writeln!(
        md,
        "* **Load generator** (`bench load`, `host-bridge/bench/src/load.rs`): tokio's current-thread \
         runtime (one core) and tokio-tungstenite's client, an implementation independent of ours. \
         It opens C connections (64 handshakes at a time), then each connection sends a text \
         message of S bytes (printable ASCII, a per-message counter in front), waits for the \
         reply and checks that it is the message reversed, and repeats: M messages per \
         connection (N per run in all, so every server does the same work; a fixed time \
         window instead would leave up to C large messages half-served at its end, a bias of \
         tens of percent at C=512, S=64 KiB). The measured phase runs from the moment every \
         connection is open to the last reply (or the time limit). Latency is per round trip; \
         p50/p99 over all connections.\n\
         * **Server CPU**: utime+stime of `/proc/PID/stat` at the start and the end of the phase \
         (10 ms ticks); **messages per CPU-second** = messages / that time, the fair figure when \
         a one-thread client on a 2-core machine bounds messages/s. The client's own CPU use \
         (per second of phase) is shown too: near 1.0 means the client was the bottleneck. \
         The second grid (`grid-heavy.json`) repeats the cells for host-bridge and \
         tokio-tungstenite with two load threads (`bench load --client-threads 2`), which \
         compete with the server for the two cores.\n\
         * **Peak RSS**: `VmHWM` of `/proc/PID/status`; every server is started afresh for \
         every run, so it is the peak of that run.\n\
         * **Servers**: `host-bridge serve --threads N --quiet`; `tt-reverse-server --threads N` \
         (this crate: tokio-tungstenite written the usual way, `chars().rev()`); the tutorial's \
         tornado server ported to Python 3 (`ci/peers/tornado_reverse_server.py --quiet`), \
         single-threaded by nature. Before the grid each server gets a UTF-8 probe \
         (`{}`) that must come back reversed by character.\n\
         * **End to end**: the firmware (`--url ... --count N --message <64 B>`) against the \
         tokio-tungstenite server started with `--arrivals`: the firmware sends message n+1 only \
         after checking echo n, so consecutive arrivals at the server are one full round trip \
         apart, timed outside the emulated machine. Boot to first echo: first arrival less \
         QEMU's start. Instructions per echo: QEMU's `-d in_asm,exec,nochain` log (Debian's \
         QEMU 7.2 has no TCG plugins), counted for N and 2N messages, difference / N.\n\
         * **Footprint**: `llvm-size -A` for totals (flash = vector table + text + rodata + \
         .data's initial values; static RAM = .data + .bss + .uninit), `llvm-nm --size-sort -S \
         --demangle` for the split: a symbol belongs to the first of firmware::ethernet (driver), \
         smoltcp, websocket, firmware (app) that its demangled path mentions, so generic code \
         instantiated for a part's types counts as that part's; rt+core is cortex-m, core and \
         compiler-builtins (and any other crate); websocket includes its handshakes' digest \
         crates (sha1, md5, digest, ...), smoltcp its `managed`; other is unmangled symbols \
         (vector table, memcpy) and what no symbol covers (anonymous constants, padding).\n",
        crate::grid::PROBE_TEXT
    )?;

    let path = out.join("REPORT.md");
    std::fs::write(&path, md).with_context(|| format!("write {}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

/// A goal row: host-bridge never below tokio-tungstenite in `what` (paired
/// medians) in any cell of `g`. Where messages/s is below while the load generator
/// was saturated in host-bridge's runs, the row says so: there it measured the client.
fn never_below_row(goals: &mut String, g: &GridData, what: &str, f: Metric) -> Result<()> {
    let mut below = Vec::new();
    let mut cells = 0;
    let saturated = 0.95 * g.client_threads as f64;
    for &c in &g.conns {
        for &s in &g.sizes {
            cells += 1;
            let pairs = pair_ratios(g, HB, TT, c, s, f);
            let Some(r) = median(&pairs) else {
                continue;
            };
            if r >= 1.0 {
                continue;
            }
            let client = |srv| cell_median(g, srv, c, s, |r| Some(r.client_cpu_s / r.secs));
            let note = match (client(HB), client(TT)) {
                (Some(hb), Some(tt)) if hb >= saturated => format!(
                    " (client-bound: the load generator's CPU {hb:.2} with host-bridge, {tt:.2} with tokio-tungstenite)"
                ),
                _ => String::new(),
            };
            // The spread of the pairs tells a tie lost to noise from a real loss.
            let lo = pairs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = pairs.iter().copied().fold(0.0, f64::max);
            below.push(format!(
                "C={c} S={} {r:.2}x, pairs {lo:.2}–{hi:.2}x{note}",
                size_label(s)
            ));
        }
    }
    writeln!(
        goals,
        "| host-bridge never below tokio-tungstenite in {what} (all {cells} cells) | {} | {} |",
        if below.is_empty() {
            "never below".to_string()
        } else {
            format!("below in: {}", below.join("; "))
        },
        yes_no(Some(below.is_empty()))
    )?;
    Ok(())
}

/// The second grid: host-bridge and tokio-tungstenite under a load of several
/// threads, so that messages/s is not the one load thread's limit.
fn heavy_load_section(md: &mut String, g: &GridData) -> Result<()> {
    writeln!(
        md,
        "### Under a heavier load ({} load threads)\n",
        g.client_threads
    )?;
    writeln!(
        md,
        "With one load thread, messages/s in the cells where that thread's CPU is near 1.0 \
         measures the load generator, not the server. Here the same cells run with {} load \
         threads (connections shared out among them, each thread a current-thread runtime). \
         The load threads and the server then compete for the machine's cores, so a server \
         that needs less CPU per message leaves more to its clients and serves more \
         messages per second; the load is no longer the only limit. Per CPU-second figures \
         are shown too; they differ from the one-thread grid's (the server shares its core \
         and batches differently), and the per CPU-second goal is the one-thread grid's. \
         Run {}, {} runs \
         per server and cell, same messages per run; tornado is left out (its one Python \
         thread is the bottleneck with any load).\n",
        g.client_threads, g.started_utc, g.reps
    )?;
    for (name, outcome) in &g.probe {
        if !outcome.starts_with("ok") {
            writeln!(md, "* UTF-8 reversal probe, {name}: {outcome}")?;
        }
    }
    for r in g.runs.iter().filter(|r| r.error.is_some()).take(10) {
        writeln!(
            md,
            "* run failed: {} C={} S={} rep {}: {}",
            r.server,
            r.conns,
            size_label(r.size),
            r.rep,
            r.error.as_deref().unwrap_or("")
        )?;
    }
    let ratio_cols = [(HB, TT)];
    writeln!(md, "Messages per second:\n")?;
    table(md, g, &ratio_cols, rate)?;
    writeln!(md, "Messages per server CPU-second:\n")?;
    table(md, g, &ratio_cols, per_cpu)?;
    Ok(())
}

fn missing(g: &GridData, want: &[&str]) -> String {
    let reasons: Vec<String> = g
        .skipped
        .iter()
        .filter(|(n, _)| want.contains(&n.as_str()))
        .map(|(n, why)| format!("{n}: {why}"))
        .collect();
    if reasons.is_empty() {
        "cell not in this grid".into()
    } else {
        reasons.join("; ")
    }
}

fn grid_section(md: &mut String, g: &GridData) -> Result<()> {
    writeln!(
        md,
        "Run {} on {}. Each run: every connection sends M = N / C messages, N by size: {} \
         (the phase ends at the last reply, or after {} s); {} runs per server and cell, \
         servers alternating cell by cell; Rust servers with {} worker thread(s).\n",
        g.started_utc,
        g.host,
        if g.messages.is_empty() {
            "–".to_string()
        } else {
            g.messages
                .iter()
                .map(|(s, n)| format!("{} → N = {n}", size_label(*s)))
                .collect::<Vec<_>>()
                .join(", ")
        },
        g.secs,
        g.reps,
        g.threads
    )?;
    for (name, why) in &g.skipped {
        writeln!(md, "* **{name} not measured**: {why}")?;
    }
    for (name, outcome) in &g.probe {
        writeln!(md, "* UTF-8 reversal probe, {name}: {outcome}")?;
    }
    let failures: Vec<String> = g
        .runs
        .iter()
        .filter_map(|r| {
            r.error.as_ref().map(|e| {
                format!(
                    "{} C={} S={} rep {}: {e}",
                    r.server,
                    r.conns,
                    size_label(r.size),
                    r.rep
                )
            })
        })
        .collect();
    for f in failures.iter().take(10) {
        writeln!(md, "* run failed: {f}")?;
    }
    writeln!(md)?;

    let ratio_cols: Vec<(&str, &str)> = [(HB, FWS), (HB, TT), (HB, TORNADO), (TT, TORNADO)]
        .into_iter()
        .filter(|(a, b)| g.servers.iter().any(|s| s == a) && g.servers.iter().any(|s| s == b))
        .collect();

    writeln!(md, "### Messages per server CPU-second (the fair figure)\n")?;
    table(md, g, &ratio_cols, per_cpu)?;
    writeln!(
        md,
        "### Messages per second (bounded by the one-thread client where its CPU is near 1.0)\n"
    )?;
    table(md, g, &ratio_cols, rate)?;

    writeln!(md, "### Round trip, peak RSS and client CPU\n")?;
    let columns: Vec<String> = g
        .servers
        .iter()
        .flat_map(|s| {
            [
                format!("{s} p50 / p99 µs"),
                format!("{s} RSS KiB"),
                format!("{s} client CPU"),
            ]
        })
        .collect();
    cell_table(md, g, &columns, |md, c, s| {
        for srv in &g.servers {
            let p50 = cell_median(g, srv, c, s, |r| Some(r.p50_us));
            let p99 = cell_median(g, srv, c, s, |r| Some(r.p99_us));
            let rss = cell_median(g, srv, c, s, |r| r.server_peak_rss_kib.map(|k| k as f64));
            let cli = cell_median(g, srv, c, s, |r| Some(r.client_cpu_s / r.secs));
            write!(
                md,
                " {} / {} | {} | {} |",
                fmt_num(p50),
                fmt_num(p99),
                fmt_num(rss),
                cli.map(|v| format!("{v:.2}")).unwrap_or("–".into())
            )?;
        }
        Ok(())
    })
}

fn table(md: &mut String, g: &GridData, ratio_cols: &[(&str, &str)], f: Metric) -> Result<()> {
    let servers = g.servers.iter().cloned();
    let ratios = ratio_cols.iter().map(|(a, b)| format!("{a} / {b}"));
    let columns: Vec<String> = servers.chain(ratios).collect();
    cell_table(md, g, &columns, |md, c, s| {
        for srv in &g.servers {
            write!(md, " {} |", fmt_num(cell_median(g, srv, c, s, f)))?;
        }
        for (a, b) in ratio_cols {
            write!(
                md,
                " {} |",
                fmt_ratio(median(&pair_ratios(g, a, b, c, s, f)))
            )?;
        }
        Ok(())
    })
}

/// A table of the grid's cells, one row per (C, S): `columns` head the columns
/// after C and S (all right-aligned numbers), and `cells` writes a row's rest.
fn cell_table(
    md: &mut String,
    g: &GridData,
    columns: &[String],
    mut cells: impl FnMut(&mut String, usize, usize) -> std::fmt::Result,
) -> Result<()> {
    write!(md, "| C | S |")?;
    for col in columns {
        write!(md, " {col} |")?;
    }
    writeln!(md)?;
    write!(md, "| --: | --: |")?;
    for _ in columns {
        write!(md, " --: |")?;
    }
    writeln!(md)?;
    for &c in &g.conns {
        for &s in &g.sizes {
            write!(md, "| {c} | {} |", size_label(s))?;
            cells(md, c, s)?;
            writeln!(md)?;
        }
    }
    writeln!(md)?;
    Ok(())
}

fn e2e_section(md: &mut String, e: &E2eData) -> Result<()> {
    writeln!(
        md,
        "Run {} on {}. Message: `{}` ({} B).\n",
        e.started_utc,
        e.host,
        e.message,
        e.message.len()
    )?;
    writeln!(md, "| network | how | echoes/s | rounds, echoes/s | p50 RTT ms | p99 RTT ms | boot to first echo s | QEMU wall s |")?;
    writeln!(md, "| --- | --- | --: | --: | --: | --: | --: | --: |")?;
    for r in &e.runs {
        let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or("–".into());
        match &r.not_measured {
            Some(why) if r.echoes_per_s.is_none() => writeln!(
                md,
                "| {} | {} | not measured: {} | | | | | |",
                r.network,
                r.how,
                why.replace('|', "\\|")
            )?,
            other => writeln!(
                md,
                "| {} | {}{} | {} | {} | {} | {} | {} | {} |",
                r.network,
                r.how,
                other
                    .as_ref()
                    .map(|w| format!(" (**{}**)", w.replace('|', "\\|")))
                    .unwrap_or_default(),
                f(r.echoes_per_s, 0),
                r.rounds_echoes_per_s
                    .iter()
                    .map(|v| format!("{v:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                f(r.p50_ms, 2),
                f(r.p99_ms, 2),
                f(r.boot_to_first_echo_s, 2),
                f(r.qemu_wall_s, 2)
            )?,
        }
    }
    writeln!(md)?;
    let get = |n: &str| {
        e.runs
            .iter()
            .find(|r| r.network == n)
            .and_then(|r| r.echoes_per_s)
    };
    if let (Some(b), Some(d)) = (get("tap-bridge"), get("tap-direct")) {
        let r = e.direct_over_bridge.unwrap_or(d / b);
        writeln!(
            md,
            "Bridge overhead: QEMU's own tap / tap bridge = {r:.2}x in echoes/s (median of \
             per-round ratios; goal ≤ 1.10x; below 1.00x the bridge was the faster); tap \
             bridge / QEMU's own tap = {} in p50 round trip.\n",
            fmt_ratio(e.bridge_over_direct_p50)
        )?;
    }
    for r in e.runs.iter().filter(|r| r.bridge_cpu_us_per_echo.is_some()) {
        let f = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or("–".into());
        writeln!(
            md,
            "* {}: the bridge process spent **{} µs on a CPU** per echo (two frames or \
             more: message, reply, ACKs) and **{} µs woken but waiting for a CPU** \
             (`/proc/PID/task/*/schedstat`, medians of the rounds).",
            r.network,
            f(r.bridge_cpu_us_per_echo),
            f(r.bridge_wait_us_per_echo)
        )?;
    }
    if e.runs.iter().any(|r| r.bridge_cpu_us_per_echo.is_some()) {
        writeln!(md)?;
    }
    if let Some(r) = &e.message_set {
        let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or("–".into());
        match (&r.not_measured, r.echoes_per_s) {
            (Some(why), None) => writeln!(md, "{}: not measured: {why}\n", r.network)?,
            _ => writeln!(
                md,
                "{} ({}; {} messages, one run): **{} echoes/s**, p50 {} ms, p99 {} ms round \
                 trip. A stall per multi-segment message (such as Nagle waiting for a \
                 delayed ACK, 40 ms) shows here first.\n",
                r.network,
                r.how,
                r.count,
                f(r.echoes_per_s, 0),
                f(r.p50_ms, 2),
                f(r.p99_ms, 2)
            )?,
        }
    }
    writeln!(
        md,
        "Firmware CPU per echo: {}\n",
        match e.insns_per_echo {
            Some(n) => format!(
                "**{n:.0} instructions** ({}); on a real LM3S6965 at 50 MHz, about one \
                 instruction per cycle, that is ~{:.0} µs of CPU per echo",
                e.insns_detail,
                n / 50.0
            ),
            None => e.insns_detail.clone(),
        }
    )?;
    Ok(())
}

fn impaired_section(md: &mut String, d: &ImpairedData) -> Result<()> {
    writeln!(
        md,
        "`bash ci/bench.sh impaired` (`bench impaired`, `host-bridge/bench/src/impaired.rs`), \
         {}; {}. `host-bridge run --impair loss=P% --seed S -- --count {} --message M` (64 B), \
         seeds {}, the two variants side by side cell by cell; figures are medians over the \
         seeds. Echoes/s is N over the time from the first message crossing the relay to the \
         last echo, from the capture (boot and handshake left out).\n",
        d.started_utc,
        d.host,
        d.count,
        seeds_of(d)
    )?;
    for (name, how) in &d.variants {
        writeln!(md, "* **{name}**: {how}")?;
    }
    writeln!(md)?;
    let mut losses: Vec<f64> = d.runs.iter().map(|r| r.loss_pct).collect();
    losses.sort_by(|a, b| a.total_cmp(b));
    losses.dedup();
    let runs = |v: &str, loss: f64| -> Vec<&ImpairedRun> {
        d.runs
            .iter()
            .filter(|r| r.variant == v && r.loss_pct == loss)
            .collect()
    };
    let med = |rs: &[&ImpairedRun], f: fn(&ImpairedRun) -> Option<f64>| -> Option<f64> {
        median(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    writeln!(
        md,
        "| loss each way | before echoes/s | after echoes/s | after / before | before wall s | after wall s | runs not exit 0 (before, after) |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for &loss in &losses {
        let (b, a) = (runs("before", loss), runs("after", loss));
        let (eb, ea) = (med(&b, |r| r.echoes_per_s), med(&a, |r| r.echoes_per_s));
        let failed = |rs: &[&ImpairedRun]| rs.iter().filter(|r| r.status != Some(0)).count();
        writeln!(
            md,
            "| {loss}% | {} | {} | {} | {} | {} | {}, {} |",
            fmt_num(eb),
            fmt_num(ea),
            fmt_ratio(ea.zip(eb).map(|(a, b)| a / b)),
            fmt_num(med(&b, |r| Some(r.wall_s))),
            fmt_num(med(&a, |r| Some(r.wall_s))),
            failed(&b),
            failed(&a)
        )?;
    }
    writeln!(
        md,
        "\nThe 0% cell times some {} round trips of well under a millisecond each, tens of \
         milliseconds in all: on a loaded machine scheduling noise decides it (per seed, before \
         {}; after {}), and nothing in the change acts without a loss.",
        d.count,
        per_seed(&runs("before", 0.0)),
        per_seed(&runs("after", 0.0))
    )?;
    writeln!(
        md,
        "\n**What a lost frame costs**, read from the runs' captures (`--pcap`; gaps above \
         {STALL_MS} ms between a request and its reply or a reply and the next request, all \
         lossy cells and seeds together; a clean round trip is about 1 ms):\n"
    )?;
    writeln!(
        md,
        "| variant | board's side (its frame lost, smoltcp resends): n, median, max ms | host's side (its frame lost, Linux resends): n, median, max ms |"
    )?;
    writeln!(md, "|---|---|---|")?;
    for (name, _) in &d.variants {
        let pick = |f: fn(&ImpairedRun) -> &Vec<f64>| -> String {
            let all: Vec<f64> = d
                .runs
                .iter()
                .filter(|r| &r.variant == name)
                .flat_map(|r| f(r).iter().copied())
                .collect();
            let max = all
                .iter()
                .copied()
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            format!("{}, {}, {}", all.len(), fmt_num(median(&all)), fmt_num(max))
        };
        writeln!(
            md,
            "| {name} | {} | {} |",
            pick(|r| &r.board_stalls_ms),
            pick(|r| &r.host_stalls_ms)
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// Each run's echoes/s, in seed order.
fn per_seed(runs: &[&ImpairedRun]) -> String {
    runs.iter()
        .map(|r| fmt_num(r.echoes_per_s))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seeds_of(d: &ImpairedData) -> String {
    let mut seeds: Vec<u64> = d.runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn footprint_section(md: &mut String, f: &Footprint, csv: &Path) -> Result<()> {
    writeln!(
        md,
        "Commit `{}`{}, measured {}: flash **{} B** of the 64 KiB goal, static RAM **{} B** of the 32 KiB goal.\n",
        f.commit,
        if f.dirty { " with uncommitted firmware changes" } else { "" },
        f.date_utc,
        f.flash_total,
        f.ram_total
    )?;
    write!(md, "| | total |")?;
    for p in PARTS {
        write!(md, " {p} |")?;
    }
    writeln!(md)?;
    writeln!(md, "| --- | --: |{}", " --: |".repeat(PARTS.len()))?;
    write!(md, "| flash B | {} |", f.flash_total)?;
    for v in f.flash {
        write!(md, " {v} |")?;
    }
    writeln!(md)?;
    write!(md, "| RAM B | {} |", f.ram_total)?;
    for v in f.ram {
        write!(md, " {v} |")?;
    }
    writeln!(md)?;
    if let Some(t) = f.text_by_source {
        write!(
            md,
            "| .text by source (inline chains) B | {} |",
            t.iter().sum::<u64>()
        )?;
        for v in t {
            write!(md, " {v} |")?;
        }
        writeln!(md)?;
    }
    writeln!(
        md,
        "\nThe first two rows split by symbol (`llvm-nm`): with fat LTO most of the driver is \
         inlined into the app's poll loop, so its bytes count as the app's. The last row splits \
         the code by where it was written (DWARF inline chains, `llvm-symbolizer --inlining`): \
         each instruction belongs to the innermost of its inlined frames that is in one of our \
         parts, so core's helpers inlined into the driver count as the driver's.\n"
    )?;
    writeln!(
        md,
        "Largest symbols:\n\n| part | where | bytes | symbol |\n| --- | --- | --: | --- |"
    )?;
    for (part, kind, size, name) in &f.top {
        let mut n = name.replace('|', "\\|");
        if n.len() > 100 {
            let mut cut = 100;
            while !n.is_char_boundary(cut) {
                cut -= 1;
            }
            n.truncate(cut);
            n.push('…');
        }
        writeln!(md, "| {part} | {kind} | {size} | `{n}` |")?;
    }
    writeln!(md)?;
    if let Ok(hist) = std::fs::read_to_string(csv) {
        let rows: Vec<&str> = hist.lines().skip(1).filter(|l| !l.is_empty()).collect();
        writeln!(
            md,
            "History (`footprint.csv`, one row per commit; last {}):\n",
            rows.len().min(10)
        )?;
        writeln!(
            md,
            "| date | commit | flash B | RAM B |\n| --- | --- | --: | --: |"
        )?;
        for row in rows.iter().rev().take(10).rev() {
            let c: Vec<&str> = row.split(',').collect();
            if c.len() >= 5 {
                let dirty = if c[2] == "true" { " (dirty)" } else { "" };
                writeln!(md, "| {} | `{}`{dirty} | {} | {} |", c[0], c[1], c[3], c[4])?;
            }
        }
        writeln!(md)?;
    }
    Ok(())
}

// ---- charts -----------------------------------------------------------------------

fn server_color(name: &str) -> RGBColor {
    match name {
        HB => RGBColor(0xd9, 0x5f, 0x02),
        TT => RGBColor(0x1b, 0x9e, 0x77),
        TORNADO => RGBColor(0x75, 0x70, 0xb3),
        FWS => RGBColor(0xe7, 0x29, 0x8a),
        _ => RGBColor(0x66, 0x66, 0x66),
    }
}

use crate::chart::err as chart_err;

/// Two rows (messages/s, messages per CPU-second) by one column per message size;
/// x = connections, y from zero, one line per server.
fn throughput_chart(g: &GridData, path: &Path) -> Result<()> {
    let cols = g.sizes.len().max(1);
    let root = BitMapBackend::new(path, (420 * cols as u32, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let (title, body) = root.split_vertically(40);
    title
        .draw_text(
            "Reverse-echo servers on loopback: messages/s (top), messages per server CPU-second (bottom)",
            &("sans-serif", 18).into_font().color(&BLACK),
            (10, 12),
        )
        .map_err(chart_err)?;
    let panels = body.split_evenly((2, cols));
    let metrics: [(&str, Metric); 2] = [("messages/s", rate), ("messages / CPU-s", per_cpu)];
    for (row, (label, f)) in metrics.iter().enumerate() {
        for (col, &size) in g.sizes.iter().enumerate() {
            let area = &panels[row * cols + col];
            let mut series = Vec::new();
            let mut hi = 0.0f64;
            for srv in &g.servers {
                let pts: Vec<(f64, f64)> = g
                    .conns
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &c)| cell_median(g, srv, c, size, f).map(|v| (i as f64, v)))
                    .collect();
                for &(_, v) in &pts {
                    hi = hi.max(v);
                }
                series.push((srv.clone(), pts));
            }
            if hi <= 0.0 {
                continue;
            }
            let hi = hi * 1.15;
            let n = g.conns.len();
            let conns = g.conns.clone();
            let mut chart = ChartBuilder::on(area)
                .caption(format!("S = {}", size_label(size)), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(-0.3f64..(n as f64 - 0.7), 0.0..hi)
                .map_err(chart_err)?;
            chart
                .configure_mesh()
                .x_labels(n)
                .x_label_formatter(&|x| crate::chart::category(*x, "C=", &conns))
                .y_desc(*label)
                .y_label_formatter(&|y| {
                    if *y >= 1000.0 && (*y % 1000.0).abs() > 1e-6 {
                        format!("{:.1}k", y / 1000.0)
                    } else if *y >= 1000.0 {
                        format!("{:.0}k", y / 1000.0)
                    } else {
                        format!("{y:.0}")
                    }
                })
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(chart_err)?;
            for (srv, pts) in series {
                crate::chart::line(&mut chart, pts, server_color(&srv), srv, true)?;
            }
            crate::chart::legend(&mut chart, 12)?;
        }
    }
    root.present().map_err(chart_err)?;
    Ok(())
}

/// The round-trip distribution per network: a histogram per network (shared bins,
/// clipped at the 99.5th percentile of all), drawn as outlines so they overlap.
fn rtt_chart(e: &E2eData, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let mut all: Vec<f64> = e
        .runs
        .iter()
        .flat_map(|r| r.rtts_ms.iter().copied())
        .collect();
    all.sort_by(|a, b| a.total_cmp(b));
    // Log-spaced bins from the fastest round trip to the 99.9th percentile: the
    // tail (scheduling hiccups of a shared machine) stays visible without
    // squashing the body.
    let max = all[((all.len() as f64 * 0.999) as usize).min(all.len() - 1)].max(0.01) * 1.1;
    let min = (all[0] * 0.9).clamp(0.001, max / 2.0);
    let bins = 50usize;
    let edge = |b: usize| min * (max / min).powf(b as f64 / bins as f64);
    let mut hists = Vec::new();
    let mut top = 0.0f64;
    for r in e.runs.iter().filter(|r| !r.rtts_ms.is_empty()) {
        let mut h = vec![0usize; bins];
        for &v in &r.rtts_ms {
            let pos = ((v.max(min) / min).ln() / (max / min).ln() * bins as f64) as usize;
            h[pos.min(bins - 1)] += 1;
        }
        let frac: Vec<f64> = h
            .iter()
            .map(|&n| n as f64 / r.rtts_ms.len() as f64)
            .collect();
        top = frac.iter().copied().fold(top, f64::max);
        hists.push((r.network.clone(), frac, r.p50_ms, r.p99_ms));
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Firmware round trip (64 B messages) by network",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(min.log10()..max.log10(), 0.0..top * 1.1)
        .map_err(chart_err)?;
    chart
        .configure_mesh()
        .x_desc("round trip, ms (log scale; the last bin holds everything above)")
        .x_labels(12)
        .x_label_formatter(&|x| {
            let v = 10f64.powf(*x);
            if v < 1.0 {
                format!("{v:.2}")
            } else {
                format!("{v:.1}")
            }
        })
        .y_desc("fraction of echoes")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(chart_err)?;
    let colors = [
        RGBColor(0x1b, 0x9e, 0x77),
        RGBColor(0xd9, 0x5f, 0x02),
        RGBColor(0xe7, 0x29, 0x8a),
        RGBColor(0x75, 0x70, 0xb3),
    ];
    for (i, (name, frac, p50, p99)) in hists.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        // A step outline of the histogram.
        let mut pts = vec![(min.log10(), 0.0)];
        for (b, &v) in frac.iter().enumerate() {
            pts.push((edge(b).log10(), v));
            pts.push((edge(b + 1).log10(), v));
        }
        pts.push((max.log10(), 0.0));
        let label = format!(
            "{name}: p50 {} ms, p99 {} ms",
            p50.map(|v| format!("{v:.2}")).unwrap_or("–".into()),
            p99.map(|v| format!("{v:.2}")).unwrap_or("–".into())
        );
        crate::chart::line(&mut chart, pts, color, label, false)?;
    }
    crate::chart::legend(&mut chart, 13)?;
    root.present().map_err(chart_err)?;
    Ok(())
}
