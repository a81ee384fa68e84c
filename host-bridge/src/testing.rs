//! Test helpers for firmware images on the emulated lm3s6965evb: the ones this
//! project's own end-to-end tests use, for your image too.
//!
//! * [`firmware_image`]: the image under test (`FIRMWARE_IMAGE`, else this
//!   project's, built once).
//! * [`boot`]: boot an image to the end through `ci/qemu-run` and get its exit
//!   status and console ([`Run`]).
//! * [`Board`]: boot it in the background and wait for console lines as they come.
//! * [`Server`]: host-bridge's reverse-echo WebSocket server, in-process, on a
//!   free port of 127.0.0.1 (bound to port 0, never picked and released), which the
//!   guest reaches on QEMU's user network as `10.0.2.2`.
//!
//! The image is expected to exit through semihosting (`SYS_EXIT`, its status the
//! run's) and may read its arguments from the semihosting command line; see the
//! README's "Your own firmware".
//!
//! ```
//! use std::time::Duration;
//! use host_bridge::testing::{firmware_image, Board, Server};
//!
//! let server = Server::start().unwrap();
//! let url = server.guest_url();
//! let mut board = Board::boot(firmware_image(), &["--url", &url, "--count", "3"], None, 60).unwrap();
//! board.wait_line("connected to", Duration::from_secs(30)).unwrap();
//! board.wait_line("all 3 echoes matched", Duration::from_secs(30)).unwrap();
//! assert_eq!(board.wait().unwrap().status, Some(0));
//! ```

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;

use crate::qemu::repo_root;
use crate::server::{self, ServerConfig};

/// The firmware image: `FIRMWARE_IMAGE` when set (yours, or the one `ci/test.sh`
/// built), else this project's, built here once per process with
/// `ci/cargo-firmware build`. Panics if there is none (a test cannot go on).
pub fn firmware_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Some(image) = std::env::var_os("FIRMWARE_IMAGE") {
            let image = PathBuf::from(image);
            assert!(
                image.is_file(),
                "FIRMWARE_IMAGE={} is not a file",
                image.display()
            );
            return image;
        }
        let root = repo_root();
        let status = Command::new(root.join("ci/cargo-firmware"))
            .arg("build")
            .status()
            .expect("run ci/cargo-firmware (bash)");
        assert!(status.success(), "firmware build failed: {status}");
        crate::qemu::default_image(&root).expect("ci/cargo-firmware path")
    })
}

/// What one boot printed and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    /// The firmware's exit status (None: killed by a signal).
    pub status: Option<i32>,
    /// The firmware's console.
    pub stdout: String,
    /// QEMU's own messages.
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
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

    /// Fails the test with the whole log unless the status is `expected`.
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

/// `ci/qemu-run IMAGE ARGS` with `FIRMWARE_NET` = `net` (None: QEMU's user network)
/// and `FIRMWARE_TIMEOUT` = `timeout_s`; ends with us, however we end.
fn qemu_run(image: &Path, args: &[&str], net: Option<&str>, timeout_s: u32) -> Command {
    let mut cmd = Command::new(repo_root().join("ci/qemu-run"));
    cmd.arg(image)
        .args(args)
        .env("FIRMWARE_TIMEOUT", timeout_s.to_string())
        .stdin(Stdio::null());
    if let Some(net) = net {
        cmd.env("FIRMWARE_NET", net);
    }
    // `timeout` in ci/qemu-run passes the SIGTERM on to QEMU.
    crate::child::end_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
    cmd
}

/// Boots `image` with `args` on the network QEMU options `net` (None: QEMU's user
/// network) to the end; QEMU is killed after `timeout_s` seconds (status 124).
pub fn boot(image: &Path, args: &[&str], net: Option<&str>, timeout_s: u32) -> Run {
    let out = qemu_run(image, args, net, timeout_s)
        .output()
        .expect("run ci/qemu-run");
    Run::from(out)
}

/// A board booting in the background: its console arrives line by line.
pub struct Board {
    child: Child,
    lines: Receiver<String>,
    stdout: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Board {
    /// Boots `image` with `args` (as [`boot`]) without waiting for the end.
    pub fn boot(image: &Path, args: &[&str], net: Option<&str>, timeout_s: u32) -> Result<Board> {
        let mut child = qemu_run(image, args, net, timeout_s)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start ci/qemu-run")?;
        let out = child.stdout.take().context("QEMU's stdout")?;
        let mut err = child.stderr.take().context("QEMU's stderr")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Board {
            child,
            lines,
            stdout: String::new(),
            stderr,
        })
    }

    /// Waits up to `limit` for a console line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("no line with {needle:?} within {limit:?}:\n{}", self.stdout)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("the board ended without {needle:?}:\n{}", self.stdout)
                }
            }
        }
    }

    /// Waits for the end (bounded by the boot's timeout); the whole run.
    pub fn wait(mut self) -> Result<Run> {
        let status = self.child.wait().context("wait for QEMU")?;
        while let Ok(line) = self.lines.recv() {
            self.stdout.push_str(&line);
            self.stdout.push('\n');
        }
        Ok(Run {
            status: status.code(),
            stdout: std::mem::take(&mut self.stdout),
            stderr: self.stderr.join().unwrap_or_default(),
        })
    }
}

/// host-bridge's reverse-echo server on 127.0.0.1, in a thread of its own;
/// stopped when dropped.
pub struct Server {
    port: u16,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts it with the default configuration (path `/ws`).
    pub fn start() -> Result<Server> {
        Server::start_with(ServerConfig::default())
    }

    /// Starts it with `cfg` on a free port (bound to port 0: nothing to race for),
    /// on tokio's current-thread runtime.
    pub fn start_with(cfg: ServerConfig) -> Result<Server> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("a runtime for the server")?;
        Server::start_on(rt, cfg)
    }

    /// The same on a multi-thread runtime of `workers` threads: for tests whose
    /// stalled or flooding clients must not hold up the replies to the others.
    pub fn start_with_workers(cfg: ServerConfig, workers: usize) -> Result<Server> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .context("a runtime for the server")?;
        Server::start_on(rt, cfg)
    }

    fn start_on(rt: tokio::runtime::Runtime, cfg: ServerConfig) -> Result<Server> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = server::serve(l, cfg, token).await {
                            tracing::error!("test server: {e:#}");
                        }
                    }
                    Err(e) => tracing::error!("test server: {e}"),
                }
            });
        });
        Ok(Server {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address (127.0.0.1 and the port), as clients on this machine reach it.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its URL as the guest sees it on QEMU's user network.
    pub fn guest_url(&self) -> String {
        format!("ws://10.0.2.2:{}/ws", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
