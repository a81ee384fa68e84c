//! The servers under test, started one at a time as child processes on a free
//! loopback port, and stopped after each measurement (so that each one's peak RSS is
//! that of one grid cell).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Name in the report.
    pub name: String,
    /// Program and arguments; `{addr}`, `{host}` and `{port}` are replaced.
    pub argv: Vec<String>,
}

impl ServerSpec {
    pub fn new(name: &str, argv: &[&str]) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The three servers of the grid, or the reason one cannot run here.
pub fn grid_servers(root: &Path, bin_dir: &Path, threads: usize) -> Vec<Result<ServerSpec>> {
    let t = threads.to_string();
    let hb = bin_dir.join("host-bridge");
    let tt = bin_dir.join("tt-reverse-server");
    let python = root.join("target/ci-venv/bin/python");
    let tornado = root.join("ci/peers/tornado_reverse_server.py");
    vec![
        host_bridge_serve_ok(&hb).map(|()| {
            ServerSpec::new(
                "host-bridge",
                &[
                    &s(&hb),
                    "serve",
                    "--listen",
                    "{addr}",
                    "--path",
                    "/ws",
                    "--quiet",
                    "--threads",
                    &t,
                ],
            )
        }),
        exists(&tt).map(|()| {
            ServerSpec::new(
                "tokio-tungstenite",
                &[
                    &s(&tt),
                    "--listen",
                    "{addr}",
                    "--path",
                    "/ws",
                    "--quiet",
                    "--threads",
                    &t,
                ],
            )
        }),
        python_has_tornado(&python).map(|()| {
            ServerSpec::new(
                "tornado",
                &[
                    &s(&python),
                    &s(&tornado),
                    "--address",
                    "{host}",
                    "--port",
                    "{port}",
                    "--quiet",
                ],
            )
        }),
    ]
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn exists(p: &Path) -> Result<()> {
    if p.is_file() {
        Ok(())
    } else {
        bail!("{} not built", p.display())
    }
}

fn host_bridge_serve_ok(hb: &Path) -> Result<()> {
    exists(hb)?;
    let out = Command::new(hb).args(["serve", "--help"]).output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !help.contains("--listen") {
        bail!("`host-bridge serve --help` does not offer --listen yet (the server has not landed)");
    }
    Ok(())
}

fn python_has_tornado(python: &Path) -> Result<()> {
    let ok = Command::new(python)
        .args(["-c", "import tornado"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "{} cannot import tornado (run ci/bench.sh, which installs it)",
            python.display()
        );
    }
    Ok(())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server; killed on drop.
pub struct Running {
    pub addr: SocketAddr,
    child: Child,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGTERM, then SIGKILL after 2 s.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// Starts `spec` on a free port of 127.0.0.1 and waits until it accepts connections.
pub fn start(spec: &ServerSpec, log: &Path) -> Result<Running> {
    start_at(spec, log, free_port()?)
}

/// Starts `spec` on 127.0.0.1:`port` and waits until it accepts connections.
pub fn start_at(spec: &ServerSpec, log: &Path, port: u16) -> Result<Running> {
    let running = spawn(spec, log, port)?;
    let addr = running.addr;
    wait_listening(running, spec, log, || {
        Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
    })
}

/// Waits up to 15 s for `listening` to say that the started server listens;
/// fails early if it exits first.
pub fn wait_listening(
    mut running: Running,
    spec: &ServerSpec,
    log: &Path,
    mut listening: impl FnMut() -> Result<bool>,
) -> Result<Running> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        if listening()? {
            return Ok(running);
        }
        if let Some(status) = running.child.try_wait()? {
            bail!(
                "{} exited with {status} before listening (log: {})",
                spec.name,
                log.display()
            );
        }
        if Instant::now() > until {
            bail!(
                "{} did not listen on {} within 15 s (log: {})",
                spec.name,
                running.addr,
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `spec` with `{addr}` = 127.0.0.1:`port`, without waiting.
pub fn spawn(spec: &ServerSpec, log: &Path, port: u16) -> Result<Running> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let argv: Vec<String> = spec
        .argv
        .iter()
        .map(|a| {
            a.replace("{addr}", &addr.to_string())
                .replace("{host}", "127.0.0.1")
                .replace("{port}", &port.to_string())
        })
        .collect();
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf)
        .spawn()
        .with_context(|| format!("start {}", argv.join(" ")))?;
    Ok(Running { addr, child })
}

/// The directory holding this program (where cargo put the sibling binaries).
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("current_exe has no parent")?
        .to_path_buf())
}
