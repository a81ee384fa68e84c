//! `host-bridge`: the reverse-echo WebSocket server, the tap bridge to QEMU,
//! and a runner that boots the firmware on that bridge. See `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use host_bridge::bridge::{Bridge, BridgeConfig, RouteTuning};
use host_bridge::impair::Impairment;
use host_bridge::netns;
use host_bridge::relay::RelayConfig;
use host_bridge::run::RunConfig;
use host_bridge::server::{self, ServerConfig};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "host-bridge",
    version,
    about = "Reverse-echo WebSocket server and tap bridge for the emulated lm3s6965evb"
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
    cmd: Cmd,
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
        #[command(flatten)]
        bridge: BridgeArgs,
        #[command(flatten)]
        server: ServerArgs,
        /// Arguments for the firmware, e.g. `--proto hixie76 --count 3`.
        #[arg(last = true)]
        firmware_args: Vec<String>,
    },
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

async fn run(cli: Cli) -> Result<u8> {
    let mut signals = StopSignals::new()?;
    match cli.cmd {
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
            bridge,
            server,
            firmware_args,
        } => {
            let cfg = RunConfig {
                image,
                user_net,
                auto_args: !no_auto_args,
                mac,
                timeout_s: timeout,
                bridge: bridge.config(),
                port: bridge.port,
                server: server.config()?,
                firmware_args,
            };
            host_bridge::run::run(cfg, signals.recv(), Some(link_switch()?)).await
        }
    }
}
