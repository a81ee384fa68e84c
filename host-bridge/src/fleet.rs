//! `host-bridge fleet`: N boards, each its own QEMU with its own MAC address and
//! DHCP lease, on one emulated Ethernet segment against one server.
//!
//! The segment (root): a Linux bridge `br0` in a namespace of our own holds the
//! host's address and dnsmasq's pool; every board is a tap enslaved to `br0`,
//! joined to its QEMU by the same [`Relay`] that `host-bridge run` uses. The
//! kernel does the switching (MAC learning, flooding of DHCP and ARP broadcasts);
//! the relay per board keeps what a single board has: its own impairment, seed
//! and counters. (Switching in the relay instead would mean writing a learning
//! switch in user space and running every frame of every board through one
//! task.) Not root, or `--user-net`: every board gets QEMU's user network (its
//! own slirp) and the server listens on 127.0.0.1.
//!
//! Boards start in rolling waves: at most `wave` run at once, the next starts as
//! one ends, so that 256 boards do not all boot on two cores at once.
//!
//! `--server URL`: the fleet's boards talk to a server elsewhere. On the bridge
//! the boards cannot route out of the namespace, so host-bridge listens on the
//! segment's host address and forwards each TCP connection to the server from
//! the host's own network (a TCP proxy: no routes, NAT or veth needed; the server
//! sees connections from this machine). On the user network slirp already
//! reaches the host: 127.0.0.1 becomes 10.0.2.2.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::bridge::{self, Dhcp, SockDir};
use crate::netns::{self, Netns};
use crate::qemu;
use crate::relay::{bind_unix, Port, Relay, RelayConfig};
use crate::run::{BootConfig, SLIRP_HOST};
use crate::server;

/// The segment's host address; boards lease from the rest of the /16.
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PREFIX: u8 = 16;
const POOL: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 255, 254));
/// The Linux bridge's name inside the namespace.
const BRIDGE: &str = "br0";
/// The bridge's (the host's) MAC address on the segment.
const BRIDGE_MAC: &str = "52:54:02:00:00:01";

/// What to boot, how many, and against which server.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// What every board boots, on which network, and our server (its port
    /// and firmware arguments as for `run`).
    pub boot: BootConfig,
    /// How many boards.
    pub boards: u32,
    /// The first board's number: board K has MAC 52:54:01:KK:KK:KK and tap `fbK`,
    /// so that fleets numbered apart never collide.
    pub first_board: u32,
    /// Most boards running at once.
    pub wave: usize,
    /// A server elsewhere (`ws://HOST:PORT/PATH`) instead of our own.
    pub server_url: Option<String>,
    /// Impairment of every board's cable (each board's seed is this seed + K).
    pub relay: RelayConfig,
}

/// How one board did.
#[derive(Debug, Clone)]
pub struct Board {
    /// Its number K.
    pub id: u32,
    /// Its MAC address.
    pub mac: String,
    /// The firmware's exit status (128+N: killed by signal N).
    pub status: i32,
    /// Whether the firmware printed anything (it booted).
    pub booted: bool,
    /// From QEMU's start to the firmware's first `received` line.
    pub first_echo: Option<Duration>,
    /// Peak resident memory of its QEMU (and `timeout`), KiB.
    pub peak_rss_kib: u64,
    /// CPU time (user + system) of its QEMU.
    pub cpu: Duration,
    /// Its console (`firmware| `) and QEMU's stderr (`qemu| `).
    pub log: Vec<String>,
}

/// The fleet's outcome.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// Every board, in order of K.
    pub boards: Vec<Board>,
    /// `bridge` or `user network`.
    pub network: &'static str,
    /// From the first board's start to the last board's end.
    pub wall: Duration,
    /// CPU time of this process (server, relays, proxy) over the fleet.
    pub host_cpu: Duration,
}

/// The MAC address of board `k` (locally administered, 24 bits of `k`).
pub fn board_mac(k: u32) -> String {
    format!(
        "52:54:01:{:02x}:{:02x}:{:02x}",
        (k >> 16) & 0xff,
        (k >> 8) & 0xff,
        k & 0xff
    )
}

/// Boots the fleet and returns how every board did; `interrupted` stops all
/// running boards (they then count as failed).
pub async fn run(cfg: FleetConfig, interrupted: impl Future<Output = ()>) -> Result<FleetReport> {
    anyhow::ensure!(cfg.boards > 0, "--boards must be at least 1");
    anyhow::ensure!(cfg.wave > 0, "--wave must be at least 1");
    anyhow::ensure!(
        u64::from(cfg.first_board) + u64::from(cfg.boards) <= 1 << 24,
        "board numbers must stay below 2^24 (24 bits of the MAC address)"
    );
    let repo = qemu::repo_root();
    let image = qemu::image_or_default(cfg.boot.image.clone(), &repo)?;
    let on_bridge = cfg.boot.on_bridge();
    if !on_bridge && !cfg.boot.user_net {
        tracing::warn!("not root: every board on its own QEMU user network instead of the bridge");
    }
    let segment = if on_bridge {
        Some(Segment::start()?)
    } else {
        None
    };
    let listener = match &segment {
        Some(seg) => seg.listen_tcp(cfg.boot.bridge_port())?,
        None => cfg.boot.listen_local().await?,
    };
    let port = listener.local_addr()?.port();
    let stop_server = CancellationToken::new();
    let (path, srv) = match &cfg.server_url {
        None => (
            cfg.boot.server.path.clone(),
            tokio::spawn(server::serve(
                listener,
                cfg.boot.server.clone(),
                stop_server.clone(),
            )),
        ),
        Some(url) => {
            let (host, path) = split_ws_url(url)?;
            if on_bridge {
                tracing::info!("forwarding the boards' connections to {host}");
                let task = tokio::spawn(forward(listener, host, stop_server.clone()));
                (path, task)
            } else {
                drop(listener);
                (path, tokio::spawn(async { Ok(()) }))
            }
        }
    };
    let url = match (&cfg.server_url, on_bridge) {
        (Some(url), false) => {
            url.replacen("127.0.0.1", SLIRP_HOST, 1)
                .replacen("localhost", SLIRP_HOST, 1)
        }
        (_, true) => format!("ws://{HOST_IP}:{port}{path}"),
        (None, false) => format!("ws://{SLIRP_HOST}:{port}{path}"),
    };
    let mut args = Vec::new();
    if !cfg.boot.firmware_args.iter().any(|a| a == "--url") {
        args.extend(["--url".to_string(), url]);
    }
    args.extend(cfg.boot.firmware_args.iter().cloned());
    tracing::info!(
        "fleet: boards {}..{}, {} at a time, firmware arguments: {}",
        cfg.first_board,
        u64::from(cfg.first_board) + u64::from(cfg.boards) - 1,
        cfg.wave,
        args.join(" ")
    );

    let spec = Arc::new(BoardSpec {
        runner: repo.join("ci/qemu-run"),
        image,
        args,
        timeout_s: cfg.boot.timeout_s,
    });
    let segment = segment.map(Arc::new);
    let stop_boards = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(cfg.wave));
    let cpu_before = own_cpu();
    let started = Instant::now();
    // Start boards as slots free up, then wait for them all; an interruption
    // stops the running boards, and the loop starts no more.
    let boards = {
        let launch = async {
            let mut tasks = Vec::new();
            for k in cfg.first_board..cfg.first_board + cfg.boards {
                let permit = slots.clone().acquire_owned().await.context("wave slots")?;
                if stop_boards.is_cancelled() {
                    break;
                }
                let (spec, segment, stop) = (spec.clone(), segment.clone(), stop_boards.clone());
                let relay = RelayConfig {
                    seed: cfg.relay.seed.wrapping_add(u64::from(k)),
                    pcap: None,
                    ..cfg.relay.clone()
                };
                tasks.push(tokio::spawn(async move {
                    let board = match &segment {
                        Some(seg) => match seg.plug(k, &relay) {
                            Ok(cable) => {
                                let mut b = boot(&spec, k, Some(seg.net_options(k)), stop).await;
                                // The cable's counters tell a lost frame from a slow board.
                                let stats = cable.unplug().await;
                                b.log.extend(stats.lines().map(|l| format!("relay| {l}")));
                                b
                            }
                            Err(e) => Board::not_started(k, format!("{e:#}")),
                        },
                        None => boot(&spec, k, None, stop).await,
                    };
                    drop(permit);
                    board
                }));
            }
            let mut boards = Vec::new();
            for t in tasks {
                boards.push(t.await.context("board task")?);
            }
            anyhow::Ok(boards)
        };
        tokio::pin!(launch);
        tokio::pin!(interrupted);
        tokio::select! {
            b = &mut launch => b?,
            () = &mut interrupted => {
                tracing::warn!("interrupted: stopping every board");
                stop_boards.cancel();
                launch.await?
            }
        }
    };
    let wall = started.elapsed();
    let host_cpu = own_cpu().saturating_sub(cpu_before);
    stop_server.cancel();
    let served = srv.await.context("server task")?;
    drop(segment);
    served?;
    Ok(FleetReport {
        boards,
        network: if on_bridge { "bridge" } else { "user network" },
        wall,
        host_cpu,
    })
}

/// `ws://HOST:PORT/PATH` into (`HOST:PORT`, `/PATH`); port 80 by default.
fn split_ws_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("--server {url}: only ws:// URLs (the firmware has no TLS)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    anyhow::ensure!(!authority.is_empty(), "--server {url}: no host");
    let host = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((host, path.to_string()))
}

/// Forwards every connection accepted on `listener` (inside the namespace) to
/// `server` (reached from the host's own network) until `stop`.
async fn forward(listener: TcpListener, server: String, stop: CancellationToken) -> Result<()> {
    loop {
        let (mut board, from) = tokio::select! {
            a = listener.accept() => a.context("accept a board's connection")?,
            () = stop.cancelled() => return Ok(()),
        };
        let server = server.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut upstream = match tokio::net::TcpStream::connect(&server).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("board {from}: cannot reach {server}: {e}");
                    return;
                }
            };
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut board, &mut upstream) => {
                    if let Err(e) = r {
                        tracing::debug!("board {from}: forwarding ended: {e}");
                    }
                }
                () = stop.cancelled() => {}
            }
        });
    }
}

/// The shared segment: namespace, Linux bridge with the host's address, DHCP.
struct Segment {
    /// Stopped (on drop) before the namespace goes.
    _dhcp: Dhcp,
    ns: Netns,
    dir: SockDir,
}

impl Segment {
    fn start() -> Result<Segment> {
        let (ns, dir) = bridge::new_namespace()?;
        // A fixed address: a Linux bridge otherwise takes the lowest MAC of its
        // ports, so the host's MAC would change as boards' taps come and go, and
        // boards that had learned the old one would talk into the void.
        ns.ip(&[
            "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge",
        ])?;
        let addr = format!("{HOST_IP}/{PREFIX}");
        ns.ip(&["addr", "add", &addr, "dev", BRIDGE])?;
        ns.ip(&["link", "set", BRIDGE, "up"])?;
        let dhcp = Dhcp::start(&ns, BRIDGE, POOL, PREFIX, HOST_IP, None)?;
        tracing::info!("segment up: namespace {}, {BRIDGE} {addr}", ns.name());
        Ok(Segment {
            _dhcp: dhcp,
            ns,
            dir,
        })
    }

    fn listen_tcp(&self, port: u16) -> Result<TcpListener> {
        let addr = SocketAddr::from((HOST_IP, port));
        netns::listen_tcp(&self.ns, addr)
    }

    fn sockets(&self, k: u32) -> (PathBuf, PathBuf) {
        (
            self.dir.0.join(format!("q{k}.sock")),
            self.dir.0.join(format!("b{k}.sock")),
        )
    }

    fn net_options(&self, k: u32) -> String {
        let (guest, ours) = self.sockets(k);
        bridge::qemu_dgram_options(&guest, &ours, &board_mac(k))
    }

    /// Board `k`'s cable: tap `fbK` on the bridge, relayed to its QEMU's socket.
    fn plug(&self, k: u32, relay: &RelayConfig) -> Result<Cable> {
        let name = format!("fb{k}");
        let tap = netns::open_tap(&self.ns, &name)?;
        self.ns
            .ip(&["link", "set", &name, "master", BRIDGE, "up"])?;
        let tap = tun::AsyncDevice::new(tap).context("register the tap with tokio")?;
        let (guest, ours) = self.sockets(k);
        let sock = bind_unix(&ours)?;
        let relay = Relay::start(
            Port::Tap(Arc::new(tap)),
            Port::Unix {
                sock: Arc::new(sock),
                peer: guest.clone(),
            },
            relay,
        )?;
        Ok(Cable {
            relay,
            files: [guest, ours],
        })
    }
}

/// One board's relay (its tap goes with it) and socket files.
struct Cable {
    relay: Relay,
    files: [PathBuf; 2],
}

impl Cable {
    /// Stops the relay; returns its counters as text.
    async fn unplug(self) -> String {
        let stats = match self.relay.stop().await {
            Ok(s) => s.to_string(),
            Err(e) => format!("relay: {e:#}"),
        };
        for f in self.files {
            let _ = std::fs::remove_file(f);
        }
        stats
    }
}

/// What every board boots.
struct BoardSpec {
    runner: PathBuf,
    image: PathBuf,
    args: Vec<String>,
    timeout_s: u64,
}

impl Board {
    fn not_started(k: u32, why: String) -> Board {
        Board {
            id: k,
            mac: board_mac(k),
            status: 1,
            booted: false,
            first_echo: None,
            peak_rss_kib: 0,
            cpu: Duration::ZERO,
            log: vec![format!("host-bridge| board not started: {why}")],
        }
    }
}

/// Boots board `k` through `ci/qemu-run` (`net`: its `FIRMWARE_NET`; none: the
/// user network) and waits for it; `stop` ends it early.
async fn boot(spec: &BoardSpec, k: u32, net: Option<String>, stop: CancellationToken) -> Board {
    let mac = board_mac(k);
    let mut cmd = std::process::Command::new(&spec.runner);
    cmd.arg(&spec.image)
        .args(&spec.args)
        .env("FIRMWARE_MAC", &mac)
        .env("FIRMWARE_TIMEOUT", spec.timeout_s.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(net) = net {
        cmd.env("FIRMWARE_NET", net);
    }
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    crate::child::end_with_parent(&mut cmd, Signal::SIGTERM);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Board::not_started(k, format!("start {}: {e}", spec.runner.display())),
    };
    let pid = child.id() as i32;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        if let Ok(out) = tokio::process::ChildStdout::from_std(out) {
            pumps.push(pump(out, "firmware| ", tx.clone()));
        }
    }
    if let Some(err) = child.stderr.take() {
        if let Ok(err) = tokio::process::ChildStderr::from_std(err) {
            pumps.push(pump(err, "qemu| ", tx.clone()));
        }
    }
    drop(tx);
    let mut waiter = tokio::task::spawn_blocking(move || wait_with_usage(pid));
    let waited = tokio::select! {
        w = &mut waiter => w,
        () = stop.cancelled() => {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            waiter.await
        }
    };
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    let mut board = Board::not_started(k, String::new());
    board.log.clear();
    match waited {
        Ok(Ok(u)) => {
            board.status = u.status;
            board.peak_rss_kib = u.peak_rss_kib;
            board.cpu = u.cpu;
        }
        Ok(Err(e)) => board.log.push(format!("host-bridge| wait for QEMU: {e}")),
        Err(e) => board.log.push(format!("host-bridge| wait task: {e}")),
    }
    while let Ok((at, line)) = rx.try_recv() {
        let line: String = line;
        if let Some(text) = line.strip_prefix("firmware| ") {
            board.booted = true;
            if board.first_echo.is_none() && text.starts_with("received ") {
                board.first_echo = Some(at - started);
            }
        }
        board.log.push(line);
    }
    board
}

/// Sends every line of `r`, prefixed, with the time it arrived.
fn pump<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    prefix: &'static str,
    tx: mpsc::UnboundedSender<(Instant, String)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send((Instant::now(), format!("{prefix}{line}")));
        }
    })
}

/// A child's end as `wait4` tells it.
struct Usage {
    status: i32,
    peak_rss_kib: u64,
    cpu: Duration,
}

/// Waits for child `pid` and returns its status and resource use, which
/// includes its own reaped children (QEMU behind `timeout`).
fn wait_with_usage(pid: i32) -> std::io::Result<Usage> {
    let mut status = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value for wait4 to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, reaped only here; both pointers are to
        // live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    };
    Ok(Usage {
        status: code,
        peak_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
        cpu: timeval(ru.ru_utime) + timeval(ru.ru_stime),
    })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// CPU time (user + system) of this process so far.
fn own_cpu() -> Duration {
    // SAFETY: as in wait_with_usage: getrusage fills a plain-data struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a pointer to a live local.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    timeval(ru.ru_utime) + timeval(ru.ru_stime)
}

/// The value at `pct` percent of `sorted` (nearest rank).
fn percentile<T: Copy>(sorted: &[T], pct: usize) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

impl FleetReport {
    /// Whether every board exited 0.
    pub fn all_passed(&self) -> bool {
        self.boards.iter().all(|b| b.status == 0)
    }

    /// The boards that did not exit 0.
    pub fn failed(&self) -> impl Iterator<Item = &Board> {
        self.boards.iter().filter(|b| b.status != 0)
    }

    /// Time to first echo at `pct` percent (boards that echoed).
    pub fn first_echo(&self, pct: usize) -> Option<Duration> {
        let mut t: Vec<Duration> = self.boards.iter().filter_map(|b| b.first_echo).collect();
        t.sort();
        percentile(&t, pct)
    }

    /// Peak resident memory per board at `pct` percent, KiB.
    pub fn peak_rss_kib(&self, pct: usize) -> Option<u64> {
        let mut m: Vec<u64> = self
            .boards
            .iter()
            .map(|b| b.peak_rss_kib)
            .filter(|&m| m > 0)
            .collect();
        m.sort();
        percentile(&m, pct)
    }

    /// CPU time of all boards' QEMUs.
    pub fn boards_cpu(&self) -> Duration {
        self.boards.iter().map(|b| b.cpu).sum()
    }

    /// The summary, a few lines.
    pub fn summary(&self) -> String {
        let n = self.boards.len();
        let booted = self.boards.iter().filter(|b| b.booted).count();
        let failed = self.failed().count();
        let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{} ms", d.as_millis()));
        let mib =
            |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let wall = self.wall.as_secs_f64();
        format!(
            "fleet: {n} boards on the {}\n\
             booted {booted}, passed {}, failed {failed}\n\
             time to first echo: p50 {}, p99 {}\n\
             peak memory per board: p50 {}, max {}\n\
             CPU: boards {:.2} s ({:.3} s per board), host-bridge {:.3} s; wall {wall:.2} s ({:.2} boards/s)",
            self.network,
            n - failed,
            ms(self.first_echo(50)),
            ms(self.first_echo(99)),
            mib(self.peak_rss_kib(50)),
            mib(self.peak_rss_kib(100)),
            self.boards_cpu().as_secs_f64(),
            self.boards_cpu().as_secs_f64() / n.max(1) as f64,
            self.host_cpu.as_secs_f64(),
            n as f64 / wall.max(1e-9),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_numbers_make_distinct_macs() {
        assert_eq!(board_mac(0), "52:54:01:00:00:00");
        assert_eq!(board_mac(0x01_02ff), "52:54:01:01:02:ff");
        assert_ne!(board_mac(256), board_mac(0));
    }

    #[test]
    fn server_urls_split_into_address_and_path() {
        let (h, p) = split_ws_url("ws://192.0.2.7:9000/echo").unwrap();
        assert_eq!((h.as_str(), p.as_str()), ("192.0.2.7:9000", "/echo"));
        let (h, p) = split_ws_url("ws://example.org").unwrap();
        assert_eq!((h.as_str(), p.as_str()), ("example.org:80", "/"));
        assert!(split_ws_url("wss://x/").is_err());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile::<u32>(&[], 50), None);
    }
}
