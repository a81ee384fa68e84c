//! The servers under test, started one at a time as child processes on a
//! loopback port of their own choosing (port 0, read back from their output), and stopped after each measurement (so that each one's peak RSS is
//! that of one grid cell).

use std::net::SocketAddr;
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

/// The grid's servers by name, in the order of [`grid_servers`].
pub const SERVERS: [&str; 4] = [
    "host-bridge",
    "tokio-tungstenite",
    "fastwebsockets",
    "tornado",
];

/// The four servers of the grid, or the reason one cannot run here.
pub fn grid_servers(root: &Path, bin_dir: &Path, threads: usize) -> Vec<Result<ServerSpec>> {
    let t = threads.to_string();
    let hb = bin_dir.join("host-bridge");
    let tt = bin_dir.join("tt-reverse-server");
    let fws = bin_dir.join("fws-reverse-server");
    let python = root.join("target/ci-venv/bin/python");
    let tornado = root.join("ci/peers/tornado_reverse_server.py");
    // The three Rust servers take the same options (the peers copy host-bridge's).
    let rust = |name: &str, program: &[&str]| {
        let mut argv = program.to_vec();
        argv.extend([
            "--listen",
            "{addr}",
            "--path",
            "/ws",
            "--quiet",
            "--threads",
            &t,
        ]);
        ServerSpec::new(name, &argv)
    };
    vec![
        host_bridge_serve_ok(&hb).map(|()| rust("host-bridge", &[&s(&hb), "serve"])),
        exists(&tt).map(|()| rust("tokio-tungstenite", &[&s(&tt)])),
        exists(&fws).map(|()| rust("fastwebsockets", &[&s(&fws)])),
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

/// Starts `spec` on a free port of 127.0.0.1; see [`start_on`].
pub fn start(spec: &ServerSpec, log: &Path) -> Result<Running> {
    start_on(spec, log, "127.0.0.1")
}

/// Starts `spec` with `{host}` = `host`, `{port}` = 0 and `{addr}` = `host:0` (the
/// server binds any free port), and waits up to 15 s for the line `listening on
/// ADDR` that every server of the bench prints first: the address it really got.
/// (Never a port picked here and released: a parallel run could take it.) Its
/// output goes to `log`.
pub fn start_on(spec: &ServerSpec, log: &Path, host: &str) -> Result<Running> {
    use std::io::{BufRead, Write};
    let argv: Vec<String> = spec
        .argv
        .iter()
        .map(|a| {
            a.replace("{addr}", &format!("{host}:0"))
                .replace("{host}", host)
                .replace("{port}", "0")
        })
        .collect();
    let mut logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(logf.try_clone()?)
        .spawn()
        .with_context(|| format!("start {}", argv.join(" ")))?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Copies the server's stdout to its log while it runs; hands over the address.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(logf, "{line}");
            if let Some(addr) = line.split("listening on ").nth(1) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        }
    });
    let mut running = Running {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        child,
    };
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(addr) => {
            running.addr = addr
                .parse()
                .with_context(|| format!("{} said `listening on {addr}`", spec.name))?;
            Ok(running)
        }
        Err(_) => {
            let status = running.child.try_wait()?;
            bail!(
                "{} did not say `listening on ADDR` within 15 s ({}; log: {})",
                spec.name,
                status.map_or("still running".into(), |s| s.to_string()),
                log.display()
            )
        }
    }
}

/// The directory holding this program (where cargo put the sibling binaries).
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("current_exe has no parent")?
        .to_path_buf())
}
