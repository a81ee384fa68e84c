//! Least privilege: `host-bridge run` started as root uses root for the namespace
//! and the tap only; the server and the relay (the host-bridge process) and QEMU
//! run as the invoking user (SUDO_UID, else nobody), and what the run writes
//! (the capture) belongs to that user.
//!
//! QEMU is started halted (`--gdb` on a unix socket) so that the processes can be
//! looked at while the run is certainly under way; gdb then lets it run to the end.

mod common;
use common::halted::{no_gdb, HaltedRun};
use common::skip::skip;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

/// The real, effective, saved and filesystem uids of process `pid`.
fn uids(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().ok())
        .collect()
}

/// The parent pid and command name of process `pid`.
fn ppid_comm(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// A `qemu-system-arm` process descending from `root`.
fn qemu_below(root: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some((_, comm)) = ppid_comm(pid) else {
            continue;
        };
        if comm != "qemu-system-arm" {
            continue;
        }
        let mut p = pid;
        for _ in 0..8 {
            match ppid_comm(p) {
                Some((pp, _)) if pp == root => return Some(pid),
                Some((pp, _)) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    None
}

/// The fast path: QEMU has the tap itself and writes the capture (filter-dump).
#[test]
fn a_bridge_run_started_as_root_serves_and_emulates_as_the_user() {
    run_as_root_and_check_uids(&[]);
}

/// The relay path: the relay (in the host-bridge process) writes the capture.
#[test]
fn a_relayed_bridge_run_started_as_root_relays_as_the_user() {
    run_as_root_and_check_uids(&["--relay"]);
}

fn run_as_root_and_check_uids(extra: &[&str]) {
    if !common::is_root() {
        return skip("needs root (the bridge)");
    }
    if no_gdb() {
        return skip("no gdb-multiarch (ci/setup.sh installs it)");
    }
    let expected: u32 = std::env::var("SUDO_UID")
        .ok()
        .and_then(|u| u.parse().ok())
        .filter(|&u| u != 0)
        .unwrap_or(65534); // nobody
    let pcap = common::unique_artifact("least-privilege", "pcap");
    let pcap_args = [std::ffi::OsStr::new("--pcap"), pcap.as_os_str()];
    let args = extra.iter().map(std::ffi::OsStr::new).chain(pcap_args);
    let mut run = HaltedRun::start("least-privilege", args, |_| {});
    // Halted at reset: QEMU and the server are up, nothing has run yet.
    let qemu = run.wait_for("no halted QEMU under the run", qemu_below);
    let server = uids(run.run.id());
    let emulator = uids(qemu);

    let gdb = run.gdb(&["continue"]);
    let status = run.wait();
    let all = format!(
        "{}\n--- gdb\n{}",
        run.texts(),
        String::from_utf8_lossy(&gdb.stdout)
    );
    let want = Some(vec![expected; 4]);
    assert_eq!(server, want, "host-bridge (server, relay) uids:\n{all}");
    assert_eq!(emulator, want, "QEMU's uids:\n{all}");
    assert_eq!(status.code(), Some(0), "run status:\n{all}");
    assert!(
        all.contains("all 2 echoes matched"),
        "run incomplete:\n{all}"
    );
    // The capture (made as root before the drop) belongs to the user.
    let meta = std::fs::metadata(&pcap).expect("the capture");
    assert_eq!(meta.uid(), expected, "capture's owner:\n{all}");
    assert!(meta.len() > 24, "empty capture:\n{all}");
    let _ = std::fs::remove_file(&pcap);
}

/// Not root: `run` says what a bridge would need here and what to do, then runs
/// on QEMU's user network. (Run as `nobody` by a root test process; here
/// /dev/net/tun is root-only, so that is what it must name.)
#[test]
fn not_root_run_says_what_is_missing_and_uses_the_user_network() {
    use std::os::unix::process::CommandExt;
    if !common::is_root() {
        return skip("needs root (to start a run as nobody)");
    }
    let image = common::firmware_image();
    let tun_usable_by_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["sh", "-c", "exec 3<>/dev/net/tun"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-bridge"));
    cmd.args(["run", "--timeout", "60", "--image"])
        .arg(image)
        .args(["--", "--count", "1"])
        .env_remove("SUDO_UID")
        .current_dir("/")
        .uid(65534)
        .gid(65534);
    host_bridge::child::end_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
    let out = cmd.output().expect("run host-bridge as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("not root, so no bridge"))
        .unwrap_or_else(|| panic!("no explanation:\n{all}"));
    let names = if tun_usable_by_nobody {
        "look usable, yet no bridge was made"
    } else {
        "/dev/net/tun is not usable"
    };
    assert!(warning.contains(names), "expected {names:?}:\n{all}");
    assert!(warning.contains("sudo"), "no way out offered:\n{all}");
    assert!(stdout.contains("all 1 echoes matched"), "{all}");
    assert_eq!(out.status.code(), Some(0), "{all}");
}

/// The rootless path (a user namespace of its own, where `run` is root over the
/// namespaces it makes and nothing else), forced as root with
/// HOST_BRIDGE_ROOTLESS=1: this machine's /dev/net/tun is root's only, so no other
/// user could take it. QEMU runs in a user namespace other than ours, and the run
/// completes on the bridge.
#[test]
fn the_rootless_path_runs_the_bridge_in_a_user_namespace_of_its_own() {
    if !common::is_root() {
        return skip("needs root (to force the rootless path here)");
    }
    if no_gdb() {
        return skip("no gdb-multiarch (ci/setup.sh installs it)");
    }
    let mut run = HaltedRun::start("rootless", None::<&str>, |cmd| {
        cmd.env("HOST_BRIDGE_ROOTLESS", "1");
    });
    let qemu = run.wait_for("no halted QEMU under the run", qemu_below);
    let userns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    let (ours, qemus) = (userns("self"), userns(&qemu.to_string()));
    run.gdb(&["continue"]);
    let status = run.wait();
    let all = run.texts();
    assert!(
        qemus.is_some() && qemus != ours,
        "QEMU in our user namespace ({ours:?}):\n{all}"
    );
    assert!(
        all.contains("rootless: the bridge is made in a user namespace"),
        "{all}"
    );
    assert!(all.contains("all 2 echoes matched"), "{all}");
    assert!(all.contains("192.168.76.2"), "not on the bridge:\n{all}");
    assert_eq!(status.code(), Some(0), "{all}");
}
