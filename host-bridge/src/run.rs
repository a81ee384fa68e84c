//! `host-bridge run`: the firmware booted under QEMU with the server running,
//! on the bridge (root) or on QEMU's user network, as one library call that the
//! CLI and tests share. [`run`] starts the server (and the bridge), boots the
//! image through `ci/qemu-run`, waits for the firmware or an interruption, then
//! takes everything down and returns the firmware's exit status. On the bridge,
//! root is used for the set-up only (see [`crate::privilege`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use crate::bridge::{Bridge, BridgeConfig};
use crate::netns;
use crate::privilege::RunAs;
use crate::qemu::{self, Qemu, QemuRun};
use crate::server::{self, ServerConfig};

/// The host's address as QEMU's user network shows it to the guest.
pub(crate) const SLIRP_HOST: &str = "10.0.2.2";

/// What `run` and `fleet` both boot, on which network, and the server they
/// boot against.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// Firmware image (`None`: what `ci/cargo-firmware path` prints).
    pub image: Option<PathBuf>,
    /// QEMU's user network even when root (the bridge needs root).
    pub user_net: bool,
    /// Seconds before QEMU is killed (exit status 124).
    pub timeout_s: u64,
    /// The server's port (default: 8000 on the bridge, any free port on the
    /// user network, so that parallel runs don't collide).
    pub port: Option<u16>,
    /// The server.
    pub server: ServerConfig,
    /// The firmware's own arguments (`--url` is added where they lack it).
    pub firmware_args: Vec<String>,
}

impl BootConfig {
    /// Whether QEMU goes on a bridge: root, and the user network not asked for.
    pub(crate) fn on_bridge(&self) -> bool {
        !self.user_net && netns::is_root()
    }

    /// The server's port on a bridge.
    pub(crate) fn bridge_port(&self) -> u16 {
        self.port.unwrap_or(8000)
    }

    /// The server's listener for the user network: on 127.0.0.1, which QEMU's
    /// slirp shows the guest as [`SLIRP_HOST`].
    pub(crate) async fn listen_local(&self) -> Result<TcpListener> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port.unwrap_or(0)));
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on {addr}"))
    }
}

/// What to boot, and on which network.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The image, the network, the server and the firmware's arguments.
    pub boot: BootConfig,
    /// Add `--url`, `--ip` and `--gateway` to the firmware's arguments where
    /// they lack them.
    pub auto_args: bool,
    /// The board's MAC address.
    pub mac: String,
    /// The bridge, when there is one.
    pub bridge: BridgeConfig,
    /// Start QEMU halted with its gdb stub on 127.0.0.1:PORT (a number) or on a
    /// unix socket (a path); `ci/qemu-run` prints the command that attaches.
    pub gdb: Option<String>,
    /// On the bridge, relay frames through host-bridge even with nothing to do
    /// to them (for the relay's counters and the link switch). Without it, and
    /// without impairment, QEMU gets the tap itself (the direct path).
    pub relay: bool,
}

/// Boots the firmware with the server running until it exits (its status) or
/// `interrupted` resolves (QEMU is stopped; status 130). Each signal on
/// `link_switch` (the CLI passes SIGUSR1) pulls or plugs the bridge's cable.
pub async fn run(
    cfg: RunConfig,
    interrupted: impl Future<Output = ()>,
    mut link_switch: Option<Signal>,
) -> Result<u8> {
    let repo = qemu::repo_root();
    let direct = direct_path(&cfg);
    let image = qemu::image_or_default(cfg.boot.image.clone(), &repo)?;
    let use_bridge = cfg.boot.on_bridge();
    if !use_bridge && !cfg.boot.user_net {
        tracing::warn!("{}", crate::privilege::rootless_diagnosis());
    }
    let (br, listener) = if use_bridge {
        // Root only for the namespace, the tap and the sockets inside; the
        // server, the relay and QEMU then run as the invoking user.
        let mut bridge_cfg = cfg.bridge.clone();
        // In a user namespace of our own we are no one's root: nothing to drop.
        if crate::privilege::in_user_namespace() {
            tracing::info!("rootless: the bridge is made in a user namespace of our own");
        } else {
            bridge_cfg.run_as = Some(RunAs::invoking_user()?);
        }
        bridge_cfg.direct = direct;
        let mut br = Bridge::start(bridge_cfg)?;
        let l = br.listen_tcp(cfg.boot.bridge_port())?;
        br.drop_privileges()?;
        std::fs::File::open(&image).with_context(|| {
            format!(
                "the image {} is not readable by the user the run continues as \
                 (sudo's SUDO_UID, else nobody): put it where that user can read it",
                image.display()
            )
        })?;
        (Some(br), l)
    } else {
        (None, cfg.boot.listen_local().await?)
    };
    let mut args = Vec::new();
    if cfg.auto_args {
        let port = listener.local_addr()?.port();
        let host = if use_bridge {
            cfg.bridge.host_ip.to_string()
        } else {
            SLIRP_HOST.into()
        };
        let url = format!("ws://{host}:{port}{}", cfg.boot.server.path);
        let static_ip = (use_bridge && !cfg.bridge.dhcp).then_some(&cfg.bridge);
        args = missing_args(&cfg.boot.firmware_args, &url, static_ip);
    }
    args.extend(cfg.boot.firmware_args);

    let stop = CancellationToken::new();
    let srv = tokio::spawn(server::serve(listener, cfg.boot.server, stop.clone()));
    let boot = QemuRun {
        runner: repo.join("ci/qemu-run"),
        image,
        args,
        net: br.as_ref().map(|b| b.qemu_net_options(&cfg.mac)),
        mac: Some(cfg.mac),
        timeout_s: Some(cfg.boot.timeout_s),
        gdb: cfg.gdb,
        pass_fd: br.as_ref().and_then(Bridge::qemu_fd),
    };
    tracing::info!("booting {} {}", boot.image.display(), boot.args.join(" "));
    let mut qemu = Qemu::spawn(&boot)?;
    tokio::pin!(interrupted);
    let status = loop {
        tokio::select! {
            s = qemu.wait() => break s?,
            () = &mut interrupted => {
                tracing::info!("interrupted: stopping QEMU");
                let qemu_status = qemu.stop(Duration::from_secs(3)).await?;
                tracing::info!("QEMU ended with status {qemu_status}");
                // Interrupted is not success, whatever QEMU said on SIGTERM.
                break 130;
            }
            Some(()) = next_signal(&mut link_switch) => match &br {
                Some(br) if br.relays() => toggle_link(br),
                Some(_) => tracing::warn!("link switch: QEMU has the tap itself, no cable to pull (start with --relay)"),
                None => tracing::warn!("link switch: no bridge (user network), no cable to pull"),
            },
        }
    };
    stop.cancel();
    let served = srv.await.context("server task")?;
    if let Some(br) = br {
        let relayed = br.relays();
        let stats = br.shutdown().await?;
        if relayed {
            eprintln!("relay counters:\n{stats}");
        }
    }
    served?;
    tracing::info!("firmware exited with status {status}");
    Ok(u8::try_from(status).unwrap_or(1))
}

/// Whether QEMU gets the tap itself: the relay would have nothing to do (no
/// impairment, no outage; a capture is QEMU's own `filter-dump` then), and
/// `--relay` does not ask for it.
fn direct_path(cfg: &RunConfig) -> bool {
    !cfg.relay && cfg.bridge.relay.to_guest.is_none() && cfg.bridge.relay.to_host.is_none()
}

/// The next signal of `sig`; never, without one.
async fn next_signal(sig: &mut Option<Signal>) -> Option<()> {
    match sig {
        Some(sig) => sig.recv().await,
        None => std::future::pending().await,
    }
}

/// Pulls or plugs the bridge's cable and says which on stdout (`link down` /
/// `link up`), for the script or test that asked.
pub fn toggle_link(br: &Bridge) {
    use std::io::Write;
    let state = if br.toggle_link() { "up" } else { "down" };
    tracing::info!("link switch: link {state}");
    // A reader that went away is no reason to fail.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "link {state}").and_then(|()| out.flush());
}

/// The arguments to put before the firmware's own `given` ones: `--url url`, and
/// with `static_ip` (the bridge without DHCP) `--ip` and `--gateway`, each only
/// where `given` lacks it.
fn missing_args(given: &[String], url: &str, static_ip: Option<&BridgeConfig>) -> Vec<String> {
    let has = |opt: &str| given.iter().any(|a| a == opt);
    let mut args = Vec::new();
    if !has("--url") {
        args.extend(["--url".into(), url.into()]);
    }
    if let Some(b) = static_ip.filter(|_| !has("--ip")) {
        args.extend([
            "--ip".into(),
            format!("{}/{}", b.guest_ip, b.prefix),
            "--gateway".into(),
            b.host_ip.to_string(),
        ]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_what_the_firmware_arguments_lack() {
        let url = "ws://192.168.76.1:8000/ws";
        let br = BridgeConfig::default();
        let given: Vec<String> = vec!["--count".into(), "3".into()];
        assert_eq!(
            missing_args(&given, url, Some(&br)).join(" "),
            "--url ws://192.168.76.1:8000/ws --ip 192.168.76.2/24 --gateway 192.168.76.1"
        );
        assert_eq!(
            missing_args(&given, url, None).join(" "),
            format!("--url {url}")
        );
        let given: Vec<String> = vec!["--url".into(), "ws://x/".into(), "--ip".into()];
        assert!(missing_args(&given, url, Some(&br)).is_empty());
    }
}
