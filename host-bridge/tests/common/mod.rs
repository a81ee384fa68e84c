//! Shared by the end-to-end tests: build the real firmware image once and boot it
//! under qemu-system-arm through `ci/qemu-run` (the same runner `cargo run` uses).
#![allow(dead_code)] // each test binary uses a different part

pub mod halted;
pub mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub use host_bridge::testing::{firmware_image, Run};

/// Boots the image with `args` on the network QEMU options `net` (None: QEMU's user
/// network), killed after `timeout_s` seconds (status 124 then).
pub fn boot(args: &[&str], net: Option<&str>, timeout_s: u32) -> Run {
    host_bridge::testing::boot(firmware_image(), args, net, timeout_s)
}

/// A TCP port on 127.0.0.1 held for a server that a test starts later (or never):
/// bound with SO_REUSEPORT but not listening, so connections to it are refused
/// (RST) and no other process can take it, until the server the test starts binds
/// it too with SO_REUSEPORT (`host-bridge serve --reuse-port`). Dropping it frees
/// the port. This is how a test knows a port before its server runs without
/// picking a free port and releasing it (which a parallel test could take).
pub struct PortReservation {
    // Bound, never listened on (tokio's socket type needs no runtime for that).
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl PortReservation {
    pub fn new() -> PortReservation {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().expect("bound address").port();
        PortReservation {
            _socket: socket,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Where the end-to-end tests keep their logs and captures (CI uploads it on failure).
pub fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).expect("create target/e2e");
    dir
}

/// A file `target/e2e/STEM-PID-N.EXT` that no other test process or call uses
/// (tests run in parallel, each binary or test in a process of its own).
pub fn unique_artifact(stem: &str, ext: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    artifacts_dir().join(format!("{stem}-{}-{n}.{ext}", std::process::id()))
}

/// Runs `cmd` to the end and keeps what it printed in `target/e2e/NAME.log`.
pub fn run_logged(name: &str, cmd: &mut Command) -> Run {
    let run = Run::from(cmd.output().expect("run host-bridge"));
    std::fs::write(artifacts_dir().join(format!("{name}.log")), run.to_string())
        .expect("write log");
    run
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
    port: u16,
}

impl Peer {
    /// Starts `program args`, a server that prints `listening on HOST:PORT` (the
    /// address it bound; port 0 in its arguments picks a free one) once it accepts
    /// connections, and waits up to 20 s for that line. Everything it prints goes
    /// straight to `target/e2e/NAME-PID-N.log` (no copying thread: what a test reads
    /// there is all the peer has printed so far).
    pub fn spawn(name: &str, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Peer {
        let log = unique_artifact(name, "log");
        let file = std::fs::File::create(&log).expect("create peer log");
        let mut cmd = Command::new(program);
        // The peer lives no longer than the test process, however that ends.
        host_bridge::child::end_with_parent(&mut cmd, nix::sys::signal::Signal::SIGKILL);
        let child = cmd
            .args(args)
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut peer = Peer {
            child,
            log,
            port: 0,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&peer.log).unwrap_or_default();
            // Only whole lines: the peer may be half-way through writing one.
            let said = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .find_map(|l| l.split("listening on ").nth(1));
            if let Some(addr) = said {
                break addr.trim().to_owned();
            }
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!(
                    "{name} ended ({status}) without saying where it listens:\n{}",
                    peer.log_tail(40)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never said `listening on`:\n{}",
                peer.log_tail(40)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        peer.port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no port in `listening on {addr}`"));
        peer
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
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
