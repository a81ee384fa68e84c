//! Least privilege for `host-bridge run` started as root: root's powers are for
//! making the namespace and the tap only. Once the file descriptors that need
//! them are open, the process drops to the invoking user (`SUDO_UID`/`SUDO_GID`
//! when started through sudo, else `nobody`), so the server, the relay and QEMU
//! (a child, spawned afterwards) never run as root while they parse the guest's
//! frames.
//!
//! The drop is for the whole process and for good (real, effective and saved
//! ids, supplementary groups): nothing later can take root back.
//!
//! Without root, where user namespaces and /dev/net/tun allow it, `run` re-runs
//! itself in a user namespace of its own ([`rerun_in_user_namespace`]); where they
//! don't, [`rootless_diagnosis`] says what is missing.

use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::unistd::{Gid, Uid, User};

/// Who a run as root continues as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// User name (dnsmasq's `--user`); the uid's number when it has no name.
    pub name: String,
}

impl RunAs {
    /// The invoking user: `SUDO_UID`/`SUDO_GID` when set and not root, else
    /// `nobody`.
    pub fn invoking_user() -> Result<RunAs> {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        if let (Some(uid), Some(gid)) = (env("SUDO_UID"), env("SUDO_GID")) {
            if uid != 0 {
                let name = User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map_or_else(|| uid.to_string(), |u| u.name);
                return Ok(RunAs { uid, gid, name });
            }
        }
        let nobody = User::from_name("nobody")
            .context("look up user nobody")?
            .context("no user `nobody` on this system to run as")?;
        Ok(RunAs {
            uid: nobody.uid.as_raw(),
            gid: nobody.gid.as_raw(),
            name: nobody.name,
        })
    }

    /// Hands `path` (made as root for this run: a socket directory, a capture)
    /// to this user, so that the run can remove it and the user's tree holds
    /// nothing owned by root.
    pub fn give(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to {}", path.display(), self.name))
    }

    /// Becomes this user for good: groups, then gid, then uid (in that order:
    /// once the uid is not root, the others can no longer be changed).
    pub fn become_user(&self) -> Result<()> {
        let gid = Gid::from_raw(self.gid);
        let uid = Uid::from_raw(self.uid);
        nix::unistd::setgroups(&[gid]).context("setgroups")?;
        nix::unistd::setresgid(gid, gid, gid).context("setresgid")?;
        nix::unistd::setresuid(uid, uid, uid).context("setresuid")?;
        // glibc applies these to every thread; check that root cannot come back.
        if nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok()
            || nix::unistd::geteuid().is_root()
        {
            bail!("still root after dropping to {}", self.name);
        }
        tracing::info!(
            "set-up done: running as {} (uid {}, gid {}) from now on",
            self.name,
            self.uid,
            self.gid
        );
        Ok(())
    }
}

/// Why this process, not root, cannot make the bridge by itself, and what to do:
/// what the kernel and `/dev/net/tun` allow here, in one message.
pub fn rootless_diagnosis() -> String {
    let mut missing = Vec::new();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        missing.push(
            "unprivileged user namespaces are off (kernel.unprivileged_userns_clone=0; \
             `sysctl -w kernel.unprivileged_userns_clone=1` enables them)",
        );
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        missing.push("user namespaces are off (user.max_user_namespaces=0)");
    }
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun");
    if tun.is_err() {
        missing.push(
            "/dev/net/tun is not usable by this user (most distributions make it 0666; \
             here it is not: `chmod 0666 /dev/net/tun` as root, or a udev rule)",
        );
    }
    let missing = if missing.is_empty() {
        "user namespaces and /dev/net/tun look usable, yet no bridge was made".to_string()
    } else {
        missing.join("; ")
    };
    format!(
        "not root, so no bridge: {missing}. Using QEMU's user network instead. For the \
         bridge, run through sudo: only the set-up of the namespace and the tap runs as \
         root, the rest continues as you (SUDO_UID). --user-net silences this."
    )
}

/// Set (to 1) in `run` re-executed inside a user namespace of its own.
pub const IN_USER_NAMESPACE: &str = "HOST_BRIDGE_IN_USER_NAMESPACE";
/// Set (to 1) to take the rootless path even as root (how the tests exercise it
/// on a machine whose /dev/net/tun is root's only).
pub const FORCE_ROOTLESS: &str = "HOST_BRIDGE_ROOTLESS";

/// Whether this is `run` re-executed in its own user namespace.
pub fn in_user_namespace() -> bool {
    std::env::var(IN_USER_NAMESPACE).as_deref() == Ok("1")
}

/// Whether a bridge can be made without root here: unprivileged user namespaces
/// on, /dev/net/tun usable by this user (most workstations; rootless podman's way).
pub fn rootless_possible() -> bool {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() != Some("0")
        && read("/proc/sys/user/max_user_namespaces").as_deref() != Some("0")
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .is_ok()
}

/// Runs this same command again inside a user namespace of its own, where it is
/// root over the namespaces it makes (and nothing else), with a private `/run`
/// for `ip netns`; returns its exit status. Needs util-linux's `unshare`.
pub fn rerun_in_user_namespace() -> Result<std::process::ExitStatus> {
    let exe = std::env::current_exe().context("our own executable")?;
    // `ip netns` keeps names under /run/netns: a tmpfs over /run, seen only in
    // this mount namespace, gives it a place it may write.
    let script = "mount -t tmpfs host-bridge /run && mkdir /run/netns && exec \"$0\" \"$@\"";
    std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "--mount"])
        .args(["--propagation", "private"])
        .args(["--", "sh", "-c", script])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(IN_USER_NAMESPACE, "1")
        .status()
        .context("run `unshare` (package util-linux) for a user namespace")
}
