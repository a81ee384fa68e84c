//! Network namespaces of our own, made and removed with iproute2's `ip`, and
//! code run inside one (a thread that `setns`'d into it).
//!
//! Every namespace this module makes is named `PREFIX-PID-N`, is removed by
//! [`Netns`]'s `Drop` (so also on panic and after a signal that the caller turns
//! into a normal return), and [`reap_stale`] removes ones left behind by a process
//! that died without running its destructors (SIGKILL).

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

/// Where `ip netns add` binds namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run `ip` (package iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether a namespace called `name` exists.
pub fn exists(name: &str) -> bool {
    PathBuf::from(NETNS_DIR).join(name).exists()
}

/// Whether this process may make namespaces and taps (is root).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A unique name `PREFIX-PID-N` for a namespace of this process.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes namespaces `PREFIX-PID-N` whose process PID no longer runs (left by a
/// killed run). Returns the names removed.
pub fn reap_stale(prefix: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return removed;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if PathBuf::from(format!("/proc/{pid}")).exists() {
            continue;
        }
        if ip(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// A network namespace made by this process, removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// The namespace itself: it lives as long as this (or a socket, tap or
    /// process inside it) does, with or without its name in `/run/netns`.
    file: File,
    /// Still named in `/run/netns` (see [`Netns::unname`]).
    named: bool,
}

impl Netns {
    /// Makes a namespace `PREFIX-PID-N` with its loopback up.
    pub fn create(prefix: &str) -> Result<Netns> {
        let name = unique_name(prefix);
        ip(&["netns", "add", &name]).context("make a network namespace (needs root)")?;
        let path = PathBuf::from(NETNS_DIR).join(&name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = ip(&["netns", "del", &name]);
                return Err(e).with_context(|| format!("open {}", path.display()));
            }
        };
        let ns = Netns {
            name,
            file,
            named: true,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name (for `ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a new thread that has entered the namespace, and returns its
    /// result. Sockets and taps opened by `f` belong to the namespace for good.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        let file = &self.file;
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(file, CloneFlags::CLONE_NEWNET).context("setns into the namespace")?;
                f()
            })
            .join()
            .unwrap_or_else(|_| bail!("the thread inside namespace panicked"))
        })
    }
}

impl Netns {
    /// Removes the name from `/run/netns` (which needs root) while the set-up is
    /// still root, keeping the namespace: it then goes by itself when the last
    /// thing in it (our descriptors, our children) goes, with no root needed for
    /// the teardown, even after SIGKILL. `ip -n`/`ip netns exec` no longer find it;
    /// [`Netns::enter`] still works.
    pub fn unname(&mut self) -> Result<()> {
        if self.named {
            ip(&["netns", "del", &self.name])?;
            self.named = false;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.named {
            return;
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "host-bridge: could not remove namespace {}: {e:#}",
                self.name
            );
        }
    }
}

/// Opens (creates) a non-persistent tap device `name` inside `ns`: it disappears
/// when the returned device is dropped or this process dies.
pub fn open_tap(ns: &Netns, name: &str) -> Result<tun::Device> {
    let name = name.to_owned();
    ns.enter(move || {
        let mut cfg = tun::Configuration::default();
        cfg.tun_name(&name)
            .layer(tun::Layer::L2)
            .platform_config(|p| {
                p.ensure_root_privileges(false);
            });
        tun::Device::new(&cfg).with_context(|| format!("open tap {name}"))
    })
}

/// A TCP listener on `addr` inside `ns`, registered with tokio (for a server that
/// the guests reach on their segment while we stay in the host's namespace).
pub fn listen_tcp(ns: &Netns, addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let l = ns.enter(move || {
        let l = std::net::TcpListener::bind(addr)
            .with_context(|| format!("listen on {addr} in the namespace"))?;
        l.set_nonblocking(true)?;
        Ok(l)
    })?;
    tokio::net::TcpListener::from_std(l).context("register the listener with tokio")
}
