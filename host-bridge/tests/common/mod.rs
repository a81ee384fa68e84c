//! Shared by the end-to-end tests: build the real firmware image once and boot it
//! under qemu-system-arm through `ci/qemu-run` (the same runner `cargo run` uses).
#![allow(dead_code)] // each test binary uses a different part

pub mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the firmware image (once per test binary) and returns its path.
pub fn firmware_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(root.join("ci/cargo-firmware"))
            .arg("build")
            .status()
            .expect("run ci/cargo-firmware (bash)");
        assert!(status.success(), "firmware build failed: {status}");
        let path = Command::new(root.join("ci/cargo-firmware"))
            .arg("path")
            .output()
            .expect("ci/cargo-firmware path");
        PathBuf::from(String::from_utf8(path.stdout).expect("utf-8 path").trim())
    })
}

/// What one boot of the firmware printed and how it ended.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails the test with the whole log unless `needle` was printed.
    #[track_caller]
    pub fn assert_printed(&self, needle: &str) {
        assert!(
            self.stdout.contains(needle),
            "expected {needle:?} in the firmware's output:\n{self}"
        );
    }

    #[track_caller]
    pub fn assert_status(&self, expected: i32) {
        assert_eq!(
            self.status,
            Some(expected),
            "unexpected exit status:\n{self}"
        );
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Boots the image with `args` on the network QEMU options `net` (None: QEMU's user
/// network), killed after `timeout_s` seconds (status 124 then).
pub fn boot(args: &[&str], net: Option<&str>, timeout_s: u32) -> Run {
    let mut cmd = Command::new(repo_root().join("ci/qemu-run"));
    cmd.arg(firmware_image())
        .args(args)
        .env("FIRMWARE_TIMEOUT", timeout_s.to_string());
    if let Some(net) = net {
        cmd.env("FIRMWARE_NET", net);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run ci/qemu-run");
    Run {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the peer to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Where the end-to-end tests keep their logs and captures (CI uploads it on failure).
pub fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).expect("create target/e2e");
    dir
}

/// The project's Python (a venv made by ci/setup.sh), for the third-party peers.
pub fn python() -> PathBuf {
    std::env::var_os("PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/ci-venv/bin/python"))
}

/// A server process for a test: its output goes to `target/e2e/NAME.log`, and it is
/// killed when dropped, whatever the test's outcome.
pub struct Peer {
    child: std::process::Child,
    log: PathBuf,
}

impl Peer {
    /// Starts `program args` and waits (up to 20 s) until 127.0.0.1:`port` accepts.
    pub fn spawn(
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        port: u16,
    ) -> Peer {
        let log = artifacts_dir().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create peer log");
        let child = Command::new(program)
            .args(args)
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut peer = Peer { child, log };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!(
                    "{name} exited ({status}) before listening:\n{}",
                    peer.log_tail(40)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never listened on {port}:\n{}",
                peer.log_tail(40)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        peer
    }

    /// The last `lines` lines the peer printed.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the peer now (as a crash would: SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether this process runs as root (the tap bridge needs it): effective uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(uids.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
