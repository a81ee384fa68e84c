//! The tap bridge: a network namespace of our own with a tap device holding the
//! host's address, a relay between that tap and QEMU's `-netdev dgram` unix
//! socket, and (for the server) a listening socket made inside the namespace.
//! Everything is removed when the [`Bridge`] is dropped; the tap also vanishes on
//! its own if the process dies (it is not persistent).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::netns::{self, Netns};
use crate::relay::{bind_unix, Port, Relay, RelayConfig, RelayStats};

/// Prefix of our namespaces' names (`hb-PID-N`), unless `HOST_BRIDGE_NETNS_PREFIX`
/// names another (a test that kills bridges on purpose uses its own, so that only
/// its own next start reaps what they leave).
pub const NS_PREFIX: &str = "hb";

fn ns_prefix() -> String {
    std::env::var("HOST_BRIDGE_NETNS_PREFIX")
        .ok()
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| NS_PREFIX.into())
}

/// Where the bridge's wire is and what it does to frames.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The host's (tap's) address inside the namespace.
    pub host_ip: Ipv4Addr,
    /// The guest's address (for `--ip` to the firmware).
    pub guest_ip: Ipv4Addr,
    /// Prefix length of the private subnet.
    pub prefix: u8,
    /// The tap's name inside the namespace.
    pub tap: String,
    /// Impairment, seed, pcap.
    pub relay: RelayConfig,
    /// Run a DHCP server (dnsmasq, inside the namespace, on the tap only) that
    /// leases `guest_ip` with `host_ip` as router, instead of relying on the
    /// guest's static `--ip`.
    pub dhcp: bool,
    /// The host's TCP towards the guest: see [`RouteTuning`].
    pub route: RouteTuning,
}

/// How the host's TCP treats the route to the guest, which is one relay away.
/// Linux's defaults assume a WAN: a minimum retransmission timeout of 200 ms (its
/// tail loss probe waits that long too when one segment is in flight, which is
/// always the case in a ping-pong) and delayed ACKs. Set on a /32 route to the
/// guest inside our namespace only (`ip route ... rto_min ... quickack ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTuning {
    /// The route's `rto_min`; `None` keeps the kernel's (200 ms).
    pub rto_min_ms: Option<u32>,
    /// The route's `quickack 1`: ACK every segment at once. On a lossy wire it keeps
    /// delayed ACKs out of the board's round-trip samples (its RTO stays at the
    /// floor); on a clean one it only costs a pure ACK ahead of every reply (twice
    /// the frames to the guest, about a quarter of the clean echo rate). So off by
    /// default; `host-bridge` turns it on when it impairs the wire.
    pub quickack: bool,
}

/// The board's own minimum retransmission timeout (`SMOLTCP_RTTE_MIN_RTO` in
/// .cargo/config.toml); the host's side matches it.
pub const DEFAULT_RTO_MIN_MS: u32 = 20;

impl Default for RouteTuning {
    fn default() -> Self {
        RouteTuning {
            rto_min_ms: Some(DEFAULT_RTO_MIN_MS),
            quickack: false,
        }
    }
}

impl RouteTuning {
    /// The arguments of `ip route add` after the destination and device, or
    /// `None` if nothing differs from the kernel's defaults (no route is added).
    pub fn route_args(&self) -> Option<Vec<String>> {
        let mut args = Vec::new();
        if let Some(ms) = self.rto_min_ms {
            args.extend(["rto_min".to_owned(), format!("{ms}ms")]);
        }
        if self.quickack {
            args.extend(["quickack".to_owned(), "1".to_owned()]);
        }
        (!args.is_empty()).then_some(args)
    }
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            host_ip: Ipv4Addr::new(192, 168, 76, 1),
            guest_ip: Ipv4Addr::new(192, 168, 76, 2),
            prefix: 24,
            tap: "tap0".into(),
            relay: RelayConfig::default(),
            dhcp: false,
            route: RouteTuning::default(),
        }
    }
}

/// A private directory for the unix sockets, removed on drop.
#[derive(Debug)]
struct SockDir(PathBuf);

impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running bridge. Drop order matters: the relay (and the tap it owns) first,
/// then the namespace, then the socket directory.
pub struct Bridge {
    relay: Option<Relay>,
    /// Held only to be stopped (on drop) before the namespace goes.
    _dhcp: Option<Dhcp>,
    ns: Netns,
    dir: SockDir,
    cfg: BridgeConfig,
}

impl Bridge {
    /// Makes the namespace, the tap with `cfg.host_ip`, the socket for QEMU, and
    /// starts relaying. Needs root and a tokio runtime.
    pub fn start(cfg: BridgeConfig) -> Result<Bridge> {
        let prefix = ns_prefix();
        for stale in netns::reap_stale(&prefix) {
            // A warning: shown even with --quiet, since it means a run was killed.
            tracing::warn!(
                "removed namespace {stale} (and its tap) left by a process that no longer runs"
            );
            let _ = std::fs::remove_dir_all(sock_dir(&stale));
        }
        let ns = Netns::create(&prefix)?;
        let dir = SockDir(sock_dir(ns.name()));
        std::fs::create_dir_all(&dir.0).with_context(|| format!("create {}", dir.0.display()))?;
        // IPv4 only on this wire: no IPv6 router/neighbour chatter to the guest
        // or in the pcap (best effort: the kernel may lack IPv6).
        let _ = ns.enter(|| {
            for knob in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{knob}/disable_ipv6"), "1");
            }
            Ok(())
        });
        let tap = netns::open_tap(&ns, &cfg.tap)?;
        let addr = format!("{}/{}", cfg.host_ip, cfg.prefix);
        ns.ip(&["addr", "add", &addr, "dev", &cfg.tap])?;
        ns.ip(&["link", "set", &cfg.tap, "up"])?;
        if let Some(tuning) = cfg.route.route_args() {
            // A /32 route to the guest beside the subnet's: more specific, so it
            // wins, and it needs no network address worked out.
            let guest = format!("{}/32", cfg.guest_ip);
            let src = cfg.host_ip.to_string();
            let mut args = vec!["route", "add", &guest, "dev", &cfg.tap, "src", &src];
            args.extend(tuning.iter().map(String::as_str));
            ns.ip(&args)?;
        }
        let tap = tun::AsyncDevice::new(tap).context("register the tap with tokio")?;
        let sock = bind_unix(&dir.0.join("bridge.sock"))?;
        let guest = Port::Unix {
            sock: Arc::new(sock),
            peer: dir.0.join("qemu.sock"),
        };
        let relay = Relay::start(Port::Tap(Arc::new(tap)), guest, &cfg.relay)?;
        tracing::info!(
            "bridge up: namespace {}, {} {addr}, QEMU socket {}",
            ns.name(),
            cfg.tap,
            dir.0.join("qemu.sock").display()
        );
        let dhcp = if cfg.dhcp {
            Some(Dhcp::start(&ns, &cfg)?)
        } else {
            None
        };
        Ok(Bridge {
            relay: Some(relay),
            _dhcp: dhcp,
            ns,
            dir,
            cfg,
        })
    }

    /// The namespace (to run commands or open sockets inside it).
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &BridgeConfig {
        &self.cfg
    }

    /// The unix socket QEMU binds (its `local.path`).
    pub fn guest_socket(&self) -> PathBuf {
        self.dir.0.join("qemu.sock")
    }

    /// The unix socket the bridge binds (QEMU's `remote.path`).
    pub fn bridge_socket(&self) -> PathBuf {
        self.dir.0.join("bridge.sock")
    }

    /// QEMU's network options for this bridge (the value of `FIRMWARE_NET`).
    pub fn qemu_net_options(&self, mac: &str) -> String {
        qemu_dgram_options(&self.guest_socket(), &self.bridge_socket(), mac)
    }

    /// A TCP listener on the host address inside the namespace.
    pub fn listen_tcp(&self, port: u16) -> Result<tokio::net::TcpListener> {
        let addr = SocketAddr::V4(SocketAddrV4::new(self.cfg.host_ip, port));
        let std_listener = self.ns.enter(move || {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("listen on {addr} in the namespace"))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        tokio::net::TcpListener::from_std(std_listener).context("register the listener with tokio")
    }

    /// Switches the link (the cable between tap and QEMU) up or down by hand.
    pub fn set_link(&self, up: bool) {
        if let Some(r) = &self.relay {
            r.set_link(up);
        }
    }

    /// Flips the link; returns whether it is now up.
    pub fn toggle_link(&self) -> bool {
        self.relay.as_ref().is_some_and(Relay::toggle_link)
    }

    /// The relay's counters so far.
    pub fn stats(&self) -> RelayStats {
        self.relay.as_ref().map(Relay::stats).unwrap_or_default()
    }

    /// Stops the relay and removes everything; returns the frame counters.
    pub async fn shutdown(mut self) -> Result<RelayStats> {
        // DHCP first, while its interface still exists.
        drop(self._dhcp.take());
        let stats = match self.relay.take() {
            Some(r) => r.stop().await?,
            None => RelayStats::default(),
        };
        drop(self);
        Ok(stats)
    }
}

/// dnsmasq as a DHCP-only server inside the namespace; stopped on drop.
struct Dhcp(std::process::Child);

impl Dhcp {
    fn start(ns: &Netns, cfg: &BridgeConfig) -> Result<Dhcp> {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(cfg.prefix.min(32)))
            .unwrap_or(0);
        let mask = Ipv4Addr::from(mask);
        let mut cmd = ns.command("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0", // no DNS
            "--no-resolv",
            "--no-hosts",
            "--leasefile-ro",
            "--bind-interfaces",
            "--log-facility=-",
            "--quiet-dhcp",
            "--no-ping", // don't wait ~3 s probing the address before offering it
        ])
        .arg(format!("--interface={}", cfg.tap))
        .arg(format!(
            "--dhcp-range={},{},{mask},1h",
            cfg.guest_ip, cfg.guest_ip
        ))
        .arg(format!("--dhcp-option=option:router,{}", cfg.host_ip))
        .arg("--pid-file=")
        .stdin(std::process::Stdio::null());
        // Inside our namespace, which the next start removes if we are SIGKILLed:
        // dnsmasq must not live on there.
        crate::child::end_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
        let mut child = cmd
            .spawn()
            .context("start dnsmasq for --dhcp (package dnsmasq-base)")?;
        // It fails at once on a bad setup (missing binary inside `ip netns exec`, port 67 taken).
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Ok(Some(st)) = child.try_wait() {
            anyhow::bail!("dnsmasq for --dhcp exited at once ({st}); is dnsmasq-base installed?");
        }
        tracing::info!(
            "DHCP: leasing {} (router {}) on {}",
            cfg.guest_ip,
            cfg.host_ip,
            cfg.tap
        );
        Ok(Dhcp(child))
    }
}

impl Drop for Dhcp {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
    }
}

/// The directory of the unix sockets of namespace `ns`.
fn sock_dir(ns: &str) -> PathBuf {
    std::env::temp_dir().join(format!("host-bridge-{ns}"))
}

/// QEMU 7.2 options joining the board's Stellaris NIC to a dgram unix socket pair.
pub fn qemu_dgram_options(local: &Path, remote: &Path, mac: &str) -> String {
    format!(
        "-netdev dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={} -net nic,model=stellaris,netdev=n0,macaddr={mac}",
        local.display(),
        remote.display()
    )
}
