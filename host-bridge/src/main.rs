//! `host-bridge`: the reverse-echo WebSocket server, the tap bridge to QEMU,
//! and a runner that boots the firmware on that bridge. See `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use host_bridge::bridge::{Bridge, BridgeConfig, RouteTuning};
use host_bridge::fleet::FleetConfig;
use host_bridge::impair::Impairment;
use host_bridge::netns;
use host_bridge::relay::RelayConfig;
use host_bridge::run::{BootConfig, RunConfig};
use host_bridge::server::{self, ServerConfig};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "host-bridge",
    version,
    about = "Reverse-echo WebSocket server and tap bridge for the emulated lm3s6965evb",
    long_about = "Reverse-echo WebSocket server and tap bridge for the emulated lm3s6965evb.\n\n\
        With no command (what `cargo run` at the repository's root starts): the tutorial. \
        Builds the firmware image (ci/cargo-firmware build) when it is missing or stale, \
        then runs `run -- FIRMWARE_ARGS`: the server, and the board under QEMU on the \
        bridge (root) or QEMU's user network, with both logs."
)]
struct Cli {
    /// Log only warnings and errors (same as --log-level warn).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Log filter, RUST_LOG syntax (e.g. `debug`, `host_bridge=trace`); RUST_LOG
    /// overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Worker threads of the async runtime (1: a single-threaded runtime;
    /// default: one per CPU).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// With no command: the firmware's arguments for the tutorial, e.g.
    /// `--proto hixie76 --count 3`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    firmware_args: Vec<String>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the reverse-echo WebSocket server (RFC 6455 and hixie-76) on the host.
    /// Prints `listening on ADDR` (the bound address: port 0 picks a free one) as
    /// its first line on stdout, so that a script or test can read where it is.
    Serve {
        /// Address and port to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        /// Set SO_REUSEPORT on the listening socket, so that the server can take a
        /// port that its caller holds reserved (bound with SO_REUSEPORT, not
        /// listening): how a test restarts a server on the same port without ever
        /// releasing it to anyone else.
        #[arg(long)]
        reuse_port: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make a network namespace with a tap device, serve inside it, and relay
    /// Ethernet frames to QEMU's `-netdev dgram` socket until Ctrl-C (root only).
    /// Prints the QEMU options (`FIRMWARE_NET=...`) to use. SIGUSR1 takes the
    /// link down or up again (printing `link down` / `link up`).
    Bridge {
        /// Start no server: run your own inside the namespace (`ip netns exec
        /// NETNS host-bridge serve --listen 192.168.76.1:8000`), e.g. to kill
        /// and restart it while the board runs.
        #[arg(long)]
        no_server: bool,
        #[command(flatten)]
        bridge: BridgeArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Boot the firmware under QEMU (via ci/qemu-run) on the bridge, or on QEMU's
    /// user network when not root, with the server running; exit with the
    /// firmware's status. FIRMWARE_ARGS follow `--`. SIGUSR1 takes the bridge's
    /// link down or up again.
    Run {
        /// Firmware image (default: what `ci/cargo-firmware path` prints).
        #[arg(long)]
        image: Option<PathBuf>,
        /// Use QEMU's user network (slirp; the server listens on 127.0.0.1:PORT,
        /// which the guest reaches as 10.0.2.2:PORT) even when root.
        #[arg(long)]
        user_net: bool,
        /// Don't add `--url`, `--ip` and `--gateway` to the firmware's arguments
        /// (they are added only where FIRMWARE_ARGS lack them).
        #[arg(long)]
        no_auto_args: bool,
        /// The board's MAC address (FIRMWARE_MAC).
        #[arg(long, default_value = "52:54:00:12:34:56")]
        mac: String,
        /// Seconds before QEMU is killed (FIRMWARE_TIMEOUT; exit status 124).
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Start QEMU halted, its gdb stub on 127.0.0.1:PORT (or on a unix
        /// socket: a path), and print the `gdb-multiarch` command that attaches
        /// (FIRMWARE_GDB). The timeout still runs: raise it to debug at leisure.
        #[arg(long, value_name = "PORT|PATH")]
        gdb: Option<String>,
        /// On the bridge, relay frames through host-bridge even with no
        /// impairment: for the relay's counters and the link switch (SIGUSR1).
        /// Without it (and without --impair) QEMU gets the tap itself, the fast
        /// path, and --pcap is QEMU's own filter-dump.
        #[arg(long)]
        relay: bool,
        #[command(flatten)]
        bridge: BridgeArgs,
        #[command(flatten)]
        server: ServerArgs,
        /// Arguments for the firmware, e.g. `--proto hixie76 --count 3`.
        #[arg(last = true)]
        firmware_args: Vec<String>,
    },
    /// Boot N boards, each with its own MAC address and DHCP lease, on one
    /// emulated Ethernet segment (a Linux bridge in a namespace; root) or each on
    /// its own QEMU user network (not root), against one server; print a summary
    /// and every failing board's log; exit 0 only if every board exits 0.
    /// FIRMWARE_ARGS follow `--`.
    Fleet(FleetArgs),
}

#[derive(Args, Debug)]
struct FleetArgs {
    /// How many boards.
    #[arg(long, default_value_t = 16)]
    boards: u32,
    /// The first board's number K (MAC 52:54:01:KK:KK:KK, tap fbK): fleets that
    /// share a server (e.g. matrix jobs) take disjoint ranges.
    #[arg(long, default_value_t = 0)]
    first_board: u32,
    /// Most boards running at once (boards start in rolling waves: the next
    /// as one ends), so that hundreds don't boot at once on a few cores.
    #[arg(long, default_value_t = 16)]
    wave: usize,
    /// Firmware image (default: what `ci/cargo-firmware path` prints).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Every board on its own QEMU user network even when root.
    #[arg(long)]
    user_net: bool,
    /// A server elsewhere, `ws://HOST:PORT/PATH`, instead of our own. On the
    /// bridge host-bridge forwards the boards' connections to it; on the user
    /// network the boards dial it (127.0.0.1 becomes 10.0.2.2).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Our server's port (default: 8000 on the bridge, any free one on 127.0.0.1).
    #[arg(long)]
    port: Option<u16>,
    /// Impairment of every board's cable (bridge only), as for `run`.
    #[arg(long, default_value = "none")]
    impair: Impairment,
    /// Seed of the impairment (board K uses SEED + K).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds before a board's QEMU is killed (exit status 124).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    #[command(flatten)]
    server_args: ServerArgs,
    /// Arguments for every board's firmware, e.g. `--count 20`.
    #[arg(last = true)]
    firmware_args: Vec<String>,
}

#[derive(Args, Debug, Clone)]
struct ServerArgs {
    /// WebSocket endpoint path.
    #[arg(long, default_value = "/ws")]
    path: String,
    /// Send every message back unchanged instead of reversed (for conformance
    /// suites such as Autobahn).
    #[arg(long)]
    echo: bool,
    /// Accept only WebSocket requests with this Origin (repeatable); others get
    /// 403. Default: any Origin.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Largest message in bytes; a bigger one closes the connection with 1009.
    #[arg(long, default_value_t = 1 << 20)]
    max_message: u64,
    /// Largest request header block in bytes (bigger: 431).
    #[arg(long, default_value_t = 8192)]
    max_header: usize,
    /// Seconds a client has to complete its opening handshake (then 408).
    #[arg(long, default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Seconds of silence from a client before it is pinged (RFC 6455).
    #[arg(long, default_value_t = 20.0)]
    ping_interval: f64,
    /// Seconds of silence (no data, no pong) before the connection is closed
    /// with 1001; also the limit for a write to a client that doesn't read.
    #[arg(long, default_value_t = 60.0)]
    idle_timeout: f64,
    /// Most connections open at once; beyond it new ones get 503.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
}

impl ServerArgs {
    fn config(&self) -> Result<ServerConfig> {
        let secs = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v < 1e6 {
                Ok(Duration::from_secs_f64(v))
            } else {
                anyhow::bail!("--{name} takes a positive number of seconds")
            }
        };
        anyhow::ensure!(self.path.starts_with('/'), "--path must start with /");
        anyhow::ensure!(
            self.max_connections > 0,
            "--max-connections must be at least 1"
        );
        Ok(ServerConfig {
            path: self.path.clone(),
            echo: self.echo,
            allow_origins: self.allow_origin.clone(),
            max_message: self.max_message,
            max_header: self.max_header,
            handshake_timeout: secs("handshake-timeout", self.handshake_timeout)?,
            ping_interval: secs("ping-interval", self.ping_interval)?,
            idle_timeout: secs("idle-timeout", self.idle_timeout)?,
            max_connections: self.max_connections,
            ..ServerConfig::default()
        })
    }
}

#[derive(Args, Debug, Clone)]
struct BridgeArgs {
    /// Port the server listens on at the host address inside the namespace
    /// (default 8000), or on 127.0.0.1 with `run --user-net` (default: any free
    /// port, so that parallel runs don't collide).
    #[arg(long)]
    port: Option<u16>,
    /// The host's (tap's) address inside the namespace.
    #[arg(long, default_value = "192.168.76.1")]
    host_ip: std::net::Ipv4Addr,
    /// The guest's address: given to the firmware as `--ip` by `run`, or leased
    /// to it by DHCP with `--dhcp`.
    #[arg(long, default_value = "192.168.76.2")]
    guest_ip: std::net::Ipv4Addr,
    /// Impairment of both directions, e.g.
    /// `loss=5%,delay=20ms,jitter=5ms,dup=1%,reorder=2%,corrupt=0.1%,rate=1mbit`;
    /// `down=2s@1s` takes the link down 2 s, 1 s after the bridge started
    /// (repeatable, up to 4).
    #[arg(long, default_value = "none")]
    impair: Impairment,
    /// Impairment of host-to-guest frames only (replaces --impair for them).
    #[arg(long)]
    impair_to_guest: Option<Impairment>,
    /// Impairment of guest-to-host frames only (replaces --impair for them).
    #[arg(long)]
    impair_to_host: Option<Impairment>,
    /// Seed of the impairment's random choices (same seed, same choices).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve DHCP on the bridge (dnsmasq inside the namespace, leasing only
    /// --guest-ip, router --host-ip); `run` then passes no `--ip`/`--gateway`.
    #[arg(long)]
    dhcp: bool,
    /// Write every frame that crossed the relay to this pcap file.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Minimum retransmission timeout of the host's TCP towards the guest, in ms
    /// (the route's `rto_min`); 0 keeps the kernel's 200 ms.
    #[arg(long, default_value_t = host_bridge::bridge::DEFAULT_RTO_MIN_MS)]
    rto_min_ms: u32,
    /// `quickack` on the route to the guest (the host ACKs every segment at once):
    /// `auto` sets it when the wire is impaired, where it pays; on a clean wire it
    /// only adds a frame per message.
    #[arg(long, value_enum, default_value_t = Quickack::Auto)]
    quickack: Quickack,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Quickack {
    Auto,
    On,
    Off,
}

impl BridgeArgs {
    fn config(&self) -> BridgeConfig {
        let to_guest = self.impair_to_guest.unwrap_or(self.impair);
        let to_host = self.impair_to_host.unwrap_or(self.impair);
        let quickack = match self.quickack {
            Quickack::Auto => !(to_guest.is_none() && to_host.is_none()),
            Quickack::On => true,
            Quickack::Off => false,
        };
        BridgeConfig {
            host_ip: self.host_ip,
            guest_ip: self.guest_ip,
            relay: RelayConfig {
                seed: self.seed,
                to_guest,
                to_host,
                pcap: self.pcap.clone(),
            },
            dhcp: self.dhcp,
            route: RouteTuning {
                rto_min_ms: (self.rto_min_ms > 0).then_some(self.rto_min_ms),
                quickack,
            },
            ..BridgeConfig::default()
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = if cli.quiet {
        EnvFilter::new("warn")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log_level))
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP, caught from the moment this is made
/// (before any namespace exists), so that none of them can kill the process
/// without its cleanup.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    fn new() -> Result<StopSignals> {
        let install = |kind| signal(kind).context("install signal handlers");
        Ok(StopSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// Resolves when one of them arrives.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}

/// SIGUSR1: the bridge's link switch. Installed before the bridge says it is
/// ready, so that a signal sent after that never kills the process.
fn link_switch() -> Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::user_defined1()).context("install the SIGUSR1 handler")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    // No root: where user namespaces and /dev/net/tun allow it, the bridge is made
    // in a user namespace of our own (before any thread exists).
    // (No command is the tutorial: a `run` too.)
    if matches!(
        &cli.cmd,
        Some(Cmd::Run {
            user_net: false,
            ..
        }) | None
    ) {
        use host_bridge::privilege as p;
        let forced = std::env::var(p::FORCE_ROOTLESS).as_deref() == Ok("1");
        if !p::in_user_namespace() && (forced || (!netns::is_root() && p::rootless_possible())) {
            return match p::rerun_in_user_namespace() {
                Ok(st) => ExitCode::from(st.code().map_or(1, |c| c as u8)),
                Err(e) => {
                    eprintln!("host-bridge: error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    let threads = cli.threads.unwrap_or_else(default_threads);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("host-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("host-bridge: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A listening TCP socket on `addr` (SO_REUSEADDR as usual for a server; and
/// SO_REUSEPORT when asked).
fn listen_tcp(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Prints a line on stdout for whoever reads it. A script that has read what it
/// needed may have closed the pipe: println! would panic on that; the line is
/// dropped instead.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// No command: the tutorial is `run -- FIRMWARE_ARGS` with every default, on a
/// freshly built image.
fn tutorial(firmware_args: Vec<String>) -> Result<Cmd> {
    // The firmware takes options only: a word first is a mistyped command.
    if let Some(word) = firmware_args.first().filter(|a| !a.starts_with('-')) {
        anyhow::bail!(
            "no command `{word}` (see --help); with no command, the arguments go to the \
             firmware: options such as --count 3"
        );
    }
    host_bridge::tutorial::build_image(&host_bridge::qemu::repo_root())?;
    let argv = ["host-bridge", "run", "--"].map(String::from);
    let cli = Cli::try_parse_from(argv.into_iter().chain(firmware_args))?;
    cli.cmd.context("`run` parses as a command")
}

async fn run(cli: Cli) -> Result<u8> {
    let mut signals = StopSignals::new()?;
    let cmd = match cli.cmd {
        Some(cmd) => cmd,
        None => tutorial(cli.firmware_args)?,
    };
    match cmd {
        Cmd::Serve {
            listen,
            reuse_port,
            server,
        } => {
            let cfg = server.config()?;
            let listener =
                listen_tcp(listen, reuse_port).with_context(|| format!("listen on {listen}"))?;
            say(format_args!("listening on {}", listener.local_addr()?));
            let stop = CancellationToken::new();
            let srv = tokio::spawn(server::serve(listener, cfg, stop.clone()));
            signals.recv().await;
            tracing::info!("stopping: closing connections with 1001");
            stop.cancel();
            srv.await.context("server task")??;
            Ok(0)
        }
        Cmd::Bridge {
            no_server,
            bridge,
            server,
        } => {
            let cfg = server.config()?;
            anyhow::ensure!(
                netns::is_root(),
                "the bridge needs root (network namespaces and taps)"
            );
            let mut usr1 = link_switch()?;
            let br = Bridge::start(bridge.config())?;
            let stop = CancellationToken::new();
            let srv = if no_server {
                None
            } else {
                let port = bridge.port.unwrap_or(8000);
                let listener = br.listen_tcp(port)?;
                Some((
                    port,
                    tokio::spawn(server::serve(listener, cfg, stop.clone())),
                ))
            };
            say(format_args!("netns={}", br.netns().name()));
            if let Some((port, _)) = &srv {
                say(format_args!(
                    "server=ws://{}:{port}{}",
                    bridge.host_ip, server.path
                ));
            }
            say(format_args!(
                "FIRMWARE_NET={}",
                br.qemu_net_options("52:54:00:12:34:56")
            ));
            say(format_args!("ready"));
            loop {
                tokio::select! {
                    _ = signals.recv() => break,
                    _ = usr1.recv() => host_bridge::run::toggle_link(&br),
                }
            }
            stop.cancel();
            let served = match srv {
                Some((_, task)) => task.await.context("server task")?,
                None => Ok(()),
            };
            let stats = br.shutdown().await?;
            say(format_args!("{stats}"));
            served?;
            Ok(0)
        }
        Cmd::Run {
            image,
            user_net,
            no_auto_args,
            mac,
            timeout,
            gdb,
            relay,
            bridge,
            server,
            firmware_args,
        } => {
            let cfg = RunConfig {
                boot: BootConfig {
                    image,
                    user_net,
                    timeout_s: timeout,
                    port: bridge.port,
                    server: server.config()?,
                    firmware_args,
                },
                auto_args: !no_auto_args,
                mac,
                bridge: bridge.config(),
                gdb,
                relay,
            };
            host_bridge::run::run(cfg, signals.recv(), Some(link_switch()?)).await
        }
        Cmd::Fleet(a) => {
            let cfg = FleetConfig {
                boot: BootConfig {
                    image: a.image,
                    user_net: a.user_net,
                    timeout_s: a.timeout,
                    port: a.port,
                    server: a.server_args.config()?,
                    firmware_args: a.firmware_args,
                },
                boards: a.boards,
                first_board: a.first_board,
                wave: a.wave,
                server_url: a.server,
                relay: RelayConfig {
                    seed: a.seed,
                    to_guest: a.impair,
                    to_host: a.impair,
                    pcap: None,
                },
            };
            let report = host_bridge::fleet::run(cfg, signals.recv()).await?;
            for b in report
                .boards
                .iter()
                .filter(|b| b.status != 0 || std::env::var_os("FLEET_ALL_LOGS").is_some())
            {
                eprintln!(
                    "board {} ({}) exited with status {}:",
                    b.id, b.mac, b.status
                );
                for line in &b.log {
                    eprintln!("board {}| {line}", b.id);
                }
            }
            say(format_args!("{}", report.summary()));
            Ok(if report.all_passed() { 0 } else { 1 })
        }
    }
}
