//! End to end through QEMU: the firmware sends 1000 messages of 64 B and checks each
//! reversed echo, over three networks:
//!
//! * `user`: QEMU's user network (slirp), the server on the host's 127.0.0.1;
//! * `tap-bridge`: QEMU's socket netdev relayed by `host-bridge bridge` to a tap in a
//!   namespace of its own, the server inside it, no impairment;
//! * `tap-direct`: QEMU's own `-netdev tap` straight into such a namespace (QEMU runs
//!   inside it), the same server — so `tap-bridge / tap-direct` is the bridge's cost.
//!
//! The firmware is timed from outside: the server (tokio-tungstenite's, with
//! `--arrivals`) notes when each message arrives. The firmware sends message n+1 only
//! after it has checked echo n, so the gap between two arrivals is one full round trip
//! (network both ways, the firmware's receive, check and send). Echoes/s is
//! `(N-1) / (last arrival - first arrival)`; boot-to-first-echo is the first message's
//! arrival (when its echo leaves the server) less the moment QEMU was started.
//!
//! Firmware CPU per echo: Debian's QEMU 7.2 ships no TCG plugins, so instructions are
//! counted from QEMU's own log (`-d in_asm,exec,nochain`: each translated block's
//! instruction count, summed over every block executed), for N and 2N messages; the
//! difference over N cancels boot, DHCP and the handshake.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use host_bridge::netns::{self, Netns};

use crate::servers::{self, ServerSpec};
use crate::stats::{median, percentile};

pub struct E2eConfig {
    pub count: u32,
    /// Runs per network (alternating); figures are medians.
    pub reps: usize,
    pub icount_msgs: u32,
    pub build: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct NetRun {
    pub network: String,
    pub how: String,
    /// Why there is no figure, if there is none.
    pub not_measured: Option<String>,
    pub count: u32,
    pub echoes_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub boot_to_first_echo_s: Option<f64>,
    /// QEMU's wall time, start to exit.
    pub qemu_wall_s: Option<f64>,
    /// Round trips, ms, in order (all rounds, one after the other).
    pub rtts_ms: Vec<f64>,
    /// Echoes/s of each round.
    #[serde(default)]
    pub rounds_echoes_per_s: Vec<f64>,
    /// The last lines the firmware printed.
    pub firmware_tail: String,
    /// The bridge process (where there is one), per echo: µs on a CPU, and µs
    /// runnable but waiting for a CPU (schedstat) — its own code's cost, and what
    /// waking it up costs.
    #[serde(default)]
    pub bridge_cpu_us_per_echo: Option<f64>,
    #[serde(default)]
    pub bridge_wait_us_per_echo: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct E2eData {
    pub started_utc: String,
    pub host: String,
    pub message: String,
    pub runs: Vec<NetRun>,
    /// Median over rounds of (QEMU's own tap echoes/s) / (tap bridge echoes/s).
    #[serde(default)]
    pub direct_over_bridge: Option<f64>,
    /// Median over rounds of (tap bridge p50 RTT) / (QEMU's own tap p50 RTT): the same
    /// overhead seen in the typical round trip, less sensitive to scheduling hiccups.
    #[serde(default)]
    pub bridge_over_direct_p50: Option<f64>,
    pub insns_per_echo: Option<f64>,
    pub insns_detail: String,
    /// The tap bridge with the firmware's own message set instead of 64 B.
    #[serde(default)]
    pub message_set: Option<NetRun>,
}

/// 64 bytes of ASCII, the same every time (the firmware's `--message`).
pub const MESSAGE: &str = "The quick brown fox jumps over the lazy dog, 0123456789 ABCDEFG.";
const MAC: &str = "52:54:00:12:34:56";
/// Messages of the message-set run: 100 times the firmware's 9 cases.
const SET_COUNT: u32 = 900;
/// The user network's view of the host.
const SLIRP_HOST_IP: &str = "10.0.2.2";
/// The tap networks' addresses: those of `host-bridge bridge`'s defaults, so the
/// bridge and QEMU's own tap differ in nothing but who moves the frames.
const TAP_HOST_IP: &str = "192.168.76.1";
const TAP_GUEST_IP: &str = "192.168.76.2";
const TAP_PREFIX: &str = "24";
const NETNS_PREFIX: &str = "bench-e2e";

/// Whether the firmware has a WebSocket client yet: its usage text names --url and
/// a run against a closed port fails in the network, not in argument parsing.
fn firmware_has_client(root: &Path, image: &Path) -> Result<()> {
    let out = Command::new(root.join("ci/qemu-run"))
        .arg(image)
        .arg("--help")
        .env("FIRMWARE_TIMEOUT", "20")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("--url") {
        bail!("the firmware's --help does not offer --url");
    }
    Ok(())
}

/// A namespace of ours, with a persistent tap `tap0` holding 192.168.76.1/24 when
/// asked (QEMU opens the tap by name); removed on drop.
fn tap_ns(with_tap: bool) -> Result<Netns> {
    netns::reap_stale(NETNS_PREFIX);
    let ns = Netns::create(NETNS_PREFIX)?;
    if with_tap {
        ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{TAP_HOST_IP}/{TAP_PREFIX}"),
            "dev",
            "tap0",
        ])?;
        ns.ip(&["link", "set", "tap0", "up"])?;
    }
    Ok(ns)
}

fn rand_suffix() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0)
}

struct Network {
    name: &'static str,
    how: String,
    /// Where the server listens (inside `ns` if there is one).
    listen_host: &'static str,
    /// The firmware's view of the server's host.
    url_host: &'static str,
    /// QEMU network options (ci/qemu-run's FIRMWARE_NET).
    qemu_net: String,
    /// Firmware options besides the URL, count and message.
    fw_args: Vec<String>,
    /// Run the server (and QEMU, if `qemu_in_ns`) inside this namespace.
    ns: Option<String>,
    qemu_in_ns: bool,
    /// What to remove afterwards: our namespace, or the bridge (stopped with SIGTERM
    /// so that it removes its own).
    _tapns: Option<Netns>,
    helper: Option<std::process::Child>,
}

fn exec_prefix(ns: &str) -> Vec<String> {
    ["ip", "netns", "exec", ns]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn stop_child(mut child: std::process::Child) {
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn static_ip_args() -> Vec<String> {
    vec!["--ip".into(), format!("{TAP_GUEST_IP}/{TAP_PREFIX}")]
}

fn user_network() -> Network {
    Network {
        name: "user",
        how: "QEMU user network (slirp); server on the host's 127.0.0.1, seen as 10.0.2.2; DHCP"
            .into(),
        listen_host: "127.0.0.1",
        url_host: SLIRP_HOST_IP,
        qemu_net: format!("-nic user,model=stellaris,mac={MAC}"),
        fw_args: vec![],
        ns: None,
        qemu_in_ns: false,
        _tapns: None,
        helper: None,
    }
}

fn tap_direct_network() -> Result<Network> {
    let ns = tap_ns(true)?;
    Ok(Network {
        name: "tap-direct",
        how: format!(
            "QEMU's -netdev tap straight into a namespace of ours (tap0 = {TAP_HOST_IP}, server inside, QEMU inside); static {TAP_GUEST_IP}"
        ),
        listen_host: TAP_HOST_IP,
        url_host: TAP_HOST_IP,
        qemu_net: format!("-nic tap,ifname=tap0,script=no,downscript=no,model=stellaris,mac={MAC}"),
        fw_args: static_ip_args(),
        ns: Some(ns.name().to_string()),
        qemu_in_ns: true,
        _tapns: Some(ns),
        helper: None,
    })
}

/// `host-bridge bridge`: QEMU's dgram socket netdev on one side, a tap in a namespace
/// of its own on the other. It prints `netns=NAME`, `FIRMWARE_NET=...` and `ready`;
/// our arrival-logging server then runs inside its namespace (beside its own server),
/// so that the firmware talks to the same server as over QEMU's own tap.
fn tap_bridge_network(bin_dir: &Path, log: &Path, threads: Option<usize>) -> Result<Network> {
    use std::sync::mpsc;
    let hb = bin_dir.join("host-bridge");
    if !hb.is_file() {
        bail!("{} not built", hb.display());
    }
    let help = Command::new(&hb).args(["bridge", "--help"]).output()?;
    if !help.status.success() {
        bail!("`host-bridge bridge` does not exist yet");
    }
    let logf = std::fs::File::create(log)?;
    // Its own server keeps the default port: the namespace is the bridge's alone.
    let mut child = Command::new(&hb)
        .args(["--quiet", "bridge", "--host-ip", TAP_HOST_IP])
        .args(["--guest-ip", TAP_GUEST_IP])
        .args(
            threads
                .map(|t| vec!["--threads".to_string(), t.to_string()])
                .unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(logf)
        .spawn()
        .context("start host-bridge bridge")?;
    let stdout = child.stdout.take().context("bridge stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut ns, mut qemu_net) = (None, None);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(v) = line.strip_prefix("netns=") {
                    ns = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("FIRMWARE_NET=") {
                    qemu_net = Some(v.trim().to_string());
                } else if line.trim() == "ready" {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {}
            Err(_) => {
                stop_child(child);
                bail!(
                    "`host-bridge bridge` did not print `ready` (log {})",
                    log.display()
                );
            }
        }
    }
    let (Some(ns), Some(qemu_net)) = (ns, qemu_net) else {
        stop_child(child);
        bail!("`host-bridge bridge` printed no netns= or FIRMWARE_NET= line");
    };
    // QEMU 7.2's `-net nic` spells the MAC option `macaddr` (`-nic` takes `mac`).
    let qemu_net = if qemu_net.contains("-net nic") {
        qemu_net.replace(",mac=", ",macaddr=")
    } else {
        qemu_net
    };
    Ok(Network {
        name: if threads == Some(1) { "tap-bridge-1t" } else { "tap-bridge" },
        how: format!(
            "QEMU dgram socket -> host-bridge bridge{} -> tap in its namespace ({TAP_HOST_IP}, server inside), no impairment; static {TAP_GUEST_IP}",
            if threads == Some(1) { " --threads 1" } else { " (default threads)" }
        ),
        listen_host: TAP_HOST_IP,
        url_host: TAP_HOST_IP,
        qemu_net,
        fw_args: static_ip_args(),
        ns: Some(ns),
        qemu_in_ns: false,
        _tapns: None,
        helper: Some(child),
    })
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

struct FwRun {
    status: Option<i32>,
    output: String,
    started: SystemTime,
    wall_s: f64,
    arrivals: Vec<f64>,
}

/// Starts the arrival-logging server for `net`, boots the firmware against it, and
/// returns what happened. The firmware sends `message` `count` times, or with
/// `None` its own set of messages (0 to 1500 B, text and binary). `extra_qemu` is
/// appended to the network options.
fn boot_against_server(
    root: &Path,
    image: &Path,
    net: &Network,
    (count, message): (u32, Option<&str>),
    extra_qemu: &str,
    log_dir: &Path,
) -> Result<FwRun> {
    let bin_dir = servers::bin_dir()?;
    let arrivals = log_dir.join(format!("arrivals-{}-{}.txt", net.name, rand_suffix()));
    let _ = std::fs::remove_file(&arrivals);
    let tt = bin_dir.join("tt-reverse-server").display().to_string();
    let mut argv = net.ns.as_deref().map(exec_prefix).unwrap_or_default();
    argv.extend(
        [
            tt.as_str(),
            "--listen",
            "{addr}",
            "--quiet",
            "--arrivals",
            &arrivals.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let spec = ServerSpec {
        name: format!("e2e-{}", net.name),
        argv,
    };
    let server_log = log_dir.join(format!("e2e-server-{}.log", net.name));
    // Inside a namespace too, the server says where it listens: no probing needed.
    let server = servers::start_on(&spec, &server_log, net.listen_host)?;
    let port = server.addr.port();

    let url = format!("ws://{}:{port}/ws", net.url_host);
    let mut cmd = match (&net.ns, net.qemu_in_ns) {
        (Some(ns), true) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(root.join("ci/qemu-run"));
            c
        }
        _ => Command::new(root.join("ci/qemu-run")),
    };
    cmd.arg(image)
        .args(["--url", &url, "--count", &count.to_string()])
        .args(message.iter().flat_map(|m| ["--message", m]))
        .args(&net.fw_args)
        .env("FIRMWARE_NET", format!("{} {extra_qemu}", net.qemu_net))
        .env("FIRMWARE_MAC", MAC)
        .env("FIRMWARE_TIMEOUT", "180")
        .stdin(Stdio::null());
    let started = SystemTime::now();
    let t0 = Instant::now();
    let out = cmd.output().context("run ci/qemu-run")?;
    let wall_s = t0.elapsed().as_secs_f64();
    // The server writes the arrivals when the connection closes.
    let until = Instant::now() + Duration::from_secs(3);
    while !arrivals.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    server.stop()?;
    let arr: Vec<f64> = std::fs::read_to_string(&arrivals)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let mut output = String::from_utf8_lossy(&out.stdout).to_string();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(FwRun {
        status: out.status.code(),
        output,
        started,
        wall_s,
        arrivals: arr,
    })
}

fn measure_network(
    root: &Path,
    image: &Path,
    mut net: Network,
    (count, message): (u32, Option<&str>),
    log_dir: &Path,
) -> NetRun {
    let mut run = NetRun {
        network: net.name.into(),
        how: net.how.clone(),
        count,
        ..Default::default()
    };
    let helper_pid = net.helper.as_ref().map(|h| h.id());
    let sched_before = helper_pid.and_then(|p| crate::procfs::sched_ns(p).ok());
    let result = boot_against_server(root, image, &net, (count, message), "", log_dir);
    let sched_after = helper_pid.and_then(|p| crate::procfs::sched_ns(p).ok());
    if let Some(h) = net.helper.take() {
        stop_child(h);
    }
    match result {
        Err(e) => run.not_measured = Some(format!("{e:#}")),
        Ok(fw) => {
            run.firmware_tail = tail(&fw.output, 8);
            run.qemu_wall_s = Some(fw.wall_s);
            let a = &fw.arrivals;
            if a.len() < 2 {
                run.not_measured = Some(format!(
                    "the server saw {} message(s); firmware exit status {:?}: {}",
                    a.len(),
                    fw.status,
                    tail(&fw.output, 2).replace('\n', " / ")
                ));
                return run;
            }
            if fw.status != Some(0) || a.len() < count as usize {
                run.not_measured = Some(format!(
                    "incomplete: {} of {count} messages, firmware exit status {:?}: {}",
                    a.len(),
                    fw.status,
                    tail(&fw.output, 2).replace('\n', " / ")
                ));
            }
            // ms, rounded to 0.1 µs (the arrival stamps have 1 µs resolution).
            let rtts: Vec<f64> = a
                .windows(2)
                .map(|w| ((w[1] - w[0]) * 1e7).round() / 1e4)
                .collect();
            let start = fw
                .started
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            run.echoes_per_s = Some((a.len() - 1) as f64 / (a[a.len() - 1] - a[0]));
            if let (Some(b), Some(e)) = (sched_before, sched_after) {
                let per_echo = |ns: u64| ns as f64 / 1e3 / a.len() as f64;
                run.bridge_cpu_us_per_echo = Some(per_echo(e.0.saturating_sub(b.0)));
                run.bridge_wait_us_per_echo = Some(per_echo(e.1.saturating_sub(b.1)));
            }
            run.p50_ms = percentile(&rtts, 50.0);
            run.p99_ms = percentile(&rtts, 99.0);
            run.boot_to_first_echo_s = Some(a[0] - start);
            run.rtts_ms = rtts;
        }
    }
    run
}

/// One network's rounds as one row: medians of the rounds' figures; every round's
/// round trips for the distribution; the first failure's reason if none succeeded.
fn combine(runs: Vec<NetRun>) -> NetRun {
    let ok: Vec<&NetRun> = runs.iter().filter(|r| r.echoes_per_s.is_some()).collect();
    let Some(first) = runs.first() else {
        return NetRun::default();
    };
    if ok.is_empty() {
        return first.clone();
    }
    let med =
        |f: fn(&NetRun) -> Option<f64>| median(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
    let failed: Vec<String> = runs.iter().filter_map(|r| r.not_measured.clone()).collect();
    NetRun {
        network: first.network.clone(),
        how: first.how.clone(),
        not_measured: (!failed.is_empty())
            .then(|| format!("{} of {} rounds: {}", failed.len(), runs.len(), failed[0])),
        count: first.count,
        echoes_per_s: med(|r| r.echoes_per_s),
        p50_ms: med(|r| r.p50_ms),
        p99_ms: med(|r| r.p99_ms),
        boot_to_first_echo_s: med(|r| r.boot_to_first_echo_s),
        qemu_wall_s: med(|r| r.qemu_wall_s),
        rtts_ms: ok.iter().flat_map(|r| r.rtts_ms.iter().copied()).collect(),
        rounds_echoes_per_s: ok.iter().filter_map(|r| r.echoes_per_s).collect(),
        firmware_tail: ok
            .last()
            .map(|r| r.firmware_tail.clone())
            .unwrap_or_default(),
        bridge_cpu_us_per_echo: med(|r| r.bridge_cpu_us_per_echo),
        bridge_wait_us_per_echo: med(|r| r.bridge_wait_us_per_echo),
    }
}

/// Counts guest instructions from QEMU's `-d in_asm,exec,nochain` log, streamed
/// through a FIFO so that nothing large is written to disk.
fn count_instructions(root: &Path, image: &Path, count: u32, log_dir: &Path) -> Result<u64> {
    let fifo = log_dir.join(format!("qemu-exec-{count}.fifo"));
    let _ = std::fs::remove_file(&fifo);
    let st = Command::new("mkfifo").arg(&fifo).status()?;
    if !st.success() {
        bail!("mkfifo failed");
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || -> Result<u64> {
            let f = std::fs::File::open(&fifo)?;
            count_log(BufReader::with_capacity(1 << 20, f))
        })
    };
    let net = user_network();
    let fw = boot_against_server(
        root,
        image,
        &net,
        (count, Some(MESSAGE)),
        &format!("-d in_asm,exec,nochain -D {}", fifo.display()),
        log_dir,
    );
    // If QEMU never opened the FIFO, open it ourselves so the reader returns.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(&fifo);
    let total = reader
        .join()
        .map_err(|_| anyhow::anyhow!("log reader panicked"))??;
    let _ = std::fs::remove_file(&fifo);
    let fw = fw?;
    if fw.status != Some(0) || fw.arrivals.len() < count as usize {
        bail!(
            "traced run of {count} messages failed (status {:?}, {} arrivals): {}",
            fw.status,
            fw.arrivals.len(),
            tail(&fw.output, 2).replace('\n', " / ")
        );
    }
    Ok(total)
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// Sums, over every `Trace` line (one executed block), the instruction count of the
/// block at that guest pc, taken from the `IN:` listing printed when it was translated.
pub fn count_log(mut r: impl BufRead) -> Result<u64> {
    let mut sizes: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut total = 0u64;
    let mut line = String::new();
    let mut block: Option<(u32, u32)> = None; // (first pc, instructions)
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix("Trace ") {
            if let Some((pc, n)) = block.take() {
                sizes.insert(pc, n);
            }
            // Trace 0: 0xHOST [CSBASE/PC/FLAGS/CFLAGS] SYMBOL
            let pc = rest
                .split_once('[')
                .and_then(|(_, b)| b.split('/').nth(1))
                .and_then(|p| u32::from_str_radix(p, 16).ok());
            if let Some(pc) = pc {
                total += u64::from(sizes.get(&pc).copied().unwrap_or(1));
            }
        } else if line.starts_with("IN:") {
            if let Some((pc, n)) = block.take() {
                sizes.insert(pc, n);
            }
            block = Some((u32::MAX, 0));
        } else if let Some((pc, n)) = block.as_mut() {
            if let Some(addr) = line
                .strip_prefix("0x")
                .and_then(|l| l.split_once(':'))
                .map(|(a, _)| a)
            {
                if let Ok(a) = u32::from_str_radix(addr, 16) {
                    if *pc == u32::MAX {
                        *pc = a;
                    }
                    *n += 1;
                }
            } else if line.trim().is_empty() && *pc != u32::MAX {
                let (pc, n) = block.take().unwrap_or_default();
                sizes.insert(pc, n);
            }
        }
    }
    Ok(total)
}

pub fn run(root: &Path, cfg: &E2eConfig, log_dir: &Path) -> Result<E2eData> {
    std::fs::create_dir_all(log_dir)?;
    let mut data = E2eData {
        started_utc: crate::utc_now(),
        host: crate::host_summary(),
        message: MESSAGE.into(),
        ..Default::default()
    };
    let names = [
        ("user", "QEMU user network (slirp)"),
        (
            "tap-bridge",
            "QEMU socket netdev -> host-bridge bridge -> tap in a namespace, no impairment",
        ),
        (
            "tap-bridge-1t",
            "the same with host-bridge --threads 1 (a single-threaded runtime)",
        ),
        (
            "tap-direct",
            "QEMU's -netdev tap straight into the namespace",
        ),
    ];
    let not_measured = |reason: String| -> Vec<NetRun> {
        names
            .iter()
            .map(|(n, how)| NetRun {
                network: n.to_string(),
                how: how.to_string(),
                not_measured: Some(reason.clone()),
                count: cfg.count,
                ..Default::default()
            })
            .collect()
    };
    let image = match crate::footprint::firmware_image(root, cfg.build)
        .and_then(|img| firmware_has_client(root, &img).map(|()| img))
    {
        Ok(i) => i,
        Err(e) => {
            let reason = format!("{e:#}");
            eprintln!("bench: e2e not measured: {reason}");
            data.runs = not_measured(reason.clone());
            data.insns_detail = format!("not measured: {reason}");
            return Ok(data);
        }
    };
    let bin_dir = servers::bin_dir()?;

    // Each network cfg.reps times, the three alternating (rotated each round), so
    // that the ratios come from runs made side by side.
    let mut per_net: Vec<Vec<NetRun>> = vec![Vec::new(); names.len()];
    for rep in 0..cfg.reps.max(1) {
        for k in 0..names.len() {
            let which = (k + rep) % names.len();
            eprintln!(
                "bench: e2e round {} of {}: {} ({} messages)",
                rep + 1,
                cfg.reps.max(1),
                names[which].0,
                cfg.count
            );
            let net = match which {
                0 => Ok(user_network()),
                1 => tap_bridge_network(&bin_dir, &log_dir.join("bridge.log"), None),
                2 => tap_bridge_network(&bin_dir, &log_dir.join("bridge.log"), Some(1)),
                _ => tap_direct_network(),
            };
            let run = match net {
                Ok(net) => measure_network(root, &image, net, (cfg.count, Some(MESSAGE)), log_dir),
                Err(e) => NetRun {
                    network: names[which].0.into(),
                    how: names[which].1.into(),
                    not_measured: Some(format!("{e:#}")),
                    count: cfg.count,
                    ..Default::default()
                },
            };
            per_net[which].push(run);
        }
    }
    // Paired ratios of the bridge's and QEMU's own tap, round by round: the median
    // of `ratio(bridge run, direct run)`.
    let paired = |ratio: fn(&NetRun, &NetRun) -> Option<f64>| {
        let ratios: Vec<f64> = per_net[1]
            .iter()
            .zip(&per_net[3])
            .filter_map(|(b, d)| ratio(b, d))
            .collect();
        median(&ratios)
    };
    data.direct_over_bridge = paired(|b, d| Some(d.echoes_per_s? / b.echoes_per_s?));
    data.bridge_over_direct_p50 = paired(|b, d| Some(b.p50_ms? / d.p50_ms?));
    data.runs = per_net.into_iter().map(combine).collect();
    for r in &data.runs {
        match &r.not_measured {
            Some(why) => eprintln!("bench: e2e {}: not measured: {why}", r.network),
            None => eprintln!(
                "bench: e2e {}: {:.0} echoes/s, p50 {:.2} ms, p99 {:.2} ms, boot to first echo {:.2} s",
                r.network,
                r.echoes_per_s.unwrap_or(f64::NAN),
                r.p50_ms.unwrap_or(f64::NAN),
                r.p99_ms.unwrap_or(f64::NAN),
                r.boot_to_first_echo_s.unwrap_or(f64::NAN)
            ),
        }
    }

    // The firmware's own message set (0-1500 B, several TCP segments for the
    // big ones) over the bridge: where a stall per message (Nagle against a
    // delayed ACK, 40 ms each) would show, which the 64 B runs cannot.
    eprintln!("bench: e2e tap-bridge with the firmware's message set ({SET_COUNT} messages)");
    let set = match tap_bridge_network(&bin_dir, &log_dir.join("bridge.log"), None) {
        Ok(net) => measure_network(root, &image, net, (SET_COUNT, None), log_dir),
        Err(e) => NetRun {
            not_measured: Some(format!("{e:#}")),
            ..Default::default()
        },
    };
    data.message_set = Some(NetRun {
        network: "tap-bridge, message set".into(),
        how: "the firmware's own messages (0, 1, 125, 126, 127, 297, 300, 1499, 1000 B, text and binary, repeated)".into(),
        ..set
    });

    let n = cfg.icount_msgs.max(1);
    eprintln!(
        "bench: instructions per echo ({n} and {} messages, traced)",
        2 * n
    );
    match count_instructions(root, &image, n, log_dir)
        .and_then(|a| count_instructions(root, &image, 2 * n, log_dir).map(|b| (a, b)))
    {
        Ok((a, b)) => {
            let per = (b as f64 - a as f64) / n as f64;
            data.insns_per_echo = Some(per);
            data.insns_detail = format!(
                "{a} instructions for {n} messages, {b} for {}: ({b} - {a}) / {n} = {per:.0} per echo",
                2 * n
            );
        }
        Err(e) => data.insns_detail = format!("not measured: {e:#}"),
    }
    eprintln!("bench: {}", data.insns_detail);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_by_their_listing() {
        let log = "\
----------------
IN: Reset
0x000000f0:  f006 fd7a  bl       #0x6be8

Trace 0: 0x7f2f34000100 [00800400/000000f0/00000110/ff000200] Reset
----------------
IN: DefaultPreInit
0x00006be8:  b580       push     {r7, lr}
0x00006bea:  466f       mov      r7, sp
0x00006bec:  bd80       pop      {r7, pc}

Trace 0: 0x7f2f34000240 [00800400/00006be8/00000110/ff000200] DefaultPreInit
Trace 0: 0x7f2f34000240 [00800400/00006be8/00000110/ff000200] DefaultPreInit
Trace 0: 0x7f2f34000100 [00800400/000000f0/00000110/ff000200] Reset
";
        assert_eq!(count_log(log.as_bytes()).unwrap(), 1 + 3 + 3 + 1);
    }
}
