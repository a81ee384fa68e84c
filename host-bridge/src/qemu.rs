//! Boots the firmware image under QEMU through the repository's `ci/qemu-run`
//! (which owns QEMU's command line), with `FIRMWARE_NET` set to the bridge's
//! network options, streaming the firmware's output line by line.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The repository root this binary was built from (where `ci/` lives);
/// `HOST_BRIDGE_REPO` overrides it.
pub fn repo_root() -> PathBuf {
    std::env::var_os("HOST_BRIDGE_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// The firmware image's path as `ci/cargo-firmware path` prints it.
pub fn default_image(repo: &Path) -> Result<PathBuf> {
    let out = std::process::Command::new(repo.join("ci/cargo-firmware"))
        .arg("path")
        .output()
        .context("run ci/cargo-firmware path")?;
    if !out.status.success() {
        bail!(
            "ci/cargo-firmware path failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The image to boot: `image` if given, else [`default_image`]; an error, saying
/// how to build it, where there is no file (`run` and `fleet` both boot it).
pub fn image_or_default(image: Option<PathBuf>, repo: &Path) -> Result<PathBuf> {
    let image = match image {
        Some(i) => i,
        None => default_image(repo)?,
    };
    anyhow::ensure!(
        image.exists(),
        "no firmware image at {} (build it: ci/cargo-firmware build)",
        image.display()
    );
    Ok(image)
}

/// A QEMU run in its own process group (so that it, `timeout` and QEMU are
/// stopped together).
pub struct Qemu {
    child: Child,
    pgid: Option<Pid>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

/// What [`Qemu::spawn`] needs.
#[derive(Debug, Clone)]
pub struct QemuRun {
    /// `ci/qemu-run`.
    pub runner: PathBuf,
    /// The firmware image.
    pub image: PathBuf,
    /// The firmware's arguments.
    pub args: Vec<String>,
    /// `FIRMWARE_NET` (None: QEMU's user network).
    pub net: Option<String>,
    /// `FIRMWARE_MAC`.
    pub mac: Option<String>,
    /// `FIRMWARE_TIMEOUT` in seconds.
    pub timeout_s: Option<u64>,
    /// `FIRMWARE_GDB`: start halted with QEMU's gdb stub on 127.0.0.1:PORT (a
    /// number) or on a unix socket (a path).
    pub gdb: Option<String>,
    /// A descriptor of ours that QEMU inherits under the same number (the tap
    /// named in `net` as `fd=N`, on the bridge's direct path).
    pub pass_fd: Option<std::os::fd::RawFd>,
}

fn pump<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    prefix: &'static str,
    to_stderr: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // Keep draining QEMU's pipe even if our own output is closed (`| head`):
            // println! would panic and end this task, and QEMU would block on a full
            // pipe.
            use std::io::Write;
            let _ = if to_stderr {
                writeln!(std::io::stderr(), "{prefix}{line}")
            } else {
                writeln!(std::io::stdout(), "{prefix}{line}")
            };
        }
    })
}

impl Qemu {
    /// Starts `ci/qemu-run IMAGE ARGS...`; its stdout (the firmware's console)
    /// is printed prefixed `firmware| `, its stderr `qemu| `.
    pub fn spawn(run: &QemuRun) -> Result<Qemu> {
        let mut cmd = Command::new(&run.runner);
        cmd.arg(&run.image)
            .args(&run.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(net) = &run.net {
            cmd.env("FIRMWARE_NET", net);
        }
        if let Some(mac) = &run.mac {
            cmd.env("FIRMWARE_MAC", mac);
        }
        if let Some(t) = run.timeout_s {
            cmd.env("FIRMWARE_TIMEOUT", t.to_string());
        }
        if let Some(gdb) = &run.gdb {
            cmd.env("FIRMWARE_GDB", gdb);
        }
        cmd.process_group(0).kill_on_drop(true);
        // Even if we are SIGKILLed: `timeout` (what ci/qemu-run execs) passes the
        // SIGTERM on to QEMU and ends.
        crate::child::end_with_parent(cmd.as_std_mut(), Signal::SIGTERM);
        if let Some(fd) = run.pass_fd {
            use std::os::unix::process::CommandExt;
            // SAFETY: runs in the child between fork and exec, where fcntl (async-
            // signal-safe) clears close-on-exec of a descriptor the child has as
            // a copy of ours: `ci/qemu-run`, `timeout` and QEMU then inherit it.
            unsafe {
                cmd.as_std_mut().pre_exec(move || {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", run.runner.display()))?;
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(pump(out, "firmware| ", false));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(pump(err, "qemu| ", true));
        }
        Ok(Qemu { child, pgid, pumps })
    }

    /// Waits for QEMU to end; returns the firmware's exit status (128+N after
    /// signal N).
    pub async fn wait(&mut self) -> Result<i32> {
        let status = self.child.wait().await.context("wait for QEMU")?;
        for p in self.pumps.drain(..) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), p).await;
        }
        self.pgid = None;
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            // Not the firmware's doing: QEMU (or `timeout` in front of it) was killed.
            let name = Signal::try_from(signal).map_or("?", Signal::as_str);
            tracing::error!(
                "QEMU was killed by signal {signal} ({name}): the firmware did not finish"
            );
            return Ok(128 + signal);
        }
        Ok(status.code().unwrap_or(1))
    }

    /// Asks the whole process group to stop (SIGTERM), then kills it after `grace`.
    pub async fn stop(&mut self, grace: std::time::Duration) -> Result<i32> {
        if let Some(pg) = self.pgid {
            let _ = killpg(pg, Signal::SIGTERM);
            if let Ok(r) = tokio::time::timeout(grace, self.wait()).await {
                return r;
            }
            let _ = killpg(pg, Signal::SIGKILL);
        }
        self.wait().await
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Some(pg) = self.pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
    }
}
