//! The tap bridge: a network namespace of our own with a tap device holding the
//! host's address, a relay between that tap and QEMU's `-netdev dgram` unix
//! socket, and (for the server) a listening socket made inside the namespace.
//! Everything is removed when the [`Bridge`] is dropped; the tap also vanishes on
//! its own if the process dies (it is not persistent).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::netns::{self, Netns};
use crate::privilege::RunAs;
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
    /// Who the run continues as once set up ([`Bridge::drop_privileges`]);
    /// dnsmasq, started as root, drops to this user too (so that we can still
    /// stop it).
    pub run_as: Option<RunAs>,
    /// The direct path: no relay; QEMU gets the tap itself (`-netdev tap,fd=N`)
    /// and frames take QEMU's own path; the capture (`relay.pcap`) is QEMU's
    /// `filter-dump`. No impairment, no cable to pull.
    pub direct: bool,
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
            run_as: None,
            direct: false,
        }
    }
}

/// A private directory for the unix sockets, removed on drop.
#[derive(Debug)]
pub(crate) struct SockDir(pub(crate) PathBuf);

impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running bridge. Drop order matters: the relay (and the tap it owns) first,
/// then the namespace, then the socket directory.
pub struct Bridge {
    relay: Option<Relay>,
    /// The tap itself, for QEMU, on the direct path (no relay).
    direct_tap: Option<OwnedFd>,
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
        let (ns, dir) = new_namespace()?;
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
        let (relay, direct_tap) = if cfg.direct {
            anyhow::ensure!(
                cfg.relay.to_guest.is_none() && cfg.relay.to_host.is_none(),
                "impairments need the relay: the direct path (QEMU's own tap) has none"
            );
            // SAFETY: into_raw_fd hands over the tap's open descriptor, which
            // nothing else owns from here on.
            let fd = unsafe { OwnedFd::from_raw_fd(tap.into_raw_fd()) };
            tracing::info!(
                "bridge up: namespace {}, {} {addr}, handed to QEMU (fd {})",
                ns.name(),
                cfg.tap,
                fd.as_raw_fd()
            );
            (None, Some(fd))
        } else {
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
            (Some(relay), None)
        };
        let dhcp = if cfg.dhcp {
            Some(Dhcp::start(
                &ns,
                &cfg.tap,
                (cfg.guest_ip, cfg.guest_ip),
                cfg.prefix,
                cfg.host_ip,
                cfg.run_as.as_ref(),
            )?)
        } else {
            None
        };
        Ok(Bridge {
            relay,
            direct_tap,
            _dhcp: dhcp,
            ns,
            dir,
            cfg,
        })
    }

    /// Ends the part that needs root: unnames the namespace (it goes by itself
    /// with our descriptors and children), hands the socket directory, the
    /// relay's socket and the capture to `cfg.run_as`, and becomes that user for
    /// the rest of the process. Open every socket inside the namespace first
    /// ([`Bridge::listen_tcp`]): entering it needs root. Without `run_as`, nothing.
    pub fn drop_privileges(&mut self) -> Result<()> {
        let Some(user) = self.cfg.run_as.clone() else {
            return Ok(());
        };
        self.ns.unname()?;
        user.give(&self.dir.0)?;
        if self.relay.is_some() {
            user.give(&self.bridge_socket())?;
        }
        if let Some(pcap) = &self.cfg.relay.pcap {
            if self.direct_tap.is_some() {
                // QEMU (as the user) writes it: make it now, where root may.
                std::fs::File::create(pcap)
                    .with_context(|| format!("create {}", pcap.display()))?;
            }
            user.give(pcap)?;
        }
        user.become_user()
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
        match &self.direct_tap {
            Some(fd) => qemu_tap_fd_options(fd.as_raw_fd(), self.cfg.relay.pcap.as_deref(), mac),
            None => qemu_dgram_options(&self.guest_socket(), &self.bridge_socket(), mac),
        }
    }

    /// The descriptor QEMU must inherit (the tap, on the direct path).
    pub fn qemu_fd(&self) -> Option<RawFd> {
        self.direct_tap.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Whether frames go through the relay (else QEMU has the tap itself).
    pub fn relays(&self) -> bool {
        self.relay.is_some()
    }

    /// A TCP listener on the host address inside the namespace.
    pub fn listen_tcp(&self, port: u16) -> Result<tokio::net::TcpListener> {
        let addr = SocketAddr::V4(SocketAddrV4::new(self.cfg.host_ip, port));
        netns::listen_tcp(&self.ns, addr)
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

/// A namespace of our own (`PREFIX-PID-N`, IPv4 only) and its socket directory,
/// after removing those left by killed runs. Shared by the bridge and the fleet.
pub(crate) fn new_namespace() -> Result<(Netns, SockDir)> {
    let prefix = ns_prefix();
    for stale in netns::reap_stale(&prefix) {
        // A warning: shown even with --quiet, since it means a run was killed.
        tracing::warn!(
            "removed namespace {stale} (and its tap) left by a process that no longer runs"
        );
        let _ = std::fs::remove_dir_all(sock_dir(&stale));
    }
    for stale in reap_stale_sock_dirs(&prefix) {
        tracing::warn!(
            "removed socket directory {} left by a run that no longer runs",
            stale.display()
        );
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
    Ok((ns, dir))
}

/// dnsmasq as a DHCP-only server inside the namespace; stopped on drop.
pub(crate) struct Dhcp(std::process::Child);

impl Dhcp {
    /// Leases addresses `pool.0..=pool.1` (netmask from `prefix`, router
    /// `router`) on interface `iface` of `ns`; with `run_as`, dnsmasq drops to
    /// that user once its socket is open (so that the run, no longer root, can
    /// still stop it).
    pub(crate) fn start(
        ns: &Netns,
        iface: &str,
        pool: (Ipv4Addr, Ipv4Addr),
        prefix: u8,
        router: Ipv4Addr,
        run_as: Option<&RunAs>,
    ) -> Result<Dhcp> {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
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
        .arg(format!("--interface={iface}"))
        .arg(format!("--dhcp-range={},{},{mask},1h", pool.0, pool.1))
        // dnsmasq's default cap is 1000 leases: a fleet may need its whole pool.
        .arg(format!(
            "--dhcp-lease-max={}",
            u32::from(pool.1).saturating_sub(u32::from(pool.0)) + 1
        ))
        .arg(format!("--dhcp-option=option:router,{router}"))
        .args(run_as.map(|u| format!("--user={}", u.name)))
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
            "DHCP: leasing {}-{} (router {router}) on {iface}",
            pool.0,
            pool.1
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

/// Removes socket directories `host-bridge-PREFIX-PID-N` whose process no
/// longer runs: a SIGKILLed run that had dropped root (its namespace, unnamed,
/// went by itself; the directory, in the shared temporary directory, did not).
fn reap_stale_sock_dirs(prefix: &str) -> Vec<PathBuf> {
    let start = format!("host-bridge-{prefix}-");
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: u32 = name.strip_prefix(&start)?.split('-').next()?.parse().ok()?;
            let gone = !Path::new(&format!("/proc/{pid}")).exists();
            (gone && std::fs::remove_dir_all(e.path()).is_ok()).then(|| e.path())
        })
        .collect()
}

/// The directory of the unix sockets of namespace `ns`.
fn sock_dir(ns: &str) -> PathBuf {
    std::env::temp_dir().join(format!("host-bridge-{ns}"))
}

/// QEMU 7.2 options giving the board's Stellaris NIC the tap open as `fd`, with a
/// capture of every frame by QEMU's `filter-dump` when `pcap` is given.
pub fn qemu_tap_fd_options(fd: RawFd, pcap: Option<&Path>, mac: &str) -> String {
    let dump = pcap.map_or_else(String::new, |p| {
        format!(
            " -object filter-dump,id=d0,netdev=n0,file={}",
            p.display().to_string().replace(',', ",,")
        )
    });
    format!("-netdev tap,id=n0,fd={fd} -net nic,model=stellaris,netdev=n0,macaddr={mac}{dump}")
}

/// QEMU 7.2 options joining the board's Stellaris NIC to a dgram unix socket pair.
pub fn qemu_dgram_options(local: &Path, remote: &Path, mac: &str) -> String {
    format!(
        "-netdev dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={} -net nic,model=stellaris,netdev=n0,macaddr={mac}",
        local.display(),
        remote.display()
    )
}
